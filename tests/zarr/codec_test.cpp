// SPDX-License-Identifier: Apache-2.0
// zarr chunk codecs: the fixture chunks and shards decode, encode/decode round trips (v2, v3, several
// inner chunks, index first or last, with and without CRC), big-endian elements, strided outputs,
// missing inner chunks, and every way a stored chunk can be damaged or hostile.
#include <cairn/zarr/codec.hpp>

#include <doctest/doctest.h>
#include <zstd.h>  // only to craft frames the codec never writes (no content size)

#include <bit>
#include <complex>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "support/shared.hpp"
#include "zarr/fixtures.hpp"

namespace zarr = cairn::zarr;
using cairn::byte_buffer;
using cairn::dtype;
using cairn::errc;
using cairn::host_array;
using cairn::index_t;

namespace {

host_array iota_i32(cairn::shape s, std::int32_t start = 0) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(s.num_elements()));
  std::iota(v.begin(), v.end(), start);
  return host_array::from<std::int32_t>(v, std::move(s));
}

host_array iota_i16(cairn::shape s) {
  std::vector<std::int16_t> v(static_cast<std::size_t>(s.num_elements()));
  std::iota(v.begin(), v.end(), std::int16_t{100});
  return host_array::from<std::int16_t>(v, std::move(s));
}

host_array decode(const zarr::array_metadata& m, cairn::byte_view stored, std::string_view what = "chunk \"t\"") {
  host_array out(m.type, cairn::shape(m.chunk_shape));
  zarr::decode_chunk(m, stored, out.mutable_view(), what);
  return out;
}

/// Returns the error `decode` throws for `stored` (fails the test if it does not throw).
cairn::error decode_error(const zarr::array_metadata& m, cairn::byte_view stored) {
  try {
    (void)decode(m, stored, "array \"t\", key \"t/c/0\"");
  } catch (const cairn::error& e) {
    return e;
  }
  FAIL("decode_chunk accepted damaged input");
  return cairn::error(errc::corrupted, "unreachable");
}

void check_corrupted(const zarr::array_metadata& m, cairn::byte_view stored, std::string_view words) {
  const cairn::error e = decode_error(m, stored);
  const std::string what = e.what();
  CAPTURE(what);
  CHECK(e.code() == errc::corrupted);
  CHECK(what.find("array \"t\", key \"t/c/0\"") != std::string::npos);
  CHECK(what.find(words) != std::string::npos);
}

/// Rewrites index entry `i` of a shard whose index (16 bytes per entry + CRC) ends the value, and
/// recomputes the CRC so the damage is not caught by the checksum.
void set_entry(byte_buffer& shard, std::size_t entries, std::size_t i, std::uint64_t offset, std::uint64_t nbytes) {
  std::byte* index = shard.data() + shard.size() - (16 * entries + 4);
  cairn::store_le<std::uint64_t>(index + 16 * i, offset);
  cairn::store_le<std::uint64_t>(index + 16 * i + 8, nbytes);
  cairn::store_le<std::uint32_t>(index + 16 * entries, cairn::crc32c(cairn::byte_view(index, 16 * entries)));
}

byte_buffer frame_without_content_size(cairn::byte_view raw) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
  byte_buffer out(ZSTD_compressBound(raw.size()));
  const std::size_t n = ZSTD_compress2(c, out.data(), out.size(), raw.data(), raw.size());
  ZSTD_freeCCtx(c);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

}  // namespace

TEST_CASE("the fixture chunks and shards decode to the values Orbax wrote") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  int v2 = 0, v3 = 0;
  for (const auto& doc : cairn_test::fixture_metadata(*shared)) {
    CAPTURE(doc.db.string());
    CAPTURE(doc.key);
    const auto m = zarr::parse_metadata(doc.text, doc.key);
    const auto store = cairn_test::open_database(doc.db);
    const std::string key = doc.name + "/" + zarr::chunk_key(m, std::vector<index_t>{0});
    const auto stored = cairn::kvstore::read_required(store, key);
    const host_array got = decode(m, stored.view(), key);
    const auto values = got.values<std::int32_t>();
    if (doc.name == "a") CHECK(std::vector<std::int32_t>(values.begin(), values.end()) == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
    else CHECK(std::vector<std::int32_t>(values.begin(), values.end()) == std::vector<std::int32_t>{1, 2, 3});
    if (m.zarr_format == 3) {
      // One inner chunk per shard: frame, then (offset 0, nbytes = frame size), then the CRC of those 16 bytes.
      REQUIRE(stored.size() > 20);
      const std::byte* index = stored.data() + stored.size() - 20;
      CHECK(cairn::load_le<std::uint64_t>(index) == 0);
      CHECK(cairn::load_le<std::uint64_t>(index + 8) == stored.size() - 20);
      CHECK(cairn::load_le<std::uint32_t>(index + 16) == cairn::crc32c(cairn::byte_view(index, 16)));
      ++v3;
    } else {
      ++v2;
    }
  }
  CHECK(v2 >= 96);
  CHECK(v3 >= 52);
}

