// SPDX-License-Identifier: Apache-2.0
// Must not compile: std::vector<float> as a node (a million scalar leaves is never intended).
#include <cairn/checkpoint/typed.hpp>

#include <vector>

int main() {
  std::vector<float> weights(1000000);
  return static_cast<int>(cairn::to_dynamic(weights).is_map());
}
