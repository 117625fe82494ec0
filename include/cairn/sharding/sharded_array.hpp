// SPDX-License-Identifier: Apache-2.0
/// \file
/// `sharded_array`: a global array laid out by a `named_sharding`, with one host buffer per device that
/// holds data here (the host backend's simulated devices, or host staging of accelerator shards). Each
/// local shard owns exactly its box: no whole-array buffer exists unless you `gather` one.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/box.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/sharding/named_sharding.hpp>
#include <cairn/sharding/shard.hpp>

namespace cairn {

/// A sharded array whose local shards live in host memory.
/// \par Thread safety
/// Distinct shards may be written concurrently; the object itself needs external synchronisation.
class sharded_array {
 public:
  /// One device's data.
  struct local_shard {
    cairn::shard shard;
    host_array data;  ///< shape `shard.box.shape()`
    friend bool operator==(const local_shard&, const local_shard&) = default;
  };

  /// An empty target: a restore fills it with the checkpoint's dtype, shape and sharding.
  sharded_array() = default;

  /// A restore target that fixes only the placement: the dtype and shape come from the checkpoint, and
  /// buffers are made for `devices` (empty: every device of the mesh).
  static sharded_array placed(named_sharding sharding, std::vector<int> devices = {}) {
    sharded_array a;
    a.sharding_ = std::move(sharding);
    a.placed_devices_ = std::move(devices);
    a.placement_only_ = true;
    return a;
  }
  /// True for a `placed` target.
  bool placement_only() const noexcept { return placement_only_; }
  /// The devices a `placed` target asked for (empty: all).
  const std::vector<int>& placed_devices() const noexcept { return placed_devices_; }

  /// Zero-filled buffers for `devices` (empty: every device of the mesh).
  /// \throws cairn::error (errc::invalid_sharding) if the sharding does not fit `global` or a device
  ///         is not in the mesh.
  static sharded_array zeros(dtype type, shape global, named_sharding sharding, const std::vector<int>& devices = {}) {
    sharded_array a(type, std::move(global), std::move(sharding));
    for (auto& s : a.sharding_.shards(a.global_))
      if (devices.empty() || std::find(devices.begin(), devices.end(), s.device) != devices.end())
        a.shards_.push_back({s, host_array(type, s.box.shape())});
    a.check_devices(devices);
    return a;
  }
  /// Buffers for `devices` (empty: all) filled from the whole array `whole`: what `jax.device_put` does.
  /// \throws cairn::error (errc::invalid_sharding) as `zeros`; (errc::invalid_argument) unless `whole`
  ///         is a host view.
  static sharded_array scatter(const array_view& whole, named_sharding sharding, const std::vector<int>& devices = {}) {
    sharded_array a(whole.type(), whole.shape(), std::move(sharding));
    for (auto& s : a.sharding_.shards(a.global_))
      if (devices.empty() || std::find(devices.begin(), devices.end(), s.device) != devices.end()) {
        host_array d = host_array::uninitialized(whole.type(), s.box.shape());
        copy(whole.sub(s.box), d.mutable_view());
        a.shards_.push_back({s, std::move(d)});
      }
    a.check_devices(devices);
    return a;
  }
  /// Wraps buffers already laid out (e.g. read by a restore).
  /// \throws cairn::error (errc::shape_mismatch / type_mismatch) if a buffer does not match its box or dtype.
  sharded_array(dtype type, shape global, named_sharding sharding, std::vector<local_shard> shards)
      : type_(type), global_(std::move(global)), sharding_(std::move(sharding)), shards_(std::move(shards)), configured_(true) {
    for (const auto& s : shards_) {
      if (s.data.type() != type_)
        throw error(errc::type_mismatch, "shard " + to_string(s.shard) + " holds " + std::string(name_of(s.data.type())) +
                                             " for an array of " + std::string(name_of(type_)));
      if (s.data.shape() != s.shard.box.shape())
        throw error(errc::shape_mismatch, "shard " + to_string(s.shard) + " holds a buffer of shape " + to_string(s.data.shape()));
    }
  }

  /// True for a default-constructed target: a restore takes the dtype, shape and saved sharding.
  bool empty() const noexcept { return !configured_ && !placement_only_; }
  dtype type() const noexcept { return type_; }
  const cairn::shape& shape() const noexcept { return global_; }
  const named_sharding& sharding() const noexcept { return sharding_; }
  const std::vector<local_shard>& shards() const noexcept { return shards_; }
  std::vector<local_shard>& shards() noexcept { return shards_; }
  /// The local shard of device `id`, or nullptr.
  const local_shard* on_device(int id) const noexcept {
    for (const auto& s : shards_)
      if (s.shard.device == id) return &s;
    return nullptr;
  }

  friend bool operator==(const sharded_array&, const sharded_array&) = default;

  /// Assembles the whole array from the replica-0 shards held here.
  /// \throws cairn::error (errc::not_found) if some element is on no local shard.
  host_array gather() const {
    host_array out(type_, global_);
    index_t covered = 0;
    for (const auto& s : shards_)
      if (s.shard.replica == 0 && !s.shard.box.empty()) {
        copy(s.data.view(), out.mutable_view().sub(s.shard.box));
        covered += s.shard.box.num_elements();
      }
    if (covered != global_.num_elements())
      throw error(errc::not_found, "gather " + to_string(sharding_, type_, global_) + ": the local shards hold " +
                                       std::to_string(covered) + " of " + std::to_string(global_.num_elements()) + " elements");
    return out;
  }

 private:
  sharded_array(dtype type, cairn::shape global, named_sharding sharding)
      : type_(type), global_(std::move(global)), sharding_(std::move(sharding)), configured_(true) {}
  void check_devices(const std::vector<int>& devices) const {
    for (int d : devices)
      if (!on_device(d))
        throw error(errc::invalid_sharding, "device " + std::to_string(d) + " is not in mesh " + to_string(sharding_.mesh()));
  }

  dtype type_ = dtype::float32;
  cairn::shape global_;
  named_sharding sharding_;
  std::vector<local_shard> shards_;
  bool configured_ = false;
  bool placement_only_ = false;
  std::vector<int> placed_devices_;
};

}  // namespace cairn
