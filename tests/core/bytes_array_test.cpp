// SPDX-License-Identifier: Apache-2.0
#include <cairn/core/array.hpp>
#include <cairn/core/bytes.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <numeric>
#include <span>
#include <vector>

TEST_CASE("byte_buffer: aligned, growable, copyable") {
  cairn::byte_buffer b(10);
  CHECK(b.size() == 10);
  CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % cairn::byte_buffer::small_alignment == 0);
  cairn::byte_buffer large(cairn::byte_buffer::large_size);
  CHECK(reinterpret_cast<std::uintptr_t>(large.data()) % cairn::byte_buffer::alignment == 0);
  for (std::size_t i = 0; i < 10; ++i) b[i] = std::byte(i);
  b.append(cairn::as_bytes("xyz"));
  CHECK(b.size() == 13);
  CHECK(b[12] == std::byte('z'));
  cairn::byte_buffer c = b;
  CHECK(c.size() == 13);
  CHECK(std::equal(c.view().begin(), c.view().end(), b.view().begin()));
  cairn::byte_buffer d = std::move(c);
  CHECK(c.empty());
  CHECK(d.size() == 13);
  for (int i = 0; i < 5000; ++i) d.push_back(std::byte(i & 0xFF));
  CHECK(d.size() == 5013);
  CHECK(d[5012] == std::byte((4999) & 0xFF));
  CHECK(d[3] == std::byte(3));
}

TEST_CASE("byte_buffer and host_array borrowing: read in place, copied on copy, never written or freed") {
  std::vector<std::byte> owner(100);
  for (std::size_t i = 0; i < owner.size(); ++i) owner[i] = std::byte(i);
  {
    auto b = cairn::byte_buffer::borrowing(owner.data(), owner.size());
    CHECK(b.borrowed());
    CHECK(b.data() == owner.data());
    CHECK(b.size() == 100);
    CHECK(b.capacity() == 0);
    cairn::byte_buffer copy = b;  // a copy owns its bytes
    CHECK_FALSE(copy.borrowed());
    CHECK(copy.data() != owner.data());
    CHECK(std::equal(copy.view().begin(), copy.view().end(), owner.begin()));
    cairn::byte_buffer moved = std::move(b);  // a move keeps borrowing
    CHECK(moved.borrowed());
    CHECK(moved.data() == owner.data());
    moved.append(cairn::as_bytes("z"));  // growing copies out first: the owner is never written
    CHECK_FALSE(moved.borrowed());
    CHECK(moved.size() == 101);
    CHECK(moved[99] == std::byte(99));
    auto shrunk = cairn::byte_buffer::borrowing(owner.data(), owner.size());
    shrunk.resize(10);  // so does shrinking
    CHECK_FALSE(shrunk.borrowed());
    CHECK(shrunk.size() == 10);
    CHECK(shrunk[9] == std::byte(9));
  }  // destroying borrowed buffers frees nothing (ASan would report a bad free)
  CHECK(owner[99] == std::byte(99));
  CHECK(owner.size() == 100);

  const auto a = cairn::host_array::from(std::span<const float>(std::vector<float>{1, 2, 3, 4}), cairn::shape{2, 2});
  const auto view = cairn::host_array::borrowing(a);
  CHECK(view.bytes().data() == a.bytes().data());
  CHECK(view == a);
  const cairn::host_array owned = view;
  CHECK(owned.bytes().data() != a.bytes().data());
  CHECK(owned == a);
}

TEST_CASE("byte_buffer and host_array adopting: bytes of another allocator, released with the buffer, copied on copy") {
  auto owner = std::make_shared<std::vector<std::byte>>(64, std::byte{5});
  std::weak_ptr<std::vector<std::byte>> alive = owner;
  std::byte* p = owner->data();
  const std::size_t n = owner->size();
  auto b = cairn::byte_buffer::adopting(p, n, std::move(owner));
  CHECK_FALSE(b.borrowed());
  CHECK(b.data() == p);
  CHECK(b.capacity() == 0);
  const cairn::byte_buffer copy = b;  // a copy owns its bytes
  CHECK(copy.data() != p);
  CHECK(copy.view().size() == 64);
  cairn::byte_buffer moved = std::move(b);  // a move keeps the owner
  CHECK(moved.data() == p);
  CHECK_FALSE(alive.expired());
  auto a = cairn::host_array::from_buffer(cairn::dtype::int32, cairn::shape{4, 4}, std::move(moved));
  CHECK(a.bytes().data() == p);
  CHECK(a.values<std::int32_t>()[15] == 0x05050505);
  CHECK_THROWS_WITH_AS(cairn::host_array::from_buffer(cairn::dtype::int32, cairn::shape{3}, cairn::byte_buffer(8)),
                       "cairn: 8 bytes for 12 of shape [3] int32: shape mismatch", cairn::error);
  CHECK_FALSE(alive.expired());
  a = cairn::host_array();  // dropping the array drops the owner
  CHECK(alive.expired());
  auto again = std::make_shared<int>(1);
  std::weak_ptr<int> held = again;
  std::byte bytes[4]{};
  auto g = cairn::byte_buffer::adopting(bytes, 4, std::move(again));
  g.append(cairn::as_bytes("z"));  // growing moves the bytes out and lets the owner go
  CHECK(held.expired());
  CHECK(g.size() == 5);
}

