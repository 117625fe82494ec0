// SPDX-License-Identifier: Apache-2.0
// Saves a few arrays and reads them back through cairn's core layers: each array's C-order bytes are
// compressed into one zstd frame (as a zarr chunk is), described in an index.json with dtype, shape
// and CRC-32C, and restored bit-exact. Usage: example_save_arrays [OUTPUT_DIR]
#include <cairn/cairn.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& path, cairn::byte_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw cairn::io_error("write \"" + path.string() + "\"", errno);
}

cairn::byte_buffer read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw cairn::error(cairn::errc::not_found, "\"" + path.string() + "\"");
  std::vector<char> v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return cairn::byte_buffer(cairn::as_bytes(std::string_view(v.data(), v.size())));
}

void save(const fs::path& dir, const std::map<std::string, cairn::host_array>& arrays) {
  fs::create_directories(dir);
  cairn::json::value index = cairn::json::value::object();
  for (const auto& [name, a] : arrays) {
    auto frame = cairn::codec::zstd_compress(a.bytes(), 3);
    write_file(dir / (name + ".zst"), frame.view());
    cairn::json::value entry = cairn::json::value::object();
    entry["dtype"] = std::string(cairn::name_of(a.type()));
    cairn::json::value shape = cairn::json::value::array();
    for (auto d : a.shape()) shape.push_back(d);
    entry["shape"] = shape;
    entry["crc32c"] = static_cast<std::int64_t>(cairn::crc32c(a.bytes()));
    entry["stored_bytes"] = static_cast<std::int64_t>(frame.size());
    index[name] = entry;
  }
  std::string text = cairn::json::to_string(index, {.sort_keys = true, .indent = 2});
  write_file(dir / "index.json", cairn::as_bytes(text));
}

std::map<std::string, cairn::host_array> load(const fs::path& dir) {
  std::map<std::string, cairn::host_array> out;
  cairn::json::value index = cairn::json::parse_file(dir / "index.json");
  cairn::codec::zstd_decompressor zstd;
  for (const auto& [name, entry] : index.as_object()) {
    cairn::dtype type = cairn::parse_dtype(entry.at("dtype").as_string());
    std::vector<cairn::index_t> dims;
    for (const auto& d : entry.at("shape").as_array()) dims.push_back(d.as_int64());
    cairn::host_array a(type, cairn::shape(dims));
    auto frame = read_file(dir / (name + ".zst"));
    zstd.decompress_into(frame.view(), a.mutable_bytes(), name);
    if (cairn::crc32c(a.bytes()) != static_cast<std::uint32_t>(entry.at("crc32c").as_int64()))
      throw cairn::error(cairn::errc::corrupted, "array \"" + name + "\": CRC-32C mismatch");
    out.emplace(name, std::move(a));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "cairn_save_arrays";
    fs::remove_all(dir);

    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> kernel(32 * 64);
    for (auto& x : kernel) x = normal(rng);
    std::vector<cairn::bfloat16> kernel_bf16;
    for (float x : kernel) kernel_bf16.push_back(cairn::bfloat16(x));
    std::vector<std::int32_t> step{1200};
    std::vector<float> bias(64, 0.0f);

    std::map<std::string, cairn::host_array> arrays;
    arrays.emplace("dense.kernel", cairn::host_array::from(std::span<const float>(kernel), cairn::shape{32, 64}));
    arrays.emplace("dense.kernel_bf16",
                   cairn::host_array::from(std::span<const cairn::bfloat16>(kernel_bf16), cairn::shape{32, 64}));
    arrays.emplace("dense.bias", cairn::host_array::from(std::span<const float>(bias), cairn::shape{64}));
    arrays.emplace("step", cairn::host_array::from(std::span<const std::int32_t>(step), cairn::shape{}));

    save(dir, arrays);
    std::cout << "saved " << arrays.size() << " arrays to " << dir.string() << "\n";
    auto restored = load(dir);
    for (const auto& [name, a] : restored) {
      const bool same = arrays.at(name) == a;
      std::cout << "  " << name << ": " << cairn::name_of(a.type()) << cairn::to_string(a.shape()) << " "
                << (same ? "restored bit-exact" : "MISMATCH") << "\n";
      if (!same) return 1;
    }
    std::cout << "all " << restored.size() << " arrays match\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
