// SPDX-License-Identifier: Apache-2.0
/// \file
/// Element types: the `dtype` enum with sizes and the names each format uses for it — the canonical
/// (numpy / TensorStore) name, the zarr v2 `dtype` string, the zarr v3 `data_type` name and the
/// safetensors name (orbax-format.md §2) — plus `bfloat16` and `float16` storage types whose
/// conversions to float are exact and whose conversions from float round to nearest even.
#pragma once

#include <array>
#include <bit>       // std::bit_cast, std::endian
#include <complex>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>

#include <cairn/core/error.hpp>

namespace cairn {

/// An array element type. Every value has a fixed size in bytes in memory and on disk
/// (int4/uint4 occupy one byte per element, as TensorStore and ml_dtypes store them).
enum class dtype : std::uint8_t {
  bool_, int4, int8, int16, int32, int64, uint4, uint8, uint16, uint32, uint64,
  float16, bfloat16, float32, float64, complex64, complex128,
  float8_e3m4, float8_e4m3, float8_e4m3fn, float8_e4m3fnuz, float8_e4m3b11fnuz,
  float8_e5m2, float8_e5m2fnuz, float8_e8m0fnu,
};

/// What kind of number a dtype holds.
enum class dtype_kind : std::uint8_t { boolean, signed_integer, unsigned_integer, floating, complex };

/// Everything cairn knows about one dtype; names that a format lacks are empty.
struct dtype_info {
  dtype type;
  std::string_view name;         ///< canonical numpy / TensorStore name, e.g. "bfloat16"
  std::string_view short_name;   ///< used in the printed sharding notation, e.g. "bf16"
  std::uint8_t size;             ///< bytes per element
  dtype_kind kind;
  std::string_view zarr_v2;      ///< little-endian zarr v2 `dtype`, e.g. "<f4"
  std::string_view zarr_v3;      ///< zarr v3 `data_type`
  std::string_view safetensors;  ///< safetensors `dtype`, empty if safetensors has none
};

namespace detail {
using k = dtype_kind;
inline constexpr std::array<dtype_info, 25> dtype_table{{
    {dtype::bool_, "bool", "pred", 1, k::boolean, "|b1", "bool", "BOOL"},
    {dtype::int4, "int4", "s4", 1, k::signed_integer, "int4", "int4", ""},
    {dtype::int8, "int8", "s8", 1, k::signed_integer, "|i1", "int8", "I8"},
    {dtype::int16, "int16", "s16", 2, k::signed_integer, "<i2", "int16", "I16"},
    {dtype::int32, "int32", "s32", 4, k::signed_integer, "<i4", "int32", "I32"},
    {dtype::int64, "int64", "s64", 8, k::signed_integer, "<i8", "int64", "I64"},
    {dtype::uint4, "uint4", "u4", 1, k::unsigned_integer, "uint4", "uint4", ""},
    {dtype::uint8, "uint8", "u8", 1, k::unsigned_integer, "|u1", "uint8", "U8"},
    {dtype::uint16, "uint16", "u16", 2, k::unsigned_integer, "<u2", "uint16", "U16"},
    {dtype::uint32, "uint32", "u32", 4, k::unsigned_integer, "<u4", "uint32", "U32"},
    {dtype::uint64, "uint64", "u64", 8, k::unsigned_integer, "<u8", "uint64", "U64"},
    {dtype::float16, "float16", "f16", 2, k::floating, "<f2", "float16", "F16"},
    {dtype::bfloat16, "bfloat16", "bf16", 2, k::floating, "bfloat16", "bfloat16", "BF16"},
    {dtype::float32, "float32", "f32", 4, k::floating, "<f4", "float32", "F32"},
    {dtype::float64, "float64", "f64", 8, k::floating, "<f8", "float64", "F64"},
    {dtype::complex64, "complex64", "c64", 8, k::complex, "<c8", "complex64", "C64"},
    {dtype::complex128, "complex128", "c128", 16, k::complex, "<c16", "complex128", ""},
    {dtype::float8_e3m4, "float8_e3m4", "f8e3m4", 1, k::floating, "float8_e3m4", "float8_e3m4", ""},
    {dtype::float8_e4m3, "float8_e4m3", "f8e4m3", 1, k::floating, "float8_e4m3", "float8_e4m3", ""},
    {dtype::float8_e4m3fn, "float8_e4m3fn", "f8e4m3fn", 1, k::floating, "float8_e4m3fn", "float8_e4m3fn", "F8_E4M3"},
    {dtype::float8_e4m3fnuz, "float8_e4m3fnuz", "f8e4m3fnuz", 1, k::floating, "float8_e4m3fnuz", "float8_e4m3fnuz", ""},
    {dtype::float8_e4m3b11fnuz, "float8_e4m3b11fnuz", "f8e4m3b11fnuz", 1, k::floating, "float8_e4m3b11fnuz", "float8_e4m3b11fnuz", ""},
    {dtype::float8_e5m2, "float8_e5m2", "f8e5m2", 1, k::floating, "float8_e5m2", "float8_e5m2", "F8_E5M2"},
    {dtype::float8_e5m2fnuz, "float8_e5m2fnuz", "f8e5m2fnuz", 1, k::floating, "float8_e5m2fnuz", "float8_e5m2fnuz", ""},
    {dtype::float8_e8m0fnu, "float8_e8m0fnu", "f8e8m0fnu", 1, k::floating, "float8_e8m0fnu", "float8_e8m0fnu", "F8_E8M0"},
}};
}  // namespace detail

/// All dtypes, in enum order.
inline constexpr std::size_t dtype_count = detail::dtype_table.size();

/// Returns the description of `t`.
constexpr const dtype_info& info(dtype t) noexcept { return detail::dtype_table[static_cast<std::size_t>(t)]; }
/// Returns the size of one element of `t` in bytes.
constexpr std::size_t size_of(dtype t) noexcept { return info(t).size; }
/// Returns the canonical name of `t` ("float32", "bfloat16", ...).
constexpr std::string_view name_of(dtype t) noexcept { return info(t).name; }

inline std::ostream& operator<<(std::ostream& os, dtype t) { return os << name_of(t); }

/// Returns the dtype whose canonical name is `name`, or nullopt.
constexpr std::optional<dtype> dtype_from_name(std::string_view name) noexcept {
  for (const auto& i : detail::dtype_table)
    if (i.name == name) return i.type;
  return std::nullopt;
}
/// Returns the dtype whose zarr v3 `data_type` is `name`, or nullopt.
constexpr std::optional<dtype> dtype_from_zarr_v3(std::string_view name) noexcept {
  for (const auto& i : detail::dtype_table)
    if (i.zarr_v3 == name) return i.type;
  return std::nullopt;
}
/// Returns the dtype whose safetensors name is `name`, or nullopt.
constexpr std::optional<dtype> dtype_from_safetensors(std::string_view name) noexcept {
  for (const auto& i : detail::dtype_table)
    if (!i.safetensors.empty() && i.safetensors == name) return i.type;
  return std::nullopt;
}
/// Returns the dtype whose printed short name ("f32", "bf16") is `name`, or nullopt.
constexpr std::optional<dtype> dtype_from_short_name(std::string_view name) noexcept {
  for (const auto& i : detail::dtype_table)
    if (i.short_name == name) return i.type;
  return std::nullopt;
}

/// A parsed zarr v2 `dtype` string: the element type and the byte order of the stored elements.
struct zarr_v2_dtype {
  dtype type;
  std::endian byte_order;
  friend constexpr bool operator==(const zarr_v2_dtype&, const zarr_v2_dtype&) = default;
};

/// Parses a zarr v2 `dtype` string: "<f4", ">i8", "|b1", "bfloat16", "float8_e4m3fn", ...
/// One-byte types accept any of the prefixes `|`, `<`, `>`; extension types are little-endian.
constexpr std::optional<zarr_v2_dtype> dtype_from_zarr_v2(std::string_view s) noexcept {
  for (const auto& i : detail::dtype_table) {
    if (i.zarr_v2 == s) return zarr_v2_dtype{i.type, std::endian::little};
    if (i.zarr_v2.size() >= 2 && (i.zarr_v2[0] == '<' || i.zarr_v2[0] == '|') && s.size() == i.zarr_v2.size() &&
        s.substr(1) == i.zarr_v2.substr(1)) {
      if (s[0] == '>') return zarr_v2_dtype{i.type, i.size == 1 ? std::endian::little : std::endian::big};
      if (i.size == 1 && (s[0] == '<' || s[0] == '|')) return zarr_v2_dtype{i.type, std::endian::little};
    }
  }
  return std::nullopt;
}

/// Returns the dtype for a canonical, zarr v2, zarr v3, safetensors or short name.
/// \throws cairn::error (errc::unsupported) if no dtype has that name.
inline dtype parse_dtype(std::string_view any_name) {
  if (auto t = dtype_from_name(any_name)) return *t;
  if (auto t = dtype_from_zarr_v2(any_name); t && t->byte_order == std::endian::little) return t->type;
  if (auto t = dtype_from_safetensors(any_name)) return *t;
  if (auto t = dtype_from_short_name(any_name)) return *t;
  throw error(errc::unsupported, "dtype \"" + std::string(any_name) + "\": unknown element type");
}

/// 16-bit brain floating point (1 sign, 8 exponent, 7 mantissa bits): the top half of a float32.
struct bfloat16 {
  std::uint16_t bits = 0;

