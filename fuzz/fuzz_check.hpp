// SPDX-License-Identifier: MIT
//
// FUZZ_CHECK: the invariant check of the fuzz targets. Unlike assert() it stays on in every build
// type, and it aborts, which libFuzzer and the corpus replayer both report as a finding with the
// input that caused it.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                     \
  do {                                                                                            \
    if (!(condition)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (false)
