// SPDX-License-Identifier: Apache-2.0
// bench/ocdbt: the OCDBT store against this machine's limits, measured in the same run.
//  * large values: N values of 64 MiB written by 4 threads (pwrite straight from the caller's buffers,
//    fsync, manifest) and read back cold — as ratios to the roofline's durable write and cold read;
//  * many keys: 1,000,000 keys of 100 bytes written and committed, listed, and looked up in random
//    order — in µs per key.
// Ends with one JSON line. Usage: cairn_bench_ocdbt [--dir DIR] [--values N] [--keys N] [--reps N] [--quick]
#include <fcntl.h>
#include <unistd.h>

#include <cairn/kvstore/file.hpp>
#include <cairn/ocdbt/reader.hpp>
#include <cairn/ocdbt/writer.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "roofline.hpp"

using cairn_bench::capture;
using cairn_bench::drop_cache;
using cairn_bench::last_line_starting;
using cairn_bench::quote;

namespace fs = std::filesystem;
namespace kv = cairn::kvstore;
namespace oc = cairn::ocdbt;
using bench_clock = cairn_bench::detail::clock;
using cairn_bench::detail::seconds_since;

namespace {

struct large_result {
  double write_s, read_s;
};

large_result large_values(const fs::path& dir, std::size_t count, std::size_t value_bytes,
                          const std::vector<cairn::byte_buffer>& values) {
  fs::remove_all(dir);
  auto store = kv::open_file(dir, kv::fsync_policy::file);
  oc::writer_options o;
  o.fsync = kv::fsync_policy::file;
  auto t0 = bench_clock::now();
  {
    oc::writer w(store, o);
    std::vector<std::thread> threads;
    const unsigned n_threads = 4;
    for (unsigned t = 0; t < n_threads; ++t)
      threads.emplace_back([&, t] {
        for (std::size_t i = t; i < count; i += n_threads) w.put("v/" + std::to_string(i), values[i % values.size()].view());
      });
    for (auto& th : threads) th.join();
    w.commit();
  }
  const double write_s = seconds_since(t0);
  drop_cache(dir);
  t0 = bench_clock::now();
  oc::reader r(store);
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < count; ++i) bytes += r.read("v/" + std::to_string(i))->size();
  const double read_s = seconds_since(t0);
  if (bytes != count * value_bytes) throw std::runtime_error("large values: read back the wrong size");
  fs::remove_all(dir);
  return {write_s, read_s};
}

struct keys_result {
  double write_us, list_us, first_lookup_us, lookup_us;
};

