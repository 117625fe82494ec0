// SPDX-License-Identifier: Apache-2.0
/// \file
/// Small file helpers for tests: read a whole file, or a byte range of it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <cairn/core/bytes.hpp>

namespace cairn_test {

inline cairn::byte_buffer read_file(const std::filesystem::path& p, std::uint64_t offset = 0,
                                    std::uint64_t length = UINT64_MAX) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + p.string());
  std::vector<char> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (offset > all.size()) offset = all.size();
  if (length > all.size() - offset) length = all.size() - offset;
  return cairn::byte_buffer(cairn::as_bytes(std::string_view(all.data() + offset, length)));
}

inline void write_file(const std::filesystem::path& p, cairn::byte_view bytes) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

/// Every directory below `root` that holds a `manifest.ocdbt` (an OCDBT database).
inline std::vector<std::filesystem::path> find_databases(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().filename() == "manifest.ocdbt") out.push_back(e.path().parent_path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cairn_test
