// SPDX-License-Identifier: Apache-2.0
// The pure OCDBT codecs: golden bytes against TensorStore-written fixtures (decode, re-encode, compare
// the decoded bodies), round trips of everything the writer can produce, and rejection of damaged input.
#include <cairn/ocdbt/format/btree.hpp>
#include <cairn/ocdbt/format/manifest.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <functional>
#include <random>
#include <string>

#include "support/files.hpp"
#include "support/shared.hpp"

namespace oc = cairn::ocdbt;

namespace {
std::string hex(cairn::byte_view b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s += d[static_cast<unsigned>(x) >> 4];
    s += d[static_cast<unsigned>(x) & 15];
  }
  return s;
}
bool same(cairn::byte_view a, cairn::byte_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}
}  // namespace

TEST_CASE("golden bytes: every fixture manifest and B+tree node re-encodes to TensorStore's body") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  int manifests = 0, nodes = 0, leaves = 0, out_of_line = 0;
  for (const auto& db : cairn_test::find_databases(*shared / "fixtures" / "orbax-compat")) {
    CAPTURE(db.string());
    auto bytes = cairn_test::read_file(db / "manifest.ocdbt");
    oc::manifest m = oc::decode_manifest(bytes.view(), "manifest");
    auto body = oc::decode_envelope(bytes.view(), oc::manifest_magic, "manifest");
    CHECK_MESSAGE(same(oc::encode_manifest_body(m).view(), body.view()),
                  hex(oc::encode_manifest_body(m).view()) << " != " << hex(body.view()));
    CHECK(m.config.max_inline_value_bytes == 1024);
    CHECK(m.config.max_decoded_node_bytes == 100000000);
    CHECK(m.config.version_tree_arity_log2 == 4);
    REQUIRE(m.latest() != nullptr);
    ++manifests;
    std::function<void(const oc::data_file_id&, const oc::location&, int)> walk =
        [&](const oc::data_file_id& file, const oc::location& loc, int height) {
          if (!std::filesystem::exists(db / file.path())) return;  // the "critical alteration" fixtures
          auto data = cairn_test::read_file(db / file.path(), loc.offset, loc.length);
          REQUIRE(data.size() == loc.length);
          oc::btree_node node = oc::decode_btree_node(data.view(), file.base_path, "node");
          CHECK(node.height == height);
          auto node_body = oc::decode_envelope(data.view(), oc::btree_node_magic, "node");
          // Re-encoding needs table entries relative to the transitive path.
          oc::btree_node rel = node;
          for (auto& f : rel.files) f.base_path.erase(0, file.base_path.size());
          CHECK(same(oc::encode_btree_node_body(rel).view(), node_body.view()));
          ++nodes;
          for (const auto& e : node.leaves) {
            ++leaves;
            if (!e.is_inline) {
              ++out_of_line;
              CHECK(std::filesystem::file_size(db / node.files[e.ref.file].path()) >= e.ref.offset + e.ref.length);
            }
          }
          for (const auto& c : node.children) walk(node.files[c.child.file], c.child, height - 1);
        };
    for (const auto& v : m.versions)
      if (!v.root.is_missing()) walk(m.files[v.root.file], v.root, v.root_height);
  }
  MESSAGE(manifests << " manifests, " << nodes << " nodes, " << leaves << " leaf entries (" << out_of_line
                    << " out-of-line) decoded and re-encoded byte-identically");
  CHECK(manifests >= 40);
  // The fixtures' arrays are small, so every value is inline; out-of-line values are covered by the
  // writer tests and the TensorStore interop suite.
}

TEST_CASE("the worked example of orbax-format.md §3.3 decodes field by field") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  // A merged root: its values live in ocdbt.process_0's data files.
  auto db = *shared / "fixtures/orbax-compat/v0_checkpoints/direct_checkpoint/checkpoint_metadata_present";
  for (const auto& d : cairn_test::find_databases(db)) {
    if (d.filename().string().rfind("ocdbt.process_", 0) == 0) continue;
    auto m = oc::decode_manifest(cairn_test::read_file(d / "manifest.ocdbt").view(), "manifest");
    CHECK(m.config.kind == oc::manifest_kind::single);
    CHECK(m.config.compression == oc::compression::zstd(0));
    CHECK(m.versions.back().generation >= 1);
    CHECK(m.version_nodes.empty());
  }
}

