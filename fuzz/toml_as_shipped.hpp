// SPDX-License-Identifier: MIT
//
// Included first in every source of the libFuzzer builds, which compile toml++ from its headers:
// Debian's toml++ is built with g++ and NDEBUG, where its precondition checks
// (TOML_ASSERT_ASSUME) compile to nothing, so here they do too, and the fuzzer tests the library
// as it is shipped. Its TOML_UNREACHABLE stays undefined behaviour, for UBSan to catch.
#pragma once

#define TOML_ASSERT(expr) static_cast<void>(0)
