// SPDX-License-Identifier: Apache-2.0
// The C++ side of the typed-tree interop test: a struct with nested structs, a map, a list, a scalar
// and a string.
//   cairn_typed_tool write ROOT   save the struct (known values) as step 1, item "default"
//   cairn_typed_tool read PATH    strict-restore a Python-written item into the struct and check its
//                                 values (exit 0 when they are the expected ones)
#include <cairn/checkpoint/typed.hpp>

#include <iostream>
#include <numeric>

namespace {
struct dense {
  cairn::host_array w;
  cairn::host_array b;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("w", &dense::w), cairn::field("b", &dense::b));
};
struct state {
  dense encoder;
  std::map<std::string, cairn::host_array> heads;
  std::vector<dense> layers;
  std::int64_t step = 0;
  std::string name;
  static constexpr auto cairn_fields =
      cairn::fields(cairn::field("encoder", &state::encoder), cairn::field("heads", &state::heads),
                    cairn::field("layers", &state::layers), cairn::field("step", &state::step), cairn::field("name", &state::name));
};

cairn::host_array ramp(cairn::shape s, float offset) {
  std::vector<float> v(static_cast<std::size_t>(s.num_elements()));
  std::iota(v.begin(), v.end(), offset);
  return cairn::host_array::from(std::span<const float>(v), std::move(s));
}
state expected(float offset) {
  state s;
  s.encoder = {ramp({8, 4}, offset), ramp({4}, offset + 100)};
  s.heads["cls"] = ramp({4, 2}, offset + 200);
  s.heads["reg"] = ramp({4, 1}, offset + 300);
  s.layers = {{ramp({4, 4}, offset + 400), ramp({4}, offset + 500)}, {ramp({4, 4}, offset + 600), ramp({4}, offset + 700)}};
  s.step = offset == 0 ? 1200 : 7;
  s.name = offset == 0 ? "cairn" : "python";
  return s;
}
bool same(const state& a, const state& b) {
  bool ok = a.encoder.w == b.encoder.w && a.encoder.b == b.encoder.b && a.heads == b.heads && a.step == b.step && a.name == b.name &&
            a.layers.size() == b.layers.size();
  for (std::size_t i = 0; ok && i < a.layers.size(); ++i) ok = a.layers[i].w == b.layers[i].w && a.layers[i].b == b.layers[i].b;
  return ok;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 2 ? argv[1] : "";
    if (cmd == "write") {
      cairn::save(argv[2], 1, expected(0));
      return 0;
    }
    if (cmd == "read") {
      state s;  // empty: the map, the list and the arrays take their sizes from the checkpoint
      auto report = cairn::restore(argv[2], s);
      const bool ok = same(s, expected(0.5f));
      std::cout << "restored " << report.restored.size() << " leaves into the C++ struct: " << (ok ? "values as expected" : "MISMATCH") << "\n";
      return ok ? 0 : 1;
    }
    std::cerr << "usage: cairn_typed_tool write ROOT | read PATH\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
