// SPDX-License-Identifier: Apache-2.0
/// \file
/// `named_sharding`: a mesh and a partition spec, as `jax.sharding.NamedSharding`. `shards(global)`
/// gives every device's box and replica id. A dimension split `n` ways gets shards of `ceil(dim / n)`
/// elements; trailing shards are shorter or empty (JAX's rule for divisible dimensions, extended to
/// uneven ones). Printed with its array as `f32[1024,512] {data:2, model:2} P(data, -)`.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/core/box.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/sharding/device_mesh.hpp>
#include <cairn/sharding/partition_spec.hpp>
#include <cairn/sharding/shard.hpp>

namespace cairn {

/// A placement of arrays on a mesh.
/// \par Thread safety
/// Immutable after construction.
class named_sharding {
 public:
  /// Replicated on a one-device mesh.
  named_sharding() = default;
  /// \throws cairn::error (errc::invalid_sharding) if `spec` uses an axis twice or one `mesh` lacks.
  named_sharding(device_mesh mesh, partition_spec spec) : mesh_(std::move(mesh)), spec_(std::move(spec)) {
    spec_.validate(mesh_, spec_.size());
  }

  const device_mesh& mesh() const noexcept { return mesh_; }
  const partition_spec& spec() const noexcept { return spec_; }

  /// How many ways dimension `d` is split (the product of its axes' sizes).
  index_t split(std::size_t d) const {
    index_t n = 1;
    for (const auto& a : spec_[d]) n *= mesh_.axes()[static_cast<std::size_t>(mesh_.axis_index(a))].size;
    return n;
  }
  /// The shard extent along each dimension: `ceil(dim / split)`.
  /// \throws cairn::error (errc::invalid_sharding) if the spec is longer than `global`'s rank.
  std::vector<index_t> shard_shape(const shape& global) const {
    spec_.validate(mesh_, global.rank());
    std::vector<index_t> s(global.rank());
    for (std::size_t d = 0; d < s.size(); ++d) {
      const index_t n = split(d);
      s[d] = (global[d] + n - 1) / n;
    }
    return s;
  }

  /// Returns every shard of `global`, one per device, in mesh position order.
  /// \post Boxes with `replica == 0` are pairwise disjoint and their union is `box(global)`.
  /// \post Each device of `mesh()` appears exactly once.
  /// \throws cairn::error (errc::invalid_sharding) if the spec is longer than `global`'s rank.
  std::vector<shard> shards(const shape& global) const {
    const std::vector<index_t> extent = shard_shape(global);
    std::vector<int> used(mesh_.rank(), 0);
    for (std::size_t d = 0; d < global.rank(); ++d)
      for (const auto& a : spec_[d]) used[static_cast<std::size_t>(mesh_.axis_index(a))] = 1;
    std::vector<shard> out;
    out.reserve(static_cast<std::size_t>(mesh_.size()));
    for (index_t p = 0; p < mesh_.size(); ++p) {
      const auto c = mesh_.coordinates(p);
      std::vector<index_t> lo(global.rank()), ext(global.rank());
      for (std::size_t d = 0; d < global.rank(); ++d) {
        index_t idx = 0;  // the position along the combined axes, first axis major
        for (const auto& a : spec_[d]) {
          const auto i = static_cast<std::size_t>(mesh_.axis_index(a));
          idx = idx * mesh_.axes()[i].size + c[i];
        }
        const index_t start = std::min(idx * extent[d], global[d]);
        lo[d] = start;
        ext[d] = std::min(start + extent[d], global[d]) - start;
      }
      index_t replica = 0;
      for (std::size_t i = 0; i < mesh_.rank(); ++i)
        if (!used[i]) replica = replica * mesh_.axes()[i].size + c[i];
      out.push_back({mesh_.device_ids()[static_cast<std::size_t>(p)], box(std::move(lo), std::move(ext)), replica});
    }
    return out;
  }

  /// The shard of device `id`.
  /// \throws cairn::error (errc::invalid_sharding) if the mesh has no device `id`.
  shard shard_of(int id, const shape& global) const {
    for (auto& s : shards(global))
      if (s.device == id) return s;
    throw error(errc::invalid_sharding, "device " + std::to_string(id) + " is not in mesh " + to_string(mesh_));
  }

  friend bool operator==(const named_sharding&, const named_sharding&) = default;

 private:
  device_mesh mesh_;
  partition_spec spec_;
};

/// `{data:2, model:2} P(data, -)`.
inline std::string to_string(const named_sharding& s) { return to_string(s.mesh()) + " " + to_string(s.spec()); }
/// `f32[1024,512] {data:2, model:2} P(data, -)`.
inline std::string to_string(const named_sharding& s, dtype t, const shape& global) {
  return std::string(info(t).short_name) + to_string(global) + " " + to_string(s);
}
inline std::ostream& operator<<(std::ostream& os, const named_sharding& s) { return os << to_string(s); }

/// Parses `{data:2, model:2} P(data, -)`.
/// \throws cairn::error (errc::invalid_sharding) naming the text.
inline named_sharding parse_named_sharding(std::string_view text) {
  const auto close = text.find('}');
  if (close == std::string_view::npos)
    throw error(errc::invalid_sharding, "sharding \"" + std::string(text) + "\": expected \"{mesh} P(spec)\"");
  return named_sharding(parse_device_mesh(text.substr(0, close + 1)), parse_partition_spec(text.substr(close + 1)));
}

}  // namespace cairn
