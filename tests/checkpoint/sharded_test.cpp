// SPDX-License-Identifier: Apache-2.0
// Sharded saves and resharded restores on the host backend's simulated devices: the seed's case,
// a bit-exact matrix of (mesh, spec) pairs, saved-sharding defaults and their errors, engine tensors
// through shard_adapter, and the files Orbax reads (_sharding, write shapes, one chunk per shard).
#include <cairn/backend/host.hpp>
#include <cairn/checkpoint/typed.hpp>
#include <cairn/ocdbt/reader.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "support/shared.hpp"
#include "support/temp_dir.hpp"

using namespace cairn;

namespace {

host_array iota(dtype t, shape s, int seed) {
  host_array a(t, s);
  auto b = a.mutable_bytes();
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>((i * 131 + static_cast<std::size_t>(seed) * 17 + i / 7) & 0xff);
  return a;
}

// Every local shard of `a` holds exactly its box of `whole`.
void check_slices(const sharded_array& a, const host_array& whole, const std::string& what) {
  REQUIRE_MESSAGE(a.shards().size() == static_cast<std::size_t>(a.sharding().mesh().size()), what);
  for (const auto& s : a.shards()) {
    host_array want = host_array::uninitialized(whole.type(), s.shard.box.shape());
    copy(whole.view().sub(s.shard.box), want.mutable_view());
    if (!(s.data == want)) FAIL(what << ": device " << s.shard.device << " holds the wrong data for " << to_string(s.shard));
  }
}

save_options quick() {
  save_options o;
  o.pytree.fsync = kvstore::fsync_policy::none;
  return o;
}

}  // namespace

TEST_CASE("the seed's case: saved P(-, model) on a 2x2 CPU mesh, restored as P(data, -)") {
  cairn_test::temp_dir dir;
  const host_devices cpu(4);
  const device_mesh mesh = cpu.mesh({{"data", 2}, {"model", 2}});
  const named_sharding saved_as(mesh, partition_spec{replicated, "model"});
  const host_array kernel = iota(dtype::float32, shape{64, 32}, 1), bias = iota(dtype::float32, shape{32}, 2);
  std::map<std::string, std::map<std::string, sharded_array>> state;
  state["dense_1"]["kernel"] = cpu.put(kernel.view(), saved_as);
  state["dense_1"]["bias"] = cpu.put(bias.view(), named_sharding(mesh, partition_spec{"model"}));
  CHECK(to_string(state["dense_1"]["kernel"].sharding(), dtype::float32, kernel.shape()) == "f32[64,32] {data:2, model:2} P(-, model)");
  typed_save_options so;
  so.base = quick();
  const auto step = save(dir.path(), 1, state, so);

  // One chunk per distinct shard; _sharding holds Orbax's NamedSharding.
  pytree_item item(step / "default");
  CHECK(item.open_array("dense_1.kernel").metadata().chunk_shape == std::vector<index_t>{64, 16});
  CHECK(parse_sharding_json(item.shardings().at("dense_1.kernel"), "test") == saved_as);
  CHECK(json::to_string(item.shardings().at("dense_1.kernel"), {.spaced = true}) ==
        R"({"sharding_type": "NamedSharding", "shape": [2, 2], "axis_names": ["data", "model"], "partition_spec": [null, "model"], )"
        R"("device_mesh": {"mesh": [[{"id": 0}, {"id": 1}], [{"id": 2}, {"id": 3}]]}})");
  CHECK(item.metadata()->entries[1].write_shape == std::vector<index_t>{64, 16});
  // `_sharding` is read on first use: damaged or gone by then, it reads as empty, the damage named.
  {
    pytree_item damaged(step / "default"), gone(step / "default");
    const std::string saved_text = [&] {
      std::ifstream in(step / "default" / "_sharding", std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), {});
    }();
    std::ofstream(step / "default" / "_sharding", std::ios::binary) << "{\"ZGVuc2VfMS5rZXJuZWw\": [";
    CHECK(damaged.shardings().empty());
    CHECK(damaged.sharding_error().find("_sharding") != std::string::npos);
    std::filesystem::remove(step / "default" / "_sharding");
    CHECK(gone.shardings().empty());
    CHECK(gone.sharding_error().empty());
    std::ofstream(step / "default" / "_sharding", std::ios::binary) << saved_text;
    CHECK(damaged.shardings().empty());  // read once
  }

  const named_sharding target_as(mesh, partition_spec{"data", replicated});
  std::map<std::string, std::map<std::string, sharded_array>> target;
  target["dense_1"]["kernel"] = sharded_array::placed(target_as);
  target["dense_1"]["bias"] = sharded_array::placed(named_sharding(mesh, partition_spec{}));
  restore(step, target);
  const auto& k = target["dense_1"]["kernel"];
  CHECK(to_string(k.sharding(), k.type(), k.shape()) == "f32[64,32] {data:2, model:2} P(data, -)");
  std::vector<std::string> printed;
  for (const auto& s : k.shards()) printed.push_back(to_string(s.shard));
  CHECK(printed == std::vector<std::string>{"[0:32, 0:32] @0 r0", "[0:32, 0:32] @1 r1", "[32:64, 0:32] @2 r0", "[32:64, 0:32] @3 r1"});
  check_slices(k, kernel, "dense_1.kernel");
  check_slices(target["dense_1"]["bias"], bias, "dense_1.bias");

  // A dynamic load assembles whole arrays.
  const dynamic_tree loaded = load(step / "default");
  CHECK(loaded.at(key_path{key("dense_1"), key("kernel")}).as_array() == kernel);
}

