// SPDX-License-Identifier: Apache-2.0
/// \file
/// `zarr::array`: one zarr array in a kvstore whose prefix is the array's directory (in an Orbax item:
/// `item_store / "params.dense.kernel/"`). Reading a box fetches exactly the grid chunks (v3: shards) that
/// intersect it, each once, and copies each intersection into the caller's view — the primitive a
/// reshard plan is built from (orbax-format.md §4.1). `write_array` is the writer side: the metadata key,
/// then every chunk, including all-zero ones, because Orbax sets `store_array_data_equal_to_fill_value`.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/box.hpp>
#include <cairn/core/crc32c.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/error.hpp>
#include <cairn/kvstore/store.hpp>
#include <cairn/zarr/codec.hpp>
#include <cairn/zarr/metadata.hpp>

namespace cairn::zarr {

/// Options for `array::read`.
struct read_options {
  /// A chunk key that is absent is an error naming it. Orbax writes every chunk and restores with
  /// TensorStore's `fill_missing_data_reads = false` when `_METADATA` says
  /// `store_array_data_equal_to_fill_value: true`; set false to read absent chunks as the fill value.
  bool missing_chunk_is_error = true;
};

/// Parsed metadata documents by their text, shared by the opens of one item's arrays.
/// \par Thread safety
/// `parse` may be called from several threads at once.
class metadata_cache {
 public:
  /// Returns `parse_metadata(text, what())`, parsing each distinct `text` once; the arrays opened from
  /// one document share its parsed metadata.
  template <class What>
  std::shared_ptr<const array_metadata> parse(std::string_view text, What&& what) {
    {
      std::lock_guard lock(mutex_);
      // Neighbouring arrays mostly share their document: comparing with the last one found costs a
      // fraction of hashing it.
      if (last_ && last_->first == text) return last_->second;
      if (auto it = parsed_.find(text); it != parsed_.end()) {
        last_ = &*it;
        return it->second;
      }
    }
    auto m = std::make_shared<const array_metadata>(parse_metadata(text, what()));
    std::lock_guard lock(mutex_);
    if (parsed_.size() < max_entries) last_ = &*parsed_.emplace(std::string(text), m).first;
    return m;
  }

 private:
  static constexpr std::size_t max_entries = 4096;  // bounds memory for items of all-different arrays
  struct text_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const array_metadata>, text_hash, std::equal_to<>> parsed_;
  const std::pair<const std::string, std::shared_ptr<const array_metadata>>* last_ = nullptr;  // entries never move nor leave
};

/// A zarr v2 or v3 array opened for reading.
/// \par Thread safety
/// Immutable after `open`: `read` may be called from several threads at once (cairn drivers are thread-safe).
class array {
 public:
  /// Wraps an array whose metadata is already known. `name` is used in messages (e.g. the param name).
  /// \throws cairn::error (errc::invalid_argument) if `m` is inconsistent.
  array(kvstore::store store, std::string name, array_metadata m)
      : store_(std::move(store)), name_(std::move(name)), metadata_(std::make_shared<const array_metadata>(std::move(m))) {
    detail::check_metadata(*metadata_, errc::invalid_argument, "array " + cairn::detail::json_quote(name_));
  }

 private:
  struct trusted {};
  // For metadata that `parse_metadata` has already checked.
  array(kvstore::store store, std::string name, std::shared_ptr<const array_metadata> m, trusted)
      : store_(std::move(store)), name_(std::move(name)), metadata_(std::move(m)) {}

 public:

