// SPDX-License-Identifier: Apache-2.0
/// \file
/// Byte buffers: `byte_view` / `mutable_byte_view` (non-owning spans), `byte_buffer` (owning,
/// aligned, deliberately *uninitialised* on allocation so that multi-GiB staging buffers cost no
/// page-touching memset), and `shared_bytes` (immutable, reference counted, sliceable without copying).
/// Little-endian load/store helpers live here too because every on-disk format cairn speaks uses them.
#pragma once

#include <algorithm>  // std::min
#include <bit>        // std::endian
#include <cstddef>
#include <cstdint>
#include <cstring>    // std::memcpy
#include <memory>
#include <new>        // std::align_val_t
#include <span>
#include <string_view>
#include <thread>
#include <utility>

#include <cairn/config.hpp>
#include <cairn/core/parallel.hpp>

namespace cairn {

/// A read-only view of bytes.
using byte_view = std::span<const std::byte>;
/// A writable view of bytes.
using mutable_byte_view = std::span<std::byte>;

/// Copies `n` bytes from `src` to `dst` (which must not overlap), as `std::memcpy`. A copy of
/// `parallel_copy_threshold` bytes or more is split over up to 4 threads: one core copies well below
/// the memory's bandwidth, and staging a large array is time the caller of an async save waits.
/// \par Thread safety
/// As `std::memcpy`; the helper threads have ended when it returns.
inline constexpr std::size_t parallel_copy_threshold = std::size_t{64} << 20;
inline void copy_bytes(void* dst, const void* src, std::size_t n) {
  const unsigned hw = std::thread::hardware_concurrency();
  const std::size_t parts = n < parallel_copy_threshold ? 1 : std::min<std::size_t>(4, hw > 1 ? hw : 1);
  if (parts == 1) {
    if (n) std::memcpy(dst, src, n);
    return;
  }
  const std::size_t step = (n / parts + 4095) / 4096 * 4096;  // page-sized pieces: no page shared by two threads
  auto* d = static_cast<std::byte*>(dst);
  const auto* s = static_cast<const std::byte*>(src);
  (void)parallel_for_each_index(parts, static_cast<unsigned>(parts), [=](std::size_t i) {
    const std::size_t at = std::min(n, i * step);
    std::memcpy(d + at, s + at, std::min(step, n - at));
  });
}

/// Views the characters of `s` as bytes.
inline byte_view as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
/// Views bytes as characters (for text formats such as JSON).
inline std::string_view as_chars(byte_view b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// An owning, aligned, growable byte buffer whose new bytes are left uninitialised. Allocations of
/// `large_size` bytes or more are aligned to `alignment` (enough for O_DIRECT); smaller ones to
/// `small_alignment`, so that millions of tiny values do not each cost a page.
/// \par Thread safety
/// Distinct objects may be used concurrently; one object needs external synchronisation.
class byte_buffer {
 public:
  /// Alignment of large allocations: enough for O_DIRECT.
  static constexpr std::size_t alignment = 4096;
  /// Alignment of allocations below `large_size`: the plain `new`'s, enough for any scalar type
  /// (complex128 included). A stricter one would send every small buffer through the allocator's
  /// aligned path, which splits and coalesces chunks and made allocation the largest cost of saving
  /// a tree of 100,000 small leaves.
  static constexpr std::size_t small_alignment = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
  /// The size from which allocations get the full `alignment`.
  static constexpr std::size_t large_size = 64 * 1024;
  /// The deleter's marks of borrowed and of adopted bytes (no allocation has these alignments).
  static constexpr std::size_t borrowed_tag = 1;
  static constexpr std::size_t adopted_tag = 2;

  byte_buffer() noexcept = default;
  /// Allocates `size` uninitialised bytes.
  explicit byte_buffer(std::size_t size) { resize(size); }
  /// Copies `bytes`.
  explicit byte_buffer(byte_view bytes) {
    resize(bytes.size());
    if (!bytes.empty()) std::memcpy(data_.get(), bytes.data(), bytes.size());
  }
  byte_buffer(byte_buffer&& other) noexcept
      : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  byte_buffer& operator=(byte_buffer&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    return *this;
  }
  /// A buffer over the `size` bytes at `p` that it does not own: it never frees them, a copy of it
  /// copies them, and anything that would grow or shrink it first copies them into memory of its own
  /// (its capacity is 0). For bytes that outlive it, read in place, e.g. by a synchronous save.
  /// \pre `[p, p + size)` stays valid while this buffer or one moved from it lives, and is not written
  ///      through it.
  static byte_buffer borrowing(std::byte* p, std::size_t size) noexcept {
    byte_buffer b;
    b.data_ = std::unique_ptr<std::byte[], deleter>(p, deleter{borrowed_tag});
    b.size_ = size;
    return b;
  }
  /// Whether the bytes are borrowed (see `borrowing`).
  bool borrowed() const noexcept { return data_ && data_.get_deleter().align == borrowed_tag; }
  /// A buffer over the `size` bytes at `p`, kept alive by `owner`, which it drops when it lets the bytes
  /// go: memory from another allocator, such as a backend's pinned pool, handed on without a copy. As
  /// with `borrowing`, a copy of it copies the bytes, and growing it first moves them into memory of
  /// its own.
  /// \pre `[p, p + size)` stays valid while `owner` (or a copy of it) lives.
  static byte_buffer adopting(std::byte* p, std::size_t size, std::shared_ptr<void> owner) noexcept {
    byte_buffer b;
    b.data_ = std::unique_ptr<std::byte[], deleter>(p, deleter{adopted_tag, std::move(owner)});
    b.size_ = size;
    return b;
  }

  byte_buffer(const byte_buffer& other) : byte_buffer(other.view()) {}
  byte_buffer& operator=(const byte_buffer& other) {
    if (this != &other) *this = byte_buffer(other.view());
    return *this;
  }

  std::byte* data() noexcept { return data_.get(); }
  const std::byte* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  std::byte& operator[](std::size_t i) noexcept { return data_.get()[i]; }
  const std::byte& operator[](std::size_t i) const noexcept { return data_.get()[i]; }
  byte_view view() const noexcept { return {data_.get(), size_}; }
  mutable_byte_view mutable_view() noexcept { return {data_.get(), size_}; }
  operator byte_view() const noexcept { return view(); }  // NOLINT: a buffer is usable wherever a view is

  /// Ensures capacity for `n` bytes, keeping the contents.
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    std::size_t cap = std::max(n, capacity_ + capacity_ / 2);
    const std::size_t align = cap >= large_size ? alignment : 0;  // 0: the plain new
    std::unique_ptr<std::byte[], deleter> fresh(
        static_cast<std::byte*>(align ? ::operator new[](cap, std::align_val_t{align}) : ::operator new[](cap)), deleter{align});
    size_ = std::min(size_, cap);  // a borrowed buffer (capacity 0) may be asked for fewer bytes
    if (size_ != 0) std::memcpy(fresh.get(), data_.get(), size_);
    data_ = std::move(fresh);
    capacity_ = cap;
  }
  /// Sets the size; bytes past the old size are uninitialised.
  void resize(std::size_t n) {
    reserve(n);
    size_ = n;
  }
  /// Appends a copy of `bytes`.
  void append(byte_view bytes) {
    if (bytes.empty()) return;
    std::size_t old = size_;
    if (old + bytes.size() > capacity_) reserve(std::max(old + bytes.size(), 2 * capacity_));
    std::memcpy(data_.get() + old, bytes.data(), bytes.size());
    size_ = old + bytes.size();
  }
  void push_back(std::byte b) { append(byte_view(&b, 1)); }
  void clear() noexcept { size_ = 0; }

 private:
  struct deleter {
    // User-provided constructors: a default member initializer here would not be usable until
    // byte_buffer is complete, which the unique_ptr member below needs earlier.
    deleter() noexcept : align(alignment) {}
    explicit deleter(std::size_t a, std::shared_ptr<void> o = {}) noexcept : align(a), owner(std::move(o)) {}
    std::size_t align;  // 0: allocated by the plain new; borrowed_tag / adopted_tag: not allocated here
    mutable std::shared_ptr<void> owner;  // what keeps adopted bytes alive (`adopting`)
    void operator()(std::byte* p) const noexcept {
      if (align == borrowed_tag) return;
      if (align == adopted_tag) {
        owner.reset();
        return;
      }
      if (align) ::operator delete[](p, std::align_val_t{align});
      else ::operator delete[](p);
    }
  };
  std::unique_ptr<std::byte[], deleter> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

/// Immutable bytes with shared ownership; `slice` returns a view into the same storage without copying.
/// \par Thread safety
/// Immutable: any number of threads may read and copy the same object concurrently.
class shared_bytes {
 public:
  shared_bytes() noexcept = default;
  /// Takes ownership of `buffer`.
  explicit shared_bytes(byte_buffer buffer)
      : owner_(std::make_shared<const byte_buffer>(std::move(buffer))),
        data_(static_cast<const byte_buffer&>(*owner_).data()),
        size_(static_cast<const byte_buffer&>(*owner_).size()) {}
  /// Copies `bytes`.
  static shared_bytes copy_of(byte_view bytes) { return shared_bytes(byte_buffer(bytes)); }

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  byte_view view() const noexcept { return {data_, size_}; }
  operator byte_view() const noexcept { return view(); }  // NOLINT

  /// Returns bytes [offset, offset + length) sharing this object's storage.
  /// \pre offset + length <= size()
  shared_bytes slice(std::size_t offset, std::size_t length) const {
    CAIRN_ASSERT(offset <= size_ && length <= size_ - offset);
    shared_bytes out;
    out.owner_ = owner_;
    out.data_ = data_ + offset;
    out.size_ = length;
    return out;
  }

  friend bool operator==(const shared_bytes& a, const shared_bytes& b) noexcept {
    return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
  }

 private:
  std::shared_ptr<const byte_buffer> owner_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Loads an unsigned little-endian integer of type T from `p` (no alignment required).
template <class T>
T load_le(const std::byte* p) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  } else {
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(p[i]) << (8 * i));
    return v;
  }
}
/// Loads an unsigned big-endian integer of type T from `p`.
template <class T>
T load_be(const std::byte* p) noexcept {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | static_cast<T>(p[i]));
  return v;
}
/// Stores `v` little-endian at `p`.
template <class T>
void store_le(std::byte* p, T v) noexcept {
  for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}
/// Stores `v` big-endian at `p`.
template <class T>
void store_be(std::byte* p, T v) noexcept {
  for (std::size_t i = 0; i < sizeof(T); ++i)
    p[i] = static_cast<std::byte>((v >> (8 * (sizeof(T) - 1 - i))) & 0xFF);
}

/// Copies `bytes` into a piece sink, a piece at a time: `out.space()` is where the next bytes go (never
/// empty; it throws when the sink is full), `out.produced(n)` says that `n` of them were written. The
/// streamed writers (OCDBT `put_streamed`, the zstd frame writers) are such sinks.
template <class Sink>
void emit_into(Sink& out, byte_view bytes) {
  for (std::size_t at = 0; at < bytes.size();) {
    const mutable_byte_view space = out.space();
    const std::size_t n = std::min(space.size(), bytes.size() - at);
    std::memcpy(space.data(), bytes.data() + at, n);
    out.produced(n);
    at += n;
  }
}

}  // namespace cairn
