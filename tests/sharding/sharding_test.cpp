// SPDX-License-Identifier: Apache-2.0
// The sharding algebra: notation, errors, and the laws of named_sharding::shards and plan_reshard checked
// exhaustively over small meshes, specs and shapes.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <cairn/sharding/chunk_grid.hpp>
#include <cairn/sharding/device_mesh.hpp>
#include <cairn/sharding/named_sharding.hpp>
#include <cairn/sharding/partition_spec.hpp>
#include <cairn/sharding/reshard_plan.hpp>
#include <cairn/sharding/shard.hpp>

using namespace cairn;

namespace {

// Every mesh of at most `max_devices` devices with 1..max_axes axes (sizes >= 1).
std::vector<device_mesh> all_meshes(index_t max_devices, std::size_t max_axes) {
  std::vector<device_mesh> out;
  const char* names[] = {"a", "b", "c"};
  std::function<void(std::vector<mesh_axis>&, index_t)> rec = [&](std::vector<mesh_axis>& axes, index_t product) {
    if (!axes.empty()) out.emplace_back(axes);
    if (axes.size() == max_axes) return;
    for (index_t s = 1; product * s <= max_devices; ++s) {
      axes.push_back({names[axes.size()], s});
      rec(axes, product * s);
      axes.pop_back();
    }
  };
  std::vector<mesh_axis> axes;
  rec(axes, 1);
  return out;
}

// Every partition spec of `rank` over `mesh`: each axis unused or on one dimension, in every order.
std::vector<partition_spec> all_specs(const device_mesh& mesh, std::size_t rank) {
  std::vector<partition_spec> out;
  const std::size_t k = mesh.rank();
  std::vector<std::size_t> where(k);
  std::function<void(std::size_t)> assign = [&](std::size_t a) {
    if (a == k) {
      std::vector<std::vector<std::string>> dims(rank);
      std::vector<std::vector<std::size_t>> idx(rank);
      for (std::size_t i = 0; i < k; ++i)
        if (where[i] < rank) idx[where[i]].push_back(i);
      std::function<void(std::size_t)> order = [&](std::size_t d) {
        if (d == rank) {
          out.emplace_back(dims);
          return;
        }
        std::sort(idx[d].begin(), idx[d].end());
        do {
          dims[d].clear();
          for (auto i : idx[d]) dims[d].push_back(mesh.axes()[i].name);
          order(d + 1);
        } while (std::next_permutation(idx[d].begin(), idx[d].end()));
      };
      order(0);
      return;
    }
    for (std::size_t d = 0; d <= rank; ++d) {
      where[a] = d;
      assign(a + 1);
    }
  };
  assign(0);
  return out;
}

std::vector<shape> all_shapes(std::size_t rank, const std::vector<index_t>& dims) {
  std::vector<shape> out;
  std::vector<index_t> cur;
  std::function<void()> rec = [&] {
    if (cur.size() == rank) {
      out.emplace_back(cur);
      return;
    }
    for (auto d : dims) {
      cur.push_back(d);
      rec();
      cur.pop_back();
    }
  };
  rec();
  return out;
}

bool disjoint(const box& a, const box& b) { return a.empty() || b.empty() || intersect(a, b).empty(); }

}  // namespace

TEST_CASE("the notation prints and parses boxes, shards, meshes, specs and shardings") {
  const device_mesh mesh{{"data", 2}, {"model", 2}};
  CHECK(to_string(mesh) == "{data:2, model:2}");
  CHECK(parse_device_mesh("{data:2, model:2}") == mesh);
  CHECK(parse_device_mesh("data=2,model=2") == mesh);
  const device_mesh odd({{"x", 2}}, {1, 0});
  CHECK(to_string(odd) == "{x:2 ids 1,0}");
  CHECK(parse_device_mesh(to_string(odd)) == odd);

  const partition_spec spec{"data", replicated};
  CHECK(to_string(spec) == "P(data, -)");
  CHECK(parse_partition_spec("P(data, -)") == spec);
  CHECK(parse_partition_spec("data,-") == spec);
  CHECK(to_string(partition_spec{dim_axes{"data", "model"}, replicated}) == "P(data+model, -)");
  CHECK(parse_partition_spec("P(data+model, -)") == partition_spec{dim_axes{"data", "model"}, replicated});
  CHECK(to_string(partition_spec()) == "P()");
  CHECK(partition_spec{"data"} == partition_spec{"data", replicated});  // trailing dims are replicated

  const named_sharding s(mesh, spec);
  CHECK(to_string(s, dtype::float32, shape{1024, 512}) == "f32[1024,512] {data:2, model:2} P(data, -)");
  CHECK(parse_named_sharding("{data:2, model:2} P(data, -)") == s);

  std::vector<std::string> printed;
  for (const auto& sh : s.shards(shape{1024, 512})) printed.push_back(to_string(sh));
  CHECK(printed == std::vector<std::string>{"[0:512, 0:512] @0 r0", "[0:512, 0:512] @1 r1", "[512:1024, 0:512] @2 r0",
                                            "[512:1024, 0:512] @3 r1"});
}