TEST_CASE("encode then decode restores the chunk: v2 and v3, compressed or not") {
  for (int format : {2, 3}) {
    for (bool compress : {false, true}) {
      CAPTURE(format);
      CAPTURE(compress);
      const auto m = zarr::orbax_metadata(format, dtype::int32, {5, 7}, {5, 7}, compress);
      const host_array chunk = iota_i32({5, 7}, -3);
      const byte_buffer stored = zarr::encode_chunk(m, chunk);
      CHECK(decode(m, stored) == chunk);
      const std::size_t raw = 5 * 7 * 4;
      if (format == 2 && !compress) {
        REQUIRE(stored.size() == raw);
        CHECK(std::memcmp(stored.data(), chunk.bytes().data(), raw) == 0);
      }
      if (format == 3) {
        REQUIRE(stored.size() >= 20);
        const std::byte* index = stored.data() + stored.size() - 20;
        CHECK(cairn::load_le<std::uint64_t>(index) == 0);
        CHECK(cairn::load_le<std::uint64_t>(index + 8) == stored.size() - 20);
        CHECK(cairn::load_le<std::uint32_t>(index + 16) == cairn::crc32c(cairn::byte_view(index, 16)));
        if (!compress) CHECK(stored.size() == raw + 20);
      }
      if (compress) CHECK(ZSTD_getFrameContentSize(stored.data(), stored.size()) != ZSTD_CONTENTSIZE_ERROR);
    }
  }
  // Rank 0: one element.
  for (int format : {2, 3}) {
    const auto m = zarr::orbax_metadata(format, dtype::float64, {}, {});
    const double pi = 3.25;
    const host_array scalar = host_array::from<double>(std::span<const double>(&pi, 1), {});
    CHECK(decode(m, zarr::encode_chunk(m, scalar)) == scalar);
  }
}

namespace {
/// Calls `f(m, location, crc, compress)` for the shards of an int16 {4, 6} array with inner chunks of
/// `inner`: index last or first, with or without its CRC, compressed or not.
template <class F>
void for_each_shard_layout(const std::vector<cairn::index_t>& inner, F&& f) {
  for (auto location : {zarr::shard_index_location::end, zarr::shard_index_location::start}) {
    for (bool crc : {true, false}) {
      for (bool compress : {true, false}) {
        CAPTURE(static_cast<int>(location));
        CAPTURE(crc);
        CAPTURE(compress);
        auto m = zarr::orbax_metadata(3, dtype::int16, {4, 6}, {4, 6}, compress);
        m.inner_chunk_shape = inner;
        m.index_location = location;
        m.index_crc32c = crc;
        f(m, location, crc, compress);
      }
    }
  }
}
}  // namespace

TEST_CASE("shards of several inner chunks: index last or first, with or without CRC") {
  for_each_shard_layout({2, 3}, [](const zarr::array_metadata& m, zarr::shard_index_location location, bool crc, bool compress) {
    const host_array shard = iota_i16({4, 6});
    const byte_buffer stored = zarr::encode_chunk(m, shard);
    CHECK(decode(m, stored) == shard);

    const std::size_t index_size = 4 * 16 + (crc ? 4 : 0);
    const std::byte* index =
        location == zarr::shard_index_location::end ? stored.data() + stored.size() - index_size : stored.data();
    std::uint64_t expect_offset = location == zarr::shard_index_location::start ? index_size : 0;
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(cairn::load_le<std::uint64_t>(index + 16 * i) == expect_offset);  // C order, back to back
      expect_offset += cairn::load_le<std::uint64_t>(index + 16 * i + 8);
      if (!compress) CHECK(cairn::load_le<std::uint64_t>(index + 16 * i + 8) == 2 * 3 * 2);
    }
    CHECK(expect_offset == (location == zarr::shard_index_location::start ? stored.size() : stored.size() - index_size));
    if (crc) CHECK(cairn::load_le<std::uint32_t>(index + 64) == cairn::crc32c(cairn::byte_view(index, 64)));
    // Inner chunk (0, 1) holds rows 0-1, columns 3-5; uncompressed it is those elements in C order.
    if (!compress) {
      std::int16_t first;
      std::memcpy(&first, stored.data() + cairn::load_le<std::uint64_t>(index + 16), 2);
      CHECK(first == 103);
    }
  });
}

