// SPDX-License-Identifier: Apache-2.0
#include <cairn/core/byte_reader.hpp>
#include <cairn/core/varint.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace {
std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(std::byte(b));
  return out;
}
template <class T>
T decode(const std::vector<std::byte>& in, std::size_t* consumed = nullptr) {
  std::size_t pos = 0;
  T v = cairn::decode_varint<T>(in, pos, "test field");
  if (consumed) *consumed = pos;
  return v;
}
template <class T>
void check_corrupted(const std::vector<std::byte>& in, const char* why) {
  try {
    (void)decode<T>(in);
    FAIL("expected errc::corrupted");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::corrupted);
    CHECK_MESSAGE(std::string(e.what()).find(why) != std::string::npos, e.what());
    CHECK(std::string(e.what()).find("test field at byte 0") != std::string::npos);
  }
}
}  // namespace

TEST_CASE("varint round trips, shortest encodings") {
  for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{127}, std::uint64_t{128},
                          std::uint64_t{300}, std::uint64_t{16383}, std::uint64_t{16384},
                          std::uint64_t{0xFFFFFFFF}, std::uint64_t{1} << 35, std::uint64_t{1} << 63,
                          std::numeric_limits<std::uint64_t>::max()}) {
    cairn::byte_buffer buf;
    cairn::append_varint(buf, v);
    CHECK(buf.size() == cairn::varint_size(v));
    std::vector<std::byte> in(buf.view().begin(), buf.view().end());
    std::size_t used = 0;
    CHECK(decode<std::uint64_t>(in, &used) == v);
    CHECK(used == buf.size());
  }
  CHECK(cairn::varint_size(127) == 1);
  CHECK(cairn::varint_size(128) == 2);
  CHECK(cairn::varint_size(std::numeric_limits<std::uint64_t>::max()) == 10);
  CHECK(decode<std::uint64_t>(bytes({0xAC, 0x02})) == 300);
}

TEST_CASE("varint maximum values per width") {
  CHECK(decode<std::uint64_t>(bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})) ==
        std::numeric_limits<std::uint64_t>::max());
  CHECK(decode<std::uint32_t>(bytes({0xFF, 0xFF, 0xFF, 0xFF, 0x0F})) == 0xFFFFFFFFu);
  CHECK(decode<std::uint16_t>(bytes({0xFF, 0xFF, 0x03})) == 0xFFFF);
}

TEST_CASE("varint: non-shortest forms within the width are accepted") {
  CHECK(decode<std::uint64_t>(bytes({0x80, 0x00})) == 0);
  CHECK(decode<std::uint32_t>(bytes({0x81, 0x80, 0x80, 0x80, 0x00})) == 1);
}

TEST_CASE("varint: overlong, out of range and truncated are corrupted") {
  check_corrupted<std::uint64_t>(bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}),
                                 "longer than 10 bytes");
  check_corrupted<std::uint64_t>(bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02}),
                                 "exceeds 64 bits");
  check_corrupted<std::uint32_t>(bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), "longer than 5 bytes");
  check_corrupted<std::uint32_t>(bytes({0xFF, 0xFF, 0xFF, 0xFF, 0x10}), "exceeds 32 bits");
  check_corrupted<std::uint16_t>(bytes({0x80, 0x80, 0x04}), "exceeds 65535");
  check_corrupted<std::uint64_t>(bytes({}), "truncated");
  check_corrupted<std::uint64_t>(bytes({0x80}), "truncated");
  check_corrupted<std::uint32_t>(bytes({0xFF, 0xFF, 0xFF}), "truncated");
}

TEST_CASE("byte_reader checks bounds and names the object and field") {
  auto in = bytes({0x0C, 0xDB, 0x3A, 0x2A, 0x05, 0x00, 0x00, 0x00, 0x96, 0x01, 0xAA});
  cairn::byte_reader r(in, "manifest \"x/manifest.ocdbt\"");
  CHECK(r.read_be<std::uint32_t>("magic") == 0x0CDB3A2Au);
  CHECK(r.read_le<std::uint32_t>("length") == 5u);
  CHECK(r.read_varint<std::uint32_t>("version") == 150u);
  CHECK(r.remaining() == 1);
  try {
    (void)r.read_le<std::uint32_t>("crc");
    FAIL("expected an error");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::corrupted);
    CHECK(std::string(e.what()) == "cairn: manifest \"x/manifest.ocdbt\": field \"crc\" at byte 10: needs 4 "
                                   "bytes, 1 remain: corrupted");
  }
  CHECK_THROWS_AS(r.expect_end("body"), cairn::error);
  CHECK(r.read_u8("tail") == 0xAA);
  r.expect_end("body");
  cairn::byte_reader r2(in, "obj");
  CHECK_THROWS_WITH_AS(r2.read_bytes(100, "values"), doctest::Contains("field \"values\""), cairn::error);
}
