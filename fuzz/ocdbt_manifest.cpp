// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the OCDBT manifest decoder must accept or reject any input with errc::corrupted /
// errc::incompatible_format, never crash, hang or allocate without bound; accepted input re-encodes.
#include <cairn/ocdbt/format/manifest.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cairn_fuzz::expect_clean_rejection([&] {
    auto m = cairn::ocdbt::decode_manifest(cairn_fuzz::bytes(data, size), "fuzz manifest", cairn_fuzz::max_decoded);
    (void)cairn::ocdbt::encode_manifest_body(m);
  });
  return 0;
}
