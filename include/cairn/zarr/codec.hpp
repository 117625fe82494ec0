// SPDX-License-Identifier: Apache-2.0
/// \file
/// Chunk codecs: one grid chunk's elements ⇄ the bytes stored under its key (orbax-format.md §2.2, §2.3).
/// v2 and unsharded v3: the chunk's C-order element bytes, optionally one zstd frame. v3 `sharding_indexed`:
/// `[inner chunks][index: (offset u64le, nbytes u64le) per inner chunk, C order][crc32c u32le of the index]`
/// (or index first), a missing inner chunk being offset = nbytes = 2^64-1. Law:
/// `decode_chunk(m, encode_chunk(m, c), out, w)` leaves `out` equal to `c`. Decoding trusts no size in the
/// input: every decoded length is checked against the size the metadata implies.
#pragma once

#include <algorithm>  // std::all_of, std::reverse
#include <bit>        // std::endian
#include <cstddef>
#include <cstdint>
#include <cstring>  // std::memcpy, std::memset
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/codec/zstd.hpp>
#include <cairn/core/array.hpp>
#include <cairn/core/box.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/crc32c.hpp>
#include <cairn/core/error.hpp>
#include <cairn/zarr/metadata.hpp>

namespace cairn::zarr {

/// Sets every element of the host view `v` to the element whose bytes are `element`.
/// \pre `element.size() == size_of(v.type())`; `v` is in host memory.
inline void fill(const mutable_array_view& v, std::span<const std::byte> element) {
  CAIRN_ASSERT(element.size() == size_of(v.type()));
  if (v.num_elements() == 0) return;
  const bool zero = std::all_of(element.begin(), element.end(), [](std::byte b) { return b == std::byte{0}; });
  if (zero && v.is_c_contiguous()) {
    std::memset(v.data(), 0, v.num_bytes());
    return;
  }
  const std::size_t esize = element.size();
  if (v.rank() == 0) {
    std::memcpy(v.data(), element.data(), esize);
    return;
  }
  const std::size_t r = v.rank();
  const index_t inner = v.shape()[r - 1];
  const index_t inner_stride = v.byte_strides()[r - 1];
  box outer(std::vector<index_t>(r - 1, 0), std::vector<index_t>(v.shape().begin(), v.shape().end() - 1));
  for_each_point(outer, [&](std::span<const index_t> p) {
    std::byte* d = v.data();
    for (std::size_t i = 0; i + 1 < r; ++i) d += p[i] * v.byte_strides()[i];
    for (index_t j = 0; j < inner; ++j) std::memcpy(d + j * inner_stride, element.data(), esize);
  });
}

namespace detail {

inline constexpr std::uint64_t zarr_missing_inner = ~std::uint64_t{0};

/// Reverses the bytes of every element (of every component, for complex types) of `bytes`.
inline void zarr_swap_bytes(mutable_byte_view bytes, dtype t) noexcept {
  std::size_t width = size_of(t);
  if (info(t).kind == dtype_kind::complex) width /= 2;
  if (width <= 1) return;
  for (std::size_t i = 0; i + width <= bytes.size(); i += width)
    std::reverse(bytes.begin() + static_cast<std::ptrdiff_t>(i), bytes.begin() + static_cast<std::ptrdiff_t>(i + width));
}

inline bool zarr_needs_swap(const array_metadata& m) noexcept {
  return m.byte_order != std::endian::native && size_of(m.type) > 1;
}

/// Appends one encoded full (inner) chunk to `out` without intermediate copies: contiguous
/// little-endian data is compressed straight into `out`'s spare capacity.
inline void zarr_encode_elements_into(const array_metadata& m, const array_view& chunk, byte_buffer& out) {
  const bool checksum = m.zstd_checksum || m.frame_checksums;
  auto compress_into_out = [&](byte_view raw) {
    const std::size_t old = out.size();
    out.resize(old + codec::zstd_compressor::compress_bound(raw.size()));
    const std::size_t n = codec::zstd_compress_into(raw, out.mutable_view().subspan(old), *m.zstd_level, checksum, m.zstd_min_ratio);
    out.resize(old + n);
  };
  if (chunk.is_c_contiguous() && !zarr_needs_swap(m)) {
    if (m.zstd_level) compress_into_out(chunk.bytes());
    else out.append(chunk.bytes());
    return;
  }
  byte_buffer staged(chunk.num_bytes());
  copy(chunk, mutable_array_view(staged.data(), chunk.type(), chunk.shape()));
  if (zarr_needs_swap(m)) zarr_swap_bytes(staged.mutable_view(), m.type);
  if (m.zstd_level) compress_into_out(staged.view());
  else out.append(staged.view());
}

/// Encodes one full (inner) chunk: element bytes in the stored order, then zstd when configured.
inline byte_buffer zarr_encode_elements(const array_metadata& m, const array_view& chunk) {
  const bool swap = zarr_needs_swap(m);
  if (chunk.is_c_contiguous() && !swap) {
    if (m.zstd_level) return codec::zstd_compress(chunk.bytes(), *m.zstd_level, m.zstd_checksum || m.frame_checksums, m.zstd_min_ratio);
    return byte_buffer(chunk.bytes());
  }
  byte_buffer staged(chunk.num_bytes());
  copy(chunk, mutable_array_view(staged.data(), chunk.type(), chunk.shape()));
  if (swap) zarr_swap_bytes(staged.mutable_view(), m.type);
  if (m.zstd_level) return codec::zstd_compress(staged.view(), *m.zstd_level, m.zstd_checksum || m.frame_checksums, m.zstd_min_ratio);
  return staged;
}

/// Decodes one stored (inner) chunk into the contiguous `out` of exactly the chunk's byte size.
inline void zarr_decode_elements(const array_metadata& m, byte_view stored, mutable_byte_view out,
                                 std::string_view what) {
  if (m.zstd_level) {
    codec::zstd_decompress_into(stored, out, what, codec::size_check::exact);
  } else {
    if (stored.size() != out.size())
      throw error(errc::corrupted, std::string(what) + ": uncompressed chunk has " + std::to_string(stored.size()) +
                                       " bytes, expected " + std::to_string(out.size()));
    if (!out.empty()) std::memcpy(out.data(), stored.data(), out.size());
  }
  if (zarr_needs_swap(m)) zarr_swap_bytes(out, m.type);
}

/// Decodes one stored (inner) chunk into the host view `out` (any strides), staging through `scratch`
/// when `out` is not contiguous.
inline void zarr_decode_into_view(const array_metadata& m, byte_view stored, const mutable_array_view& out,
                                  byte_buffer& scratch, std::string_view what) {
  if (out.is_c_contiguous()) {
    zarr_decode_elements(m, stored, out.bytes(), what);
    return;
  }
  scratch.resize(out.num_bytes());
  zarr_decode_elements(m, stored, scratch.mutable_view(), what);
  copy(array_view(scratch.data(), out.type(), out.shape()), out);
}

/// Calls `f(label)`; an error whose context starts with `label` is thrown again with `full()` in its
/// place, so that a chunk's full name is built only when something fails (a restore decodes a chunk
/// per leaf, most of them small).
template <class Full, class F>
void zarr_relabel(std::string_view label, Full&& full, F&& f) {
  try {
    f(label);
  } catch (const error& e) {
    const std::string& c = e.context();
    if (c.compare(0, label.size(), label) != 0) throw;
    throw error(e.code(), full() + c.substr(label.size()));
  }
}

inline std::vector<index_t> zarr_inner_grid(const array_metadata& m) {
  std::vector<index_t> g(m.chunk_shape.size());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = m.chunk_shape[i] / m.inner_chunk_shape[i];
  return g;
}

inline box zarr_inner_box(const array_metadata& m, std::span<const index_t> inner_index) {
  std::vector<index_t> origin(inner_index.size());
  for (std::size_t i = 0; i < origin.size(); ++i) origin[i] = inner_index[i] * m.inner_chunk_shape[i];
  return box(std::move(origin), m.inner_chunk_shape);
}

inline void zarr_check_chunk_view(const array_metadata& m, dtype t, const cairn::shape& s, bool host,
                                  std::string_view what) {
  if (!host) throw error(errc::unsupported, std::string(what) + ": zarr chunks are decoded in host memory");
  if (t != m.type)
    throw error(errc::type_mismatch, std::string(what) + ": chunk view has dtype " + std::string(name_of(t)) +
                                         ", the array " + std::string(name_of(m.type)));
  if (s.vector() != m.chunk_shape)
    throw error(errc::shape_mismatch, std::string(what) + ": chunk view has shape " + to_string(s) +
                                          ", the array's chunks " + to_string(m.chunk_shape));
}

}  // namespace detail

/// Encodes the full chunk `chunk` (edge chunks already padded) into the bytes stored under its key.
/// Inner chunks of a shard are all written (none is left out as "equal to the fill value"). zstd frames
/// record their content size and carry a content checksum when `zstd_checksum` or `frame_checksums`
/// is set.
/// \pre `m` is consistent (as parse_metadata / orbax_metadata return it).
/// \post `decode_chunk(m, result, out, w)` reproduces `chunk` in `out`.
/// \throws cairn::error (errc::type_mismatch / shape_mismatch) if `chunk` is not one chunk of `m`;
///         (errc::unsupported) if it is not in host memory.
inline byte_buffer encode_chunk(const array_metadata& m, const array_view& chunk) {
  detail::zarr_check_chunk_view(m, chunk.type(), chunk.shape(), chunk.space().is_host(), "encode_chunk");
  if (!m.sharded) return detail::zarr_encode_elements(m, chunk);

  const bool one = shard_of_one_chunk(m);  // as Orbax writes: no grid to walk
  const std::vector<index_t> inner_grid = one ? std::vector<index_t>() : detail::zarr_inner_grid(m);
  const auto n = one ? std::size_t{1} : static_cast<std::size_t>(checked_product(inner_grid));
  const std::size_t index_bytes = 16 * n + (m.index_crc32c ? 4 : 0);
  const bool start = m.index_location == shard_index_location::start;
  // One buffer for the whole shard, sized up front (chunks at their compression bound plus the index),
  // so a large chunk is compressed once, straight into place, and never copied or regrown.
  std::size_t inner_bytes = size_of(m.type);
  for (auto d : m.inner_chunk_shape) inner_bytes *= static_cast<std::size_t>(d);
  const std::size_t per_chunk = m.zstd_level ? codec::zstd_compressor::compress_bound(inner_bytes) : inner_bytes;
  byte_buffer out;
  out.reserve(n * per_chunk + index_bytes);
  if (start) out.resize(index_bytes);  // the index is filled in below
  std::uint64_t one_entry[2];
  std::vector<std::uint64_t> many_entries(one ? 0 : 2 * n);
  std::uint64_t* const entries = one ? one_entry : many_entries.data();
  std::size_t i = 0;
  auto encode_inner = [&](const array_view& inner) {
    const std::size_t before = out.size();
    detail::zarr_encode_elements_into(m, inner, out);
    entries[2 * i] = before;  // offsets count from the start of the shard, index included when it leads
    entries[2 * i + 1] = out.size() - before;
    ++i;
  };
  if (one)
    encode_inner(chunk);
  else
    for_each_point(box(cairn::shape(inner_grid)),
                   [&](std::span<const index_t> k) { encode_inner(chunk.sub(detail::zarr_inner_box(m, k))); });
  const std::size_t index_at = start ? 0 : out.size();
  if (!start) out.resize(out.size() + index_bytes);
  for (std::size_t j = 0; j < 2 * n; ++j) store_le<std::uint64_t>(out.data() + index_at + 8 * j, entries[j]);
  if (m.index_crc32c)
    store_le<std::uint32_t>(out.data() + index_at + 16 * n, crc32c(byte_view(out.data() + index_at, 16 * n)));
  return out;
}

/// Decodes the bytes `stored` under a chunk's key into `chunk_out`, a host view of one full chunk (any
/// strides; contiguous views are decoded in place without staging). Inner chunks missing from a shard
/// become the fill value. `what` names the chunk in errors, e.g. `array "a", key "a/c/0"`.
/// \pre `m` is consistent.
/// \throws cairn::error (errc::corrupted) naming `what` if a zstd frame is malformed or decodes to any size
///         but the chunk's, if an uncompressed chunk has the wrong length, if a shard is shorter than its
///         index, if the shard index CRC-32C does not match ("shard index CRC-32C mismatch"), or if an index
///         entry points outside the shard's data or is half missing;
///         (errc::type_mismatch / shape_mismatch / unsupported) if `chunk_out` is not a host view of one chunk.
inline void decode_chunk(const array_metadata& m, byte_view stored, const mutable_array_view& chunk_out,
                         std::string_view what) {
  detail::zarr_check_chunk_view(m, chunk_out.type(), chunk_out.shape(), chunk_out.space().is_host(), what);
  byte_buffer scratch;
  if (!m.sharded) {
    detail::zarr_decode_into_view(m, stored, chunk_out, scratch, what);
    return;
  }

  const bool one = shard_of_one_chunk(m);  // as Orbax writes: no grid to walk
  const std::vector<index_t> inner_grid = one ? std::vector<index_t>() : detail::zarr_inner_grid(m);
  const auto n = one ? std::uint64_t{1} : static_cast<std::uint64_t>(checked_product(inner_grid));
  const std::uint64_t crc_bytes = m.index_crc32c ? 4 : 0;
  // n is bounded by the chunk's element count, but 16n can still overflow; compare by division first.
  if (n > (stored.size() - std::min<std::uint64_t>(stored.size(), crc_bytes)) / 16)
    throw error(errc::corrupted, std::string(what) + ": shard of " + std::to_string(stored.size()) +
                                     " bytes is shorter than its index of " + std::to_string(n) + " entries");
  const std::uint64_t index_bytes = 16 * n + crc_bytes;
  const bool start = m.index_location == shard_index_location::start;
  const byte_view index = start ? stored.first(index_bytes) : stored.last(index_bytes);
  if (m.index_crc32c) {
    const std::uint32_t expect = load_le<std::uint32_t>(index.data() + 16 * n);
    const std::uint32_t actual = crc32c(index.first(16 * n));
    if (expect != actual)
      throw error(errc::corrupted, std::string(what) + ": shard index CRC-32C mismatch (stored " +
                                       std::to_string(expect) + ", computed " + std::to_string(actual) + ")");
  }
  const std::uint64_t data_begin = start ? index_bytes : 0;
  const std::uint64_t data_end = start ? stored.size() : stored.size() - index_bytes;

  std::vector<std::byte> fill_element;
  std::uint64_t i = 0;
  auto decode_inner = [&](std::span<const index_t> k, const mutable_array_view& target) {
    const std::uint64_t offset = load_le<std::uint64_t>(index.data() + 16 * i);
    const std::uint64_t nbytes = load_le<std::uint64_t>(index.data() + 16 * i + 8);
    ++i;
    auto inner_what = [&] { return std::string(what) + ", inner chunk " + to_string(k); };
    if (offset == detail::zarr_missing_inner && nbytes == detail::zarr_missing_inner) {
      if (fill_element.empty()) fill_element = detail::fill_bytes(m, errc::corrupted, what);
      fill(target, fill_element);
      return;
    }
    if (offset == detail::zarr_missing_inner || nbytes == detail::zarr_missing_inner)
      throw error(errc::corrupted, inner_what() + ": shard index entry is half missing (offset " +
                                       std::to_string(offset) + ", " + std::to_string(nbytes) + " bytes)");
    if (offset < data_begin || offset > data_end || nbytes > data_end - offset)
      throw error(errc::corrupted, inner_what() + ": shard index entry [" + std::to_string(offset) + ", +" +
                                       std::to_string(nbytes) + ") lies outside the shard's data [" +
                                       std::to_string(data_begin) + ", " + std::to_string(data_end) + ")");
    detail::zarr_relabel(what, inner_what, [&](std::string_view w) {
      detail::zarr_decode_into_view(m, stored.subspan(offset, nbytes), target, scratch, w);
    });
  };
  if (one) {
    with_zero_index(m.chunk_shape.size(), [&](std::span<const index_t> k) { decode_inner(k, chunk_out); });
    return;
  }
  for_each_point(box(cairn::shape(inner_grid)),
                 [&](std::span<const index_t> k) { decode_inner(k, chunk_out.sub(detail::zarr_inner_box(m, k))); });
}

}  // namespace cairn::zarr
