// SPDX-License-Identifier: MIT
//
// The restart policy end to end: backoff, its reset after a stable run, the crash-loop limit and
// what follows it, policies that do not restart.
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_restart)

using namespace clustervisor::test;

namespace {

// The probe in mode "exit": every run of every cluster lives as PROBE_PLAN says, then exits 3.
std::unique_ptr<SupervisorRun> startExiting(const TempDir& dir, int clusters,
                                            const std::string& plan, const std::string& restart) {
  return SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, clusters, "exit", "PROBE_PLAN = \"" + plan + "\"",
                                        "[restart]\n" + restart)));
}

// The backoff waits announced for `cluster`, in order, from its exit lines.
std::vector<long> announcedDelays(const SupervisorRun& run, int cluster) {
  std::vector<long> delays;
  const std::string who = "clustervisor: cluster " + std::to_string(cluster) + " (pid ";
  for (const auto& line : run.lines()) {
    const auto at = line.find("; restarting in ");
    if (line.rfind(who, 0) == 0 && at != std::string::npos) {
      delays.push_back(delayMs(line.substr(at + 16)));
    }
  }
  return delays;
}

}  // namespace

BOOST_AUTO_TEST_CASE(crash_loop_marks_the_cluster_failed_and_the_others_keep_running) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write(
      "bot.toml", probeConfig(dir, 2, "exit", "PROBE_PLAN = \"0\", PROBE_ONLY = \"1\"",
                              "[restart]\ndelay = \"50ms\"\nmax_delay = \"10s\"\nlimit = 4\n"
                              "window = \"1m\"\nretry_failed_after = \"0s\"\n")));
  const auto failed = run->waitForLine("(restart.limit, restart.window); cluster 1 failed", 30s);
  BOOST_TEST(failed.find("clustervisor: error: cluster 1 (pid ") == 0u, failed);
  BOOST_TEST(failed.find("exited with status 3 after ") != std::string::npos, failed);
  BOOST_TEST(failed.find("(4 restarts); crash loop: more than 4 restarts within 1m of run time") !=
                 std::string::npos,
             failed);
  // Each wait was longer than the one before: 50ms doubling, with jitter.
  const auto delays = announcedDelays(*run, 1);
  BOOST_REQUIRE(delays.size() == 4u);
  BOOST_TEST(delays[0] >= 37);
  BOOST_TEST(delays[0] <= 50);
  for (std::size_t i = 1; i < delays.size(); ++i) {
    BOOST_TEST(delays[i] > delays[i - 1], run->transcript());
  }
  // The other cluster keeps running, and a failed cluster is not started again.
  const pid_t survivor = startedPid(*run, 0);
  BOOST_TEST(processExists(survivor));
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  BOOST_TEST(countLines(*run, {"clustervisor: cluster 1 (pid ", ") started"}) == 5u,
             run->transcript());
  BOOST_TEST(countLines(*run, {"clustervisor: cluster 0 (pid ", ") started"}) == 1u);
}

BOOST_AUTO_TEST_CASE(crash_loop_with_stop_supervisor_stops_everything_and_exits_69) {
  TempDir dir;
  auto run = startExiting(dir, 2, "0",
                          "delay = \"20ms\"\nlimit = 2\non_crash_loop = \"stop-supervisor\"\n");
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 69, run->transcript());
  const auto stopping =
      run->waitForLine("is in a crash loop and restart.on_crash_loop is \"stop-supervisor\"; ");
  // Not begun by a signal: the first stop signal would be taken as systemd's after ExecStop=.
  // (The other cluster may be between two of its own crashes then, with no worker running.)
  BOOST_TEST((stopping.ends_with("; send a stop signal twice to kill at once)") ||
              stopping.ends_with("; no worker is running")),
             stopping);
  BOOST_TEST(run->hasLine("clustervisor: all workers stopped"));
}

BOOST_AUTO_TEST_CASE(backoff_resets_after_a_stable_run) {
  TempDir dir;
  // Three quick crashes (the backoff grows), one run ready well past stable_after, then quick
  // again. The margins leave room for slow exits in sanitizer builds (up to a second).
  auto run = startExiting(dir, 1, "0,0,0,3500,0",
                          "delay = \"100ms\"\nmax_delay = \"10s\"\nstable_after = \"2500ms\"\n"
                          "limit = 0\n");
  run->waitForLines("; restarting in ", 5, 60s);
  const auto delays = announcedDelays(*run, 0);
  BOOST_REQUIRE(delays.size() >= 5u);
  BOOST_TEST(delays[1] > delays[0], run->transcript());
  BOOST_TEST(delays[2] > delays[1], run->transcript());
  // The fourth run was ready for 3.5 s >= stable_after: its wait is back at the first step, and
  // the backoff grows again from there.
  BOOST_TEST(delays[3] >= 75, run->transcript());
  BOOST_TEST(delays[3] <= 100, run->transcript());
  BOOST_TEST(delays[4] > delays[3], run->transcript());
}

