// SPDX-License-Identifier: Apache-2.0
// bench/cuda_staging: the CUDA backend's staging path (device ↔ pinned pool ↔ pageable host memory, as
// a save's stage and a restore's upload use it) against cudaMemcpy between the device and pinned
// memory, the transfer limit measured in the same run (performance.md §5, goal G1g: a save of device
// arrays blocks for at most S / (0.85 · D2H) + 10 ms).
//  * one 256 MiB float32 buffer on device 0 (--mib); medians of --reps (default 5);
//  * limit: cudaMemcpy D2H and H2D with one pinned host buffer of the whole size;
//  * staging: cuda::copy_box_to_host / copy_box_from_host of the whole buffer into / from a pageable
//    host_array through the pool's pieces (--chunk-mib, default 16) on its threads (--threads, default
//    up to 8); "fresh" stages into newly allocated host memory, as a save's stage does; a strided box
//    (half the columns) shows the 2-D copies; "pinned stage" is what a save of a cuda::sharded_tensor
//    does (sharded_tensor::stage: one copy into a pinned buffer the pool keeps for the next save);
//  * ratio = staging GB/s / limit GB/s. Prints "no CUDA device" and exits 0 where there is none.
// Ends with one JSON line. Usage: cairn_bench_cuda_staging [--mib N] [--reps N] [--chunk-mib N] [--threads N]
#include <cairn/backend/cuda.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {
using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  try {
    std::size_t mib = 256, chunk_mib = 16;
    unsigned threads = 0;
    int reps = 5;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--mib" && i + 1 < argc) mib = std::stoul(argv[++i]);
      else if (a == "--reps" && i + 1 < argc) reps = std::stoi(argv[++i]);
      else if (a == "--chunk-mib" && i + 1 < argc) chunk_mib = std::stoul(argv[++i]);
      else if (a == "--threads" && i + 1 < argc) threads = static_cast<unsigned>(std::stoul(argv[++i]));
      else throw std::invalid_argument("unknown option " + a);
    }
    if (cairn::cuda::device_count() == 0) {
      std::cout << "no CUDA device: nothing to measure\n{\"cuda_devices\":0}\n";
      return 0;
    }
    std::cout << "device 0: " << cairn::cuda::describe_device(0) << "\n";
    const std::size_t bytes = mib << 20;
    const cairn::index_t cols = 4096;
    const cairn::shape whole{static_cast<cairn::index_t>(bytes / 4 / cols), cols};
    cairn::cuda::device_buffer dev(0, bytes);
    cairn::cuda::stream s(0);
    cairn::cuda::pinned_pool limit_pool(bytes);  // one whole-size buffer for the limit, kept out of the staging pool
    auto pinned = limit_pool.acquire(bytes);
    cairn::cuda::pinned_pool pool(chunk_mib << 20, threads);
    cairn::host_array host(cairn::dtype::float32, whole);
    for (std::size_t i = 0; i < bytes / 4; ++i) reinterpret_cast<float*>(host.mutable_bytes().data())[i] = static_cast<float>(i);
    std::memcpy(pinned.data(), host.bytes().data(), bytes);

    auto timed = [&](auto&& f) {
      std::vector<double> t;
      f();  // warm-up
      for (int r = 0; r < reps; ++r) {
        const auto t0 = clock_type::now();
        f();
        t.push_back(since(t0));
      }
      return static_cast<double>(bytes) / median(t) / 1e9;
    };
    const double h2d_limit = timed([&] {
      cairn::cuda::check(cudaMemcpyAsync(dev.data(), pinned.data(), bytes, cudaMemcpyHostToDevice, s.get()), "H2D");
      s.synchronize();
    });
    const double d2h_limit = timed([&] {
      cairn::cuda::check(cudaMemcpyAsync(pinned.data(), dev.data(), bytes, cudaMemcpyDeviceToHost, s.get()), "D2H");
      s.synchronize();
    });
    const cairn::box all(whole);
    const double h2d = timed([&] { cairn::cuda::copy_box_from_host(dev.data(), cairn::dtype::float32, whole, all, host.view(), pool, s); });
    const double d2h = timed([&] { cairn::cuda::copy_box_to_host(dev.data(), cairn::dtype::float32, whole, all, host.mutable_view(), pool, s); });
    // A save's stage: fresh host memory each time (its page faults included), freed outside the timing.
    std::vector<double> tf;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = clock_type::now();
      auto fresh = cairn::host_array::uninitialized(cairn::dtype::float32, whole);
      cairn::cuda::copy_box_to_host(dev.data(), cairn::dtype::float32, whole, all, fresh.mutable_view(), pool, s);
      tf.push_back(since(t0));
    }
    const double d2h_fresh = static_cast<double>(bytes) / median(tf) / 1e9;
    // A save's stage of a sharded tensor: into the pool's pinned memory, reused from the second save on.
    auto stage_pool = std::make_shared<cairn::cuda::pinned_pool>();
    cairn::cuda::sharded_tensor tensor(cairn::dtype::float32, whole,
                                       cairn::named_sharding(cairn::device_mesh{{"x", 1}}, cairn::partition_spec{"x"}), stage_pool);
    tensor.from_host(0, host.view());
    std::vector<double> tp;
    for (int r = 0; r <= reps; ++r) {
      const auto t0 = clock_type::now();
      cairn::host_array staged = tensor.stage(0);
      if (r > 0) tp.push_back(since(t0));  // the first save pins the buffer
    }
    const double d2h_pinned_stage = static_cast<double>(bytes) / median(tp) / 1e9;
    // A box of half the columns: 2-D strided copies.
    const cairn::box half({0, cols / 4}, {whole[0], cols / 2});
    cairn::host_array part(cairn::dtype::float32, half.shape());
    std::vector<double> th;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = clock_type::now();
      cairn::cuda::copy_box_to_host(dev.data(), cairn::dtype::float32, whole, half, part.mutable_view(), pool, s);
      th.push_back(since(t0));
    }
    const double d2h_box = static_cast<double>(bytes / 2) / median(th) / 1e9;
    std::printf("limit (cudaMemcpy, pinned):  H2D %6.2f GB/s   D2H %6.2f GB/s\n", h2d_limit, d2h_limit);
    std::printf("staging (pool, pageable):    H2D %6.2f GB/s   D2H %6.2f GB/s   ratio H2D %.2f  D2H %.2f\n", h2d, d2h,
                h2d / h2d_limit, d2h / d2h_limit);
    std::printf("stage into fresh memory:     D2H %6.2f GB/s   ratio %.2f\n", d2h_fresh, d2h_fresh / d2h_limit);
    std::printf("pinned stage (a save):       D2H %6.2f GB/s   ratio %.2f (G1g: >= 0.85)\n", d2h_pinned_stage,
                d2h_pinned_stage / d2h_limit);
    std::printf("strided box (half the columns) D2H %6.2f GB/s   ratio %.2f\n", d2h_box, d2h_box / d2h_limit);
    std::printf("pieces of %zu MiB on %u threads; pinned allocations: %zu (the pool is reused)\n", chunk_mib, pool.copy_threads(),
                pool.allocations());
    std::printf("{\"cuda_devices\":%d,\"h2d_limit_GBps\":%.3f,\"d2h_limit_GBps\":%.3f,\"h2d_staging_GBps\":%.3f,\"d2h_staging_GBps\":%.3f,"
                "\"h2d_ratio\":%.3f,\"d2h_ratio\":%.3f,\"d2h_fresh_GBps\":%.3f,\"d2h_fresh_ratio\":%.3f,\"d2h_pinned_stage_GBps\":%.3f,\"d2h_pinned_stage_ratio\":%.3f,\"d2h_box_GBps\":%.3f,"
                "\"chunk_mib\":%zu,\"threads\":%u,\"pinned_allocations\":%zu}\n",
                cairn::cuda::device_count(), h2d_limit, d2h_limit, h2d, d2h, h2d / h2d_limit, d2h / d2h_limit, d2h_fresh,
                d2h_fresh / d2h_limit, d2h_pinned_stage, d2h_pinned_stage / d2h_limit, d2h_box, chunk_mib, pool.copy_threads(), pool.allocations());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "cairn_bench_cuda_staging: " << e.what() << "\n";
    return 1;
  }
}
