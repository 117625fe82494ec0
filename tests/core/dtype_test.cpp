// SPDX-License-Identifier: Apache-2.0
#include <cairn/core/dtype.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>

using cairn::dtype;

TEST_CASE("every dtype's names map back to it in every format") {
  std::set<std::string_view> names, zarr_v2, zarr_v3, safetensors, short_names;
  for (std::size_t i = 0; i < cairn::dtype_count; ++i) {
    const auto t = static_cast<dtype>(i);
    const auto& inf = cairn::info(t);
    CAPTURE(inf.name);
    CHECK(inf.type == t);  // table is in enum order
    CHECK(inf.size >= 1);
    CHECK(cairn::dtype_from_name(inf.name) == t);
    CHECK(cairn::dtype_from_zarr_v3(inf.zarr_v3) == t);
    CHECK(cairn::dtype_from_short_name(inf.short_name) == t);
    auto v2 = cairn::dtype_from_zarr_v2(inf.zarr_v2);
    REQUIRE(v2.has_value());
    CHECK(v2->type == t);
    CHECK(v2->byte_order == std::endian::little);
    if (!inf.safetensors.empty()) CHECK(cairn::dtype_from_safetensors(inf.safetensors) == t);
    CHECK(cairn::parse_dtype(inf.name) == t);
    CHECK(cairn::parse_dtype(inf.zarr_v2) == t);
    // Names are unique within each format.
    CHECK(names.insert(inf.name).second);
    CHECK(zarr_v2.insert(inf.zarr_v2).second);
    CHECK(zarr_v3.insert(inf.zarr_v3).second);
    CHECK(short_names.insert(inf.short_name).second);
    if (!inf.safetensors.empty()) CHECK(safetensors.insert(inf.safetensors).second);
  }
}

TEST_CASE("zarr v2 dtype strings as TensorStore writes them") {
  CHECK(cairn::info(dtype::bool_).zarr_v2 == "|b1");
  CHECK(cairn::info(dtype::int32).zarr_v2 == "<i4");
  CHECK(cairn::info(dtype::uint8).zarr_v2 == "|u1");
  CHECK(cairn::info(dtype::complex128).zarr_v2 == "<c16");
  CHECK(cairn::info(dtype::bfloat16).zarr_v2 == "bfloat16");
  CHECK(cairn::dtype_from_zarr_v2(">f4") == cairn::zarr_v2_dtype{dtype::float32, std::endian::big});
  CHECK(cairn::dtype_from_zarr_v2("<i1") == cairn::zarr_v2_dtype{dtype::int8, std::endian::little});
  CHECK(cairn::dtype_from_zarr_v2(">u1") == cairn::zarr_v2_dtype{dtype::uint8, std::endian::little});
  CHECK_FALSE(cairn::dtype_from_zarr_v2("|f4").has_value());
  CHECK_FALSE(cairn::dtype_from_zarr_v2("<f3").has_value());
  CHECK_FALSE(cairn::dtype_from_zarr_v2("").has_value());
  CHECK(cairn::info(dtype::float8_e4m3fn).safetensors == "F8_E4M3");
  CHECK(cairn::dtype_from_safetensors("BF16") == dtype::bfloat16);
  CHECK_FALSE(cairn::dtype_from_safetensors("").has_value());
  try {
    (void)cairn::parse_dtype("float128");
    FAIL("expected an error");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::unsupported);
    CHECK(std::string(e.what()).find("\"float128\"") != std::string::npos);
  }
}

TEST_CASE("sizes") {
  CHECK(cairn::size_of(dtype::bool_) == 1);
  CHECK(cairn::size_of(dtype::int4) == 1);
  CHECK(cairn::size_of(dtype::bfloat16) == 2);
  CHECK(cairn::size_of(dtype::float64) == 8);
  CHECK(cairn::size_of(dtype::complex64) == 8);
  CHECK(cairn::size_of(dtype::complex128) == 16);
  CHECK(cairn::size_of(dtype::float8_e5m2) == 1);
  static_assert(cairn::dtype_of<float>() == dtype::float32);
  static_assert(cairn::dtype_of<const std::int64_t>() == dtype::int64);
  static_assert(cairn::dtype_of<long long>() == dtype::int64);
  static_assert(cairn::dtype_of<unsigned char>() == dtype::uint8);
  static_assert(cairn::dtype_of<cairn::bfloat16>() == dtype::bfloat16);
  static_assert(cairn::dtype_of<std::complex<double>>() == dtype::complex128);
  static_assert(cairn::element_type<bool>);
  static_assert(!cairn::element_type<long double>);
  static_assert(!cairn::element_type<std::string>);
}

