// SPDX-License-Identifier: MIT
//
// Spawning, restarting and stopping, end to end.
#define BOOST_TEST_MODULE e2e_lifecycle
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <fstream>

#include "harness.hpp"

using namespace clustervisor::test;

namespace {
std::unique_ptr<SupervisorRun> start(const TempDir& dir, int clusters, const std::string& mode,
                                     const std::string& environment = "") {
  return SupervisorRun::run(dir.write("bot.toml", probeConfig(dir, clusters, mode, environment)));
}
}  // namespace

BOOST_AUTO_TEST_CASE(workers_get_their_environment_and_only_fds_0_to_3) {
  TempDir dir;
  auto run = start(dir, 3, "basic", "PROBE_EXTRA = \"from-config\"");
  for (int c = 0; c < 3; ++c) {
    const auto id = std::to_string(c);
    run->waitForLine("[cluster " + id + "] START id=" + id + " pid=");
    const auto line = run->linesContaining("[cluster " + id + "] START")[0];
    BOOST_TEST(line.find(" total=3 fd=3 protocol=1 fds=0,1,2,3 extra=from-config pgid-is-pid=1") !=
                   std::string::npos,
               line);
  }
}

BOOST_AUTO_TEST_CASE(crashed_worker_restarts_with_the_same_id_and_a_new_pid) {
  TempDir dir;
  auto run = start(dir, 3, "basic");
  const pid_t first = startedPid(*run, 1);
  const pid_t other0 = startedPid(*run, 0);
  const pid_t other2 = startedPid(*run, 2);
  run->waitForLine("cluster 1 (pid " + std::to_string(first) + ") connected");
  BOOST_REQUIRE(::kill(first, SIGKILL) == 0);
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(first) +
                   ") was killed by SIGKILL (possibly out of memory) after ");
  const pid_t second = startedPid(*run, 1, 1);
  BOOST_TEST(second != first);
  BOOST_TEST(
      run->waitForLine("[cluster 1] START id=1 pid=" + std::to_string(second)).find(" total=3 ") !=
      std::string::npos);
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(second) +
                   ") started (restart 1)");
  BOOST_TEST(waitGone(first));
  // Nobody else was touched.
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
  BOOST_TEST(run->linesContaining("START id=2").size() == 1u);
  BOOST_TEST(processExists(other0));
  BOOST_TEST(processExists(other2));
}

BOOST_AUTO_TEST_CASE(worker_that_exits_on_its_own_is_restarted_and_the_exit_status_logged) {
  TempDir dir;
  auto run = start(dir, 2, "crash", "PROBE_CRASH = \"0\"");
  const pid_t first = startedPid(*run, 0);
  run->waitForLine("clustervisor: cluster 0 (pid " + std::to_string(first) +
                   ") exited with status 3 after ");
  BOOST_TEST(startedPid(*run, 0, 1) != first);
}

BOOST_AUTO_TEST_CASE(malformed_frame_costs_only_the_worker_that_sent_it) {
  TempDir dir;
  auto run = start(dir, 3, "restart-hello", "PROBE_RAW = \"1:garbage\"");
  // The worker may be stopped before it can say it sent the garbage: wait for the verdict.
  const auto error =
      run->waitForLine("protocol error: unknown frame type; disconnected, restarting it");
  BOOST_TEST(error.find("clustervisor: error: cluster 1 (pid ") == 0u, error);
  // It comes back and events flow between everyone again.
  run->waitForLine("[cluster 1] START id=1");
  run->waitForLine("[cluster 0] RECV back from=1");
  run->waitForLine("[cluster 2] RECV back from=1");
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
  BOOST_TEST(run->linesContaining("START id=2").size() == 1u);
  BOOST_TEST(run->linesContaining("protocol error").size() == 1u);
}

BOOST_AUTO_TEST_CASE(oversize_frame_costs_only_the_worker_that_sent_it) {
  TempDir dir;
  auto run = start(dir, 3, "restart-hello", "PROBE_RAW = \"2:oversize\"");
  const auto error = run->waitForLine("protocol error: frame larger than the configured limit");
  BOOST_TEST(error.find("clustervisor: error: cluster 2 (pid ") == 0u, error);
  BOOST_TEST(error.find("(4294967295 > ") != std::string::npos, error);
  run->waitForLine("[cluster 0] RECV back from=2");
  run->waitForLine("[cluster 1] RECV back from=2");
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
  BOOST_TEST(run->linesContaining("START id=1").size() == 1u);
}

BOOST_AUTO_TEST_CASE(sigterm_stops_every_worker_reaps_them_and_exits_zero) {
  TempDir dir;
  auto run = start(dir, 4, "basic");
  std::vector<pid_t> pids;
  for (int c = 0; c < 4; ++c) {
    pids.push_back(startedPid(*run, c));
    run->waitForLine("cluster " + std::to_string(c) + " (pid " + std::to_string(pids.back()) +
                     ") is ready");
  }
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  for (const pid_t pid : pids) {
    BOOST_TEST(!processExists(pid), "worker " << pid << " outlived the supervisor");
  }
  BOOST_TEST(run->linesContaining("; stopped").size() == 4u);
  BOOST_TEST(run->linesContaining("clustervisor: all workers stopped").size() == 1u);
  BOOST_TEST(run->linesContaining("started (restart").empty(), run->transcript());
}

