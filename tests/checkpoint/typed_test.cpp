// SPDX-License-Identifier: Apache-2.0
// C++ types as checkpoints: std containers, structs registered through both routes, a run-time
// sized node, custom leaves through both routes; strict restore with one report of every mismatch,
// partial restore, allow-missing, dtype casts on save and restore, key remapping; a failed restore
// leaves the target untouched.
#include <cairn/checkpoint/typed.hpp>
#include <cairn/ocdbt/reader.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <tuple>
#include <vector>

#include "support/temp_dir.hpp"

namespace {

cairn::host_array iota_array(cairn::shape s, float start = 0) {
  std::vector<float> v(static_cast<std::size_t>(s.num_elements()));
  std::iota(v.begin(), v.end(), start);
  return cairn::host_array::from(std::span<const float>(v), std::move(s));
}

// Route 1: intrusive.
struct adam_state {
  cairn::host_array mu;
  cairn::host_array nu;
  std::int64_t count = 0;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("mu", &adam_state::mu), cairn::field("nu", &adam_state::nu),
                                                     cairn::field("count", &adam_state::count));
};

}  // namespace

// Route 2: a type "we do not own".
namespace vendor {
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

// A node whose children are known only at run time.
namespace {
struct ring {
  std::vector<std::int32_t> slots;
};
}  // namespace
template <>
struct cairn::tree_traits<ring> {
  template <class Self, class Visit>
  static void for_each_child(Self& r, Visit&& visit) {
    for (std::size_t i = 0; i < r.slots.size(); ++i) visit(cairn::key(i), r.slots[i]);
  }
  static void prepare(ring& r, std::span<const cairn::key> saved) { r.slots.resize(saved.size()); }
};

// Custom leaves: an enum through ADL, and a handler specialisation.
namespace sched {
enum class phase : std::uint8_t { warmup, train, cooldown };
inline std::uint8_t to_leaf(phase p) { return static_cast<std::uint8_t>(p); }
inline void from_leaf(const std::uint8_t& v, phase& p) {
  if (v > 2) throw cairn::error(cairn::errc::corrupted, "sched::phase " + std::to_string(v) + " is out of range");
  p = static_cast<phase>(v);
}
}  // namespace sched
namespace quant {
struct int8_matrix {
  std::vector<std::int8_t> q;
  std::int64_t rows = 0, cols = 0;
};
}  // namespace quant
template <>
struct cairn::leaf_handler<quant::int8_matrix> {
  static constexpr std::string_view type_name = "quant.int8_matrix/v1";
  static cairn::dynamic_tree stage(const quant::int8_matrix& m) {
    return cairn::host_array::from(std::span<const std::int8_t>(m.q), cairn::shape{m.rows, m.cols});
  }
  static cairn::leaf_expectation expect(const quant::int8_matrix&) { return {"array", cairn::dtype::int8, std::nullopt}; }
  static void restore(quant::int8_matrix& m, cairn::dynamic_tree&& stored) {
    const auto& a = stored.as_array();
    m.rows = a.shape()[0];
    m.cols = a.shape()[1];
    auto v = a.values<std::int8_t>();
    m.q.assign(v.begin(), v.end());
  }
};

namespace {
struct model {
  std::map<std::string, cairn::host_array> params;
  adam_state opt;
  vendor::layer_norm norm;
  ring history;
  sched::phase phase = sched::phase::warmup;
  quant::int8_matrix head;
  std::vector<cairn::host_array> layers;
  std::array<float, 2> betas{};
  std::tuple<std::int32_t, std::string> version;
  std::pair<double, bool> lr_and_flag;
  std::optional<cairn::host_array> ema;
  std::string name;
  static constexpr auto cairn_fields = cairn::fields(
      cairn::field("params", &model::params), cairn::field("opt", &model::opt), cairn::field("norm", &model::norm),
      cairn::field("history", &model::history), cairn::field("phase", &model::phase), cairn::field("head", &model::head),
      cairn::field("layers", &model::layers), cairn::field("betas", &model::betas), cairn::field("version", &model::version),
      cairn::field("lr_and_flag", &model::lr_and_flag), cairn::field("ema", &model::ema), cairn::field("name", &model::name));
};

model make_model() {
  model m;
  m.params["dense.kernel"] = iota_array({4, 3});
  m.params["bias"] = iota_array({3}, 100);
  m.opt = {iota_array({4, 3}, 1), iota_array({4, 3}, 2), 17};
  m.norm = {iota_array({3}, 5), iota_array({3}, 6)};
  m.history.slots = {3, 1, 4, 1, 5};
  m.phase = sched::phase::cooldown;
  m.head = {{1, -2, 3, -4, 5, -6}, 2, 3};
  m.layers = {iota_array({2, 2}, 9), iota_array({1}, 10)};
  m.betas = {0.9f, 0.999f};
  m.version = {3, "v3"};
  m.lr_and_flag = {0.001, true};
  m.ema = iota_array({2}, 42);
  m.name = "tiny";
  return m;
}

struct target_t {
  cairn::host_array a = cairn::host_array(cairn::dtype::float32, cairn::shape{4, 2});
  cairn::host_array b = cairn::host_array(cairn::dtype::int32, cairn::shape{2});
  cairn::host_array c = cairn::host_array(cairn::dtype::float32, cairn::shape{1});
  static constexpr auto cairn_fields =
      cairn::fields(cairn::field("a", &target_t::a), cairn::field("b", &target_t::b), cairn::field("c", &target_t::c));
};

struct wrong_kind {
  std::string a, b, extra;
  static constexpr auto cairn_fields =
      cairn::fields(cairn::field("a", &wrong_kind::a), cairn::field("b", &wrong_kind::b), cairn::field("extra", &wrong_kind::extra));
};

struct renamed {
  cairn::host_array encoder_w, encoder_b, decoder_w;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("encoder_w", &renamed::encoder_w),
                                                     cairn::field("encoder_b", &renamed::encoder_b),
                                                     cairn::field("decoder_w", &renamed::decoder_w));
};

struct phases {
  std::uint8_t a = 0;
  sched::phase b = sched::phase::warmup;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("a", &phases::a), cairn::field("b", &phases::b));
};

