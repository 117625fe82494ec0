// SPDX-License-Identifier: Apache-2.0
// bench/manager: checkpoint_manager on a 1 GiB training state, against this machine's limits measured
// in the same run (performance.md §5) and against Python Orbax's CheckpointManager.
//  * the state: 4 float32 arrays of 224 MiB and 2,048 of 64 KiB (1 GiB), N(0, 0.02) weights, as a
//    std::map<std::string, cairn::host_array>;
//  * async blocking time: how long `save` takes to return (the staging copy), as a ratio to memcpy of
//    the state at the probe's one-thread rate; goal <= 1.5 (plus 5 ms). Measured on the second save
//    (a training loop saves many times; the first one also allocates its staging buffers, shown too);
//  * background save: bytes / (save call to wait_until_finished), as a ratio to durable write; goal >= 0.8;
//  * restore: cold (pages dropped), bytes / time, as a ratio to cold read; goal >= 0.8: into new arrays
//    (an empty map), and in place (restore_options::in_place, into a zeroed state of the same shapes);
//    with each one's peak memory beyond its destination, in forked children (goal <= 256 MiB);
//  * peak extra memory of an async save (save + wait, in a forked child, VmHWM beyond the RSS before);
//    goal <= state + 256 MiB;
//  * both with cairn's defaults (zarr v3 + zstd, fsync) and uncompressed;
//  * Python Orbax (bench/manager.py): ocp.CheckpointManager save + wait and cold restore of the same
//    shapes; goal: cairn >= 2x faster to save and to restore.
// Ends with one JSON line. Usage:
//   cairn_bench_manager [--dir DIR] [--large N] [--large-mib M] [--small N] [--small-kib K] [--no-python]
//                       [--python PY] [--quick]
#include <unistd.h>

#include <cairn/checkpoint/checkpoint_manager.hpp>
#include <cairn/json/reader.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "bench_util.hpp"
#include "roofline.hpp"

#ifndef CAIRN_BENCH_SOURCE_DIR
#define CAIRN_BENCH_SOURCE_DIR ""
#endif

namespace fs = std::filesystem;
using cairn_bench::mib;
using cairn_bench::detail::seconds_since;
using bench_clock = cairn_bench::detail::clock;

namespace {

using state_t = std::map<std::string, cairn::host_array>;

state_t make_state(std::size_t large, std::size_t large_mib, std::size_t small, std::size_t small_kib) {
  state_t s;
  const auto base = cairn_bench::detail::gaussian_weights(large_mib * mib / 4, 11);
  for (std::size_t i = 0; i < large; ++i) {
    auto a = cairn::host_array::uninitialized(cairn::dtype::float32, cairn::shape{static_cast<cairn::index_t>(large_mib * 256), 1024});
    auto* p = reinterpret_cast<float*>(a.mutable_bytes().data());
    for (std::size_t j = 0; j < base.size(); ++j) p[j] = base[(j + i * 1000003) % base.size()];
    s["large_" + std::to_string(i)] = std::move(a);
  }
  const auto tiny = cairn_bench::detail::gaussian_weights(small_kib * 256, 13);
  for (std::size_t i = 0; i < small; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "small_%04zu", i);
    s[name] = cairn::host_array::from(std::span<const float>(tiny), cairn::shape{static_cast<cairn::index_t>(tiny.size())});
  }
  return s;
}

struct variant {
  double first_blocking_s = 0, blocking_s = 0, save_s = 0, restore_s = 0, peak_extra_mib = 0;
  double restore_in_place_s = 0, restore_extra_mib = 0, restore_in_place_extra_mib = 0;
  bool exact = false;
};

// A copy of `s` with every byte zero: a live state of the same shapes for an in-place restore (zero,
// so that a bit-exact comparison afterwards shows the restore wrote every byte).
state_t zeroed_like(const state_t& s) {
  state_t z;
  for (const auto& [k, a] : s) {
    cairn::host_array b(a.type(), a.shape());
    std::memset(b.mutable_bytes().data(), 0, b.num_bytes());
    z.emplace(k, std::move(b));
  }
  return z;
}

