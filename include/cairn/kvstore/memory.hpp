// SPDX-License-Identifier: Apache-2.0
/// \file
/// `memory_driver`: keys and values in a sorted map in memory — for tests, staging and as the
/// reference implementation the conformance suite compares the other drivers against.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/kvstore/driver.hpp>
#include <cairn/kvstore/store.hpp>

namespace cairn::kvstore {

/// An in-memory key-value store.
/// \par Thread safety
/// All members are safe to call concurrently (one mutex).
class memory_driver final : public driver {
 public:
  read_result read(std::string_view key, byte_range range = {}) override {
    std::lock_guard lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end()) return read_result::missing_key();
    auto [offset, length] = resolve_range(range, it->second.size(), "memory key \"" + std::string(key) + "\"");
    return {it->second.slice(offset, length)};
  }
  void write(std::string_view key, byte_view value) override {
    auto copy = shared_bytes::copy_of(value);  // outside the lock: copying may be large
    std::lock_guard lock(mutex_);
    values_.insert_or_assign(std::string(key), std::move(copy));
  }
  bool erase(std::string_view key) override {
    std::lock_guard lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end()) return false;
    values_.erase(it);
    return true;
  }
  std::vector<list_entry> list(const key_range& range = {}) override {
    std::lock_guard lock(mutex_);
    std::vector<list_entry> out;
    for (auto it = values_.lower_bound(range.inclusive_min); it != values_.end(); ++it) {
      if (!range.contains(it->first)) break;
      out.push_back({it->first, it->second.size()});
    }
    return out;
  }
  std::string describe() const override { return "memory store"; }

 private:
  std::mutex mutex_;
  // std::char_traits<char> compares as unsigned char, so this map is in OCDBT's bytewise key order.
  std::map<std::string, shared_bytes, std::less<>> values_;
};

/// Returns a store over a fresh in-memory driver.
inline store open_memory() { return store(std::make_shared<memory_driver>()); }

}  // namespace cairn::kvstore