TEST_CASE("shards of one inner chunk: index last or first, with or without CRC, and a damaged frame named") {
  // The shape Orbax writes, which encode_chunk and decode_chunk take without walking the inner grid.
  for_each_shard_layout({4, 6}, [](const zarr::array_metadata& m, zarr::shard_index_location location, bool crc, bool compress) {
    const host_array shard = iota_i16({4, 6});
    const byte_buffer stored = zarr::encode_chunk(m, shard);
    CHECK(decode(m, stored) == shard);
    const std::size_t index_size = 16 + (crc ? 4 : 0);
    const bool start = location == zarr::shard_index_location::start;
    const std::byte* index = start ? stored.data() : stored.data() + stored.size() - index_size;
    CHECK(cairn::load_le<std::uint64_t>(index) == (start ? index_size : 0));
    CHECK(cairn::load_le<std::uint64_t>(index + 8) == stored.size() - index_size);
    if (!compress) CHECK(stored.size() == 4 * 6 * 2 + index_size);
    if (crc) CHECK(cairn::load_le<std::uint32_t>(index + 16) == cairn::crc32c(cairn::byte_view(index, 16)));
    if (compress && !start && crc) {
      byte_buffer bad = stored;
      bad[0] ^= std::byte{0xff};  // the frame's magic number
      check_corrupted(m, bad, "inner chunk [0,0]: not a zstd frame");
    }
  });
}

TEST_CASE("a missing inner chunk decodes to the fill value") {
  auto m = zarr::orbax_metadata(3, dtype::int16, {4, 6}, {4, 6});
  m.inner_chunk_shape = {2, 3};
  m.fill_value = 7;
  const host_array shard = iota_i16({4, 6});
  byte_buffer stored = zarr::encode_chunk(m, shard);
  const std::uint64_t all = ~std::uint64_t{0};
  set_entry(stored, 4, 2, all, all);  // inner chunk (1, 0): rows 2-3, columns 0-2
  const host_array got = decode(m, stored);
  const auto v = got.values<std::int16_t>();
  const auto orig = shard.values<std::int16_t>();
  for (index_t r = 0; r < 4; ++r)
    for (index_t c = 0; c < 6; ++c) {
      const auto i = static_cast<std::size_t>(r * 6 + c);
      CHECK(v[i] == (r >= 2 && c < 3 ? 7 : orig[i]));
    }
  // Every inner chunk missing: a shard that is only an index.
  byte_buffer empty(4 * 16 + 4);
  for (std::size_t i = 0; i < 4; ++i) set_entry(empty, 4, i, all, all);
  const host_array all_fill = decode(m, empty);
  for (auto x : all_fill.values<std::int16_t>()) CHECK(x == 7);
}

TEST_CASE("big-endian elements (v2 >f4, >i8, >c8) are swapped on read and on write") {
  const std::string base =
      R"({"chunks":[3],"compressor":null,"dimension_separator":".","dtype":">f4","fill_value":null,"filters":null,"order":"C","shape":[3],"zarr_format":2})";
  const auto m = zarr::parse_metadata(base, "be");
  const float values[3] = {1.5f, -2.25f, 1e10f};
  byte_buffer stored(12);
  for (int i = 0; i < 3; ++i) cairn::store_be<std::uint32_t>(stored.data() + 4 * i, std::bit_cast<std::uint32_t>(values[i]));
  const host_array got = decode(m, stored);
  CHECK(got.values<float>()[0] == 1.5f);
  CHECK(got.values<float>()[1] == -2.25f);
  CHECK(got.values<float>()[2] == 1e10f);
  // Writing with the same metadata produces the big-endian bytes again.
  const byte_buffer again = zarr::encode_chunk(m, got);
  REQUIRE(again.size() == 12);
  CHECK(std::memcmp(again.data(), stored.data(), 12) == 0);

  // Compressed >i8.
  auto m8 = zarr::parse_metadata(R"({"chunks":[2],"compressor":{"id":"zstd","level":1},"dimension_separator":".","dtype":">i8","fill_value":null,"filters":null,"order":"C","shape":[2],"zarr_format":2})", "be8");
  byte_buffer raw8(16);
  cairn::store_be<std::uint64_t>(raw8.data(), 0x0102030405060708u);
  cairn::store_be<std::uint64_t>(raw8.data() + 8, static_cast<std::uint64_t>(-5));
  const host_array got8 = decode(m8, cairn::codec::zstd_compress(raw8.view(), 1));
  CHECK(got8.values<std::int64_t>()[0] == 0x0102030405060708);
  CHECK(got8.values<std::int64_t>()[1] == -5);

  // >c8: each 4-byte component is swapped on its own.
  auto mc = zarr::parse_metadata(R"({"chunks":[1],"compressor":null,"dimension_separator":".","dtype":">c8","fill_value":null,"filters":null,"order":"C","shape":[1],"zarr_format":2})", "bec");
  byte_buffer rawc(8);
  cairn::store_be<std::uint32_t>(rawc.data(), std::bit_cast<std::uint32_t>(3.0f));
  cairn::store_be<std::uint32_t>(rawc.data() + 4, std::bit_cast<std::uint32_t>(-4.0f));
  CHECK(decode(mc, rawc).values<std::complex<float>>()[0] == std::complex<float>(3.0f, -4.0f));
}

