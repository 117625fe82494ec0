// SPDX-License-Identifier: Apache-2.0
/// \file
/// Hugging Face safetensors files: an 8-byte little-endian header length N, N bytes of JSON mapping each
/// tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (plus an optional `"__metadata__"`
/// object of strings), then the data section, little-endian and C order. `parse_header` / `encode_header`
/// are pure; `reader` reads tensors on demand with pread and `writer` streams them out with pwrite, so
/// neither ever holds a whole file. Law: `parse_header(encode_header(h.tensors, h.metadata) ++ data)`
/// gives back `h.tensors` and `h.metadata`. Validation is the reference implementation's: tensors tile
/// the data section exactly, with no overlap and no hole.
#pragma once

#include <fcntl.h>     // open
#include <sys/stat.h>  // fstat
#include <unistd.h>    // pread, pwrite, fsync, close

#include <algorithm>  // std::sort, std::min
#include <bit>        // std::endian
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>  // std::memcpy
#include <filesystem>
#include <functional>
#include <numeric>  // std::iota
#include <random>   // temporary file names
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/array.hpp>
#include <cairn/core/box.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/json/reader.hpp>
#include <cairn/json/value.hpp>
#include <cairn/json/writer.hpp>

namespace cairn::safetensors {

/// The largest header length accepted, as in the reference implementation (`MAX_HEADER_SIZE`).
inline constexpr std::uint64_t max_header_size = 100'000'000;
/// The header key that holds the string→string metadata instead of a tensor.
inline constexpr std::string_view metadata_key = "__metadata__";

/// One tensor of a file: its name, element type, shape and bytes [begin, end) of the data section.
struct tensor_info {
  std::string name;
  dtype type = dtype::uint8;
  cairn::shape shape;
  std::uint64_t begin = 0;  ///< offset of the first byte, relative to the start of the data section
  std::uint64_t end = 0;    ///< offset one past the last byte

  /// Returns `end - begin`, which equals num_elements × size_of(type) in any parsed header.
  std::uint64_t num_bytes() const noexcept { return end - begin; }
  friend bool operator==(const tensor_info&, const tensor_info&) = default;
};

/// Key and value of one `__metadata__` entry.
using metadata_entry = std::pair<std::string, std::string>;

/// A parsed header.
/// \par Thread safety
/// A value type: distinct objects are independent; const access is safe from many threads.
struct header {
  /// The tensors in data order (ascending `begin`; zero-byte tensors at one offset keep document order).
  std::vector<tensor_info> tensors;
  /// The `__metadata__` entries in document order (empty when the file has none).
  std::vector<metadata_entry> metadata;
  /// Offset of the data section in the file: 8 + header length.
  std::uint64_t data_offset = 0;
  /// Size of the data section in bytes.
  std::uint64_t data_size = 0;

