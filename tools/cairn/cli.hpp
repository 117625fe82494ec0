// SPDX-License-Identifier: Apache-2.0
// Shared pieces of the `cairn` program: the command table entry, usage errors and argument helpers.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cairn_cli {

/// A mistake in how the program was called; reported with exit code 2.
struct usage_error {
  std::string message;
};

/// One subcommand: `cairn <name> ...`.
struct command {
  std::string_view name;
  std::string_view synopsis;
  std::string_view summary;
  std::function<int(const std::vector<std::string_view>&)> run;
};

/// Splits arguments into positionals and `--flag value` / `-o value` options (value-taking flags
/// are listed in `with_value`; others are boolean).
struct parsed_args {
  std::vector<std::string_view> positional;
  std::vector<std::pair<std::string_view, std::optional<std::string_view>>> options;

  std::optional<std::string_view> get(std::string_view name) const {
    for (const auto& [k, v] : options)
      if (k == name) return v ? v : std::optional<std::string_view>("");
    return std::nullopt;
  }
  bool has(std::string_view name) const { return get(name).has_value(); }
};

inline parsed_args parse_args(const std::vector<std::string_view>& args, const std::vector<std::string_view>& with_value,
                              const std::vector<std::string_view>& flags) {
  parsed_args out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a.size() > 1 && a[0] == '-') {
      bool takes = std::find(with_value.begin(), with_value.end(), a) != with_value.end();
      bool flag = std::find(flags.begin(), flags.end(), a) != flags.end();
      if (!takes && !flag) throw usage_error{"unknown option " + std::string(a)};
      if (takes) {
        if (i + 1 >= args.size()) throw usage_error{std::string(a) + " needs a value"};
        out.options.emplace_back(a, args[++i]);
      } else {
        out.options.emplace_back(a, std::nullopt);
      }
    } else {
      out.positional.push_back(a);
    }
  }
  return out;
}

/// Prints a key with bytes outside printable ASCII escaped as \xNN (and backslash as \\).
inline std::string printable_key(std::string_view key) {
  std::string s;
  for (unsigned char c : key) {
    if (c == '\\') s += "\\\\";
    else if (c >= 0x20 && c < 0x7F && c != '\t') s += static_cast<char>(c);
    else {
      static const char* d = "0123456789abcdef";
      s += "\\x";
      s += d[c >> 4];
      s += d[c & 15];
    }
  }
  return s;
}

std::vector<command> kv_commands();
std::vector<command> checkpoint_commands();
std::vector<command> sharding_commands();
std::vector<command> ls_commands();

}  // namespace cairn_cli
