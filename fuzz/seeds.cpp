// SPDX-License-Identifier: Apache-2.0
// Writes a seed corpus for every fuzz target: the manifests and B+tree nodes of the Orbax fixtures,
// plus version-tree nodes and data file tables from databases cairn writes.
// Usage: cairn_fuzz_seeds OUT_DIR [FIXTURES_DIR]
#include <cairn/kvstore/memory.hpp>
#include <cairn/ocdbt/reader.hpp>
#include <cairn/ocdbt/writer.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>

namespace fs = std::filesystem;
namespace oc = cairn::ocdbt;

namespace {
int counter = 0;
void save(const fs::path& dir, cairn::byte_view b, std::string_view prefix = {}) {
  fs::create_directories(dir);
  std::ofstream out(dir / ("seed" + std::to_string(counter++)), std::ios::binary);
  out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
cairn::byte_buffer slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return cairn::byte_buffer(cairn::as_bytes(s));
}
void table_seed(const fs::path& out, const std::vector<oc::data_file_id>& files) {
  oc::data_file_table_builder b;
  for (const auto& f : files) b.add(f);
  cairn::byte_buffer t;
  b.finalize(t);
  save(out / "ocdbt_data_file_table", t.view());
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const fs::path out = argv[1];
  if (argc > 2 && fs::is_directory(argv[2])) {
    for (const auto& e : fs::recursive_directory_iterator(argv[2])) {
      if (!e.is_regular_file() || e.path().filename() != "manifest.ocdbt") continue;
      const auto db = e.path().parent_path();
      auto bytes = slurp(e.path());
      save(out / "ocdbt_manifest", bytes.view());
      try {
        auto m = oc::decode_manifest(bytes.view(), "seed");
        table_seed(out, m.files);
        const auto& v = *m.latest();
        if (v.root.is_missing() || !fs::exists(db / m.files[v.root.file].path())) continue;
        auto all = slurp(db / m.files[v.root.file].path());
        auto node = all.view().subspan(v.root.offset, v.root.length);
        save(out / "ocdbt_btree_node", node);
      } catch (const cairn::error&) {
      }
    }
  }
  // cairn-written objects: interior nodes and version-tree nodes the fixtures lack.
  auto store = cairn::kvstore::open_memory();
  for (int g = 1; g <= 20; ++g) {
    oc::writer_options o;
    o.config = oc::config::orbax_default();
    o.config->version_tree_arity_log2 = 2;
    o.config->max_decoded_node_bytes = 300;
    oc::writer w(store, o);
    for (int i = 0; i < 30; ++i) w.put("g" + std::to_string(g) + "/k" + std::to_string(i), cairn::as_bytes(std::string(static_cast<std::size_t>(i * 60), 'x')));
    w.commit();
  }
  oc::reader r(store);
  save(out / "ocdbt_manifest", cairn::kvstore::read_required(store, "manifest.ocdbt").view());
  table_seed(out, r.manifest().files);
  for (const auto& n : r.manifest().version_nodes) {
    const auto& f = r.manifest().files[n.node.file];
    auto bytes = cairn::kvstore::read_required(store, f.path(), {n.node.offset, n.node.length});
    save(out / "ocdbt_version_node", bytes.view(), std::string_view("\x01", 1));  // arity byte: 1 + 1 % 16 = 2
  }
  const auto& v = r.latest();
  auto root = cairn::kvstore::read_required(store, r.manifest().files[v.root.file].path(), {v.root.offset, v.root.length});
  save(out / "ocdbt_btree_node", root.view());
  auto node = oc::decode_btree_node(root.view(), "", "root");
  for (const auto& c : node.children) {
    auto child = cairn::kvstore::read_required(store, node.files[c.child.file].path(), {c.child.offset, c.child.length});
    save(out / "ocdbt_btree_node", child.view());
    table_seed(out, oc::decode_btree_node(child.view(), "", "child").files);
  }
  std::cout << counter << " seeds written to " << out.string() << "\n";
  return 0;
}
