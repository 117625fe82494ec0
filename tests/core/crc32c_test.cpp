// SPDX-License-Identifier: Apache-2.0
#include <cairn/core/bytes.hpp>
#include <cairn/core/crc32c.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "support/shared.hpp"

TEST_CASE("crc32c check values") {
  CHECK(cairn::crc32c("123456789") == 0xE3069283u);
  CHECK(cairn::crc32c("") == 0u);
  CHECK(cairn::crc32c("a") == 0xC1D04330u);
  // RFC 3720 (iSCSI) B.4 test vectors.
  std::vector<std::byte> zeros(32, std::byte{0}), ones(32, std::byte{0xFF}), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[static_cast<std::size_t>(i)] = std::byte(i);
    dec[static_cast<std::size_t>(i)] = std::byte(31 - i);
  }
  CHECK(cairn::crc32c(cairn::byte_view(zeros)) == 0x8A9136AAu);
  CHECK(cairn::crc32c(cairn::byte_view(ones)) == 0x62A8AB43u);
  CHECK(cairn::crc32c(cairn::byte_view(inc)) == 0x46DD794Eu);
  CHECK(cairn::crc32c(cairn::byte_view(dec)) == 0x113FDB5Cu);
}

TEST_CASE("crc32c: hardware and table paths agree; extension composes") {
  std::mt19937_64 rng(7);
  std::vector<std::byte> data(4099);
  for (auto& b : data) b = std::byte(rng() & 0xFF);
  for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 1000u, 4099u}) {
    cairn::byte_view v(data.data(), n);
    CAPTURE(n);
    const std::uint32_t portable = ~cairn::detail::crc32c_update_portable(~0u, v.data(), v.size());
    CHECK(cairn::crc32c(v) == portable);
    for (std::size_t split : {std::size_t{0}, n / 3, n}) {
      CHECK(cairn::crc32c_extend(cairn::crc32c(v.first(split)), v.subspan(split)) == cairn::crc32c(v));
    }
  }
}

TEST_CASE("crc32c verifies every manifest.ocdbt in the Orbax fixtures") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  int checked = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(*shared / "fixtures" / "orbax-compat")) {
    if (!entry.is_regular_file() || entry.path().filename() != "manifest.ocdbt") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CAPTURE(entry.path().string());
    REQUIRE(bytes.size() > 16);
    auto* p = reinterpret_cast<const std::byte*>(bytes.data());
    CHECK(cairn::load_be<std::uint32_t>(p) == 0x0CDB3A2Au);        // manifest magic
    CHECK(cairn::load_le<std::uint64_t>(p + 4) == bytes.size());   // envelope length
    const auto stored = cairn::load_le<std::uint32_t>(p + bytes.size() - 4);
    CHECK(cairn::crc32c(cairn::byte_view(p, bytes.size() - 4)) == stored);
    ++checked;
  }
  CHECK(checked >= 10);
  MESSAGE("checked the CRC-32C of " << checked << " fixture manifests");
}
