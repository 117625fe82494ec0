// SPDX-License-Identifier: Apache-2.0
/// \file
/// `ocdbt::reader`: opens an OCDBT database over any kvstore (its directory is the store's prefix),
/// finds the latest version (the last inline version of `manifest.ocdbt`, or of the newest numbered
/// manifest), and serves point lookups, byte-range reads and ordered listings by walking the B+tree.
/// Out-of-line values are read wherever the data file table points, including a merged root's
/// `ocdbt.process_<i>/d/…`. It is itself a read-only kvstore driver.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/kvstore/driver.hpp>
#include <cairn/kvstore/store.hpp>
#include <cairn/ocdbt/format/btree.hpp>
#include <cairn/ocdbt/format/manifest.hpp>

namespace cairn::ocdbt {

/// Where a value lives, as `cairn kv ls` prints it.
struct value_location {
  std::string key;
  std::uint64_t size = 0;
  bool is_inline = true;
  shared_bytes inline_value;  ///< when inline (shares the decoded node's memory)
  data_file_id file;          ///< when out-of-line
  std::uint64_t offset = 0;   ///< when out-of-line
};

/// Options for opening a database.
struct reader_options {
  /// Bound on any decoded manifest or node body (hostile zstd frames).
  std::size_t max_decoded_bytes = default_max_decoded_bytes;
  /// Decoded B+tree nodes kept for repeated lookups.
  std::size_t node_cache_entries = 256;
};

/// Reads the latest version of an OCDBT database.
/// \par Thread safety
/// All members may be called concurrently; the node cache is synchronised.
class reader final : public kvstore::driver {
 public:
  /// Opens the database whose files are under `base` (`base` + "manifest.ocdbt", `base` + "d/…").
  /// `name` is used in error messages (e.g. `item "state"`).
  /// \throws cairn::error (errc::not_found) naming `manifest.ocdbt` if it is missing;
  ///         (errc::corrupted) if the manifest does not decode.
  explicit reader(kvstore::store base, std::string name = {}, reader_options options = {})
      : base_(std::move(base)), name_(name.empty() ? base_.describe() : std::move(name)), options_(options) {
    auto bytes = kvstore::read(base_, "manifest.ocdbt");
    if (bytes.missing())
      throw error(errc::not_found, "OCDBT database " + name_ + ": \"manifest.ocdbt\" is missing");
    manifest_ = decode_manifest(bytes->view(), "OCDBT database " + name_ + ": \"manifest.ocdbt\"",
                                options_.max_decoded_bytes);
    if (manifest_.config.kind == manifest_kind::numbered) {
      std::string newest;
      for (const auto& e : kvstore::list(base_, kvstore::key_range::prefix("manifest.")))
        if (e.key.size() == 25 && e.key != "manifest.ocdbt" && e.key > newest) newest = e.key;
      if (newest.empty())
        throw error(errc::not_found, "OCDBT database " + name_ + ": numbered manifest kind, but no manifest.<generation> file");
      auto numbered = kvstore::read_required(base_, newest);
      const auto cfg = manifest_.config;
      manifest_ = decode_manifest(numbered.view(), "OCDBT database " + name_ + ": \"" + newest + "\"",
                                  options_.max_decoded_bytes);
      manifest_.config.kind = cfg.kind;
    }
  }

  const ocdbt::manifest& manifest() const noexcept { return manifest_; }
  const ocdbt::config& config() const noexcept { return manifest_.config; }
  /// The latest version (generation, root, statistics).
  const version& latest() const noexcept { return *manifest_.latest(); }
  const std::string& name() const noexcept { return name_; }
  const kvstore::store& base() const noexcept { return base_; }

  /// Returns where `key`'s value lives, or nullopt if the key is absent.
  std::optional<value_location> locate(std::string_view key) {
    const version& v = latest();
    if (v.root.is_missing()) return std::nullopt;
    data_file_id file = manifest_.files.at(v.root.file);
    location loc = v.root;
    std::string prefix;
    for (int height = v.root_height;; --height) {
      auto node = load_node(file, loc, height);
      if (key.substr(0, prefix.size()) != prefix) return std::nullopt;
      const std::string_view rel = key.substr(prefix.size());
      if (node->height == 0) {
        auto it = std::lower_bound(node->leaves.begin(), node->leaves.end(), rel,
                                   [](const leaf_entry& e, std::string_view k) { return std::string_view(e.key) < k; });
        if (it == node->leaves.end() || it->key != rel) return std::nullopt;
        return to_location(*node, *it, std::string(key));
      }
      // The last child whose lower bound is ≤ the key.
      auto it = std::upper_bound(node->children.begin(), node->children.end(), rel,
                                 [](std::string_view k, const interior_entry& e) { return k < std::string_view(e.key); });
      if (it == node->children.begin()) return std::nullopt;
      --it;
      prefix += it->key.substr(0, it->subtree_common_prefix_length);
      file = node->files.at(it->child.file);
      loc = it->child;
    }
  }

  /// Calls `f(value_location)` for every key in `range`, in key order.
  void for_each(const kvstore::key_range& range, const std::function<void(value_location&&)>& f) {
    const version& v = latest();
    if (v.root.is_missing()) return;
    walk(manifest_.files.at(v.root.file), v.root, v.root_height, "", range, std::nullopt, f);
  }

