// SPDX-License-Identifier: Apache-2.0
/// \file
/// Simulated processes: N ranks as threads of this process, with a `coordinator` each, for fast tests
/// of multi-process protocols without MPI. A hook sees every rank arrive at every collective, so a test
/// can make any rank late at any operation, or make it "die" there (throw) to check that the others time
/// out naming it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/dist/coordinator.hpp>

namespace cairn {

/// Options of a `simulated_processes` group.
struct simulation_options {
  /// Called on a rank's thread when it arrives at a collective, before it communicates: sleep here to
  /// make the rank late, or throw to make it leave the job at that point.
  std::function<void(int rank, const collective& op)> on_arrive{};
};

/// A group of simulated processes sharing one in-memory message board.
/// \par Thread safety
/// The group is thread-safe; each rank's coordinator is used by one thread at a time.
class simulated_processes {
  struct board;

 public:
  /// The coordinator of one simulated rank (a `coordinator`).
  class rank_coordinator {
   public:
    int process_index() const noexcept { return rank_; }
    int process_count() const noexcept { return board_->count; }
    void barrier(collective op, collective_timeout t) { detail::barrier_by_agreement(*this, op, t); }
    std::string broadcast(collective op, std::string msg, collective_timeout t) {
      arrive(op);
      const auto seq = channel_->seq++;
      if (rank_ == 0) {
        const std::string framed = detail::frame_message(op, msg);
        for (int r = 1; r < board_->count; ++r) board_->post({channel_->id, seq, 0, r}, framed);
        return msg;
      }
      auto got = board_->take({channel_->id, seq, 0, rank_}, t);
      if (!got) throw detail::timeout_error(op, {0}, t, rank_, board_->count);
      return detail::unframe_message(op, *got, 0, rank_);
    }
    std::vector<std::string> gather(collective op, std::string msg, collective_timeout t) {
      arrive(op);
      const auto seq = channel_->seq++;
      if (rank_ != 0) {
        board_->post({channel_->id, seq, rank_, 0}, detail::frame_message(op, msg));
        return {};
      }
      std::vector<std::string> out(static_cast<std::size_t>(board_->count));
      out[0] = std::move(msg);
      const auto deadline = std::chrono::steady_clock::now() + t;
      std::vector<int> missing;
      for (int r = 1; r < board_->count; ++r) {
        const auto left = std::chrono::duration_cast<collective_timeout>(deadline - std::chrono::steady_clock::now());
        auto got = board_->take({channel_->id, seq, r, 0}, std::max(left, collective_timeout(0)));
        if (!got) missing.push_back(r);
        else out[static_cast<std::size_t>(r)] = detail::unframe_message(op, *got, r, 0);
      }
      if (!missing.empty()) throw detail::timeout_error(op, missing, t, 0, board_->count);
      return out;
    }
    /// A new channel; every rank must duplicate in the same order.
    rank_coordinator duplicate() const {
      const int n = channel_->duplicates++;
      return rank_coordinator(board_, rank_, board_->channel_of(channel_->id, n));
    }

   private:
    friend class simulated_processes;
    struct channel_state {
      int id = 0;
      std::uint64_t seq = 0;
      int duplicates = 0;
    };
    rank_coordinator(std::shared_ptr<board> b, int rank, int channel)
        : board_(std::move(b)), rank_(rank), channel_(std::make_shared<channel_state>(channel_state{channel, 0, 0})) {}
    void arrive(const collective& op) {
      if (board_->options.on_arrive) board_->options.on_arrive(rank_, op);
    }
    std::shared_ptr<board> board_;
    int rank_ = 0;
    std::shared_ptr<channel_state> channel_;  // shared by copies: one sequence per channel and rank
  };

  /// \pre `count >= 1`.
  /// \throws cairn::error (errc::invalid_argument) otherwise.
  explicit simulated_processes(int count, simulation_options options = {}) : board_(std::make_shared<board>()) {
    if (count < 1) throw error(errc::invalid_argument, "simulated_processes: count " + std::to_string(count) + " < 1");
    board_->count = count;
    board_->options = std::move(options);
  }

  int count() const noexcept { return board_->count; }
  /// The coordinator of `rank` (on its first channel).
  rank_coordinator rank(int r) const {
    if (r < 0 || r >= board_->count)
      throw error(errc::invalid_argument, "simulated_processes: rank " + std::to_string(r) + " of " + std::to_string(board_->count));
    return rank_coordinator(board_, r, 0);
  }

  /// Runs `body(rank_coordinator&)` on one thread per rank and waits for all; returns each rank's
  /// failure (null where it returned normally).
  template <class F>
  std::vector<std::exception_ptr> run(F body) const {
    std::vector<std::exception_ptr> failures(static_cast<std::size_t>(board_->count));
    std::vector<std::thread> threads;
    for (int r = 0; r < board_->count; ++r)
      threads.emplace_back([&, r] {
        try {
          auto c = rank(r);
          body(c);
        } catch (...) {
          failures[static_cast<std::size_t>(r)] = std::current_exception();
        }
      });
    for (auto& t : threads) t.join();
    return failures;
  }

 private:
  struct board {
    using address = std::tuple<int, std::uint64_t, int, int>;  // channel, sequence, from, to
    int count = 1;
    simulation_options options;
    std::mutex mutex;
    std::condition_variable arrived;
    std::map<address, std::string> messages;
    std::map<std::pair<int, int>, int> channels;  // (parent channel, n-th duplicate) → channel id

    void post(const address& a, std::string m) {
      {
        std::lock_guard lock(mutex);
        messages[a] = std::move(m);
      }
      arrived.notify_all();
    }
    std::optional<std::string> take(const address& a, collective_timeout t) {
      std::unique_lock lock(mutex);
      if (!arrived.wait_for(lock, t, [&] { return messages.count(a) > 0; })) return std::nullopt;
      auto node = messages.extract(a);
      return std::move(node.mapped());
    }
    int channel_of(int parent, int n) {
      std::lock_guard lock(mutex);
      auto [it, fresh] = channels.emplace(std::pair(parent, n), 0);
      if (fresh) it->second = static_cast<int>(channels.size());
      return it->second;
    }
  };
  std::shared_ptr<board> board_;
};
static_assert(coordinator<simulated_processes::rank_coordinator>);

}  // namespace cairn
