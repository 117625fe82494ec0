// SPDX-License-Identifier: Apache-2.0
/// \file
/// Whole checkpoints, untyped: `cairn::load(path)` reads a root (its latest step), a step or an item
/// into a `dynamic_tree`; `cairn::save` / `save_items` write a step exactly as Orbax does on a
/// local disk — `<step>.orbax-checkpoint-tmp/`, `_CHECKPOINT_METADATA` (init time first), the items,
/// `commit_success.txt`, fsync, then one rename as the single commit point (orbax-format.md §1.2).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/checkpoint/checkpoint_metadata.hpp>
#include <cairn/checkpoint/pytree_item.hpp>
#include <cairn/checkpoint/steps.hpp>
#include <cairn/core/error.hpp>
#include <cairn/dist/coordinator.hpp>
#include <cairn/json/reader.hpp>
#include <cairn/json/writer.hpp>
#include <cairn/kvstore/file.hpp>
#include <cairn/tree/dynamic_tree.hpp>

namespace cairn {

/// Options of `cairn::save`.
struct save_options {
  pytree_save_options pytree;        ///< zarr format, compression, array leaf type, fsync
  step_naming naming;                ///< step directory names
  json::value metrics = json::value::object();
  json::value custom_metadata = json::value::object();
  /// The processes that save this step together (default: this process alone). With several, each
  /// writes the shards of its devices and the primary commits (orbax-format.md §1.4, §3.10).
  any_coordinator coordinator{};
  /// How long the primary waits for the others at each collective step of a multi-process save; the
  /// others wait for its verdict up to three times as long, so that they hear which rank failed.
  collective_timeout timeout = std::chrono::minutes(5);
};

/// What kind of item a directory holds.
enum class item_kind { pytree, json, unknown };

/// An item of a step, as listed (not loaded).
struct item_entry {
  std::string name;
  item_kind kind = item_kind::unknown;
  std::string handler;             ///< typestr from `_CHECKPOINT_METADATA`, if any
  std::filesystem::path path;
  bool present = true;             ///< false: named in `_CHECKPOINT_METADATA` but its directory is gone
};

namespace detail {
inline std::int64_t now_ns_signed() {
  return static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}
inline bool is_pytree_dir(const std::filesystem::path& p) {
  return std::filesystem::exists(p / "_METADATA") || std::filesystem::exists(p / "manifest.ocdbt") ||
         std::filesystem::exists(p / "_strings.json");
}
inline std::optional<std::filesystem::path> json_item_file(const std::filesystem::path& p) {
  for (const char* f : {"data.json", "metadata"})
    if (std::filesystem::is_regular_file(p / f)) return p / f;
  return std::nullopt;
}
inline void fsync_dir(const std::filesystem::path& dir) { kvstore::file_driver::sync_directory(dir); }
}  // namespace detail

/// Reads a step's `_CHECKPOINT_METADATA`, or nullopt when the file is absent.
inline std::optional<checkpoint_metadata> read_checkpoint_metadata(const std::filesystem::path& step_dir) {
  const auto p = step_dir / "_CHECKPOINT_METADATA";
  if (!std::filesystem::exists(p)) return std::nullopt;
  return parse_checkpoint_metadata(detail::read_text_file(p, "step \"" + step_dir.string() + "\""),
                                   "\"" + p.string() + "\"");
}

/// Lists the items of a step: those `_CHECKPOINT_METADATA` names and the item directories present.
inline std::vector<item_entry> list_items(const std::filesystem::path& step_dir) {
  std::map<std::string, item_entry> items;
  if (auto m = read_checkpoint_metadata(step_dir); m && !m->direct)
    for (const auto& [name, typestr] : m->item_handlers) {
      item_entry e{name, item_kind::unknown, typestr, step_dir / name, std::filesystem::is_directory(step_dir / name)};
      if (handler_typestr::is_pytree(typestr)) e.kind = item_kind::pytree;
      else if (handler_typestr::is_json(typestr)) e.kind = item_kind::json;
      items.emplace(name, e);
    }
  // When the step names its items' handlers, a directory it does not name is not an item Orbax would
  // load (e.g. a stray or foreign directory): it is listed as unknown. Without handler information,
  // items are recognised by their files.
  const bool handlers_known = !items.empty();
  std::error_code ec;
  for (std::filesystem::directory_iterator it(step_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory()) continue;
    const std::string name = it->path().filename().string();
    if (is_tmp_name(name)) continue;
    auto [pos, fresh] = items.emplace(name, item_entry{name, item_kind::unknown, {}, it->path(), true});
    item_entry& e = pos->second;
    if (fresh && !handlers_known) {
      if (detail::is_pytree_dir(e.path)) e.kind = item_kind::pytree;
      else if (detail::json_item_file(e.path)) e.kind = item_kind::json;
    }
  }
  std::vector<item_entry> out;
  for (auto& [n, e] : items) out.push_back(std::move(e));
  return out;
}

/// Loads one item of a step.
/// \throws cairn::error (errc::not_found) if the item is absent; (errc::unsupported) if it has no
///         handler information and no files cairn recognises; errors of the item's files otherwise.
inline dynamic_tree load_item(const std::filesystem::path& step_dir, std::string_view name) {
  for (const auto& e : list_items(step_dir)) {
    if (e.name != name) continue;
    const std::string what = "step \"" + step_dir.string() + "\", item \"" + e.name + "\"";
    if (!e.present) throw error(errc::not_found, what + ": the item directory is missing");
    switch (e.kind) {
      case item_kind::pytree: return pytree_item(e.path, what).read();
      case item_kind::json: {
        auto f = detail::json_item_file(e.path);
        if (!f) throw error(errc::not_found, what + ": JSON item without \"metadata\" or \"data.json\"");
        return json::parse_file(*f);
      }
      case item_kind::unknown:
        throw error(errc::unsupported, what + ": no handler information in _CHECKPOINT_METADATA and no PyTree or JSON files");
    }
  }
  throw error(errc::not_found, "step \"" + step_dir.string() + "\": no item \"" + std::string(name) + "\"");
}

/// Options of `cairn::load`.
struct load_options {
  step_naming naming;  ///< how step directories under a root are named
};

/// Loads a checkpoint into a dynamic tree:
///  * a PyTree item directory (or a direct checkpoint) → the item's tree;
///  * a step directory → a map item name → tree (items cairn cannot interpret are skipped; see `list_items`);
///  * a root → its latest committed step, as above.
/// \throws cairn::error (errc::not_found) if `path` holds none of these.
inline dynamic_tree load(const std::filesystem::path& path, const load_options& options = {}) {
  if (!std::filesystem::is_directory(path)) throw error(errc::not_found, "\"" + path.string() + "\" is not a directory");
  if (detail::is_pytree_dir(path)) return pytree_item(path, "item \"" + path.string() + "\"").read();
  const bool is_step = std::filesystem::exists(path / "_CHECKPOINT_METADATA") ||
                       std::filesystem::exists(path / "orbax.checkpoint") || !list_items(path).empty();
  if (!is_step || (!list_steps(path, options.naming).empty() && !std::filesystem::exists(path / "_CHECKPOINT_METADATA"))) {
    auto steps = list_steps(path, options.naming);
    if (steps.empty())
      throw error(errc::not_found, "\"" + path.string() + "\": no checkpoint (no committed step, step or item here)");
    return load(steps.back().path, options);
  }
  dynamic_tree out;
  for (const auto& e : list_items(path)) {
    if (!e.present || e.kind == item_kind::unknown) continue;
    out[e.name] = load_item(path, e.name);
  }
  return out;
}

/// Saves `items` (item name → tree; a JSON value becomes a JSON item) as step `step` under `root`,
/// e.g. Keras's layout: `save_items(root, 3, {{"pytree", state}, {"model_config", config}})`.
/// \throws cairn::error (errc::already_exists) if the step is already committed; (errc::io) on I/O
///         failure (the root then holds only a temporary directory, never a partial step).
namespace detail {
/// The items of one save, by reference: saving never copies the caller's trees.
using item_refs = std::vector<std::pair<std::string, const dynamic_tree*>>;
/// Called after a step's items are written and before its commit (see checkpoint_manager_options).
using before_commit_hook = std::function<void(std::int64_t, const std::filesystem::path&)>;
inline std::filesystem::path save_item_refs(const std::filesystem::path& root, std::int64_t step, const item_refs& items,
                                            const save_options& o, const before_commit_hook& before_commit = {});
}  // namespace detail

inline std::filesystem::path save_items(const std::filesystem::path& root, std::int64_t step,
                                        const std::map<std::string, dynamic_tree>& items, const save_options& o) {
  detail::item_refs refs;
  for (const auto& [name, tree] : items) refs.emplace_back(name, &tree);
  return detail::save_item_refs(root, step, refs, o);
}
/// As above with the default options (an overload: g++ 12 reports a defaulted options temporary as
/// maybe-uninitialized at call sites).
inline std::filesystem::path save_items(const std::filesystem::path& root, std::int64_t step,
                                        const std::map<std::string, dynamic_tree>& items) {
  static const save_options defaults;
  return save_items(root, step, items, defaults);
}

namespace detail {
inline void check_item_name(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || is_tmp_name(name) || name.front() == '.')
    throw error(errc::invalid_argument, "item name \"" + name + "\" cannot be a directory name");
}
// Where a save of `step` goes: its final directory and the temporary one it is written in.
struct step_dirs {
  std::filesystem::path final_dir, tmp;
};
inline step_dirs dirs_of(const std::filesystem::path& root, std::int64_t step, const step_naming& naming) {
  return {root / step_name(step, naming), root / (step_name(step, naming) + std::string(tmp_marker))};
}
// Checks that `step` is new, replaces a stale attempt with a fresh temporary directory and writes the
// first `_CHECKPOINT_METADATA` (init time set here).
inline void begin_step(const step_dirs& d, std::int64_t step, checkpoint_metadata& meta) {
  if (step < 0) throw error(errc::invalid_argument, "step " + std::to_string(step) + " is negative");
  if (std::filesystem::exists(d.final_dir))
    throw error(errc::already_exists, "step " + std::to_string(step) + ": \"" + d.final_dir.string() + "\" already exists");
  std::error_code ec;
  std::filesystem::remove_all(d.tmp, ec);  // a stale attempt at the same step
  std::filesystem::create_directories(d.tmp, ec);
  if (ec) throw error(errc::io, "create \"" + d.tmp.string() + "\": " + ec.message());
  meta.init_timestamp_nsecs = now_ns_signed();
  // Not synced: `commit_step` writes this file again, synced, before the rename that commits the step,
  // and a temporary directory left by a crash is only ever replaced (its fsync took 0.8 ms of a
  // 16-leaf save's 4-6 ms here).
  kvstore::write(kvstore::open_file(d.tmp, kvstore::fsync_policy::none), "_CHECKPOINT_METADATA", as_bytes(to_json(meta)));
}
// Writes a JSON item (`data.json` for V1/zarr v3 layouts, `metadata` for V0) with its commit marker.
inline void write_json_item(const std::filesystem::path& tmp, const std::string& name, const dynamic_tree& tree, const save_options& o) {
  auto files = kvstore::open_file(tmp, o.pytree.fsync);
  kvstore::write(files, name + (o.pytree.zarr_format == 3 ? "/data.json" : "/metadata"),
                 as_bytes(json::to_string(tree.as_json(), {.spaced = true})));
  kvstore::write(files, name + "/" + std::string(commit_success_file), as_bytes("Checkpoint commit was successful"));
}
// The last metadata, the commit marker, fsync, and the rename that is the commit point.
inline void commit_step(const std::filesystem::path& root, const step_dirs& d, checkpoint_metadata& meta, const save_options& o) {
  auto files = kvstore::open_file(d.tmp, o.pytree.fsync);
  meta.commit_timestamp_nsecs = now_ns_signed();
  kvstore::write(files, "_CHECKPOINT_METADATA", as_bytes(to_json(meta)));
  kvstore::write(files, commit_success_file, as_bytes("Checkpoint commit was successful to " + d.final_dir.string()));
  if (o.pytree.fsync != kvstore::fsync_policy::none) fsync_dir(d.tmp);
  std::error_code ec;
  std::filesystem::rename(d.tmp, d.final_dir, ec);  // the commit point
  if (ec) throw error(errc::io, "rename \"" + d.tmp.string() + "\" to \"" + d.final_dir.string() + "\": " + ec.message());
  if (o.pytree.fsync != kvstore::fsync_policy::none) fsync_dir(root);
}
inline std::filesystem::path save_collective(const std::filesystem::path& root, std::int64_t step, const item_refs& items,
                                             const save_options& o, const before_commit_hook& before_commit);
}  // namespace detail