  /// Returns the tensor named `name`, or nullptr. Linear: `reader` keeps an index for repeated look-ups.
  const tensor_info* find(std::string_view name) const noexcept {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  /// Returns the metadata value for `key`, or nullptr.
  const std::string* find_metadata(std::string_view key) const noexcept {
    for (const auto& m : metadata)
      if (m.first == key) return &m.second;
    return nullptr;
  }
};

namespace detail {

// Bytes staged at a time when a strided view is copied to or from a file, or a byte source is drained:
// enough for full-speed I/O, small enough that memory stays bounded by this, not by the tensor.
inline constexpr std::size_t staging_bytes = std::size_t{4} << 20;

inline std::string quote(std::string_view s) { return cairn::detail::json_quote(s); }

inline std::string range_text(std::uint64_t begin, std::uint64_t end) {
  return "[" + std::to_string(begin) + "," + std::to_string(end) + ")";
}

// Every safetensors dtype name cairn maps, for messages that reject an unknown one.
inline std::string supported_names() {
  std::string out;
  for (const auto& i : cairn::detail::dtype_table) {
    if (i.safetensors.empty()) continue;
    if (!out.empty()) out += ", ";
    out += i.safetensors;
  }
  return out;
}

inline bool is_utf8(std::string_view s) { return cairn::detail::first_invalid_utf8(s) == std::string_view::npos; }

inline void require_little_endian_host(std::string_view what) {
  // The data section is little-endian; byte-swapping every element is not implemented (no cairn target is
  // big-endian), and silently writing host order would produce files no one else can read.
  if constexpr (std::endian::native != std::endian::little)
    throw error(errc::unsupported, std::string(what) + ": safetensors needs a little-endian host");
}

/// Calls `f(chunk, byte_offset)` for sub-boxes of `s` that tile it in C order, each of at most
/// max(budget, element_size) bytes and each contiguous in the C-order layout of `s`, so a strided copy
/// can be staged through a bounded buffer.
/// \post the chunks' byte ranges are consecutive and cover num_elements × element_size bytes
template <class F>
void for_each_chunk(const cairn::shape& s, std::size_t element_size, std::size_t budget, F&& f) {
  const std::size_t r = s.rank();
  if (s.num_elements() == 0) return;
  if (r == 0) {
    f(box(s), std::uint64_t{0});
    return;
  }
  // Grow the inner block (dimensions d+1..r-1, taken whole) while it fits, then chunk along dimension d.
  std::size_t d = r - 1;
  std::uint64_t inner = element_size;
  while (d > 0 && static_cast<std::uint64_t>(s[d]) <= budget / inner) inner *= static_cast<std::uint64_t>(s[d--]);
  const index_t rows = std::max<index_t>(1, static_cast<index_t>(budget / inner));
  std::vector<index_t> outer_extent(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(d));
  const box outer(std::vector<index_t>(d, 0), std::move(outer_extent));
  std::uint64_t offset = 0;
  for_each_point(outer, [&](std::span<const index_t> p) {
    for (index_t i = 0; i < s[d]; i += rows) {
      std::vector<index_t> origin(r, 0), extent(s.begin(), s.end());
      for (std::size_t k = 0; k < d; ++k) origin[k] = p[k], extent[k] = 1;
      origin[d] = i;
      extent[d] = std::min(rows, s[d] - i);
      const box chunk(std::move(origin), std::move(extent));
      const std::uint64_t n = static_cast<std::uint64_t>(chunk.num_elements()) * element_size;
      f(chunk, offset);
      offset += n;
    }
  });
}

/// Closes a file descriptor on scope exit.
class unique_fd {
 public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const noexcept { return fd_; }
  /// Closes now and reports failure (close can report deferred write errors).
  int release_and_close() noexcept {
    const int r = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return r;
  }

