// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the version-tree node decoder.
#include <cairn/ocdbt/format/version_tree.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // The first byte picks the arity the manifest would expect; the rest is the object.
  const auto arity = static_cast<std::uint8_t>(1 + data[0] % 16);
  cairn_fuzz::expect_clean_rejection([&] {
    auto node = cairn::ocdbt::decode_version_tree_node(cairn_fuzz::bytes(data + 1, size - 1), "", arity,
                                                       "fuzz version node", cairn_fuzz::max_decoded);
    (void)node;
  });
  return 0;
}
