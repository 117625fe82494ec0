// SPDX-License-Identifier: Apache-2.0
/// \file
/// The envelope shared by OCDBT manifests, version-tree nodes and B+tree nodes (orbax-format.md §3.2):
/// `u32be magic, u64le total length, varint version (0), varint compression (0 none, 1 zstd), body
/// (raw, or exactly one zstd frame), u32le CRC-32C of everything before it`. Pure: no I/O.
#pragma once

#include <algorithm>  // std::max
#include <cstddef>
#include <cstdint>
#include <cstdio>  // std::snprintf
#include <string>
#include <string_view>

#include <cairn/codec/zstd.hpp>
#include <cairn/core/byte_reader.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/crc32c.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/varint.hpp>

namespace cairn::ocdbt {

/// Magic numbers of the three enveloped object kinds.
inline constexpr std::uint32_t manifest_magic = 0x0CDB3A2Au;
inline constexpr std::uint32_t version_tree_node_magic = 0x0CDB1234u;
inline constexpr std::uint32_t btree_node_magic = 0x0CDB20DEu;

/// The largest decoded body a reader accepts unless told otherwise. Orbax nodes stay below 100 MB
/// (plus one entry); the bound keeps a hostile zstd frame from demanding unbounded memory.
inline constexpr std::size_t default_max_decoded_bytes = std::size_t{1} << 30;

/// How an object's body is stored.
struct compression {
  enum class method : std::uint8_t { none = 0, zstd = 1 } kind = method::zstd;
  std::int32_t level = 0;  ///< zstd level; 0 is libzstd's default (what TensorStore writes)

