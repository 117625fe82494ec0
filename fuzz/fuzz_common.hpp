// SPDX-License-Identifier: Apache-2.0
// Shared by the libFuzzer targets: the only acceptable failure is a cairn::error with a format code.
#pragma once

#include <cairn/core/bytes.hpp>
#include <cairn/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace cairn_fuzz {

/// Decoded bodies are capped well below the fuzzer's memory limit.
inline constexpr std::size_t max_decoded = std::size_t{16} << 20;

inline cairn::byte_view bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

template <class F>
void expect_clean_rejection(F&& f) {
  try {
    f();
  } catch (const cairn::error& e) {
    // unsupported: a well-formed input asking for something cairn lacks (an unknown dtype, rank > 32).
    if (e.code() != cairn::errc::corrupted && e.code() != cairn::errc::incompatible_format &&
        e.code() != cairn::errc::unsupported)
      std::abort();
  }
}

}  // namespace cairn_fuzz
