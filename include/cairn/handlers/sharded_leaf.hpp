// SPDX-License-Identifier: Apache-2.0
/// \file
/// Engine tensors with a `shard_adapter` (sharding/shard_adapter.hpp) as checkpoint leaves, stored like
/// `sharded_array`: one `jax.Array` with its `_sharding`, each distinct shard written once.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/error.hpp>
#include <cairn/handlers/leaf_handler.hpp>
#include <cairn/sharding/shard_adapter.hpp>
#include <cairn/sharding/sharded_array.hpp>

namespace cairn {

/// Engine tensors with a `shard_adapter` are leaves stored like `sharded_array`.
template <class T>
  requires detail::has_shard_adapter<T>
struct leaf_handler<T> {
  static constexpr std::string_view type_name = "cairn.sharded_array/v1";
  using A = shard_adapter<T>;
  static dynamic_tree stage(const T& t) {
    std::vector<sharded_array::local_shard> keep;
    for (std::size_t i = 0; i < A::local_count(t); ++i) {
      shard s = A::local_shard(t, i);
      if (s.replica != 0) continue;
      host_array h = detail::adapter_stage(t, i, s.box.shape());
      if (h.type() != A::type(t) || h.shape() != s.box.shape())
        throw error(errc::shape_mismatch, "staged shard " + to_string(s) + " came back as " + to_string(h.shape()) + " " +
                                              std::string(name_of(h.type())));
      keep.push_back({std::move(s), std::move(h)});
    }
    return sharded_array(A::type(t), A::global_shape(t), A::sharding(t), std::move(keep));
  }
  static leaf_expectation expect(const T& t) {
    leaf_expectation e{"array", A::type(t), A::global_shape(t), true, A::sharding(t), {}};
    for (std::size_t i = 0; i < A::local_count(t); ++i) e.devices.push_back(A::local_shard(t, i).device);
    return e;
  }
  /// \throws cairn::error (errc::not_found) if the restored data lacks a device of `t`.
  static void restore(T& t, dynamic_tree&& stored) {
    const sharded_array& a = stored.as_sharded();
    for (std::size_t i = 0; i < A::local_count(t); ++i) {
      const shard s = A::local_shard(t, i);
      const auto* got = a.on_device(s.device);
      if (!got || got->shard.box != s.box)
        throw error(errc::not_found, "no restored data for shard " + to_string(s));
      detail::adapter_from_host(t, i, got->data.view());
    }
  }
};

}  // namespace cairn
