// SPDX-License-Identifier: Apache-2.0
/// \file
/// The database configuration stored at the start of every manifest (orbax-format.md §3.3): uuid,
/// manifest kind, inline-value and node-size limits, version-tree arity and compression. The
/// defaults are Orbax's (inline ≤ 1024 bytes, 100,000,000-byte nodes, arity 2^4, zstd level 0).
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <string>

#include <cairn/core/byte_reader.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/varint.hpp>
#include <cairn/ocdbt/format/envelope.hpp>

namespace cairn::ocdbt {

/// Whether the version tree lives in `manifest.ocdbt` itself or in numbered manifest files.
enum class manifest_kind : std::uint8_t { single = 0, numbered = 1 };

/// A database's configuration.
struct config {
  std::array<std::uint8_t, 16> uuid{};
  manifest_kind kind = manifest_kind::single;
  std::uint32_t max_inline_value_bytes = 1024;
  std::uint32_t max_decoded_node_bytes = 100000000;
  std::uint8_t version_tree_arity_log2 = 4;
  ocdbt::compression compression = ocdbt::compression::zstd(0);

  /// Orbax's configuration with a fresh random uuid.
  static config orbax_default() {
    config c;
    std::random_device rd;
    for (auto& b : c.uuid) b = static_cast<std::uint8_t>(rd());
    return c;
  }
  friend bool operator==(const config&, const config&) = default;
};

/// Appends the encoded configuration to `out`.
inline void encode_config(byte_buffer& out, const config& c) {
  out.append(byte_view(reinterpret_cast<const std::byte*>(c.uuid.data()), c.uuid.size()));
  out.push_back(static_cast<std::byte>(c.kind));
  append_varint(out, c.max_inline_value_bytes);
  append_varint(out, c.max_decoded_node_bytes);
  out.push_back(static_cast<std::byte>(c.version_tree_arity_log2));
  append_varint(out, static_cast<std::uint64_t>(c.compression.kind));
  if (c.compression.kind == compression::method::zstd) {
    std::byte level[4];
    store_le<std::uint32_t>(level, static_cast<std::uint32_t>(c.compression.level));
    out.append(byte_view(level, 4));
  }
}

/// Decodes a configuration.
/// \throws cairn::error (errc::corrupted) naming the field for an unknown kind or compression, an
///         arity outside 1..16, or an inline limit above 1 MiB.
inline config decode_config(byte_reader& r) {
  config c;
  auto uuid = r.read_bytes(16, "config.uuid");
  for (std::size_t i = 0; i < 16; ++i) c.uuid[i] = static_cast<std::uint8_t>(uuid[i]);
  const auto kind = r.read_u8("config.manifest_kind");
  if (kind > 1) throw r.corrupted("config.manifest_kind", "unknown kind " + std::to_string(kind));
  c.kind = static_cast<manifest_kind>(kind);
  c.max_inline_value_bytes = r.read_varint<std::uint32_t>("config.max_inline_value_bytes");
  if (c.max_inline_value_bytes > (1u << 20))
    throw r.corrupted("config.max_inline_value_bytes", std::to_string(c.max_inline_value_bytes) + " exceeds 1 MiB");
  c.max_decoded_node_bytes = r.read_varint<std::uint32_t>("config.max_decoded_node_bytes");
  c.version_tree_arity_log2 = r.read_u8("config.version_tree_arity_log2");
  if (c.version_tree_arity_log2 < 1 || c.version_tree_arity_log2 > 16)
    throw r.corrupted("config.version_tree_arity_log2", std::to_string(c.version_tree_arity_log2) + " is outside 1..16");
  const auto method = r.read_varint<std::uint32_t>("config.compression_method");
  if (method > 1) throw r.corrupted("config.compression_method", "unknown method " + std::to_string(method));
  c.compression.kind = static_cast<compression::method>(method);
  c.compression.level = method == 1 ? static_cast<std::int32_t>(r.read_le<std::uint32_t>("config.zstd_level")) : 0;
  return c;
}

}  // namespace cairn::ocdbt
