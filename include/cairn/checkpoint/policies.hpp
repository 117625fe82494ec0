// SPDX-License-Identifier: Apache-2.0
/// \file
/// When a checkpoint manager saves, and which steps it keeps — Orbax's save decision and preservation
/// policies (`checkpoint_manager` options map onto them). Both kinds are plain function objects and
/// compose with `any_of`:
///  * save decisions: `fixed_interval(n)`, `specific_steps({...})`, `predicate(f)`,
///    `continuous(min_seconds)`, `initial_save()`;
///  * preservation: `latest_n(n)`, `every_n_steps(n)`, `every_n_seconds(s)`, `best_n(metric, mode, n)`,
///    `custom(f)`; a step is kept when any policy keeps it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/json/value.hpp>

namespace cairn {

/// What a save decision sees.
struct save_context {
  std::int64_t step = 0;
  std::optional<std::int64_t> latest_step;                         ///< the newest saved step, if any
  std::optional<std::chrono::system_clock::time_point> last_save;  ///< when this manager last saved
  std::chrono::system_clock::time_point now;
};

/// Decides whether to save at a step.
using save_decision_policy = std::function<bool(const save_context&)>;

/// A saved step, as preservation policies see it.
struct step_info {
  std::int64_t step = 0;
  std::chrono::system_clock::time_point time;  ///< commit time
  json::value metrics;                         ///< the metrics saved with it (an object, maybe empty)
};

/// Given the saved steps in increasing order, returns for each whether to keep it.
using preservation_policy = std::function<std::vector<bool>(const std::vector<step_info>&)>;

/// Whether a larger or a smaller metric is better.
enum class best_mode { min, max };

namespace save_policies {

/// Saves every `n` steps (`step % n == 0`).
/// \throws cairn::error (errc::invalid_argument) if n < 1.
inline save_decision_policy fixed_interval(std::int64_t n) {
  if (n < 1) throw error(errc::invalid_argument, "fixed_interval: interval " + std::to_string(n) + " (at least 1)");
  return [n](const save_context& c) { return c.step % n == 0; };
}
/// Saves at exactly these steps.
inline save_decision_policy specific_steps(std::set<std::int64_t> steps) {
  return [steps = std::move(steps)](const save_context& c) { return steps.count(c.step) > 0; };
}
/// Saves when `f(step)` says so.
inline save_decision_policy predicate(std::function<bool(std::int64_t)> f) {
  return [f = std::move(f)](const save_context& c) { return f(c.step); };
}
/// Saves when at least `min_interval` has passed since this manager's last save (or it never saved).
inline save_decision_policy continuous(std::chrono::duration<double> min_interval) {
  return [min_interval](const save_context& c) { return !c.last_save || c.now - *c.last_save >= min_interval; };
}
/// Saves when the root holds no checkpoint yet.
inline save_decision_policy initial_save() {
  return [](const save_context& c) { return !c.latest_step.has_value(); };
}
/// Saves when any of `policies` would.
inline save_decision_policy any_of(std::vector<save_decision_policy> policies) {
  return [policies = std::move(policies)](const save_context& c) {
    return std::any_of(policies.begin(), policies.end(), [&](const auto& p) { return p(c); });
  };
}

}  // namespace save_policies

namespace preservation_policies {

/// Keeps the newest `n` steps (n = 0 keeps none).
inline preservation_policy latest_n(std::size_t n) {
  return [n](const std::vector<step_info>& s) {
    std::vector<bool> keep(s.size(), false);
    for (std::size_t i = s.size() > n ? s.size() - n : 0; i < s.size(); ++i) keep[i] = true;
    return keep;
  };
}
/// Keeps steps divisible by `n`.
/// \throws cairn::error (errc::invalid_argument) if n < 1.
inline preservation_policy every_n_steps(std::int64_t n) {
  if (n < 1) throw error(errc::invalid_argument, "every_n_steps: " + std::to_string(n) + " (at least 1)");
  return [n](const std::vector<step_info>& s) {
    std::vector<bool> keep(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) keep[i] = s[i].step % n == 0;
    return keep;
  };
}
/// Keeps the oldest step and then each step saved at least `interval` after the last one kept.
inline preservation_policy every_n_seconds(std::chrono::duration<double> interval) {
  return [interval](const std::vector<step_info>& s) {
    std::vector<bool> keep(s.size(), false);
    std::optional<std::chrono::system_clock::time_point> last;
    for (std::size_t i = 0; i < s.size(); ++i)
      if (!last || s[i].time - *last >= interval) {
        keep[i] = true;
        last = s[i].time;
      }
    return keep;
  };
}
/// The metric `name` of a step's metrics, if it is a number.
inline std::function<std::optional<double>(const json::value&)> metric(std::string name) {
  return [name = std::move(name)](const json::value& m) -> std::optional<double> {
    if (!m.is_object()) return std::nullopt;
    const json::value* v = m.find(name);
    if (!v || !v->is_number()) return std::nullopt;
    return v->as_double();
  };
}
/// Keeps the `n` best steps by `get(metrics)` (ties: the newer wins); steps without the metric are
/// kept when `keep_without_metric` (Orbax's `keep_checkpoints_without_metrics`), else dropped.
inline preservation_policy best_n(std::function<std::optional<double>(const json::value&)> get, best_mode mode, std::size_t n,
                                  bool keep_without_metric = true) {
  return [get = std::move(get), mode, n, keep_without_metric](const std::vector<step_info>& s) {
    std::vector<bool> keep(s.size(), false);
    std::vector<std::pair<double, std::size_t>> scored;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (auto v = get(s[i].metrics)) scored.emplace_back(*v, i);
      else keep[i] = keep_without_metric;
    }
    std::stable_sort(scored.begin(), scored.end(), [mode](const auto& a, const auto& b) {
      if (a.first != b.first) return mode == best_mode::max ? a.first > b.first : a.first < b.first;
      return a.second > b.second;
    });
    for (std::size_t i = 0; i < scored.size() && i < n; ++i) keep[scored[i].second] = true;
    return keep;
  };
}
/// Keeps the steps for which `f(step_info)` is true.
inline preservation_policy custom(std::function<bool(const step_info&)> f) {
  return [f = std::move(f)](const std::vector<step_info>& s) {
    std::vector<bool> keep(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) keep[i] = f(s[i]);
    return keep;
  };
}
/// Keeps a step when any of `policies` keeps it.
inline preservation_policy any_of(std::vector<preservation_policy> policies) {
  return [policies = std::move(policies)](const std::vector<step_info>& s) {
    std::vector<bool> keep(s.size(), false);
    for (const auto& p : policies) {
      const auto k = p(s);
      for (std::size_t i = 0; i < s.size(); ++i) keep[i] = keep[i] || k[i];
    }
    return keep;
  };
}
/// Keeps everything.
inline preservation_policy keep_all() {
  return [](const std::vector<step_info>& s) { return std::vector<bool>(s.size(), true); };
}

}  // namespace preservation_policies

}  // namespace cairn
