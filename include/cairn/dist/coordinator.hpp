// SPDX-License-Identifier: Apache-2.0
/// \file
/// The coordinator concept: what a multi-process save or restore needs from a distributed engine —
/// the process index and count, a barrier, and broadcast and gather of small byte messages, each with
/// a timeout and an operation name. `any_coordinator` holds any model by value; `single_process` is
/// the default. Simulated processes (threads) are in `dist/simulated.hpp`, MPI in `dist/mpi.hpp`.
///
/// Every collective names its operation and step (`collective{"save.commit", 7}`): the names travel
/// with the messages, so processes that took different paths are reported instead of mismatched, and a
/// timeout says which ranks did not arrive at which operation.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>

namespace cairn {

/// One collective operation: what (e.g. `save.commit`) and for which step (-1: none).
struct collective {
  std::string_view name;
  std::int64_t step = -1;
};

/// `save.commit of step 7`: how operations are named in errors.
inline std::string to_string(const collective& op) {
  std::string s(op.name);
  if (op.step >= 0) s += " of step " + std::to_string(op.step);
  return s;
}

/// How long a collective waits for the other processes.
using collective_timeout = std::chrono::milliseconds;

/// A distributed engine as cairn uses it. Rank 0 is the primary: it decides, others follow.
///  * `barrier(op, t)`: returns once every process has arrived at `op`;
///  * `broadcast(op, msg, t)`: every process returns the primary's `msg`;
///  * `gather(op, msg, t)`: the primary returns every process's message, by rank; others return {};
///  * `duplicate()`: an independent channel for another thread (collectives on different channels never
///    match each other).
/// Each throws `cairn::error(errc::timeout)` naming the operation and the ranks that did not arrive
/// within `t`, and `errc::invalid_argument` if another process is at a different operation.
/// \par Thread safety
/// One thread at a time per object; use `duplicate()` for each further thread.
template <class C>
concept coordinator = requires(C& c, const C& cc, collective op, std::string msg, collective_timeout t) {
  { cc.process_index() } -> std::convertible_to<int>;
  { cc.process_count() } -> std::convertible_to<int>;
  c.barrier(op, t);
  { c.broadcast(op, msg, t) } -> std::same_as<std::string>;
  { c.gather(op, msg, t) } -> std::same_as<std::vector<std::string>>;
  { c.duplicate() } -> std::same_as<C>;
};

/// One process: every collective returns at once.
class single_process {
 public:
  int process_index() const noexcept { return 0; }
  int process_count() const noexcept { return 1; }
  void barrier(collective, collective_timeout) {}
  std::string broadcast(collective, std::string msg, collective_timeout) { return msg; }
  std::vector<std::string> gather(collective, std::string msg, collective_timeout) { return {std::move(msg)}; }
  single_process duplicate() const { return {}; }
};

/// Holds any `coordinator` by value (copies share the model's channel; `duplicate` makes a new one).
class any_coordinator {
 public:
  /// The single-process coordinator (holds nothing: options structs that embed one stay cheap).
  any_coordinator() noexcept = default;
  template <coordinator C>
    requires(!std::same_as<std::remove_cvref_t<C>, any_coordinator>)
  any_coordinator(C c) : impl_(std::make_shared<model<C>>(std::move(c))) {}  // NOLINT: implicit by design

  int process_index() const { return impl_ ? impl_->process_index() : 0; }
  int process_count() const { return impl_ ? impl_->process_count() : 1; }
  bool is_primary() const { return process_index() == 0; }
  void barrier(collective op, collective_timeout t) {
    if (impl_) impl_->barrier(op, t);
  }
  std::string broadcast(collective op, std::string msg, collective_timeout t) {
    return impl_ ? impl_->broadcast(op, std::move(msg), t) : msg;
  }
  std::vector<std::string> gather(collective op, std::string msg, collective_timeout t) {
    if (!impl_) return {std::move(msg)};
    return impl_->gather(op, std::move(msg), t);
  }
  any_coordinator duplicate() const { return impl_ ? any_coordinator(impl_->duplicate()) : any_coordinator(); }

