// SPDX-License-Identifier: Apache-2.0
// bench/tree: the per-leaf overhead of cairn::save and cairn::restore on trees of many small leaves,
// against this machine's limits measured in the same run (performance.md §5).
//  * tree a: 10,000 float32 [1024] leaves (4 KiB each, 40 MiB); tree b: 100,000 float32 [16] leaves
//    (64 B each, 6.1 MiB); N(0, 0.02)-like weights. Each is a
//    std::map<std::string, std::map<std::string, cairn::host_array>> with 16 leaves per layer,
//    {"layer_0000": {"w_00": ..., ..., "w_15": ...}, ...}, so parameter names look like a model's;
//  * cairn::save (typed, defaults: zarr v3 + zstd 3, OCDBT, fsync of the data files) as step 1 of a
//    fresh root, then the checkpoint's pages are fdatasync'ed and dropped (posix_fadvise DONTNEED) and
//    it is cairn::restore'd into an empty target of the same type (the target's maps take the saved
//    keys); every restored leaf is compared bit for bit with the saved one. The same again with
//    compress=false ("raw"). Medians of --reps repetitions (default 3; none after the first once a
//    variant has taken --rep-budget-s, default 20 s, so a slow tree b runs once);
//  * per-leaf overhead = (time − the time the bytes alone take) / leaves, in µs; goal ≤ 5 µs:
//      raw save:     bytes / W, W = the probe's durable-write rate;
//      raw restore:  bytes / R, R = the probe's cold-read rate. Cold, not memcpy: the restore reads a
//                    checkpoint whose pages were dropped, as a restarted job does, so every byte comes
//                    from the disk first (the copy into the leaves is per-byte work dwarfed by it);
//      zstd save:    bytes / min(cores·zstd3 compress, ratio·W)   (the pipelined limit, as orbax_item;
//                    ratio = the probe's zstd3 ratio on the same kind of weights, not the stored
//                    ratio, which also counts the per-leaf metadata);
//      zstd restore: bytes / min(cores·zstd3 decompress, ratio·R);
//    the per-checkpoint constant (a 16-leaf tree's save and restore, medians of 5) is counted in that
//    figure, as the brief defines it; "less the 16-leaf checkpoint" subtracts it too;
//    diagnostics (one run each): the typed staging copy alone (cairn::to_dynamic), and a cold dynamic
//    cairn::load of the last zstd checkpoint, to tell the typed layer's cost from the item reader's;
//  * Python Orbax on trees of the same names, shapes and dtype (bench/tree.py, through
//    scripts/interop-env.sh's venv): ocp.PyTreeCheckpointer save and cold restore. Python is slow
//    per leaf, so tree.py keeps to a budget (--python-budget-s; default: what keeps the whole run near
//    330 s, between 60 and 240 s): it scales a tree down when its projected time would overrun the
//    budget, and skips the rest once one tree took > 60 s; ratios compare time per leaf, so a scaled
//    tree still compares. Goal: cairn ≥ 10× faster.
// Ends with one JSON line. Usage:
//   cairn_bench_tree [--dir DIR] [--reps N] [--rep-budget-s S] [--leaves-a N] [--leaves-b N] [--no-raw]
//                    [--no-python] [--python PY] [--python-leaves N] [--python-budget-s S] [--quick]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/typed.hpp>
#include <cairn/core/array.hpp>
#include <cairn/json/reader.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "roofline.hpp"

using cairn_bench::drop_cache;

#ifndef CAIRN_BENCH_SOURCE_DIR
#define CAIRN_BENCH_SOURCE_DIR ""
#endif

namespace fs = std::filesystem;
using bench_clock = cairn_bench::detail::clock;
using cairn_bench::detail::median;
using cairn_bench::detail::seconds_since;
using cairn_bench::mib;

