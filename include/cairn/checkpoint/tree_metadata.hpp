// SPDX-License-Identifier: Apache-2.0
/// \file
/// `_METADATA`, a PyTree item's tree metadata (orbax-format.md §1.6): one entry per leaf or empty
/// node with its key path (`key_metadata`: key type 1 = sequence index, 2 = dict key), its value type
/// (`jax.Array`, `np.ndarray`, `scalar`, `string`, or the empty nodes `Dict`, `List`, `Tuple`, `None`)
/// and, for arrays, the write shape; plus the storage flags. The structure is recovered from
/// `key_metadata`, never by splitting names; the tuple-repr keys are only unique identifiers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/core/key_path.hpp>
#include <cairn/core/shape.hpp>
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
};

/// The contents of `_METADATA`.
struct tree_metadata {
  std::vector<tree_metadata_entry> entries;
  std::optional<bool> use_ocdbt;  ///< absent: decided by the presence of `manifest.ocdbt`
  bool use_zarr3 = false;
  bool store_array_data_equal_to_fill_value = false;
  json::value custom_metadata;  ///< null unless the user set it
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
  const json::document in_place(json::read_padded_file(path), what);
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
