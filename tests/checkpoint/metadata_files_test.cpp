// SPDX-License-Identifier: Apache-2.0
// The checkpoint metadata files: every one in the Orbax fixtures parses and, where it holds all of
// Orbax's fields, re-serialises byte for byte; step names and discovery follow Orbax's rules.
#include <cairn/checkpoint/checkpoint_metadata.hpp>
#include <cairn/checkpoint/item_files.hpp>
#include <cairn/checkpoint/steps.hpp>
#include <cairn/checkpoint/tree_metadata.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "support/shared.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

TEST_CASE("fixture metadata files parse and re-serialise as Orbax wrote them") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  int checkpoint_files = 0, exact_checkpoint = 0, tree_files = 0, sharding_files = 0, array_files = 0;
  for (const auto& e : fs::recursive_directory_iterator(*shared / "fixtures" / "orbax-compat")) {
    if (!e.is_regular_file()) continue;
    const auto name = e.path().filename().string();
    const std::string text = slurp(e.path());
    CAPTURE(e.path().string());
    if (name == "_CHECKPOINT_METADATA") {
      auto m = cairn::parse_checkpoint_metadata(text, "_CHECKPOINT_METADATA");
      ++checkpoint_files;
      // Files with all six keys come back byte for byte (the "missing_*" fixtures lack one).
      if (text.find("\"item_handlers\"") != std::string::npos && text.find("\"metrics\"") != std::string::npos &&
          text.find("\"performance_metrics\"") != std::string::npos && text.find("\"init_timestamp_nsecs\"") != std::string::npos &&
          text.find("\"commit_timestamp_nsecs\"") != std::string::npos && text.find("\"custom_metadata\"") != std::string::npos) {
        CHECK(cairn::to_json(m) == text);
        ++exact_checkpoint;
      }
      if (m.direct) CHECK(m.item_handlers.size() == 1);
    } else if (name == "_METADATA" && e.path().parent_path().filename() == "dummy") {
      // The "dummy item added" fixture: not JSON at all, and must say so with its location.
      CHECK_THROWS_WITH_AS(cairn::parse_tree_metadata(text, "dummy/_METADATA"),
                           doctest::Contains("dummy/_METADATA: line 1, column 1"), cairn::error);
    } else if (name == "_METADATA") {
      auto m = cairn::parse_tree_metadata(text, "_METADATA");
      CHECK(cairn::to_json(m) == text);
      cairn::tree_metadata fast;  // Orbax's own files take the one-pass reader
      CHECK(cairn::detail::tree_metadata_fast_reader(text).read(fast));
      REQUIRE(m.entries.size() == 2);
      CHECK(cairn::param_name(m.entries[0].path) == "a");
      CHECK(cairn::param_name(m.entries[1].path) == "b.c");
      CHECK(m.entries[1].path[0].type() == cairn::key::kind::dict);
      ++tree_files;
    } else if (name == "_sharding") {
      auto f = cairn::parse_sharding_file(text, "_sharding");
      CHECK(f.shardings.count("a") == 1);
      CHECK(f.shardings.at("b.c").at("sharding_type").as_string() == "SingleDeviceSharding");
      CHECK(cairn::to_json(f) == text);
      ++sharding_files;
    } else if (e.path().parent_path().filename() == "array_metadatas") {
      auto a = cairn::parse_array_metadatas(text, "array_metadatas");
      REQUIRE(a.size() == 2);
      CHECK(a[1].param_name == "b.c");
      CHECK(a[1].chunk_shape == std::vector<cairn::index_t>{3});
      CHECK(cairn::to_json(a) == text);
      ++array_files;
    }
  }
  MESSAGE(checkpoint_files << " _CHECKPOINT_METADATA (" << exact_checkpoint << " byte-exact), " << tree_files
                           << " _METADATA, " << sharding_files << " _sharding, " << array_files << " array_metadatas");
  CHECK(exact_checkpoint >= 10);
  CHECK(tree_files >= 10);
}