keys_result many_keys(const fs::path& dir, std::size_t n) {
  fs::remove_all(dir);
  auto store = kv::open_file(dir, kv::fsync_policy::file);
  std::vector<std::string> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    char k[48];
    std::snprintf(k, sizeof k, "params/layer%04zu/w%03zu", i / 1000, i % 1000);
    keys[i] = k;
  }
  std::string value(100, 'v');
  auto t0 = bench_clock::now();
  {
    oc::writer w(store);
    for (std::size_t i = 0; i < n; ++i) {
      std::memcpy(value.data(), &i, sizeof i);
      w.put(keys[i], cairn::as_bytes(value));
    }
    w.commit();
  }
  const double write_s = seconds_since(t0);
  t0 = bench_clock::now();
  std::size_t listed = 0;
  {
    oc::reader r(store);
    r.for_each({}, [&](oc::value_location&&) { ++listed; });
  }
  const double list_s = seconds_since(t0);
  std::shuffle(keys.begin(), keys.end(), std::mt19937_64(7));
  std::size_t found = 0;
  oc::reader r(store);
  t0 = bench_clock::now();  // first pass: opening and decoding the index are part of it
  for (const auto& k : keys) found += r.read(k)->size() == 100;
  const double cold_s = seconds_since(t0);
  std::shuffle(keys.begin(), keys.end(), std::mt19937_64(8));
  t0 = bench_clock::now();  // second pass: lookups alone, in another random order
  for (const auto& k : keys) found += r.read(k)->size() == 100;
  const double lookup_s = seconds_since(t0);
  if (listed != n || found != 2 * n) throw std::runtime_error("many keys: listing or lookups disagree");
  fs::remove_all(dir);
  const double us = 1e6 / static_cast<double>(n);
  return {write_s * us, list_s * us, cold_s * us, lookup_s * us};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path dir = fs::temp_directory_path();
    std::size_t values = 8, keys = 1000000;
    int reps = 3;
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
      std::string_view a = argv[i];
      auto next = [&] { return cairn_bench::option_value(argc, argv, i); };
      if (a == "--dir") dir = next();
      else if (a == "--values") values = std::stoul(next());
      else if (a == "--keys") keys = std::stoul(next());
      else if (a == "--reps") reps = std::stoi(next());
      else if (a == "--quick") quick = true;
      else throw std::invalid_argument("unknown option " + std::string(a));
    }
    const std::size_t value_bytes = quick ? (1u << 20) : (64u << 20);
    if (quick) {
      values = 4;
      keys = 20000;
      reps = 1;
    }
    cairn_bench::roofline_options ro;
    ro.dir = dir;
    ro.io_bytes = values * value_bytes;  // the same amount of data as the benchmark writes
    if (quick) {
      ro.memcpy_bytes = 8 * cairn_bench::mib;
      ro.zstd_bytes = 4 * cairn_bench::mib;
      ro.repetitions = 1;
    }
    const auto roof = cairn_bench::measure_roofline(ro);
    cairn_bench::print_table(std::cout, roof);

    std::vector<cairn::byte_buffer> data(std::min<std::size_t>(values, 2));
    for (std::size_t i = 0; i < data.size(); ++i) {
      data[i].resize(value_bytes);
      cairn_bench::detail::fill_random(data[i].mutable_view(), i + 1);
    }
    const fs::path work = dir / ("cairn_bench_ocdbt_" + std::to_string(::getpid()));
    std::vector<double> w, r, kw, kl, kf, kk;
    for (int rep = 0; rep < reps; ++rep) {
      auto lv = large_values(work / "large", values, value_bytes, data);
      w.push_back(lv.write_s);
      r.push_back(lv.read_s);
      auto mk = many_keys(work / "keys", keys);
      kw.push_back(mk.write_us);
      kl.push_back(mk.list_us);
      kf.push_back(mk.first_lookup_us);
      kk.push_back(mk.lookup_us);
    }
    fs::remove_all(work);
    const double total = static_cast<double>(values * value_bytes);
    const double write_GBps = total / cairn_bench::detail::median(w) / 1e9;
    const double read_GBps = total / cairn_bench::detail::median(r) / 1e9;
    const double write_ratio = write_GBps / roof.write_durable_GBps, read_ratio = read_GBps / roof.read_cold_GBps;
    const double kw_us = cairn_bench::detail::median(kw), kl_us = cairn_bench::detail::median(kl),
                 kf_us = cairn_bench::detail::median(kf), kk_us = cairn_bench::detail::median(kk);
    std::printf("\nOCDBT (%zu values of %zu MiB, %zu keys of 100 B, median of %d)\n", values, value_bytes >> 20, keys, reps);
    std::printf("  write values      %7.3f GB/s  = %.2f x durable write (goal >= 0.8)\n", write_GBps, write_ratio);
    std::printf("  read values cold  %7.3f GB/s  = %.2f x cold read     (goal >= 0.8)\n", read_GBps, read_ratio);
    std::printf("  write keys        %7.3f us/key (goal <= 2)\n", kw_us);
    std::printf("  list keys         %7.3f us/key\n", kl_us);
    std::printf("  first lookups     %7.3f us/key (including opening and decoding the index)\n", kf_us);
    std::printf("  look up keys      %7.3f us/key (goal <= 1)\n", kk_us);
    std::printf("{\"ocdbt_write_GBps\":%.4f,\"ocdbt_write_vs_durable_write_ratio\":%.3f,\"ocdbt_read_GBps\":%.4f,"
                "\"ocdbt_read_vs_cold_read_ratio\":%.3f,\"keys\":%zu,\"keys_write_us_per_key\":%.3f,"
                "\"keys_list_us_per_key\":%.3f,\"keys_first_lookup_us_per_key\":%.3f,\"keys_lookup_us_per_key\":%.3f,\"value_MiB\":%zu,\"values\":%zu,%s}\n",
                write_GBps, write_ratio, read_GBps, read_ratio, keys, kw_us, kl_us, kf_us, kk_us, value_bytes >> 20, values,
                cairn_bench::to_json_fields(roof).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "cairn_bench_ocdbt: " << e.what() << "\n";
    return 1;
  }
}
