// SPDX-License-Identifier: Apache-2.0
/// \file
/// Saving and restoring C++ types (std containers, registered structs, custom leaves) as Orbax PyTree
/// items. A save stages every leaf on the caller's thread — custom leaves through their handlers; host
/// arrays are read in place by `cairn::save`, which returns only once they are written, and copied by
/// the checkpoint manager, whose save continues in the background — and writes an ordinary item: a
/// struct saved by cairn restores in Python as a
/// nested dict with the same names. A restore is strict by default — before any data is read, the
/// target is matched against `_METADATA` and one error lists every missing key, unexpected key, shape
/// and dtype mismatch — and never leaves the target half-written unannounced: everything is read into
/// staging first and assigned only when every leaf has been read; if a custom leaf then rejects its
/// value, the error lists the leaves already written. With `restore_options::in_place`, host arrays
/// that already have the saved dtype and shape are read straight into their own bytes (no second copy
/// of the state in memory); a failure then names the leaves written, wholly or in part.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/pytree_item.hpp>
#include <cairn/core/convert.hpp>
#include <cairn/core/arena.hpp>
#include <cairn/core/parallel.hpp>
#include <cairn/handlers/leaf_handler.hpp>
#include <cairn/handlers/sharded_leaf.hpp>
#include <cairn/handlers/walk.hpp>
#include <cairn/tree/dynamic_tree.hpp>

namespace cairn {

namespace detail {
struct stage_visitor {
  dynamic_tree root;
  const std::function<std::optional<dtype>(const std::string&, dtype)>* cast = nullptr;

  void place(const key_path& path, dynamic_tree value) {
    if (path.empty()) {
      root = std::move(value);
      last_path = key_path();
      last_nodes.clear();
      return;
    }
    // A walker visits leaves in order, so a path shares its first keys with the one before: the leaf
    // is placed from the node where they part, not looked up level by level from the root.
    std::size_t common = 0;
    const std::size_t limit = std::min(path.size() - 1, last_path.size());
    while (common < limit && path[common] == last_path[common]) ++common;
    if (last_nodes.empty()) last_nodes.push_back(&root);
    last_nodes.resize(common + 1);
    dynamic_tree* node = last_nodes[common];
    for (std::size_t i = common; i < path.size(); ++i) {
      const key& k = path[i];
      if (k.is_name()) {
        if (!node->is_map()) *node = dynamic_tree(dynamic_tree::map_type{});
        auto& m = node->as_map();
        // Names mostly come in ascending order (maps are walked so): then the new one goes last.
        node = !m.empty() && m.rbegin()->first < k.name() ? &m.emplace_hint(m.end(), k.name(), dynamic_tree())->second
                                                           : &m[k.name()];
      } else {
        if (!node->is_list()) *node = dynamic_tree(dynamic_tree::list_type{});
        auto& l = node->as_list();
        const auto idx = static_cast<std::size_t>(k.index());
        if (l.size() <= idx) l.resize(idx + 1);  // moves the elements: nothing below this level is kept
        node = &l[idx];
      }
      last_nodes.push_back(node);
    }
    *node = std::move(value);
    last_path = path;
  }
  // The last placed path and the nodes along it (last_nodes[i] at depth i; the root first). Map
  // nodes never move; a list's elements move only when it grows, and below that level nothing is
  // kept once it does.
  key_path last_path;
  std::vector<dynamic_tree*> last_nodes;
  /// Buffers of an earlier staging of the same tree, reused (copied into) where a leaf's path, dtype
  /// and shape match: no allocation and no page faults on a repeated save.
  dynamic_tree* recycle = nullptr;

  static dynamic_tree* find(dynamic_tree& t, const key_path& path) {
    dynamic_tree* node = &t;
    for (const auto& k : path) {
      if (k.is_name() && node->is_map()) {
        auto it = node->as_map().find(k.name());
        if (it == node->as_map().end()) return nullptr;
        node = &it->second;
      } else if (k.is_index() && node->is_list() && static_cast<std::size_t>(k.index()) < node->as_list().size()) {
        node = &node->as_list()[static_cast<std::size_t>(k.index())];
      } else {
        return nullptr;
      }
    }
    return node;
  }

  /// A synchronous save's staging: host arrays are borrowed (read in place), not copied.
  bool borrow = false;

