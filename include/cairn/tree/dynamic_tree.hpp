// SPDX-License-Identifier: Apache-2.0
/// \file
/// `dynamic_tree`: a tree whose shape is known only at run time — what `cairn::load` returns for a
/// checkpoint nobody described in C++ types, and what `cairn::save` writes as an Orbax PyTree.
/// Nodes are maps (string keys, sorted as Orbax restores dicts) and lists; leaves are host arrays,
/// scalars (Orbax `scalar`: a rank-0 value of any dtype), strings, JSON values (JSON items), sharded
/// arrays (host shards by device) and the empty nodes `{}`, `[]`, `()` and `None`.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/key_path.hpp>
#include <cairn/json/value.hpp>
#include <cairn/sharding/sharded_array.hpp>

namespace cairn {

/// A rank-0 value of any dtype (Orbax's `scalar` leaf).
class scalar {
 public:
  scalar() = default;
  /// The value `v` with the dtype of T.
  template <element_type T>
  explicit scalar(T v) : type_(dtype_of<T>()) {
    std::memcpy(bytes_.data(), &v, sizeof(T));
  }
  /// A scalar from the bytes of one element of `type`.
  /// \pre bytes.size() == size_of(type) <= 16
  static scalar from_bytes(dtype type, byte_view bytes) {
    scalar s;
    s.type_ = type;
    std::memcpy(s.bytes_.data(), bytes.data(), std::min(bytes.size(), s.bytes_.size()));
    return s;
  }
  dtype type() const noexcept { return type_; }
  byte_view bytes() const noexcept { return {bytes_.data(), size_of(type_)}; }
  /// The value as T.
  /// \throws cairn::error (errc::type_mismatch) if T's dtype is not type().
  template <element_type T>
  T as() const {
    if (dtype_of<T>() != type_)
      throw error(errc::type_mismatch, "scalar of " + std::string(name_of(type_)) + " read as " +
                                           std::string(name_of(dtype_of<T>())));
    T v;
    std::memcpy(&v, bytes_.data(), sizeof(T));
    return v;
  }
  /// The value converted to double (integers, floats, bool; not complex).
  double to_double() const;
  friend bool operator==(const scalar& a, const scalar& b) noexcept {
    return a.type_ == b.type_ && std::memcmp(a.bytes_.data(), b.bytes_.data(), size_of(a.type_)) == 0;
  }

 private:
  dtype type_ = dtype::float64;
  std::array<std::byte, 16> bytes_{};
};

inline double scalar::to_double() const {
  switch (type_) {
    case dtype::bool_: return as<bool>() ? 1 : 0;
    case dtype::int8: return as<std::int8_t>();
    case dtype::int16: return as<std::int16_t>();
    case dtype::int32: return as<std::int32_t>();
    case dtype::int64: return static_cast<double>(as<std::int64_t>());
    case dtype::uint8: return as<std::uint8_t>();
    case dtype::uint16: return as<std::uint16_t>();
    case dtype::uint32: return as<std::uint32_t>();
    case dtype::uint64: return static_cast<double>(as<std::uint64_t>());
    case dtype::float16: return static_cast<float>(as<float16>());
    case dtype::bfloat16: return static_cast<float>(as<bfloat16>());
    case dtype::float32: return as<float>();
    case dtype::float64: return as<double>();
    default: throw error(errc::unsupported, "scalar of " + std::string(name_of(type_)) + " has no double value");
  }
}

/// An empty node: stored in `_METADATA` only.
enum class empty_node { dict, list, tuple, none };

/// A tree of maps, lists and leaves, built at run time.
/// \par Thread safety
/// A value type; concurrent reads are safe.
class dynamic_tree {
 public:
  using map_type = std::map<std::string, dynamic_tree, std::less<>>;
  using list_type = std::vector<dynamic_tree>;
  enum class kind { map, list, array, scalar, string, json, empty, sharded };

  /// An empty map.
  dynamic_tree() : value_(map_type{}) {}
  dynamic_tree(map_type m) : value_(std::move(m)) {}              // NOLINT: trees read like their contents
  dynamic_tree(list_type l) : value_(std::move(l)) {}             // NOLINT
  dynamic_tree(host_array a) : value_(std::move(a)) {}            // NOLINT
  dynamic_tree(cairn::scalar s) : value_(s) {}                    // NOLINT
  dynamic_tree(std::string s) : value_(std::move(s)) {}           // NOLINT
  dynamic_tree(const char* s) : value_(std::string(s)) {}         // NOLINT
  dynamic_tree(json::value v) : value_(std::move(v)) {}           // NOLINT
  dynamic_tree(empty_node e) : value_(e) {}                       // NOLINT
  dynamic_tree(sharded_array a) : value_(std::move(a)) {}         // NOLINT
  /// A map from `{key, subtree}` pairs.
  static dynamic_tree map(std::initializer_list<std::pair<const std::string, dynamic_tree>> items) {
    return dynamic_tree(map_type(items));
  }
  /// A list.
  static dynamic_tree list(std::initializer_list<dynamic_tree> items) { return dynamic_tree(list_type(items)); }

