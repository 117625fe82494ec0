// SPDX-License-Identifier: Apache-2.0
// OCDBT databases end to end: reading every Orbax fixture database, and writer → reader round trips
// over memory and file stores (small and large values, forced multi-level trees, many generations
// with version-tree nodes, erasure, numbered manifests, merged roots, concurrent writers).
#include <cairn/kvstore/file.hpp>
#include <cairn/kvstore/memory.hpp>
#include <cairn/ocdbt/reader.hpp>
#include <cairn/ocdbt/writer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "support/files.hpp"
#include "support/shared.hpp"
#include "support/temp_dir.hpp"

namespace oc = cairn::ocdbt;
namespace kv = cairn::kvstore;

namespace {
std::string value_for(const std::string& key, std::size_t size) {
  std::string v(size, '\0');
  std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(key)));
  for (auto& c : v) c = static_cast<char>(rng());
  return v;
}
std::map<std::string, std::string> read_all(oc::reader& r) {
  std::map<std::string, std::string> out;
  r.for_each({}, [&](oc::value_location&& l) {
    out.emplace(l.key, std::string(cairn::as_chars(r.read_value(l).view())));
  });
  return out;
}
oc::writer_options no_sync() {
  oc::writer_options o;
  o.fsync = kv::fsync_policy::none;
  return o;
}
}  // namespace

TEST_CASE("every fixture database opens; keys and values are readable") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  int opened = 0, failed_clearly = 0;
  for (const auto& db : cairn_test::find_databases(*shared / "fixtures" / "orbax-compat")) {
    CAPTURE(db.string());
    oc::reader r(kv::open_file(db, kv::fsync_policy::none), "\"" + db.filename().string() + "\"");
    const bool damaged = db.string().find("critical_metadata_alterations") != std::string::npos;
    try {
      auto all = read_all(r);
      CHECK_FALSE(all.empty());
      // Every array has its zarr metadata next to its chunks.
      bool has_metadata = false;
      for (const auto& [k, v] : all)
        if (k.ends_with("/.zarray") || k.ends_with("/zarr.json")) has_metadata = true;
      CHECK(has_metadata);
      // Point lookups agree with the listing.
      for (const auto& [k, v] : all) {
        auto got = r.read(k);
        REQUIRE_FALSE(got.missing());
        CHECK(std::string(cairn::as_chars(got->view())) == v);
      }
      CHECK(r.read("no/such/key").missing());
      CHECK(r.read("").missing());
      CHECK(r.read("zzzz").missing());
      ++opened;
    } catch (const cairn::error& e) {
      REQUIRE(damaged);  // only the deliberately damaged fixtures may fail, and clearly
      CHECK(e.code() == cairn::errc::not_found);
      CHECK(std::string(e.what()).find("data file \"d/") != std::string::npos);
      ++failed_clearly;
    }
  }
  MESSAGE(opened << " fixture databases read, " << failed_clearly << " damaged ones failed with a clear error");
  CHECK(opened >= 40);
  CHECK(failed_clearly >= 1);
}

TEST_CASE("a database without manifest.ocdbt is not found, by name") {
  cairn_test::temp_dir dir;
  try {
    oc::reader r(kv::open_file(dir.path()), "item \"state\"");
    FAIL("expected an error");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::not_found);
    CHECK(std::string(e.what()) == "cairn: OCDBT database item \"state\": \"manifest.ocdbt\" is missing: not found");
  }
}

struct memory_db {
  kv::store open() { return store; }
  kv::store store = kv::open_memory();
};
struct file_db {
  cairn_test::temp_dir dir;
  kv::store open() { return kv::open_file(dir.path() / "db", kv::fsync_policy::none); }
};

