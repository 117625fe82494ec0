// SPDX-License-Identifier: Apache-2.0
// cairn_shard_tool: the C++ side of sharded_roundtrip.py.
//   write ROOT            saves step 1 of ROOT: sharded arrays on a simulated 2x2 mesh {data:2, model:2}
//   read ITEM OUT MESH SPEC
//                         restores every array of ITEM onto MESH/SPEC (e.g. data=2,model=2 and data,-;
//                         spec entries past an array's rank are dropped),
//                         writing each device's buffer to OUT/<param>@<device>.bin and one line per shard
//                         to OUT/shards.txt: "<param> <device> <origin,...> <extent,...> <dtype>"
#include <cairn/backend/host.hpp>
#include <cairn/checkpoint/typed.hpp>

#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

using namespace cairn;

namespace {

// np.arange(n, dtype) + offset, reshaped: the same values the Python side builds.
host_array ramp(dtype t, shape s, int offset) {
  host_array a(t, s);
  const auto n = static_cast<std::size_t>(s.num_elements());
  for (std::size_t i = 0; i < n; ++i) {
    if (t == dtype::float32) reinterpret_cast<float*>(a.mutable_bytes().data())[i] = static_cast<float>(i) + static_cast<float>(offset);
    else if (t == dtype::int32) reinterpret_cast<std::int32_t*>(a.mutable_bytes().data())[i] = static_cast<std::int32_t>(i) + offset;
    else throw std::runtime_error("ramp: unsupported dtype");
  }
  return a;
}

std::string join(const std::vector<index_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s.empty() ? "-" : s;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "write" && argc == 3) {
      const host_devices cpu(4);
      const device_mesh mesh = cpu.mesh({{"data", 2}, {"model", 2}});
      std::map<std::string, std::map<std::string, sharded_array>> state;
      state["dense_1"]["kernel"] = cpu.put(ramp(dtype::float32, shape{64, 32}, 0).view(), named_sharding(mesh, partition_spec{replicated, "model"}));
      state["dense_1"]["bias"] = cpu.put(ramp(dtype::float32, shape{32}, 1000).view(), named_sharding(mesh, partition_spec{}));
      state["embed"]["table"] = cpu.put(ramp(dtype::int32, shape{16, 8}, 7).view(), named_sharding(mesh, partition_spec{"data", "model"}));
      state["embed"]["rows"] = cpu.put(ramp(dtype::float32, shape{8, 6}, 3).view(), named_sharding(mesh, partition_spec{dim_axes{"data", "model"}}));
      cairn::save(argv[2], 1, state);
      return 0;
    }
    if (cmd == "read" && argc == 6) {
      const pytree_item item(argv[2]);
      const std::string out = argv[3];
      const device_mesh mesh = parse_device_mesh(argv[4]);
      const partition_spec spec = parse_partition_spec(argv[5]);
      std::ofstream list(out + "/shards.txt");
      for (const auto& e : item.metadata()->entries) {
        if (e.value_type != value_type::jax_array) continue;
        const std::string param = param_name(e.path);
        const zarr::array array = item.open_array(param);
        // The one spec applies to every array: entries past an array's rank are dropped.
        std::vector<dim_axes> dims = spec.dims();
        dims.resize(std::min(dims.size(), array.shape().rank()));
        const named_sharding target(mesh, partition_spec(dims));
        const sharded_array a = pytree_item::read_sharded(array, target);
        for (const auto& s : a.shards()) {
          std::ofstream f(out + "/" + param + "@" + std::to_string(s.shard.device) + ".bin", std::ios::binary);
          f.write(reinterpret_cast<const char*>(s.data.bytes().data()), static_cast<std::streamsize>(s.data.bytes().size()));
          list << param << ' ' << s.shard.device << ' ' << join(s.shard.box.origin()) << ' ' << join(s.shard.box.extent()) << ' '
               << name_of(a.type()) << '\n';
        }
      }
      return 0;
    }
    std::cerr << "usage: cairn_shard_tool write ROOT | read ITEM OUT MESH SPEC\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
}
