// SPDX-License-Identifier: MIT
#include "clustervisor/config/duration.hpp"

#include <chrono>
#include <cstdint>
#include <limits>
#include <string_view>

#include <boost/test/unit_test.hpp>

namespace clustervisor::config {
namespace {

using namespace std::chrono_literals;
using Status = ParsedDuration::Status;

struct Valid {
  std::string_view text;
  std::chrono::milliseconds expected;
};

void checkValid(const Valid& c) {
  BOOST_TEST_CONTEXT("\"" << c.text << "\"") {
    const ParsedDuration parsed = parseDuration(c.text);
    BOOST_TEST((parsed.status == Status::kOk));
    BOOST_TEST(parsed.value.count() == c.expected.count());
  }
}

void checkStatus(std::string_view text, Status expected) {
  BOOST_TEST_CONTEXT("\"" << text << "\"") {
    BOOST_TEST((parseDuration(text).status == expected));
  }
}

constexpr auto kMaxMilliseconds = std::numeric_limits<std::chrono::milliseconds::rep>::max();

}  // namespace

BOOST_AUTO_TEST_SUITE(duration)

BOOST_AUTO_TEST_CASE(parses_every_unit) {
  for (const Valid& c : {
           Valid{"0s", 0ms},
           Valid{"0ms", 0ms},
           Valid{"500ms", 500ms},
           Valid{"1s", 1s},
           Valid{"10s", 10s},
           Valid{"1m", 1min},
           Valid{"1h", 1h},
           Valid{"007s", 7s},
       }) {
    checkValid(c);
  }
}

BOOST_AUTO_TEST_CASE(parses_compound_duration) {
  for (const Valid& c : {
           Valid{"1m30s", 90s},
           Valid{"1h2m3s4ms", 1h + 2min + 3s + 4ms},
           Valid{"1s500ms", 1500ms},
           // Parts are added, in any order, as Go's time.ParseDuration does.
           Valid{"30s1m", 90s},
           Valid{"1s1s", 2s},
       }) {
    checkValid(c);
  }
}

BOOST_AUTO_TEST_CASE(parses_fraction_that_is_whole_milliseconds) {
  for (const Valid& c : {
           Valid{"1.5s", 1500ms}, Valid{"0.001s", 1ms}, Valid{"1.25m", 75s}, Valid{"0.5h", 30min},
           Valid{"1.000ms", 1ms},
           Valid{"2.50000000000000000000s", 2500ms},  // trailing zeros do not count
       }) {
    checkValid(c);
  }
}

BOOST_AUTO_TEST_CASE(rejects_malformed_duration) {
  for (const std::string_view text : {
           "",        "s",     "1",     "10",  "1.5", "1x",  "1S",  "1H",   "1mss",  "1sm s",
           "-1s",     "+1s",   "1e3ms", " 1s", "1s ", "1 s", "1.s", ".5s",  "1..5s", "1s,2s",
           "1_000ms", "0x10s", "1µs",   "1us", "1ns", "1d",  "s1",  "1m30", "1s\n",
       }) {
    checkStatus(text, Status::kSyntax);
  }
}

BOOST_AUTO_TEST_CASE(rejects_fraction_below_one_millisecond) {
  for (const std::string_view text : {
           "0.5ms",
           "1.5ms",
           "0.0001s",
           "1.0001s",
           "0.0000001h",
           "0.1234567891234s",
           "1.00000000000000000001s",
       }) {
    checkStatus(text, Status::kSubMillisecond);
  }
}

BOOST_AUTO_TEST_CASE(rejects_overflowing_duration) {
  for (const std::string_view text : {
           "99999999999999999999h",
           "99999999999999999999999999999999999999ms",
           "9223372036854775808ms",     // one past the largest std::chrono::milliseconds
           "2562047788016h",            // the first whole hour past 2^63 - 1 ms
           "9223372036854775s1000ms",   // sum overflows, each part alone does not
           "9223372036854775807ms1ms",  // sum overflows by one
           "18446744073709551616ms",    // 2^64: would wrap to 0 in unchecked arithmetic
           "18446744073709551615.5h",
       }) {
    checkStatus(text, Status::kTooLarge);
  }
}

BOOST_AUTO_TEST_CASE(accepts_largest_representable_duration) {
  const ParsedDuration parsed = parseDuration("9223372036854775807ms");
  BOOST_TEST((parsed.status == Status::kOk));
  BOOST_TEST(parsed.value.count() == kMaxMilliseconds);
  checkValid({"2562047788015h", std::chrono::hours{2562047788015}});
}

BOOST_AUTO_TEST_CASE(formats_in_whole_units_from_hours_down) {
  struct Case {
    std::chrono::milliseconds value;
    std::string_view expected;
  };
  for (const Case& c : {
           Case{0ms, "0s"},
           Case{1ms, "1ms"},
           Case{500ms, "500ms"},
           Case{1s, "1s"},
           Case{1500ms, "1s500ms"},
           Case{90s, "1m30s"},
           Case{1h, "1h"},
           Case{25h + 1ms, "25h1ms"},
       }) {
    BOOST_TEST(formatDuration(c.value) == c.expected);
    BOOST_TEST(parseDuration(formatDuration(c.value)).value.count() == c.value.count());
  }
}

BOOST_AUTO_TEST_CASE(formats_largest_duration_so_that_it_reads_back) {
  const std::chrono::milliseconds largest{kMaxMilliseconds};
  const ParsedDuration parsed = parseDuration(formatDuration(largest));
  BOOST_TEST((parsed.status == Status::kOk));
  BOOST_TEST(parsed.value.count() == kMaxMilliseconds);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace clustervisor::config
