// SPDX-License-Identifier: Apache-2.0
/// \file
/// Arrays without a compile-time element type: `array_view` / `mutable_array_view` (a pointer, a
/// dtype, a shape, byte strides and the memory space the bytes live in — mdspan-like, but ranks and
/// types are run-time values) and `host_array`, an owning C-order array in host memory. `copy`
/// moves elements between host views of equal shape and dtype, with a contiguous fast path.
#pragma once

#include <cstddef>
#include <cstring>  // std::memcpy
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <cairn/core/box.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>

namespace cairn {

/// Where the bytes of an array live. Host memory is directly addressable; device memory is only
/// touched through a backend.
struct memory_space {
  enum class kind : std::uint8_t { host, cuda } type = kind::host;
  int device = 0;  ///< device ordinal for `cuda`; 0 for host

  static constexpr memory_space host() noexcept { return {}; }
  static constexpr memory_space cuda(int device) noexcept { return {kind::cuda, device}; }
  constexpr bool is_host() const noexcept { return type == kind::host; }
  friend constexpr bool operator==(const memory_space&, const memory_space&) = default;
};

namespace detail {
template <class Byte>
class basic_array_view {
 public:
  using pointer = Byte*;

  basic_array_view() = default;
  /// A C-order view of `data` with the given dtype and shape.
  basic_array_view(pointer data, dtype type, cairn::shape s, memory_space space = memory_space::host())
      : data_(data), type_(type), shape_(std::move(s)),
        byte_strides_(c_order_strides(shape_, static_cast<index_t>(size_of(type)))), space_(space) {}
  /// A strided view; `byte_strides` has one entry per dimension.
  /// \throws cairn::error (errc::invalid_argument) if byte_strides.size() != s.rank().
  basic_array_view(pointer data, dtype type, cairn::shape s, std::vector<index_t> byte_strides,
                   memory_space space = memory_space::host())
      : data_(data), type_(type), shape_(std::move(s)), byte_strides_(std::move(byte_strides)), space_(space) {
    if (byte_strides_.size() != shape_.rank())
      throw error(errc::invalid_argument, "array view: " + std::to_string(byte_strides_.size()) +
                                              " strides for rank " + std::to_string(shape_.rank()));
  }
  /// A mutable view converts to a const view.
  template <class Other>
    requires(std::is_const_v<Byte> && !std::is_const_v<Other>)
  basic_array_view(const basic_array_view<Other>& other)  // NOLINT: implicit like T* → const T*
      : data_(other.data()), type_(other.type()), shape_(other.shape()), byte_strides_(other.byte_strides()),
        space_(other.space()) {}

  pointer data() const noexcept { return data_; }
  dtype type() const noexcept { return type_; }
  const cairn::shape& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.rank(); }
  const std::vector<index_t>& byte_strides() const noexcept { return byte_strides_; }
  memory_space space() const noexcept { return space_; }
  index_t num_elements() const { return shape_.num_elements(); }
  /// Bytes covered by the elements (num_elements × element size).
  std::size_t num_bytes() const { return static_cast<std::size_t>(num_elements()) * size_of(type_); }

  /// True if elements are laid out densely in C order.
  bool is_c_contiguous() const noexcept {
    index_t expect = static_cast<index_t>(size_of(type_));
    for (std::size_t i = rank(); i-- > 0;) {
      if (shape_[i] != 1 && byte_strides_[i] != expect) return false;
      expect *= shape_[i];
    }
    return true;
  }

  /// Returns the view of the sub-box `b` (in this view's coordinates, origin 0).
  /// \throws cairn::error (errc::invalid_argument) if `b` is not inside the array.
  basic_array_view sub(const box& b) const {
    if (!box(shape_).contains(b))
      throw error(errc::invalid_argument, "sub-box " + to_string(b) + " is not inside array " + to_string(shape_));
    pointer p = data_;
    if (!b.empty())
      for (std::size_t i = 0; i < rank(); ++i) p += b.origin(i) * byte_strides_[i];
    return basic_array_view(p, type_, b.shape(), byte_strides_, space_);
  }

