// SPDX-License-Identifier: Apache-2.0
/// \file
/// The roofline probe: this machine's own limits (memcpy with 1 and all threads, durable sequential
/// write, cold sequential read, zstd per-core speed and ratio on weight-like float32 and bfloat16),
/// measured in one run as medians of repetitions. Every benchmark reports its result as a ratio to
/// these figures (performance.md §5) and embeds them in its JSON line through `to_json_fields`.
#pragma once

#include <fcntl.h>     // open, O_DIRECT, posix_fadvise
#include <sys/stat.h>  // S_IRUSR
#include <unistd.h>    // pwrite, pread, fdatasync, close, getpid

#include <algorithm>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // std::snprintf
#include <cstring>
#include <filesystem>
#include <functional>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>  // std::exchange
#include <vector>

#include <cairn/codec/zstd.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/dtype.hpp>  // cairn::bfloat16: the probe rounds exactly as cairn does
#include <cairn/core/error.hpp>

namespace cairn_bench {

inline constexpr std::size_t mib = std::size_t{1} << 20;

/// What the probe measures and how hard it tries; the defaults keep a full run near 20–40 s on a
/// 2-vCPU VM with a ~1 GB/s virtio disk.
struct roofline_options {
  std::filesystem::path dir;               ///< scratch directory; empty means temp_directory_path()
  std::size_t memcpy_bytes = 256 * mib;    ///< bytes copied per memcpy repetition (≥ 256 MiB defeats caches)
  std::size_t io_bytes = 512 * mib;        ///< size of the scratch file written and read back
  std::size_t io_block_bytes = 8 * mib;    ///< bytes per pwrite/pread call
  unsigned io_threads = 4;                 ///< concurrent writers/readers: blocks in flight
  std::size_t zstd_bytes = 64 * mib;       ///< bytes of weight-like data per dtype
  std::size_t zstd_chunk_bytes = 1 * mib;  ///< independent zstd frames, like zarr chunks
  int repetitions = 5;                     ///< timed repetitions per figure; the median is reported
  unsigned threads = 0;                    ///< threads for memcpy_all; 0 means hardware_concurrency()
};

/// zstd speed (GB/s of uncompressed bytes, one core) and ratio (uncompressed / compressed).
struct zstd_figure {
  double compress_GBps = 0;
  double decompress_GBps = 0;
  double ratio = 0;
};

/// The limits of this machine, plus how they were obtained.
struct roofline {
  double memcpy_1t_GBps = 0;
  double memcpy_all_GBps = 0;
  double write_durable_GBps = 0;  ///< create + write + fdatasync of io_bytes, fresh file per repetition
  double read_cold_GBps = 0;      ///< read of the file just written, bypassing or emptied of page cache
  zstd_figure zstd1_f32, zstd3_f32, zstd1_bf16, zstd3_bf16;

  unsigned memcpy_threads = 0;
  bool write_o_direct = false;  ///< false: buffered writes + fdatasync (O_DIRECT refused)
  bool read_o_direct = false;   ///< false: buffered reads after posix_fadvise(DONTNEED)
  roofline_options options;     ///< as used (sizes rounded, dir and threads resolved)
  double probe_seconds = 0;     ///< wall time of the whole probe
};

namespace detail {

using clock = std::chrono::steady_clock;

inline double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t const n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Tiny sizes in --quick mode can finish within the clock's resolution; never divide by zero.
inline double gbps(std::size_t bytes, double seconds) {
  return static_cast<double>(bytes) / std::max(seconds, 1e-9) / 1e9;
}

inline std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

/// Fills `b` with cheap pseudo-random bytes, so no layer below can compress or deduplicate them.
inline void fill_random(cairn::mutable_byte_view b, std::uint64_t seed) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  std::size_t i = 0;
  for (; i + 8 <= b.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(b.data() + i, &x, 8);
  }
  for (; i < b.size(); ++i) b[i] = static_cast<std::byte>(i);
}

/// Copies `bytes` with `threads` threads; returns the median over `reps` of the time from the
/// moment all threads are ready to the moment the last one finishes.
inline double memcpy_gbps(std::size_t bytes, unsigned threads, int reps) {
  cairn::byte_buffer src(bytes), dst(bytes);
  std::vector<clock::time_point> stamps;
  stamps.reserve(2 * static_cast<std::size_t>(reps) + 4);
  std::barrier sync(static_cast<std::ptrdiff_t>(threads), [&]() noexcept { stamps.push_back(clock::now()); });

  auto worker = [&](unsigned t) {
    std::size_t const begin = round_up(bytes * t / threads, 64);
    std::size_t const end = t + 1 == threads ? bytes : round_up(bytes * (t + 1) / threads, 64);
    std::size_t const n = end > begin ? end - begin : 0;
    // First touch by the copying thread: pages land on its NUMA node and faults stay out of timing.
    std::memset(src.data() + begin, 0x5A, n);
    std::memset(dst.data() + begin, 0, n);
    for (int r = 0; r <= reps; ++r) {  // r == 0 is an untimed warm-up
      sync.arrive_and_wait();
      std::memcpy(dst.data() + begin, src.data() + begin, n);
      sync.arrive_and_wait();
    }
  };
  std::vector<std::jthread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  pool.clear();  // joins

  std::vector<double> times;
  for (int r = 1; r <= reps; ++r) {
    times.push_back(std::chrono::duration<double>(stamps[2 * r + 1] - stamps[2 * r]).count());
  }
  return gbps(bytes, median(times));
}

/// A scratch file removed on scope exit, whatever happens in between.
class scratch_file {
 public:
  explicit scratch_file(std::filesystem::path p) : path_(std::move(p)) {}
  ~scratch_file() { remove(); }
  scratch_file(const scratch_file&) = delete;
  scratch_file& operator=(const scratch_file&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  void remove() noexcept {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }

 private:
  std::filesystem::path path_;
};

class fd_guard {
 public:
  explicit fd_guard(int fd) noexcept : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  int get() const noexcept { return fd_; }
  /// Closes now so that a failing close is reported (it can carry a deferred write error).
  void close(const std::string& what) {
    int const fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) throw cairn::io_error("close " + what, errno);
  }

