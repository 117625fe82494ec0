// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: `_METADATA` (tree metadata) parsing; accepted input re-serialises and parses again.
// Whatever the one-pass reader accepts, the DOM reader must accept too, reading the same entries.
#include <cairn/checkpoint/tree_metadata.hpp>

#include <cstdio>

#include "fuzz_common.hpp"

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
      if (!(fast == cairn::detail::parse_tree_metadata_dom(text, "fuzz"))) {
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
