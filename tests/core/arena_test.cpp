// SPDX-License-Identifier: Apache-2.0
#include <cairn/core/arena.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

TEST_CASE("host_arena: aligned arrays carved from one block that outlives the arena") {
  using cairn::dtype;
  const std::size_t f = cairn::host_arena::footprint(dtype::float32, {3, 5});
  CHECK(f == 64);  // 60 bytes, rounded up to the alignment
  CHECK(cairn::host_arena::footprint(dtype::float64, {0}) == 0);
  std::vector<cairn::host_array> arrays;
  {
    cairn::host_arena arena(f + cairn::host_arena::footprint(dtype::int8, {100}) + cairn::host_arena::footprint(dtype::float64, {0}));
    CHECK(arena.capacity() == 64 + 128);
    arrays.push_back(arena.make(dtype::float32, {3, 5}));
    arrays.push_back(arena.make(dtype::int8, {100}));
    arrays.push_back(arena.make(dtype::float64, {0}));
    CHECK(arena.available() == 0);
    CHECK_THROWS_WITH_AS(arena.make(dtype::int8, {1}),
                         "cairn: host arena: an array of 64 bytes does not fit in the 0 bytes left of 192: invalid argument",
                         cairn::error);
  }  // the arena is gone; its arrays keep the block
  CHECK(arrays[0].shape() == cairn::shape{3, 5});
  CHECK(arrays[0].num_bytes() == 60);
  CHECK(arrays[1].num_bytes() == 100);
  CHECK(arrays[2].num_bytes() == 0);
  CHECK_FALSE(arrays[0].borrows());
  for (const auto& a : arrays)
    if (a.num_bytes()) CHECK(reinterpret_cast<std::uintptr_t>(a.bytes().data()) % cairn::host_arena::alignment == 0);
  // Each array writes its own bytes only.
  std::memset(arrays[1].mutable_bytes().data(), 0x7f, 100);
  for (auto& v : arrays[0].values<float>()) v = 1.5f;
  CHECK(arrays[1].values<std::int8_t>()[0] == 0x7f);
  CHECK(arrays[1].values<std::int8_t>()[99] == 0x7f);
  CHECK(arrays[0].values<float>()[14] == 1.5f);
  // A copy owns a copy; a moved-to array keeps the block alive alone.
  cairn::host_array copy = arrays[0];
  CHECK(copy.bytes().data() != arrays[0].bytes().data());
  CHECK(copy == arrays[0]);
  cairn::host_array last = std::move(arrays[1]);
  arrays.clear();
  CHECK(last.values<std::int8_t>()[50] == 0x7f);
}
