// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: `_METADATA` (tree metadata) parsing; accepted input re-serialises and parses again.
#include <cairn/checkpoint/tree_metadata.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cairn_fuzz::expect_clean_rejection([&] {
    auto m = cairn::parse_tree_metadata(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    (void)cairn::parse_tree_metadata(cairn::to_json(m), "re-serialised");
  });
  return 0;
}
