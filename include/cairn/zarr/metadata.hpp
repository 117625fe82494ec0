// SPDX-License-Identifier: Apache-2.0
/// \file
/// `array_metadata`: one zarr array's `.zarray` (v2) or `zarr.json` (v3) as Orbax and TensorStore write
/// it (orbax-format.md §2.2, §2.3), with a strict parser, a writer that reproduces TensorStore's bytes
/// (compact JSON, keys sorted), the metadata Orbax requests, chunk keys, and the regular chunk grid.
/// Law: for every document TensorStore writes for Orbax, `to_json(parse_metadata(text, w)) == text`.
/// In v3 the grid's chunk is the *shard* when `sharded`; its inner chunks are a codec detail (codec.hpp).
#pragma once

#include <bit>  // std::endian, std::bit_cast
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>  // std::memcpy
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/box.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/json/reader.hpp>
#include <cairn/json/value.hpp>
#include <cairn/json/writer.hpp>

namespace cairn::zarr {

/// Where a `sharding_indexed` shard keeps its index of inner chunks.
enum class shard_index_location : std::uint8_t { end, start };

/// How chunk grid indices become keys: `v2` joins them with the separator (`0.0`, rank 0: `0`);
/// `default_` is v3's `c` followed by separator-prefixed indices (`c/0/0`, rank 0: `c`).
enum class chunk_key_kind : std::uint8_t { v2, default_ };

/// The metadata of one zarr v2 or v3 array, as far as cairn reads and writes it.
/// Chunks are always C order; element bytes are stored in `byte_order`.
/// \par Thread safety
/// A value type.
struct array_metadata {
  int zarr_format = 2;                   ///< 2 (`.zarray`) or 3 (`zarr.json`)
  cairn::shape shape;                    ///< the array's extents
  std::vector<index_t> chunk_shape;      ///< v2 `chunks`; v3 `chunk_grid` chunk shape (the shard shape when sharded)
  cairn::dtype type = dtype::float32;    ///< element type
  std::endian byte_order = std::endian::little;  ///< byte order of stored elements (v2 `>`/`<`, v3 `bytes.endian`)
  json::value fill_value;                ///< as stored: null (v2), number, bool, "NaN"/"Infinity"/"-Infinity", "0x…", [re, im]
  std::optional<int> zstd_level;         ///< zstd compression of each (inner) chunk; empty: stored raw
  bool zstd_checksum = false;            ///< the zstd codec's `checksum` member (v3; v2 only when present)
  /// Write zstd frames with content checksums even where the JSON does not say so (never stored in
  /// the metadata; every zstd decoder verifies a checksum a frame carries). cairn's writer sets it so
  /// that `cairn verify` detects a flipped byte in any compressed chunk.
  bool frame_checksums = false;
  /// Write a chunk whose sample zstd shrinks by less than this ratio as a zstd frame of raw blocks
  /// (never stored in the metadata; see `codec::zstd_compressor::set_min_ratio`). 0: compress all.
  double zstd_min_ratio = 0;
  bool sharded = false;                  ///< v3 `sharding_indexed`: each grid chunk is a shard of inner chunks
  std::vector<index_t> inner_chunk_shape;  ///< v3 sharded: the inner chunk shape (divides `chunk_shape`)
  shard_index_location index_location = shard_index_location::end;  ///< v3 sharded
  bool index_crc32c = true;              ///< v3 sharded: the index is followed by its CRC-32C (`index_codecs` bytes+crc32c)
  chunk_key_kind key_encoding = chunk_key_kind::v2;  ///< always `v2` for zarr v2
  char separator = '.';                  ///< v2 `dimension_separator`; v3 `chunk_key_encoding` separator
  std::optional<json::value> dimension_names;  ///< v3, preserved when present
  std::optional<json::value> attributes;       ///< v3, preserved when present

  friend bool operator==(const array_metadata&, const array_metadata&) = default;
};

/// Returns the key of the metadata document of an array of `zarr_format`: ".zarray" or "zarr.json".
/// \throws cairn::error (errc::invalid_argument) if `zarr_format` is neither 2 nor 3.
inline std::string_view metadata_key(int zarr_format) {
  if (zarr_format == 2) return ".zarray";
  if (zarr_format == 3) return "zarr.json";
  throw error(errc::invalid_argument, "zarr_format " + std::to_string(zarr_format) + " is neither 2 nor 3");
}

namespace detail {

[[noreturn]] inline void zarr_fail(errc code, std::string_view what, std::string_view field, std::string_view why) {
  std::string text(what);
  if (!field.empty()) text += ": field \"" + std::string(field) + "\"";
  text += ": ";
  text += why;
  throw error(code, std::move(text));
}

inline std::string zarr_field_label(std::string_view what, std::string_view field) {
  return std::string(what) + ": field \"" + std::string(field) + "\"";
}

/// Returns the product of `dims` times `element_size`, or nullopt if it exceeds INT64_MAX.
inline std::optional<index_t> zarr_checked_bytes(std::span<const index_t> dims, index_t element_size) {
  index_t n = element_size;
  for (index_t d : dims) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > std::numeric_limits<index_t>::max() / d) return std::nullopt;
    n *= d;
  }
  return n;
}

