// SPDX-License-Identifier: Apache-2.0
// bench/reshard: restoring a sharded array onto a different sharding against restoring it onto the
// sharding it was saved with (performance.md §5; the goals: ≤ 1.25× the time, ≤ 1.1× the bytes
// needed).
//  * a 1 GiB float32 [16384, 16384] array of N(0, 0.02)-like weights on 4 simulated host devices, saved
//    as P(data, model) on {data:2, model:2} (4 chunks of 256 MiB; cairn::save defaults: zarr v3 + zstd,
//    fsync), its pages dropped before every restore (a restarted job reads from the disk);
//  * same-sharding restore: target P(data, model) — each chunk is exactly one device's box and is
//    decoded straight into it;
//  * resharded restore: target P(data+model, -) — row bands, each built from two chunks, every chunk
//    shared by two devices (decoded once into a staging buffer, then copied to both);
//  * bytes read: the process's read-syscall bytes (/proc/self/io rchar) during the restore, against the
//    bytes the target devices need (1 GiB); the plan's own cost summary is printed too;
//  * medians of --reps (default 3) alternating runs; the roofline probe runs first, and restore GB/s is
//    also shown against its cold-read rate.
// Ends with one JSON line. Usage: cairn_bench_reshard [--dir DIR] [--reps N] [--mib N] [--quick]
#include <unistd.h>

#include <cairn/backend/host.hpp>
#include <cairn/checkpoint/typed.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "bench_util.hpp"
#include "roofline.hpp"

namespace fs = std::filesystem;
using cairn_bench::mib;
using cairn_bench::detail::median;
using cairn_bench::detail::seconds_since;
using bench_clock = cairn_bench::detail::clock;

namespace {

std::uint64_t rchar() {
  std::ifstream io("/proc/self/io");
  std::string key;
  std::uint64_t v = 0;
  while (io >> key >> v)
    if (key == "rchar:") return v;
  return 0;
}

struct run {
  double seconds = 0;
  std::uint64_t bytes = 0;
};

run restore_onto(const fs::path& step, const cairn::named_sharding& target, const cairn::host_array& original) {
  cairn_bench::drop_cache(step);
  std::map<std::string, cairn::sharded_array> t{{"w", cairn::sharded_array::placed(target)}};
  const auto r0 = rchar();
  const auto t0 = bench_clock::now();
  cairn::restore(step, t);
  run r{seconds_since(t0), rchar() - r0};
  // Bit-exact check of every device's box (outside the timing).
  for (const auto& s : t["w"].shards()) {
    cairn::host_array want = cairn::host_array::uninitialized(original.type(), s.shard.box.shape());
    cairn::copy(original.view().sub(s.shard.box), want.mutable_view());
    if (!(want == s.data)) {
      std::cerr << "cairn_bench_reshard: device " << s.shard.device << " holds wrong data\n";
      std::exit(1);
    }
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path dir = fs::temp_directory_path();
    int reps = 3;
    std::size_t array_mib = 1024;
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&] { return cairn_bench::option_value(argc, argv, i); };
      if (a == "--dir") dir = next();
      else if (a == "--reps") reps = std::stoi(next());
      else if (a == "--mib") array_mib = std::stoul(next());
      else if (a == "--quick") quick = true;
      else throw std::invalid_argument("unknown option " + a);
    }
    if (quick) {
      array_mib = 16;
      reps = 1;
    }
    const cairn_bench::roofline_options ro = cairn_bench::end_to_end_probe(dir, quick);
    const auto roof = cairn_bench::measure_roofline(ro);
    cairn_bench::print_table(std::cout, roof);

    // A square float32 array of about array_mib MiB, its side a multiple of 4.
    cairn::index_t side = 4;
    while ((side + 4) * (side + 4) * 4 <= static_cast<cairn::index_t>(array_mib * mib)) side += 4;
    const cairn::shape g{side, side};
    const auto weights = cairn_bench::detail::gaussian_weights(static_cast<std::size_t>(side * side), 7);
    cairn::host_array original = cairn::host_array::uninitialized(cairn::dtype::float32, g);
    std::memcpy(original.mutable_bytes().data(), weights.data(), original.num_bytes());

