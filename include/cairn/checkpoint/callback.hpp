// SPDX-License-Identifier: Apache-2.0
/// \file
/// `orbax_checkpoint`: a training callback with exactly the options of `keras.callbacks.OrbaxCheckpoint`
/// (orbax-format.md §6), for C++ training loops. It saves Keras's layout — item `pytree` (the state
/// tree: `trainable_variables`, `non_trainable_variables`, `optimizer_variables`, `metrics_variables`)
/// and, unless weights only, item `model_config` (`{"config": "<model JSON>"}`) — so
/// `keras.saving.load_model(directory)` loads what a C++ loop trained.
///
/// Behaviour as Keras: the step is the 0-based epoch (`save_freq = epoch`) or the global number of
/// batches seen (`save_freq = N`), which continues from the optimizer's iteration count when training
/// resumes; `save_best_only` compares the monitored value (`mode` auto: `*loss` is minimised,
/// accuracy-like metrics are maximised) and skips the save with a warning when the value is missing;
/// `max_to_keep` keeps the latest steps (default 1).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include <cairn/checkpoint/checkpoint_manager.hpp>
#include <cairn/core/error.hpp>
#include <cairn/tree/dynamic_tree.hpp>

namespace cairn {

/// What the callback needs from a model.
struct callback_model {
  /// The state tree (Keras `model.get_state_tree()`); with `weights_only`, only the trainable and
  /// non-trainable variables.
  std::function<dynamic_tree(bool weights_only)> state;
  /// The model's Keras config JSON (`saving_lib._serialize_model_as_json`); empty: no `model_config`.
  std::function<std::string()> config;
  /// The optimizer's iteration count (batches trained so far), for resumed batch numbering.
  std::function<std::int64_t()> iterations;
};

/// Metric values reported by a training loop (Keras `logs`).
using training_logs = std::map<std::string, double>;

/// Options of `orbax_checkpoint`, named and defaulted as Keras's.
struct orbax_checkpoint_options {
  std::filesystem::path directory{};
  std::string monitor = "val_loss";
  enum class mode_t { auto_, min, max } mode = mode_t::auto_;
  bool save_best_only = false;
  /// nullopt: `save_freq="epoch"`; N: every N batches.
  std::optional<std::int64_t> save_freq{};
  std::optional<std::size_t> max_to_keep = 1;
  bool save_on_background = true;
  bool save_weights_only = false;
  std::optional<double> initial_value_threshold{};
  int verbose = 0;                   ///< 1: a line per save or skipped save
  std::ostream* log = &std::cout;    ///< where verbose lines and warnings go
  save_options save{};                 ///< how items are written (defaults: zarr v3 + zstd, as Keras)
};

/// The callback. Call its hooks from the training loop.
/// \par Thread safety
/// Hooks are called from one thread; verbose lines of background saves come from the pool.
class orbax_checkpoint {
 public:
  /// \throws cairn::error (errc::invalid_argument) for `save_freq` < 1 or a `mode` auto cannot decide.
  orbax_checkpoint(orbax_checkpoint_options options, callback_model model)
      : options_(std::move(options)),
        model_(std::move(model)),
        manager_(options_.directory, manager_options(options_)),
        best_(options_.initial_value_threshold) {
    if (options_.save_freq && *options_.save_freq < 1)
      throw error(errc::invalid_argument, "orbax_checkpoint: save_freq " + std::to_string(*options_.save_freq) + " (at least 1)");
    minimize_ = decide_mode();
    // Keras's set_model: a resumed model continues the global batch count.
    if (model_.iterations) total_batches_ = model_.iterations();
  }

  /// Keras `on_epoch_end(epoch, logs)`: saves step `epoch` when `save_freq` is epoch.
  void on_epoch_end(std::int64_t epoch, const training_logs& logs = {}) {
    if (options_.save_freq) return;
    if (options_.save_best_only && !improved(logs, "epoch", epoch)) return;
    save(epoch, logs);
  }
  /// Keras `on_train_batch_end(batch, logs)`: `batch` counts from 0 in each epoch.
  void on_train_batch_end(std::int64_t batch, const training_logs& logs = {}) {
    if (!options_.save_freq) return;
    const std::int64_t add = (!last_batch_ || batch <= *last_batch_) ? batch + 1 : batch - *last_batch_;
    last_batch_ = batch;
    total_batches_ += add;
    since_save_ += add;
    if (since_save_ < *options_.save_freq) return;
    since_save_ = 0;
    if (options_.save_best_only && !improved(logs, "batch", batch)) return;
    save(total_batches_, logs);
  }
  /// Keras `on_train_end()`: waits for background saves; rethrows their first failure.
  void on_train_end() { manager_.wait_until_finished(); }
  void wait_until_finished() { manager_.wait_until_finished(); }

  /// The manager underneath (steps, metrics, restore).
  checkpoint_manager& manager() noexcept { return manager_; }
  /// The best monitored value so far.
  std::optional<double> best() const noexcept { return best_; }

 private:
  static checkpoint_manager_options manager_options(const orbax_checkpoint_options& o) {
    checkpoint_manager_options m;
    m.max_to_keep = o.max_to_keep;
    m.save = o.save;
    m.save.pytree.zarr_format = 3;
    return m;
  }