TEST_CASE("tree metadata keys are Python tuple reprs") {
  CHECK(cairn::tree_metadata_key({"a"}) == "('a',)");
  CHECK(cairn::tree_metadata_key({"b", "c"}) == "('b', 'c')");
  CHECK(cairn::tree_metadata_key({"layers", 0, "kernel"}) == "('layers', '0', 'kernel')");
  CHECK(cairn::tree_metadata_key({}) == "()");
  CHECK(cairn::tree_metadata_key({"it's"}) == "(\"it's\",)");
  CHECK(cairn::tree_metadata_key({"a\\b\n"}) == "('a\\\\b\\n',)");
}

TEST_CASE("_METADATA with sequence keys, empty nodes and bad entries") {
  cairn::tree_metadata m;
  m.use_ocdbt = true;
  m.use_zarr3 = true;
  m.store_array_data_equal_to_fill_value = true;
  m.entries.push_back({{"opt", 0, "mu"}, "jax.Array", false, std::vector<cairn::index_t>{4, 2}});
  m.entries.push_back({{"empty"}, "Dict", true, std::nullopt});
  m.entries.push_back({{"n"}, "None", true, std::nullopt});
  auto text = cairn::to_json(m);
  auto back = cairn::parse_tree_metadata(text, "_METADATA");
  REQUIRE(back.entries.size() == 3);
  CHECK(back.entries[0].path == cairn::key_path{"opt", 0, "mu"});
  CHECK(back.entries[0].path[1].is_index());
  CHECK(back.entries[0].write_shape == std::vector<cairn::index_t>{4, 2});
  CHECK(back.entries[1].skip_deserialize);
  CHECK(cairn::to_json(back) == text);
  CHECK_THROWS_WITH_AS(cairn::parse_tree_metadata(R"({"tree_metadata": {"x": {"key_metadata": [{"key": "a", "key_type": 7}], "value_metadata": {"value_type": "scalar"}}}})", "_METADATA"),
                       doctest::Contains("unknown key_type 7"), cairn::error);
  CHECK_THROWS_WITH_AS(cairn::parse_tree_metadata(R"({"tree_metadata": {"x": {"key_metadata": [{"key": "a", "key_type": 1}], "value_metadata": {"value_type": "scalar"}}}})", "_METADATA"),
                       doctest::Contains("is not an index"), cairn::error);
  CHECK_THROWS_AS(cairn::parse_tree_metadata("{}", "_METADATA"), cairn::error);
}

namespace {
// The per-leaf files as a json::writer lays them out (how they were printed before their printers
// were written out by hand): the printers must give these bytes for any names.
std::string tree_metadata_by_writer(const cairn::tree_metadata& m) {
  cairn::json::writer w({.spaced = true});
  w.begin_object().key("tree_metadata").begin_object();
  for (const auto& e : m.entries) {
    w.key(cairn::tree_metadata_key(e.path)).begin_object().key("key_metadata").begin_array();
    for (const auto& k : e.path)
      w.begin_object().key("key").value(k.str()).key("key_type").value(static_cast<int>(k.type())).end_object();
    w.end_array().key("value_metadata").begin_object().key("value_type").value(e.value_type);
    w.key("skip_deserialize").value(e.skip_deserialize);
    if (e.write_shape) {
      w.key("write_shape").begin_array();
      for (auto d : *e.write_shape) w.value(d);
      w.end_array();
    }
    w.end_object().end_object();
  }
  w.end_object().key("use_ocdbt").value(m.use_ocdbt.value_or(true)).key("use_zarr3").value(m.use_zarr3);
  w.key("store_array_data_equal_to_fill_value").value(m.store_array_data_equal_to_fill_value);
  return w.key("custom_metadata").value(m.custom_metadata).end_object().take();
}
std::string array_metadatas_by_writer(const std::vector<cairn::array_metadata_entry>& entries) {
  cairn::json::writer w({.spaced = true});
  w.begin_object().key("array_metadatas").begin_array();
  for (const auto& e : entries) {
    w.begin_object().key("array_metadata").begin_object().key("param_name").value(e.param_name).key("write_shape").begin_array();
    for (auto d : e.write_shape) w.value(d);
    w.end_array().key("chunk_shape").begin_array();
    for (auto d : e.chunk_shape) w.value(d);
    w.end_array().key("ext_metadata").value(e.ext_metadata).end_object().end_object();
  }
  return w.end_array().end_object().take();
}
std::string sharding_file_by_writer(std::vector<std::pair<std::string, std::string_view>> entries) {
  for (auto& e : entries) e.first = cairn::base64url_encode(e.first);
  std::sort(entries.begin(), entries.end());
  cairn::json::writer w;
  w.begin_object();
  for (const auto& [k, text] : entries) w.key(k).value(text);
  return w.end_object().take();
}
}  // namespace