TEST_CASE_TEMPLATE("writer → reader round trips", F, memory_db, file_db) {
  F fixture;
  kv::store base = fixture.open();
  std::map<std::string, std::string> expect;

  SUBCASE("small and large values, one generation") {
    oc::writer w(base, no_sync());
    for (std::size_t size : {0u, 1u, 1023u, 1024u, 1025u, 100000u}) {
      std::string key = "v/" + std::to_string(size);
      expect[key] = value_for(key, size);
      w.put(key, cairn::as_bytes(expect[key]));
    }
    auto v = w.commit();
    CHECK(v.generation == 1);
    CHECK(v.stats.num_keys == expect.size());
    CHECK(v.stats.num_indirect_value_bytes == 1025 + 100000);
    oc::reader r(base);
    CHECK(read_all(r) == expect);
    auto loc = r.locate("v/100000");
    REQUIRE(loc);
    CHECK_FALSE(loc->is_inline);
    CHECK(loc->file.relative_path.rfind("d/", 0) == 0);
    CHECK(loc->file.relative_path.size() == 34);
    CHECK(r.locate("v/1024")->is_inline);
    CHECK(std::string(cairn::as_chars(r.read("v/100000", {99990, 10})->view())) == expect["v/100000"].substr(99990));
  }
  SUBCASE("large values: block-aligned placement, aligned and unaligned sources, odd lengths") {
    oc::writer w(base, no_sync());
    std::vector<cairn::byte_buffer> aligned;
    for (std::size_t size : {std::size_t{1} << 20, (std::size_t{3} << 20) + 17, (std::size_t{1} << 20) + 4095}) {
      std::string key = "aligned/" + std::to_string(size);
      expect[key] = value_for(key, size);
      aligned.emplace_back(cairn::as_bytes(expect[key]));  // page-aligned copy: the O_DIRECT path
      w.put(key, aligned.back().view());
      std::string key2 = "unaligned/" + std::to_string(size);
      expect[key2] = value_for(key2, size);
      w.put(key2, cairn::as_bytes(expect[key2]).subspan(0));  // std::string storage: buffered path
    }
    w.put("small", cairn::as_bytes("between the large ones"));
    expect["small"] = "between the large ones";
    w.commit();
    oc::reader r(base);
    CHECK(read_all(r) == expect);
    for (const auto& [k, v] : expect)
      if (v.size() >= (1u << 20)) CHECK(r.locate(k)->offset % 4096 == 0);
    auto part = r.read("aligned/" + std::to_string((std::size_t{3} << 20) + 17), {(std::size_t{3} << 20) - 5, 22});
    CHECK(std::string(cairn::as_chars(part->view())) ==
          expect["aligned/" + std::to_string((std::size_t{3} << 20) + 17)].substr((std::size_t{3} << 20) - 5));
  }
  SUBCASE("forced multi-level trees and range listing") {
    oc::writer_options o = no_sync();
    o.config = oc::config::orbax_default();
    o.config->max_decoded_node_bytes = 600;  // a handful of entries per node
    oc::writer w(base, o);
    for (int i = 0; i < 3000; ++i) {
      char key[32];
      std::snprintf(key, sizeof key, "param%05d/%d", i / 3, i % 3);
      expect[key] = value_for(key, static_cast<std::size_t>(i % 7 == 0 ? 2000 : i % 50));
      w.put(key, cairn::as_bytes(expect[key]));
    }
    auto v = w.commit();
    CHECK(v.root_height >= 2);
    oc::reader r(base);
    CHECK(r.latest().root_height == v.root_height);
    CHECK(r.latest().stats.num_keys == 3000);
    CHECK(read_all(r) == expect);
    auto part = r.list(kv::key_range::prefix("param00500/"));
    REQUIRE(part.size() == 3);
    CHECK(part[0].key == "param00500/0");
    auto mid = r.list({"param00100/1", "param00102/0"});
    CHECK(mid.size() == 5);
    CHECK(r.read("param00999/2").value.has_value());
    CHECK(r.read("param01000/0").missing());
    CHECK(r.read("param00500/3").missing());
    CHECK(r.read("a").missing());
  }
  SUBCASE("many generations build version-tree nodes, each generation keeps earlier keys") {
    oc::writer_options o = no_sync();
    o.config = oc::config::orbax_default();
    o.config->version_tree_arity_log2 = 2;  // buckets of 4 generations: nodes appear quickly
    for (int g = 1; g <= 70; ++g) {
      if (g > 1) o.config.reset();  // existing databases keep their configuration
      oc::writer w(base, o);
      std::string key = "gen/" + std::to_string(1000 + g);
      expect[key] = value_for(key, static_cast<std::size_t>(g * 37));
      w.put(key, cairn::as_bytes(expect[key]));
      if (g % 10 == 0) {
        w.erase("gen/" + std::to_string(1000 + g - 5));
        expect.erase("gen/" + std::to_string(1000 + g - 5));
      }
      auto v = w.commit();
      CHECK(v.generation == static_cast<std::uint64_t>(g));
      oc::reader r(base);
      CHECK(r.latest().generation == static_cast<std::uint64_t>(g));
      if (g == 4 || g == 5 || g == 17 || g == 70) {
        CHECK(read_all(r) == expect);
        // Inline versions stay within the latest bucket; older ones are in version nodes.
        CHECK(r.manifest().versions.size() == ((g - 1) % 4) + 1);
        CHECK(r.manifest().version_nodes.empty() == (g <= 4));
      }
    }
    oc::reader r(base);
    CHECK(read_all(r) == expect);
    // Walk the version tree: every generation 1..69 is reachable exactly once.
    std::vector<std::uint64_t> gens;
    std::function<void(const std::vector<oc::data_file_id>&, const oc::version_node_ref&)> visit =
        [&](const std::vector<oc::data_file_id>& files, const oc::version_node_ref& ref) {
          auto f = files.at(ref.node.file);
          auto bytes = kv::read_required(base, f.path(), {ref.node.offset, ref.node.length});
          auto node = oc::decode_version_tree_node(bytes.view(), f.base_path, 2, "version node");
          for (const auto& v : node.versions) gens.push_back(v.generation);
          for (const auto& c : node.children) visit(node.files, c);
        };
    for (const auto& n : r.manifest().version_nodes) visit(r.manifest().files, n);
    for (const auto& v : r.manifest().versions) gens.push_back(v.generation);
    REQUIRE(gens.size() == 70);
    for (std::size_t i = 0; i < gens.size(); ++i) CHECK(gens[i] == i + 1);
  }
  SUBCASE("within one generation the last put or erase of a key wins, in any key order") {
    {
      oc::writer w(base, no_sync());
      for (const char* k : {"old/kept", "old/replaced", "old/erased"}) w.put(k, cairn::as_bytes("first"));
      w.commit();
    }
    oc::writer w(base, no_sync());
    w.put("z", cairn::as_bytes("1"));
    w.put("a", cairn::as_bytes("1"));
    w.put("z", cairn::as_bytes("2"));  // replaced twice, out of key order
    w.put("m", cairn::as_bytes("1"));
    w.erase("m");                       // put, then erased
    w.erase("q");
    w.put("q", cairn::as_bytes("back"));  // erased, then put
    w.put("z", cairn::as_bytes(std::string(2000, 'z')));  // the last one is out of line
    w.put("old/replaced", cairn::as_bytes("second"));
    w.erase("old/erased");
    w.erase("never/there");
    w.commit();
    oc::reader r(base);
    const std::map<std::string, std::string> want{
        {"a", "1"}, {"old/kept", "first"}, {"old/replaced", "second"}, {"q", "back"}, {"z", std::string(2000, 'z')}};
    CHECK(read_all(r) == want);
  }
  SUBCASE("erasing everything leaves an empty generation") {
    {
      oc::writer w(base, no_sync());
      w.put("a", cairn::as_bytes("1"));
      w.commit();
    }
    oc::writer w(base, no_sync());
    w.erase("a");
    auto v = w.commit();
    CHECK(v.root.is_missing());
    oc::reader r(base);
    CHECK(r.list().empty());
    CHECK(r.read("a").missing());
  }
  SUBCASE("numbered manifests") {
    oc::writer_options o = no_sync();
    o.config = oc::config::orbax_default();
    o.config->kind = oc::manifest_kind::numbered;
    for (int g = 1; g <= 3; ++g) {
      oc::writer w(base, o);
      w.put("k" + std::to_string(g), cairn::as_bytes("v" + std::to_string(g)));
      w.commit();
    }
    CHECK_FALSE(kv::read(base, "manifest.0000000000000003").missing());
    oc::reader r(base);
    CHECK(r.config().kind == oc::manifest_kind::numbered);
    CHECK(r.latest().generation == 3);
    CHECK(r.list().size() == 3);
  }
  SUBCASE("concurrent writers") {
    oc::writer w(base, no_sync());
    std::vector<std::thread> threads;
    std::mutex m;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 100; ++i) {
          std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
          std::string v = value_for(key, static_cast<std::size_t>(i * 50));
          w.put(key, cairn::as_bytes(v));
          std::lock_guard lock(m);
          expect[key] = v;
        }
      });
    for (auto& th : threads) th.join();
    w.commit();
    oc::reader r(base);
    CHECK(read_all(r) == expect);
  }
}

