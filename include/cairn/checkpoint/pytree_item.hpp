// SPDX-License-Identifier: Apache-2.0
/// \file
/// A PyTree item directory (orbax-format.md §1.4): `_METADATA`, the OCDBT database of zarr arrays,
/// `_sharding`, `_strings.json`, `array_metadatas/`. Reads any item Orbax writes (tree from
/// `_METADATA`, or a flat map of the arrays found in the database when `_METADATA` is missing; OCDBT
/// or the legacy one-directory-per-array layout) and writes items Orbax restores: zarr v2 or v3,
/// every chunk stored, exactly Orbax's metadata. Each leaf is streamed: one array in memory at a time.
#pragma once

#include <algorithm>
#include <filesystem>
#include <deque>
#include <map>
#include <tuple>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <cairn/checkpoint/item_files.hpp>
#include <cairn/checkpoint/steps.hpp>
#include <cairn/checkpoint/tree_metadata.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/key_path.hpp>
#include <cairn/core/parallel.hpp>
#include <cairn/kvstore/file.hpp>
#include <cairn/sharding/chunk_grid.hpp>
#include <cairn/sharding/reshard_plan.hpp>
#include <cairn/sharding/sharded_array.hpp>
#include <cairn/ocdbt/reader.hpp>
#include <cairn/ocdbt/writer.hpp>
#include <cairn/tree/dynamic_tree.hpp>
#include <cairn/zarr/array.hpp>
#include <cairn/zarr/metadata.hpp>

namespace cairn {

/// How a PyTree item is written.
struct pytree_save_options {
  int zarr_format = 3;              ///< 3: what Keras and Orbax V1 write; 2: Orbax V0's default
  bool compress = true;             ///< zstd (level 1 for zarr v2, 3 for v3, as TensorStore writes)
  /// Record array leaves as `jax.Array` (restored by JAX as arrays, with `_sharding`) or `np.ndarray`.
  bool arrays_as_jax = true;
  kvstore::fsync_policy fsync = kvstore::fsync_policy::file;
  /// zstd frames carry content checksums (the zarr metadata stays exactly Orbax's; every zstd decoder
  /// verifies them), so that damage to any compressed chunk is detected.
  bool checksums = true;
  /// Compression only where it pays (performance.md G8): a chunk that zstd would shrink by less than
  /// this ratio (judged by a sample from 32 KiB, by an estimate below) is written as a zstd frame of
  /// raw blocks. The metadata still says zstd and every reader decodes it, at copy speed: a save or
  /// restore of weights that compress by 1.05–1.1× (float32 and most trained tensors) is bound by the
  /// disk instead of by the cores, and loses under 10 % of the bytes it could have saved. 0 compresses
  /// every chunk, as TensorStore does.
  double min_compression_ratio = 1.1;
  /// Arrays above this many bytes are split into several chunks (Orbax: the 2 GiB data file size).
  std::uint64_t max_chunk_bytes = std::uint64_t{2} << 30;
  /// A sharded array's replica-0 shards must cover it (false only where other processes write the rest).
  bool require_complete_shards = true;
};

/// What `describe_item` reports per leaf, without reading array data.
struct leaf_info {
  std::string name;        ///< Orbax parameter name
  key_path path;
  std::string value_type;  ///< `jax.Array`, `np.ndarray`, `scalar`, `string`, or an empty-node type
  std::optional<dtype> type;
  std::vector<index_t> shape;
  std::vector<index_t> chunk_shape;
  std::optional<json::value> sharding;  ///< from `_sharding`
  std::uint64_t stored_bytes = 0;       ///< bytes of its values in the database (compressed)
};

namespace detail {

inline std::string read_text_file(const std::filesystem::path& p, std::string_view what) {
  auto r = kvstore::file_driver(p.parent_path(), kvstore::fsync_policy::none).read(p.filename().string());
  if (r.missing()) throw error(errc::not_found, std::string(what) + ": \"" + p.string() + "\" is missing");
  return std::string(as_chars(r->view()));
}

inline std::string array_key(const std::string& param, std::string_view zarr_key) {
  return param.empty() ? std::string(zarr_key) : param + "/" + std::string(zarr_key);
}

/// Chunk shape for an array written whole: the array itself unless it exceeds the byte budget; then
/// dimensions shrink (largest first) to their next smaller divisor until a chunk fits (Orbax §2.4).
inline std::vector<index_t> choose_chunk_shape(const shape& s, std::size_t itemsize, std::uint64_t budget) {
  std::vector<index_t> c(s.begin(), s.end());
  for (auto& d : c)
    if (d == 0) d = 1;
  auto bytes = [&] {
    std::uint64_t n = itemsize;
    for (auto d : c) n *= static_cast<std::uint64_t>(d);
    return n;
  };
  while (bytes() > budget) {
    std::size_t i = static_cast<std::size_t>(std::max_element(c.begin(), c.end()) - c.begin());
    if (c[i] == 1) break;
    index_t next = c[i] - 1;
    while (next > 1 && s[i] % next != 0) --next;
    c[i] = next;
  }
  return c;
}

}  // namespace detail

/// An open PyTree item: its metadata files and (when it has arrays) its OCDBT database.
/// \par Thread safety
/// Reads may run concurrently.
class pytree_item {
 public:
  /// Opens the item directory `dir`; `name` (e.g. `step 3, item "state"`) prefixes error messages.
  /// \throws cairn::error (errc::not_found) naming the file if `_METADATA` lists arrays but the
  ///         database (`manifest.ocdbt`) or its data files are missing; (errc::corrupted) for bad files.
  explicit pytree_item(std::filesystem::path dir, std::string name = {})
      : dir_(std::move(dir)), name_(name.empty() ? "item \"" + dir_.string() + "\"" : std::move(name)) {
    base_ = kvstore::open_file(dir_, kvstore::fsync_policy::none);
    const bool has_manifest = std::filesystem::exists(dir_ / "manifest.ocdbt");
    // The database's root node and `_METADATA` each take long in an item of many leaves: a large
    // `_METADATA` is parsed while another thread opens the database. That reader is kept only if the
    // item needs it; if opening it failed, it is opened again below to report why (or not at all).
    std::shared_ptr<ocdbt::reader> early;
    auto open_early = [&] {
      try {
        early = std::make_shared<ocdbt::reader>(base_, name_);
        early->load_root();
      } catch (const std::exception&) {
        early.reset();
      }
    };
    // One look at `_METADATA` gives its size and whether it is there; anything else that stops the
    // size (a directory, no permission) is left to the read to report.
    std::error_code ec;
    const auto metadata_size = std::filesystem::file_size(dir_ / "_METADATA", ec);
    const bool has_metadata = ec != std::errc::no_such_file_or_directory;
    run_side_by_side(has_manifest && !ec && metadata_size >= parallel_metadata_bytes, open_early, [&] {
      if (has_metadata) metadata_ = read_tree_metadata_file(dir_ / "_METADATA", name_ + ": _METADATA");
    });
    if (std::filesystem::exists(dir_ / "_strings.json"))
      strings_ = parse_strings_file(detail::read_text_file(dir_ / "_strings.json", name_), name_ + ": _strings.json");
    use_ocdbt_ = metadata_ && metadata_->use_ocdbt ? *metadata_->use_ocdbt : has_manifest;
    if (use_ocdbt_ && needs_arrays()) {
      if (!has_manifest)
        throw error(errc::not_found, name_ + ": \"manifest.ocdbt\" is missing, but the item holds arrays");
      if (!std::filesystem::is_directory(dir_ / "d"))
        throw error(errc::not_found, name_ + ": the data directory \"d/\" is missing");
      db_ = early ? std::move(early) : std::make_shared<ocdbt::reader>(base_, name_);
    }
  }

