// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: `_METADATA` (tree metadata) parsing; accepted input re-serialises and parses again.
// Whatever the one-pass reader accepts, the DOM reader must accept too, reading the same entries.
#include <cairn/checkpoint/tree_metadata.hpp>

#include <cstdio>

#include "fuzz_common.hpp"

namespace {
bool same(const cairn::tree_metadata& a, const cairn::tree_metadata& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    const auto &x = a.entries[i], &y = b.entries[i];
    if (!(x.path == y.path) || x.value_type != y.value_type || x.skip_deserialize != y.skip_deserialize ||
        x.write_shape != y.write_shape)
      return false;
    for (std::size_t k = 0; k < x.path.size(); ++k)
      if (x.path[k].is_index() != y.path[k].is_index()) return false;
  }
  return a.use_ocdbt == b.use_ocdbt && a.use_zarr3 == b.use_zarr3 &&
         a.store_array_data_equal_to_fill_value == b.store_array_data_equal_to_fill_value && a.custom_metadata == b.custom_metadata;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  cairn::tree_metadata fast;
  bool one_pass = false;
  try {
    one_pass = cairn::detail::tree_metadata_fast_reader(text).read(fast);
  } catch (...) {
    std::fputs("the one-pass _METADATA reader threw\n", stderr);
    std::abort();
  }
  if (one_pass) {
    try {
      if (!same(fast, cairn::detail::parse_tree_metadata_dom(text, "fuzz"))) {
        std::fputs("the one-pass and DOM _METADATA readers disagree\n", stderr);
        std::abort();
      }
    } catch (const cairn::error& e) {
      std::fprintf(stderr, "the one-pass _METADATA reader accepted what the DOM reader rejects: %s\n", e.what());
      std::abort();
    }
  }
  cairn_fuzz::expect_clean_rejection([&] {
    auto m = cairn::parse_tree_metadata(text, "fuzz");
    (void)cairn::parse_tree_metadata(cairn::to_json(m), "re-serialised");
  });
  return 0;
}