TEST_CASE("round trips: manifests with several versions, numbered config, empty database") {
  oc::manifest m;
  m.config = oc::config::orbax_default();
  m.files = {{"", "d/aaaa"}, {"", "d/bbbb"}};
  for (std::uint64_t g = 1; g <= 3; ++g)  // one bucket of 2^4 generations
    m.versions.push_back({g, static_cast<std::uint8_t>(g - 1), {g % 2, 100 * g, 50}, {g, 10 * g, 7}, 1000 + g});
  m.version_nodes = {};
  for (auto c : {oc::compression::none(), oc::compression::zstd(0), oc::compression::zstd(5)}) {
    m.config.compression = c;
    auto bytes = oc::encode_manifest(m);
    auto back = oc::decode_manifest(bytes.view(), "m");
    CHECK(back.config == m.config);
    REQUIRE(back.versions.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(back.versions[i].generation == m.versions[i].generation);
      CHECK(back.files[back.versions[i].root.file] == m.files[m.versions[i].root.file]);
      CHECK(back.versions[i].stats == m.versions[i].stats);
      CHECK(back.versions[i].commit_time_ns == m.versions[i].commit_time_ns);
    }
  }
  // An empty database: the root is missing.
  oc::manifest e;
  e.config = oc::config::orbax_default();
  e.versions.push_back({1, 0, oc::location::missing(), {}, 5});
  auto eb = oc::decode_manifest(oc::encode_manifest(e).view(), "empty");
  CHECK(eb.latest()->root.is_missing());
  // A numbered-kind configuration manifest holds only the config.
  oc::manifest n;
  n.config.kind = oc::manifest_kind::numbered;
  auto nb = oc::decode_manifest(oc::encode_manifest(n).view(), "numbered");
  CHECK(nb.latest() == nullptr);
  CHECK(oc::numbered_manifest_name(0x1f) == "manifest.000000000000001f");
  // The ranges of version-tree nodes a manifest may reference (TensorStore's rule).
  using R = oc::version_node_range;
  CHECK(oc::version_node_ranges(4, 2).empty());
  CHECK(oc::version_node_ranges(8, 2) == std::vector<R>{{1, 4, 1}});
  CHECK(oc::version_node_ranges(9, 2) == std::vector<R>{{1, 8, 1}});
  CHECK(oc::version_node_ranges(17, 2) == std::vector<R>{{1, 16, 1}});
  CHECK(oc::version_node_ranges(30, 2) == std::vector<R>{{17, 28, 1}, {1, 16, 2}});
}

TEST_CASE("round trips: leaf and interior nodes, base paths, prefix compression") {
  oc::btree_node leaf;
  leaf.files = {{"ocdbt.process_1/", "d/f1"}, {"ocdbt.process_0/", "d/f0"}, {"ocdbt.process_0/", "d/f2"}};
  std::vector<std::string> keys{"a/.zarray", "a/0", "a/1", "b.c/.zarray", "b.c/0", "z"};
  for (std::size_t i = 0; i < keys.size(); ++i) {
    oc::leaf_entry e;
    e.key = keys[i];
    if (i % 2 == 0) {
      e.value = cairn::shared_bytes::copy_of(cairn::as_bytes("value of " + keys[i]));
    } else {
      e.is_inline = false;
      e.ref = {i % 3, 4096 * i, 5000 + i};
    }
    leaf.leaves.push_back(e);
  }
  auto bytes = oc::encode_btree_node(leaf, oc::compression::zstd(0));
  auto back = oc::decode_btree_node(bytes.view(), "", "leaf");
  REQUIRE(back.leaves.size() == keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    CHECK(back.leaves[i].key == keys[i]);
    CHECK(back.leaves[i].is_inline == leaf.leaves[i].is_inline);
    if (back.leaves[i].is_inline) {
      CHECK(back.leaves[i].value == leaf.leaves[i].value);
    } else {
      CHECK(back.files[back.leaves[i].ref.file] == leaf.files[leaf.leaves[i].ref.file]);
      CHECK(back.leaves[i].ref.offset == leaf.leaves[i].ref.offset);
      CHECK(back.leaves[i].ref.length == leaf.leaves[i].ref.length);
    }
  }
  // Decoding under a transitive path prefixes every base path.
  auto nested = oc::decode_btree_node(bytes.view(), "sub/", "leaf");
  CHECK(nested.files[0].base_path.rfind("sub/ocdbt.process_", 0) == 0);

  oc::btree_node interior;
  interior.height = 2;
  interior.files = {{"", "d/n"}};
  for (int i = 0; i < 3; ++i)
    interior.children.push_back({"key" + std::to_string(i), static_cast<std::uint16_t>(i), {0, 10u * i, 7}, {1, 2, 3}});
  auto ib = oc::decode_btree_node(oc::encode_btree_node(interior, oc::compression::none()).view(), "", "interior");
  REQUIRE(ib.children.size() == 3);
  CHECK(ib.height == 2);
  CHECK(ib.children[2].key == "key2");
  CHECK(ib.children[2].subtree_common_prefix_length == 2);
  CHECK(ib.children[1].child.offset == 10);
  CHECK(ib.children[1].stats == oc::btree_stats{1, 2, 3});

  CHECK_THROWS_AS(oc::encode_btree_node(oc::btree_node{}, oc::compression::none()), cairn::error);
  oc::btree_node unsorted = leaf;
  std::swap(unsorted.leaves[0], unsorted.leaves[1]);
  CHECK_THROWS_AS(oc::encode_btree_node(unsorted, oc::compression::none()), cairn::error);
}