  bool decide_mode() const {
    using m = orbax_checkpoint_options::mode_t;
    if (options_.mode == m::min) return true;
    if (options_.mode == m::max) return false;
    std::string name = options_.monitor;
    if (name.rfind("val_", 0) == 0) name = name.substr(4);
    if (name == "loss" || (name.size() > 5 && name.compare(name.size() - 5, 5, "_loss") == 0)) return true;
    for (const char* up : {"accuracy", "acc", "auc", "precision", "recall", "f1_score"})
      if (name == up || (name.size() > std::string(up).size() &&
                         name.compare(name.size() - std::string(up).size() - 1, std::string::npos, std::string("_") + up) == 0))
        return false;
    if (!options_.save_best_only) return true;  // the direction only matters for save_best_only
    throw error(errc::invalid_argument, "orbax_checkpoint received monitor=" + options_.monitor +
                                            ", but cannot determine whether it should be maximized or minimized; pass mode max or min");
  }

  bool improved(const training_logs& logs, const char* unit, std::int64_t at) {
    auto it = logs.find(options_.monitor);
    if (it == logs.end()) {
      warn("Can save best model only with " + options_.monitor + " available, skipping save at " + unit + " " + std::to_string(at) + ".");
      return false;
    }
    const double v = it->second;
    if (best_ && !(minimize_ ? v < *best_ : v > *best_)) {
      if (options_.verbose)
        say(std::string(unit) + " " + std::to_string(at) + ": " + options_.monitor + " did not improve from " + fmt(*best_) + " (" +
            fmt(v) + "), not saving");
      return false;
    }
    if (options_.verbose)
      say(std::string(unit) + " " + std::to_string(at) + ": " + options_.monitor + " improved from " + (best_ ? fmt(*best_) : "inf") +
          " to " + fmt(v));
    best_ = v;
    return true;
  }

  void save(std::int64_t step, const training_logs& logs) {
    std::map<std::string, dynamic_tree> items;
    items["pytree"] = model_.state(options_.save_weights_only);
    if (!options_.save_weights_only && model_.config) {
      dynamic_tree cfg;
      cfg["config"] = model_.config();
      items["model_config"] = std::move(cfg);
    }
    json::value metrics = json::value::object();
    for (const auto& [k, v] : logs) metrics[k] = v;
    std::uint64_t bytes = 0;
    items["pytree"].for_each_leaf([&](const key_path&, const dynamic_tree& leaf) {
      if (leaf.type() == dynamic_tree::kind::array) bytes += leaf.as_array().num_bytes();
      if (leaf.type() == dynamic_tree::kind::sharded)
        for (const auto& s : leaf.as_sharded().shards()) bytes += s.data.num_bytes();
    });
    const auto t0 = std::chrono::steady_clock::now();
    if (!manager_.save_items(step, std::move(items), {.metrics = metrics, .force = true})) return;
    if (!options_.save_on_background) manager_.wait_until_finished();
    if (options_.verbose) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::ostringstream line;
      line << "step " << step << ": " << (options_.save_on_background ? "staged " : "saved ") << bytes << " B in " << std::fixed
           << std::setprecision(3) << s << " s (" << (s > 0 ? static_cast<double>(bytes) / s / 1e9 : 0.0) << " GB/s) to "
           << options_.directory.string() << (options_.save_on_background ? "; writing and committing in the background" : "");
      say(line.str());
    }
  }

  static std::string fmt(double v) {
    std::ostringstream s;
    s << std::setprecision(5) << v;
    return s.str();
  }
  void say(const std::string& line) const {
    if (options_.log) *options_.log << "OrbaxCheckpoint: " << line << "\n";
  }
  void warn(const std::string& line) const {
    if (options_.log) *options_.log << "UserWarning: " << line << "\n";
  }

  orbax_checkpoint_options options_;
  callback_model model_;
  checkpoint_manager manager_;
  std::optional<double> best_;
  bool minimize_ = true;
  std::optional<std::int64_t> last_batch_;
  std::int64_t total_batches_ = 0;
  std::int64_t since_save_ = 0;
};

/// Loads the full state Keras saved (items `pytree`, `model_config`, ...) from a root's latest step (or
/// a step directory).
/// \throws cairn::error (errc::not_found) if there is no committed step.
inline std::map<std::string, dynamic_tree> load_model_state(const std::filesystem::path& root_or_step) {
  std::filesystem::path step = root_or_step;
  if (!std::filesystem::exists(step / "_CHECKPOINT_METADATA")) {
    const auto steps = list_steps(root_or_step);
    if (steps.empty()) throw error(errc::not_found, "\"" + root_or_step.string() + "\": no committed step to load");
    step = steps.back().path;
  }
  std::map<std::string, dynamic_tree> out;
  for (const auto& e : list_items(step))
    if (e.present && e.kind != item_kind::unknown) out[e.name] = load_item(step, e.name);
  return out;
}

/// Loads only the weights (`pytree` → `trainable_variables` and `non_trainable_variables`) of a root's
/// latest step (or a step) into `weights`, an existing model structure (strict: every variable must
/// match in name, shape and dtype).
/// \throws cairn::error (errc::not_found) naming the variables the checkpoint lacks (the others are then
///         already written, as the message says).
template <class T>
restore_report load_weights(const std::filesystem::path& root_or_step, T& weights) {
  std::filesystem::path step = root_or_step;
  if (!std::filesystem::exists(step / "_CHECKPOINT_METADATA")) {
    const auto steps = list_steps(root_or_step);
    if (steps.empty()) throw error(errc::not_found, "\"" + root_or_step.string() + "\": no committed step to load");
    step = steps.back().path;
  }
  restore_options o;
  o.item = "pytree";
  o.partial = true;  // optimizer and metric variables stay in the checkpoint
  auto report = restore(step, weights, o);
  if (!report.missing.empty()) {
    std::string names;
    for (const auto& m : report.missing) names += (names.empty() ? "\"" : ", \"") + m + "\"";
    throw error(errc::not_found, "load_weights \"" + step.string() + "\": the checkpoint lacks " + names +
                                     "; the other variables were written");
  }
  return report;
}

}  // namespace cairn
