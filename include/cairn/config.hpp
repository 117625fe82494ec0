// SPDX-License-Identifier: Apache-2.0
/// \file
/// Build configuration: `CAIRN_ASSERT` for preconditions (bugs, not bad input) and feature macros.
/// `CAIRN_WITH_CUDA` is defined by the `cairn::cuda` CMake target, never guessed here, so headers
/// and the link line always agree.
#pragma once

#include <cstdio>   // std::fprintf
#include <cstdlib>  // std::abort

#if defined(NDEBUG) && !defined(CAIRN_ENABLE_ASSERTS)
#define CAIRN_ASSERT(cond) ((void)0)
#else
/// Checks a documented precondition; violations are programming errors, so this aborts.
#define CAIRN_ASSERT(cond)                                                                   \
  ((cond) ? (void)0                                                                          \
          : (std::fprintf(stderr, "cairn: assertion failed: %s (%s:%d)\n", #cond, __FILE__, \
                          __LINE__),                                                         \
             std::abort()))
#endif