TEST_CASE("merged root references the children's data files") {
  cairn_test::temp_dir dir;
  auto root = kv::open_file(dir.path() / "item", kv::fsync_policy::none);
  std::map<std::string, std::string> expect;
  for (int p = 0; p < 3; ++p) {
    oc::writer w(root / ("ocdbt.process_" + std::to_string(p) + "/"), no_sync());
    for (int i = 0; i < 5; ++i) {
      std::string key = "param" + std::to_string(i) + "/" + std::to_string(p);
      expect[key] = value_for(key, static_cast<std::size_t>(i == 0 ? 100 : 5000));
      w.put(key, cairn::as_bytes(expect[key]));
    }
    w.commit();
  }
  oc::merge(root, {"ocdbt.process_0", "ocdbt.process_1/", "ocdbt.process_2/"}, no_sync());
  oc::reader r(root, "item");
  CHECK(read_all(r) == expect);
  auto loc = r.locate("param3/1");
  REQUIRE(loc);
  CHECK(loc->file.base_path == "ocdbt.process_1/");
  CHECK(loc->file.relative_path.rfind("d/", 0) == 0);
  // The root wrote its own node; no value bytes were copied into the root's data files.
  std::uintmax_t root_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "item" / "d")) root_bytes += e.file_size();
  CHECK(root_bytes < 4000);
  // Two children holding one key is an error naming both.
  oc::writer w(root / "ocdbt.process_3/", no_sync());
  w.put("param0/0", cairn::as_bytes("dup"));
  w.commit();
  CHECK_THROWS_WITH_AS(oc::merge(root, {"ocdbt.process_0/", "ocdbt.process_3/"}, no_sync()),
                       doctest::Contains("\"param0/0\" is in both"), cairn::error);
}