inline std::filesystem::path detail::save_item_refs(const std::filesystem::path& root, std::int64_t step,
                                                    const item_refs& items, const save_options& o,
                                                    const before_commit_hook& before_commit) {
  if (o.coordinator.process_count() > 1) return save_collective(root, step, items, o, before_commit);
  const step_dirs d = dirs_of(root, step, o.naming);
  checkpoint_metadata meta;
  meta.metrics = o.metrics;
  meta.custom_metadata = o.custom_metadata;
  begin_step(d, step, meta);

  // A save that fails (keys that cannot be stored, a full disk, a failing hook) takes its uncommitted
  // directory with it: nothing in it could ever be committed, and it may hold much of a checkpoint.
  try {
    const bool v3 = o.pytree.zarr_format == 3;
    for (const auto& [name, tree_ptr] : items) {
      const dynamic_tree& tree = *tree_ptr;
      check_item_name(name);
      if (tree.type() == dynamic_tree::kind::json) {
        write_json_item(d.tmp, name, tree, o);
        meta.set_handler(name, std::string(v3 ? handler_typestr::json_v1 : handler_typestr::json));
      } else {
        (void)write_pytree_item_impl(d.tmp / name, tree, o.pytree, 0, 1, /*in_uncommitted_step=*/true);
        meta.set_handler(name, std::string(v3 ? handler_typestr::pytree_v1 : handler_typestr::standard));
      }
      if (o.pytree.fsync == kvstore::fsync_policy::file_and_directory) detail::fsync_dir(d.tmp / name);
    }
    if (before_commit) before_commit(step, d.tmp);
    commit_step(root, d, meta, o);  // after its rename, nothing is left under `d.tmp` to remove
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(d.tmp, ec);  // best effort: the save's own error is the one to report
    throw;
  }
  return d.final_dir;
}

