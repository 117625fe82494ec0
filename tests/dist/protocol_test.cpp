// SPDX-License-Identifier: Apache-2.0
// The coordinator's collectives and the multi-process save protocol on simulated processes (threads):
// each rank late at each collective, each rank dead at each collective (the others time out naming it,
// nothing is committed, the next save succeeds), processes that disagree, shards nobody wrote, and
// restores onto other process counts.
#include <cairn/backend/host.hpp>
#include <cairn/checkpoint/checkpoint_manager.hpp>
#include <cairn/checkpoint/typed.hpp>
#include <cairn/dist/simulated.hpp>
#include <cairn/ocdbt/reader.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "dist/job.hpp"
#include "support/temp_dir.hpp"

using namespace cairn;
using namespace std::chrono_literals;

namespace {

struct rank_died {};  // thrown by the hook: the rank leaves the job there

using cairn_test::job_state;
using cairn_test::local_tree;

save_options multi(simulated_processes::rank_coordinator c, collective_timeout t = 2000ms) {
  save_options o;
  o.pytree.fsync = kvstore::fsync_policy::none;
  o.coordinator = c;
  o.timeout = t;
  return o;
}

// Loads a committed step in one process and compares it with the job's state.
void check_step(const std::filesystem::path& root, std::int64_t step, const job_state& s) {
  auto d = load(root / std::to_string(step));
  dynamic_tree& item = d["default"];
  CHECK(item["params"]["w"].as_array() == s.w);
  CHECK(item["params"]["b"].as_array() == s.b);
  CHECK(item["params"]["r"].as_array() == s.r);
  CHECK(item["h"].as_array() == s.h);
  CHECK(item["name"].as_string() == "mlp");
}

std::size_t keys_under(const std::filesystem::path& db, const std::string& prefix) {
  if (!std::filesystem::exists(db / "manifest.ocdbt")) return 0;
  ocdbt::reader r(kvstore::open_file(db));
  std::size_t n = 0;
  r.for_each(kvstore::key_range::prefix(prefix), [&](ocdbt::value_location&&) { ++n; });
  return n;
}

struct target_t {
  sharded_array w, r;
  static constexpr auto cairn_fields = fields(field("w", &target_t::w), field("r", &target_t::r));
};

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

}  // namespace

TEST_CASE("collectives: broadcast, gather, barrier and independent channels") {
  simulated_processes group(4);
  auto failures = group.run([](simulated_processes::rank_coordinator& c) {
    const int me = c.process_index();
    CHECK(c.process_count() == 4);
    CHECK(c.broadcast({"hello"}, "from " + std::to_string(me), 1000ms) == "from 0");
    auto all = c.gather({"who", 3}, std::to_string(me * me), 1000ms);
    if (me == 0) CHECK(all == std::vector<std::string>{"0", "1", "4", "9"});
    else CHECK(all.empty());
    c.barrier({"sync"}, 1000ms);
    auto side = c.duplicate();
    // Messages on the duplicate never satisfy the first channel's collectives, whatever the order.
    if (me % 2) {
      CHECK(side.broadcast({"side"}, "s", 1000ms) == "s");
      CHECK(c.broadcast({"main"}, "m", 1000ms) == "m");
    } else {
      CHECK(c.broadcast({"main"}, "m", 1000ms) == "m");
      CHECK(side.broadcast({"side"}, "s", 1000ms) == "s");
    }
    any_coordinator erased = c;
    erased.barrier({"erased"}, 1000ms);
  });
  for (auto& f : failures) CHECK_MESSAGE(!f, what_of(f));
}

TEST_CASE("a barrier timeout names the ranks that did not arrive, on every rank that did") {
  simulation_options so;
  so.on_arrive = [](int rank, const collective& op) {
    if ((rank == 2 || rank == 3) && op.name == "epoch.end") throw rank_died{};
  };
  simulated_processes group(5, so);
  auto failures = group.run([](simulated_processes::rank_coordinator& c) { c.barrier({"epoch.end", 9}, 200ms); });
  for (int r : {0, 1, 4}) {
    REQUIRE(failures[static_cast<std::size_t>(r)]);
    const std::string w = what_of(failures[static_cast<std::size_t>(r)]);
    CHECK_MESSAGE(w.find("ranks 2, 3 of 5 did not arrive at epoch.end of step 9 within 200 ms") != std::string::npos, w);
    CHECK_THROWS_AS(std::rethrow_exception(failures[static_cast<std::size_t>(r)]), error);
  }
}