  template <class T>
  void leaf(const key_path& path, const T& v) {
    if constexpr (std::same_as<T, host_array>) {
      if (borrow && !(cast && *cast)) {
        place(path, host_array::borrowing(v));
        return;
      }
      if (recycle && !(cast && *cast) && v.view().is_c_contiguous())
        if (dynamic_tree* old = find(*recycle, path); old && old->type() == dynamic_tree::kind::array) {
          host_array& buf = old->as_array();
          if (buf.type() == v.type() && buf.shape() == v.shape()) {
            copy_bytes(buf.mutable_bytes().data(), v.bytes().data(), v.num_bytes());
            place(path, std::move(buf));
            return;
          }
        }
    }
    dynamic_tree staged = stage_leaf(v);
    if (cast && *cast && staged.type() == dynamic_tree::kind::array) {
      if (auto to = (*cast)(param_name(path), staged.as_array().type()); to && *to != staged.as_array().type())
        staged = convert(staged.as_array().view(), *to);
    } else if (cast && *cast && staged.type() == dynamic_tree::kind::sharded) {
      sharded_array& a = staged.as_sharded();
      if (auto to = (*cast)(param_name(path), a.type()); to && *to != a.type()) {
        for (auto& sh : a.shards()) sh.data = convert(sh.data.view(), *to);
        staged = sharded_array(*to, a.shape(), a.sharding(), std::move(a.shards()));
      }
    }
    place(path, std::move(staged));
  }
  void empty(const key_path& path, empty_node kind) {
    place(path, kind == empty_node::dict ? dynamic_tree(dynamic_tree::map_type{}) : dynamic_tree(dynamic_tree::list_type{}));
  }
  template <class T>
  void optional(const key_path& path, const std::optional<T>& v) {
    if (v) {
      key_path p = path;
      walk_tree(*v, p, *this);
    } else {
      place(path, empty_node::none);
    }
  }
  template <class T>
  void node(const key_path&, const T&) {}
};
}  // namespace detail

/// Stages a C++ tree into a dynamic tree (copies every leaf).
template <class T>
dynamic_tree to_dynamic(const T& tree) {
  detail::stage_visitor v;
  key_path path;
  walk_tree(tree, path, v);
  return std::move(v.root);
}

/// Options of a typed save.
struct typed_save_options {
  save_options base;
  std::string item = "default";
  /// Per-parameter dtype cast on save, e.g. float32 weights stored as bfloat16.
  std::function<std::optional<dtype>(const std::string& param, dtype)> cast;
};

/// Saves a C++ tree as step `step` under `root` (item `options.item`).
template <class T>
  requires(!std::same_as<T, dynamic_tree>)
std::filesystem::path save(const std::filesystem::path& root, std::int64_t step, const T& tree, const typed_save_options& options) {
  detail::stage_visitor v;
  v.cast = &options.cast;
  v.borrow = true;  // the save is done before this returns: the caller's arrays are read in place
  key_path path;
  walk_tree(tree, path, v);
  return detail::save_item_refs(root, step, {{options.item, &v.root}}, options.base);
}
/// As above with the default options. (An overload, not a `= {}` default argument: g++ 12 reports a
/// defaulted options temporary as maybe-uninitialized at every call site.)
template <class T>
  requires(!std::same_as<T, dynamic_tree>)
std::filesystem::path save(const std::filesystem::path& root, std::int64_t step, const T& tree) {
  static const typed_save_options defaults;
  return save(root, step, tree, defaults);
}

/// Options of a typed restore.
struct restore_options {
  std::string item = "default";  ///< the item of a step or root (ignored for an item directory)
  step_naming naming;
  /// Restore only the leaves present both in the target and in the checkpoint; the rest of the
  /// target is left untouched and unexpected saved leaves are ignored.
  bool partial = false;
  /// Target leaves absent from the checkpoint are left untouched and reported instead of failing.
  bool allow_missing = false;
  /// Convert saved dtypes to the target's instead of failing on a dtype mismatch.
  bool cast = false;
  /// Maps a target parameter name to the saved one (nullopt: not in the checkpoint). Applied first.
  std::function<std::optional<std::string>(const std::string&)> remap;
  /// Regex rules `{pattern, replacement}` applied to target parameter names (the first that matches
  /// wins), like Orbax transforms.
  std::vector<std::pair<std::string, std::string>> rules;
  /// Devices available to sharded leaves restored with their saved sharding (ids 0..n-1; unset: any).
  /// A saved mesh using other ids is an error that asks for a target sharding.
  std::optional<int> device_count;
  /// The processes restoring together (default: this one). With several, a root's latest step is the
  /// primary's choice, broadcast, so a step committed meanwhile cannot split the job.
  any_coordinator coordinator{};
  /// How long the others wait for the primary's choice of step.
  collective_timeout timeout = std::chrono::minutes(5);
  /// Read each host-array leaf whose target already has the saved dtype and shape straight into the
  /// target's bytes (as PyTorch DCP loads into preallocated tensors), instead of into a new array
  /// that then replaces it: a training loop resuming into its live state needs no second copy of
  /// it in memory, and no new pages. Views and pointers into those arrays see the restored values.
  /// Leaves that do not match (and casts) are staged as usual. If reading fails, the error names the
  /// leaves written in place, wholly or in part; the other leaves are untouched.
  bool in_place = false;
};

/// What a restore did.
struct restore_report {
  std::vector<std::string> restored;    ///< target parameter names written
  std::vector<std::string> missing;     ///< target leaves not in the checkpoint (allow_missing / partial)
  std::vector<std::string> unexpected;  ///< saved leaves the target has no place for (partial)
  std::vector<std::string> cast;        ///< leaves converted to the target's dtype
};

namespace detail {

// A saved leaf; a restore keeps them in a vector sorted by path.
struct saved_leaf {
  const key_path* path;         // into the open item's metadata, or the restore's own list
  std::string_view value_type;  // likewise, or a constant
};
inline bool saved_path_less(const saved_leaf& s, const key_path& p) { return *s.path < p; }

// One per target leaf: a restore of 100,000 leaves holds them all, so they are kept small (a function
// pointer, not a std::function; no copy of the path, whose name is enough).
struct target_leaf {
  std::string name;
  leaf_expectation expect;
  void (*assign_to)(void* target, dynamic_tree&& stored);
  void* target;
  host_array* array = nullptr;  // the target itself when it is a host array (restore_options::in_place)

