// SPDX-License-Identifier: Apache-2.0
#include <cairn/core/error.hpp>

#include <doctest/doctest.h>

#include <cerrno>
#include <string>

TEST_CASE("every errc has a distinct message in the cairn category") {
  using cairn::errc;
  const errc all[] = {errc::not_found,        errc::already_exists, errc::corrupted,        errc::incompatible_format,
                      errc::type_mismatch,    errc::shape_mismatch, errc::invalid_sharding, errc::invalid_argument,
                      errc::unsupported,      errc::io,             errc::timeout};
  for (errc a : all) {
    std::error_code code = a;  // implicit through is_error_code_enum
    CHECK(code.category() == cairn::error_category());
    CHECK(std::string(code.category().name()) == "cairn");
    CHECK(code.message().find("unknown") == std::string::npos);
    for (errc b : all)
      if (a != b) CHECK(code.message() != std::error_code(b).message());
  }
  CHECK(std::error_code(errc::shape_mismatch).message() == "shape mismatch");
  CHECK(cairn::error_category().message(999).find("unknown") != std::string::npos);
}

TEST_CASE("error messages put the context first and keep the code") {
  try {
    throw cairn::error(cairn::errc::shape_mismatch,
                       "step 1200, leaf \"opt.mu\": on-disk shape [1024,256] != target [1024,512]");
  } catch (const std::system_error& e) {  // catchable as the standard type
    CHECK(e.code() == cairn::errc::shape_mismatch);
    CHECK(std::string(e.what()) ==
          "cairn: step 1200, leaf \"opt.mu\": on-disk shape [1024,256] != target [1024,512]: shape mismatch");
    const auto& ce = dynamic_cast<const cairn::error&>(e);
    CHECK(ce.context() == "step 1200, leaf \"opt.mu\": on-disk shape [1024,256] != target [1024,512]");
  }
}

TEST_CASE("io_error carries the operating system's reason") {
  cairn::error e = cairn::io_error("write \"d/ab12\"", EIO);
  CHECK(e.code() == cairn::errc::io);
  CHECK(std::string(e.what()) == "cairn: write \"d/ab12\": Input/output error: i/o error");
  CHECK(e.code() != cairn::errc::corrupted);
}

TEST_CASE("errors from other categories keep their category") {
  cairn::error e(std::error_code(ENOENT, std::system_category()), "open \"x\"");
  CHECK(e.code().category() == std::system_category());
  CHECK(std::string(e.what()).rfind("cairn: open \"x\": ", 0) == 0);
}
