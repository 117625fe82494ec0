// SPDX-License-Identifier: Apache-2.0
/// \file
/// Step directories under a checkpoint root (orbax-format.md §1.1–1.2): names (`23`, `0023`,
/// `step_23`, `step_0023`), discovery of finalized steps only (a name holding `.orbax-checkpoint-tmp`
/// — either spelling, with or without a timestamp suffix — is a save in progress or a crash
/// leftover), and `commit_success.txt`, which marks a committed directory on stores without rename.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <cairn/core/error.hpp>

namespace cairn {

/// The marker of temporary step and item directories.
inline constexpr std::string_view tmp_marker = ".orbax-checkpoint-tmp";
/// The file that marks a committed step or item directory.
inline constexpr std::string_view commit_success_file = "commit_success.txt";

/// How step directories are named.
struct step_naming {
  std::string prefix;            ///< "step" gives `step_23`; empty gives `23`
  std::size_t fixed_length = 0;  ///< 4 gives `0023`; 0 means no padding
};

/// Returns the directory name of `step`.
/// \pre step >= 0
inline std::string step_name(std::int64_t step, const step_naming& naming = {}) {
  std::string digits = std::to_string(step);
  if (digits.size() < naming.fixed_length) digits.insert(0, naming.fixed_length - digits.size(), '0');
  return naming.prefix.empty() ? digits : naming.prefix + "_" + digits;
}

/// Returns the step a directory name denotes under `naming`, or nullopt if it is not a step name.
inline std::optional<std::int64_t> parse_step_name(std::string_view name, const step_naming& naming = {}) {
  if (!naming.prefix.empty()) {
    if (name.size() <= naming.prefix.size() + 1 || name.substr(0, naming.prefix.size()) != naming.prefix ||
        name[naming.prefix.size()] != '_')
      return std::nullopt;
    name.remove_prefix(naming.prefix.size() + 1);
  }
  if (name.empty() || name.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  if (naming.fixed_length == 0) {
    if (name.size() > 1 && name[0] == '0') return std::nullopt;  // "007" is not step 7 without padding
  } else if (name.size() < naming.fixed_length || (name.size() > naming.fixed_length && name[0] == '0')) {
    return std::nullopt;
  }
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
  if (ec != std::errc() || p != name.data() + name.size()) return std::nullopt;
  return v;
}

/// True if a directory name is a temporary (uncommitted) one.
inline bool is_tmp_name(std::string_view name) { return name.find(tmp_marker) != std::string_view::npos; }

/// A committed step directory.
struct step_dir {
  std::int64_t step;
  std::filesystem::path path;
  friend bool operator==(const step_dir&, const step_dir&) = default;
};

/// Returns the committed steps under `root`, in increasing order. Temporary directories are never
/// listed; with `require_commit_file`, neither is a directory without `commit_success.txt`.
/// A missing root has no steps.
/// \throws cairn::error (errc::io) if `root` cannot be listed.
inline std::vector<step_dir> list_steps(const std::filesystem::path& root, const step_naming& naming = {},
                                        bool require_commit_file = false) {
  std::vector<step_dir> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(root, ec), end;
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) return out;
    throw error(errc::io, "list \"" + root.string() + "\": " + ec.message());
  }
  for (; it != end; it.increment(ec)) {
    if (ec) throw error(errc::io, "list \"" + root.string() + "\": " + ec.message());
    const std::string name = it->path().filename().string();
    if (is_tmp_name(name) || !it->is_directory(ec)) continue;
    auto step = parse_step_name(name, naming);
    if (!step) continue;
    if (require_commit_file && !std::filesystem::exists(it->path() / commit_success_file)) continue;
    out.push_back({*step, it->path()});
  }
  std::sort(out.begin(), out.end(), [](const step_dir& a, const step_dir& b) { return a.step < b.step; });
  return out;
}

/// Returns the temporary directories directly under `root` (for cleanup).
inline std::vector<std::filesystem::path> list_tmp_dirs(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec))
    if (is_tmp_name(it->path().filename().string())) out.push_back(it->path());
  return out;
}

}  // namespace cairn
