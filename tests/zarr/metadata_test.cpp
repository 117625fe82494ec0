// SPDX-License-Identifier: Apache-2.0
// zarr metadata: every fixture `.zarray` / `zarr.json` parses and re-serialises byte for byte, the
// metadata Orbax requests, fill values, chunk keys, the chunk grid laws, and every rejection.
#include <cairn/zarr/metadata.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "support/shared.hpp"
#include "zarr/fixtures.hpp"

namespace zarr = cairn::zarr;
using cairn::dtype;
using cairn::errc;
using cairn::index_t;

namespace {

// Verbatim from orbax-format.md §2.2 / §2.3 (observed TensorStore output).
const std::string v2_example =
    R"({"chunks":[8],"compressor":{"id":"zstd","level":1},"dimension_separator":".","dtype":"<i4","fill_value":null,"filters":null,"order":"C","shape":[8],"zarr_format":2})";
const std::string v3_example =
    R"({"chunk_grid":{"configuration":{"chunk_shape":[8]},"name":"regular"},"chunk_key_encoding":{"name":"default"},"codecs":[{"configuration":{"chunk_shape":[8],"codecs":[{"configuration":{"endian":"little"},"name":"bytes"},{"configuration":{"checksum":false,"level":3},"name":"zstd"}],"index_codecs":[{"configuration":{"endian":"little"},"name":"bytes"},{"name":"crc32c"}]},"name":"sharding_indexed"}],"data_type":"int32","fill_value":0,"node_type":"array","shape":[8],"zarr_format":3})";

std::string replace(std::string s, std::string_view from, std::string_view to) {
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
  return s;
}

/// Runs `parse_metadata` on `text` and returns the error it throws (fails the test if it does not throw).
cairn::error rejection(const std::string& text) {
  try {
    (void)zarr::parse_metadata(text, "array \"w\"");
  } catch (const cairn::error& e) {
    return e;
  }
  FAIL("parse_metadata accepted " << text);
  return cairn::error(errc::corrupted, "unreachable");
}

void check_rejected(const std::string& text, errc code, std::initializer_list<std::string_view> words) {
  CAPTURE(text);
  const cairn::error e = rejection(text);
  CHECK(e.code() == code);
  const std::string what = e.what();
  CAPTURE(what);
  CHECK(what.find("array \"w\"") != std::string::npos);
  for (auto w : words) CHECK(what.find(w) != std::string::npos);
}

template <class T>
T fill_as(const zarr::array_metadata& m) {
  const auto bytes = zarr::fill_value_bytes(m);
  REQUIRE(bytes.size() == sizeof(T));
  T v;
  std::memcpy(&v, bytes.data(), sizeof(T));
  return v;
}

}  // namespace

TEST_CASE("every fixture .zarray and zarr.json parses and re-serialises byte-identically") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  int v2 = 0, v3 = 0;
  std::set<std::string> names;
  for (const auto& doc : cairn_test::fixture_metadata(*shared)) {
    CAPTURE(doc.db.string());
    CAPTURE(doc.key);
    const auto m = zarr::parse_metadata(doc.text, doc.key);
    CHECK(zarr::to_json(m) == doc.text);
    CHECK(m.type == dtype::int32);
    CHECK(m.byte_order == std::endian::little);
    names.insert(doc.name);
    const index_t n = doc.name == "a" ? 8 : 3;
    CHECK(m.shape == cairn::shape{n});
    CHECK(m.chunk_shape == std::vector<index_t>{n});
    if (doc.key.ends_with(".zarray")) {
      ++v2;
      CHECK(m.zarr_format == 2);
      CHECK(m.zstd_level == 1);
      CHECK(m.fill_value.is_null());
      CHECK_FALSE(m.sharded);
    } else {
      ++v3;
      CHECK(m.zarr_format == 3);
      CHECK(m.sharded);
      CHECK(m.inner_chunk_shape == std::vector<index_t>{n});
      CHECK(m.zstd_level == 3);
      CHECK(m.index_crc32c);
      CHECK(m.index_location == zarr::shard_index_location::end);
      CHECK(m.key_encoding == zarr::chunk_key_kind::default_);
    }
  }
  MESSAGE(v2 << " .zarray and " << v3 << " zarr.json documents re-serialised");
  CHECK(v2 >= 96);  // 48 healthy v0 databases (items and their ocdbt.process_0), two arrays each
  CHECK(v3 >= 52);
  CHECK(names == std::set<std::string>{"a", "b.c"});
}

