// SPDX-License-Identifier: Apache-2.0
/// \file
/// `key` and `key_path`: the position of a leaf in a tree, as a sequence of dict keys and sequence
/// indices (Orbax `_METADATA` key types 1 and 2). Orbax names a parameter by joining the keys with
/// `.` (`opt.mu.0`); that is also how a key path prints, so errors and the CLI show on-disk names.
#pragma once

#include <compare>
#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/core/utf8.hpp>

namespace cairn {

/// One step in a tree: a dict key (a name) or a sequence index.
class key {
 public:
  /// How a key was written in `_METADATA`: 1 = sequence index, 2 = dict key (Orbax's numbering).
  enum class kind : int { sequence = 1, dict = 2 };

  /// A dict key.
  key(std::string name) : value_(std::move(name)) {}           // NOLINT: implicit, keys read like strings
  key(std::string_view name) : value_(std::string(name)) {}    // NOLINT
  key(const char* name) : value_(std::string(name)) {}         // NOLINT
  /// A sequence index.
  key(index_t index) : value_(index) {}                         // NOLINT
  key(int index) : value_(static_cast<index_t>(index)) {}       // NOLINT
  key(std::size_t index) : value_(static_cast<index_t>(index)) {}  // NOLINT

  kind type() const noexcept { return std::holds_alternative<index_t>(value_) ? kind::sequence : kind::dict; }
  bool is_index() const noexcept { return type() == kind::sequence; }
  bool is_name() const noexcept { return type() == kind::dict; }
  /// \pre is_name()
  const std::string& name() const { return std::get<std::string>(value_); }
  /// \pre is_index()
  index_t index() const { return std::get<index_t>(value_); }
  /// The key as it appears in a parameter name: the name itself, or the decimal index.
  std::string str() const { return is_index() ? std::to_string(index()) : name(); }

  friend bool operator==(const key&, const key&) = default;
  /// Indices order before names; indices numerically, names lexicographically.
  friend std::strong_ordering operator<=>(const key& a, const key& b) {
    if (a.value_.index() != b.value_.index()) return b.value_.index() <=> a.value_.index();
    if (a.is_index()) return a.index() <=> b.index();
    return a.name().compare(b.name()) <=> 0;
  }

 private:
  std::variant<std::string, index_t> value_;
};

/// A path from the root of a tree to a node or leaf.
class key_path {
 public:
  key_path() = default;
  key_path(std::initializer_list<key> keys) : keys_(keys) {}
  explicit key_path(std::vector<key> keys) : keys_(std::move(keys)) {}

  std::size_t size() const noexcept { return keys_.size(); }
  bool empty() const noexcept { return keys_.empty(); }
  const key& operator[](std::size_t i) const noexcept { return keys_[i]; }
  auto begin() const noexcept { return keys_.begin(); }
  auto end() const noexcept { return keys_.end(); }
  const key& back() const { return keys_.back(); }

  /// Returns this path extended by `k`.
  key_path operator/(key k) const {
    key_path p = *this;
    p.keys_.push_back(std::move(k));
    return p;
  }
  void push_back(key k) { keys_.push_back(std::move(k)); }
  void pop_back() { keys_.pop_back(); }
  /// Makes room for `n` keys.
  void reserve(std::size_t n) { keys_.reserve(n); }

  friend bool operator==(const key_path&, const key_path&) = default;
  friend auto operator<=>(const key_path& a, const key_path& b) { return a.keys_ <=> b.keys_; }

 private:
  std::vector<key> keys_;
};

/// Returns the Orbax parameter name: keys joined with `.` (`opt.mu.0`); the root is "".
inline std::string param_name(const key_path& p) {
  std::string s;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (i) s += '.';
    s += p[i].str();
  }
  return s;
}
inline std::string to_string(const key_path& p) { return param_name(p); }
inline std::ostream& operator<<(std::ostream& os, const key_path& p) { return os << param_name(p); }

/// Checks that a dict key can be part of an on-disk parameter name.
/// \throws cairn::error (errc::invalid_argument) naming `where` if the key is empty, contains `/`
///         (which would split the OCDBT key) or a NUL byte, or is not valid UTF-8 (`_METADATA` and
///         the other metadata files are JSON); the key is shown with bytes outside printable ASCII
///         as `\xNN`.
inline void validate_dict_key(std::string_view name, const key_path& where) {
  auto fail = [&](const std::string& why) {
    std::string shown;
    for (unsigned char c : name) {
      if (c >= 0x20 && c < 0x7F) {
        shown += static_cast<char>(c);
      } else {
        static constexpr char hex[] = "0123456789abcdef";
        shown += "\\x";
        shown += hex[c >> 4];
        shown += hex[c & 15];
      }
    }
    std::string at = where.empty() ? std::string("the root") : "\"" + param_name(where) + "\"";
    return error(errc::invalid_argument, "key \"" + shown + "\" under " + at + ": " + why);
  };
  if (name.empty()) throw fail("empty keys cannot be stored");
  if (name.find('/') != std::string_view::npos) throw fail("keys may not contain '/'");
  if (name.find('\0') != std::string_view::npos) throw fail("keys may not contain NUL");
  if (const std::size_t bad = detail::first_invalid_utf8(name); bad != std::string_view::npos)
    throw fail("keys must be UTF-8 (byte " + std::to_string(bad) + " is not)");
}

}  // namespace cairn