TEST_CASE("bad meshes and specs are invalid_sharding errors naming the problem") {
  const device_mesh mesh{{"data", 2}, {"model", 2}};
  auto fails = [](auto&& f, const std::string& text) {
    try {
      f();
    } catch (const error& e) {
      CHECK(e.code() == errc::invalid_sharding);
      CHECK_MESSAGE(std::string(e.what()).find(text) != std::string::npos, e.what());
      return;
    }
    FAIL("no error for " << text);
  };
  fails([&] { named_sharding(mesh, partition_spec{"data", "data"}); }, "axis \"data\" is used twice");
  fails([&] { named_sharding(mesh, partition_spec{"pipe"}); }, "axis \"pipe\" is not in mesh {data:2, model:2}");
  fails([&] { named_sharding(mesh, partition_spec{"data", "model"}).shards(shape{8}); },
        "P(data, model) has 2 entries for an array of rank 1");
  fails([] { device_mesh({{"a", 2}, {"a", 2}}); }, "appears twice");
  fails([] { device_mesh({{"a", 0}}); }, "has size 0");
  fails([] { device_mesh({{"a", 2}}, {0, 0}); }, "device id 0 appears twice");
  fails([] { parse_device_mesh("data=two"); }, "\"two\" is not a non-negative integer");
  fails([] { parse_partition_spec("P(data,,model)"); }, "an entry is empty");
}

TEST_CASE("uneven dimensions are ceil-divided: trailing shards are shorter or empty") {
  const named_sharding s(device_mesh{{"x", 4}}, partition_spec{"x"});
  std::vector<std::string> printed;
  for (const auto& sh : s.shards(shape{9})) printed.push_back(to_string(sh));
  CHECK(printed == std::vector<std::string>{"[0:3] @0 r0", "[3:6] @1 r0", "[6:9] @2 r0", "[9:9] @3 r0"});
  printed.clear();
  for (const auto& sh : s.shards(shape{5})) printed.push_back(to_string(sh));
  CHECK(printed == std::vector<std::string>{"[0:2] @0 r0", "[2:4] @1 r0", "[4:5] @2 r0", "[5:5] @3 r0"});
}

TEST_CASE("several axes on one dimension split it major axis first; device ids follow the mesh") {
  const named_sharding s(device_mesh({{"a", 2}, {"b", 2}}, {3, 2, 1, 0}), partition_spec{dim_axes{"b", "a"}});
  std::vector<std::string> printed;
  for (const auto& sh : s.shards(shape{8})) printed.push_back(to_string(sh));
  // position (a, b) -> index b*2 + a
  CHECK(printed == std::vector<std::string>{"[0:2] @3 r0", "[4:6] @2 r0", "[2:4] @1 r0", "[6:8] @0 r0"});
}

TEST_CASE("law: replica-0 boxes are disjoint and cover the array; each device appears once (exhaustive)") {
  std::size_t cases = 0;
  for (const auto& mesh : all_meshes(8, 3))
    for (std::size_t rank = 0; rank <= 3; ++rank) {
      const auto shapes = all_shapes(rank, {1, 2, 3, 4, 5, 6, 7, 8, 9});
      for (const auto& spec : all_specs(mesh, rank)) {
        const named_sharding s(mesh, spec);
        for (const auto& g : shapes) {
          ++cases;
          const auto shards = s.shards(g);
          if (shards.size() != static_cast<std::size_t>(mesh.size())) FAIL("wrong shard count");
          std::vector<int> devices;
          index_t covered = 0;
          std::vector<const box*> zero;
          for (const auto& sh : shards) {
            devices.push_back(sh.device);
            if (!box(g).contains(sh.box) && !sh.box.empty()) FAIL("box outside the array: " << to_string(sh));
            if (sh.replica == 0) {
              for (const box* b : zero)
                if (!disjoint(*b, sh.box)) FAIL(to_string(s, dtype::float32, g) << ": replica-0 boxes overlap at " << to_string(sh));
              zero.push_back(&sh.box);
              covered += sh.box.num_elements();
            }
          }
          if (covered != g.num_elements()) FAIL(to_string(s, dtype::float32, g) << ": replica-0 boxes cover " << covered);
          std::sort(devices.begin(), devices.end());
          if (std::adjacent_find(devices.begin(), devices.end()) != devices.end()) FAIL("a device appears twice");
          // Devices with equal boxes are replicas numbered 0, 1, ...
          for (const auto& sh : shards) {
            if (sh.box.empty()) continue;  // empty trailing shards of a short dimension share their box
            index_t same = 0, lower = 0;
            for (const auto& o : shards)
              if (o.box == sh.box) {
                ++same;
                if (o.replica < sh.replica) ++lower;
              }
            if (sh.replica >= same || lower != sh.replica) FAIL("replica ids of " << to_string(sh) << " are not 0.." << same - 1);
          }
        }
      }
    }
  MESSAGE(cases << " (mesh, spec, shape) cases");
  CHECK(cases > 1000000);
}

