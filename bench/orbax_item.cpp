// SPDX-License-Identifier: Apache-2.0
// bench/orbax_item: a whole Orbax PyTree checkpoint through cairn::save and cairn::load, against this
// machine's limits measured in the same run (performance.md §5).
//  * the tree: N float32 arrays of M MiB (default 64 × 64 MiB = 4 GiB, shape [4096, 4096]) of
//    N(0, 0.02)-like weights, saved as step 1 under a fresh root, zarr v3 + zstd (cairn's default,
//    Orbax V1's format), then the same tree uncompressed (compress=false);
//  * each save is durable (data files fsync'ed), each load is cold (the checkpoint's pages are
//    fdatasync'ed and dropped with posix_fadvise(DONTNEED) first), and every loaded array is compared
//    bit for bit with the array saved;
//  * peak memory: each save and each load runs in a forked child (forked after the tree is built, so
//    the child shares the tree's pages copy-on-write and only reads them). The child resets its RSS
//    high-water mark by writing "5" to /proc/self/clear_refs, runs the phase, and reports
//    VmHWM − VmRSS(before) through a pipe: the most memory the phase held at once beyond what the
//    process already had. For a load the restored arrays themselves (N × M MiB) are subtracted. Goal:
//    ≤ 1.5 × the largest array. When a save misses it, the item writer (`write_pytree_item`) is run
//    alone the same way on the first 4 arrays, to tell the step-level overhead of `cairn::save` from
//    the item writer's. The first-touch rate of fresh memory is measured too: on a VM it can be the
//    real limit of code that allocates a new buffer per array;
//  * Python Orbax on the same-shaped tree (bench/orbax_item.py, through scripts/interop-env.sh's venv):
//    StandardCheckpointer (zarr v2, zstd 1) and the V1 API (zarr v3, zstd 3), save and cold restore.
// Ends with one JSON line. Usage:
//   cairn_bench_orbax_item [--dir DIR] [--arrays N] [--array-mib M] [--no-uncompressed] [--no-python]
//                          [--python PY] [--quick]
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/pytree_item.hpp>
#include <cairn/core/array.hpp>
#include <cairn/json/reader.hpp>
#include <cairn/tree/dynamic_tree.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "roofline.hpp"

using cairn_bench::drop_cache;
using cairn_bench::measured;
using cairn_bench::phase_report;
using cairn_bench::phase_result;
using cairn_bench::run_in_child;
using cairn_bench::status_kib;

#ifndef CAIRN_BENCH_SOURCE_DIR
#define CAIRN_BENCH_SOURCE_DIR ""
#endif

namespace fs = std::filesystem;
using bench_clock = cairn_bench::detail::clock;
using cairn_bench::detail::seconds_since;
using cairn_bench::mib;

namespace {

// ---- memory ---------------------------------------------------------------------------------------

// ---- data -----------------------------------------------------------------------------------------

/// [64·M, 4096] float32 for an array of M MiB ([4096, 4096] for 64 MiB), as orbax_item.py.
std::vector<cairn::index_t> shape_for(std::size_t array_mib) {
  return {static_cast<cairn::index_t>(array_mib) * 64, 4096};
}

/// N(0, 0.02) float32 weights, cheaply: one table of up to 4 Mi Gaussian draws, rotated by a per-array
/// offset and with random sign flips (the distribution is symmetric, so it stays N(0, 0.02)); no two
/// arrays and no two 16 MiB stretches of one array share their bytes, so nothing below can deduplicate.
void fill_weights(cairn::mutable_byte_view out, const std::vector<float>& table, std::uint64_t seed) {
  std::size_t const count = out.size() / 4, nb = table.size();
  auto* dst = reinterpret_cast<std::uint32_t*>(out.data());
  const auto* src = reinterpret_cast<const std::uint32_t*>(table.data());
  std::size_t pos = (seed * 1000003u) % nb, j = 0;
  while (j < count) {
    std::size_t const run = std::min(nb - pos, count - j);
    std::memcpy(dst + j, src + pos, run * 4);
    j += run;
    pos = 0;
  }
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (j = 0; j < count; j += 64) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::size_t const end = std::min<std::size_t>(64, count - j);
    for (std::size_t k = 0; k < end; ++k) dst[j + k] ^= static_cast<std::uint32_t>((x >> k) & 1u) << 31;
  }
}

