// SPDX-License-Identifier: Apache-2.0
/// \file
/// `shard`: the part of a global array one device holds — its box, the device id and the replica id
/// (0 for the copy that is saved; devices holding the same box count up from 0). Printed
/// `[0:256, 0:512] @3 r0`.
#pragma once

#include <ostream>
#include <string>

#include <cairn/core/box.hpp>

namespace cairn {

/// One device's part of a sharded array.
struct shard {
  int device = 0;
  cairn::box box;
  index_t replica = 0;
  friend bool operator==(const shard&, const shard&) = default;
};

inline std::string to_string(const shard& s) {
  return to_string(s.box) + " @" + std::to_string(s.device) + " r" + std::to_string(s.replica);
}
inline std::ostream& operator<<(std::ostream& os, const shard& s) { return os << to_string(s); }

}  // namespace cairn