TEST_CASE("resharding is bit-exact between every pair of (mesh, spec), fewer and more devices, uneven shapes") {
  cairn_test::temp_dir dir;
  const host_devices cpu(8);
  std::vector<named_sharding> layouts;
  for (int n : {1, 2, 4, 8}) {
    const device_mesh m = cpu.mesh({{"x", n}});
    for (const auto& spec : {partition_spec{}, partition_spec{"x"}, partition_spec{replicated, "x"}}) layouts.emplace_back(m, spec);
  }
  for (auto [a, b] : {std::pair{2, 2}, std::pair{2, 4}, std::pair{4, 2}, std::pair{1, 2}}) {
    const device_mesh m = cpu.mesh({{"a", a}, {"b", b}});
    for (const auto& spec : {partition_spec{"a", "b"}, partition_spec{"b", "a"}, partition_spec{dim_axes{"a", "b"}},
                             partition_spec{replicated, "b"}, partition_spec{"a"}})
      layouts.emplace_back(m, spec);
  }
  const host_array even = iota(dtype::float32, shape{8, 16}, 3), uneven = iota(dtype::int16, shape{9, 6}, 4),
                   tiny = iota(dtype::bfloat16, shape{1, 3}, 5);
  std::size_t restores = 0;
  for (std::size_t i = 0; i < layouts.size(); ++i) {
    std::map<std::string, sharded_array> state{{"even", sharded_array::scatter(even.view(), layouts[i])},
                                               {"uneven", sharded_array::scatter(uneven.view(), layouts[i])},
                                               {"tiny", sharded_array::scatter(tiny.view(), layouts[i])}};
    typed_save_options so;
    so.base = quick();
    so.base.pytree.zarr_format = i % 2 ? 2 : 3;
    const auto step = save(dir.path() / std::to_string(i), 1, state, so);
    for (const auto& to : layouts) {
      std::map<std::string, sharded_array> target{{"even", sharded_array::placed(to)},
                                                  {"uneven", sharded_array::placed(to)},
                                                  {"tiny", sharded_array::placed(to)}};
      restore(step, target);
      const std::string what = to_string(layouts[i]) + " -> " + to_string(to);
      check_slices(target["even"], even, what + " even");
      check_slices(target["uneven"], uneven, what + " uneven");
      check_slices(target["tiny"], tiny, what + " tiny");
      ++restores;
    }
  }
  MESSAGE(restores << " resharded restores of 3 arrays each");
  CHECK(restores == layouts.size() * layouts.size());
}

