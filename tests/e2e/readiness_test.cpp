// SPDX-License-Identifier: MIT
//
// Readiness, the spawn queue and heartbeats, end to end.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_readiness)

using namespace clustervisor::test;

namespace {

// The line index of the first line containing `needle` (the line must be there).
std::size_t indexOf(const SupervisorRun& run, const std::string& needle) {
  const auto lines = run.lines();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find(needle) != std::string::npos) {
      return i;
    }
  }
  BOOST_FAIL("no line contains \"" << needle << "\"");
  return 0;
}

// When the process was forked, in milliseconds after boot (field 22 of /proc/<pid>/stat): the
// moment the supervisor started it, whatever exec and start-up cost afterwards.
long forkedAtMs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  for (int n = 3; n <= 22 && fields >> field; ++n) {
  }
  return std::atol(field.c_str()) * 1000 / ::sysconf(_SC_CLK_TCK);
}

// The probe's "hang" mode blocks the thread that sends its heartbeats once the test says so: its
// own executor (heartbeatFromExecutor), or with PROBE_THREADS = "io" the SDK's only thread.
void expectBlockedWorkerKilledAsHung(const std::string& environment) {
  TempDir dir;
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 1, "hang", environment,
                                        "[heartbeat]\ninterval = \"100ms\"\ntimeout = \"1s\"\n")));
  const pid_t hung = startedPid(*run, 0);
  run->waitForLine("[cluster 0] HANG running");
  dir.write("hang", "now\n");
  run->waitForLine("[cluster 0] HANG blocked");
  const auto exit = run->waitForLine("cluster 0 (pid " + std::to_string(hung) + ") was killed");
  BOOST_TEST(exit.find("was killed by SIGABRT after ") != std::string::npos, exit);
  BOOST_TEST(exit.find(", stopped as hung; restarting in ") != std::string::npos, exit);
  run->waitForLine("[cluster 0] HANG recovered");
}
}  // namespace

BOOST_AUTO_TEST_CASE(
    a_worker_that_never_becomes_ready_is_stopped_at_the_start_timeout_and_restarted) {
  // The second run must be ready within the timeout, from its spawn: a sanitizer's worker on a
  // busy machine can take more than a second to get there.
  const int timeoutSeconds = sanitized() ? 8 : 2;
  TempDir dir;
  auto run = SupervisorRun::run(dir.write(
      "bot.toml", probeConfig(dir, 2, "never-ready", "",
                              "[start]\ntimeout = \"" + std::to_string(timeoutSeconds) + "s\"\n")));
  const pid_t first = startedPid(*run, 1);
  run->waitForLine("clustervisor: error: cluster 1 (pid " + std::to_string(first) +
                       ") is not ready " + std::to_string(timeoutSeconds) +
                       "s after it was started (start.timeout; the worker must call "
                       "Cluster::ready(), or send READY); stopping it",
                   std::chrono::seconds(timeoutSeconds + 20));
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(first) +
                   ") was killed by SIGTERM after ");
  BOOST_TEST(run->waitForLine("cluster 1 (pid " + std::to_string(first) + ") was killed")
                 .find(", stopped for not becoming ready within ") != std::string::npos);
  // The second run calls ready().
  const pid_t second = startedPid(*run, 1, 1);
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(second) + ") is ready after ");
}

BOOST_AUTO_TEST_CASE(a_worker_that_never_connects_is_told_apart_at_the_start_timeout) {
  // A program that does not speak the protocol (no SDK): it never says hello.
  TempDir dir;
  auto run =
      SupervisorRun::run(dir.write("bot.toml",
                                   "command = [\"/bin/sh\", \"-c\", \"echo up; exec sleep 600\"]\n"
                                   "[start]\ntimeout = \"1s\"\n"));
  const auto line = run->waitForLine(") is not ready 1s after it was started (start.timeout; ");
  BOOST_TEST(line.find("clustervisor: error: cluster 0 (pid ") == 0u, line);
  BOOST_TEST(
      line.find("(start.timeout; it never connected: a worker uses the clustervisor SDK, or "
                "speaks clustervisor-protocol(7), on the socket it is given); stopping it") !=
          std::string::npos,
      line);
  run->signal(SIGTERM);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(ready_on_connect_counts_the_handshake_as_ready) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write(
      "bot.toml",
      probeConfig(dir, 1, "never-ready", "", "[start]\nready = \"connect\"\ntimeout = \"1s\"\n")));
  const pid_t pid = startedPid(*run, 0);
  run->waitForLine("clustervisor: cluster 0 (pid " + std::to_string(pid) +
                   ") is ready (start.ready = \"connect\")");
  run->waitForLine("[cluster 0] NOT READY");
  // Past the start timeout it is still the same worker.
  BOOST_TEST(!run->tryWaitForLine("is not ready", 1500ms).has_value(), run->transcript());
  BOOST_TEST(processExists(pid));
}

BOOST_AUTO_TEST_CASE(spawn_queue_waits_for_each_cluster_to_be_ready_before_starting_the_next) {
  TempDir dir;
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 3, "slow-ready", "PROBE_READY_MS = \"300,300,0\"",
                                        "[start]\nwait_for_ready = true\n")));
  for (int c = 0; c < 3; ++c) {
    waitReady(*run, c);
  }
  BOOST_TEST(indexOf(*run, "cluster 0 (pid") < indexOf(*run, "clustervisor: cluster 1 (pid"));
  BOOST_TEST(indexOf(*run, ") is ready after") < indexOf(*run, "clustervisor: cluster 1 (pid"));
  const auto ready1 = indexOf(
      *run, "clustervisor: cluster 1 (pid " + std::to_string(startedPid(*run, 1)) + ") is ready");
  BOOST_TEST(ready1 < indexOf(*run, "clustervisor: cluster 2 (pid"), run->transcript());
}

