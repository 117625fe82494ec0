// SPDX-License-Identifier: Apache-2.0
// Saves a small model's arrays as an Orbax checkpoint (the layout Python Orbax and Keras read) and
// loads them back: a tree of float32, bfloat16, int and string leaves, two steps, the latest loaded.
// Usage: example_save_arrays [OUTPUT_DIR]
#include <cairn/cairn.hpp>

#include <filesystem>
#include <iostream>
#include <random>
#include <vector>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  try {
    const fs::path root = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "cairn_save_arrays";
    fs::remove_all(root);

    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    auto weights = [&](cairn::index_t rows, cairn::index_t cols) {
      std::vector<float> w(static_cast<std::size_t>(rows * cols));
      for (auto& x : w) x = normal(rng);
      return cairn::host_array::from(std::span<const float>(w), cairn::shape{rows, cols});
    };
    std::vector<cairn::bfloat16> half;
    for (int i = 0; i < 64; ++i) half.push_back(cairn::bfloat16(normal(rng)));

    cairn::dynamic_tree state;
    state["params"]["dense"]["kernel"] = weights(32, 64);
    state["params"]["dense"]["bias"] = cairn::host_array(cairn::dtype::float32, cairn::shape{64});
    state["params"]["dense_1"]["kernel"] = weights(64, 1);
    state["params"]["embedding_bf16"] = cairn::host_array::from(std::span<const cairn::bfloat16>(half), cairn::shape{8, 8});
    state["step"] = cairn::scalar(std::int64_t{0});
    state["note"] = "saved by cairn";

    for (std::int64_t step : {0, 1}) {
      state["step"] = cairn::scalar(step);
      const auto dir = cairn::save(root, step, state);
      std::cout << "saved step " << step << " to " << dir.string() << "\n";
    }
    std::cout << "steps on disk:";
    for (const auto& s : cairn::list_steps(root)) std::cout << " " << s.step;
    std::cout << "\n";

    const cairn::dynamic_tree loaded = cairn::load(root).at(cairn::key("default"));  // the latest step
    loaded.for_each_leaf([&](const cairn::key_path& path, const cairn::dynamic_tree& leaf) {
      std::cout << "  " << cairn::param_name(path) << ": ";
      if (leaf.type() == cairn::dynamic_tree::kind::array)
        std::cout << cairn::info(leaf.as_array().type()).short_name << cairn::to_string(leaf.as_array().shape());
      else if (leaf.type() == cairn::dynamic_tree::kind::scalar)
        std::cout << "scalar " << leaf.as_scalar().as<std::int64_t>();
      else if (leaf.type() == cairn::dynamic_tree::kind::string)
        std::cout << "\"" << leaf.as_string() << "\"";
      std::cout << "\n";
    });
    const bool same = loaded == state;
    std::cout << (same ? "restored bit-exact" : "MISMATCH") << "\n";
    const auto report = cairn::verify(root);
    std::cout << "verify: " << (report.ok() ? "ok" : report.problems.front()) << " (" << report.leaves << " leaves, "
              << report.bytes << " bytes)\n";
    return same && report.ok() ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