cairn::restore_options with(void (*set)(cairn::restore_options&)) {
  cairn::restore_options o;
  set(o);
  return o;
}

cairn::typed_save_options quiet() {
  cairn::typed_save_options o;
  o.base.pytree.fsync = cairn::kvstore::fsync_policy::none;
  return o;
}

template <class F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const cairn::error& e) {
    return e.what();
  }
  return "no error";
}

/// Overwrites the first byte (a zstd frame's magic number) of the stored chunk of parameter `param`
/// in the item at `item`.
void damage_chunk(const std::filesystem::path& item, const std::string& param) {
  cairn::ocdbt::reader r(cairn::kvstore::open_file(item, cairn::kvstore::fsync_policy::none), "item");
  std::optional<cairn::ocdbt::value_location> loc;
  for (const auto& e : r.list())
    if (e.key.rfind(param + "/c", 0) == 0) loc = r.locate(e.key);
  REQUIRE(loc);
  REQUIRE_FALSE(loc->is_inline);
  std::fstream f(item / loc->file.path(), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(loc->offset));
  f.put('\x55');
}
}  // namespace

TEST_CASE("typed trees round-trip through an Orbax item") {
  cairn_test::temp_dir dir;
  const model m = make_model();
  cairn::save(dir.path(), 1, m, quiet());
  // On disk it is an ordinary PyTree: nested dicts and lists with Orbax parameter names.
  auto untyped = cairn::load(dir.path()).at(cairn::key("default"));
  CHECK(untyped.at(cairn::key_path{"opt", "count"}).as_scalar().as<std::int64_t>() == 17);
  CHECK(untyped.at(cairn::key_path{"params", "dense.kernel"}).as_array() == m.params.at("dense.kernel"));
  CHECK(untyped.at(cairn::key_path{"history", 2}).as_scalar().as<std::int32_t>() == 4);
  CHECK(untyped.at(cairn::key_path{"phase"}).as_scalar().as<std::uint8_t>() == 2);
  CHECK(untyped.at(cairn::key_path{"version", 1}).as_string() == "v3");

  model back;  // empty: maps, vectors and the run-time node take their sizes from the checkpoint
  auto report = cairn::restore(dir.path(), back, cairn::restore_options{});
  CHECK(report.missing.empty());
  CHECK(back.params.size() == 2);
  CHECK(back.params.at("dense.kernel") == m.params.at("dense.kernel"));
  CHECK(back.opt.mu == m.opt.mu);
  CHECK(back.opt.count == 17);
  CHECK(back.norm.bias == m.norm.bias);
  CHECK(back.history.slots == m.history.slots);
  CHECK(back.phase == sched::phase::cooldown);
  CHECK(back.head.q == m.head.q);
  CHECK(back.head.cols == 3);
  CHECK(back.layers.size() == 2);
  CHECK(back.layers[1] == m.layers[1]);
  CHECK(back.betas == m.betas);
  CHECK(back.version == m.version);
  CHECK(back.lr_and_flag == m.lr_and_flag);
  REQUIRE(back.ema.has_value());
  CHECK(*back.ema == *m.ema);
  CHECK(back.name == "tiny");
}

