// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "line_splitter.hpp"

using clustervisor::LineSplitter;

namespace {
struct Collected {
  std::vector<std::string> lines;
  std::vector<bool> continued;
  LineSplitter::Emit emit() {
    return [this](std::string_view line, bool cont) {
      lines.emplace_back(line);
      continued.push_back(cont);
    };
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(line_splitter)

BOOST_AUTO_TEST_CASE(joins_lines_split_across_reads_at_every_position) {
  const std::string text = "alpha\n\nbeta gamma\ndelta\n";
  for (std::size_t split = 0; split <= text.size(); ++split) {
    LineSplitter splitter;
    Collected c;
    splitter.feed(std::string_view(text).substr(0, split), c.emit());
    splitter.feed(std::string_view(text).substr(split), c.emit());
    splitter.finish(c.emit());
    BOOST_TEST_CONTEXT("split at " << split) {
      BOOST_TEST(c.lines == (std::vector<std::string>{"alpha", "", "beta gamma", "delta"}));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_nul_ends_a_line_as_the_journal_takes_it_to) {
  LineSplitter splitter;
  Collected c;
  splitter.feed(std::string_view("a\0<3>b\n\0c\n", 10), c.emit());
  BOOST_TEST(c.lines == (std::vector<std::string>{"a", "<3>b", "", "c"}));
}

BOOST_AUTO_TEST_CASE(emits_partial_last_line_at_end_of_stream) {
  LineSplitter splitter;
  Collected c;
  splitter.feed("done\nno newline", c.emit());
  BOOST_TEST(c.lines.size() == 1u);
  splitter.finish(c.emit());
  BOOST_TEST(c.lines == (std::vector<std::string>{"done", "no newline"}));
}

BOOST_AUTO_TEST_CASE(cuts_overlong_lines_into_marked_pieces) {
  LineSplitter splitter(4);
  Collected c;
  splitter.feed("abcdefghij\nxy\n", c.emit());
  BOOST_TEST(c.lines == (std::vector<std::string>{"abcd", "efgh", "ij", "xy"}));
  BOOST_TEST(c.continued == (std::vector<bool>{false, true, true, false}));
}

BOOST_AUTO_TEST_CASE(line_of_exactly_max_length_is_one_line) {
  LineSplitter splitter(4);
  Collected c;
  splitter.feed("abcd", c.emit());
  splitter.feed("\nef\n", c.emit());
  BOOST_TEST(c.lines == (std::vector<std::string>{"abcd", "ef"}));
  BOOST_TEST(c.continued == (std::vector<bool>{false, false}));
}

BOOST_AUTO_TEST_SUITE_END()
