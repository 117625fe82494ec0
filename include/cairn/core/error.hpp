// SPDX-License-Identifier: Apache-2.0
/// \file
/// The library's one error vocabulary: `cairn::errc` (an error-code enum with its own category) and
/// `cairn::error`, a `std::system_error` whose message puts the context first:
/// `cairn: step 1200, leaf "opt/mu": on-disk shape [1024,256] != target [1024,512]: shape mismatch`.
/// Expected outcomes (a missing key, no checkpoint yet) are values, never errors.
#pragma once

#include <cerrno>        // errno
#include <cstring>       // std::strerror
#include <ostream>       // printing std::error_code (doctest, logs) needs the full ostream
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace cairn {

/// Why an operation failed. Values are stable; new ones are only appended.
enum class errc {
  not_found = 1,        ///< no such step, item, key or file
  already_exists,       ///< a step that is already committed
  corrupted,            ///< checksum, framing, length or metadata invalid
  incompatible_format,  ///< written by an unknown format version or with an unknown feature
  type_mismatch,        ///< on-disk dtype or leaf type differs from the target
  shape_mismatch,       ///< on-disk shape differs from the target
  invalid_sharding,     ///< a mesh or partition spec that cannot describe the array
  invalid_argument,     ///< a caller-supplied value outside the documented domain
  unsupported,          ///< a valid request this build or version cannot serve
  io,                   ///< the operating system refused a read, write, rename or sync
  timeout,              ///< a collective or wait did not complete in time
};

}  // namespace cairn

/// `cairn::errc` converts implicitly to `std::error_code` and compares with it.
template <>
struct std::is_error_code_enum<cairn::errc> : std::true_type {};

namespace cairn {

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "cairn"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::not_found: return "not found";
      case errc::already_exists: return "already exists";
      case errc::corrupted: return "corrupted";
      case errc::incompatible_format: return "incompatible format";
      case errc::type_mismatch: return "type mismatch";
      case errc::shape_mismatch: return "shape mismatch";
      case errc::invalid_sharding: return "invalid sharding";
      case errc::invalid_argument: return "invalid argument";
      case errc::unsupported: return "unsupported";
      case errc::io: return "i/o error";
      case errc::timeout: return "timeout";
    }
    return "unknown cairn error " + std::to_string(value);
  }
};
}  // namespace detail

/// Returns the category of `cairn::errc` codes (name "cairn").
/// \par Thread safety
/// The returned object is immutable; safe from any thread.
inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl category;
  return category;
}

/// Wraps `e` into a `std::error_code` of `cairn::error_category()`.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// The library's only exception type.
/// `what()` is `"cairn: " + context + ": " + code().message()`, so context comes first.
class error : public std::system_error {
 public:
  /// Builds an error from a `cairn::errc` and a context such as `step 3, item "state", key "a/.zarray"`.
  error(errc code, std::string context)
      : std::system_error(make_error_code(code), "cairn: " + context), context_(std::move(context)) {}
  /// Builds an error from any error code (e.g. `std::system_category()` for errno values).
  error(std::error_code code, std::string context)
      : std::system_error(code, "cairn: " + context), context_(std::move(context)) {}

  /// The context part of the message, without the "cairn: " prefix or the code's message.
  const std::string& context() const noexcept { return context_; }

 private:
  std::string context_;
};

/// Returns an `errc::io` error whose context ends with the operating system's reason for `errno_value`.
/// Example: `io_error("write \"d/ab12\"", EIO)` → `cairn: write "d/ab12": Input/output error: i/o error`.
inline error io_error(std::string_view context, int errno_value) {
  std::string text(context);
  text += ": ";
  text += std::strerror(errno_value);
  return error(errc::io, std::move(text));
}

}  // namespace cairn