 private:
  int fd_;
};

/// Thrown inside a pass when O_DIRECT turns out to be refused, so the caller can fall back.
struct direct_refused {};

/// Runs `op(fd, offset, length, buffer)` over [0, total) in blocks, `threads` blocks in flight:
/// thread t takes blocks t, t+threads, …, so the file is covered in ascending order.
template <class Op>
void parallel_blocks(int fd, std::size_t total, std::size_t block, unsigned threads,
                     std::vector<cairn::byte_buffer>& buffers, bool direct, Op op) {
  std::size_t const blocks = (total + block - 1) / block;
  std::vector<int> errors(threads, 0);
  auto worker = [&](unsigned t) {
    for (std::size_t i = t; i < blocks; i += threads) {
      std::size_t const offset = i * block;
      std::size_t const length = std::min(block, total - offset);
      std::size_t done = 0;
      while (done < length) {
        ssize_t const n = op(fd, buffers[t].data() + done, length - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          errors[t] = n < 0 ? errno : EIO;
          return;
        }
        done += static_cast<std::size_t>(n);
      }
    }
  };
  {
    std::vector<std::jthread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker, t);
    worker(0);
  }
  for (int e : errors) {
    if (e == EINVAL && direct) throw direct_refused{};
    if (e != 0) throw cairn::io_error("sequential i/o on scratch file", e);
  }
}

/// One durable write: create, write `opts.io_bytes`, fdatasync, close. Returns seconds.
inline double timed_write(const scratch_file& file, const roofline_options& opts,
                          std::vector<cairn::byte_buffer>& buffers, bool direct) {
  auto const t0 = clock::now();
  int const flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0);
  int const raw = ::open(file.path().c_str(), flags, S_IRUSR | S_IWUSR);
  if (raw < 0) {
    if (direct && errno == EINVAL) throw direct_refused{};
    throw cairn::io_error("open \"" + file.path().string() + "\"", errno);
  }
  fd_guard fd(raw);
  parallel_blocks(fd.get(), opts.io_bytes, opts.io_block_bytes, opts.io_threads, buffers, direct,
                  [](int f, std::byte* p, std::size_t n, off_t off) { return ::pwrite(f, p, n, off); });
  if (::fdatasync(fd.get()) != 0) throw cairn::io_error("fdatasync \"" + file.path().string() + "\"", errno);
  fd.close('"' + file.path().string() + '"');
  return seconds_since(t0);
}