TEST_CASE("the per-leaf metadata files are printed as json::writer lays them out, for any names") {
  const std::vector<std::string> names = {"w_00", "it's", "say \"hi\"", "both '\"", "back\\slash", "tab\there", "line\n",
                                          "del\x7f", "bell\x07", "gr\xc3\xbc\xc3\x9f", "\xe2\x82\xac", "\xf0\x9f\x98\x80", ""};
  const std::string sharding = R"({"sharding_type": "NamedSharding", "shape": [1], "axis_names": ["x"], "partition_spec": [], "device_mesh": {"mesh": [{"id": 0}]}})";
  const std::string quoted = "{\"a\": \"q\\\"\\\\ \xc3\xbc\"}";
  for (std::size_t count : {0, 1, 2, 200}) {
    CAPTURE(count);
    cairn::tree_metadata m;
    std::vector<cairn::array_metadata_entry> arrays;
    std::vector<std::pair<std::string, std::string_view>> shardings;
    for (std::size_t i = 0; i < count; ++i) {
      const std::string& name = names[i % names.size()];
      cairn::key_path path{"layer_" + std::to_string(i), name};
      if (i % 3 == 1) path = {"opt", static_cast<cairn::index_t>(i), name};
      if (i % 7 == 2) path = {name, "k" + std::to_string(i)};
      std::optional<std::vector<cairn::index_t>> shape;
      if (i % 4) shape = std::vector<cairn::index_t>(i % 4, static_cast<cairn::index_t>(i));
      m.entries.push_back({path, i % 5 ? "jax.Array" : "scalar", i % 6 == 0, shape});
      cairn::array_metadata_entry a{cairn::param_name(path), shape.value_or(std::vector<cairn::index_t>{}), {1024, 3}, {}};
      if (i % 9 == 4) a.ext_metadata = cairn::json::parse(R"({"random_key_impl": "threefry2x32", "x": [1, 2.5, null]})", "t");
      arrays.push_back(a);
      shardings.emplace_back(a.param_name, i % 4 ? std::string_view(sharding) : std::string_view(quoted));
    }
    m.use_zarr3 = count % 2 == 0;
    m.store_array_data_equal_to_fill_value = count == 1;
    if (count == 2) m.use_ocdbt = false;
    if (count == 200) m.custom_metadata = cairn::json::parse(R"({"epoch": 3, "note": "\u00fc"})", "t");
    CHECK(cairn::to_json(m) == tree_metadata_by_writer(m));
    CHECK(cairn::to_json(arrays) == array_metadatas_by_writer(arrays));
    CHECK(cairn::sharding_file_json(shardings) == sharding_file_by_writer(shardings));
  }
  // A name that is not UTF-8 cannot be written, and the error says which.
  cairn::tree_metadata bad;
  bad.entries.push_back({{"layer", "w\xff"}, "jax.Array", false, std::vector<cairn::index_t>{2}});
  CHECK_THROWS_WITH_AS(cairn::to_json(bad), doctest::Contains("_METADATA: the key \"('layer', 'w\xef\xbf\xbd')\" is not valid UTF-8"), cairn::error);
  std::vector<cairn::array_metadata_entry> bad_arrays{{"layer.w\xff", {2}, {2}, {}}};
  CHECK_THROWS_WITH_AS(cairn::to_json(bad_arrays), doctest::Contains("array_metadatas: the parameter name \"layer.w\xef\xbf\xbd\" is not valid UTF-8"),
                       cairn::error);
}

