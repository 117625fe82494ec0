// SPDX-License-Identifier: Apache-2.0
/// \file
/// Unsigned LEB128 varints as OCDBT uses them (orbax-format.md §3.1): 7 bits per byte, low groups
/// first, high bit = continuation. Writers emit the shortest form; readers accept non-shortest forms
/// but reject encodings longer than the type allows (10 bytes for 64 bits, 5 for 32; 16-bit fields are 32-bit varints
/// with a narrower range),
/// bits beyond the type's range, and truncated input — each as `errc::corrupted`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include <cairn/core/bytes.hpp>
#include <cairn/core/error.hpp>

namespace cairn {

/// The most bytes a varint of the unsigned type T may occupy.
template <class T>
inline constexpr std::size_t max_varint_size = (std::numeric_limits<T>::digits + 6) / 7;

/// Returns the number of bytes of the shortest encoding of `v`.
constexpr std::size_t varint_size(std::uint64_t v) noexcept {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/// Writes the shortest encoding of `v` to `out` and returns the number of bytes written.
/// \pre `out` has room for varint_size(v) bytes.
inline std::size_t encode_varint(std::uint64_t v, std::byte* out) noexcept {
  std::size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<std::byte>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<std::byte>(v);
  return n;
}

/// Appends the shortest encoding of `v` to `out`.
inline void append_varint(byte_buffer& out, std::uint64_t v) {
  std::byte tmp[10];
  out.append(byte_view(tmp, encode_varint(v, tmp)));
}

namespace detail {
inline std::string varint_label(std::string_view what) { return std::string(what); }
template <class F>
  requires std::is_invocable_r_v<std::string, const F&>
std::string varint_label(const F& what) {
  return what();
}
}  // namespace detail

/// Decodes a varint of type T (uint16_t, uint32_t or uint64_t) from `in` starting at `pos`, and
/// advances `pos` past it. `what` names the field for error messages (e.g. `manifest field "version"`):
/// text, or a function returning it, called only on failure (for callers that would otherwise put
/// a label together for each of many varints).
/// \throws cairn::error (errc::corrupted) if the input ends inside the varint, the encoding is longer
///         than max_varint_size<T>, or the value does not fit in T.
template <class T, class What>
T decode_varint(byte_view in, std::size_t& pos, const What& what) {
  static_assert(std::is_unsigned_v<T> && sizeof(T) >= 2, "decode_varint<T>: T must be uint16/32/64_t");
  // 16-bit fields are 32-bit varints with a narrower range check, as TensorStore reads them.
  using wide = std::conditional_t<(sizeof(T) < 4), std::uint32_t, T>;
  constexpr std::size_t max_bytes = max_varint_size<wide>;
  constexpr int bits = std::numeric_limits<wide>::digits;
  const std::size_t start = pos;
  auto fail = [&](std::string_view why) {
    return error(errc::corrupted, detail::varint_label(what) + " at byte " + std::to_string(start) + ": " + std::string(why));
  };
  wide value = 0;
  for (std::size_t i = 0;; ++i) {
    if (i == max_bytes) throw fail("varint longer than " + std::to_string(max_bytes) + " bytes");
    if (pos >= in.size()) throw fail("varint truncated");
    const auto byte = static_cast<std::uint8_t>(in[pos++]);
    const auto payload = static_cast<wide>(byte & 0x7F);
    const int shift = static_cast<int>(7 * i);
    if (shift + 7 > bits && (payload >> (bits - shift)) != 0) throw fail("varint exceeds " + std::to_string(bits) + " bits");
    value |= static_cast<wide>(payload << shift);
    if ((byte & 0x80) == 0) break;
  }
  if (value > std::numeric_limits<T>::max())
    throw fail("value " + std::to_string(value) + " exceeds " + std::to_string(std::numeric_limits<T>::max()));
  return static_cast<T>(value);
}

}  // namespace cairn
