// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the zarr metadata parser must accept or reject any input with errc::corrupted /
// errc::incompatible_format / errc::unsupported, never crash or hang; accepted metadata re-serialises to
// a document that parses back to the same metadata and the same text (to_json is a fixed point).
#include <cairn/zarr/metadata.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  cairn_fuzz::expect_clean_rejection([&] {
    const cairn::zarr::array_metadata m = cairn::zarr::parse_metadata(text, "fuzz zarr metadata");
    const std::string once = cairn::zarr::to_json(m);
    const cairn::zarr::array_metadata again = cairn::zarr::parse_metadata(once, "fuzz zarr metadata (re-read)");
    if (!(again == m) || cairn::zarr::to_json(again) != once) std::abort();
    (void)cairn::zarr::fill_value_bytes(m);
    (void)cairn::zarr::chunk_key(m, std::vector<cairn::index_t>(m.shape.rank(), 0));
    (void)cairn::zarr::grid_shape(m);
  });
  return 0;
}