TEST_CASE("an item without _METADATA restores by its arrays' parameter names") {
  // Orbax items written without tree metadata: the saved leaves are the arrays, named as flat keys.
  cairn_test::temp_dir dir;
  std::map<std::string, std::map<std::string, cairn::host_array>> saved{{"a", {{"k", iota_array({2, 3})}}}, {"b", {{"k", iota_array({4}, 7)}}}};
  const auto step = cairn::save(dir.path(), 1, saved, quiet());
  REQUIRE(std::filesystem::remove(step / "default" / "_METADATA"));
  std::map<std::string, cairn::host_array> flat;
  const auto report = cairn::restore(step, flat, cairn::restore_options{});
  CHECK(report.restored == std::vector<std::string>{"a.k", "b.k"});
  REQUIRE(flat.size() == 2);
  CHECK(flat.at("a.k") == saved.at("a").at("k"));
  CHECK(flat.at("b.k") == saved.at("b").at("k"));
  // A target leaf whose name is not saved: one report names both sides.
  std::map<std::string, std::map<std::string, cairn::host_array>> nested{{"c", {{"k", iota_array({2, 3})}}}};
  CHECK_THROWS_WITH_AS(cairn::restore(step, nested, cairn::restore_options{}),
                       doctest::Contains("1 missing key, 2 unexpected keys"), cairn::error);
}

TEST_CASE("strict restore reports every mismatch at once, before reading anything") {
  cairn_test::temp_dir dir;
  std::map<std::string, cairn::host_array> saved{{"a", iota_array({4, 3})}, {"b", iota_array({2})}, {"extra", iota_array({1})}};
  cairn::save(dir.path(), 1, saved, quiet());
  target_t target;
  const auto before = target.b;
  std::string text = error_text([&] { cairn::restore(dir.path(), target); });
  const std::string item = "item \"" + (dir.path() / "1" / "default").string() + "\"";
  CHECK(text == "cairn: restore " + item +
                    " into the target: 1 missing key, 1 unexpected key, 1 shape mismatch, 1 type mismatch\n"
                    "  missing: \"c\" is not in the checkpoint\n"
                    "  unexpected: \"extra\" is in the checkpoint but not in the target\n"
                    "  shape mismatch: \"a\": checkpoint f32[4,3], target f32[4,2]\n"
                    "  type mismatch: \"b\": checkpoint dtype float32, target int32: shape mismatch");
  CHECK(target.b == before);  // nothing was written
  try {
    cairn::restore(dir.path(), target);
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::shape_mismatch);
  }
  // Each kind alone, with its code.
  std::map<std::string, cairn::host_array> only_missing{{"a", {}}, {"b", {}}, {"extra", {}}, {"zzz", {}}};
  try {
    cairn::restore(dir.path(), only_missing);
    FAIL("expected an error");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::not_found);
    CHECK(std::string(e.what()).find("missing: \"zzz\"") != std::string::npos);
  }
  wrong_kind wk;
  CHECK(error_text([&] { cairn::restore(dir.path(), wk); }).find("\"a\": checkpoint holds a jax.Array, target expects a string") !=
        std::string::npos);
}