  constexpr bfloat16() noexcept = default;
  /// Rounds `f` to the nearest bfloat16 (ties to even); NaNs stay NaN with their payload's top bits.
  constexpr explicit bfloat16(float f) noexcept : bits(from_float(f)) {}
  /// Returns the bfloat16 with the given bit pattern.
  static constexpr bfloat16 from_bits(std::uint16_t b) noexcept {
    bfloat16 v;
    v.bits = b;
    return v;
  }
  /// Returns the exact float value.
  constexpr explicit operator float() const noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
  }
  friend constexpr bool operator==(bfloat16 a, bfloat16 b) noexcept { return a.bits == b.bits; }

 private:
  static constexpr std::uint16_t from_float(float f) noexcept {
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0) {
      // Truncating a NaN must not produce infinity, so keep a mantissa bit set.
      std::uint16_t hi = static_cast<std::uint16_t>(u >> 16);
      return (hi & 0x7F) != 0 ? hi : static_cast<std::uint16_t>(hi | 0x40);
    }
    u += 0x7FFFu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
  }
};

/// IEEE 754 binary16 (1 sign, 5 exponent, 10 mantissa bits).
struct float16 {
  std::uint16_t bits = 0;

  constexpr float16() noexcept = default;
  /// Rounds `f` to the nearest float16 (ties to even, overflow to infinity, subnormals kept).
  constexpr explicit float16(float f) noexcept : bits(from_float(f)) {}
  /// Returns the float16 with the given bit pattern.
  static constexpr float16 from_bits(std::uint16_t b) noexcept {
    float16 v;
    v.bits = b;
    return v;
  }
  /// Returns the exact float value.
  constexpr explicit operator float() const noexcept {
    std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
    std::uint32_t exp = (bits >> 10) & 0x1Fu;
    std::uint32_t man = bits & 0x3FFu;
    if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (man << 13));
    if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0) return std::bit_cast<float>(sign);
    // Subnormal: value = man * 2^-24, exactly representable as a normal float.
    float mag = static_cast<float>(man) * 5.9604644775390625e-08f;
    return sign != 0 ? -mag : mag;
  }
  friend constexpr bool operator==(float16 a, float16 b) noexcept { return a.bits == b.bits; }

 private:
  static constexpr std::uint16_t from_float(float f) noexcept {
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    std::uint32_t exp = (u >> 23) & 0xFFu;
    std::uint32_t man = u & 0x7FFFFFu;
    if (exp == 0xFF) {
      if (man == 0) return static_cast<std::uint16_t>(sign | 0x7C00u);
      std::uint16_t m = static_cast<std::uint16_t>(man >> 13);
      return static_cast<std::uint16_t>(sign | 0x7C00u | (m != 0 ? m : 0x200u));
    }
    int e = static_cast<int>(exp) - 127 + 15;
    if (e >= 0x1F) return static_cast<std::uint16_t>(sign | 0x7C00u);
    if (e <= 0) {
      if (e < -10) return sign;  // below half the smallest subnormal: rounds to zero
      man |= 0x800000u;          // make the implicit bit explicit, then shift into subnormal position
      int shift = 14 - e;
      std::uint32_t half = 1u << (shift - 1);
      std::uint32_t rest = man & ((1u << shift) - 1u);
      std::uint32_t m = man >> shift;
      if (rest > half || (rest == half && (m & 1u))) ++m;
      return static_cast<std::uint16_t>(sign | m);
    }
    std::uint32_t m = man >> 13;
    std::uint32_t rest = man & 0x1FFFu;
    std::uint32_t out = (static_cast<std::uint32_t>(e) << 10) | m;
    if (rest > 0x1000u || (rest == 0x1000u && (m & 1u))) ++out;  // may carry into the exponent: correct
    return static_cast<std::uint16_t>(sign | out);
  }
};

