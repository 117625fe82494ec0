// SPDX-License-Identifier: Apache-2.0
#include <cairn/core/box.hpp>
#include <cairn/core/shape.hpp>

#include <doctest/doctest.h>

#include <set>
#include <vector>

using cairn::box;
using cairn::index_t;

TEST_CASE("shape: element counts, strides and printing") {
  cairn::shape s{1024, 512};
  CHECK(s.rank() == 2);
  CHECK(s.num_elements() == 1024 * 512);
  CHECK(cairn::to_string(s) == "[1024,512]");
  CHECK(cairn::shape{}.num_elements() == 1);  // rank 0: one element
  CHECK(cairn::to_string(cairn::shape{}) == "[]");
  CHECK(cairn::shape{3, 0, 5}.num_elements() == 0);
  CHECK(cairn::c_order_strides(cairn::shape{2, 3, 4}, 4) == std::vector<index_t>{48, 16, 4});
  CHECK_THROWS_AS((cairn::shape{-1}), cairn::error);
  CHECK_THROWS_AS((cairn::shape{INT64_MAX, 3}.num_elements()), cairn::error);
  CHECK_THROWS_AS(cairn::shape(std::vector<index_t>(33, 1)), cairn::error);
}

TEST_CASE("box: printed notation round-trips") {
  box b({0, 0}, {256, 512});
  CHECK(cairn::to_string(b) == "[0:256, 0:512]");
  CHECK(cairn::parse_box("[0:256, 0:512]") == b);
  CHECK(cairn::parse_box("[0:256,0:512]") == b);
  CHECK(cairn::parse_box(" [ 3:7 ] ") == box({3}, {4}));
  CHECK(cairn::parse_box("[]") == box());
  CHECK(cairn::to_string(box()) == "[]");
  CHECK(cairn::parse_box("[-4:-2]") == box({-4}, {2}));
  for (const char* bad : {"", "[", "0:1", "[0:1", "[0;1]", "[1:0]", "[0:1,]", "[0:1] x", "[a:1]"}) {
    CAPTURE(bad);
    try {
      (void)cairn::parse_box(bad);
      FAIL("expected an error");
    } catch (const cairn::error& e) {
      CHECK(e.code() == cairn::errc::invalid_argument);
      CHECK(std::string(e.what()).find(std::string("box \"") + bad + "\"") != std::string::npos);
    }
  }
}

namespace {
std::vector<box> all_boxes_1d(index_t lo, index_t hi) {
  std::vector<box> out;
  for (index_t a = lo; a <= hi; ++a)
    for (index_t b = a; b <= hi; ++b) out.push_back(box({a}, {b - a}));
  return out;
}
}  // namespace

TEST_CASE("box algebra laws, exhaustively for small 2-d boxes") {
  auto ones = all_boxes_1d(0, 4);
  std::vector<box> boxes;
  for (const auto& x : ones)
    for (const auto& y : ones) boxes.push_back(box({x.origin(0), y.origin(0)}, {x.extent(0), y.extent(0)}));
  for (const auto& a : boxes) {
    for (const auto& b : boxes) {
      box ab = cairn::intersect(a, b);
      box ba = cairn::intersect(b, a);
      // Commutative (as point sets; empty results may differ only in their empty dimensions).
      CHECK(ab.empty() == ba.empty());
      if (!ab.empty()) CHECK(ab == ba);
      CHECK(a.contains(ab));
      CHECK(b.contains(ab));
      // A point is in the intersection iff it is in both.
      for (index_t i = 0; i < 5; ++i)
        for (index_t j = 0; j < 5; ++j) {
          const index_t p[] = {i, j};
          CHECK(ab.contains(p) == (a.contains(p) && b.contains(p)));
        }
      CHECK(cairn::intersect(a, a) == a);
      if (a.contains(b) && !b.empty()) CHECK(cairn::intersect(a, b) == b);
    }
  }
}

TEST_CASE("box: empty cases and containment") {
  box a({0, 0}, {4, 4});
  box disjoint({10, 10}, {2, 2});
  box r = cairn::intersect(a, disjoint);
  CHECK(r.empty());
  CHECK(r.num_elements() == 0);
  CHECK(a.contains(r));              // the empty box is contained in any box of its rank
  CHECK(box({1, 1}, {0, 3}).empty());
  CHECK_FALSE(box().empty());        // rank 0 holds one point
  CHECK(box().num_elements() == 1);
  CHECK_FALSE(a.contains(box({0}, {1})));  // rank mismatch
  CHECK_THROWS_AS(cairn::intersect(a, box({0}, {1})), cairn::error);
  CHECK_THROWS_AS(box({0}, {1, 2}), cairn::error);
  CHECK_THROWS_AS(box({0}, {-1}), cairn::error);
  CHECK(box(cairn::shape{3, 4}) == box({0, 0}, {3, 4}));
  CHECK(a.translated(std::vector<index_t>{-1, 2}) == box({-1, 2}, {4, 4}));
}

TEST_CASE("for_each_point visits every point once, in C order") {
  box b({1, 2, 0}, {2, 3, 2});
  std::vector<std::vector<index_t>> seen;
  cairn::for_each_point(b, [&](std::span<const index_t> p) { seen.emplace_back(p.begin(), p.end()); });
  REQUIRE(seen.size() == 12);
  CHECK(seen.front() == std::vector<index_t>{1, 2, 0});
  CHECK(seen[1] == std::vector<index_t>{1, 2, 1});
  CHECK(seen[2] == std::vector<index_t>{1, 3, 0});
  CHECK(seen.back() == std::vector<index_t>{2, 4, 1});
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::set<std::vector<index_t>>(seen.begin(), seen.end()).size() == 12);
  int n = 0;
  cairn::for_each_point(box(), [&](std::span<const index_t> p) { n += 1 + static_cast<int>(p.size()); });
  CHECK(n == 1);
  cairn::for_each_point(box({0, 0}, {3, 0}), [&](std::span<const index_t>) { ++n; });
  CHECK(n == 1);
}