std::string layer_name(std::size_t i) {
  char b[32];
  std::snprintf(b, sizeof b, "layer_%02zu", i);
  return b;
}

// ---- files ----------------------------------------------------------------------------------------

std::uint64_t stored_bytes(const fs::path& dir) {
  std::uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

// ---- the phases -----------------------------------------------------------------------------------

constexpr std::size_t diagnosis_arrays = 4;

/// First-touch rate of fresh anonymous memory (mmap, memset, munmap): every new buffer pays it, and on
/// a VM with free page reporting it can be far below memcpy. Median of `reps`.
double first_touch_gbps(std::size_t bytes, int reps) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto const t0 = bench_clock::now();
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw cairn::io_error("mmap", errno);
    std::memset(p, 1, bytes);
    ::munmap(p, bytes);
    t.push_back(seconds_since(t0));
  }
  return static_cast<double>(bytes) / cairn_bench::detail::median(t) / 1e9;
}

struct variant_result {
  phase_result save, load, item_writer;
  bool diagnosed = false;
  std::uint64_t stored = 0;
};

/// Saves `tree` as step 1 of a fresh root, drops the cache, loads it back and compares every array.
variant_result save_and_load(const fs::path& root, cairn::dynamic_tree& tree, const cairn::save_options& so,
                             const std::vector<std::string>& names, std::size_t largest, double goal) {
  variant_result v;
  fs::remove_all(root);
  v.save = run_in_child([&](phase_report& r) { measured(r, [&] { cairn::save(root, 1, tree, so); }); });
  if (!v.save.ok) throw std::runtime_error(std::string("save failed: ") + v.save.error);
  fs::path const step = root / "1";
  v.stored = stored_bytes(step);
  drop_cache(step);
  v.load = run_in_child([&](phase_report& r) {
    cairn::dynamic_tree loaded;
    measured(r, [&] { loaded = cairn::load(step); });
    const auto& got = loaded.at(cairn::key_path{cairn::key("default"), cairn::key("params")});
    const auto& want = tree.at(cairn::key("params"));
    for (const auto& name : names) {
      ++r.verified;
      if (got.at(cairn::key(name)).as_array() == want.at(cairn::key(name)).as_array()) ++r.exact;
    }
  });
  if (!v.load.ok) throw std::runtime_error(std::string("load failed: ") + v.load.error);
  fs::remove_all(root);

  // The goal is missed: is it cairn::save's step layer or the item writer? Save an item of the first
  // few arrays alone (the item writer streams leaf by leaf, so its peak does not grow with their number).
  if (v.save.extra_mib() > goal * static_cast<double>(largest) / mib) {
    fs::path const item = root / "item_only" / "default";
    v.item_writer = run_in_child([&](phase_report& r) {
      // Moving leaves moves buffer pointers in the child's copy of the tree; the array bytes stay shared.
      cairn::dynamic_tree sub;
      auto& from = tree["params"];
      auto& to = sub["params"];
      for (std::size_t i = 0; i < std::min<std::size_t>(names.size(), diagnosis_arrays); ++i)
        to[names[i]] = std::move(from[names[i]]);
      measured(r, [&] { cairn::write_pytree_item(item, sub, so.pytree); });
    });
    v.diagnosed = true;
    fs::remove_all(root);
  }
  return v;
}

struct python_result {
  bool ran = false;
  std::string why_not;
  cairn::json::value fields = cairn::json::value::object();
  double num(const char* key) const {
    const auto* v = fields.find(key);
    return v && v->is_number() ? v->as_double() : -1;
  }
};

