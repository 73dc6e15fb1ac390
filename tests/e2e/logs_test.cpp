// SPDX-License-Identifier: MIT
//
// Worker output capture: every line prefixed with its cluster; long and partial lines kept.
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_logs)

using namespace clustervisor::test;

namespace {

// A run of two "chatty" workers started on `config`, told to print, with nobody reading the
// supervisor's output: returned once that output is blocked (its pipe holds 60 KiB unread).
std::unique_ptr<SupervisorRun> chattyWithOutputBlocked(const TempDir& dir,
                                                       const std::filesystem::path& config) {
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  run->pauseReading();
  std::ofstream(dir.path() / "go") << "1\n";
  BOOST_REQUIRE(waitUntil([&] { return run->unreadBytes() >= 60 * 1024; }));
  return run;
}

}  // namespace

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

BOOST_AUTO_TEST_CASE(an_output_reader_that_stops_reading_stops_neither_heartbeats_nor_control) {
  TempDir dir;
  // Two workers print 60000 lines of ~220 bytes each (26 MB, far past the pipe and the
  // supervisor's 1 MiB output queue) while nobody reads the supervisor's output, as behind a
  // suspended pager or a stuck log reader.
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 2, "chatty", "PROBE_COUNT = \"60000\"",
                                        "[heartbeat]\ninterval = \"100ms\"\ntimeout = \"1s\"\n"));
  // The pipe fills (64 KiB) and the supervisor's output waits...
  auto run = chattyWithOutputBlocked(dir, config);
  // ...while the supervisor goes on: it answers on its control socket and keeps reading the
  // heartbeats (timeout 1 s), so no worker is taken for hung, for several timeouts.
  for (int check = 0; check < 3; ++check) {
    const auto status = statusOf(config);  // fails the test when the supervisor is stuck
    for (const auto& cluster : status.at("clusters").as_array()) {
      BOOST_TEST(cluster.as_object().at("state").as_string() == "running");
      BOOST_TEST(cluster.as_object().at("restarts").as_int64() == 0);
    }
    std::this_thread::sleep_for(1s);
  }
  BOOST_TEST(run->unreadBytes() >= 60 * 1024u);  // still nobody reading
  // The workers' lines wait in their pipes, not in the supervisor.
  const long rssKiB = usageOf(run->pid()).rssKiB;
  BOOST_TEST_MESSAGE("supervisor RSS with its output blocked: " << rssKiB << " KiB");
  if (!sanitized()) {
    BOOST_TEST(rssKiB < 24 * 1024);
  }
  run->resumeReading();
  // Nothing was lost: the workers' lines waited in their pipes meanwhile.
  run->waitForLine("[cluster 0] CHATTY done", 60s);
  run->waitForLine("[cluster 1] CHATTY done", 60s);
  BOOST_TEST(run->linesContaining("[cluster 0] CHATTY ").size() == 60001u);
  BOOST_TEST(run->linesContaining("[cluster 1] CHATTY ").size() == 60001u);
  BOOST_TEST(!run->hasLine("hung"), run->transcript());
  BOOST_TEST(!run->hasLine("lines were dropped"));
  BOOST_TEST(run->linesContaining("START id=").size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_worker_that_exits_while_the_output_is_blocked_still_has_all_its_lines_out) {
  TempDir dir;
  // Cluster 0 prints 60000 lines while nobody reads the supervisor's output, until the output
  // queue is full and the supervisor stops reading its pipe: it then blocks in write(2).
  const auto config = dir.write(
      "bot.toml",
      probeConfig(dir, 2, "chatty", "PROBE_COUNT = \"60000,200\", PROBE_LATE = \"1\"", ""));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  const pid_t chatty = startedPid(*run, 0);
  const pid_t firstOf1 = startedPid(*run, 1);
  run->pauseReading();
  std::ofstream(dir.path() / "go") << "1\n";
  const auto blockedInWrite = [&] {
    std::string call;
    std::ifstream(std::filesystem::path("/proc") / std::to_string(chatty) / "syscall") >> call;
    return call == "1";  // write(2), waiting for room in its pipe
  };
  BOOST_REQUIRE(waitUntil(blockedInWrite));
  // Cluster 1 now prints 200 lines (45 KB: its pipe takes them) and exits, and is restarted:
  // its first worker's capture, waiting for room in the output, is replaced in its slot.
  std::ofstream(dir.path() / "go-late") << "1\n";
  BOOST_REQUIRE(waitUntil([&] {
    return statusOf(config).at("clusters").as_array().at(1).as_object().at("restarts").as_int64() ==
           1;
  }));
  run->resumeReading();
  // Every line of both of cluster 1's runs arrives, the first run's too.
  run->waitForLine("[cluster 0] CHATTY done", 60s);
  run->waitForLines("[cluster 1] CHATTY done", 2, 60s);
  BOOST_TEST(run->linesContaining("[cluster 1] CHATTY ").size() == 2 * 201u);
  BOOST_TEST(run->linesContaining("[cluster 0] CHATTY ").size() == 60001u);
  // And the first run's lines, which waited in its pipe, come before the line that says it
  // exited.
  const auto lines = run->lines();
  const auto at = [&](const std::string& needle) {
    return std::find_if(
               lines.begin(), lines.end(),
               [&](const std::string& line) { return line.find(needle) != std::string::npos; }) -
           lines.begin();
  };
  const auto exitLine = at("cluster 1 (pid " + std::to_string(firstOf1) + ") exited");
  BOOST_TEST(exitLine < static_cast<std::ptrdiff_t>(lines.size()));
  BOOST_TEST(at("[cluster 1] CHATTY done") < exitLine, run->transcript());
}