namespace {

using layer_t = std::map<std::string, cairn::host_array>;
using tree_t = std::map<std::string, layer_t>;

constexpr std::size_t leaves_per_layer = 16;
constexpr double goal_us = 5.0;           // per-leaf overhead beyond the bytes
constexpr double python_goal_ratio = 10;  // cairn at least this many times faster than Orbax

// ---- data -----------------------------------------------------------------------------------------

std::string layer_name(std::size_t i) {
  char b[32];
  std::snprintf(b, sizeof b, "layer_%04zu", i / leaves_per_layer);
  return b;
}
std::string leaf_name(std::size_t i) {
  char b[32];
  std::snprintf(b, sizeof b, "w_%02zu", i % leaves_per_layer);
  return b;
}

/// `leaves` float32 [elements] arrays of N(0, 0.02) weights: slices of one table of Gaussian draws at
/// per-leaf offsets, with per-leaf random sign flips (the distribution is symmetric), so no two leaves
/// share their bytes.
tree_t make_tree(std::size_t leaves, std::size_t elements, std::uint64_t seed) {
  std::vector<float> const table = cairn_bench::detail::gaussian_weights(std::size_t{1} << 20, seed);
  std::size_t const nb = table.size();
  tree_t tree;
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < leaves; ++i) {
    cairn::host_array a(cairn::dtype::float32, cairn::shape{static_cast<cairn::index_t>(elements)});
    auto* dst = reinterpret_cast<std::uint32_t*>(a.mutable_bytes().data());
    const auto* src = reinterpret_cast<const std::uint32_t*>(table.data());
    std::size_t pos = (i * 1000003u) % nb;
    for (std::size_t j = 0; j < elements; ++j) {
      if (j % 64 == 0) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
      }
      dst[j] = src[pos] ^ (static_cast<std::uint32_t>((x >> (j % 64)) & 1u) << 31);
      pos = pos + 1 == nb ? 0 : pos + 1;
    }
    tree[layer_name(i)].emplace(leaf_name(i), std::move(a));
  }
  return tree;
}

/// Compares every restored leaf with the saved one; returns {leaves compared, bit-exact}.
std::pair<std::size_t, std::size_t> compare(const tree_t& want, const tree_t& got) {
  std::size_t compared = 0, exact = 0;
  for (const auto& [layer, leaves] : want) {
    auto gl = got.find(layer);
    for (const auto& [name, a] : leaves) {
      ++compared;
      if (gl == got.end()) continue;
      auto g = gl->second.find(name);
      if (g == gl->second.end()) continue;
      const cairn::host_array& b = g->second;
      if (b.type() == a.type() && b.shape() == a.shape() && b.num_bytes() == a.num_bytes() &&
          std::memcmp(a.bytes().data(), b.bytes().data(), a.num_bytes()) == 0)
        ++exact;
    }
  }
  std::size_t got_leaves = 0;
  for (const auto& [layer, leaves] : got) got_leaves += leaves.size();
  if (got_leaves != compared) exact = 0;  // extra leaves restored: not the same tree
  return {compared, exact};
}

// ---- files ----------------------------------------------------------------------------------------

std::pair<std::uint64_t, std::size_t> stored_bytes_files(const fs::path& dir) {
  std::uint64_t n = 0;
  std::size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) {
      n += e.file_size();
      ++files;
    }
  return {n, files};
}

// ---- the cairn phases -----------------------------------------------------------------------------

struct variant_result {
  double save_s = 0, restore_s = 0;  // medians
  std::vector<double> save_all, restore_all;
  std::uint64_t stored = 0;
  std::size_t files = 0;
  std::size_t compared = 0, exact = 0;
};

/// Saves `tree` as step 1 of a fresh root up to `reps` times (further repetitions only while the
/// variant has taken less than `budget_s`); after each save, drops the cache and restores into an empty
/// tree, comparing every leaf. The last checkpoint is left in place.
variant_result save_and_restore(const fs::path& root, const tree_t& tree, const cairn::typed_save_options& so, int reps,
                                double budget_s) {
  variant_result v;
  auto const start = bench_clock::now();
  for (int r = 0; r < reps && (r == 0 || seconds_since(start) < budget_s); ++r) {
    fs::remove_all(root);
    auto t0 = bench_clock::now();
    fs::path const step = cairn::save(root, 1, tree, so);
    v.save_all.push_back(seconds_since(t0));
    std::tie(v.stored, v.files) = stored_bytes_files(step);
    drop_cache(step);
    tree_t restored;
    t0 = bench_clock::now();
    cairn::restore(step, restored);
    v.restore_all.push_back(seconds_since(t0));
    auto const [compared, exact] = compare(tree, restored);
    v.compared += compared;
    v.exact += exact;
  }
  v.save_s = median(v.save_all);
  v.restore_s = median(v.restore_all);
  return v;
}

