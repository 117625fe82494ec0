// SPDX-License-Identifier: Apache-2.0
/// \file
/// `_CHECKPOINT_METADATA`, the step-level metadata file (orbax-format.md §1.3): item handler typestrs
/// (a dict, a single string for direct checkpoints, or null), metrics, performance metrics, init and
/// commit timestamps and custom metadata — exactly these six keys, in Python `json.dumps` format.
/// Readers tolerate missing fields and a missing file; writers never add keys (Orbax moves unknown
/// keys into custom metadata and then rejects the file).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/json/reader.hpp>
#include <cairn/json/value.hpp>
#include <cairn/json/writer.hpp>

namespace cairn {

/// Orbax handler typestrs cairn writes and recognises.
namespace handler_typestr {
inline constexpr std::string_view standard = "orbax.checkpoint._src.handlers.standard_checkpoint_handler.StandardCheckpointHandler";
inline constexpr std::string_view pytree = "orbax.checkpoint._src.handlers.pytree_checkpoint_handler.PyTreeCheckpointHandler";
inline constexpr std::string_view json = "orbax.checkpoint._src.handlers.json_checkpoint_handler.JsonCheckpointHandler";
inline constexpr std::string_view pytree_v1 = "orbax.checkpoint.experimental.v1._src.handlers.pytree_handler.PyTreeHandler";
inline constexpr std::string_view json_v1 = "orbax.checkpoint.experimental.v1._src.handlers.json_handler.JsonHandler";

/// True for any handler that stores a PyTree item (V0 Standard/PyTree, V1 PyTree).
inline bool is_pytree(std::string_view t) {
  return t.find("PyTreeCheckpointHandler") != std::string_view::npos ||
         t.find("StandardCheckpointHandler") != std::string_view::npos ||
         t.find("PyTreeHandler") != std::string_view::npos;
}
/// True for any handler that stores a JSON item.
inline bool is_json(std::string_view t) {
  return t.find("JsonCheckpointHandler") != std::string_view::npos || t.find("JsonHandler") != std::string_view::npos;
}
}  // namespace handler_typestr

/// The contents of `_CHECKPOINT_METADATA`.
struct checkpoint_metadata {
  /// Item name → handler typestr, in file order. For a direct checkpoint (item files in the step
  /// directory) the file holds one string; it is kept under the name "" here.
  std::vector<std::pair<std::string, std::string>> item_handlers;
  bool direct = false;             ///< `item_handlers` was a single string
  json::value metrics = json::value::object();
  json::value performance_metrics = json::value::object();
  std::optional<std::int64_t> init_timestamp_nsecs;
  std::optional<std::int64_t> commit_timestamp_nsecs;
  json::value custom_metadata = json::value::object();

  /// The handler typestr of item `name`, or nullptr.
  const std::string* handler(std::string_view name) const {
    for (const auto& [n, t] : item_handlers)
      if (n == name) return &t;
    return nullptr;
  }
  /// Sets the handler of item `name`, keeping the order of first appearance.
  void set_handler(std::string name, std::string typestr) {
    for (auto& [n, t] : item_handlers)
      if (n == name) {
        t = std::move(typestr);
        return;
      }
    item_handlers.emplace_back(std::move(name), std::move(typestr));
  }
};

/// Parses `_CHECKPOINT_METADATA` text. Missing keys take their defaults; null `custom_metadata` is `{}`.
/// \throws cairn::error (errc::corrupted) naming `what` and the field if a field has the wrong type.
inline checkpoint_metadata parse_checkpoint_metadata(std::string_view text, std::string_view what) {
  const json::value doc = json::parse(text, what);
  const std::string w(what);
  if (!doc.is_object()) throw error(errc::corrupted, w + ": expected a JSON object");
  checkpoint_metadata m;
  if (const auto* h = doc.find("item_handlers"); h && !h->is_null()) {
    if (h->is_string()) {
      m.direct = true;
      m.item_handlers.emplace_back("", h->as_string());
    } else {
      for (const auto& [name, typestr] : h->as_object(w + " \"item_handlers\""))
        m.item_handlers.emplace_back(name, typestr.is_null() ? std::string() : typestr.as_string(w + " \"item_handlers\"." + name));
    }
  }
  if (const auto* v = doc.find("metrics"); v && !v->is_null()) m.metrics = *v;
  if (const auto* v = doc.find("performance_metrics"); v && !v->is_null()) m.performance_metrics = *v;
  if (const auto* v = doc.find("init_timestamp_nsecs"); v && !v->is_null())
    m.init_timestamp_nsecs = v->as_int64(w + " \"init_timestamp_nsecs\"");
  if (const auto* v = doc.find("commit_timestamp_nsecs"); v && !v->is_null())
    m.commit_timestamp_nsecs = v->as_int64(w + " \"commit_timestamp_nsecs\"");
  if (const auto* v = doc.find("custom_metadata"); v && !v->is_null()) m.custom_metadata = *v;
  return m;
}

/// Returns `_CHECKPOINT_METADATA` text with exactly Orbax's six keys, formatted as Python's
/// `json.dumps` does.
inline std::string to_json(const checkpoint_metadata& m) {
  json::value doc = json::value::object();
  if (m.direct && m.item_handlers.size() == 1) {
    doc["item_handlers"] = m.item_handlers.front().second;
  } else if (m.item_handlers.empty()) {
    doc["item_handlers"] = json::value(nullptr);
  } else {
    json::value h = json::value::object();
    for (const auto& [name, typestr] : m.item_handlers) h[name] = typestr;
    doc["item_handlers"] = std::move(h);
  }
  doc["metrics"] = m.metrics;
  doc["performance_metrics"] = m.performance_metrics;
  doc["init_timestamp_nsecs"] = m.init_timestamp_nsecs ? json::value(*m.init_timestamp_nsecs) : json::value(nullptr);
  doc["commit_timestamp_nsecs"] = m.commit_timestamp_nsecs ? json::value(*m.commit_timestamp_nsecs) : json::value(nullptr);
  doc["custom_metadata"] = m.custom_metadata;
  return json::to_string(doc, {.spaced = true});
}

}  // namespace cairn