 private:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual int process_index() const = 0;
    virtual int process_count() const = 0;
    virtual void barrier(collective, collective_timeout) = 0;
    virtual std::string broadcast(collective, std::string, collective_timeout) = 0;
    virtual std::vector<std::string> gather(collective, std::string, collective_timeout) = 0;
    virtual std::shared_ptr<concept_t> duplicate() const = 0;
  };
  template <class C>
  struct model final : concept_t {
    explicit model(C c) : c(std::move(c)) {}
    int process_index() const override { return static_cast<int>(c.process_index()); }
    int process_count() const override { return static_cast<int>(c.process_count()); }
    void barrier(collective op, collective_timeout t) override { c.barrier(op, t); }
    std::string broadcast(collective op, std::string m, collective_timeout t) override { return c.broadcast(op, std::move(m), t); }
    std::vector<std::string> gather(collective op, std::string m, collective_timeout t) override {
      return c.gather(op, std::move(m), t);
    }
    std::shared_ptr<concept_t> duplicate() const override { return std::make_shared<model>(c.duplicate()); }
    C c;
  };
  explicit any_coordinator(std::shared_ptr<concept_t> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<concept_t> impl_;
};
static_assert(coordinator<single_process>);
static_assert(coordinator<any_coordinator>);

namespace detail {
/// "ranks 1, 3" for error messages.
inline std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}
/// The error of a collective whose `missing` ranks did not arrive in time.
inline error timeout_error(const collective& op, const std::vector<int>& missing, collective_timeout t, int self, int count) {
  return error(errc::timeout, detail::rank_list(missing) + " of " + std::to_string(count) + " did not arrive at " + to_string(op) +
                                  " within " + std::to_string(t.count()) + " ms (seen from rank " + std::to_string(self) + ")");
}

// Messages of a collective carry their operation, so that a process on another path is named.
inline std::string frame_message(const collective& op, std::string_view payload) {
  std::string s = std::to_string(op.step);
  s += ' ';
  s += op.name;
  s += '\n';
  s += payload;
  return s;
}
inline std::string unframe_message(const collective& op, std::string_view framed, int from, int self) {
  const auto nl = framed.find('\n');
  const std::string expected = std::to_string(op.step) + " " + std::string(op.name);
  if (nl == std::string_view::npos || framed.substr(0, nl) != expected) {
    const std::string_view got = nl == std::string_view::npos ? framed.substr(0, 64) : framed.substr(0, nl);
    const auto sp = got.find(' ');
    std::string theirs = sp == std::string_view::npos ? std::string(got) : std::string(got.substr(sp + 1)) + " of step " + std::string(got.substr(0, sp));
    throw error(errc::invalid_argument, "rank " + std::to_string(self) + " is at " + to_string(op) + " but rank " +
                                            std::to_string(from) + " is at " + theirs);
  }
  return std::string(framed.substr(nl + 1));
}
}  // namespace detail

/// Encodes a failure so that another process can rethrow it with its code (`rethrow_remote`).
inline std::string encode_failure(std::exception_ptr e) {
  try {
    std::rethrow_exception(std::move(e));
  } catch (const error& x) {
    if (x.code().category() == error_category()) return std::to_string(x.code().value()) + " " + x.context();
    return std::to_string(static_cast<int>(errc::io)) + " " + x.what();
  } catch (const std::exception& x) {
    return std::to_string(static_cast<int>(errc::io)) + " " + x.what();
  } catch (...) {
    return std::to_string(static_cast<int>(errc::io)) + " unknown failure";
  }
}
/// Throws the failure `encoded` (from `encode_failure`) as a `cairn::error`, prefixed with `where`.
[[noreturn]] inline void rethrow_remote(std::string_view encoded, std::string_view where) {
  const auto sp = encoded.find(' ');
  int code = static_cast<int>(errc::io);
  try {
    code = std::stoi(std::string(encoded.substr(0, sp)));
  } catch (...) {
  }
  if (code < static_cast<int>(errc::not_found) || code > static_cast<int>(errc::timeout)) code = static_cast<int>(errc::io);
  const std::string context = sp == std::string_view::npos ? std::string() : std::string(encoded.substr(sp + 1));
  throw error(static_cast<errc>(code), where.empty() ? context : std::string(where) + ": " + context);
}


namespace detail {
/// One round of agreement: every process sends `msg`, the primary turns the messages (by rank) into a
/// verdict with `decide` (empty: go on; else an `encode_failure` text), and every process returns the
/// verdict. A timeout or a failure of `decide` becomes the verdict too, so the processes that are alive
/// all learn why. Others wait up to `2 t + decide_time` for the verdict: the primary may itself arrive up
/// to `t` late and then wait `t` for a missing rank, and the others must hear why rather than time out
/// first and blame the primary.
template <class C, class Decide>
std::string agree(C& c, collective op, std::string msg, collective_timeout t, collective_timeout decide_time, Decide&& decide) {
  if (c.process_index() != 0) {
    (void)c.gather(op, std::move(msg), t);
    return c.broadcast(op, {}, 2 * t + decide_time);
  }
  std::string verdict;
  try {
    verdict = decide(c.gather(op, std::move(msg), t));
  } catch (...) {
    verdict = encode_failure(std::current_exception());
  }
  return c.broadcast(op, std::move(verdict), t);
}
/// The primary's decision, made once for every process: the primary runs `decide` (which returns a
/// text), and every process returns that text, or throws the primary's failure as a `cairn::error` with
/// its code and context (`rethrow_remote`; with one process too, so any failure leaves as a
/// `cairn::error`). Others wait up to `t`.
template <class C, class Decide>
std::string decided_by_primary(C& c, collective op, collective_timeout t, Decide&& decide) {
  std::string verdict;  // '+' and the decision, or '!' and the encoded failure
  if (c.process_index() == 0) {
    try {
      verdict = "+" + decide();
    } catch (...) {
      verdict = "!" + encode_failure(std::current_exception());
    }
  }
  verdict = c.broadcast(op, std::move(verdict), t);
  if (verdict.empty()) throw error(errc::io, "no decision came from the primary process");
  if (verdict.front() == '!') rethrow_remote(std::string_view(verdict).substr(1), {});
  return verdict.substr(1);
}
/// A barrier made of one `agree` round.
template <class C>
void barrier_by_agreement(C& c, collective op, collective_timeout t) {
  if (auto v = agree(c, op, {}, t, collective_timeout(0), [](const std::vector<std::string>&) { return std::string(); }); !v.empty())
    rethrow_remote(v, {});
}
}  // namespace detail

}  // namespace cairn
