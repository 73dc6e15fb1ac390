// SPDX-License-Identifier: MIT
//
// The string form of a byte count in bot.toml: <digits><unit>, unit = B, KiB, MiB, GiB
// (powers of 1024) or KB, MB, GB (powers of 1000), e.g. "1MiB", "512KiB", "100000B". Units are
// case-sensitive and required; a plain TOML integer is the other way to write a size and is
// handled by the caller.
//
// Pure functions over string_views; nothing is kept. Parsing never overflows: a value above
// 2^64 - 1 bytes is reported as kTooLarge, which callers turn into their key's out-of-range error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace clustervisor::config {

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * kKiB;
inline constexpr std::uint64_t kGiB = 1024 * kMiB;

struct ParsedSize {
  enum class Status {
    kOk,
    kSyntax,    // not <digits><unit>
    kTooLarge,  // well-formed, but more than 2^64 - 1 bytes
  };
  Status status = Status::kSyntax;
  std::uint64_t bytes = 0;  // set when status == kOk
};

ParsedSize parseSize(std::string_view text);

// The shortest text parseSize() reads back as `bytes`, in the largest binary unit that divides
// it exactly: 1048576 → "1MiB", 65536 → "64KiB", 1536 → "1536B", 0 → "0B".
std::string formatSize(std::uint64_t bytes);

}  // namespace clustervisor::config
