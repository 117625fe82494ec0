// SPDX-License-Identifier: Apache-2.0
/// \file
/// Fork-join helpers for the synchronous paths: a save or restore of many small leaves spreads its
/// per-leaf work over the cores for as long as the call lasts, without a pool outliving it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <system_error>
#include <thread>
#include <vector>

namespace cairn {

/// Trees of at least this many leaves spread their per-leaf work over several threads; below it,
/// starting a thread costs more than it saves.
inline constexpr std::size_t parallel_leaf_threshold = 256;

/// The threads worth using for `items` pieces of work: up to 4, at most the hardware's, 1 below
/// `parallel_leaf_threshold` items unless `large` says the work is large anyway.
inline unsigned parallel_threads(std::size_t items, bool large = false) {
  if (items < 2 || (!large && items < parallel_leaf_threshold)) return 1;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<unsigned>(std::min<std::size_t>({4u, hw, items}));
}

/// Calls `f(i)` for every `i` in [0, n) on up to `threads` threads (the calling one included), each
/// taking the next index; returns when every call has ended. A call's failure does not stop the
/// others: the result holds each index's exception, null where `f(i)` returned.
/// \par Thread safety
/// `f` is called concurrently for distinct indices.
template <class F>
std::vector<std::exception_ptr> parallel_for_each_index(std::size_t n, unsigned threads, F&& f) {
  std::vector<std::exception_ptr> failed(n);
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) {
      try {
        f(i);
      } catch (...) {
        failed[i] = std::current_exception();
      }
    }
  };
  {
    std::vector<std::jthread> helpers;
    for (unsigned t = 1; t < threads; ++t) {
      try {
        helpers.emplace_back(worker);
      } catch (const std::system_error&) {
        break;  // no thread to spare: the others take its share
      }
    }
    worker();
  }
  return failed;
}

/// Runs `first` and `second`, on two threads when `parallel` (and a thread can be started), else one
/// after the other; returns when both have ended, either way. `second`'s failure is rethrown, or else
/// `first`'s (`second` runs even if `first` failed).
template <class First, class Second>
void run_side_by_side(bool parallel, First&& first, Second&& second) {
  std::exception_ptr failed;
  auto run_first = [&] {
    try {
      first();
    } catch (...) {
      failed = std::current_exception();
    }
  };
  {
    std::jthread other;
    if (parallel && std::thread::hardware_concurrency() > 1) {
      try {
        other = std::jthread(run_first);
      } catch (const std::system_error&) {
        // no thread to spare: run below
      }
    }
    if (!other.joinable()) run_first();
    second();
  }
  if (failed) std::rethrow_exception(failed);
}

}  // namespace cairn
