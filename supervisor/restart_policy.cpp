// SPDX-License-Identifier: MIT
#include "restart_policy.hpp"

#include <algorithm>

namespace clustervisor {

RestartPolicy::Duration RestartPolicy::backoff(std::uint32_t step, double jitter) const {
  if (step == 0) {
    return Duration{0};
  }
  // Doubling stops at the cap; the exponent is bounded so the shift cannot overflow.
  Duration base = config_.delay;
  for (std::uint32_t i = 1; i < step && base < config_.maxDelay && base.count() > 0; ++i) {
    base *= 2;
  }
  base = std::min(base, config_.maxDelay);
  jitter = std::clamp(jitter, 0.0, 1.0);
  return Duration{
      static_cast<Duration::rep>(static_cast<double>(base.count()) * (0.75 + 0.25 * jitter))};
}

RestartPolicy::Decision RestartPolicy::afterExit(Duration readyTime, bool success, double jitter) {
  runClock_ += readyTime;
  if (readyTime >= config_.stableAfter) {
    step_ = 0;
  }
  Decision decision;
  const bool restart = config_.policy == config::RestartPolicy::kAlways ||
                       (config_.policy == config::RestartPolicy::kOnFailure && !success);
  if (!restart) {
    return decision;
  }
  // Without a limit there is nothing to count, and nothing is kept.
  if (config_.limit > 0) {
    restarts_.push_back(runClock_);
    while (!restarts_.empty() && runClock_ - restarts_.front() >= config_.window) {
      restarts_.pop_front();
    }
    decision.restartsInWindow = restarts_.size();
    if (restarts_.size() > config_.limit) {
      decision.verdict = Verdict::kCrashLoop;
      return decision;
    }
  }
  ++step_;
  decision.verdict = Verdict::kRestart;
  decision.backoffStep = step_;
  decision.delay = backoff(step_, jitter);
  return decision;
}

void RestartPolicy::reset() {
  step_ = 0;
  restarts_.clear();
}

}  // namespace clustervisor
