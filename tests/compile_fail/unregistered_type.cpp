// SPDX-License-Identifier: Apache-2.0
// Must not compile: a type that is neither a leaf nor a tree node.
#include <cairn/checkpoint/typed.hpp>

struct not_registered {
  int x = 0;
};

int main() {
  not_registered v;
  return static_cast<int>(cairn::to_dynamic(v).is_map());
}
