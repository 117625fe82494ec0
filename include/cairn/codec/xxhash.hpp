// SPDX-License-Identifier: Apache-2.0
/// \file
/// XXH64, the hash behind a zstd frame's content checksum (its low 32 bits), for the frames cairn
/// writes itself. This is the only header that includes `<xxhash.h>`, used inline (no library to link).
#pragma once

#include <cstdint>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

#include <cairn/core/bytes.hpp>

namespace cairn::codec {

/// XXH64 with seed 0 over bytes fed in any number of pieces.
/// \par Thread safety
/// A value type: one object must not be updated by two threads at once.
class xxh64_stream {
 public:
  xxh64_stream() noexcept { XXH64_reset(&state_, 0); }
  /// Adds `bytes` to the hashed sequence.
  void update(byte_view bytes) noexcept {
    if (!bytes.empty()) XXH64_update(&state_, bytes.data(), bytes.size());
  }
  /// Returns the hash of everything added so far (more may still be added).
  std::uint64_t digest() const noexcept { return XXH64_digest(&state_); }

 private:
  XXH64_state_t state_;
};

/// Returns XXH64 with seed 0 of `bytes`.
inline std::uint64_t xxh64(byte_view bytes) noexcept { return XXH64(bytes.data(), bytes.size(), 0); }

}  // namespace cairn::codec