TEST_CASE("processes at different operations are reported, not matched") {
  simulated_processes group(2);
  auto failures = group.run([](simulated_processes::rank_coordinator& c) {
    if (c.process_index() == 0) (void)c.gather({"save.written", 4}, "x", 500ms);
    else (void)c.gather({"restore.begin", 4}, "x", 500ms);
  });
  REQUIRE(failures[0]);
  CHECK(what_of(failures[0]).find("rank 0 is at save.written of step 4 but rank 1 is at restore.begin of step 4") != std::string::npos);
}

TEST_CASE("4 processes save a 2x2-sharded tree: per-process databases, a merged root, replicated data written once") {
  cairn_test::temp_dir dir;
  const job_state s;
  simulated_processes group(4);
  auto failures = group.run([&](simulated_processes::rank_coordinator& c) {
    const auto step_dir = save(dir.path(), 7, local_tree(s, c.process_index()), multi(c));
    CHECK(step_dir == dir.path() / "7");  // every process returns after the commit
    CHECK(std::filesystem::exists(step_dir / "commit_success.txt"));
  });
  for (auto& f : failures) REQUIRE_MESSAGE(!f, what_of(f));
  check_step(dir.path(), 7, s);
  const auto item = dir.path() / "7" / "default";
  for (int p = 0; p < 4; ++p) {
    CHECK(std::filesystem::exists(item / ("array_metadatas/process_" + std::to_string(p))));
    CHECK(keys_under(item / ("ocdbt.process_" + std::to_string(p)), "params.w/") == (p == 0 ? 2u : 1u));  // chunk (+ zarr.json)
  }
  // Replicated data is written once in the job: by the process whose device holds replica 0.
  std::size_t r_chunks = 0, b_chunks = 0, h_keys = 0;
  for (int p = 0; p < 4; ++p) {
    const auto db = item / ("ocdbt.process_" + std::to_string(p));
    r_chunks += keys_under(db, "params.r/c/");
    b_chunks += keys_under(db, "params.b/c/");
    h_keys += keys_under(db, "h/");
  }
  CHECK(r_chunks == 1);
  CHECK(b_chunks == 2);
  CHECK(h_keys == 2);  // the primary's: zarr.json and the chunk
  CHECK(keys_under(item, "") == keys_under(item / "ocdbt.process_0", "") + keys_under(item / "ocdbt.process_1", "") +
                                    keys_under(item / "ocdbt.process_2", "") + keys_under(item / "ocdbt.process_3", ""));

  SUBCASE("restored by 2 processes on a (2,) mesh, each reading its devices' chunks") {
    simulated_processes two(2);
    auto f2 = two.run([&](simulated_processes::rank_coordinator& c) {
      const device_mesh mesh({{"x", 2}});
      std::map<std::string, target_t> t;
      t["params"].w = sharded_array::placed(named_sharding(mesh, partition_spec{replicated, "x"}), {c.process_index()});
      t["params"].r = sharded_array::placed(named_sharding(mesh, partition_spec{"x"}), {c.process_index()});
      restore_options ro;
      ro.partial = true;
      (void)restore(dir.path(), t, ro);
      const auto& w = t["params"].w;
      REQUIRE(w.shards().size() == 1);
      CHECK(w.shards()[0].shard.device == c.process_index());
      CHECK(cairn_test::holds_slices_of(w, s.w));
      CHECK(cairn_test::holds_slices_of(t["params"].r, s.r));
    });
    for (auto& f : f2) CHECK_MESSAGE(!f, what_of(f));
  }
}

TEST_CASE("each rank late at each collective of a save: the same checkpoint") {
  cairn_test::temp_dir dir;
  const job_state s;
  std::int64_t step = 0;
  for (const char* op : {"save.begin", "save.written"})
    for (int late = 0; late < 4; ++late) {
      simulation_options so;
      so.on_arrive = [&](int rank, const collective& at) {
        if (rank == late && at.name == op) std::this_thread::sleep_for(30ms);
      };
      simulated_processes group(4, so);
      auto failures = group.run([&](simulated_processes::rank_coordinator& c) { save(dir.path(), step, local_tree(s, c.process_index()), multi(c)); });
      for (auto& f : failures) REQUIRE_MESSAGE(!f, op << ", rank " << late << " late: " << what_of(f));
      check_step(dir.path(), step, s);
      ++step;
    }
  CHECK(list_steps(dir.path()).size() == 8);
}