TEST_CASE("partial restore, allow-missing, casts and remapping") {
  cairn_test::temp_dir dir;
  std::map<std::string, cairn::host_array> saved{{"enc.w", iota_array({2, 2})}, {"enc.b", iota_array({2}, 7)}, {"dec.w", iota_array({3})}};
  cairn::save(dir.path(), 1, saved, quiet());

  SUBCASE("partial: a subset, the rest of the target untouched") {
    std::map<std::string, cairn::host_array> target{{"enc.w", {}}, {"new", iota_array({1}, 99)}};
    auto r = cairn::restore(dir.path(), target, with([](cairn::restore_options& o) { o.partial = true; }));
    CHECK(target.at("enc.w") == saved.at("enc.w"));
    CHECK(target.at("new") == iota_array({1}, 99));
    CHECK(r.missing == std::vector<std::string>{"new"});
    CHECK(r.unexpected == std::vector<std::string>{"dec.w", "enc.b"});
  }
  SUBCASE("allow-missing: reported, unexpected keys still fail") {
    std::map<std::string, cairn::host_array> target{{"enc.w", {}}, {"enc.b", {}}, {"dec.w", {}}, {"new", {}}};
    auto r = cairn::restore(dir.path(), target, with([](cairn::restore_options& o) { o.allow_missing = true; }));
    CHECK(r.missing == std::vector<std::string>{"new"});
    CHECK(r.restored.size() == 3);
  }
  SUBCASE("cast on restore") {
    std::map<std::string, cairn::host_array> target{{"enc.w", cairn::host_array(cairn::dtype::bfloat16, cairn::shape{2, 2})},
                                                    {"enc.b", {}}, {"dec.w", {}}};
    CHECK_THROWS_AS(cairn::restore(dir.path(), target), cairn::error);
    auto r = cairn::restore(dir.path(), target, with([](cairn::restore_options& o) { o.cast = true; }));
    CHECK(r.cast == std::vector<std::string>{"enc.w"});
    CHECK(target.at("enc.w").type() == cairn::dtype::bfloat16);
    CHECK(static_cast<float>(target.at("enc.w").values<cairn::bfloat16>()[3]) == 3.0f);
  }
  SUBCASE("cast on save") {
    auto o = quiet();
    o.cast = [](const std::string& name, cairn::dtype t) -> std::optional<cairn::dtype> {
      if (name.ends_with(".w") && t == cairn::dtype::float32) return cairn::dtype::bfloat16;
      return std::nullopt;
    };
    cairn::save(dir.path(), 2, saved, o);
    auto untyped = cairn::load(dir.path() / "2" / "default");
    CHECK(untyped.at(cairn::key("enc.w")).as_array().type() == cairn::dtype::bfloat16);
    CHECK(untyped.at(cairn::key("enc.b")).as_array().type() == cairn::dtype::float32);
  }
  SUBCASE("remapping by function and by regex rules") {
    renamed t;
    cairn::restore_options o;
    o.rules = {{"encoder_(.*)", "enc.$1"}, {"decoder_(.*)", "dec.$1"}};
    cairn::restore(dir.path(), t, o);
    CHECK(t.encoder_b == saved.at("enc.b"));
    CHECK(t.decoder_w == saved.at("dec.w"));
    renamed u;
    cairn::restore_options f;
    f.remap = [](const std::string& n) -> std::optional<std::string> {
      if (n == "encoder_w") return "enc.w";
      if (n == "encoder_b") return "enc.b";
      if (n == "decoder_w") return "dec.w";
      return std::nullopt;
    };
    cairn::restore(dir.path(), u, f);
    CHECK(u.encoder_w == saved.at("enc.w"));
  }
}

TEST_CASE("many small new arrays share one block, larger and in-place ones keep their own memory") {
  // Enough small leaves for the restore's arena (>= 256 of them, >= 2 MiB), plus one of 64 KiB.
  cairn_test::temp_dir dir;
  std::map<std::string, cairn::host_array> saved;
  for (int i = 0; i < 600; ++i) saved["w" + std::to_string(1000 + i)] = iota_array({1024}, static_cast<float>(i));
  saved["big"] = iota_array({16384}, -3);
  saved["odd"] = iota_array({3}, 9);  // 12 bytes: the next array still starts aligned
  cairn::save(dir.path(), 1, saved, quiet());

  std::map<std::string, cairn::host_array> back;
  (void)cairn::restore(dir.path(), back);
  REQUIRE(back.size() == saved.size());
  for (const auto& [k, a] : saved) CHECK_MESSAGE(back.at(k) == a, k);
  for (const auto& [k, a] : back) CHECK(reinterpret_cast<std::uintptr_t>(a.bytes().data()) % cairn::host_arena::alignment == 0);
  // Small arrays sit in one block, in leaf order; writing one leaves its neighbours alone.
  const auto* first = back.at("w1000").bytes().data();
  CHECK(back.at("w1001").bytes().data() == first + 4096);
  std::memset(back.at("w1001").mutable_bytes().data(), 0, 4096);
  CHECK(back.at("w1000") == saved.at("w1000"));
  CHECK(back.at("w1002") == saved.at("w1002"));
  // The arena's arrays outlive the rest of the tree.
  cairn::host_array kept = std::move(back.at("w1599"));
  back.clear();
  CHECK(kept == saved.at("w1599"));

  // In place: matching targets keep their bytes; the leaves read anew still share a block.
  std::map<std::string, cairn::host_array> live;
  for (const auto& [k, a] : saved) live[k] = cairn::host_array{};  // empty: takes the saved array anew
  live["w1000"] = cairn::host_array(cairn::dtype::float32, {1024});  // matches: read into its own bytes
  const std::byte* live_bytes = live.at("w1000").bytes().data();
  (void)cairn::restore(dir.path(), live, with([](cairn::restore_options& o) { o.in_place = true; }));
  REQUIRE(live.size() == saved.size());
  CHECK(live.at("w1000").bytes().data() == live_bytes);
  CHECK(live.at("w1002").bytes().data() == live.at("w1001").bytes().data() + 4096);
  for (const auto& [k, a] : saved) CHECK_MESSAGE(live.at(k) == a, k);
}

