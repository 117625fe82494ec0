// SPDX-License-Identifier: Apache-2.0
// Must compile: the control case for the compile-fail tests (same includes, a registered type), so a
// failure there is the diagnostic under test and not a broken setup.
#include <cairn/checkpoint/typed.hpp>

struct registered {
  std::int32_t x = 0;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("x", &registered::x));
};

int main() {
  registered v;
  return static_cast<int>(!cairn::to_dynamic(v).is_map());
}
