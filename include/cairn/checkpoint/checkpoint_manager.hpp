// SPDX-License-Identifier: Apache-2.0
/// \file
/// `checkpoint_manager`: decides when to save, saves in the background on a Boost.Asio executor while
/// training continues, keeps the right steps, and restores the latest or best one — Orbax's
/// `CheckpointManager` for C++ (orbax-format.md §1.2; ARCHITECTURE.md §3, §5).
///
/// A save stages the tree on the caller's thread (the copy that lets the caller change its state at
/// once), then encodes, writes and commits on the executor: items go into `<step>.orbax-checkpoint-tmp/`,
/// each with `commit_success.txt`, then `_CHECKPOINT_METADATA` (with the metrics), fsync, and one rename
/// makes the step visible. Retention runs after each commit. At most `max_in_flight` saves are staged or
/// running at once: a further `save` waits instead of piling up copies. The first background failure is
/// rethrown by `wait_until_finished`, the next `save` and `close` — never swallowed.
///
/// With several processes (`options.save.coordinator`), every process runs a manager on the same root
/// and calls the same functions in the same order. The primary decides — whether to save a step, which
/// steps exist, which to delete — and broadcasts its decisions on the caller's thread; the background
/// saves run the multi-process protocol of `cairn::save` on a channel of their own, so a save finishes
/// collectively while the caller trains.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/checkpoint_metadata.hpp>
#include <cairn/checkpoint/policies.hpp>
#include <cairn/checkpoint/steps.hpp>
#include <cairn/checkpoint/typed.hpp>
#include <cairn/core/error.hpp>
#include <cairn/detail/asio.hpp>
#include <cairn/json/value.hpp>
#include <cairn/tree/dynamic_tree.hpp>

namespace cairn {

namespace detail {
// Step numbers as the primary broadcasts them: "3 7 9 ".
inline void append_step(std::string& list, std::int64_t step) { list += std::to_string(step) + " "; }
inline std::vector<std::int64_t> parse_step_list(std::string_view list) {
  std::vector<std::int64_t> out;
  for (std::size_t at = 0, sp; (sp = list.find(' ', at)) != std::string_view::npos; at = sp + 1)
    out.push_back(std::stoll(std::string(list.substr(at, sp - at))));
  return out;
}
}  // namespace detail

/// Options of a `checkpoint_manager`. Flat options map onto policies as Orbax's do; set
/// `save_decision` or `preservation` to use policies directly instead.
struct checkpoint_manager_options {
  /// Keep at most this many steps (the latest ones, or the best ones with a best metric); unset: all.
  std::optional<std::size_t> max_to_keep{};
  /// Also keep every step divisible by this (Orbax `keep_period`).
  std::optional<std::int64_t> keep_period{};
  /// Rank steps by this metric (a key of the saved metrics) ...
  std::string best_metric{};
  /// ... or by this function of the metrics (Orbax `best_fn`).
  std::function<std::optional<double>(const json::value&)> best_fn{};
  best_mode mode = best_mode::max;  ///< Orbax `best_mode` (default "max")
  bool keep_checkpoints_without_metrics = true;
  /// Save at steps divisible by this ...
  std::int64_t save_interval_steps = 1;
  /// ... and at these steps ...
  std::set<std::int64_t> save_on_steps{};
  /// ... and, when set, whenever this much time has passed since the last save.
  std::optional<std::chrono::duration<double>> min_interval{};
  save_decision_policy save_decision{};  ///< overrides the flat save options when set
  preservation_policy preservation{};    ///< overrides the flat retention options when set

