// SPDX-License-Identifier: Apache-2.0
/// \file
/// `cairn::json::value`: one JSON document in memory, as `json/reader.hpp` produces and `json/writer.hpp`
/// consumes. Integers stay exact (int64, or uint64 only above INT64_MAX, so each integer has one
/// representation); objects keep insertion order and unique keys, and compare equal regardless of order.
/// Typed accessors throw `errc::corrupted` because a value of the wrong kind means the file that held it
/// is wrong; builders (`operator[]`, `push_back`) throw `errc::invalid_argument` because misuse is the caller's.
#pragma once

#include <algorithm>  // std::sort
#include <charconv>   // std::to_chars
#include <cmath>      // std::trunc, std::isfinite
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>  // std::errc (to_chars result)
#include <type_traits>
#include <utility>  // std::in_range, std::pair
#include <variant>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/core/utf8.hpp>

namespace cairn::json {

class value;

/// The elements of a JSON array.
using array_type = std::vector<value>;
/// One member of a JSON object: key and value.
using member = std::pair<std::string, value>;
/// The members of a JSON object, in insertion (or document) order; keys are unique.
using object_type = std::vector<member>;

/// What a `value` holds. The order is that of `value`'s storage and never changes.
enum class kind : std::uint8_t {
  null,
  boolean,
  int64,    ///< an integer in [INT64_MIN, INT64_MAX]
  uint64,   ///< an integer in (INT64_MAX, UINT64_MAX]; never used for smaller values
  float64,  ///< a number written with a fraction or an exponent
  string,
  array,
  object,
};

/// Returns the name used for `k` in error messages: both integer kinds are "integer".
constexpr std::string_view kind_name(kind k) noexcept {
  switch (k) {
    case kind::null: return "null";
    case kind::boolean: return "boolean";
    case kind::int64:
    case kind::uint64: return "integer";
    case kind::float64: return "double";
    case kind::string: return "string";
    case kind::array: return "array";
    case kind::object: return "object";
  }
  return "unknown";
}

}  // namespace cairn::json

namespace cairn::detail {

// char is excluded on purpose: value('a') would silently become the integer 97.
template <class T>
concept json_char_like = std::same_as<T, char> || std::same_as<T, wchar_t> || std::same_as<T, char8_t> ||
    std::same_as<T, char16_t> || std::same_as<T, char32_t>;
template <class T>
concept json_signed_integer = std::signed_integral<T> && !json_char_like<T>;
template <class T>
concept json_unsigned_integer = std::unsigned_integral<T> && !std::same_as<T, bool> && !json_char_like<T>;
// long double is excluded: storing it would silently drop precision.
template <class T>
concept json_floating = std::same_as<T, float> || std::same_as<T, double>;
template <class T>
concept json_integer = json_signed_integer<T> || json_unsigned_integer<T>;

/// Appends `s` as a quoted JSON string to `out`.
/// With `ascii_only`, every code point above U+007E is written as `\uxxxx` (a surrogate pair above U+FFFF),
/// which is what Python's `json.dumps` does by default. Invalid UTF-8 is written as U+FFFD when
/// `replace_invalid` (for error messages), otherwise writing stops there.
/// \post returns `std::string_view::npos`, or the offset in `s` of the first invalid byte (then `out` is partial).
inline std::size_t json_append_quoted(std::string& out, std::string_view s, bool ascii_only = false,
                                      bool replace_invalid = true) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  auto append_u = [&](unsigned v) {
    const char esc[6] = {'\\', 'u', hex[(v >> 12) & 0xF], hex[(v >> 8) & 0xF], hex[(v >> 4) & 0xF], hex[v & 0xF]};
    out.append(esc, 6);
  };
  out.push_back('"');
  std::size_t i = 0;
  while (i < n) {
    // Copy runs of plain ASCII at once: nearly every key and string in checkpoint metadata is one.
    std::size_t run = i;
    while (run < n && p[run] >= 0x20 && p[run] < 0x7F && p[run] != '"' && p[run] != '\\') ++run;
    out.append(s.data() + i, run - i);
    i = run;
    if (i == n) break;
    const unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || ascii_only) {
            append_u(c);
          } else {
            out.push_back(static_cast<char>(c));  // DEL is legal unescaped JSON
          }
      }
      ++i;
      continue;
    }
    char32_t cp = 0;
    const std::size_t len = utf8_decode(p + i, n - i, cp);
    if (len == 0) {
      if (!replace_invalid) return i;
      if (ascii_only) {
        append_u(0xFFFD);
      } else {
        out += "\xEF\xBF\xBD";
      }
      ++i;
      continue;
    }
    if (!ascii_only) {
      out.append(s.data() + i, len);
    } else if (cp < 0x10000) {
      append_u(static_cast<unsigned>(cp));
    } else {
      const char32_t v = cp - 0x10000;
      append_u(static_cast<unsigned>(0xD800 + (v >> 10)));
      append_u(static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
    }
    i += len;
  }
  out.push_back('"');
  return std::string_view::npos;
}