    const cairn::host_devices cpu(4);
    const cairn::device_mesh mesh = cpu.mesh({{"data", 2}, {"model", 2}});
    const cairn::named_sharding saved(mesh, cairn::partition_spec{"data", "model"});
    const cairn::named_sharding moved(mesh, cairn::partition_spec{cairn::dim_axes{"data", "model"}, cairn::replicated});
    const fs::path root = dir / ("cairn_bench_reshard_" + std::to_string(::getpid()));
    fs::remove_all(root);
    std::map<std::string, cairn::sharded_array> state{{"w", cpu.put(original.view(), saved)}};
    const cairn::typed_save_options defaults;  // a named object: GCC 12 warns (falsely) on a `{}` temporary
    auto t0 = bench_clock::now();
    const fs::path step = cairn::save(root, 1, state, defaults);
    const double save_s = seconds_since(t0);
    state.clear();

    const cairn::pytree_item item(step / "default");
    const auto array = item.open_array("w");
    const auto same_plan = cairn::plan_reshard(cairn::chunk_grid(g, array.metadata().chunk_shape), saved, g, cairn::dtype::float32);
    const auto moved_plan = cairn::plan_reshard(cairn::chunk_grid(g, array.metadata().chunk_shape), moved, g, cairn::dtype::float32);

    std::vector<double> same_s, moved_s;
    std::vector<double> same_b, moved_b;
    for (int r = 0; r < reps; ++r) {
      auto a = restore_onto(step, saved, original);
      auto b = restore_onto(step, moved, original);
      same_s.push_back(a.seconds);
      moved_s.push_back(b.seconds);
      same_b.push_back(static_cast<double>(a.bytes));
      moved_b.push_back(static_cast<double>(b.bytes));
    }
    fs::remove_all(root);

    const double needed = static_cast<double>(original.num_bytes());
    const double time_ratio = median(moved_s) / median(same_s);
    const double bytes_ratio = median(moved_b) / needed;
    std::printf("\narray %s, saved as %s (%.0f MiB; save %.2f s)\n", cairn::to_string(saved, cairn::dtype::float32, g).c_str(),
                cairn::to_string(saved).c_str(), needed / mib, save_s);
    std::printf("same-sharding plan: %s", cairn::to_string(same_plan).substr(cairn::to_string(same_plan).rfind("cost:")).c_str());
    std::printf("resharded plan:     %s", cairn::to_string(moved_plan).substr(cairn::to_string(moved_plan).rfind("cost:")).c_str());
    std::printf("medians of %d cold restores each:\n", reps);
    std::printf("  onto %-40s %7.3f s  %6.2f GB/s  read %.3f x needed\n", cairn::to_string(saved.spec()).c_str(), median(same_s),
                needed / median(same_s) / 1e9, median(same_b) / needed);
    std::printf("  onto %-40s %7.3f s  %6.2f GB/s  read %.3f x needed\n", cairn::to_string(moved.spec()).c_str(), median(moved_s),
                needed / median(moved_s) / 1e9, bytes_ratio);
    std::printf("resharded / same-sharding time: %.3f (goal <= 1.25) %s\n", time_ratio, time_ratio <= 1.25 ? "MET" : "MISSED");
    std::printf("resharded bytes read / bytes needed: %.3f (goal <= 1.1) %s\n", bytes_ratio, bytes_ratio <= 1.1 ? "MET" : "MISSED");
    std::printf("same-sharding restore GB/s / roofline cold read: %.2f\n", needed / median(same_s) / 1e9 / roof.read_cold_GBps);

    std::ostringstream js;
    js << "{\"reshard_time_ratio\":" << time_ratio << ",\"reshard_bytes_ratio\":" << bytes_ratio
       << ",\"same_restore_s\":" << median(same_s) << ",\"resharded_restore_s\":" << median(moved_s) << ",\"array_bytes\":" << needed
       << ",\"same_bytes_read\":" << median(same_b) << ",\"resharded_bytes_read\":" << median(moved_b)
       << ",\"plan_bytes_read\":" << moved_plan.cost.bytes_read << ",\"plan_shared_chunks\":" << moved_plan.cost.shared_chunks
       << ",\"save_s\":" << save_s << ",\"reps\":" << reps << ",\"time_goal_met\":" << (time_ratio <= 1.25 ? 1 : 0)
       << ",\"bytes_goal_met\":" << (bytes_ratio <= 1.1 ? 1 : 0) << "," << cairn_bench::to_json_fields(roof) << "}";
    std::cout << js.str() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "cairn_bench_reshard: " << e.what() << "\n";
    return 1;
  }
}