  /// The contiguous bytes of a C-contiguous view.
  /// \pre is_c_contiguous()
  std::span<Byte> bytes() const noexcept {
    CAIRN_ASSERT(is_c_contiguous());
    return {data_, num_bytes()};
  }

 private:
  pointer data_ = nullptr;
  dtype type_ = dtype::uint8;
  cairn::shape shape_;
  std::vector<index_t> byte_strides_;
  memory_space space_;
};
}  // namespace detail

/// A read-only, dtype-erased, strided view of array elements.
using array_view = detail::basic_array_view<const std::byte>;
/// A writable, dtype-erased, strided view of array elements.
using mutable_array_view = detail::basic_array_view<std::byte>;

/// Copies the elements of `src` into `dst`.
/// \pre both views are in host memory
/// \throws cairn::error (errc::type_mismatch / errc::shape_mismatch) if dtypes or shapes differ,
///         (errc::unsupported) if either view is not in host memory.
inline void copy(const array_view& src, const mutable_array_view& dst) {
  if (!src.space().is_host() || !dst.space().is_host())
    throw error(errc::unsupported, "copy: device memory needs a backend");
  if (src.type() != dst.type())
    throw error(errc::type_mismatch, "copy: source dtype " + std::string(name_of(src.type())) +
                                         " != destination " + std::string(name_of(dst.type())));
  if (src.shape() != dst.shape())
    throw error(errc::shape_mismatch,
                "copy: source shape " + to_string(src.shape()) + " != destination " + to_string(dst.shape()));
  const std::size_t n = src.num_bytes();
  if (n == 0) return;
  if (src.is_c_contiguous() && dst.is_c_contiguous()) {
    copy_bytes(dst.data(), src.data(), n);
    return;
  }
  // Copy runs along the innermost dimension; when both innermost strides are dense they become memcpys.
  const std::size_t r = src.rank();
  const std::size_t esize = size_of(src.type());
  const index_t inner = src.shape()[r - 1];
  const bool dense_inner = src.byte_strides()[r - 1] == static_cast<index_t>(esize) &&
                           dst.byte_strides()[r - 1] == static_cast<index_t>(esize);
  std::vector<index_t> outer_extent(src.shape().begin(), src.shape().end() - 1);
  box outer(std::vector<index_t>(r - 1, 0), std::move(outer_extent));
  for_each_point(outer, [&](std::span<const index_t> p) {
    const std::byte* s = src.data();
    std::byte* d = dst.data();
    for (std::size_t i = 0; i + 1 < r; ++i) {
      s += p[i] * src.byte_strides()[i];
      d += p[i] * dst.byte_strides()[i];
    }
    if (dense_inner) {
      std::memcpy(d, s, static_cast<std::size_t>(inner) * esize);
    } else {
      for (index_t j = 0; j < inner; ++j)
        std::memcpy(d + j * dst.byte_strides()[r - 1], s + j * src.byte_strides()[r - 1], esize);
    }
  });
}

/// An owning, C-order array in host memory.
/// \par Thread safety
/// A value type; concurrent reads are safe, writes need external synchronisation.
class host_array {
 public:
  host_array() = default;
  /// Allocates an array of `s` elements of `type`, zero-filled.
  host_array(dtype type, cairn::shape s) : type_(type), shape_(std::move(s)) {
    buffer_.resize(static_cast<std::size_t>(shape_.num_elements()) * size_of(type_));
    if (!buffer_.empty()) std::memset(buffer_.data(), 0, buffer_.size());
  }
  /// Allocates an array whose bytes are left uninitialised, for callers that overwrite every element
  /// (a restore): large arrays then cost no zero-filling pass over fresh pages.
  static host_array uninitialized(dtype type, cairn::shape s) { return host_array(type, std::move(s), uninitialized_tag); }