variant run(const fs::path& root, const state_t& state, bool compress) {
  variant v;
  fs::remove_all(root);
  cairn::checkpoint_manager_options o;
  o.save.pytree.compress = compress;
  // Peak memory of one async save, in a forked child (nothing it allocates reaches this process).
  const auto peak = cairn_bench::run_in_child([&](cairn_bench::phase_report& r) {
    cairn::checkpoint_manager m(root / "peak", o);
    cairn_bench::measured(r, [&] {
      m.save(0, state);
      m.wait_until_finished();
    });
  });
  if (!peak.ok) throw std::runtime_error(std::string("peak-memory child: ") + peak.error);
  v.peak_extra_mib = peak.extra_mib();
  cairn::checkpoint_manager m(root / "timed", o);
  // The first save allocates its staging copy; later ones copy into it (reuse_staging_buffers).
  auto t0 = bench_clock::now();
  m.save(1, state);
  v.first_blocking_s = seconds_since(t0);
  m.wait_until_finished();
  t0 = bench_clock::now();
  m.save(2, state);
  v.blocking_s = seconds_since(t0);
  m.wait_until_finished();
  v.save_s = seconds_since(t0);
  cairn_bench::drop_cache(root / "timed");
  state_t back;
  t0 = bench_clock::now();
  m.restore(back, 2);
  v.restore_s = seconds_since(t0);
  v.exact = back == state;
  back.clear();
  // In place: into a live state of the same shapes (restore_options::in_place).
  cairn::restore_options in_place;
  in_place.in_place = true;
  state_t live = zeroed_like(state);
  cairn_bench::drop_cache(root / "timed");
  t0 = bench_clock::now();
  m.restore(live, 2, in_place);
  v.restore_in_place_s = seconds_since(t0);
  v.exact = v.exact && live == state;
  // Peak memory of each restore beyond its destination, in forked children.
  std::size_t bytes = 0;
  for (const auto& [k, a] : state) bytes += a.num_bytes();
  for (const bool inplace : {false, true}) {
    const auto peak_restore = cairn_bench::run_in_child([&](cairn_bench::phase_report& r) {
      state_t target = inplace ? zeroed_like(state) : state_t{};
      cairn_bench::drop_cache(root / "timed");
      cairn_bench::measured(r, [&] { m.restore(target, 2, inplace ? in_place : cairn::restore_options{}); });
    });
    if (!peak_restore.ok) throw std::runtime_error(std::string("restore peak-memory child: ") + peak_restore.error);
    (inplace ? v.restore_in_place_extra_mib : v.restore_extra_mib) = peak_restore.extra_mib(inplace ? 0 : bytes);
  }
  fs::remove_all(root);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path dir = fs::temp_directory_path();
    std::size_t large = 4, large_mib = 224, small = 2048, small_kib = 64;
    bool quick = false, python = true;
    std::string py;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&] { return cairn_bench::option_value(argc, argv, i); };
      if (a == "--dir") dir = next();
      else if (a == "--large") large = std::stoul(next());
      else if (a == "--large-mib") large_mib = std::stoul(next());
      else if (a == "--small") small = std::stoul(next());
      else if (a == "--small-kib") small_kib = std::stoul(next());
      else if (a == "--no-python") python = false;
      else if (a == "--python") py = next();
      else if (a == "--quick") quick = true;
      else throw std::invalid_argument("unknown option " + a);
    }
    if (quick) large = 2, large_mib = 4, small = 16, small_kib = 16, python = false;
    const cairn_bench::roofline_options ro = cairn_bench::end_to_end_probe(dir, quick);
    const auto roof = cairn_bench::measure_roofline(ro);
    cairn_bench::print_table(std::cout, roof);

    const state_t state = make_state(large, large_mib, small, small_kib);
    std::size_t bytes = 0;
    for (const auto& [k, a] : state) bytes += a.num_bytes();
    const fs::path work = dir / ("cairn_bench_manager_" + std::to_string(::getpid()));
    const variant z = run(work, state, true);
    const variant raw = run(work, state, false);

    const double memcpy_s = static_cast<double>(bytes) / (roof.memcpy_1t_GBps * 1e9);
    const double block_ratio = (z.blocking_s - 0.005) / memcpy_s;
    const double gb = static_cast<double>(bytes) / 1e9;
    auto save_ratio = [&](const variant& v) { return gb / v.save_s / roof.write_durable_GBps; };
    auto restore_ratio = [&](const variant& v) { return gb / v.restore_s / roof.read_cold_GBps; };
    const double state_mib = static_cast<double>(bytes) / mib;

    std::printf("\nstate: %zu arrays of %zu MiB + %zu of %zu KiB = %.0f MiB\n", large, large_mib, small, small_kib, state_mib);
    for (const auto* v : {&z, &raw}) {
      std::printf("%s:\n", v == &z ? "defaults (zarr v3 + zstd 3, fsync)" : "uncompressed");
      std::printf("  async blocking  %7.3f s = %.2f x memcpy of the state (+5 ms allowed; goal <= 1.5); first save %.3f s\n",
                  v->blocking_s, (v->blocking_s - 0.005) / memcpy_s, v->first_blocking_s);
      std::printf("  background save %7.3f s  %5.2f GB/s = %.2f x durable write (goal >= 0.8)\n", v->save_s, gb / v->save_s, save_ratio(*v));
      // Below zero when the restore's arrays took heap pages that earlier work had freed but kept.
      std::printf("  restore, cold   %7.3f s  %5.2f GB/s = %.2f x cold read (goal >= 0.8), into new arrays; beyond them %.0f MiB%s (goal <= 256)\n",
                  v->restore_s, gb / v->restore_s, restore_ratio(*v), v->restore_extra_mib,
                  v->restore_extra_mib < 0 ? " (freed pages reused)" : "");
      std::printf("  restore in place%7.3f s  %5.2f GB/s = %.2f x cold read (goal >= 0.8), into the live state; extra %.0f MiB\n",
                  v->restore_in_place_s, gb / v->restore_in_place_s, gb / v->restore_in_place_s / roof.read_cold_GBps,
                  v->restore_in_place_extra_mib);
      std::printf("  peak extra memory of an async save: %.0f MiB = state + %.0f MiB (goal <= state + 256 MiB); bit-exact: %s\n",
                  v->peak_extra_mib, v->peak_extra_mib - state_mib, v->exact ? "yes" : "NO");
    }

    cairn::json::value pyres = nullptr;
    std::string why_not = quick ? "--quick" : "--no-python";
    if (python) {
      const auto run = cairn_bench::run_python_script(CAIRN_BENCH_SOURCE_DIR, "manager.py", work,
                                                      "--large " + std::to_string(large) + " --large-mib " + std::to_string(large_mib) +
                                                          " --small " + std::to_string(small) + " --small-kib " + std::to_string(small_kib),
                                                      py);
      why_not = run.why_not;
      if (!run.json_line.empty()) pyres = cairn::json::parse(run.json_line, "manager.py output");
    }
    double py_save_ratio = 0, py_restore_ratio = 0;
    if (pyres.is_object()) {
      py_save_ratio = pyres.at("save_s").as_double() / z.save_s;
      py_restore_ratio = pyres.at("restore_s").as_double() / z.restore_s;
      std::printf("Python Orbax %s CheckpointManager: blocking %.3f s, save %.3f s, restore %.3f s, peak extra %.0f MiB\n",
                  pyres.at("orbax_version").as_string().c_str(), pyres.at("blocking_s").as_double(), pyres.at("save_s").as_double(),
                  pyres.at("restore_s").as_double(), pyres.at("save_peak_extra_MiB").as_double());
      std::printf("cairn vs Python (defaults): save %.2f x faster, restore %.2f x faster (goal >= 2)\n", py_save_ratio, py_restore_ratio);
    } else {
      std::printf("Python Orbax: skipped (%s)\n", why_not.c_str());
    }

    std::ostringstream js;
    js << "{\"blocking_ratio\":" << block_ratio << ",\"save_ratio\":" << save_ratio(z) << ",\"restore_ratio\":" << restore_ratio(z)
       << ",\"save_raw_ratio\":" << save_ratio(raw) << ",\"restore_raw_ratio\":" << restore_ratio(raw)
       << ",\"restore_in_place_ratio\":" << gb / z.restore_in_place_s / roof.read_cold_GBps
       << ",\"restore_in_place_raw_ratio\":" << gb / raw.restore_in_place_s / roof.read_cold_GBps
       << ",\"restore_extra_MiB\":" << z.restore_extra_mib << ",\"restore_in_place_extra_MiB\":" << z.restore_in_place_extra_mib
       << ",\"blocking_s\":" << z.blocking_s << ",\"first_blocking_s\":" << z.first_blocking_s << ",\"save_s\":" << z.save_s << ",\"restore_s\":" << z.restore_s
       << ",\"peak_extra_MiB\":" << z.peak_extra_mib << ",\"state_MiB\":" << state_mib << ",\"bit_exact\":" << (z.exact && raw.exact ? 1 : 0)
       << ",\"python_save_ratio\":" << py_save_ratio << ",\"python_restore_ratio\":" << py_restore_ratio << ","
       << cairn_bench::to_json_fields(roof) << "}";
    std::cout << js.str() << "\n";
    return z.exact && raw.exact ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "cairn_bench_manager: " << e.what() << "\n";
    return 1;
  }
}