TEST_CASE("bfloat16: all 65536 bit patterns round-trip through float") {
  for (std::uint32_t b = 0; b <= 0xFFFF; ++b) {
    auto h = cairn::bfloat16::from_bits(static_cast<std::uint16_t>(b));
    float f = static_cast<float>(h);
    CHECK_MESSAGE(cairn::bfloat16(f).bits == b, "bits " << b);
    CHECK(std::bit_cast<std::uint32_t>(f) == (b << 16));  // widening is exact
  }
}

TEST_CASE("bfloat16 rounds to nearest even and keeps NaN") {
  CHECK(cairn::bfloat16(1.0f).bits == 0x3F80);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (1.0).
  CHECK(cairn::bfloat16(1.00390625f).bits == 0x3F80);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
  CHECK(cairn::bfloat16(1.01171875f).bits == 0x3F82);
  CHECK(cairn::bfloat16(1.0f + 1.0f / 256 + 1.0f / 65536).bits == 0x3F81);  // above the tie
  CHECK(cairn::bfloat16(std::numeric_limits<float>::max()).bits == 0x7F80);  // overflow to inf
  CHECK(cairn::bfloat16(-std::numeric_limits<float>::infinity()).bits == 0xFF80);
  // A NaN whose payload sits only in the low 16 bits must stay NaN, not become infinity.
  auto nan_low = std::bit_cast<float>(0x7F800001u);
  CHECK(std::isnan(static_cast<float>(cairn::bfloat16(nan_low))));
  CHECK(std::isnan(static_cast<float>(cairn::bfloat16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("float16: all 65536 bit patterns round-trip through float") {
  for (std::uint32_t b = 0; b <= 0xFFFF; ++b) {
    auto h = cairn::float16::from_bits(static_cast<std::uint16_t>(b));
    float f = static_cast<float>(h);
    CHECK_MESSAGE(cairn::float16(f).bits == b, "bits " << b);
  }
}

TEST_CASE("float16 conversions match IEEE binary16") {
  CHECK(static_cast<float>(cairn::float16::from_bits(0x3C00)) == 1.0f);
  CHECK(static_cast<float>(cairn::float16::from_bits(0xC000)) == -2.0f);
  CHECK(static_cast<float>(cairn::float16::from_bits(0x7BFF)) == 65504.0f);
  CHECK(static_cast<float>(cairn::float16::from_bits(0x0001)) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(static_cast<float>(cairn::float16::from_bits(0x03FF)) == std::ldexp(1023.0f, -24));
  CHECK(std::signbit(static_cast<float>(cairn::float16::from_bits(0x8000))));
  CHECK(cairn::float16(65520.0f).bits == 0x7C00);  // rounds up past max → inf
  CHECK(cairn::float16(65519.0f).bits == 0x7BFF);
  CHECK(cairn::float16(std::ldexp(1.0f, -25)).bits == 0x0000);        // tie → even (0)
  CHECK(cairn::float16(std::ldexp(1.5f, -25)).bits == 0x0001);        // above the tie
  CHECK(cairn::float16(std::ldexp(3.0f, -25)).bits == 0x0002);        // 1.5 subnormal units: tie → even (2)
  CHECK(cairn::float16(1.0f + std::ldexp(1.0f, -11)).bits == 0x3C00);  // tie → even
  CHECK(cairn::float16(1.0f + std::ldexp(3.0f, -11)).bits == 0x3C02);  // tie → even (up)
  CHECK(cairn::float16(std::ldexp(1.0f, -30)).bits == 0x0000);
  CHECK(cairn::float16(-std::ldexp(1.0f, -30)).bits == 0x8000);
  CHECK(std::isnan(static_cast<float>(cairn::float16(std::bit_cast<float>(0x7F800001u)))));
  // Every float that is exactly a float16 converts to that float16 (checks normal/subnormal paths).
  for (std::uint32_t b = 0; b <= 0xFFFF; ++b) {
    auto h = cairn::float16::from_bits(static_cast<std::uint16_t>(b));
    float f = static_cast<float>(h);
    if (std::isnan(f)) continue;
    // Midpoints between consecutive float16 values round to the even neighbour.
    if ((b & 0x7FFF) < 0x7BFF) {
      float next = static_cast<float>(cairn::float16::from_bits(static_cast<std::uint16_t>(b + 1)));
      float mid = f + (next - f) / 2;
      std::uint16_t expect = (b & 1) ? static_cast<std::uint16_t>(b + 1) : static_cast<std::uint16_t>(b);
      CHECK_MESSAGE(cairn::float16(mid).bits == expect, "midpoint after " << b);
    }
  }
}
