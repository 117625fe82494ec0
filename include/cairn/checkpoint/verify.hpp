// SPDX-License-Identifier: Apache-2.0
/// \file
/// `cairn::verify`: decodes every B+tree node (checking its CRC-32C), every zarr chunk of every array
/// leaf (shard-index CRC-32C, zstd frame and content checksums where present, exact sizes), and
/// checks that every `_METADATA` leaf has its data — reporting each problem with its location
/// instead of stopping at the first.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/pytree_item.hpp>
#include <cairn/ocdbt/reader.hpp>

namespace cairn {

/// What `verify` found.
struct verify_report {
  std::size_t items = 0;
  std::size_t leaves = 0;         ///< array and scalar leaves decoded
  std::uint64_t bytes = 0;        ///< decoded bytes
  std::vector<std::string> problems;  ///< each names the step, item, leaf or key and what is wrong
  bool ok() const noexcept { return problems.empty(); }
};

/// The PyTree items a path denotes: an item directory, a step's items, or those of a root's latest step.
/// \throws cairn::error (errc::not_found) if `path` holds no checkpoint.
inline std::vector<std::pair<std::string, std::filesystem::path>> pytree_items_of(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) throw error(errc::not_found, "\"" + path.string() + "\" is not a directory");
  if (detail::is_pytree_dir(path)) return {{"", path}};
  fs::path step = path;
  if (!fs::exists(path / "_CHECKPOINT_METADATA") && !fs::exists(path / "orbax.checkpoint")) {
    auto steps = list_steps(path);
    if (!steps.empty()) step = steps.back().path;
    else if (list_items(path).empty())
      throw error(errc::not_found, "\"" + path.string() + "\": no checkpoint (no committed step, step or item here)");
  }
  std::vector<std::pair<std::string, fs::path>> out;
  for (const auto& e : list_items(step))
    if (e.present && e.kind == item_kind::pytree) out.emplace_back(e.name, e.path);
  return out;
}

/// Checks everything a checkpoint (root, step or item) stores. Never throws for damaged data: damage
/// is reported in the result.
inline verify_report verify(const std::filesystem::path& path) {
  verify_report report;
  auto attempt = [&](const std::string& where, auto&& f) {
    try {
      f();
      return true;
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (msg.rfind("cairn: ", 0) == 0) msg.erase(0, 7);
      // Errors from deeper layers usually name the item already; say where only when they do not.
      report.problems.push_back(msg.rfind(where.substr(0, where.find(',')), 0) == 0 ? msg : where + ": " + msg);
      return false;
    }
  };
  std::vector<std::pair<std::string, std::filesystem::path>> items;
  attempt("\"" + path.string() + "\"", [&] { items = pytree_items_of(path); });
  for (const auto& [item, dir] : items) {
    ++report.items;
    const std::string what = item.empty() ? "item \"" + dir.string() + "\"" : "item \"" + item + "\"";
    std::optional<pytree_item> it;
    if (!attempt(what, [&] { it.emplace(dir, what); })) continue;
    if (std::filesystem::exists(dir / "manifest.ocdbt"))  // listing decodes every node, CRCs included
      attempt(what + ", OCDBT database", [&] { ocdbt::reader(kvstore::open_file(dir, kvstore::fsync_policy::none), what).list(); });
    std::vector<leaf_info> leaves;
    if (!attempt(what, [&] { leaves = it->describe(); })) continue;
    const bool strict = !it->metadata() || it->metadata()->store_array_data_equal_to_fill_value;
    for (const auto& l : leaves) {
      if (!l.type) continue;
      attempt(what + ", leaf \"" + l.name + "\"", [&] {
        auto a = it->read_array(l.name, strict);
        ++report.leaves;
        report.bytes += a.num_bytes();
      });
    }
  }
  return report;
}

}  // namespace cairn
