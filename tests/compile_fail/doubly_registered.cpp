// SPDX-License-Identifier: Apache-2.0
// Must not compile: a type registered through both routes.
#include <cairn/checkpoint/typed.hpp>

struct twice {
  std::int32_t x = 0;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("x", &twice::x));
};
template <>
struct cairn::tree_traits<twice> {
  static constexpr auto fields = cairn::fields(cairn::field("x", &twice::x));
};

int main() {
  twice v;
  return static_cast<int>(cairn::to_dynamic(v).is_map());
}