  /// Opens the array whose directory is `store`'s prefix: reads `.zarray`, or else `zarr.json`
  /// (`zarr.json` first when `prefer_v3`). With a `cache`, metadata documents already parsed through it
  /// are not parsed again (a model's arrays share a handful of documents).
  /// \throws cairn::error (errc::not_found) naming `name` and both keys if neither exists;
  ///         (errc::corrupted / incompatible_format / unsupported) from `parse_metadata`, naming the key.
  static array open(kvstore::store store, std::string name, metadata_cache* cache = nullptr, bool prefer_v3 = false) {
    for (int format : prefer_v3 ? std::array{3, 2} : std::array{2, 3}) {
      const std::string_view key = metadata_key(format);
      kvstore::read_result r = kvstore::read(store, key);
      if (r.missing()) continue;
      const std::string_view text = as_chars(r->view());
      auto what = [&] {
        return "array " + cairn::detail::json_quote(name) + ", key " + cairn::detail::json_quote(store.full_key(key));
      };
      auto m = cache ? cache->parse(text, what) : std::make_shared<const array_metadata>(parse_metadata(text, what()));
      if (m->zarr_format != format)
        throw error(errc::corrupted, what() + ": holds zarr_format " + std::to_string(m->zarr_format));
      return array(std::move(store), std::move(name), std::move(m), trusted{});
    }
    const std::string label = "array " + cairn::detail::json_quote(name);
    throw error(errc::not_found, label + ": neither " + cairn::detail::json_quote(store.full_key(".zarray")) + " nor " +
                                     cairn::detail::json_quote(store.full_key("zarr.json")) + " exists in " +
                                     store.describe());
  }

  const array_metadata& metadata() const noexcept { return *metadata_; }
  const std::string& name() const noexcept { return name_; }
  const kvstore::store& store() const noexcept { return store_; }
  /// The array's shape.
  const cairn::shape& shape() const noexcept { return metadata_->shape; }
  /// The element type.
  dtype type() const noexcept { return metadata_->type; }

  /// Returns the indices of the chunks (v3: shards) a `read(region, …)` fetches, in the order it fetches them.
  /// \throws cairn::error (errc::invalid_argument) if `region` is not inside the array.
  std::vector<std::vector<index_t>> chunks_for(const box& region) const {
    check_region(region);
    return chunks_intersecting(*metadata_, region);
  }