TEST_CASE("a node is compressed in pieces: the envelope holds exactly the body encoded whole") {
  // Many inline values (some larger than the piece size of 1 MiB, handed over where they lie) and
  // references, over several MiB, so that zstd's workers also take part.
  oc::btree_node leaf;
  leaf.files = {{"", "d/a"}, {"", "d/b"}};
  std::mt19937 rng(3);
  for (int i = 0; i < 30000; ++i) {
    oc::leaf_entry e;
    char key[40];
    std::snprintf(key, sizeof key, "layer_%05d.w/%s", i, i % 3 == 0 ? "c/0" : "zarr.json");
    e.key = key;
    if (i % 7 == 3) {
      e.is_inline = false;
      e.ref = {static_cast<std::uint64_t>(i % 2), 4096u * static_cast<std::uint64_t>(i), 100u + static_cast<std::uint64_t>(i)};
    } else {
      const std::size_t n = i % 5000 == 1 ? (std::size_t{3} << 20) / 2 : 64 + static_cast<std::size_t>(i % 400);
      std::string v(n, '\0');
      for (auto& c : v) c = static_cast<char>(rng() % 7 == 0 ? rng() : 'x');
      e.value = cairn::shared_bytes::copy_of(cairn::as_bytes(v));
    }
    leaf.leaves.push_back(std::move(e));
  }
  std::sort(leaf.leaves.begin(), leaf.leaves.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  const auto body = oc::encode_btree_node_body(leaf);
  CHECK(body.size() > (std::size_t{8} << 20));
  // Uncompressed, the envelope is byte for byte the one built from the whole body.
  CHECK(same(oc::encode_btree_node(leaf, oc::compression::none()).view(),
             oc::encode_envelope(oc::btree_node_magic, body.view(), oc::compression::none()).view()));
  for (const auto c : {oc::compression::zstd(0), oc::compression::zstd(-1)}) {
    const auto bytes = oc::encode_btree_node(leaf, c);
    CHECK(bytes.size() < body.size() / 2);
    CHECK(same(oc::decode_envelope(bytes.view(), oc::btree_node_magic, "node").view(), body.view()));
    const auto back = oc::decode_btree_node(bytes.view(), "", "node");
    REQUIRE(back.leaves.size() == leaf.leaves.size());
    CHECK(back.leaves[1].key == leaf.leaves[1].key);
  }
  // Pieces that do not add up to the announced size are refused, and the thread's context is left
  // ready for the next frame.
  auto short_body = [&](auto&& feed) { feed(body.view().first(body.size() - 1)); };
  CHECK_THROWS_WITH_AS(oc::encode_envelope_pieces(oc::btree_node_magic, body.size(), oc::compression::zstd(0), short_body),
                       doctest::Contains("announced"), cairn::error);
  CHECK_THROWS_WITH_AS(oc::encode_envelope_pieces(oc::btree_node_magic, body.size(), oc::compression::none(), short_body),
                       doctest::Contains("announced"), cairn::error);
  auto failing = [&](auto&& feed) {
    feed(body.view().first(1000));
    throw std::runtime_error("producer failed");
  };
  CHECK_THROWS_WITH_AS(oc::encode_envelope_pieces(oc::btree_node_magic, body.size(), oc::compression::zstd(0), failing),
                       "producer failed", std::runtime_error);
  const auto again = oc::encode_btree_node(leaf, oc::compression::zstd(0));
  CHECK(same(oc::decode_envelope(again.view(), oc::btree_node_magic, "node").view(), body.view()));
}

TEST_CASE("data file tables re-encode with TensorStore's prefix rules") {
  cairn::ocdbt::data_file_table_builder b;
  std::vector<oc::data_file_id> ids{{"ocdbt.process_0/", "d/abc1"}, {"ocdbt.process_0/", "d/abc2"},
                                    {"ocdbt.process_1/", "d/abc1"}, {"", "d/zz"}, {"", "d/zy"}};
  for (const auto& i : ids) b.add(i);
  b.add(ids[0]);  // duplicates merge
  cairn::byte_buffer out;
  b.finalize(out);
  CHECK(b.size() == 5);
  cairn::byte_reader r(out.view(), "table");
  auto back = oc::decode_data_file_table(r, "");
  r.expect_end("table");
  std::vector<oc::data_file_id> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  CHECK(back == sorted);
  for (const auto& i : ids) CHECK(back[b.index_of(i)] == i);
}

TEST_CASE("damaged objects are errc::corrupted: truncation, bit flips, hostile counts") {
  oc::btree_node leaf;
  for (int i = 0; i < 20; ++i) {
    oc::leaf_entry e;
    e.key = "param" + std::to_string(100 + i) + "/0";
    e.value = cairn::shared_bytes::copy_of(cairn::as_bytes(std::string(static_cast<std::size_t>(i) * 7, 'x')));
    leaf.leaves.push_back(e);
  }
  oc::manifest m;
  m.config = oc::config::orbax_default();
  m.files = {{"", "d/0123"}};
  m.versions.push_back({1, 0, {0, 0, 240}, {4, 240, 0}, 7});
  for (auto c : {oc::compression::none(), oc::compression::zstd(0)}) {
    auto node = oc::encode_btree_node(leaf, c);
    m.config.compression = c;
    auto man = oc::encode_manifest(m);
    auto expect_corrupt = [](auto&& f) {
      try {
        f();
        return false;
      } catch (const cairn::error& e) {
        return e.code() == cairn::errc::corrupted;
      }
    };
    for (std::size_t len = 0; len < node.size(); len += 1 + len / 8) {
      CHECK(expect_corrupt([&] { oc::decode_btree_node(node.view().first(len), "", "node"); }));
    }
    for (std::size_t len = 0; len < man.size(); ++len)
      CHECK(expect_corrupt([&] { oc::decode_manifest(man.view().first(len), "manifest"); }));
    std::mt19937 rng(3);
    for (int t = 0; t < 300; ++t) {
      auto copy = node;
      std::size_t at = rng() % copy.size();
      copy[at] ^= std::byte(1u << (rng() % 8));
      CHECK(expect_corrupt([&] { oc::decode_btree_node(copy.view(), "", "node"); }));
    }
  }
  // A CRC-valid body with a hostile entry count must not allocate or read past the body.
  cairn::byte_buffer body;
  body.push_back(std::byte{0});        // height
  cairn::append_varint(body, 0);       // no files
  cairn::append_varint(body, 1u << 20);  // 2^20 entries, but nothing follows
  auto hostile = oc::encode_envelope(oc::btree_node_magic, body.view(), oc::compression::none());
  CHECK_THROWS_WITH_AS(oc::decode_btree_node(hostile.view(), "", "node \"d/x\""),
                       doctest::Contains("cannot fit"), cairn::error);
  cairn::byte_buffer body2;
  body2.push_back(std::byte{0});
  cairn::append_varint(body2, 0xFFFFFFFFFFull);  // absurd file count
  auto hostile2 = oc::encode_envelope(oc::btree_node_magic, body2.view(), oc::compression::none());
  CHECK_THROWS_WITH_AS(oc::decode_btree_node(hostile2.view(), "", "node"), doctest::Contains("num_files"),
                       cairn::error);
  // Wrong magic and wrong format version.
  auto as_manifest = oc::encode_envelope(oc::manifest_magic, body.view(), oc::compression::none());
  CHECK_THROWS_WITH_AS(oc::decode_btree_node(as_manifest.view(), "", "node"),
                       doctest::Contains("expected 0x0CDB20DE, found 0x0CDB3A2A"), cairn::error);
}