  step_naming naming{};                 ///< step directory names (prefix, fixed length)
  bool cleanup_tmp_directories = true;  ///< remove stale `*.orbax-checkpoint-tmp` entries on open
  bool read_only = false;             ///< never write or delete (evaluators)
  bool create = true;                 ///< create the root if it is missing
  std::size_t max_in_flight = 1;      ///< saves staged or running at once (at least 1)
  /// Keep the last save's staging copy and copy the next state into it (same paths, dtypes and shapes):
  /// a repeated save then allocates nothing and takes no page faults, at the cost of holding one copy
  /// of the state between saves. Off: the copy is freed as soon as it is written.
  bool reuse_staging_buffers = true;
  save_options save{};                  ///< how items are written (zarr format, compression, fsync)
  /// Called on the executor after a step's items are written and before its commit, with the step and
  /// its temporary directory: add files to the step, or veto it by throwing (the step is then never
  /// committed and the error is reported like any other).
  std::function<void(std::int64_t, const std::filesystem::path&)> before_commit{};
};

/// What a save carries besides the trees.
struct save_args {
  json::value metrics = json::value::object();          ///< e.g. {"val_loss": 0.12}, used by best-N
  json::value custom_metadata = json::value::object();  ///< stored in `_CHECKPOINT_METADATA`
  bool force = false;                                   ///< save even if the policy says no
};

/// Manages the steps under one root directory.
/// \par Thread safety
/// One thread drives a manager (save/restore/queries); background work runs on the executor. The
/// query functions are safe to call while saves run.
class checkpoint_manager {
 public:
  using executor_type = asio::thread_pool::executor_type;

  /// Opens (or creates) `root`; saves run on `executor`, which must outlive the manager.
  /// \throws cairn::error (errc::invalid_argument) for max_in_flight = 0; (errc::io) if the root cannot be
  ///         created or listed; (errc::not_found) for a missing root in read-only mode.
  checkpoint_manager(std::filesystem::path root, executor_type executor, checkpoint_manager_options options = {})
      : root_(std::move(root)), executor_(std::move(executor)), options_(std::move(options)) {
    init();
  }
  /// As above, owning a pool of `threads` threads.
  explicit checkpoint_manager(std::filesystem::path root, checkpoint_manager_options options = {}, std::size_t threads = 2)
      : owned_pool_(std::make_unique<asio::thread_pool>(threads)),
        root_(std::move(root)),
        executor_(owned_pool_->get_executor()),
        options_(std::move(options)) {
    init();
  }
  checkpoint_manager(const checkpoint_manager&) = delete;
  checkpoint_manager& operator=(const checkpoint_manager&) = delete;

  /// Finishes every running save. A failure nobody has seen yet is printed to stderr (a destructor
  /// cannot throw); call `close()` to receive it.
  ~checkpoint_manager() {
    try {
      wait_idle();
      std::lock_guard lock(state_->mutex);
      if (state_->failure) {
        try {
          std::rethrow_exception(state_->failure);
        } catch (const std::exception& e) {
          std::cerr << "cairn: checkpoint_manager for \"" << root_.string() << "\" closed with an unreported failure: " << e.what()
                    << "\n";
        }
      }
    } catch (...) {
    }
  }

  const std::filesystem::path& directory() const noexcept { return root_; }
  const checkpoint_manager_options& options() const noexcept { return options_; }

  /// Whether the policy saves at `step` (false for a step at or before the newest saved one).
  bool should_save(std::int64_t step) const {
    std::lock_guard lock(state_->mutex);
    return should_save_locked(step);
  }

  /// Saves `tree` (a C++ tree or a dynamic tree) as item `default` of `step`, in the background.
  /// Returns false (and does nothing) when the policy does not save at `step` and `args.force` is off.
  /// \throws cairn::error (errc::already_exists) if `step` is saved or being saved; (errc::unsupported)
  ///         in read-only mode; the first failure of an earlier background save.
  template <class T>
  bool save(std::int64_t step, const T& tree, const save_args& args = {}) {
    if (options_.read_only) throw error(errc::unsupported, "checkpoint root \"" + root_.string() + "\" is read-only");
    rethrow_failure();
    // Decide before staging: a skipped step costs no copy.
    if (!decide(step, args.force)) return false;
    std::map<std::string, dynamic_tree> items;
    items.emplace("default", stage(tree));  // moved in: an initializer list would copy the staged tree
    return start_save(step, std::move(items), args, nullptr, true);
  }
  /// Saves several items (Keras's layout: `pytree`, `model_config`, `assets`); a JSON value becomes a
  /// JSON item. The trees are moved in: they are the staged copies.
  bool save_items(std::int64_t step, std::map<std::string, dynamic_tree> items, const save_args& args = {}) {
    return start_save(step, std::move(items), args, nullptr, std::nullopt);
  }