TEST_CASE("a failing read leaves the target untouched; a failing leaf conversion says what was written") {
  cairn_test::temp_dir dir;
  std::map<std::string, std::uint8_t> saved{{"a", 1}, {"b", 7}};
  cairn::save(dir.path(), 1, saved, quiet());
  phases p;
  CHECK_THROWS_WITH_AS(cairn::restore(dir.path(), p),
                       doctest::Contains("leaf \"b\": cairn: sched::phase 7 is out of range: corrupted; leaves already "
                                         "written to the target: \"a\""),
                       cairn::error);
  CHECK(p.a == 1);
  // A read failure (a chunk gone) happens before anything is assigned.
  phases q;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "1" / "default" / "d")) std::filesystem::remove(e.path());
  CHECK_THROWS_AS(cairn::restore(dir.path(), q), cairn::error);
  CHECK(q.a == 0);
}

TEST_CASE("small leaves read in batches: a damaged chunk among them names its leaf and leaves the target as it was") {
  cairn_test::temp_dir dir;
  std::map<std::string, cairn::host_array> saved;
  for (int i = 0; i < 700; ++i) saved["w" + std::to_string(1000 + i)] = iota_array({1024}, static_cast<float>(i));
  cairn::save(dir.path(), 1, saved, quiet());
  std::map<std::string, cairn::host_array> back;
  (void)cairn::restore(dir.path(), back);
  for (const auto& [k, a] : saved) CHECK_MESSAGE(back.at(k) == a, k);

  damage_chunk(dir.path() / "1" / "default", "w1444");
  std::map<std::string, cairn::host_array> target{{"w1000", iota_array({1024}, -1)}};
  std::map<std::string, cairn::host_array> before = target;
  const auto all = with([](cairn::restore_options& o) { o.allow_missing = true; });
  for (const auto& [k, a] : saved) target.emplace(k, cairn::host_array{});
  const std::string text = error_text([&] { (void)cairn::restore(dir.path(), target, all); });
  CHECK_MESSAGE(text.find("w1444") != std::string::npos, text);
  CHECK(target.at("w1000") == before.at("w1000"));
  CHECK(target.at("w1001").shape().rank() == 0);  // nothing assigned
}