struct tree_result {
  const char* name = "";
  std::size_t leaves = 0, elements = 0, bytes = 0;
  double build_s = 0;
  variant_result z;                  // defaults: zarr v3 + zstd 3
  std::optional<variant_result> raw;  // compress = false
  double stage_s = 0;                // cairn::to_dynamic alone (the typed save's staging copy)
  double dynamic_load_s = 0;         // cairn::load of the zstd checkpoint, cold
};

tree_result run_tree(const char* name, std::size_t leaves, std::size_t elements, const fs::path& work, int reps,
                     double rep_budget_s, bool raw) {
  tree_result t;
  t.name = name;
  t.leaves = leaves;
  t.elements = elements;
  t.bytes = leaves * elements * 4;
  auto t0 = bench_clock::now();
  tree_t const tree = make_tree(leaves, elements, 0xC0FFEE + leaves);
  t.build_s = seconds_since(t0);

  t0 = bench_clock::now();
  {
    cairn::dynamic_tree staged = cairn::to_dynamic(tree);
  }
  t.stage_s = seconds_since(t0);

  fs::path const root = work / name;
  cairn::typed_save_options const defaults;  // a named object: GCC 12 warns (falsely) on a `{}` temporary
  t.z = save_and_restore(root / "zstd", tree, defaults, reps, rep_budget_s);
  // Diagnostic: the last checkpoint again, through the dynamic reader (no typed matching), cold.
  {
    fs::path const step = root / "zstd" / "1";
    drop_cache(step);
    t0 = bench_clock::now();
    cairn::dynamic_tree loaded = cairn::load(step);
    t.dynamic_load_s = seconds_since(t0);
  }
  fs::remove_all(root / "zstd");
  if (raw) {
    cairn::typed_save_options so;
    so.base.pytree.compress = false;
    t.raw = save_and_restore(root / "raw", tree, so, reps, rep_budget_s);
    fs::remove_all(root / "raw");
  }
  return t;
}

// ---- Python ---------------------------------------------------------------------------------------

struct python_result {
  bool ran = false;
  std::string why_not;
  cairn::json::value fields;
  bool has(const std::string& k) const {
    const auto* v = ran ? fields.find(k) : nullptr;
    return v && v->is_number();
  }
  double num(const std::string& k) const { return fields.at(k).as_double(); }
  std::string str(const std::string& k) const {
    const auto* v = ran ? fields.find(k) : nullptr;
    return v && v->is_string() ? v->as_string() : std::string();
  }
};