 private:
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_;
};

/// Reads exactly `n` bytes at `offset`, retrying short reads.
/// \throws cairn::error (errc::corrupted) if the file ends early, (errc::io) on failure
inline void pread_exact(int fd, std::byte* dst, std::size_t n, std::uint64_t offset, std::string_view what) {
  while (n > 0) {
    const ::ssize_t got = ::pread(fd, dst, n, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw io_error("read " + std::string(what), errno);
    }
    // Only a file truncated after it was opened gets here: the header was checked against its size.
    if (got == 0)
      throw error(errc::corrupted, std::string(what) + ": file ends " + std::to_string(n) + " bytes early at offset " +
                                       std::to_string(offset));
    dst += got;
    n -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
}

/// Writes exactly `n` bytes at `offset`, retrying short writes.
/// \throws cairn::error (errc::io) on failure
inline void pwrite_exact(int fd, const std::byte* src, std::size_t n, std::uint64_t offset, std::string_view what) {
  while (n > 0) {
    const ::ssize_t put = ::pwrite(fd, src, n, static_cast<off_t>(offset));
    if (put < 0) {
      if (errno == EINTR) continue;
      throw io_error("write " + std::string(what), errno);
    }
    src += put;
    n -= static_cast<std::size_t>(put);
    offset += static_cast<std::uint64_t>(put);
  }
}

// Reads a JSON array of integers that must each be in [0, limit]; `field` names it in messages.
inline std::vector<std::uint64_t> unsigned_list(const json::value& v, const std::string& where, std::string_view field,
                                                std::uint64_t limit) {
  if (!v.is_array())
    throw error(errc::corrupted, where + ": " + std::string(field) + ": expected an array of integers, found " +
                                     std::string(json::kind_name(v.kind())));
  std::vector<std::uint64_t> out;
  out.reserve(v.size());
  for (const auto& e : v.as_array()) {
    // Strict where json::value is lenient: the reference rejects 2.0 here, and so do we.
    if (!e.is_integer())
      throw error(errc::corrupted, where + ": " + std::string(field) + ": expected integers, found " +
                                       std::string(json::kind_name(e.kind())));
    if (e.is_int64() && e.as_int64() < 0)
      throw error(errc::corrupted, where + ": " + std::string(field) + ": " + std::to_string(e.as_int64()) +
                                       " is negative");
    const std::uint64_t x = e.as_uint64();
    if (x > limit)
      throw error(errc::corrupted, where + ": " + std::string(field) + ": " + std::to_string(x) + " exceeds " +
                                       std::to_string(limit));
    out.push_back(x);
  }
  return out;
}

inline tensor_info parse_tensor(const std::string& name, const json::value& v, std::uint64_t data_size,
                                std::string_view what) {
  const std::string where = std::string(what) + ": tensor " + quote(name);
  if (!v.is_object())
    throw error(errc::corrupted, where + ": expected an object with dtype, shape and data_offsets, found " +
                                     std::string(json::kind_name(v.kind())));
  auto field = [&](std::string_view key) -> const json::value& {
    if (const json::value* f = v.find(key)) return *f;
    throw error(errc::corrupted, where + ": missing \"" + std::string(key) + "\"");
  };
  const json::value& dt = field("dtype");
  if (!dt.is_string())
    throw error(errc::corrupted, where + ": dtype: expected a string, found " + std::string(json::kind_name(dt.kind())));
  const auto type = dtype_from_safetensors(dt.as_string());
  if (!type)
    throw error(errc::unsupported, where + ": dtype " + quote(dt.as_string()) +
                                       " is not a safetensors dtype cairn supports (" + supported_names() + ")");

  // Extents are at most INT64_MAX so that they fit index_t; their product is checked below.
  const auto dims = unsigned_list(field("shape"), where, "shape", static_cast<std::uint64_t>(INT64_MAX));
  if (dims.size() > max_rank)
    throw error(errc::unsupported, where + ": rank " + std::to_string(dims.size()) + " exceeds cairn's limit of " +
                                       std::to_string(max_rank));
  std::vector<index_t> extents(dims.begin(), dims.end());
  std::uint64_t elements = 1;
  for (index_t e : extents) {
    if (e != 0 && elements > static_cast<std::uint64_t>(INT64_MAX) / static_cast<std::uint64_t>(e))
      throw error(errc::corrupted, where + ": shape " + to_string(extents) + ": element count overflows int64");
    elements *= static_cast<std::uint64_t>(e);
  }

  const auto offsets = unsigned_list(field("data_offsets"), where, "data_offsets", UINT64_MAX);
  if (offsets.size() != 2)
    throw error(errc::corrupted, where + ": data_offsets: expected [begin, end], found " +
                                     std::to_string(offsets.size()) + " integers");
  const std::uint64_t begin = offsets[0], end = offsets[1];
  const std::string off_text = "data_offsets [" + std::to_string(begin) + "," + std::to_string(end) + "]";
  if (begin > end) throw error(errc::corrupted, where + ": " + off_text + ": begin > end");
  if (end > data_size)
    throw error(errc::corrupted, where + ": " + off_text + ": end exceeds the data section of " +
                                     std::to_string(data_size) + " bytes");
  const std::uint64_t esize = size_of(*type);
  // elements ≤ INT64_MAX and esize ≤ 16 can overflow uint64; such a tensor cannot fit any data section.
  const bool fits = elements <= UINT64_MAX / esize;
  if (!fits || elements * esize != end - begin)
    throw error(errc::corrupted, where + ": " + std::string(info(*type).safetensors) + to_string(extents) +
                                     " needs " + (fits ? std::to_string(elements * esize) : std::string("> 2^64")) +
                                     " bytes, " + off_text + " hold " + std::to_string(end - begin));
  return tensor_info{name, *type, cairn::shape(std::move(extents)), begin, end};
}

}  // namespace detail

/// Returns the header length N from the first 8 bytes of a file of `file_size` bytes.
/// `what` (e.g. `file "m.safetensors"`) starts every message.
/// \throws cairn::error (errc::corrupted) if fewer than 8 bytes are given or the file is shorter than 8 bytes,
///   if N > max_header_size, or if N > file_size − 8
inline std::uint64_t parse_header_length(byte_view bytes, std::uint64_t file_size, std::string_view what) {
  if (file_size < 8)
    throw error(errc::corrupted, std::string(what) + ": a file of " + std::to_string(file_size) +
                                     " bytes is too short for the 8-byte header length");
  if (bytes.size() < 8)
    throw error(errc::corrupted, std::string(what) + ": " + std::to_string(bytes.size()) +
                                     " bytes are too short for the 8-byte header length");
  const auto n = load_le<std::uint64_t>(bytes.data());
  if (n > max_header_size)
    throw error(errc::corrupted, std::string(what) + ": header length " + std::to_string(n) + " exceeds the limit of " +
                                     std::to_string(max_header_size) + " bytes");
  if (n > file_size - 8)
    throw error(errc::corrupted, std::string(what) + ": header length " + std::to_string(n) + " exceeds the " +
                                     std::to_string(file_size - 8) + " bytes after the length field (truncated file?)");
  return n;
}

/// Parses and validates the header of a safetensors file of `file_size` bytes. `bytes` holds the start of
/// the file: at least the 8-byte length and the N header bytes (the data section is not needed).
/// Members of a tensor object other than dtype, shape and data_offsets are ignored, as by the reference.
/// \post the result's tensors are sorted by `begin` and tile [0, data_size) exactly: each tensor's `begin`
///   is the previous one's `end`, the first begins at 0 and the last ends at data_size
/// \throws cairn::error (errc::corrupted) if the length is invalid (see `parse_header_length`), `bytes` ends
///   before the header does, the header is not a JSON object, `__metadata__` is not an object of strings, a
///   tensor lacks dtype/shape/data_offsets or has a non-integer or negative extent or offset, begin > end,
///   end > data size, the byte count is not num_elements × element size, or tensors overlap or leave a hole
/// \throws cairn::error (errc::unsupported) if a dtype is not one cairn maps, or a rank exceeds max_rank
inline header parse_header(byte_view bytes, std::uint64_t file_size, std::string_view what) {
  const std::uint64_t n = parse_header_length(bytes, file_size, what);
  if (bytes.size() - 8 < n)
    throw error(errc::corrupted, std::string(what) + ": header of " + std::to_string(n) + " bytes is truncated to " +
                                     std::to_string(bytes.size() - 8));
  header h;
  h.data_offset = 8 + n;
  h.data_size = file_size - h.data_offset;
  const json::value doc =
      json::parse(as_chars(bytes.subspan(8, static_cast<std::size_t>(n))), std::string(what) + " header");
  if (!doc.is_object())
    throw error(errc::corrupted, std::string(what) + ": header: expected a JSON object, found " +
                                     std::string(json::kind_name(doc.kind())));
  const auto& members = doc.as_object();
  h.tensors.reserve(members.size());
  for (const auto& [name, v] : members) {
    if (name == metadata_key) {
      if (v.is_null()) continue;  // the reference reads `"__metadata__": null` as no metadata
      if (!v.is_object())
        throw error(errc::corrupted, std::string(what) + ": \"__metadata__\": expected an object of strings, found " +
                                         std::string(json::kind_name(v.kind())));
      for (const auto& [key, value] : v.as_object()) {
        if (!value.is_string())
          throw error(errc::corrupted, std::string(what) + ": \"__metadata__\" " + detail::quote(key) +
                                           ": expected a string, found " + std::string(json::kind_name(value.kind())));
        h.metadata.emplace_back(key, value.as_string());
      }
      continue;
    }
    h.tensors.push_back(detail::parse_tensor(name, v, h.data_size, what));
  }

  std::stable_sort(h.tensors.begin(), h.tensors.end(), [](const tensor_info& a, const tensor_info& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Sorted by offsets, the tensors tile the data section exactly iff each starts where the previous ended.
  std::uint64_t covered = 0;
  const tensor_info* previous = nullptr;
  for (const auto& t : h.tensors) {
    if (t.begin < covered)
      throw error(errc::corrupted, std::string(what) + ": tensors " + detail::quote(previous->name) + " " +
                                       detail::range_text(previous->begin, previous->end) + " and " +
                                       detail::quote(t.name) + " " + detail::range_text(t.begin, t.end) + " overlap");
    if (t.begin > covered)
      throw error(errc::corrupted, std::string(what) + ": bytes " + detail::range_text(covered, t.begin) +
                                       " of the data section belong to no tensor (the next one is " +
                                       detail::quote(t.name) + ")");
    covered = t.end;
    previous = &t;
  }
  if (covered != h.data_size)
    throw error(errc::corrupted, std::string(what) + ": bytes " + detail::range_text(covered, h.data_size) +
                                     " at the end of the " + std::to_string(h.data_size) +
                                     "-byte data section belong to no tensor");
  return h;
}

/// Returns the start of a file holding `tensors` and `metadata`: the 8-byte length N, then the compact JSON
/// header (`__metadata__` first when not empty, then the tensors in the given order, each as
/// `{"dtype":…,"shape":[…],"data_offsets":[b,e]}`) padded with spaces so that 8 + N is a multiple of 8, as
/// the reference writer does. The offsets are written as given and not checked against each other.
/// \post N % 8 == 0
/// \throws cairn::error (errc::invalid_argument) if a name or metadata key repeats, a tensor is named
///   `__metadata__`, or a name, key or value is not valid UTF-8
/// \throws cairn::error (errc::unsupported) if a tensor's dtype has no safetensors name
inline byte_buffer encode_header(std::span<const tensor_info> tensors, std::span<const metadata_entry> metadata = {}) {
  auto check_unique = [](std::vector<std::string_view> names, std::string_view kind) {
    std::sort(names.begin(), names.end());
    const auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end())
      throw error(errc::invalid_argument, "safetensors header: " + std::string(kind) + " " + detail::quote(*dup) +
                                              " appears twice");
  };
  std::vector<std::string_view> names;
  names.reserve(tensors.size());
  for (const auto& t : tensors) {
    if (t.name == metadata_key)
      throw error(errc::invalid_argument, "safetensors header: a tensor may not be named \"__metadata__\"");
    if (info(t.type).safetensors.empty())
      throw error(errc::unsupported, "safetensors header: tensor " + detail::quote(t.name) + ": dtype " +
                                         std::string(name_of(t.type)) + " has no safetensors equivalent");
    names.push_back(t.name);
  }
  check_unique(std::move(names), "tensor");
  std::vector<std::string_view> keys;
  for (const auto& m : metadata) keys.push_back(m.first);
  check_unique(std::move(keys), "metadata key");

  json::writer w;
  w.begin_object();
  if (!metadata.empty()) {
    w.key(metadata_key).begin_object();
    for (const auto& [key, value] : metadata) w.key(key).value(std::string_view(value));
    w.end_object();
  }
  for (const auto& t : tensors) {
    w.key(t.name).begin_object();
    w.key("dtype").value(info(t.type).safetensors);
    w.key("shape").begin_array();
    for (index_t e : t.shape) w.value(e);
    w.end_array();
    w.key("data_offsets").begin_array().value(t.begin).value(t.end).end_array();
    w.end_object();
  }
  w.end_object();
  std::string text = w.take();
  text.append((8 - text.size() % 8) % 8, ' ');
  byte_buffer out(8 + text.size());
  store_le<std::uint64_t>(out.data(), text.size());
  std::memcpy(out.data() + 8, text.data(), text.size());
  return out;
}

/// Reads a safetensors file: the header once, on construction, then any tensor on demand with pread, so
/// memory holds the header and the tensors asked for, never the whole file.
/// \par Thread safety
/// Every const member may be called concurrently (reads use pread on one shared descriptor).
class reader {
 public:
  /// Opens `path` and reads and validates its header.
  /// \throws cairn::error (errc::not_found) if the file does not exist, (errc::io) if it cannot be opened or
  ///   read, (errc::corrupted / errc::unsupported) as `parse_header`
  explicit reader(std::filesystem::path path) : path_(std::move(path)), what_("file " + detail::quote(path_.native())) {
    detail::require_little_endian_host(what_);
    fd_ = detail::unique_fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd_.get() < 0) {
      const int e = errno;
      if (e == ENOENT || e == ENOTDIR) throw error(errc::not_found, what_ + ": no such file");
      throw io_error("open " + what_, e);
    }
    struct ::stat st {};
    if (::fstat(fd_.get(), &st) != 0) throw io_error("stat " + what_, errno);
    if (S_ISDIR(st.st_mode)) throw io_error("read " + what_, EISDIR);
    file_size_ = static_cast<std::uint64_t>(st.st_size);
    std::byte prefix[8];
    if (file_size_ < 8) parse_header_length(byte_view(prefix, 0), file_size_, what_);  // throws the message
    detail::pread_exact(fd_.get(), prefix, 8, 0, what_);
    const std::uint64_t n = parse_header_length(byte_view(prefix, 8), file_size_, what_);
    byte_buffer start(static_cast<std::size_t>(8 + n));
    std::memcpy(start.data(), prefix, 8);
    detail::pread_exact(fd_.get(), start.data() + 8, static_cast<std::size_t>(n), 8, what_);
    header_ = parse_header(start.view(), file_size_, what_);
    by_name_.resize(header_.tensors.size());
    std::iota(by_name_.begin(), by_name_.end(), std::size_t{0});
    std::sort(by_name_.begin(), by_name_.end(),
              [&](std::size_t a, std::size_t b) { return header_.tensors[a].name < header_.tensors[b].name; });
  }

  /// Returns the path given on construction.
  const std::filesystem::path& path() const noexcept { return path_; }
  /// Returns the file's size in bytes when it was opened.
  std::uint64_t file_size() const noexcept { return file_size_; }
  /// Returns the parsed header (tensors in data order).
  const header& info() const noexcept { return header_; }

  /// Returns the tensor named `name`, or nullptr (O(log n)).
  const tensor_info* find(std::string_view name) const noexcept {
    auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                               [&](std::size_t i, std::string_view n) { return header_.tensors[i].name < n; });
    if (it == by_name_.end() || header_.tensors[*it].name != name) return nullptr;
    return &header_.tensors[*it];
  }
  /// Returns the tensor named `name`.
  /// \throws cairn::error (errc::not_found) if the file has no such tensor
  const tensor_info& tensor(std::string_view name) const {
    if (const tensor_info* t = find(name)) return *t;
    throw error(errc::not_found, what_ + ": no tensor " + detail::quote(name));
  }