  /// Reads the elements of `region` into `out` (a host view of `region`'s shape, any strides), fetching
  /// each intersecting chunk exactly once and no other. Chunks wholly inside `region` whose destination is
  /// contiguous are decoded in place; otherwise one chunk-sized buffer is reused.
  /// \throws cairn::error (errc::invalid_argument) if `region` is not inside the array;
  ///         (errc::shape_mismatch / type_mismatch / unsupported) if `out` does not match `region` and the
  ///         dtype or is not in host memory; (errc::not_found) naming the chunk key if a chunk is absent and
  ///         `missing_chunk_is_error`; (errc::corrupted) from `decode_chunk`.
  void read(const box& region, const mutable_array_view& out, read_options options = {}) const {
    check_region(region);
    if (!out.space().is_host()) throw error(errc::unsupported, label() + ": read needs a host view");
    if (out.type() != metadata_->type)
      throw error(errc::type_mismatch, label() + ": reading " + std::string(name_of(metadata_->type)) +
                                           " elements into a " + std::string(name_of(out.type())) + " view");
    if (out.shape().vector() != region.extent())
      throw error(errc::shape_mismatch, label() + ": region " + to_string(region) + " has shape " +
                                            to_string(region.shape()) + " but the view " + to_string(out.shape()));
    if (region.empty()) return;

    byte_buffer staging, pieces;  // a partial chunk's decoded bytes; a large frame's pieces
    std::vector<std::byte> fill_element;
    // Reads chunk `k` into `dst`, the place in `out` of `part`: all of the chunk (`whole`) or the part
    // of it inside `region`.
    auto read_chunk = [&](std::span<const index_t> k, bool whole, const box& part, const mutable_array_view& dst) {
      const std::string key = chunk_key(*metadata_, k);
      auto missing = [&] {
        if (options.missing_chunk_is_error)
          throw error(errc::not_found, label() + ": chunk " + to_string(k) + " (key " +
                                           cairn::detail::json_quote(store_.full_key(key)) +
                                           ") is missing; Orbax writes every chunk");
        if (fill_element.empty()) fill_element = fill_value_bytes(*metadata_);
        fill(dst, fill_element);
      };
      // A chunk that is all of its place in `out` goes straight into it: raw bytes with no buffer of
      // the store's, a large zstd frame decoded as it is read. Anything unexpected (another size, a
      // shard index that does not point at exactly those bytes, a bad frame) goes the usual way,
      // which reads it again and reports it.
      if (whole && dst.is_c_contiguous()) {
        const auto status = read_chunk_in_place(key, dst.bytes(), pieces);
        if (status == kvstore::read_into_status::missing) return missing();
        if (status == kvstore::read_into_status::done) {
          if (detail::zarr_needs_swap(*metadata_)) detail::zarr_swap_bytes(dst.bytes(), metadata_->type);
          return;
        }
      }
      kvstore::read_result r = kvstore::read(store_, key);
      if (r.missing()) return missing();
      // Decoded in place when the chunk fills a contiguous destination, else into `staging`.
      const bool direct = whole && dst.is_c_contiguous();
      if (!direct && staging.empty()) staging.resize(chunk_num_bytes(*metadata_));
      const mutable_array_view decoded =
          direct ? dst : mutable_array_view(staging.data(), metadata_->type, cairn::shape(metadata_->chunk_shape));
      detail::zarr_relabel(key, [&] { return chunk_label(key); },
                           [&](std::string_view what) { decode_chunk(*metadata_, r->view(), decoded, what); });
      if (direct) return;
      if (whole) {
        copy(decoded, dst);
        return;
      }
      std::vector<index_t> to_chunk(k.size());
      for (std::size_t i = 0; i < to_chunk.size(); ++i) to_chunk[i] = -k[i] * metadata_->chunk_shape[i];
      copy(decoded.sub(part.translated(to_chunk)), dst);
    };
    // The usual leaf, one chunk that is the whole array, goes without the grid walk and its boxes.
    if (whole_single_chunk(*metadata_, region)) {
      with_zero_index(region.rank(), [&](std::span<const index_t> k) { read_chunk(k, true, region, out); });
      return;
    }
    std::vector<index_t> to_region(region.rank());
    for (std::size_t i = 0; i < to_region.size(); ++i) to_region[i] = -region.origin(i);
    for_each_chunk(*metadata_, region, [&](std::span<const index_t> k) {
      const box cbox = chunk_box(*metadata_, k);
      const box part = intersect(cbox, region);
      read_chunk(k, part == cbox, part, out.sub(part.translated(to_region)));
    });
  }

  /// The key, in the store's driver, of the one value that holds all of this array: when the array is
  /// a single chunk (v3: a single shard), as Orbax stores small arrays. A restore of many such arrays
  /// reads their values together (`kvstore::driver::read_many`) and decodes each with `decode_whole`.
  /// Empty for any other array.
  std::string whole_value_key() const {
    const array_metadata& m = *metadata_;
    if (!std::ranges::equal(m.chunk_shape, m.shape.dims())) return {};
    return with_zero_index(m.shape.rank(), [&](std::span<const index_t> k) { return store_.full_key(chunk_key(m, k)); });
  }
  /// Decodes `stored`, the value at `whole_value_key()`, into `out`, a host view of the array's dtype
  /// and shape (any strides).
  /// \pre `whole_value_key()` is not empty.
  /// \throws as `decode_chunk`, naming the array and the key.
  void decode_whole(byte_view stored, const mutable_array_view& out) const {
    with_zero_index(metadata_->shape.rank(), [&](std::span<const index_t> k) {
      const std::string key = chunk_key(*metadata_, k);
      detail::zarr_relabel(key, [&] { return chunk_label(key); },
                           [&](std::string_view what) { decode_chunk(*metadata_, stored, out, what); });
    });
  }

  /// Reads `region` into a new C-order host array.
  /// \throws cairn::error as `read(region, out, options)`.
  host_array read(const box& region, read_options options = {}) const {
    check_region(region);
    host_array out(metadata_->type, region.shape());
    read(region, out.mutable_view(), options);
    return out;
  }

