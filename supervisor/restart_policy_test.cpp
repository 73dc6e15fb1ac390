// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "restart_policy.hpp"

using clustervisor::RestartPolicy;
using namespace std::chrono_literals;
using Duration = RestartPolicy::Duration;
using Verdict = RestartPolicy::Verdict;

namespace {

std::string_view name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kRestart:
      return "restart";
    case Verdict::kDone:
      return "done";
    case Verdict::kCrashLoop:
      return "crash-loop";
  }
  return "unknown";
}

// delay 1s, max_delay 60s, stable_after 30s, limit 5, window 60s: the defaults, spelled out so
// the expectations below do not silently follow a change of default.
clustervisor::config::RestartConfig defaultsSpelledOut() {
  clustervisor::config::RestartConfig config;
  config.policy = clustervisor::config::RestartPolicy::kAlways;
  config.delay = 1s;
  config.maxDelay = 60s;
  config.stableAfter = 30s;
  config.limit = 5;
  config.window = 60s;
  return config;
}

Duration scaled(Duration base, double factor) {
  return Duration{static_cast<Duration::rep>(static_cast<double>(base.count()) * factor)};
}

const std::vector<double> kJitters = {0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999};

}  // namespace

BOOST_AUTO_TEST_SUITE(restart_policy)

BOOST_AUTO_TEST_CASE(backoff_doubles_from_delay_up_to_max_delay) {
  const RestartPolicy policy(defaultsSpelledOut());
  const std::vector<Duration> bases = {1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s};
  for (std::uint32_t step = 1; step <= bases.size(); ++step) {
    BOOST_TEST_CONTEXT("step " << step) {
      const Duration base = bases[step - 1];
      BOOST_TEST(policy.backoff(step, 0.0).count() == scaled(base, 0.75).count());
      BOOST_TEST(policy.backoff(step, 1.0).count() == base.count());
    }
  }
  BOOST_TEST(policy.backoff(1000, 0.0).count() == scaled(60s, 0.75).count());
  BOOST_TEST(policy.backoff(UINT32_MAX, 1.0).count() == Duration{60s}.count());
  BOOST_TEST(policy.backoff(0, 0.5).count() == 0);
}

BOOST_AUTO_TEST_CASE(jitter_scales_the_wait_between_three_quarters_and_all_of_it) {
  const RestartPolicy policy(defaultsSpelledOut());
  for (std::uint32_t step = 1; step <= 8; ++step) {
    const Duration full = policy.backoff(step, 1.0);
    BOOST_TEST_CONTEXT("step " << step) {
      BOOST_TEST(policy.backoff(step, 0.0).count() == scaled(full, 0.75).count());
      BOOST_TEST(policy.backoff(step, 0.5).count() == scaled(full, 0.875).count());
      for (double jitter : kJitters) {
        BOOST_TEST_CONTEXT("jitter " << jitter) {
          const Duration wait = policy.backoff(step, jitter);
          BOOST_TEST(wait.count() >= scaled(full, 0.75).count());
          BOOST_TEST(wait.count() < full.count());
        }
      }
      // Out of range jitter is clamped rather than shrinking or stretching the wait.
      BOOST_TEST(policy.backoff(step, -1.0).count() == scaled(full, 0.75).count());
      BOOST_TEST(policy.backoff(step, 2.0).count() == full.count());
    }
  }
}