TEST_CASE("orbax_metadata reproduces what TensorStore writes for Orbax") {
  CHECK(zarr::to_json(zarr::orbax_metadata(2, dtype::int32, {8}, {8})) == v2_example);
  CHECK(zarr::to_json(zarr::orbax_metadata(3, dtype::int32, {8}, {8})) == v3_example);
  CHECK(zarr::parse_metadata(v2_example, "v2") == zarr::orbax_metadata(2, dtype::int32, {8}, {8}));
  CHECK(zarr::parse_metadata(v3_example, "v3") == zarr::orbax_metadata(3, dtype::int32, {8}, {8}));

  // Uncompressed: compressor null (v2); the inner zstd codec is absent (v3).
  CHECK(zarr::to_json(zarr::orbax_metadata(2, dtype::int32, {8}, {8}, false)) ==
        replace(v2_example, R"({"id":"zstd","level":1})", "null"));
  CHECK(zarr::to_json(zarr::orbax_metadata(3, dtype::int32, {8}, {8}, false)) ==
        replace(v3_example, R"(,{"configuration":{"checksum":false,"level":3},"name":"zstd"})", ""));

  // Fill values: the zero of the type, as TensorStore writes it.
  CHECK(zarr::to_json(zarr::orbax_metadata(3, dtype::float32, {2, 3}, {1, 3})).find(R"("fill_value":0.0,)") !=
        std::string::npos);
  CHECK(zarr::to_json(zarr::orbax_metadata(3, dtype::bool_, {2}, {2})).find(R"("fill_value":false,)") !=
        std::string::npos);
  CHECK(zarr::to_json(zarr::orbax_metadata(3, dtype::complex64, {2}, {2})).find(R"("fill_value":[0.0,0.0],)") !=
        std::string::npos);
  CHECK(zarr::to_json(zarr::orbax_metadata(3, dtype::uint64, {2}, {2})).find(R"("fill_value":0,)") !=
        std::string::npos);

  // Rank 0 (Orbax scalars).
  CHECK(zarr::to_json(zarr::orbax_metadata(2, dtype::float64, {}, {})) ==
        R"({"chunks":[],"compressor":{"id":"zstd","level":1},"dimension_separator":".","dtype":"<f8","fill_value":null,"filters":null,"order":"C","shape":[],"zarr_format":2})");

  CHECK_THROWS_AS(zarr::orbax_metadata(4, dtype::int32, {8}, {8}), cairn::error);
  try {
    (void)zarr::orbax_metadata(2, dtype::int32, {8}, {0});
    FAIL("accepted a chunk extent of 0");
  } catch (const cairn::error& e) {
    CHECK(e.code() == errc::invalid_argument);
  }
}

TEST_CASE("every dtype round-trips through to_json and parse_metadata in both formats") {
  for (std::size_t i = 0; i < cairn::dtype_count; ++i) {
    const auto t = static_cast<dtype>(i);
    CAPTURE(t);
    for (int format : {2, 3}) {
      for (bool compress : {false, true}) {
        const auto m = zarr::orbax_metadata(format, t, {5, 3}, {2, 3}, compress);
        const std::string text = zarr::to_json(m);
        CHECK(zarr::parse_metadata(text, "dtype round trip") == m);
        if (format == 2) CHECK(text.find("\"dtype\":\"" + std::string(cairn::info(t).zarr_v2) + "\"") != std::string::npos);
        else CHECK(text.find("\"data_type\":\"" + std::string(cairn::info(t).zarr_v3) + "\"") != std::string::npos);
      }
    }
  }
}

