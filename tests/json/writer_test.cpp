// SPDX-License-Identifier: Apache-2.0
// cairn::json::writer and to_string: exact output text (escaping, numbers, layouts), streaming misuse,
// and the value type's constructors, accessors and equality (the writer is their main consumer).
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include <doctest/doctest.h>

#include <cairn/json/writer.hpp>

using cairn::errc;
using cairn::json::to_string;
using cairn::json::value;
using cairn::json::write_options;
using cairn::json::writer;

namespace {

// Returns the errc of the cairn::error thrown by f, checking that the message contains `needle`.
template <class F>
errc error_of(F&& f, std::string_view needle = {}) {
  try {
    f();
  } catch (const cairn::error& e) {
    CHECK_MESSAGE(std::string_view(e.what()).find(needle) != std::string_view::npos, "message: ", e.what());
    return static_cast<errc>(e.code().value());
  }
  FAIL("no cairn::error thrown");
  return errc{};
}

std::string quoted(std::string_view s, write_options o = {}) { return to_string(value(s), o); }

}  // namespace

TEST_CASE("value: constructors pick the natural kind and reject lossy sources") {
  CHECK(value().is_null());
  CHECK(value(nullptr).is_null());
  CHECK(value(true).is_bool());
  CHECK(value(0).is_int64());
  CHECK(value(-1L).is_int64());
  CHECK(value(-1LL).as_int64() == -1);
  CHECK(value(static_cast<std::int8_t>(-5)).as_int64() == -5);
  CHECK(value(static_cast<unsigned char>(200)).as_int64() == 200);
  CHECK(value(7U).is_int64());
  CHECK(value(std::size_t{7}).is_int64());  // uint64 only above INT64_MAX: one representation per number
  CHECK(value(std::numeric_limits<std::uint64_t>::max()).is_uint64());
  CHECK(value(std::uint64_t{1} << 63).is_uint64());
  CHECK(value(1.5f).is_double());
  CHECK(value(1.5).is_double());
  CHECK(value("a").is_string());
  CHECK(value(std::string("a")).is_string());
  CHECK(value(std::string_view("a")).is_string());
  CHECK(value::array().is_array());
  CHECK(value::object().is_object());
  CHECK(value::array({1, "x", nullptr}).size() == 3);
  // char would become a number, long double would lose precision, pointers would become bool.
  static_assert(!std::is_constructible_v<value, char>);
  static_assert(!std::is_constructible_v<value, long double>);
  static_assert(!std::is_constructible_v<value, int*>);
  static_assert(!std::is_constructible_v<value, const void*>);
  static_assert(std::is_convertible_v<unsigned long long, value>);
  static_assert(std::is_nothrow_move_constructible_v<value>);
}

TEST_CASE("value: equality is deep, order-insensitive for objects, and keeps kinds apart") {
  CHECK(value::object({{"a", 1}, {"b", "x"}}) == value::object({{"b", "x"}, {"a", 1}}));
  CHECK_FALSE(value::object({{"a", 1}, {"b", "x"}}) == value::object({{"a", 1}, {"b", "y"}}));
  CHECK_FALSE(value::object({{"a", 1}}) == value::object({{"a", 1}, {"b", 1}}));
  CHECK_FALSE(value::object({{"a", 1}}) == value::object({{"b", 1}}));
  CHECK(value::array({1, 2}) == value::array({1, 2}));
  CHECK_FALSE(value::array({1, 2}) == value::array({2, 1}));
  CHECK_FALSE(value(1) == value(1.0));  // different documents: 1 vs 1.0
  CHECK_FALSE(value(0) == value(false));
  CHECK_FALSE(value() == value(0));
  CHECK(value(std::uint64_t{5}) == value(5));
  CHECK(value(0.0) == value(-0.0));
  CHECK(value(std::numeric_limits<std::uint64_t>::max()) == value(std::numeric_limits<std::uint64_t>::max()));
  CHECK_FALSE(value(std::numeric_limits<std::uint64_t>::max()) == value(-1));

  // Large objects take the sorted path; it must agree with the small one.
  value a = value::object();
  value b = value::object();
  for (int i = 0; i < 40; ++i) a[std::to_string(i)] = i;
  for (int i = 39; i >= 0; --i) b[std::to_string(i)] = i;
  CHECK(a == b);
  b["17"] = 18;
  CHECK_FALSE(a == b);
}