TEST_CASE("shared_bytes slices share storage") {
  auto s = cairn::shared_bytes::copy_of(cairn::as_bytes("hello world"));
  auto w = s.slice(6, 5);
  CHECK(cairn::as_chars(w.view()) == "world");
  CHECK(w.data() == s.data() + 6);
  CHECK(w == cairn::shared_bytes::copy_of(cairn::as_bytes("world")));
  CHECK_FALSE(w == s);
}

TEST_CASE("little- and big-endian loads and stores") {
  std::byte buf[8];
  cairn::store_le<std::uint32_t>(buf, 0x0CDB3A2Au);
  CHECK(buf[0] == std::byte(0x2A));
  CHECK(cairn::load_le<std::uint32_t>(buf) == 0x0CDB3A2Au);
  cairn::store_be<std::uint32_t>(buf, 0x0CDB3A2Au);
  CHECK(buf[0] == std::byte(0x0C));
  CHECK(cairn::load_be<std::uint32_t>(buf) == 0x0CDB3A2Au);
  cairn::store_le<std::uint64_t>(buf, 0x0102030405060708ull);
  CHECK(cairn::load_le<std::uint64_t>(buf) == 0x0102030405060708ull);
  CHECK(buf[7] == std::byte(0x01));
}

TEST_CASE("host_array and strided copies") {
  std::vector<std::int32_t> v(24);
  std::iota(v.begin(), v.end(), 0);
  auto a = cairn::host_array::from(std::span<const std::int32_t>(v), cairn::shape{2, 3, 4});
  CHECK(a.type() == cairn::dtype::int32);
  CHECK(a.num_bytes() == 96);
  CHECK(a.view().is_c_contiguous());
  CHECK(a.values<std::int32_t>()[23] == 23);
  CHECK_THROWS_AS(a.values<float>(), cairn::error);

  // A sub-box view is strided; copying it out yields the right elements in C order.
  auto sub = a.view().sub(cairn::box({1, 1, 1}, {1, 2, 2}));
  CHECK_FALSE(sub.is_c_contiguous());
  auto c = cairn::host_array::copy_of(sub);
  CHECK(c.shape() == cairn::shape{1, 2, 2});
  auto cv = c.values<std::int32_t>();
  CHECK(std::vector<std::int32_t>(cv.begin(), cv.end()) == std::vector<std::int32_t>{17, 18, 21, 22});

  // Copy into a strided destination (a sub-box of a bigger array).
  cairn::host_array big(cairn::dtype::int32, cairn::shape{3, 4, 5});
  cairn::copy(sub, big.mutable_view().sub(cairn::box({2, 0, 3}, {1, 2, 2})));
  auto bv = big.values<std::int32_t>();
  CHECK(bv[2 * 20 + 0 * 5 + 3] == 17);
  CHECK(bv[2 * 20 + 1 * 5 + 4] == 22);
  CHECK(bv[0] == 0);

  // Non-dense innermost stride: a transposed 2-d view.
  std::vector<std::int32_t> m{1, 2, 3, 4, 5, 6};  // 2x3
  cairn::array_view t(reinterpret_cast<const std::byte*>(m.data()), cairn::dtype::int32, cairn::shape{3, 2},
                      std::vector<cairn::index_t>{4, 12});
  auto tt = cairn::host_array::copy_of(t);
  auto tv = tt.values<std::int32_t>();
  CHECK(std::vector<std::int32_t>(tv.begin(), tv.end()) == std::vector<std::int32_t>{1, 4, 2, 5, 3, 6});

  cairn::host_array wrong(cairn::dtype::float32, cairn::shape{1, 2, 2});
  CHECK_THROWS_WITH_AS(cairn::copy(sub, wrong.mutable_view()),
                       "cairn: copy: source dtype int32 != destination float32: type mismatch", cairn::error);
  cairn::host_array wrong_shape(cairn::dtype::int32, cairn::shape{2, 2});
  CHECK_THROWS_AS(cairn::copy(sub, wrong_shape.mutable_view()), cairn::error);
  CHECK_THROWS_AS(a.view().sub(cairn::box({0, 0, 0}, {3, 1, 1})), cairn::error);
  CHECK_THROWS_AS(cairn::host_array::from(std::span<const std::int32_t>(v), cairn::shape{5}), cairn::error);

  // Rank 0 and empty arrays.
  std::int64_t scalar = 42;
  auto s = cairn::host_array::from(std::span<const std::int64_t>(&scalar, 1), cairn::shape{});
  CHECK(s.values<std::int64_t>()[0] == 42);
  cairn::host_array e(cairn::dtype::float64, cairn::shape{0, 7});
  CHECK(e.num_bytes() == 0);
  CHECK(cairn::host_array::copy_of(e.view()) == e);
}

TEST_CASE("copy_bytes: large copies split over threads land exactly; small ones are memcpy") {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4097}, cairn::parallel_copy_threshold - 1,
                        cairn::parallel_copy_threshold, cairn::parallel_copy_threshold + 12345}) {
    CAPTURE(n);
    std::vector<std::uint32_t> src((n + 3) / 4 + 1);
    std::iota(src.begin(), src.end(), 0x9e3779b9u);
    std::vector<std::byte> dst(n + 2, std::byte{0xAB});
    cairn::copy_bytes(dst.data() + 1, src.data(), n);
    CHECK(std::memcmp(dst.data() + 1, src.data(), n) == 0);
    CHECK(dst.front() == std::byte{0xAB});  // nothing written outside [dst, dst + n)
    CHECK(dst.back() == std::byte{0xAB});
  }
}