TEST_CASE("decoding into strided views and rejecting views that are not one chunk") {
  for (int format : {2, 3}) {
    auto m = zarr::orbax_metadata(format, dtype::int32, {3, 4}, {3, 4});
    if (format == 3) m.inner_chunk_shape = {3, 2};
    const host_array chunk = iota_i32({3, 4}, 10);
    const byte_buffer stored = zarr::encode_chunk(m, chunk);
    // The chunk lands in the middle of a larger array: rows 1-3, columns 2-5 of a 5x7 buffer.
    host_array big(dtype::int32, {5, 7});
    zarr::decode_chunk(m, stored, big.mutable_view().sub(cairn::parse_box("[1:4, 2:6]")), "strided");
    const auto v = big.values<std::int32_t>();
    for (index_t r = 0; r < 5; ++r)
      for (index_t c = 0; c < 7; ++c) {
        const bool inside = r >= 1 && r < 4 && c >= 2 && c < 6;
        CHECK(v[static_cast<std::size_t>(r * 7 + c)] == (inside ? 10 + (r - 1) * 4 + (c - 2) : 0));
      }
    // Encoding from a strided view gives the same bytes as from a contiguous one.
    CHECK(zarr::encode_chunk(m, big.view().sub(cairn::parse_box("[1:4, 2:6]"))).view().size() == stored.size());
    CHECK(decode(m, zarr::encode_chunk(m, big.view().sub(cairn::parse_box("[1:4, 2:6]")))) == chunk);

    host_array wrong_type(dtype::uint32, {3, 4});
    try {
      zarr::decode_chunk(m, stored, wrong_type.mutable_view(), "t");
      FAIL("accepted a uint32 view");
    } catch (const cairn::error& e) {
      CHECK(e.code() == errc::type_mismatch);
    }
    host_array wrong_shape(dtype::int32, {4, 3});
    try {
      zarr::decode_chunk(m, stored, wrong_shape.mutable_view(), "t");
      FAIL("accepted a 4x3 view");
    } catch (const cairn::error& e) {
      CHECK(e.code() == errc::shape_mismatch);
    }
  }
}