  /// An array over `bytes`, without copying them (a backend's pinned staging memory, say).
  /// \throws cairn::error (errc::shape_mismatch) if `bytes` does not hold exactly `s` elements of `type`.
  static host_array from_buffer(dtype type, cairn::shape s, byte_buffer bytes) {
    const auto want = static_cast<std::size_t>(s.num_elements()) * size_of(type);
    if (bytes.size() != want)
      throw error(errc::shape_mismatch, std::to_string(bytes.size()) + " bytes for " + std::to_string(want) + " of shape " +
                                            to_string(s) + " " + std::string(name_of(type)));
    host_array a;
    a.type_ = type;
    a.shape_ = std::move(s);
    a.buffer_ = std::move(bytes);
    return a;
  }
  /// Copies the elements of a typed span (C order).
  /// \throws cairn::error (errc::shape_mismatch) if values.size() != s.num_elements().
  template <element_type T>
  static host_array from(std::span<const T> values, cairn::shape s) {
    if (static_cast<index_t>(values.size()) != s.num_elements())
      throw error(errc::shape_mismatch, std::to_string(values.size()) + " values for shape " + to_string(s));
    host_array a(dtype_of<T>(), std::move(s), uninitialized_tag);
    if (!values.empty()) std::memcpy(a.buffer_.data(), values.data(), values.size_bytes());
    return a;
  }
  /// Copies the elements of a view (any strides, host memory).
  static host_array copy_of(const array_view& v) {
    host_array a(v.type(), v.shape(), uninitialized_tag);
    copy(v, a.mutable_view());
    return a;
  }

  /// An array over `a`'s bytes, not a copy of them (`byte_buffer::borrowing`): a synchronous save
  /// reads the caller's arrays in place through it. A copy of the result copies the bytes.
  /// \pre `a`'s bytes outlive the result and its moves, and are not written through them.
  static host_array borrowing(const host_array& a) {
    host_array b;
    b.type_ = a.type_;
    b.shape_ = a.shape_;
    // The pointer is only read through (see \pre): the const_cast never makes a write possible.
    b.buffer_ = byte_buffer::borrowing(const_cast<std::byte*>(a.buffer_.data()), a.buffer_.size());
    return b;
  }

  /// Whether the bytes are another array's (`borrowing`), which must not be written through this one.
  bool borrows() const noexcept { return buffer_.borrowed(); }
  dtype type() const noexcept { return type_; }
  const cairn::shape& shape() const noexcept { return shape_; }
  std::size_t num_bytes() const noexcept { return buffer_.size(); }
  byte_view bytes() const noexcept { return buffer_.view(); }
  mutable_byte_view mutable_bytes() noexcept { return buffer_.mutable_view(); }
  array_view view() const { return array_view(buffer_.data(), type_, shape_); }
  mutable_array_view mutable_view() { return mutable_array_view(buffer_.data(), type_, shape_); }
  operator array_view() const { return view(); }  // NOLINT: usable wherever a view is

  /// The elements as a typed span.
  /// \throws cairn::error (errc::type_mismatch) if T's dtype is not type().
  template <element_type T>
  std::span<T> values() {
    check_type<T>();
    return {reinterpret_cast<T*>(buffer_.data()), buffer_.size() / sizeof(T)};
  }
  template <element_type T>
  std::span<const T> values() const {
    check_type<T>();
    return {reinterpret_cast<const T*>(buffer_.data()), buffer_.size() / sizeof(T)};
  }

  /// Equal dtype, shape and bytes.
  friend bool operator==(const host_array& a, const host_array& b) noexcept {
    return a.type_ == b.type_ && a.shape_ == b.shape_ &&
           (a.buffer_.empty() || std::memcmp(a.buffer_.data(), b.buffer_.data(), a.buffer_.size()) == 0);
  }

 private:
  struct uninitialized_t {};
  static constexpr uninitialized_t uninitialized_tag{};
  host_array(dtype type, cairn::shape s, uninitialized_t) : type_(type), shape_(std::move(s)) {
    buffer_.resize(static_cast<std::size_t>(shape_.num_elements()) * size_of(type_));
  }
  template <class T>
  void check_type() const {
    if (dtype_of<T>() != type_)
      throw error(errc::type_mismatch, "array of " + std::string(name_of(type_)) + " accessed as " +
                                           std::string(name_of(dtype_of<T>())));
  }
  dtype type_ = dtype::uint8;
  cairn::shape shape_;
  byte_buffer buffer_;
};

}  // namespace cairn