/// Returns `s` quoted and escaped for an error message (invalid UTF-8 shown as U+FFFD).
inline std::string json_quote(std::string_view s) {
  std::string out;
  json_append_quoted(out, s);
  return out;
}

/// Appends the shortest text that reads back as exactly `d`, laid out as Python's `repr(float)`:
/// fixed notation with at least one fractional digit when the decimal exponent is in [-4, 16)
/// (`1.0`, `0.0001`, `-0.0`, `123456.5`), otherwise scientific (`1e+16`, `1e-05`, `5e-324`).
/// The `.0` matters: `1.0` reads back as a double, `1` would read back as an integer.
/// \pre `std::isfinite(d)`
inline void json_append_double(std::string& out, double d) {
  // Scientific to_chars without a precision yields the shortest round-trip digits; re-layout them below.
  char buf[40];
  const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  const std::size_t e_pos = sci.find('e');
  int exponent = 0;
  std::from_chars(sci.data() + e_pos + (sci[e_pos + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exponent);
  if (exponent < -4 || exponent >= 16) {
    out.append(sci);
    return;
  }
  std::string_view mantissa = sci.substr(0, e_pos);
  if (mantissa.front() == '-') {
    out.push_back('-');
    mantissa.remove_prefix(1);
  }
  std::string digits;  // significant digits without the point
  digits.push_back(mantissa.front());
  if (mantissa.size() > 2) digits.append(mantissa.substr(2));
  if (exponent < 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-exponent - 1), '0');
    out += digits;
    return;
  }
  const auto int_digits = static_cast<std::size_t>(exponent) + 1;
  if (digits.size() <= int_digits) {
    out += digits;
    out.append(int_digits - digits.size(), '0');
    out += ".0";
  } else {
    out.append(digits, 0, int_digits);
    out.push_back('.');
    out.append(digits, int_digits);
  }
}

/// Returns the name of integer type T for messages: `int32`, `uint64`, ...
template <class T>
std::string json_integer_type_name() {
  return (std::is_signed_v<T> ? "int" : "uint") + std::to_string(8 * sizeof(T));
}

}  // namespace cairn::detail

namespace cairn::json {

/// A JSON value: null, boolean, integer, double, string, array or object.
/// Conversions from C++ values are implicit (`v["shape"] = value::array({8, 4})`); `char` and
/// `long double` are rejected at compile time because their meaning would be silently changed.
/// \par Thread safety
/// Distinct objects may be used concurrently; concurrent `const` use of one object is safe;
/// any mutation needs external synchronisation.
class value {
 public:
  /// Constructs null.
  value() noexcept = default;
  /// Constructs null.
  value(std::nullptr_t) noexcept {}  // NOLINT: implicit by design, as every constructor here
  /// Constructs a boolean (a template so that pointers never decay to bool).
  template <std::same_as<bool> B>
  value(B b) noexcept : data_(static_cast<bool>(b)) {}  // NOLINT
  /// Constructs an integer.
  template <detail::json_signed_integer T>
  value(T v) noexcept : data_(static_cast<std::int64_t>(v)) {}  // NOLINT
  /// Constructs an integer; kind `uint64` only above INT64_MAX.
  template <detail::json_unsigned_integer T>
  value(T v) noexcept {  // NOLINT
    if (std::in_range<std::int64_t>(v)) {
      data_ = static_cast<std::int64_t>(v);
    } else {
      data_ = static_cast<std::uint64_t>(v);
    }
  }
  /// Constructs a double; non-finite values are allowed here but rejected by the writer.
  template <detail::json_floating T>
  value(T v) noexcept : data_(static_cast<double>(v)) {}  // NOLINT
  /// Constructs a string. \pre `s != nullptr`
  value(const char* s) : data_(std::string(s)) {}         // NOLINT
  value(std::string s) noexcept : data_(std::move(s)) {}  // NOLINT
  value(std::string_view s) : data_(std::string(s)) {}    // NOLINT
  /// Constructs an array.
  value(array_type elements) noexcept : data_(std::move(elements)) {}  // NOLINT
  /// Constructs an object. \pre the keys of `members` are unique
  value(object_type members) noexcept : data_(std::move(members)) {}  // NOLINT

