// SPDX-License-Identifier: Apache-2.0
// cairn::json::parse / parse_file: kinds and numbers, write→parse round trips (bit-exact doubles),
// located errors for malformed input, duplicate keys, accessor messages, and the real Orbax fixtures
// (each must parse and re-serialise byte for byte).
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <cairn/json/reader.hpp>
#include <cairn/json/writer.hpp>

#include "support/shared.hpp"
#include "support/temp_dir.hpp"

using cairn::errc;
using cairn::json::kind;
using cairn::json::parse;
using cairn::json::parse_file;
using cairn::json::to_string;
using cairn::json::value;
using cairn::json::write_options;

namespace {

// Returns the message of the cairn::error (errc `code`) thrown by f.
template <class F>
std::string message_of(F&& f, errc code) {
  try {
    f();
  } catch (const cairn::error& e) {
    CHECK_MESSAGE(e.code() == code, "message: ", e.what());
    return e.what();
  }
  FAIL("no cairn::error thrown");
  return {};
}

// Parses `text` expecting errc::corrupted; returns the message.
std::string parse_error(std::string_view text) {
  return message_of([&] { (void)parse(text, "_METADATA"); }, errc::corrupted);
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The writer options that matter, in every combination.
std::vector<write_options> all_layouts() {
  std::vector<write_options> out;
  for (bool sort : {false, true}) {
    for (int indent : {-1, 0, 2}) {
      for (bool spaced : {false, true}) {
        for (bool ascii : {false, true}) out.push_back({sort, indent, spaced, ascii});
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("parse: kinds and integer classification") {
  const value v = parse(R"({"n": null, "t": true, "f": false, "i": -3, "big": 9223372036854775808,
                            "d": 2.5, "e": 1E2, "s": "x", "a": [], "o": {}})",
                        "test");
  CHECK(v.at("n").is_null());
  CHECK(v.at("t").as_bool() == true);
  CHECK(v.at("f").as_bool() == false);
  CHECK(v.at("i").kind() == kind::int64);
  CHECK(v.at("big").kind() == kind::uint64);
  CHECK(v.at("big").as_uint64() == (std::uint64_t{1} << 63));
  CHECK(v.at("d").kind() == kind::float64);
  CHECK(v.at("e").kind() == kind::float64);  // an exponent makes a double even when integral
  CHECK(v.at("e").as_double() == 100.0);
  CHECK(v.at("s").as_string() == "x");
  CHECK(v.at("a").size() == 0);
  CHECK(v.at("o").is_object());
  // Document order is kept.
  CHECK(v.as_object().front().first == "n");
  CHECK(v.as_object().back().first == "o");
  CHECK(parse("-0", "t").kind() == kind::int64);  // integer syntax, so an integer (sign lost, as in Python)
  CHECK(std::signbit(parse("-0.0", "t").as_double()));
}

TEST_CASE("parse: 64-bit integer limits are exact") {
  CHECK(parse("-9223372036854775808", "t").as_int64() == std::numeric_limits<std::int64_t>::min());
  CHECK(parse("9223372036854775807", "t").as_int64() == std::numeric_limits<std::int64_t>::max());
  CHECK(parse("18446744073709551615", "t").as_uint64() == std::numeric_limits<std::uint64_t>::max());
  CHECK(parse("[-9223372036854775808,9223372036854775807,18446744073709551615]", "t") ==
        value::array({std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(),
                      std::numeric_limits<std::uint64_t>::max()}));
}

TEST_CASE("round trip: doubles come back bit for bit") {
  std::vector<double> samples = {0.0,
                                 -0.0,
                                 0.1,
                                 1.0,
                                 -1.0,
                                 1e-300,
                                 5e-324,
                                 -5e-324,
                                 2.2250738585072014e-308,
                                 1.7976931348623157e308,
                                 -1.7976931348623157e308,
                                 1e16,
                                 1e15,
                                 0.0001,
                                 1e-05,
                                 123456.789,
                                 9007199254740993.0,
                                 1.5e-7,
                                 std::numeric_limits<double>::denorm_min(),
                                 std::numeric_limits<double>::epsilon()};
  std::mt19937_64 rng(20261129);
  while (samples.size() < 20000) {
    const double d = std::bit_cast<double>(rng());
    if (std::isfinite(d)) samples.push_back(d);
  }
  for (double d : samples) {
    const std::string text = to_string(value(d));
    const value back = parse(text, "t");
    CAPTURE(text);
    REQUIRE(back.is_double());
    CHECK(std::bit_cast<std::uint64_t>(back.as_double()) == std::bit_cast<std::uint64_t>(d));
  }
}

TEST_CASE("round trip: every control character, quotes, backslash and UTF-8 in strings and keys") {
  std::string all_controls;
  for (int c = 0; c < 0x20; ++c) all_controls.push_back(static_cast<char>(c));
  const std::string strings[] = {"",
                                 all_controls,
                                 "\"",
                                 "\\",
                                 "\\\"",
                                 "/",
                                 "a\"b\\c",
                                 "\x7f",
                                 std::string("nul\0inside", 10),
                                 "caf\xC3\xA9",
                                 "\xE2\x82\xAC",
                                 "\xF0\x9F\x98\x80 astral",
                                 "\xEF\xBF\xBF"};
  for (const auto& s : strings) {
    for (const auto& layout : all_layouts()) {
      const value v = value::object({{s, s}, {"k", value::array({s})}});
      const std::string text = to_string(v, layout);
      CAPTURE(text);
      const value back = parse(text, "t");
      CHECK(back == v);
      CHECK(back.find(s) != nullptr);  // the key, byte for byte
      CHECK(back.at("k").at(0).as_string() == s);
    }
  }
}

TEST_CASE("round trip: a nested document in every layout") {
  value doc;
  doc["tree_metadata"]["('a',)"]["key_metadata"] = value::array({value::object({{"key", "a"}, {"key_type", 2}})});
  doc["tree_metadata"]["('a',)"]["value_metadata"] =
      value::object({{"value_type", "jax.Array"}, {"skip_deserialize", false}, {"write_shape", value::array({8})}});
  doc["numbers"] = value::array(
      {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::uint64_t>::max(), 0.1, -0.0, 1e300, 1.0});
  doc["empty"] = value::array({value::array(), value::object(), ""});
  doc["custom_metadata"] = nullptr;
  for (const auto& layout : all_layouts()) {
    const std::string text = to_string(doc, layout);
    CAPTURE(text);
    const value back = parse(text, "t");
    CHECK(back == doc);
    CHECK(to_string(back, layout) == text);  // and writing again is stable
    CHECK(std::signbit(back.at("numbers").at(3).as_double()));
    CHECK(back.at("numbers").at(5).is_double());  // 1.0 stays a double
  }
}

TEST_CASE("parse: malformed input is located by line, column and byte") {
  struct malformed {
    const char* name;
    std::string text;
    const char* where;
    const char* what;
  };
  const malformed cases[] = {
      {"truncated", R"({"a": [1, 2)", "line 1, column 12 (byte 11)", "unexpected end of input"},
      {"truncated after key", "{\"a\"", "line 1, column 5 (byte 4)", "unexpected end of input, expected ':'"},
      {"missing comma", "{\n  \"a\": 1,\n  \"b\": 2\n  \"c\": 3\n}", "line 4, column 3 (byte 23)",
       "expected ',' or '}' after an object member, found '\"'"},
      {"missing comma in array", "[1 2]", "line 1, column 4 (byte 3)", "expected ',' or ']' after an array element"},
      {"bad literal", "[true, fals]", "line 1, column 8 (byte 7)", "invalid literal \"fals\""},
      {"bad literal null", "{\"a\": nul}", "line 1, column 7 (byte 6)", "invalid literal \"nul\""},
      {"capitalised literal", "[True]", "line 1, column 2 (byte 1)", "invalid literal \"True\""},
      {"unterminated string", "{\"a\": \"abc", "line 1, column 7 (byte 6)", "unterminated string"},
      {"unterminated string across lines", "{\"a\": \"abc\n}", "line 1, column 11 (byte 10)",
       "is the string at line 1, column 7 missing its closing quote?"},
      {"trailing garbage", "{\"a\": 1} x", "line 1, column 10 (byte 9)", "unexpected 'x' after the JSON value"},
      {"two documents", "[1]\n[2]", "line 2, column 1 (byte 4)", "unexpected '[' after the JSON value"},
      {"trailing comma", "[1, 2,]", "line 1, column 7 (byte 6)", "expected a value, found ']'"},
      {"trailing comma in object", "{\"a\": 1,}", "line 1, column 9 (byte 8)", "expected a string key, found '}'"},
      {"missing colon", "{\"a\" 1}", "line 1, column 6 (byte 5)", "expected ':' after the key, found '1'"},
      {"unquoted key", "{a: 1}", "line 1, column 2 (byte 1)", "expected a string key, found 'a'"},
      {"leading zero", "[01]", "line 1, column 2 (byte 1)", "invalid number \"01\""},
      {"bare fraction point", "[1.]", "line 1, column 2 (byte 1)", "invalid number \"1.\""},
      {"empty exponent", "[1e]", "line 1, column 2 (byte 1)", "invalid number \"1e\""},
      {"lone minus", "[-]", "line 1, column 2 (byte 1)", "invalid number \"-\""},
      {"plus sign", "[+1]", "line 1, column 2 (byte 1)", "invalid literal \"+1\""},
      {"leading point", "[.5]", "line 1, column 2 (byte 1)", "invalid literal \".5\""},
      {"bad escape", "[\"a\\x\"]", "line 1, column 4 (byte 3)", "invalid escape \"\\\\x\""},
      {"short unicode escape", "[\"\\u12G4\"]", "line 1, column 3 (byte 2)", "invalid \\u escape"},
      {"lone high surrogate", "[\"\\ud800\"]", "line 1, column 3 (byte 2)", "unpaired UTF-16 high surrogate"},
      {"lone low surrogate", "[\"x\\udc00\"]", "line 1, column 4 (byte 3)", "unpaired UTF-16 low surrogate"},
      {"raw tab in string", "[\"a\tb\"]", "line 1, column 4 (byte 3)", "unescaped control character U+0009"},
      {"columns count characters", "{\"\xC3\xA9\": 1 \"b\": 2}", "line 1, column 9 (byte 9)", "expected ',' or '}'"},
      {"invalid UTF-8", "[\"ok\", \"\xC3\x28\"]", "line 1, column 9 (byte 8)", "invalid UTF-8"},
      {"invalid UTF-8 late, syntax error early", "[1 2, \"\xff\"]", "line 1, column 8 (byte 7)", "invalid UTF-8"},
      {"overlong UTF-8", "\"\xC0\xAF\"", "line 1, column 2 (byte 1)", "invalid UTF-8"},
      {"UTF-8 surrogate", "\"\xED\xA0\x80\"", "line 1, column 2 (byte 1)", "invalid UTF-8"},
      {"byte order mark", "\xEF\xBB\xBF{}", "line 1, column 1 (byte 0)", "byte order mark"},
      {"empty", "", "line 1, column 1 (byte 0)", "empty input"},
      {"whitespace only", " \n\t ", "line 2, column 3 (byte 4)", "input holds only whitespace"},
      {"integer beyond uint64", "{\"t\": 18446744073709551616}", "line 1, column 7 (byte 6)",
       "integer 18446744073709551616 does not fit in 64 bits"},
      {"integer below int64", "[-9223372036854775809]", "line 1, column 2 (byte 1)", "does not fit in 64 bits"},
      {"double overflow", "[1, 1e400]", "line 1, column 5 (byte 4)", "number 1e400 is out of the range of a double"},
      {"control byte outside strings", std::string("[1,\0 2]", 7), "line 1, column 4 (byte 3)",
       "invalid literal \"\\u0000\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const std::string message = parse_error(c.text);
    CAPTURE(message);
    CHECK(contains(message, std::string("cairn: _METADATA: ") + c.where + ": invalid JSON: "));
    CHECK(contains(message, c.what));
    CHECK(contains(message, "(simdjson "));
  }
}

TEST_CASE("parse: nesting limit is simdjson's, and located") {
  const std::string ok = std::string(1024, '[') + std::string(1024, ']');
  CHECK(parse(ok, "t").is_array());
  const std::string deep = std::string(1025, '[') + std::string(1025, ']');
  const std::string message = parse_error(deep);
  CHECK(contains(message, "line 1, column 1025 (byte 1024): invalid JSON: more than 1024 nested arrays/objects"));
  CHECK(contains(message, "DEPTH_ERROR"));
}

TEST_CASE("parse: duplicate keys are corrupted, located, and name the object") {
  CHECK(contains(parse_error(R"({"a": 1, "a": 2})"),
                 "_METADATA: line 1, column 10 (byte 9): duplicate key \"a\" in the top-level object"));
  CHECK(contains(parse_error("{\"x\": [{\"k\": 1},\n {\"k\": 1, \"k\": 2}]}"),
                 "line 2, column 11 (byte 27): duplicate key \"k\" in object /x/1"));
  // An escaped spelling of the same key is still the same key.
  CHECK(contains(parse_error(R"({"a": 1, "\u0061": 2})"), "(byte 9): duplicate key \"a\""));
  // Large objects sort their keys; the location must still be the first repeated member.
  std::string big = "{";
  for (int i = 0; i < 100; ++i) big += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ",";
  const std::size_t at = big.size();
  big += "\"k57\": 0}";
  CHECK(contains(parse_error(big), "(byte " + std::to_string(at) + "): duplicate key \"k57\" in the top-level object"));
  // Two repeats: the one first in the document is reported, not the one first in key order.
  std::string two = "{";
  for (int i = 0; i < 100; ++i) two += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ",";
  const std::size_t first = two.size();
  two += "\"k80\": 0, \"k10\": 0}";
  CHECK(contains(parse_error(two), "(byte " + std::to_string(first) + "): duplicate key \"k80\" in the top-level object"));
  // Same key in different objects is fine.
  CHECK(parse(R"({"a": {"a": 1}, "b": {"a": 2}})", "t").at("b").at("a").as_int64() == 2);
}

TEST_CASE("document: views read in place, with parse's checks and errors") {
  const cairn::json::document d(R"({"s": "x\u00e9", "i": -7, "big": 18446744073709551615, "d": 2.0, "b": true,
                                    "n": null, "a": [1, [2], {"k": "v"}], "o": {"p": {}}})", "t");
  const cairn::json::view root = d.root();
  CHECK(root.is_object());
  CHECK(root.find("s")->string() == "x\u00e9");
  CHECK(root.find("i")->int64() == -7);
  CHECK_FALSE(root.find("big")->int64());  // a uint64: not silently narrowed
  CHECK_FALSE(root.find("d")->int64());    // an integral double is not an integer here
  CHECK(root.find("b")->boolean() == true);
  CHECK_FALSE(root.find("i")->boolean());
  CHECK(root.find("n")->is_null());
  CHECK_FALSE(root.find("missing"));
  CHECK_FALSE(root.find("a")->find("k"));  // not an object
  std::vector<std::string> keys;
  CHECK(root.for_each_member([&](std::string_view k, const cairn::json::view&) {
    keys.emplace_back(k);
    return true;
  }));
  CHECK(keys == std::vector<std::string>{"s", "i", "big", "d", "b", "n", "a", "o"});
  int elements = 0;
  CHECK(root.find("a")->for_each_element([&](const cairn::json::view& e) { return ++elements < 2 && e.int64() == 1; }) == false);
  CHECK(elements == 2);  // stopped by the callback
  CHECK_FALSE(root.find("o")->for_each_element([](const cairn::json::view&) { return true; }));
  CHECK(root.find("a")->to_value() == parse(R"([1, [2], {"k": "v"}])", "t"));
  CHECK(root.to_value() == parse(R"({"s": "x\u00e9", "i": -7, "big": 18446744073709551615, "d": 2.0, "b": true,
                                    "n": null, "a": [1, [2], {"k": "v"}], "o": {"p": {}}})", "t"));

  // The same errors, word for word, as parse.
  auto document_error = [](std::string_view text) {
    return message_of([&] { const cairn::json::document bad(text, "_METADATA"); }, errc::corrupted);
  };
  std::string big = "{";
  for (int i = 0; i < 100; ++i) big += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ",";
  big += "\"k80\": 0, \"k10\": 0}";
  for (const std::string& text : {std::string(R"({"a": 1, "a": 2})"), std::string("{\"x\": [{\"k\": 1},\n {\"k\": 1, \"k\": 2}]}"),
                                  std::string(R"({"o": {"a": {"b": 1, "b": 1}}, "a": 1, "a": 2})"), big,
                                  std::string(R"({"a": [1, 2)"), std::string("[\"ok\", \"\xC3\x28\"]"), std::string()}) {
    CAPTURE(text);
    CHECK(document_error(text) == parse_error(text));
  }
}

TEST_CASE("accessors: type errors are corrupted with readable messages") {
  const value meta = parse(R"({"item_handlers": [1], "n": "8", "u": 18446744073709551615, "neg": -1,
                               "half": 1.5, "whole": 3.0, "huge": 1e19, "big": 300})",
                           "t");
  CHECK(message_of([&] { (void)meta.at("n").as_int64(); }, errc::corrupted) ==
        "cairn: json: expected integer, found string \"8\": corrupted");
  CHECK(message_of([&] { (void)meta.at("item_handlers").as_object("_CHECKPOINT_METADATA \"item_handlers\""); },
                   errc::corrupted) ==
        "cairn: _CHECKPOINT_METADATA \"item_handlers\": expected object, found array: corrupted");
  CHECK(contains(message_of([&] { (void)meta.at("u").as_int64(); }, errc::corrupted),
                 "integer 18446744073709551615 is out of range for int64"));
  CHECK(contains(message_of([&] { (void)meta.at("neg").as_uint64(); }, errc::corrupted),
                 "integer -1 is out of range for uint64"));
  CHECK(contains(message_of([&] { (void)meta.at("half").as_int64(); }, errc::corrupted),
                 "expected integer, found non-integral double 1.5"));
  CHECK(meta.at("whole").as_int64() == 3);  // an integral double is an acceptable integer
  CHECK(contains(message_of([&] { (void)meta.at("huge").as_int64(); }, errc::corrupted),
                 "double 1e+19 is out of range for int64"));
  CHECK(meta.at("huge").as_uint64() == 10000000000000000000ULL);
  CHECK(contains(message_of([&] { (void)meta.at("big").as_integer<std::uint8_t>("zstd level"); }, errc::corrupted),
                 "zstd level: integer 300 is out of range for uint8"));
  CHECK(meta.at("big").as_integer<std::int16_t>() == 300);
  CHECK(meta.at("u").as_double() == 18446744073709551615.0);
  CHECK(contains(message_of([&] { (void)meta.at("n").as_double(); }, errc::corrupted), "expected number"));
  CHECK(contains(message_of([&] { (void)meta.at("n").as_bool(); }, errc::corrupted), "expected boolean"));
  CHECK(contains(message_of([&] { (void)meta.at("n").as_array(); }, errc::corrupted), "expected array"));
  CHECK(contains(message_of([&] { (void)meta.at("neg").as_string(); }, errc::corrupted),
                 "expected string, found integer -1"));
  CHECK(message_of([&] { (void)meta.at("metrics", "_CHECKPOINT_METADATA"); }, errc::corrupted) ==
        "cairn: _CHECKPOINT_METADATA: missing key \"metrics\": corrupted");
  CHECK(contains(message_of([&] { (void)meta.at("item_handlers").at(1); }, errc::corrupted),
                 "index 1 out of range for array of 1"));
  CHECK(contains(message_of([&] { (void)meta.at("item_handlers").find("x"); }, errc::corrupted),
                 "expected object, found array"));
  CHECK(meta.find("metrics") == nullptr);
  REQUIRE(meta.find("n") != nullptr);
  CHECK(meta.find("n")->as_string() == "8");
  // Long strings are cut in messages.
  const std::string long_text(200, 'x');
  const std::string m = message_of([&] { (void)value(long_text).as_int64(); }, errc::corrupted);
  CHECK(contains(m, "...\""));
  CHECK(m.size() < 150);
}

TEST_CASE("parse_file: reads files, and names the path in every error") {
  cairn_test::temp_dir dir;
  const auto good = dir.path() / "_CHECKPOINT_METADATA";
  std::ofstream(good, std::ios::binary) << R"({"item_handlers": null, "metrics": {}})";
  const value v = parse_file(good);
  CHECK(v.at("item_handlers").is_null());
  CHECK(v.at("metrics").size() == 0);

  const auto bad = dir.path() / "_METADATA";
  std::ofstream(bad, std::ios::binary) << "{\n  \"a\": tru\n}";
  const std::string message = message_of([&] { (void)parse_file(bad); }, errc::corrupted);
  CHECK(
      contains(message, "\"" + bad.string() + "\": line 2, column 8 (byte 9): invalid JSON: invalid literal \"tru\""));

  const auto missing = dir.path() / "nope" / "_METADATA";
  const std::string not_found = message_of([&] { (void)parse_file(missing); }, errc::not_found);
  CHECK(contains(not_found, missing.string()));
  const std::string file_as_dir = message_of([&] { (void)parse_file(good / "x"); }, errc::not_found);
  CHECK(contains(file_as_dir, "x\""));
  const std::string is_dir = message_of([&] { (void)parse_file(dir.path()); }, errc::io);
  CHECK(contains(is_dir, "Is a directory"));

  const auto empty = dir.path() / "empty";
  std::ofstream(empty, std::ios::binary).flush();
  CHECK(contains(message_of([&] { (void)parse_file(empty); }, errc::corrupted), "empty input"));

  // A file larger than its initial size hint (none for an empty stat) still reads whole: use a big one.
  const auto large = dir.path() / "large";
  {
    std::ofstream out(large, std::ios::binary);
    out << "[";
    for (int i = 0; i < 100000; ++i) out << i << ",";
    out << "0]";
  }
  CHECK(parse_file(large).size() == 100001);
}

TEST_CASE("fixtures: every Orbax-written JSON file parses and re-serialises byte for byte") {
  const auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  const auto root = *shared / "fixtures" / "orbax-compat";
  // Python json.dumps (Orbax's own files) and TensorStore's compact writer (_sharding).
  const write_options python{.spaced = true, .ascii_only = true};
  const write_options tensorstore{};
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    const bool python_file = name == "_CHECKPOINT_METADATA" || name == "_METADATA" || name == "data.json" ||
                             name == "metadata" || name.starts_with("process_");
    if (!python_file && name != "_sharding") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    CAPTURE(entry.path().string());
    if (text.str().starts_with("dummy")) {  // a deliberately corrupted fixture
      CHECK(contains(message_of([&] { (void)parse_file(entry.path()); }, errc::corrupted), "invalid literal"));
      continue;
    }
    const value v = parse_file(entry.path());
    CHECK(to_string(v, python_file ? python : tensorstore) == text.str());
    ++files;
  }
  CHECK(files > 100);
}
