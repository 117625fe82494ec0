// SPDX-License-Identifier: Apache-2.0
/// \file
/// `index_t` and `shape`: the extents of an N-d array (rank is a run-time value, 0 ≤ rank ≤ 32 as in
/// TensorStore), with overflow-checked element counts and C-order strides. Printed as `[1024,512]`,
/// the form used inside the sharding notation `f32[1024,512] {data:2, model:2} P(data, -)`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include <cairn/core/error.hpp>

namespace cairn {

/// A signed index or extent along one dimension.
using index_t = std::int64_t;

/// The largest rank cairn accepts (TensorStore's limit).
inline constexpr std::size_t max_rank = 32;

/// Returns the product of `extents`.
/// \throws cairn::error (errc::invalid_argument) if an extent is negative or the product overflows int64.
inline index_t checked_product(std::span<const index_t> extents) {
  index_t n = 1;
  for (index_t e : extents) {
    if (e < 0) throw error(errc::invalid_argument, "extent " + std::to_string(e) + " is negative");
    if (e != 0 && n > INT64_MAX / e) throw error(errc::invalid_argument, "element count overflows int64");
    n *= e;
  }
  return n;
}

/// The extents of an array. Value type; dimensions are non-negative.
/// \par Thread safety
/// A value type: distinct objects are independent; const access is safe from many threads.
class shape {
 public:
  shape() = default;
  /// \throws cairn::error (errc::invalid_argument) if a dimension is negative or the rank exceeds max_rank.
  shape(std::initializer_list<index_t> dims) : dims_(dims) { validate(); }
  /// \throws cairn::error (errc::invalid_argument) as above.
  explicit shape(std::span<const index_t> dims) : dims_(dims.begin(), dims.end()) { validate(); }
  /// \throws cairn::error (errc::invalid_argument) as above.
  explicit shape(std::vector<index_t> dims) : dims_(std::move(dims)) { validate(); }

  std::size_t rank() const noexcept { return dims_.size(); }
  index_t operator[](std::size_t i) const noexcept { return dims_[i]; }
  const index_t* begin() const noexcept { return dims_.data(); }
  const index_t* end() const noexcept { return dims_.data() + dims_.size(); }
  std::span<const index_t> dims() const noexcept { return dims_; }
  const std::vector<index_t>& vector() const noexcept { return dims_; }

  /// Returns the number of elements (1 for rank 0).
  /// \throws cairn::error (errc::invalid_argument) if it overflows int64.
  index_t num_elements() const { return checked_product(dims_); }

  friend bool operator==(const shape&, const shape&) = default;

 private:
  void validate() const {
    if (dims_.size() > max_rank)
      throw error(errc::invalid_argument, "rank " + std::to_string(dims_.size()) + " exceeds " +
                                              std::to_string(max_rank));
    for (index_t d : dims_)
      if (d < 0) throw error(errc::invalid_argument, "shape dimension " + std::to_string(d) + " is negative");
  }
  std::vector<index_t> dims_;
};

/// Prints `[d0,d1,...]` (no spaces, as in `f32[1024,512]`).
inline std::string to_string(std::span<const index_t> dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(dims[i]);
  }
  return s + "]";
}
inline std::string to_string(const shape& s) { return to_string(s.dims()); }
inline std::ostream& operator<<(std::ostream& os, const shape& s) { return os << to_string(s); }

/// Returns the C-order (row-major) strides of `s` in units of `element_size`.
/// \post strides[rank-1] == element_size for rank ≥ 1; strides[i] == strides[i+1] * s[i+1].
inline std::vector<index_t> c_order_strides(const shape& s, index_t element_size = 1) {
  std::vector<index_t> strides(s.rank());
  index_t stride = element_size;
  for (std::size_t i = s.rank(); i-- > 0;) {
    strides[i] = stride;
    stride *= s[i] == 0 ? 1 : s[i];
  }
  return strides;
}

}  // namespace cairn
