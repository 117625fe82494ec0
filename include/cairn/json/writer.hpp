// SPDX-License-Identifier: Apache-2.0
/// \file
/// JSON text output: `cairn::json::writer` streams a document event by event (no `value` tree needed for
/// large documents), and `to_string` writes a whole `value` through it. Output always reads back with
/// `json::parse` to an equal value: integers exactly, doubles as their shortest round-trip text (always with
/// a `.` or an exponent, so `1.0` stays a double), strings as validated UTF-8. The layouts cover what
/// Orbax's files need: TensorStore's compact sorted form and Python `json.dumps` (spaced or indented).
#pragma once

#include <algorithm>  // std::sort
#include <charconv>   // std::to_chars
#include <cmath>      // std::isfinite, std::isnan
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/json/value.hpp>

namespace cairn::json {

/// How `writer` and `to_string` lay out a document. The defaults give compact JSON in member order.
struct write_options {
  /// Writes object members in ascending byte order of their keys (TensorStore's files; Python `sort_keys`).
  bool sort_keys = false;
  /// Below 0: one line. Otherwise one element per line, indented by `indent` spaces per level, with `": "`
  /// after keys (Python `json.dumps(indent=n)`); empty containers stay `[]` and `{}`.
  int indent = -1;
  /// In one-line output, writes `", "` and `": "` like Python `json.dumps` with default separators.
  bool spaced = false;
  /// Escapes every character outside printable ASCII as `\uxxxx` (Python's default `ensure_ascii`).
  bool ascii_only = false;
};

/// Streams one JSON document into a string.
/// Calls must form one well-formed document: `key()` before each value inside an object, every
/// `begin_*` closed by the matching `end_*`. Misuse throws before anything is written, so a writer
/// that threw is still consistent. Example:
/// `writer w; w.begin_object().key("shape").begin_array().value(8).end_array().end_object();`
/// With `sort_keys`, streamed keys must already come in ascending order (a streaming writer cannot
/// reorder them); nested `json::value` objects are sorted by the writer itself.
/// \par Thread safety
/// Distinct objects may be used concurrently; one object needs external synchronisation.
class writer {
 public:
  /// Starts an empty document.
  explicit writer(write_options options = {}) : options_(options) {}

  /// Opens an object. \throws cairn::error (errc::invalid_argument) if no value may start here
  writer& begin_object() {
    before_value();
    out_.push_back('{');
    frames_.emplace_back().object = true;
    return *this;
  }
  /// Closes the innermost object.
  /// \throws cairn::error (errc::invalid_argument) if it is not an object or a key awaits its value
  writer& end_object() { return end_container(true); }
  /// Opens an array. \throws cairn::error (errc::invalid_argument) if no value may start here
  writer& begin_array() {
    before_value();
    out_.push_back('[');
    frames_.emplace_back();
    return *this;
  }
  /// Closes the innermost array. \throws cairn::error (errc::invalid_argument) if it is not an array
  writer& end_array() { return end_container(false); }

  /// Writes the key of the next object member.
  /// \throws cairn::error (errc::invalid_argument) if not directly inside an object, if a key already awaits
  ///   its value, if `k` is not valid UTF-8, or with `sort_keys` if `k` is not greater than the previous key
  writer& key(std::string_view k) {
    if (frames_.empty() || !frames_.back().object) misuse("key() outside an object");
    frame& f = frames_.back();
    if (f.key_pending) misuse("key() twice without a value");
    if (options_.sort_keys && f.count > 0 && !(f.last_key < k)) {
      misuse(f.last_key == k ? "duplicate key " + detail::json_quote(k)
                             : "key " + detail::json_quote(k) + " after " + detail::json_quote(f.last_key) +
                                   " breaks sort_keys order");
    }
    const std::size_t mark = out_.size();
    const std::size_t count = f.count;
    try {
      separate(f);
      append_string(k, mark);
    } catch (...) {
      f.count = count;
      throw;
    }
    out_.push_back(':');
    if (options_.indent >= 0 || options_.spaced) out_.push_back(' ');
    if (options_.sort_keys) f.last_key.assign(k);
    f.key_pending = true;
    return *this;
  }