  /// Reads the bytes of a located value (or a range of them).
  /// \throws cairn::error (errc::not_found) naming the data file if it is missing; (errc::corrupted) if
  ///         the value lies beyond the end of its data file.
  shared_bytes read_value(const value_location& loc, kvstore::byte_range range = {}) {
    auto [offset, length] = kvstore::resolve_range(range, loc.size, "OCDBT database " + name_ + ": key \"" + loc.key + "\"");
    if (loc.is_inline) return loc.inline_value.slice(offset, length);
    return read_file_range(loc.file, loc.offset + offset, length, "value of key \"" + loc.key + "\"");
  }

  // kvstore::driver
  kvstore::read_result read(std::string_view key, kvstore::byte_range range = {}) override {
    auto loc = locate(key);
    if (!loc) return kvstore::read_result::missing_key();
    return {read_value(*loc, range)};
  }
  void write(std::string_view key, byte_view) override {
    throw error(errc::unsupported, "OCDBT database " + name_ + ": write \"" + std::string(key) +
                                       "\": a reader is read-only; use ocdbt::writer");
  }
  bool erase(std::string_view key) override {
    throw error(errc::unsupported, "OCDBT database " + name_ + ": erase \"" + std::string(key) + "\": read-only");
  }
  std::vector<kvstore::list_entry> list(const kvstore::key_range& range = {}) override {
    std::vector<kvstore::list_entry> out;
    for_each(range, [&](value_location&& l) { out.push_back({std::move(l.key), l.size}); });
    return out;
  }
  std::string describe() const override { return "OCDBT database " + name_; }

 private:
  using node_ptr = std::shared_ptr<const btree_node>;

  static value_location to_location(const btree_node& node, const leaf_entry& e, std::string full_key) {
    value_location l;
    l.key = std::move(full_key);
    l.size = e.value_size();
    l.is_inline = e.is_inline;
    if (e.is_inline) {
      l.inline_value = e.value;
    } else {
      l.file = node.files.at(e.ref.file);
      l.offset = e.ref.offset;
    }
    return l;
  }

  void walk(const data_file_id& file, const location& loc, int height, const std::string& prefix,
            const kvstore::key_range& range, const std::optional<std::string>& upper,
            const std::function<void(value_location&&)>& f) {
    auto node = load_node(file, loc, height);
    if (node->height == 0) {
      for (const auto& e : node->leaves) {
        std::string key = prefix + e.key;
        if (!range.exclusive_max.empty() && kvstore::key_range::compare_keys(key, range.exclusive_max) >= 0) return;
        if (kvstore::key_range::compare_keys(key, range.inclusive_min) < 0) continue;
        f(to_location(*node, e, std::move(key)));
      }
      return;
    }
    for (std::size_t i = 0; i < node->children.size(); ++i) {
      const auto& c = node->children[i];
      const std::string lower = prefix + c.key;
      std::optional<std::string> child_upper = i + 1 < node->children.size()
                                                   ? std::optional<std::string>(prefix + node->children[i + 1].key)
                                                   : upper;
      if (!range.exclusive_max.empty() && kvstore::key_range::compare_keys(lower, range.exclusive_max) >= 0) return;
      if (child_upper && kvstore::key_range::compare_keys(*child_upper, range.inclusive_min) <= 0) continue;
      walk(node->files.at(c.child.file), c.child, height - 1, prefix + c.key.substr(0, c.subtree_common_prefix_length),
           range, child_upper, f);
    }
  }

  node_ptr load_node(const data_file_id& file, const location& loc, int expected_height) {
    const std::string cache_key = file.path() + "@" + std::to_string(loc.offset);
    {
      std::lock_guard lock(mutex_);
      if (auto it = cache_.find(cache_key); it != cache_.end()) return it->second;
    }
    const std::string object = "OCDBT database " + name_ + ": B+tree node \"" + file.path() + "\" @" +
                               std::to_string(loc.offset) + "+" + std::to_string(loc.length);
    auto bytes = read_file_range(file, loc.offset, loc.length, "B+tree node");
    auto node = std::make_shared<btree_node>(decode_btree_node(bytes.view(), file.base_path, object, options_.max_decoded_bytes));
    if (node->height != expected_height)
      throw error(errc::corrupted, object + ": height " + std::to_string(node->height) + ", expected " +
                                       std::to_string(expected_height));
    std::lock_guard lock(mutex_);
    if (cache_.size() >= options_.node_cache_entries) cache_.clear();
    cache_.emplace(cache_key, node);
    return node;
  }

  shared_bytes read_file_range(const data_file_id& file, std::uint64_t offset, std::uint64_t length, std::string_view what) {
    auto r = kvstore::read(base_, file.path(), {offset, length});
    if (r.missing())
      throw error(errc::not_found, "OCDBT database " + name_ + ": " + std::string(what) + ": data file \"" +
                                       file.path() + "\" is missing");
    return *r.value;
  }

  kvstore::store base_;
  std::string name_;
  reader_options options_;
  ocdbt::manifest manifest_;
  std::mutex mutex_;
  std::map<std::string, node_ptr> cache_;
};

/// Opens the OCDBT database under `base` as a read-only kvstore.
inline kvstore::store open_reader(kvstore::store base, std::string name = {}) {
  return kvstore::store(std::make_shared<reader>(std::move(base), std::move(name)));
}

}  // namespace cairn::ocdbt
