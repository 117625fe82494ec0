// SPDX-License-Identifier: Apache-2.0
/// \file
/// JSON text to `cairn::json::value`, or to `json::document` views read in place, through simdjson's
/// DOM parser; the only header that includes <simdjson.h>. Every failure is `errc::corrupted` and says where: `_METADATA: line 3, column 17 (byte 41):
/// invalid JSON: expected ',' or '}' after an object member, found '"' (simdjson TAPE_ERROR: ...)`.
/// simdjson reports no positions, so after a failure a small strict scanner re-reads the text to find the
/// first offending byte; valid input never pays for it. Stricter than simdjson alone: duplicate keys are errors.
#pragma once

#include <bit>     // std::bit_ceil
#include <cerrno>  // errno, ENOENT
#include <cstddef>
#include <cstdint>
#include <cstdio>   // std::snprintf
#include <cstring>  // std::strerror, std::memset
#include <filesystem>
#include <memory>
#include <new>  // std::bad_alloc
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>     // ::open
#include <sys/stat.h>  // ::fstat
#include <unistd.h>    // ::read, ::close

#include <simdjson.h>

#include <cairn/core/error.hpp>
#include <cairn/json/value.hpp>

namespace cairn::detail {

/// Returns `line L, column C (byte B)` for `offset` in `text` (without the byte part unless `with_byte`):
/// line and column count from 1, the column in characters (UTF-8 code points, a tab is one), and B is the
/// 0-based byte offset.
inline std::string json_position(std::string_view text, std::size_t offset, bool with_byte = true) {
  std::size_t line = 1;
  std::size_t line_start = 0;
  const std::size_t end = offset < text.size() ? offset : text.size();
  for (std::size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  std::size_t column = 1;
  for (std::size_t i = line_start; i < end; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++column;
  }
  std::string out = "line " + std::to_string(line) + ", column " + std::to_string(column);
  if (with_byte) out += " (byte " + std::to_string(offset) + ")";
  return out;
}

/// Returns the enumerator name of a simdjson error code (simdjson 3.0.1 has only the prose).
inline std::string_view simdjson_error_name(simdjson::error_code code) noexcept {
  switch (code) {
    case simdjson::CAPACITY: return "CAPACITY";
    case simdjson::MEMALLOC: return "MEMALLOC";
    case simdjson::TAPE_ERROR: return "TAPE_ERROR";
    case simdjson::DEPTH_ERROR: return "DEPTH_ERROR";
    case simdjson::STRING_ERROR: return "STRING_ERROR";
    case simdjson::T_ATOM_ERROR: return "T_ATOM_ERROR";
    case simdjson::F_ATOM_ERROR: return "F_ATOM_ERROR";
    case simdjson::N_ATOM_ERROR: return "N_ATOM_ERROR";
    case simdjson::NUMBER_ERROR: return "NUMBER_ERROR";
    case simdjson::UTF8_ERROR: return "UTF8_ERROR";
    case simdjson::EMPTY: return "EMPTY";
    case simdjson::UNESCAPED_CHARS: return "UNESCAPED_CHARS";
    case simdjson::UNCLOSED_STRING: return "UNCLOSED_STRING";
    case simdjson::UNSUPPORTED_ARCHITECTURE: return "UNSUPPORTED_ARCHITECTURE";
    case simdjson::INSUFFICIENT_PADDING: return "INSUFFICIENT_PADDING";
    default: return "error";
  }
}

/// A strict RFC 8259 scanner that only locates things: the first syntax error, or the key of one object member.
/// It runs only after simdjson has rejected a document (or found a duplicate key), so it favours clear
/// messages over speed. Its nesting limit is simdjson's: a value inside 1024 arrays/objects is rejected.
class json_scanner {
 public:
  /// A position in the text, what is wrong there, and the JSON pointer of the enclosing container.
  struct finding {
    std::size_t offset = 0;
    std::string message;
    std::string pointer;
  };

  explicit json_scanner(std::string_view text) noexcept : text_(text) {}

  /// Returns the first syntax error in document order, or nullopt when the text is valid JSON.
  std::optional<finding> first_error() {
    reset();
    try {
      scan_document();
    } catch (const stop& s) {
      return s.where;
    }
    return std::nullopt;
  }
  /// Returns the first byte that is not valid UTF-8, or nullopt.
  std::optional<finding> first_invalid_utf8() const {
    const auto* p = reinterpret_cast<const unsigned char*>(text_.data());
    for (std::size_t i = 0; i < text_.size();) {
      char32_t cp = 0;
      const std::size_t len = utf8_decode(p + i, text_.size() - i, cp);
      if (len == 0) return finding{i, "invalid UTF-8 (" + describe(i) + ")", {}};
      i += len;
    }
    return std::nullopt;
  }
  /// Returns the position of the key of member `member_index` (from 0) of the object numbered `object_ordinal`
  /// (objects numbered from 0 in the order their `{` appears), with the pointer of that object.
  std::optional<finding> locate_member(std::size_t object_ordinal, std::size_t member_index) {
    reset();
    target_ = {object_ordinal, member_index};
    try {
      scan_document();
    } catch (const stop& s) {
      if (s.target_found) return s.where;
    }
    return std::nullopt;
  }

 private:
  struct stop {
    finding where;
    bool target_found = false;
  };
  struct target {
    std::size_t object_ordinal;
    std::size_t member_index;
  };

  void reset() {
    pos_ = 0;
    objects_ = 0;
    path_.clear();
    target_.reset();
  }

  [[noreturn]] void fail(std::size_t at, std::string message) const {
    throw stop{finding{at, std::move(message), pointer()}, false};
  }
  // "expected X, found Y", or "unexpected end of input, expected X" at the end.
  [[noreturn]] void fail_expected(std::string_view expected) const {
    if (pos_ >= text_.size()) fail(pos_, "unexpected end of input, expected " + std::string(expected));
    fail(pos_, "expected " + std::string(expected) + ", found " + describe(pos_));
  }

  std::string pointer() const {
    std::string out;
    for (const auto& segment : path_) {
      out.push_back('/');
      for (char c : segment) {
        if (c == '~') {
          out += "~0";
        } else if (c == '/') {
          out += "~1";
        } else {
          out.push_back(c);
        }
      }
    }
    return out;
  }

  std::string describe(std::size_t at) const {
    if (at >= text_.size()) return "end of input";
    const auto c = static_cast<unsigned char>(text_[at]);
    char buf[16];
    if (c >= 0x20 && c < 0x7F) {
      std::snprintf(buf, sizeof buf, "'%c'", c);
    } else {
      std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    }
    return buf;
  }
  static std::string shown(std::string_view token) {
    if (token.size() <= 32) return json_quote(token);
    std::string out = json_quote(token.substr(0, 29));
    out.insert(out.size() - 1, "...");
    return out;
  }

  static bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  static bool is_delimiter(char c) noexcept {
    return is_space(c) || c == ',' || c == ':' || c == '[' || c == ']' || c == '{' || c == '}' || c == '"';
  }
  static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
  void skip_space() noexcept {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }
  bool at(char c) const noexcept { return pos_ < text_.size() && text_[pos_] == c; }

  void scan_document() {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") fail(0, "a UTF-8 byte order mark is not allowed before JSON text");
    skip_space();
    if (pos_ == text_.size()) fail(pos_, text_.empty() ? "empty input" : "input holds only whitespace");
    scan_value(0);
    skip_space();
    if (pos_ != text_.size()) fail(pos_, "unexpected " + describe(pos_) + " after the JSON value");
  }

  void scan_value(std::size_t depth) {
    if (pos_ >= text_.size()) fail_expected("a value");
    if (depth >= simdjson::DEFAULT_MAX_DEPTH) {
      fail(pos_, "more than " + std::to_string(simdjson::DEFAULT_MAX_DEPTH) + " nested arrays/objects");
    }
    switch (text_[pos_]) {
      case '{': scan_object(depth); return;
      case '[': scan_array(depth); return;
      case '"': scan_string(); return;
      default: scan_token();
    }
  }

  void scan_object(std::size_t depth) {
    const std::size_t ordinal = objects_++;
    ++pos_;
    skip_space();
    if (at('}')) {
      ++pos_;
      return;
    }
    for (std::size_t index = 0;; ++index) {
      skip_space();
      if (!at('"')) fail_expected("a string key");
      const std::size_t key_at = pos_;
      const std::string_view key = scan_string();
      if (target_ && target_->object_ordinal == ordinal && target_->member_index == index) {
        throw stop{finding{key_at, {}, pointer()}, true};
      }
      skip_space();
      if (!at(':')) fail_expected("':' after the key");
      ++pos_;
      skip_space();
      path_.emplace_back(key);
      scan_value(depth + 1);
      path_.pop_back();
      skip_space();
      if (at(',')) {
        ++pos_;
        continue;
      }
      if (at('}')) {
        ++pos_;
        return;
      }
      fail_expected("',' or '}' after an object member");
    }
  }

  void scan_array(std::size_t depth) {
    ++pos_;
    skip_space();
    if (at(']')) {
      ++pos_;
      return;
    }
    for (std::size_t index = 0;; ++index) {
      skip_space();
      path_.push_back(std::to_string(index));
      scan_value(depth + 1);
      path_.pop_back();
      skip_space();
      if (at(',')) {
        ++pos_;
        continue;
      }
      if (at(']')) {
        ++pos_;
        return;
      }
      fail_expected("',' or ']' after an array element");
    }
  }

  // Returns the raw text between the quotes.
  std::string_view scan_string() {
    const std::size_t open = pos_++;
    const auto* p = reinterpret_cast<const unsigned char*>(text_.data());
    while (true) {
      if (pos_ >= text_.size()) fail(open, "unterminated string");
      const unsigned char c = p[pos_];
      if (c == '"') {
        ++pos_;
        return text_.substr(open + 1, pos_ - open - 2);
      }
      if (c == '\\') {
        scan_escape(open);
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "%04X", c);
        std::string message = std::string("unescaped control character U+") + buf + " in a string";
        // A raw newline usually means the closing quote is missing, so point back at the opening one.
        if (c == '\n')
          message += "; is the string at " + json_position(text_, open, false) + " missing its closing quote?";
        fail(pos_, std::move(message));
      } else if (c >= 0x80) {
        char32_t cp = 0;
        const std::size_t len = utf8_decode(p + pos_, text_.size() - pos_, cp);
        if (len == 0) fail(pos_, "invalid UTF-8 in a string (" + describe(pos_) + ")");
        pos_ += len;
      } else {
        ++pos_;
      }
    }
  }

  void scan_escape(std::size_t open) {
    const std::size_t backslash = pos_++;
    if (pos_ >= text_.size()) fail(open, "unterminated string");
    switch (text_[pos_]) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't': ++pos_; return;
      case 'u': break;
      default: fail(backslash, "invalid escape " + shown(text_.substr(backslash, 2)) + " in a string");
    }
    const unsigned unit = hex4(backslash);
    if (unit >= 0xDC00 && unit <= 0xDFFF) fail(backslash, "unpaired UTF-16 low surrogate in a \\u escape");
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") fail(backslash, "unpaired UTF-16 high surrogate in a \\u escape");
      const std::size_t second = pos_++;
      const unsigned low = hex4(second);
      if (low < 0xDC00 || low > 0xDFFF) fail(backslash, "unpaired UTF-16 high surrogate in a \\u escape");
    }
  }
  // Reads the four hex digits after the 'u' at pos_; the escape started at `backslash`.
  unsigned hex4(std::size_t backslash) {
    ++pos_;
    unsigned v = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      if (pos_ >= text_.size()) fail(backslash, "truncated \\u escape");
      const char c = text_[pos_];
      unsigned d;
      if (c >= '0' && c <= '9') {
        d = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<unsigned>(c - 'A' + 10);
      } else {
        fail(backslash, "invalid \\u escape (4 hex digits needed)");
      }
      v = v * 16 + d;
    }
    return v;
  }

  // A literal or number: the whole run up to the next delimiter, so that `tru`, `01` and `1.5x` are
  // reported at their first byte rather than at the byte where the grammar first diverges.
  void scan_token() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && !is_delimiter(text_[pos_])) ++pos_;
    const std::string_view token = text_.substr(start, pos_ - start);
    if (token.empty()) {
      pos_ = start;
      fail_expected("a value");
    }
    if (token == "true" || token == "false" || token == "null") return;
    if (token[0] == '-' || is_digit(token[0])) {
      check_number(token, start);
      return;
    }
    fail(start, "invalid literal " + shown(token));
  }

  void check_number(std::string_view t, std::size_t start) {
    std::size_t i = 0;
    auto digits = [&] {
      const std::size_t from = i;
      while (i < t.size() && is_digit(t[i])) ++i;
      return i > from;
    };
    bool ok = true;
    if (t[i] == '-') ++i;
    if (i < t.size() && t[i] == '0') {
      ++i;
    } else {
      ok = digits();
    }
    if (ok && i < t.size() && t[i] == '.') {
      ++i;
      ok = digits();
    }
    if (ok && i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      ++i;
      if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
      ok = digits();
    }
    if (!ok || i != t.size()) fail(start, "invalid number " + shown(t));
    // The grammar is fine; let simdjson itself judge the range so both always agree.
    const simdjson::padded_string alone(t);
    simdjson::dom::element ignored;
    if (number_parser_.parse(alone).get(ignored) != simdjson::SUCCESS) {
      if (t.find_first_of(".eE") == std::string_view::npos) {
        fail(start, "integer " + std::string(t) + " does not fit in 64 bits");
      }
      fail(start, "number " + std::string(t) + " is out of the range of a double");
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t objects_ = 0;
  std::vector<std::string> path_;
  std::optional<target> target_;
  simdjson::dom::parser number_parser_;
};

/// Converts a simdjson DOM tree into a `json::value`, rejecting duplicate keys.
class json_dom_converter {
 public:
  json_dom_converter(std::string_view text, std::string_view source) noexcept : text_(text), source_(source) {}

  /// Throws, as `convert` would, at the first repeated key of `e`'s objects, without building anything.
  void check(simdjson::dom::element e) {
    switch (e.type()) {
      case simdjson::dom::element_type::ARRAY:
      {
        // A named copy: value_unsafe() refers into a temporary that a range-for would outlive.
        const simdjson::dom::array a = e.get_array().value_unsafe();
        for (simdjson::dom::element x : a) check(x);
        return;
      }
      case simdjson::dom::element_type::OBJECT: {
        const std::size_t ordinal = objects_++;
        const simdjson::dom::object o = e.get_object().value_unsafe();
        if (o.size() > 16) check_keys(o, ordinal);
        std::size_t index = 0;
        for (const simdjson::dom::key_value_pair kv : o) {
          if (o.size() <= 16) {
            std::size_t j = 0;
            for (const simdjson::dom::key_value_pair earlier : o) {
              if (j++ == index) break;
              if (earlier.key == kv.key) throw_duplicate(ordinal, index, kv.key);
            }
          }
          check(kv.value);
          ++index;
        }
        return;
      }
      default: return;
    }
  }

  json::value convert(simdjson::dom::element e) {
    switch (e.type()) {
      case simdjson::dom::element_type::ARRAY: {
        const simdjson::dom::array a = e.get_array().value_unsafe();
        json::array_type out;
        out.reserve(a.size());
        for (simdjson::dom::element x : a) out.push_back(convert(x));
        return json::value(std::move(out));
      }
      case simdjson::dom::element_type::OBJECT: {
        // Numbered before the members are converted: pre-order, the order json_scanner counts '{'.
        const std::size_t ordinal = objects_++;
        const simdjson::dom::object o = e.get_object().value_unsafe();
        json::object_type out;
        out.reserve(o.size());
        // Large objects (tree metadata of big models) would make the pairwise check quadratic: their
        // keys go through a hash set once, before any member is converted, and the first repeat in
        // document order is reported, as the pairwise check does.
        if (o.size() > 16) check_keys(o, ordinal);
        for (const simdjson::dom::key_value_pair kv : o) {
          if (o.size() <= 16)
            for (const auto& m : out)
              if (m.first == kv.key) throw_duplicate(ordinal, out.size(), kv.key);
          out.emplace_back(std::string(kv.key), convert(kv.value));
        }
        return json::value(std::move(out));
      }
      case simdjson::dom::element_type::INT64: return json::value(e.get_int64().value_unsafe());
      case simdjson::dom::element_type::UINT64: return json::value(e.get_uint64().value_unsafe());
      case simdjson::dom::element_type::DOUBLE: return json::value(e.get_double().value_unsafe());
      case simdjson::dom::element_type::STRING: return json::value(e.get_string().value_unsafe());
      case simdjson::dom::element_type::BOOL: return json::value(e.get_bool().value_unsafe());
      case simdjson::dom::element_type::NULL_VALUE: return json::value();
    }
    return json::value();
  }

 private:
  void check_keys(const simdjson::dom::object& o, std::size_t ordinal) const {
    // In document order: the first key already seen is the first repeat, the one to report. An
    // open-addressing table of the keys' indices, at most half full: no allocation per key, as a
    // node-based set made (an object of 100,000 parameters is common).
    std::vector<std::string_view> keys;
    keys.reserve(o.size());
    std::vector<std::uint32_t> slots(std::bit_ceil(2 * o.size()), 0);  // 0: empty, else index + 1
    const std::size_t mask = slots.size() - 1;
    for (const simdjson::dom::key_value_pair kv : o) {
      std::size_t h = std::hash<std::string_view>{}(kv.key) & mask;
      for (; slots[h] != 0; h = (h + 1) & mask)
        if (keys[slots[h] - 1] == kv.key) throw_duplicate(ordinal, keys.size(), kv.key);
      keys.push_back(kv.key);
      slots[h] = static_cast<std::uint32_t>(keys.size());
    }
  }
  [[noreturn]] void throw_duplicate(std::size_t ordinal, std::size_t index, std::string_view key) const {
    const auto where = json_scanner(text_).locate_member(ordinal, index);
    std::string message(source_);
    message += ": ";
    if (where) message += json_position(text_, where->offset) + ": ";
    message += "duplicate key " + json_quote(key);
    if (where) message += where->pointer.empty() ? " in the top-level object" : " in object " + where->pointer;
    throw error(errc::corrupted, std::move(message));
  }

  std::string_view text_;
  std::string_view source_;
  std::size_t objects_ = 0;
};

/// Parses `size` bytes at `data`, which must be followed by `simdjson::SIMDJSON_PADDING` readable bytes,
/// into `parser`'s DOM; throws the errors `json::parse` documents, except for duplicate keys.
inline simdjson::dom::element json_parse_dom(simdjson::dom::parser& parser, const char* data, std::size_t size,
                                             const std::string& label) {
  const std::string_view text(data, size);
  simdjson::dom::element root;
  const simdjson::error_code code = parser.parse(data, size, false).get(root);
  if (code == simdjson::SUCCESS) return root;
  if (code == simdjson::MEMALLOC) throw std::bad_alloc();
  std::string tail =
      " (simdjson " + std::string(simdjson_error_name(code)) + ": " + simdjson::error_message(code) + ")";
  if (code == simdjson::CAPACITY) {
    throw error(errc::unsupported, label + ": JSON text of " + std::to_string(size) + " bytes is too large" + tail);
  }
  json_scanner scanner(text);
  std::optional<json_scanner::finding> where;
  // simdjson checks UTF-8 over the whole input first; report that byte, not an earlier syntax error.
  if (code == simdjson::UTF8_ERROR) where = scanner.first_invalid_utf8();
  if (!where) where = scanner.first_error();
  std::string message = label + ": ";
  if (where) message += json_position(text, where->offset) + ": ";
  message += "invalid JSON";
  if (where) message += ": " + where->message;
  throw error(errc::corrupted, message + tail);
}

inline std::string json_label(std::string_view source) { return source.empty() ? std::string("json") : std::string(source); }

/// Parses `size` bytes at `data`, which must be followed by `simdjson::SIMDJSON_PADDING` readable bytes.
inline json::value json_parse_padded(const char* data, std::size_t size, std::string_view source) {
  const std::string label = json_label(source);
  simdjson::dom::parser parser;
  const simdjson::dom::element root = json_parse_dom(parser, data, size, label);
  return json_dom_converter(std::string_view(data, size), label).convert(root);
}

}  // namespace cairn::detail

