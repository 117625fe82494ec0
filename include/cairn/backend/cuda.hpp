// SPDX-License-Identifier: Apache-2.0
/// \file
/// The CUDA backend's foundation and the only header that includes the CUDA runtime. It needs the
/// `cairn::cuda` CMake target (which defines CAIRN_WITH_CUDA and links CUDA::cudart); machines
/// without a GPU still compile and link it, and `cuda::device_count()` then reports 0 instead of failing.
#pragma once

#ifndef CAIRN_WITH_CUDA
#error "cairn/backend/cuda.hpp needs the cairn::cuda CMake target (configure with -DCAIRN_ENABLE_CUDA=ON and link cairn::cuda)"
#endif

#include <cuda_runtime.h>

#include <string>
#include <string_view>

#include <cairn/core/error.hpp>

namespace cairn::cuda {

/// Throws a cairn::error naming `what` and the CUDA error if `status` is not cudaSuccess.
/// \throws cairn::error (errc::unsupported) for missing drivers or devices, (errc::io) otherwise.
inline void check(cudaError_t status, std::string_view what) {
  if (status == cudaSuccess) return;
  const bool no_device = status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver;
  throw error(no_device ? errc::unsupported : errc::io,
              std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

/// Returns the number of CUDA devices, or 0 when there is no driver or no device.
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error so later calls are not poisoned
    return 0;
  }
  return n;
}

/// Returns "name, compute capability X.Y, N GiB" for device `ordinal`.
/// \throws cairn::error if the device cannot be queried.
inline std::string describe_device(int ordinal) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, ordinal), "cudaGetDeviceProperties(" + std::to_string(ordinal) + ")");
  return std::string(prop.name) + ", compute capability " + std::to_string(prop.major) + "." +
         std::to_string(prop.minor) + ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB";
}

}  // namespace cairn::cuda