TEST_CASE("_METADATA read in place gives what the DOM reader gives, and falls back to it for everything else") {
  // The in-place reader serves well-formed files; anything unusual goes to the DOM reader, which
  // accepts what it may (integral doubles, explicit nulls) and words every error.
  const std::string entry_a = R"j("('a', '0')": {"key_metadata": [{"key": "a", "key_type": 2}, {"key": "0", "key_type": 1}], )j"
                              R"j("value_metadata": {"value_type": "jax.Array", "skip_deserialize": false, "write_shape": [3, 2]}})j";
  auto doc = [&](const std::string& second, const std::string& tail) {
    return "{\"tree_metadata\": {" + entry_a + ", " + second + "}" + tail + "}";
  };
  const std::string plain_b = R"j("('b',)": {"key_metadata": [{"key": "b", "key_type": 2}], "value_metadata": {"value_type": "Dict", "skip_deserialize": true}})j";
  const std::string flags = R"j(, "use_ocdbt": false, "use_zarr3": true, "store_array_data_equal_to_fill_value": true, "custom_metadata": {"x": [1, "y"]})j";
  struct good_case {
    const char* name;
    std::string text;
  };
  const good_case good[] = {
      {"plain", doc(plain_b, flags)},
      {"no flags", doc(plain_b, "")},
      {"null flags and fields",
       doc(R"j("('b',)": {"key_metadata": [{"key": "b", "key_type": 2}], "value_metadata": {"value_type": "Dict", "skip_deserialize": null, "write_shape": null}})j",
           R"j(, "use_ocdbt": null, "use_zarr3": null, "custom_metadata": null)j")},
      {"integral double key type and dims (DOM reader only)",
       doc(R"j("('b',)": {"key_metadata": [{"key": "b", "key_type": 2.0}], "value_metadata": {"value_type": "np.ndarray", "write_shape": [4.0]}})j", flags)},
  };
  // The same text read from a file straight into the parser's memory gives the same, errors included.
  cairn_test::temp_dir dir;
  auto from_file = [&](const std::string& text) {
    std::ofstream(dir.path() / "_METADATA", std::ios::binary) << text;
    return cairn::read_tree_metadata_file(dir.path() / "_METADATA", "_METADATA");
  };
  for (const auto& c : good) {
    CAPTURE(c.name);
    const auto m = cairn::parse_tree_metadata(c.text, "_METADATA");
    const auto f = from_file(c.text);
    REQUIRE(f.entries.size() == m.entries.size());
    for (std::size_t i = 0; i < f.entries.size(); ++i) {
      CHECK(f.entries[i].path == m.entries[i].path);
      CHECK(f.entries[i].value_type == m.entries[i].value_type);
      CHECK(f.entries[i].skip_deserialize == m.entries[i].skip_deserialize);
      CHECK(f.entries[i].write_shape == m.entries[i].write_shape);
    }
    CHECK(f.use_ocdbt == m.use_ocdbt);
    CHECK(f.use_zarr3 == m.use_zarr3);
    CHECK(f.store_array_data_equal_to_fill_value == m.store_array_data_equal_to_fill_value);
    CHECK(f.custom_metadata == m.custom_metadata);
    const auto v = cairn::json::parse(c.text, "_METADATA");
    REQUIRE(m.entries.size() == 2);
    CHECK(m.entries[0].path == cairn::key_path{"a", 0});
    CHECK(m.entries[0].path[1].is_index());
    CHECK(m.entries[0].write_shape == std::vector<cairn::index_t>{3, 2});
    CHECK(m.entries[1].path == cairn::key_path{"b"});
    CHECK(m.entries[1].value_type == v.at("tree_metadata").at("('b',)").at("value_metadata").at("value_type").as_string());
    const auto* flag = v.find("use_zarr3");
    CHECK(m.use_zarr3 == (flag && flag->is_bool() && flag->as_bool()));
    const auto* custom = v.find("custom_metadata");
    CHECK(m.custom_metadata == (custom ? *custom : cairn::json::value()));
  }
  CHECK(cairn::parse_tree_metadata(doc(plain_b, flags), "_METADATA").use_ocdbt == false);
  CHECK(cairn::parse_tree_metadata(doc(plain_b, flags), "_METADATA").entries[1].skip_deserialize);

  // Errors keep the DOM reader's words, whichever reader met them first.
  struct bad_case {
    std::string text;
    const char* message;
  };
  const bad_case bad[] = {
      {doc(plain_b, R"j(, "use_zarr3": "yes")j"), "use_zarr3: expected boolean, found string"},
      {doc(R"j("('b',)": {"key_metadata": [{"key": 5, "key_type": 2}], "value_metadata": {"value_type": "Dict"}})j", ""),
       "entry ('b',) key: expected string, found"},
      {doc(R"j("('b',)": {"key_metadata": {}, "value_metadata": {"value_type": "Dict"}})j", ""), "entry ('b',) \"key_metadata\": expected array"},
      {doc(R"j("('b',)": {"key_metadata": [], "value_metadata": {"skip_deserialize": true}})j", ""), "entry ('b',)"},
      {doc(R"j("('b',)": {"key_metadata": [], "value_metadata": {"value_type": "x", "write_shape": [1.5]}})j", ""), "entry ('b',) write_shape"},
      {doc(R"j("('b',)": {"key_metadata": [{"key": "01x", "key_type": 1}], "value_metadata": {"value_type": "Dict"}})j", ""), "sequence key \"01x\" is not an index"},
      {doc(plain_b, R"j(, "use_ocdbt": true, "use_ocdbt": false)j"), "duplicate key \"use_ocdbt\" in the top-level object"},
      {R"j({"tree_metadata": [1]})j", "_METADATA \"tree_metadata\": expected object"},
      {"{\"tree_metadata\": {}", "_METADATA: line 1, column 21 (byte 20): invalid JSON"},
  };
  for (const auto& c : bad) {
    CAPTURE(c.text);
    CHECK_THROWS_WITH_AS(cairn::parse_tree_metadata(c.text, "_METADATA"), doctest::Contains(c.message), cairn::error);
    CHECK_THROWS_WITH_AS(from_file(c.text), doctest::Contains(c.message), cairn::error);
  }
  try {
    (void)cairn::read_tree_metadata_file(dir.path() / "absent" / "_METADATA", "_METADATA");
    FAIL("a missing file was read");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::not_found);
    CHECK(std::string(e.what()).find("absent") != std::string::npos);
  }
}

