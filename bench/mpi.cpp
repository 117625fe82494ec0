// SPDX-License-Identifier: Apache-2.0
// bench/mpi: multi-process save and restore throughput with 1, 2 and 4 processes on this machine, as
// ratios to the roofline measured in the same run (performance.md §5).
//  * the state: a float32 array of --mib MiB (default 1024) of N(0, 0.02)-like weights, sharded as
//    P(x, -) on a mesh {x: N} with one simulated device per process — each process owns 1/N of it;
//  * save: `cairn::save` with the MPI coordinator (zarr v3 + zstd, fsync): every process writes its
//    shard into `ocdbt.process_<i>/`, the primary merges and commits; timed from a barrier to the last
//    process's return (the commit is collective, so that is the commit);
//  * restore: the step's pages dropped, then every process restores its own shard (placed target),
//    timed from a barrier to the slowest process;
//  * GB/s = array bytes / time, as a ratio to the roofline's durable write and cold read; medians of
//    --reps (default 3).
// Run without mpirun it is the driver: it measures the roofline, then runs itself under mpirun with
// 1, 2 and 4 processes and prints the table and one JSON line.
// Usage: cairn_bench_mpi [--dir DIR] [--mib N] [--reps N] [--quick]
#include <unistd.h>

#include <cairn/checkpoint/typed.hpp>
#include <cairn/dist/mpi.hpp>
#include <cairn/json/reader.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "roofline.hpp"

namespace fs = std::filesystem;
using cairn_bench::mib;
using cairn_bench::detail::median;
using cairn_bench::detail::seconds_since;
using bench_clock = cairn_bench::detail::clock;
using namespace std::chrono_literals;

