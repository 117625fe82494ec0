// SPDX-License-Identifier: Apache-2.0
/// \file
/// `reshard_plan`: which saved chunks each target device needs, and what that costs, before reading
/// anything — the restore's schedule and its dry run. Operations are grouped by source chunk (C order),
/// so a reader decodes each chunk once and hands its pieces to every device that needs them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <cairn/core/box.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/sharding/chunk_grid.hpp>
#include <cairn/sharding/named_sharding.hpp>
#include <cairn/sharding/shard.hpp>

namespace cairn {

/// One copy: the part `region` (global coordinates) of source chunk `chunk` into target shard `target`.
struct copy_op {
  std::vector<index_t> chunk;  ///< grid index of the source chunk
  box source;                  ///< the source chunk's box (clipped to the array)
  shard target;                ///< the device and box receiving the data
  box region;                  ///< `intersect(source, target.box)`, never empty
  std::uint64_t bytes = 0;     ///< bytes of `region`
};

/// What a plan costs.
struct reshard_cost {
  std::uint64_t bytes_read = 0;      ///< decoded bytes of the chunks read, each once
  std::uint64_t bytes_needed = 0;    ///< bytes of the distinct target boxes (what a perfect reader reads)
  std::uint64_t bytes_copied = 0;    ///< bytes delivered to devices, replicas included
  std::uint64_t chunks_read = 0;     ///< distinct source chunks read
  std::uint64_t shared_chunks = 0;   ///< chunks feeding several devices (read once here, not per device)
  std::uint64_t peak_buffer = 0;     ///< largest chunk, the one decode buffer live at a time
};

/// A reshard plan.
struct reshard_plan {
  dtype type = dtype::float32;
  shape global;
  chunk_grid source;
  named_sharding target;
  std::vector<shard> targets;  ///< the target shards planned for (all devices, or the chosen ones)
  std::vector<copy_op> ops;
  reshard_cost cost;
};

/// Plans restoring an array of `global` shape stored on the chunk grid `source` onto `target`, for the
/// devices in `devices` (empty: every device of the target mesh).
/// \post Every element of every planned target shard is covered by exactly one op.
/// \post Each (chunk, device) pair appears at most once.
/// \throws cairn::error (errc::invalid_sharding) if the target spec does not fit `global`, or
///         (errc::invalid_argument) if `source` is not a grid over `global`.
inline reshard_plan plan_reshard(const chunk_grid& source, const named_sharding& target, const shape& global, dtype type,
                                 const std::vector<int>& devices = {}) {
  if (source.shape() != global)
    throw error(errc::invalid_argument, "reshard: the source grid covers " + to_string(source.shape()) + ", the array is " +
                                            to_string(global));
  reshard_plan p{type, global, source, target, {}, {}, {}};
  for (auto& s : target.shards(global))
    if (devices.empty() || std::find(devices.begin(), devices.end(), s.device) != devices.end()) p.targets.push_back(s);
  const auto itemsize = static_cast<std::uint64_t>(size_of(type));
  // Chunks in C order, each with the targets it feeds.
  struct use {
    index_t linear;
    std::vector<index_t> chunk;
    std::size_t target;
  };
  std::vector<use> uses;
  std::vector<box> distinct;
  for (std::size_t t = 0; t < p.targets.size(); ++t) {
    const box& b = p.targets[t].box;
    if (b.empty()) continue;
    if (std::find(distinct.begin(), distinct.end(), b) == distinct.end()) distinct.push_back(b);
    source.for_each_intersecting(b, [&](std::span<const index_t> k) {
      uses.push_back({source.linear(k), std::vector<index_t>(k.begin(), k.end()), t});
    });
  }
  std::stable_sort(uses.begin(), uses.end(), [](const use& a, const use& b) { return a.linear < b.linear; });
  for (const auto& b : distinct) p.cost.bytes_needed += static_cast<std::uint64_t>(b.num_elements()) * itemsize;
  for (std::size_t i = 0; i < uses.size();) {
    std::size_t j = i;
    const box src = source.box(uses[i].chunk);
    const auto chunk_bytes = static_cast<std::uint64_t>(src.num_elements()) * itemsize;
    std::vector<int> devs;
    for (; j < uses.size() && uses[j].linear == uses[i].linear; ++j) {
      const shard& t = p.targets[uses[j].target];
      box region = intersect(src, t.box);
      const auto bytes = static_cast<std::uint64_t>(region.num_elements()) * itemsize;
      p.ops.push_back({uses[j].chunk, src, t, std::move(region), bytes});
      p.cost.bytes_copied += bytes;
      if (std::find(devs.begin(), devs.end(), t.device) == devs.end()) devs.push_back(t.device);
    }
    ++p.cost.chunks_read;
    p.cost.bytes_read += chunk_bytes;
    p.cost.peak_buffer = std::max(p.cost.peak_buffer, chunk_bytes);
    if (devs.size() > 1) ++p.cost.shared_chunks;
    i = j;
  }
  return p;
}

/// `chunk [0:4, 0:8] -> [0:4, 0:4] @1 r0: [0:4, 0:4] (64 B)`.
inline std::string to_string(const copy_op& op) {
  return "chunk " + to_string(op.source) + " -> " + to_string(op.target) + ": " + to_string(op.region) + " (" +
         std::to_string(op.bytes) + " B)";
}

/// The plan as text: the target, one line per op, then the cost.
inline std::string to_string(const reshard_plan& p) {
  auto count = [](std::uint64_t n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); };
  std::string s = "target " + to_string(p.target, p.type, p.global) + "; source chunks " + to_string(p.source.chunk_shape()) +
                  " (" + count(static_cast<std::uint64_t>(p.source.num_chunks()), "chunk") + ")\n";
  for (const auto& op : p.ops) s += "  " + to_string(op) + "\n";
  const auto& c = p.cost;
  s += "cost: read " + std::to_string(c.bytes_read) + " B in " + count(c.chunks_read, "chunk") + " (" +
       std::to_string(c.shared_chunks) + " shared by several devices), needed " + std::to_string(c.bytes_needed) +
       " B, copied to devices " + std::to_string(c.bytes_copied) + " B, peak buffer " + std::to_string(c.peak_buffer) + " B\n";
  return s;
}
inline std::ostream& operator<<(std::ostream& os, const reshard_plan& p) { return os << to_string(p); }

}  // namespace cairn