  /// Items whose `_METADATA` has at least this many bytes (about 1,000 leaves) parse it while their
  /// database is opened on another thread.
  static constexpr std::uintmax_t parallel_metadata_bytes = std::uintmax_t{256} << 10;

  const std::filesystem::path& dir() const noexcept { return dir_; }
  const std::optional<tree_metadata>& metadata() const noexcept { return metadata_; }
  /// The saved shardings by parameter name, from `_sharding` (read and parsed on first use: a restore
  /// onto a given target never needs them, and a model's file is tens of MB). A damaged or unreadable
  /// `_sharding` reads as empty, and so does one gone since the item was opened: it only supplies
  /// default placements and must not block restoring data.
  const std::map<std::string, json::value>& shardings() const {
    std::call_once(lazy_->once, [&] {
      try {
        const auto path = dir_ / "_sharding";
        if (std::filesystem::exists(path)) {
          const json::padded_text text = json::read_padded_file(path);
          lazy_->shardings = parse_sharding_file(text.view(), name_ + ": _sharding").shardings;
        }
      } catch (const error& e) {
        lazy_->sharding_error = e.what();
      }
    });
    return lazy_->shardings;
  }
  /// Why `_sharding` could not be read (empty when it was read or is absent).
  const std::string& sharding_error() const {
    (void)shardings();
    return lazy_->sharding_error;
  }
  const std::map<std::string, std::string>& strings() const noexcept { return strings_; }
  const std::string& name() const noexcept { return name_; }

  /// The store holding the arrays: the OCDBT database, or the item directory (legacy layout).
  kvstore::store array_store() const { return db_ ? kvstore::store(db_) : base_; }

  /// Opens the zarr array of parameter `param`.
  zarr::array open_array(const std::string& param) const {
    const bool v3_first = metadata_ && metadata_->use_zarr3;
    kvstore::store base = array_store();
    std::string prefix, name;  // one allocation each: a restore opens an array per leaf
    prefix.reserve(base.prefix().size() + param.size() + 1);
    prefix.append(base.prefix()).append(param).append(param.empty() ? "" : "/");
    name.reserve(name_.size() + param.size() + 10);
    name.append(name_).append(", array \"").append(param).append("\"");
    return zarr::array::open(kvstore::store(base.get_driver(), std::move(prefix)), std::move(name), &lazy_->zarr_metadata,
                             v3_first);
  }

  /// The parameter names of the arrays in the database (for items without `_METADATA`).
  std::vector<std::string> array_names() const {
    std::vector<std::string> out;
    if (!db_) return out;
    for (const auto& e : db_->list()) {
      for (std::string_view suffix : {std::string_view("/.zarray"), std::string_view("/zarr.json")})
        if (e.key.size() >= suffix.size() && e.key.compare(e.key.size() - suffix.size(), suffix.size(), suffix) == 0)
          out.push_back(e.key.substr(0, e.key.size() - suffix.size()));
      if (e.key == ".zarray" || e.key == "zarr.json") out.push_back("");
    }
    return out;
  }