TEST_CASE("without a target sharding the saved one is used when the devices allow it") {
  cairn_test::temp_dir dir;
  const host_devices cpu(4);
  const named_sharding s(cpu.mesh({{"data", 2}, {"model", 2}}), partition_spec{"data", "model"});
  const host_array w = iota(dtype::float32, shape{4, 6}, 6);
  std::map<std::string, sharded_array> state{{"w", cpu.put(w.view(), s)}};
  typed_save_options so;
  so.base = quick();
  const auto step = save(dir.path(), 3, state, so);

  std::map<std::string, sharded_array> target{{"w", sharded_array()}};
  restore(step, target);
  CHECK(target["w"].sharding() == s);
  check_slices(target["w"], w, "saved sharding");

  restore_options two;
  two.device_count = 2;
  std::map<std::string, sharded_array> again{{"w", sharded_array()}};
  try {
    restore(step, again, two);
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.code() == errc::invalid_sharding);
    CHECK(std::string(e.what()).find("leaf \"w\": the saved sharding f32[4,6] {data:2, model:2} P(data, model) uses device 2, "
                                     "but restore_options::device_count is 2; restore into cairn::sharded_array::placed") !=
          std::string::npos);
  }
  // onto fewer devices, by asking
  std::map<std::string, sharded_array> fewer{{"w", sharded_array::placed(named_sharding(device_mesh{{"x", 2}}, partition_spec{replicated, "x"}))}};
  restore(step, fewer, two);
  check_slices(fewer["w"], w, "onto 2 devices");
}

TEST_CASE("a damaged or hostile _sharding is an error naming the leaf when the restore needs it") {
  cairn_test::temp_dir dir;
  std::map<std::string, sharded_array> state{{"v", sharded_array::scatter(iota(dtype::float32, shape{8}, 8).view(),
                                                                          named_sharding(device_mesh{{"x", 2}}, partition_spec{"x"}))}};
  typed_save_options so;
  so.base = quick();
  const auto step = save(dir.path(), 1, state, so);
  const auto file = step / "default" / "_sharding";
  auto expect_error = [&](const std::string& text, errc code) {
    std::map<std::string, sharded_array> target{{"v", sharded_array()}};
    try {
      restore(step, target);
      FAIL("no error");
    } catch (const error& e) {
      CHECK(e.code() == code);
      CHECK_MESSAGE(std::string(e.what()).find(text) != std::string::npos, e.what());
    }
  };
  {
    std::ofstream f(file, std::ios::trunc);
    f << "{not json";
  }
  expect_error("leaf \"v\": the target has no sharding and _sharding is unreadable (", errc::not_found);
  {
    // A mesh whose axis appears twice.
    std::ofstream f(file, std::ios::trunc);
    f << R"({"dg==":"{\"sharding_type\": \"NamedSharding\", \"shape\": [2, 2], \"axis_names\": [\"x\", \"x\"], \"partition_spec\": [\"x\"]}"})";
  }
  expect_error("leaf \"v\", _sharding: mesh axis \"x\" appears twice", errc::invalid_sharding);
  // With a target sharding the damaged file does not matter.
  std::map<std::string, sharded_array> target{{"v", sharded_array::placed(named_sharding(device_mesh{{"x", 4}}, partition_spec{"x"}))}};
  restore(step, target);
  check_slices(target["v"], iota(dtype::float32, shape{8}, 8), "placed");
}

TEST_CASE("a target sharding that does not fit the array is reported before any data is read") {
  cairn_test::temp_dir dir;
  std::map<std::string, sharded_array> state{{"v", sharded_array::scatter(iota(dtype::float32, shape{8}, 7).view(),
                                                                          named_sharding(device_mesh{{"x", 2}}, partition_spec{"x"}))}};
  typed_save_options so;
  so.base = quick();
  const auto step = save(dir.path(), 1, state, so);
  std::map<std::string, sharded_array> target{{"v", sharded_array::placed(named_sharding(device_mesh{{"x", 2}, {"y", 2}}, partition_spec{"x", "y"}))}};
  try {
    restore(step, target);
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
    CHECK(std::string(e.what()).find("shape mismatch: \"v\": checkpoint f32[8], target sharding {x:2, y:2} P(x, y): ") != std::string::npos);
  }
}

