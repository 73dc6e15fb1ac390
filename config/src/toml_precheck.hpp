// SPDX-License-Identifier: MIT
//
// precheckToml(): a linear scan of config text for what toml++ 3.3.0 (Debian 12's) must not be
// given, run before it parses anything.
//
//   - Nesting. toml++ limits nested values (arrays, inline tables) but not dotted keys or table
//     headers, and it walks and frees the tree it builds recursively: `a.a.a.…a = 1` with some
//     ten thousand segments, 20 KiB of text, overflows the stack. The scan counts how deeply the
//     text nests and refuses more than kMaxTomlDepth levels.
//   - Malformed UTF-8, which toml++ reports one character early (at the end of the line before,
//     for one at the start of a line); this names the byte and its own position.
//   - Characters above U+007F outside strings and comments (where TOML allows none), in quoted
//     keys (no bot.toml key has them) and right after a backslash in a multi-line string: toml++
//     classifies each of those with functions that are undefined behaviour (TOML_UNREACHABLE) for
//     many code points, U+00E9 among them.
//   - A table header whose key starts with a character that cannot start a key (`[#`, `[[[`,
//     `[=`): toml++ asserts that this never happens, instead of reporting it: an abort in a
//     debug build and, where it is built with clang, a __builtin_assume of something false (the
//     Debian package, built with g++, reports the error as it should).
//
// The scan knows just enough TOML to tell keys from values and strings from the rest. Its depth
// is never below that of the tree toml++ would build (it counts every key segment twice once the
// text has an array of tables, as a segment may then go through one); on text that is not valid
// TOML it may report another problem than toml++ would, or none where toml++ stops anyway. Pure;
// nothing is kept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace clustervisor::config {

// Deeper than any bot.toml needs (it nests two levels), shallow enough for any stack.
inline constexpr std::size_t kMaxTomlDepth = 32;

struct TomlPrecheck {
  std::size_t depth = 0;  // the deepest level seen (when ok(): of the whole text)
  // Empty when the text may be given to toml++; otherwise a syntax error at line:column (1-based)
  // and the scan stopped there.
  std::string problem;
  std::uint32_t line = 0;
  std::uint32_t column = 0;

  bool ok() const { return problem.empty(); }
};

// Whether `c` may appear in a bare (unquoted) TOML key: A-Z a-z 0-9 _ -.
bool isBareKeyChar(char c);

TomlPrecheck precheckToml(std::string_view text, std::size_t maxDepth = kMaxTomlDepth);

}  // namespace clustervisor::config
