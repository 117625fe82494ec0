// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the safetensors header parser must accept or reject any file start with errc::corrupted
// / errc::unsupported, never crash, hang or allocate without bound; an accepted header re-encodes to one
// that parses back to the same tensors and metadata (the law of safetensors.hpp).
#include <cairn/safetensors/safetensors.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace st = cairn::safetensors;
  cairn_fuzz::expect_clean_rejection([&] {
    const auto h = st::parse_header(cairn_fuzz::bytes(data, size), size, "fuzz header");
    // Encoding what was accepted must succeed (names are UTF-8 and unique, dtypes have names), and the
    // result must parse back identically over a data section of the same size.
    const auto start = st::encode_header(h.tensors, h.metadata);
    const auto again = st::parse_header(start.view(), start.size() + h.data_size, "re-encoded header");
    if (again.tensors != h.tensors || again.metadata != h.metadata || again.data_size != h.data_size) std::abort();
  });
  return 0;
}
