// SPDX-License-Identifier: Apache-2.0
/// \file
/// The key-value store driver interface (tensorstore's kvstore, reduced): read a whole value or a
/// byte range, write, erase, list keys in a range. A missing key is a value (`read_result::missing`),
/// not an error. Keys are byte strings ordered bytewise; drivers are shared by `store` handles and
/// must be safe to call from several threads.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/bytes.hpp>
#include <cairn/core/error.hpp>

namespace cairn::kvstore {

/// A byte range of a value: `length` bytes from `offset`, or to the end when `length` is empty.
struct byte_range {
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> length;

  /// The whole value.
  static constexpr byte_range all() noexcept { return {}; }
  bool is_all() const noexcept { return offset == 0 && !length; }
  friend bool operator==(const byte_range&, const byte_range&) = default;
};

/// The outcome of a read: the value's bytes, or missing.
struct read_result {
  std::optional<shared_bytes> value;

  static read_result missing_key() { return {}; }
  bool missing() const noexcept { return !value.has_value(); }
  explicit operator bool() const noexcept { return value.has_value(); }
  const shared_bytes& operator*() const { return *value; }
  const shared_bytes* operator->() const { return &*value; }
};

/// A half-open range of keys `[inclusive_min, exclusive_max)`; an empty `exclusive_max` is unbounded.
struct key_range {
  std::string inclusive_min;
  std::string exclusive_max;  ///< "" means no upper bound

  /// Every key.
  static key_range all() { return {}; }
  /// Every key that starts with `prefix`.
  static key_range prefix(std::string_view prefix) {
    key_range r{std::string(prefix), std::string(prefix)};
    // The smallest string greater than every string with this prefix: drop trailing 0xFF bytes, bump the last.
    while (!r.exclusive_max.empty() && static_cast<unsigned char>(r.exclusive_max.back()) == 0xFF)
      r.exclusive_max.pop_back();
    if (!r.exclusive_max.empty()) r.exclusive_max.back() = static_cast<char>(static_cast<unsigned char>(r.exclusive_max.back()) + 1);
    return r;
  }
  /// True if `key` lies in the range (bytewise comparison).
  bool contains(std::string_view key) const noexcept {
    return compare_keys(key, inclusive_min) >= 0 && (exclusive_max.empty() || compare_keys(key, exclusive_max) < 0);
  }
  /// Compares keys as unsigned bytes (memcmp order), as OCDBT does.
  static int compare_keys(std::string_view a, std::string_view b) noexcept {
    const std::size_t n = a.size() < b.size() ? a.size() : b.size();
    for (std::size_t i = 0; i < n; ++i) {
      const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
      if (x != y) return x < y ? -1 : 1;
    }
    return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
  }
};

/// Returns `[offset, offset + length)` of a value of `size` bytes for `range`.
/// \throws cairn::error (errc::corrupted) naming `what` if the range lies outside the value.
inline std::pair<std::uint64_t, std::uint64_t> resolve_range(byte_range range, std::uint64_t size, std::string_view what) {
  const std::uint64_t length = range.length.value_or(range.offset <= size ? size - range.offset : 0);
  if (range.offset > size || length > size - range.offset)
    throw error(errc::corrupted, std::string(what) + ": byte range [" + std::to_string(range.offset) + ", " +
                                     std::to_string(range.offset + length) + ") exceeds the value's " +
                                     std::to_string(size) + " bytes");
  return {range.offset, length};
}

/// A key and the size of its value, as `list` reports it.
struct list_entry {
  std::string key;
  std::uint64_t size = 0;
  friend bool operator==(const list_entry&, const list_entry&) = default;
};

/// Repeated range reads of one value that stays as it is while the handle lives (an OCDBT data file,
/// written once): a file store opens the file once for all of them instead of at every read.
/// \par Thread safety
/// `read` may be called from several threads at once.
class value_reader {
 public:
  virtual ~value_reader() = default;
  /// The value's size when the handle was opened.
  virtual std::uint64_t size() const noexcept = 0;
  /// Returns the bytes `[offset, offset + length)` of the value.
  /// \throws cairn::error (errc::corrupted) if the range lies beyond the value's end; (errc::io).
  virtual shared_bytes read(std::uint64_t offset, std::uint64_t length) = 0;
  /// Reads the bytes `[offset, offset + dst.size())` of the value into `dst`: a restore's destination,
  /// which a file store fills straight from the disk instead of through a buffer of its own.
  /// \throws as `read`.
  virtual void read_into(std::uint64_t offset, mutable_byte_view dst) {
    const shared_bytes b = read(offset, dst.size());
    if (!dst.empty()) std::memcpy(dst.data(), b.data(), dst.size());
  }
};

/// The bytes `[base, base + size)` of another value, read as a value of their own (an OCDBT value
/// inside its data file).
/// \par Thread safety
/// As the underlying reader's.
class value_slice final : public value_reader {
 public:
  /// `what` names the value in errors, e.g. `OCDBT database "d": key "a/c/0"`.
  value_slice(std::shared_ptr<value_reader> whole, std::uint64_t base, std::uint64_t size, std::string what)
      : whole_(std::move(whole)), base_(base), size_(size), what_(std::move(what)) {}
  std::uint64_t size() const noexcept override { return size_; }
  shared_bytes read(std::uint64_t offset, std::uint64_t length) override {
    check(offset, length);
    return whole_->read(base_ + offset, length);
  }
  void read_into(std::uint64_t offset, mutable_byte_view dst) override {
    check(offset, dst.size());
    whole_->read_into(base_ + offset, dst);
  }