/// Checks the relations between the fields; `code` is corrupted for parsed documents and
/// invalid_argument for caller-built metadata.
inline void check_metadata(const array_metadata& m, errc code, std::string_view what) {
  if (m.zarr_format != 2 && m.zarr_format != 3)
    zarr_fail(code, what, "zarr_format", std::to_string(m.zarr_format) + " is neither 2 nor 3");
  const std::size_t rank = m.shape.rank();
  const char* chunks = m.zarr_format == 2 ? "chunks" : "chunk_grid";
  if (m.chunk_shape.size() != rank)
    zarr_fail(code, what, chunks,
              "chunk shape " + to_string(m.chunk_shape) + " has rank " + std::to_string(m.chunk_shape.size()) +
                  " but shape " + to_string(m.shape) + " has rank " + std::to_string(rank));
  for (index_t c : m.chunk_shape)
    if (c < 1) zarr_fail(code, what, chunks, "chunk shape " + to_string(m.chunk_shape) + " has an extent below 1");
  const auto esize = static_cast<index_t>(size_of(m.type));
  if (!zarr_checked_bytes(m.shape.dims(), esize))
    zarr_fail(code, what, "shape", "array of shape " + to_string(m.shape) + " exceeds 2^63 bytes");
  if (!zarr_checked_bytes(m.chunk_shape, esize))
    zarr_fail(code, what, chunks, "chunk of shape " + to_string(m.chunk_shape) + " exceeds 2^63 bytes");
  if (m.separator != '.' && m.separator != '/')
    zarr_fail(code, what, m.zarr_format == 2 ? "dimension_separator" : "chunk_key_encoding",
              std::string("separator '") + m.separator + "' is neither '.' nor '/'");
  if (m.zarr_format == 2) {
    if (m.sharded) zarr_fail(code, what, "", "zarr v2 arrays cannot be sharded");
    if (m.key_encoding != chunk_key_kind::v2) zarr_fail(code, what, "", "zarr v2 arrays use v2 chunk keys");
    if (m.dimension_names || m.attributes)
      zarr_fail(code, what, "", "dimension_names and attributes exist only in zarr v3");
  }
  if (m.sharded) {
    if (m.inner_chunk_shape.size() != rank)
      zarr_fail(code, what, "sharding_indexed.chunk_shape",
                "inner chunk shape " + to_string(m.inner_chunk_shape) + " does not have rank " + std::to_string(rank));
    for (std::size_t i = 0; i < rank; ++i)
      if (m.inner_chunk_shape[i] < 1 || m.chunk_shape[i] % m.inner_chunk_shape[i] != 0)
        zarr_fail(code, what, "sharding_indexed.chunk_shape",
                  "inner chunk shape " + to_string(m.inner_chunk_shape) + " does not divide the shard shape " +
                      to_string(m.chunk_shape));
  } else if (!m.inner_chunk_shape.empty()) {
    zarr_fail(code, what, "", "an inner chunk shape without sharding");
  }
  if (m.zstd_level && (*m.zstd_level < -(1 << 17) || *m.zstd_level > 22))
    zarr_fail(code, what, "level", "zstd level " + std::to_string(*m.zstd_level) + " is outside [-131072, 22]");
  if (m.dimension_names) {
    if (!m.dimension_names->is_array() || m.dimension_names->size() != rank)
      zarr_fail(code, what, "dimension_names", "expected an array of " + std::to_string(rank) + " names");
    for (const auto& n : m.dimension_names->as_array())
      if (!n.is_null() && !n.is_string())
        zarr_fail(code, what, "dimension_names", "every name must be a string or null");
  }
  if (m.attributes && !m.attributes->is_object()) zarr_fail(code, what, "attributes", "expected an object");
}

inline bool zarr_hex_digit(char c, unsigned& v) {
  if (c >= '0' && c <= '9') v = static_cast<unsigned>(c - '0');
  else if (c >= 'a' && c <= 'f') v = static_cast<unsigned>(c - 'a' + 10);
  else if (c >= 'A' && c <= 'F') v = static_cast<unsigned>(c - 'A' + 10);
  else return false;
  return true;
}

