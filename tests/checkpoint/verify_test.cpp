// SPDX-License-Identifier: Apache-2.0
// cairn::verify finds a single flipped byte in any stored chunk, B+tree node or manifest of a
// checkpoint cairn wrote, and names the leaf (or the database) it belongs to.
#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/verify.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;

namespace {
void flip(const fs::path& file, std::uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x10));
}
bool mentions(const cairn::verify_report& r, const std::string& text) {
  for (const auto& p : r.problems)
    if (p.find(text) != std::string::npos) return true;
  return false;
}
}  // namespace

TEST_CASE("verify detects a flipped byte in every chunk, node and manifest and names where") {
  for (int zarr : {2, 3}) {
    CAPTURE(zarr);
    cairn_test::temp_dir dir;
    std::mt19937 rng(5);
    cairn::dynamic_tree tree;
    for (int i = 0; i < 6; ++i) {
      std::vector<float> v(static_cast<std::size_t>(300 * (i + 1)));  // 1.2 KB .. 7.2 KB: out-of-line chunks
      for (auto& x : v) x = static_cast<float>(rng() % 1000) / 7.0f;
      tree["layer" + std::to_string(i)]["kernel"] = cairn::host_array::from(std::span<const float>(v), cairn::shape{static_cast<cairn::index_t>(v.size())});
    }
    tree["step"] = cairn::scalar(std::int64_t{3});  // a small chunk: inline in a B+tree node
    cairn::save_options o;
    o.pytree.zarr_format = zarr;
    o.pytree.fsync = cairn::kvstore::fsync_policy::none;
    cairn::save(dir.path(), 1, tree, o);
    const fs::path item = dir.path() / "1" / "default";
    REQUIRE(cairn::verify(dir.path()).ok());

    int chunks = 0;
    cairn::ocdbt::reader db(cairn::kvstore::open_file(item));
    std::vector<cairn::ocdbt::value_location> values;
    db.for_each({}, [&](cairn::ocdbt::value_location&& l) { values.push_back(std::move(l)); });
    for (const auto& l : values) {
      if (l.is_inline) continue;
      const std::string leaf = l.key.substr(0, l.key.find('/'));
      const fs::path file = item / l.file.path();
      flip(file, l.offset + l.size / 2);
      auto report = cairn::verify(dir.path());
      CHECK_MESSAGE(!report.ok(), "flipped byte in " << l.key << " went unnoticed");
      CHECK_MESSAGE(mentions(report, "leaf \"" + leaf), (report.problems.empty() ? std::string() : report.problems[0]));
      flip(file, l.offset + l.size / 2);  // restore
      ++chunks;
    }
    CHECK(chunks >= 5);  // the smallest array may compress below the 1 KiB inline limit
    // The root B+tree node (holding the inline chunk of "step" and every zarr metadata document).
    const auto& root = db.latest().root;
    const fs::path node_file = item / db.manifest().files[root.file].path();
    for (std::uint64_t at : {root.offset + 5, root.offset + root.length / 2, root.offset + root.length - 2}) {
      flip(node_file, at);
      auto report = cairn::verify(dir.path());
      CHECK(!report.ok());
      CHECK_MESSAGE(mentions(report, "B+tree node \"" + db.manifest().files[root.file].path() + "\""),
                    (report.problems.empty() ? std::string() : report.problems[0]));
      flip(node_file, at);
    }
    // The manifest.
    flip(item / "manifest.ocdbt", 20);
    CHECK(mentions(cairn::verify(dir.path()), "manifest.ocdbt"));
    flip(item / "manifest.ocdbt", 20);
    CHECK(cairn::verify(dir.path()).ok());
  }
}
