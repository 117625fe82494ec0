// SPDX-License-Identifier: Apache-2.0
/// \file
/// Element-type conversion of whole arrays (the dtype cast of restore and save, as Orbax does with a
/// TensorStore `cast` driver): between bool, the integer types, float16, bfloat16, float32 and
/// float64, with C++ conversion semantics (floats to integers truncate; out-of-range is undefined in
/// C++, so it saturates here) and round-to-nearest-even into 16-bit floats.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include <cairn/core/array.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>

namespace cairn {

namespace detail {
template <class To, class From>
To convert_value(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    if constexpr (std::is_same_v<From, bfloat16> || std::is_same_v<From, float16>) return static_cast<float>(v) != 0.0f;
    else return v != From{};
  } else if constexpr (std::is_same_v<To, bfloat16> || std::is_same_v<To, float16>) {
    if constexpr (std::is_same_v<From, bfloat16> || std::is_same_v<From, float16>) return To(static_cast<float>(v));
    else return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<From, bfloat16> || std::is_same_v<From, float16>) {
    return convert_value<To>(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (std::isnan(v)) return To{0};
    if (v <= static_cast<From>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (v >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

template <class F>
bool dispatch_numeric(dtype t, F&& f) {
  switch (t) {
    case dtype::bool_: f(bool{}); return true;
    case dtype::int8: f(std::int8_t{}); return true;
    case dtype::int16: f(std::int16_t{}); return true;
    case dtype::int32: f(std::int32_t{}); return true;
    case dtype::int64: f(std::int64_t{}); return true;
    case dtype::uint8: f(std::uint8_t{}); return true;
    case dtype::uint16: f(std::uint16_t{}); return true;
    case dtype::uint32: f(std::uint32_t{}); return true;
    case dtype::uint64: f(std::uint64_t{}); return true;
    case dtype::float16: f(float16{}); return true;
    case dtype::bfloat16: f(bfloat16{}); return true;
    case dtype::float32: f(float{}); return true;
    case dtype::float64: f(double{}); return true;
    default: return false;
  }
}
}  // namespace detail

/// True if `convert` supports converting between `from` and `to`.
inline bool convertible(dtype from, dtype to) noexcept {
  return from == to || (detail::dispatch_numeric(from, [](auto) {}) && detail::dispatch_numeric(to, [](auto) {}));
}

/// Returns the elements of `src` converted to `to` (a copy even when the dtype already matches).
/// \throws cairn::error (errc::unsupported) for complex, float8 or int4 element types.
inline host_array convert(const array_view& src, dtype to) {
  if (src.type() == to) return host_array::copy_of(src);
  if (!convertible(src.type(), to))
    throw error(errc::unsupported, std::string("cannot convert ") + std::string(name_of(src.type())) + " to " +
                                       std::string(name_of(to)));
  host_array dense = src.is_c_contiguous() ? host_array() : host_array::copy_of(src);
  const std::byte* in = src.is_c_contiguous() ? src.data() : dense.bytes().data();
  host_array out(to, src.shape());
  std::byte* o = out.mutable_bytes().data();
  const auto n = static_cast<std::size_t>(src.num_elements());
  detail::dispatch_numeric(src.type(), [&](auto from_tag) {
    using From = decltype(from_tag);
    detail::dispatch_numeric(to, [&](auto to_tag) {
      using To = decltype(to_tag);
      for (std::size_t i = 0; i < n; ++i) {
        From v;
        std::memcpy(&v, in + i * sizeof(From), sizeof(From));
        To w = detail::convert_value<To>(v);
        std::memcpy(o + i * sizeof(To), &w, sizeof(To));
      }
    });
  });
  return out;
}

}  // namespace cairn
