// SPDX-License-Identifier: Apache-2.0
/// \file
/// Versions of a database (orbax-format.md §3.5–3.6): leaf entries reference the B+tree root of one
/// generation, interior entries reference version-tree nodes holding older generations. Columnar
/// encodings shared by the manifest and version-tree nodes, plus the version-tree node itself.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/core/byte_reader.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/varint.hpp>
#include <cairn/ocdbt/format/config.hpp>
#include <cairn/ocdbt/format/data_file_table.hpp>
#include <cairn/ocdbt/format/envelope.hpp>

namespace cairn::ocdbt {

/// Where an encoded object lives: a data file (index into the holding object's table), offset, length.
struct location {
  std::uint64_t file = 0;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;

  static constexpr std::uint64_t missing_value = std::numeric_limits<std::uint64_t>::max();
  /// The location of the root of an empty database.
  static constexpr location missing() noexcept { return {0, missing_value, missing_value}; }
  constexpr bool is_missing() const noexcept { return offset == missing_value && length == missing_value; }
  friend constexpr bool operator==(const location&, const location&) = default;
};

/// Statistics of a B+tree (sub)tree.
struct btree_stats {
  std::uint64_t num_keys = 0;
  std::uint64_t num_tree_bytes = 0;            ///< encoded sizes of all nodes, this one included
  std::uint64_t num_indirect_value_bytes = 0;  ///< lengths of all out-of-line values
  btree_stats& operator+=(const btree_stats& o) noexcept {
    num_keys += o.num_keys;
    num_tree_bytes += o.num_tree_bytes;
    num_indirect_value_bytes += o.num_indirect_value_bytes;
    return *this;
  }
  friend constexpr bool operator==(const btree_stats&, const btree_stats&) = default;
};

/// One committed generation: its B+tree root and statistics.
struct version {
  std::uint64_t generation = 0;
  std::uint8_t root_height = 0;
  location root = location::missing();
  btree_stats stats;
  std::uint64_t commit_time_ns = 0;
  friend constexpr bool operator==(const version&, const version&) = default;
};

/// A reference to a version-tree node covering older generations.
struct version_node_ref {
  std::uint64_t generation = 0;       ///< latest generation in the subtree
  location node;
  std::uint64_t num_generations = 0;
  std::uint64_t commit_time_ns = 0;   ///< earliest commit time in the subtree
  std::uint8_t height = 0;            ///< stored only in the manifest
  friend constexpr bool operator==(const version_node_ref&, const version_node_ref&) = default;
};

namespace detail {
inline void check_file_index(byte_reader& r, std::string_view field, const location& loc, std::size_t num_files) {
  if (loc.file >= num_files && !loc.is_missing())
    throw r.corrupted(field, "data file id " + std::to_string(loc.file) + " is outside the table of " +
                                 std::to_string(num_files));
}
inline void append_u64le(byte_buffer& out, std::uint64_t v) {
  std::byte b[8];
  store_le<std::uint64_t>(b, v);
  out.append(byte_view(b, 8));
}
}  // namespace detail

/// Appends version leaf entries (columnar). `file_index` maps each version's root to its table index.
template <class FileIndex>
void encode_versions(byte_buffer& out, const std::vector<version>& v, FileIndex&& file_index) {
  append_varint(out, v.size());
  for (const auto& x : v) append_varint(out, x.generation);
  for (const auto& x : v) out.push_back(static_cast<std::byte>(x.root_height));
  for (const auto& x : v) append_varint(out, file_index(x));
  for (const auto& x : v) append_varint(out, x.root.offset);
  for (const auto& x : v) append_varint(out, x.root.length);
  for (const auto& x : v) append_varint(out, x.stats.num_keys);
  for (const auto& x : v) append_varint(out, x.stats.num_tree_bytes);
  for (const auto& x : v) append_varint(out, x.stats.num_indirect_value_bytes);
  for (const auto& x : v) detail::append_u64le(out, x.commit_time_ns);
}

/// Decodes version leaf entries.
/// \throws cairn::error (errc::corrupted) for a count beyond `max_count` or the input, generations not
///         strictly increasing or zero, or a file index outside the table.
inline std::vector<version> decode_versions(byte_reader& r, std::size_t num_files, std::uint64_t max_count) {
  const auto n = r.read_varint<std::uint64_t>("versions.count");
  if (n > max_count || n > r.remaining())
    throw r.corrupted("versions.count", std::to_string(n) + " versions (at most " + std::to_string(max_count) + ")");
  std::vector<version> v(n);
  for (auto& x : v) x.generation = r.read_varint<std::uint64_t>("versions.generation_number");
  for (auto& x : v) x.root_height = r.read_u8("versions.root_height");
  for (auto& x : v) x.root.file = r.read_varint<std::uint64_t>("versions.data_file_id");
  for (auto& x : v) x.root.offset = r.read_varint<std::uint64_t>("versions.offset");
  for (auto& x : v) x.root.length = r.read_varint<std::uint64_t>("versions.length");
  for (auto& x : v) x.stats.num_keys = r.read_varint<std::uint64_t>("versions.num_keys");
  for (auto& x : v) x.stats.num_tree_bytes = r.read_varint<std::uint64_t>("versions.num_tree_bytes");
  for (auto& x : v) x.stats.num_indirect_value_bytes = r.read_varint<std::uint64_t>("versions.num_indirect_value_bytes");
  for (auto& x : v) x.commit_time_ns = r.read_le<std::uint64_t>("versions.commit_time");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i].generation == 0) throw r.corrupted("versions.generation_number", "generation 0 is invalid");
    if (i > 0 && v[i].generation <= v[i - 1].generation)
      throw r.corrupted("versions.generation_number", "generations are not strictly increasing");
    detail::check_file_index(r, "versions.data_file_id", v[i].root, num_files);
  }
  return v;
}