TEST_CASE("value: builders") {
  value v;
  v["shape"] = value::array({8, 4});
  v["dtype"] = "<f4";
  v["shape"].push_back(2);
  v["dtype"] = "<f8";  // assignment to an existing key replaces, never duplicates
  CHECK(v.size() == 2);
  CHECK(v.at("dtype").as_string() == "<f8");
  CHECK(v.at("shape") == value::array({8, 4, 2}));
  CHECK(error_of(
            [] {
              value s = "x";
              s["k"] = 1;
            },
            "operator[] \"k\" on string") == errc::invalid_argument);
  CHECK(error_of(
            [] {
              value s = value::object();
              s.push_back(1);
            },
            "push_back on object") == errc::invalid_argument);
  CHECK(error_of([] { (void)value::object({{"a", 1}, {"a", 2}}); }, "duplicate key \"a\"") == errc::invalid_argument);
  CHECK(value(3).size() == 0);
}

TEST_CASE("writer: raw_value inserts a value rendered once, with the separators of its place") {
  const std::string quoted = writer().value("a \"b\"").take();
  writer w({.spaced = true});
  w.begin_object().key("x").raw_value(quoted).key("y").begin_array().raw_value("[1, 2]").raw_value(quoted).end_array();
  CHECK(w.end_object().take() == R"({"x": "a \"b\"", "y": [[1, 2], "a \"b\""]})");
  writer bad;
  bad.begin_object();
  CHECK_THROWS_WITH_AS(bad.raw_value("1"), doctest::Contains("without key()"), cairn::error);
  CHECK(bad.key("k").raw_value("1").end_object().take() == R"({"k":1})");
}

TEST_CASE("writer: every control character and the mandatory escapes") {
  for (int c = 0; c < 0x20; ++c) {
    std::string expected;
    switch (c) {
      case '\b': expected = "\\b"; break;
      case '\f': expected = "\\f"; break;
      case '\n': expected = "\\n"; break;
      case '\r': expected = "\\r"; break;
      case '\t': expected = "\\t"; break;
      default: {
        static constexpr char hex[] = "0123456789abcdef";
        expected = std::string("\\u00") + hex[c >> 4] + hex[c & 0xF];
      }
    }
    CAPTURE(c);
    CHECK(quoted(std::string(1, static_cast<char>(c))) == "\"" + expected + "\"");
  }
  CHECK(quoted("") == "\"\"");
  CHECK(quoted("a\"b\\c/d") == R"("a\"b\\c/d")");
  CHECK(quoted("\x7f") == "\"\x7f\"");  // DEL needs no escape
  CHECK(quoted("\x7f", {.ascii_only = true}) == "\"\\u007f\"");
}

TEST_CASE("writer: UTF-8 passes through, or becomes \\u escapes with ascii_only") {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";  // café € 😀
  CHECK(quoted(text) == "\"" + text + "\"");
  CHECK(quoted(text, {.ascii_only = true}) == R"("caf\u00e9 \u20ac \ud83d\ude00")");
}

TEST_CASE("writer: strings that are not UTF-8 are refused and leave the writer unchanged") {
  for (std::string bad : {"\xff", "a\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80"}) {
    CAPTURE(bad);
    writer w;
    w.begin_array().value(1);
    CHECK(error_of([&] { w.value(bad); }, "not valid UTF-8") == errc::invalid_argument);
    w.value("ok").end_array();
    CHECK(w.take() == R"([1,"ok"])");
  }
  writer w;
  w.begin_object();
  CHECK(error_of([&] { w.key("k\xff"); }, "not valid UTF-8") == errc::invalid_argument);
  w.key("k").value(1).end_object();
  CHECK(w.take() == R"({"k":1})");
}

TEST_CASE("writer: integers are exact") {
  CHECK(to_string(value(std::numeric_limits<std::int64_t>::min())) == "-9223372036854775808");
  CHECK(to_string(value(std::numeric_limits<std::int64_t>::max())) == "9223372036854775807");
  CHECK(to_string(value(std::numeric_limits<std::uint64_t>::max())) == "18446744073709551615");
  CHECK(to_string(value(0)) == "0");
  CHECK(to_string(value(-42)) == "-42");
}