TEST_CASE("damaged shards: CRC, truncation, out-of-range and half-missing index entries") {
  auto m = zarr::orbax_metadata(3, dtype::int16, {4, 6}, {4, 6});
  m.inner_chunk_shape = {2, 3};
  const byte_buffer good = zarr::encode_chunk(m, iota_i16({4, 6}));
  const std::size_t index_at = good.size() - (4 * 16 + 4);

  for (std::size_t pos : {index_at, index_at + 9, index_at + 63, good.size() - 1}) {
    CAPTURE(pos);
    byte_buffer bad = good;
    bad[pos] ^= std::byte{0x10};
    check_corrupted(m, bad, "shard index CRC-32C mismatch");
  }
  check_corrupted(m, good.view().first(30), "shorter than its index");
  check_corrupted(m, cairn::byte_view(), "shorter than its index");
  // Chopping the front keeps a valid index, but the first entry no longer points at a frame.
  check_corrupted(m, good.view().last(good.size() - 5), "inner chunk [0,0]: not a zstd frame");

  const std::uint64_t all = ~std::uint64_t{0};
  const std::uint64_t data_end = index_at;
  struct entry_case {
    std::uint64_t offset, nbytes;
    const char* words;
  };
  for (const entry_case& c : std::initializer_list<entry_case>{
           {data_end + 1, 0, "outside the shard's data"},
           {0, data_end + 1, "outside the shard's data"},
           {data_end - 2, 10, "outside the shard's data"},  // would read into the index
           {1, std::uint64_t{1} << 63, "outside the shard's data"},
           {all - 1, 2, "outside the shard's data"},  // offset + nbytes wraps around
           {all, 5, "half missing"},
           {0, all, "half missing"},
       }) {
    CAPTURE(c.offset);
    CAPTURE(c.nbytes);
    byte_buffer bad = good;
    set_entry(bad, 4, 1, c.offset, c.nbytes);
    check_corrupted(m, bad, c.words);
  }
  // An entry that points at another inner chunk's frame decodes (it is a valid frame of the right size)...
  byte_buffer aliased = good;
  set_entry(aliased, 4, 1, cairn::load_le<std::uint64_t>(good.data() + index_at),
            cairn::load_le<std::uint64_t>(good.data() + index_at + 8));
  CHECK_NOTHROW(decode(m, aliased));
  // ... but one that cuts a frame short does not.
  byte_buffer cut = good;
  set_entry(cut, 4, 1, cairn::load_le<std::uint64_t>(good.data() + index_at + 16),
            cairn::load_le<std::uint64_t>(good.data() + index_at + 24) - 1);
  check_corrupted(m, cut, "inner chunk [0,1]");
}

TEST_CASE("damaged and hostile chunks: truncated frames, wrong sizes, garbage") {
  const auto m = zarr::orbax_metadata(2, dtype::int32, {8}, {8});
  const host_array chunk = iota_i32({8});
  const byte_buffer good = zarr::encode_chunk(m, chunk);
  check_corrupted(m, good.view().first(good.size() - 3), "truncated");
  check_corrupted(m, cairn::byte_view(), "empty");
  const std::string garbage = "this is not a zstd frame at all";
  check_corrupted(m, cairn::as_bytes(garbage), "not a zstd frame");

  // A frame of 9 elements where the metadata says 8: rejected by its declared size, or, without one,
  // by the decoded size.
  const host_array nine = iota_i32({9});
  check_corrupted(m, cairn::codec::zstd_compress(nine.bytes(), 1), "declares 36 bytes");
  check_corrupted(m, frame_without_content_size(nine.bytes()), "more than the expected 32");
  const host_array seven = iota_i32({7});
  check_corrupted(m, frame_without_content_size(seven.bytes()), "decodes to 28 bytes, expected 32");
  // Without a content size the right frame still decodes (the v2 fixture frames look like this).
  CHECK(decode(m, frame_without_content_size(chunk.bytes())) == chunk);

  // A tiny frame of a huge run of zeros: its header claims far more than a chunk; nothing is allocated from it.
  byte_buffer zeros(std::size_t{64} << 20);
  std::memset(zeros.data(), 0, zeros.size());
  const byte_buffer bomb = cairn::codec::zstd_compress(zeros.view(), 1);
  CHECK(bomb.size() < 64 * 1024);
  check_corrupted(m, bomb, "more than the expected 32");
  check_corrupted(m, frame_without_content_size(zeros.view()), "more than the expected 32");

  // Uncompressed chunks must have exactly the chunk's length.
  const auto raw = zarr::orbax_metadata(2, dtype::int32, {8}, {8}, false);
  check_corrupted(raw, chunk.bytes().first(31), "uncompressed chunk has 31 bytes, expected 32");
  byte_buffer longer(chunk.bytes());
  longer.push_back(std::byte{0});
  check_corrupted(raw, longer, "uncompressed chunk has 33 bytes, expected 32");

  // v3 inner chunk with the wrong decoded size.
  auto m3 = zarr::orbax_metadata(3, dtype::int32, {8}, {8});
  byte_buffer shard = cairn::codec::zstd_compress(nine.bytes(), 3);
  const std::uint64_t frame = shard.size();
  shard.resize(frame + 20);
  cairn::store_le<std::uint64_t>(shard.data() + frame, 0);
  cairn::store_le<std::uint64_t>(shard.data() + frame + 8, frame);
  cairn::store_le<std::uint32_t>(shard.data() + frame + 16, cairn::crc32c(cairn::byte_view(shard.data() + frame, 16)));
  check_corrupted(m3, shard, "inner chunk [0]: zstd frame declares 36 bytes");
}
