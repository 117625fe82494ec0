// SPDX-License-Identifier: Apache-2.0
/// \file
/// B+tree nodes (magic 0x0CDB20DE, orbax-format.md §3.7). Leaf entries map a key to an inline value
/// or to an out-of-line value `(data file, offset, length)`; interior entries map a child's inclusive
/// lower-bound key to its location and statistics. Keys are prefix-compressed, strictly increasing
/// bytewise, and stored relative to the node's implicit prefix (the parent's subtree common prefixes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <cairn/core/byte_reader.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/varint.hpp>
#include <cairn/ocdbt/format/data_file_table.hpp>
#include <cairn/ocdbt/format/envelope.hpp>
#include <cairn/ocdbt/format/version_tree.hpp>

namespace cairn::ocdbt {

/// The most entries a node may hold.
inline constexpr std::size_t max_node_entries = std::size_t{1} << 20;
/// The longest key.
inline constexpr std::size_t max_key_length = 65535;

/// A leaf entry: inline bytes (a slice of the node body) or an out-of-line reference into `files`.
struct leaf_entry {
  std::string key;  ///< relative to the node's implicit prefix
  bool is_inline = true;
  shared_bytes value;  ///< when inline
  location ref;        ///< when out-of-line: file index, offset, length
  std::uint64_t value_size() const noexcept { return is_inline ? value.size() : ref.length; }
};

/// An interior entry: a child node and its statistics.
struct interior_entry {
  std::string key;  ///< the child's inclusive lower bound, relative to this node's implicit prefix
  std::uint16_t subtree_common_prefix_length = 0;
  location child;
  btree_stats stats;
};

/// A decoded B+tree node. Out-of-line values and children index `files`, whose base paths include the
/// transitive path the node was decoded with.
struct btree_node {
  std::uint8_t height = 0;
  std::vector<data_file_id> files;
  std::vector<leaf_entry> leaves;        ///< height 0
  std::vector<interior_entry> children;  ///< height > 0
  std::size_t size() const noexcept { return height == 0 ? leaves.size() : children.size(); }
};

namespace detail {
/// Counts the bytes a node body takes, through the same calls that write it.
struct body_size_counter {
  std::size_t size = 0;
  void varint(std::uint64_t v) noexcept { size += varint_size(v); }
  void byte(std::byte) noexcept { ++size; }
  void bytes(byte_view b) noexcept { size += b.size(); }
};
/// Writes a node body into one buffer.
struct body_buffer_writer {
  byte_buffer& out;
  void varint(std::uint64_t v) { append_varint(out, v); }
  void byte(std::byte b) { out.push_back(b); }
  void bytes(byte_view b) { out.append(b); }
};
/// Writes a node body in pieces of about `piece` bytes through `feed(byte_view)`: small fields are
/// gathered in a buffer that is reused; large values are handed over where they lie.
template <class Feed>
class body_piece_writer {
 public:
  body_piece_writer(Feed& feed, std::size_t piece) : feed_(feed), piece_(piece) { buffer_.reserve(piece); }
  void varint(std::uint64_t v) {
    if (buffer_.size() + max_varint_size<std::uint64_t> > piece_) flush();
    append_varint(buffer_, v);
  }
  void byte(std::byte b) {
    if (buffer_.size() + 1 > piece_) flush();
    buffer_.push_back(b);
  }
  void bytes(byte_view b) {
    if (buffer_.size() + b.size() > piece_) {
      flush();
      if (b.size() >= piece_ / 2) return feed_(b);
    }
    buffer_.append(b);
  }
  void flush() {
    if (buffer_.empty()) return;
    feed_(buffer_.view());
    buffer_.clear();
  }

