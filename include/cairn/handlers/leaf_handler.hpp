// SPDX-License-Identifier: Apache-2.0
/// \file
/// Leaf handlers: how a C++ value is stored as one Orbax leaf. Two routes, no more:
///  * ADL — `to_leaf(const T&)` returns an existing leaf type and `from_leaf(const Stored&, T&)` reads
///    it back (a type you own, stored as something cairn knows);
///  * `cairn::leaf_handler<T>` — a specialisation with a stable `type_name` and two phases: `stage` on
///    the caller's thread copies what must survive the caller changing the value (the result is a
///    storable leaf, written later, possibly on a pool), and `restore` reads the stored leaf into `T`.
/// Built in: host arrays, sharded arrays, arithmetic scalars (incl. bfloat16/float16), std::string,
/// JSON values. Engine tensors sharded over devices plug in through `shard_adapter` (sharded_leaf.hpp).
#pragma once

#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>
#include <cairn/json/value.hpp>
#include <cairn/sharding/named_sharding.hpp>
#include <cairn/sharding/sharded_array.hpp>
#include <cairn/tree/dynamic_tree.hpp>

namespace cairn {

/// What a restore expects to find for a leaf, checked against the checkpoint before any data is read.
struct leaf_expectation {
  std::string_view value_type;          ///< Orbax value type: "jax.Array"/"np.ndarray" (any array), "scalar", "string"
  std::optional<dtype> type;            ///< nullopt: any dtype
  std::optional<cairn::shape> shape;    ///< nullopt: any shape
  /// Restore into per-device buffers (a `sharded_array`) instead of one whole host array.
  bool sharded = false;
  std::optional<named_sharding> sharding{};  ///< the target placement; nullopt: the saved one
  std::vector<int> devices{};                ///< devices to fill (empty: every device of the mesh)
};

/// The handler of leaf type T. The primary template is disabled: a type is a leaf exactly when this
/// is specialised (default-constructible) or `to_leaf`/`from_leaf` are found by ADL.
template <class T>
struct leaf_handler {
  leaf_handler() = delete;
};

namespace detail {
template <class T>
concept has_leaf_handler = requires { leaf_handler<T>::type_name; };
template <class T>
concept has_adl_leaf = !has_leaf_handler<T> && requires(const T& v, T& out) {
  to_leaf(v);
  from_leaf(to_leaf(v), out);
};
}  // namespace detail

/// True for leaf types.
template <class T>
concept leaf = detail::has_leaf_handler<T> || detail::has_adl_leaf<T>;

/// Arrays: stored as Orbax `jax.Array` (or `np.ndarray`) leaves. Restore keeps the target's shape and
/// dtype when they are set (strict), or takes the stored ones when the target is empty.
template <>
struct leaf_handler<host_array> {
  static constexpr std::string_view type_name = "cairn.host_array/v1";
  static dynamic_tree stage(const host_array& a) { return a; }
  static leaf_expectation expect(const host_array& a) {
    if (a.num_bytes() == 0 && a.shape().rank() == 0) return {"array", std::nullopt, std::nullopt};  // empty target: take any
    return {"array", a.type(), a.shape()};
  }
  static void restore(host_array& a, dynamic_tree&& stored) { a = std::move(stored.as_array()); }
};

/// Sharded arrays (the host backend's devices): stored as one `jax.Array` with its `_sharding`, each
/// distinct shard written once. A restore fills exactly the target's devices with their boxes; an empty
/// target takes the saved dtype, shape and sharding; a `placed` one only fixes the sharding.
template <>
struct leaf_handler<sharded_array> {
  static constexpr std::string_view type_name = "cairn.sharded_array/v1";
  /// Copies the replica-0 shards (the ones written).
  /// \throws cairn::error (errc::invalid_argument) for an array without data (an empty or `placed` target).
  static dynamic_tree stage(const sharded_array& a) {
    if (a.empty() || a.placement_only())
      throw error(errc::invalid_argument, "a sharded_array without data (a restore target) cannot be saved");
    std::vector<sharded_array::local_shard> keep;
    for (const auto& s : a.shards())
      if (s.shard.replica == 0) keep.push_back(s);
    return sharded_array(a.type(), a.shape(), a.sharding(), std::move(keep));
  }
  static leaf_expectation expect(const sharded_array& a) {
    leaf_expectation e{"array", std::nullopt, std::nullopt, true, std::nullopt, {}};
    if (a.empty()) return e;
    e.sharding = a.sharding();
    if (a.placement_only()) {
      e.devices = a.placed_devices();
      return e;
    }
    e.type = a.type();
    e.shape = a.shape();
    for (const auto& s : a.shards()) e.devices.push_back(s.shard.device);
    return e;
  }
  static void restore(sharded_array& a, dynamic_tree&& stored) { a = std::move(stored.as_sharded()); }
};

/// Arithmetic scalars: Orbax `scalar` leaves (rank-0 arrays of the value's dtype).
template <class T>
  requires(element_type<T>)
struct leaf_handler<T> {
  static constexpr std::string_view type_name = "cairn.scalar/v1";
  static dynamic_tree stage(const T& v) { return scalar(v); }
  static leaf_expectation expect(const T&) { return {"scalar", dtype_of<T>(), shape{}}; }
  static void restore(T& v, dynamic_tree&& stored) { v = stored.as_scalar().as<T>(); }
};

/// Strings: Orbax `string` leaves (`_strings.json`).
template <>
struct leaf_handler<std::string> {
  static constexpr std::string_view type_name = "cairn.string/v1";
  static dynamic_tree stage(const std::string& s) { return s; }
  static leaf_expectation expect(const std::string&) { return {"string", std::nullopt, std::nullopt}; }
  static void restore(std::string& s, dynamic_tree&& stored) { s = stored.as_string(); }
};

/// Stages a leaf: the storable value that must survive the caller changing `v`.
template <leaf T>
dynamic_tree stage_leaf(const T& v) {
  if constexpr (detail::has_leaf_handler<T>) return leaf_handler<T>::stage(v);
  else {
    auto stored = to_leaf(v);
    return stage_leaf(stored);
  }
}

/// What a restore into `v` expects to find on disk.
template <leaf T>
leaf_expectation expect_leaf(const T& v) {
  if constexpr (detail::has_leaf_handler<T>) return leaf_handler<T>::expect(v);
  else return expect_leaf(to_leaf(v));
}

/// Restores `v` from a stored leaf.
template <leaf T>
void restore_leaf(T& v, dynamic_tree&& stored) {
  if constexpr (detail::has_leaf_handler<T>) {
    leaf_handler<T>::restore(v, std::move(stored));
  } else {
    auto tmp = to_leaf(v);
    restore_leaf(tmp, std::move(stored));
    from_leaf(std::as_const(tmp), v);
  }
}

}  // namespace cairn
