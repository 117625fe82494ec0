// SPDX-License-Identifier: Apache-2.0
// One conformance suite, instantiated for every driver.
#include <cairn/kvstore/file.hpp>
#include <cairn/kvstore/memory.hpp>
#include <cairn/kvstore/store.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.hpp"

namespace kv = cairn::kvstore;

namespace {
struct memory_fixture {
  kv::store open() { return kv::open_memory(); }
};
struct file_fixture {
  cairn_test::temp_dir dir;
  kv::store open() { return kv::open_file(dir.path() / "db", kv::fsync_policy::none); }
};
std::string text(const kv::read_result& r) { return std::string(cairn::as_chars(r->view())); }
std::vector<std::string> keys(const std::vector<kv::list_entry>& v) {
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(e.key);
  return out;
}
}  // namespace

TEST_CASE_TEMPLATE("kvstore conformance", F, memory_fixture, file_fixture) {
  F fixture;
  kv::store s = fixture.open();

  SUBCASE("a missing key is a value, not an error") {
    CHECK(kv::read(s, "nothing").missing());
    CHECK_FALSE(kv::erase(s, "nothing"));
    CHECK_THROWS_WITH_AS(kv::read_required(s, "nothing"), doctest::Contains("key \"nothing\" is missing"),
                         cairn::error);
  }
  SUBCASE("write, read, overwrite, erase") {
    kv::write(s, "a/b", cairn::as_bytes("hello"));
    CHECK(text(kv::read(s, "a/b")) == "hello");
    kv::write(s, "a/b", cairn::as_bytes("bye"));
    CHECK(text(kv::read(s, "a/b")) == "bye");
    kv::write(s, "empty", cairn::as_bytes(""));
    CHECK(kv::read(s, "empty")->size() == 0);
    CHECK(kv::erase(s, "a/b"));
    CHECK(kv::read(s, "a/b").missing());
  }
  SUBCASE("byte ranges") {
    kv::write(s, "v", cairn::as_bytes("0123456789"));
    CHECK(text(kv::read(s, "v", {3, 4})) == "3456");
    CHECK(text(kv::read(s, "v", {7, std::nullopt})) == "789");
    CHECK(text(kv::read(s, "v", {10, 0})) == "");
    try {
      (void)kv::read(s, "v", {8, 5});
      FAIL("expected an error");
    } catch (const cairn::error& e) {
      CHECK(e.code() == cairn::errc::corrupted);
      CHECK(std::string(e.what()).find("byte range [8, 13) exceeds the value's 10 bytes") != std::string::npos);
    }
    CHECK_THROWS_AS(kv::read(s, "v", {11, std::nullopt}), cairn::error);
  }
  SUBCASE("listing by range and prefix, bytewise order, with sizes") {
    for (const char* k : {"b/2", "a", "b/1", "b0", "c/x/y", "b/10"}) kv::write(s, k, cairn::as_bytes(k));
    CHECK(keys(kv::list(s)) == std::vector<std::string>{"a", "b/1", "b/10", "b/2", "b0", "c/x/y"});
    CHECK(keys(kv::list(s, kv::key_range::prefix("b/"))) == std::vector<std::string>{"b/1", "b/10", "b/2"});
    CHECK(keys(kv::list(s, {"b/10", "b0"})) == std::vector<std::string>{"b/10", "b/2"});
    CHECK(kv::list(s, kv::key_range::prefix("c/"))[0] == kv::list_entry{"c/x/y", 5});
    // A handle with a prefix sees relative keys.
    kv::store b = s / "b/";
    CHECK(keys(kv::list(b)) == std::vector<std::string>{"1", "10", "2"});
    CHECK(text(kv::read(b, "10")) == "b/10");
    kv::write(b, "3", cairn::as_bytes("x"));
    CHECK(text(kv::read(s, "b/3")) == "x");
  }
  SUBCASE("high bytes sort after ASCII (unsigned order)") {
    kv::write(s, "k\xC3\xA9", cairn::as_bytes("e-acute"));
    kv::write(s, "kz", cairn::as_bytes("z"));
    CHECK(keys(kv::list(s)) == std::vector<std::string>{"kz", "k\xC3\xA9"});
  }
  SUBCASE("concurrent writers and readers") {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          std::string k = "t" + std::to_string(t) + "/" + std::to_string(i);
          kv::write(s, k, cairn::as_bytes(k));
          CHECK(text(kv::read(s, k)) == k);
        }
      });
    for (auto& th : threads) th.join();
    CHECK(kv::list(s).size() == 200);
  }
}