  /// Returns an empty object.
  static value object() { return value(object_type{}); }
  /// Returns an object with `members` in the given order.
  /// \throws cairn::error (errc::invalid_argument) if a key appears twice
  static value object(std::initializer_list<member> members) {
    value out = object();
    auto& obj = out.as_object();
    obj.reserve(members.size());
    for (const auto& m : members) {
      if (out.find(m.first) != nullptr) {
        throw error(errc::invalid_argument, "json: duplicate key " + detail::json_quote(m.first) + " in value::object");
      }
      obj.push_back(m);
    }
    return out;
  }
  /// Returns an empty array.
  static value array() { return value(array_type{}); }
  /// Returns an array of `elements`.
  static value array(std::initializer_list<value> elements) { return value(array_type(elements)); }

  /// Returns what this value holds.
  json::kind kind() const noexcept { return static_cast<json::kind>(data_.index()); }
  bool is_null() const noexcept { return kind() == json::kind::null; }
  bool is_bool() const noexcept { return kind() == json::kind::boolean; }
  bool is_int64() const noexcept { return kind() == json::kind::int64; }
  bool is_uint64() const noexcept { return kind() == json::kind::uint64; }
  /// Returns true for either integer kind.
  bool is_integer() const noexcept { return is_int64() || is_uint64(); }
  bool is_double() const noexcept { return kind() == json::kind::float64; }
  /// Returns true for integers and doubles.
  bool is_number() const noexcept { return is_integer() || is_double(); }
  bool is_string() const noexcept { return kind() == json::kind::string; }
  bool is_array() const noexcept { return kind() == json::kind::array; }
  bool is_object() const noexcept { return kind() == json::kind::object; }

  // Typed accessors. `what` names this value in errors (e.g. `_CHECKPOINT_METADATA "item_handlers"`);
  // without it messages start with `json`: `json: expected integer, found string "8"`.

  /// Returns the boolean.
  /// \throws cairn::error (errc::corrupted) if this is not a boolean
  bool as_bool(std::string_view what = {}) const {
    if (!is_bool()) throw_kind_error(what, "boolean");
    return std::get<bool>(data_);
  }
  /// Returns the integer as T; an integral double (`3.0`) is accepted.
  /// \throws cairn::error (errc::corrupted) if this is not a number, is a non-integral double,
  ///   or does not fit in T
  template <detail::json_integer T>
  T as_integer(std::string_view what = {}) const {
    switch (kind()) {
      case json::kind::int64: {
        const auto v = std::get<std::int64_t>(data_);
        if (!std::in_range<T>(v)) throw_range_error<T>(what);
        return static_cast<T>(v);
      }
      case json::kind::uint64: {
        const auto v = std::get<std::uint64_t>(data_);
        if (!std::in_range<T>(v)) throw_range_error<T>(what);
        return static_cast<T>(v);
      }
      case json::kind::float64: {
        const double d = std::get<double>(data_);
        if (!std::isfinite(d) || std::trunc(d) != d) throw_kind_error(what, "integer");
        constexpr double two63 = 9223372036854775808.0;
        if (d >= -two63 && d < two63) {
          const auto v = static_cast<std::int64_t>(d);
          if (std::in_range<T>(v)) return static_cast<T>(v);
        } else if (d >= two63 && d < 2 * two63) {
          const auto v = static_cast<std::uint64_t>(d);
          if (std::in_range<T>(v)) return static_cast<T>(v);
        }
        throw_range_error<T>(what);
      }
      default: throw_kind_error(what, "integer");
    }
  }
  /// Returns the integer. \throws cairn::error (errc::corrupted) as `as_integer<std::int64_t>`
  std::int64_t as_int64(std::string_view what = {}) const { return as_integer<std::int64_t>(what); }
  /// Returns the integer. \throws cairn::error (errc::corrupted) as `as_integer<std::uint64_t>`
  std::uint64_t as_uint64(std::string_view what = {}) const { return as_integer<std::uint64_t>(what); }
  /// Returns the number as a double; integers beyond 2^53 round to the nearest double.
  /// \throws cairn::error (errc::corrupted) if this is not a number
  double as_double(std::string_view what = {}) const {
    switch (kind()) {
      case json::kind::int64: return static_cast<double>(std::get<std::int64_t>(data_));
      case json::kind::uint64: return static_cast<double>(std::get<std::uint64_t>(data_));
      case json::kind::float64: return std::get<double>(data_);
      default: throw_kind_error(what, "number");
    }
  }
  /// Returns the string. \throws cairn::error (errc::corrupted) if this is not a string
  const std::string& as_string(std::string_view what = {}) const {
    if (!is_string()) throw_kind_error(what, "string");
    return std::get<std::string>(data_);
  }
  /// Returns the elements. \throws cairn::error (errc::corrupted) if this is not an array
  const array_type& as_array(std::string_view what = {}) const {
    if (!is_array()) throw_kind_error(what, "array");
    return std::get<array_type>(data_);
  }
  /// Returns the elements for modification. \throws cairn::error (errc::corrupted) if this is not an array
  array_type& as_array(std::string_view what = {}) {
    if (!is_array()) throw_kind_error(what, "array");
    return std::get<array_type>(data_);
  }
  /// Returns the members. \throws cairn::error (errc::corrupted) if this is not an object
  const object_type& as_object(std::string_view what = {}) const {
    if (!is_object()) throw_kind_error(what, "object");
    return std::get<object_type>(data_);
  }
  /// Returns the members for modification; keys must stay unique (appending directly avoids the
  /// linear look-up of `operator[]` when building large objects).
  /// \throws cairn::error (errc::corrupted) if this is not an object
  object_type& as_object(std::string_view what = {}) {
    if (!is_object()) throw_kind_error(what, "object");
    return std::get<object_type>(data_);
  }

