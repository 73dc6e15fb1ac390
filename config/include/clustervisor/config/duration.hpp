// SPDX-License-Identifier: MIT
//
// The text form of a time span in bot.toml: one or more <number><unit> parts, number = digits
// with an optional .digits fraction, unit = ms, s, m or h ("500ms", "1.5s", "1m30s", "0s").
// Parts are added, so "1m30s" is 90 seconds. No whitespace, sign or exponent.
//
// Pure functions over string_views; nothing is kept. Parsing never overflows: a value that does
// not fit in std::chrono::milliseconds is reported as kTooLarge, which callers turn into their
// key's out-of-range error. Range checks per key are the caller's business.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace clustervisor::config {

struct ParsedDuration {
  enum class Status {
    kOk,
    kSyntax,          // not <number><unit>[<number><unit>…]
    kSubMillisecond,  // well-formed, but not a whole number of milliseconds ("0.5ms")
    kTooLarge,        // well-formed, but larger than std::chrono::milliseconds can hold
  };
  Status status = Status::kSyntax;
  std::chrono::milliseconds value{0};  // set when status == kOk
};

ParsedDuration parseDuration(std::string_view text);

// The shortest text parseDuration() reads back as `value`, in whole units from hours down to
// milliseconds: 0 → "0s", 1500 → "1s500ms", 90000 → "1m30s", 3600000 → "1h". Requires value >= 0.
std::string formatDuration(std::chrono::milliseconds value);

}  // namespace clustervisor::config