TEST_CASE("key_range::prefix handles 0xFF bytes") {
  auto r = kv::key_range::prefix("a\xFF\xFF");
  CHECK(r.exclusive_max == "b");
  CHECK(r.contains("a\xFF\xFFz"));
  CHECK_FALSE(r.contains("b"));
  CHECK(kv::key_range::prefix("\xFF").exclusive_max.empty());  // unbounded
  CHECK(kv::key_range::prefix("").contains("anything"));
}

TEST_CASE("file driver rejects keys that would leave the directory") {
  cairn_test::temp_dir dir;
  kv::store s = kv::open_file(dir.path() / "db");
  for (std::string bad : std::vector<std::string>{"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", ".", "..",
                          std::string("a\0b", 3), "x.__cairn_tmp.1"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(kv::write(s, bad, cairn::as_bytes("x")), cairn::error);
    try {
      (void)kv::read(s, bad);
      FAIL("expected an error");
    } catch (const cairn::error& e) {
      CHECK(e.code() == cairn::errc::invalid_argument);
    }
    CHECK_THROWS_AS(kv::erase(s, bad), cairn::error);
  }
  CHECK_FALSE(std::filesystem::exists(dir.path() / "x"));
  // Leading-dot names that are not '.' or '..' are ordinary keys (zarr's ".zarray").
  kv::write(s, "a/.zarray", cairn::as_bytes("{}"));
  CHECK(std::filesystem::exists(dir.path() / "db" / "a" / ".zarray"));
}

TEST_CASE("file driver: writes are atomic renames, temporaries are never listed") {
  cairn_test::temp_dir dir;
  for (auto policy : {kv::fsync_policy::none, kv::fsync_policy::file, kv::fsync_policy::file_and_directory}) {
    kv::store s = kv::open_file(dir.path() / ("db" + std::to_string(static_cast<int>(policy))), policy);
    kv::write(s, "d/abc", cairn::as_bytes("value"));
    CHECK(text(kv::read(s, "d/abc")) == "value");
  }
  auto root = dir.path() / "db0";
  { std::ofstream(root / "d" / "abc.__cairn_tmp.123") << "partial"; }
  kv::store s = kv::open_file(root, kv::fsync_policy::none);
  CHECK(keys(kv::list(s)) == std::vector<std::string>{"d/abc"});
  // A directory is not a value.
  CHECK(kv::read(s, "d").missing());
  // A missing root lists as empty.
  auto gone = kv::open_file(dir.path() / "gone", kv::fsync_policy::none);
  std::filesystem::remove_all(dir.path() / "gone");
  CHECK(kv::list(gone).empty());
}

TEST_CASE("file driver: large synced values go to disk whole, aligned or not, block multiple or not") {
  // Values of 1 MiB and more written with fsync take the O_DIRECT path (bounced when unaligned); the
  // partial last block goes through the page cache. Every size and alignment must land exactly.
  cairn_test::temp_dir dir;
  kv::store s = kv::open_file(dir.path() / "db", kv::fsync_policy::file);
  cairn::byte_buffer aligned(std::size_t{9} << 20);  // large: page-aligned; 9 MiB: more than one bounce
  for (std::size_t i = 0; i < aligned.size(); ++i) aligned[i] = std::byte(static_cast<unsigned char>(i * 131 + (i >> 12)));
  for (const std::size_t size : {std::size_t{1} << 20, (std::size_t{1} << 20) + 1, (std::size_t{9} << 20) - 4095}) {
    for (const std::size_t skew : {std::size_t{0}, std::size_t{1}}) {
      if (skew + size > aligned.size()) continue;
      const cairn::byte_view value = aligned.view().subspan(skew, size);
      const std::string key = "v" + std::to_string(size) + "_" + std::to_string(skew);
      kv::write(s, key, value);
      const auto back = kv::read(s, key);
      REQUIRE_FALSE(back.missing());
      CHECK(back->size() == size);
      CHECK_MESSAGE(std::equal(value.begin(), value.end(), back->view().begin()), key);
      CHECK(std::filesystem::file_size(dir.path() / "db" / key) == size);
    }
  }
}

TEST_CASE("file driver: a value opened once serves range reads, small and large, and rejects ranges beyond it") {
  cairn_test::temp_dir dir;
  kv::store s = kv::open_file(dir.path() / "db", kv::fsync_policy::none);
  std::string big((std::size_t{3} << 20) + 100, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 % 251);
  kv::write(s, "d/file", cairn::as_bytes(big));
  auto h = kv::open_value(s, "d/file");
  REQUIRE(h);
  CHECK(h->size() == big.size());
  auto piece = [&](std::uint64_t offset, std::uint64_t length) {
    return std::string(cairn::as_chars(h->read(offset, length).view()));
  };
  CHECK(piece(0, 10) == big.substr(0, 10));
  CHECK(piece(12345, 999) == big.substr(12345, 999));
  CHECK(piece(4096, std::size_t{2} << 20) == big.substr(4096, std::size_t{2} << 20));  // the O_DIRECT path
  CHECK(piece(big.size() - 5, 5) == big.substr(big.size() - 5));
  CHECK(piece(big.size(), 0).empty());
  CHECK_THROWS_WITH_AS(h->read(big.size() - 5, 6), doctest::Contains("exceeds the value's"), cairn::error);
  CHECK_THROWS_WITH_AS(h->read(big.size() + 1, 0), doctest::Contains("exceeds the value's"), cairn::error);
  // Reads from several threads at once share the handle.
  std::vector<std::thread> readers;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&, t] {
      ok[static_cast<std::size_t>(t)] = piece(static_cast<std::uint64_t>(t) * 1000, 777) == big.substr(static_cast<std::size_t>(t) * 1000, 777);
    });
  for (auto& r : readers) r.join();
  CHECK(ok == std::vector<int>(4, 1));
  // Missing keys and directories give no handle (the caller's read reports them); bad keys are rejected.
  CHECK(kv::open_value(s, "d/none") == nullptr);
  CHECK(kv::open_value(s, "d") == nullptr);
  CHECK_THROWS_AS(kv::open_value(s, "../escape"), cairn::error);
  // A store without handles says so, and is read by key.
  CHECK(kv::open_value(kv::open_memory(), "k") == nullptr);
}

