// SPDX-License-Identifier: Apache-2.0
/// \file
/// The CUDA backend, and the only header that includes the CUDA runtime. It needs the `cairn::cuda`
/// CMake target (which defines CAIRN_WITH_CUDA and links CUDA::cudart); machines without a GPU still
/// compile and link it, and `cuda::device_count()` then reports 0 instead of failing.
///  * `device_buffer`: device memory on one GPU; `stream`: a stream with an event for completion.
///  * `pinned_pool`: page-locked host buffers reused across saves (pinning costs milliseconds per call,
///    so a save never pins afresh); leases go back to the pool when dropped.
///  * `copy_box_to_host` / `copy_box_from_host`: any box of a C-ordered array on a device to or from a
///    host view, as strided 2-D copies through a pinned buffer.
///  * `sharded_tensor`: one device buffer per local GPU plus its box, saved and restored through
///    `shard_adapter` — the adapter pattern an engine's own tensor type follows.
#pragma once

#ifndef CAIRN_WITH_CUDA
#error "cairn/backend/cuda.hpp needs the cairn::cuda CMake target (configure with -DCAIRN_ENABLE_CUDA=ON and link cairn::cuda)"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/box.hpp>
#include <cairn/core/error.hpp>
#include <cairn/sharding/shard_adapter.hpp>
#include <cairn/sharding/named_sharding.hpp>

namespace cairn::cuda {

/// Throws a cairn::error naming `what` and the CUDA error if `status` is not cudaSuccess.
/// \throws cairn::error (errc::unsupported) for missing drivers or devices, (errc::io) otherwise.
inline void check(cudaError_t status, std::string_view what) {
  if (status == cudaSuccess) return;
  const bool no_device = status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver;
  throw error(no_device ? errc::unsupported : errc::io,
              std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

/// Returns the number of CUDA devices, or 0 when there is no driver or no device.
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error so later calls are not poisoned
    return 0;
  }
  return n;
}

/// Returns "name, compute capability X.Y, N GiB" for device `ordinal`.
/// \throws cairn::error if the device cannot be queried.
inline std::string describe_device(int ordinal) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, ordinal), "cudaGetDeviceProperties(" + std::to_string(ordinal) + ")");
  return std::string(prop.name) + ", compute capability " + std::to_string(prop.major) + "." +
         std::to_string(prop.minor) + ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB";
}

/// Makes `ordinal` the calling thread's current device.
inline void set_device(int ordinal) { check(cudaSetDevice(ordinal), "cudaSetDevice(" + std::to_string(ordinal) + ")"); }

/// Device memory on one GPU.
/// \par Thread safety
/// Distinct objects may be used concurrently.
class device_buffer {
 public:
  device_buffer() = default;
  /// \throws cairn::error if the allocation fails.
  device_buffer(int ordinal, std::size_t bytes) : ordinal_(ordinal), bytes_(bytes) {
    set_device(ordinal);
    if (bytes) check(cudaMalloc(&ptr_, bytes), "cudaMalloc(" + std::to_string(bytes) + " B) on device " + std::to_string(ordinal));
  }
  device_buffer(device_buffer&& o) noexcept
      : ordinal_(o.ordinal_), bytes_(std::exchange(o.bytes_, 0)), ptr_(std::exchange(o.ptr_, nullptr)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      release();
      ordinal_ = o.ordinal_;
      bytes_ = std::exchange(o.bytes_, 0);
      ptr_ = std::exchange(o.ptr_, nullptr);
    }
    return *this;
  }
  ~device_buffer() { release(); }
  void* data() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return bytes_; }
  int device() const noexcept { return ordinal_; }

 private:
  void release() noexcept {
    if (ptr_) {
      (void)cudaSetDevice(ordinal_);
      (void)cudaFree(ptr_);
      ptr_ = nullptr;
    }
  }
  int ordinal_ = 0;
  std::size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

/// A non-blocking stream on one device with an event marking the end of queued work.
class stream {
 public:
  /// \throws cairn::error if the stream or event cannot be created.
  explicit stream(int ordinal) : ordinal_(ordinal) {
    set_device(ordinal);
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
  }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  ~stream() {
    (void)cudaSetDevice(ordinal_);
    (void)cudaEventDestroy(done_);
    (void)cudaStreamDestroy(stream_);
  }
  cudaStream_t get() const noexcept { return stream_; }
  int device() const noexcept { return ordinal_; }
  /// Records the event after the work queued so far.
  void record() { check(cudaEventRecord(done_, stream_), "cudaEventRecord"); }
  /// Waits for the recorded event.
  void wait() { check(cudaEventSynchronize(done_), "cudaEventSynchronize"); }
  /// Waits for all queued work.
  void synchronize() { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

 private:
  int ordinal_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t done_ = nullptr;
};

/// Reusable page-locked host buffers. `acquire(n)` hands out a pooled buffer of at least `n` bytes
/// (allocating one only when none is free), and the lease returns it when dropped.
/// \par Thread safety
/// `acquire` and lease destruction may run concurrently.
class pinned_pool {
 public:
  /// A pinned buffer on loan.
  class lease {
   public:
    lease(lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), ptr_(o.ptr_), bytes_(o.bytes_) {}
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() {
      if (pool_) pool_->give_back(ptr_, bytes_);
    }
    std::byte* data() const noexcept { return ptr_; }
    std::size_t size() const noexcept { return bytes_; }