python_result run_python(const fs::path& work, std::size_t arrays, std::size_t array_mib, const std::string& py) {
  python_result r;
  const auto run = cairn_bench::run_python_script(CAIRN_BENCH_SOURCE_DIR, "orbax_item.py", work,
                                                  "--arrays " + std::to_string(arrays) + " --array-mib " + std::to_string(array_mib), py);
  r.why_not = run.why_not;
  if (run.json_line.empty()) return r;
  r.fields = cairn::json::parse(run.json_line, "orbax_item.py output");
  r.ran = true;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path dir;
    std::size_t arrays = 64, array_mib = 64;
    bool quick = false, python = true, uncompressed = true;
    std::string py;
    for (int i = 1; i < argc; ++i) {
      std::string_view a = argv[i];
      auto next = [&] { return cairn_bench::option_value(argc, argv, i); };
      if (a == "--dir") dir = next();
      else if (a == "--arrays") arrays = std::stoul(next());
      else if (a == "--array-mib") array_mib = std::stoul(next());
      else if (a == "--quick") quick = true;
      else if (a == "--no-python") python = false;
      else if (a == "--no-uncompressed") uncompressed = false;
      else if (a == "--python") py = next();
      else throw std::invalid_argument("unknown option " + std::string(a));
    }
    if (quick) {
      arrays = 4;
      array_mib = 4;
      python = false;
    }
    if (arrays == 0 || array_mib == 0) throw std::invalid_argument("--arrays and --array-mib must be at least 1");
    if (dir.empty()) dir = fs::temp_directory_path();
    std::size_t const array_bytes = array_mib * mib, total = arrays * array_bytes;
    constexpr double goal = 1.5;  // peak memory beyond the data, in largest arrays

    // Disk: one checkpoint at a time (removed after its load), at most the data plus padding and
    // metadata; the probe's scratch file comes and goes before.
    cairn_bench::roofline_options ro;
    ro.dir = dir;
    ro.io_bytes = std::min<std::size_t>(total, std::size_t{1} << 30);  // a capped probe keeps the run short
    if (quick) {
      ro.memcpy_bytes = 8 * mib;
      ro.zstd_bytes = 4 * mib;
      ro.repetitions = 1;
    }
    std::size_t const need = std::max(ro.io_bytes + 64 * mib, total + total / 10 + 512 * mib);
    if (auto const space = fs::space(dir); space.available < need) {
      std::cerr << "cairn_bench_orbax_item: \"" << dir.string() << "\" has " << space.available / mib
                << " MiB free; this run needs " << need / mib << " MiB (use --dir, or fewer --arrays / --array-mib)\n";
      return 1;
    }

    auto const roof = cairn_bench::measure_roofline(ro);
    cairn_bench::print_table(std::cout, roof);

    // The tree, built once in the parent; children fork from here.
    auto const t_gen = bench_clock::now();
    std::vector<float> const table =
        cairn_bench::detail::gaussian_weights(std::min<std::size_t>(array_bytes / 4, std::size_t{1} << 22), 0xC0FFEE);
    cairn::dynamic_tree tree;
    std::vector<std::string> names;
    {
      auto& params = tree["params"];
      for (std::size_t i = 0; i < arrays; ++i) {
        cairn::host_array a(cairn::dtype::float32, cairn::shape(shape_for(array_mib)));
        fill_weights(a.mutable_bytes(), table, i + 1);
        names.push_back(layer_name(i));
        params[names.back()] = std::move(a);
      }
    }
    double const gen_s = seconds_since(t_gen);
    double const touch_GBps = first_touch_gbps(quick ? 16 * mib : 512 * mib, 3);

    fs::path const work = dir / ("cairn_bench_orbax_item_" + std::to_string(::getpid()));
    fs::remove_all(work);
    cairn::save_options so;  // zarr v3, zstd (level 3), frame checksums, fsync of the data files
    variant_result const z = save_and_load(work / "zstd", tree, so, names, array_bytes, goal);
    std::optional<variant_result> raw;
    if (uncompressed) {
      cairn::save_options su;
      su.pytree.compress = false;
      raw = save_and_load(work / "raw", tree, su, names, array_bytes, goal);
    }

    // Python last, with the tree freed (Orbax holds its own copy plus the restored one).
    tree = cairn::dynamic_tree();
    python_result pr;
    if (!python) pr.why_not = quick ? "--quick" : "--no-python";
    else pr = run_python(work, arrays, array_mib, py);
    fs::remove_all(work);

    // ---- figures ----
    double const T = static_cast<double>(total), W = roof.write_durable_GBps, R = roof.read_cold_GBps;
    double const largest_mib = static_cast<double>(array_bytes) / mib;
    auto gbps = [&](double s) { return T / std::max(s, 1e-9) / 1e9; };
    double const save_GBps = gbps(z.save.seconds), load_GBps = gbps(z.load.seconds);
    double const ratio_z = T / static_cast<double>(std::max<std::uint64_t>(z.stored, 1));
    unsigned const cores = roof.memcpy_threads;
    // performance.md G8: pipelined compressed save ≤ min(cores·c_z, ratio·W); load ≤ min(cores·d_z, ratio·R).
    double const save_limit_z = std::min(cores * roof.zstd3_f32.compress_GBps, ratio_z * W);
    double const load_limit_z = std::min(cores * roof.zstd3_f32.decompress_GBps, ratio_z * R);
    double const save_extra = z.save.extra_mib(), load_extra = z.load.extra_mib(total);
    bool const exact = z.load.exact == z.load.verified && (!raw || raw->load.exact == raw->load.verified);
    std::uint64_t const verified = z.load.verified + (raw ? raw->load.verified : 0);

    auto line = [](const char* label, double v, const char* unit, const std::string& tail = "") {
      std::printf("  %-44s %9.3f %-5s%s\n", label, v, unit, tail.c_str());
    };
    auto ratio_note = [](double r, const char* what, const char* goal_text) {
      char b[160];
      std::snprintf(b, sizeof b, "= %.2f x %s%s", r, what, goal_text);
      return std::string(b);
    };
    std::printf("\nOrbax PyTree item: %zu float32 arrays of %zu MiB (shape [%lld, %lld]), %.2f GiB; built in %.1f s\n",
                arrays, array_mib, static_cast<long long>(shape_for(array_mib)[0]),
                static_cast<long long>(shape_for(array_mib)[1]), T / (1 << 30), gen_s);
    std::printf("First touch of fresh memory (mmap + memset + munmap, %s): %.2f GB/s = %.2f x memcpy 1 thread\n",
                quick ? "16 MiB" : "512 MiB", touch_GBps, touch_GBps / roof.memcpy_1t_GBps);
    std::printf("cairn::save (zarr v3, zstd 3, fsync) / cold cairn::load, one run each:\n");
    char secs[64];
    std::snprintf(secs, sizeof secs, " (%.1f s)", z.save.seconds);
    line("save", save_GBps, "GB/s", ratio_note(save_GBps / W, "durable write", secs));
    line("  stored / compression ratio", ratio_z, "x", "  (" + std::to_string(z.stored / mib) + " MiB on disk)");
    line("  save vs min(cores*zstd3, ratio*W)", save_GBps / save_limit_z, "x",
         "  (limit " + std::to_string(save_limit_z).substr(0, 5) + " GB/s; goal >= 0.6 on the VM)");
    std::snprintf(secs, sizeof secs, " (%.1f s)", z.load.seconds);
    line("load (cold)", load_GBps, "GB/s", ratio_note(load_GBps / R, "cold read", secs));
    line("  load vs min(cores*unzstd3, ratio*R)", load_GBps / load_limit_z, "x",
         "  (limit " + std::to_string(load_limit_z).substr(0, 5) + " GB/s; goal >= 0.6 on the VM)");
    if (raw) {
      std::printf("cairn::save / load uncompressed (compress=false):\n");
      std::snprintf(secs, sizeof secs, " (%.1f s; G2 goal >= 0.6)", raw->save.seconds);
      line("save", gbps(raw->save.seconds), "GB/s", ratio_note(gbps(raw->save.seconds) / W, "durable write", secs));
      std::snprintf(secs, sizeof secs, " (%.1f s; G4 goal >= 0.6)", raw->load.seconds);
      line("load (cold)", gbps(raw->load.seconds), "GB/s", ratio_note(gbps(raw->load.seconds) / R, "cold read", secs));
    }
    std::printf("Peak memory beyond the data (VmHWM - VmRSS before, forked child%s); goal <= %.1f x largest array = %.0f MiB:\n",
                z.save.hwm_reset ? ", clear_refs reset" : ", HWM at fork", goal, goal * largest_mib);
    auto mem = [&](const char* label, double extra) {
      char b[96];
      std::snprintf(b, sizeof b, "= %.2f x largest array %s", extra / largest_mib, extra / largest_mib <= goal ? "(ok)" : "(MISSED)");
      line(label, extra, "MiB", b);
    };
    mem("save (zstd)", save_extra);
    mem("load (zstd), beyond the restored arrays", load_extra);
    if (raw) {
      mem("save (uncompressed)", raw->save.extra_mib());
      mem("load (uncompressed), beyond the restored arrays", raw->load.extra_mib(total));
    }
    if (z.diagnosed) mem("  diagnosis: write_pytree_item alone (zstd)", z.item_writer.extra_mib());
    if (raw && raw->diagnosed) mem("  diagnosis: write_pytree_item alone (raw)", raw->item_writer.extra_mib());
    if (z.diagnosed || (raw && raw->diagnosed))
      std::printf("  (diagnosis: an item of the first %zu arrays written by write_pytree_item, no step directory)\n",
                  std::min(arrays, diagnosis_arrays));
    std::printf("Bit-exact: %llu of %llu arrays loaded compared equal to the arrays saved\n",
                static_cast<unsigned long long>(z.load.exact + (raw ? raw->load.exact : 0)),
                static_cast<unsigned long long>(verified));

    double py_save = -1, py_load = -1, py0_save = -1, py0_load = -1;
    if (pr.ran) {
      py_save = gbps(pr.num("v1_save_s"));
      py_load = gbps(pr.num("v1_load_s"));
      py0_save = gbps(pr.num("v0_save_s"));
      py0_load = gbps(pr.num("v0_load_s"));
      std::printf("Python Orbax %s (jax %s, %g CPU device), same shapes, one run each:\n",
                  pr.fields.at("orbax_version").as_string().c_str(), pr.fields.at("jax_version").as_string().c_str(),
                  pr.num("cpu_devices"));
      auto vs = [](double r) {
        char b[64];
        std::snprintf(b, sizeof b, "cairn = %.2f x Python", r);
        return std::string(b);
      };
      auto also = [](double v, const char* unit) {
        char b[64];
        std::snprintf(b, sizeof b, "/ %.1f %s", v, unit);
        return std::string(b);
      };
      line("V1 save (zarr v3, zstd 3)", py_save, "GB/s", vs(save_GBps / py_save));
      line("V1 load (cold)", py_load, "GB/s", vs(load_GBps / py_load));
      line("V0 StandardCheckpointer save (zarr v2, zstd 1)", py0_save, "GB/s", vs(save_GBps / py0_save));
      line("V0 StandardCheckpointer restore (cold)", py0_load, "GB/s", vs(load_GBps / py0_load));
      line("V1 peak beyond the data: save / load", pr.num("v1_save_peak_extra_MiB"), "MiB",
           also(pr.num("v1_load_peak_extra_MiB"), "MiB"));
      line("V0 peak beyond the data: save / restore", pr.num("v0_save_peak_extra_MiB"), "MiB",
           also(pr.num("v0_load_peak_extra_MiB"), "MiB"));
      line("V1 compression ratio", T / pr.num("v1_stored_bytes"), "x");
      if (pr.num("bit_exact") != 1) std::printf("  WARNING: Python's restore was not bit-exact\n");
    } else {
      std::printf("Python Orbax: skipped (%s)\n", pr.why_not.c_str());
    }

    // ---- the JSON line ----
    std::string js;
    char buf[128];
    auto field = [&](const char* key, double v, const char* fmt = "%.4f") {
      std::snprintf(buf, sizeof buf, fmt, v);
      js += js.empty() ? "{" : ",";
      js += '"';
      js += key;
      js += "\":";
      js += buf;
    };
    auto opt = [&](const char* key, bool have, double v, const char* fmt = "%.4f") {
      if (have) field(key, v, fmt);
      else {
        js += ",\"";
        js += key;
        js += "\":null";
      }
    };
    field("save_GBps", save_GBps);
    field("save_vs_durable_write_ratio", save_GBps / W, "%.3f");
    field("save_vs_compressed_limit_ratio", save_GBps / save_limit_z, "%.3f");
    field("load_GBps", load_GBps);
    field("load_vs_cold_read_ratio", load_GBps / R, "%.3f");
    field("load_vs_compressed_limit_ratio", load_GBps / load_limit_z, "%.3f");
    field("save_s", z.save.seconds, "%.3f");
    field("load_s", z.load.seconds, "%.3f");
    field("compression_ratio", ratio_z, "%.4f");
    field("stored_MiB", static_cast<double>(z.stored) / mib, "%.1f");
    opt("save_uncompressed_GBps", raw.has_value(), raw ? gbps(raw->save.seconds) : 0);
    opt("save_uncompressed_vs_durable_write_ratio", raw.has_value(), raw ? gbps(raw->save.seconds) / W : 0, "%.3f");
    opt("load_uncompressed_GBps", raw.has_value(), raw ? gbps(raw->load.seconds) : 0);
    opt("load_uncompressed_vs_cold_read_ratio", raw.has_value(), raw ? gbps(raw->load.seconds) / R : 0, "%.3f");
    field("save_peak_extra_MiB", save_extra, "%.1f");
    field("load_peak_extra_MiB", load_extra, "%.1f");
    field("save_peak_extra_vs_largest_array_ratio", save_extra / largest_mib, "%.3f");
    field("load_peak_extra_vs_largest_array_ratio", load_extra / largest_mib, "%.3f");
    opt("save_uncompressed_peak_extra_MiB", raw.has_value(), raw ? raw->save.extra_mib() : 0, "%.1f");
    opt("load_uncompressed_peak_extra_MiB", raw.has_value(), raw ? raw->load.extra_mib(total) : 0, "%.1f");
    opt("save_uncompressed_peak_extra_vs_largest_array_ratio", raw.has_value(), raw ? raw->save.extra_mib() / largest_mib : 0, "%.3f");
    opt("load_uncompressed_peak_extra_vs_largest_array_ratio", raw.has_value(), raw ? raw->load.extra_mib(total) / largest_mib : 0, "%.3f");
    opt("item_writer_peak_extra_MiB", z.diagnosed, z.item_writer.extra_mib(), "%.1f");
    opt("item_writer_uncompressed_peak_extra_MiB", raw && raw->diagnosed, raw ? raw->item_writer.extra_mib() : 0, "%.1f");
    field("first_touch_GBps", touch_GBps);
    opt("save_uncompressed_s", raw.has_value(), raw ? raw->save.seconds : 0, "%.3f");
    opt("load_uncompressed_s", raw.has_value(), raw ? raw->load.seconds : 0, "%.3f");
    field("peak_goal_largest_arrays", goal, "%.1f");
    field("hwm_reset", z.save.hwm_reset, "%.0f");
    field("verified_arrays", static_cast<double>(verified), "%.0f");
    field("bit_exact", exact ? 1 : 0, "%.0f");
    field("python_available", pr.ran ? 1 : 0, "%.0f");
    opt("python_save_GBps", pr.ran, py_save);
    opt("python_load_GBps", pr.ran, py_load);
    opt("cairn_vs_python_save_ratio", pr.ran, save_GBps / py_save, "%.3f");
    opt("cairn_vs_python_load_ratio", pr.ran, load_GBps / py_load, "%.3f");
    opt("python_v0_save_GBps", pr.ran, py0_save);
    opt("python_v0_load_GBps", pr.ran, py0_load);
    opt("cairn_vs_python_v0_save_ratio", pr.ran, save_GBps / py0_save, "%.3f");
    opt("cairn_vs_python_v0_load_ratio", pr.ran, load_GBps / py0_load, "%.3f");
    opt("python_save_peak_extra_MiB", pr.ran, pr.num("v1_save_peak_extra_MiB"), "%.1f");
    opt("python_load_peak_extra_MiB", pr.ran, pr.num("v1_load_peak_extra_MiB"), "%.1f");
    opt("python_compression_ratio", pr.ran, T / pr.num("v1_stored_bytes"), "%.4f");
    field("arrays", static_cast<double>(arrays), "%.0f");
    field("array_MiB", static_cast<double>(array_mib), "%.0f");
    field("total_MiB", T / mib, "%.0f");
    js += "," + cairn_bench::to_json_fields(roof) + "}";
    std::printf("%s\n", js.c_str());
    return exact ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "cairn_bench_orbax_item: " << e.what() << "\n";
    return 1;
  }
}