namespace detail {
template <class T>
inline constexpr bool dependent_false = false;
}

/// Returns the dtype of the C++ element type T (bool, fixed-width integers, float, double,
/// std::complex<float|double>, bfloat16, float16).
template <class T>
constexpr dtype dtype_of() noexcept {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, bool>) return dtype::bool_;
  else if constexpr (std::is_same_v<U, bfloat16>) return dtype::bfloat16;
  else if constexpr (std::is_same_v<U, float16>) return dtype::float16;
  else if constexpr (std::is_same_v<U, float>) return dtype::float32;
  else if constexpr (std::is_same_v<U, double>) return dtype::float64;
  else if constexpr (std::is_same_v<U, std::complex<float>>) return dtype::complex64;
  else if constexpr (std::is_same_v<U, std::complex<double>>) return dtype::complex128;
  else if constexpr (std::is_integral_v<U> && std::is_signed_v<U>) {
    if constexpr (sizeof(U) == 1) return dtype::int8;
    else if constexpr (sizeof(U) == 2) return dtype::int16;
    else if constexpr (sizeof(U) == 4) return dtype::int32;
    else return dtype::int64;
  } else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U>) {
    if constexpr (sizeof(U) == 1) return dtype::uint8;
    else if constexpr (sizeof(U) == 2) return dtype::uint16;
    else if constexpr (sizeof(U) == 4) return dtype::uint32;
    else return dtype::uint64;
  } else {
    static_assert(detail::dependent_false<T>,
                  "cairn::dtype_of<T>: T is not an element type cairn knows; use bool, a fixed-width "
                  "integer, float, double, std::complex<float|double>, cairn::bfloat16 or cairn::float16");
  }
}

/// True if T is a C++ element type with a dtype.
template <class T>
concept element_type =
    std::is_integral_v<std::remove_cv_t<T>> || std::is_same_v<std::remove_cv_t<T>, float> ||
    std::is_same_v<std::remove_cv_t<T>, double> || std::is_same_v<std::remove_cv_t<T>, bfloat16> ||
    std::is_same_v<std::remove_cv_t<T>, float16> || std::is_same_v<std::remove_cv_t<T>, std::complex<float>> ||
    std::is_same_v<std::remove_cv_t<T>, std::complex<double>>;

}  // namespace cairn