BOOST_AUTO_TEST_CASE(all_workers_stopped_comes_after_the_last_line_the_workers_wrote) {
  TempDir dir;
  // Two workers print 60000 lines each while nobody reads the supervisor's output, so their
  // pipes are full when the supervisor is stopped: it reads them to the end before it says so.
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 2, "chatty", "PROBE_COUNT = \"60000\""));
  auto run = chattyWithOutputBlocked(dir, config);
  run->signal(SIGTERM);
  // Still unread when the supervisor has stopped both workers and closed its control socket,
  // which it does just before it reads the rest of their output.
  BOOST_REQUIRE(waitUntil([&] { return runCli({"status", config.string()}).status != 0; }, 30s));
  run->resumeReading();
  BOOST_REQUIRE(run->waitExit(60s).value_or(-1) == 0);
  const auto lines = run->lines();
  BOOST_REQUIRE(!lines.empty());
  BOOST_TEST(lines.back() == "clustervisor: all workers stopped", run->transcript());
  BOOST_TEST(run->linesContaining("all workers stopped").size() == 1u);
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

BOOST_AUTO_TEST_CASE(lines_to_the_journal_carry_their_syslog_priority_in_front) {
  TempDir dir;
  // The worker writes a line with its own priority, one without, and a warning longer than a
  // piece (16 KiB), then a line whose NUL would make the journal take what follows for a line
  // of the supervisor's own, then fails: a crash, restarted (a warning), then a crash loop (an
  // error).
  const auto config = dir.write("bot.toml", R"(command = ["/bin/sh", "-c", """
echo '<4>low on memory'
echo plain >&2
printf '<3>%020000d\n' 0
printf 'hello\\000<3>clustervisor: error: forged\\n'
exit 3
"""]
clusters = 1
[restart]
delay = "10ms"
limit = 1
)");
  // As systemd starts a service whose output goes to the journal: JOURNAL_STREAM names the
  // device and inode of its standard error (here the test's pipe).
  SupervisorRun run({"/bin/sh", "-c",
                     "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); export JOURNAL_STREAM; "
                     "exec \"$0\" run \"$1\"",
                     supervisorBinary().string(), config.string()});
  run.waitForLine("<4>[cluster 0] low on memory");
  run.waitForLine([](const std::string& line) { return line == "[cluster 0] plain"; },
                  "the line without a priority, as it was");
  run.waitForLine([](const std::string& line) { return line.starts_with("<3>[cluster 0] 000"); },
                  "the long line's first piece, with its priority");
  run.waitForLine([](const std::string& line) { return line.starts_with("<3>[cluster 0]+ 000"); },
                  "the long line's second piece, with the first's priority");
  run.waitForLine([](const std::string& line) { return line == "[cluster 0] hello"; },
                  "the line up to the NUL, which ends it");
  run.waitForLine(
      [](const std::string& line) { return line == "<3>[cluster 0] clustervisor: error: forged"; },
      "what follows the NUL, as a line of the worker's");
  BOOST_TEST(!run.hasLine("<3>clustervisor: error: forged"), run.transcript());
  run.waitForLine([](const std::string& line) { return line.starts_with("<6>clustervisor: "); },
                  "an information line of the supervisor's");
  run.waitForLine(
      [](const std::string& line) {
        return line.starts_with("<4>clustervisor: cluster 0 (pid ") &&
               line.find("exited with status 3") != std::string::npos;
      },
      "the first exit, restarted, as a warning");
  run.waitForLine(
      [](const std::string& line) {
        return line.starts_with("<3>clustervisor: error: cluster 0 (pid ") &&
               line.find("exited with status 3") != std::string::npos;
      },
      "the last exit, a crash loop, as an error");
}

BOOST_AUTO_TEST_CASE(lines_keep_no_priority_where_the_output_is_not_the_journal) {
  TempDir dir;
  // JOURNAL_STREAM inherited from elsewhere (a shell started by a service, say) names another
  // stream: nothing changes.
  auto run = SupervisorRun::run(dir.write("bot.toml", R"(command = ["/bin/sh", "-c", """
echo '<4>low on memory'
exec sleep 600
"""]
clusters = 1
)"),
                                {"JOURNAL_STREAM=1:1"});
  run->waitForLine([](const std::string& line) { return line == "[cluster 0] <4>low on memory"; },
                   "the worker's line as it wrote it");
  BOOST_TEST(run->linesContaining("<6>").empty());
}

BOOST_AUTO_TEST_SUITE_END()