 private:
  void check(std::uint64_t offset, std::uint64_t length) const {
    if (offset > size_ || length > size_ - offset) resolve_range({offset, length}, size_, what_);  // throws, naming the range
  }
  std::shared_ptr<value_reader> whole_;
  std::uint64_t base_, size_;
  std::string what_;
};

/// What `driver::read_into` found at a key.
enum class read_into_status {
  done,        ///< the value, of exactly the destination's size, is in the destination
  missing,     ///< there is no such key
  other_size,  ///< the value's size is not the destination's (nothing was read)
};

/// The abstract storage driver. Implementations: `memory_driver`, `file_driver`.
/// \par Thread safety
/// Every member may be called concurrently from several threads.
class driver {
 public:
  virtual ~driver() = default;

  /// Returns the bytes of `range` of the value at `key`, or missing.
  /// \throws cairn::error (errc::invalid_argument) for an invalid key; (errc::corrupted) if the range
  ///         lies outside the value; (errc::io) on I/O failure.
  virtual read_result read(std::string_view key, byte_range range = {}) = 0;
  /// Creates or replaces the value at `key`.
  /// \throws cairn::error (errc::invalid_argument) for an invalid key; (errc::io) on I/O failure.
  virtual void write(std::string_view key, byte_view value) = 0;
  /// Removes `key`; returns false if it was missing.
  virtual bool erase(std::string_view key) = 0;
  /// Returns the keys in `range` in bytewise order, with their value sizes.
  virtual std::vector<list_entry> list(const key_range& range = {}) = 0;
  /// A short description for messages, e.g. `file "ckpt/7/state"`.
  virtual std::string describe() const = 0;
  /// Opens `key` for repeated range reads; nullptr if the key is missing or the driver has no cheaper
  /// way than `read` (the caller then uses `read`).
  /// \pre the value does not change while the handle lives.
  /// \throws as `read`.
  virtual std::shared_ptr<value_reader> open_value(std::string_view) { return nullptr; }
  /// Reads the bytes `[offset, offset + dst.size())` of the value at `key` into `dst` if the value has
  /// exactly `value_size` bytes (a raw chunk read into its place in the destination array); see
  /// `read_into_status`. The default reads through an `open_value` handle (a file store: O_DIRECT
  /// straight into `dst`), else reads the whole value and copies.
  /// \pre offset + dst.size() <= value_size
  /// \throws as `read`.
  virtual read_into_status read_into(std::string_view key, std::uint64_t offset, mutable_byte_view dst, std::uint64_t value_size) {
    if (auto value = open_value(key)) {
      if (value->size() != value_size) return read_into_status::other_size;
      value->read_into(offset, dst);
      return read_into_status::done;
    }
    auto r = read(key);
    if (r.missing()) return read_into_status::missing;
    if (r->size() != value_size) return read_into_status::other_size;
    if (!dst.empty()) std::memcpy(dst.data(), r->data() + offset, dst.size());
    return read_into_status::done;
  }
  /// Reads the whole values at `keys` and calls `f(i, result)` for each `keys[i]`, in an order of the
  /// driver's choosing, on the calling thread. Drivers that can read neighbouring values with one
  /// request do (a restore of thousands of small arrays); the default reads them one by one.
  /// 	hrows as `read`: then `f` has been called for some keys, and not for the others.
  virtual void read_many(std::span<const std::string_view> keys, const std::function<void(std::size_t, read_result&&)>& f) {
    for (std::size_t i = 0; i < keys.size(); ++i) f(i, read(keys[i]));
  }
};

}  // namespace cairn::kvstore
