// SPDX-License-Identifier: Apache-2.0
/// \file
/// `box`: an N-d half-open index box, origin + extent, printed and parsed as `[0:256, 0:512]`
/// (start:stop per dimension; rank 0 is `[]`). Laws (checked in tests): `intersect` is commutative
/// and its result is contained in both operands; a box is empty iff some extent is 0; iteration
/// visits exactly `num_elements()` points in C order.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/config.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>

namespace cairn {

/// A half-open box `origin[i] <= x[i] < origin[i] + extent[i]` in each dimension.
/// \par Thread safety
/// A value type.
class box {
 public:
  box() = default;
  /// \pre origin.size() == extent.size(), extents non-negative.
  /// \throws cairn::error (errc::invalid_argument) if the ranks differ or an extent is negative.
  box(std::vector<index_t> origin, std::vector<index_t> extent)
      : origin_(std::move(origin)), extent_(std::move(extent)) {
    if (origin_.size() != extent_.size())
      throw error(errc::invalid_argument, "box origin has rank " + std::to_string(origin_.size()) +
                                              " but extent has rank " + std::to_string(extent_.size()));
    for (index_t e : extent_)
      if (e < 0) throw error(errc::invalid_argument, "box extent " + std::to_string(e) + " is negative");
  }
  /// The box `[0:s0, 0:s1, ...]` covering a whole array of shape `s`.
  explicit box(const shape& s) : origin_(s.rank(), 0), extent_(s.vector()) {}

  std::size_t rank() const noexcept { return origin_.size(); }
  const std::vector<index_t>& origin() const noexcept { return origin_; }
  const std::vector<index_t>& extent() const noexcept { return extent_; }
  index_t origin(std::size_t i) const noexcept { return origin_[i]; }
  index_t extent(std::size_t i) const noexcept { return extent_[i]; }
  /// One past the last index in dimension i.
  index_t stop(std::size_t i) const noexcept { return origin_[i] + extent_[i]; }
  /// The extents as a shape.
  cairn::shape shape() const { return cairn::shape(extent_); }

  /// True if the box contains no point (some extent is 0). A rank-0 box holds one point.
  bool empty() const noexcept {
    return std::any_of(extent_.begin(), extent_.end(), [](index_t e) { return e == 0; });
  }
  /// The number of points.
  index_t num_elements() const { return checked_product(extent_); }

  /// True if `point` (of the same rank) lies inside.
  bool contains(std::span<const index_t> point) const noexcept {
    if (point.size() != rank()) return false;
    for (std::size_t i = 0; i < rank(); ++i)
      if (point[i] < origin_[i] || point[i] >= stop(i)) return false;
    return true;
  }
  /// True if every point of `other` lies inside; an empty box of the same rank is contained in any box.
  bool contains(const box& other) const noexcept {
    if (other.rank() != rank()) return false;
    if (other.empty()) return true;
    for (std::size_t i = 0; i < rank(); ++i)
      if (other.origin_[i] < origin_[i] || other.stop(i) > stop(i)) return false;
    return true;
  }

  /// Returns this box moved by `offset` (e.g. from global into shard-local coordinates with `-origin`).
  box translated(std::span<const index_t> offset) const {
    CAIRN_ASSERT(offset.size() == rank());
    box b = *this;
    for (std::size_t i = 0; i < rank(); ++i) b.origin_[i] += offset[i];
    return b;
  }

  friend bool operator==(const box&, const box&) = default;

 private:
  std::vector<index_t> origin_;
  std::vector<index_t> extent_;
};

/// Returns the intersection of `a` and `b`.
/// \pre a.rank() == b.rank()
/// \post intersect(a, b) == intersect(b, a); a.contains(r) && b.contains(r);
///       when they do not overlap, every dimension that does not overlap has extent 0.
inline box intersect(const box& a, const box& b) {
  if (a.rank() != b.rank())
    throw error(errc::invalid_argument, "cannot intersect boxes of rank " + std::to_string(a.rank()) +
                                            " and " + std::to_string(b.rank()));
  std::vector<index_t> origin(a.rank()), extent(a.rank());
  for (std::size_t i = 0; i < a.rank(); ++i) {
    index_t lo = std::max(a.origin(i), b.origin(i));
    index_t hi = std::min(a.stop(i), b.stop(i));
    origin[i] = lo;
    extent[i] = hi > lo ? hi - lo : 0;
  }
  return box(std::move(origin), std::move(extent));
}

/// Prints `[0:256, 0:512]`.
inline std::string to_string(const box& b) {
  std::string s = "[";
  for (std::size_t i = 0; i < b.rank(); ++i) {
    if (i) s += ", ";
    s += std::to_string(b.origin(i));
    s += ':';
    s += std::to_string(b.stop(i));
  }
  return s + "]";
}
inline std::ostream& operator<<(std::ostream& os, const box& b) { return os << to_string(b); }

/// Parses the printed notation `[0:256, 0:512]` (spaces optional).
/// \throws cairn::error (errc::invalid_argument) naming the text if it is not of that form or stop < start.
inline box parse_box(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return error(errc::invalid_argument, "box \"" + std::string(text) + "\": " + std::string(why));
  };
  std::string_view s = text;
  auto skip_spaces = [&] {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  };
  auto read_int = [&]() -> index_t {
    skip_spaces();
    index_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc()) throw fail("expected an integer");
    s.remove_prefix(static_cast<std::size_t>(p - s.data()));
    skip_spaces();
    return v;
  };
  skip_spaces();
  if (s.empty() || s.front() != '[') throw fail("expected '['");
  s.remove_prefix(1);
  skip_spaces();
  std::vector<index_t> origin, extent;
  if (!s.empty() && s.front() == ']') {
    s.remove_prefix(1);
  } else {
    for (;;) {
      index_t start = read_int();
      if (s.empty() || s.front() != ':') throw fail("expected ':'");
      s.remove_prefix(1);
      index_t stop = read_int();
      if (stop < start) throw fail("stop is before start");
      origin.push_back(start);
      extent.push_back(stop - start);
      if (s.empty()) throw fail("expected ',' or ']'");
      if (s.front() == ']') {
        s.remove_prefix(1);
        break;
      }
      if (s.front() != ',') throw fail("expected ',' or ']'");
      s.remove_prefix(1);
    }
  }
  skip_spaces();
  if (!s.empty()) throw fail("unexpected text after ']'");
  return box(std::move(origin), std::move(extent));
}

/// Calls `f(std::span<const index_t> point)` for every point of `b` in C order (last index fastest).
template <class F>
void for_each_point(const box& b, F&& f) {
  if (b.empty()) return;
  std::vector<index_t> p(b.origin());
  const std::size_t r = b.rank();
  for (;;) {
    f(std::span<const index_t>(p));
    std::size_t i = r;
    for (;;) {
      if (i == 0) return;
      --i;
      if (++p[i] < b.stop(i)) break;
      p[i] = b.origin(i);
    }
  }
}

}  // namespace cairn