/// Decodes standard base64 (with `=` padding); nullopt if malformed.
inline std::optional<std::vector<std::byte>> zarr_base64(std::string_view s) {
  if (s.size() % 4 != 0) return std::nullopt;
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<std::byte> out;
  for (std::size_t i = 0; i < s.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s[i + static_cast<std::size_t>(k)];
      if (c == '=' && i + 4 == s.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else if (pad != 0 || (v[k] = sextet(c)) < 0) {
        return std::nullopt;
      }
    }
    const unsigned bits = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                          (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
    out.push_back(static_cast<std::byte>(bits >> 16));
    if (pad < 2) out.push_back(static_cast<std::byte>((bits >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<std::byte>(bits & 0xFF));
  }
  return out;
}

template <class T>
void zarr_put(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof(T));
}

/// Writes the host-order bits of one floating-point component of `t` (not complex) for `v` at `p`.
inline void zarr_float_fill(dtype t, const json::value& v, int zarr_format, std::byte* p, errc code,
                            std::string_view what) {
  const std::size_t size = size_of(t);
  const std::string field_what = zarr_field_label(what, "fill_value");
  if (v.is_string()) {
    const std::string& s = v.as_string();
    if (s.size() > 2 && s[0] == '0' && s[1] == 'x' && zarr_format == 3) {
      // TensorStore's exact-bits form for NaN payloads: at most two hex digits per byte.
      if (s.size() > 2 + 2 * size) zarr_fail(code, what, "fill_value", "hex string \"" + s + "\" is too long");
      std::uint64_t bits = 0;
      for (std::size_t i = 2; i < s.size(); ++i) {
        unsigned d = 0;
        if (!zarr_hex_digit(s[i], d)) zarr_fail(code, what, "fill_value", "\"" + s + "\" is not a hex string");
        bits = (bits << 4) | d;
      }
      switch (size) {
        case 1: zarr_put(p, static_cast<std::uint8_t>(bits)); return;
        case 2: zarr_put(p, static_cast<std::uint16_t>(bits)); return;
        case 4: zarr_put(p, static_cast<std::uint32_t>(bits)); return;
        default: zarr_put(p, bits); return;
      }
    }
    if (s != "NaN" && s != "Infinity" && s != "-Infinity") {
      if (zarr_format == 2) {
        if (auto raw = zarr_base64(s); raw && raw->size() == size) {
          std::memcpy(p, raw->data(), size);
          return;
        }
      }
      zarr_fail(code, what, "fill_value", "\"" + s + "\" is not a number, \"NaN\", \"Infinity\" or \"-Infinity\"");
    }
    const bool nan = s == "NaN";
    const bool negative = s == "-Infinity";
    switch (t) {
      case dtype::float64:
        zarr_put(p, nan ? std::uint64_t{0x7FF8000000000000} : std::bit_cast<std::uint64_t>(negative ? -HUGE_VAL : HUGE_VAL));
        return;
      case dtype::float32:
        zarr_put(p, nan ? std::uint32_t{0x7FC00000} : std::bit_cast<std::uint32_t>(negative ? -HUGE_VALF : HUGE_VALF));
        return;
      case dtype::float16:
        zarr_put(p, static_cast<std::uint16_t>(nan ? 0x7E00 : (negative ? 0xFC00 : 0x7C00)));
        return;
      case dtype::bfloat16:
        zarr_put(p, static_cast<std::uint16_t>(nan ? 0x7FC0 : (negative ? 0xFF80 : 0x7F80)));
        return;
      default:
        zarr_fail(errc::unsupported, what, "fill_value",
                  "\"" + s + "\" for " + std::string(name_of(t)) + " needs its exact bits as a \"0x…\" string");
    }
  }
  const double d = v.as_double(field_what);
  switch (t) {
    case dtype::float64: zarr_put(p, d); return;
    case dtype::float32: zarr_put(p, static_cast<float>(d)); return;
    case dtype::float16: zarr_put(p, float16(static_cast<float>(d)).bits); return;
    case dtype::bfloat16: zarr_put(p, bfloat16(static_cast<float>(d)).bits); return;
    default:
      // Only +0 has the all-zero encoding in every 8-bit float format; others need a format-specific rounding.
      if (d == 0.0 && !std::signbit(d)) {
        *p = std::byte{0};
        return;
      }
      zarr_fail(errc::unsupported, what, "fill_value",
                "only 0 or a \"0x…\" string is supported as the fill value of " + std::string(name_of(t)));
  }
}

template <class T>
void zarr_int_fill(const json::value& v, std::byte* p, std::string_view what, errc code, int nibble_min = 0,
                   int nibble_max = 0) {
  const T x = v.as_integer<T>(zarr_field_label(what, "fill_value"));
  // int4/uint4 occupy a byte but hold only 4 bits of value.
  if (nibble_min != nibble_max && (static_cast<int>(x) < nibble_min || static_cast<int>(x) > nibble_max))
    zarr_fail(code, what, "fill_value", std::to_string(x) + " is out of range for a 4-bit integer");
  zarr_put(p, x);
}

/// Returns the element bytes (host order) of the fill value; `code` is the error for malformed values.
inline std::vector<std::byte> fill_bytes(const array_metadata& m, errc code, std::string_view what) {
  const dtype t = m.type;
  std::vector<std::byte> out(size_of(t), std::byte{0});
  const json::value& v = m.fill_value;
  if (v.is_null()) {
    // v2 allows null ("no fill value"); TensorStore then fills with zeros. v3 requires a value.
    if (m.zarr_format == 3) zarr_fail(code, what, "fill_value", "null is not a zarr v3 fill value");
    return out;
  }
  // A v2 base64 string carries the raw element bytes of any type.
  if (m.zarr_format == 2 && v.is_string() && info(t).kind != dtype_kind::floating &&
      info(t).kind != dtype_kind::complex) {
    auto raw = zarr_base64(v.as_string());
    if (!raw || raw->size() != out.size())
      zarr_fail(code, what, "fill_value", "string \"" + v.as_string() + "\" is not base64 of one element");
    return *raw;
  }
  try {
    switch (info(t).kind) {
      case dtype_kind::boolean:
        out[0] = static_cast<std::byte>(v.as_bool(zarr_field_label(what, "fill_value")) ? 1 : 0);
        break;
      case dtype_kind::signed_integer:
        switch (t) {
          case dtype::int4: zarr_int_fill<std::int8_t>(v, out.data(), what, code, -8, 7); break;
          case dtype::int8: zarr_int_fill<std::int8_t>(v, out.data(), what, code); break;
          case dtype::int16: zarr_int_fill<std::int16_t>(v, out.data(), what, code); break;
          case dtype::int32: zarr_int_fill<std::int32_t>(v, out.data(), what, code); break;
          default: zarr_int_fill<std::int64_t>(v, out.data(), what, code); break;
        }
        break;
      case dtype_kind::unsigned_integer:
        switch (t) {
          case dtype::uint4: zarr_int_fill<std::uint8_t>(v, out.data(), what, code, 0, 15); break;
          case dtype::uint8: zarr_int_fill<std::uint8_t>(v, out.data(), what, code); break;
          case dtype::uint16: zarr_int_fill<std::uint16_t>(v, out.data(), what, code); break;
          case dtype::uint32: zarr_int_fill<std::uint32_t>(v, out.data(), what, code); break;
          default: zarr_int_fill<std::uint64_t>(v, out.data(), what, code); break;
        }
        break;
      case dtype_kind::floating: zarr_float_fill(t, v, m.zarr_format, out.data(), code, what); break;
      case dtype_kind::complex: {
        const auto& parts = v.as_array(zarr_field_label(what, "fill_value"));
        if (parts.size() != 2) zarr_fail(code, what, "fill_value", "a complex fill value is [real, imaginary]");
        const dtype part = t == dtype::complex64 ? dtype::float32 : dtype::float64;
        zarr_float_fill(part, parts[0], m.zarr_format, out.data(), code, what);
        zarr_float_fill(part, parts[1], m.zarr_format, out.data() + out.size() / 2, code, what);
        break;
      }
    }
  } catch (const error& e) {
    // json accessors report errc::corrupted; for caller-built metadata the caller is at fault.
    if (e.code() == errc::corrupted && code != errc::corrupted) throw error(code, e.context());
    throw;
  }
  return out;
}

}  // namespace detail

/// Returns the fill value as the bytes of one element in host byte order (zeros for a v2 null).
/// \throws cairn::error (errc::invalid_argument) if `fill_value` does not fit `m.type`;
///         (errc::unsupported) for a non-zero numeric fill value of an 8-bit float type.
inline std::vector<std::byte> fill_value_bytes(const array_metadata& m) {
  return detail::fill_bytes(m, errc::invalid_argument, "zarr metadata");
}

namespace detail {

/// The zero of `t` as TensorStore writes it in a v3 `fill_value`: `false`, `0`, `0.0` or `[0.0,0.0]`.
inline json::value zarr_zero(dtype t) {
  switch (info(t).kind) {
    case dtype_kind::boolean: return false;
    case dtype_kind::signed_integer:
    case dtype_kind::unsigned_integer: return 0;
    case dtype_kind::floating: return 0.0;
    case dtype_kind::complex: return json::value::array({0.0, 0.0});
  }
  return 0;
}

inline json::value zarr_extents(std::span<const index_t> dims) {
  json::value a = json::value::array();
  for (index_t d : dims) a.push_back(d);
  return a;
}

inline std::vector<index_t> zarr_parse_extents(const json::value& v, std::string_view what, std::string_view field,
                                               index_t minimum) {
  const auto& elements = v.as_array(zarr_field_label(what, field));
  if (elements.size() > max_rank)
    zarr_fail(errc::corrupted, what, field, "rank " + std::to_string(elements.size()) + " exceeds " + std::to_string(max_rank));
  std::vector<index_t> dims;
  dims.reserve(elements.size());
  for (const auto& e : elements) {
    const index_t d = e.as_int64(zarr_field_label(what, field));
    if (d < minimum)
      zarr_fail(errc::corrupted, what, field, "extent " + std::to_string(d) + " is below " + std::to_string(minimum));
    dims.push_back(d);
  }
  return dims;
}

inline const json::value& zarr_required(const json::value& doc, std::string_view key, std::string_view what) {
  if (const json::value* v = doc.find(key, what)) return *v;
  zarr_fail(errc::corrupted, what, key, "required member is missing");
}

/// One codec entry: its name and configuration (null when absent). The string shorthand `"bytes"` is accepted.
struct zarr_codec_entry {
  std::string name;
  const json::value* configuration = nullptr;
};

inline zarr_codec_entry zarr_codec(const json::value& v, std::string_view what, std::string_view field) {
  if (v.is_string()) return {v.as_string(), nullptr};
  const std::string label = zarr_field_label(what, field);
  zarr_codec_entry e;
  for (const auto& [key, member] : v.as_object(label)) {
    if (key == "name") e.name = member.as_string(label + " name");
    else if (key == "configuration") e.configuration = &member;
    else zarr_fail(errc::corrupted, what, field, "unexpected member \"" + key + "\" in a codec");
  }
  if (e.name.empty()) zarr_fail(errc::corrupted, what, field, "a codec without a name");
  if (e.configuration) (void)e.configuration->as_object(label + " " + e.name + " configuration");
  return e;
}

/// Rejects configuration members other than `allowed` (a codec option cairn does not know changes the bytes).
inline void zarr_known_members(const zarr_codec_entry& c, std::initializer_list<std::string_view> allowed,
                               std::string_view what, std::string_view field) {
  if (!c.configuration) return;
  for (const auto& [key, member] : c.configuration->as_object()) {
    bool known = false;
    for (auto a : allowed) known = known || a == key;
    if (!known)
      zarr_fail(errc::unsupported, what, field, "codec \"" + c.name + "\" has unknown option \"" + key + "\"");
  }
}

enum class zarr_chain_kind { top, inner, index };

/// What a v3 codec chain amounts to.
struct zarr_chain {
  bool sharding = false;
  const json::value* sharding_configuration = nullptr;
  std::endian endian = std::endian::little;
  std::optional<int> zstd_level;
  bool zstd_checksum = false;
  bool crc32c = false;
};

inline zarr_chain zarr_parse_chain(const json::value& codecs, dtype element, zarr_chain_kind kind, std::string_view what,
                                   std::string_view field) {
  const auto& list = codecs.as_array(zarr_field_label(what, field));
  zarr_chain chain;
  bool have_array_to_bytes = false;
  for (const auto& entry : list) {
    const zarr_codec_entry c = zarr_codec(entry, what, field);
    if (c.name == "bytes" || c.name == "sharding_indexed") {
      if (have_array_to_bytes)
        zarr_fail(errc::corrupted, what, field, "codec \"" + c.name + "\" follows another array-to-bytes codec");
      have_array_to_bytes = true;
      if (c.name == "sharding_indexed") {
        if (kind != zarr_chain_kind::top)
          zarr_fail(errc::unsupported, what, field, "nested \"sharding_indexed\" codecs are not supported");
        if (!c.configuration) zarr_fail(errc::corrupted, what, field, "\"sharding_indexed\" needs a configuration");
        chain.sharding = true;
        chain.sharding_configuration = c.configuration;
        continue;
      }
      zarr_known_members(c, {"endian"}, what, field);
      const json::value* endian = c.configuration ? c.configuration->find("endian") : nullptr;
      if (endian) {
        const std::string& e = endian->as_string(zarr_field_label(what, field) + " bytes endian");
        if (e == "little") chain.endian = std::endian::little;
        else if (e == "big") chain.endian = std::endian::big;
        else zarr_fail(errc::corrupted, what, field, "bytes endian \"" + e + "\" is neither \"little\" nor \"big\"");
      } else if (size_of(element) != 1) {
        zarr_fail(errc::corrupted, what, field,
                  "the \"bytes\" codec needs \"endian\" for " + std::string(name_of(element)));
      }
      if (kind == zarr_chain_kind::index && chain.endian != std::endian::little)
        zarr_fail(errc::unsupported, what, field, "a big-endian shard index is not supported");
      continue;
    }
    if (!have_array_to_bytes) {
      // transpose and other array-to-array codecs would change the element order.
      zarr_fail(errc::unsupported, what, field, "codec \"" + c.name + "\" is not supported");
    }
    if (c.name == "zstd" && kind != zarr_chain_kind::index && !chain.sharding && !chain.zstd_level && !chain.crc32c) {
      zarr_known_members(c, {"level", "checksum"}, what, field);
      const std::string label = zarr_field_label(what, field) + " zstd";
      const json::value* level = c.configuration ? c.configuration->find("level") : nullptr;
      const json::value* checksum = c.configuration ? c.configuration->find("checksum") : nullptr;
      chain.zstd_level = level ? level->as_integer<int>(label + " level") : 3;
      chain.zstd_checksum = checksum ? checksum->as_bool(label + " checksum") : false;
      continue;
    }
    if (c.name == "crc32c" && kind == zarr_chain_kind::index && !chain.crc32c) {
      zarr_known_members(c, {}, what, field);
      chain.crc32c = true;
      continue;
    }
    zarr_fail(errc::unsupported, what, field,
              "codec \"" + c.name + "\" is not supported" +
                  (chain.sharding ? " after \"sharding_indexed\"" : " in this position"));
  }
  if (!have_array_to_bytes) zarr_fail(errc::corrupted, what, field, "no \"bytes\" or \"sharding_indexed\" codec");
  return chain;
}

inline array_metadata zarr_parse_v2(const json::value& doc, std::string_view what) {
  array_metadata m;
  m.zarr_format = 2;
  m.shape = cairn::shape(zarr_parse_extents(zarr_required(doc, "shape", what), what, "shape", 0));
  m.chunk_shape = zarr_parse_extents(zarr_required(doc, "chunks", what), what, "chunks", 1);

  const json::value& dt = zarr_required(doc, "dtype", what);
  if (!dt.is_string()) zarr_fail(errc::unsupported, what, "dtype", "structured dtypes are not supported");
  const auto parsed = dtype_from_zarr_v2(dt.as_string());
  if (!parsed) zarr_fail(errc::unsupported, what, "dtype", "unknown dtype \"" + dt.as_string() + "\"");
  m.type = parsed->type;
  m.byte_order = parsed->byte_order;

  const json::value& compressor = zarr_required(doc, "compressor", what);
  if (!compressor.is_null()) {
    const std::string label = zarr_field_label(what, "compressor");
    const std::string& id = zarr_required(compressor, "id", label).as_string(label + " id");
    if (id != "zstd") zarr_fail(errc::unsupported, what, "compressor", "compressor \"" + id + "\" is not supported");
    for (const auto& [key, member] : compressor.as_object()) {
      if (key == "id") continue;
      if (key == "level") m.zstd_level = member.as_integer<int>(label + " level");
      else if (key == "checksum") m.zstd_checksum = member.as_bool(label + " checksum");
      else zarr_fail(errc::unsupported, what, "compressor", "zstd option \"" + key + "\" is not supported");
    }
    if (!m.zstd_level) m.zstd_level = 1;  // numcodecs' and TensorStore's default
  }

  m.fill_value = zarr_required(doc, "fill_value", what);

  const std::string& order = zarr_required(doc, "order", what).as_string(zarr_field_label(what, "order"));
  if (order == "F")
    zarr_fail(errc::unsupported, what, "order", "Fortran order \"F\" is not supported (only \"C\")");
  if (order != "C") zarr_fail(errc::corrupted, what, "order", "\"" + order + "\" is neither \"C\" nor \"F\"");

  const json::value& filters = zarr_required(doc, "filters", what);
  if (!filters.is_null()) {
    const auto& list = filters.as_array(zarr_field_label(what, "filters"));
    if (!list.empty()) {
      std::string id = "?";
      if (list.front().is_object())
        if (const json::value* i = list.front().find("id"); i && i->is_string()) id = i->as_string();
      zarr_fail(errc::unsupported, what, "filters", "filter \"" + id + "\" is not supported");
    }
  }

  if (const json::value* sep = doc.find("dimension_separator")) {
    const std::string& s = sep->as_string(zarr_field_label(what, "dimension_separator"));
    if (s != "." && s != "/")
      zarr_fail(errc::corrupted, what, "dimension_separator", "\"" + s + "\" is neither \".\" nor \"/\"");
    m.separator = s[0];
  }
  return m;
}

inline array_metadata zarr_parse_v3(const json::value& doc, std::string_view what) {
  array_metadata m;
  m.zarr_format = 3;
  static constexpr std::string_view known[] = {"zarr_format", "node_type", "shape", "data_type", "chunk_grid",
                                               "chunk_key_encoding", "fill_value", "codecs", "dimension_names",
                                               "attributes", "storage_transformers"};
  for (const auto& [key, member] : doc.as_object()) {
    bool is_known = false;
    for (auto k : known) is_known = is_known || k == key;
    if (is_known) continue;
    // Extensions mark themselves optional with must_understand: false; anything else changes the meaning.
    const json::value* mu = member.is_object() ? member.find("must_understand") : nullptr;
    if (!(mu && mu->is_bool() && !mu->as_bool()))
      zarr_fail(errc::unsupported, what, key, "unknown zarr v3 member");
  }

  const std::string& node_type = zarr_required(doc, "node_type", what).as_string(zarr_field_label(what, "node_type"));
  if (node_type != "array")
    zarr_fail(errc::corrupted, what, "node_type", "\"" + node_type + "\" is not an array");
  m.shape = cairn::shape(zarr_parse_extents(zarr_required(doc, "shape", what), what, "shape", 0));

  const json::value& dt = zarr_required(doc, "data_type", what);
  if (!dt.is_string()) zarr_fail(errc::unsupported, what, "data_type", "extension data types are not supported");
  const auto type = dtype_from_zarr_v3(dt.as_string());
  if (!type) zarr_fail(errc::unsupported, what, "data_type", "unknown data type \"" + dt.as_string() + "\"");
  m.type = *type;

  {
    const json::value& grid = zarr_required(doc, "chunk_grid", what);
    const zarr_codec_entry g = zarr_codec(grid, what, "chunk_grid");
    if (g.name != "regular")
      zarr_fail(errc::unsupported, what, "chunk_grid", "chunk grid \"" + g.name + "\" is not supported");
    if (!g.configuration) zarr_fail(errc::corrupted, what, "chunk_grid", "a regular grid needs a configuration");
    zarr_known_members(g, {"chunk_shape"}, what, "chunk_grid");
    m.chunk_shape =
        zarr_parse_extents(zarr_required(*g.configuration, "chunk_shape", what), what, "chunk_grid.chunk_shape", 1);
  }
  {
    const json::value& enc = zarr_required(doc, "chunk_key_encoding", what);
    const zarr_codec_entry e = zarr_codec(enc, what, "chunk_key_encoding");
    if (e.name == "default") {
      m.key_encoding = chunk_key_kind::default_;
      m.separator = '/';
    } else if (e.name == "v2") {
      m.key_encoding = chunk_key_kind::v2;
      m.separator = '.';
    } else {
      zarr_fail(errc::unsupported, what, "chunk_key_encoding", "chunk key encoding \"" + e.name + "\" is not supported");
    }
    zarr_known_members(e, {"separator"}, what, "chunk_key_encoding");
    if (const json::value* sep = e.configuration ? e.configuration->find("separator") : nullptr) {
      const std::string& s = sep->as_string(zarr_field_label(what, "chunk_key_encoding") + " separator");
      if (s != "." && s != "/")
        zarr_fail(errc::corrupted, what, "chunk_key_encoding", "separator \"" + s + "\" is neither \".\" nor \"/\"");
      m.separator = s[0];
    }
  }

  m.fill_value = zarr_required(doc, "fill_value", what);

  const zarr_chain top =
      zarr_parse_chain(zarr_required(doc, "codecs", what), m.type, zarr_chain_kind::top, what, "codecs");
  if (top.sharding) {
    const json::value& cfg = *top.sharding_configuration;
    const std::string field = "codecs.sharding_indexed";
    for (const auto& [key, member] : cfg.as_object())
      if (key != "chunk_shape" && key != "codecs" && key != "index_codecs" && key != "index_location")
        zarr_fail(errc::unsupported, what, field, "unknown option \"" + key + "\"");
    m.sharded = true;
    m.inner_chunk_shape = zarr_parse_extents(zarr_required(cfg, "chunk_shape", what), what, field + ".chunk_shape", 1);
    const zarr_chain inner =
        zarr_parse_chain(zarr_required(cfg, "codecs", what), m.type, zarr_chain_kind::inner, what, field + ".codecs");
    m.byte_order = inner.endian;
    m.zstd_level = inner.zstd_level;
    m.zstd_checksum = inner.zstd_checksum;
    const zarr_chain index = zarr_parse_chain(zarr_required(cfg, "index_codecs", what), dtype::uint64,
                                              zarr_chain_kind::index, what, field + ".index_codecs");
    m.index_crc32c = index.crc32c;
    if (const json::value* loc = cfg.find("index_location")) {
      const std::string& l = loc->as_string(zarr_field_label(what, field + ".index_location"));
      if (l == "end") m.index_location = shard_index_location::end;
      else if (l == "start") m.index_location = shard_index_location::start;
      else zarr_fail(errc::corrupted, what, field + ".index_location", "\"" + l + "\" is neither \"end\" nor \"start\"");
    }
  } else {
    m.byte_order = top.endian;
    m.zstd_level = top.zstd_level;
    m.zstd_checksum = top.zstd_checksum;
  }

  if (const json::value* names = doc.find("dimension_names")) m.dimension_names = *names;
  if (const json::value* attributes = doc.find("attributes")) m.attributes = *attributes;
  if (const json::value* st = doc.find("storage_transformers")) {
    if (st->as_array(zarr_field_label(what, "storage_transformers")).size() != 0)
      zarr_fail(errc::unsupported, what, "storage_transformers", "storage transformers are not supported");
  }
  return m;
}

}  // namespace detail

/// Parses a `.zarray` or `zarr.json` document; the version comes from its `zarr_format`.
/// `what` names the document in errors, e.g. `array "params.dense.kernel", key "params.dense.kernel/.zarray"`.
/// \post `to_json(result)` equals `json_text` for every document TensorStore writes for Orbax.
/// \throws cairn::error (errc::corrupted) if the text is not JSON, a required member is missing or has the
///         wrong kind, or the shapes are inconsistent (rank mismatch, a chunk extent below 1, an inner chunk
///         shape that does not divide the shard shape, sizes beyond 2^63 bytes);
///         (errc::incompatible_format) if `zarr_format` is neither 2 nor 3;
///         (errc::unsupported) for a valid feature cairn does not implement, naming it (a codec or compressor
///         other than bytes/zstd/sharding_indexed/crc32c, order "F", filters, structured dtypes, ...).
inline array_metadata parse_metadata(std::string_view json_text, std::string_view what) {
  const json::value doc = json::parse(json_text, what);
  (void)doc.as_object(what);
  const json::value& format = detail::zarr_required(doc, "zarr_format", what);
  if (!format.is_integer())
    detail::zarr_fail(errc::corrupted, what, "zarr_format", "expected an integer");
  const std::int64_t version = format.as_int64();
  array_metadata m;
  if (version == 2) m = detail::zarr_parse_v2(doc, what);
  else if (version == 3) m = detail::zarr_parse_v3(doc, what);
  else detail::zarr_fail(errc::incompatible_format, what, "zarr_format", std::to_string(version) + " is neither 2 nor 3");
  detail::check_metadata(m, errc::corrupted, what);
  (void)detail::fill_bytes(m, errc::corrupted, what);
  return m;
}

/// Returns the metadata document TensorStore writes for `m`: compact JSON, keys sorted. v3 `bytes`
/// codecs carry `"endian"` only for multi-byte types (TensorStore omits it where byte order cannot
/// matter); `index_location` appears only when it is `start`; the chunk key encoding's configuration
/// only when the separator is not the encoding's default.
/// \throws cairn::error (errc::invalid_argument) if `m` is inconsistent (see `parse_metadata`).
inline std::string to_json(const array_metadata& m) {
  detail::check_metadata(m, errc::invalid_argument, "zarr metadata");
  (void)detail::fill_bytes(m, errc::invalid_argument, "zarr metadata");
  json::value doc = json::value::object();
  if (m.zarr_format == 2) {
    doc["chunks"] = detail::zarr_extents(m.chunk_shape);
    if (m.zstd_level) {
      json::value c = json::value::object();
      if (m.zstd_checksum) c["checksum"] = true;
      c["id"] = "zstd";
      c["level"] = *m.zstd_level;
      doc["compressor"] = std::move(c);
    } else {
      doc["compressor"] = nullptr;
    }
    doc["dimension_separator"] = std::string(1, m.separator);
    std::string dt(info(m.type).zarr_v2);
    if (m.byte_order == std::endian::big && size_of(m.type) > 1 && !dt.empty() && dt[0] == '<') dt[0] = '>';
    doc["dtype"] = dt;
    doc["fill_value"] = m.fill_value;
    doc["filters"] = nullptr;
    doc["order"] = "C";
    doc["shape"] = detail::zarr_extents(m.shape.dims());
    doc["zarr_format"] = 2;
    return json::to_string(doc, {.sort_keys = true});
  }

  auto bytes_codec = [&](dtype t, std::endian order) {
    json::value c = json::value::object();
    if (size_of(t) != 1) {
      json::value cfg = json::value::object();
      cfg["endian"] = order == std::endian::little ? "little" : "big";
      c["configuration"] = std::move(cfg);
    }
    c["name"] = "bytes";
    return c;
  };
  json::value data_codecs = json::value::array();
  data_codecs.push_back(bytes_codec(m.type, m.byte_order));
  if (m.zstd_level) {
    json::value z = json::value::object();
    json::value cfg = json::value::object();
    cfg["checksum"] = m.zstd_checksum;
    cfg["level"] = *m.zstd_level;
    z["configuration"] = std::move(cfg);
    z["name"] = "zstd";
    data_codecs.push_back(std::move(z));
  }
  json::value codecs = json::value::array();
  if (m.sharded) {
    json::value cfg = json::value::object();
    cfg["chunk_shape"] = detail::zarr_extents(m.inner_chunk_shape);
    cfg["codecs"] = std::move(data_codecs);
    json::value index = json::value::array();
    index.push_back(bytes_codec(dtype::uint64, std::endian::little));
    if (m.index_crc32c) index.push_back(json::value::object({{"name", "crc32c"}}));
    cfg["index_codecs"] = std::move(index);
    if (m.index_location == shard_index_location::start) cfg["index_location"] = "start";
    codecs.push_back(json::value::object({{"configuration", std::move(cfg)}, {"name", "sharding_indexed"}}));
  } else {
    codecs = std::move(data_codecs);
  }

  if (m.attributes) doc["attributes"] = *m.attributes;
  doc["chunk_grid"] = json::value::object(
      {{"configuration", json::value::object({{"chunk_shape", detail::zarr_extents(m.chunk_shape)}})},
       {"name", "regular"}});
  json::value enc = json::value::object();
  const char default_separator = m.key_encoding == chunk_key_kind::default_ ? '/' : '.';
  if (m.separator != default_separator)
    enc["configuration"] = json::value::object({{"separator", std::string(1, m.separator)}});
  enc["name"] = m.key_encoding == chunk_key_kind::default_ ? "default" : "v2";
  doc["chunk_key_encoding"] = std::move(enc);
  doc["codecs"] = std::move(codecs);
  doc["data_type"] = std::string(info(m.type).zarr_v3);
  if (m.dimension_names) doc["dimension_names"] = *m.dimension_names;
  doc["fill_value"] = m.fill_value;
  doc["node_type"] = "array";
  doc["shape"] = detail::zarr_extents(m.shape.dims());
  doc["zarr_format"] = 3;
  return json::to_string(doc, {.sort_keys = true});
}

/// Returns the metadata Orbax asks TensorStore for (orbax-format.md §2.2, §2.3): v2 with compressor zstd
/// level 1 (or none) and fill value null; v3 with `sharding_indexed` whose inner chunk is the whole shard,
/// inner codecs bytes (little-endian) + zstd level 3 without checksum (or bytes only), index bytes + crc32c
/// at the end, and the zero of the type as fill value. Chunk keys: `0.0` (v2), `c/0/0` (v3).
/// \throws cairn::error (errc::invalid_argument) if `zarr_format` is not 2 or 3, the ranks differ, a chunk
///         extent is below 1, or the sizes exceed 2^63 bytes.
inline array_metadata orbax_metadata(int zarr_format, dtype type, cairn::shape shape, std::vector<index_t> chunk_shape,
                                     bool compress = true) {
  array_metadata m;
  m.zarr_format = zarr_format;
  m.shape = std::move(shape);
  m.chunk_shape = std::move(chunk_shape);
  m.type = type;
  if (zarr_format == 3) {
    m.fill_value = detail::zarr_zero(type);
    m.zstd_level = compress ? std::optional<int>(3) : std::nullopt;
    m.sharded = true;
    m.inner_chunk_shape = m.chunk_shape;
    m.key_encoding = chunk_key_kind::default_;
    m.separator = '/';
  } else {
    m.zstd_level = compress ? std::optional<int>(1) : std::nullopt;
  }
  detail::check_metadata(m, errc::invalid_argument, "orbax_metadata");
  return m;
}

/// Returns the number of chunks along each dimension: `ceil(shape[i] / chunk_shape[i])` (0 for an empty
/// dimension; rank 0 has one chunk and an empty grid shape).
/// \pre `m` is consistent (as parse_metadata / orbax_metadata return it).
inline std::vector<index_t> grid_shape(const array_metadata& m) {
  std::vector<index_t> g(m.shape.rank());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = (m.shape[i] + m.chunk_shape[i] - 1) / m.chunk_shape[i];
  return g;
}

/// Calls `f(std::span<const index_t>)` with the index of rank `rank` that is all zeros (the first
/// chunk), without allocating for any rank TensorStore allows.
template <class F>
decltype(auto) with_zero_index(std::size_t rank, F&& f) {
  constexpr std::size_t max_rank = 32;
  static constexpr index_t zeros[max_rank] = {};
  if (rank <= max_rank) return f(std::span<const index_t>(zeros, rank));
  const std::vector<index_t> v(rank, 0);
  return f(std::span<const index_t>(v));
}

/// Returns the box the chunk `chunk_index` covers in array coordinates, *not* clipped to the array:
/// `[i*c, (i+1)*c)` per dimension; edge chunks reach past the shape (their padding).
/// \throws cairn::error (errc::invalid_argument) if the rank differs from the array's.
inline box chunk_box(const array_metadata& m, std::span<const index_t> chunk_index) {
  if (chunk_index.size() != m.chunk_shape.size())
    throw error(errc::invalid_argument, "chunk index " + to_string(chunk_index) + " does not have rank " +
                                            std::to_string(m.chunk_shape.size()));
  std::vector<index_t> origin(chunk_index.size());
  for (std::size_t i = 0; i < origin.size(); ++i) origin[i] = chunk_index[i] * m.chunk_shape[i];
  return box(std::move(origin), m.chunk_shape);
}

/// Calls `f(std::span<const index_t> chunk_index)` once for every chunk intersecting `region`, in C order.
/// \pre `region` lies inside the array (`box(m.shape).contains(region)`).
/// \post Visits exactly the chunks `k` with `intersect(chunk_box(m, k), region)` non-empty.
/// \throws cairn::error (errc::invalid_argument) if `region` has another rank or lies outside the array.
template <class F>
void for_each_chunk(const array_metadata& m, const box& region, F&& f) {
  if (!box(m.shape).contains(region))
    throw error(errc::invalid_argument,
                "region " + to_string(region) + " is not inside the array " + to_string(box(m.shape)));
  if (region.empty()) return;
  const std::size_t r = region.rank();
  std::vector<index_t> lo(r), extent(r);
  for (std::size_t i = 0; i < r; ++i) {
    lo[i] = region.origin(i) / m.chunk_shape[i];
    extent[i] = (region.stop(i) + m.chunk_shape[i] - 1) / m.chunk_shape[i] - lo[i];
  }
  for_each_point(box(std::move(lo), std::move(extent)), f);
}

/// Returns the indices of the chunks intersecting `region`, in C order (see `for_each_chunk`).
/// \throws cairn::error (errc::invalid_argument) as `for_each_chunk`.
inline std::vector<std::vector<index_t>> chunks_intersecting(const array_metadata& m, const box& region) {
  std::vector<std::vector<index_t>> out;
  for_each_chunk(m, region, [&](std::span<const index_t> k) { out.emplace_back(k.begin(), k.end()); });
  return out;
}

/// Returns the key of chunk `chunk_index` relative to the array's directory: v2 encoding `"1.0"`
/// (rank 0: `"0"`), default (v3) encoding `"c/1/0"` (rank 0: `"c"`), with the metadata's separator.
/// \throws cairn::error (errc::invalid_argument) if the rank differs from the array's.
inline std::string chunk_key(const array_metadata& m, std::span<const index_t> chunk_index) {
  if (chunk_index.size() != m.shape.rank())
    throw error(errc::invalid_argument, "chunk index " + to_string(chunk_index) + " does not have rank " +
                                            std::to_string(m.shape.rank()));
  std::string key;
  if (m.key_encoding == chunk_key_kind::default_) {
    key = "c";
    for (index_t i : chunk_index) {
      key += m.separator;
      key += std::to_string(i);
    }
    return key;
  }
  if (chunk_index.empty()) return "0";
  for (std::size_t i = 0; i < chunk_index.size(); ++i) {
    if (i) key += m.separator;
    key += std::to_string(chunk_index[i]);
  }
  return key;
}

/// True if `m` is sharded with one inner chunk per shard (what Orbax writes for zarr v3): a shard is
/// then that chunk's bytes and a one-entry index.
inline bool shard_of_one_chunk(const array_metadata& m) noexcept { return m.sharded && m.inner_chunk_shape == m.chunk_shape; }

/// True if `region` is the whole array and the array is a single chunk (a checkpoint's usual leaf),
/// which reads and writes take without walking the chunk grid.
inline bool whole_single_chunk(const array_metadata& m, const box& region) noexcept {
  return m.chunk_shape == m.shape.vector() && region.extent() == m.shape.vector();
}

/// Returns the number of bytes of one decoded (grid) chunk: `prod(chunk_shape) * size_of(type)`.
/// \pre `m` is consistent.
inline std::size_t chunk_num_bytes(const array_metadata& m) {
  return static_cast<std::size_t>(*detail::zarr_checked_bytes(m.chunk_shape, static_cast<index_t>(size_of(m.type))));
}

}  // namespace cairn::zarr