  /// Reads the tensor named `name` into a new host array.
  /// \throws cairn::error (errc::not_found) if there is no such tensor, (errc::io / errc::corrupted) if the
  ///   read fails or the file was truncated since it was opened
  host_array read(std::string_view name) const {
    const tensor_info& t = tensor(name);
    host_array out(t.type, t.shape);
    read_bytes(t, 0, out.mutable_bytes());
    return out;
  }

  /// Reads the tensor named `name` into `out`, which may be strided; a strided `out` is filled through a
  /// staging buffer of at most a few MiB.
  /// \throws cairn::error (errc::not_found) if there is no such tensor, (errc::type_mismatch /
  ///   errc::shape_mismatch) if `out` differs in dtype or shape, (errc::unsupported) if `out` is not in host
  ///   memory, (errc::io / errc::corrupted) as `read`
  void read_into(std::string_view name, const mutable_array_view& out) const {
    const tensor_info& t = tensor(name);
    const std::string where = what_ + ": tensor " + detail::quote(t.name);
    if (!out.space().is_host()) throw error(errc::unsupported, where + ": read_into needs a host-memory view");
    if (out.type() != t.type)
      throw error(errc::type_mismatch, where + ": stored dtype " + std::string(name_of(t.type)) + " != target " +
                                           std::string(name_of(out.type())));
    if (out.shape() != t.shape)
      throw error(errc::shape_mismatch, where + ": stored shape " + to_string(t.shape) + " != target " +
                                            to_string(out.shape()));
    if (out.is_c_contiguous()) {
      read_bytes(t, 0, out.bytes());
      return;
    }
    const std::size_t esize = size_of(t.type);
    byte_buffer staging;
    detail::for_each_chunk(t.shape, esize, detail::staging_bytes, [&](const box& chunk, std::uint64_t offset) {
      staging.resize(static_cast<std::size_t>(chunk.num_elements()) * esize);
      read_bytes(t, offset, staging.mutable_view());
      copy(array_view(staging.data(), t.type, chunk.shape()), out.sub(chunk));
    });
  }