TEST_CASE("nodes are compressed at the writer's zstd level; the configuration keeps Orbax's") {
  // Repeated metadata texts, as a model's arrays have: the root is one leaf node of some 2 MB.
  std::map<std::string, std::string> expect;
  for (int i = 0; i < 4000; ++i) {
    const std::string key = "layer_" + std::to_string(i) + "/zarr.json";
    expect[key] = "{\"shape\": [" + std::to_string(i % 16) + "], \"data_type\": \"float32\", \"codecs\": [{\"name\": \"zstd\"}]}" +
                  std::string(400, 'x');
  }
  for (const std::optional<int> level : {std::optional<int>(), std::optional<int>(1), std::optional<int>(-5)}) {
    CAPTURE(level.value_or(99));
    cairn_test::temp_dir dir;
    auto base = kv::open_file(dir.path(), kv::fsync_policy::none);
    oc::writer_options o = no_sync();
    o.node_zstd_level = level;
    oc::writer w(base, o);
    for (const auto& [k, v] : expect) w.put(k, cairn::as_bytes(v));
    w.commit();
    oc::reader r(base);
    CHECK(read_all(r) == expect);
    CHECK(r.config().compression == oc::compression::zstd(0));
    // The root's bytes are the node encoded at the level asked for (the configuration's when none).
    const oc::location root = r.latest().root;
    const auto& file = r.manifest().files.at(root.file);
    const auto stored = kv::read(base, file.relative_path, {root.offset, root.length});
    REQUIRE_FALSE(stored.missing());
    const cairn::byte_view bytes = stored->view();
    const auto node = oc::decode_btree_node(bytes, "", "root");
    REQUIRE(node.leaves.size() == expect.size());
    auto same = [](cairn::byte_view a, cairn::byte_view b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); };
    CHECK(same(bytes, oc::encode_btree_node(node, oc::compression::zstd(level.value_or(0))).view()));
    if (level && *level != 0) CHECK_FALSE(same(bytes, oc::encode_btree_node(node, oc::compression::zstd(0)).view()));
  }
}