python_result run_python(const fs::path& work, const std::string& trees, const std::string& py, std::size_t cap,
                         double budget_s) {
  python_result r;
  char budget[32];
  std::snprintf(budget, sizeof budget, "%g", budget_s);
  const auto run = cairn_bench::run_python_script(
      CAIRN_BENCH_SOURCE_DIR, "tree.py", work,
      "--trees " + trees + " --python-leaves " + std::to_string(cap) + " --budget-s " + budget, py);
  r.why_not = run.why_not;
  if (run.json_line.empty()) return r;
  r.fields = cairn::json::parse(run.json_line, "tree.py output");
  r.ran = true;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path dir;
    std::size_t leaves_a = 10000, leaves_b = 100000, python_cap = 0;
    int reps = 3;
    double rep_budget_s = 20;  // no further repetition of a variant once it has taken this long
    bool quick = false, python = true, raw = true;
    double python_budget_s = 0;  // 0: whatever keeps the whole run near 330 s, between 60 and 240 s
    std::string py;
    for (int i = 1; i < argc; ++i) {
      std::string_view a = argv[i];
      auto next = [&] { return cairn_bench::option_value(argc, argv, i); };
      if (a == "--dir") dir = next();
      else if (a == "--reps") reps = std::stoi(next());
      else if (a == "--rep-budget-s") rep_budget_s = std::stod(next());
      else if (a == "--leaves-a") leaves_a = std::stoul(next());
      else if (a == "--leaves-b") leaves_b = std::stoul(next());
      else if (a == "--quick") quick = true;
      else if (a == "--no-python") python = false;
      else if (a == "--no-raw") raw = false;
      else if (a == "--python") py = next();
      else if (a == "--python-leaves") python_cap = std::stoul(next());
      else if (a == "--python-budget-s") python_budget_s = std::stod(next());
      else throw std::invalid_argument("unknown option " + std::string(a));
    }
    if (quick) {
      leaves_a = 500;
      leaves_b = 2000;
      reps = 1;
      python = false;
    }
    if (leaves_a == 0 || leaves_b == 0 || reps < 1) throw std::invalid_argument("leaves and --reps must be at least 1");
    if (dir.empty()) dir = fs::temp_directory_path();
    std::size_t const elements_a = 1024, elements_b = 16;

    const cairn_bench::roofline_options ro = cairn_bench::end_to_end_probe(dir, quick);
    std::size_t const need = ro.io_bytes + 64 * mib + 2 * (leaves_a * elements_a + leaves_b * elements_b) * 4;
    if (auto const space = fs::space(dir); space.available < need) {
      std::cerr << "cairn_bench_tree: \"" << dir.string() << "\" has " << space.available / mib
                << " MiB free; this run needs " << need / mib << " MiB (use --dir)\n";
      return 1;
    }
    double load1 = 0, load5 = 0, load15 = 0;
    if (std::ifstream la("/proc/loadavg"); la) la >> load1 >> load5 >> load15;

    auto const t_all = bench_clock::now();
    auto const roof = cairn_bench::measure_roofline(ro);
    cairn_bench::print_table(std::cout, roof);

    fs::path const work = dir / ("cairn_bench_tree_" + std::to_string(::getpid()));
    fs::remove_all(work);
    // The per-checkpoint constant (directories, a dozen small fsync'ed files, _CHECKPOINT_METADATA):
    // a 16-leaf tree, saved and restored like the others. Reported beside the headline figure.
    variant_result fixed;
    {
      tree_t const tiny = make_tree(leaves_per_layer, elements_b, 7);
      cairn::typed_save_options const defaults;
      fixed = save_and_restore(work / "fixed", tiny, defaults, quick ? 1 : 5, rep_budget_s);
      fs::remove_all(work / "fixed");
    }
    std::vector<tree_result> trees;
    trees.push_back(run_tree("a", leaves_a, elements_a, work, reps, rep_budget_s, raw));
    trees.push_back(run_tree("b", leaves_b, elements_b, work, reps, rep_budget_s, raw));
    double const cairn_s = seconds_since(t_all) - roof.probe_seconds;
    if (python_budget_s <= 0) python_budget_s = std::clamp(330 - seconds_since(t_all), 60.0, 240.0);

    python_result pr;
    if (!python) pr.why_not = quick ? "--quick" : "--no-python";
    else
      pr = run_python(work,
                      "a:" + std::to_string(leaves_a) + ":" + std::to_string(elements_a) + ",b:" +
                          std::to_string(leaves_b) + ":" + std::to_string(elements_b),
                      py, python_cap, python_budget_s);
    fs::remove_all(work);

    // ---- figures ----
    double const W = roof.write_durable_GBps * 1e9, R = roof.read_cold_GBps * 1e9;
    unsigned const cores = roof.memcpy_threads;
    struct figures {
      double save_bytes_s, restore_bytes_s, save_us, restore_us, ratio;
      double save_marginal_us, restore_marginal_us;  // beyond the bytes and the 16-leaf checkpoint's time
      double save_raw_bytes_s = 0, restore_raw_bytes_s = 0, save_raw_us = 0, restore_raw_us = 0;
      double py_save_ratio = -1, py_restore_ratio = -1;
      bool py = false;
    };
    std::vector<figures> fig;
    for (const auto& t : trees) {
      figures f{};
      double const B = static_cast<double>(t.bytes), L = static_cast<double>(t.leaves);
      f.ratio = B / static_cast<double>(std::max<std::uint64_t>(t.z.stored, 1));
      // The data's own compression ratio is the probe's (same N(0, 0.02) weights): the stored ratio
      // also counts the per-leaf metadata, which is overhead, not bytes.
      double const zr = roof.zstd3_f32.ratio;
      double const save_rate = std::min(cores * roof.zstd3_f32.compress_GBps * 1e9, zr * W);
      double const restore_rate = std::min(cores * roof.zstd3_f32.decompress_GBps * 1e9, zr * R);
      f.save_bytes_s = B / save_rate;
      f.restore_bytes_s = B / restore_rate;
      f.save_us = (t.z.save_s - f.save_bytes_s) / L * 1e6;
      f.restore_us = (t.z.restore_s - f.restore_bytes_s) / L * 1e6;
      f.save_marginal_us = (t.z.save_s - f.save_bytes_s - fixed.save_s) / L * 1e6;
      f.restore_marginal_us = (t.z.restore_s - f.restore_bytes_s - fixed.restore_s) / L * 1e6;
      if (t.raw) {
        f.save_raw_bytes_s = B / W;
        f.restore_raw_bytes_s = B / R;
        f.save_raw_us = (t.raw->save_s - f.save_raw_bytes_s) / L * 1e6;
        f.restore_raw_us = (t.raw->restore_s - f.restore_raw_bytes_s) / L * 1e6;
      }
      std::string const p = t.name;
      if (pr.has(p + "_save_s") && pr.has(p + "_restore_s") && pr.has(p + "_leaves")) {
        double const pl = pr.num(p + "_leaves");
        f.py = true;
        f.py_save_ratio = (pr.num(p + "_save_s") / pl) / (t.z.save_s / L);
        f.py_restore_ratio = (pr.num(p + "_restore_s") / pl) / (t.z.restore_s / L);
      }
      fig.push_back(f);
    }

    auto ok = [](double us) { return us <= goal_us ? "(ok)" : "(MISSED)"; };
    std::printf("\nMachine load average before the run: %.2f %.2f %.2f on %u cores\n", load1, load5, load15, cores);
    std::printf("Per-checkpoint constant: a %zu-leaf tree saves in %.1f ms and restores in %.1f ms (medians of %zu)\n",
                leaves_per_layer, fixed.save_s * 1e3, fixed.restore_s * 1e3, fixed.save_all.size());
    std::printf("Per-leaf overhead beyond the bytes, goal <= %.0f us per leaf; medians of up to %d run(s) (no further "
                "run once a variant took %.0f s); save durable (fsync), restore cold (pages dropped) into an empty "
                "target, every leaf compared:\n",
                goal_us, reps, rep_budget_s);
    for (std::size_t i = 0; i < trees.size(); ++i) {
      const auto& t = trees[i];
      const auto& f = fig[i];
      double const L = static_cast<double>(t.leaves);
      std::printf("tree %s: %zu leaves float32 [%zu] (%zu B each, %.2f MiB), %zu per layer; built in %.2f s\n", t.name,
                  t.leaves, t.elements, t.elements * 4, static_cast<double>(t.bytes) / mib, leaves_per_layer, t.build_s);
      std::printf("  %-34s %9s %10s %12s %14s\n", "", "time s", "bytes s", "per leaf us", "beyond bytes us");
      auto row = [&](const char* label, double s, double bytes_s, double us, const char* note) {
        std::printf("  %-34s %9.3f %10.4f %12.2f %14.2f %s%s\n", label, s, bytes_s, s / L * 1e6, us, ok(us), note);
      };
      char note_s[96], note_r[96];
      std::snprintf(note_s, sizeof note_s, "  less the 16-leaf checkpoint: %.2f us", f.save_marginal_us);
      std::snprintf(note_r, sizeof note_r, "  less the 16-leaf checkpoint: %.2f us", f.restore_marginal_us);
      row("save (zarr3+zstd3, fsync)", t.z.save_s, f.save_bytes_s, f.save_us, note_s);
      row("restore (zstd, cold)", t.z.restore_s, f.restore_bytes_s, f.restore_us, note_r);
      if (t.raw) {
        row("save raw (compress=false, fsync)", t.raw->save_s, f.save_raw_bytes_s, f.save_raw_us, "");
        row("restore raw (cold)", t.raw->restore_s, f.restore_raw_bytes_s, f.restore_raw_us, "");
      }
      std::printf("  on disk (zstd): %.2f MiB in %zu files, compression ratio %.3f\n",
                  static_cast<double>(t.z.stored) / mib, t.z.files, f.ratio);
      std::printf("  diagnostics, one run each: staging copy (cairn::to_dynamic) %.3f s = %.2f us/leaf; "
                  "dynamic cairn::load (cold, zstd) %.3f s = %.2f us/leaf\n",
                  t.stage_s, t.stage_s / L * 1e6, t.dynamic_load_s, t.dynamic_load_s / L * 1e6);
      std::printf("  all runs: save");
      for (double s : t.z.save_all) std::printf(" %.3f", s);
      std::printf(" s; restore");
      for (double s : t.z.restore_all) std::printf(" %.3f", s);
      std::printf(" s\n");
      std::size_t const compared = t.z.compared + (t.raw ? t.raw->compared : 0);
      std::size_t const exact = t.z.exact + (t.raw ? t.raw->exact : 0);
      std::printf("  bit-exact: %zu of %zu restored leaves\n", exact, compared);
    }
    std::printf("Byte terms: raw save at W = %.3f GB/s (durable write), raw restore at R = %.3f GB/s (cold read); "
                "zstd save / restore at min(%u x zstd3 %.3f / %.3f GB/s, %.3f x W / R), %.3f = the probe's zstd3 ratio on the "
                "same kind of weights\n",
                W / 1e9, R / 1e9, cores, roof.zstd3_f32.compress_GBps, roof.zstd3_f32.decompress_GBps,
                roof.zstd3_f32.ratio, roof.zstd3_f32.ratio);
    std::printf("cairn part took %.1f s (probe %.1f s); Python budget %.0f s\n", cairn_s, roof.probe_seconds,
                python_budget_s);

    if (pr.ran) {
      std::printf("Python Orbax %s (jax %s, numpy %s), ocp.PyTreeCheckpointer, cold restore; goal cairn >= %.0f x "
                  "faster (per leaf, against cairn's default zstd save / restore):\n",
                  pr.str("orbax_version").c_str(), pr.str("jax_version").c_str(), pr.str("numpy_version").c_str(),
                  python_goal_ratio);
      for (std::size_t i = 0; i < trees.size(); ++i) {
        const auto& t = trees[i];
        const auto& f = fig[i];
        std::string const p = t.name;
        if (!f.py) {
          std::string why = pr.str(p + "_skipped");
          std::printf("  tree %s: skipped (%s)\n", t.name, why.empty() ? "no figures" : why.c_str());
          continue;
        }
        double const pl = pr.num(p + "_leaves");
        std::printf("  tree %s: %.0f leaves%s: save %.2f s (%.1f us/leaf), restore %.2f s (%.1f us/leaf); "
                    "cairn = %.1f x / %.1f x faster %s\n",
                    t.name, pl, pl != static_cast<double>(t.leaves) ? " (scaled down; ratios per leaf)" : "",
                    pr.num(p + "_save_s"), pr.num(p + "_save_s") / pl * 1e6, pr.num(p + "_restore_s"),
                    pr.num(p + "_restore_s") / pl * 1e6, f.py_save_ratio, f.py_restore_ratio,
                    std::min(f.py_save_ratio, f.py_restore_ratio) >= python_goal_ratio ? "(ok)" : "(MISSED)");
        if (auto s = pr.str(p + "_scaled"); !s.empty()) std::printf("    %s\n", s.c_str());
        if (pr.has(p + "_bit_exact") && pr.num(p + "_bit_exact") != 1)
          std::printf("    WARNING: Python's restore was not bit-exact\n");
      }
    } else {
      std::printf("Python Orbax: skipped (%s)\n", pr.why_not.c_str());
    }

    // ---- the JSON line ----
    std::string js;
    char buf[128];
    auto field = [&](const std::string& key, double v, const char* fmt = "%.4f") {
      std::snprintf(buf, sizeof buf, fmt, v);
      js += js.empty() ? "{\"" : ",\"";
      js += key;
      js += "\":";
      js += buf;
    };
    auto opt = [&](const std::string& key, bool have, double v, const char* fmt = "%.4f") {
      if (have) field(key, v, fmt);
      else js += ",\"" + key + "\":null";
    };
    bool exact = true;
    double worst_us = -1e300, py_save_min = 1e300, py_restore_min = 1e300;
    bool any_py = false;
    for (std::size_t i = 0; i < trees.size(); ++i) {
      const auto& t = trees[i];
      const auto& f = fig[i];
      std::string const p = std::string("tree_") + t.name + "_";
      double const L = static_cast<double>(t.leaves);
      field(p + "save_per_leaf_us", f.save_us, "%.3f");
      field(p + "restore_per_leaf_us", f.restore_us, "%.3f");
      field(p + "save_marginal_per_leaf_us", f.save_marginal_us, "%.3f");
      field(p + "restore_marginal_per_leaf_us", f.restore_marginal_us, "%.3f");
      opt(p + "save_raw_per_leaf_us", t.raw.has_value(), f.save_raw_us, "%.3f");
      opt(p + "restore_raw_per_leaf_us", t.raw.has_value(), f.restore_raw_us, "%.3f");
      field(p + "save_s", t.z.save_s);
      field(p + "restore_s", t.z.restore_s);
      field(p + "save_total_per_leaf_us", t.z.save_s / L * 1e6, "%.3f");
      field(p + "restore_total_per_leaf_us", t.z.restore_s / L * 1e6, "%.3f");
      opt(p + "save_raw_s", t.raw.has_value(), t.raw ? t.raw->save_s : 0);
      opt(p + "restore_raw_s", t.raw.has_value(), t.raw ? t.raw->restore_s : 0);
      field(p + "save_bytes_s", f.save_bytes_s, "%.5f");
      field(p + "restore_bytes_s", f.restore_bytes_s, "%.5f");
      field(p + "stage_per_leaf_us", t.stage_s / L * 1e6, "%.3f");
      field(p + "dynamic_load_per_leaf_us", t.dynamic_load_s / L * 1e6, "%.3f");
      field(p + "leaves", L, "%.0f");
      field(p + "runs", static_cast<double>(t.z.save_all.size()), "%.0f");
      field(p + "leaf_bytes", static_cast<double>(t.elements * 4), "%.0f");
      field(p + "compression_ratio", f.ratio, "%.4f");
      field(p + "stored_files", static_cast<double>(t.z.files), "%.0f");
      opt(p + "python_save_s", f.py, f.py ? pr.num(std::string(t.name) + "_save_s") : 0);
      opt(p + "python_restore_s", f.py, f.py ? pr.num(std::string(t.name) + "_restore_s") : 0);
      opt(p + "python_leaves", f.py, f.py ? pr.num(std::string(t.name) + "_leaves") : 0, "%.0f");
      opt(p + "cairn_vs_python_save_ratio", f.py, f.py_save_ratio, "%.2f");
      opt(p + "cairn_vs_python_restore_ratio", f.py, f.py_restore_ratio, "%.2f");
      exact = exact && t.z.exact == t.z.compared && (!t.raw || t.raw->exact == t.raw->compared);
      worst_us = std::max({worst_us, f.save_us, f.restore_us});
      if (t.raw) worst_us = std::max({worst_us, f.save_raw_us, f.restore_raw_us});
      if (f.py) {
        any_py = true;
        py_save_min = std::min(py_save_min, f.py_save_ratio);
        py_restore_min = std::min(py_restore_min, f.py_restore_ratio);
      }
    }
    field("checkpoint_16_leaves_save_s", fixed.save_s, "%.4f");
    field("checkpoint_16_leaves_restore_s", fixed.restore_s, "%.4f");
    field("worst_per_leaf_us", worst_us, "%.3f");
    field("per_leaf_goal_us", goal_us, "%.1f");
    field("per_leaf_goal_met", worst_us <= goal_us ? 1 : 0, "%.0f");
    field("bit_exact", exact ? 1 : 0, "%.0f");
    field("python_available", pr.ran ? 1 : 0, "%.0f");
    // Python: tree a's times (the tree every run attempts); the ratios are the worst over the trees run.
    opt("python_save_s", fig[0].py, fig[0].py ? pr.num("a_save_s") : 0);
    opt("python_restore_s", fig[0].py, fig[0].py ? pr.num("a_restore_s") : 0);
    opt("cairn_vs_python_save_ratio", any_py, py_save_min, "%.2f");
    opt("cairn_vs_python_restore_ratio", any_py, py_restore_min, "%.2f");
    field("python_goal_ratio", python_goal_ratio, "%.0f");
    field("reps_max", reps, "%.0f");
    field("cairn_part_s", cairn_s, "%.1f");
    field("load_avg_1m", load1, "%.2f");
    js += "," + cairn_bench::to_json_fields(roof) + "}";
    std::printf("%s\n", js.c_str());
    return exact ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "cairn_bench_tree: " << e.what() << "\n";
    return 1;
  }
}
