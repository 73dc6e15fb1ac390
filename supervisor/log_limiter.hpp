// SPDX-License-Identifier: MIT
//
// LogLimiter: lets one line through per interval and counts what it held back, so a repeating
// condition (a full outbox, a flood of bad requests) is reported, not spammed; what it held back
// is reported once the interval is over (takeDue()), even if the condition does not come back.
// Pure: the caller passes the time and schedules that report.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

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

  // Occurrences held back since the last line: a report of them is due at nextReport(), even when
  // nothing else happens (the last of a burst must not go unreported).
  std::uint64_t suppressed() const { return suppressed_; }
  Clock::time_point nextReport() const { return last_ + interval_; }
  // Takes the held-back count for a line written now (about them alone), or 0 when there is none
  // or its time has not come.
  std::uint64_t takeDue(Clock::time_point now) {
    if (suppressed_ == 0 || now < nextReport()) {
      return 0;
    }
    last_ = now;
    reported_ = 0;
    return std::exchange(suppressed_, 0);
  }
  // Takes the held-back count whether or not its time has come (the last report of a run); the
  // limiter goes on as it was.
  std::uint64_t takeAll() {
    reported_ = 0;
    return std::exchange(suppressed_, 0);
  }

 private:
  Clock::duration interval_;
  Clock::time_point last_{};
  bool written_ = false;
  std::uint64_t suppressed_ = 0;
  std::uint64_t reported_ = 0;
};

}  // namespace clustervisor