  static constexpr compression none() noexcept { return {method::none, 0}; }
  static constexpr compression zstd(std::int32_t level = 0) noexcept { return {method::zstd, level}; }
  friend constexpr bool operator==(const compression&, const compression&) = default;
};

namespace detail {
// Starts `out` (empty) with the envelope's header; the length is filled in by `finish_envelope`.
inline void begin_envelope(byte_buffer& out, std::uint32_t magic, compression c) {
  out.resize(12);
  store_be<std::uint32_t>(out.data(), magic);
  append_varint(out, 0);                                   // format version
  append_varint(out, static_cast<std::uint64_t>(c.kind));  // compression format
}
// Fills in the total length and appends the CRC-32C of everything before it.
inline void finish_envelope(byte_buffer& out) {
  const std::size_t total = out.size() + 4;
  store_le<std::uint64_t>(out.data() + 4, total);
  std::byte crc[4];
  store_le<std::uint32_t>(crc, crc32c(out.view()));
  out.append(byte_view(crc, 4));
}
}  // namespace detail

/// Wraps `body` in an envelope with `magic`, compressing it as `c` says.
/// \post decode_envelope(result, magic, ...) yields `body`.
inline byte_buffer encode_envelope(std::uint32_t magic, byte_view body, compression c) {
  byte_buffer payload;
  if (c.kind == compression::method::zstd) payload = codec::zstd_compress(body, c.level);
  byte_view stored = c.kind == compression::method::zstd ? payload.view() : body;
  byte_buffer out;
  out.reserve(12 + 2 + stored.size() + 4);
  detail::begin_envelope(out, magic, c);
  out.append(stored);
  detail::finish_envelope(out);
  return out;
}

/// Wraps a body of `body_size` bytes that `produce` hands over in pieces (`produce(feed)` calls
/// `feed(byte_view)` for consecutive pieces) in an envelope, compressing it as `c` says: the same bytes
/// as `encode_envelope` of the whole body, without the whole body ever in memory.
/// \throws cairn::error (errc::invalid_argument) if the pieces do not add up to `body_size`.
template <class Produce>
byte_buffer encode_envelope_pieces(std::uint32_t magic, std::size_t body_size, compression c, Produce&& produce) {
  byte_buffer out;
  const bool zstd = c.kind == compression::method::zstd;
  // Compressed nodes shrink a lot (keys and repeated metadata); the buffer grows if this is short.
  out.reserve(12 + 2 + (zstd ? body_size / 4 + (std::size_t{64} << 10) : body_size) + 4);
  detail::begin_envelope(out, magic, c);
  if (zstd) {
    struct growing {
      byte_buffer& b;
      mutable_byte_view space() {
        constexpr std::size_t room = std::size_t{256} << 10;
        if (b.capacity() - b.size() < room) b.reserve(b.size() + std::max(room, b.size() / 2));
        return mutable_byte_view(b.data() + b.size(), b.capacity() - b.size());
      }
      void produced(std::size_t n) { b.resize(b.size() + n); }
    } sink{out};
    codec::zstd_compress_pieces(body_size, c.level, std::forward<Produce>(produce), sink);
  } else {
    const std::size_t start = out.size();
    produce([&](byte_view piece) { out.append(piece); });
    if (out.size() - start != body_size)
      throw error(errc::invalid_argument, "envelope body of " + std::to_string(out.size() - start) + " bytes, " +
                                              std::to_string(body_size) + " announced");
  }
  detail::finish_envelope(out);
  return out;
}

/// Checks an envelope and returns its decoded body.
/// `object` names the object in errors, e.g. `B+tree node "d/ab12…" @4096+240`.
/// \throws cairn::error (errc::corrupted) if the magic, length, CRC-32C, version or compression field is
///         wrong, the zstd frame is not exactly the body region, or the body exceeds `max_decoded_bytes`;
///         (errc::incompatible_format) for a format version other than 0.
inline byte_buffer decode_envelope(byte_view data, std::uint32_t magic, std::string_view object,
                                   std::size_t max_decoded_bytes = default_max_decoded_bytes) {
  byte_reader r(data, std::string(object));
  if (data.size() < 4 + 8 + 1 + 1 + 4)
    throw r.corrupted("envelope", "only " + std::to_string(data.size()) + " bytes; an envelope needs at least 18");
  const auto found_magic = r.read_be<std::uint32_t>("magic");
  if (found_magic != magic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "expected 0x%08X, found 0x%08X", magic, found_magic);
    throw error(errc::corrupted, std::string(object) + ": field \"magic\": " + buf);
  }
  const auto length = r.read_le<std::uint64_t>("length");
  if (length != data.size())
    throw error(errc::corrupted, std::string(object) + ": field \"length\": says " + std::to_string(length) +
                                     " bytes, object has " + std::to_string(data.size()));
  const std::uint32_t stored_crc = load_le<std::uint32_t>(data.data() + data.size() - 4);
  const std::uint32_t actual_crc = crc32c(data.first(data.size() - 4));
  if (stored_crc != actual_crc) {
    char buf[80];
    std::snprintf(buf, sizeof buf, "CRC-32C mismatch: stored 0x%08X, computed 0x%08X", stored_crc, actual_crc);
    throw error(errc::corrupted, std::string(object) + ": " + buf);
  }
  byte_reader h(data.first(data.size() - 4), std::string(object));
  h.read_bytes(12, "header");
  const auto version = h.read_varint<std::uint32_t>("version");
  if (version != 0)
    throw error(errc::incompatible_format,
                std::string(object) + ": format version " + std::to_string(version) + " (cairn reads version 0)");
  const auto method = h.read_varint<std::uint32_t>("compression_format");
  byte_view stored = h.read_bytes(h.remaining(), "body");
  if (method == 0) {
    if (stored.size() > max_decoded_bytes)
      throw h.corrupted("body", "exceeds the limit of " + std::to_string(max_decoded_bytes) + " bytes");
    return byte_buffer(stored);
  }
  if (method != 1) throw h.corrupted("compression_format", "unknown compression " + std::to_string(method));
  return codec::zstd_decompress(stored, max_decoded_bytes, std::string(object) + " body");
}

}  // namespace cairn::ocdbt