/// Appends version-node references (columnar); heights only when `with_height` (the manifest's form).
template <class FileIndex>
void encode_version_node_refs(byte_buffer& out, const std::vector<version_node_ref>& v, bool with_height,
                              FileIndex&& file_index) {
  append_varint(out, v.size());
  for (const auto& x : v) append_varint(out, x.generation);
  for (const auto& x : v) append_varint(out, file_index(x));
  for (const auto& x : v) append_varint(out, x.node.offset);
  for (const auto& x : v) append_varint(out, x.node.length);
  for (const auto& x : v) append_varint(out, x.num_generations);
  for (const auto& x : v) detail::append_u64le(out, x.commit_time_ns);
  if (with_height)
    for (const auto& x : v) out.push_back(static_cast<std::byte>(x.height));
}

/// Decodes version-node references.
/// \throws cairn::error (errc::corrupted) for an impossible count, a file index outside the table, or
///         (manifest form) heights that do not strictly decrease.
inline std::vector<version_node_ref> decode_version_node_refs(byte_reader& r, std::size_t num_files, bool with_height) {
  const auto n = r.read_varint<std::uint64_t>("version_nodes.count");
  if (n > r.remaining()) throw r.corrupted("version_nodes.count", std::to_string(n) + " entries cannot fit");
  std::vector<version_node_ref> v(n);
  for (auto& x : v) x.generation = r.read_varint<std::uint64_t>("version_nodes.generation_number");
  for (auto& x : v) x.node.file = r.read_varint<std::uint64_t>("version_nodes.data_file_id");
  for (auto& x : v) x.node.offset = r.read_varint<std::uint64_t>("version_nodes.offset");
  for (auto& x : v) x.node.length = r.read_varint<std::uint64_t>("version_nodes.length");
  for (auto& x : v) x.num_generations = r.read_varint<std::uint64_t>("version_nodes.num_generations");
  for (auto& x : v) x.commit_time_ns = r.read_le<std::uint64_t>("version_nodes.commit_time");
  if (with_height)
    for (auto& x : v) x.height = r.read_u8("version_nodes.height");
  for (std::size_t i = 0; i < v.size(); ++i) {
    detail::check_file_index(r, "version_nodes.data_file_id", v[i].node, num_files);
    if (v[i].node.is_missing()) throw r.corrupted("version_nodes", "a version node reference is missing");
    if (with_height && v[i].height == 0)
      throw r.corrupted("version_nodes.height", "the manifest references version nodes of height 1 or more");
    if (with_height && i > 0 && v[i].height >= v[i - 1].height)
      throw r.corrupted("version_nodes.height", "heights do not strictly decrease");
    if (v[i].generation == 0) throw r.corrupted("version_nodes.generation_number", "generation 0 is invalid");
    if (i > 0 && v[i].generation <= v[i - 1].generation)
      throw r.corrupted("version_nodes.generation_number", "generations are not strictly increasing");
  }
  return v;
}

