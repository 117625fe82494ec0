// SPDX-License-Identifier: Apache-2.0
/// \file
/// The CUDA backend, and the only header that includes the CUDA runtime. It needs the `cairn::cuda`
/// CMake target (which defines CAIRN_WITH_CUDA and links CUDA::cudart); machines without a GPU still
/// compile and link it, and `cuda::device_count()` then reports 0 instead of failing.
///  * `device_buffer`: device memory on one GPU; `stream`: a stream with an event for completion.
///  * `pinned_pool`: page-locked host buffers of one piece size, reused across saves (pinning costs
///    milliseconds per call, so a save never pins afresh); leases go back to the pool when dropped.
///  * `copy_box_to_host` / `copy_box_from_host`: any box of a C-ordered array on a device to or from a
///    host view, in pieces of the pool's size moved by several threads at once: while one thread's
///    piece crosses the bus, others copy theirs between pinned and pageable memory, so the two copies
///    overlap instead of adding up, and the pinned memory in use stays at threads × piece.
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
#include <thread>
#include <utility>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/box.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/parallel.hpp>
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
/// (allocating one only when none is free), and the lease returns it when dropped. The box copies
/// below move data in pieces of `chunk_bytes()` on up to `copy_threads()` threads, so one copy holds
/// at most that many pieces; a save's staging (`sharded_tensor::stage`) holds each shard's size until
/// the save has written it, and finds the same buffers again on the next save.
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

  /// `chunk_bytes`: the size of a box copy's pieces and of the buffers it takes. `copy_threads`: the
  /// threads one box copy uses (0: up to 8, at most the hardware's).
  /// \pre chunk_bytes > 0
  explicit pinned_pool(std::size_t chunk_bytes = std::size_t{16} << 20, unsigned copy_threads = 0)
      : chunk_(std::max<std::size_t>(chunk_bytes, 1)),
        threads_(copy_threads ? copy_threads : std::clamp(std::thread::hardware_concurrency(), 1u, 8u)) {}
  pinned_pool(const pinned_pool&) = delete;
  pinned_pool& operator=(const pinned_pool&) = delete;
  ~pinned_pool() {
    for (auto& [p, n] : free_) (void)cudaFreeHost(p);
  }

  /// Lends the smallest free buffer of at least `bytes`, or pins a new one of `bytes` (rounded up to a
  /// page) when none is free: box copies ask for `chunk_bytes()`, a save's staging for a shard's size,
  /// and each finds its own size again on the next save.
  /// \throws cairn::error if pinning fails.
  lease acquire(std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      std::size_t best = free_.size();
      for (std::size_t i = 0; i < free_.size(); ++i)
        if (free_[i].second >= bytes && (best == free_.size() || free_[i].second < free_[best].second)) best = i;
      if (best != free_.size()) {
        auto [p, n] = free_[best];
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        return lease(this, p, n);
      }
    }
    const std::size_t want = std::max<std::size_t>((bytes + 4095) / 4096 * 4096, 4096);
    void* p = nullptr;
    check(cudaHostAlloc(&p, want, cudaHostAllocPortable), "cudaHostAlloc(" + std::to_string(want) + " B)");
    {
      std::lock_guard lock(mutex_);
      ++allocations_;
    }
    return lease(this, static_cast<std::byte*>(p), want);
  }
  /// The size of a pooled buffer, and of the pieces a box copy moves.
  std::size_t chunk_bytes() const noexcept { return chunk_; }
  /// The threads a box copy uses.
  unsigned copy_threads() const noexcept { return threads_; }
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
  unsigned threads_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::byte*, std::size_t>> free_;
  std::size_t allocations_ = 0;
};