  /// Returns the member named `key`, or nullptr. Look-up is linear: objects in checkpoint metadata are small,
  /// and callers walking large ones iterate `as_object()` instead.
  /// \throws cairn::error (errc::corrupted) if this is not an object
  const value* find(std::string_view key, std::string_view what = {}) const {
    for (const auto& m : as_object(what)) {
      if (m.first == key) return &m.second;
    }
    return nullptr;
  }
  /// Returns the member named `key`, or nullptr. \throws cairn::error (errc::corrupted) if this is not an object
  value* find(std::string_view key, std::string_view what = {}) {
    return const_cast<value*>(std::as_const(*this).find(key, what));
  }
  /// Returns the member named `key`.
  /// \throws cairn::error (errc::corrupted) if this is not an object or has no such member
  const value& at(std::string_view key, std::string_view what = {}) const {
    if (const value* v = find(key, what)) return *v;
    throw error(errc::corrupted, label(what) + ": missing key " + detail::json_quote(key));
  }
  /// Returns element `index`.
  /// \throws cairn::error (errc::corrupted) if this is not an array or `index >= size()`
  const value& at(std::size_t index, std::string_view what = {}) const {
    const auto& elements = as_array(what);
    if (index >= elements.size()) {
      throw error(errc::corrupted, label(what) + ": index " + std::to_string(index) + " out of range for array of " +
                                       std::to_string(elements.size()));
    }
    return elements[index];
  }
  /// Returns the member named `key`, appending a null member when absent; null becomes an empty object first.
  /// \throws cairn::error (errc::invalid_argument) if this is neither null nor an object
  value& operator[](std::string_view key) {
    if (is_null()) data_ = object_type{};
    if (!is_object()) {
      throw error(errc::invalid_argument,
                  "json: operator[] " + detail::json_quote(key) + " on " + std::string(kind_name(kind())));
    }
    auto& members = std::get<object_type>(data_);
    for (auto& m : members) {
      if (m.first == key) return m.second;
    }
    return members.emplace_back(std::string(key), value()).second;
  }
  /// Appends `element`; null becomes an empty array first.
  /// \throws cairn::error (errc::invalid_argument) if this is neither null nor an array
  void push_back(value element) {
    if (is_null()) data_ = array_type{};
    if (!is_array()) throw error(errc::invalid_argument, "json: push_back on " + std::string(kind_name(kind())));
    std::get<array_type>(data_).push_back(std::move(element));
  }
  /// Returns the number of elements of an array or members of an object, and 0 for any other kind.
  std::size_t size() const noexcept {
    if (is_array()) return std::get<array_type>(data_).size();
    if (is_object()) return std::get<object_type>(data_).size();
    return 0;
  }

