// SPDX-License-Identifier: Apache-2.0
/// \file
/// `_METADATA`, a PyTree item's tree metadata (orbax-format.md §1.6): one entry per leaf or empty
/// node with its key path (`key_metadata`: key type 1 = sequence index, 2 = dict key), its value type
/// (`jax.Array`, `np.ndarray`, `scalar`, `string`, or the empty nodes `Dict`, `List`, `Tuple`, `None`)
/// and, for arrays, the write shape; plus the storage flags. The structure is recovered from
/// `key_metadata`, never by splitting names; the tuple-repr keys are only unique identifiers.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/core/key_path.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/core/utf8.hpp>
#include <cairn/json/reader.hpp>
#include <cairn/json/value.hpp>
#include <cairn/json/writer.hpp>

namespace cairn {

/// Orbax's value typestrs.
namespace value_type {
inline constexpr std::string_view jax_array = "jax.Array";
inline constexpr std::string_view np_ndarray = "np.ndarray";
inline constexpr std::string_view scalar = "scalar";
inline constexpr std::string_view string = "string";
inline constexpr std::string_view dict = "Dict";
inline constexpr std::string_view list = "List";
inline constexpr std::string_view tuple = "Tuple";
inline constexpr std::string_view none = "None";
inline constexpr std::string_view named_tuple = "NamedTuple";

/// True for the typestrs of nodes stored only in `_METADATA` (no data).
inline bool is_empty_node(std::string_view t) {
  return t == dict || t == list || t == tuple || t == none || t == named_tuple;
}
}  // namespace value_type

/// One `_METADATA` entry.
struct tree_metadata_entry {
  key_path path;
  std::string value_type;
  bool skip_deserialize = false;
  std::optional<std::vector<index_t>> write_shape;

  friend bool operator==(const tree_metadata_entry&, const tree_metadata_entry&) = default;
};

/// The contents of `_METADATA`.
struct tree_metadata {
  std::vector<tree_metadata_entry> entries;
  std::optional<bool> use_ocdbt;  ///< absent: decided by the presence of `manifest.ocdbt`
  bool use_zarr3 = false;
  bool store_array_data_equal_to_fill_value = false;
  json::value custom_metadata;  ///< null unless the user set it

  friend bool operator==(const tree_metadata&, const tree_metadata&) = default;
};

namespace detail {
/// Appends Python's `repr` of a str, closely enough for a unique identifier: single quotes unless the
/// text holds a single quote and no double quote; backslash, quote and control characters escaped.
inline void append_python_repr(std::string& out, std::string_view s) {
  // Parameter names are nearly always plain (printable ASCII, no quote or backslash): copied at once.
  bool plain = true;
  for (unsigned char c : s) plain &= c >= 0x20 && c != 0x7F && c != '\'' && c != '"' && c != '\\';
  if (plain) {
    out += '\'';
    out += s;
    out += '\'';
    return;
  }
  const bool dq = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
  const char q = dq ? '"' : '\'';
  out += q;
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(q)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F) {
      static const char* d = "0123456789abcdef";
      out += "\\x";
      out += d[c >> 4];
      out += d[c & 15];
    } else out += static_cast<char>(c);
  }
  out += q;
}

/// Appends the `tree_metadata` key of `p` (see `tree_metadata_key`).
inline void append_tree_metadata_key(std::string& out, const key_path& p) {
  out += '(';
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (i) out += ", ";
    if (p[i].is_index()) append_python_repr(out, p[i].str());
    else append_python_repr(out, p[i].name());
  }
  if (p.size() == 1) out += ',';
  out += ')';
}
}  // namespace detail

/// The `tree_metadata` key of a path: Python's repr of the tuple of key strings, e.g. `('b', 'c')`.
inline std::string tree_metadata_key(const key_path& p) {
  std::string s;
  detail::append_tree_metadata_key(s, p);
  return s;
}