TEST_CASE("1-byte dtypes: the bytes codec has no endian, and both spellings are read") {
  // TensorStore resolves the bytes codec of an endian-invariant type to {"name":"bytes"}.
  const std::string text = zarr::to_json(zarr::orbax_metadata(3, dtype::uint8, {8}, {8}));
  CHECK(text.find(R"("codecs":[{"name":"bytes"},{"configuration":{"checksum":false,"level":3},"name":"zstd"}])") !=
        std::string::npos);
  // The index codec is uint64, so it keeps its endian.
  CHECK(text.find(R"("index_codecs":[{"configuration":{"endian":"little"},"name":"bytes"},{"name":"crc32c"}])") !=
        std::string::npos);
  const std::string with_endian =
      replace(text, R"({"name":"bytes"},{"configuration")", R"({"configuration":{"endian":"little"},"name":"bytes"},{"configuration")");
  CHECK(zarr::parse_metadata(with_endian, "u8") == zarr::parse_metadata(text, "u8"));
  CHECK(zarr::parse_metadata(replace(text, R"({"name":"bytes"},{"configuration")", R"("bytes",{"configuration")"), "u8")
            .type == dtype::uint8);
  // A multi-byte type without endian is refused.
  check_rejected(replace(v3_example, R"({"configuration":{"endian":"little"},"name":"bytes"},{"configuration":{"checksum")",
                         R"({"name":"bytes"},{"configuration":{"checksum")"),
                 errc::corrupted, {"endian", "int32"});
}

TEST_CASE("v2 details: byte order, separators, compressor forms, fill values") {
  auto big = zarr::parse_metadata(replace(v2_example, "<i4", ">f4"), "big");
  CHECK(big.type == dtype::float32);
  CHECK(big.byte_order == std::endian::big);
  CHECK(zarr::to_json(big) == replace(v2_example, "<i4", ">f4"));
  CHECK(zarr::parse_metadata(replace(v2_example, "<i4", "|u1"), "u1").type == dtype::uint8);
  CHECK(zarr::parse_metadata(replace(v2_example, "<i4", "bfloat16"), "bf16").type == dtype::bfloat16);

  auto slash = zarr::parse_metadata(replace(v2_example, R"("dimension_separator":".")", R"("dimension_separator":"/")"), "s");
  CHECK(slash.separator == '/');
  auto no_sep = zarr::parse_metadata(replace(v2_example, R"("dimension_separator":".",)", ""), "s");
  CHECK(no_sep.separator == '.');
  CHECK(zarr::to_json(no_sep) == v2_example);  // TensorStore always writes the member

  auto plain = zarr::parse_metadata(replace(v2_example, R"({"id":"zstd","level":1})", R"({"id":"zstd"})"), "z");
  CHECK(plain.zstd_level == 1);
  auto checksum =
      zarr::parse_metadata(replace(v2_example, R"({"id":"zstd","level":1})", R"({"checksum":true,"id":"zstd","level":5})"), "z");
  CHECK(checksum.zstd_level == 5);
  CHECK(checksum.zstd_checksum);
  CHECK(zarr::parse_metadata(replace(v2_example, R"("filters":null)", R"("filters":[])"), "f").zarr_format == 2);
  // Unknown members of a v2 document are ignored.
  CHECK(zarr::parse_metadata(replace(v2_example, R"("order")", R"("extra":{"x":1},"order")"), "x").shape ==
        cairn::shape{8});

  auto fill42 = zarr::parse_metadata(replace(v2_example, R"("fill_value":null)", R"("fill_value":42)"), "f");
  CHECK(fill_as<std::int32_t>(fill42) == 42);
  CHECK(fill_as<std::int32_t>(zarr::parse_metadata(v2_example, "f")) == 0);  // null: zeros
  // base64 of the little-endian int32 7
  auto b64 = zarr::parse_metadata(replace(v2_example, R"("fill_value":null)", R"("fill_value":"BwAAAA==")"), "f");
  CHECK(fill_as<std::int32_t>(b64) == 7);
  auto nan = zarr::parse_metadata(replace(replace(v2_example, "<i4", "<f4"), R"("fill_value":null)", R"("fill_value":"NaN")"), "f");
  CHECK(std::isnan(fill_as<float>(nan)));
  auto inf = zarr::parse_metadata(replace(replace(v2_example, "<i4", "<f8"), R"("fill_value":null)", R"("fill_value":"-Infinity")"), "f");
  CHECK(fill_as<double>(inf) == -HUGE_VAL);
}