   private:
    friend class pinned_pool;
    lease(pinned_pool* p, std::byte* ptr, std::size_t n) : pool_(p), ptr_(ptr), bytes_(n) {}
    pinned_pool* pool_;
    std::byte* ptr_;
    std::size_t bytes_;
  };

  /// `chunk_bytes`: the size of each pooled buffer; larger requests get a buffer of their own size.
  explicit pinned_pool(std::size_t chunk_bytes = std::size_t{64} << 20) : chunk_(chunk_bytes) {}
  pinned_pool(const pinned_pool&) = delete;
  pinned_pool& operator=(const pinned_pool&) = delete;
  ~pinned_pool() {
    for (auto& [p, n] : free_) (void)cudaFreeHost(p);
  }

  /// \throws cairn::error if pinning fails.
  lease acquire(std::size_t bytes) {
    const std::size_t want = std::max(bytes, chunk_);
    {
      std::lock_guard lock(mutex_);
      for (std::size_t i = 0; i < free_.size(); ++i)
        if (free_[i].second >= bytes) {
          auto [p, n] = free_[i];
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          return lease(this, p, n);
        }
    }
    void* p = nullptr;
    check(cudaHostAlloc(&p, want, cudaHostAllocPortable), "cudaHostAlloc(" + std::to_string(want) + " B)");
    {
      std::lock_guard lock(mutex_);
      ++allocations_;
    }
    return lease(this, static_cast<std::byte*>(p), want);
  }
  /// How many pinned allocations the pool has made (stays flat once warm).
  std::size_t allocations() const {
    std::lock_guard lock(mutex_);
    return allocations_;
  }