TEST_CASE("_METADATA in Orbax's layout is read in one pass, exactly as the DOM reader reads it; anything else goes to that reader") {
  const std::string a = R"j("('a', '0')": {"key_metadata": [{"key": "a", "key_type": 2}, {"key": "0", "key_type": 1}], )j"
                        R"j("value_metadata": {"value_type": "jax.Array", "skip_deserialize": false, "write_shape": [3, 2]}})j";
  auto doc = [&](const std::string& entries, const std::string& tail = "") { return "{\"tree_metadata\": {" + entries + "}" + tail + "}"; };
  auto entry = [](const std::string& id, const std::string& keys, const std::string& value) {
    return "\"" + id + "\": {\"key_metadata\": [" + keys + "], \"value_metadata\": {" + value + "}}";
  };
  const std::string b = entry("('b',)", R"j({"key": "b", "key_type": 2})j", R"j("value_type": "Dict", "skip_deserialize": true)j");
  struct text_case {
    const char* name;
    std::string text;
    bool one_pass;  // taken by the one-pass reader
  };
  const text_case cases[] = {
      {"Orbax's layout", doc(a + ", " + b, R"j(, "use_ocdbt": true, "use_zarr3": false, "store_array_data_equal_to_fill_value": true, "custom_metadata": null)j"), true},
      {"no flags, no entries", doc(""), true},
      {"members in another order, no spaces, other whitespace",
       "{\"use_zarr3\":true,\r\n\t\"tree_metadata\":{\"x\":{\"value_metadata\":{\"write_shape\":[],\"value_type\":\"np.ndarray\"},"
       "\"key_metadata\":[{\"key_type\":2,\"key\":\"x\"}]}}}\n",
       true},
      {"null fields and flags",
       doc(entry("('b',)", R"j({"key": "b", "key_type": 2})j", R"j("value_type": "None", "skip_deserialize": null, "write_shape": null)j"),
           R"j(, "use_ocdbt": null, "use_zarr3": null, "store_array_data_equal_to_fill_value": null)j"),
       true},
      {"non-ASCII names", doc(entry("('caf\xc3\xa9',)", "{\"key\": \"caf\xc3\xa9\", \"key_type\": 2}", R"j("value_type": "scalar")j")), true},
      {"names with quotes, dots and brackets", doc(entry("('a.b', \\\"c'd\\\")", "{\"key\": \"a.b\", \"key_type\": 2}", R"j("value_type": "scalar")j")), false},
      {"large dims and index keys",
       doc(entry("('7',)", R"j({"key": "007", "key_type": 1})j", R"j("value_type": "jax.Array", "write_shape": [0, 123456789012345678])j")), true},
      {"custom_metadata: an object", doc(b, R"j(, "custom_metadata": {"x": [1, "y]},", {"z": null}], "w": -2.5e3})j"), true},
      {"custom_metadata: a scalar", doc(b, R"j(, "custom_metadata": true, "use_zarr3": true)j"), true},
      {"custom_metadata: a string with escapes", doc(b, R"j(, "custom_metadata": "a\"}]\\")j"), true},
      // The DOM readers take these; the one-pass reader declines them.
      {"an escape in a name", doc(entry("('\\u0062',)", R"j({"key": "\u0062", "key_type": 2})j", R"j("value_type": "Dict")j")), false},
      {"an unknown field", doc(entry("('b',)", R"j({"key": "b", "key_type": 2})j", R"j("value_type": "Dict", "dtype": "float32")j")), false},
      {"an integral double", doc(entry("('b',)", R"j({"key": "b", "key_type": 2.0})j", R"j("value_type": "Dict")j")), false},
      {"an exponent in a dim", doc(entry("('b',)", R"j({"key": "b", "key_type": 2})j", R"j("value_type": "x", "write_shape": [1e1])j")), false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    cairn::tree_metadata fast;
    const bool took = cairn::detail::tree_metadata_fast_reader(c.text).read(fast);
    CHECK(took == c.one_pass);
    const auto dom = cairn::detail::parse_tree_metadata_dom(c.text, "_METADATA");
    if (took) CHECK(fast == dom);
    CHECK(cairn::parse_tree_metadata(c.text, "_METADATA") == dom);
  }

  // Text the one-pass reader declines and the DOM reader rejects: the error is the DOM reader's.
  const std::string good = doc(a + ", " + b);
  struct bad_case {
    std::string text;
    const char* message;
  };
  const bad_case bad[] = {
      {doc(a + ", " + a), "duplicate key \"('a', '0')\" in object /tree_metadata"},
      {doc(entry("('b',)", R"j({"key": "b", "key_type": 2, "key": "c"})j", R"j("value_type": "Dict")j")), "duplicate key \"key\""},
      {doc(entry("('b',)", R"j({"key": "b", "key_type": 2})j", R"j("value_type": "Dict", "value_type": "None")j")), "duplicate key \"value_type\""},
      {doc(b, R"j(, "custom_metadata": {"k": 1, "k": 2})j"), "duplicate key \"k\""},
      {doc(b, R"j(, "custom_metadata": {"k": [1, 2})j"), "invalid JSON"},
      {doc(b, ", \"custom_metadata\": \"a\\q\""), "invalid JSON"},
      {good.substr(0, good.size() - 1), "invalid JSON"},
      {good + " x", "invalid JSON"},
      {doc(b, R"j(, "use_ocdbt": tru)j"), "invalid JSON"},
      {doc(b, R"j(, "use_ocdbt": truex)j"), "invalid JSON"},
      {doc(entry("('b',)", R"j({"key": "b", "key_type": 02})j", R"j("value_type": "Dict")j")), "invalid JSON"},
      {doc(entry("('b',)", "{\"key\": \"b\xff\", \"key_type\": 2}", R"j("value_type": "Dict")j")), "invalid JSON"},
      {doc(entry("('b',)", "{\"key\": \"b\tc\", \"key_type\": 2}", R"j("value_type": "Dict")j")), "invalid JSON"},
      {doc(entry("('b',)", R"j({"key": "b", "key_type": 3})j", R"j("value_type": "Dict")j")), "unknown key_type 3"},
      {doc(entry("('b',)", R"j({"key": "x1", "key_type": 1})j", R"j("value_type": "Dict")j")), "sequence key \"x1\" is not an index"},
      {doc(entry("('b',)", R"j({"key": "b", "key_type": 2})j", R"j("value_type": "x", "write_shape": [-1, 12345678901234567890])j")),
       "write_shape"},
      {"{\"use_zarr3\": true}", "tree_metadata"},
  };
  for (const auto& c : bad) {
    CAPTURE(c.text);
    cairn::tree_metadata fast;
    CHECK_FALSE(cairn::detail::tree_metadata_fast_reader(c.text).read(fast));
    CHECK_THROWS_WITH_AS(cairn::parse_tree_metadata(c.text, "_METADATA"), doctest::Contains(c.message), cairn::error);
  }
}

