// SPDX-License-Identifier: Apache-2.0
// Writes a seed corpus for every fuzz target: the manifests, B+tree nodes and metadata files of the Orbax fixtures,
// plus version-tree nodes and data file tables from databases cairn writes.
// Usage: cairn_fuzz_seeds OUT_DIR [FIXTURES_DIR]
#include <cairn/codec/zstd.hpp>
#include <cairn/kvstore/file.hpp>
#include <cairn/kvstore/memory.hpp>
#include <cairn/ocdbt/reader.hpp>
#include <cairn/ocdbt/writer.hpp>
#include <cairn/safetensors/safetensors.hpp>
#include <cairn/zarr/metadata.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <set>
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

// Small valid safetensors files (header and data): plain, with metadata, with empty and rank-0 tensors,
// and every dtype safetensors shares with cairn.
void safetensors_seeds(const fs::path& out) {
  namespace st = cairn::safetensors;
  auto file = [&](std::vector<st::tensor_info> tensors, std::vector<st::metadata_entry> metadata) {
    std::uint64_t offset = 0;
    for (auto& t : tensors) {
      t.begin = offset;
      t.end = offset += static_cast<std::uint64_t>(t.shape.num_elements()) * cairn::size_of(t.type);
    }
    cairn::byte_buffer b = st::encode_header(tensors, metadata);
    for (std::uint64_t i = 0; i < offset; ++i) b.push_back(static_cast<std::byte>(i * 37));
    save(out / "safetensors_header", b.view());
  };
  using cairn::dtype;
  file({{"weight", dtype::float32, {2, 3}, 0, 0}, {"bias", dtype::float32, {3}, 0, 0}}, {});
  file({{"emb", dtype::bfloat16, {4, 2}, 0, 0}, {"ids", dtype::int64, {2}, 0, 0}}, {{"format", "pt"}, {"k\u00e9y", "v"}});
  file({{"empty", dtype::float16, {0, 5}, 0, 0}, {"scalar", dtype::bool_, {}, 0, 0}, {"t", dtype::uint8, {1, 1, 1, 2}, 0, 0}},
       {{"note", "zero-size and rank-0"}});
  std::vector<st::tensor_info> all;
  for (const auto& i : cairn::detail::dtype_table)
    if (!i.safetensors.empty()) all.push_back({std::string(i.name), i.type, {2}, 0, 0});
  file(std::move(all), {});
}

// zarr metadata the fixtures lack: other dtypes and ranks, uncompressed, several inner chunks per shard
// with the index first, big-endian v2, a NaN fill value.
void zarr_metadata_seeds(const fs::path& out) {
  namespace zarr = cairn::zarr;
  using cairn::dtype;
  auto put = [&](const zarr::array_metadata& m) {
    const std::string text = zarr::to_json(m);
    save(out / "zarr_metadata", cairn::as_bytes(text));
  };
  for (int format : {2, 3}) {
    put(zarr::orbax_metadata(format, dtype::bfloat16, {7, 3}, {2, 3}));
    put(zarr::orbax_metadata(format, dtype::uint8, {}, {}, false));
    put(zarr::orbax_metadata(format, dtype::complex64, {4, 1, 2}, {4, 1, 1}));
  }
  auto sharded = zarr::orbax_metadata(3, dtype::float32, {9, 10}, {4, 6});
  sharded.inner_chunk_shape = {2, 3};
  sharded.index_location = zarr::shard_index_location::start;
  sharded.fill_value = "NaN";
  sharded.dimension_names = cairn::json::value::array({"x", nullptr});
  put(sharded);
  auto big = zarr::orbax_metadata(2, dtype::float64, {5}, {2});
  big.byte_order = std::endian::big;
  big.fill_value = "-Infinity";
  big.separator = '/';
  put(big);
}

// zstd frames as cairn and TensorStore write them, each behind the 4 bytes that give its decoded size
// and a piece size: compressed, raw blocks (what does not compress), several blocks, empty.
void zstd_frame_seeds(const fs::path& out) {
  auto put = [&](cairn::byte_view content, int level, double min_ratio, bool checksum, unsigned piece) {
    const cairn::byte_buffer frame = cairn::codec::zstd_compress(content, level, checksum, min_ratio);
    const std::size_t n = content.size();
    const char head[4] = {static_cast<char>(n & 0xff), static_cast<char>(n >> 8 & 0xff),
                          static_cast<char>((n >> 16 & 0x0f) | (piece & 0x0f) << 4), static_cast<char>(piece >> 4 & 0xff)};
    save(out / "zstd_frame", frame.view(), std::string_view(head, 4));
  };
  std::string text;
  for (int i = 0; text.size() < 300000; ++i) text += "weights " + std::to_string(i * 7919 % 1000) + " ";
  std::string noise(200000, '\0');
  std::uint32_t x = 1;
  for (auto& c : noise) c = static_cast<char>((x = x * 1664525u + 1013904223u) >> 24);
  put(cairn::as_bytes(text), 3, 0, true, 100);
  put(cairn::as_bytes(text.substr(0, 5000)), 1, 0, false, 7);
  put(cairn::as_bytes(noise), 3, 1.1, true, 4000);  // raw blocks
  put(cairn::as_bytes(noise.substr(0, 1000)), 3, 1.1, false, 0);
  put(cairn::byte_view{}, 3, 0, false, 3);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const fs::path out = argv[1];
  if (argc > 2 && fs::is_directory(argv[2])) {
    // The checkpoint metadata files, each distinct document once.
    std::set<std::string> seen_metadata;
    for (const auto& e : fs::recursive_directory_iterator(argv[2])) {
      if (!e.is_regular_file()) continue;
      const std::string name = e.path().filename().string();
      const char* target = name == "_CHECKPOINT_METADATA" ? "checkpoint_metadata"
                           : name == "_METADATA"           ? "tree_metadata"
                           : name == "_sharding"           ? "sharding_file"
                                                           : nullptr;
      if (!target) continue;
      auto bytes = slurp(e.path());
      if (seen_metadata.insert(std::string(cairn::as_chars(bytes.view()))).second) save(out / target, bytes.view());
    }
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
      // The zarr metadata documents (.zarray / zarr.json) of the database, for zarr_metadata.
      try {
        cairn::kvstore::store values(std::make_shared<oc::reader>(cairn::kvstore::open_file(db), "seed"));
        static std::set<std::string> seen;  // the fixtures repeat the same few documents
        for (const auto& entry : cairn::kvstore::list(values)) {
          if (!entry.key.ends_with(".zarray") && !entry.key.ends_with("zarr.json")) continue;
          auto doc = cairn::kvstore::read_required(values, entry.key);
          if (seen.insert(std::string(cairn::as_chars(doc.view()))).second) save(out / "zarr_metadata", doc.view());
        }
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
  safetensors_seeds(out);
  zarr_metadata_seeds(out);
  zstd_frame_seeds(out);
  std::cout << counter << " seeds written to " << out.string() << "\n";
  return 0;
}