 private:
  void give_back(std::byte* p, std::size_t n) {
    std::lock_guard lock(mutex_);
    free_.emplace_back(p, n);
  }
  std::size_t chunk_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::byte*, std::size_t>> free_;
  std::size_t allocations_ = 0;
};

namespace detail {
// Calls f(device_offset, host_offset_rows...) as 2-D copies: rows of the box's last dimension, pitched
// by the array's row length, one 2-D copy per index of the leading dimensions but the last two.
template <class F>
void for_each_plane(const shape& whole, const box& region, std::size_t itemsize, F&& f) {
  const std::size_t r = whole.rank();
  const std::size_t row_bytes = (r ? static_cast<std::size_t>(region.extent(r - 1)) : 1) * itemsize;
  const std::size_t pitch = (r ? static_cast<std::size_t>(whole[r - 1]) : 1) * itemsize;
  const std::size_t rows = r >= 2 ? static_cast<std::size_t>(region.extent(r - 2)) : 1;
  const std::vector<index_t> strides = c_order_strides(whole, static_cast<index_t>(itemsize));
  std::vector<index_t> lead(region.origin().begin(), region.origin().end());
  const std::size_t outer_rank = r >= 2 ? r - 2 : 0;
  std::vector<index_t> outer_extent(region.extent().begin(), region.extent().begin() + static_cast<std::ptrdiff_t>(outer_rank));
  std::size_t plane = 0;
  for_each_point(box(std::vector<index_t>(outer_rank, 0), outer_extent), [&](std::span<const index_t> k) {
    std::size_t off = 0;
    for (std::size_t d = 0; d < r; ++d)
      off += static_cast<std::size_t>((d < outer_rank ? region.origin(d) + k[d] : region.origin(d)) * strides[d]);
    f(off, plane * rows * row_bytes, row_bytes, pitch, rows);
    ++plane;
  });
}
}  // namespace detail

/// Copies `region` of the C-ordered array `whole` at `device_base` (on `s`'s device) into `host` through
/// a pinned buffer of `pool`, then waits.
/// \throws cairn::error (errc::shape_mismatch / type_mismatch) if `host` does not match the region.
inline void copy_box_to_host(const void* device_base, dtype type, const shape& whole, const box& region,
                             const mutable_array_view& host, pinned_pool& pool, stream& s) {
  if (host.shape() != region.shape() || host.type() != type)
    throw error(errc::shape_mismatch, "copy_box_to_host: region " + to_string(region) + " into a view of " + to_string(host.shape()));
  const std::size_t bytes = static_cast<std::size_t>(region.num_elements()) * size_of(type);
  if (bytes == 0) return;
  auto staging = pool.acquire(bytes);
  detail::for_each_plane(whole, region, size_of(type), [&](std::size_t off, std::size_t host_off, std::size_t row, std::size_t pitch,
                                                           std::size_t rows) {
    check(cudaMemcpy2DAsync(staging.data() + host_off, row, static_cast<const std::byte*>(device_base) + off, pitch, row, rows,
                            cudaMemcpyDeviceToHost, s.get()),
          "cudaMemcpy2DAsync D2H");
  });
  s.synchronize();
  copy(array_view(staging.data(), type, region.shape()), host);
}

/// Copies `host` into `region` of the C-ordered array `whole` at `device_base` through a pinned buffer, then waits.
inline void copy_box_from_host(void* device_base, dtype type, const shape& whole, const box& region, const array_view& host,
                               pinned_pool& pool, stream& s) {
  if (host.shape() != region.shape() || host.type() != type)
    throw error(errc::shape_mismatch, "copy_box_from_host: a view of " + to_string(host.shape()) + " into region " + to_string(region));
  const std::size_t bytes = static_cast<std::size_t>(region.num_elements()) * size_of(type);
  if (bytes == 0) return;
  auto staging = pool.acquire(bytes);
  copy(host, mutable_array_view(staging.data(), type, region.shape()));
  detail::for_each_plane(whole, region, size_of(type), [&](std::size_t off, std::size_t host_off, std::size_t row, std::size_t pitch,
                                                           std::size_t rows) {
    check(cudaMemcpy2DAsync(static_cast<std::byte*>(device_base) + off, pitch, staging.data() + host_off, row, row, rows,
                            cudaMemcpyHostToDevice, s.get()),
          "cudaMemcpy2DAsync H2D");
  });
  s.synchronize();
}

/// A global array sharded over local GPUs: one device buffer per local device holding its box.
/// Mesh device ids are CUDA ordinals. Saved and restored in place through `shard_adapter`.
class sharded_tensor {
 public:
  /// Allocates the buffers of the devices in `local` (empty: every device of the mesh).
  sharded_tensor(dtype type, shape global, named_sharding sharding, std::shared_ptr<pinned_pool> pool, std::vector<int> local = {})
      : type_(type), global_(std::move(global)), sharding_(std::move(sharding)), pool_(std::move(pool)) {
    for (auto& s : sharding_.shards(global_))
      if (local.empty() || std::find(local.begin(), local.end(), s.device) != local.end()) {
        const auto bytes = static_cast<std::size_t>(s.box.num_elements()) * size_of(type_);
        shards_.push_back({s, device_buffer(s.device, bytes), std::make_unique<stream>(s.device)});
      }
  }
  dtype type() const noexcept { return type_; }
  const shape& global_shape() const noexcept { return global_; }
  const named_sharding& sharding() const noexcept { return sharding_; }
  std::size_t local_count() const noexcept { return shards_.size(); }
  const shard& local_shard(std::size_t i) const { return shards_[i].where; }
  const device_buffer& buffer(std::size_t i) const { return shards_[i].buffer; }
  /// Copies shard `i` (all of it) to or from host memory through the pool.
  void to_host(std::size_t i, const mutable_array_view& host) const {
    auto& s = shards_[i];
    const shape local = s.where.box.shape();
    copy_box_to_host(s.buffer.data(), type_, local, box(local), host, *pool_, *s.queue);
  }
  void from_host(std::size_t i, const array_view& host) {
    auto& s = shards_[i];
    const shape local = s.where.box.shape();
    copy_box_from_host(s.buffer.data(), type_, local, box(local), host, *pool_, *s.queue);
  }

 private:
  struct local_buffer {
    shard where;
    device_buffer buffer;
    std::unique_ptr<stream> queue;  // on the shard's device
  };
  dtype type_;
  shape global_;
  named_sharding sharding_;
  std::shared_ptr<pinned_pool> pool_;
  std::vector<local_buffer> shards_;
};

}  // namespace cairn::cuda

namespace cairn {
/// `cuda::sharded_tensor` through the adapter: device buffers staged through the pinned pool.
template <>
struct shard_adapter<cuda::sharded_tensor> {
  static dtype type(const cuda::sharded_tensor& t) { return t.type(); }
  static shape global_shape(const cuda::sharded_tensor& t) { return t.global_shape(); }
  static named_sharding sharding(const cuda::sharded_tensor& t) { return t.sharding(); }
  static std::size_t local_count(const cuda::sharded_tensor& t) { return t.local_count(); }
  static shard local_shard(const cuda::sharded_tensor& t, std::size_t i) { return t.local_shard(i); }
  static void copy_to_host(const cuda::sharded_tensor& t, std::size_t i, const mutable_array_view& host) { t.to_host(i, host); }
  static void copy_from_host(cuda::sharded_tensor& t, std::size_t i, const array_view& host) { t.from_host(i, host); }
};
}  // namespace cairn