  /// Reads bytes [offset, offset + out.size()) of tensor `t` (for streaming a large tensor in pieces).
  /// \pre `t` is one of `info().tensors`
  /// \throws cairn::error (errc::invalid_argument) if the range exceeds the tensor's bytes, (errc::io /
  ///   errc::corrupted) as `read`
  void read_bytes(const tensor_info& t, std::uint64_t offset, mutable_byte_view out) const {
    if (offset > t.num_bytes() || out.size() > t.num_bytes() - offset)
      throw error(errc::invalid_argument, what_ + ": tensor " + detail::quote(t.name) + ": bytes " +
                                              detail::range_text(offset, offset + out.size()) + " exceed its " +
                                              std::to_string(t.num_bytes()));
    detail::pread_exact(fd_.get(), out.data(), out.size(), header_.data_offset + t.begin + offset, what_);
  }

 private:
  std::filesystem::path path_;
  std::string what_;
  detail::unique_fd fd_;
  std::uint64_t file_size_ = 0;
  header header_;
  std::vector<std::size_t> by_name_;  // indexes into header_.tensors, sorted by name
};

/// How `writer::finish` makes the file durable.
struct write_options {
  /// fsync the file before renaming it into place, and its directory after, so a crash leaves either the
  /// old file or the complete new one.
  bool fsync = true;
};

/// Produces bytes [offset, offset + out.size()) of a tensor's data into `out`; called with consecutive
/// ranges of at most a few MiB, in order, once each.
using byte_source = std::function<void(std::uint64_t offset, mutable_byte_view out)>;

/// Writes a safetensors file. Tensors are declared first (`add`), then `finish` writes the header and each
/// tensor's bytes straight from its view or source into a temporary file beside the target, and renames it
/// into place: readers never see a partial file, and memory stays bounded by a few MiB of staging however
/// large the tensors are. Tensors are laid out in the order they were added. A writer destroyed before
/// `finish` writes nothing.
/// \par Thread safety
/// Distinct objects may be used concurrently; one object needs external synchronisation.
class writer {
 public:
  /// Prepares to write `path`; nothing touches the file system before `finish`.
  explicit writer(std::filesystem::path path, write_options options = {})
      : path_(std::move(path)), what_("file " + detail::quote(path_.native())), options_(options) {}

