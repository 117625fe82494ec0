// SPDX-License-Identifier: Apache-2.0
/// \file
/// The manifest (`manifest.ocdbt`, orbax-format.md §3.3): the configuration and, for the single kind,
/// the data file table, the inline versions (the latest is last) and references to version-tree
/// nodes holding older generations. A numbered-kind `manifest.ocdbt` holds only the configuration;
/// its versions live in `manifest.<16 hex digits>` files, each a full manifest whose config says single.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/core/byte_reader.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/ocdbt/format/config.hpp>
#include <cairn/ocdbt/format/data_file_table.hpp>
#include <cairn/ocdbt/format/envelope.hpp>
#include <cairn/ocdbt/format/version_tree.hpp>

namespace cairn::ocdbt {

/// A decoded manifest. Locations index `files`.
struct manifest {
  ocdbt::config config;
  std::vector<data_file_id> files;
  std::vector<version> versions;             ///< inline versions, oldest first; empty for a numbered-kind config
  std::vector<version_node_ref> version_nodes;

  /// The newest generation, or nullptr for a numbered-kind configuration manifest.
  const version* latest() const noexcept { return versions.empty() ? nullptr : &versions.back(); }
};

/// The name of the numbered manifest for `generation`: `manifest.` + 16 lowercase hex digits.
inline std::string numbered_manifest_name(std::uint64_t generation) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "manifest.%016llx", static_cast<unsigned long long>(generation));
  return buf;
}

/// One version-tree node range the manifest may reference: generations [min, max] at `height` (≥ 1).
struct version_node_range {
  std::uint64_t min_generation;
  std::uint64_t max_generation;
  std::uint8_t height;
  friend constexpr bool operator==(const version_node_range&, const version_node_range&) = default;
};

/// Returns, lowest height first, the generation ranges of the version-tree nodes a manifest whose
/// latest generation is `latest` may reference (at most one node per height). The newest
/// generations, those in `latest`'s bucket of 2^arity_log2, are inline in the manifest instead.
/// Example (arity 2^2): latest 9 → {[1, 8] height 1}; latest 30 → {[17, 28] h1, [1, 16] h2}.
inline std::vector<version_node_range> version_node_ranges(std::uint64_t latest, std::uint8_t arity_log2) {
  std::vector<version_node_range> out;
  if (latest == 0) return out;
  std::uint64_t g = (latest - 1) >> arity_log2 << arity_log2;
  for (unsigned height = 1; g != 0; ++height) {
    const unsigned shift = (height + 1) * arity_log2;
    const std::uint64_t next = shift >= 64 ? 0 : (g - 1) >> shift << shift;
    out.push_back({next + 1, g, static_cast<std::uint8_t>(height)});
    g = next;
  }
  return out;
}

/// Decodes a manifest object. A numbered-kind `manifest.ocdbt` holds only the configuration.
/// \throws cairn::error (errc::corrupted) naming the field for any inconsistency: no versions, inline
///         versions outside the latest bucket, version-node references out of order or outside the
///         ranges `version_node_ranges` allows; (errc::incompatible_format) for an unknown format version.
inline manifest decode_manifest(byte_view data, std::string_view object,
                                std::size_t max_decoded_bytes = default_max_decoded_bytes) {
  byte_buffer body = decode_envelope(data, manifest_magic, object, max_decoded_bytes);
  byte_reader r(body.view(), std::string(object));
  manifest m;
  m.config = decode_config(r);
  if (m.config.kind == manifest_kind::single) {
    const unsigned log2 = m.config.version_tree_arity_log2;
    m.files = decode_data_file_table(r, "");
    m.versions = decode_versions(r, m.files.size(), std::uint64_t{1} << log2);
    if (m.versions.empty()) throw r.corrupted("versions", "a manifest must hold at least one version");
    const std::uint64_t latest = m.versions.back().generation;
    for (const auto& v : m.versions)
      if (((v.generation - 1) >> log2) != ((latest - 1) >> log2))
        throw r.corrupted("versions.generation_number", "generation " + std::to_string(v.generation) +
                                                           " does not belong inline with latest generation " +
                                                           std::to_string(latest));
    m.version_nodes = decode_version_node_refs(r, m.files.size(), true);
    auto ranges = version_node_ranges(latest, m.config.version_tree_arity_log2);
    std::size_t i = m.version_nodes.size();
    for (const auto& range : ranges) {
      if (i == 0 || m.version_nodes[i - 1].height != range.height) continue;
      const auto& n = m.version_nodes[--i];
      if (n.generation < range.min_generation || n.generation > range.max_generation)
        throw r.corrupted("version_nodes", "generation " + std::to_string(n.generation) + " at height " +
                                               std::to_string(n.height) + " is outside [" +
                                               std::to_string(range.min_generation) + ", " +
                                               std::to_string(range.max_generation) + "]");
    }
    if (i != 0)
      throw r.corrupted("version_nodes", "unexpected version node at height " +
                                             std::to_string(m.version_nodes[i - 1].height));
  }
  r.expect_end("manifest body");
  return m;
}

/// Encodes a manifest's body (before the envelope). A numbered-kind manifest encodes only its
/// configuration; numbered manifest files are written as single-kind manifests.
inline byte_buffer encode_manifest_body(const manifest& m) {
  byte_buffer body;
  encode_config(body, m.config);
  if (m.config.kind == manifest_kind::single) {
    data_file_table_builder table;
    // An empty database's root still names a table entry; TensorStore uses the empty id.
    auto id_of = [&](const location& loc) { return loc.is_missing() ? data_file_id{} : m.files.at(loc.file); };
    for (const auto& v : m.versions) table.add(id_of(v.root));
    for (const auto& n : m.version_nodes) table.add(id_of(n.node));
    table.finalize(body);
    encode_versions(body, m.versions, [&](const version& v) { return table.index_of(id_of(v.root)); });
    encode_version_node_refs(body, m.version_nodes, true,
                             [&](const version_node_ref& n) { return table.index_of(id_of(n.node)); });
  }
  return body;
}

/// Encodes a manifest, compressed as its configuration says.
inline byte_buffer encode_manifest(const manifest& m) {
  return encode_envelope(manifest_magic, encode_manifest_body(m).view(), m.config.compression);
}

}  // namespace cairn::ocdbt
