// SPDX-License-Identifier: Apache-2.0
// The host backend: simulated devices, meshes over them, placing arrays.
#include <cairn/backend/host.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace cairn;

TEST_CASE("host devices build meshes over their ids and place arrays, one buffer per device") {
  const host_devices cpu(4);
  CHECK(cpu.ids() == std::vector<int>{0, 1, 2, 3});
  const device_mesh m = cpu.mesh({{"data", 2}, {"model", 2}});
  host_array a(dtype::int32, shape{4, 4});
  auto* p = reinterpret_cast<std::int32_t*>(a.mutable_bytes().data());
  for (int i = 0; i < 16; ++i) p[i] = i;
  const sharded_array s = cpu.put(a.view(), named_sharding(m, partition_spec{"data", "model"}));
  REQUIRE(s.shards().size() == 4);
  CHECK(to_string(s.shards()[3].shard) == "[2:4, 2:4] @3 r0");
  const auto* d3 = reinterpret_cast<const std::int32_t*>(s.shards()[3].data.bytes().data());
  CHECK(d3[0] == 10);
  CHECK(d3[3] == 15);
  CHECK(s.shards()[0].data.bytes().data() != s.shards()[1].data.bytes().data());
  CHECK(s.gather() == a);
  try {
    (void)cpu.mesh({{"x", 8}});
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.code() == errc::invalid_sharding);
    CHECK(std::string(e.what()).find("mesh {x:8} uses device 4, but there are 4 host devices") != std::string::npos);
  }
}

TEST_CASE("gather names the missing elements when only some devices are local") {
  const named_sharding s(device_mesh{{"x", 2}}, partition_spec{"x"});
  host_array a(dtype::float32, shape{4});
  const sharded_array part = sharded_array::scatter(a.view(), s, {1});
  CHECK(part.shards().size() == 1);
  CHECK_THROWS_WITH_AS(part.gather(), doctest::Contains("the local shards hold 2 of 4 elements"), error);
}
