// SPDX-License-Identifier: Apache-2.0
// checkpoint_manager: save decision and preservation policies, naming, temporary directories,
// read-only mode, metrics and best steps across reload, background saves (staging, failures,
// max_in_flight, completion tokens), and crash safety under SIGKILL.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cairn/checkpoint/checkpoint_manager.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.hpp"

using namespace cairn;
using namespace std::chrono_literals;

namespace {

using state_t = std::map<std::string, host_array>;

state_t make_state(std::int64_t step, std::size_t n = 64) {
  host_array w(dtype::float32, shape{static_cast<index_t>(n)});
  auto* p = reinterpret_cast<float*>(w.mutable_bytes().data());
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<float>(step) * 1000.0f + static_cast<float>(i);
  return {{"w", std::move(w)}};
}

checkpoint_manager_options quick(checkpoint_manager_options o = {}) {
  o.save.pytree.fsync = kvstore::fsync_policy::none;
  return o;
}

std::vector<std::int64_t> steps_of(const std::vector<step_info>& s, const std::vector<bool>& keep) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (keep[i]) out.push_back(s[i].step);
  return out;
}

std::vector<step_info> infos(std::vector<std::pair<std::int64_t, double>> steps_and_loss, bool with_metrics = true) {
  std::vector<step_info> out;
  auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000));
  for (auto [s, loss] : steps_and_loss) {
    json::value m = json::value::object();
    if (with_metrics && loss >= 0) m["loss"] = loss;
    out.push_back({s, t0 + std::chrono::seconds(s * 10), m});
  }
  return out;
}

}  // namespace

TEST_CASE("save decision policies, alone and combined") {
  using namespace save_policies;
  auto at = [](std::int64_t step, std::optional<std::int64_t> latest = std::nullopt,
               std::optional<std::chrono::system_clock::time_point> last = std::nullopt) {
    return save_context{step, latest, last, std::chrono::system_clock::time_point(100s)};
  };
  CHECK(fixed_interval(5)(at(10)));
  CHECK_FALSE(fixed_interval(5)(at(11)));
  CHECK(specific_steps({3, 7})(at(7)));
  CHECK_FALSE(specific_steps({3, 7})(at(8)));
  CHECK(predicate([](std::int64_t s) { return s > 100; })(at(101)));
  CHECK(continuous(30s)(at(1)));  // never saved
  CHECK(continuous(30s)(at(1, 0, std::chrono::system_clock::time_point(60s))));
  CHECK_FALSE(continuous(30s)(at(1, 0, std::chrono::system_clock::time_point(80s))));
  CHECK(initial_save()(at(9)));
  CHECK_FALSE(initial_save()(at(9, 3)));
  const auto combined = any_of({fixed_interval(10), specific_steps({3}), initial_save()});
  CHECK(combined(at(20, 10)));
  CHECK(combined(at(3, 1)));
  CHECK(combined(at(7)));
  CHECK_FALSE(combined(at(7, 3)));
  CHECK_THROWS_AS(fixed_interval(0), error);
}

TEST_CASE("preservation policies, alone and combined") {
  using namespace preservation_policies;
  const auto s = infos({{1, 0.5}, {2, 0.3}, {3, 0.4}, {4, -1}, {5, 0.9}, {6, 0.2}});
  CHECK(steps_of(s, latest_n(2)(s)) == std::vector<std::int64_t>{5, 6});
  CHECK(steps_of(s, latest_n(0)(s)).empty());
  CHECK(steps_of(s, every_n_steps(3)(s)) == std::vector<std::int64_t>{3, 6});
  CHECK(steps_of(s, every_n_seconds(25s)(s)) == std::vector<std::int64_t>{1, 4});
  CHECK(steps_of(s, best_n(metric("loss"), best_mode::min, 2)(s)) == std::vector<std::int64_t>{2, 4, 6});
  CHECK(steps_of(s, best_n(metric("loss"), best_mode::min, 2, false)(s)) == std::vector<std::int64_t>{2, 6});
  CHECK(steps_of(s, best_n(metric("loss"), best_mode::max, 1, false)(s)) == std::vector<std::int64_t>{5});
  CHECK(steps_of(s, custom([](const step_info& i) { return i.step % 2 == 1; })(s)) == std::vector<std::int64_t>{1, 3, 5});
  CHECK(steps_of(s, any_of({latest_n(1), every_n_steps(2)})(s)) == std::vector<std::int64_t>{2, 4, 6});
  const auto ties = infos({{1, 0.5}, {2, 0.5}, {3, 0.5}});
  CHECK(steps_of(ties, best_n(metric("loss"), best_mode::min, 1)(ties)) == std::vector<std::int64_t>{3});
}

