// SPDX-License-Identifier: MIT
//
// Worker output capture: every line prefixed with its cluster; long and partial lines kept.
#include <boost/test/unit_test.hpp>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_logs)

using namespace clustervisor::test;

BOOST_AUTO_TEST_CASE(long_lines_are_split_and_marked_and_partial_lines_kept) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write("bot.toml", probeConfig(dir, 1, "logs")));
  // Cluster 0 writes a 40000-byte line, then text without a newline, then exits.
  run->waitForLine("clustervisor: cluster 0 (pid ");
  run->waitForLine("[cluster 0] tail without newline");
  const auto lines = run->lines();
  std::vector<std::string> pieces;
  for (const auto& line : lines) {
    if (line.find("xxxx") != std::string::npos) {
      pieces.push_back(line);
    }
  }
  BOOST_REQUIRE(pieces.size() == 3u);
  BOOST_TEST(pieces[0] == "[cluster 0] " + std::string(16384, 'x'));
  BOOST_TEST(pieces[1] == "[cluster 0]+ " + std::string(16384, 'x'));
  BOOST_TEST(pieces[2] == "[cluster 0]+ " + std::string(40000 - 2 * 16384, 'x'));
  // The worker exited with status 0 and was restarted; its second run prints normally.
  run->waitForLine("exited with status 0");
  BOOST_TEST(startedPid(*run, 0, 1) > 0);
}

BOOST_AUTO_TEST_CASE(stderr_lines_are_prefixed_too) {
  TempDir dir;
  // A worker that writes to stderr and has no SDK at all: /bin/sh.
  auto run =
      SupervisorRun::run(dir.write("bot.toml",
                                   "command = [\"/bin/sh\", \"-c\", \"echo "
                                   "to-stderr-$CLUSTERVISOR_CLUSTER_ID >&2; exec sleep 600\"]\n"
                                   "clusters = 2\n"));
  run->waitForLine("[cluster 0] to-stderr-0");
  run->waitForLine("[cluster 1] to-stderr-1");
}

BOOST_AUTO_TEST_SUITE_END()
