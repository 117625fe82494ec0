// SPDX-License-Identifier: Apache-2.0
// Whole checkpoints through the untyped API: every Orbax fixture behaves as its README says, and
// cairn's own saves round-trip every leaf kind, commit atomically and refuse to overwrite.
#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/verify.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "support/shared.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using cairn::dynamic_tree;

namespace {
std::vector<std::int32_t> ints(const dynamic_tree& t) {
  auto v = t.as_array().values<std::int32_t>();
  return {v.begin(), v.end()};
}
const std::vector<std::int32_t> a_values{0, 1, 2, 3, 4, 5, 6, 7}, c_values{1, 2, 3};

// The PyTree item of the fixtures: a = 0..7, b.c = 1 2 3 (nested, or flat when _METADATA is missing).
void check_state(const dynamic_tree& state, bool has_metadata) {
  CHECK(ints(state.at(cairn::key("a"))) == a_values);
  if (has_metadata) CHECK(ints(state.at(cairn::key_path{"b", "c"})) == c_values);
  else CHECK(ints(state.at(cairn::key("b.c"))) == c_values);
}
}  // namespace

TEST_CASE("every Orbax fixture checkpoint behaves as its README says") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  const fs::path root = *shared / "fixtures" / "orbax-compat";
  int loaded = 0, failed_clearly = 0;
  for (const char* version : {"v0_checkpoints", "v1_checkpoints"}) {
    for (const char* layout : {"composite_checkpoint", "direct_checkpoint"}) {
      const fs::path base = root / version / layout;
      if (!fs::exists(base)) continue;
      for (const auto& category : fs::directory_iterator(base)) {
        for (const auto& c : fs::directory_iterator(category.path())) {
          const fs::path dir = c.path();
          const std::string cat = category.path().filename().string(), name = dir.filename().string();
          CAPTURE(dir.string());
          const bool direct = std::string(layout) == "direct_checkpoint";
          const bool has_metadata = name != "pytree_checkpointable_missing_metadata";
          if (cat == "critical_metadata_alterations") {
            const std::string missing = name.find("manifest") != std::string::npos ? "manifest.ocdbt" : "d/";
            try {
              if (direct) (void)cairn::load(dir);
              else (void)cairn::load_item(dir, "state");
              FAIL("a checkpoint without its " << missing << " loaded");
            } catch (const cairn::error& e) {
              CHECK(e.code() == cairn::errc::not_found);
              CHECK_MESSAGE(std::string(e.what()).find(missing) != std::string::npos, e.what());
              ++failed_clearly;
            }
            continue;
          }
          if (cat == "critical_general_alterations") {  // an extra item "dummy" without handler information
            check_state(cairn::load_item(dir, "state"), true);
            auto all = cairn::load(dir);
            CHECK(all.as_map().count("state") == 1);
            CHECK(all.as_map().count("dummy") == 0);
            CHECK_THROWS_WITH_AS(cairn::load_item(dir, "dummy"), doctest::Contains("item \"dummy\""), cairn::error);
            ++loaded;
            continue;
          }
          if (cat == "non_critical_general_alterations") {  // the state item was deleted
            auto items = cairn::list_items(dir);
            bool state_listed_absent = false, metadata_present = false;
            for (const auto& i : items) {
              if (i.name == "state") state_listed_absent = !i.present;
              if (i.name == "metadata") metadata_present = i.present;
            }
            CHECK(metadata_present);
            auto all = cairn::load(dir);
            CHECK(all.as_map().count("state") == 0);
            CHECK(all.at(cairn::key("metadata")).as_json().at("metadata").as_string() == "json_data");
            CHECK_THROWS_AS(cairn::load_item(dir, "state"), cairn::error);
            (void)state_listed_absent;
            ++loaded;
            continue;
          }
          auto t = cairn::load(dir);
          if (direct) {
            check_state(t, has_metadata);
          } else {
            check_state(t.at(cairn::key("state")), has_metadata);
            CHECK(t.at(cairn::key("metadata")).as_json().at("metadata").as_string() == "json_data");
          }
          ++loaded;
        }
      }
    }
  }
  MESSAGE(loaded << " fixture checkpoints loaded with the expected values, " << failed_clearly
                 << " damaged ones failed naming what is missing");
  CHECK(loaded >= 30);
  CHECK(failed_clearly == 6);  // missing d/ or manifest.ocdbt, in v0 composite, v0 direct and v1 composite
}

