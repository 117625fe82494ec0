// SPDX-License-Identifier: Apache-2.0
// The C++ side of the Orbax/Keras interop suite: a bridge between cairn's untyped API and plain files
// Python can read without cairn.
//   cairn_interop_tool dump PATH OUT_DIR        load PATH with cairn::load; write OUT_DIR/index.json and
//                                               one raw little-endian file per array/scalar leaf
//   cairn_interop_tool write SPEC_DIR ROOT STEP ZARR   build the tree SPEC_DIR/index.json describes (same
//                                               format) and save it with cairn::save as step STEP
// index.json: {"items": {NAME: {"json": VALUE} | {"leaves": [LEAF...]}}} (a bare item when PATH is an
// item directory: {"leaves": [...]}); LEAF = {"path": [[key, key_type]...], "kind": "array"|"scalar"|
// "string"|"Dict"|"List"|"Tuple"|"None", "dtype", "shape", "file", "value"}.
#include <cairn/checkpoint/checkpoint.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

namespace fs = std::filesystem;

namespace {

cairn::json::value path_json(const cairn::key_path& p) {
  cairn::json::value out = cairn::json::value::array();
  for (const auto& k : p) out.push_back(cairn::json::value::array({k.str(), static_cast<int>(k.type())}));
  return out;
}

void write_raw(const fs::path& file, cairn::byte_view bytes) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

cairn::json::value dump_tree(const cairn::dynamic_tree& tree, const fs::path& out, const std::string& prefix, int& counter) {
  cairn::json::value leaves = cairn::json::value::array();
  tree.for_each_leaf([&](const cairn::key_path& p, const cairn::dynamic_tree& leaf) {
    cairn::json::value l = cairn::json::value::object();
    l["path"] = path_json(p);
    auto raw = [&](cairn::dtype t, const cairn::shape& s, cairn::byte_view bytes) {
      l["dtype"] = std::string(cairn::name_of(t));
      cairn::json::value shape = cairn::json::value::array();
      for (auto d : s) shape.push_back(d);
      l["shape"] = std::move(shape);
      const std::string file = prefix + std::to_string(counter++) + ".bin";
      write_raw(out / file, bytes);
      l["file"] = file;
    };
    switch (leaf.type()) {
      case cairn::dynamic_tree::kind::array:
        l["kind"] = "array";
        raw(leaf.as_array().type(), leaf.as_array().shape(), leaf.as_array().bytes());
        break;
      case cairn::dynamic_tree::kind::sharded: {
        const cairn::host_array whole = leaf.as_sharded().gather();
        l["kind"] = "array";
        raw(whole.type(), whole.shape(), whole.bytes());
        break;
      }
      case cairn::dynamic_tree::kind::scalar:
        l["kind"] = "scalar";
        raw(leaf.as_scalar().type(), cairn::shape{}, leaf.as_scalar().bytes());
        break;
      case cairn::dynamic_tree::kind::string:
        l["kind"] = "string";
        l["value"] = leaf.as_string();
        break;
      case cairn::dynamic_tree::kind::map: l["kind"] = "Dict"; break;
      case cairn::dynamic_tree::kind::list: l["kind"] = "List"; break;
      case cairn::dynamic_tree::kind::json:
        l["kind"] = "json";
        l["value"] = leaf.as_json();
        break;
      case cairn::dynamic_tree::kind::empty: {
        const auto e = leaf.as_empty();
        l["kind"] = e == cairn::empty_node::dict ? "Dict" : e == cairn::empty_node::list ? "List"
                    : e == cairn::empty_node::tuple                                 ? "Tuple"
                                                                                    : "None";
        break;
      }
    }
    leaves.push_back(std::move(l));
  });
  return leaves;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw cairn::error(cairn::errc::not_found, "\"" + p.string() + "\" is missing");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

cairn::dynamic_tree build_tree(const cairn::json::value& leaves, const fs::path& dir) {
  cairn::dynamic_tree root;
  for (const auto& l : leaves.as_array()) {
    cairn::key_path path;
    for (const auto& k : l.at("path").as_array()) {
      if (k.at(1).as_int64() == 1) path.push_back(cairn::key(static_cast<cairn::index_t>(std::stoll(k.at(0).as_string()))));
      else path.push_back(cairn::key(k.at(0).as_string()));
    }
    const std::string& kind = l.at("kind").as_string();
    cairn::dynamic_tree leaf;
    if (kind == "array" || kind == "scalar") {
      const cairn::dtype t = cairn::parse_dtype(l.at("dtype").as_string());
      std::vector<cairn::index_t> dims;
      for (const auto& d : l.at("shape").as_array()) dims.push_back(d.as_int64());
      const std::string bytes = slurp(dir / l.at("file").as_string());
      if (kind == "scalar") {
        leaf = cairn::scalar::from_bytes(t, cairn::as_bytes(bytes));
      } else {
        cairn::host_array a(t, cairn::shape(dims));
        if (bytes.size() != a.num_bytes()) throw cairn::error(cairn::errc::shape_mismatch, "spec file size for " + l.at("file").as_string());
        if (!bytes.empty()) std::memcpy(a.mutable_bytes().data(), bytes.data(), bytes.size());
        leaf = std::move(a);
      }
    } else if (kind == "string") {
      leaf = l.at("value").as_string();
    } else if (kind == "Dict") {
      leaf = cairn::dynamic_tree(cairn::dynamic_tree::map_type{});
    } else if (kind == "List") {
      leaf = cairn::dynamic_tree(cairn::dynamic_tree::list_type{});
    } else if (kind == "Tuple") {
      leaf = cairn::empty_node::tuple;
    } else {
      leaf = cairn::empty_node::none;
    }
    // Place the leaf, creating maps and lists along the path.
    cairn::dynamic_tree* node = &root;
    for (std::size_t i = 0; i < path.size(); ++i) {
      const bool last = i + 1 == path.size();
      if (path[i].is_name()) {
        if (!node->is_map()) *node = cairn::dynamic_tree(cairn::dynamic_tree::map_type{});
        node = &(*node)[path[i].name()];
      } else {
        if (!node->is_list()) *node = cairn::dynamic_tree(cairn::dynamic_tree::list_type{});
        auto& list = node->as_list();
        const auto idx = static_cast<std::size_t>(path[i].index());
        if (list.size() <= idx) list.resize(idx + 1);
        node = &list[idx];
      }
      if (last) *node = leaf;
    }
    if (path.empty()) root = leaf;
  }
  return root;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "dump" && argc == 4) {
      const fs::path path = argv[2], out = argv[3];
      fs::create_directories(out);
      cairn::dynamic_tree t = cairn::load(path);
      int counter = 0;
      cairn::json::value index = cairn::json::value::object();
      if (cairn::detail::is_pytree_dir(path)) {
        index["leaves"] = dump_tree(t, out, "leaf", counter);
      } else {
        cairn::json::value items = cairn::json::value::object();
        for (const auto& [name, item] : t.as_map()) {
          if (item.type() == cairn::dynamic_tree::kind::json) items[name] = cairn::json::value::object({{"json", item.as_json()}});
          else items[name] = cairn::json::value::object({{"leaves", dump_tree(item, out, name + "_", counter)}});
        }
        index["items"] = std::move(items);
      }
      std::ofstream(out / "index.json") << cairn::json::to_string(index, {.indent = 1});
      return 0;
    }
    if (cmd == "write" && argc == 6) {
      const fs::path spec = argv[2], root = argv[3];
      const cairn::json::value index = cairn::json::parse_file(spec / "index.json");
      std::map<std::string, cairn::dynamic_tree> items;
      for (const auto& [name, item] : index.at("items").as_object()) {
        if (const auto* j = item.find("json")) items[name] = *j;
        else items[name] = build_tree(item.at("leaves"), spec);
      }
      cairn::save_options o;
      o.pytree.zarr_format = std::stoi(argv[5]);
      auto dir = cairn::save_items(root, std::stoll(argv[4]), items, o);
      std::cout << dir.string() << "\n";
      return 0;
    }
    std::cerr << "usage: cairn_interop_tool dump PATH OUT_DIR | write SPEC_DIR ROOT STEP ZARR\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