  void assign(dynamic_tree&& stored) const { assign_to(target, std::move(stored)); }
};

// Collects the target's leaves and sizes run-time nodes from the saved keys.
struct restore_visitor {
  const std::vector<saved_leaf>* saved;  // sorted by path
  std::vector<target_leaf> leaves;

  std::vector<key> saved_children(const key_path& path) const {
    // Saved paths are ordered, and every path under `path` sorts right after it: scan only those.
    std::vector<key> out;
    for (auto it = std::lower_bound(saved->begin(), saved->end(), path, saved_path_less); it != saved->end(); ++it) {
      const key_path& p = *it->path;
      bool prefix = p.size() >= path.size();
      for (std::size_t i = 0; i < path.size() && prefix; ++i) prefix = p[i] == path[i];
      if (!prefix) break;
      if (p.size() == path.size()) continue;
      if (out.empty() || out.back() != p[path.size()]) out.push_back(p[path.size()]);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }
  template <class T>
  void leaf(const key_path& path, T& v) {
    host_array* array = nullptr;
    if constexpr (std::same_as<T, host_array>) array = &v;
    leaves.push_back({param_name(path), expect_leaf(std::as_const(v)),
                      [](void* target, dynamic_tree&& stored) { restore_leaf(*static_cast<T*>(target), std::move(stored)); },
                      static_cast<void*>(std::addressof(v)), array});
  }
  void empty(const key_path&, empty_node) {}
  template <class T>
  void optional(const key_path& path, std::optional<T>& v) {
    // An absent optional becomes present when the checkpoint has its subtree.
    if (!v && !saved_children(path).empty()) v.emplace();
    if (!v) {
      const auto it = std::lower_bound(saved->begin(), saved->end(), path, saved_path_less);
      if (it != saved->end() && *it->path == path) v.emplace();
    }
    if (v) {
      key_path p = path;
      walk_tree(*v, p, *this);
    }
  }
  template <class T>
  void node(const key_path& path, T& n) {
    using U = std::remove_const_t<T>;
    if constexpr (detail::is_std_map<U>::value) {
      // An empty map takes the keys saved under it (when its values can be made without arguments).
      if constexpr (std::is_default_constructible_v<typename U::mapped_type>)
        if (n.empty())
          for (const auto& k : saved_children(path))
            if (k.is_name()) n.emplace(k.name(), typename U::mapped_type{});
    } else if constexpr (detail::is_std_vector<U>::value) {
      if constexpr (std::is_default_constructible_v<typename U::value_type>)
        if (n.empty()) {
          std::size_t count = 0;
          for (const auto& k : saved_children(path))
            if (k.is_index()) count = std::max(count, static_cast<std::size_t>(k.index()) + 1);
          n.resize(count);
        }
    } else if constexpr (requires(std::span<const key> keys) { tree_traits<U>::prepare(n, keys); }) {
      auto keys = saved_children(path);
      tree_traits<U>::prepare(n, std::span<const key>(keys));
    }
  }
};

inline std::filesystem::path resolve_item_dir(const std::filesystem::path& path, const restore_options& o) {
  if (is_pytree_dir(path)) return path;
  std::filesystem::path step = path;
  if (!std::filesystem::exists(path / "_CHECKPOINT_METADATA") && !std::filesystem::exists(path / "orbax.checkpoint")) {
    any_coordinator c = o.coordinator;
    step = path / detail::decided_by_primary(c, {"restore.step"}, o.timeout, [&] {  // the step directory's name
             const auto steps = list_steps(path, o.naming);
             if (steps.empty()) throw error(errc::not_found, "\"" + path.string() + "\": no committed step to restore");
             return steps.back().path.filename().string();
           });
  }
  const auto dir = step / o.item;
  if (!std::filesystem::is_directory(dir))
    throw error(errc::not_found, "\"" + step.string() + "\": no item \"" + o.item + "\"");
  return dir;
}

// The placement of a sharded leaf: the target's, else the saved one if the devices allow it.
inline sharded_array read_sharded_leaf(const pytree_item& item, const std::string& param, const zarr::array& a,
                                       const leaf_expectation& want, std::optional<int> device_count, bool strict_chunks,
                                       bool cast) {
  const std::string where = item.name() + ", leaf \"" + param + "\"";
  named_sharding target;
  if (want.sharding) {
    target = *want.sharding;
  } else {
    auto it = item.shardings().find(param);
    if (it == item.shardings().end())
      throw error(errc::not_found, where + ": the target has no sharding and " +
                                       (item.sharding_error().empty() ? std::string("_sharding records none for it")
                                                                      : "_sharding is unreadable (" + item.sharding_error() + ")") +
                                       "; restore into cairn::sharded_array::placed(sharding)");
    try {
      target = parse_sharding_json(it->second, where + ", _sharding");
    } catch (const error& e) {
      // Mesh and spec errors do not know the leaf; name it.
      if (e.context().find(where) != std::string::npos) throw;
      throw error(e.code(), where + ", _sharding: " + e.context());
    }
    if (device_count)
      for (int id : target.mesh().device_ids())
        if (id >= *device_count)
          throw error(errc::invalid_sharding, where + ": the saved sharding " + to_string(target, a.type(), a.shape()) +
                                                  " uses device " + std::to_string(id) + ", but restore_options::device_count is " +
                                                  std::to_string(*device_count) +
                                                  "; restore into cairn::sharded_array::placed(sharding) with a mesh of these devices");
  }
  sharded_array out = pytree_item::read_sharded(a, target, want.devices, strict_chunks);
  if (cast && want.type)
    for (auto& sh : out.shards()) sh.data = convert(sh.data.view(), *want.type);
  if (cast && want.type) return sharded_array(*want.type, out.shape(), out.sharding(), std::move(out.shards()));
  return out;
}

inline bool is_array_type(std::string_view t) { return t == value_type::jax_array || t == value_type::np_ndarray; }

/// A restore whose new arrays below `byte_buffer::large_size` number at least `parallel_leaf_threshold`
/// and take at least this many bytes puts them in one `host_arena`.
inline constexpr std::size_t restore_arena_min_bytes = std::size_t{2} << 20;
}  // namespace detail

/// Restores the checkpoint at `path` (a root's latest step, a step or an item directory) into `target`.
/// \throws cairn::error listing every mismatch at once (errc::shape_mismatch if any shape differs, else
///         errc::type_mismatch for a dtype or leaf-kind difference, else errc::not_found) before any data
///         is read; errors naming the leaf if reading fails — the target is then unchanged.
/// \post Host-array leaves restored as new arrays are the checkpoint's; when there are many small ones
///       they share one block of memory (`host_arena`), freed once the last of them is released.
template <class T>
restore_report restore(const std::filesystem::path& path, T& target, const restore_options& o);
/// As above with the default options (an overload: g++ 12 reports a defaulted options temporary as
/// maybe-uninitialized at call sites).
template <class T>
restore_report restore(const std::filesystem::path& path, T& target) {
  static const restore_options defaults;
  return restore(path, target, defaults);
}

template <class T>
restore_report restore(const std::filesystem::path& path, T& target, const restore_options& o) {
  const auto dir = detail::resolve_item_dir(path, o);
  pytree_item item(dir, "item \"" + dir.string() + "\"");
  // Sorted vectors rather than maps: a restore of many leaves made three allocations per leaf for them.
  std::vector<key_path> array_paths;  // an item without `_METADATA`: its arrays' names
  std::vector<detail::saved_leaf> saved;
  if (item.metadata()) {
    saved.reserve(item.metadata()->entries.size());
    for (const auto& e : item.metadata()->entries)
      if (!value_type::is_empty_node(e.value_type)) saved.push_back({&e.path, e.value_type});
  } else {
    for (const auto& name : item.array_names()) array_paths.push_back(key_path{key(name)});
    for (const auto& p : array_paths) saved.push_back({&p, value_type::np_ndarray});
  }
  // Both orders below usually hold already (Orbax and cairn write `_METADATA` sorted): checking costs
  // a comparison per leaf, sorting some twenty.
  auto path_less = [](const detail::saved_leaf& a, const detail::saved_leaf& b) { return detail::saved_path_less(a, *b.path); };
  if (!std::is_sorted(saved.begin(), saved.end(), path_less))
    std::stable_sort(saved.begin(), saved.end(), path_less);  // a repeated path: the first entry counts
  saved.erase(std::unique(saved.begin(), saved.end(), [](const auto& a, const auto& b) { return *a.path == *b.path; }), saved.end());
  struct saved_name_entry {
    std::string name;
    const detail::saved_leaf* leaf;
    bool used = false;  // matched by a target leaf
  };
  std::vector<saved_name_entry> by_name;  // sorted by name
  by_name.reserve(saved.size());
  for (const auto& s : saved) by_name.push_back({param_name(*s.path), &s});
  auto name_less = [](const saved_name_entry& a, const saved_name_entry& b) { return a.name < b.name; };
  if (!std::is_sorted(by_name.begin(), by_name.end(), name_less)) std::stable_sort(by_name.begin(), by_name.end(), name_less);
  by_name.erase(std::unique(by_name.begin(), by_name.end(), [](const auto& a, const auto& b) { return a.name == b.name; }),
                by_name.end());

  detail::restore_visitor visitor{&saved, {}};
  visitor.leaves.reserve(saved.size());  // usually the target's count: one allocation, no moves
  key_path root;
  walk_tree(target, root, visitor);

  std::vector<std::regex> compiled;
  for (const auto& [pattern, _] : o.rules) compiled.emplace_back(pattern);
  auto saved_name = [&](const std::string& name) -> std::optional<std::string> {
    std::optional<std::string> n = name;
    if (o.remap) n = o.remap(name);
    if (!n) return std::nullopt;
    for (std::size_t i = 0; i < compiled.size(); ++i)
      if (std::regex_match(*n, compiled[i])) return std::regex_replace(*n, compiled[i], o.rules[i].second);
    return n;
  };

  // Match everything before reading anything.
  restore_report report;
  std::vector<std::string> missing, unexpected, shape_problems, type_problems;
  struct plan_entry {
    detail::target_leaf* leaf;
    std::string saved;
    std::string_view value_type;
    bool cast = false;
    std::optional<zarr::array> array;  // opened once, for the checks and the read
  };
  std::vector<plan_entry> plan;
  plan.reserve(visitor.leaves.size());
  for (auto& t : visitor.leaves) {
    auto name = saved_name(t.name);
    auto it = name ? std::lower_bound(by_name.begin(), by_name.end(), *name,
                                      [](const saved_name_entry& e, const std::string& n) { return e.name < n; })
                   : by_name.end();
    if (it != by_name.end() && it->name != *name) it = by_name.end();
    if (it == by_name.end()) {
      (o.allow_missing || o.partial ? report.missing : missing).push_back(t.name);
      continue;
    }
    it->used = true;
    const std::string_view vt = it->leaf->value_type;
    const bool want_array = t.expect.value_type == "array", want_scalar = t.expect.value_type == "scalar";
    const bool kind_ok = want_array ? detail::is_array_type(vt)
                         : want_scalar ? (vt == value_type::scalar || detail::is_array_type(vt))
                                       : vt == t.expect.value_type;
    if (!kind_ok) {
      type_problems.push_back("\"" + t.name + "\": checkpoint holds a " + std::string(vt) + ", target expects a " + std::string(t.expect.value_type));
      continue;
    }
    plan_entry pe{&t, std::move(*name), vt, false, std::nullopt};
    if (want_array || want_scalar) {
      const auto& md = pe.array.emplace(item.open_array(pe.saved)).metadata();
      auto on_disk = [&] { return std::string(info(md.type).short_name) + to_string(md.shape); };  // for messages only
      if (t.expect.shape && md.shape != *t.expect.shape)
        shape_problems.push_back("\"" + t.name + "\": checkpoint " + on_disk() + ", target " +
                                 std::string(info(t.expect.type.value_or(md.type)).short_name) + to_string(*t.expect.shape));
      if (t.expect.sharding) {
        try {
          (void)t.expect.sharding->shard_shape(md.shape);
        } catch (const error& e) {
          shape_problems.push_back("\"" + t.name + "\": checkpoint " + on_disk() + ", target sharding " +
                                   to_string(*t.expect.sharding) + ": " + e.what());
        }
      }
      if (t.expect.type && md.type != *t.expect.type) {
        if (o.cast && convertible(md.type, *t.expect.type)) pe.cast = true;
        else
          type_problems.push_back("\"" + t.name + "\": checkpoint dtype " + std::string(name_of(md.type)) + ", target " +
                                  std::string(name_of(*t.expect.type)));
      }
    }
    plan.push_back(std::move(pe));
  }
  for (const auto& entry : by_name)
    if (!entry.used) (o.partial ? report.unexpected : unexpected).push_back(entry.name);

  const std::size_t problems = missing.size() + unexpected.size() + shape_problems.size() + type_problems.size();
  if (problems) {
    std::string msg = "restore " + item.name() + " into the target: ";
    auto count = [](std::size_t n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); };
    std::vector<std::string> parts;
    if (!missing.empty()) parts.push_back(count(missing.size(), "missing key"));
    if (!unexpected.empty()) parts.push_back(count(unexpected.size(), "unexpected key"));
    if (!shape_problems.empty()) parts.push_back(count(shape_problems.size(), "shape mismatch") );
    if (!type_problems.empty()) parts.push_back(count(type_problems.size(), "type mismatch"));
    for (std::size_t i = 0; i < parts.size(); ++i) msg += (i ? ", " : "") + parts[i];
    for (const auto& m : missing) msg += "\n  missing: \"" + m + "\" is not in the checkpoint";
    for (const auto& u : unexpected) msg += "\n  unexpected: \"" + u + "\" is in the checkpoint but not in the target";
    for (const auto& s : shape_problems) msg += "\n  shape mismatch: " + s;
    for (const auto& s : type_problems) msg += "\n  type mismatch: " + s;
    const errc code = !shape_problems.empty() ? errc::shape_mismatch
                      : !type_problems.empty() ? errc::type_mismatch
                                               : errc::not_found;
    throw error(code, msg);
  }

