// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include "log_limiter.hpp"

using clustervisor::LogLimiter;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(log_limiter)

BOOST_AUTO_TEST_CASE(lets_one_line_through_per_interval_and_counts_the_rest) {
  LogLimiter limiter(1s);
  const LogLimiter::Clock::time_point t0{};
  BOOST_TEST(limiter.allow(t0 + 10s));
  BOOST_TEST(limiter.suppressedNote().empty());
  BOOST_TEST(!limiter.allow(t0 + 10s + 100ms));
  BOOST_TEST(!limiter.allow(t0 + 10s + 200ms, 4));
  BOOST_TEST(limiter.suppressed() == 5u);
  BOOST_TEST((limiter.nextReport() == t0 + 11s));
  // The next line after the interval carries the count, if no report took it first.
  BOOST_TEST(limiter.allow(t0 + 11s));
  BOOST_TEST(limiter.suppressedNote() == " (5 more since the last report)");
  BOOST_TEST(limiter.suppressed() == 0u);
}

BOOST_AUTO_TEST_CASE(what_was_held_back_is_due_once_the_interval_is_over) {
  LogLimiter limiter(1s);
  const LogLimiter::Clock::time_point t0{};
  BOOST_TEST(limiter.allow(t0 + 10s));
  BOOST_TEST(limiter.takeDue(t0 + 10s + 500ms) == 0u);  // nothing held back
  BOOST_TEST(!limiter.allow(t0 + 10s + 600ms, 3));
  BOOST_TEST(limiter.takeDue(t0 + 10s + 900ms) == 0u);  // not yet
  BOOST_TEST(limiter.takeDue(t0 + 11s) == 3u);
  BOOST_TEST(limiter.takeDue(t0 + 11s) == 0u);  // taken once
  // The report counts as a line: the next second starts at it, and its count is not repeated.
  BOOST_TEST(!limiter.allow(t0 + 11s + 500ms));
  BOOST_TEST(limiter.allow(t0 + 12s));
  BOOST_TEST(limiter.suppressedNote() == " (1 more since the last report)");
}

BOOST_AUTO_TEST_CASE(take_all_empties_it_whatever_the_time_and_leaves_it_working) {
  LogLimiter limiter(1s);
  const LogLimiter::Clock::time_point t0{};
  BOOST_TEST(limiter.allow(t0 + 10s));
  BOOST_TEST(!limiter.allow(t0 + 10s + 100ms, 2));
  BOOST_TEST(limiter.takeAll() == 2u);
  BOOST_TEST(limiter.takeAll() == 0u);
  BOOST_TEST(limiter.allow(t0 + 11s));
  BOOST_TEST(limiter.suppressedNote().empty());
}

BOOST_AUTO_TEST_SUITE_END()