/// One cold read of the whole file. Returns seconds.
inline double timed_read(const scratch_file& file, const roofline_options& opts,
                         std::vector<cairn::byte_buffer>& buffers, bool direct) {
  int const flags = O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0);
  if (!direct) {
    // The file was fdatasync'ed, so its pages are clean and DONTNEED really drops them.
    int const pre = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (pre < 0) throw cairn::io_error("open \"" + file.path().string() + "\"", errno);
    ::posix_fadvise(pre, 0, 0, POSIX_FADV_DONTNEED);
    ::close(pre);
  }
  auto const t0 = clock::now();
  int const raw = ::open(file.path().c_str(), flags);
  if (raw < 0) {
    if (direct && errno == EINVAL) throw direct_refused{};
    throw cairn::io_error("open \"" + file.path().string() + "\"", errno);
  }
  fd_guard fd(raw);
  parallel_blocks(fd.get(), opts.io_bytes, opts.io_block_bytes, opts.io_threads, buffers, direct,
                  [](int f, std::byte* p, std::size_t n, off_t off) { return ::pread(f, p, n, off); });
  fd.close('"' + file.path().string() + '"');
  return seconds_since(t0);
}

/// Measures durable write and cold read on one scratch file in `opts.dir`.
inline void measure_disk(const roofline_options& opts, roofline& out) {
  std::error_code ec;
  auto const space = std::filesystem::space(opts.dir, ec);
  if (!ec && space.available < opts.io_bytes + 64 * mib) {
    throw cairn::error(cairn::errc::io, "scratch directory \"" + opts.dir.string() + "\" has " +
                                            std::to_string(space.available / mib) + " MiB free, the probe needs " +
                                            std::to_string(opts.io_bytes / mib + 64) +
                                            " MiB (use --dir or --size-mib)");
  }
  scratch_file file(opts.dir / ("cairn_roofline_" + std::to_string(::getpid()) + ".tmp"));
  std::vector<cairn::byte_buffer> buffers;
  for (unsigned t = 0; t < opts.io_threads; ++t) {
    buffers.emplace_back(opts.io_block_bytes);  // byte_buffer is 4096-aligned, as O_DIRECT requires
    fill_random(buffers.back().mutable_view(), t + 1);
  }

  bool direct = true;
  std::vector<double> times;
  for (int r = 0; r < opts.repetitions; ++r) {
    file.remove();  // each repetition writes a fresh file, as a checkpoint does
    try {
      times.push_back(timed_write(file, opts, buffers, direct));
    } catch (const direct_refused&) {
      direct = false;
      file.remove();
      --r;
    }
  }
  out.write_durable_GBps = gbps(opts.io_bytes, median(times));
  out.write_o_direct = direct;

  direct = true;
  times.clear();
  for (int r = 0; r < opts.repetitions; ++r) {
    try {
      times.push_back(timed_read(file, opts, buffers, direct));
    } catch (const direct_refused&) {
      direct = false;
      --r;
    }
  }
  out.read_cold_GBps = gbps(opts.io_bytes, median(times));
  out.read_o_direct = direct;
}

/// Model-weight-like float32 values drawn from N(0, 0.02), as the raw bytes cairn would store.
inline std::vector<float> gaussian_weights(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

/// Compresses `data` in independent chunks at `level` and decompresses it back, single-threaded,
/// through cairn's own codec classes so the figure is what cairn can reach.
inline zstd_figure measure_zstd(cairn::byte_view data, int level, const roofline_options& opts) {
  std::size_t const chunk = opts.zstd_chunk_bytes;
  std::size_t const chunks = (data.size() + chunk - 1) / chunk;
  std::size_t const slot = cairn::codec::zstd_compressor::compress_bound(chunk);
  cairn::byte_buffer frames(chunks * slot);
  std::vector<std::size_t> frame_sizes(chunks);
  cairn::byte_buffer restored(data.size());
  cairn::codec::zstd_compressor compressor(level);
  cairn::codec::zstd_decompressor decompressor;

  auto in_chunk = [&](std::size_t i) { return data.subspan(i * chunk, std::min(chunk, data.size() - i * chunk)); };
  auto compress_all = [&] {
    for (std::size_t i = 0; i < chunks; ++i) {
      frame_sizes[i] = compressor.compress(in_chunk(i), cairn::mutable_byte_view(frames.data() + i * slot, slot));
    }
  };
  auto decompress_all = [&] {
    for (std::size_t i = 0; i < chunks; ++i) {
      auto const c = in_chunk(i);
      decompressor.decompress_into(cairn::byte_view(frames.data() + i * slot, frame_sizes[i]),
                                   cairn::mutable_byte_view(restored.data() + i * chunk, c.size()), "roofline chunk");
    }
  };

  zstd_figure fig;
  std::vector<double> times;
  compress_all();  // warm-up: faults in `frames`, sizes the context
  for (int r = 0; r < opts.repetitions; ++r) {
    auto const t0 = clock::now();
    compress_all();
    times.push_back(seconds_since(t0));
  }
  fig.compress_GBps = gbps(data.size(), median(times));
  std::size_t compressed = 0;
  for (std::size_t s : frame_sizes) compressed += s;
  fig.ratio = static_cast<double>(data.size()) / static_cast<double>(std::max<std::size_t>(compressed, 1));

  decompress_all();  // warm-up, and a check that the codec round-trips this data
  if (!data.empty() && std::memcmp(restored.data(), data.data(), data.size()) != 0) {
    throw std::logic_error("roofline: zstd round trip changed the data");
  }
  times.clear();
  for (int r = 0; r < opts.repetitions; ++r) {
    auto const t0 = clock::now();
    decompress_all();
    times.push_back(seconds_since(t0));
  }
  fig.decompress_GBps = gbps(data.size(), median(times));
  return fig;
}

inline roofline_options resolved(roofline_options o) {
  if (o.dir.empty()) o.dir = std::filesystem::temp_directory_path();
  if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  o.io_threads = std::max(1u, o.io_threads);
  o.repetitions = std::max(1, o.repetitions);
  o.memcpy_bytes = round_up(std::max<std::size_t>(o.memcpy_bytes, 4096), 4096);
  // O_DIRECT needs sizes and offsets in multiples of the logical block size; 4096 covers every disk.
  o.io_bytes = round_up(std::max<std::size_t>(o.io_bytes, 4096), 4096);
  o.io_block_bytes = std::min(round_up(std::max<std::size_t>(o.io_block_bytes, 4096), 4096), o.io_bytes);
  o.zstd_chunk_bytes = std::max<std::size_t>(o.zstd_chunk_bytes, 4096);
  o.zstd_bytes = round_up(std::max<std::size_t>(o.zstd_bytes, 4096), 4);
  return o;
}

}  // namespace detail

