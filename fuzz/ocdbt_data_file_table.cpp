// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the data file table decoder on raw (unenveloped) bytes; accepted tables must
// re-encode and decode to the same files.
#include <cairn/ocdbt/format/data_file_table.hpp>

#include <cstdlib>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cairn_fuzz::expect_clean_rejection([&] {
    cairn::byte_reader r(cairn_fuzz::bytes(data, size), "fuzz table");
    auto files = cairn::ocdbt::decode_data_file_table(r, "");
    cairn::ocdbt::data_file_table_builder b;
    for (const auto& f : files) b.add(f);
    cairn::byte_buffer out;
    b.finalize(out);
    cairn::byte_reader again(out.view(), "re-encoded table");
    auto back = cairn::ocdbt::decode_data_file_table(again, "");
    for (const auto& f : files)
      if (std::find(back.begin(), back.end(), f) == back.end()) std::abort();  // a real finding
  });
  return 0;
}