namespace cairn::json {

/// Parses one JSON document. `source_name` (e.g. `_METADATA` or a path) starts every error message.
/// Integers that fit int64 become int64, larger ones up to UINT64_MAX uint64; numbers with a fraction or
/// exponent become doubles (correctly rounded; underflow gives 0). Integers beyond 64 bits are rejected
/// rather than rounded, because silently changing a stored number is worse than refusing the file.
/// \throws cairn::error (errc::corrupted) if `text` is empty, not UTF-8, not exactly one JSON value, nested
///   deeper than 1024, has an integer beyond 64 bits or a double beyond ±1.8e308, or repeats a key in an
///   object; the message gives line, column and byte offset of the first offending byte
/// \throws cairn::error (errc::unsupported) if `text` exceeds simdjson's 4 GiB limit
inline value parse(std::string_view text, std::string_view source_name) {
  // simdjson reads up to SIMDJSON_PADDING bytes past the end of the text, so it needs a padded copy.
  const simdjson::padded_string padded(text);
  if (padded.data() == nullptr) throw std::bad_alloc();
  return detail::json_parse_padded(padded.data(), text.size(), source_name);
}

/// A read-only view of one value of a `json::document`: reading it copies nothing, so large documents
/// (the `_METADATA` of a model of 100,000 leaves) are read without building a `json::value` of them.
/// Accessors answer "not of that kind" with an empty optional; callers that need the exact error
/// read the text again through `json::parse`. Valid while its document lives.
class view {
 public:
  bool is_null() const noexcept { return e_.type() == simdjson::dom::element_type::NULL_VALUE; }
  bool is_object() const noexcept { return e_.type() == simdjson::dom::element_type::OBJECT; }
  bool is_array() const noexcept { return e_.type() == simdjson::dom::element_type::ARRAY; }
  /// The string, if this is one.
  std::optional<std::string_view> string() const noexcept {
    if (e_.type() != simdjson::dom::element_type::STRING) return std::nullopt;
    return e_.get_string().value_unsafe();
  }
  /// The integer, if this is an integer that fits int64 (not a double, even an integral one).
  std::optional<std::int64_t> int64() const noexcept {
    if (e_.type() != simdjson::dom::element_type::INT64) return std::nullopt;
    return e_.get_int64().value_unsafe();
  }
  /// The boolean, if this is one.
  std::optional<bool> boolean() const noexcept {
    if (e_.type() != simdjson::dom::element_type::BOOL) return std::nullopt;
    return e_.get_bool().value_unsafe();
  }
  /// The number of elements of an array or members of an object; 0 for any other value.
  std::size_t size() const noexcept {
    if (is_array()) return e_.get_array().value_unsafe().size();
    if (is_object()) return e_.get_object().value_unsafe().size();
    return 0;
  }
  /// The member named `key` of an object; empty if this is not an object or has no such member.
  std::optional<view> find(std::string_view key) const noexcept {
    if (!is_object()) return std::nullopt;
    const simdjson::dom::object o = e_.get_object().value_unsafe();
    for (const simdjson::dom::key_value_pair kv : o)
      if (kv.key == key) return view(kv.value);
    return std::nullopt;
  }
  /// Calls `f(key, value)` for each member of an object, in document order, while `f` returns true.
  /// \returns false if this is not an object or `f` stopped
  template <class F>
  bool for_each_member(F&& f) const {
    if (!is_object()) return false;
    const simdjson::dom::object o = e_.get_object().value_unsafe();
    for (const simdjson::dom::key_value_pair kv : o)
      if (!f(std::string_view(kv.key), view(kv.value))) return false;
    return true;
  }
  /// Calls `f(value)` for each element of an array while `f` returns true.
  /// \returns false if this is not an array or `f` stopped
  template <class F>
  bool for_each_element(F&& f) const {
    if (!is_array()) return false;
    const simdjson::dom::array a = e_.get_array().value_unsafe();
    for (simdjson::dom::element x : a)
      if (!f(view(x))) return false;
    return true;
  }
  /// The value as a `json::value` (for small parts of a large document).
  value to_value() const { return detail::json_dom_converter({}, {}).convert(e_); }