TEST_CASE("law: a reshard plan covers every target element exactly once, each chunk at most once per device") {
  std::size_t plans = 0;
  for (const auto& mesh : all_meshes(8, 2))
    for (std::size_t rank = 1; rank <= 2; ++rank) {
      const auto shapes = all_shapes(rank, {1, 3, 4, 7, 9});
      const auto grids = all_shapes(rank, {1, 2, 4, 9});
      for (const auto& spec : all_specs(mesh, rank)) {
        const named_sharding target(mesh, spec);
        for (const auto& g : shapes)
          for (const auto& c : grids) {
            ++plans;
            const chunk_grid source(g, c.vector());
            const auto plan = plan_reshard(source, target, g, dtype::int16);
            std::set<std::pair<index_t, int>> chunk_device;
            std::vector<std::vector<int>> hits(plan.targets.size(), std::vector<int>(static_cast<std::size_t>(g.num_elements()), 0));
            for (const auto& op : plan.ops) {
              if (!chunk_device.insert({source.linear(op.chunk), op.target.device}).second)
                FAIL("chunk " << to_string(op.source) << " read twice for device " << op.target.device);
              if (!op.source.contains(op.region) || !op.target.box.contains(op.region) || op.region.empty())
                FAIL("op region " << to_string(op.region) << " outside its chunk or target");
              if (op.bytes != static_cast<std::uint64_t>(op.region.num_elements()) * 2) FAIL("op bytes");
              std::size_t t = 0;
              while (plan.targets[t].device != op.target.device) ++t;
              for_each_point(op.region, [&](std::span<const index_t> p) {
                index_t lin = 0;
                for (std::size_t d = 0; d < p.size(); ++d) lin = lin * g[d] + p[d];
                ++hits[t][static_cast<std::size_t>(lin)];
              });
            }
            for (std::size_t t = 0; t < plan.targets.size(); ++t)
              for_each_point(box(g), [&](std::span<const index_t> p) {
                index_t lin = 0;
                for (std::size_t d = 0; d < p.size(); ++d) lin = lin * g[d] + p[d];
                const int want = plan.targets[t].box.contains(p) ? 1 : 0;
                if (hits[t][static_cast<std::size_t>(lin)] != want)
                  FAIL(to_string(target, dtype::int16, g) << " from chunks " << to_string(c) << ": element of "
                                                          << to_string(plan.targets[t]) << " covered "
                                                          << hits[t][static_cast<std::size_t>(lin)] << " times");
              });
            if (plan.cost.bytes_copied < plan.cost.bytes_needed) FAIL("copied less than needed");
          }
      }
    }
  MESSAGE(plans << " plans");
  CHECK(plans > 10000);
}

TEST_CASE("plan cost: same sharding reads exactly what is needed; a transposed one shares chunks") {
  const device_mesh mesh{{"data", 2}, {"model", 2}};
  const shape g{8, 8};
  const named_sharding saved(mesh, partition_spec{replicated, "model"});
  const named_sharding target(mesh, partition_spec{"data", replicated});
  const auto same = plan_reshard(shard_grid(saved, g), saved, g, dtype::float32);
  CHECK(same.cost.bytes_read == 256);
  CHECK(same.cost.bytes_needed == 256);
  CHECK(same.cost.chunks_read == 2);
  const auto moved = plan_reshard(shard_grid(saved, g), target, g, dtype::float32);
  CHECK(moved.cost.bytes_read == 256);
  CHECK(moved.cost.bytes_needed == 256);
  CHECK(moved.cost.bytes_copied == 4 * 128);  // two replicas per box
  CHECK(moved.cost.shared_chunks == 2);
  CHECK(moved.cost.peak_buffer == 128);
  CHECK(moved.ops.size() == 8);
  CHECK(to_string(moved.ops[0]) == "chunk [0:8, 0:4] -> [0:4, 0:8] @0 r0: [0:4, 0:4] (64 B)");
  // Only the chosen devices
  const auto two = plan_reshard(shard_grid(saved, g), target, g, dtype::float32, {0, 2});
  CHECK(two.targets.size() == 2);
  CHECK(two.cost.bytes_copied == 256);
}