TEST_CASE("a rank that dies at any collective of a save: the others time out naming it, nothing is committed, the next save succeeds") {
  cairn_test::temp_dir dir;
  const job_state s;
  std::int64_t step = 0;
  for (const char* op : {"save.begin", "save.written"})
    for (int dead = 0; dead < 4; ++dead) {
      const std::string op_name = op;
      CAPTURE(op_name);
      CAPTURE(dead);
      simulation_options so;
      so.on_arrive = [&](int rank, const collective& at) {
        if (rank == dead && at.name == op) throw rank_died{};
      };
      simulated_processes group(4, so);
      auto failures = group.run([&](simulated_processes::rank_coordinator& c) { save(dir.path(), step, local_tree(s, c.process_index()), multi(c, 300ms)); });
      for (int r = 0; r < 4; ++r) {
        REQUIRE(failures[static_cast<std::size_t>(r)]);
        if (r == dead) continue;
        try {
          std::rethrow_exception(failures[static_cast<std::size_t>(r)]);
        } catch (const error& e) {
          CHECK(e.code() == errc::timeout);
          CHECK_MESSAGE(std::string(e.what()).find("rank " + std::to_string(dead) + " of 4 did not arrive at") != std::string::npos, e.what());
          CHECK_MESSAGE(std::string(e.what()).find("of step " + std::to_string(step)) != std::string::npos, e.what());
        }
      }
      CHECK(list_steps(dir.path()).empty());
      // The next save, by every process, cleans the attempt up and commits.
      simulated_processes again(4);
      auto ok = again.run([&](simulated_processes::rank_coordinator& c) { save(dir.path(), step, local_tree(s, c.process_index()), multi(c)); });
      for (auto& f : ok) REQUIRE_MESSAGE(!f, what_of(f));
      check_step(dir.path(), step, s);
      std::filesystem::remove_all(dir.path() / std::to_string(step));
      ++step;
    }
  CHECK(list_tmp_dirs(dir.path()).empty());
}

TEST_CASE("a multi-process save fails everywhere, uncommitted, when processes disagree or a shard is on no process") {
  cairn_test::temp_dir dir;
  const job_state s;
  auto run = [&](std::int64_t step, auto&& tree_of) {
    simulated_processes group(4);
    auto failures = group.run([&](simulated_processes::rank_coordinator& c) { save(dir.path(), step, tree_of(c.process_index()), multi(c)); });
    std::vector<std::string> out;
    for (auto& f : failures) {
      REQUIRE(f);
      out.push_back(what_of(f));
    }
    CHECK(list_steps(dir.path()).empty());
    return out;
  };
  SUBCASE("one process saves a different tree") {
    auto w = run(1, [&](int r) {
      auto t = local_tree(s, r);
      if (r == 2) t["extra"] = scalar(1.0f);
      return t;
    });
    for (const auto& m : w) CHECK_MESSAGE(m.find("step 1, item \"default\": process 2 saved a tree that differs from the primary's") != std::string::npos, m);
  }
  SUBCASE("one process fails while writing its part") {
    auto w = run(2, [&](int r) {
      auto t = local_tree(s, r);
      if (r == 1) t["bad/key"] = scalar(1.0f);
      return t;
    });
    for (const auto& m : w) CHECK_MESSAGE(m.find("process 1: ") != std::string::npos, m);
    for (const auto& m : w) CHECK_MESSAGE(m.find("bad/key") != std::string::npos, m);
  }
  SUBCASE("a shard whose replica 0 is on no process") {
    auto w = run(3, [&](int r) {
      auto t = local_tree(s, r);
      if (r == 3) {
        const auto& a = t["params"]["w"].as_sharded();
        t["params"]["w"] = sharded_array(a.type(), a.shape(), a.sharding(), {});
      }
      return t;
    });
    for (const auto& m : w) CHECK_MESSAGE(m.find("leaf \"params.w\": the processes wrote 3 of its 4 chunks") != std::string::npos, m);
  }
  SUBCASE("the step exists") {
    simulated_processes group(4);
    auto ok = group.run([&](simulated_processes::rank_coordinator& c) { save(dir.path(), 5, local_tree(s, c.process_index()), multi(c)); });
    for (auto& f : ok) REQUIRE(!f);
    auto again = group.run([&](simulated_processes::rank_coordinator& c) { save(dir.path(), 5, local_tree(s, c.process_index()), multi(c)); });
    for (auto& f : again) {
      REQUIRE(f);
      CHECK_THROWS_AS(std::rethrow_exception(f), error);
      CHECK(what_of(f).find("already exists") != std::string::npos);
    }
  }
}

