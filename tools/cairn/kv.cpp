// SPDX-License-Identifier: Apache-2.0
// `cairn kv ...`: look inside and edit OCDBT databases directly.
#include <cairn/kvstore/file.hpp>
#include <cairn/ocdbt/reader.hpp>
#include <cairn/ocdbt/writer.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "cli.hpp"

namespace cairn_cli {
namespace {

cairn::kvstore::store open_dir(std::string_view dir, bool must_exist) {
  std::filesystem::path p(dir);
  if (must_exist && !std::filesystem::is_directory(p))
    throw cairn::error(cairn::errc::not_found, "\"" + p.string() + "\" is not a directory");
  return cairn::kvstore::open_file(p);
}

int kv_ls(const std::vector<std::string_view>& argv) {
  auto args = parse_args(argv, {}, {});
  if (args.positional.size() != 1) throw usage_error{"usage: cairn kv ls DB_DIR"};
  cairn::ocdbt::reader r(open_dir(args.positional[0], true), "\"" + std::string(args.positional[0]) + "\"");
  std::string out;
  r.for_each({}, [&](cairn::ocdbt::value_location&& l) {
    out += printable_key(l.key);
    out += '\t';
    out += std::to_string(l.size);
    if (l.is_inline) {
      out += "\tinline\n";
    } else {
      out += '\t' + l.file.path() + '\t' + std::to_string(l.offset) + '\t' + std::to_string(l.size) + '\n';
    }
    if (out.size() > (1 << 20)) {
      std::cout << out;
      out.clear();
    }
  });
  std::cout << out << std::flush;
  return 0;
}

int kv_get(const std::vector<std::string_view>& argv) {
  auto args = parse_args(argv, {"-o"}, {});
  if (args.positional.size() != 2) throw usage_error{"usage: cairn kv get DB_DIR KEY [-o FILE]"};
  cairn::ocdbt::reader r(open_dir(args.positional[0], true), "\"" + std::string(args.positional[0]) + "\"");
  auto v = r.read(args.positional[1]);
  if (v.missing())
    throw cairn::error(cairn::errc::not_found, "OCDBT database \"" + std::string(args.positional[0]) + "\": key \"" +
                                                   printable_key(args.positional[1]) + "\" is missing");
  if (auto o = args.get("-o")) {
    std::ofstream f{std::string(*o), std::ios::binary | std::ios::trunc};
    f.write(reinterpret_cast<const char*>(v->data()), static_cast<std::streamsize>(v->size()));
    if (!f) throw cairn::io_error("write \"" + std::string(*o) + "\"", errno);
  } else {
    std::fwrite(v->data(), 1, v->size(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

int kv_put(const std::vector<std::string_view>& argv) {
  auto args = parse_args(argv, {}, {});
  if (args.positional.size() != 3) throw usage_error{"usage: cairn kv put DB_DIR KEY FILE"};
  std::ifstream in{std::string(args.positional[2]), std::ios::binary};
  if (!in) throw cairn::error(cairn::errc::not_found, "\"" + std::string(args.positional[2]) + "\": cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  cairn::ocdbt::writer w(open_dir(args.positional[0], false));
  w.put(args.positional[1], cairn::as_bytes(std::string_view(bytes.data(), bytes.size())));
  auto v = w.commit();
  std::cout << "generation " << v.generation << ": " << v.stats.num_keys << " keys\n";
  return 0;
}

int kv(const std::vector<std::string_view>& argv) {
  if (argv.empty()) throw usage_error{"usage: cairn kv (ls|get|put) ..."};
  std::vector<std::string_view> rest(argv.begin() + 1, argv.end());
  if (argv[0] == "ls") return kv_ls(rest);
  if (argv[0] == "get") return kv_get(rest);
  if (argv[0] == "put") return kv_put(rest);
  throw usage_error{"unknown kv command \"" + std::string(argv[0]) + "\" (ls, get or put)"};
}

}  // namespace

std::vector<command> kv_commands() {
  return {
      {"kv", "kv ls DB_DIR", "list an OCDBT database: key, size, inline or file/offset/length", kv},
      {"", "kv get DB_DIR KEY [-o FILE]", "print (or save) the value of KEY", nullptr},
      {"", "kv put DB_DIR KEY FILE", "store FILE's bytes at KEY as a new generation", nullptr},
  };
}

}  // namespace cairn_cli
