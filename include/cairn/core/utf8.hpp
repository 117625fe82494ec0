// SPDX-License-Identifier: Apache-2.0
/// \file
/// UTF-8 validation, shared by the JSON layer (which writes and reads keys as JSON strings), the key
/// checks of a save (a key that is not UTF-8 cannot be written into `_METADATA`) and safetensors.
#pragma once

#include <cstddef>
#include <string_view>

namespace cairn::detail {

/// Decodes one UTF-8 sequence at `p` (of `n` > 0 bytes available).
/// \post returns its length (1–4) and sets `code_point`, or returns 0 for an invalid sequence
/// (overlong, surrogate, above U+10FFFF, truncated or a stray continuation byte).
inline std::size_t utf8_decode(const unsigned char* p, std::size_t n, char32_t& code_point) noexcept {
  const unsigned char b0 = p[0];
  if (b0 < 0x80) {
    code_point = b0;
    return 1;
  }
  std::size_t len;
  char32_t cp;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  code_point = cp;
  return len;
}

/// The offset of the first byte of `s` that does not start a valid UTF-8 sequence, or
/// `std::string_view::npos` if `s` is valid UTF-8.
inline std::size_t first_invalid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    char32_t cp;
    const std::size_t len = utf8_decode(p + i, s.size() - i, cp);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace cairn::detail