  /// As `save`, reporting the background result through an Asio completion token (a callback
  /// `void(std::exception_ptr)`, `asio::use_future`, `asio::use_awaitable`). A step the policy skips
  /// completes at once with no error.
  template <class T, class CompletionToken>
  auto async_save(std::int64_t step, const T& tree, CompletionToken&& token, const save_args& args = {}) {
    auto staged = std::make_shared<std::map<std::string, dynamic_tree>>();
    (*staged)["default"] = stage(tree);
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [this, step, staged, args](auto handler) mutable {
          auto shared_handler = std::make_shared<decltype(handler)>(std::move(handler));
          auto done = [shared_handler](std::exception_ptr e) {
            auto ex = asio::get_associated_executor(*shared_handler);
            asio::dispatch(ex, [shared_handler, e = std::move(e)]() mutable { (*shared_handler)(std::move(e)); });
          };
          try {
            if (!start_save(step, std::move(*staged), args, done, std::nullopt)) done(nullptr);
          } catch (...) {
            done(std::current_exception());
          }
        },
        token);
  }

  /// Blocks until no save is running; rethrows the first failure not yet reported.
  void wait_until_finished() {
    wait_idle();
    rethrow_failure();
  }
  /// True while a save is staged or running.
  bool is_saving_in_progress() const {
    std::lock_guard lock(state_->mutex);
    return state_->in_flight > 0;
  }

  /// Committed steps, increasing.
  std::vector<std::int64_t> all_steps() const {
    std::lock_guard lock(state_->mutex);
    std::vector<std::int64_t> out;
    for (const auto& s : state_->steps) out.push_back(s.step);
    return out;
  }
  std::optional<std::int64_t> latest_step() const {
    std::lock_guard lock(state_->mutex);
    if (state_->steps.empty()) return std::nullopt;
    return state_->steps.back().step;
  }
  /// The best step by the best metric (or `best_fn`); the latest step when none is configured.
  std::optional<std::int64_t> best_step() const {
    std::lock_guard lock(state_->mutex);
    auto get = metric_getter();
    if (!get) return state_->steps.empty() ? std::nullopt : std::optional(state_->steps.back().step);
    std::optional<std::pair<double, std::int64_t>> best;
    for (const auto& s : state_->steps)
      if (auto v = get(s.metrics)) {
        const bool better = !best || (options_.mode == best_mode::max ? *v >= best->first : *v <= best->first);
        if (better) best = std::pair(*v, s.step);
      }
    if (!best) return std::nullopt;
    return best->second;
  }
  /// The metrics saved with `step` (an empty object if none).
  /// \throws cairn::error (errc::not_found) if `step` is not committed.
  json::value metrics(std::int64_t step) const {
    std::lock_guard lock(state_->mutex);
    return find_locked(step).metrics;
  }
  /// The step's `_CHECKPOINT_METADATA`.
  checkpoint_metadata metadata(std::int64_t step) const {
    const auto dir = step_path(step);
    return parse_checkpoint_metadata(detail::read_text_file(dir / "_CHECKPOINT_METADATA", "step " + std::to_string(step)),
                                     "step " + std::to_string(step) + ": _CHECKPOINT_METADATA");
  }
  /// The directory of committed step `step`.
  /// \throws cairn::error (errc::not_found) if it is not committed.
  std::filesystem::path step_path(std::int64_t step) const {
    std::lock_guard lock(state_->mutex);
    (void)find_locked(step);
    return root_ / step_name(step, options_.naming);
  }

  /// Restores item `options.item` of `step` (default: the latest) into `target` (see `cairn::restore`).
  /// \throws cairn::error (errc::not_found) naming the root if there is no such step.
  template <class T>
  restore_report restore(T& target, std::optional<std::int64_t> step, const restore_options& o) {
    return cairn::restore(root_ / step_name(resolve(step), options_.naming), target, o);
  }
  /// As above with the default options, of the latest step unless `step` is given.
  template <class T>
  restore_report restore(T& target, std::optional<std::int64_t> step = std::nullopt) {
    static const restore_options defaults;
    return restore(target, step, defaults);
  }
  /// Loads every item of `step` (default: the latest) as dynamic trees.
  std::map<std::string, dynamic_tree> load_items(std::optional<std::int64_t> step = std::nullopt) const {
    const auto dir = root_ / step_name(resolve(step), options_.naming);
    std::map<std::string, dynamic_tree> out;
    for (const auto& e : list_items(dir))
      if (e.present && e.kind != item_kind::unknown) out[e.name] = load_item(dir, e.name);
    return out;
  }

