// SPDX-License-Identifier: Apache-2.0
// The fork-join helpers: every index is visited once whatever the thread count, each failure is kept
// with its index, and both halves of a side-by-side run end before it returns or rethrows.
#include <cairn/core/parallel.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

TEST_CASE("parallel_for_each_index visits every index once and keeps each failure with its index") {
  for (unsigned threads : {1u, 2u, 4u, 9u}) {
    CAPTURE(threads);
    std::vector<std::atomic<int>> visits(1000);
    const auto failed = cairn::parallel_for_each_index(visits.size(), threads, [&](std::size_t i) {
      visits[i].fetch_add(1);
      if (i % 250 == 7) throw std::runtime_error("index " + std::to_string(i));
    });
    REQUIRE(failed.size() == visits.size());
    for (std::size_t i = 0; i < visits.size(); ++i) {
      CHECK(visits[i].load() == 1);
      CHECK(static_cast<bool>(failed[i]) == (i % 250 == 7));
    }
    CHECK_THROWS_WITH_AS(std::rethrow_exception(failed[257]), "index 257", std::runtime_error);
  }
  CHECK(cairn::parallel_for_each_index(0, 4, [](std::size_t) { FAIL("called"); }).empty());
}

TEST_CASE("parallel_threads uses one thread below the leaf threshold unless the work is large") {
  CHECK(cairn::parallel_threads(0) == 1);
  CHECK(cairn::parallel_threads(1, true) == 1);
  CHECK(cairn::parallel_threads(cairn::parallel_leaf_threshold - 1) == 1);
  CHECK(cairn::parallel_threads(cairn::parallel_leaf_threshold) >= 1);
  CHECK(cairn::parallel_threads(cairn::parallel_leaf_threshold) <= 4);
  CHECK(cairn::parallel_threads(3, true) <= 3);
}

TEST_CASE("run_side_by_side runs both halves, and reports the second's failure before the first's") {
  for (bool parallel : {false, true}) {
    CAPTURE(parallel);
    std::atomic<int> ran{0};
    cairn::run_side_by_side(parallel, [&] { ran += 1; }, [&] { ran += 2; });
    CHECK(ran.load() == 3);
    // The first's failure reaches the caller once the second has ended.
    ran = 0;
    CHECK_THROWS_WITH_AS(cairn::run_side_by_side(parallel, [&] { throw std::runtime_error("first"); }, [&] { ran += 2; }), "first",
                         std::runtime_error);
    CHECK(ran.load() == 2);
    // When both fail, the second's is the one reported; the first has ended by then.
    ran = 0;
    CHECK_THROWS_WITH_AS(cairn::run_side_by_side(
                             parallel, [&] { ran += 1; throw std::runtime_error("first"); }, [&] { throw std::runtime_error("second"); }),
                         "second", std::runtime_error);
    CHECK(ran.load() == 1);
  }
}