TEST_CASE("managers on 4 processes: the primary decides, saves finish in the background, every process keeps the same steps") {
  cairn_test::temp_dir dir;
  const job_state s;
  simulated_processes group(4);
  auto failures = group.run([&](simulated_processes::rank_coordinator& c) {
    const int me = c.process_index();
    checkpoint_manager_options o;
    o.save.coordinator = c;
    o.save.timeout = 10000ms;
    o.save.pytree.fsync = kvstore::fsync_policy::none;
    o.max_to_keep = 2;
    o.save_interval_steps = me == 0 ? 2 : 3;  // the primary's policy is everyone's
    checkpoint_manager m(dir.path(), o);
    std::vector<std::int64_t> saved;
    for (std::int64_t step = 0; step <= 6; ++step) {
      dynamic_tree t = local_tree(s, me);
      if (m.save(step, t)) saved.push_back(step);
      t["params"]["w"].as_sharded().shards()[0].data.mutable_bytes()[0] = std::byte{0};  // staged: the save keeps the old values
    }
    CHECK_THROWS_AS(m.save(6, local_tree(s, me)), error);  // already saved, on every process
    m.wait_until_finished();
    CHECK(saved == std::vector<std::int64_t>{0, 2, 4, 6});
    CHECK(m.all_steps() == std::vector<std::int64_t>{4, 6});
    std::map<std::string, std::map<std::string, sharded_array>> t;
    const device_mesh mesh({{"data", 2}, {"model", 2}});
    t["params"]["w"] = sharded_array::placed(named_sharding(mesh, partition_spec{"model", "data"}), {me});
    restore_options ro;
    ro.partial = true;
    (void)m.restore(t, std::nullopt, ro);
    CHECK(cairn_test::holds_slices_of(t["params"]["w"], s.w));
    m.delete_step(4);
    CHECK(m.all_steps() == std::vector<std::int64_t>{6});
    m.reload();
    CHECK(m.all_steps() == std::vector<std::int64_t>{6});
  });
  for (auto& f : failures) CHECK_MESSAGE(!f, what_of(f));
  const auto steps = list_steps(dir.path());
  REQUIRE(steps.size() == 1);
  CHECK(steps[0].step == 6);
  check_step(dir.path(), 6, s);
}

TEST_CASE("a collective restore of a root takes the primary's latest step, even when a step is committed meanwhile") {
  cairn_test::temp_dir dir;
  const job_state s;
  const job_state other(2);  // a different (larger) state for step 3, committed while the others wait
  for (std::int64_t step : {1, 2}) {
    simulated_processes group(4);
    auto ok = group.run([&](simulated_processes::rank_coordinator& c) { save(dir.path(), step, local_tree(s, c.process_index()), multi(c)); });
    for (auto& f : ok) REQUIRE_MESSAGE(!f, what_of(f));
  }
  const auto late_step = dir.path() / "late";
  {
    simulated_processes group(4);
    auto ok = group.run([&](simulated_processes::rank_coordinator& c) { save(late_step, 3, local_tree(other, c.process_index()), multi(c)); });
    for (auto& f : ok) REQUIRE_MESSAGE(!f, what_of(f));
  }
  simulation_options so;
  std::atomic<bool> moved{false};
  so.on_arrive = [&](int rank, const collective& op) {
    // Step 3 appears after the primary chose but before rank 2 hears the choice.
    if (rank == 2 && op.name == "restore.step" && !moved.exchange(true)) {
      std::this_thread::sleep_for(20ms);
      std::filesystem::rename(late_step / "3", dir.path() / "3");
    }
  };
  simulated_processes group(4, so);
  auto failures = group.run([&](simulated_processes::rank_coordinator& c) {
    if (c.process_index() != 0) std::this_thread::sleep_for(5ms);  // the primary chooses first
    std::map<std::string, std::map<std::string, sharded_array>> t;
    const device_mesh mesh({{"x", 4}});
    t["params"]["w"] = sharded_array::placed(named_sharding(mesh, partition_spec{"x"}), {c.process_index()});
    restore_options ro;
    ro.partial = true;
    ro.coordinator = c;
    ro.timeout = 5000ms;
    (void)restore(dir.path(), t, ro);
    CHECK(cairn_test::holds_slices_of(t["params"]["w"], s.w));  // step 2's values on every process
  });
  for (auto& f : failures) CHECK_MESSAGE(!f, what_of(f));
  CHECK(moved.load());
  CHECK(list_steps(dir.path()).back().step == 3);
}