 private:
  Feed& feed_;
  std::size_t piece_;
  byte_buffer buffer_;
};

/// A node's entries checked, with what encoding them needs computed once: each key's common prefix
/// with the previous one and the data file table.
class btree_node_encoding {
 public:
  /// \throws cairn::error (errc::invalid_argument) for an empty or oversized node, unsorted or too-long keys.
  explicit btree_node_encoding(const btree_node& node) : node_(node) {
    const std::size_t n = node.size();
    if (n == 0 || n > max_node_entries)
      throw error(errc::invalid_argument, "B+tree node with " + std::to_string(n) + " entries (must be 1.." +
                                              std::to_string(max_node_entries) + ")");
    auto check = [&](const auto& entries) {
      prefix_.resize(entries.size());
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].key.size() > max_key_length)
          throw error(errc::invalid_argument, "key of " + std::to_string(entries[i].key.size()) + " bytes exceeds 65535");
        if (i && !(entries[i - 1].key < entries[i].key))
          throw error(errc::invalid_argument, "B+tree keys are not strictly increasing at \"" + entries[i].key + "\"");
        prefix_[i] = i ? static_cast<std::uint32_t>(common_prefix(entries[i - 1].key, entries[i].key)) : 0;
      }
    };
    // Each of the node's files enters the table once (a node refers to one or two files from
    // thousands of entries, and adding per entry cost a map node and two path copies each).
    std::vector<char> used(node.files.size(), 0);
    auto use = [&](std::uint64_t file) {
      if (file >= node.files.size())
        throw error(errc::invalid_argument, "B+tree node entry refers to data file " + std::to_string(file) + " of " +
                                                std::to_string(node.files.size()));
      used[file] = 1;
    };
    if (node.height == 0) {
      check(node.leaves);
      for (const auto& e : node.leaves)
        if (!e.is_inline) use(e.ref.file);
    } else {
      check(node.children);
      for (const auto& e : node.children) use(e.child.file);
    }
    for (std::size_t f = 0; f < used.size(); ++f)
      if (used[f]) table_.add(node.files[f]);
    table_.finalize(table_bytes_);
    file_index_.assign(used.size(), 0);
    for (std::size_t f = 0; f < used.size(); ++f)
      if (used[f]) file_index_[f] = table_.index_of(node.files[f]);
    body_size_counter counter;
    write(counter);
    size_ = counter.size;
  }

  /// The body's size in bytes.
  std::size_t size() const noexcept { return size_; }

  /// Writes the body through `w` (`varint`, `byte`, `bytes`).
  template <class Writer>
  void write(Writer& w) const {
    const btree_node& node = node_;
    const std::size_t n = node.size();
    w.byte(static_cast<std::byte>(node.height));
    w.bytes(table_bytes_.view());
    w.varint(n);
    auto keys = [&](const auto& entries) {
      for (std::size_t i = 1; i < n; ++i) w.varint(prefix_[i]);
      for (std::size_t i = 0; i < n; ++i) w.varint(entries[i].key.size() - prefix_[i]);
    };
    auto suffixes = [&](const auto& entries) {
      for (std::size_t i = 0; i < n; ++i) w.bytes(as_bytes(std::string_view(entries[i].key).substr(prefix_[i])));
    };
    if (node.height == 0) {
      keys(node.leaves);
      suffixes(node.leaves);
      for (const auto& e : node.leaves) w.varint(e.value_size());
      for (const auto& e : node.leaves) w.byte(std::byte(e.is_inline ? 0 : 1));
      for (const auto& e : node.leaves)
        if (!e.is_inline) w.varint(file_index_[e.ref.file]);
      for (const auto& e : node.leaves)
        if (!e.is_inline) w.varint(e.ref.offset);
      for (const auto& e : node.leaves)
        if (e.is_inline) w.bytes(e.value.view());
    } else {
      keys(node.children);
      for (const auto& e : node.children) w.varint(e.subtree_common_prefix_length);
      suffixes(node.children);
      for (const auto& e : node.children) w.varint(file_index_[e.child.file]);
      for (const auto& e : node.children) w.varint(e.child.offset);
      for (const auto& e : node.children) w.varint(e.child.length);
      for (const auto& e : node.children) w.varint(e.stats.num_keys);
      for (const auto& e : node.children) w.varint(e.stats.num_tree_bytes);
      for (const auto& e : node.children) w.varint(e.stats.num_indirect_value_bytes);
    }
  }

 private:
  const btree_node& node_;
  std::vector<std::uint32_t> prefix_;
  data_file_table_builder table_;
  std::vector<std::uint64_t> file_index_;  // node.files index → table index
  byte_buffer table_bytes_;
  std::size_t size_ = 0;
};
}  // namespace detail

/// Encodes a node's body (before the envelope). Entries must be sorted by key, strictly increasing;
/// references index `node.files`.
/// \throws cairn::error (errc::invalid_argument) for an empty or oversized node, unsorted or too-long keys.
inline byte_buffer encode_btree_node_body(const btree_node& node) {
  const detail::btree_node_encoding encoding(node);
  byte_buffer body;
  body.reserve(encoding.size());
  detail::body_buffer_writer w{body};
  encoding.write(w);
  return body;
}

/// Encodes a node in its envelope. The body is compressed as it is written, in pieces: a leaf node
/// of 100,000 arrays' metadata is some 60 MB before compression and never has to exist whole.
/// \throws cairn::error (errc::invalid_argument) as `encode_btree_node_body`.
inline byte_buffer encode_btree_node(const btree_node& node, compression c) {
  const detail::btree_node_encoding encoding(node);
  return encode_envelope_pieces(btree_node_magic, encoding.size(), c, [&](auto&& feed) {
    detail::body_piece_writer<std::remove_reference_t<decltype(feed)>> w(feed, std::size_t{1} << 20);
    encoding.write(w);
    w.flush();
  });
}