TEST_CASE("v3 details: fill values, index location, key encodings, preserved members") {
  auto f32 = [&](std::string fill) {
    return zarr::parse_metadata(replace(replace(v3_example, R"("data_type":"int32")", R"("data_type":"float32")"),
                                        R"("fill_value":0)", R"("fill_value":)" + fill),
                                "f32");
  };
  CHECK(fill_as<float>(f32("1.5")) == 1.5f);
  CHECK(fill_as<float>(f32("\"Infinity\"")) == HUGE_VALF);
  CHECK(fill_as<std::uint32_t>(f32("\"NaN\"")) == 0x7FC00000u);
  CHECK(fill_as<std::uint32_t>(f32("\"0x7fc00001\"")) == 0x7FC00001u);
  CHECK(zarr::to_json(f32("\"0x7fc00001\"")).find(R"("fill_value":"0x7fc00001")") != std::string::npos);
  auto bf16 = zarr::parse_metadata(replace(replace(v3_example, R"("data_type":"int32")", R"("data_type":"bfloat16")"),
                                           R"("fill_value":0)", R"("fill_value":-2.0)"),
                                   "bf16");
  CHECK(fill_as<std::uint16_t>(bf16) == 0xC000);

  auto start = zarr::parse_metadata(replace(v3_example, R"("index_codecs")", R"("index_location":"start","index_codecs")"), "s");
  CHECK(start.index_location == zarr::shard_index_location::start);
  CHECK(zarr::to_json(start).find(R"("index_location":"start")") != std::string::npos);
  CHECK(zarr::parse_metadata(zarr::to_json(start), "s") == start);
  auto end = zarr::parse_metadata(replace(v3_example, R"("index_codecs")", R"("index_location":"end","index_codecs")"), "e");
  CHECK(zarr::to_json(end) == v3_example);  // "end" is the default and is omitted
  auto no_crc = zarr::parse_metadata(replace(v3_example, R"(,{"name":"crc32c"})", ""), "n");
  CHECK_FALSE(no_crc.index_crc32c);

  auto v2keys = zarr::parse_metadata(replace(v3_example, R"({"name":"default"})", R"({"name":"v2"})"), "k");
  CHECK(v2keys.key_encoding == zarr::chunk_key_kind::v2);
  CHECK(v2keys.separator == '.');
  auto dotted = zarr::parse_metadata(
      replace(v3_example, R"({"name":"default"})", R"({"configuration":{"separator":"."},"name":"default"})"), "k");
  CHECK(dotted.separator == '.');
  CHECK(zarr::to_json(dotted).find(R"({"configuration":{"separator":"."},"name":"default"})") != std::string::npos);

  const std::string named = replace(v3_example, R"("fill_value")", R"("dimension_names":["x"],"fill_value")");
  const std::string with_attrs = replace(named, R"({"chunk_grid")", R"({"attributes":{"k":[1,"v"]},"chunk_grid")");
  auto kept = zarr::parse_metadata(with_attrs, "p");
  REQUIRE(kept.dimension_names);
  REQUIRE(kept.attributes);
  CHECK(zarr::to_json(kept) == with_attrs);
  // An optional extension is skipped; storage_transformers may be empty.
  CHECK(zarr::parse_metadata(replace(v3_example, R"("node_type")", R"("ext":{"must_understand":false},"node_type")"), "x")
            .zarr_format == 3);
  CHECK(zarr::parse_metadata(replace(v3_example, R"("node_type")", R"("storage_transformers":[],"node_type")"), "x")
            .zarr_format == 3);

  // Unsharded v3 (bytes + zstd directly).
  const std::string unsharded =
      R"({"chunk_grid":{"configuration":{"chunk_shape":[4,2]},"name":"regular"},"chunk_key_encoding":{"name":"default"},"codecs":[{"configuration":{"endian":"big"},"name":"bytes"},{"configuration":{"checksum":true,"level":5},"name":"zstd"}],"data_type":"uint16","fill_value":3,"node_type":"array","shape":[9,2],"zarr_format":3})";
  auto u = zarr::parse_metadata(unsharded, "u");
  CHECK_FALSE(u.sharded);
  CHECK(u.byte_order == std::endian::big);
  CHECK(u.zstd_level == 5);
  CHECK(u.zstd_checksum);
  CHECK(fill_as<std::uint16_t>(u) == 3);
  CHECK(zarr::to_json(u) == unsharded);
}

