// SPDX-License-Identifier: Apache-2.0
/// \file
/// Data file ids and the prefix-compressed data file table of manifests and nodes (orbax-format.md
/// §3.4). A file's path relative to the database directory is `base_path + relative_path`; decoded
/// base paths include the transitive path of the object that holds the table. The encoder sorts and
/// compresses exactly as TensorStore does, so re-encoding a decoded table reproduces its bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/core/byte_reader.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/varint.hpp>

namespace cairn::ocdbt {

/// The longest path (base + relative, including the transitive path) a table may hold.
inline constexpr std::size_t max_path_length = 65535;

/// One data file: where an out-of-line value, B+tree node or version node lives.
struct data_file_id {
  std::string base_path;      ///< e.g. "" or "ocdbt.process_0/"
  std::string relative_path;  ///< e.g. "d/c73ccf67375b3eac3bdb9d79349b2a47"

  /// The path relative to the database directory.
  std::string path() const { return base_path + relative_path; }
  friend bool operator==(const data_file_id&, const data_file_id&) = default;
  friend auto operator<=>(const data_file_id&, const data_file_id&) = default;
};

namespace detail {
inline std::size_t common_prefix(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = std::min(a.size(), b.size());
  std::size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}
}  // namespace detail

/// Collects the data files an object refers to and encodes them as its table.
/// \par Thread safety
/// Not synchronised.
class data_file_table_builder {
 public:
  /// Adds `id` (duplicates are merged).
  void add(const data_file_id& id) { index_.emplace(id, 0); }
  bool empty() const noexcept { return index_.empty(); }
  std::size_t size() const noexcept { return index_.size(); }

  /// Appends the table to `out` and assigns each file its index.
  /// \throws cairn::error (errc::invalid_argument) if a path is longer than max_path_length.
  void finalize(byte_buffer& out) {
    append_varint(out, index_.size());
    if (index_.empty()) return;
    std::vector<const data_file_id*> files;
    for (auto& [id, idx] : index_) files.push_back(&id);  // std::map order == (base, relative) bytewise
    std::vector<std::size_t> prefix(files.size(), 0);
    for (std::size_t i = 0; i < files.size(); ++i) {
      if (files[i]->path().size() > max_path_length)
        throw error(errc::invalid_argument, "data file path \"" + files[i]->path() + "\" is longer than 65535 bytes");
      if (i == 0) continue;
      const auto& prev = *files[i - 1];
      const auto& cur = *files[i];
      std::size_t p = detail::common_prefix(prev.base_path, cur.base_path);
      // Only an identical base path lets the shared prefix run on into the relative path.
      if (p == cur.base_path.size() && p == prev.base_path.size())
        p += detail::common_prefix(prev.relative_path, cur.relative_path);
      prefix[i] = p;
      append_varint(out, p);
    }
    for (std::size_t i = 0; i < files.size(); ++i) append_varint(out, files[i]->path().size() - prefix[i]);
    for (std::size_t i = 0; i < files.size(); ++i) append_varint(out, files[i]->base_path.size());
    for (std::size_t i = 0; i < files.size(); ++i) out.append(as_bytes(std::string_view(files[i]->path()).substr(prefix[i])));
    std::size_t i = 0;
    for (auto& [id, idx] : index_) idx = i++;
  }
  /// The index of `id` in the finalized table.
  /// \pre finalize() was called and `id` was added.
  std::size_t index_of(const data_file_id& id) const { return index_.at(id); }

 private:
  std::map<data_file_id, std::size_t> index_;
};

/// Decodes a data file table; every decoded base path is prefixed with `transitive_path`.
/// \throws cairn::error (errc::corrupted) naming the field if a length is inconsistent or the input ends.
inline std::vector<data_file_id> decode_data_file_table(byte_reader& r, std::string_view transitive_path) {
  const auto n = r.read_varint<std::uint64_t>("data_file_table.num_files");
  // Each file costs at least two varint bytes, so a count beyond the input is corruption, not an allocation.
  if (n > r.remaining()) throw r.corrupted("data_file_table.num_files", std::to_string(n) + " files cannot fit");
  if (transitive_path.size() > max_path_length) throw r.corrupted("data_file_table", "transitive path too long");
  const std::size_t max_len = max_path_length - transitive_path.size();
  std::vector<std::size_t> prefix(n, 0), suffix(n), base(n);
  for (std::size_t i = 1; i < n; ++i) prefix[i] = r.read_varint<std::uint16_t>("data_file_table.path_prefix_length");
  for (std::size_t i = 0; i < n; ++i) suffix[i] = r.read_varint<std::uint16_t>("data_file_table.path_suffix_length");
  for (std::size_t i = 0; i < n; ++i) base[i] = r.read_varint<std::uint16_t>("data_file_table.base_path_length");
  std::vector<data_file_id> out;
  out.reserve(n);
  std::string prev;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t len = prefix[i] + suffix[i];
    const std::string field = "data_file_table[" + std::to_string(i) + "]";
    if (len > max_len) throw r.corrupted(field, "path length " + std::to_string(len) + " exceeds " + std::to_string(max_len));
    if (prefix[i] > prev.size()) throw r.corrupted(field, "prefix length exceeds the previous path");
    if (base[i] > len) throw r.corrupted(field, "base path length exceeds the path length");
    if (i > 0 && prefix[i] > std::min(base[i - 1], base[i]) && base[i] != base[i - 1])
      throw r.corrupted(field, "prefix extends past differing base paths");
    std::string path = prev.substr(0, prefix[i]);
    path += as_chars(r.read_bytes(suffix[i], "data_file_table.path_suffix"));
    out.push_back({std::string(transitive_path) + path.substr(0, base[i]), path.substr(base[i])});
    prev = std::move(path);
  }
  return out;
}

}  // namespace cairn::ocdbt