namespace detail {
/// Reads `_METADATA` text laid out as Orbax and cairn write it, in one pass over the text and without
/// building any DOM: a model's `_METADATA` is tens of MB, and simdjson's tape and string copies of it
/// were three times its size in fresh pages, followed by two more walks (the duplicate-key check and the
/// entries). Accepts only a strict subset of JSON: the five known top-level members, entries of exactly
/// `key_metadata` and `value_metadata` with their known fields (each at most once), strings without
/// escapes or control characters (UTF-8 checked), non-negative integers without fraction or exponent,
/// and any `custom_metadata`, which `json::parse` checks on its own. Every text it accepts is therefore
/// valid JSON without duplicate keys and reads exactly as the DOM readers read it; at anything else it
/// returns false, leaving `m` partly filled, and they read the text again.
class tree_metadata_fast_reader {
 public:
  explicit tree_metadata_fast_reader(std::string_view text) noexcept : p_(text.data()), end_(text.data() + text.size()) {}

  bool read(tree_metadata& m) {
    unsigned seen = 0;
    if (!eat('{')) return false;
    const bool ok = members([&](std::string_view name) {
      const unsigned bit = name == "tree_metadata"                          ? 1u
                           : name == "use_ocdbt"                            ? 2u
                           : name == "use_zarr3"                            ? 4u
                           : name == "store_array_data_equal_to_fill_value" ? 8u
                           : name == "custom_metadata"                      ? 16u
                                                                            : 0u;
      if (bit == 0 || (seen & bit)) return false;
      seen |= bit;
      switch (bit) {
        case 1: return tree(m);
        case 2: return flag([&](bool b) { m.use_ocdbt = b; });
        case 4: return flag([&](bool b) { m.use_zarr3 = b; });
        case 8: return flag([&](bool b) { m.store_array_data_equal_to_fill_value = b; });
        default: return custom(m);
      }
    });
    if (!ok || !(seen & 1u)) return false;
    space();
    return p_ == end_;
  }

 private:
  struct raw_key {
    std::string_view text;
    bool index;
  };