TEST_CASE("read_into: a whole value of the destination's size lands in it, aligned or not; other sizes and missing keys say so") {
  cairn_test::temp_dir dir;
  std::string big((std::size_t{2} << 20) + 1234, '\0');  // whole blocks go direct, the tail through the cache
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 13 % 241);
  for (kv::store s : {kv::open_file(dir.path() / "db", kv::fsync_policy::none), kv::open_memory()}) {
    CAPTURE(s.describe());
    kv::write(s, "d/big", cairn::as_bytes(big));
    kv::write(s, "d/small", cairn::as_bytes("hello"));
    cairn::byte_buffer aligned(big.size() + 4096);  // large buffers are page-aligned
    for (std::size_t shift : {std::size_t{0}, std::size_t{3}}) {
      CAPTURE(shift);
      const cairn::mutable_byte_view into(aligned.data() + shift, big.size());
      REQUIRE(kv::read_into(s, "d/big", 0, into, big.size()) == kv::read_into_status::done);
      CHECK(std::string(cairn::as_chars(into)) == big);
    }
    char five[5] = {};
    CHECK(kv::read_into(s, "d/small", 0, cairn::mutable_byte_view(reinterpret_cast<std::byte*>(five), 5), 5) == kv::read_into_status::done);
    CHECK(std::string(five, 5) == "hello");
    char four[4] = {'a', 'b', 'c', 'd'};
    CHECK(kv::read_into(s, "d/small", 0, cairn::mutable_byte_view(reinterpret_cast<std::byte*>(four), 4), 4) == kv::read_into_status::other_size);
    CHECK(std::string(four, 4) == "abcd");  // untouched
    CHECK(kv::read_into(s, "d/none", 0, cairn::mutable_byte_view(reinterpret_cast<std::byte*>(four), 4), 4) == kv::read_into_status::missing);
  }
  // A handle reads any range into memory, the range checked as by `read`.
  auto h = kv::open_value(kv::open_file(dir.path() / "db", kv::fsync_policy::none), "d/big");
  REQUIRE(h);
  cairn::byte_buffer part(std::size_t{1} << 20);
  h->read_into(8192, part.mutable_view());
  CHECK(std::string(cairn::as_chars(part.view())) == big.substr(8192, part.size()));
  CHECK_THROWS_WITH_AS(h->read_into(big.size() - 10, part.mutable_view()), doctest::Contains("exceeds the value's"), cairn::error);
}