TEST_CASE_TEMPLATE("a value put as one shared_bytes under many keys is stored once and read back under each", F, memory_db,
                   file_db) {
  F f;
  const kv::store base = f.open();
  oc::writer w(base, no_sync());
  const std::string text = "{\"shape\": [16], \"data_type\": \"float32\", \"codecs\": [{\"name\": \"zstd\"}]}";
  const cairn::shared_bytes shared = cairn::shared_bytes::copy_of(cairn::as_bytes(text));
  const cairn::shared_bytes other = cairn::shared_bytes::copy_of(cairn::as_bytes(text + " "));
  const cairn::shared_bytes tiny = cairn::shared_bytes::copy_of(cairn::as_bytes(std::string("{}")));
  std::map<std::string, std::string> expect;
  for (int i = 0; i < 300; ++i) {
    const std::string k = "layer_" + std::to_string(1000 + i) + "/";
    w.put(k + "zarr.json", shared);
    expect[k + "zarr.json"] = text;
    w.put(k + "b/zarr.json", i % 2 ? other : tiny);  // two shared values interleaved
    expect[k + "b/zarr.json"] = i % 2 ? text + " " : "{}";
    w.put(k + "c/0", cairn::byte_buffer(cairn::as_bytes(text)));  // equal bytes, not shared: inline each time
    expect[k + "c/0"] = text;
  }
  w.commit();
  oc::reader r(base);
  CHECK(read_all(r) == expect);
  // The first key of each shared value holds it inline; the others refer to one copy. Values below
  // the reference's worth and values put as separate buffers stay inline.
  std::map<std::string, std::set<std::pair<std::string, std::uint64_t>>> places;
  std::size_t inline_count = 0;
  r.for_each({}, [&](oc::value_location&& l) {
    if (l.is_inline) {
      ++inline_count;
      return;
    }
    places[std::string(cairn::as_chars(r.read_value(l).view()))].insert({l.file.path(), l.offset});
  });
  CHECK(inline_count == 300 /* c/0 */ + 150 /* tiny */ + 1 + 1);
  REQUIRE(places.size() == 2);
  CHECK(places[text].size() == 1);
  CHECK(places[text + " "].size() == 1);
  // Each key reads its own bytes, again and again (the shared copy is read from its file once).
  const kv::store db = oc::open_reader(base);
  for (int round = 0; round < 2; ++round)
    for (const auto& [k, v] : expect) {
      auto got = kv::read(db, k);
      REQUIRE_FALSE(got.missing());
      CHECK(std::string(cairn::as_chars(got->view())) == v);
    }
  // A later generation stores its shared values anew.
  oc::writer w2(base, no_sync());
  w2.put("z/zarr.json", shared);
  w2.put("z2/zarr.json", shared);
  w2.commit();
  for (const std::string k : {"z/zarr.json", "z2/zarr.json", "layer_1000/zarr.json", "layer_1001/zarr.json"}) {
    auto got = kv::read(oc::open_reader(base), k);
    REQUIRE_FALSE(got.missing());
    CHECK(std::string(cairn::as_chars(got->view())) == text);
  }
}

