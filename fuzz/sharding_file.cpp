// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: `_sharding` parsing (base64 keys, JSON-in-JSON values).
#include <cairn/checkpoint/item_files.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cairn_fuzz::expect_clean_rejection([&] {
    auto f = cairn::parse_sharding_file(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    (void)cairn::parse_sharding_file(cairn::to_json(f), "re-serialised");
  });
  return 0;
}
