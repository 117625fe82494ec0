// SPDX-License-Identifier: Apache-2.0
// Multi-process checkpoints under mpirun, one simulated device per process:
//   save ROOT STEP               4 processes save the 2x2-sharded job (tests/dist/job.hpp); rank 0
//                                then loads the step and compares every array.
//   restore ROOT STEP MESH SPEC  N processes restore it onto MESH with `w` as SPEC (and `b`, `r`
//                                row-sharded), each onto its own devices, and check every slice.
//   manager ROOT                 4 processes run checkpoint_managers (max_to_keep 2) saving steps 0-5
//                                in the background while they go on; every process must keep {4, 5}
//                                and restore the latest step onto its own device.
//   kill ROOT STEP               4 processes save; rank 3 dies (SIGKILL) on arriving at save.written.
//                                The others must fail with a timeout naming rank 3, with no step.
// Exit status 0 when every check of this rank passed.
#include <cairn/checkpoint/checkpoint_manager.hpp>
#include <cairn/checkpoint/typed.hpp>
#include <cairn/dist/mpi.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "dist/job.hpp"

using namespace cairn;
using namespace std::chrono_literals;

namespace {

// Forwards to MPI; rank `victim` kills itself on arriving at `fatal` (a process dying mid-save).
struct dying_coordinator {
  mpi_coordinator mpi;
  int victim = -1;
  std::string fatal;
  int process_index() const { return mpi.process_index(); }
  int process_count() const { return mpi.process_count(); }
  void arrive(const collective& op) const {
    if (process_index() == victim && op.name == fatal) std::raise(SIGKILL);
  }
  void barrier(collective op, collective_timeout t) { arrive(op), mpi.barrier(op, t); }
  std::string broadcast(collective op, std::string m, collective_timeout t) { return arrive(op), mpi.broadcast(op, std::move(m), t); }
  std::vector<std::string> gather(collective op, std::string m, collective_timeout t) { return arrive(op), mpi.gather(op, std::move(m), t); }
  dying_coordinator duplicate() const { return {mpi.duplicate(), victim, fatal}; }
};
static_assert(coordinator<dying_coordinator>);

save_options options(any_coordinator c, collective_timeout t) {
  save_options o;
  o.coordinator = std::move(c);
  o.timeout = t;
  return o;
}

int save_job(const std::filesystem::path& root, std::int64_t step) {
  mpi_coordinator c;
  const cairn_test::job_state s;
  save(root, step, cairn_test::local_tree(s, c.process_index()), options(c, 60s));
  if (c.process_index() != 0) return 0;
  auto item = load(root / std::to_string(step))["default"];
  const bool ok = item["params"]["w"].as_array() == s.w && item["params"]["b"].as_array() == s.b &&
                  item["params"]["r"].as_array() == s.r && item["h"].as_array() == s.h;
  std::cout << "saved step " << step << " with " << c.process_count() << " processes: " << (ok ? "bit-exact" : "MISMATCH") << std::endl;
  return ok ? 0 : 1;
}

int restore_job(const std::filesystem::path& root, std::int64_t step, const std::string& mesh_text, const std::string& spec_text) {
  mpi_coordinator c;
  const device_mesh mesh = parse_device_mesh(mesh_text);
  const int per_process = static_cast<int>(mesh.size()) / c.process_count();
  if (per_process * c.process_count() != mesh.size())
    throw error(errc::invalid_argument, "mesh " + to_string(mesh) + " does not divide among " + std::to_string(c.process_count()) + " processes");
  std::vector<int> mine;
  for (int d = 0; d < per_process; ++d) mine.push_back(c.process_index() * per_process + d);
  const partition_spec rows{mesh.axes().front().name};
  std::map<std::string, std::map<std::string, sharded_array>> target;
  target["params"]["w"] = sharded_array::placed(named_sharding(mesh, parse_partition_spec(spec_text)), mine);
  target["params"]["b"] = sharded_array::placed(named_sharding(mesh, rows), mine);
  target["params"]["r"] = sharded_array::placed(named_sharding(mesh, rows), mine);
  restore_options ro;
  ro.partial = true;
  (void)restore(root / std::to_string(step), target, ro);
  const cairn_test::job_state s;
  bool ok = true;
  for (const auto& [name, whole] : {std::pair{"w", &s.w}, std::pair{"b", &s.b}, std::pair{"r", &s.r}}) {
    const sharded_array& a = target["params"][name];
    ok = ok && a.shards().size() == mine.size() && cairn_test::holds_slices_of(a, *whole);
  }
  std::cout << "rank " << c.process_index() << " of " << c.process_count() << ": devices";
  for (int d : mine) std::cout << ' ' << d;
  std::cout << " hold " << to_string(target["params"]["w"].sharding(), s.w.type(), s.w.shape()) << ": " << (ok ? "bit-exact" : "MISMATCH")
            << std::endl;
  return ok ? 0 : 1;
}

int manager_job(const std::filesystem::path& root) {
  mpi_coordinator c;
  const int me = c.process_index();
  const cairn_test::job_state s;
  checkpoint_manager_options o;
  o.save = options(c, 60s);
  o.max_to_keep = 2;
  checkpoint_manager m(root, o);
  for (std::int64_t step = 0; step < 6; ++step) {
    dynamic_tree t = cairn_test::local_tree(s, me);
    if (!m.save(step, t)) throw error(errc::invalid_argument, "the policy skipped step " + std::to_string(step));
  }
  m.wait_until_finished();
  std::map<std::string, std::map<std::string, sharded_array>> target;
  target["params"]["w"] = sharded_array::placed(named_sharding(device_mesh({{"x", 4}}), partition_spec{replicated, "x"}), {me});
  restore_options ro;
  ro.partial = true;
  (void)m.restore(target, std::nullopt, ro);
  const bool ok = m.all_steps() == std::vector<std::int64_t>{4, 5} && cairn_test::holds_slices_of(target["params"]["w"], s.w);
  std::cout << "rank " << me << ": steps";
  for (auto step : m.all_steps()) std::cout << ' ' << step;
  std::cout << ", restored " << (ok ? "bit-exact" : "MISMATCH") << std::endl;
  return ok ? 0 : 1;
}

int kill_during_save(const std::filesystem::path& root, std::int64_t step) {
  dying_coordinator c{mpi_coordinator(), 3, "save.written"};
  const cairn_test::job_state s;
  const int me = c.process_index();
  bool ok = false;
  try {
    save(root, step, cairn_test::local_tree(s, me), options(c, 3s));
    std::cout << "rank " << me << ": the save succeeded although rank 3 died" << std::endl;
  } catch (const error& e) {
    const std::string what = e.what();
    ok = e.code() == errc::timeout && what.find("rank 3 of 4 did not arrive at save.written of step " + std::to_string(step)) != std::string::npos &&
         !std::filesystem::exists(root / std::to_string(step));
    std::cout << "rank " << me << ": " << (ok ? "reported as expected: " : "UNEXPECTED: ") << what << std::endl;
  }
  // A dead peer leaves MPI unable to finalise collectively: leave without MPI_Finalize.
  std::fflush(stdout);
  std::_Exit(ok ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    mpi_session session(argc, argv);
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 3 && args[0] == "save") return save_job(args[1], std::stoll(args[2]));
    if (args.size() == 5 && args[0] == "restore") return restore_job(args[1], std::stoll(args[2]), args[3], args[4]);
    if (args.size() == 2 && args[0] == "manager") return manager_job(args[1]);
    if (args.size() == 3 && args[0] == "kill") return kill_during_save(args[1], std::stoll(args[2]));
    std::cerr << "usage: cairn_mpi_checkpoint save ROOT STEP | restore ROOT STEP MESH SPEC | manager ROOT | kill ROOT STEP\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