TEST_CASE("read_into: inline and out-of-line values land in the destination; other sizes and missing keys say so") {
  cairn_test::temp_dir dir;
  auto base = kv::open_file(dir.path() / "db", kv::fsync_policy::none);
  oc::writer w(base, no_sync());
  std::string big((std::size_t{3} << 20) + 5, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 % 253);
  w.put("a/big", cairn::as_bytes(big));
  w.put("a/tiny", cairn::as_bytes("xyz"));
  w.commit();
  oc::reader r(base, "item \"state\"");
  REQUIRE(r.locate("a/tiny")->is_inline);
  REQUIRE_FALSE(r.locate("a/big")->is_inline);
  cairn::byte_buffer into(big.size());
  CHECK(r.read_into("a/big", 0, into.mutable_view(), big.size()) == kv::read_into_status::done);
  CHECK(std::string(cairn::as_chars(into.view())) == big);
  char three[3] = {};
  CHECK(r.read_into("a/tiny", 0, cairn::mutable_byte_view(reinterpret_cast<std::byte*>(three), 3), 3) == kv::read_into_status::done);
  CHECK(std::string(three, 3) == "xyz");
  CHECK(r.read_into("a/tiny", 0, cairn::mutable_byte_view(reinterpret_cast<std::byte*>(three), 2), 2) == kv::read_into_status::other_size);
  CHECK(r.read_into("a/none", 0, cairn::mutable_byte_view(reinterpret_cast<std::byte*>(three), 2), 2) == kv::read_into_status::missing);
  // open_value: a handle on an out-of-line value reads ranges of that value only (a large frame read
  // in pieces); inline and missing values have none (the caller reads them whole).
  CHECK(r.open_value("a/tiny") == nullptr);
  CHECK(r.open_value("a/none") == nullptr);
  const auto handle = r.open_value("a/big");
  REQUIRE(handle != nullptr);
  CHECK(handle->size() == big.size());
  cairn::byte_buffer piece(1000);
  handle->read_into(big.size() - 1000, piece.mutable_view());
  CHECK(std::string(cairn::as_chars(piece.view())) == big.substr(big.size() - 1000));
  CHECK(std::string(cairn::as_chars(handle->read(7, 9).view())) == big.substr(7, 9));
  const auto beyond = [&] { handle->read_into(big.size() - 999, piece.mutable_view()); };
  CHECK_THROWS_WITH_AS(beyond(), doctest::Contains("key \"a/big\""), cairn::error);
  CHECK_THROWS_WITH_AS((void)handle->read(big.size(), 1), doctest::Contains("exceeds the value's"), cairn::error);
  // A value whose data file ends early is an error naming the file, as `read` gives.
  const auto loc = r.locate("a/big");
  std::filesystem::resize_file(dir.path() / "db" / loc->file.path(), 100);
  oc::reader r2(base, "item \"state\"");
  CHECK_THROWS_AS(r2.read_into("a/big", 0, into.mutable_view(), big.size()), cairn::error);
}

namespace {
// A file store whose value handles count their reads.
struct counting_driver final : kv::driver {
  explicit counting_driver(std::shared_ptr<kv::driver> d) : inner(std::move(d)) {}
  struct counting_value final : kv::value_reader {
    counting_value(std::shared_ptr<kv::value_reader> v, counting_driver* d) : inner(std::move(v)), owner(d) {}
    std::uint64_t size() const noexcept override { return inner->size(); }
    cairn::shared_bytes read(std::uint64_t offset, std::uint64_t length) override {
      ++owner->reads;
      if (length > owner->refuse_above)  // as a file found shorter than the request
        throw cairn::error(cairn::errc::corrupted, "byte range exceeds the file");
      return inner->read(offset, length);
    }
    void read_into(std::uint64_t offset, cairn::mutable_byte_view dst) override {
      ++owner->reads;
      inner->read_into(offset, dst);
    }
    std::shared_ptr<kv::value_reader> inner;
    counting_driver* owner;
  };
  kv::read_result read(std::string_view key, kv::byte_range range = {}) override { return inner->read(key, range); }
  void write(std::string_view key, cairn::byte_view value) override { inner->write(key, value); }
  bool erase(std::string_view key) override { return inner->erase(key); }
  std::vector<kv::list_entry> list(const kv::key_range& range = {}) override { return inner->list(range); }
  std::string describe() const override { return inner->describe(); }
  std::shared_ptr<kv::value_reader> open_value(std::string_view key) override {
    auto v = inner->open_value(key);
    return v ? std::make_shared<counting_value>(std::move(v), this) : nullptr;
  }
  std::shared_ptr<kv::driver> inner;
  std::atomic<int> reads{0};
  std::atomic<std::uint64_t> refuse_above{UINT64_MAX};
};
}  // namespace