namespace engine {
// An engine's own tensor: one buffer per local device plus its box.
struct tensor {
  cairn::shape global;
  cairn::named_sharding sharding;
  std::vector<cairn::shard> local;
  std::vector<std::vector<float>> buffers;
};
}  // namespace engine

template <>
struct cairn::shard_adapter<engine::tensor> {
  static dtype type(const engine::tensor&) { return dtype::float32; }
  static shape global_shape(const engine::tensor& t) { return t.global; }
  static named_sharding sharding(const engine::tensor& t) { return t.sharding; }
  static std::size_t local_count(const engine::tensor& t) { return t.local.size(); }
  static shard local_shard(const engine::tensor& t, std::size_t i) { return t.local[i]; }
  static array_view view(const engine::tensor& t, std::size_t i) {
    return array_view(reinterpret_cast<const std::byte*>(t.buffers[i].data()), dtype::float32, t.local[i].box.shape());
  }
  static mutable_array_view mutable_view(engine::tensor& t, std::size_t i) {
    return mutable_array_view(reinterpret_cast<std::byte*>(t.buffers[i].data()), dtype::float32, t.local[i].box.shape());
  }
};

TEST_CASE("engine tensors are saved and restored in place through shard_adapter") {
  cairn_test::temp_dir dir;
  auto make = [](const named_sharding& s, const shape& g, bool fill) {
    engine::tensor t{g, s, s.shards(g), {}};
    for (const auto& sh : t.local) {
      std::vector<float> b(static_cast<std::size_t>(sh.box.num_elements()));
      std::size_t i = 0;
      if (fill)
        for_each_point(sh.box, [&](std::span<const index_t> p) { b[i++] = static_cast<float>(p[0] * 100 + p[1]); });
      t.buffers.push_back(std::move(b));
    }
    return t;
  };
  const shape g{6, 10};
  std::map<std::string, engine::tensor> state{{"t", make(named_sharding(device_mesh{{"a", 2}, {"b", 2}}, partition_spec{"a", "b"}), g, true)}};
  typed_save_options so;
  so.base = quick();
  const auto step = save(dir.path(), 1, state, so);
  std::map<std::string, engine::tensor> target{{"t", make(named_sharding(device_mesh{{"x", 3}}, partition_spec{replicated, "x"}), g, false)}};
  restore(step, target);
  for (std::size_t i = 0; i < target["t"].local.size(); ++i) {
    std::size_t j = 0;
    for_each_point(target["t"].local[i].box, [&](std::span<const index_t> p) {
      CHECK(target["t"].buffers[i][j++] == static_cast<float>(p[0] * 100 + p[1]));
    });
  }
}

TEST_CASE("Orbax's fixture arrays (SingleDeviceSharding) restore resharded onto host devices") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  const auto item = *shared / "fixtures/orbax-compat/v1_checkpoints/composite_checkpoint/checkpoint_metadata_present/"
                              "pytree_checkpointable_has_metadata/state";
  const pytree_item saved(item);
  CHECK(to_string(parse_sharding_json(saved.shardings().at("a"), "a")) == "{x:1} P()");
  for (int n : {2, 3, 8}) {
    std::map<std::string, sharded_array> target{{"a", sharded_array::placed(named_sharding(device_mesh{{"x", n}}, partition_spec{"x"}))}};
    restore_options o;
    o.partial = true;
    const auto report = restore(item, target, o);
    CHECK(report.restored == std::vector<std::string>{"a"});
    CHECK(target["a"].shards().size() == static_cast<std::size_t>(n));
    const host_array whole = target["a"].gather();
    for (int i = 0; i < 8; ++i) CHECK(reinterpret_cast<const std::int32_t*>(whole.bytes().data())[i] == i);
  }
}