TEST_CASE("chunk keys") {
  const auto v2 = zarr::orbax_metadata(2, dtype::int32, {8, 9, 10}, {4, 4, 4});
  CHECK(zarr::chunk_key(v2, std::vector<index_t>{0, 0, 0}) == "0.0.0");
  CHECK(zarr::chunk_key(v2, std::vector<index_t>{1, 2, 0}) == "1.2.0");
  const auto v3 = zarr::orbax_metadata(3, dtype::int32, {8, 9}, {4, 4});
  CHECK(zarr::chunk_key(v3, std::vector<index_t>{1, 2}) == "c/1/2");
  CHECK(zarr::chunk_key(zarr::orbax_metadata(2, dtype::int32, {}, {}), {}) == "0");
  CHECK(zarr::chunk_key(zarr::orbax_metadata(3, dtype::int32, {}, {}), {}) == "c");
  auto slash = v2;
  slash.separator = '/';
  CHECK(zarr::chunk_key(slash, std::vector<index_t>{3, 1, 0}) == "3/1/0");
  auto v3v2 = v3;
  v3v2.key_encoding = zarr::chunk_key_kind::v2;
  v3v2.separator = '.';
  CHECK(zarr::chunk_key(v3v2, std::vector<index_t>{3, 1}) == "3.1");
  CHECK(zarr::metadata_key(2) == ".zarray");
  CHECK(zarr::metadata_key(3) == "zarr.json");
  CHECK_THROWS_AS(zarr::chunk_key(v3, std::vector<index_t>{1}), cairn::error);
}

TEST_CASE("chunk grid: grid shape, chunk boxes, and exactly the chunks that intersect a box") {
  const auto m = zarr::orbax_metadata(2, dtype::int8, {7, 5}, {3, 2});
  CHECK(zarr::grid_shape(m) == std::vector<index_t>{3, 3});
  CHECK(zarr::chunk_box(m, std::vector<index_t>{2, 1}) == cairn::parse_box("[6:9, 2:4]"));
  CHECK(zarr::grid_shape(zarr::orbax_metadata(2, dtype::int8, {0, 5}, {3, 2})) == std::vector<index_t>{0, 3});
  CHECK(zarr::grid_shape(zarr::orbax_metadata(2, dtype::int8, {}, {})).empty());
  CHECK(zarr::chunks_intersecting(zarr::orbax_metadata(2, dtype::int8, {}, {}), cairn::box()).size() == 1);

  // Law, exhaustively over every sub-box of a small array: the visited chunks are exactly those whose
  // box meets the region, in C order, each once.
  const cairn::box domain(m.shape);
  int boxes = 0;
  for (index_t x0 = 0; x0 <= 7; ++x0)
    for (index_t x1 = x0; x1 <= 7; ++x1)
      for (index_t y0 = 0; y0 <= 5; ++y0)
        for (index_t y1 = y0; y1 <= 5; ++y1) {
          const cairn::box region({x0, y0}, {x1 - x0, y1 - y0});
          std::vector<std::vector<index_t>> expect;
          for (index_t i = 0; i < 3; ++i)
            for (index_t j = 0; j < 3; ++j)
              if (!cairn::intersect(zarr::chunk_box(m, std::vector<index_t>{i, j}), region).empty())
                expect.push_back({i, j});
          CHECK(zarr::chunks_intersecting(m, region) == expect);
          ++boxes;
        }
  CHECK(boxes == 36 * 21);
  CHECK_THROWS_AS(zarr::chunks_intersecting(m, cairn::parse_box("[0:8, 0:1]")), cairn::error);
}