TEST_CASE("read_many reads neighbouring values of a data file with one request, and every key once") {
  cairn_test::temp_dir dir;
  auto file = kv::open_file(dir.path() / "db", kv::fsync_policy::none);
  std::map<std::string, std::string> values;
  {
    oc::writer w(file, no_sync());
    std::mt19937 rng(5);
    for (int i = 0; i < 400; ++i) {
      char key[16];
      std::snprintf(key, sizeof key, "v/%03d", i);
      values[key] = value_for(key, 1500 + rng() % 6000);  // out of line
    }
    for (int i = 0; i < 20; ++i) values["t/" + std::to_string(i)] = value_for("t" + std::to_string(i), 1 + i);  // inline
    values["z/large"] = value_for("z", (std::size_t{5} << 20) + 3);  // beyond one request
    for (const auto& [k, v] : values) w.put(k, cairn::as_bytes(v));
    w.commit();
  }
  auto counting = std::make_shared<counting_driver>(file.get_driver());
  oc::reader r(kv::store(counting, file.prefix()), "item \"state\"");
  std::vector<std::string> keys;
  for (const auto& [k, v] : values) keys.push_back(k);
  keys.push_back("v/none");
  keys.push_back("a");
  std::shuffle(keys.begin(), keys.end(), std::mt19937(11));
  const std::vector<std::string_view> views(keys.begin(), keys.end());
  std::vector<int> calls(keys.size(), 0);
  std::uint64_t stored_bytes = 0;
  for (const auto& [k, v] : values) stored_bytes += v.size();
  const int before = counting->reads.load();
  r.read_many(views, [&](std::size_t i, kv::read_result&& got) {
    ++calls.at(i);
    if (keys[i] == "v/none" || keys[i] == "a") {
      CHECK(got.missing());
      return;
    }
    REQUIRE_FALSE(got.missing());
    CHECK_MESSAGE(std::string(cairn::as_chars(got->view())) == values.at(keys[i]), keys[i]);
  });
  CHECK(std::all_of(calls.begin(), calls.end(), [](int c) { return c == 1; }));
  // About 2.3 MB of small values in data files: a request per 4 MiB span at most, plus the large value.
  const int requests = counting->reads.load() - before;
  MESSAGE(requests << " requests for " << values.size() << " values (" << stored_bytes << " bytes)");
  CHECK(requests <= 6);

  // A request that finds its file shorter than expected is read again value by value: every value
  // still arrives, once, with its bytes (a value really beyond the end then gets `read`'s error).
  counting->refuse_above = 64 << 10;
  oc::reader refused(kv::store(counting, file.prefix()), "item \"state\"");
  std::vector<std::string_view> small;  // the large value's own read would be refused too
  for (const auto& k : keys)
    if (k != "z/large") small.push_back(k);
  std::vector<int> small_calls(small.size(), 0);
  const int before_refused = counting->reads.load();
  refused.read_many(small, [&](std::size_t i, kv::read_result&& got) {
    ++small_calls.at(i);
    const std::string k(small[i]);
    if (!got.missing()) CHECK_MESSAGE(std::string(cairn::as_chars(got->view())) == values.at(k), k);
  });
  CHECK(std::all_of(small_calls.begin(), small_calls.end(), [](int c) { return c == 1; }));
  CHECK(counting->reads.load() - before_refused > 400);
}