  kind type() const noexcept { return static_cast<kind>(value_.index()); }
  bool is_map() const noexcept { return type() == kind::map; }
  bool is_list() const noexcept { return type() == kind::list; }
  bool is_leaf() const noexcept { return !is_map() && !is_list(); }

  map_type& as_map() { return get<map_type>("map"); }
  const map_type& as_map() const { return get<map_type>("map"); }
  list_type& as_list() { return get<list_type>("list"); }
  const list_type& as_list() const { return get<list_type>("list"); }
  const host_array& as_array() const { return get<host_array>("array"); }
  host_array& as_array() { return get<host_array>("array"); }
  const cairn::scalar& as_scalar() const { return get<cairn::scalar>("scalar"); }
  const std::string& as_string() const { return get<std::string>("string"); }
  const json::value& as_json() const { return get<json::value>("json value"); }
  empty_node as_empty() const { return get<empty_node>("empty node"); }
  const sharded_array& as_sharded() const { return get<sharded_array>("sharded array"); }
  sharded_array& as_sharded() { return get<sharded_array>("sharded array"); }

  /// The child at `k` (map key or list index).
  /// \throws cairn::error (errc::not_found) if there is none.
  const dynamic_tree& at(const key& k) const {
    if (k.is_name() && is_map()) {
      auto it = as_map().find(k.name());
      if (it != as_map().end()) return it->second;
    } else if (k.is_index() && is_list() && k.index() >= 0 && static_cast<std::size_t>(k.index()) < as_list().size()) {
      return as_list()[static_cast<std::size_t>(k.index())];
    }
    throw error(errc::not_found, "tree has no child \"" + k.str() + "\"");
  }
  /// The subtree at `path`.
  const dynamic_tree& at(const key_path& path) const {
    const dynamic_tree* t = this;
    for (const auto& k : path) t = &t->at(k);
    return *t;
  }
  /// Map access that inserts (turning an empty map into a map entry).
  dynamic_tree& operator[](std::string_view k) {
    auto& m = as_map();
    auto it = m.find(k);
    if (it == m.end()) it = m.emplace(std::string(k), dynamic_tree()).first;
    return it->second;
  }

  /// Calls `f(path, leaf)` for every leaf (and empty node) in order: map keys sorted, lists by index.
  template <class F>
  void for_each_leaf(F&& f) const {
    key_path p;
    walk(p, f);
  }

  /// Returns how many leaves `for_each_leaf` visits (empty containers count as leaves), so that a
  /// caller can size what it builds per leaf before the walk.
  std::size_t num_leaves() const noexcept {
    std::size_t n = 0;
    if (const auto* m = std::get_if<map_type>(&value_); m && !m->empty()) {
      for (const auto& kv : *m) n += kv.second.num_leaves();
    } else if (const auto* l = std::get_if<list_type>(&value_); l && !l->empty()) {
      for (const auto& c : *l) n += c.num_leaves();
    } else {
      n = 1;
    }
    return n;
  }

  friend bool operator==(const dynamic_tree&, const dynamic_tree&) = default;

 private:
  template <class T>
  T& get(const char* what) {
    if (auto* p = std::get_if<T>(&value_)) return *p;
    throw error(errc::type_mismatch, std::string("tree node is not a ") + what);
  }
  template <class T>
  const T& get(const char* what) const {
    if (auto* p = std::get_if<T>(&value_)) return *p;
    throw error(errc::type_mismatch, std::string("tree node is not a ") + what);
  }
  template <class F>
  void walk(key_path& p, F& f) const {
    if (is_map() && !as_map().empty()) {
      for (const auto& [k, v] : as_map()) {
        p.push_back(key(k));
        v.walk(p, f);
        p.pop_back();
      }
    } else if (is_list() && !as_list().empty()) {
      for (std::size_t i = 0; i < as_list().size(); ++i) {
        p.push_back(key(i));
        as_list()[i].walk(p, f);
        p.pop_back();
      }
    } else {
      f(static_cast<const key_path&>(p), *this);
    }
  }

  std::variant<map_type, list_type, host_array, cairn::scalar, std::string, json::value, empty_node, sharded_array> value_;
};

}  // namespace cairn
