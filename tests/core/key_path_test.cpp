// SPDX-License-Identifier: Apache-2.0
#include <cairn/core/key_path.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

TEST_CASE("key paths print as Orbax parameter names") {
  cairn::key_path p{"opt", "mu", 0};
  CHECK(cairn::param_name(p) == "opt.mu.0");
  CHECK(p[2].is_index());
  CHECK(p[2].type() == cairn::key::kind::sequence);
  CHECK(p[0].type() == cairn::key::kind::dict);
  CHECK(static_cast<int>(cairn::key::kind::sequence) == 1);
  CHECK(static_cast<int>(cairn::key::kind::dict) == 2);
  CHECK(cairn::param_name(p / "x") == "opt.mu.0.x");
  CHECK(cairn::param_name(cairn::key_path{}) == "");
  CHECK(cairn::key("b") != cairn::key(std::string("c")));
  CHECK(cairn::key(3) == cairn::key(cairn::index_t{3}));
}

TEST_CASE("key paths order indices numerically and before names") {
  std::vector<cairn::key_path> v{{"b"}, {10}, {"a", 1}, {2}, {"a", 0}, {"a"}};
  std::sort(v.begin(), v.end());
  std::vector<std::string> names;
  for (const auto& p : v) names.push_back(cairn::param_name(p));
  CHECK(names == std::vector<std::string>{"2", "10", "a", "a.0", "a.1", "b"});
}

TEST_CASE("dict keys that cannot be stored are rejected with their location") {
  cairn::validate_dict_key("kernel", {"dense_1"});
  try {
    cairn::validate_dict_key("a/b", {"params", "dense"});
    FAIL("expected an error");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::invalid_argument);
    CHECK(std::string(e.what()) ==
          "cairn: key \"a/b\" under \"params.dense\": keys may not contain '/': invalid argument");
  }
  CHECK_THROWS_AS(cairn::validate_dict_key("", {}), cairn::error);
  CHECK_THROWS_AS(cairn::validate_dict_key(std::string_view("a\0b", 3), {}), cairn::error);
  cairn::validate_dict_key("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80", {});
  try {
    cairn::validate_dict_key("ok\xc3\x28", {"layer"});
    FAIL("expected an error");
  } catch (const cairn::error& e) {
    CHECK(e.code() == cairn::errc::invalid_argument);
    CHECK(std::string(e.what()) ==
          "cairn: key \"ok\\xc3(\" under \"layer\": keys must be UTF-8 (byte 2 is not): invalid argument");
  }
  for (std::string_view bad : {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xe2\x82"})
    CHECK_THROWS_WITH_AS(cairn::validate_dict_key(bad, {}), doctest::Contains("keys must be UTF-8 (byte 0 is not)"), cairn::error);
}