TEST_CASE("in-place restore reads matching host arrays into the target's own bytes; a failure names what was written") {
  cairn_test::temp_dir dir;
  adam_state saved{iota_array({64, 64}, 1), iota_array({64, 64}, 5000), 7};
  cairn::save(dir.path(), 1, saved, quiet());
  const auto in_place = with([](cairn::restore_options& o) { o.in_place = true; });

  // mu matches: read into its own bytes; nu is empty (takes any shape): staged and assigned as usual.
  adam_state t{cairn::host_array(cairn::dtype::float32, {64, 64}), cairn::host_array{}, 0};
  const std::byte* mu_bytes = t.mu.bytes().data();
  const cairn::array_view alias = t.mu.view();  // a view a user keeps into the live state
  const auto report = cairn::restore(dir.path(), t, in_place);
  CHECK(t.mu.bytes().data() == mu_bytes);
  CHECK(t.mu == saved.mu);
  CHECK(cairn::host_array::copy_of(alias) == saved.mu);
  CHECK(t.nu == saved.nu);
  CHECK(t.count == 7);
  CHECK(report.restored == std::vector<std::string>{"mu", "nu", "count"});
  // Without the option the target's arrays are replaced by new ones.
  adam_state u{cairn::host_array(cairn::dtype::float32, {64, 64}), cairn::host_array{}, 0};
  const std::byte* u_bytes = u.mu.bytes().data();
  (void)cairn::restore(dir.path(), u);
  CHECK(u.mu == saved.mu);
  CHECK(u.mu.bytes().data() != u_bytes);
  // A cast is never done in place.
  adam_state c{cairn::host_array(cairn::dtype::float64, {64, 64}), cairn::host_array{}, 0};
  const std::byte* c_bytes = c.mu.bytes().data();
  auto cast_in_place = in_place;
  cast_in_place.cast = true;
  const auto cast_report = cairn::restore(dir.path(), c, cast_in_place);
  CHECK(c.mu.type() == cairn::dtype::float64);
  CHECK(c.mu.bytes().data() != c_bytes);
  CHECK(cast_report.cast == std::vector<std::string>{"mu"});

  // Damage nu's chunk on disk: the read of nu fails after mu may have been written in place.
  damage_chunk(dir.path() / "1" / "default", "nu");
  adam_state v{cairn::host_array(cairn::dtype::float32, {64, 64}), cairn::host_array(cairn::dtype::float32, {64, 64}), 0};
  const std::string text = error_text([&] { (void)cairn::restore(dir.path(), v, in_place); });
  CHECK_MESSAGE(text.find("not a zstd frame") != std::string::npos, text);
  CHECK_MESSAGE(text.find("leaves written in place: \"mu\", \"nu\" (in part)") != std::string::npos, text);
  CHECK(v.mu == saved.mu);
  CHECK(v.count == 0);  // staged leaves are not assigned
  // Staged, the same failure leaves the target as it was.
  adam_state w{cairn::host_array(cairn::dtype::float32, {64, 64}), cairn::host_array(cairn::dtype::float32, {64, 64}), 0};
  const cairn::host_array before = w.mu;
  const std::string staged_text = error_text([&] { (void)cairn::restore(dir.path(), w); });
  CHECK(staged_text.find("not a zstd frame") != std::string::npos);
  CHECK(staged_text.find("in place") == std::string::npos);
  CHECK(w.mu == before);
}

namespace {
// Fields out of name order, lists of maps and lists of lists: consecutive leaves share a prefix of
// their paths or part at any level.
struct odd_order {
  std::map<std::string, std::int32_t> zeta;
  std::vector<std::map<std::string, std::int32_t>> alpha;
  std::vector<std::vector<std::optional<std::int32_t>>> grid;  // (a vector of numbers is an array leaf)
  std::int32_t mid = 0;
  static constexpr auto cairn_fields = cairn::fields(cairn::field("zeta", &odd_order::zeta), cairn::field("alpha", &odd_order::alpha),
                                                     cairn::field("grid", &odd_order::grid), cairn::field("mid", &odd_order::mid));
};
}  // namespace

TEST_CASE("staging places every leaf where its path says, whatever the order of the paths") {
  const odd_order x{{{"b", 1}, {"a", 2}}, {{{"y", 3}, {"x", 4}}, {{"x", 5}}}, {{7, 8}, {}, {9}}, 6};
  const cairn::dynamic_tree t = cairn::to_dynamic(x);
  std::vector<std::pair<std::string, std::int32_t>> leaves;
  std::vector<std::string> empty;
  t.for_each_leaf([&](const cairn::key_path& p, const cairn::dynamic_tree& leaf) {
    if (leaf.type() == cairn::dynamic_tree::kind::scalar) leaves.emplace_back(cairn::param_name(p), leaf.as_scalar().as<std::int32_t>());
    else empty.push_back(cairn::param_name(p));
  });
  const std::vector<std::pair<std::string, std::int32_t>> expect = {
      {"alpha.0.x", 4}, {"alpha.0.y", 3}, {"alpha.1.x", 5}, {"grid.0.0", 7}, {"grid.0.1", 8},
      {"grid.2.0", 9},  {"mid", 6},       {"zeta.a", 2},    {"zeta.b", 1}};
  CHECK(leaves == expect);
  CHECK(empty == std::vector<std::string>{"grid.1"});
  CHECK(t.num_leaves() == expect.size() + 1);
  CHECK(t.at(cairn::key_path{"alpha"}).is_list());
  CHECK(t.at(cairn::key_path{"alpha", 0}).is_map());
}