TEST_CASE("a value whose data file vanished is a clear error") {
  cairn_test::temp_dir dir;
  auto base = kv::open_file(dir.path() / "db", kv::fsync_policy::none);
  oc::writer w(base, no_sync());
  std::string big(5000, 'x');
  w.put("big", cairn::as_bytes(big));
  w.commit();
  oc::reader r(base, "item \"state\"");
  auto loc = r.locate("big");
  REQUIRE(loc);
  std::filesystem::remove(dir.path() / "db" / loc->file.path());
  oc::reader r2(base, "item \"state\"");
  try {
    (void)r2.read("big");
    FAIL("expected an error");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::not_found);
  }
}

TEST_CASE("streamed values: pieces written while produced, over file and memory stores, next to ordinary values") {
  cairn_test::temp_dir dir;
  for (const bool on_disk : {true, false}) {
    CAPTURE(on_disk);
    kv::store base = on_disk ? kv::open_file(dir.path() / "db", kv::fsync_policy::none) : kv::open_memory();
    std::map<std::string, std::string> want;
    {
      oc::writer w(base, no_sync());
      // Sizes around the 8 MiB pieces and the 4 KiB O_DIRECT blocks; produced in uneven steps.
      for (std::size_t size : {std::size_t{5000}, (std::size_t{8} << 20) - 1, std::size_t{8} << 20, (std::size_t{19} << 20) + 4097}) {
        const std::string key = "streamed/" + std::to_string(size);
        want[key] = value_for(key, size);
        w.put_streamed(key, size + 1000, [&](auto& out) {
          std::size_t at = 0, step = 777;
          while (at < size) {
            const auto space = out.space();
            const std::size_t n = std::min({space.size(), size - at, step});
            std::memcpy(space.data(), want[key].data() + at, n);
            out.produced(n);
            at += n;
            step = step * 3 + 1;
          }
        });
        want["plain/" + std::to_string(size)] = value_for("plain/" + std::to_string(size), 3000);
        w.put("plain/" + std::to_string(size), cairn::as_bytes(want["plain/" + std::to_string(size)]));
      }
      CHECK_THROWS_AS(w.put_streamed("too/long", 10, [&](auto& out) {
        for (int i = 0; i < 3; ++i) {
          auto space = out.space();
          std::memset(space.data(), 1, std::min<std::size_t>(space.size(), 8));
          out.produced(std::min<std::size_t>(space.size(), 8));
        }
      }),
                      cairn::error);
      w.commit();
    }
    oc::reader r(base);
    CHECK(read_all(r) == want);
  }
}

TEST_CASE("small values are gathered into batches; large and streamed values between them keep their places") {
  cairn_test::temp_dir dir;
  kv::store base = kv::open_file(dir.path() / "db", kv::fsync_policy::none);
  std::map<std::string, std::string> want;
  {
    oc::writer w(base, no_sync());
    // 5,000 values of 1–2 KiB fill several 1 MiB batches; every 700th, a large value (1.5 MiB,
    // written at once) or a streamed one lands after the open batch, which must then be closed.
    std::mt19937_64 rng(3);
    for (int i = 0; i < 5000; ++i) {
      const std::string key = "small/" + std::to_string(i);
      want[key] = value_for(key, 1000 + rng() % 1100);
      w.put(key, cairn::as_bytes(want[key]));
      if (i % 700 == 350) {
        const std::string big = "large/" + std::to_string(i);
        want[big] = value_for(big, (std::size_t{3} << 19) + i);
        w.put(big, cairn::as_bytes(want[big]));
      } else if (i % 700 == 0) {
        const std::string streamed = "streamed/" + std::to_string(i);
        want[streamed] = value_for(streamed, 10000 + i);
        w.put_streamed(streamed, 20000 + i, [&](auto& out) {
          for (std::size_t at = 0; at < want[streamed].size();) {
            const auto space = out.space();
            const std::size_t n = std::min(space.size(), want[streamed].size() - at);
            std::memcpy(space.data(), want[streamed].data() + at, n);
            out.produced(n);
            at += n;
          }
        });
      }
    }
    w.commit();
  }
  oc::reader r(base);
  CHECK(read_all(r) == want);
  // Far fewer data files than values: the small ones share files (and writes).
  std::size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path() / "db" / "d")) files += e.is_regular_file();
  CHECK(files <= 2);
}
