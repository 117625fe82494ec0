// SPDX-License-Identifier: Apache-2.0
#include <cairn/backend/cuda.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <vector>

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
