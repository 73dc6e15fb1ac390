// SPDX-License-Identifier: MIT
#include "clustervisor/config/duration.hpp"

#include <cstdint>
#include <limits>

namespace clustervisor::config {
namespace {

using Status = ParsedDuration::Status;

// Everything is summed in unsigned 64-bit milliseconds and must stay within what
// std::chrono::milliseconds (signed 64-bit) holds.
constexpr std::uint64_t kMaxMilliseconds =
    static_cast<std::uint64_t>(std::numeric_limits<std::chrono::milliseconds::rep>::max());

constexpr std::uint64_t kMillisecondsPerHour = 3'600'000;

// After trailing zeros are stripped, a fraction with more than this many digits can never be a
// whole number of milliseconds: the largest unit is 3'600'000 ms = 36 × 10^5 ms, so at most
// 10^7 can divide fraction × unit. 9 keeps fraction × unit below 10^9 × 3.6 × 10^6, well inside
// 64 bits.
constexpr std::size_t kMaxFractionDigits = 9;

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// a += b, saturating at kMaxMilliseconds + 1 so that "too large" sticks.
std::uint64_t addCapped(std::uint64_t a, std::uint64_t b) {
  if (a > kMaxMilliseconds || b > kMaxMilliseconds - a) {
    return kMaxMilliseconds + 1;
  }
  return a + b;
}

std::uint64_t mulCapped(std::uint64_t a, std::uint64_t b) {
  if (a > kMaxMilliseconds || (b != 0 && a > kMaxMilliseconds / b)) {
    return kMaxMilliseconds + 1;
  }
  return a * b;
}

}  // namespace

ParsedDuration parseDuration(std::string_view text) {
  if (text.empty()) {
    return {};
  }
  std::uint64_t total = 0;
  bool subMillisecond = false;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!isDigit(text[i])) {
      return {};
    }
    std::uint64_t whole = 0;
    for (; i < text.size() && isDigit(text[i]); ++i) {
      whole = addCapped(mulCapped(whole, 10), static_cast<std::uint64_t>(text[i] - '0'));
    }
    std::string_view fraction;
    if (i < text.size() && text[i] == '.') {
      const std::size_t start = ++i;
      while (i < text.size() && isDigit(text[i])) {
        ++i;
      }
      if (i == start) {
        return {};
      }
      fraction = text.substr(start, i - start);
    }
    std::uint64_t unit = 0;
    const std::string_view rest = text.substr(i);
    if (rest.starts_with("ms")) {
      unit = 1;
      i += 2;
    } else if (rest.starts_with("s")) {
      unit = 1000;
      i += 1;
    } else if (rest.starts_with("m")) {
      unit = 60'000;
      i += 1;
    } else if (rest.starts_with("h")) {
      unit = kMillisecondsPerHour;
      i += 1;
    } else {
      return {};
    }

    total = addCapped(total, mulCapped(whole, unit));

    while (!fraction.empty() && fraction.back() == '0') {
      fraction.remove_suffix(1);
    }
    if (fraction.size() > kMaxFractionDigits) {
      subMillisecond = true;
    } else if (!fraction.empty()) {
      std::uint64_t numerator = 0;
      std::uint64_t denominator = 1;
      for (char c : fraction) {
        numerator = numerator * 10 + static_cast<std::uint64_t>(c - '0');
        denominator *= 10;
      }
      const std::uint64_t scaled = numerator * unit;
      if (scaled % denominator != 0) {
        subMillisecond = true;
      } else {
        total = addCapped(total, scaled / denominator);
      }
    }
  }
  if (subMillisecond) {
    return {Status::kSubMillisecond, {}};
  }
  if (total > kMaxMilliseconds) {
    return {Status::kTooLarge, {}};
  }
  return {Status::kOk, std::chrono::milliseconds{static_cast<std::int64_t>(total)}};
}

std::string formatDuration(std::chrono::milliseconds value) {
  auto rest = static_cast<std::uint64_t>(value.count() < 0 ? 0 : value.count());
  if (rest == 0) {
    return "0s";
  }
  struct Unit {
    std::uint64_t milliseconds;
    const char* suffix;
  };
  constexpr Unit kUnits[] = {{kMillisecondsPerHour, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  std::string text;
  for (const Unit& unit : kUnits) {
    if (rest >= unit.milliseconds) {
      text += std::to_string(rest / unit.milliseconds);
      text += unit.suffix;
      rest %= unit.milliseconds;
    }
  }
  return text;
}

}  // namespace clustervisor::config