  void space() noexcept {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool eat(char c) noexcept {
    space();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  // After '{': `one(name)` reads each member's value.
  template <class F>
  bool members(F&& one) {
    if (eat('}')) return true;
    do {
      std::string_view name;
      if (!string(name) || !eat(':') || !one(name)) return false;
    } while (eat(','));
    return eat('}');
  }
  // After '[': `one()` reads each element.
  template <class F>
  bool elements(F&& one) {
    if (eat(']')) return true;
    do {
      if (!one()) return false;
    } while (eat(','));
    return eat(']');
  }
  bool string(std::string_view& out) noexcept {
    if (!eat('"')) return false;
    const char* begin = p_;
    bool ascii = true;
    for (;; ++p_) {
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') break;
      if (c < 0x20 || c == '\\') return false;
      ascii &= c < 0x80;
    }
    out = std::string_view(begin, static_cast<std::size_t>(p_ - begin));
    ++p_;
    return ascii || first_invalid_utf8(out) == std::string_view::npos;
  }
  // true / false / null as 1 / 0 / -1; -2 for anything else.
  int literal() noexcept {
    space();
    auto is = [&](std::string_view word) {
      if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
      p_ += word.size();
      return true;
    };
    return is("true") ? 1 : is("false") ? 0 : is("null") ? -1 : -2;
  }
  template <class Set>
  bool flag(Set&& set) {
    const int b = literal();
    if (b >= 0) set(b == 1);
    return b != -2;
  }
  // At most 18 digits, no sign, no leading zero, no fraction or exponent: what simdjson reads as that int64.
  bool natural(index_t& out) noexcept {
    space();
    const char* begin = p_;
    std::uint64_t v = 0;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') v = v * 10 + static_cast<std::uint64_t>(*p_++ - '0');
    const auto digits = p_ - begin;
    if (digits == 0 || digits > 18 || (digits > 1 && *begin == '0')) return false;
    if (p_ != end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    out = static_cast<index_t>(v);
    return true;
  }

  bool tree(tree_metadata& m) {
    if (!eat('{')) return false;
    std::vector<std::string_view> ids;  // the entries' keys, checked for repeats at the end
    const char* first_begin = p_;
    const bool ok = members([&](std::string_view id) {
      ids.push_back(id);
      if (!entry(m)) return false;
      if (m.entries.size() == 1) {  // sized from the first entry; never more memory than the text left
        const auto per = std::max<std::ptrdiff_t>(p_ - first_begin, sizeof(tree_metadata_entry) + sizeof(std::string_view));
        const auto more = static_cast<std::size_t>((end_ - p_) / per) + 1;
        m.entries.reserve(more + 1);
        ids.reserve(more + 1);
      }
      return true;
    });
    return ok && distinct(ids);
  }
  static bool distinct(const std::vector<std::string_view>& ids) {
    // Open addressing, at most half full: no allocation per key.
    std::vector<std::uint32_t> slots(std::bit_ceil(2 * ids.size() + 2), 0);  // 0: empty, else index + 1
    const std::size_t mask = slots.size() - 1;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      std::size_t h = std::hash<std::string_view>{}(ids[i]) & mask;
      for (; slots[h] != 0; h = (h + 1) & mask)
        if (ids[slots[h] - 1] == ids[i]) return false;
      slots[h] = static_cast<std::uint32_t>(i + 1);
    }
    return true;
  }
  bool entry(tree_metadata& m) {
    if (!eat('{')) return false;
    tree_metadata_entry e;
    unsigned seen = 0;
    const bool ok = members([&](std::string_view field) {
      const unsigned bit = field == "key_metadata" ? 1u : field == "value_metadata" ? 2u : 0u;
      if (bit == 0 || (seen & bit)) return false;
      seen |= bit;
      return bit == 1 ? key_metadata(e.path) : value_metadata(e);
    });
    if (!ok || seen != 3) return false;
    m.entries.push_back(std::move(e));
    return true;
  }
  bool key_metadata(key_path& path) {
    if (!eat('[')) return false;
    keys_.clear();
    const bool ok = elements([&] {
      if (!eat('{')) return false;
      std::string_view text;
      index_t type = 0;
      unsigned seen = 0;
      const bool fields = members([&](std::string_view field) {
        const unsigned bit = field == "key" ? 1u : field == "key_type" ? 2u : 0u;
        if (bit == 0 || (seen & bit)) return false;
        seen |= bit;
        return bit == 1 ? string(text) : natural(type);
      });
      if (!fields || seen != 3 || (type != 1 && type != 2)) return false;
      if (type == 1 && (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string_view::npos))
        return false;
      keys_.push_back({text, type == 1});
      return true;
    });
    if (!ok) return false;
    std::vector<key> keys;
    keys.reserve(keys_.size());
    for (const auto& k : keys_) {
      if (!k.index) {
        keys.emplace_back(k.text);
        continue;
      }
      index_t index = 0;
      for (char c : k.text) index = index * 10 + (c - '0');
      keys.emplace_back(index);
    }
    path = key_path(std::move(keys));
    return true;
  }
  bool value_metadata(tree_metadata_entry& e) {
    if (!eat('{')) return false;
    unsigned seen = 0;
    const bool ok = members([&](std::string_view field) {
      const unsigned bit = field == "value_type" ? 1u : field == "skip_deserialize" ? 2u : field == "write_shape" ? 4u : 0u;
      if (bit == 0 || (seen & bit)) return false;
      seen |= bit;
      if (bit == 1) {
        std::string_view t;
        if (!string(t)) return false;
        e.value_type = std::string(t);
        return true;
      }
      if (bit == 2) return flag([&](bool b) { e.skip_deserialize = b; });
      space();
      if (p_ != end_ && *p_ == 'n') return literal() == -1;
      if (!eat('[')) return false;
      dims_.clear();
      if (!elements([&] {
            index_t d = 0;
            if (!natural(d)) return false;
            dims_.push_back(d);
            return true;
          }))
        return false;
      e.write_shape.emplace(dims_.begin(), dims_.end());
      return true;
    });
    return ok && (seen & 1u);
  }
  // Any value, checked by `json::parse` on its own; found by matching brackets outside strings.
  bool custom(tree_metadata& m) {
    space();
    if (p_ != end_ && *p_ == 'n') return literal() == -1;  // null, as the DOM readers leave it
    const char* begin = p_;
    std::size_t depth = 0;
    while (p_ != end_) {
      const char c = *p_;
      if (c == '"') {
        for (++p_; p_ != end_ && *p_ != '"'; ++p_)
          if (*p_ == '\\' && ++p_ == end_) return false;
        if (p_ == end_) return false;
      } else if (c == '{' || c == '[') {
        // Beyond 1,000 levels the whole document's nesting limit may differ from this value's alone.
        if (++depth > 1000) return false;
      } else if (c == '}' || c == ']' || c == ',') {
        if (depth == 0) break;
        if (c != ',') --depth;
      }
      ++p_;
    }
    try {
      m.custom_metadata = json::parse(std::string_view(begin, static_cast<std::size_t>(p_ - begin)), "custom_metadata");
    } catch (const error&) {
      return false;
    }
    return true;
  }

  const char* p_;
  const char* end_;
  std::vector<raw_key> keys_;   // one entry's keys, reused
  std::vector<index_t> dims_;  // one entry's write shape, reused
};

/// Reads `_METADATA` in place, allocating only what the entries keep. Returns false, leaving `m` partly
/// filled, at anything that is not plainly well-formed; the DOM reader then reads it again and either
/// accepts it (an integral double as a key type) or reports exactly what is wrong.
inline bool read_tree_metadata_in_place(const json::view& doc, tree_metadata& m) {
  const auto tree = doc.find("tree_metadata");
  if (!tree) return false;
  auto read_entry = [&](std::string_view, const json::view& entry) {
    tree_metadata_entry e;
    const auto keys = entry.find("key_metadata");
    if (keys) e.path.reserve(keys->size());
    const bool keys_ok = keys && keys->for_each_element([&](const json::view& k) {
      const auto name = k.find("key");
      const auto type_v = k.find("key_type");
      const auto s = name ? name->string() : std::nullopt;
      const auto type = type_v ? type_v->int64() : std::nullopt;
      if (!s || !type) return false;
      if (*type == 2) {
        e.path.push_back(key(std::string(*s)));
        return true;
      }
      if (*type != 1 || s->empty() || s->size() > 18 || s->find_first_not_of("0123456789") != std::string_view::npos)
        return false;
      index_t index = 0;
      for (char c : *s) index = index * 10 + (c - '0');
      e.path.push_back(key(index));
      return true;
    });
    if (!keys_ok) return false;
    const auto v = entry.find("value_metadata");
    const auto vt_v = v ? v->find("value_type") : std::nullopt;
    const auto vt = vt_v ? vt_v->string() : std::nullopt;
    if (!vt) return false;
    e.value_type = std::string(*vt);
    if (const auto skip = v->find("skip_deserialize"); skip && !skip->is_null()) {
      const auto b = skip->boolean();
      if (!b) return false;
      e.skip_deserialize = *b;
    }
    if (const auto ws = v->find("write_shape"); ws && !ws->is_null()) {
      std::vector<index_t> shape;
      if (!ws->for_each_element([&](const json::view& d) {
            const auto n = d.int64();
            if (n) shape.push_back(*n);
            return n.has_value();
          }))
        return false;
      e.write_shape = std::move(shape);
    }
    m.entries.push_back(std::move(e));
    return true;
  };
  if (!tree->for_each_member(read_entry)) return false;
  auto flag = [&](std::string_view name, auto&& set) {
    const auto f = doc.find(name);
    if (!f || f->is_null()) return true;
    const auto b = f->boolean();
    if (b) set(*b);
    return b.has_value();
  };
  if (!flag("use_ocdbt", [&](bool b) { m.use_ocdbt = b; }) || !flag("use_zarr3", [&](bool b) { m.use_zarr3 = b; }) ||
      !flag("store_array_data_equal_to_fill_value", [&](bool b) { m.store_array_data_equal_to_fill_value = b; }))
    return false;
  if (const auto c = doc.find("custom_metadata")) m.custom_metadata = c->to_value();
  return true;
}

// The DOM reader of `_METADATA`: accepts what the in-place reader gives up on and words every error.
inline tree_metadata parse_tree_metadata_dom(std::string_view text, std::string_view what) {
  const json::value doc = json::parse(text, what);
  const std::string w(what);
  tree_metadata m;
  const json::value& tree = doc.at("tree_metadata", w);
  // Entries are read without building their error labels (a string each); an entry that fails is read
  // again with them, so that the error names it.
  auto read_entry = [&](const std::string& id, const json::value& entry, bool labelled) {
    const std::string ew = labelled ? w + " entry " + id : std::string();
    auto label = [&](std::string_view field) { return labelled ? ew + " " + std::string(field) : std::string(); };
    tree_metadata_entry e;
    for (const auto& k : entry.at("key_metadata", ew).as_array(label("\"key_metadata\""))) {
      const std::string& name = k.at("key", ew).as_string(label("key"));
      const auto type = k.at("key_type", ew).as_int64(label("key_type"));
      if (type == 2) {
        e.path.push_back(key(name));
      } else if (type == 1) {
        index_t index = 0;
        if (name.empty() || name.size() > 18 || name.find_first_not_of("0123456789") != std::string::npos)
          throw error(errc::corrupted, ew + ": sequence key \"" + name + "\" is not an index");
        for (char c : name) index = index * 10 + (c - '0');
        e.path.push_back(key(index));
      } else {
        throw error(errc::corrupted, ew + ": unknown key_type " + std::to_string(type) + " (expected 1 or 2)");
      }
    }
    const json::value& v = entry.at("value_metadata", ew);
    e.value_type = v.at("value_type", ew).as_string(label("value_type"));
    if (const auto* s = v.find("skip_deserialize"); s && !s->is_null()) e.skip_deserialize = s->as_bool(label("skip_deserialize"));
    if (const auto* ws = v.find("write_shape"); ws && !ws->is_null()) {
      std::vector<index_t> shape;
      for (const auto& d : ws->as_array(label("write_shape"))) shape.push_back(d.as_int64(label("write_shape")));
      e.write_shape = std::move(shape);
    }
    m.entries.push_back(std::move(e));
  };
  for (const auto& [id, entry] : tree.as_object(w + " \"tree_metadata\"")) {
    try {
      read_entry(id, entry, false);
    } catch (const error&) {
      read_entry(id, entry, true);
      throw;
    }
  }
  if (const auto* v = doc.find("use_ocdbt"); v && !v->is_null()) m.use_ocdbt = v->as_bool(w + " use_ocdbt");
  if (const auto* v = doc.find("use_zarr3"); v && !v->is_null()) m.use_zarr3 = v->as_bool(w + " use_zarr3");
  if (const auto* v = doc.find("store_array_data_equal_to_fill_value"); v && !v->is_null())
    m.store_array_data_equal_to_fill_value = v->as_bool(w + " store_array_data_equal_to_fill_value");
  if (const auto* v = doc.find("custom_metadata")) m.custom_metadata = *v;
  return m;
}
}  // namespace detail

/// Parses `_METADATA`.
/// \throws cairn::error (errc::corrupted) for text that is not JSON, and naming `what` and the entry for
///         a missing or mistyped field, an unknown key type, or a sequence key that is not a non-negative
///         integer.
inline tree_metadata parse_tree_metadata(std::string_view text, std::string_view what) {
  {
    tree_metadata m;
    if (detail::tree_metadata_fast_reader(text).read(m)) return m;
  }
  {
    const json::document in_place(text, what);
    tree_metadata m;
    if (detail::read_tree_metadata_in_place(in_place.root(), m)) return m;
  }
  return detail::parse_tree_metadata_dom(text, what);
}

/// Reads and parses the `_METADATA` file at `path`, read straight into the parser's memory (a model's
/// is tens of MB: a copy of it cost as much again in fresh pages as the read).
/// \throws as `parse_tree_metadata`; cairn::error (errc::not_found, errc::io) if the file cannot be read.
inline tree_metadata read_tree_metadata_file(const std::filesystem::path& path, std::string_view what) {
  json::padded_text text = json::read_padded_file(path);
  {
    tree_metadata m;
    if (detail::tree_metadata_fast_reader(text.view()).read(m)) return m;
  }
  const json::document in_place(std::move(text), what);
  tree_metadata m;
  if (detail::read_tree_metadata_in_place(in_place.root(), m)) return m;
  return detail::parse_tree_metadata_dom(in_place.text(), what);  // reports exactly what is wrong
}

/// Returns `_METADATA` text as Orbax writes it (Python `json.dumps` with default separators).
/// Printed directly rather than through `json::writer`: a model has up to millions of entries of a
/// fixed shape, and checking each of their two dozen events cost more than the text (10,000 entries:
/// 11.5 ms through the writer).
/// \throws cairn::error (errc::invalid_argument) if a key is not valid UTF-8.
inline std::string to_json(const tree_metadata& m) {
  const json::write_options layout{.spaced = true};
  std::string out = "{\"tree_metadata\": {";
  // Leaves mostly repeat the value metadata of the one before (same kind and shape): it is rendered
  // once per run of equal ones.
  const tree_metadata_entry* last = nullptr;
  std::string key, value_text;
  for (std::size_t i = 0; i < m.entries.size(); ++i) {
    const tree_metadata_entry& e = m.entries[i];
    const std::size_t start = out.size();
    if (i) out += ", ";
    key.clear();
    detail::append_tree_metadata_key(key, e.path);
    json::append_quoted(out, key, "_METADATA: the key");
    out += ": {\"key_metadata\": [";
    for (std::size_t j = 0; j < e.path.size(); ++j) {
      out += j ? ", {\"key\": " : "{\"key\": ";
      if (e.path[j].is_index()) out += '"' + e.path[j].str() + '"';
      else json::append_quoted(out, e.path[j].name(), "_METADATA: the key");
      out += e.path[j].is_index() ? ", \"key_type\": 1}" : ", \"key_type\": 2}";
    }
    out += "], \"value_metadata\": ";
    if (!last || last->value_type != e.value_type || last->skip_deserialize != e.skip_deserialize ||
        last->write_shape != e.write_shape) {
      json::writer v(layout);
      v.begin_object().key("value_type").value(e.value_type).key("skip_deserialize").value(e.skip_deserialize);
      if (e.write_shape) {
        v.key("write_shape").begin_array();
        for (auto d : *e.write_shape) v.value(d);
        v.end_array();
      }
      value_text = v.end_object().take();
      last = &e;
    }
    out += value_text;
    out += '}';
    if (i == 0) json::reserve_like_first(out, start, m.entries.size());
  }
  out += "}, \"use_ocdbt\": ";
  out += m.use_ocdbt.value_or(true) ? "true" : "false";
  out += ", \"use_zarr3\": ";
  out += m.use_zarr3 ? "true" : "false";
  out += ", \"store_array_data_equal_to_fill_value\": ";
  out += m.store_array_data_equal_to_fill_value ? "true" : "false";
  out += ", \"custom_metadata\": ";
  out += json::to_string(m.custom_metadata, layout);
  out += '}';
  return out;
}

}  // namespace cairn