BOOST_AUTO_TEST_CASE(a_slow_cluster_does_not_wedge_the_spawn_queue) {
  TempDir dir;
  // Cluster 0 never becomes ready on its first run; the queue moves on at its start timeout.
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 2, "never-ready", "PROBE_ONLY = \"0\"",
                                        "[start]\nwait_for_ready = true\ntimeout = \"1s\"\n")));
  const pid_t slow = startedPid(*run, 0);
  const pid_t next = startedPid(*run, 1);
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(next) + ") is ready");
  BOOST_TEST(
      indexOf(*run, "cluster 0 (pid " + std::to_string(slow) + ") is not ready") <
          indexOf(*run, "clustervisor: cluster 1 (pid " + std::to_string(next) + ") started"),
      run->transcript());
}

BOOST_AUTO_TEST_CASE(spawn_queue_keeps_start_delay_between_starts) {
  TempDir dir;
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 3, "basic", "", "[start]\ndelay = \"300ms\"\n")));
  std::vector<long> starts;
  for (int c = 0; c < 3; ++c) {
    const pid_t pid = startedPid(*run, c);
    run->waitForLine("cluster " + std::to_string(c) + " (pid " + std::to_string(pid) +
                     ") is ready");
    starts.push_back(forkedAtMs(pid));
  }
  // The kernel keeps start times in clock ticks (10 ms): allow one.
  BOOST_TEST(starts[1] - starts[0] >= 290, run->transcript());
  BOOST_TEST(starts[2] - starts[1] >= 290, run->transcript());
}

BOOST_AUTO_TEST_CASE(a_frozen_worker_misses_its_heartbeats_and_is_killed_and_restarted) {
  TempDir dir;
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 2, "basic", "",
                                        "[heartbeat]\ninterval = \"100ms\"\ntimeout = \"1s\"\n"
                                        "[stop]\ntimeout = \"500ms\"\n")));
  const pid_t frozen = startedPid(*run, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(frozen) + ") is ready");
  // Alive while it runs: well past the timeout, nothing happens.
  BOOST_TEST(!run->tryWaitForLine("heartbeat.timeout", 1500ms).has_value(), run->transcript());
  BOOST_REQUIRE(::kill(frozen, SIGSTOP) == 0);
  run->waitForLine("clustervisor: error: cluster 1 (pid " + std::to_string(frozen) +
                   ") sent no heartbeat for 1s (heartbeat.timeout): hung; sending SIGABRT, "
                   "SIGKILL after 500ms");
  // A stopped process cannot take SIGABRT; SIGKILL ends it.
  const auto exit = run->waitForLine("cluster 1 (pid " + std::to_string(frozen) + ") was killed");
  BOOST_TEST(exit.find("was killed by SIGKILL after ") != std::string::npos, exit);
  BOOST_TEST(exit.find(", stopped as hung; restarting in ") != std::string::npos, exit);
  const pid_t second = startedPid(*run, 1, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(second) + ") is ready");
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_worker_whose_executor_blocks_is_hung_when_it_heartbeats_from_the_executor) {
  expectBlockedWorkerKilledAsHung("");
}

BOOST_AUTO_TEST_CASE(a_listener_that_blocks_the_io_thread_stops_the_heartbeats_and_is_hung) {
  expectBlockedWorkerKilledAsHung(kIoThread);
}

BOOST_AUTO_TEST_CASE(a_listener_that_sends_then_blocks_keeps_the_heartbeats_going) {
  TempDir dir;
  // Cluster 0's listener blocks three times heartbeat.timeout, right after a send of its own.
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 2, "send-then-block", "PROBE_BLOCK_MS = \"3000\"",
                                        "[heartbeat]\ninterval = \"100ms\"\ntimeout = \"1s\"\n")));
  for (int c = 0; c < 2; ++c) {
    waitReady(*run, c);
  }
  dir.write("block", "now\n");
  run->waitForLine("[cluster 0] BLOCKING");
  run->waitForLine("[cluster 0] UNBLOCKED");
  run->waitForLine("[cluster 1] RECV marker from=0 data={\"sentBy\":\"listener\"}");
  run->waitForLine("[cluster 1] RECV marker from=0 data={\"sentBy\":\"main\"}");
  // What it sent went out while it was still blocked, with the heartbeats, and so did what the
  // main thread sent meanwhile.
  const auto unblocked = indexOf(*run, "[cluster 0] UNBLOCKED");
  BOOST_TEST(
      indexOf(*run, "[cluster 1] RECV marker from=0 data={\"sentBy\":\"listener\"}") < unblocked,
      run->transcript());
  BOOST_TEST(indexOf(*run, "[cluster 1] RECV marker from=0 data={\"sentBy\":\"main\"}") < unblocked,
             run->transcript());
  BOOST_TEST(run->linesContaining("was killed").empty(), run->transcript());
  BOOST_TEST(run->linesContaining("hung").empty(), run->transcript());
}

BOOST_AUTO_TEST_CASE(stopping_while_clusters_wait_in_the_spawn_queue_starts_none_of_them) {
  TempDir dir;
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 3, "basic", "", "[start]\ndelay = \"1h\"\n")));
  const pid_t first = startedPid(*run, 0);
  run->waitForLine("cluster 0 (pid " + std::to_string(first) + ") is ready");
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  run->waitForLine("received SIGTERM; stopping 1 worker ");
  BOOST_TEST(run->linesContaining("clustervisor: cluster 1 (pid").empty(), run->transcript());
  BOOST_TEST(run->linesContaining("clustervisor: cluster 2 (pid").empty(), run->transcript());
}

BOOST_AUTO_TEST_SUITE_END()
