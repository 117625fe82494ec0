// SPDX-License-Identifier: Apache-2.0
/// \file
/// The job the multi-process tests save: a tree with arrays sharded on a 2x2 mesh (one device per
/// process), replicated ones, and host leaves every process holds — shared by the simulated-process
/// tests and the MPI program, so both check the same checkpoint.
#pragma once

#include <cairn/backend/host.hpp>
#include <cairn/sharding/sharded_array.hpp>
#include <cairn/tree/dynamic_tree.hpp>

#include <cstdint>
#include <string>

namespace cairn_test {

inline cairn::host_array pattern(cairn::dtype t, cairn::shape s, int seed) {
  cairn::host_array a(t, s);
  auto b = a.mutable_bytes();
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>((i * 37 + static_cast<std::size_t>(seed) * 11 + i / 5) & 0xff);
  return a;
}

/// What the job's processes hold, as whole arrays (`scale` multiplies the sharded arrays' rows).
struct job_state {
  explicit job_state(cairn::index_t scale = 1)
      : w(pattern(cairn::dtype::float32, cairn::shape{8 * scale, 6}, 1)),
        b(pattern(cairn::dtype::int16, cairn::shape{6}, 2)),
        r(pattern(cairn::dtype::bfloat16, cairn::shape{5, 3}, 3)),
        h(pattern(cairn::dtype::int32, cairn::shape{4}, 4)) {}
  cairn::host_array w;  ///< P(data, model): one shard per device
  cairn::host_array b;  ///< P(model): replicated over data
  cairn::host_array r;  ///< P(): replicated everywhere
  cairn::host_array h;  ///< a host array every process holds
};

/// Process `rank`'s tree on a 2x2 mesh over devices 0..3, where process i owns device i.
inline cairn::dynamic_tree local_tree(const job_state& s, int rank) {
  using namespace cairn;
  const host_devices cpu(4);
  const device_mesh mesh = cpu.mesh({{"data", 2}, {"model", 2}});
  dynamic_tree t;
  t["params"]["w"] = sharded_array::scatter(s.w.view(), named_sharding(mesh, partition_spec{"data", "model"}), {rank});
  t["params"]["b"] = sharded_array::scatter(s.b.view(), named_sharding(mesh, partition_spec{"model"}), {rank});
  t["params"]["r"] = sharded_array::scatter(s.r.view(), named_sharding(mesh, partition_spec{}), {rank});
  t["h"] = s.h;
  t["step"] = scalar(std::int64_t{42});
  t["name"] = std::string("mlp");
  return t;
}

/// True if every local shard of `a` holds exactly its box of `whole`.
inline bool holds_slices_of(const cairn::sharded_array& a, const cairn::host_array& whole) {
  for (const auto& s : a.shards()) {
    cairn::host_array want = cairn::host_array::uninitialized(whole.type(), s.shard.box.shape());
    cairn::copy(whole.view().sub(s.shard.box), want.mutable_view());
    if (!(s.data == want)) return false;
  }
  return true;
}

}  // namespace cairn_test
