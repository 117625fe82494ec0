// SPDX-License-Identifier: Apache-2.0
/// \file
/// `chunk_grid`: a regular grid of chunks over an array (zarr's chunk grid; a sharding's shard grid).
/// Chunk `k` covers `[k·c, min((k+1)·c, dim))` in each dimension; edge chunks are clipped to the array.
#pragma once

#include <algorithm>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <cairn/core/box.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/sharding/named_sharding.hpp>

namespace cairn {

/// A regular chunk grid over a shape.
class chunk_grid {
 public:
  chunk_grid() = default;
  /// \throws cairn::error (errc::invalid_argument) if the ranks differ or a chunk extent is below 1.
  chunk_grid(cairn::shape global, std::vector<index_t> chunk) : global_(std::move(global)), chunk_(std::move(chunk)) {
    if (chunk_.size() != global_.rank())
      throw error(errc::invalid_argument, "chunk shape " + to_string(chunk_) + " for an array of shape " + to_string(global_));
    for (auto c : chunk_)
      if (c < 1) throw error(errc::invalid_argument, "chunk shape " + to_string(chunk_) + " has an extent below 1");
  }
  const cairn::shape& shape() const noexcept { return global_; }
  const std::vector<index_t>& chunk_shape() const noexcept { return chunk_; }
  /// Chunks along dimension `d`.
  index_t count(std::size_t d) const { return (global_[d] + chunk_[d] - 1) / chunk_[d]; }
  index_t num_chunks() const {
    index_t n = 1;
    for (std::size_t d = 0; d < chunk_.size(); ++d) n *= count(d);
    return n;
  }
  /// The elements chunk `k` holds (clipped to the array).
  cairn::box box(std::span<const index_t> k) const {
    std::vector<index_t> lo(k.size()), ext(k.size());
    for (std::size_t d = 0; d < k.size(); ++d) {
      lo[d] = k[d] * chunk_[d];
      ext[d] = std::min(lo[d] + chunk_[d], global_[d]) - lo[d];
    }
    return cairn::box(std::move(lo), std::move(ext));
  }
  /// Row-major linear index of chunk `k`.
  index_t linear(std::span<const index_t> k) const {
    index_t i = 0;
    for (std::size_t d = 0; d < k.size(); ++d) i = i * count(d) + k[d];
    return i;
  }
  /// Calls `f(k)` for every chunk intersecting `region`, in C order.
  void for_each_intersecting(const cairn::box& region, const std::function<void(std::span<const index_t>)>& f) const {
    if (region.empty() || global_.rank() == 0) {
      if (global_.rank() == 0) f({});
      return;
    }
    const std::size_t r = global_.rank();
    std::vector<index_t> first(r), last(r), k(r);
    for (std::size_t d = 0; d < r; ++d) {
      first[d] = region.origin(d) / chunk_[d];
      last[d] = (region.stop(d) - 1) / chunk_[d];
    }
    k = first;
    while (true) {
      f(k);
      std::size_t d = r;
      while (d-- > 0) {
        if (++k[d] <= last[d]) break;
        k[d] = first[d];
      }
      if (d == static_cast<std::size_t>(-1)) return;
    }
  }
  friend bool operator==(const chunk_grid&, const chunk_grid&) = default;

 private:
  cairn::shape global_;
  std::vector<index_t> chunk_;
};

/// The grid of a sharding's shards over `global`: chunk extent `ceil(dim / split)` (at least 1).
inline chunk_grid shard_grid(const named_sharding& s, const shape& global) {
  auto c = s.shard_shape(global);
  for (auto& e : c) e = std::max<index_t>(e, 1);
  return chunk_grid(global, std::move(c));
}

}  // namespace cairn