  /// Describes every leaf without reading array data.
  std::vector<leaf_info> describe() const {
    std::vector<leaf_info> out;
    auto array_info = [&](leaf_info& li) {
      auto a = open_array(li.name);
      li.type = a.metadata().type;
      li.shape = a.metadata().shape.vector();
      li.chunk_shape = a.metadata().chunk_shape;
      if (db_)
        for (const auto& e : db_->list(kvstore::key_range::prefix(li.name.empty() ? "" : li.name + "/"))) li.stored_bytes += e.size;
      if (auto it = shardings().find(li.name); it != shardings().end()) li.sharding = it->second;
    };
    if (metadata_) {
      for (const auto& e : metadata_->entries) {
        leaf_info li;
        li.name = param_name(e.path);
        li.path = e.path;
        li.value_type = e.value_type;
        if (e.value_type == value_type::jax_array || e.value_type == value_type::np_ndarray ||
            e.value_type == value_type::scalar)
          array_info(li);
        out.push_back(std::move(li));
      }
    } else {
      for (const auto& name : array_names()) {
        leaf_info li;
        li.name = name;
        li.path = key_path{key(name)};
        li.value_type = std::string(value_type::np_ndarray);
        array_info(li);
        out.push_back(std::move(li));
      }
    }
    return out;
  }

  /// Reads the whole item as a dynamic tree. Without `_METADATA`, a flat map param name → array.
  /// \throws cairn::error naming the leaf, array and key for missing or damaged data.
  dynamic_tree read() const {
    dynamic_tree root;
    const bool strict = !metadata_ || metadata_->store_array_data_equal_to_fill_value;
    if (!metadata_) {
      for (const auto& name : array_names()) root[name] = read_array(name, strict);
      return root;
    }
    for (const auto& e : metadata_->entries) {
      const std::string param = param_name(e.path);
      dynamic_tree leaf;
      if (e.value_type == value_type::jax_array || e.value_type == value_type::np_ndarray) {
        leaf = read_array(param, strict);
      } else if (e.value_type == value_type::scalar) {
        host_array a = read_array(param, strict);
        if (a.shape().rank() != 0)
          throw error(errc::shape_mismatch, name_ + ", leaf \"" + param + "\": scalar stored with shape " + to_string(a.shape()));
        leaf = scalar::from_bytes(a.type(), a.bytes());
      } else if (e.value_type == value_type::string) {
        auto it = strings_.find(param);
        if (it == strings_.end())
          throw error(errc::not_found, name_ + ", leaf \"" + param + "\": no entry in _strings.json");
        leaf = it->second;
      } else if (e.value_type == value_type::dict) {
        leaf = dynamic_tree(dynamic_tree::map_type{});
      } else if (e.value_type == value_type::list || e.value_type == value_type::tuple) {
        leaf = dynamic_tree(dynamic_tree::list_type{});
      } else {  // None, NamedTuple without rich types, placeholders, unknown handlers: restored as None
        leaf = empty_node::none;
      }
      insert(root, e.path, std::move(leaf));
    }
    return root;
  }

  /// Reads one array parameter whole.
  host_array read_array(const std::string& param, bool missing_chunk_is_error = true) const {
    return read_array(open_array(param), missing_chunk_is_error);
  }
  /// Reads an array opened with `open_array` whole.
  static host_array read_array(const zarr::array& a, bool missing_chunk_is_error = true) {
    // The read writes every element (fill values included), so no zero-filling first.
    host_array out = host_array::uninitialized(a.metadata().type, a.metadata().shape);
    read_array_into(a, out.mutable_view(), missing_chunk_is_error);
    return out;
  }
  /// Reads an array opened with `open_array` whole into `out`, a host view of its dtype and shape.
  /// \throws as `zarr::array::read`; `out` is then partly written.
  static void read_array_into(const zarr::array& a, const mutable_array_view& out, bool missing_chunk_is_error = true) {
    zarr::read_options o;
    o.missing_chunk_is_error = missing_chunk_is_error;
    a.read(box(a.metadata().shape), out, o);
  }

  /// Reads an array onto `target` for `devices` (empty: every device of its mesh): each device gets
  /// exactly its box; only the chunks intersecting those boxes are read, each once, and one chunk buffer
  /// is live at a time (none when a chunk is exactly a device's box: it is decoded in place).
  /// \throws cairn::error (errc::invalid_sharding) if `target` does not fit the array; errors naming the
  ///         chunk as `read_array`.
  static sharded_array read_sharded(const zarr::array& a, const named_sharding& target, const std::vector<int>& devices = {},
                                    bool missing_chunk_is_error = true) {
    const auto& md = a.metadata();
    const reshard_plan plan = plan_reshard(chunk_grid(md.shape, md.chunk_shape), target, md.shape, md.type, devices);
    return read_planned(a, plan, missing_chunk_is_error);
  }
  /// Carries out `plan` (made for `a`'s chunk grid): see `read_sharded`.
  static sharded_array read_planned(const zarr::array& a, const reshard_plan& plan, bool missing_chunk_is_error = true) {
    const auto& md = a.metadata();
    std::vector<sharded_array::local_shard> out;
    out.reserve(plan.targets.size());
    for (const auto& t : plan.targets) out.push_back({t, host_array::uninitialized(md.type, t.box.shape())});
    auto local = [&](const shard& t) -> sharded_array::local_shard& {
      for (auto& o : out)
        if (o.shard.device == t.device) return o;
      throw error(errc::invalid_argument, "reshard plan: target " + to_string(t) + " is not among its targets");
    };
    auto offset = [](const box& b) {
      std::vector<index_t> v(b.rank());
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = -b.origin(i);
      return v;
    };
    zarr::read_options ro;
    ro.missing_chunk_is_error = missing_chunk_is_error;
    host_array staging;
    for (std::size_t i = 0; i < plan.ops.size();) {
      std::size_t j = i;
      while (j < plan.ops.size() && plan.ops[j].chunk == plan.ops[i].chunk) ++j;
      const box& src = plan.ops[i].source;
      // Decode straight into a device buffer that is exactly this chunk, else into the staging buffer.
      const array_view* from = nullptr;
      array_view direct;
      for (std::size_t k = i; k < j && !from; ++k)
        if (plan.ops[k].region == src && plan.ops[k].target.box == src) {
          auto& dst = local(plan.ops[k].target).data;
          a.read(src, dst.mutable_view(), ro);
          direct = dst.view();
          from = &direct;
        }
      if (!from) {
        if (staging.shape() != src.shape()) staging = host_array::uninitialized(md.type, src.shape());
        a.read(src, staging.mutable_view(), ro);
        direct = staging.view();
        from = &direct;
      }
      const auto to_src = offset(src);
      for (std::size_t k = i; k < j; ++k) {
        const copy_op& op = plan.ops[k];
        auto& dst = local(op.target);
        if (from->data() == dst.data.view().data()) continue;
        copy(from->sub(op.region.translated(to_src)), dst.data.mutable_view().sub(op.region.translated(offset(op.target.box))));
      }
      i = j;
    }
    return sharded_array(md.type, md.shape, plan.target, std::move(out));
  }

