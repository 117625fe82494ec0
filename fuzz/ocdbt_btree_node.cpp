// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the B+tree node decoder (leaf and interior), with and without a transitive path.
#include <cairn/ocdbt/format/btree.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cairn_fuzz::expect_clean_rejection([&] {
    auto node = cairn::ocdbt::decode_btree_node(cairn_fuzz::bytes(data, size), size % 2 ? "ocdbt.process_1/" : "",
                                                "fuzz node", cairn_fuzz::max_decoded);
    std::uint64_t total = 0;
    for (const auto& e : node.leaves) total += e.value_size();
    (void)total;
  });
  return 0;
}