  /// Declares a tensor whose elements are read from `tensor` during `finish` (any strides).
  /// \pre the viewed memory stays valid and unchanged until `finish` returns
  /// \throws cairn::error (errc::invalid_argument) if `name` is already used, is `__metadata__` or is not
  ///   valid UTF-8, or `finish` has completed; (errc::unsupported) if the dtype has no safetensors name
  ///   (int4, uint4, complex128, most float8 variants) or the view is not in host memory
  void add(std::string name, array_view tensor) {
    if (!tensor.space().is_host())
      throw error(errc::unsupported, what_ + ": tensor " + detail::quote(name) + ": the view is not in host memory");
    declare(std::move(name), tensor.type(), tensor.shape());
    pending_.back().view = std::move(tensor);
  }
  /// Not allowed: the temporary array would be gone before `finish` reads it.
  void add(std::string name, host_array&& tensor) = delete;
  /// Declares a tensor whose bytes (little-endian, C order) `source` produces during `finish`.
  /// \throws cairn::error as the other `add`
  void add(std::string name, dtype type, cairn::shape shape, byte_source source) {
    declare(std::move(name), type, std::move(shape));
    pending_.back().source = std::move(source);
  }
  /// Sets metadata `key` to `value`, replacing an earlier value; entries keep their first-set order.
  /// \throws cairn::error (errc::invalid_argument) if `key` or `value` is not
  ///   valid UTF-8, or `finish` has completed
  void set_metadata(std::string key, std::string value) {
    check_open();
    if (!detail::is_utf8(key) || !detail::is_utf8(value))
      throw error(errc::invalid_argument, what_ + ": metadata " + detail::quote(key) + ": not valid UTF-8");
    for (auto& m : metadata_)
      if (m.first == key) {
        m.second = std::move(value);
        return;
      }
    metadata_.emplace_back(std::move(key), std::move(value));
  }