TEST_CASE("max_to_keep, keep_period and save_interval_steps as flat options") {
  cairn_test::temp_dir dir;
  checkpoint_manager_options o;
  o.max_to_keep = 2;
  o.keep_period = 4;
  o.save_interval_steps = 2;
  checkpoint_manager m(dir.path(), quick(o));
  std::vector<std::int64_t> saved;
  for (std::int64_t step = 0; step <= 10; ++step)
    if (m.save(step, make_state(step))) saved.push_back(step);
  m.wait_until_finished();
  CHECK(saved == std::vector<std::int64_t>{0, 2, 4, 6, 8, 10});
  CHECK(m.all_steps() == std::vector<std::int64_t>{0, 4, 8, 10});
  CHECK(list_steps(dir.path()).size() == 4);
  CHECK_FALSE(m.should_save(10));  // not after the latest
  CHECK_FALSE(m.should_save(9));
  CHECK(m.should_save(12));
  CHECK(m.save(11, make_state(11), {.force = true}));
  m.wait_until_finished();
  CHECK(m.latest_step() == 11);
}

TEST_CASE("an existing step is never overwritten") {
  cairn_test::temp_dir dir;
  checkpoint_manager m(dir.path(), quick());
  CHECK(m.save(1, make_state(1)));
  m.wait_until_finished();
  try {
    m.save(1, make_state(2), {.force = true});
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.code() == errc::already_exists);
    CHECK(std::string(e.what()).find("step 1 already exists") != std::string::npos);
  }
  state_t back;
  m.restore(back);
  CHECK(back.at("w") == make_state(1).at("w"));
}

TEST_CASE("step names: prefix and fixed length; temporary directories are never listed and are cleaned up") {
  cairn_test::temp_dir dir;
  checkpoint_manager_options o;
  o.naming = {"step", 4};
  {
    checkpoint_manager m(dir.path(), quick(o));
    m.save(7, make_state(7));
    m.wait_until_finished();
  }
  CHECK(std::filesystem::is_directory(dir.path() / "step_0007"));
  std::filesystem::create_directories(dir.path() / ("step_0009" + std::string(tmp_marker)) / "default");
  std::filesystem::create_directories(dir.path() / ("step_0008" + std::string(tmp_marker)));
  {
    checkpoint_manager_options ro = o;
    ro.read_only = true;
    checkpoint_manager m(dir.path(), quick(ro));
    CHECK(m.all_steps() == std::vector<std::int64_t>{7});
    CHECK(list_tmp_dirs(dir.path()).size() == 2);  // read-only: nothing touched
  }
  checkpoint_manager_options keep = o;
  keep.cleanup_tmp_directories = false;
  { checkpoint_manager m(dir.path(), quick(keep)); }
  CHECK(list_tmp_dirs(dir.path()).size() == 2);
  checkpoint_manager m(dir.path(), quick(o));
  CHECK(list_tmp_dirs(dir.path()).empty());
  CHECK(m.all_steps() == std::vector<std::int64_t>{7});
}

