// SPDX-License-Identifier: MIT
#include "toml_precheck.hpp"

#include <string>

#include <boost/test/unit_test.hpp>

#include "clustervisor/config/bot_config.hpp"

namespace clustervisor::config {
namespace {

std::string repeated(std::string_view text, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) {
    out += text;
  }
  return out;
}

// "depth N" or "line:column: problem", so a failure shows both at once.
std::string outcome(std::string_view text, std::size_t maxDepth = kMaxTomlDepth) {
  const TomlPrecheck result = precheckToml(text, maxDepth);
  if (result.ok()) {
    return "depth " + std::to_string(result.depth);
  }
  return std::to_string(result.line) + ":" + std::to_string(result.column) + ": " + result.problem;
}

const std::string kTooDeep =
    "tables, arrays and dotted keys nested more than 32 levels deep (a bot.toml needs two)";
const std::string kBadHeader =
    "Error while parsing key: expected bare key starting character or string delimiter, saw ";

BOOST_AUTO_TEST_SUITE(toml_precheck)

BOOST_AUTO_TEST_CASE(counts_headers_dotted_keys_arrays_and_inline_tables) {
  BOOST_TEST(outcome("") == "depth 0");
  BOOST_TEST(outcome("clusters = 4\n") == "depth 1");
  BOOST_TEST(outcome("[restart]\ndelay = \"1s\"\n") == "depth 2");
  BOOST_TEST(outcome("[a.b]\nc.d = 1\n[x]\ny = 1\n") == "depth 4");
  BOOST_TEST(outcome("x = [[1], 2]\n") == "depth 3");
  BOOST_TEST(outcome("x = {a.b = {c = 1}, d = [[]]}\n") == "depth 4");
  BOOST_TEST(outcome("environment = { A = \"1\" }\n") == "depth 2");
  BOOST_TEST(outcome("x = [\n  1, # one\n  [2],\n]\n") == "depth 3");
}

BOOST_AUTO_TEST_CASE(counts_key_segments_twice_once_there_is_an_array_of_tables) {
  // [[a]] is an array (1) of tables (2); b inside is 3; counted as 2 * 1 + 1 and 2 * 1 more.
  BOOST_TEST(outcome("b = 1\n[[a]]\nb = 1\n") == "depth 5");
}

BOOST_AUTO_TEST_CASE(ignores_brackets_dots_and_quotes_in_strings_and_comments) {
  BOOST_TEST(outcome("x = \"[[[{a.b.c\\\"[[\" # [[[ a.b.c = {\n") == "depth 1");
  BOOST_TEST(outcome("x = '''\n[[[[\na.b.c = 1\n'''\ny = \"\"\"\n[[\\\"\"\"\"\"\n") == "depth 1");
  BOOST_TEST(outcome("\"a.b.c\" = 1\n'd.e' = 2\n") == "depth 1");
  BOOST_TEST(outcome("[\"a.b\".'c[d]']\n") == "depth 2");
}

BOOST_AUTO_TEST_CASE(refuses_nesting_deeper_than_the_limit_where_it_starts) {
  BOOST_TEST(outcome(repeated("a.", 32) + "a = 1\n") == "1:1: " + kTooDeep);
  BOOST_TEST(outcome(repeated("a.", 31) + "a = 1\n") == "depth 32");
  BOOST_TEST(outcome("x = 1\n  [" + repeated("a.", 40) + "a]\n") == "2:3: " + kTooDeep);
  BOOST_TEST(outcome("x = " + repeated("[", 40)) == "1:37: " + kTooDeep);
  BOOST_TEST(outcome("x = " + repeated("{a = ", 40)) == "1:161: " + kTooDeep);
  BOOST_TEST(outcome("[a.b]\n" + repeated("c.", 29) + "c = 1\n") == "depth 32");
  BOOST_TEST(outcome("[a.b]\n" + repeated("c.", 30) + "c = 1\n") == "2:1: " + kTooDeep);
  BOOST_TEST(outcome("[a.b]\n" + repeated("c.", 30) + "c = 1\n", 40) == "depth 33");
}

BOOST_AUTO_TEST_CASE(refuses_twenty_thousand_dotted_segments_without_recursing) {
  const std::string text = "command = [\"./bot\"]\n" + repeated("a.", 20000) + "a = 1\n";
  BOOST_TEST(outcome(text) == "2:1: " + kTooDeep);
  const LoadResult result = parseConfig(text, "bot.toml", "/srv/bot");
  BOOST_TEST_REQUIRE(result.errors.size() == 1U);
  BOOST_TEST(result.errors[0].format() == "bot.toml:2:1: syntax error: " + kTooDeep);
}

BOOST_AUTO_TEST_CASE(refuses_a_table_header_that_does_not_start_with_a_key) {
  // toml++ 3.3.0 asserts on these instead of reporting them.
  BOOST_TEST(outcome("[#]\n") == "1:2: " + kBadHeader + "'#'");
  BOOST_TEST(outcome("x = 1\n[[[1]]]\n") == "2:3: " + kBadHeader + "'['");
  BOOST_TEST(outcome("[[ =") == "1:4: " + kBadHeader + "'='");
  BOOST_TEST(outcome("[\x01]") == "1:2: " + kBadHeader + "byte 0x01");
  // What toml++ reports by itself is left to it.
  BOOST_TEST(outcome("[]\n") == "depth 0");
  BOOST_TEST(outcome("[") == "depth 0");
  BOOST_TEST(outcome("[ \"a\" ]\n['b'.c]\n") == "depth 2");
}

BOOST_AUTO_TEST_CASE(refuses_non_ascii_outside_strings_and_comments) {
  // toml++ 3.3.0 classifies such a character with functions that are undefined for many code
  // points (U+FE7F was found by fuzzing).
  const std::string unexpected = " (outside strings and comments TOML allows only ASCII)";
  BOOST_TEST(outcome("\xc3\xa9 = 1\n") == "1:1: unexpected character U+00E9" + unexpected);
  BOOST_TEST(outcome("\xef\xb9\xbf") == "1:1: unexpected character U+FE7F" + unexpected);
  BOOST_TEST(outcome("x = 1\xc3\xa9\n") == "1:6: unexpected character U+00E9" + unexpected);
  BOOST_TEST(outcome("x = tru\xc3\xa9\n") == "1:8: unexpected character U+00E9" + unexpected);
  // toml++ reads a number, date or boolean ahead to the next space, comma or bracket (fuzzing
  // found this one).
  BOOST_TEST(outcome("x = 4old_.\\0[env\xc3\xa9\"]\n") ==
             "1:17: unexpected character U+00E9" + unexpected);
  BOOST_TEST(outcome("x = [1, \xf0\x9f\x98\x80]\n") ==
             "1:9: unexpected character U+1F600" + unexpected);
  BOOST_TEST(outcome("[a \xc3\xa9]\n") == "1:4: unexpected character U+00E9" + unexpected);
  BOOST_TEST(outcome("[\xc3\xa9]\n") == "1:2: unexpected character U+00E9" + unexpected);
  // Right after a header (fuzzing found this one).
  BOOST_TEST(outcome("[start]\xef\xbb\x86\n") == "1:8: unexpected character U+FEC6" + unexpected);
  BOOST_TEST(outcome("[[a]] \xc3\xa9\n") == "1:7: unexpected character U+00E9" + unexpected);
  BOOST_TEST(outcome("x = {a = 1 \xc3\xa9}\n") == "1:12: unexpected character U+00E9" + unexpected);
  BOOST_TEST(outcome("x = \"\xc3\xa9\xc3\xa9\" \xc3\xa9\n") ==
             "1:10: unexpected character U+00E9" + unexpected);
}

BOOST_AUTO_TEST_CASE(allows_non_ascii_in_strings_comments_and_a_byte_order_mark) {
  BOOST_TEST(outcome("\xef\xbb\xbfx = \"\xc3\xa9\" # \xc3\xa9\ny = '\xc3\xa9'\n"
                     "z = \"\"\"\xc3\xa9\n\xc3\xa9\\n\"\"\"\n") == "depth 1");
}

BOOST_AUTO_TEST_CASE(refuses_non_ascii_in_quoted_keys) {
  const std::string inKey = " in a key (every key of a bot.toml is ASCII)";
  BOOST_TEST(outcome("\"\xc3\xa9\" = 1\n") == "1:2: non-ASCII character U+00E9" + inKey);
  BOOST_TEST(outcome("[a.'x\xc3\xa9']\n") == "1:6: non-ASCII character U+00E9" + inKey);
  BOOST_TEST(outcome("x = {\"\xc3\xa9\" = 1}\n") == "1:7: non-ASCII character U+00E9" + inKey);
}

BOOST_AUTO_TEST_CASE(refuses_non_ascii_right_after_a_backslash_in_a_multi_line_string) {
  const std::string afterBackslash =
      " right after a backslash in a multi-line string (write it as an escape such as \\u00E9)";
  BOOST_TEST(outcome("x = \"\"\"a\\\xc3\xa9\"\"\"\n") ==
             "1:10: non-ASCII character U+00E9" + afterBackslash);
  BOOST_TEST(outcome("x = \"\"\"a \\\n\n   \xc3\xa9\"\"\"\n") ==
             "3:4: non-ASCII character U+00E9" + afterBackslash);
  // In a one-line string toml++ reports the bad escape by itself.
  BOOST_TEST(outcome("x = \"a\\\xc3\xa9\"\n") == "depth 1");
}

BOOST_AUTO_TEST_CASE(refuses_malformed_utf8_anywhere_at_its_own_position) {
  const std::string notUtf8 = "; a bot.toml must be UTF-8";
  BOOST_TEST(outcome("x = 1\n\xff = 1\n") == "2:1: invalid UTF-8 (byte 0xFF)" + notUtf8);
  BOOST_TEST(outcome("x = \"\xc3\xa9\xc3\" # \n") == "1:7: invalid UTF-8 (byte 0xC3)" + notUtf8);
  BOOST_TEST(outcome("# \xc0\x80 overlong\n") == "1:3: invalid UTF-8 (byte 0xC0)" + notUtf8);
  BOOST_TEST(outcome("x = '\xed\xa0\x80'") == "1:6: invalid UTF-8 (byte 0xED)" + notUtf8);
  BOOST_TEST(outcome("x = '\xf4\x90\x80\x80'") == "1:6: invalid UTF-8 (byte 0xF4)" + notUtf8);
  const LoadResult result = parseConfig("command = [\"./bot\"]\n\xff = 1\n", "bot.toml", "/b");
  BOOST_TEST_REQUIRE(result.errors.size() == 1U);
  BOOST_TEST(result.errors[0].format() ==
             "bot.toml:2:1: syntax error: invalid UTF-8 (byte 0xFF); a bot.toml must be UTF-8");
}

BOOST_AUTO_TEST_CASE(table_header_error_reaches_the_diagnostic_with_its_position) {
  const LoadResult result = parseConfig("command = [\"./bot\"]\n[# restart]\n", "bot.toml", "/b");
  BOOST_TEST_REQUIRE(result.errors.size() == 1U);
  BOOST_TEST(result.errors[0].format() == "bot.toml:2:2: syntax error: " + kBadHeader + "'#'");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace clustervisor::config
