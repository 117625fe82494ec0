// SPDX-License-Identifier: Apache-2.0
// Registering your own types as checkpoint trees, both routes: `cairn_fields` inside a struct you own,
// `cairn::tree_traits<T>` for one you don't. The saved item is an ordinary Orbax PyTree — Python
// restores it as {"encoder": {"w": ..., "b": ...}, "norm": {"scale": ..., "bias": ...}, "step": ...}.
// Then a strict restore into a target whose shapes disagree, which reports every mismatch at once.
// Usage: example_register_struct [OUTPUT_DIR]
#include <cairn/checkpoint/typed.hpp>

#include <filesystem>
#include <iostream>
#include <numeric>
#include <vector>

namespace vendor {  // pretend this header is not ours
struct layer_norm {
  cairn::host_array scale;
  cairn::host_array bias;
};
}  // namespace vendor

template <>
struct cairn::tree_traits<vendor::layer_norm> {
  static constexpr auto fields =
      cairn::fields(cairn::field("scale", &vendor::layer_norm::scale), cairn::field("bias", &vendor::layer_norm::bias));
};

struct dense {
  cairn::host_array w;
  cairn::host_array b;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("w", &dense::w), cairn::field("b", &dense::b));
};

struct model_state {
  dense encoder;
  vendor::layer_norm norm;
  std::int64_t step = 0;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("encoder", &model_state::encoder),
                                                     cairn::field("norm", &model_state::norm),
                                                     cairn::field("step", &model_state::step));
};

static cairn::host_array filled(cairn::shape s, float start) {
  std::vector<float> v(static_cast<std::size_t>(s.num_elements()));
  std::iota(v.begin(), v.end(), start);
  return cairn::host_array::from(std::span<const float>(v), std::move(s));
}

int main(int argc, char** argv) {
  try {
    const std::filesystem::path root = argc > 1 ? argv[1] : std::filesystem::temp_directory_path() / "cairn_register_struct";
    std::filesystem::remove_all(root);
    model_state state{{filled({8, 4}, 0), filled({4}, 100)}, {filled({4}, 1), filled({4}, 0)}, 1200};
    cairn::save(root, 1200, state);
    std::cout << "saved step 1200 to " << (root / "1200").string() << "\n";

    model_state restored;  // empty arrays take the saved shapes
    auto report = cairn::restore(root, restored);
    std::cout << "restored " << report.restored.size() << " leaves:";
    for (const auto& name : report.restored) std::cout << " " << name;
    std::cout << "\nstep " << restored.step << ", encoder.w " << cairn::to_string(restored.encoder.w.shape())
              << (restored.encoder.w == state.encoder.w ? " (bit-exact)" : " (MISMATCH)") << "\n";

    // A target with other shapes: a strict restore lists everything wrong, and writes nothing.
    model_state other{{cairn::host_array(cairn::dtype::float32, {8, 2}), cairn::host_array(cairn::dtype::float32, {2})},
                      {cairn::host_array(cairn::dtype::float32, {4}), cairn::host_array(cairn::dtype::int32, {4})}, 0};
    try {
      cairn::restore(root, other);
    } catch (const cairn::error& e) {
      std::cout << "strict restore into the wrong shapes:\n" << e.what() << "\n";
    }
    return restored.encoder.w == state.encoder.w && restored.norm.scale == state.norm.scale && restored.step == 1200 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