  /// Reads the whole array.
  /// \throws cairn::error as `read(region, out, options)`.
  host_array read_all(read_options options = {}) const { return read(box(metadata_->shape), options); }

 private:
  // Compressed chunks of at least this size are decoded while they are read, a piece of this size at a time.
  static constexpr std::size_t stream_piece_bytes = std::size_t{8} << 20;

  // Reads one chunk (or shard of one inner chunk, as Orbax writes zarr v3) straight into `dst`, all of
  // its place in the destination: raw bytes go there from the disk; a large zstd frame is decoded
  // there while it is read in pieces through `scratch`, so no buffer of the chunk's size is made.
  // `other_size` sends anything else (small, inline, other layouts, and whatever looks wrong, which
  // the usual path then reads again and reports) the usual way.
  kvstore::read_into_status read_chunk_in_place(const std::string& key, mutable_byte_view dst, byte_buffer& scratch) const {
    const array_metadata& m = *metadata_;
    constexpr auto other = kvstore::read_into_status::other_size;
    if (m.sharded && !shard_of_one_chunk(m)) return other;
    const std::uint64_t index_bytes = m.sharded ? 16 + (m.index_crc32c ? 4 : 0) : 0;
    const bool start = m.sharded && m.index_location == shard_index_location::start;
    if (!m.zstd_level) {
      const std::uint64_t data_at = start ? index_bytes : 0;
      const auto status = kvstore::read_into(store_, key, data_at, dst, dst.size() + index_bytes);
      if (status != kvstore::read_into_status::done || !m.sharded) return status;
      const auto index = kvstore::read(store_, key, {start ? 0 : dst.size(), index_bytes});
      if (index.missing() || index->size() != index_bytes) return other;
      const auto entry = shard_entry(index->view(), index_bytes);
      return entry && entry->first == data_at && entry->second == dst.size() ? kvstore::read_into_status::done : other;
    }
    if (dst.size() < stream_piece_bytes) return other;
    const auto value = kvstore::open_value(store_, key);
    if (!value || value->size() < index_bytes) return other;
    std::uint64_t offset = 0, frame = value->size();
    if (m.sharded) {
      const auto entry = shard_entry(value->read(start ? 0 : value->size() - index_bytes, index_bytes).view(), index_bytes);
      const std::uint64_t data_begin = start ? index_bytes : 0, data_end = value->size() - (start ? 0 : index_bytes);
      if (!entry || entry->first < data_begin || entry->first > data_end || entry->second > data_end - entry->first) return other;
      std::tie(offset, frame) = *entry;
    }
    if (scratch.size() < stream_piece_bytes) scratch.resize(stream_piece_bytes);
    try {
      codec::zstd_decompress_read_into(
          frame, [&](std::uint64_t at, mutable_byte_view piece) { value->read_into(offset + at, piece); },
          scratch.mutable_view().first(static_cast<std::size_t>(std::min<std::uint64_t>(frame, stream_piece_bytes))), dst,
          chunk_label(key));
    } catch (const error& e) {
      if (e.code() == errc::corrupted) return other;
      throw;
    }
    return kvstore::read_into_status::done;
  }
  // The (offset, size) of a one-entry shard index after its CRC-32C check; nullopt if it fails or
  // the inner chunk is missing.
  std::optional<std::pair<std::uint64_t, std::uint64_t>> shard_entry(byte_view index, std::uint64_t index_bytes) const {
    if (index.size() != index_bytes) return std::nullopt;
    const std::byte* p = index.data();
    if (metadata_->index_crc32c && load_le<std::uint32_t>(p + 16) != crc32c(byte_view(p, 16))) return std::nullopt;
    const std::uint64_t offset = load_le<std::uint64_t>(p), size = load_le<std::uint64_t>(p + 8);
    if (offset == detail::zarr_missing_inner || size == detail::zarr_missing_inner) return std::nullopt;
    return std::pair{offset, size};
  }
  std::string label() const { return "array " + cairn::detail::json_quote(name_); }
  std::string chunk_label(const std::string& key) const { return label() + ", key " + cairn::detail::json_quote(store_.full_key(key)); }
  void check_region(const box& region) const {
    // Without building a box: a restore checks each leaf's region.
    bool inside = region.rank() == metadata_->shape.rank();
    for (std::size_t i = 0; inside && !region.empty() && i < region.rank(); ++i)
      inside = region.origin(i) >= 0 && region.stop(i) <= metadata_->shape[i];
    if (!inside)
      throw error(errc::invalid_argument, label() + ": region " + to_string(region) + " is not inside " +
                                              to_string(box(metadata_->shape)));
  }