  /// Writes null. \throws cairn::error (errc::invalid_argument) if no value may start here
  writer& value(std::nullptr_t) {
    before_value();
    out_ += "null";
    return *this;
  }
  /// Writes true or false (a template so that pointers never decay to bool).
  template <std::same_as<bool> B>
  writer& value(B b) {
    before_value();
    out_ += b ? "true" : "false";
    return *this;
  }
  /// Writes an integer exactly.
  template <detail::json_integer T>
  writer& value(T v) {
    before_value();
    char buf[24];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, static_cast<std::size_t>(res.ptr - buf));
    return *this;
  }
  /// Writes a double as its shortest round-trip text (see `detail::json_append_double`).
  /// \throws cairn::error (errc::invalid_argument) if `d` is NaN or infinite: JSON cannot express them,
  ///   and each format encodes them its own way (zarr uses the strings "NaN", "Infinity")
  writer& value(double d) {
    if (!std::isfinite(d)) {
      misuse(std::string("cannot write non-finite double ") + (std::isnan(d) ? "NaN"
                                                               : d > 0       ? "Infinity"
                                                                             : "-Infinity"));
    }
    before_value();
    detail::json_append_double(out_, d);
    return *this;
  }
  /// Writes a string. \throws cairn::error (errc::invalid_argument) if `s` is not valid UTF-8
  writer& value(std::string_view s) {
    const std::size_t mark = out_.size();
    check_value_allowed();
    const frame_state saved = save_state();
    before_value();
    try {
      append_string(s, mark);
    } catch (...) {
      restore_state(saved);
      throw;
    }
    return *this;
  }
  /// Writes `text`, which is already one JSON value in this writer's layout, as it is: a value that
  /// repeats across thousands of members is rendered once and copied (e.g. `_sharding`'s values).
  /// \pre `text` is exactly one well-formed JSON value (not checked: it was written by a `writer`).
  /// \throws cairn::error (errc::invalid_argument) if no value may start here
  writer& raw_value(std::string_view text) {
    before_value();
    out_.append(text);
    return *this;
  }
  writer& value(const std::string& s) { return value(std::string_view(s)); }
  writer& value(const char* s) { return value(std::string_view(s)); }
  /// Writes a whole value (objects sorted when `sort_keys`).
  /// \throws cairn::error (errc::invalid_argument) if `v` holds a non-finite double or invalid UTF-8, or
  ///   with `sort_keys` a duplicate key; the writer is then rolled back to before this call
  writer& value(const json::value& v) {
    check_value_allowed();
    const std::size_t mark = out_.size();
    const frame_state saved = save_state();
    const std::size_t depth = frames_.size();
    try {
      write_value(v);
    } catch (...) {
      frames_.resize(depth);
      restore_state(saved);
      out_.resize(mark);
      throw;
    }
    return *this;
  }

  /// Returns true when exactly one top-level value has been written and closed.
  bool complete() const noexcept { return done_ && frames_.empty(); }
  /// Returns the text written so far (possibly an incomplete document).
  const std::string& str() const noexcept { return out_; }
  /// Returns the finished document and leaves the writer empty, ready for a new document.
  /// \throws cairn::error (errc::invalid_argument) if the document is not complete
  std::string take() {
    if (!complete()) {
      misuse(frames_.empty() ? std::string("take() on an empty document")
                             : "take() with " + std::to_string(frames_.size()) + " unclosed array(s)/object(s)");
    }
    done_ = false;
    return std::exchange(out_, std::string());
  }

 private:
  struct frame {
    bool object = false;
    bool key_pending = false;
    std::size_t count = 0;
    std::string last_key;  // only kept with sort_keys
  };
  struct frame_state {
    bool key_pending = false;
    std::size_t count = 0;
    bool done = false;
  };

  [[noreturn]] static void misuse(const std::string& what) {
    throw error(errc::invalid_argument, "json writer: " + what);
  }

  void check_value_allowed() const {
    if (frames_.empty()) {
      if (done_) misuse("a second top-level value");
    } else if (frames_.back().object && !frames_.back().key_pending) {
      misuse("a value inside an object without key()");
    }
  }
  frame_state save_state() const {
    if (frames_.empty()) return {false, 0, done_};
    return {frames_.back().key_pending, frames_.back().count, done_};
  }
  void restore_state(const frame_state& s) {
    done_ = s.done;
    if (!frames_.empty()) {
      frames_.back().key_pending = s.key_pending;
      frames_.back().count = s.count;
    }
  }

