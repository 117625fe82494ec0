// SPDX-License-Identifier: Apache-2.0
/// \file
/// `store`: a value handle `{shared driver, key prefix}` with free functions on top, so a part of a
/// store (an item, an array) is passed around as cheaply as a string. Keys given to the functions
/// are relative to the prefix; listed keys are returned relative to it.
#pragma once

#include <cstring>  // std::memcpy
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
  std::string full_key(std::string_view key) const {
    std::string k;  // one allocation: a restore makes a key or two per leaf
    k.reserve(prefix_.size() + key.size());
    k.append(prefix_).append(key);
    return k;  // not `return k.append(...)`: that copies the string it returns a reference to
  }
  /// Returns a handle whose prefix is this prefix + `sub` (add a trailing '/' for directories).
  store operator/(std::string_view sub) const { return store(driver_, full_key(sub)); }
  std::string describe() const {
    return driver_ ? driver_->describe() + (prefix_.empty() ? "" : " prefix \"" + prefix_ + "\"") : "invalid store";
  }

 private:
  std::shared_ptr<kvstore::driver> driver_;
  std::string prefix_;
};

namespace detail {
/// Calls `f(full key of key)`. Drivers take keys as views, so a short full key is put together on
/// the stack: a restore of many small leaves makes a few per leaf.
template <class F>
decltype(auto) with_full_key(const store& s, std::string_view key, F&& f) {
  if (s.prefix().empty()) return f(key);
  constexpr std::size_t stack_bytes = 256;
  const std::size_t n = s.prefix().size() + key.size();
  if (n > stack_bytes) return f(std::string_view(s.full_key(key)));
  char buf[stack_bytes];
  std::memcpy(buf, s.prefix().data(), s.prefix().size());
  if (!key.empty()) std::memcpy(buf + s.prefix().size(), key.data(), key.size());
  return f(std::string_view(buf, n));
}
}  // namespace detail

/// Opens `key` for repeated range reads (see `driver::open_value`); nullptr: use `read`.
inline std::shared_ptr<value_reader> open_value(const store& s, std::string_view key) {
  return detail::with_full_key(s, key, [&](std::string_view k) { return s.get_driver()->open_value(k); });
}
/// Reads `key` (or a byte range of it); a missing key is `read_result::missing()`, not an error.
inline read_result read(const store& s, std::string_view key, byte_range range = {}) {
  return detail::with_full_key(s, key, [&](std::string_view k) { return s.get_driver()->read(k, range); });
}
/// Reads `[offset, offset + dst.size())` of the value at `key` into `dst` if the value has exactly
/// `value_size` bytes (see `driver::read_into`).
inline read_into_status read_into(const store& s, std::string_view key, std::uint64_t offset, mutable_byte_view dst,
                                  std::uint64_t value_size) {
  return detail::with_full_key(s, key, [&](std::string_view k) { return s.get_driver()->read_into(k, offset, dst, value_size); });
}
/// Writes `value` at `key`.
inline void write(const store& s, std::string_view key, byte_view value) {
  detail::with_full_key(s, key, [&](std::string_view k) { s.get_driver()->write(k, value); });
}
/// Erases `key`; returns false if it was missing.
inline bool erase(const store& s, std::string_view key) {
  return detail::with_full_key(s, key, [&](std::string_view k) { return s.get_driver()->erase(k); });
}
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