namespace detail {
// Where `region` of the C-ordered array `whole` lies on the device, as planes of `rows` rows of
// `row_bytes`, each row `pitch` bytes after the one before. Plane p starts at device_offsets[p], and
// on the host side, where the region is packed in C order, at p × plane_bytes().
struct plane_layout {
  std::size_t row_bytes = 0, pitch = 0, rows = 0;
  std::vector<std::size_t> device_offsets;
  std::size_t plane_bytes() const noexcept { return rows * row_bytes; }
};

inline plane_layout planes_of(const shape& whole, const box& region, std::size_t itemsize) {
  const std::size_t r = whole.rank();
  plane_layout l;
  l.row_bytes = (r ? static_cast<std::size_t>(region.extent(r - 1)) : 1) * itemsize;
  l.pitch = (r ? static_cast<std::size_t>(whole[r - 1]) : 1) * itemsize;
  l.rows = r >= 2 ? static_cast<std::size_t>(region.extent(r - 2)) : 1;
  const std::vector<index_t> strides = c_order_strides(whole, static_cast<index_t>(itemsize));
  const std::size_t outer_rank = r >= 2 ? r - 2 : 0;
  std::vector<index_t> outer_extent(region.extent().begin(), region.extent().begin() + static_cast<std::ptrdiff_t>(outer_rank));
  for_each_point(box(std::vector<index_t>(outer_rank, 0), outer_extent), [&](std::span<const index_t> k) {
    std::size_t off = 0;
    for (std::size_t d = 0; d < r; ++d)
      off += static_cast<std::size_t>((d < outer_rank ? region.origin(d) + k[d] : region.origin(d)) * strides[d]);
    l.device_offsets.push_back(off);
  });
  return l;
}

// Calls f(device_offset, host_offset, width, pitch, height) for the copies that move the packed host
// bytes [begin, end) of the layout: the whole rows of a plane as one 2-D copy (`height` rows of `width`
// bytes, `pitch` apart on the device, packed on the host), a part of a row at either end as one row.
template <class F>
void for_each_segment(const plane_layout& l, std::size_t begin, std::size_t end, F&& f) {
  const std::size_t pb = l.plane_bytes(), rb = l.row_bytes;
  if (pb == 0) return;
  for (std::size_t p = begin / pb; p < l.device_offsets.size() && p * pb < end; ++p) {
    const std::size_t base = p * pb;
    std::size_t lo = std::max(begin, base) - base;
    const std::size_t hi = std::min(end, base + pb) - base;
    const auto row_at = [&](std::size_t row) { return l.device_offsets[p] + row * l.pitch; };
    if (lo % rb) {  // the tail of a row
      const std::size_t stop = std::min(hi, (lo / rb + 1) * rb);
      f(row_at(lo / rb) + lo % rb, base + lo, stop - lo, l.pitch, std::size_t{1});
      lo = stop;
    }
    if (lo >= hi) continue;
    if (const std::size_t full = hi / rb - lo / rb) {
      f(row_at(lo / rb), base + lo, rb, l.pitch, full);
      lo += full * rb;
    }
    if (lo < hi) f(row_at(lo / rb), base + lo, hi - lo, l.pitch, std::size_t{1});  // the head of a row
  }
}

// Queues one segment on the calling thread's own stream. A single row, or rows that are contiguous on
// the device, go as one linear copy, which has no limit on the pitch.
inline void queue_segment(std::byte* host, std::byte* device, std::size_t width, std::size_t pitch, std::size_t height,
                          cudaMemcpyKind kind) {
  const bool d2h = kind == cudaMemcpyDeviceToHost;
  if (height == 1 || width == pitch) {
    check(cudaMemcpyAsync(d2h ? host : device, d2h ? device : host, width * height, kind, cudaStreamPerThread),
          d2h ? "cudaMemcpyAsync D2H" : "cudaMemcpyAsync H2D");
    return;
  }
  if (d2h) check(cudaMemcpy2DAsync(host, width, device, pitch, width, height, kind, cudaStreamPerThread), "cudaMemcpy2DAsync D2H");
  else check(cudaMemcpy2DAsync(device, pitch, host, width, width, height, kind, cudaStreamPerThread), "cudaMemcpy2DAsync H2D");
}

// Moves the packed bytes of `region` between `host` (C-contiguous) and the device in pieces of the
// pool's size, on up to the pool's threads. Each thread takes the next piece and a pinned buffer, and
// for D2H queues the piece's copies on its own stream, waits, and copies the buffer to `host` (H2D: the
// other way round), so the bus and the host copies of different pieces run at the same time. The
// caller's current device is left as it was.
inline void move_box(int ordinal, std::byte* device_base, std::size_t itemsize, const shape& whole, const box& region,
                     std::byte* host, std::size_t bytes, pinned_pool& pool, cudaMemcpyKind kind) {
  const plane_layout layout = planes_of(whole, region, itemsize);
  const std::size_t step = pool.chunk_bytes();
  const std::size_t pieces = (bytes + step - 1) / step;
  int caller_device = -1;
  if (cudaGetDevice(&caller_device) != cudaSuccess) caller_device = -1;
  const auto failed = parallel_for_each_index(pieces, static_cast<unsigned>(std::min<std::size_t>(pieces, pool.copy_threads())),
                                              [&](std::size_t k) {
    set_device(ordinal);  // a thread's own stream is on its current device
    const std::size_t begin = k * step, end = std::min(bytes, begin + step);
    auto staging = pool.acquire(step);
    if (kind == cudaMemcpyHostToDevice) std::memcpy(staging.data(), host + begin, end - begin);
    for_each_segment(layout, begin, end, [&](std::size_t dev, std::size_t at, std::size_t width, std::size_t pitch, std::size_t height) {
      queue_segment(staging.data() + (at - begin), device_base + dev, width, pitch, height, kind);
    });
    check(cudaStreamSynchronize(cudaStreamPerThread), "cudaStreamSynchronize");
    if (kind == cudaMemcpyDeviceToHost) std::memcpy(host + begin, staging.data(), end - begin);
  });
  if (caller_device >= 0) (void)cudaSetDevice(caller_device);
  for (const auto& e : failed)
    if (e) std::rethrow_exception(e);
}
}  // namespace detail