  void newline_indent(std::size_t depth) {
    out_.push_back('\n');
    out_.append(depth * static_cast<std::size_t>(options_.indent), ' ');
  }
  // Writes the separator before a new array element or object key.
  void separate(frame& f) {
    if (f.count > 0) {
      out_.push_back(',');
      if (options_.indent < 0 && options_.spaced) out_.push_back(' ');
    }
    if (options_.indent >= 0) newline_indent(frames_.size());
    ++f.count;
  }
  void before_value() {
    check_value_allowed();
    if (frames_.empty()) {
      done_ = true;
      return;
    }
    frame& f = frames_.back();
    if (f.object) {
      f.key_pending = false;
    } else {
      separate(f);
    }
  }
  writer& end_container(bool object) {
    const char* name = object ? "end_object()" : "end_array()";
    if (frames_.empty() || frames_.back().object != object) {
      misuse(std::string(name) + " without a matching " + (object ? "begin_object()" : "begin_array()"));
    }
    if (frames_.back().key_pending) misuse(std::string(name) + " right after key()");
    const bool had_items = frames_.back().count > 0;
    frames_.pop_back();
    if (had_items && options_.indent >= 0) newline_indent(frames_.size());
    out_.push_back(object ? '}' : ']');
    return *this;
  }
  // Appends a quoted string; on invalid UTF-8 cuts the output back to `mark` and throws.
  void append_string(std::string_view s, std::size_t mark) {
    const std::size_t bad = detail::json_append_quoted(out_, s, options_.ascii_only, false);
    if (bad != std::string_view::npos) {
      out_.resize(mark);
      misuse("string is not valid UTF-8 (byte " + std::to_string(bad) + " of " + detail::json_quote(s) + ")");
    }
  }

  void write_value(const json::value& v) {
    switch (v.kind()) {
      case kind::null: value(nullptr); break;
      case kind::boolean: value(v.as_bool()); break;
      case kind::int64: value(v.as_int64()); break;
      case kind::uint64: value(v.as_uint64()); break;
      case kind::float64: value(v.as_double()); break;
      case kind::string: value(std::string_view(v.as_string())); break;
      case kind::array:
        begin_array();
        for (const auto& e : v.as_array()) write_value(e);
        end_array();
        break;
      case kind::object: {
        begin_object();
        const auto& members = v.as_object();
        if (options_.sort_keys) {
          std::vector<const member*> sorted;
          sorted.reserve(members.size());
          for (const auto& m : members) sorted.push_back(&m);
          std::sort(sorted.begin(), sorted.end(), [](const member* a, const member* b) { return a->first < b->first; });
          for (const member* m : sorted) {
            key(m->first);
            write_value(m->second);
          }
        } else {
          for (const auto& m : members) {
            key(m.first);
            write_value(m.second);
          }
        }
        end_object();
        break;
      }
    }
  }

  write_options options_;
  std::string out_;
  std::vector<frame> frames_;
  bool done_ = false;  // a top-level value has been started
};

/// Appends `s` to `out` as a quoted JSON string, exactly as a `writer` (without `ascii_only`) writes it,
/// for printers of large fixed-shape documents that lay out the rest themselves (a `writer` checks every
/// event, which cost more than the text for files of a million small entries).
/// \throws cairn::error (errc::invalid_argument) naming `what` and the offending byte if `s` is not valid
///   UTF-8; `out` is then left with a partial string.
inline void append_quoted(std::string& out, std::string_view s, std::string_view what) {
  const std::size_t bad = detail::json_append_quoted(out, s, false, false);
  if (bad != std::string_view::npos)
    throw error(errc::invalid_argument, std::string(what) + " " + detail::json_quote(s) + " is not valid UTF-8 (byte " +
                                            std::to_string(bad) + ")");
}

/// For those printers: once the first of `entries` entries is printed (it began at `first_begin`),
/// grows `out` once to about the whole document, rather than by doubling (a copy and fresh pages each).
inline void reserve_like_first(std::string& out, std::size_t first_begin, std::size_t entries) {
  if (entries > 1) out.reserve(out.size() + (out.size() - first_begin + 2) * (entries - 1) / 8 * 9 + 256);
}

/// Returns `v` as JSON text laid out per `options`.
/// \post `json::parse(to_string(v, o), ...) == v`, with doubles bit-identical (including -0.0)
/// \throws cairn::error (errc::invalid_argument) if `v` holds a non-finite double or a string that is not
///   valid UTF-8, or with `sort_keys` an object with a duplicate key
inline std::string to_string(const value& v, write_options options = {}) {
  writer w(options);
  w.value(v);
  return w.take();
}

}  // namespace cairn::json