  kvstore::store store_;
  std::string name_;
  std::shared_ptr<const array_metadata> metadata_;  // shared by the arrays of one cached document
};

/// A chunk sink that can also take a large value in pieces: it has `static constexpr bool
/// streams_values = true` and `put_streamed(key, max_size, fill)` (as `ocdbt::writer::put_streamed`).
/// `write_chunks` then encodes large contiguous chunks straight into it, piece by piece.
template <class S>
concept streaming_chunk_sink = std::remove_cvref_t<S>::streams_values;

/// Chunks of at least this many bytes are streamed into a `streaming_chunk_sink`.
inline constexpr std::size_t stream_chunk_bytes = std::size_t{16} << 20;

/// Writes the chunks of `region` (a union of whole grid chunks, clipped at the array's edge, e.g. one
/// shard of a sharding whose shards are the grid) from `data`, a host view of `region`'s shape; edge
/// chunks are padded with the fill value. Calls `put(key, bytes)` as `write_array` does.
/// \throws cairn::error (errc::invalid_argument) if `region` cuts a chunk or leaves the array;
///         (errc::type_mismatch / shape_mismatch) if `data` does not match; whatever `put` throws.
template <class Sink>
void write_chunks(const array_metadata& m, const box& region, const array_view& data, Sink&& put) {
  // Checked without building boxes: a save calls this once per leaf, most of them small.
  bool fits = region.rank() == m.shape.rank() && data.shape().vector() == region.extent() && data.type() == m.type;
  for (std::size_t i = 0; fits && i < region.rank(); ++i) fits = region.origin(i) >= 0 && region.stop(i) <= m.shape[i];
  if (!fits)
    throw error(errc::invalid_argument, "write_chunks: region " + to_string(region) + " of an array " + to_string(m.shape) +
                                            " with a view of " + std::string(name_of(data.type())) + to_string(data.shape()));
  if (region.empty() && m.shape.rank() > 0) return;
  // Puts the full chunk `k`, whose elements `c` holds.
  auto put_full = [&](std::span<const index_t> k, const array_view& c) {
    if constexpr (streaming_chunk_sink<Sink>) {
      // A zarr v3 shard of one inner chunk with its index at the end (what Orbax writes) streams too:
      // the inner chunk, then its index entry.
      const bool one_inner = shard_of_one_chunk(m) && m.index_location == shard_index_location::end;
      if ((!m.sharded || one_inner) && c.is_c_contiguous() && !detail::zarr_needs_swap(m) && c.num_bytes() >= stream_chunk_bytes) {
        const byte_view raw = c.bytes();
        const bool checksum = m.zstd_checksum || m.frame_checksums;
        const std::size_t index_bytes = one_inner ? 16 + (m.index_crc32c ? 4 : 0) : 0;
        const std::uint64_t bound = (m.zstd_level ? codec::zstd_compressor::compress_bound(raw.size()) : raw.size()) + index_bytes;
        put.put_streamed(chunk_key(m, k), bound, [&](auto& out) {
          const std::size_t n = m.zstd_level ? codec::detail::thread_compressor(*m.zstd_level, checksum, m.zstd_min_ratio).compress_streamed(raw, out)
                                             : (emit_into(out, raw), raw.size());
          if (!one_inner) return;
          std::byte index[20];
          store_le<std::uint64_t>(index, 0);  // the inner chunk starts the shard
          store_le<std::uint64_t>(index + 8, n);
          if (m.index_crc32c) store_le<std::uint32_t>(index + 16, crc32c(byte_view(index, 16)));
          emit_into(out, byte_view(index, index_bytes));
        });
        return;
      }
    }
    put(chunk_key(m, k), encode_chunk(m, c));
  };
  // The usual leaf, one chunk that is the whole array, goes without the grid walk and its boxes.
  if (whole_single_chunk(m, region)) {
    with_zero_index(m.shape.rank(), [&](std::span<const index_t> k) { put_full(k, data); });
    return;
  }
  const box domain(m.shape);
  byte_buffer staging;
  std::vector<std::byte> fill_element;
  std::vector<index_t> to_region(region.rank());
  for (std::size_t i = 0; i < to_region.size(); ++i) to_region[i] = -region.origin(i);
  for_each_chunk(m, region, [&](std::span<const index_t> k) {
    const box cbox = chunk_box(m, k);
    const box part = intersect(cbox, domain);
    if (intersect(part, region) != part)
      throw error(errc::invalid_argument, "write_chunks: region " + to_string(region) + " cuts chunk " + to_string(cbox));
    if (part == cbox) {
      put_full(k, data.sub(cbox.translated(to_region)));
      return;
    }
    if (staging.empty()) {
      staging.resize(chunk_num_bytes(m));
      fill_element = fill_value_bytes(m);
    }
    const mutable_array_view padded(staging.data(), m.type, cairn::shape(m.chunk_shape));
    fill(padded, fill_element);
    std::vector<index_t> to_chunk(cbox.rank());
    for (std::size_t i = 0; i < to_chunk.size(); ++i) to_chunk[i] = -cbox.origin(i);
    copy(data.sub(part.translated(to_region)), padded.sub(part.translated(to_chunk)));
    put(chunk_key(m, k), encode_chunk(m, padded));
  });
}

/// Writes the array `whole` as zarr: calls `put(std::string key, byte_buffer bytes)` once for the metadata
/// key (`.zarray` / `zarr.json`, bytes of `to_json(m)`), then once per chunk in C order of the grid — every
/// chunk, all-zero ones included — with edge chunks padded with the fill value. Keys are relative to the
/// array's directory. One chunk buffer is live at a time (plus what `put` keeps).
/// \throws cairn::error (errc::invalid_argument) if `m` is inconsistent; (errc::type_mismatch /
///         shape_mismatch / unsupported) if `whole` is not a host array of `m`'s dtype and shape;
///         whatever `put` throws.
/// \pre `json_text` is `to_json(m)` (passed in so that a writer of many same-shaped arrays serialises
///      their metadata once).
template <class Sink>
void write_array(const array_metadata& m, std::string_view json_text, const array_view& whole, Sink&& put) {
  if (!whole.space().is_host()) throw error(errc::unsupported, "write_array: the array must be in host memory");
  if (whole.type() != m.type)
    throw error(errc::type_mismatch, "write_array: array of " + std::string(name_of(whole.type())) +
                                         " for metadata of " + std::string(name_of(m.type)));
  if (whole.shape() != m.shape)
    throw error(errc::shape_mismatch, "write_array: array of shape " + to_string(whole.shape()) +
                                          " for metadata of shape " + to_string(m.shape));
  put(std::string(metadata_key(m.zarr_format)), byte_buffer(as_bytes(json_text)));

  write_chunks(m, box(m.shape), whole, std::forward<Sink>(put));
}

/// `write_array` with the metadata serialised here.
template <class Sink>
void write_array(const array_metadata& m, const array_view& whole, Sink&& put) {
  const std::string json_text = to_json(m);  // validates m
  write_array(m, json_text, whole, std::forward<Sink>(put));
}

}  // namespace cairn::zarr
