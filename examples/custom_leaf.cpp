// SPDX-License-Identifier: Apache-2.0
// Custom leaf types, both routes: an enum stored as a uint8 scalar through ADL `to_leaf`/`from_leaf`,
// and a quantised matrix with a `cairn::leaf_handler` specialisation (a stable `type_name`, `stage`
// copying what must survive the caller changing the value, `restore` reading it back).
// Usage: example_custom_leaf [OUTPUT_DIR]
#include <cairn/checkpoint/typed.hpp>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <vector>

namespace sched {
enum class phase : std::uint8_t { warmup, train, cooldown };
// Route 1: map onto an existing leaf type; found by argument-dependent lookup.
inline std::uint8_t to_leaf(phase p) { return static_cast<std::uint8_t>(p); }
inline void from_leaf(const std::uint8_t& v, phase& p) {
  if (v > 2) throw cairn::error(cairn::errc::corrupted, "sched::phase " + std::to_string(v) + " is out of range");
  p = static_cast<phase>(v);
}
}  // namespace sched

namespace quant {
struct int8_matrix {  // int8 values with one float scale per row
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int8_t> q;
  std::vector<float> scales;
};
}  // namespace quant

// Route 2: full control. Stored as one int8 array of shape [rows, cols + 4]: each row's scale rides in
// its last four bytes, so the checkpoint stays an ordinary array Python can read.
template <>
struct cairn::leaf_handler<quant::int8_matrix> {
  static constexpr std::string_view type_name = "quant.int8_matrix/v1";
  static cairn::dynamic_tree stage(const quant::int8_matrix& m) {
    cairn::host_array a(cairn::dtype::int8, cairn::shape{m.rows, m.cols + 4});
    auto out = a.values<std::int8_t>();
    for (std::int64_t r = 0; r < m.rows; ++r) {
      std::memcpy(&out[static_cast<std::size_t>(r * (m.cols + 4))], &m.q[static_cast<std::size_t>(r * m.cols)],
                  static_cast<std::size_t>(m.cols));
      std::memcpy(&out[static_cast<std::size_t>(r * (m.cols + 4) + m.cols)], &m.scales[static_cast<std::size_t>(r)], 4);
    }
    return a;
  }
  static cairn::leaf_expectation expect(const quant::int8_matrix&) { return {"array", cairn::dtype::int8, std::nullopt}; }
  static void restore(quant::int8_matrix& m, cairn::dynamic_tree&& stored) {
    const auto& a = stored.as_array();
    if (a.shape().rank() != 2 || a.shape()[1] < 4)
      throw cairn::error(cairn::errc::shape_mismatch, "quant.int8_matrix/v1 needs shape [rows, cols + 4], found " +
                                                          cairn::to_string(a.shape()));
    m.rows = a.shape()[0];
    m.cols = a.shape()[1] - 4;
    auto in = a.values<std::int8_t>();
    m.q.resize(static_cast<std::size_t>(m.rows * m.cols));
    m.scales.resize(static_cast<std::size_t>(m.rows));
    for (std::int64_t r = 0; r < m.rows; ++r) {
      std::memcpy(&m.q[static_cast<std::size_t>(r * m.cols)], &in[static_cast<std::size_t>(r * (m.cols + 4))],
                  static_cast<std::size_t>(m.cols));
      std::memcpy(&m.scales[static_cast<std::size_t>(r)], &in[static_cast<std::size_t>(r * (m.cols + 4) + m.cols)], 4);
    }
  }
};

struct inference_state {
  sched::phase phase = sched::phase::warmup;
  quant::int8_matrix head;
  static constexpr auto cairn_fields =
      cairn::fields(cairn::field("phase", &inference_state::phase), cairn::field("head", &inference_state::head));
};

int main(int argc, char** argv) {
  try {
    const std::filesystem::path root = argc > 1 ? argv[1] : std::filesystem::temp_directory_path() / "cairn_custom_leaf";
    std::filesystem::remove_all(root);
    inference_state s{sched::phase::train, {2, 3, {1, -2, 3, -4, 5, -6}, {0.5f, 0.25f}}};
    cairn::save(root, 7, s);
    s.phase = sched::phase::cooldown;  // the checkpoint keeps the staged values

    inference_state back;
    cairn::restore(root, back);
    const bool ok = back.phase == sched::phase::train && back.head.q == std::vector<std::int8_t>{1, -2, 3, -4, 5, -6} &&
                    back.head.scales == std::vector<float>{0.5f, 0.25f};
    std::cout << "phase " << static_cast<int>(back.phase) << ", head " << back.head.rows << "x" << back.head.cols
              << " with scales " << back.head.scales[0] << " " << back.head.scales[1] << (ok ? ": restored exactly" : ": MISMATCH")
              << "\n";
    auto untyped = cairn::load(root).at(cairn::key("default"));
    std::cout << "on disk: phase is a " << cairn::name_of(untyped.at(cairn::key("phase")).as_scalar().type())
              << " scalar, head is " << cairn::info(untyped.at(cairn::key("head")).as_array().type()).short_name
              << cairn::to_string(untyped.at(cairn::key("head")).as_array().shape()) << "\n";
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
