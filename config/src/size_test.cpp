// SPDX-License-Identifier: MIT
#include "clustervisor/config/size.hpp"
#include "clustervisor/config/utf8.hpp"

#include <cstdint>
#include <limits>
#include <string_view>

#include <boost/test/unit_test.hpp>

namespace clustervisor::config {
namespace {

using SizeStatus = ParsedSize::Status;

struct ValidSize {
  std::string_view text;
  std::uint64_t bytes;
};

void checkSizeStatus(std::string_view text, SizeStatus expected) {
  BOOST_TEST_CONTEXT("\"" << text << "\"") {
    BOOST_TEST((parseSize(text).status == expected));
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(size)

BOOST_AUTO_TEST_CASE(parses_binary_and_decimal_units) {
  for (const ValidSize& c : {
           ValidSize{"0B", 0},
           ValidSize{"100000B", 100'000},
           ValidSize{"1KiB", kKiB},
           ValidSize{"512KiB", 512 * kKiB},
           ValidSize{"1MiB", kMiB},
           ValidSize{"16GiB", 16 * kGiB},
           ValidSize{"1KB", 1000},
           ValidSize{"64MB", 64'000'000},
           ValidSize{"2GB", 2'000'000'000},
           ValidSize{"0001MiB", kMiB},
       }) {
    BOOST_TEST_CONTEXT("\"" << c.text << "\"") {
      const ParsedSize parsed = parseSize(c.text);
      BOOST_TEST((parsed.status == SizeStatus::kOk));
      BOOST_TEST(parsed.bytes == c.bytes);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_malformed_size) {
  for (const std::string_view text : {
           "",      "B",     "MiB",  "1",      "100000", "1 MiB",    " 1MiB", "1MiB ",
           "1mib",  "1kb",   "1kB",  "1Ki",    "1KIB",   "1TiB",     "1TB",   "1.5MiB",
           "-1MiB", "+1MiB", "1e3B", "1_000B", "0x10B",  "1MiB1KiB", "1BB",
       }) {
    checkSizeStatus(text, SizeStatus::kSyntax);
  }
}

BOOST_AUTO_TEST_CASE(rejects_overflowing_size) {
  for (const std::string_view text : {
           "18446744073709551616B",  // 2^64: would wrap to 0 in unchecked arithmetic
           "99999999999999999999999999999999B",
           "17179869184GiB",  // 2^34 GiB = 2^64 B
           "18446744073709552KB",
       }) {
    checkSizeStatus(text, SizeStatus::kTooLarge);
  }
}

BOOST_AUTO_TEST_CASE(accepts_largest_size) {
  const ParsedSize parsed = parseSize("18446744073709551615B");
  BOOST_TEST((parsed.status == SizeStatus::kOk));
  BOOST_TEST(parsed.bytes == std::numeric_limits<std::uint64_t>::max());
  BOOST_TEST(parseSize("17179869183GiB").bytes == 17179869183 * kGiB);
}

BOOST_AUTO_TEST_CASE(formats_in_largest_exact_binary_unit) {
  for (const ValidSize& c : {
           ValidSize{"0B", 0},
           ValidSize{"1B", 1},
           ValidSize{"1000B", 1000},
           ValidSize{"1536B", 1536},
           ValidSize{"1KiB", kKiB},
           ValidSize{"64KiB", 64 * kKiB},
           ValidSize{"1025KiB", kMiB + kKiB},
           ValidSize{"256MiB", 256 * kMiB},
           ValidSize{"16GiB", 16 * kGiB},
           ValidSize{"18446744073709551615B", std::numeric_limits<std::uint64_t>::max()},
       }) {
    BOOST_TEST(formatSize(c.bytes) == c.text);
    BOOST_TEST(parseSize(formatSize(c.bytes)).bytes == c.bytes);
  }
}

BOOST_AUTO_TEST_CASE(text_is_cut_short_on_a_utf8_character_boundary) {
  BOOST_TEST(utf8Prefix("abc", 5) == "abc");
  BOOST_TEST(utf8Prefix("abcdef", 3) == "abc");
  // "é" is two bytes: a cut between them moves before it.
  BOOST_TEST(utf8Prefix("ab\xc3\xa9z", 3) == "ab");
  BOOST_TEST(utf8Prefix("ab\xc3\xa9z", 4) == "ab\xc3\xa9");
  // A four-byte character cut after any of its bytes.
  BOOST_TEST(utf8Prefix("\xf0\x9f\x98\x80!", 3) == "");
  BOOST_TEST(utf8Prefix("\xf0\x9f\x98\x80!", 4) == "\xf0\x9f\x98\x80");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace clustervisor::config