TEST_CASE("rejections name the array, the field and what was expected") {
  check_rejected(replace(v2_example, R"("order":"C")", R"("order":"F")"), errc::unsupported, {"order", "\"F\""});
  check_rejected(replace(v2_example, R"("order":"C")", R"("order":"X")"), errc::corrupted, {"order"});
  check_rejected(replace(v2_example, R"("filters":null)", R"("filters":[{"id":"delta"}])"), errc::unsupported,
                 {"filters", "delta"});
  check_rejected(replace(v2_example, R"({"id":"zstd","level":1})", R"({"id":"blosc","cname":"lz4"})"),
                 errc::unsupported, {"compressor", "blosc"});
  check_rejected(replace(v2_example, R"("level":1)", R"("level":1,"strategy":2)"), errc::unsupported, {"strategy"});
  check_rejected(replace(v2_example, R"("<i4")", R"([["a","<i4"]])"), errc::unsupported, {"dtype", "structured"});
  check_rejected(replace(v2_example, R"("<i4")", R"("<S5")"), errc::unsupported, {"dtype", "<S5"});
  check_rejected(replace(v2_example, R"("zarr_format":2)", R"("zarr_format":4)"), errc::incompatible_format,
                 {"zarr_format", "4"});
  check_rejected(replace(v2_example, R"("zarr_format":2)", R"("zarr_format":"2")"), errc::corrupted, {"zarr_format"});
  check_rejected(replace(v2_example, R"("chunks":[8],)", ""), errc::corrupted, {"chunks", "missing"});
  check_rejected(replace(v2_example, R"("chunks":[8])", R"("chunks":[8,1])"), errc::corrupted, {"rank"});
  check_rejected(replace(v2_example, R"("chunks":[8])", R"("chunks":[0])"), errc::corrupted, {"chunks", "below 1"});
  check_rejected(replace(v2_example, R"("shape":[8])", R"("shape":[-1])"), errc::corrupted, {"shape"});
  check_rejected(replace(v2_example, R"("shape":[8])", R"("shape":["8"])"), errc::corrupted, {"shape", "integer"});
  check_rejected(replace(v2_example, R"("shape":[8])", R"("shape":[4611686018427387904])"), errc::corrupted,
                 {"shape", "2^63"});
  check_rejected(replace(v2_example, R"("fill_value":null)", R"("fill_value":"zz")"), errc::corrupted, {"fill_value"});
  check_rejected(replace(replace(v2_example, "<i4", "|i1"), R"("fill_value":null)", R"("fill_value":300)"),
                 errc::corrupted, {"fill_value", "out of range"});
  check_rejected(replace(v2_example, R"("dimension_separator":".")", R"("dimension_separator":"-")"), errc::corrupted,
                 {"dimension_separator"});
  check_rejected("{\"zarr_format\":2,", errc::corrupted, {});
  check_rejected("[2]", errc::corrupted, {});

  check_rejected(replace(v3_example, R"({"configuration":{"checksum":false,"level":3},"name":"zstd"})",
                         R"({"configuration":{"level":5},"name":"gzip"})"),
                 errc::unsupported, {"gzip"});
  check_rejected(replace(v3_example, R"("codecs":[{"configuration":{"chunk_shape")",
                         R"("codecs":[{"configuration":{"order":[0]},"name":"transpose"},{"configuration":{"chunk_shape")"),
                 errc::unsupported, {"transpose"});
  check_rejected(replace(v3_example, R"("name":"sharding_indexed")", R"("name":"sharding_magic")"), errc::unsupported,
                 {"sharding_magic"});
  check_rejected(replace(v3_example, R"({"name":"crc32c"})", R"({"name":"adler32"})"), errc::unsupported, {"adler32"});
  check_rejected(replace(v3_example, R"("data_type":"int32")", R"("data_type":"string")"), errc::unsupported,
                 {"data_type", "string"});
  check_rejected(replace(v3_example, R"("node_type":"array")", R"("node_type":"group")"), errc::corrupted,
                 {"node_type"});
  check_rejected(replace(v3_example, R"("node_type")", R"("sparse":{"x":1},"node_type")"), errc::unsupported,
                 {"sparse"});
  check_rejected(replace(v3_example, R"("node_type")", R"("storage_transformers":[{"name":"t"}],"node_type")"),
                 errc::unsupported, {"storage_transformers"});
  check_rejected(replace(v3_example, R"("chunk_shape":[8]},"name":"regular")", R"("chunk_shape":[8]},"name":"rectilinear")"),
                 errc::unsupported, {"rectilinear"});
  check_rejected(replace(v3_example, R"({"name":"default"})", R"({"name":"hashed"})"), errc::unsupported, {"hashed"});
  check_rejected(replace(v3_example, R"("chunk_shape":[8],)", R"("chunk_shape":[3],)"), errc::corrupted,
                 {"sharding_indexed.chunk_shape", "divide"});
  check_rejected(replace(v3_example, R"("index_codecs")", R"("index_location":"middle","index_codecs")"),
                 errc::corrupted, {"index_location"});
  check_rejected(replace(v3_example, R"("index_codecs":[{"configuration":{"endian":"little"})",
                         R"("index_codecs":[{"configuration":{"endian":"big"})"),
                 errc::unsupported, {"big-endian shard index"});
  check_rejected(replace(v3_example, R"("fill_value":0)", R"("fill_value":null)"), errc::corrupted, {"fill_value"});
  check_rejected(replace(v3_example, R"("fill_value":0)", R"("fill_value":0.5)"), errc::corrupted, {"fill_value"});
  check_rejected(replace(v3_example, R"("fill_value")", R"("dimension_names":["x","y"],"fill_value")"), errc::corrupted,
                 {"dimension_names"});
  check_rejected(replace(v3_example, R"("level":3)", R"("level":99)"), errc::corrupted, {"level"});
  check_rejected(replace(v3_example, R"("name":"bytes"},{"configuration":{"checksum")",
                         R"("name":"bytes"},{"configuration":{"checksum":false,"level":3},"name":"zstd"},{"configuration":{"checksum")"),
                 errc::unsupported, {"zstd"});
  // Nested sharding.
  const std::string inner_shard =
      R"({"configuration":{"chunk_shape":[8],"codecs":[{"configuration":{"endian":"little"},"name":"bytes"}],"index_codecs":[{"configuration":{"endian":"little"},"name":"bytes"},{"name":"crc32c"}]},"name":"sharding_indexed"})";
  check_rejected(replace(v3_example, R"("codecs":[{"configuration":{"endian":"little"},"name":"bytes"},{"configuration":{"checksum":false,"level":3},"name":"zstd"}])",
                         "\"codecs\":[" + inner_shard + "]"),
                 errc::unsupported, {"nested"});
  // An 8-bit float with a fill value that needs rounding.
  check_rejected(replace(replace(v3_example, R"("data_type":"int32")", R"("data_type":"float8_e4m3fn")"),
                         R"("fill_value":0)", R"("fill_value":1.5)"),
                 errc::unsupported, {"fill_value", "float8_e4m3fn"});
}