TEST_CASE("save → load round-trips every leaf kind, in both zarr versions") {
  cairn_test::temp_dir dir;
  std::vector<float> w(6 * 5);
  std::iota(w.begin(), w.end(), -3.0f);
  std::vector<cairn::bfloat16> h;
  for (float x : w) h.push_back(cairn::bfloat16(x / 7));
  std::vector<std::uint8_t> bytes{1, 2, 3};
  dynamic_tree tree = dynamic_tree::map({
      {"params", dynamic_tree::map({{"dense", dynamic_tree::map({{"kernel", cairn::host_array::from(std::span<const float>(w), cairn::shape{6, 5})},
                                                                 {"bias_bf16", cairn::host_array::from(std::span<const cairn::bfloat16>(h), cairn::shape{3, 2, 5})}})}})},
      {"layers", dynamic_tree::list({cairn::host_array::from(std::span<const std::uint8_t>(bytes), cairn::shape{3}),
                                     dynamic_tree::map({{"s", cairn::scalar(std::int64_t{42})}})})},
      {"step", cairn::scalar(std::int32_t{1200})},
      {"lr", cairn::scalar(0.001)},
      {"name", "tiny mlp"},
      {"empty_dict", dynamic_tree(dynamic_tree::map_type{})},
      {"empty_list", dynamic_tree(dynamic_tree::list_type{})},
      {"nothing", cairn::empty_node::none},
  });
  for (int zarr : {2, 3}) {
    cairn::save_options o;
    o.pytree.zarr_format = zarr;
    o.pytree.fsync = cairn::kvstore::fsync_policy::none;
    const fs::path root = dir.path() / ("zarr" + std::to_string(zarr));
    auto step_dir = cairn::save_items(root, 7, {{"state", tree}, {"extra", dynamic_tree(cairn::json::parse(R"({"lr": 0.1})", "x"))}}, o);
    CHECK(step_dir == root / "7");
    CHECK(fs::exists(root / "7" / "commit_success.txt"));
    CHECK(cairn::list_tmp_dirs(root).empty());
    auto back = cairn::load(root);
    CHECK(back.at(cairn::key("state")) == tree);
    CHECK(back.at(cairn::key("extra")).as_json().at("lr").as_double() == 0.1);
    auto meta = cairn::read_checkpoint_metadata(root / "7");
    REQUIRE(meta);
    REQUIRE(meta->handler("state"));
    CHECK(cairn::handler_typestr::is_pytree(*meta->handler("state")));
    CHECK(meta->init_timestamp_nsecs <= meta->commit_timestamp_nsecs);
    // A committed step is never overwritten.
    try {
      cairn::save(root, 7, tree, o);
      FAIL("overwrote step 7");
    } catch (const cairn::error& e) {
      CHECK(e.code() == cairn::errc::already_exists);
    }
    // The latest step is what a root loads.
    cairn::save(root, 8, dynamic_tree::map({{"x", cairn::scalar(1.5f)}}), o);
    CHECK(cairn::load(root).at(cairn::key_path{"default", "x"}).as_scalar().as<float>() == 1.5f);
  }
}

TEST_CASE("keys that cannot be stored are rejected before anything is committed") {
  cairn_test::temp_dir dir;
  cairn::save_options o;
  o.pytree.fsync = cairn::kvstore::fsync_policy::none;
  CHECK_THROWS_WITH_AS(cairn::save(dir.path(), 1, dynamic_tree::map({{"a/b", cairn::scalar(1)}}), o),
                       doctest::Contains("keys may not contain '/'"), cairn::error);
  CHECK_THROWS_WITH_AS(cairn::save(dir.path(), 2, dynamic_tree::map({{"a.b", cairn::scalar(1)}, {"a", dynamic_tree::map({{"b", cairn::scalar(2)}})}}), o),
                       doctest::Contains("share the parameter name \"a.b\""), cairn::error);
  CHECK_THROWS_WITH_AS(cairn::save(dir.path(), 3, dynamic_tree::map({{"a", dynamic_tree::list({cairn::scalar(1)})}, {"a.0", cairn::scalar(2)}}), o),
                       doctest::Contains("share the parameter name \"a.0\""), cairn::error);
  // A key that is not UTF-8 cannot go into _METADATA: rejected by name before any data is written.
  CHECK_THROWS_WITH_AS(cairn::save(dir.path(), 5, dynamic_tree::map({{"w", dynamic_tree::map({{"k\xff", cairn::scalar(1)}})}}), o),
                       doctest::Contains("key \"k\\xff\" under \"w\": keys must be UTF-8 (byte 1 is not)"), cairn::error);
  // Non-ASCII keys are checked the long way, dotted collisions included.
  CHECK_THROWS_WITH_AS(cairn::save(dir.path(), 6, dynamic_tree::map({{"\xc3\xa9.b", cairn::scalar(1)}, {"\xc3\xa9", dynamic_tree::map({{"b", cairn::scalar(2)}})}}), o),
                       doctest::Contains("share the parameter name \"\xc3\xa9.b\""), cairn::error);
  CHECK(cairn::list_steps(dir.path()).empty());
  // The failed saves took their uncommitted step directories with them.
  CHECK(cairn::list_tmp_dirs(dir.path()).empty());
  CHECK(std::filesystem::is_empty(dir.path()));
  // Dotted keys that do not collide are stored as they are.
  const auto dotted = dynamic_tree::map({{"a", dynamic_tree::map({{"b", cairn::scalar(1)}})}, {"a.c", cairn::scalar(2)}, {"d.e", cairn::scalar(3)}});
  cairn::save(dir.path(), 4, dotted, o);
  CHECK(cairn::load(dir.path()).at(cairn::key_path{"default", "a.c"}).as_scalar().as<int>() == 2);
  CHECK(cairn::load(dir.path()).at(cairn::key_path{"default", "d.e"}).as_scalar().as<int>() == 3);
  cairn::save(dir.path(), 7, dynamic_tree::map({{"gr\xc3\xbc\xc3\x9f", cairn::scalar(4)}}), o);
  CHECK(cairn::load(dir.path()).at(cairn::key_path{"default", "gr\xc3\xbc\xc3\x9f"}).as_scalar().as<int>() == 4);
}

