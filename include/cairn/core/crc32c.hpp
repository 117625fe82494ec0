// SPDX-License-Identifier: Apache-2.0
/// \file
/// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, init and xorout 0xFFFFFFFF), the checksum
/// of OCDBT objects and of zarr v3 shard indexes. Uses the SSE4.2 `crc32` instruction when the CPU
/// has it (checked once at run time) and a slicing-by-8 table otherwise. `crc32c("123456789") == 0xE3069283`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>  // std::memcpy
#include <string_view>

#include <cairn/core/bytes.hpp>

namespace cairn {
namespace detail {

inline constexpr std::array<std::array<std::uint32_t, 256>, 8> crc32c_tables = [] {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[0][i] = c;
  }
  for (std::size_t s = 1; s < 8; ++s)
    for (std::uint32_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
  return t;
}();

/// Table-driven update of a raw (not inverted) CRC register.
inline std::uint32_t crc32c_update_portable(std::uint32_t crc, const std::byte* p, std::size_t n) noexcept {
  const auto& t = crc32c_tables;
  while (n >= 8) {
    std::uint32_t lo = crc ^ load_le<std::uint32_t>(p);
    std::uint32_t hi = load_le<std::uint32_t>(p + 4);
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ t[0][(crc ^ static_cast<std::uint32_t>(*p++)) & 0xFF];
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CAIRN_DETAIL_CRC32C_HW 1
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_update_sse42(std::uint32_t crc, const std::byte* p,
                                                                           std::size_t n) noexcept {
  std::uint64_t c = crc;
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, static_cast<unsigned char>(*p++));
  return c32;
}
inline bool crc32c_has_sse42() noexcept {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace detail

/// Returns the CRC-32C of `data` continued from the CRC `crc` of the preceding bytes (0 to start).
/// \post crc32c_extend(crc32c(a), b) == crc32c(a ++ b)
inline std::uint32_t crc32c_extend(std::uint32_t crc, byte_view data) noexcept {
  std::uint32_t c = ~crc;
#ifdef CAIRN_DETAIL_CRC32C_HW
  if (detail::crc32c_has_sse42()) return ~detail::crc32c_update_sse42(c, data.data(), data.size());
#endif
  return ~detail::crc32c_update_portable(c, data.data(), data.size());
}

/// Returns the CRC-32C of `data`.
inline std::uint32_t crc32c(byte_view data) noexcept { return crc32c_extend(0, data); }
/// Returns the CRC-32C of the characters of `text`.
inline std::uint32_t crc32c(std::string_view text) noexcept { return crc32c(as_bytes(text)); }

}  // namespace cairn