TEST_CASE("base64url names in _sharding") {
  CHECK(cairn::base64url_encode("a") == "YQ==");
  CHECK(cairn::base64url_encode("b.c") == "Yi5j");
  CHECK(cairn::base64url_encode("params.dense_1.kernel") == "cGFyYW1zLmRlbnNlXzEua2VybmVs");
  CHECK(cairn::base64url_encode("\xfb\xff") == "-_8=");
  for (std::string s : {"", "x", "xy", "xyz", "trainable_variables.dense.kernel", "\xfb\xff\xfe"})
    CHECK(cairn::base64url_decode(cairn::base64url_encode(s), "t") == s);
  CHECK_THROWS_AS(cairn::base64url_decode("a$b", "_sharding key"), cairn::error);
}

TEST_CASE("step names and discovery") {
  CHECK(cairn::step_name(23) == "23");
  CHECK(cairn::step_name(23, {"", 4}) == "0023");
  CHECK(cairn::step_name(23, {"step", 0}) == "step_23");
  CHECK(cairn::step_name(23, {"step", 4}) == "step_0023");
  CHECK(cairn::step_name(123456, {"", 4}) == "123456");
  CHECK(cairn::parse_step_name("23") == 23);
  CHECK(cairn::parse_step_name("0") == 0);
  CHECK_FALSE(cairn::parse_step_name("023").has_value());
  CHECK(cairn::parse_step_name("0023", {"", 4}) == 23);
  CHECK_FALSE(cairn::parse_step_name("23", {"", 4}).has_value());
  CHECK(cairn::parse_step_name("12345", {"", 4}) == 12345);
  CHECK(cairn::parse_step_name("step_7", {"step", 0}) == 7);
  CHECK_FALSE(cairn::parse_step_name("step7", {"step", 0}).has_value());
  CHECK_FALSE(cairn::parse_step_name("7", {"step", 0}).has_value());
  CHECK_FALSE(cairn::parse_step_name("7.orbax-checkpoint-tmp").has_value());
  CHECK_FALSE(cairn::parse_step_name("-1").has_value());

  cairn_test::temp_dir dir;
  for (const char* d : {"0", "1", "10", "2", "3.orbax-checkpoint-tmp", "4.orbax-checkpoint-tmp-1700000000",
                        "metadata", "007", "abc"})
    fs::create_directories(dir.path() / d);
  std::ofstream(dir.path() / "5");  // a file, not a step
  std::vector<std::int64_t> steps;
  for (const auto& s : cairn::list_steps(dir.path())) steps.push_back(s.step);
  CHECK(steps == std::vector<std::int64_t>{0, 1, 2, 10});
  CHECK(cairn::list_tmp_dirs(dir.path()).size() == 2);
  std::ofstream(dir.path() / "2" / "commit_success.txt") << "ok";
  auto committed = cairn::list_steps(dir.path(), {}, /*require_commit_file=*/true);
  REQUIRE(committed.size() == 1);
  CHECK(committed[0].step == 2);
  CHECK(cairn::list_steps(dir.path() / "missing").empty());
}
