// SPDX-License-Identifier: Apache-2.0
// `cairn tree`, `verify`, `export` and `import`: look inside, check and convert Orbax checkpoints.
#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/pytree_item.hpp>
#include <cairn/checkpoint/verify.hpp>
#include <cairn/safetensors/safetensors.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli.hpp"

namespace fs = std::filesystem;

namespace cairn_cli {
namespace {

std::vector<std::pair<std::string, fs::path>> pytree_items(const fs::path& path) { return cairn::pytree_items_of(path); }

std::string dims(const std::vector<cairn::index_t>& d) { return cairn::to_string(std::span<const cairn::index_t>(d)); }

int tree(const std::vector<std::string_view>& argv) {
  auto args = parse_args(argv, {}, {"--json"});
  if (args.positional.size() != 1) throw usage_error{"usage: cairn tree PATH [--json]"};
  const bool as_json = args.has("--json");
  cairn::json::value all = cairn::json::value::array();
  for (const auto& [item, dir] : pytree_items(fs::path(args.positional[0]))) {
    cairn::pytree_item it(dir, item.empty() ? "item \"" + dir.string() + "\"" : "item \"" + item + "\"");
    if (!as_json && !item.empty()) std::cout << item << ":\n";
    for (const auto& l : it.describe()) {
      std::string sharding;
      if (l.sharding) sharding = cairn::json::to_string(*l.sharding);
      if (as_json) {
        cairn::json::value v = cairn::json::value::object();
        v["item"] = item;
        v["name"] = l.name;
        v["type"] = l.value_type;
        if (l.type) {
          v["dtype"] = std::string(cairn::name_of(*l.type));
          cairn::json::value s = cairn::json::value::array(), c = cairn::json::value::array();
          for (auto d : l.shape) s.push_back(d);
          for (auto d : l.chunk_shape) c.push_back(d);
          v["shape"] = std::move(s);
          v["chunk_shape"] = std::move(c);
          v["stored_bytes"] = static_cast<std::int64_t>(l.stored_bytes);
        }
        if (l.sharding) v["sharding"] = *l.sharding;
        all.push_back(std::move(v));
      } else {
        std::cout << "  " << (l.name.empty() ? "(root)" : l.name) << "  " << l.value_type;
        if (l.type)
          std::cout << "  " << cairn::info(*l.type).short_name << dims(l.shape) << "  chunks " << dims(l.chunk_shape) << "  "
                    << l.stored_bytes << " B";
        if (!sharding.empty()) std::cout << "  " << sharding;
        std::cout << "\n";
      }
    }
  }
  if (as_json) std::cout << cairn::json::to_string(all, {.indent = 1}) << "\n";
  return 0;
}

int verify(const std::vector<std::string_view>& argv) {
  auto args = parse_args(argv, {}, {});
  if (args.positional.size() != 1) throw usage_error{"usage: cairn verify PATH"};
  const fs::path path(args.positional[0]);
  const auto report = cairn::verify(path);
  for (const auto& p : report.problems) std::cerr << "cairn verify: " << p << "\n";
  if (!report.ok()) {
    std::cerr << "cairn verify: " << report.problems.size() << " problem(s) in \"" << path.string() << "\"\n";
    return 1;
  }
  std::cout << "ok: " << report.items << " item(s), " << report.leaves << " array leaves, " << report.bytes
            << " bytes decoded; every node and chunk checked\n";
  return 0;
}

int export_safetensors(const std::vector<std::string_view>& argv) {
  auto args = parse_args(argv, {"--item"}, {});
  if (args.positional.size() != 2) throw usage_error{"usage: cairn export PATH OUT.safetensors [--item NAME]"};
  auto items = pytree_items(fs::path(args.positional[0]));
  if (auto want = args.get("--item")) {
    std::erase_if(items, [&](const auto& p) { return p.first != *want; });
    if (items.empty()) throw cairn::error(cairn::errc::not_found, "no PyTree item \"" + std::string(*want) + "\"");
  }
  if (items.size() != 1) {
    std::string names;
    for (const auto& [n, d] : items) names += (names.empty() ? "" : ", ") + n;
    throw usage_error{"the checkpoint has " + std::to_string(items.size()) + " PyTree items (" + names + "); choose one with --item"};
  }
  cairn::pytree_item it(items[0].second, "item \"" + items[0].first + "\"");
  cairn::safetensors::writer w{fs::path(args.positional[1])};
  std::vector<cairn::host_array> keep;  // the writer holds views until finish()
  std::size_t n = 0;
  for (const auto& l : it.describe()) {
    if (!l.type) continue;
    keep.push_back(it.read_array(l.name, !it.metadata() || it.metadata()->store_array_data_equal_to_fill_value));
    w.add(l.name, keep.back().view());
    ++n;
  }
  w.finish();
  std::cout << "exported " << n << " tensors to " << args.positional[1] << "\n";
  return 0;
}

int import_safetensors(const std::vector<std::string_view>& argv) {
  auto args = parse_args(argv, {"--step", "--zarr", "--item"}, {});
  if (args.positional.size() != 2 || !args.has("--step"))
    throw usage_error{"usage: cairn import IN.safetensors ROOT --step N [--zarr 2|3] [--item NAME]"};
  cairn::save_options o;
  const std::string zarr(args.get("--zarr").value_or("3"));
  if (zarr != "2" && zarr != "3") throw usage_error{"--zarr must be 2 or 3"};
  o.pytree.zarr_format = zarr == "2" ? 2 : 3;
  const std::int64_t step = std::stoll(std::string(*args.get("--step")));
  cairn::safetensors::reader r{fs::path(args.positional[0])};
  // Orbax parameter names join keys with '.', so the tree is rebuilt by splitting them there.
  cairn::dynamic_tree tree;
  for (const auto& t : r.info().tensors) {
    cairn::dynamic_tree* node = &tree;
    std::string_view name = t.name;
    for (std::size_t dot; (dot = name.find('.')) != std::string_view::npos; name.remove_prefix(dot + 1)) {
      node = &(*node)[name.substr(0, dot)];
      if (!node->is_map()) throw cairn::error(cairn::errc::invalid_argument, "tensor \"" + t.name + "\" nests under a tensor");
    }
    (*node)[name] = r.read(t.name);
  }
  auto dir = cairn::save_items(fs::path(args.positional[1]), step, {{std::string(args.get("--item").value_or("default")), tree}}, o);
  std::cout << "imported " << r.info().tensors.size() << " tensors into " << dir.string() << "\n";
  return 0;
}

}  // namespace

std::vector<command> checkpoint_commands() {
  return {
      {"tree", "tree PATH [--json]", "every leaf: name, type, dtype, shape, chunks, sharding, bytes", tree},
      {"verify", "verify PATH", "decode every node and chunk, check every CRC; exit 0 only if sound", verify},
      {"export", "export PATH OUT.safetensors [--item NAME]", "write a PyTree item's arrays as safetensors", export_safetensors},
      {"import", "import IN.safetensors ROOT --step N [--zarr 2|3] [--item NAME]", "write safetensors as an Orbax step",
       import_safetensors},
  };
}

}  // namespace cairn_cli