/// A decoded version-tree node: leaf (height 0) holds versions, interior holds node references.
struct version_tree_node {
  std::uint8_t version_tree_arity_log2 = 4;
  std::uint8_t height = 0;
  std::vector<data_file_id> files;
  std::vector<version> versions;             ///< height 0
  std::vector<version_node_ref> children;    ///< height > 0
};

/// Decodes a version-tree node. `transitive_path` is the base path of the file the node was read from.
/// \throws cairn::error (errc::corrupted) as the envelope and entry decoders do, or for an arity that
///         differs from `expected_arity_log2`.
inline version_tree_node decode_version_tree_node(byte_view data, std::string_view transitive_path,
                                                  std::uint8_t expected_arity_log2, std::string_view object,
                                                  std::size_t max_decoded_bytes = default_max_decoded_bytes) {
  byte_buffer body = decode_envelope(data, version_tree_node_magic, object, max_decoded_bytes);
  byte_reader r(body.view(), std::string(object));
  version_tree_node node;
  node.version_tree_arity_log2 = r.read_u8("version_tree_arity_log2");
  if (node.version_tree_arity_log2 != expected_arity_log2)
    throw r.corrupted("version_tree_arity_log2", "is " + std::to_string(node.version_tree_arity_log2) +
                                                     ", the manifest says " + std::to_string(expected_arity_log2));
  node.height = r.read_u8("height");
  if ((static_cast<unsigned>(node.height) + 1) * node.version_tree_arity_log2 >= 64)
    throw r.corrupted("height", "height " + std::to_string(node.height) + " is too large for the arity");
  node.files = decode_data_file_table(r, transitive_path);
  const std::uint64_t arity = std::uint64_t{1} << node.version_tree_arity_log2;
  if (node.height == 0) node.versions = decode_versions(r, node.files.size(), arity);
  else node.children = decode_version_node_refs(r, node.files.size(), false);
  r.expect_end("version tree node body");
  return node;
}

/// Encodes a version-tree node whose entries reference files by id.
inline byte_buffer encode_version_tree_node(const version_tree_node& node, compression c) {
  data_file_table_builder table;
  auto id_of = [&](const location& loc) { return loc.is_missing() ? data_file_id{} : node.files.at(loc.file); };
  for (const auto& v : node.versions) table.add(id_of(v.root));
  for (const auto& v : node.children) table.add(node.files.at(v.node.file));
  byte_buffer body;
  body.push_back(static_cast<std::byte>(node.version_tree_arity_log2));
  body.push_back(static_cast<std::byte>(node.height));
  table.finalize(body);
  if (node.height == 0)
    encode_versions(body, node.versions, [&](const version& v) { return table.index_of(id_of(v.root)); });
  else
    encode_version_node_refs(body, node.children, false,
                             [&](const version_node_ref& v) { return table.index_of(node.files.at(v.node.file)); });
  return encode_envelope(version_tree_node_magic, body.view(), c);
}

}  // namespace cairn::ocdbt
