// SPDX-License-Identifier: Apache-2.0
/// \file
/// Test support: locating the shared fixtures that sit beside the checkout (`../shared`), and the
/// rule for suites that need them: skip with a message when they are absent, fail when `CI=true`.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <doctest/doctest.h>

namespace cairn_test {

/// True when the environment variable CI is "true" (then optional suites are mandatory).
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

/// Returns `../shared` next to the source tree (set by CMake as CAIRN_SHARED_DIR), or nullopt when absent.
/// The environment variable CAIRN_SHARED_DIR overrides the configured location.
inline std::optional<std::filesystem::path> shared_dir() {
  std::filesystem::path dir;
  if (const char* env = std::getenv("CAIRN_SHARED_DIR")) {
    dir = env;
  } else {
#ifdef CAIRN_SHARED_DIR
    dir = CAIRN_SHARED_DIR;
#endif
  }
  if (dir.empty() || !std::filesystem::is_directory(dir / "fixtures")) return std::nullopt;
  return dir;
}

/// Returns the shared directory; when it is absent, fails the test under CI and otherwise prints why
/// the test is skipped. Callers `return` when the result is empty.
inline std::optional<std::filesystem::path> require_shared_dir() {
  auto dir = shared_dir();
  if (!dir) {
    if (in_ci()) {
      FAIL("../shared (fixtures) is missing, and CI=true makes the fixture suites mandatory");
    } else {
      MESSAGE("skipped: ../shared (fixtures) is not beside the checkout");
    }
  }
  return dir;
}

}  // namespace cairn_test