// The multi-process save (ARCHITECTURE.md §3): three collective steps, each naming the step.
//  1. save.begin — the primary checks that the step is new, prepares the temporary directory and writes
//     the first `_CHECKPOINT_METADATA`; everyone learns whether to go on.
//  2. save.written — every process writes its part of each item (its shards in `ocdbt.process_<i>/`)
//     and reports it (or its failure) to the primary, with a fingerprint of its tree.
//  3. The primary compares the fingerprints, merges each item's databases by reference, writes the
//     metadata and commits with the rename; everyone learns the verdict, so no process returns before
//     the commit, and a failure anywhere (a dead rank included) fails the save everywhere, uncommitted.
inline std::filesystem::path detail::save_collective(const std::filesystem::path& root, std::int64_t step, const item_refs& items,
                                                     const save_options& o, const before_commit_hook& before_commit) {
  any_coordinator c = o.coordinator;
  const int me = c.process_index();
  const int count = c.process_count();
  const std::string what = "step " + std::to_string(step);
  const step_dirs d = dirs_of(root, step, o.naming);
  const std::filesystem::path& tmp = d.tmp;
  const bool v3 = o.pytree.zarr_format == 3;
  checkpoint_metadata meta;
  meta.metrics = o.metrics;
  meta.custom_metadata = o.custom_metadata;

  (void)detail::decided_by_primary(c, {"save.begin", step}, o.timeout, [&] {
    for (const auto& [name, tree] : items) check_item_name(name);
    begin_step(d, step, meta);
    return std::string();
  });

  // This process's part: "<has database> <fingerprint>" per PyTree item, or "!" and its failure.
  std::vector<pytree_item_part> parts;
  std::string report;
  try {
    for (const auto& [name, tree_ptr] : items) {
      const dynamic_tree& tree = *tree_ptr;
      if (tree.type() == dynamic_tree::kind::json) {
        if (me == 0) write_json_item(tmp, name, tree, o);
        continue;
      }
      parts.push_back(write_pytree_item_part(tmp / name, tree, o.pytree, me, count));
      if (o.pytree.fsync == kvstore::fsync_policy::file_and_directory) {
        fsync_dir(tmp / name);
        if (parts.back().has_database) fsync_dir(tmp / name / ("ocdbt.process_" + std::to_string(me)));
      }
      report += (parts.back().has_database ? "1 " : "0 ") + std::to_string(fingerprint(parts.back())) + ";";
    }
  } catch (...) {
    report = "!" + encode_failure(std::current_exception());
  }

  std::string verdict = agree(c, {"save.written", step}, std::move(report), o.timeout, o.timeout, [&](const std::vector<std::string>& all) {
    for (int r = 0; r < count; ++r)
      if (const auto& m = all[static_cast<std::size_t>(r)]; !m.empty() && m.front() == '!') {
        const auto sp = m.find(' ');
        // Keep the failing process's error code; name the process.
        return m.substr(1, sp == std::string::npos ? std::string::npos : sp) + "process " + std::to_string(r) + ": " +
               (sp == std::string::npos ? std::string() : m.substr(sp + 1));
      }
    std::vector<std::vector<int>> with_database(parts.size());
    for (int r = 0; r < count; ++r) {
      const std::string& m = all[static_cast<std::size_t>(r)];
      std::size_t at = 0;
      for (std::size_t k = 0; k < parts.size(); ++k) {
        const auto end = m.find(';', at);
        const auto sp = m.find(' ', at);
        if (end == std::string::npos || sp == std::string::npos || sp > end)
          throw error(errc::invalid_argument, what + ": process " + std::to_string(r) + " reported a malformed part \"" + m + "\"");
        if (m.compare(at, 1, "1") == 0) with_database[k].push_back(r);
        if (m.substr(sp + 1, end - sp - 1) != std::to_string(fingerprint(parts[k])))
          throw error(errc::invalid_argument, what + ", item \"" + items[k].first + "\": process " + std::to_string(r) +
                                                  " saved a tree that differs from the primary's (keys, dtypes, shapes, shardings or strings); "
                                                  "every process must save the same structure");
        at = end + 1;
      }
    }
    std::size_t k = 0;
    for (const auto& [name, tree_ptr] : items) {
      if (tree_ptr->type() == dynamic_tree::kind::json) {
        meta.set_handler(name, std::string(v3 ? handler_typestr::json_v1 : handler_typestr::json));
        continue;
      }
      finish_pytree_item(tmp / name, parts[k], with_database[k], o.pytree);
      if (o.pytree.fsync == kvstore::fsync_policy::file_and_directory) fsync_dir(tmp / name);
      meta.set_handler(name, std::string(v3 ? handler_typestr::pytree_v1 : handler_typestr::standard));
      ++k;
    }
    if (before_commit) before_commit(step, tmp);
    commit_step(root, d, meta, o);
    return std::string();
  });
  if (!verdict.empty()) rethrow_remote(verdict, {});
  return d.final_dir;
}

/// Saves one tree as item `default` (what Orbax's CheckpointManager does with a single item).
inline std::filesystem::path save(const std::filesystem::path& root, std::int64_t step, const dynamic_tree& tree,
                                  const save_options& o) {
  return detail::save_item_refs(root, step, {{"default", &tree}}, o);
}
/// As above with the default options.
inline std::filesystem::path save(const std::filesystem::path& root, std::int64_t step, const dynamic_tree& tree) {
  static const save_options defaults;
  return save(root, step, tree, defaults);
}

}  // namespace cairn