  /// Deletes a committed step (waits for running saves first). With several processes the primary
  /// deletes and the others forget the step.
  /// \throws cairn::error (errc::unsupported) in read-only mode; (errc::not_found) if there is no such step.
  void delete_step(std::int64_t step) {
    if (options_.read_only) throw error(errc::unsupported, "checkpoint root \"" + root_.string() + "\" is read-only");
    wait_idle();
    (void)detail::decided_by_primary(control_, {"manager.delete", step}, options_.save.timeout, [&] {
      std::lock_guard lock(state_->mutex);
      (void)find_locked(step);
      remove_locked(step);
      return std::string();
    });
    if (!control_.is_primary()) forget(step);
  }
  /// Re-reads the steps and their metrics from disk (another process may have saved). With several
  /// processes, the primary's list is everyone's.
  void reload() {
    wait_idle();
    sync_steps({"manager.reload"});
  }
  /// Waits for running saves and rethrows the first failure not yet reported. The manager stays usable.
  void close() { wait_until_finished(); }

 private:
  struct shared_state {
    std::mutex mutex;
    std::condition_variable changed;
    std::size_t in_flight = 0;
    std::vector<step_info> steps;
    std::set<std::int64_t> pending;  // being saved
    std::exception_ptr failure;
    std::optional<std::chrono::system_clock::time_point> last_save;
    std::shared_ptr<dynamic_tree> recycled;  // the last written staging copy, for reuse_staging_buffers
  };

  void init() {
    if (options_.max_in_flight == 0) throw error(errc::invalid_argument, "checkpoint_manager: max_in_flight must be at least 1");
    std::error_code ec;
    if (!std::filesystem::is_directory(root_, ec)) {
      if (options_.read_only || !options_.create)
        throw error(errc::not_found, "checkpoint root \"" + root_.string() + "\" does not exist");
      std::filesystem::create_directories(root_, ec);
      if (ec) throw error(errc::io, "create checkpoint root \"" + root_.string() + "\": " + ec.message());
    }
    control_ = options_.save.coordinator;
    if (coordinated()) io_ = control_.duplicate();  // the background saves' own channel
    if (!options_.read_only && options_.cleanup_tmp_directories && control_.is_primary())
      for (const auto& p : list_tmp_dirs(root_)) std::filesystem::remove_all(p, ec);
    sync_steps({"manager.open"});
  }

  bool coordinated() const { return control_.process_count() > 1; }

  // Scans the root; with several processes everyone keeps the primary's steps (which also orders the
  // primary's clean-up before anyone's first save).
  void sync_steps(collective op) {
    auto steps = scan();
    if (coordinated()) {
      std::string list;
      if (control_.is_primary())
        for (const auto& s : steps) detail::append_step(list, s.step);
      list = control_.broadcast(op, std::move(list), options_.save.timeout);
      const auto primary_steps = detail::parse_step_list(list);
      const std::set<std::int64_t> keep(primary_steps.begin(), primary_steps.end());
      std::erase_if(steps, [&](const step_info& s) { return !keep.count(s.step); });
    }
    std::lock_guard lock(state_->mutex);
    state_->steps = std::move(steps);
  }

  // Whether to save `step`: this process's policy, or with several processes the primary's for all.
  // \throws cairn::error (errc::already_exists) if the step is saved or being saved.
  bool decide(std::int64_t step, bool force) {
    return detail::decided_by_primary(control_, {"manager.save", step}, options_.save.timeout, [&] {
             std::lock_guard lock(state_->mutex);
             check_new_locked(step);
             return std::string(force || should_save_locked(step) ? "1" : "0");
           }) == "1";
  }
  void check_new_locked(std::int64_t step) const {
    if (has_step_locked(step))
      throw error(errc::already_exists, "checkpoint root \"" + root_.string() + "\": step " + std::to_string(step) + " already exists");
    if (state_->pending.count(step))
      throw error(errc::already_exists, "checkpoint root \"" + root_.string() + "\": step " + std::to_string(step) + " is being saved");
  }
  void forget(std::int64_t step) {
    std::lock_guard lock(state_->mutex);
    std::erase_if(state_->steps, [&](const step_info& s) { return s.step == step; });
  }