  // Read every leaf into staging; assign only when all reads have succeeded. Large restores, and
  // restores of many leaves, read several leaves at once (I/O of one overlaps decoding of another;
  // many small reads share out their lookups and decoding); the first failure in leaf order is reported.
  const bool strict_chunks = !item.metadata() || item.metadata()->store_array_data_equal_to_fill_value;
  std::vector<dynamic_tree> staged(plan.size());
  enum class in_place : char { no, started, done };
  std::vector<in_place> written(plan.size(), in_place::no);  // each entry touched by its leaf's reader only
  auto reads_in_place = [&](const plan_entry& p) {
    const host_array* t = p.leaf->array;
    return o.in_place && t && !p.cast && p.array && p.leaf->expect.value_type == "array" && !t->borrows() &&
           t->type() == p.array->type() && t->shape() == p.array->shape();
  };
  // Many small arrays restored anew share one block of memory (`host_arena`): filling thousands of
  // separately allocated fresh pages cost more than reading their bytes.
  constexpr std::size_t no_arena = SIZE_MAX;
  std::optional<host_arena> arena;
  std::vector<std::size_t> arena_at(plan.size(), no_arena);  // where each leaf's array goes, if there
  {
    std::size_t count = 0, bytes = 0;
    auto in_arena = [&](const plan_entry& p) {
      return p.array && !p.cast && p.leaf->expect.value_type == "array" && !p.leaf->expect.sharded && !reads_in_place(p) &&
             static_cast<std::size_t>(p.array->shape().num_elements()) * size_of(p.array->type()) < byte_buffer::large_size;
    };
    for (const auto& p : plan)
      if (in_arena(p)) ++count, bytes += host_arena::footprint(p.array->type(), p.array->shape());
    if (count >= parallel_leaf_threshold && bytes >= detail::restore_arena_min_bytes) {
      arena.emplace(bytes);
      for (std::size_t i = 0; i < plan.size(); ++i)
        if (in_arena(plan[i])) arena_at[i] = arena->reserve(plan[i].array->type(), plan[i].array->shape());
    }
  }
  auto read_one = [&](std::size_t i) {
    auto& p = plan[i];
    const auto& want = p.leaf->expect;
    if (reads_in_place(p)) {
      host_array* t = p.leaf->array;
      written[i] = in_place::started;
      pytree_item::read_array_into(*p.array, t->mutable_view(), strict_chunks);
      written[i] = in_place::done;
      return;
    }
    if (arena_at[i] != no_arena) {
      host_array a = arena->array_at(arena_at[i], p.array->type(), p.array->shape());
      pytree_item::read_array_into(*p.array, a.mutable_view(), strict_chunks);
      staged[i] = std::move(a);
      return;
    }
    if (want.value_type == "string") {
      auto it = item.strings().find(p.saved);
      if (it == item.strings().end())
        throw error(errc::not_found, item.name() + ", leaf \"" + p.saved + "\": no entry in _strings.json");
      staged[i] = it->second;
      return;
    }
    if (want.sharded) {
      staged[i] = detail::read_sharded_leaf(item, p.saved, *p.array, want, o.device_count, strict_chunks, p.cast);
      return;
    }
    host_array a = pytree_item::read_array(*p.array, strict_chunks);
    if (p.cast) a = convert(a.view(), *want.type);
    if (want.value_type == "scalar") {
      if (a.shape().rank() != 0)
        throw error(errc::shape_mismatch, item.name() + ", leaf \"" + p.saved + "\": a scalar target, but the checkpoint holds " +
                                              std::string(info(a.type()).short_name) + to_string(a.shape()));
      staged[i] = scalar::from_bytes(a.type(), a.bytes());
    } else {
      staged[i] = std::move(a);
    }
  };
  // Small arrays going to the arena or into the target are read in batches of neighbouring leaves:
  // the store reads values lying close together with one request (`read_many`), where a read per
  // leaf left the disk waiting between requests of a few KB. Everything else is read leaf by leaf.
  kvstore::driver* const driver = item.array_store().get_driver().get();  // the item keeps it alive
  auto decode_one = [&](std::size_t i, const kvstore::read_result& r) {
    auto& p = plan[i];
    if (r.missing()) return read_one(i);  // filled or reported the usual way
    if (reads_in_place(p)) {
      written[i] = in_place::started;
      p.array->decode_whole(r->view(), p.leaf->array->mutable_view());
      written[i] = in_place::done;
      return;
    }
    host_array a = arena->array_at(arena_at[i], p.array->type(), p.array->shape());
    p.array->decode_whole(r->view(), a.mutable_view());
    staged[i] = std::move(a);
  };
  constexpr std::size_t batch_leaves = 1024, batch_bytes = std::size_t{2} << 20;
  std::vector<std::size_t> batch_begin{0};
  std::uint64_t total_bytes = 0;
  {
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const std::size_t n = plan[i].array ? static_cast<std::size_t>(plan[i].array->shape().num_elements()) * size_of(plan[i].array->type()) : 0;
      if (i > batch_begin.back() && (i - batch_begin.back() >= batch_leaves || bytes + n > batch_bytes)) {
        batch_begin.push_back(i);
        bytes = 0;
      }
      bytes += n;
      total_bytes += n;
    }
    batch_begin.push_back(plan.size());
  }
  std::vector<std::exception_ptr> failed(plan.size());  // each entry touched by its leaf's reader only
  auto read_batch = [&](std::size_t b) {
    std::vector<std::string> keys;
    std::vector<std::size_t> leaf_of;  // the plan index of each key
    for (std::size_t i = batch_begin[b]; i < batch_begin[b + 1]; ++i) {
      const auto& p = plan[i];
      // Large arrays keep their streamed path (decoded while read, no buffer of their size).
      if (p.array && (arena_at[i] != no_arena || reads_in_place(p)) && p.array->store().get_driver().get() == driver &&
          static_cast<std::size_t>(p.array->shape().num_elements()) * size_of(p.array->type()) < byte_buffer::large_size)
        if (std::string key = p.array->whole_value_key(); !key.empty()) {
          keys.push_back(std::move(key));
          leaf_of.push_back(i);
          continue;
        }
      try {
        read_one(i);
      } catch (...) {
        failed[i] = std::current_exception();
      }
    }
    if (keys.empty()) return;
    const std::vector<std::string_view> views(keys.begin(), keys.end());
    std::vector<char> handed(keys.size(), 0);
    try {
      driver->read_many(views, [&](std::size_t j, kvstore::read_result&& r) {
        handed[j] = 1;
        try {
          decode_one(leaf_of[j], r);
        } catch (...) {
          failed[leaf_of[j]] = std::current_exception();
        }
      });
    } catch (...) {
      for (std::size_t j = 0; j < keys.size(); ++j)
        if (!handed[j]) failed[leaf_of[j]] = std::current_exception();
    }
  };
  const std::size_t batches = batch_begin.size() - 1;
  const unsigned threads = std::min<unsigned>(parallel_threads(plan.size(), total_bytes >= (std::uint64_t{32} << 20)),
                                              static_cast<unsigned>(std::max<std::size_t>(batches, 1)));
  for (const auto& e : parallel_for_each_index(batches, threads, read_batch))
    if (e) std::rethrow_exception(e);  // not a leaf's: out of memory for a batch's keys
  // Names the leaves already written (staged ones assigned before `upto`, and every one written in
  // place), for an error that leaves the target partly restored.
  auto written_list = [&](std::size_t upto) {
    std::string list;
    auto add = [&](const std::string& name, const char* how) { list += (list.empty() ? "\"" : ", \"") + name + "\"" + how; };
    for (std::size_t i = 0; i < plan.size(); ++i) {
      if (written[i] == in_place::done) add(plan[i].leaf->name, "");
      else if (written[i] == in_place::started) add(plan[i].leaf->name, " (in part)");
      else if (i < upto) add(plan[i].leaf->name, "");
    }
    return list.empty() ? std::string("none") : list;
  };
  for (std::size_t i = 0; i < plan.size(); ++i) {
    if (!failed[i]) continue;
    if (std::all_of(written.begin(), written.end(), [](in_place w) { return w == in_place::no; })) std::rethrow_exception(failed[i]);
    try {
      std::rethrow_exception(failed[i]);
    } catch (const error& e) {
      throw error(e.code(), e.context() + "; leaves written in place: " + written_list(0));
    }
  }
  for (const auto& p : plan)
    if (p.cast) report.cast.push_back(p.leaf->name);
  // Assigning can still fail in a custom leaf's from_leaf / restore; then say exactly what was written.
  for (std::size_t i = 0; i < plan.size(); ++i) {
    report.restored.push_back(plan[i].leaf->name);
    if (written[i] != in_place::no) continue;  // already in the target
    try {
      plan[i].leaf->assign(std::move(staged[i]));
    } catch (const std::exception& e) {
      const std::string context = item.name() + ", leaf \"" + plan[i].leaf->name + "\": " + e.what() +
                                  "; leaves already written to the target: " + written_list(i);
      if (const auto* ce = dynamic_cast<const error*>(&e)) throw error(ce->code(), context);
      throw error(errc::invalid_argument, context);
    }
  }
  return report;
}

}  // namespace cairn
