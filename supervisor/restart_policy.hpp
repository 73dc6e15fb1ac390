// SPDX-License-Identifier: MIT
//
// RestartPolicy: for one cluster, decides whether a worker that exited is started again, after
// how long, and when its restarts have become a crash loop. Pure: the caller passes the run's
// ready time, whether the exit counts as a success, and a random number for the jitter.
//
// - restart.policy: `always` restarts after every exit; `on-failure` not after a success;
//   `never` not at all.
// - Backoff: the n-th restart since the last stable run waits
//   min(max_delay, delay * 2^(n-1)) * (0.75 + 0.25 * jitter), jitter in [0, 1). The factor stays
//   above half of the doubling, so every wait is longer than the one before until the cap.
//   A run that was ready for at least stable_after resets n.
// - Crash loop: more than `limit` restarts within `window` of run time. Run time is the sum of
//   the ready times of the cluster's runs (how long each was in the running state): time spent
//   starting, stopping or waiting in backoff does not count, so neither a slow start (a worker
//   that never becomes ready and is stopped at start.timeout) nor a backoff
//   that grows to its cap cannot spread a crash loop thin enough to escape the window.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

#include "clustervisor/config/bot_config.hpp"

namespace clustervisor {

class RestartPolicy {
 public:
  using Duration = std::chrono::milliseconds;

  enum class Verdict {
    kRestart,    // start the worker again after `delay`
    kDone,       // the policy does not restart it (a clean exit under on-failure, or never)
    kCrashLoop,  // too many restarts within the window
  };

  struct Decision {
    Verdict verdict = Verdict::kDone;
    Duration delay{0};              // for kRestart
    std::uint32_t backoffStep = 0;  // n above, 1-based, for kRestart
    std::size_t restartsInWindow = 0;
  };

  explicit RestartPolicy(const config::RestartConfig& config) : config_(config) {}

  // A worker of this cluster ended after being ready for `readyTime` (0 for a worker that never
  // became ready, or a spawn that failed).
  Decision afterExit(Duration readyTime, bool success, double jitter);

  // Forgets the backoff and the crash-loop history: a fresh start (a failed cluster retried, or
  // restarted by hand).
  void reset();

  // Decides later exits by `config` (a reload); keeps the backoff step and the restart history.
  void setConfig(const config::RestartConfig& config) { config_ = config; }

  // The backoff wait before the n-th restart (1-based), with the given jitter.
  Duration backoff(std::uint32_t step, double jitter) const;

  const config::RestartConfig& config() const { return config_; }

 private:
  config::RestartConfig config_;
  std::uint32_t step_ = 0;         // restarts since the last stable run
  Duration runClock_{0};           // total run time of this cluster's workers
  std::deque<Duration> restarts_;  // run-clock times of the restarts still inside the window
};

}  // namespace clustervisor
