// SPDX-License-Identifier: Apache-2.0
/// \file
/// `ocdbt::reader`: opens an OCDBT database over any kvstore (its directory is the store's prefix),
/// finds the latest version (the last inline version of `manifest.ocdbt`, or of the newest numbered
/// manifest), and serves point lookups, byte-range reads and ordered listings by walking the B+tree.
/// Out-of-line values are read wherever the data file table points, including a merged root's
/// `ocdbt.process_<i>/d/…`. It is itself a read-only kvstore driver.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
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
};

/// Reads the latest version of an OCDBT database. Decoded B+tree nodes are kept once visited, so
/// repeated lookups cost a binary search per level and no I/O; the memory this takes is the index
/// (keys, inline values, references), never the out-of-line values.
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

  /// Reads and decodes the root node now instead of at the first lookup, so that a caller can overlap
  /// it with other work (a restore parses `_METADATA` meanwhile).
  /// \throws as `locate`.
  void load_root() { (void)root(); }

  /// Returns where `key`'s value lives, or nullopt if the key is absent.
  std::optional<value_location> locate(std::string_view key) {
    auto found = find(key);
    if (!found.entry) return std::nullopt;
    return to_location(found.node->node, *found.entry, std::string(key));
  }

  /// Calls `f(value_location)` for every key in `range`, in key order.
  void for_each(const kvstore::key_range& range, const std::function<void(value_location&&)>& f) {
    if (auto r = root()) walk(r, "", range, std::nullopt, f);
  }

  /// Reads the bytes of a located value (or a range of them).
  /// \throws cairn::error (errc::not_found) naming the data file if it is missing; (errc::corrupted) if
  ///         the value lies beyond the end of its data file.
  shared_bytes read_value(const value_location& loc, kvstore::byte_range range = {}) {
    auto [offset, length] = kvstore::resolve_range(range, loc.size, "OCDBT database " + name_ + ": key \"" + loc.key + "\"");
    if (loc.is_inline) return loc.inline_value.slice(offset, length);
    return read_file_range(loc.file, loc.offset + offset, length, [&] { return "value of key \"" + loc.key + "\""; });
  }

  // kvstore::driver
  kvstore::read_result read(std::string_view key, kvstore::byte_range range = {}) override {
    auto found = find(key);
    if (!found.entry) return kvstore::read_result::missing_key();
    const leaf_entry& e = *found.entry;
    std::uint64_t offset = 0, length = e.value_size();
    if (!range.is_all())  // the message is only built when a range needs checking
      std::tie(offset, length) =
          kvstore::resolve_range(range, e.value_size(), "OCDBT database " + name_ + ": key \"" + std::string(key) + "\"");
    if (e.is_inline) return {e.value.slice(offset, length)};
    if (kvstore::value_reader* handle = file_handle(*found.node, e.ref.file)) {
      if (length == e.value_size() && length <= manifest_.config.max_inline_value_bytes)
        return {read_small_value(handle, e.ref.offset, length)};
      return {handle->read(e.ref.offset + offset, length)};
    }
    return {read_by_key(found.node->node.files.at(e.ref.file), e.ref.offset + offset, length,
                        [&] { return "value of key \"" + std::string(key) + "\""; })};
  }
  kvstore::read_into_status read_into(std::string_view key, std::uint64_t offset, mutable_byte_view dst,
                                      std::uint64_t value_size) override {
    auto found = find(key);
    if (!found.entry) return kvstore::read_into_status::missing;
    const leaf_entry& e = *found.entry;
    if (e.value_size() != value_size) return kvstore::read_into_status::other_size;
    if (e.is_inline) {
      if (!dst.empty()) std::memcpy(dst.data(), e.value.data() + offset, dst.size());
      return kvstore::read_into_status::done;
    }
    const data_file_id& file = found.node->node.files.at(e.ref.file);
    if (kvstore::value_reader* handle = file_handle(*found.node, e.ref.file)) {
      handle->read_into(e.ref.offset + offset, dst);
    } else {
      const shared_bytes b = read_by_key(file, e.ref.offset + offset, dst.size(), [&] { return "value of key \"" + std::string(key) + "\""; });
      if (!dst.empty()) std::memcpy(dst.data(), b.data(), dst.size());
    }
    return kvstore::read_into_status::done;
  }
  /// Values in the same data file that lie close together are read with one request: a restore of
  /// thousands of small arrays made one read per value, each a few KB of a file the disk reads at
  /// its best in MB. The values handed to `f` share the buffer of their request (at most
  /// `read_many_span_bytes`); inline values are handed out as stored.
  /// \throws as `read`; a request that finds its file shorter than the values in it is read again
  ///         value by value, so that the values before the end arrive and the error is `read`'s.
  void read_many(std::span<const std::string_view> keys, const std::function<void(std::size_t, kvstore::read_result&&)>& f) override {
    struct pending {
      kvstore::value_reader* handle;
      std::uint64_t offset, size;
      std::size_t i;
    };
    std::vector<pending> stored;  // values in data files with open handles
    stored.reserve(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto found = find(keys[i]);
      if (!found.entry) {
        f(i, kvstore::read_result::missing_key());
        continue;
      }
      const leaf_entry& e = *found.entry;
      if (e.is_inline) {
        f(i, {e.value});
        continue;
      }
      kvstore::value_reader* handle = e.value_size() < read_many_span_bytes ? file_handle(*found.node, e.ref.file) : nullptr;
      if (!handle) {
        f(i, read(keys[i]));
        continue;
      }
      stored.push_back({handle, e.ref.offset, e.value_size(), i});
    }
    std::sort(stored.begin(), stored.end(), [](const pending& a, const pending& b) {
      return a.handle != b.handle ? std::less<>{}(a.handle, b.handle) : a.offset < b.offset;
    });
    for (std::size_t first = 0; first < stored.size();) {
      // A request runs while the next value is in the same file, at most `read_many_gap_bytes` past
      // the end so far, and the request stays within `read_many_span_bytes`.
      const std::uint64_t begin = stored[first].offset;
      std::uint64_t end = begin + stored[first].size;
      std::size_t last = first + 1;
      for (; last < stored.size(); ++last) {
        const pending& v = stored[last];
        if (v.handle != stored[first].handle || v.offset > end + read_many_gap_bytes ||
            v.offset + v.size - begin > read_many_span_bytes)
          break;
        end = std::max(end, v.offset + v.size);
      }
      std::optional<shared_bytes> span;
      try {
        span = stored[first].handle->read(begin, end - begin);
      } catch (const error& e) {
        if (e.code() != errc::corrupted) throw;
      }
      for (std::size_t j = first; j < last; ++j) {
        const pending& v = stored[j];
        if (span && span->size() == end - begin) f(v.i, {span->slice(v.offset - begin, v.size)});
        else f(v.i, read(keys[v.i]));  // reports the value that lies beyond its file's end
      }
      first = last;
    }
  }
  /// The largest request `read_many` makes, and the largest gap between values it reads over.
  static constexpr std::uint64_t read_many_span_bytes = std::uint64_t{4} << 20;
  static constexpr std::uint64_t read_many_gap_bytes = std::uint64_t{64} << 10;

  /// A value stored in a data file is read from that file's open handle; inline values (small) and
  /// stores without handles give nullptr (the caller then uses `read`).
  std::shared_ptr<kvstore::value_reader> open_value(std::string_view key) override {
    auto found = find(key);
    if (!found.entry || found.entry->is_inline) return nullptr;
    const leaf_entry& e = *found.entry;
    auto handle = data_file(found.node->node.files.at(e.ref.file));
    if (!handle) return nullptr;
    return std::make_shared<kvstore::value_slice>(std::move(handle), e.ref.offset, e.value_size(),
                                                  "OCDBT database " + name_ + ": key \"" + std::string(key) + "\"");
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
  // A decoded node plus its children, decoded on first visit and kept (the parent owns them), and a
  // search index: the 8 key bytes after the node's common key prefix, big-endian, in one contiguous
  // array. Binary search runs over that array (its ordering agrees with the keys'); only equal probes
  // compare whole keys, so a lookup touches a few cache lines instead of one string per step.
  struct cached_node {
    btree_node node;
    static constexpr std::size_t block = 32;
    std::size_t common = 0;
    std::vector<std::uint64_t> probes;
    std::vector<std::uint64_t> top;  // probes[0], probes[block], probes[2 * block], ...
    mutable std::mutex mutex;
    mutable std::vector<std::shared_ptr<const cached_node>> children;
    std::unique_ptr<std::atomic<kvstore::value_reader*>[]> handles;  // of node.files, set on first use

    static std::uint64_t probe(std::string_view key, std::size_t from) noexcept {
      std::uint64_t p = 0;
      for (std::size_t i = 0; i < 8; ++i)
        p = (p << 8) | (from + i < key.size() ? static_cast<unsigned char>(key[from + i]) : 0u);
      return p;
    }
    template <class Entries>
    void index(const Entries& entries) {
      std::string_view first = entries.front().key, last = entries.back().key;
      common = detail::common_prefix(first, last);  // keys are sorted: first and last bound every key
      probes.reserve(entries.size());
      for (const auto& e : entries) probes.push_back(probe(e.key, common));
      for (std::size_t i = 0; i < probes.size(); i += block) top.push_back(probes[i]);
    }
    /// The first entry whose key is not less than `k` (lower bound), by probe then by whole key.
    template <class Entries>
    std::size_t lower_bound(const Entries& entries, std::string_view k) const {
      const std::string_view prefix = std::string_view(entries.front().key).substr(0, common);
      const int c = k.substr(0, common).compare(prefix);
      if (c < 0) return 0;
      if (c > 0) return entries.size();
      const std::uint64_t p = probe(k, common);
      // Two levels: every block-th probe (small enough to stay in cache), then one block.
      const std::size_t j = static_cast<std::size_t>(std::lower_bound(top.begin(), top.end(), p) - top.begin());
      const std::size_t lo = j == 0 ? 0 : (j - 1) * block, hi = std::min(probes.size(), j * block);
      std::size_t i = static_cast<std::size_t>(std::lower_bound(probes.begin() + static_cast<std::ptrdiff_t>(lo),
                                                                probes.begin() + static_cast<std::ptrdiff_t>(hi), p) -
                                               probes.begin());
      while (i < entries.size() && probes[i] == p && std::string_view(entries[i].key) < k) ++i;
      return i;
    }
  };
  using node_ptr = std::shared_ptr<const cached_node>;
  // Nodes are kept until the reader goes (a parent owns its children, the reader the root), so a
  // lookup holds plain pointers: reading threads shared one count and one lock per lookup before,
  // and passing that cache line between cores cost a restore of 100,000 leaves some 7 % of its time.
  struct found_entry {
    const cached_node* node = nullptr;
    const leaf_entry* entry = nullptr;
  };

  found_entry find(std::string_view key) {
    const cached_node* node = root_node();
    if (!node) return {};
    std::size_t prefix = 0;  // the node's implicit prefix is key[0, prefix)
    for (;;) {
      const std::string_view rel = key.substr(prefix);
      if (node->node.height == 0) {
        const auto& leaves = node->node.leaves;
        const std::size_t i = node->lower_bound(leaves, rel);
        if (i == leaves.size() || leaves[i].key != rel) return {};
        return {node, &leaves[i]};
      }
      const auto& children = node->node.children;
      // The last child whose lower bound is ≤ the key.
      std::size_t i = node->lower_bound(children, rel);
      if (i < children.size() && children[i].key == rel) ++i;
      if (i == 0) return {};
      auto it = children.begin() + static_cast<std::ptrdiff_t>(i - 1);
      // Keys in the child share its subtree prefix; a key without it is not there.
      if (rel.substr(0, it->subtree_common_prefix_length) != std::string_view(it->key).substr(0, it->subtree_common_prefix_length))
        return {};
      prefix += it->subtree_common_prefix_length;
      node = child(*node, static_cast<std::size_t>(it - children.begin())).get();
    }
  }

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

  void walk(const node_ptr& node, const std::string& prefix, const kvstore::key_range& range,
            const std::optional<std::string>& upper, const std::function<void(value_location&&)>& f) {
    if (node->node.height == 0) {
      for (const auto& e : node->node.leaves) {
        std::string key = prefix + e.key;
        if (!range.exclusive_max.empty() && kvstore::key_range::compare_keys(key, range.exclusive_max) >= 0) return;
        if (kvstore::key_range::compare_keys(key, range.inclusive_min) < 0) continue;
        f(to_location(node->node, e, std::move(key)));
      }
      return;
    }
    const auto& children = node->node.children;
    for (std::size_t i = 0; i < children.size(); ++i) {
      const auto& c = children[i];
      const std::string lower = prefix + c.key;
      std::optional<std::string> child_upper =
          i + 1 < children.size() ? std::optional<std::string>(prefix + children[i + 1].key) : upper;
      if (!range.exclusive_max.empty() && kvstore::key_range::compare_keys(lower, range.exclusive_max) >= 0) return;
      if (child_upper && kvstore::key_range::compare_keys(*child_upper, range.inclusive_min) <= 0) continue;
      walk(child(*node, i), prefix + c.key.substr(0, c.subtree_common_prefix_length), range, child_upper, f);
    }
  }

  node_ptr root() {
    const version& v = latest();
    if (v.root.is_missing()) return nullptr;
    std::lock_guard lock(mutex_);
    if (!root_) {
      root_ = load_node(manifest_.files.at(v.root.file), v.root, v.root_height);
      loaded_root_.store(root_.get(), std::memory_order_release);
    }
    return root_;
  }
  // The root without the lock once it is loaded (it is never replaced).
  const cached_node* root_node() {
    if (const cached_node* r = loaded_root_.load(std::memory_order_acquire)) return r;
    return root().get();
  }

  node_ptr child(const cached_node& parent, std::size_t i) {
    std::lock_guard lock(parent.mutex);
    if (parent.children.empty()) parent.children.resize(parent.node.children.size());
    if (!parent.children[i]) {
      const auto& c = parent.node.children[i];
      parent.children[i] = load_node(parent.node.files.at(c.child.file), c.child, parent.node.height - 1);
    }
    return parent.children[i];
  }

  node_ptr load_node(const data_file_id& file, const location& loc, int expected_height) {
    const std::string object = "OCDBT database " + name_ + ": B+tree node \"" + file.path() + "\" @" +
                               std::to_string(loc.offset) + "+" + std::to_string(loc.length);
    auto bytes = read_file_range(file, loc.offset, loc.length, [] { return std::string("B+tree node"); });
    auto node = std::make_shared<cached_node>();
    node->node = decode_btree_node(bytes.view(), file.base_path, object, options_.max_decoded_bytes);
    node->handles = std::make_unique<std::atomic<kvstore::value_reader*>[]>(node->node.files.size());
    if (node->node.height == 0) node->index(node->node.leaves);
    else node->index(node->node.children);
    if (node->node.height != expected_height)
      throw error(errc::corrupted, object + ": height " + std::to_string(node->node.height) + ", expected " +
                                       std::to_string(expected_height));
    return node;
  }

  // `what()` names the value in the error, built only when the data file is missing.
  template <class What>
  shared_bytes read_file_range(const data_file_id& file, std::uint64_t offset, std::uint64_t length, What&& what) {
    if (auto handle = data_file(file)) return handle->read(offset, length);
    return read_by_key(file, offset, length, std::forward<What>(what));
  }
  // Reads a data file's range through the store, for files without a handle.
  template <class What>
  shared_bytes read_by_key(const data_file_id& file, std::uint64_t offset, std::uint64_t length, What&& what) {
    auto r = kvstore::read(base_, file.path(), {offset, length});
    if (r.missing())
      throw error(errc::not_found, "OCDBT database " + name_ + ": " + what() + ": data file \"" +
                                       file.path() + "\" is missing");
    return *r.value;
  }

  // A value small enough to be inline but kept in a data file is mostly one that many keys share
  // (cairn stores a model's repeated zarr metadata once and refers to it from every array): each is
  // read from its file once, not once per key.
  shared_bytes read_small_value(kvstore::value_reader* handle, std::uint64_t offset, std::uint64_t length) {
    const small_value_key k{handle, offset, length};
    {
      std::lock_guard lock(small_values_mutex_);
      if (auto it = small_values_.find(k); it != small_values_.end()) return it->second;
    }
    shared_bytes b = handle->read(offset, length);
    std::lock_guard lock(small_values_mutex_);
    if (small_values_.size() >= max_small_values) small_values_.clear();  // bounds the memory held
    small_values_.emplace(k, b);
    return b;
  }
  static constexpr std::size_t max_small_values = 1024;
  using small_value_key = std::tuple<const kvstore::value_reader*, std::uint64_t, std::uint64_t>;

  // The handle of a node's data file `i`, found through the reader's map once and then kept by the
  // node: a restore of many small leaves took the map's lock and a shared count for every value.
  // Handles stay in `open_files_` as long as the reader, so a plain pointer to one stays valid.
  kvstore::value_reader* file_handle(const cached_node& n, std::size_t i) {
    if (i < n.node.files.size())
      if (kvstore::value_reader* h = n.handles[i].load(std::memory_order_acquire)) return h;
    const auto handle = data_file(n.node.files.at(i));
    if (handle) n.handles[i].store(handle.get(), std::memory_order_release);
    return handle.get();
  }

  // Data files are written once and never change: each is opened once where the store can (a file
  // store then reads a value with one pread instead of open, stat, read and close). A database of
  // very many data files keeps the first `max_open_files` open and reads the others by key.
  static constexpr std::size_t max_open_files = 64;
  std::shared_ptr<kvstore::value_reader> data_file(const data_file_id& file) {
    std::lock_guard lock(files_mutex_);
    if (auto it = open_files_.find(file); it != open_files_.end()) return it->second;
    if (open_files_.size() >= max_open_files) return nullptr;
    // Null (a store without handles, or a missing file, which the caller's read then reports) is kept too.
    auto handle = kvstore::open_value(base_, file.path());
    open_files_.emplace(file, handle);
    return handle;
  }

  kvstore::store base_;
  std::string name_;
  reader_options options_;
  ocdbt::manifest manifest_;
  std::mutex mutex_;
  node_ptr root_;
  std::atomic<const cached_node*> loaded_root_{nullptr};  // root_.get() once loaded
  std::mutex files_mutex_;
  std::map<data_file_id, std::shared_ptr<kvstore::value_reader>> open_files_;
  std::mutex small_values_mutex_;
  std::map<small_value_key, shared_bytes> small_values_;
};

/// Opens the OCDBT database under `base` as a read-only kvstore.
inline kvstore::store open_reader(kvstore::store base, std::string name = {}) {
  return kvstore::store(std::make_shared<reader>(std::move(base), std::move(name)));
}

}  // namespace cairn::ocdbt