  /// Deep equality. An int64 and a uint64 holding the same number are equal; integers never equal
  /// doubles (`1` and `1.0` are different documents); doubles compare as IEEE numbers (-0.0 == 0.0,
  /// NaN != NaN); objects are equal when they have the same keys with equal values, in any order.
  friend bool operator==(const value& a, const value& b) {
    const json::kind ka = a.kind();
    const json::kind kb = b.kind();
    if (ka != kb) {
      if (ka == json::kind::int64 && kb == json::kind::uint64) return same_integer(a, b);
      if (ka == json::kind::uint64 && kb == json::kind::int64) return same_integer(b, a);
      return false;
    }
    switch (ka) {
      case json::kind::object: return same_members(std::get<object_type>(a.data_), std::get<object_type>(b.data_));
      case json::kind::array: return std::get<array_type>(a.data_) == std::get<array_type>(b.data_);
      default: return a.data_ == b.data_;
    }
  }

 private:
  static bool same_integer(const value& i, const value& u) {
    const auto iv = std::get<std::int64_t>(i.data_);
    return iv >= 0 && static_cast<std::uint64_t>(iv) == std::get<std::uint64_t>(u.data_);
  }
  static bool same_members(const object_type& a, const object_type& b) {
    if (a.size() != b.size()) return false;
    if (a.size() <= 16) {
      for (const auto& m : a) {
        auto it = std::find_if(b.begin(), b.end(), [&](const member& x) { return x.first == m.first; });
        if (it == b.end() || !(it->second == m.second)) return false;
      }
      return true;
    }
    // Sorting pointers keeps large objects (tree metadata of big models) from costing n^2.
    auto sorted = [](const object_type& o) {
      std::vector<const member*> p;
      p.reserve(o.size());
      for (const auto& m : o) p.push_back(&m);
      std::sort(p.begin(), p.end(), [](const member* x, const member* y) { return x->first < y->first; });
      return p;
    };
    const auto pa = sorted(a);
    const auto pb = sorted(b);
    for (std::size_t i = 0; i < pa.size(); ++i) {
      if (pa[i]->first != pb[i]->first || !(pa[i]->second == pb[i]->second)) return false;
    }
    return true;
  }

  static std::string label(std::string_view what) { return what.empty() ? std::string("json") : std::string(what); }

  // A short rendering of this value for messages: scalars in full (long strings cut), containers by kind.
  std::string preview() const {
    std::string out(kind_name(kind()));
    switch (kind()) {
      case json::kind::boolean: out += std::get<bool>(data_) ? " true" : " false"; break;
      case json::kind::int64: out += " " + std::to_string(std::get<std::int64_t>(data_)); break;
      case json::kind::uint64: out += " " + std::to_string(std::get<std::uint64_t>(data_)); break;
      case json::kind::float64: {
        const double d = std::get<double>(data_);
        out.push_back(' ');
        if (std::isfinite(d)) {
          detail::json_append_double(out, d);
        } else {
          out += std::isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity");
        }
        break;
      }
      case json::kind::string: {
        const auto& s = std::get<std::string>(data_);
        out.push_back(' ');
        if (s.size() <= 64) {
          detail::json_append_quoted(out, s);
        } else {
          detail::json_append_quoted(out, std::string_view(s).substr(0, 61));
          out.insert(out.size() - 1, "...");
        }
        break;
      }
      default: break;
    }
    return out;
  }

  [[noreturn]] void throw_kind_error(std::string_view what, std::string_view expected) const {
    std::string found = preview();
    if (is_double() && expected == "integer") found = "non-integral " + found;
    throw error(errc::corrupted, label(what) + ": expected " + std::string(expected) + ", found " + found);
  }
  template <class T>
  [[noreturn]] void throw_range_error(std::string_view what) const {
    throw error(errc::corrupted,
                label(what) + ": " + preview() + " is out of range for " + detail::json_integer_type_name<T>());
  }

  // Alternative order == json::kind, so kind() is index().
  std::variant<std::nullptr_t, bool, std::int64_t, std::uint64_t, double, std::string, array_type, object_type> data_;
};

}  // namespace cairn::json
