// SPDX-License-Identifier: Apache-2.0
/// \file
/// `store`: a value handle `{shared driver, key prefix}` with free functions on top, so a part of a
/// store (an item, an array) is passed around as cheaply as a string. Keys given to the functions
/// are relative to the prefix; listed keys are returned relative to it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/kvstore/driver.hpp>

namespace cairn::kvstore {

/// A driver plus a key prefix. Copies share the driver.
/// \par Thread safety
/// As safe as the driver (all cairn drivers are thread-safe); the handle itself is a value.
class store {
 public:
  store() = default;
  explicit store(std::shared_ptr<driver> d, std::string prefix = {}) : driver_(std::move(d)), prefix_(std::move(prefix)) {}

  const std::shared_ptr<kvstore::driver>& get_driver() const noexcept { return driver_; }
  const std::string& prefix() const noexcept { return prefix_; }
  bool valid() const noexcept { return driver_ != nullptr; }
  /// The full key of `key` in the driver.
  std::string full_key(std::string_view key) const { return prefix_ + std::string(key); }
  /// Returns a handle whose prefix is this prefix + `sub` (add a trailing '/' for directories).
  store operator/(std::string_view sub) const { return store(driver_, prefix_ + std::string(sub)); }
  std::string describe() const {
    return driver_ ? driver_->describe() + (prefix_.empty() ? "" : " prefix \"" + prefix_ + "\"") : "invalid store";
  }

 private:
  std::shared_ptr<kvstore::driver> driver_;
  std::string prefix_;
};

/// Opens `key` for repeated range reads (see `driver::open_value`); nullptr: use `read`.
inline std::shared_ptr<value_reader> open_value(const store& s, std::string_view key) {
  return s.get_driver()->open_value(s.full_key(key));
}
/// Reads `key` (or a byte range of it); a missing key is `read_result::missing()`, not an error.
inline read_result read(const store& s, std::string_view key, byte_range range = {}) {
  return s.get_driver()->read(s.full_key(key), range);
}
/// Reads `[offset, offset + dst.size())` of the value at `key` into `dst` if the value has exactly
/// `value_size` bytes (see `driver::read_into`).
inline read_into_status read_into(const store& s, std::string_view key, std::uint64_t offset, mutable_byte_view dst,
                                  std::uint64_t value_size) {
  return s.get_driver()->read_into(s.full_key(key), offset, dst, value_size);
}
/// Writes `value` at `key`.
inline void write(const store& s, std::string_view key, byte_view value) { s.get_driver()->write(s.full_key(key), value); }
/// Erases `key`; returns false if it was missing.
inline bool erase(const store& s, std::string_view key) { return s.get_driver()->erase(s.full_key(key)); }
/// Lists the keys under the handle's prefix within `range` (relative keys, bytewise order).
inline std::vector<list_entry> list(const store& s, const key_range& range = {}) {
  key_range full{s.full_key(range.inclusive_min), range.exclusive_max.empty() ? std::string() : s.full_key(range.exclusive_max)};
  if (full.exclusive_max.empty() && !s.prefix().empty()) full.exclusive_max = key_range::prefix(s.prefix()).exclusive_max;
  auto entries = s.get_driver()->list(full);
  for (auto& e : entries) e.key.erase(0, s.prefix().size());
  return entries;
}
/// Reads `key` and throws if it is missing.
/// \throws cairn::error (errc::not_found) naming the store and key.
inline shared_bytes read_required(const store& s, std::string_view key, byte_range range = {}) {
  read_result r = read(s, key, range);
  if (r.missing()) throw error(errc::not_found, s.describe() + ": key \"" + std::string(key) + "\" is missing");
  return *r.value;
}

}  // namespace cairn::kvstore