BOOST_AUTO_TEST_CASE(a_cluster_that_crashed_stably_for_a_while_still_fails_when_it_starts_looping) {
  TempDir dir;
  // Runs ready for 3 s are stable (stable_after 2.5s) and too long to fit limit + 1 = 4 of them
  // into a 5 s window of run time; then every run crashes at once (well under a second each,
  // even in sanitizer builds), and 4 of those fit.
  auto run = startExiting(dir, 1, "3000,3000,3000,3000,0",
                          "delay = \"20ms\"\nstable_after = \"2500ms\"\nlimit = 3\n"
                          "window = \"5s\"\nretry_failed_after = \"0s\"\n");
  run->waitForLine("cluster 0 failed", 60s);
  // The stable crashes did not fail it; the loop did, after at most limit + 1 quick crashes.
  BOOST_TEST(run->linesContaining("RUN 4 lives 3000ms").size() == 1u, run->transcript());
  BOOST_TEST(run->linesContaining("RUN 9 ").empty(), run->transcript());
  // Nothing is left to run: the supervisor ends, non-zero because a cluster failed.
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 69, run->transcript());
  run->waitForLine("no cluster is running or will be restarted (cluster 0 did not end in success)");
}

BOOST_AUTO_TEST_CASE(a_failed_cluster_is_retried_after_retry_failed_after) {
  TempDir dir;
  auto run = startExiting(dir, 1, "0,0,0,3600000",
                          "delay = \"20ms\"\nlimit = 1\nretry_failed_after = \"300ms\"\n");
  run->waitForLine("cluster 0 failed, retrying in ");
  run->waitForLine(
      "clustervisor: cluster 0: retrying the failed cluster with a fresh restart count");
  run->waitForLine("RUN 4 lives 3600000ms");
}

BOOST_AUTO_TEST_CASE(on_failure_does_not_restart_a_successful_exit_and_the_supervisor_ends) {
  TempDir dir;
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 2, "exit", "PROBE_PLAN = \"0\", PROBE_STATUS = \"0\"",
                                        "[restart]\npolicy = \"on-failure\"\n")));
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  BOOST_TEST(countLines(*run, {"exited with status 0 after ",
                               "; not restarted (restart.policy = \"on-failure\", a successful "
                               "exit)"}) == 2u,
             run->transcript());
  BOOST_TEST(run->linesContaining("RUN 2 ").empty());
  run->waitForLine("no cluster is running or will be restarted; no worker is running");
}

BOOST_AUTO_TEST_CASE(on_failure_restarts_an_exit_status_not_listed_as_success) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write(
      "bot.toml", probeConfig(dir, 1, "exit", "PROBE_PLAN = \"0,3600000\", PROBE_STATUS = \"4\"",
                              "[restart]\npolicy = \"on-failure\"\nsuccess_exit_codes = [0, 3]\n"
                              "delay = \"20ms\"\n")));
  run->waitForLine("exited with status 4 after ");
  run->waitForLine("RUN 2 lives 3600000ms");
}

BOOST_AUTO_TEST_CASE(never_policy_leaves_a_crashed_cluster_exited_and_the_supervisor_fails) {
  TempDir dir;
  auto run =
      SupervisorRun::run(dir.write("bot.toml", probeConfig(dir, 1, "exit", "PROBE_PLAN = \"0\"",
                                                           "[restart]\npolicy = \"never\"\n")));
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 69, run->transcript());
  run->waitForLine("no cluster is running or will be restarted (cluster 0 did not end in success)");
  run->waitForLine("exited with status 3 after ");
  run->waitForLine("; not restarted (restart.policy = \"never\")");
  BOOST_TEST(run->linesContaining("RUN 2 ").empty());
}

BOOST_AUTO_TEST_CASE(back_to_back_restarts_leak_no_fds_no_memory_and_no_zombies) {
  TempDir dir;
  // Each cluster's first worker lives until the test kills it; the next 1000 exit as soon as
  // they are ready, restarted without backoff or crash-loop limit; the one after lives on.
  // (A sanitized worker takes ~50 ms to start: 100 restarts there; fds still count.)
  const int restarts = sanitized() ? 100 : 1000;
  std::string plan = "3600000";
  for (int i = 0; i < restarts; ++i) {
    plan += ",0";
  }
  plan += ",3600000";
  const auto config = dir.write(
      "bot.toml", probeConfig(dir, 2, "exit", "PROBE_PLAN = \"" + plan + "\"",
                              "[restart]\ndelay = \"0s\"\nmax_delay = \"0s\"\nlimit = 0\n"));
  auto run = SupervisorRun::run(config);
  run->waitForLines("RUN 1 lives", 2);
  const pid_t first[] = {startedPid(*run, 0), startedPid(*run, 1)};
  const auto before = usageOf(run->pid());
  for (const pid_t pid : first) {
    BOOST_REQUIRE(::kill(pid, SIGKILL) == 0);
  }
  // Under the suite's own time limit (180 s), so a slow run fails here, with the transcript.
  run->waitForLines("RUN " + std::to_string(restarts + 2) + " lives", 2, 150s);
  const auto after = usageWhenFdsAre(run->pid(), before.fds);
  BOOST_TEST_MESSAGE("supervisor before: " << before.fds << " fds, " << before.rssKiB
                                           << " KiB; after " << 2 * (restarts + 1) << " restarts: "
                                           << after.fds << " fds, " << after.rssKiB << " KiB");
  BOOST_TEST(after.fds == before.fds);
  if (!sanitized()) {
    BOOST_TEST(after.rssKiB - before.rssKiB < 2048);
  }
  BOOST_TEST(zombieChildren(run->pid()).empty());
  const auto status = statusOf(config);
  for (const auto& cluster : status.at("clusters").as_array()) {
    BOOST_TEST(cluster.as_object().at("restarts").as_int64() == restarts + 1);
  }
}

BOOST_AUTO_TEST_SUITE_END()
