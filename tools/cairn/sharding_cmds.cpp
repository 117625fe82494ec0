// SPDX-License-Identifier: Apache-2.0
// `cairn shards` and `cairn plan`: the sharding algebra from the command line — every shard of a
// sharding, and the reshard plan (with its cost) for restoring a saved array onto a target, read from
// the checkpoint's metadata alone.
#include <cairn/checkpoint/item_files.hpp>
#include <cairn/checkpoint/pytree_item.hpp>
#include <cairn/checkpoint/verify.hpp>
#include <cairn/sharding/chunk_grid.hpp>
#include <cairn/sharding/named_sharding.hpp>
#include <cairn/sharding/reshard_plan.hpp>

#include <filesystem>
#include <iostream>

#include "cli.hpp"

namespace fs = std::filesystem;

namespace cairn_cli {
namespace {

std::vector<cairn::index_t> parse_dims(std::string_view text) {
  std::vector<cairn::index_t> out;
  if (text.empty()) return out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == ',') {
      const auto part = text.substr(start, i - start);
      if (part.empty() || part.size() > 18 || part.find_first_not_of("0123456789") != std::string_view::npos)
        throw usage_error{"--shape: \"" + std::string(part) + "\" is not a dimension (use e.g. 1024,512)"};
      out.push_back(std::stoll(std::string(part)));
      start = i + 1;
    }
  return out;
}

cairn::named_sharding target_of(const parsed_args& args, std::string_view usage) {
  const auto mesh = args.get("--mesh");
  const auto spec = args.get("--spec");
  if (!mesh || !spec) throw usage_error{std::string(usage)};
  return cairn::named_sharding(cairn::parse_device_mesh(*mesh), cairn::parse_partition_spec(*spec));
}

int shards(const std::vector<std::string_view>& argv) {
  constexpr std::string_view usage = "usage: cairn shards --mesh data=2,model=2 --spec data,- --shape 1024,512 [--dtype f32]";
  auto args = parse_args(argv, {"--mesh", "--spec", "--shape", "--dtype"}, {});
  if (!args.positional.empty() || !args.has("--shape")) throw usage_error{std::string(usage)};
  const auto s = target_of(args, usage);
  const cairn::shape global(parse_dims(*args.get("--shape")));
  const cairn::dtype t = args.has("--dtype") ? cairn::parse_dtype(*args.get("--dtype")) : cairn::dtype::float32;
  std::cout << to_string(s, t, global) << '\n';
  for (const auto& sh : s.shards(global)) std::cout << "  " << to_string(sh) << '\n';
  return 0;
}

int plan(const std::vector<std::string_view>& argv) {
  constexpr std::string_view usage = "usage: cairn plan ITEM_PATH PARAM --mesh data=2,model=2 --spec data,- [--devices 0,1]";
  auto args = parse_args(argv, {"--mesh", "--spec", "--devices"}, {});
  if (args.positional.size() != 2) throw usage_error{std::string(usage)};
  const auto target = target_of(args, usage);
  std::vector<int> devices;
  if (auto d = args.get("--devices"))
    for (auto v : parse_dims(*d)) devices.push_back(static_cast<int>(v));
  fs::path path(args.positional[0]);
  if (!cairn::detail::is_pytree_dir(path)) {
    const auto items = cairn::pytree_items_of(path);
    if (items.size() != 1) throw usage_error{"\"" + path.string() + "\" is not one PyTree item; give the item directory"};
    path = items.front().second;
  }
  const cairn::pytree_item item(path);
  const std::string param(args.positional[1]);
  const auto array = item.open_array(param);
  const auto& md = array.metadata();
  if (auto it = item.shardings().find(param); it != item.shardings().end()) {
    try {
      std::cout << "saved  " << to_string(cairn::parse_sharding_json(it->second, "_sharding"), md.type, md.shape) << '\n';
    } catch (const cairn::error& e) {
      std::cout << "saved  " << cairn::info(md.type).short_name << cairn::to_string(md.shape) << " (_sharding unreadable: " << e.what()
                << ")\n";
    }
  }
  const auto p = cairn::plan_reshard(cairn::chunk_grid(md.shape, md.chunk_shape), target, md.shape, md.type, devices);
  std::cout << to_string(p);
  return 0;
}

}  // namespace

std::vector<command> sharding_commands() {
  return {
      {"shards", "shards --mesh A=N,... --spec S,... --shape D,... [--dtype T]", "print every shard of a sharding", shards},
      {"plan", "plan ITEM_PATH PARAM --mesh A=N,... --spec S,... [--devices I,...]",
       "the reshard plan and its cost for restoring a saved array onto a sharding (metadata only)", plan},
  };
}

}  // namespace cairn_cli