TEST_CASE("a stale temporary directory is never listed or loaded") {
  cairn_test::temp_dir dir;
  cairn::save_options o;
  o.pytree.fsync = cairn::kvstore::fsync_policy::none;
  cairn::save(dir.path(), 1, dynamic_tree::map({{"x", cairn::scalar(1)}}), o);
  fs::create_directories(dir.path() / "2.orbax-checkpoint-tmp" / "default");
  CHECK(cairn::list_steps(dir.path()).size() == 1);
  CHECK(cairn::load(dir.path()).at(cairn::key_path{"default", "x"}).as_scalar().as<int>() == 1);
  CHECK_THROWS_WITH_AS(cairn::load(dir.path() / "nothing"), doctest::Contains("is not a directory"), cairn::error);
}

TEST_CASE("large chunks are streamed into the data file while they are encoded, in both zarr versions and uncompressed") {
  cairn_test::temp_dir dir;
  // 24 MiB of float32 and a 4-way sharded array with 18 MiB shards: both above the streaming threshold.
  const cairn::index_t n = (std::int64_t{24} << 20) / 4;
  cairn::host_array big(cairn::dtype::float32, cairn::shape{n});
  auto b = big.mutable_bytes();
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>((i * 2654435761u) >> 13);
  cairn::host_array wide(cairn::dtype::uint8, cairn::shape{4, std::int64_t{18} << 20});
  auto wb = wide.mutable_bytes();
  for (std::size_t i = 0; i < wb.size(); ++i) wb[i] = static_cast<std::byte>(i % 251 < 40 ? 0 : i % 7);
  const cairn::device_mesh mesh({{"x", 4}});
  dynamic_tree tree = dynamic_tree::map({{"big", big},
                                         {"small", cairn::scalar(1.0f)},
                                         {"wide", cairn::sharded_array::scatter(wide.view(), cairn::named_sharding(mesh, cairn::partition_spec{"x"}))}});
  for (int zarr : {2, 3})
    for (bool compress : {true, false}) {
      CAPTURE(zarr);
      CAPTURE(compress);
      cairn::save_options o;
      o.pytree.zarr_format = zarr;
      o.pytree.compress = compress;
      const fs::path root = dir.path() / ("z" + std::to_string(zarr) + (compress ? "c" : "u"));
      cairn::save(root, 1, tree, o);
      auto back = cairn::load(root);
      CHECK(back.at(cairn::key_path{"default", "big"}).as_array() == big);
      CHECK(back.at(cairn::key_path{"default", "wide"}).as_array() == wide);
      const auto report = cairn::verify(root);
      CHECK_MESSAGE(report.ok(), report.problems.size());
    }
}

namespace {
// Saves `tree` into `item` whose "d" is a file, so that no data file can be made: the failure reaches
// the caller, and the item gets no `_METADATA`, no database manifest, and none of the files written
// beside the data (they are taken back).
void check_data_failure_reported(const fs::path& item, const dynamic_tree& tree, const cairn::pytree_save_options& o) {
  fs::create_directories(item);
  std::ofstream(item / "d") << "not a directory";
  CHECK_THROWS_AS(cairn::write_pytree_item(item, tree, o), cairn::error);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(item)) left.push_back(e.path().filename().string());
  CHECK(left == std::vector<std::string>{"d"});
}
}  // namespace