TEST_CASE("writer: doubles are shortest round-trip text laid out like Python's repr") {
  CHECK(to_string(value(1.0)) == "1.0");  // ".0" keeps it a double when read back
  CHECK(to_string(value(-0.0)) == "-0.0");
  CHECK(to_string(value(0.0)) == "0.0");
  CHECK(to_string(value(0.1)) == "0.1");
  CHECK(to_string(value(1.5)) == "1.5");
  CHECK(to_string(value(-123.456)) == "-123.456");
  CHECK(to_string(value(100000.0)) == "100000.0");
  CHECK(to_string(value(1e15)) == "1000000000000000.0");
  CHECK(to_string(value(1e16)) == "1e+16");
  CHECK(to_string(value(1.5e16)) == "1.5e+16");
  CHECK(to_string(value(0.0001)) == "0.0001");
  CHECK(to_string(value(0.00001)) == "1e-05");
  CHECK(to_string(value(1e-300)) == "1e-300");
  CHECK(to_string(value(5e-324)) == "5e-324");
  CHECK(to_string(value(1.7976931348623157e308)) == "1.7976931348623157e+308");
  CHECK(to_string(value(9007199254740993.0)) == "9007199254740992.0");  // the literal itself rounds
  CHECK(to_string(value(0.30000000000000004)) == "0.30000000000000004");
  CHECK(to_string(value(1.0f)) == "1.0");
}

TEST_CASE("writer: non-finite doubles are refused") {
  CHECK(error_of([] { (void)to_string(value(std::numeric_limits<double>::quiet_NaN())); }, "NaN") ==
        errc::invalid_argument);
  CHECK(error_of([] { (void)to_string(value(std::numeric_limits<double>::infinity())); }, "Infinity") ==
        errc::invalid_argument);
  CHECK(error_of([] { writer().value(-std::numeric_limits<double>::infinity()); }, "-Infinity") ==
        errc::invalid_argument);
}

TEST_CASE("writer: member order, sort_keys and byte-order sorting") {
  const value v =
      value::object({{"b", 1}, {"a", value::object({{"z", 1}, {"y", 2}})}, {"B", 3}, {"\xC3\xA9", 4}, {"aa", 5}});
  CHECK(to_string(v) == R"({"b":1,"a":{"z":1,"y":2},"B":3,"é":4,"aa":5})");
  CHECK(to_string(v, {.sort_keys = true}) == R"({"B":3,"a":{"y":2,"z":1},"aa":5,"b":1,"é":4})");
}

TEST_CASE("writer: TensorStore's .zarray is reproduced byte for byte") {
  // Verbatim from orbax-format.md §2.2: compact, keys sorted.
  const std::string expected =
      R"({"chunks":[8],"compressor":{"id":"zstd","level":1},"dimension_separator":".","dtype":"<i4",)"
      R"("fill_value":null,"filters":null,"order":"C","shape":[8],"zarr_format":2})";
  value z;
  z["zarr_format"] = 2;
  z["shape"] = value::array({8});
  z["chunks"] = value::array({8});
  z["dtype"] = "<i4";
  z["compressor"] = value::object({{"level", 1}, {"id", "zstd"}});
  z["fill_value"] = nullptr;
  z["order"] = "C";
  z["filters"] = nullptr;
  z["dimension_separator"] = ".";
  CHECK(to_string(z, {.sort_keys = true}) == expected);
}