TEST_CASE("read-only mode never writes and says so") {
  cairn_test::temp_dir dir;
  {
    checkpoint_manager m(dir.path(), quick());
    m.save(0, make_state(0));
  }
  checkpoint_manager_options o;
  o.read_only = true;
  checkpoint_manager m(dir.path(), quick(o));
  CHECK_THROWS_WITH_AS(m.save(1, make_state(1)), doctest::Contains("is read-only"), error);
  CHECK_THROWS_WITH_AS(m.delete_step(0), doctest::Contains("is read-only"), error);
  CHECK(m.all_steps() == std::vector<std::int64_t>{0});
  CHECK_THROWS_WITH_AS(checkpoint_manager(dir.path() / "missing", quick(o)), doctest::Contains("does not exist"), error);
}

TEST_CASE("metrics and the best step survive reload and a new manager; best-N retention") {
  cairn_test::temp_dir dir;
  checkpoint_manager_options o;
  o.best_metric = "val_loss";
  o.mode = best_mode::min;
  o.max_to_keep = 2;
  const std::vector<double> losses{0.9, 0.5, 0.7, 0.3, 0.6};
  {
    checkpoint_manager m(dir.path(), quick(o));
    for (std::int64_t s = 0; s < 5; ++s) {
      json::value metrics = json::value::object();
      metrics["val_loss"] = losses[static_cast<std::size_t>(s)];
      m.save(s, make_state(s), {.metrics = metrics});
    }
    m.wait_until_finished();
    CHECK(m.all_steps() == std::vector<std::int64_t>{1, 3});
    CHECK(m.best_step() == 3);
    CHECK(m.metrics(1).at("val_loss").as_double() == 0.5);
    m.reload();
    CHECK(m.best_step() == 3);
  }
  checkpoint_manager m(dir.path(), quick(o));
  CHECK(m.all_steps() == std::vector<std::int64_t>{1, 3});
  CHECK(m.best_step() == 3);
  CHECK(m.metrics(3).at("val_loss").as_double() == 0.3);
  CHECK(m.metadata(3).commit_timestamp_nsecs.has_value());
  state_t best;
  m.restore(best, m.best_step());
  CHECK(best.at("w") == make_state(3).at("w"));
  m.delete_step(1);
  CHECK(m.all_steps() == std::vector<std::int64_t>{3});
  CHECK_THROWS_AS(m.metrics(1), error);
}

TEST_CASE("the caller may change its state as soon as save returns") {
  cairn_test::temp_dir dir;
  checkpoint_manager_options o;
  std::promise<void> release;
  auto gate = release.get_future().share();
  o.before_commit = [gate](std::int64_t, const std::filesystem::path&) { gate.wait(); };
  checkpoint_manager m(dir.path(), quick(o));
  state_t state = make_state(5);
  CHECK(m.save(5, state));
  CHECK(m.is_saving_in_progress());
  reinterpret_cast<float*>(state.at("w").mutable_bytes().data())[0] = -1.0f;  // training goes on
  release.set_value();
  m.wait_until_finished();
  CHECK_FALSE(m.is_saving_in_progress());
  state_t back;
  m.restore(back, 5);
  CHECK(back.at("w") == make_state(5).at("w"));
}

TEST_CASE("every byte of a save is the value at the call, with fresh and with reused staging buffers") {
  cairn_test::temp_dir dir;
  // Leaves of 3 MiB between leaves of 64 B.
  auto state_at = [](std::int64_t step) {
    state_t s;
    for (int i = 0; i < 6; ++i) {
      const std::size_t n = i % 2 ? 16 : (std::size_t{3} << 18) + static_cast<std::size_t>(i);  // 3 MiB or 64 B
      host_array a = host_array::uninitialized(dtype::float32, shape{static_cast<index_t>(n)});
      auto* p = reinterpret_cast<float*>(a.mutable_bytes().data());
      for (std::size_t j = 0; j < n; ++j) p[j] = static_cast<float>(step * 100 + i) + static_cast<float>(j % 977) * 0.5f;
      s["leaf_" + std::to_string(i)] = std::move(a);
    }
    return s;
  };
  for (bool reuse : {false, true}) {
    CAPTURE(reuse);
    checkpoint_manager_options o = quick();
    o.reuse_staging_buffers = reuse;
    checkpoint_manager m(dir.path() / (reuse ? "reuse" : "fresh"), o);
    state_t state = state_at(1);
    for (std::int64_t step = 1; step <= 3; ++step) {
      CHECK(m.save(step, state));
      for (auto& [name, a] : state) std::memset(a.mutable_bytes().data(), 0x5a, a.num_bytes());  // training goes on
      state = state_at(step + 1);
      if (step == 2) m.wait_until_finished();  // step 3 then reuses step 2's buffers when asked to
    }
    m.wait_until_finished();
    for (std::int64_t step = 1; step <= 3; ++step) {
      state_t back;
      m.restore(back, step);
      CHECK(back == state_at(step));
    }
  }
}