namespace {

struct settings {
  fs::path dir = fs::temp_directory_path();
  std::size_t array_mib = 1024;
  int reps = 3;
  bool quick = false;
  bool worker = false;
};

// The slowest process's seconds since the barrier that started the phase (rank 0 gets it).
double slowest(cairn::mpi_coordinator& c, const char* phase, double mine) {
  auto all = c.gather({phase}, std::to_string(mine), 60s);
  double m = mine;
  for (const auto& s : all) m = std::max(m, std::stod(s));
  return m;
}

// Under mpirun: save and restore --reps times; rank 0 prints one JSON line of medians.
int worker(const settings& o) {
  cairn::mpi_coordinator c;
  const int n = c.process_count(), me = c.process_index();
  const cairn::index_t cols = 4096;
  cairn::index_t rows = static_cast<cairn::index_t>(o.array_mib * mib / (cols * 4));
  rows = std::max<cairn::index_t>(rows / 4 * 4, 4);  // divisible by 1, 2 and 4
  const cairn::shape g{rows, cols};
  const cairn::device_mesh mesh({{"x", n}});
  const cairn::named_sharding sharding(mesh, cairn::partition_spec{"x"});
  // This process's shard only: its rows of the weights.
  const auto mine_box = sharding.shards(g)[static_cast<std::size_t>(me)].box;
  const auto weights = cairn_bench::detail::gaussian_weights(static_cast<std::size_t>(mine_box.num_elements()), 7 + static_cast<std::uint64_t>(me));
  cairn::host_array local = cairn::host_array::uninitialized(cairn::dtype::float32, mine_box.shape());
  std::memcpy(local.mutable_bytes().data(), weights.data(), local.num_bytes());
  std::vector<cairn::sharded_array::local_shard> shards{{sharding.shards(g)[static_cast<std::size_t>(me)], local}};
  cairn::dynamic_tree tree;
  tree["w"] = cairn::sharded_array(cairn::dtype::float32, g, sharding, std::move(shards));

  const fs::path root = o.dir / ("cairn_bench_mpi_" + std::to_string(n));
  if (me == 0) fs::remove_all(root);
  c.barrier({"bench.start"}, 60s);
  cairn::save_options so;
  so.coordinator = c.duplicate();
  so.timeout = 600s;
  std::vector<double> save_s, restore_s;
  for (int r = 0; r < o.reps; ++r) {
    c.barrier({"bench.save", r}, 60s);
    auto t0 = bench_clock::now();
    const fs::path step = cairn::save(root, r, tree, so);
    const double s = slowest(c, "bench.saved", seconds_since(t0));
    if (me == 0) cairn_bench::drop_cache(step);
    c.barrier({"bench.restore", r}, 60s);
    std::map<std::string, cairn::sharded_array> target{{"w", cairn::sharded_array::placed(sharding, {me})}};
    t0 = bench_clock::now();
    cairn::restore(step, target);
    const double t = slowest(c, "bench.restored", seconds_since(t0));
    if (!(target["w"].shards().at(0).data == local)) {
      std::cerr << "cairn_bench_mpi: rank " << me << " restored the wrong data\n";
      return 1;
    }
    save_s.push_back(s);
    restore_s.push_back(t);
  }
  c.barrier({"bench.end"}, 60s);
  if (me == 0) {
    fs::remove_all(root);
    std::printf("{\"processes\":%d,\"bytes\":%.0f,\"save_s\":%.6f,\"restore_s\":%.6f}\n", n, static_cast<double>(g.num_elements()) * 4,
                median(save_s), median(restore_s));
  }
  return 0;
}

int driver(const settings& o, const char* self) {
  const cairn_bench::roofline_options ro = cairn_bench::end_to_end_probe(o.dir, o.quick);
  const auto roof = cairn_bench::measure_roofline(ro);
  cairn_bench::print_table(std::cout, roof);
  std::ostringstream js;
  js << "{";
  std::printf("\n%-10s %10s %10s %12s %10s %10s %12s\n", "processes", "save s", "save GB/s", "/ durable", "restore s", "GB/s", "/ cold read");
  bool first = true;
  for (int n : {1, 2, 4}) {
    const std::string cmd = std::string(CAIRN_MPIRUN) + " -n " + std::to_string(n) + " " + cairn_bench::quote(self) + " --worker --dir " +
                            cairn_bench::quote(o.dir.string()) + " --mib " + std::to_string(o.array_mib) + " --reps " + std::to_string(o.reps);
    auto [out, status] = cairn_bench::capture(cmd + " 2>&1");
    const std::string line = cairn_bench::last_line_starting(out, '{');
    if (status != 0 || line.empty()) {
      std::cerr << "cairn_bench_mpi: " << n << " processes failed (" << status << "):\n" << out << "\n";
      return 1;
    }
    const auto r = cairn::json::parse(line, "worker");
    const double bytes = r.at("bytes").as_double(), save_s = r.at("save_s").as_double(), restore_s = r.at("restore_s").as_double();
    const double save_ratio = bytes / save_s / 1e9 / roof.write_durable_GBps, restore_ratio = bytes / restore_s / 1e9 / roof.read_cold_GBps;
    std::printf("%-10d %10.3f %10.3f %12.2f %10.3f %10.3f %12.2f\n", n, save_s, bytes / save_s / 1e9, save_ratio, restore_s,
                bytes / restore_s / 1e9, restore_ratio);
    js << (first ? "" : ",") << "\"mpi_save_ratio_" << n << "\":" << save_ratio << ",\"mpi_restore_ratio_" << n << "\":" << restore_ratio
       << ",\"mpi_save_s_" << n << "\":" << save_s << ",\"mpi_restore_s_" << n << "\":" << restore_s;
    first = false;
  }
  js << ",\"array_MiB\":" << o.array_mib << ",\"reps\":" << o.reps << "," << cairn_bench::to_json_fields(roof) << "}";
  std::cout << js.str() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    settings o;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&] { return cairn_bench::option_value(argc, argv, i); };
      if (a == "--dir") o.dir = next();
      else if (a == "--mib") o.array_mib = std::stoul(next());
      else if (a == "--reps") o.reps = std::stoi(next());
      else if (a == "--quick") o.quick = true;
      else if (a == "--worker") o.worker = true;
      else throw std::invalid_argument("unknown option " + a);
    }
    if (o.quick && !o.worker) {
      o.array_mib = 8;
      o.reps = 1;
    }
    if (!o.worker) return driver(o, argv[0]);
    cairn::mpi_session session(argc, argv);
    return worker(o);
  } catch (const std::exception& e) {
    std::cerr << "cairn_bench_mpi: " << e.what() << "\n";
    return 1;
  }
}
