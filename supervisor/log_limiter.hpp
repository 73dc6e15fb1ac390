// SPDX-License-Identifier: MIT
//
// LogLimiter: lets one line through per interval and counts what it held back, so a repeating
// condition (a full outbox, a flood of bad requests) is reported, not spammed. Pure: the caller
// passes the time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace clustervisor {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LogLimiter(Clock::duration interval = std::chrono::seconds(1)) : interval_(interval) {}

  // True when a line may be written now; otherwise the occurrence is counted as suppressed.
  bool allow(Clock::time_point now, std::uint64_t occurrences = 1) {
    if (written_ && now - last_ < interval_) {
      suppressed_ += occurrences;
      return false;
    }
    written_ = true;
    last_ = now;
    reported_ = suppressed_;
    suppressed_ = 0;
    return true;
  }

  // " (N more since the last report)" for the line allow() just let through, or "".
  std::string suppressedNote() const {
    return reported_ == 0 ? std::string()
                          : " (" + std::to_string(reported_) + " more since the last report)";
  }

 private:
  Clock::duration interval_;
  Clock::time_point last_{};
  bool written_ = false;
  std::uint64_t suppressed_ = 0;
  std::uint64_t reported_ = 0;
};

}  // namespace clustervisor