 private:
  bool needs_arrays() const {
    if (!metadata_) return true;
    for (const auto& e : metadata_->entries)
      if (e.value_type == value_type::jax_array || e.value_type == value_type::np_ndarray || e.value_type == value_type::scalar)
        return true;
    return false;
  }

  // Places `leaf` at `path`, creating maps for dict keys and lists for sequence indices.
  static void insert(dynamic_tree& root, const key_path& path, dynamic_tree leaf) {
    if (path.empty()) {
      root = std::move(leaf);
      return;
    }
    dynamic_tree* node = &root;
    for (std::size_t i = 0; i < path.size(); ++i) {
      const key& k = path[i];
      const bool last = i + 1 == path.size();
      if (k.is_name()) {
        if (!node->is_map()) *node = dynamic_tree(dynamic_tree::map_type{});
        dynamic_tree& child = (*node)[k.name()];
        if (last) child = std::move(leaf);
        node = &child;
      } else {
        if (!node->is_list()) *node = dynamic_tree(dynamic_tree::list_type{});
        auto& l = node->as_list();
        const auto idx = static_cast<std::size_t>(k.index());
        if (l.size() <= idx) l.resize(idx + 1, dynamic_tree(empty_node::none));
        if (last) l[idx] = std::move(leaf);
        node = &l[idx];
      }
    }
  }