/// Copies `region` of the C-ordered array `whole` at `device_base` (on `s`'s device) into `host`, after
/// the work queued on `s`, through pinned buffers of `pool`; returns when the bytes are in `host`.
/// \throws cairn::error (errc::shape_mismatch) if `host` does not match the region, (errc::io) if a
///         CUDA call fails.
/// \par Thread safety
/// Distinct calls may run concurrently; each uses up to `pool.copy_threads()` threads of its own.
inline void copy_box_to_host(const void* device_base, dtype type, const shape& whole, const box& region,
                             const mutable_array_view& host, pinned_pool& pool, stream& s) {
  if (host.shape() != region.shape() || host.type() != type)
    throw error(errc::shape_mismatch, "copy_box_to_host: region " + to_string(region) + " into a view of " + to_string(host.shape()));
  const std::size_t bytes = static_cast<std::size_t>(region.num_elements()) * size_of(type);
  if (bytes == 0) return;
  if (!host.is_c_contiguous()) {  // pieces are byte ranges of a packed region: pack, then scatter
    host_array packed = host_array::uninitialized(type, region.shape());
    copy_box_to_host(device_base, type, whole, region, packed.mutable_view(), pool, s);
    copy(packed.view(), host);
    return;
  }
  s.synchronize();
  detail::move_box(s.device(), static_cast<std::byte*>(const_cast<void*>(device_base)), size_of(type), whole, region,
                   const_cast<std::byte*>(host.data()), bytes, pool, cudaMemcpyDeviceToHost);
}

/// Copies `host` into `region` of the C-ordered array `whole` at `device_base`, after the work queued on
/// `s`, through pinned buffers of `pool`; returns when the bytes are on the device.
/// \throws cairn::error (errc::shape_mismatch) if `host` does not match the region, (errc::io) if a
///         CUDA call fails.
/// \par Thread safety
/// As `copy_box_to_host`.
inline void copy_box_from_host(void* device_base, dtype type, const shape& whole, const box& region, const array_view& host,
                               pinned_pool& pool, stream& s) {
  if (host.shape() != region.shape() || host.type() != type)
    throw error(errc::shape_mismatch, "copy_box_from_host: a view of " + to_string(host.shape()) + " into region " + to_string(region));
  const std::size_t bytes = static_cast<std::size_t>(region.num_elements()) * size_of(type);
  if (bytes == 0) return;
  if (!host.is_c_contiguous()) {
    copy_box_from_host(device_base, type, whole, region, host_array::copy_of(host).view(), pool, s);
    return;
  }
  s.synchronize();
  detail::move_box(s.device(), static_cast<std::byte*>(device_base), size_of(type), whole, region,
                   const_cast<std::byte*>(host.data()), bytes, pool, cudaMemcpyHostToDevice);
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
  /// Shard `i` copied into pinned memory of the pool, as a host array that holds the buffer until it
  /// is dropped (a save's staging: one copy at the bus's speed, and the buffer is reused next time).
  /// \throws cairn::error if pinning or the copy fails.
  host_array stage(std::size_t i) const {
    auto& s = shards_[i];
    const std::size_t bytes = s.buffer.size();
    struct held {  // the lease goes back before the pool it came from can go
      std::shared_ptr<pinned_pool> pool;
      pinned_pool::lease lease;
    };
    auto h = std::make_shared<held>(held{pool_, pool_->acquire(bytes)});
    if (bytes) {
      check(cudaMemcpyAsync(h->lease.data(), s.buffer.data(), bytes, cudaMemcpyDeviceToHost, s.queue->get()), "cudaMemcpyAsync D2H");
      s.queue->synchronize();
    }
    std::byte* p = h->lease.data();
    return host_array::from_buffer(type_, s.where.box.shape(), byte_buffer::adopting(p, bytes, std::move(h)));
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
/// `cuda::sharded_tensor` through the adapter: a save stages each shard into the pinned pool's memory.
template <>
struct shard_adapter<cuda::sharded_tensor> {
  static dtype type(const cuda::sharded_tensor& t) { return t.type(); }
  static shape global_shape(const cuda::sharded_tensor& t) { return t.global_shape(); }
  static named_sharding sharding(const cuda::sharded_tensor& t) { return t.sharding(); }
  static std::size_t local_count(const cuda::sharded_tensor& t) { return t.local_count(); }
  static shard local_shard(const cuda::sharded_tensor& t, std::size_t i) { return t.local_shard(i); }
  static void copy_to_host(const cuda::sharded_tensor& t, std::size_t i, const mutable_array_view& host) { t.to_host(i, host); }
  static void copy_from_host(cuda::sharded_tensor& t, std::size_t i, const array_view& host) { t.from_host(i, host); }
  static host_array stage(const cuda::sharded_tensor& t, std::size_t i) { return t.stage(i); }
};
}  // namespace cairn
