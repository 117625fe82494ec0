// SPDX-License-Identifier: Apache-2.0
// The `cairn` command-line program: inspect, verify and convert Orbax checkpoints. Each subcommand
// is one entry in `commands`; errors go to stderr as "cairn: <context>: <reason>" with exit code 1,
// and usage mistakes exit with 2.
#include <cairn/cairn.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"

namespace {

using cairn_cli::command;
using cairn_cli::usage_error;

const std::vector<command>& commands();

void print_help(std::ostream& os) {
  os << "usage: cairn [--version] [--help] <command> [<args>]\n\n"
        "cairn reads, writes and inspects Orbax checkpoints (OCDBT + zarr) without Python.\n";
  if (!commands().empty()) {
    os << "\ncommands:\n";
    for (const auto& c : commands()) {
      std::string head = "  " + std::string(c.synopsis);
      os << head;
      if (head.size() < 40) os << std::string(40 - head.size(), ' ');
      else os << "\n" << std::string(40, ' ');
      os << c.summary << "\n";
    }
  }
  os << "\noptions:\n"
        "  --version                             print the cairn version\n"
        "  --help                                print this help\n";
}

int cmd_version(const std::vector<std::string_view>& args) {
  if (!args.empty()) throw usage_error{"version takes no arguments"};
  std::cout << "cairn " << cairn::version_string << "\n";
  return 0;
}

const std::vector<command>& commands() {
  static const std::vector<command> table = [] {
    std::vector<command> t{{"version", "version", "print the cairn version", cmd_version}};
    for (auto& c : cairn_cli::ls_commands()) t.push_back(std::move(c));
    for (auto& c : cairn_cli::checkpoint_commands()) t.push_back(std::move(c));
    for (auto& c : cairn_cli::kv_commands()) t.push_back(std::move(c));
    for (auto& c : cairn_cli::sharding_commands()) t.push_back(std::move(c));
    return t;
  }();
  return table;
}

int dispatch(const std::vector<std::string_view>& argv) {
  if (argv.empty()) {
    print_help(std::cerr);
    return 2;
  }
  const std::string_view first = argv.front();
  if (first == "--help" || first == "-h" || first == "help") {
    print_help(std::cout);
    return 0;
  }
  if (first == "--version") return cmd_version({});
  for (const auto& c : commands()) {
    if (c.run && c.name == first) return c.run(std::vector<std::string_view>(argv.begin() + 1, argv.end()));
  }
  throw usage_error{"unknown command \"" + std::string(first) + "\" (see cairn --help)"};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  try {
    return dispatch(args);
  } catch (const usage_error& e) {
    std::cerr << "cairn: " << e.message << "\n";
    return 2;
  } catch (const std::exception& e) {
    // cairn::error messages already start with "cairn: ".
    std::string what = e.what();
    std::cerr << (what.rfind("cairn: ", 0) == 0 ? "" : "cairn: ") << what << "\n";
    return 1;
  }
}
