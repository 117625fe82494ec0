// SPDX-License-Identifier: Apache-2.0
// Writes OCDBT databases of every shape cairn's writer produces into OUT_DIR, for checking them
// against independent readers (the Python reference decoder and TensorStore itself):
// small/large values, 1 to 1,000,000 keys, forced multi-level trees, several data files, many
// generations with version-tree nodes, and a merged root over per-process databases.
// Usage: cairn_ocdbt_samples OUT_DIR [--no-million]
#include <cairn/kvstore/file.hpp>
#include <cairn/ocdbt/writer.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

namespace kv = cairn::kvstore;
namespace oc = cairn::ocdbt;

namespace {
std::string value_for(std::size_t seed, std::size_t size) {
  std::string v(size, '\0');
  std::mt19937 rng(static_cast<unsigned>(seed));
  for (auto& c : v) c = static_cast<char>(rng());
  return v;
}
oc::writer_options options() {
  oc::writer_options o;
  o.fsync = kv::fsync_policy::none;
  o.config = oc::config::orbax_default();
  return o;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: cairn_ocdbt_samples OUT_DIR [--no-million]\n";
    return 2;
  }
  const std::filesystem::path out = argv[1];
  const bool million = !(argc > 2 && std::strcmp(argv[2], "--no-million") == 0);
  std::filesystem::remove_all(out);
  try {
    {  // one key
      oc::writer w(kv::open_file(out / "one_key", kv::fsync_policy::none), options());
      w.put("only", cairn::as_bytes("value"));
      w.commit();
    }
    {  // small and large values around the inline limit, several data files
      auto o = options();
      o.target_data_file_size = 1 << 20;
      oc::writer w(kv::open_file(out / "values", kv::fsync_policy::none), o);
      std::size_t i = 0;
      for (std::size_t size : {0, 1, 100, 1023, 1024, 1025, 4096, 700000, 900000, 3000000}) {
        auto v = value_for(i, size);
        w.put("v/" + std::to_string(1000 + i++), cairn::as_bytes(v));
      }
      w.commit();
    }
    {  // values streamed while produced (pieces written in parallel, O_DIRECT padding, unwritten holes
       // after each value where the announced size exceeded the real one), between ordinary values
      oc::writer w(kv::open_file(out / "streamed", kv::fsync_policy::none), options());
      std::size_t i = 0;
      for (std::size_t size : {std::size_t{3000}, std::size_t{9} << 20, (std::size_t{17} << 20) + 5}) {
        const auto v = value_for(100 + i, size);
        w.put_streamed("s/" + std::to_string(i), size + 12345, [&](auto& out) {
          for (std::size_t at = 0; at < v.size();) {
            auto space = out.space();
            const std::size_t n = std::min(space.size(), v.size() - at);
            std::memcpy(space.data(), v.data() + at, n);
            out.produced(n);
            at += n;
          }
        });
        w.put("t/" + std::to_string(i), cairn::as_bytes(value_for(200 + i, 5000)));
        ++i;
      }
      w.commit();
    }
    {  // forced multi-level tree
      auto o = options();
      o.config->max_decoded_node_bytes = 2000;
      oc::writer w(kv::open_file(out / "multilevel", kv::fsync_policy::none), o);
      for (int i = 0; i < 5000; ++i) {
        char key[40];
        std::snprintf(key, sizeof key, "layer%03d/kernel/%d.%d", i / 20, (i / 4) % 5, i % 4);
        auto v = value_for(static_cast<std::size_t>(i), static_cast<std::size_t>(i % 13 == 0 ? 1500 : i % 90));
        w.put(key, cairn::as_bytes(v));
      }
      w.commit();
    }
    {  // many generations: version-tree nodes of height 1 and 2
      auto dir = kv::open_file(out / "generations", kv::fsync_policy::none);
      for (int g = 1; g <= 40; ++g) {
        auto o = options();
        o.config->version_tree_arity_log2 = 2;
        oc::writer w(dir, o);
        w.put("gen/" + std::to_string(100 + g), cairn::as_bytes(value_for(static_cast<std::size_t>(g), static_cast<std::size_t>(g * 60))));
        if (g % 7 == 0) w.erase("gen/" + std::to_string(100 + g - 3));
        w.commit();
      }
    }
    {  // merged root over per-process databases
      auto root = kv::open_file(out / "merged", kv::fsync_policy::none);
      std::vector<std::string> children;
      for (int p = 0; p < 4; ++p) {
        std::string child = "ocdbt.process_" + std::to_string(p) + "/";
        oc::writer w(root / child, options());
        if (p == 0) w.put("w/.zarray", cairn::as_bytes("{\"zarr_format\":2}"));
        w.put("w/" + std::to_string(p) + ".0", cairn::as_bytes(value_for(static_cast<std::size_t>(p), 5000)));
        w.put("b/" + std::to_string(p), cairn::as_bytes(value_for(static_cast<std::size_t>(p + 10), 40)));
        w.commit();
        children.push_back(child);
      }
      oc::merge(root, children, options());
    }
    if (million) {  // 1,000,000 keys
      oc::writer w(kv::open_file(out / "million", kv::fsync_policy::none), options());
      char key[16];
      for (int i = 0; i < 1000000; ++i) {
        std::snprintf(key, sizeof key, "k%07d", i);
        char v = static_cast<char>('a' + i % 26);
        w.put(key, cairn::as_bytes(std::string_view(&v, 1)));
      }
      w.commit();
    }
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  std::cout << "sample databases written to " << out.string() << "\n";
  return 0;
}
