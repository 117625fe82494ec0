// SPDX-License-Identifier: Apache-2.0
// The CUDA backend: error mapping, device buffers, the pinned staging pool, box copies and sharded
// tensors saved and restored through shard_adapter. GPU tests skip without a device.
#include <cairn/backend/cuda.hpp>
#include <cairn/checkpoint/typed.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

namespace {
bool have_gpu() { return cairn::cuda::device_count() > 0; }
}  // namespace

TEST_CASE("device_count never throws and is non-negative") {
  int n = cairn::cuda::device_count();
  CHECK(n >= 0);
  if (n == 0) MESSAGE("no CUDA device: GPU tests in this file are skipped");
}

TEST_CASE("check() maps CUDA failures onto cairn errors") {
  CHECK_NOTHROW(cairn::cuda::check(cudaSuccess, "noop"));
  try {
    cairn::cuda::check(cudaErrorNoDevice, "cudaSetDevice(0)");
    FAIL("expected an error");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::unsupported);
    CHECK(std::string(e.what()).find("cudaSetDevice(0): cudaErrorNoDevice") != std::string::npos);
  }
  CHECK_THROWS_AS(cairn::cuda::check(cudaErrorMemoryAllocation, "cudaMalloc"), cairn::error);
}

TEST_CASE("a host → device → host round trip is bit-exact" * doctest::skip(!have_gpu())) {
  MESSAGE("device 0: " << cairn::cuda::describe_device(0));
  std::vector<float> host(1 << 20);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i) * 0.5f;
  void* dev = nullptr;
  cairn::cuda::check(cudaMalloc(&dev, host.size() * sizeof(float)), "cudaMalloc");
  cairn::cuda::check(cudaMemcpy(dev, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "H2D");
  std::vector<float> back(host.size());
  cairn::cuda::check(cudaMemcpy(back.data(), dev, back.size() * sizeof(float), cudaMemcpyDeviceToHost), "D2H");
  cairn::cuda::check(cudaFree(dev), "cudaFree");
  CHECK(std::memcmp(host.data(), back.data(), host.size() * sizeof(float)) == 0);
}

// ---- the staging path, device buffers and sharded tensors ----------------------------------------

static_assert(cairn::leaf<cairn::cuda::sharded_tensor>, "a CUDA sharded tensor is a checkpoint leaf through shard_adapter");

TEST_CASE("the pinned pool reuses its buffers" * doctest::skip(!have_gpu())) {
  cairn::cuda::pinned_pool pool(1 << 20);
  for (int i = 0; i < 10; ++i) {
    auto a = pool.acquire(1000);
    auto b = pool.acquire(1 << 20);
    CHECK(a.data() != b.data());
  }
  CHECK(pool.allocations() == 2);
  auto big = pool.acquire(3 << 20);
  CHECK(big.size() >= (3u << 20));
  CHECK(pool.allocations() == 3);
}

TEST_CASE("any box of a device array goes to and from host memory bit-exact" * doctest::skip(!have_gpu())) {
  using namespace cairn;
  const shape whole{5, 7, 9};
  host_array h(dtype::int32, whole);
  auto* p = reinterpret_cast<std::int32_t*>(h.mutable_bytes().data());
  for (index_t i = 0; i < whole.num_elements(); ++i) p[i] = static_cast<std::int32_t>(i * 3 + 1);
  cuda::device_buffer dev(0, h.num_bytes());
  cuda::pinned_pool pool(1 << 16);
  cuda::stream s(0);
  cuda::copy_box_from_host(dev.data(), dtype::int32, whole, box(whole), h.view(), pool, s);
  const box region({1, 2, 3}, {3, 4, 5});
  host_array part(dtype::int32, region.shape());
  cuda::copy_box_to_host(dev.data(), dtype::int32, whole, region, part.mutable_view(), pool, s);
  host_array want(dtype::int32, region.shape());
  copy(h.view().sub(region), want.mutable_view());
  CHECK(part == want);
  // write a box back, read all
  host_array ones(dtype::int32, region.shape());
  for (auto& b : ones.mutable_bytes()) b = std::byte{1};
  cuda::copy_box_from_host(dev.data(), dtype::int32, whole, region, ones.view(), pool, s);
  host_array all(dtype::int32, whole);
  cuda::copy_box_to_host(dev.data(), dtype::int32, whole, box(whole), all.mutable_view(), pool, s);
  copy(ones.view(), h.mutable_view().sub(region));
  CHECK(all == h);
}

TEST_CASE("a CUDA sharded tensor saves in place and restores resharded onto host devices and back" * doctest::skip(!have_gpu())) {
  using namespace cairn;
  cairn_test::temp_dir dir;
  const int gpus = std::min(cuda::device_count(), 4);
  auto pool = std::make_shared<cuda::pinned_pool>(1 << 20);
  const named_sharding on_gpus(device_mesh{{"x", gpus}}, partition_spec{"x"});
  const shape g{static_cast<index_t>(8 * gpus), 6};
  host_array whole(dtype::float32, g);
  auto* p = reinterpret_cast<float*>(whole.mutable_bytes().data());
  for (index_t i = 0; i < g.num_elements(); ++i) p[i] = static_cast<float>(i) * 0.25f;
  std::map<std::string, cuda::sharded_tensor> state;
  state.emplace("w", cuda::sharded_tensor(dtype::float32, g, on_gpus, pool));
  for (std::size_t i = 0; i < state.at("w").local_count(); ++i) {
    host_array part = host_array::uninitialized(dtype::float32, state.at("w").local_shard(i).box.shape());
    copy(whole.view().sub(state.at("w").local_shard(i).box), part.mutable_view());
    state.at("w").from_host(i, part.view());
  }
  const auto step = save(dir.path(), 1, state);
  std::map<std::string, sharded_array> host_target{{"w", sharded_array::placed(named_sharding(device_mesh{{"a", 2}, {"b", 2}}, partition_spec{"b", "a"}))}};
  restore(step, host_target);
  CHECK(host_target["w"].gather() == whole);
  std::map<std::string, cuda::sharded_tensor> back;
  back.emplace("w", cuda::sharded_tensor(dtype::float32, g, named_sharding(device_mesh{{"x", gpus}}, partition_spec{replicated, "x"}), pool));
  restore(step, back);
  for (std::size_t i = 0; i < back.at("w").local_count(); ++i) {
    const auto& b = back.at("w").local_shard(i).box;
    host_array got(dtype::float32, b.shape()), want(dtype::float32, b.shape());
    back.at("w").to_host(i, got.mutable_view());
    copy(whole.view().sub(b), want.mutable_view());
    CHECK(got == want);
  }
}
