// SPDX-License-Identifier: Apache-2.0
/// \file
/// The small per-item files beside `_METADATA` (orbax-format.md §1.7, §4.2, §5): `_sharding` (param
/// name as URL-safe base64 → a JSON *string* holding the sharding), `_strings.json` (param name as a
/// JSON pointer → string leaf) and `array_metadatas/process_<i>` (write and chunk shapes per array).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/json/reader.hpp>
#include <cairn/json/value.hpp>
#include <cairn/json/writer.hpp>
#include <cairn/sharding/named_sharding.hpp>

namespace cairn {

/// Encodes bytes as URL-safe base64 with `=` padding (Python's `base64.urlsafe_b64encode`).
inline std::string base64url_encode(std::string_view in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                            static_cast<unsigned char>(in[i + 2]);
    out += a[v >> 18];
    out += a[(v >> 12) & 63];
    out += a[(v >> 6) & 63];
    out += a[v & 63];
  }
  if (i + 1 == in.size()) {
    const std::uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    out += a[v >> 18];
    out += a[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const std::uint32_t v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += a[v >> 18];
    out += a[(v >> 12) & 63];
    out += a[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

/// Decodes URL-safe (or standard) base64, padded or not.
/// \throws cairn::error (errc::corrupted) naming `what` for characters outside the alphabet.
inline std::string base64url_decode(std::string_view in, std::string_view what) {
  auto value = [&](char c) -> std::uint32_t {
    if (c >= 'A' && c <= 'Z') return static_cast<std::uint32_t>(c - 'A');
    if (c >= 'a' && c <= 'z') return static_cast<std::uint32_t>(c - 'a' + 26);
    if (c >= '0' && c <= '9') return static_cast<std::uint32_t>(c - '0' + 52);
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    throw error(errc::corrupted, std::string(what) + ": \"" + std::string(in) + "\" is not base64");
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) throw error(errc::corrupted, std::string(what) + ": \"" + std::string(in) + "\" is not base64");
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    acc = (acc << 6) | value(c);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

/// `_sharding`: param name → the sharding JSON object Orbax recorded for it.
struct sharding_file {
  std::map<std::string, json::value> shardings;
};

/// Parses `_sharding`.
/// \throws cairn::error (errc::corrupted) naming `what` and the entry for a bad key or value.
inline sharding_file parse_sharding_file(std::string_view text, std::string_view what) {
  const json::value doc = json::parse(text, what);
  sharding_file f;
  for (const auto& [k, v] : doc.as_object(std::string(what))) {
    std::string name = base64url_decode(k, std::string(what) + " key");
    f.shardings.emplace(name, json::parse(v.as_string(std::string(what) + " entry \"" + name + "\""),
                                          std::string(what) + " entry \"" + name + "\""));
  }
  return f;
}

/// Returns `_sharding` text from (param name, sharding JSON text) pairs, as TensorStore's json driver
/// writes it: compact, keyed by the base64url name, keys sorted. Texts are passed through, so a writer
/// serialises each distinct sharding once however many arrays share it.
/// \pre names are unique.
inline std::string sharding_file_json(std::vector<std::pair<std::string, std::string_view>> entries) {
  for (auto& e : entries) e.first = base64url_encode(e.first);
  std::sort(entries.begin(), entries.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  // Printed directly (the keys are base64url: nothing to escape), as `to_json(tree_metadata)` is.
  std::string out = "{";
  // Most leaves share one sharding text (the same view): it is escaped once, not once per leaf.
  std::string_view last;
  std::string quoted;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& [k, text] = entries[i];
    if (quoted.empty() || text.data() != last.data() || text.size() != last.size()) {
      quoted.clear();
      json::append_quoted(quoted, text, "_sharding: the sharding text of a parameter");
      last = text;
    }
    const std::size_t start = out.size();
    if (i) out += ',';
    out += '"';
    out += k;
    out += "\":";
    out += quoted;
    if (i == 0) json::reserve_like_first(out, start, entries.size());
  }
  out += '}';
  return out;
}

/// Returns `_sharding` text as TensorStore's json driver writes it (compact), values in Python's format.
inline std::string to_json(const sharding_file& f) {
  std::vector<std::string> texts;
  texts.reserve(f.shardings.size());
  std::vector<std::pair<std::string, std::string_view>> entries;
  entries.reserve(f.shardings.size());
  for (const auto& [name, s] : f.shardings) texts.push_back(json::to_string(s, {.spaced = true}));
  std::size_t i = 0;
  for (const auto& [name, s] : f.shardings) entries.emplace_back(name, texts[i++]);
  return sharding_file_json(std::move(entries));
}

/// A sharding every JAX process can honour: a one-device mesh with device id 0 (orbax-format.md §4.2),
/// for arrays saved without a mesh.
inline json::value single_device_named_sharding() {
  json::value device = json::value::object({{"id", 0}});
  return json::value::object({{"sharding_type", "NamedSharding"},
                              {"shape", json::value::array({1})},
                              {"axis_names", json::value::array({"x"})},
                              {"partition_spec", json::value::array()},
                              {"device_mesh", json::value::object({{"mesh", json::value::array({device})}})}});
}

/// The NamedSharding JSON Orbax records for `s` (Python `json.dumps` layout, Orbax's key order).
inline std::string sharding_json(const named_sharding& s) {
  json::writer w({.spaced = true});
  w.begin_object().key("sharding_type").value("NamedSharding").key("shape").begin_array();
  for (const auto& a : s.mesh().axes()) w.value(a.size);
  w.end_array().key("axis_names").begin_array();
  for (const auto& a : s.mesh().axes()) w.value(a.name);
  w.end_array().key("partition_spec").begin_array();
  for (const auto& d : s.spec().dims()) {
    if (d.empty()) w.value(nullptr);
    else if (d.size() == 1) w.value(d[0]);
    else {
      w.begin_array();
      for (const auto& a : d) w.value(a);
      w.end_array();
    }
  }
  w.end_array().key("device_mesh").begin_object().key("mesh");
  // Nested lists in the mesh's shape, ids row-major.
  const auto& axes = s.mesh().axes();
  const auto& ids = s.mesh().device_ids();
  std::size_t next = 0;
  auto nest = [&](auto&& self, std::size_t level) -> void {
    w.begin_array();
    for (index_t i = 0; i < axes[level].size; ++i) {
      if (level + 1 == axes.size()) w.begin_object().key("id").value(ids[next++]).end_object();
      else self(self, level + 1);
    }
    w.end_array();
  };
  nest(nest, 0);
  return w.end_object().end_object().take();
}

/// Reads a sharding recorded in `_sharding`: NamedSharding (mesh ids from `device_mesh`, else row-major)
/// or SingleDeviceSharding (a one-device mesh holding the device's number).
/// \throws cairn::error (errc::unsupported) for other sharding types; (errc::corrupted) naming `what`
///         for malformed entries; (errc::invalid_sharding) if the spec does not fit the mesh.
inline named_sharding parse_sharding_json(const json::value& v, std::string_view what) {
  const std::string w(what);
  const std::string& type = v.at("sharding_type", w).as_string(w + " sharding_type");
  if (type == "SingleDeviceSharding") {
    int id = 0;
    if (const auto* d = v.find("device_str"); d && d->is_string()) {
      const std::string& ds = d->as_string();
      std::size_t i = ds.size();
      while (i > 0 && ds[i - 1] >= '0' && ds[i - 1] <= '9') --i;
      if (i < ds.size() && ds.size() - i < 9) id = std::stoi(ds.substr(i));
    }
    return named_sharding(device_mesh({{"x", 1}}, {id}), partition_spec());
  }
  if (type != "NamedSharding")
    throw error(errc::unsupported, w + ": sharding type \"" + type + "\" (cairn reads NamedSharding and SingleDeviceSharding)");
  std::vector<mesh_axis> axes;
  const auto& sizes = v.at("shape", w).as_array(w + " shape");
  const auto& names = v.at("axis_names", w).as_array(w + " axis_names");
  if (sizes.size() != names.size())
    throw error(errc::corrupted, w + ": " + std::to_string(sizes.size()) + " mesh sizes for " + std::to_string(names.size()) + " axis names");
  for (std::size_t i = 0; i < sizes.size(); ++i) axes.push_back({names[i].as_string(w + " axis_names"), sizes[i].as_int64(w + " shape")});
  std::vector<dim_axes> dims;
  if (const auto* ps = v.find("partition_spec"); ps && !ps->is_null())
    for (const auto& d : ps->as_array(w + " partition_spec")) {
      if (d.is_null()) dims.emplace_back();
      else if (d.is_string()) dims.push_back({d.as_string()});
      else {
        dim_axes a;
        for (const auto& x : d.as_array(w + " partition_spec")) a.push_back(x.as_string(w + " partition_spec"));
        dims.push_back(std::move(a));
      }
    }
  std::vector<int> ids;
  if (const auto* dm = v.find("device_mesh"); dm && dm->is_object())
    if (const auto* m = dm->find("mesh")) {
      auto flat = [&](auto&& self, const json::value& x) -> void {
        if (x.is_array()) {
          for (const auto& y : x.as_array()) self(self, y);
        } else {
          ids.push_back(static_cast<int>(x.at("id", w + " device_mesh").as_int64(w + " device id")));
        }
      };
      flat(flat, *m);
    }
  device_mesh mesh = ids.empty() ? device_mesh(std::move(axes)) : device_mesh(std::move(axes), std::move(ids));
  return named_sharding(std::move(mesh), partition_spec(std::move(dims)));
}

/// `_strings.json`: param name → string leaf. Names are JSON pointers, so `a/b` nests; cairn never
/// writes such names, and flattens nested objects back into `/`-joined names when reading.
inline std::map<std::string, std::string> parse_strings_file(std::string_view text, std::string_view what) {
  std::map<std::string, std::string> out;
  auto walk = [&](auto&& self, const json::value& v, const std::string& prefix) -> void {
    for (const auto& [k, child] : v.as_object(std::string(what))) {
      const std::string name = prefix.empty() ? k : prefix + "/" + k;
      if (child.is_object()) self(self, child, name);
      else out.emplace(name, child.as_string(std::string(what) + " \"" + name + "\""));
    }
  };
  walk(walk, json::parse(text, what), "");
  return out;
}
inline std::string strings_file_json(const std::map<std::string, std::string>& strings) {
  json::value doc = json::value::object();
  auto& members = doc.as_object();
  for (const auto& [k, v] : strings) members.emplace_back(k, v);  // keys are unique (a map)
  return json::to_string(doc);
}

/// One entry of `array_metadatas/process_<i>`.
struct array_metadata_entry {
  std::string param_name;
  std::vector<index_t> write_shape;
  std::vector<index_t> chunk_shape;
  json::value ext_metadata;  ///< null, or `{"random_key_impl": ...}` for PRNG keys
};

inline std::vector<array_metadata_entry> parse_array_metadatas(std::string_view text, std::string_view what) {
  const std::string w(what);
  std::vector<array_metadata_entry> out;
  const json::value doc = json::parse(text, what);
  for (const auto& item : doc.at("array_metadatas", w).as_array(w)) {
    const json::value& a = item.at("array_metadata", w);
    array_metadata_entry e;
    e.param_name = a.at("param_name", w).as_string(w + " param_name");
    for (const auto& d : a.at("write_shape", w).as_array(w + " write_shape")) e.write_shape.push_back(d.as_int64(w));
    for (const auto& d : a.at("chunk_shape", w).as_array(w + " chunk_shape")) e.chunk_shape.push_back(d.as_int64(w));
    if (const auto* x = a.find("ext_metadata")) e.ext_metadata = *x;
    out.push_back(std::move(e));
  }
  return out;
}
/// Returns `array_metadatas/process_<i>` text as Orbax writes it (Python `json.dumps`), printed
/// directly as `to_json(tree_metadata)` is.
/// \throws cairn::error (errc::invalid_argument) if a parameter name is not valid UTF-8.
inline std::string to_json(const std::vector<array_metadata_entry>& entries) {
  std::string out = "{\"array_metadatas\": [";
  auto append_shape = [&](const std::vector<index_t>& shape) {
    out += '[';
    for (std::size_t j = 0; j < shape.size(); ++j) {
      if (j) out += ", ";
      char buf[24];
      out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, shape[j]).ptr - buf));
    }
    out += ']';
  };
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const array_metadata_entry& e = entries[i];
    const std::size_t start = out.size();
    out += i ? ", {\"array_metadata\": {\"param_name\": " : "{\"array_metadata\": {\"param_name\": ";
    json::append_quoted(out, e.param_name, "array_metadatas: the parameter name");
    out += ", \"write_shape\": ";
    append_shape(e.write_shape);
    out += ", \"chunk_shape\": ";
    append_shape(e.chunk_shape);
    out += ", \"ext_metadata\": ";
    out += e.ext_metadata.is_null() ? "null" : json::to_string(e.ext_metadata, {.spaced = true});
    out += "}}";
    if (i == 0) json::reserve_like_first(out, start, entries.size());
  }
  out += "]}";
  return out;
}

}  // namespace cairn