TEST_CASE("writer: Python json.dumps layouts") {
  const value v = value::object({{"item_handlers", value::object({{"default", "h"}})},
                                 {"metrics", value::object()},
                                 {"list", value::array({1, 2.5, value::array()})},
                                 {"init_timestamp_nsecs", 1778718341396223910LL}});
  CHECK(to_string(v, {.spaced = true}) ==
        R"({"item_handlers": {"default": "h"}, "metrics": {}, "list": [1, 2.5, []], )"
        R"("init_timestamp_nsecs": 1778718341396223910})");
  CHECK(to_string(v, {.indent = 2}) ==
        "{\n"
        "  \"item_handlers\": {\n"
        "    \"default\": \"h\"\n"
        "  },\n"
        "  \"metrics\": {},\n"
        "  \"list\": [\n"
        "    1,\n"
        "    2.5,\n"
        "    []\n"
        "  ],\n"
        "  \"init_timestamp_nsecs\": 1778718341396223910\n"
        "}");
  // Python's json.dumps(indent=n) ends lines with "," (no trailing space), whatever `spaced` says.
  CHECK(to_string(v, {.indent = 2, .spaced = true}) == to_string(v, {.indent = 2}));
  CHECK(to_string(value::array({1, value::array({2})}), {.indent = 0}) == "[\n1,\n[\n2\n]\n]");
  CHECK(to_string(value::array(), {.indent = 4}) == "[]");
  CHECK(to_string(value(3), {.indent = 4}) == "3");
}

TEST_CASE("writer: streaming produces the same text as to_string") {
  writer w({.sort_keys = true});
  w.begin_object();
  w.key("a").begin_array();
  for (int i = 0; i < 3; ++i) w.value(i);
  w.value(0.5).value(true).value(nullptr).value("s").value(std::string("t"));
  w.end_array();
  w.key("b").value(value::object({{"y", 1}, {"x", 2}}));  // a nested value gets sorted by the writer
  w.key("c").begin_object().end_object();
  w.end_object();
  REQUIRE(w.complete());
  const std::string text = w.take();
  CHECK(text == R"({"a":[0,1,2,0.5,true,null,"s","t"],"b":{"x":2,"y":1},"c":{}})");
  CHECK_FALSE(w.complete());
  w.value(1);  // take() leaves the writer ready for a new document
  CHECK(w.take() == "1");
}

TEST_CASE("writer: misuse throws invalid_argument before writing anything") {
  {
    writer w;
    CHECK(error_of([&] { w.key("a"); }, "key() outside an object") == errc::invalid_argument);
    CHECK(error_of([&] { w.end_array(); }, "end_array() without a matching begin_array()") == errc::invalid_argument);
    CHECK(error_of([&] { (void)w.take(); }, "empty document") == errc::invalid_argument);
    CHECK(w.str().empty());
  }
  {
    writer w;
    w.begin_object();
    CHECK(error_of([&] { w.value(1); }, "without key()") == errc::invalid_argument);
    w.key("a");
    CHECK(error_of([&] { w.key("b"); }, "key() twice") == errc::invalid_argument);
    CHECK(error_of([&] { w.end_object(); }, "right after key()") == errc::invalid_argument);
    CHECK(error_of([&] { w.end_array(); }, "without a matching") == errc::invalid_argument);
    w.value(1);
    CHECK(error_of([&] { (void)w.take(); }, "1 unclosed") == errc::invalid_argument);
    w.end_object();
    CHECK(error_of([&] { w.value(2); }, "second top-level value") == errc::invalid_argument);
    CHECK(w.take() == R"({"a":1})");
  }
  {
    writer w({.sort_keys = true});
    w.begin_object().key("b").value(1);
    CHECK(error_of([&] { w.key("a"); }, "breaks sort_keys order") == errc::invalid_argument);
    CHECK(error_of([&] { w.key("b"); }, "duplicate key \"b\"") == errc::invalid_argument);
    w.key("c").value(2).end_object();
    CHECK(w.take() == R"({"b":1,"c":2})");
  }
}

TEST_CASE("writer: a value that fails half-way is rolled back") {
  writer w;
  w.begin_array().value(1);
  const value bad = value::array({2, value::object({{"x", std::numeric_limits<double>::quiet_NaN()}})});
  CHECK(error_of([&] { w.value(bad); }, "NaN") == errc::invalid_argument);
  CHECK(w.str() == "[1");
  w.value(3).end_array();
  CHECK(w.take() == "[1,3]");

  // With sort_keys, a value object holding a duplicate key cannot be written deterministically.
  value dup = value::object();
  dup.as_object().emplace_back("k", 1);
  dup.as_object().emplace_back("k", 2);
  CHECK(to_string(dup) == R"({"k":1,"k":2})");
  CHECK(error_of([&] { (void)to_string(dup, {.sort_keys = true}); }, "duplicate key \"k\"") == errc::invalid_argument);
}