 private:
  friend class document;
  explicit view(simdjson::dom::element e) noexcept : e_(e) {}
  simdjson::dom::element e_;
};

struct padded_text;

/// A parsed JSON document read in place through `view`s.
/// \par Thread safety
/// Views of one document may be read from several threads at once.
class document {
 public:
  /// Parses `text`, with exactly `json::parse`'s checks and error messages (duplicate keys included).
  /// 	hrows cairn::error as `json::parse`
  document(std::string_view text, std::string_view source_name) {
    const simdjson::padded_string padded(text);
    if (padded.data() == nullptr) throw std::bad_alloc();
    const std::string label = detail::json_label(source_name);
    root_ = detail::json_parse_dom(parser_, padded.data(), text.size(), label);
    detail::json_dom_converter(text, label).check(root_);
  }
  /// Parses `text` where it lies (see `read_padded_file`), which the document keeps.
  /// \throws cairn::error as `json::parse`
  document(padded_text text, std::string_view source_name);
  document(const document&) = delete;
  document& operator=(const document&) = delete;

  /// The top-level value.
  view root() const noexcept { return view(root_); }
  /// The text parsed, when the document was given it as `padded_text` (empty otherwise).
  std::string_view text() const noexcept { return {text_.get(), text_size_}; }

 private:
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
  std::unique_ptr<char[]> text_;  // the padded text parsed in place, when given one
  std::size_t text_size_ = 0;
};

/// A file's contents followed by `simdjson::SIMDJSON_PADDING` zero bytes, as the parser needs them.
struct padded_text {
  std::unique_ptr<char[]> data;
  std::size_t size = 0;
  std::string_view view() const noexcept { return {data.get(), size}; }
};

/// Reads the file at `path` straight into padded memory: a large metadata file is neither copied nor
/// faulted into fresh memory a second time.
/// \throws cairn::error (errc::not_found) if the file (or a directory on its path) does not exist
/// \throws cairn::error (errc::io) if the file cannot be opened or read (including when it is a directory)
inline padded_text read_padded_file(const std::filesystem::path& path) {
  const std::string name = detail::json_quote(path.native());
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) throw error(errc::not_found, "open " + name + ": " + std::strerror(e));
    throw io_error("open " + name, e);
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct ::stat st {};
  if (::fstat(fd, &st) != 0) throw io_error("stat " + name, errno);
  if (S_ISDIR(st.st_mode)) throw io_error("read " + name, EISDIR);
  // The size is only a hint, since pipes and /proc files report 0 and a file may change while it is read.
  std::size_t capacity = static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 0) + 1;
  padded_text text;
  // Not make_unique: value-initialising the buffer would touch every byte twice.
  text.data.reset(new char[capacity + simdjson::SIMDJSON_PADDING]);
  while (true) {
    if (text.size == capacity) {
      const std::size_t grown = capacity * 2;
      std::unique_ptr<char[]> bigger(new char[grown + simdjson::SIMDJSON_PADDING]);
      std::memcpy(bigger.get(), text.data.get(), text.size);
      text.data = std::move(bigger);
      capacity = grown;
    }
    const ::ssize_t n = ::read(fd, text.data.get() + text.size, capacity - text.size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error("read " + name, errno);
    }
    if (n == 0) break;
    text.size += static_cast<std::size_t>(n);
  }
  std::memset(text.data.get() + text.size, 0, simdjson::SIMDJSON_PADDING);
  return text;
}

/// Reads and parses the file at `path`; error messages name the path.
/// \throws as `read_padded_file`
/// \throws cairn::error (errc::corrupted) if its contents are not valid JSON, as `parse`
inline value parse_file(const std::filesystem::path& path) {
  const padded_text text = read_padded_file(path);
  return detail::json_parse_padded(text.data.get(), text.size, detail::json_quote(path.native()));
}

inline document::document(padded_text text, std::string_view source_name)
    : text_(std::move(text.data)), text_size_(text.size) {
  const std::string label = detail::json_label(source_name);
  root_ = detail::json_parse_dom(parser_, text_.get(), text.size, label);
  detail::json_dom_converter(std::string_view(text_.get(), text.size), label).check(root_);
}

}  // namespace cairn::json