  std::filesystem::path dir_;
  std::string name_;
  kvstore::store base_;
  std::optional<tree_metadata> metadata_;
  // Shared so that copies of the item share one parse.
  struct lazy_state {
    std::once_flag once;
    std::map<std::string, json::value> shardings;
    std::string sharding_error;  // why a damaged `_sharding` reads as empty
    zarr::metadata_cache zarr_metadata;
  };
  std::shared_ptr<lazy_state> lazy_ = std::make_shared<lazy_state>();
  std::map<std::string, std::string> strings_;
  bool use_ocdbt_ = true;
  std::shared_ptr<ocdbt::reader> db_;
};

/// One process's part of a PyTree item saved by several processes (orbax-format.md §1.4, §3.10): what
/// the primary needs to finish the item once every process wrote its database.
struct pytree_item_part {
  int process_index = 0;
  bool has_database = false;  ///< this process wrote `ocdbt.process_<i>/`
  std::string metadata;       ///< `_METADATA` (every process computes it: the primary checks they agree)
  std::string sharding;       ///< `_sharding` text, or empty
  std::string strings;        ///< `_strings.json` text, or empty
  /// Sharded parameters and the number of chunks the processes together must have written.
  std::vector<std::pair<std::string, std::uint64_t>> sharded_chunks;
};

namespace detail {
// A zarr chunk sink that also streams large chunks into the database (zarr::streaming_chunk_sink).
template <class Put, class Stream>
struct streaming_put {
  static constexpr bool streams_values = true;
  Put put;
  Stream stream;
  void operator()(const std::string& key, byte_buffer&& bytes) { put(key, std::move(bytes)); }
  template <class Fill>
  void put_streamed(const std::string& key, std::uint64_t max_size, Fill&& fill) {
    stream(key, max_size, fill);
  }
};
template <class Put, class Stream>
streaming_put(Put, Stream) -> streaming_put<Put, Stream>;

// Writes the item in one process (`part_count == 1`: the database directly at `dir`, every file) or
// this process's part of a multi-process item: its database in `ocdbt.process_<i>/` (the primary's also
// holds the zarr metadata and the unsharded leaves), its replica-0 shards and `array_metadatas/process_<i>`.
// `in_uncommitted_step`: `dir` is inside a step's temporary directory, which only a rename commits, so
// `_METADATA` need not wait for the data to mark the item complete and is written as soon as it is
// printed, beside the data.
inline pytree_item_part write_pytree_item_impl(const std::filesystem::path& dir, const dynamic_tree& tree,
                                               const pytree_save_options& o, int part_index, int part_count,
                                               bool in_uncommitted_step = false) {
  const bool multi = part_count > 1;
  const bool primary = part_index == 0;
  const bool metadata_early = in_uncommitted_step && !multi;
  pytree_item_part part;
  part.process_index = part_index;
  tree_metadata meta;
  meta.use_ocdbt = true;
  meta.use_zarr3 = o.zarr_format == 3;
  meta.store_array_data_equal_to_fill_value = true;
  std::map<std::string, std::string> strings;
  std::vector<std::pair<std::string, std::string_view>> shardings;  // param → sharding text
  const std::string single_device = json::to_string(single_device_named_sharding(), {.spaced = true});
  std::deque<std::string> sharding_texts;  // stable addresses for the views in `shardings`
  named_sharding last_sharding;
  std::vector<array_metadata_entry> array_metas;
  std::string array_metadatas_text;
  std::unordered_map<std::string, std::size_t> names;  // param name → its entry, to reject collisions
  auto files = kvstore::open_file(dir, o.fsync);
  std::optional<ocdbt::writer> db;
  auto database = [&]() -> ocdbt::writer& {
    if (!db) {
      ocdbt::writer_options wo;
      wo.fsync = o.fsync;
      db.emplace(multi ? files / ("ocdbt.process_" + std::to_string(part_index) + "/") : files, wo);
    }
    return *db;
  };
  // Models repeat a few (dtype, shape) pairs many times: each pair's metadata and text are made once
  // (the first `max_memos` pairs; the last one is checked first). The text is held once and put as
  // one shared value, which the database stores once for all the arrays that have it.
  struct zarr_memo {
    zarr::array_metadata md;
    shared_bytes text;
  };
  // Orbax's zarr metadata for an array, with the writer's (never stored) codec settings.
  auto orbax_zarr_metadata = [&](dtype type, const shape& s, const std::vector<index_t>& chunk) {
    auto md = zarr::orbax_metadata(o.zarr_format, type, s, chunk, o.compress);
    md.frame_checksums = o.checksums;
    md.zstd_min_ratio = o.min_compression_ratio;
    return md;
  };
  std::shared_ptr<const zarr_memo> memo;
  std::map<std::tuple<dtype, std::vector<index_t>, std::vector<index_t>>, std::shared_ptr<const zarr_memo>> memos;
  constexpr std::size_t max_memos = 1024;
  auto zarr_metadata = [&](const array_view& v, const std::vector<index_t>& chunk) {
    if (memo && memo->md.type == v.type() && memo->md.shape == v.shape() && memo->md.chunk_shape == chunk) return memo;
    auto key = std::make_tuple(v.type(), v.shape().vector(), chunk);
    if (auto it = memos.find(key); it != memos.end()) return memo = it->second;
    auto md = orbax_zarr_metadata(v.type(), v.shape(), chunk);
    const std::string text = zarr::to_json(md);
    memo = std::make_shared<const zarr_memo>(zarr_memo{std::move(md), shared_bytes::copy_of(as_bytes(text))});
    if (memos.size() < max_memos) memos.emplace(std::move(key), memo);
    return memo;
  };
  std::string key_buf;
  auto put_value = [&](const std::string& param, std::string_view key, auto&& bytes) {
    key_buf.assign(param);
    if (!param.empty()) key_buf += '/';
    key_buf += key;
    database().put(key_buf, std::forward<decltype(bytes)>(bytes));
  };
  // zarr::write_array, with the metadata value shared rather than copied for each array. Put in key
  // order (zarr v3's "c/…" before "zarr.json", v2's ".zarray" before "0…"), a save of leaves in key
  // order leaves the database nothing to sort at commit. `chunks()` puts the chunks.
  auto put_zarr = [&](const std::string& param, const zarr_memo& m, auto&& chunks) {
    const std::string_view md_key = zarr::metadata_key(m.md.zarr_format);
    const bool md_first = md_key < std::string_view("0");
    if (md_first) put_value(param, md_key, m.text);
    chunks();
    if (!md_first) put_value(param, md_key, m.text);
  };
  auto write_zarr = [&](const std::string& param, const array_view& v, const std::vector<index_t>& chunk) {
    const auto m = zarr_metadata(v, chunk);
    put_zarr(param, *m, [&] {
      zarr::write_chunks(m->md, box(v.shape()), v,
                         streaming_put{[&](const std::string& key, byte_buffer&& bytes) { put_value(param, key, std::move(bytes)); },
                                       [&](const std::string& key, std::uint64_t max_size, auto& fill) {
                                         database().put_streamed(array_key(param, key), max_size, fill);
                                       }});
    });
  };
  // 1. Walk the tree: check keys and names, build the metadata, and note the leaves whose data this
  //    process writes. Every check runs before any data is written.
  struct data_leaf {
    std::string param;
    const dynamic_tree* leaf;
    std::vector<index_t> chunk;
  };
  std::vector<data_leaf> data;
  // Two leaves can share a parameter name only if a key contains '.': without one, splitting a name at
  // the dots gives back its path (a node's children are either all names or all indices), so the
  // names are checked for collisions only when some key has a dot.
  bool dotted = false;
  constexpr std::string_view special("/\0.", 3);
  // Sized before the walk: grown as it went, these vectors moved and faulted in fresh memory over and
  // over (a third of the walk of 100,000 leaves).
  const std::size_t leaves = tree.num_leaves();
  meta.entries.reserve(leaves);
  data.reserve(leaves);
  array_metas.reserve(leaves);
  shardings.reserve(leaves);
  tree.for_each_leaf([&](const key_path& path, const dynamic_tree& leaf) {
    for (std::size_t i = 0; i < path.size(); ++i)
      if (path[i].is_name()) {
        const std::string_view n = path[i].name();
        // Plain ASCII keys are checked here; the rest (and any that fails) by `validate_dict_key`.
        const bool ascii = std::all_of(n.begin(), n.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
        if (ascii && !n.empty() && n.find_first_of(special) == std::string_view::npos) continue;
        if (ascii && !n.empty() && n.find('/') == std::string_view::npos && n.find('\0') == std::string_view::npos) {
          dotted = true;
          continue;
        }
        key_path parent;  // only to name the place in the error
        for (std::size_t j = 0; j < i; ++j) parent.push_back(path[j]);
        validate_dict_key(n, parent);
        if (n.find('.') != std::string_view::npos) dotted = true;
      }
    std::string param = param_name(path);
    if (dotted && names.empty())  // the first dot: the leaves before it (distinct) join the check
      for (std::size_t k = 0; k < meta.entries.size(); ++k) names.emplace(param_name(meta.entries[k].path), k);
    if (dotted)
      if (auto [it, fresh] = names.emplace(param, meta.entries.size()); !fresh)
        throw error(errc::invalid_argument, "leaves \"" + to_string(meta.entries[it->second].path) + "\" and \"" +
                                                to_string(path) + "\" would share the parameter name \"" + param + "\"");
    tree_metadata_entry e;
    e.path = path;
    switch (leaf.type()) {
      case dynamic_tree::kind::array: {
        const host_array& a = leaf.as_array();
        auto chunk = detail::choose_chunk_shape(a.shape(), size_of(a.type()), o.max_chunk_bytes);
        e.value_type = std::string(o.arrays_as_jax ? value_type::jax_array : value_type::np_ndarray);
        if (o.arrays_as_jax) {
          e.write_shape = chunk;
          shardings.emplace_back(param, single_device);
          array_metas.push_back({param, chunk, chunk, json::value(nullptr)});
        }
        if (primary) data.push_back({std::move(param), &leaf, std::move(chunk)});  // every process holds it
        break;
      }
      case dynamic_tree::kind::sharded: {
        const sharded_array& a = leaf.as_sharded();
        if (a.empty() || a.placement_only())
          throw error(errc::invalid_argument, "leaf \"" + param + "\": a sharded_array without data cannot be saved");
        // One chunk per shard (the grid of the sharding), split further only beyond max_chunk_bytes.
        const chunk_grid grid = shard_grid(a.sharding(), a.shape());
        auto chunk = detail::choose_chunk_shape(shape(grid.chunk_shape()), size_of(a.type()), o.max_chunk_bytes);
        if (multi) {
          std::uint64_t chunks = a.shape().num_elements() == 0 ? 0 : 1;
          for (std::size_t d = 0; d < chunk.size(); ++d)
            chunks *= static_cast<std::uint64_t>((a.shape()[d] + chunk[d] - 1) / std::max<index_t>(chunk[d], 1));
          part.sharded_chunks.emplace_back(param, chunks);
        }
        e.value_type = std::string(value_type::jax_array);
        e.write_shape = grid.chunk_shape();
        if (sharding_texts.empty() || last_sharding != a.sharding()) {
          sharding_texts.push_back(sharding_json(a.sharding()));
          last_sharding = a.sharding();
        }
        shardings.emplace_back(param, sharding_texts.back());
        array_metas.push_back({param, grid.chunk_shape(), chunk, json::value(nullptr)});
        data.push_back({std::move(param), &leaf, std::move(chunk)});  // each process its replica-0 shards
        break;
      }
      case dynamic_tree::kind::scalar:
        e.value_type = std::string(value_type::scalar);
        if (primary) data.push_back({std::move(param), &leaf, {}});
        break;
      case dynamic_tree::kind::string:
        strings.emplace(std::move(param), leaf.as_string());
        e.value_type = std::string(value_type::string);
        break;
      case dynamic_tree::kind::map:
        e.value_type = std::string(value_type::dict);
        e.skip_deserialize = true;
        break;
      case dynamic_tree::kind::list:
        e.value_type = std::string(value_type::list);
        e.skip_deserialize = true;
        break;
      case dynamic_tree::kind::empty: {
        const auto k = leaf.as_empty();
        e.value_type = std::string(k == empty_node::dict    ? value_type::dict
                                   : k == empty_node::list  ? value_type::list
                                   : k == empty_node::tuple ? value_type::tuple
                                                            : value_type::none);
        e.skip_deserialize = true;
        break;
      }
      case dynamic_tree::kind::json:
        throw error(errc::unsupported, "leaf \"" + param + "\": a JSON value cannot be a PyTree leaf (save it as a JSON item)");
    }
    meta.entries.push_back(std::move(e));
  });

  // 2. The arrays' data and the metadata texts do not depend on each other: a tree of many leaves
  //    prints the texts on a second thread while this one encodes and writes the data.
  auto leaf_view = [](const dynamic_tree& leaf) {
    if (leaf.type() == dynamic_tree::kind::array) return leaf.as_array().view();
    const scalar& s = leaf.as_scalar();
    return array_view(s.bytes().data(), s.type(), shape{});
  };
  auto write_sharded = [&](const data_leaf& d) {
    const sharded_array& a = d.leaf->as_sharded();
    const auto md = orbax_zarr_metadata(a.type(), a.shape(), d.chunk);
    auto put_sharded = streaming_put{[&](const std::string& key, byte_buffer&& bytes) {
                                       database().put(array_key(d.param, key), std::move(bytes));
                                     },
                                     [&](const std::string& key, std::uint64_t max_size, auto& fill) {
                                       database().put_streamed(array_key(d.param, key), max_size, fill);
                                     }};
    if (primary) put_sharded(std::string(zarr::metadata_key(md.zarr_format)), byte_buffer(as_bytes(zarr::to_json(md))));
    index_t written = 0;
    for (const auto& s : a.shards()) {
      if (s.shard.replica != 0 || s.shard.box.empty()) continue;
      zarr::write_chunks(md, s.shard.box, s.data.view(), put_sharded);
      written += s.shard.box.num_elements();
    }
    if (!multi && o.require_complete_shards && written != a.shape().num_elements())
      throw error(errc::not_found, "leaf \"" + d.param + "\" " + to_string(a.sharding(), a.type(), a.shape()) + ": the replica-0 shards hold " +
                                       std::to_string(written) + " of " + std::to_string(a.shape().num_elements()) + " elements");
  };
  // Small arrays are encoded a batch at a time on several threads, then put in leaf order: the
  // database still sees its keys in order, and only one batch's encoded bytes are held at once. A
  // batch stays small enough for the next one to reuse its freed memory (larger ones made the heap
  // grow and shrink, and every page fault in again).
  constexpr std::uint64_t small_leaf_bytes = std::uint64_t{1} << 20, batch_bytes = std::uint64_t{4} << 20;
  constexpr std::size_t batch_leaves = 1024;
  // A batch of small arrays: encoded on several threads, then put in leaf order.
  struct batch {
    std::size_t begin = 0, end = 0;
    unsigned threads = 1;
    std::vector<std::shared_ptr<const zarr_memo>> md;
    std::vector<std::vector<std::pair<std::string, byte_buffer>>> encoded;
    std::vector<std::exception_ptr> failed;
  };
  auto encode_batch = [&](batch& b) {
    b.encoded.assign(b.end - b.begin, {});
    b.failed = parallel_for_each_index(b.end - b.begin, b.threads, [&](std::size_t k) {
      const array_view v = leaf_view(*data[b.begin + k].leaf);
      zarr::write_chunks(b.md[k]->md, box(v.shape()), v,
                         [&](const std::string& key, byte_buffer&& bytes) { b.encoded[k].emplace_back(key, std::move(bytes)); });
    });
  };
  auto put_batch = [&](batch& b) {
    for (std::size_t k = 0; k < b.end - b.begin; ++k) {
      if (b.failed[k]) std::rethrow_exception(b.failed[k]);
      const std::string& param = data[b.begin + k].param;
      put_zarr(param, *b.md[k], [&] {
        for (auto& [key, bytes] : b.encoded[k]) put_value(param, key, std::move(bytes));
      });
    }
  };
  auto write_data = [&] {
    // Batches are pipelined: while one batch's bytes are put (and written to the data files), the
    // next one is encoded on other threads.
    std::optional<batch> ready, spare;  // encoded and not yet put; a put one whose memory is reused
    // The first batches are smaller (a quarter, then half the leaves): nothing reaches the disk
    // before the first batch is encoded, and a full one took some 10 ms beside the metadata texts.
    std::size_t leaves_per_batch = std::max<std::size_t>(parallel_leaf_threshold, batch_leaves / 4);
    auto put_ready = [&] {
      if (!ready) return;
      put_batch(*ready);
      spare = std::move(ready);
      ready.reset();
    };
    for (std::size_t i = 0; i < data.size();) {
      std::size_t j = i;
      std::uint64_t bytes = 0;
      // A rest that would make a batch too small to share out goes with this one.
      const std::size_t limit = data.size() - i < leaves_per_batch + parallel_leaf_threshold ? batch_leaves : leaves_per_batch;
      for (; j < data.size() && j - i < limit && bytes < batch_bytes; ++j) {
        if (data[j].leaf->type() == dynamic_tree::kind::sharded) break;
        const std::uint64_t n = leaf_view(*data[j].leaf).num_bytes();
        if (n > small_leaf_bytes) break;
        bytes += n;
      }
      const unsigned threads = parallel_threads(j - i, bytes >= batch_bytes / 2);
      if (threads < 2) {  // a large or sharded leaf, or too few small ones to share out: one by one
        put_ready();
        for (const std::size_t end = std::max(j, i + 1); i < end; ++i) {
          const data_leaf& d = data[i];
          if (d.leaf->type() == dynamic_tree::kind::sharded) write_sharded(d);
          else write_zarr(d.param, leaf_view(*d.leaf), d.chunk);
        }
        continue;
      }
      batch b = spare ? std::move(*spare) : batch{};
      spare.reset();
      b.begin = i;
      b.end = j;
      b.threads = threads;
      b.md.clear();
      for (std::size_t k = i; k < j; ++k) b.md.push_back(zarr_metadata(leaf_view(*data[k].leaf), data[k].chunk));
      // A failure to put the ready batch concerns earlier leaves than any of this batch's, which
      // are kept per leaf and reported when this batch is put.
      run_side_by_side(ready.has_value(), [&] { encode_batch(b); }, put_ready);
      ready = std::move(b);
      i = j;
      leaves_per_batch = std::min(batch_leaves, 2 * leaves_per_batch);
    }
    put_ready();
    if (db) db->commit();
  };
  auto put = [&](std::string_view key, const std::string& text) { kvstore::write(files, key, as_bytes(text)); };
  // The files beside `_METADATA` are written (and synced) while the data is: a model's `_sharding` and
  // `array_metadatas` are tens of MB. `_METADATA`, which makes the directory an item, waits for the data
  // unless the directory is not yet committed.
  auto print_metadata = [&] {
    if (!array_metas.empty()) array_metadatas_text = to_json(array_metas);
    if (!strings.empty()) part.strings = strings_file_json(strings);
    if (!shardings.empty()) part.sharding = sharding_file_json(std::move(shardings));
    std::filesystem::create_directories(dir);
    if (!array_metadatas_text.empty()) put("array_metadatas/process_" + std::to_string(part_index), array_metadatas_text);
    if (!multi) {
      if (!part.strings.empty()) put("_strings.json", part.strings);
      if (!part.sharding.empty()) put("_sharding", part.sharding);
    }
    part.metadata = to_json(meta);
    if (metadata_early) put("_METADATA", part.metadata);
    // Only the texts needed these records: they are freed here, beside the data, rather than when
    // the save returns, after its commit (some 50,000 small allocations for 10,000 leaves, ~3 ms).
    std::vector<array_metadata_entry>().swap(array_metas);
    std::vector<tree_metadata_entry>().swap(meta.entries);
    std::string().swap(array_metadatas_text);
  };
  try {
    run_side_by_side(data.size() >= parallel_leaf_threshold, write_data, print_metadata);
  } catch (...) {
    // Take back the files written beside the failed data: what is left is no more than the partial
    // data directory, as when they were written after it.
    for (const std::string& key : {"array_metadatas/process_" + std::to_string(part_index), std::string("_strings.json"),
                                   std::string("_sharding"), std::string("_METADATA")}) {
      if (multi && key[0] == '_') continue;  // written by the primary's finish, not here
      if (key == "_METADATA" && !metadata_early) continue;  // not written before the data
      try {
        kvstore::erase(files, key);
      } catch (const error&) {  // the first failure is the one to report
      }
    }
    std::error_code ignored;
    std::filesystem::remove(dir / "array_metadatas", ignored);  // only if empty: other processes' files stay
    throw;
  }
  part.has_database = db.has_value();
  if (!multi) {
    if (!metadata_early) put("_METADATA", part.metadata);
    put(commit_success_file, "Checkpoint commit was successful to " + dir.string());
  }
  return part;
}
}  // namespace detail

/// Writes `tree` as a PyTree item into the directory `dir` (which should not exist yet).
/// \throws cairn::error (errc::invalid_argument) for keys that cannot be stored (containing `/`, or two
///         leaves with one parameter name), (errc::unsupported) for JSON leaves inside the tree; (errc::io).
inline void write_pytree_item(const std::filesystem::path& dir, const dynamic_tree& tree, const pytree_save_options& o = {}) {
  (void)detail::write_pytree_item_impl(dir, tree, o, 0, 1);
}

/// Writes process `process_index`'s part of a PyTree item that `process_count` processes save together:
/// its replica-0 shards into `dir/ocdbt.process_<i>/` and `array_metadatas/process_<i>`; the primary
/// (index 0) also writes the unsharded leaves and the zarr metadata. Every process passes a tree of the
/// same structure; sharded leaves hold the shards of this process's devices. The primary then calls
/// `finish_pytree_item`.
/// \throws as `write_pytree_item`.
inline pytree_item_part write_pytree_item_part(const std::filesystem::path& dir, const dynamic_tree& tree, const pytree_save_options& o,
                                               int process_index, int process_count) {
  if (process_count < 2 || process_index < 0 || process_index >= process_count)
    throw error(errc::invalid_argument, "item \"" + dir.string() + "\": process " + std::to_string(process_index) + " of " +
                                            std::to_string(process_count) + " (a part needs at least 2 processes)");
  return detail::write_pytree_item_impl(dir, tree, o, process_index, process_count);
}

/// A digest of what a part says about the whole item (tree metadata, shardings, strings): processes that
/// saved the same structure have equal fingerprints, so the primary compares digests, not the texts.
inline std::uint64_t fingerprint(const pytree_item_part& p) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const std::string* s : {&p.metadata, &p.sharding, &p.strings}) {
    for (unsigned char c : *s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;
  }
  return h;
}

/// The primary's last step of a multi-process item, once every process wrote its part: merges the
/// per-process databases of `processes_with_database` into the root database by reference, checks that
/// every chunk of every sharded array was written by some process, then writes `_METADATA`, `_sharding`,
/// `_strings.json` and `commit_success.txt` from the primary's `part`.
/// \throws cairn::error (errc::not_found) naming the array and the chunk count if chunks are missing;
///         (errc::io).
inline void finish_pytree_item(const std::filesystem::path& dir, const pytree_item_part& part,
                               const std::vector<int>& processes_with_database, const pytree_save_options& o) {
  const pytree_item_part& first = part;
  auto files = kvstore::open_file(dir, o.fsync);
  std::vector<std::string> children;
  for (int p : processes_with_database) children.push_back("ocdbt.process_" + std::to_string(p) + "/");
  if (!children.empty()) {
    std::map<std::string, std::uint64_t, std::less<>> counted;
    for (const auto& [param, n] : first.sharded_chunks) counted.emplace(param + "/", 0);
    ocdbt::writer_options wo;
    wo.fsync = o.fsync;
    ocdbt::merge(files, children, wo, [&](std::string_view key) {
      // Parameter names hold no '/': the greatest counted prefix not after the key is its parameter's.
      auto it = counted.upper_bound(key);
      if (it == counted.begin()) return;
      --it;
      if (key.substr(0, it->first.size()) != it->first) return;
      const std::string_view rest = key.substr(it->first.size());
      if (rest != ".zarray" && rest != "zarr.json" && rest != ".zattrs") ++it->second;
    });
    for (const auto& [param, n] : first.sharded_chunks)
      if (const auto got = counted[param + "/"]; got != n)
        throw error(errc::not_found, "item \"" + dir.string() + "\", leaf \"" + param + "\": the processes wrote " + std::to_string(got) +
                                         " of its " + std::to_string(n) + " chunks (some shard's replica 0 is on no process's devices)");
  }
  auto put = [&](std::string_view key, const std::string& text) { kvstore::write(files, key, as_bytes(text)); };
  if (!first.strings.empty()) put("_strings.json", first.strings);
  if (!first.sharding.empty()) put("_sharding", first.sharding);
  put("_METADATA", first.metadata);
  put(commit_success_file, "Checkpoint commit was successful to " + dir.string());
}

}  // namespace cairn
