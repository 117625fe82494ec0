// SPDX-License-Identifier: Apache-2.0
/// \file
/// The host backend: N simulated CPU devices (like JAX's `jax_num_cpu_devices`), ids 0..N-1, each
/// holding its own buffers (a `sharded_array`'s local shards). It builds meshes over its devices and
/// places whole arrays onto them, so sharded saves and resharded restores run without an accelerator.
#pragma once

#include <string>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/error.hpp>
#include <cairn/sharding/device_mesh.hpp>
#include <cairn/sharding/named_sharding.hpp>
#include <cairn/sharding/sharded_array.hpp>

namespace cairn {

/// N simulated CPU devices.
/// \par Thread safety
/// Immutable; its functions may be called concurrently.
class host_devices {
 public:
  /// \throws cairn::error (errc::invalid_argument) if `count` < 1.
  explicit host_devices(int count) : count_(count) {
    if (count < 1) throw error(errc::invalid_argument, "host_devices: " + std::to_string(count) + " devices (at least 1)");
  }
  int count() const noexcept { return count_; }
  /// Device ids 0..count-1.
  std::vector<int> ids() const {
    std::vector<int> v(static_cast<std::size_t>(count_));
    for (int i = 0; i < count_; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
  }
  /// A mesh over the first `product(sizes)` devices, row-major.
  /// \throws cairn::error (errc::invalid_sharding) if the mesh needs more devices than there are.
  device_mesh mesh(std::vector<mesh_axis> axes) const {
    device_mesh m(std::move(axes));
    check(m);
    return m;
  }
  /// \throws cairn::error (errc::invalid_sharding) naming the mesh if it uses a device id this backend lacks.
  void check(const device_mesh& m) const {
    for (int id : m.device_ids())
      if (id >= count_)
        throw error(errc::invalid_sharding, "mesh " + to_string(m) + " uses device " + std::to_string(id) + ", but there are " +
                                                std::to_string(count_) + " host devices");
  }
  /// Places `whole` onto the devices by `sharding` (every device gets its own copy of its box).
  sharded_array put(const array_view& whole, const named_sharding& sharding) const {
    check(sharding.mesh());
    return sharded_array::scatter(whole, sharding);
  }

 private:
  int count_;
};

}  // namespace cairn