TEST_CASE("a background failure surfaces from wait_until_finished, then the root holds no such step") {
  cairn_test::temp_dir dir;
  checkpoint_manager_options o;
  o.before_commit = [](std::int64_t step, const std::filesystem::path&) {
    if (step == 2) throw error(errc::io, "injected write failure at step 2");
  };
  checkpoint_manager m(dir.path(), quick(o));
  m.save(1, make_state(1));
  m.save(2, make_state(2));
  CHECK_THROWS_WITH_AS(m.wait_until_finished(), doctest::Contains("injected write failure at step 2"), error);
  m.wait_until_finished();  // reported once
  CHECK(m.all_steps() == std::vector<std::int64_t>{1});
  CHECK(list_steps(dir.path()).size() == 1);
  CHECK(list_tmp_dirs(dir.path()).empty());  // the failed save took its directory with it
  // The next save reports a failure it has not seen yet.
  m.save(2, make_state(2), {.force = true});
  while (m.is_saving_in_progress()) std::this_thread::sleep_for(1ms);
  CHECK_THROWS_WITH_AS(m.save(3, make_state(3)), doctest::Contains("injected write failure at step 2"), error);
  CHECK(m.save(3, make_state(3)));
  m.close();
  CHECK(m.all_steps() == std::vector<std::int64_t>{1, 3});
}

TEST_CASE("max_in_flight bounds the saves staged or running at once") {
  cairn_test::temp_dir dir;
  for (std::size_t limit : {std::size_t{1}, std::size_t{2}}) {
    std::atomic<int> running{0}, peak{0};
    checkpoint_manager_options o;
    o.max_in_flight = limit;
    o.before_commit = [&](std::int64_t, const std::filesystem::path&) {
      const int now = ++running;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      std::this_thread::sleep_for(20ms);
      --running;
    };
    asio::thread_pool pool(4);
    checkpoint_manager m(dir.path() / std::to_string(limit), pool.get_executor(), quick(o));
    const auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t s = 0; s < 4; ++s) m.save(s, make_state(s));
    const auto waited = std::chrono::steady_clock::now() - t0;
    m.wait_until_finished();
    CHECK(peak.load() == 1);  // commits are serial
    if (limit == 1) CHECK(waited >= 55ms);  // the 4th save waited for three before it
    CHECK(m.all_steps().size() == 4);
  }
}

TEST_CASE("async_save completes through a callback, a future and a coroutine") {
  cairn_test::temp_dir dir;
  asio::thread_pool pool(2);
  checkpoint_manager m(dir.path(), pool.get_executor(), quick());
  std::promise<std::exception_ptr> called;
  m.async_save(1, make_state(1), [&](std::exception_ptr e) { called.set_value(e); });
  CHECK(called.get_future().get() == nullptr);
  // Handlers may be move-only (Asio's rule).
  std::promise<int> moved;
  auto token = std::make_unique<int>(42);
  m.async_save(
      4, make_state(4), [t = std::move(token), &moved](std::exception_ptr e) { moved.set_value(e ? -1 : *t); },
      {.force = true});
  CHECK(moved.get_future().get() == 42);
  std::future<void> f = m.async_save(2, make_state(2), asio::use_future, {.force = true});
  CHECK_NOTHROW(f.get());
  auto f3 = m.async_save(2, make_state(2), asio::use_future, {.force = true});
  CHECK_THROWS_WITH_AS(f3.get(), doctest::Contains("step 2 already exists"), error);
  std::promise<void> co_done;
  asio::co_spawn(
      pool,
      [&]() -> asio::awaitable<void> {
        co_await m.async_save(3, make_state(3), asio::use_awaitable, {.force = true});
        co_done.set_value();
      },
      asio::detached);
  co_done.get_future().get();
  m.wait_until_finished();
  CHECK(m.all_steps() == std::vector<std::int64_t>{1, 2, 3, 4});
}