BOOST_AUTO_TEST_CASE(sigint_stops_like_sigterm) {
  TempDir dir;
  auto run = start(dir, 2, "basic");
  const pid_t pid = startedPid(*run, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(pid) + ") is ready");
  run->signal(SIGINT);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0);
  BOOST_TEST(!processExists(pid));
  run->waitForLine("clustervisor: received SIGINT; stopping 2 workers");
}

BOOST_AUTO_TEST_CASE(missing_program_is_reported_with_its_path_and_retried) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write("bot.toml",
                                          "command = [\"./no-such-worker\"]\nclusters = 1\n"
                                          "[restart]\ndelay = \"200ms\"\n"));
  const std::string expected =
      "clustervisor: error: cluster 0: cannot start \"" + (dir.path() / "no-such-worker").string() +
      "\" in \"" + dir.path().string() + "\": No such file or directory; retrying in 200ms";
  run->waitForLines(expected, 2);
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0);
}

BOOST_AUTO_TEST_CASE(worker_exits_when_the_supervisor_is_killed) {
  TempDir dir;
  auto run = start(dir, 3, "basic");
  std::vector<pid_t> pids;
  for (int c = 0; c < 3; ++c) {
    pids.push_back(startedPid(*run, c));
  }
  run->signal(SIGKILL);
  BOOST_REQUIRE(run->waitExit(30s).has_value());
  for (const pid_t pid : pids) {
    BOOST_TEST(waitGone(pid, 20s), "worker " << pid << " outlived a killed supervisor");
  }
}

BOOST_AUTO_TEST_CASE(worker_ignoring_the_stop_signal_is_killed_at_the_stop_timeout) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write(
      "bot.toml",
      "command = [\"/bin/sh\", \"-c\", \"trap '' TERM; echo trapped; while :; do sleep 1; done\"]\n"
      "clusters = 2\n[stop]\ntimeout = \"300ms\"\n"));
  run->waitForLines("] trapped", 2);
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0);
  BOOST_TEST(run->linesContaining("did not exit within 300ms of SIGTERM; sending SIGKILL").size() ==
             2u);
  BOOST_TEST(run->linesContaining("was killed by SIGKILL; stopped").size() == 2u,
             run->transcript());
}

BOOST_AUTO_TEST_CASE(second_signal_kills_every_worker_at_once) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write("bot.toml",
                                          "command = [\"/bin/sh\", \"-c\", \"trap '' TERM INT; "
                                          "echo trapped; while :; do sleep 1; done\"]\n"
                                          "clusters = 2\n[stop]\ntimeout = \"1h\"\n"));
  run->waitForLines("] trapped", 2);
  run->signal(SIGINT);
  run->waitForLine("clustervisor: received SIGINT; stopping 2 workers");
  // A repeat within 200 ms counts as the same Ctrl-C; keep asking until one counts as a second.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!run->hasLine("received SIGINT again; killing every worker now") &&
         std::chrono::steady_clock::now() < deadline) {
    run->signal(SIGINT);
    run->tryWaitForLine("received SIGINT again; killing every worker now", 100ms);
  }
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0);
  run->waitForLine("received SIGINT again; killing every worker now");
  BOOST_TEST(run->linesContaining("was killed by SIGKILL; stopped").size() == 2u);
}

BOOST_AUTO_TEST_CASE(every_worker_killed_at_once_is_restarted_and_none_is_left_a_zombie) {
  TempDir dir;
  auto run = start(dir, 4, "basic");
  std::vector<pid_t> first;
  for (int c = 0; c < 4; ++c) {
    first.push_back(startedPid(*run, c));
  }
  for (const pid_t pid : first) {
    ::kill(pid, SIGKILL);
  }
  for (int c = 0; c < 4; ++c) {
    BOOST_TEST(startedPid(*run, c, 1) != first[static_cast<std::size_t>(c)]);
  }
  for (const pid_t pid : first) {
    BOOST_TEST(waitGone(pid), "pid " << pid << " still exists (zombie?)");
  }
  BOOST_TEST(zombieChildren(run->pid()).empty());
}

BOOST_AUTO_TEST_CASE(stop_is_not_held_up_by_a_detached_descendant_keeping_an_old_pipe_open) {
  TempDir dir;
  // The first run leaves a setsid'd process holding its stdout and stderr (and waits until it
  // has left the process group), then exits; the second run stays. Stopping must still end
  // within the output-drain bound although that old pipe never reaches end of file.
  const std::string again = (dir.path() / "again").string();
  const std::string detached = (dir.path() / "detached").string();
  const std::string script =
      "if [ -e " + again + " ]; then echo second; exec sleep 600; fi; touch " + again +
      "; setsid sh -c 'echo $$ > " + detached + "; exec sleep 30' & while [ ! -s " + detached +
      " ]; do sleep 0.01; done; echo first; exit 1";
  auto run =
      SupervisorRun::run(dir.write("bot.toml", "command = [\"/bin/sh\", \"-c\", \"" + script +
                                                   "\"]\n[restart]\ndelay = \"100ms\"\n"));
  run->waitForLine("[cluster 0] first");
  run->waitForLine("[cluster 0] second");
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0);
  run->waitForLine("clustervisor: all workers stopped");
  // The detached process is the test's own leftover: end it.
  std::ifstream pidFile(detached);
  pid_t leftover = 0;
  if (pidFile >> leftover && leftover > 0) {
    ::kill(leftover, SIGKILL);
  }
}