/// Decodes a node. `transitive_path` is the base path of the data file the node was read from.
/// \throws cairn::error (errc::corrupted) naming the field for: an empty node or more than 2^20
///         entries, a prefix longer than the previous key, keys over 65535 bytes or not strictly
///         increasing, a subtree prefix longer than its key, an unknown value kind, a file index outside
///         the table, inline values beyond the body, or trailing bytes.
inline btree_node decode_btree_node(byte_view data, std::string_view transitive_path, std::string_view object,
                                    std::size_t max_decoded_bytes = default_max_decoded_bytes) {
  shared_bytes body(decode_envelope(data, btree_node_magic, object, max_decoded_bytes));
  byte_reader r(body.view(), std::string(object));
  btree_node node;
  node.height = r.read_u8("height");
  node.files = decode_data_file_table(r, transitive_path);
  const auto n = r.read_varint<std::uint32_t>("num_entries");
  if (n == 0) throw r.corrupted("num_entries", "empty B+tree node");
  if (n > max_node_entries) throw r.corrupted("num_entries", std::to_string(n) + " entries exceed 2^20");
  if (n > r.remaining()) throw r.corrupted("num_entries", std::to_string(n) + " entries cannot fit");
  const bool interior = node.height > 0;

  std::vector<std::uint32_t> prefix(n, 0), suffix(n), scpl(interior ? n : 0);
  for (std::size_t i = 1; i < n; ++i) prefix[i] = r.read_varint<std::uint16_t>("key_prefix_length");
  for (std::size_t i = 0; i < n; ++i) suffix[i] = r.read_varint<std::uint16_t>("key_suffix_length");
  if (interior)
    for (std::size_t i = 0; i < n; ++i) scpl[i] = r.read_varint<std::uint16_t>("subtree_common_prefix_length");
  std::vector<std::string> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    // The field's name is only spelt out for an error: a node holds up to 2^20 keys.
    auto fail = [&](const std::string& why) { return r.corrupted("key[" + std::to_string(i) + "]", why); };
    if (i > 0 && prefix[i] > keys[i - 1].size())
      throw fail("prefix length " + std::to_string(prefix[i]) + " exceeds the previous key's " +
                 std::to_string(keys[i - 1].size()) + " bytes");
    if (static_cast<std::size_t>(prefix[i]) + suffix[i] > max_key_length) throw fail("key length exceeds 65535");
    if (interior && scpl[i] > prefix[i] + suffix[i]) throw fail("subtree common prefix length exceeds the key length");
    const std::string_view tail = as_chars(r.read_bytes(suffix[i], "key_suffix"));
    std::string& key = keys[i];
    key.reserve(prefix[i] + suffix[i]);
    if (i > 0) key.assign(keys[i - 1], 0, prefix[i]);
    key += tail;
    if (i > 0 && !(keys[i - 1] < key)) throw fail("keys are not strictly increasing");
  }
  auto check_file = [&](std::uint64_t f, std::string_view field) {
    if (f >= node.files.size())
      throw r.corrupted(field, "data file id " + std::to_string(f) + " is outside the table of " +
                                   std::to_string(node.files.size()));
  };
  if (!interior) {
    node.leaves.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      node.leaves[i].key = std::move(keys[i]);
      node.leaves[i].ref.length = r.read_varint<std::uint64_t>("value_length");
    }
    for (auto& e : node.leaves) {
      const auto kind = r.read_u8("value_kind");
      if (kind > 1) throw r.corrupted("value_kind", "unknown value kind " + std::to_string(kind));
      e.is_inline = kind == 0;
    }
    for (auto& e : node.leaves)
      if (!e.is_inline) {
        e.ref.file = r.read_varint<std::uint64_t>("value data_file_id");
        check_file(e.ref.file, "value data_file_id");
      }
    for (auto& e : node.leaves)
      if (!e.is_inline) {
        e.ref.offset = r.read_varint<std::uint64_t>("value offset");
        if (e.ref.offset > UINT64_MAX - e.ref.length) throw r.corrupted("value offset", "offset + length overflows");
      }
    for (auto& e : node.leaves)
      if (e.is_inline) {
        if (e.ref.length > r.remaining())
          throw r.corrupted("inline value", "value of " + std::to_string(e.ref.length) + " bytes for key \"" + e.key +
                                                "\" exceeds the node");
        const std::size_t at = r.position();
        r.read_bytes(static_cast<std::size_t>(e.ref.length), "inline value");
        e.value = body.slice(at, static_cast<std::size_t>(e.ref.length));
        e.ref = location{};
      }
  } else {
    node.children.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      node.children[i].key = std::move(keys[i]);
      node.children[i].subtree_common_prefix_length = static_cast<std::uint16_t>(scpl[i]);
    }
    for (auto& e : node.children) {
      e.child.file = r.read_varint<std::uint64_t>("child data_file_id");
      check_file(e.child.file, "child data_file_id");
    }
    for (auto& e : node.children) e.child.offset = r.read_varint<std::uint64_t>("child offset");
    for (auto& e : node.children) e.child.length = r.read_varint<std::uint64_t>("child length");
    for (auto& e : node.children) e.stats.num_keys = r.read_varint<std::uint64_t>("child num_keys");
    for (auto& e : node.children) e.stats.num_tree_bytes = r.read_varint<std::uint64_t>("child num_tree_bytes");
    for (auto& e : node.children)
      e.stats.num_indirect_value_bytes = r.read_varint<std::uint64_t>("child num_indirect_value_bytes");
  }
  r.expect_end("B+tree node body");
  return node;
}

}  // namespace cairn::ocdbt