/// Measures this machine's limits in one run; scratch files are removed before returning.
/// \throws cairn::error (errc::io) if the scratch directory cannot be written or lacks space.
inline roofline measure_roofline(const roofline_options& requested) {
  auto const t0 = detail::clock::now();
  roofline r;
  r.options = detail::resolved(requested);
  roofline_options const& o = r.options;

  r.memcpy_1t_GBps = detail::memcpy_gbps(o.memcpy_bytes, 1, o.repetitions);
  r.memcpy_threads = o.threads;
  r.memcpy_all_GBps = detail::memcpy_gbps(o.memcpy_bytes, o.threads, o.repetitions);

  detail::measure_disk(o, r);

  // bfloat16 from the same distribution; same byte count as the float32 sample.
  std::vector<float> const weights = detail::gaussian_weights(o.zstd_bytes / 2, 0xC0FFEE);
  cairn::byte_view const f32(reinterpret_cast<const std::byte*>(weights.data()), o.zstd_bytes / 4 * 4);
  std::vector<std::uint16_t> bf16(weights.size());
  for (std::size_t i = 0; i < weights.size(); ++i) bf16[i] = cairn::bfloat16(weights[i]).bits;
  cairn::byte_view const b16(reinterpret_cast<const std::byte*>(bf16.data()), bf16.size() * 2);

  r.zstd1_f32 = detail::measure_zstd(f32, 1, o);
  r.zstd3_f32 = detail::measure_zstd(f32, 3, o);
  r.zstd1_bf16 = detail::measure_zstd(b16, 1, o);
  r.zstd3_bf16 = detail::measure_zstd(b16, 3, o);

  r.probe_seconds = detail::seconds_since(t0);
  return r;
}