TEST_CASE("crash safety: a saver killed at random moments never leaves a listed step that does not restore") {
  cairn_test::temp_dir dir;
  int trials = 50;
  if (const char* t = std::getenv("CAIRN_CRASH_TRIALS")) trials = std::max(1, std::atoi(t));
  std::mt19937 rng(12345);
  int kills_mid_save = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      try {
        checkpoint_manager_options o;
        o.max_to_keep = 3;
        checkpoint_manager m(dir.path(), o);
        std::int64_t step = m.latest_step().value_or(-1) + 1;
        for (;; ++step) {
          m.save(step, make_state(step, 4096));
          m.wait_until_finished();
        }
      } catch (...) {
        ::_exit(3);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(5, 60)(rng)));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE_MESSAGE(WIFSIGNALED(status), "the saving child exited by itself (status " << status << ")");
    if (!list_tmp_dirs(dir.path()).empty()) ++kills_mid_save;
    // Every listed step restores bit-exact; no temporary directory is listed.
    checkpoint_manager_options ro;
    ro.read_only = true;
    checkpoint_manager reader(dir.path(), ro);
    for (auto s : reader.all_steps()) {
      state_t back;
      reader.restore(back, s);
      if (!(back.at("w") == make_state(s, 4096).at("w"))) FAIL("trial " << trial << ": step " << s << " restores wrong data");
    }
    for (const auto& e : list_steps(dir.path())) CHECK_FALSE(is_tmp_name(e.path.filename().string()));
  }
  // The next manager cleans up and continues.
  checkpoint_manager m(dir.path(), quick());
  CHECK(list_tmp_dirs(dir.path()).empty());
  const auto next = m.latest_step().value_or(-1) + 1;
  CHECK(m.save(next, make_state(next)));
  m.wait_until_finished();
  CHECK(m.latest_step() == next);
  MESSAGE(trials << " kills, " << kills_mid_save << " of them with a save in progress");
}

TEST_CASE("a state of many leaves is written, opened and read on several threads (a data race shows under TSan)") {
  cairn_test::temp_dir dir;
  // 2,000 leaves: the writer encodes them in batches on several threads and prints `_METADATA` meanwhile;
  // the reader opens the database while it parses that `_METADATA` (over 256 KiB) and reads leaves in parallel.
  // Every fourth leaf holds 12 KB of incompressible bits: stored out of line, some 6 MB of them, so
  // that full batches of the data file go to disk on the sink's own thread while the next one fills.
  state_t state;
  std::uint32_t bits = 12345;
  for (int i = 0; i < 2000; ++i) {
    if (i % 4) {
      state.emplace("leaf_" + std::to_string(i), make_state(i, 8 + i % 7).at("w"));
      continue;
    }
    host_array w(dtype::uint32, shape{3000});
    for (auto& x : std::span(reinterpret_cast<std::uint32_t*>(w.mutable_bytes().data()), 3000)) {
      bits ^= bits << 13;
      bits ^= bits >> 17;
      bits ^= bits << 5;
      x = bits;
    }
    state.emplace("leaf_" + std::to_string(i), std::move(w));
  }
  checkpoint_manager m(dir.path(), quick());
  CHECK(m.save(1, state));
  m.wait_until_finished();
  CHECK(std::filesystem::file_size(dir.path() / "1" / "default" / "_METADATA") >= pytree_item::parallel_metadata_bytes);
  state_t back;
  m.restore(back);
  CHECK(back == state);
}