TEST_CASE("batches of small arrays are encoded while the batch before is written, and either failure is reported") {
  cairn_test::temp_dir dir;
  // 2,500 arrays of 1,600 incompressible bytes: stored out of line (above the 1,024-byte inline limit),
  // in three batches, the second and third encoded while the one before goes to the data files.
  std::mt19937 rng(11);
  dynamic_tree::map_type leaves;
  for (int i = 0; i < 2500; ++i) {
    std::vector<std::int32_t> v(400);
    for (auto& x : v) x = static_cast<std::int32_t>(rng());
    char name[16];
    std::snprintf(name, sizeof name, "w%04d", i);
    leaves.emplace(name, cairn::host_array::from(std::span<const std::int32_t>(v), cairn::shape{400}));
  }
  const dynamic_tree tree(std::move(leaves));
  cairn::pytree_save_options o;
  o.fsync = cairn::kvstore::fsync_policy::none;
  const fs::path item = dir.path() / "item";
  cairn::write_pytree_item(item, tree, o);
  CHECK(cairn::pytree_item(item).read() == tree);
  CHECK(fs::exists(item / "d"));
  // The first put of the first batch fails (no data file can be made) while the second is encoded.
  check_data_failure_reported(dir.path() / "broken", tree, o);
}

TEST_CASE("a tree of many leaves is written and opened on two threads") {
  cairn_test::temp_dir dir;
  // 1,600 leaves: above the count at which the writer works on two threads, and a `_METADATA` above
  // the size at which the reader opens the database while it parses it.
  dynamic_tree::map_type layers;
  for (int l = 0; l < 80; ++l) {
    dynamic_tree::map_type layer;
    for (int i = 0; i < 20; ++i) {
      const std::vector<std::int32_t> v(5 + i, l * 100 + i);
      layer.emplace("w" + std::to_string(i), cairn::host_array::from(std::span<const std::int32_t>(v), cairn::shape{static_cast<cairn::index_t>(v.size())}));
    }
    layer.emplace("name", "layer " + std::to_string(l));
    if (l == 40) {  // one array too large to be encoded in a batch of small ones, between them
      std::vector<std::int32_t> big(300000);
      std::iota(big.begin(), big.end(), 0);
      layer.emplace("big", cairn::host_array::from(std::span<const std::int32_t>(big), cairn::shape{300, 1000}));
    }
    layers.emplace("layer_" + std::to_string(l), dynamic_tree(std::move(layer)));
  }
  const dynamic_tree tree(std::move(layers));
  cairn::pytree_save_options o;
  o.fsync = cairn::kvstore::fsync_policy::none;
  for (int zarr : {2, 3}) {
    o.zarr_format = zarr;
    const fs::path item = dir.path() / ("zarr" + std::to_string(zarr));
    cairn::write_pytree_item(item, tree, o);
    REQUIRE(fs::file_size(item / "_METADATA") >= cairn::pytree_item::parallel_metadata_bytes);
    CHECK(cairn::pytree_item(item).read() == tree);
  }
  // A damaged database is reported as on one thread.
  fs::remove_all(dir.path() / "zarr2" / "d");
  CHECK_THROWS_WITH_AS(cairn::pytree_item(dir.path() / "zarr2"), doctest::Contains("the data directory \"d/\" is missing"), cairn::error);
  std::ofstream(dir.path() / "zarr3" / "manifest.ocdbt", std::ios::trunc) << "garbage";
  try {
    cairn::pytree_item damaged(dir.path() / "zarr3");
    FAIL("opened an item with a damaged manifest");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::corrupted);
  }
  // A failure writing the data (here: "d" is a file, so no data file can be made) reaches the caller,
  // and the item gets no metadata files.
  check_data_failure_reported(dir.path() / "broken", tree, o);
  // A leaf that cannot be stored is found before any data is written.
  dynamic_tree bad = tree;
  bad.as_map().emplace("zz", dynamic_tree(cairn::json::parse("{}", "x")));
  const fs::path refused = dir.path() / "refused";
  CHECK_THROWS_WITH_AS(cairn::write_pytree_item(refused, bad, o), doctest::Contains("cannot be a PyTree leaf"), cairn::error);
  CHECK_FALSE(fs::exists(refused / "d"));
}