BOOST_AUTO_TEST_CASE(every_jittered_wait_is_longer_than_the_one_before_until_the_cap) {
  struct Pace {
    Duration delay;
    Duration maxDelay;
  };
  const std::vector<Pace> paces = {
      {1ms, 1h}, {2ms, 10min}, {7ms, 60s}, {100ms, 30s}, {1s, 60s}, {1500ms, 5min}, {3s, 1h},
  };
  for (const Pace& pace : paces) {
    auto config = defaultsSpelledOut();
    config.delay = pace.delay;
    config.maxDelay = pace.maxDelay;
    const RestartPolicy policy(config);
    // Step n doubles step n-1 while delay * 2^(n-1) stays within the cap.
    for (std::uint32_t step = 2; pace.delay * (std::int64_t{1} << (step - 1)) <= pace.maxDelay;
         ++step) {
      for (double before : kJitters) {
        for (double after : kJitters) {
          BOOST_TEST_CONTEXT("delay " << pace.delay.count() << "ms, max " << pace.maxDelay.count()
                                      << "ms, step " << step << ", jitters " << before << " then "
                                      << after) {
            BOOST_TEST(policy.backoff(step, after).count() >
                       policy.backoff(step - 1, before).count());
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(quick_crashes_wait_longer_each_time_until_the_cap_then_stay_near_it) {
  auto config = defaultsSpelledOut();
  config.limit = 0;
  std::mt19937 random(20240601);
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  for (int trial = 0; trial < 200; ++trial) {
    RestartPolicy policy(config);
    Duration previous{0};
    for (std::uint32_t exit = 1; exit <= 20; ++exit) {
      const auto decision = policy.afterExit(10ms, false, jitter(random));
      BOOST_TEST_CONTEXT("trial " << trial << ", exit " << exit) {
        BOOST_REQUIRE(name(decision.verdict) == name(Verdict::kRestart));
        BOOST_TEST(decision.backoffStep == exit);
        BOOST_TEST(decision.delay.count() <= config.maxDelay.count());
        if (decision.delay < scaled(config.maxDelay, 0.75)) {
          BOOST_TEST(decision.delay.count() > previous.count());
        } else {
          BOOST_TEST(decision.delay.count() >= scaled(config.maxDelay, 0.75).count());
        }
      }
      previous = decision.delay;
    }
  }
}

BOOST_AUTO_TEST_CASE(a_run_of_stable_after_resets_the_backoff) {
  RestartPolicy policy(defaultsSpelledOut());
  BOOST_TEST(policy.afterExit(1s, false, 0.0).backoffStep == 1u);
  BOOST_TEST(policy.afterExit(1s, false, 0.0).backoffStep == 2u);
  BOOST_TEST(policy.afterExit(1s, false, 0.0).backoffStep == 3u);
  const auto afterStableRun = policy.afterExit(30s, false, 0.0);
  BOOST_TEST(afterStableRun.backoffStep == 1u);
  BOOST_TEST(afterStableRun.delay.count() == policy.backoff(1, 0.0).count());
  BOOST_TEST(policy.afterExit(1s, false, 0.0).backoffStep == 2u);
}

BOOST_AUTO_TEST_CASE(a_run_shorter_than_stable_after_keeps_the_backoff_growing) {
  RestartPolicy policy(defaultsSpelledOut());
  BOOST_TEST(policy.afterExit(1s, false, 0.0).backoffStep == 1u);
  BOOST_TEST(policy.afterExit(1s, false, 0.0).backoffStep == 2u);
  const auto afterShortRun = policy.afterExit(29999ms, false, 0.0);
  BOOST_TEST(afterShortRun.backoffStep == 3u);
  BOOST_TEST(afterShortRun.delay.count() == policy.backoff(3, 0.0).count());
}

BOOST_AUTO_TEST_CASE(gives_up_after_more_than_limit_restarts_within_the_window) {
  RestartPolicy policy(defaultsSpelledOut());
  for (std::size_t exit = 1; exit <= 5; ++exit) {
    const auto decision = policy.afterExit(1s, false, 0.5);
    BOOST_TEST_CONTEXT("exit " << exit) {
      BOOST_TEST(name(decision.verdict) == name(Verdict::kRestart));
      BOOST_TEST(decision.restartsInWindow == exit);
    }
  }
  const auto sixth = policy.afterExit(1s, false, 0.5);
  BOOST_TEST(name(sixth.verdict) == name(Verdict::kCrashLoop));
  BOOST_TEST(sixth.restartsInWindow == 6u);
  BOOST_TEST(sixth.delay.count() == 0);
  BOOST_TEST(sixth.backoffStep == 0u);
}

BOOST_AUTO_TEST_CASE(restarts_spread_beyond_the_window_never_make_a_crash_loop) {
  // Five restarts fit in 60s of run time exactly when the runs are 12s long: never more than
  // the limit, however long it goes on.
  RestartPolicy policy(defaultsSpelledOut());
  for (int exit = 1; exit <= 100; ++exit) {
    const auto decision = policy.afterExit(12s, false, 0.5);
    BOOST_TEST_CONTEXT("exit " << exit) {
      BOOST_REQUIRE(name(decision.verdict) == name(Verdict::kRestart));
      BOOST_TEST(decision.restartsInWindow <= 5u);
    }
  }
}

BOOST_AUTO_TEST_CASE(runs_just_short_enough_to_fit_six_restarts_in_the_window_crash_loop) {
  RestartPolicy policy(defaultsSpelledOut());
  for (int exit = 1; exit <= 5; ++exit) {
    BOOST_TEST(name(policy.afterExit(11999ms, false, 0.5).verdict) == name(Verdict::kRestart));
  }
  BOOST_TEST(name(policy.afterExit(11999ms, false, 0.5).verdict) == name(Verdict::kCrashLoop));
}

BOOST_AUTO_TEST_CASE(backoff_waits_do_not_spread_a_crash_loop_out_of_the_window) {
  // Every wait is an hour, far longer than the 60s window: only run time counts, so six workers
  // that each crash after 10ms are still six restarts within the window.
  auto config = defaultsSpelledOut();
  config.delay = 1h;
  config.maxDelay = 1h;
  RestartPolicy policy(config);
  for (int exit = 1; exit <= 5; ++exit) {
    const auto decision = policy.afterExit(10ms, false, 0.5);
    BOOST_TEST_CONTEXT("exit " << exit) {
      BOOST_TEST(name(decision.verdict) == name(Verdict::kRestart));
      BOOST_TEST(decision.delay.count() >= Duration{45min}.count());
    }
  }
  BOOST_TEST(name(policy.afterExit(10ms, false, 0.5).verdict) == name(Verdict::kCrashLoop));
}

BOOST_AUTO_TEST_CASE(a_backoff_grown_to_its_cap_still_hits_the_limit) {
  auto config = defaultsSpelledOut();
  config.delay = 10s;
  config.maxDelay = 10min;
  config.limit = 8;
  RestartPolicy policy(config);
  RestartPolicy::Decision decision;
  for (int exit = 1; exit <= 8; ++exit) {
    decision = policy.afterExit(10ms, false, 0.5);
    BOOST_REQUIRE(name(decision.verdict) == name(Verdict::kRestart));
  }
  BOOST_TEST(decision.delay.count() >= scaled(config.maxDelay, 0.75).count());
  BOOST_TEST(name(policy.afterExit(10ms, false, 0.5).verdict) == name(Verdict::kCrashLoop));
}

BOOST_AUTO_TEST_CASE(limit_zero_never_reports_a_crash_loop) {
  auto config = defaultsSpelledOut();
  config.limit = 0;
  RestartPolicy policy(config);
  for (int exit = 1; exit <= 1000; ++exit) {
    const auto decision = policy.afterExit(exit % 2 == 0 ? 0ms : 1ms, false, 0.5);
    BOOST_TEST_CONTEXT("exit " << exit) {
      BOOST_REQUIRE(name(decision.verdict) == name(Verdict::kRestart));
    }
  }
}

BOOST_AUTO_TEST_CASE(policy_never_restarts_no_exit) {
  auto config = defaultsSpelledOut();
  config.policy = clustervisor::config::RestartPolicy::kNever;
  RestartPolicy policy(config);
  for (int exit = 1; exit <= 10; ++exit) {
    const bool success = exit % 2 == 0;
    const auto decision = policy.afterExit(10ms, success, 0.5);
    BOOST_TEST_CONTEXT("exit " << exit) {
      BOOST_TEST(name(decision.verdict) == name(Verdict::kDone));
      BOOST_TEST(decision.delay.count() == 0);
      BOOST_TEST(decision.backoffStep == 0u);
      BOOST_TEST(decision.restartsInWindow == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(policy_on_failure_is_done_after_a_success_and_restarts_after_a_failure) {
  auto config = defaultsSpelledOut();
  config.policy = clustervisor::config::RestartPolicy::kOnFailure;
  RestartPolicy policy(config);
  BOOST_TEST(name(policy.afterExit(10ms, true, 0.5).verdict) == name(Verdict::kDone));
  const auto failure = policy.afterExit(10ms, false, 0.5);
  BOOST_TEST(name(failure.verdict) == name(Verdict::kRestart));
  // The success was not a restart: it neither grew the backoff nor counts toward the limit.
  BOOST_TEST(failure.backoffStep == 1u);
  BOOST_TEST(failure.restartsInWindow == 1u);
}

BOOST_AUTO_TEST_CASE(policy_always_restarts_after_a_success_too) {
  RestartPolicy policy(defaultsSpelledOut());
  const auto decision = policy.afterExit(10ms, true, 0.0);
  BOOST_TEST(name(decision.verdict) == name(Verdict::kRestart));
  BOOST_TEST(decision.backoffStep == 1u);
  BOOST_TEST(decision.delay.count() == Duration{750ms}.count());
}

BOOST_AUTO_TEST_CASE(stable_runs_then_a_crash_loop_still_gives_up) {
  RestartPolicy policy(defaultsSpelledOut());
  for (int exit = 1; exit <= 10; ++exit) {
    const auto decision = policy.afterExit(2min, false, 0.5);
    BOOST_TEST_CONTEXT("stable exit " << exit) {
      BOOST_REQUIRE(name(decision.verdict) == name(Verdict::kRestart));
      BOOST_TEST(decision.backoffStep == 1u);
      BOOST_TEST(decision.restartsInWindow == 1u);
    }
  }
  bool crashLoop = false;
  for (int exit = 1; exit <= 6 && !crashLoop; ++exit) {
    crashLoop = policy.afterExit(10ms, false, 0.5).verdict == Verdict::kCrashLoop;
  }
  BOOST_TEST(crashLoop);
}

BOOST_AUTO_TEST_CASE(reset_forgets_the_backoff_and_the_restarts_in_the_window) {
  RestartPolicy policy(defaultsSpelledOut());
  for (int exit = 1; exit <= 5; ++exit) {
    policy.afterExit(10ms, false, 0.5);
  }
  policy.reset();
  for (std::size_t exit = 1; exit <= 5; ++exit) {
    const auto decision = policy.afterExit(10ms, false, 0.5);
    BOOST_TEST_CONTEXT("exit " << exit << " after the reset") {
      BOOST_TEST(name(decision.verdict) == name(Verdict::kRestart));
      BOOST_TEST(decision.backoffStep == exit);
      BOOST_TEST(decision.restartsInWindow == exit);
    }
  }
  BOOST_TEST(name(policy.afterExit(10ms, false, 0.5).verdict) == name(Verdict::kCrashLoop));
}

BOOST_AUTO_TEST_CASE(zero_delay_gives_zero_waits) {
  auto config = defaultsSpelledOut();
  config.delay = 0ms;
  config.limit = 0;
  RestartPolicy policy(config);
  for (std::uint32_t step = 0; step <= 100; ++step) {
    BOOST_TEST_CONTEXT("step " << step) {
      BOOST_TEST(policy.backoff(step, 0.0).count() == 0);
      BOOST_TEST(policy.backoff(step, 0.999).count() == 0);
    }
  }
  for (int exit = 1; exit <= 20; ++exit) {
    const auto decision = policy.afterExit(10ms, false, 0.999);
    BOOST_TEST_CONTEXT("exit " << exit) {
      BOOST_TEST(name(decision.verdict) == name(Verdict::kRestart));
      BOOST_TEST(decision.delay.count() == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(delay_above_max_delay_is_capped_from_the_first_wait) {
  auto config = defaultsSpelledOut();
  config.delay = 2min;
  config.maxDelay = 1min;
  const RestartPolicy policy(config);
  BOOST_TEST(policy.backoff(1, 1.0).count() == Duration{1min}.count());
  BOOST_TEST(policy.backoff(5, 1.0).count() == Duration{1min}.count());
}

BOOST_AUTO_TEST_SUITE_END()
