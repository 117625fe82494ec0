// SPDX-License-Identifier: Apache-2.0
/// \file
/// `byte_reader`: a bounds-checked cursor over encoded bytes for the pure format decoders. Every
/// read checks the remaining length first and reports `errc::corrupted` naming the object, the field
/// and the byte offset, so decoders never read past their input or allocate from an unchecked count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <cairn/core/bytes.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/varint.hpp>

namespace cairn {

/// Reads fixed-width integers, varints and byte runs from a byte view, with checked bounds.
/// \par Thread safety
/// Not synchronised; one reader per thread.
class byte_reader {
 public:
  /// `object` names what is being decoded (e.g. `manifest "state/manifest.ocdbt"`) in error messages.
  byte_reader(byte_view data, std::string object) : data_(data), object_(std::move(object)) {}

  std::size_t position() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return data_.size() - pos_; }
  bool at_end() const noexcept { return pos_ == data_.size(); }
  const std::string& object() const noexcept { return object_; }

  /// Returns an `errc::corrupted` error about `field` at the current position.
  error corrupted(std::string_view field, std::string_view why) const {
    return error(errc::corrupted, object_ + ": field \"" + std::string(field) + "\" at byte " +
                                      std::to_string(pos_) + ": " + std::string(why));
  }

  /// Throws unless at least `n` bytes remain.
  void require(std::size_t n, std::string_view field) const {
    if (remaining() < n)
      throw corrupted(field, "needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " remain");
  }
  std::uint8_t read_u8(std::string_view field) {
    require(1, field);
    return static_cast<std::uint8_t>(data_[pos_++]);
  }
  template <class T>
  T read_le(std::string_view field) {
    require(sizeof(T), field);
    T v = load_le<T>(data_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  T read_be(std::string_view field) {
    require(sizeof(T), field);
    T v = load_be<T>(data_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  T read_varint(std::string_view field) {
    return decode_varint<T>(data_, pos_, [&] { return object_ + ": field \"" + std::string(field) + "\""; });
  }
  /// Returns the next `n` bytes as a view into the input.
  byte_view read_bytes(std::size_t n, std::string_view field) {
    require(n, field);
    byte_view v = data_.subspan(pos_, n);
    pos_ += n;
    return v;
  }
  /// Throws unless every byte has been consumed.
  void expect_end(std::string_view what) const {
    if (!at_end()) throw corrupted(what, std::to_string(remaining()) + " unexpected trailing bytes");
  }

 private:
  byte_view data_;
  std::size_t pos_ = 0;
  std::string object_;
};

}  // namespace cairn
