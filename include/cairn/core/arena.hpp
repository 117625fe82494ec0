// SPDX-License-Identifier: Apache-2.0
/// \file
/// `host_arena`: one allocation shared by many small host arrays. A restore of thousands of small
/// leaves into an empty target would otherwise allocate each leaf on its own and fault in every
/// 4 KiB page of fresh memory one by one; from one block it takes a few huge-page faults instead
/// (`detail::advise_huge_pages`) and no per-leaf allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>

#if __has_include(<sys/mman.h>)
#include <sys/mman.h>  // madvise
#endif

#include <cairn/config.hpp>
#include <cairn/core/array.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/error.hpp>

namespace cairn {

namespace detail {
/// Asks the OS to back the whole 2 MiB pages inside [p, p + n) with huge pages where it offers them
/// (Linux transparent huge pages in `madvise` mode). Memory that is filled once, as a restore fills
/// its arrays, then takes one page fault per 2 MiB instead of one per 4 KiB, and those faults were
/// most of the cost of filling fresh memory. A hint: nothing happens where it is not supported.
inline void advise_huge_pages(void* p, std::size_t n) noexcept {
#if defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + huge - 1) & ~(huge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(huge - 1);
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}
}  // namespace detail

/// A block of host memory handed out as arrays, each keeping the whole block alive: the block is
/// freed when the arena and the last of its arrays are gone. So an arena suits arrays that live and
/// die together, such as the leaves of one restored tree; replacing one of them frees nothing.
/// \par Thread safety
/// `make` and `reserve` need external synchronisation, `array_at` does not; the arrays are independent
/// values (writing one never touches another's bytes).
class host_arena {
 public:
  /// Every array starts at a multiple of this many bytes: a cache line, more than any dtype needs.
  static constexpr std::size_t alignment = 64;

  /// The bytes `make(type, s)` takes from an arena: the array's size rounded up to `alignment`.
  static std::size_t footprint(dtype type, const shape& s) {
    const auto n = static_cast<std::size_t>(s.num_elements()) * size_of(type);
    return (n + alignment - 1) / alignment * alignment;
  }

  /// An arena of `capacity` bytes (uninitialised), for arrays whose `footprint`s sum to at most that.
  /// \throws std::bad_alloc if the memory cannot be had.
  explicit host_arena(std::size_t capacity) : capacity_(capacity) {
    if (capacity_ == 0) return;
    auto* p = static_cast<std::byte*>(::operator new[](capacity_, std::align_val_t{huge_page}));
    block_ = std::shared_ptr<std::byte[]>(p, [](std::byte* q) { ::operator delete[](q, std::align_val_t{huge_page}); });
    detail::advise_huge_pages(p, capacity_);
  }

  std::size_t capacity() const noexcept { return capacity_; }
  /// The bytes not yet handed out.
  std::size_t available() const noexcept { return capacity_ - used_; }

  /// An array of `s` elements of `type` in the arena, its bytes uninitialised.
  /// \throws cairn::error (errc::invalid_argument) if the arena has fewer than `footprint(type, s)` bytes left.
  host_array make(dtype type, shape s) {
    const std::size_t at = reserve(type, s);
    return array_at(at, type, std::move(s));
  }

  /// Sets aside the bytes of an array of `s` elements of `type` and returns their offset, for
  /// `array_at`: a caller lays its arrays out in order here, then makes them on several threads.
  /// \throws as `make`.
  std::size_t reserve(dtype type, const shape& s) {
    const std::size_t take = footprint(type, s);
    if (take > available())
      throw error(errc::invalid_argument, "host arena: an array of " + std::to_string(take) + " bytes does not fit in the " +
                                              std::to_string(available()) + " bytes left of " + std::to_string(capacity_));
    const std::size_t at = used_;
    used_ += take;
    return at;
  }
  /// The array whose bytes `reserve(type, s)` set aside at `offset`, its bytes uninitialised.
  /// \pre `offset` came from `reserve` with the same `type` and `s`, and is made into one array only.
  /// \par Thread safety
  /// May be called concurrently (with distinct offsets).
  host_array array_at(std::size_t offset, dtype type, shape s) const {
    CAIRN_ASSERT(offset + footprint(type, s) <= used_);
    const auto bytes = static_cast<std::size_t>(s.num_elements()) * size_of(type);
    return host_array::from_buffer(type, std::move(s), byte_buffer::adopting(block_.get() + offset, bytes, block_));
  }

 private:
  // Aligned to a huge page, so that the advice covers the whole block but its tail.
  static constexpr std::size_t huge_page = std::size_t{2} << 20;
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
  std::shared_ptr<std::byte[]> block_;
};

}  // namespace cairn