/// Writes the figures as an aligned, human-readable table.
inline void print_table(std::ostream& os, const roofline& r) {
  auto const& o = r.options;
  char line[512];
  auto emit = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    os << line << '\n';
  };
  auto size = [](std::size_t bytes) {
    return bytes % mib == 0 ? std::to_string(bytes / mib) + " MiB" : std::to_string(bytes / 1024) + " KiB";
  };
  auto figure = [&](const std::string& label, double v) { emit("  %-70s %8.2f GB/s", label.c_str(), v); };
  emit("cairn roofline: medians of %d repetition(s); probe took %.1f s; scratch in %s", o.repetitions, r.probe_seconds,
       o.dir.c_str());
  figure("memcpy, 1 thread, " + size(o.memcpy_bytes), r.memcpy_1t_GBps);
  figure("memcpy, " + std::to_string(r.memcpy_threads) + " threads", r.memcpy_all_GBps);
  std::string const io =
      std::to_string(o.io_threads) + " x " + size(o.io_block_bytes) + " in flight, " + size(o.io_bytes);
  figure(std::string("write, durable (") + (r.write_o_direct ? "O_DIRECT" : "buffered") + " + fdatasync), " + io,
         r.write_durable_GBps);
  figure(std::string("read, cold (") + (r.read_o_direct ? "O_DIRECT" : "fadvise DONTNEED") + "), " + io,
         r.read_cold_GBps);
  emit("  zstd, one core, %s chunks of N(0, 0.02) weights, %s per dtype:", size(o.zstd_chunk_bytes).c_str(),
       size(o.zstd_bytes).c_str());
  emit("      level  data       ratio   compress GB/s   decompress GB/s");
  auto row = [&](int level, const char* data, const zstd_figure& f) {
    emit("      %5d  %-8s  %6.3f   %13.3f   %15.3f", level, data, f.ratio, f.compress_GBps, f.decompress_GBps);
  };
  row(1, "float32", r.zstd1_f32);
  row(3, "float32", r.zstd3_f32);
  row(1, "bfloat16", r.zstd1_bf16);
  row(3, "bfloat16", r.zstd3_bf16);
}

/// Returns the figures as flat `"key":number` pairs separated by commas, without braces, so a
/// benchmark can splice them into its own one-line JSON object.
inline std::string to_json_fields(const roofline& r) {
  std::string s;
  char buf[96];
  auto field = [&](const char* key, double v, const char* fmt) {
    if (!s.empty()) s += ',';
    std::snprintf(buf, sizeof buf, fmt, v);
    s += '"';
    s += key;
    s += "\":";
    s += buf;
  };
  auto rate = [&](const char* key, double v) { field(key, v, "%.4f"); };
  auto count = [&](const char* key, double v) { field(key, v, "%.0f"); };
  rate("memcpy_1t_GBps", r.memcpy_1t_GBps);
  rate("memcpy_all_GBps", r.memcpy_all_GBps);
  count("memcpy_threads", r.memcpy_threads);
  rate("write_durable_GBps", r.write_durable_GBps);
  count("write_o_direct", r.write_o_direct ? 1 : 0);
  rate("read_cold_GBps", r.read_cold_GBps);
  count("read_o_direct", r.read_o_direct ? 1 : 0);
  auto zstd = [&](const char* prefix, const zstd_figure& f) {
    std::string const p(prefix);
    rate((p + "_compress_GBps").c_str(), f.compress_GBps);
    rate((p + "_decompress_GBps").c_str(), f.decompress_GBps);
    rate((p + "_ratio").c_str(), f.ratio);
  };
  zstd("zstd1_f32", r.zstd1_f32);
  zstd("zstd3_f32", r.zstd3_f32);
  zstd("zstd1_bf16", r.zstd1_bf16);
  zstd("zstd3_bf16", r.zstd3_bf16);
  auto const& o = r.options;
  count("roofline_memcpy_MiB", static_cast<double>(o.memcpy_bytes) / mib);
  count("roofline_io_MiB", static_cast<double>(o.io_bytes) / mib);
  count("roofline_io_block_KiB", static_cast<double>(o.io_block_bytes) / 1024);
  count("roofline_io_threads", o.io_threads);
  count("roofline_zstd_MiB", static_cast<double>(o.zstd_bytes) / mib);
  count("roofline_zstd_chunk_KiB", static_cast<double>(o.zstd_chunk_bytes) / 1024);
  count("roofline_reps", o.repetitions);
  field("roofline_probe_s", r.probe_seconds, "%.2f");
  return s;
}

/// The probe as the end-to-end benchmarks run it: 256 MiB of disk I/O, 16 MiB of zstd per dtype,
/// medians of 3 — or, with `quick`, a few MiB once, which only smoke-tests the program.
inline roofline_options end_to_end_probe(const std::filesystem::path& dir, bool quick) {
  roofline_options ro;
  ro.dir = dir;
  ro.io_bytes = 256 * mib;
  ro.zstd_bytes = 16 * mib;
  ro.repetitions = 3;
  if (quick) {
    ro.memcpy_bytes = 8 * mib;
    ro.io_bytes = 8 * mib;
    ro.zstd_bytes = 4 * mib;
    ro.repetitions = 1;
  }
  return ro;
}

/// The value of the command-line option at `argv[i]`, advancing `i` past it.
/// \throws std::invalid_argument if the option is last.
inline std::string option_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) throw std::invalid_argument(std::string(argv[i]) + " needs a value");
  return argv[++i];
}

}  // namespace cairn_bench