  /// Returns the header the file will have (offsets assigned in the order of `add`).
  header planned_header() const { return plan().first; }

  /// Writes the file. On failure the target is untouched, the temporary file is removed and the writer
  /// keeps its declarations, so `finish` may be retried.
  /// \post the file at `path` holds the declared tensors and metadata; `parse_header` accepts it
  /// \throws cairn::error (errc::invalid_argument) if called again after success; (errc::io) if the file
  ///   system refuses; whatever a `byte_source` throws
  void finish() {
    check_open();
    detail::require_little_endian_host(what_);
    const auto [h, start] = plan();
    thread_local std::mt19937_64 rng(std::random_device{}());
    const std::filesystem::path tmp = path_.native() + ".__cairn_tmp." + std::to_string(rng());
    const std::string tmp_what = "file " + detail::quote(tmp.native());
    detail::unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw io_error("create " + tmp_what, errno);
    try {
      detail::pwrite_exact(fd.get(), start.data(), start.size(), 0, tmp_what);
      for (std::size_t i = 0; i < pending_.size(); ++i)
        write_tensor(fd.get(), pending_[i], start.size() + h.tensors[i].begin, tmp_what);
      if (options_.fsync && ::fsync(fd.get()) != 0) throw io_error("fsync " + tmp_what, errno);
      if (fd.release_and_close() != 0) throw io_error("close " + tmp_what, errno);
      if (::rename(tmp.c_str(), path_.c_str()) != 0) throw io_error("rename " + tmp_what + " to " + what_, errno);
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
    finished_ = true;
    if (options_.fsync) {
      // Makes the rename itself durable; the file is complete either way, so a failure here is reported.
      const auto dir = path_.parent_path().empty() ? std::filesystem::path(".") : path_.parent_path();
      detail::unique_fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (d.get() < 0 || ::fsync(d.get()) != 0) throw io_error("fsync directory of " + what_, errno);
    }
  }

 private:
  struct pending {
    std::string name;
    dtype type;
    cairn::shape shape;
    array_view view;
    byte_source source;  // set instead of `view` for generated tensors
  };

  // The header in the order of `add`, and its encoding (length, JSON and padding).
  std::pair<header, byte_buffer> plan() const {
    header h;
    std::uint64_t offset = 0;
    h.tensors.reserve(pending_.size());
    for (const auto& p : pending_) {
      const std::uint64_t n = static_cast<std::uint64_t>(p.shape.num_elements()) * size_of(p.type);
      h.tensors.push_back(tensor_info{p.name, p.type, p.shape, offset, offset + n});
      offset += n;
    }
    h.metadata = metadata_;
    h.data_size = offset;
    byte_buffer start = encode_header(h.tensors, h.metadata);
    h.data_offset = start.size();
    return {std::move(h), std::move(start)};
  }

  void check_open() const {
    if (finished_) throw error(errc::invalid_argument, what_ + ": writer already finished");
  }

  void declare(std::string name, dtype type, cairn::shape shape) {
    check_open();
    const std::string where = what_ + ": tensor " + detail::quote(name);
    if (name == metadata_key) throw error(errc::invalid_argument, where + ": the name is reserved for metadata");
    if (!detail::is_utf8(name))
      throw error(errc::invalid_argument, where + ": the name is not valid UTF-8");
    if (info(type).safetensors.empty())
      throw error(errc::unsupported, where + ": dtype " + std::string(name_of(type)) +
                                         " has no safetensors equivalent (safetensors has " +
                                         detail::supported_names() + ")");
    (void)shape.num_elements();  // rejects an element count that overflows now, not during finish
    for (const auto& p : pending_)
      if (p.name == name) throw error(errc::invalid_argument, where + ": added twice");
    pending_.push_back(pending{std::move(name), type, std::move(shape), {}, {}});
  }

  static void write_tensor(int fd, const pending& p, std::uint64_t at, const std::string& what) {
    const std::size_t esize = size_of(p.type);
    const std::uint64_t total = static_cast<std::uint64_t>(p.shape.num_elements()) * esize;
    if (total == 0) return;
    if (p.source) {
      byte_buffer staging(static_cast<std::size_t>(std::min<std::uint64_t>(total, detail::staging_bytes)));
      for (std::uint64_t done = 0; done < total;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(total - done, staging.size()));
        p.source(done, mutable_byte_view(staging.data(), n));
        detail::pwrite_exact(fd, staging.data(), n, at + done, what);
        done += n;
      }
      return;
    }
    if (p.view.is_c_contiguous()) {
      const byte_view b = p.view.bytes();
      detail::pwrite_exact(fd, b.data(), b.size(), at, what);
      return;
    }
    byte_buffer staging;
    detail::for_each_chunk(p.shape, esize, detail::staging_bytes, [&](const box& chunk, std::uint64_t offset) {
      staging.resize(static_cast<std::size_t>(chunk.num_elements()) * esize);
      copy(p.view.sub(chunk), mutable_array_view(staging.data(), p.type, chunk.shape()));
      detail::pwrite_exact(fd, staging.data(), staging.size(), at + offset, what);
    });
  }

  std::filesystem::path path_;
  std::string what_;
  write_options options_;
  std::vector<pending> pending_;
  std::vector<metadata_entry> metadata_;
  bool finished_ = false;
};

}  // namespace cairn::safetensors