  template <class T>
  dynamic_tree stage(const T& tree) {
    if constexpr (std::same_as<T, dynamic_tree>) {
      return tree;
    } else {
      std::shared_ptr<dynamic_tree> reuse;
      {
        std::lock_guard lock(state_->mutex);
        reuse = std::move(state_->recycled);
      }
      detail::stage_visitor v;
      v.recycle = reuse.get();
      key_path path;
      walk_tree(tree, path, v);
      return std::move(v.root);
    }
  }
  bool has_step_locked(std::int64_t step) const {
    for (const auto& s : state_->steps)
      if (s.step == step) return true;
    return false;
  }

  std::vector<step_info> scan() const {
    std::vector<step_info> out;
    for (const auto& s : list_steps(root_, options_.naming)) {
      step_info info{s.step, std::chrono::system_clock::time_point{}, json::value::object()};
      try {
        const auto m = parse_checkpoint_metadata(detail::read_text_file(s.path / "_CHECKPOINT_METADATA", ""), "");
        if (m.metrics.is_object()) info.metrics = m.metrics;
        if (auto t = m.commit_timestamp_nsecs ? m.commit_timestamp_nsecs : m.init_timestamp_nsecs)
          info.time = std::chrono::system_clock::time_point(
              std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(*t)));
      } catch (const error&) {
        // A step without readable metadata still counts (Orbax lists it); it just has no metrics.
        info.time = std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::filesystem::last_write_time(s.path).time_since_epoch()));
      }
      out.push_back(std::move(info));
    }
    return out;
  }

  std::function<std::optional<double>(const json::value&)> metric_getter() const {
    if (options_.best_fn) return options_.best_fn;
    if (!options_.best_metric.empty()) return preservation_policies::metric(options_.best_metric);
    return {};
  }

  bool should_save_locked(std::int64_t step) const {
    const std::optional<std::int64_t> latest = state_->steps.empty() ? std::nullopt : std::optional(state_->steps.back().step);
    if (latest && step <= *latest) return false;
    if (state_->pending.count(step)) return false;
    for (auto p : state_->pending)
      if (step <= p) return false;
    const save_context c{step, latest, state_->last_save, std::chrono::system_clock::now()};
    if (options_.save_decision) return options_.save_decision(c);
    std::vector<save_decision_policy> any{save_policies::fixed_interval(std::max<std::int64_t>(options_.save_interval_steps, 1))};
    if (!options_.save_on_steps.empty()) any.push_back(save_policies::specific_steps(options_.save_on_steps));
    if (options_.min_interval) any.push_back(save_policies::continuous(*options_.min_interval));
    return save_policies::any_of(std::move(any))(c);
  }

  preservation_policy preservation() const {
    if (options_.preservation) return options_.preservation;
    std::vector<preservation_policy> any;
    if (!options_.max_to_keep) any.push_back(preservation_policies::keep_all());
    else if (auto get = metric_getter())
      any.push_back(preservation_policies::best_n(get, options_.mode, *options_.max_to_keep, options_.keep_checkpoints_without_metrics));
    else any.push_back(preservation_policies::latest_n(*options_.max_to_keep));
    if (options_.keep_period) any.push_back(preservation_policies::every_n_steps(*options_.keep_period));
    return preservation_policies::any_of(std::move(any));
  }

  const step_info& find_locked(std::int64_t step) const {
    for (const auto& s : state_->steps)
      if (s.step == step) return s;
    throw error(errc::not_found, "checkpoint root \"" + root_.string() + "\": no committed step " + std::to_string(step));
  }

  std::int64_t resolve(std::optional<std::int64_t> step) const {
    if (step) {
      std::lock_guard lock(state_->mutex);
      (void)find_locked(*step);
      return *step;
    }
    auto latest = latest_step();
    if (!latest) throw error(errc::not_found, "checkpoint root \"" + root_.string() + "\" holds no committed step");
    return *latest;
  }

  void remove_locked(std::int64_t step) {
    const auto dir = root_ / step_name(step, options_.naming);
    // Rename first so that a crash mid-delete leaves a temporary directory, never a half-deleted step.
    const auto doomed = root_ / (step_name(step, options_.naming) + std::string(tmp_marker) + ".deleting");
    std::error_code ec;
    std::filesystem::rename(dir, doomed, ec);
    if (ec) throw error(errc::io, "delete step " + std::to_string(step) + ": rename \"" + dir.string() + "\": " + ec.message());
    std::filesystem::remove_all(doomed, ec);
    state_->steps.erase(std::remove_if(state_->steps.begin(), state_->steps.end(), [&](const step_info& s) { return s.step == step; }),
                        state_->steps.end());
  }

  void rethrow_failure() {
    std::exception_ptr e;
    {
      std::lock_guard lock(state_->mutex);
      e = std::exchange(state_->failure, nullptr);
    }
    if (e) std::rethrow_exception(e);
  }

  void wait_idle() {
    std::unique_lock lock(state_->mutex);
    state_->changed.wait(lock, [&] { return state_->in_flight == 0; });
  }

  // `decided`: `decide` already said yes (save stages only then); unset: decide here.
  bool start_save(std::int64_t step, std::map<std::string, dynamic_tree> items, const save_args& args,
                  std::function<void(std::exception_ptr)> done, std::optional<bool> decided) {
    if (options_.read_only) throw error(errc::unsupported, "checkpoint root \"" + root_.string() + "\" is read-only");
    if (!decided) {
      rethrow_failure();
      if (!decide(step, args.force)) return false;
    }
    {
      std::unique_lock lock(state_->mutex);
      // Bound memory: wait for a slot before the staged copy is handed over.
      state_->changed.wait(lock, [&] { return state_->in_flight < options_.max_in_flight; });
      ++state_->in_flight;
      state_->pending.insert(step);
      state_->last_save = std::chrono::system_clock::now();
    }
    auto job = std::make_shared<std::map<std::string, dynamic_tree>>(std::move(items));
    save_options so = options_.save;
    so.coordinator = io_;
    so.naming = options_.naming;
    so.metrics = args.metrics;
    so.custom_metadata = args.custom_metadata;
    auto state = state_;
    auto write = [this, state, step, job, so, done = std::move(done)]() mutable {
      std::exception_ptr failure;
      try {
        detail::item_refs refs;
        for (const auto& [name, tree] : *job) refs.emplace_back(name, &tree);
        detail::save_item_refs(root_, step, refs, so, options_.before_commit);
        // The staged copy is kept for the next save's staging, or freed as soon as it is written.
        if (options_.reuse_staging_buffers && job->size() == 1 && job->count("default")) {
          auto keep = std::make_shared<dynamic_tree>(std::move(job->at("default")));
          std::lock_guard lock(state->mutex);
          state->recycled = std::move(keep);
        }
        job.reset();
        std::string doomed_list;  // the primary's retention decision, for the other processes
        {
          std::lock_guard lock(state->mutex);
          step_info info{step, std::chrono::system_clock::now(), so.metrics};
          auto at = std::upper_bound(state->steps.begin(), state->steps.end(), step,
                                     [](std::int64_t s, const step_info& i) { return s < i.step; });
          state->steps.insert(at, std::move(info));
          if (io_.is_primary()) {
            const auto keep = preservation()(state->steps);
            std::vector<std::int64_t> doomed;
            for (std::size_t i = 0; i < keep.size(); ++i)
              if (!keep[i]) doomed.push_back(state->steps[i].step);
            for (auto s : doomed) {
              remove_locked(s);
              detail::append_step(doomed_list, s);
            }
          }
        }
        if (coordinated()) {
          doomed_list = io_.broadcast({"manager.retain", step}, std::move(doomed_list), so.timeout);
          if (!io_.is_primary())
            for (auto s : detail::parse_step_list(doomed_list)) forget(s);
        }
      } catch (...) {
        failure = std::current_exception();
      }
      job.reset();
      {
        std::lock_guard lock(state->mutex);
        state->pending.erase(step);
        --state->in_flight;
        // Reported once: through the completion handler when there is one, else to the next caller.
        // Moved, not copied: this thread keeps no reference to an exception another thread may be
        // reading (libstdc++'s reference count is invisible to ThreadSanitizer).
        if (failure && !done && !state->failure) state->failure = std::move(failure);
      }
      state->changed.notify_all();
      if (done) done(std::move(failure));
    };
    asio::post(strand_, std::move(write));
    return true;
  }

  std::unique_ptr<asio::thread_pool> owned_pool_;
  std::filesystem::path root_;
  executor_type executor_;
  asio::strand<executor_type> strand_{executor_};
  checkpoint_manager_options options_;
  std::shared_ptr<shared_state> state_ = std::make_shared<shared_state>();
  any_coordinator control_;  // the caller's thread: decisions
  any_coordinator io_;       // the background saves (a duplicate channel when coordinated)
};

}  // namespace cairn
