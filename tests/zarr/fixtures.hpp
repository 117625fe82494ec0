// SPDX-License-Identifier: Apache-2.0
/// \file
/// Test support for the zarr suites: the Orbax fixture databases (healthy and deliberately damaged item
/// directories) and every zarr metadata document they hold, read through `cairn::ocdbt::reader`.
#pragma once

#include <cairn/kvstore/file.hpp>
#include <cairn/ocdbt/reader.hpp>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/files.hpp"

namespace cairn_test {

/// True for paths under the fixtures that Orbax must refuse to load (`critical_metadata_alterations`).
inline bool is_damaged_fixture(const std::filesystem::path& p) {
  // A whole path component: "non_critical_metadata_alterations" contains the same words.
  for (const auto& part : p)
    if (part == "critical_metadata_alterations") return true;
  return false;
}

/// Every OCDBT database of the fixtures outside `critical_metadata_alterations` (item roots and the
/// per-process databases they reference).
inline std::vector<std::filesystem::path> healthy_databases(const std::filesystem::path& shared) {
  std::vector<std::filesystem::path> out;
  for (const auto& db : find_databases(shared / "fixtures" / "orbax-compat"))
    if (!is_damaged_fixture(db)) out.push_back(db);
  return out;
}

/// The item directories (those holding `_METADATA`) under `critical_metadata_alterations`.
inline std::vector<std::filesystem::path> damaged_items(const std::filesystem::path& shared) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(shared / "fixtures" / "orbax-compat"))
    if (e.is_regular_file() && e.path().filename() == "_METADATA" && is_damaged_fixture(e.path()))
      out.push_back(e.path().parent_path());
  std::sort(out.begin(), out.end());
  return out;
}

/// Opens the OCDBT database in `dir` as a read-only kvstore.
inline cairn::kvstore::store open_database(const std::filesystem::path& dir) {
  return cairn::kvstore::store(std::make_shared<cairn::ocdbt::reader>(
      cairn::kvstore::open_file(dir, cairn::kvstore::fsync_policy::none), "\"" + dir.string() + "\""));
}

/// One zarr metadata document found in a fixture database.
struct metadata_document {
  std::filesystem::path db;
  std::string key;   ///< e.g. "b.c/.zarray"
  std::string name;  ///< the param name, e.g. "b.c"
  std::string text;
};

/// Every key ending in `/.zarray` or `/zarr.json` (or equal to `.zarray` / `zarr.json`) of every healthy database.
inline std::vector<metadata_document> fixture_metadata(const std::filesystem::path& shared) {
  std::vector<metadata_document> out;
  for (const auto& db : healthy_databases(shared)) {
    auto store = open_database(db);
    for (const auto& e : cairn::kvstore::list(store)) {
      for (std::string_view leaf : {".zarray", "zarr.json"}) {
        const std::string& k = e.key;
        if (k == leaf || (k.size() > leaf.size() && k.ends_with(leaf) && k[k.size() - leaf.size() - 1] == '/')) {
          const std::string name = k == leaf ? std::string() : k.substr(0, k.size() - leaf.size() - 1);
          out.push_back({db, k, name, std::string(cairn::as_chars(cairn::kvstore::read_required(store, k).view()))});
        }
      }
    }
  }
  return out;
}

}  // namespace cairn_test
