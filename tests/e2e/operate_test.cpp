// SPDX-License-Identifier: MIT
//
// Operating a running bot, end to end: `clustervisor reload` and SIGHUP (live scaling, invalid
// files, settings for new workers, serialized reloads, no leaks), rolling restarts (order,
// readiness gating, batches, halting), the control.socket key and the metrics endpoint.
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_operate)

using namespace clustervisor::test;
namespace json = boost::json;

namespace {

bool clusterOutdated(const json::object& status, std::size_t id) {
  return status.at("clusters").as_array().at(id).as_object().at("outdated").as_bool();
}

// Index of the first line at or after `from` that contains every needle; fails the test when
// none arrives in time.
std::size_t lineIndex(SupervisorRun& run, std::initializer_list<std::string> needles,
                      std::size_t from = 0, std::chrono::milliseconds timeout = 20s) {
  std::vector<std::string> all(needles);
  std::size_t index = 0;
  std::string what;
  for (const auto& needle : all) {
    what += (what.empty() ? "" : " + ") + needle;
  }
  run.waitForLine(
      [&](const std::string& line) {
        for (const auto& needle : all) {
          if (line.find(needle) == std::string::npos) {
            return false;
          }
        }
        return true;
      },
      what, timeout, from, &index);
  return index;
}

void touch(const TempDir& dir, const std::string& name) {
  std::ofstream(dir.path() / name) << "1\n";
}

// The value of "key=" in a probe line ("PONG id=2 round=1 total=4 ticks=17").
long field(const std::string& line, const std::string& key) {
  const auto at = line.find(" " + key + "=");
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "no " << key << " in: " << line);
  return std::atol(line.c_str() + at + key.size() + 2);
}

// A bot whose cluster 0 runs the probe (mode "basic") and whose other clusters run the shell
// command `others`; `extra` is appended (tables such as [start]).
std::filesystem::path writeMixedBot(const TempDir& dir, int clusters, const std::string& others,
                                    const std::string& extra) {
  return dir.write("bot.toml",
                   R"(command = ["/bin/sh", "-c", 'if [ "$CLUSTERVISOR_CLUSTER_ID" = 0 ]; )"
                   R"(then exec "$0"; fi; )" +
                       others + "', \"" + probeWorkerBinary().string() +
                       "\"]\nclusters = " + std::to_string(clusters) +
                       "\nenvironment = { PROBE_MODE = \"basic\", PROBE_DIR = \"" +
                       dir.path().string() + "\" }\n" + extra);
}

}  // namespace

BOOST_AUTO_TEST_CASE(reload_scales_4_to_6_to_3_with_events_flowing_and_totals_updated) {
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 4, "scale"));
  auto run = SupervisorRun::run(config);
  std::map<int, pid_t> pids;
  for (int c = 0; c < 4; ++c) {
    waitReady(*run, c);
    pids[c] = startedPid(*run, c);
  }
  touch(dir, "round-1");
  long ticksAtRound1 = 0;
  for (int c = 1; c < 4; ++c) {
    const auto pong = run->waitForLine("PONG id=" + std::to_string(c) + " round=1 ");
    BOOST_TEST(field(pong, "total") == 4);
    if (c == 1) {
      ticksAtRound1 = field(pong, "ticks");
    }
  }

  // 4 -> 6: two clusters start; the four that stay keep their processes and learn the total.
  dir.write("bot.toml", probeConfig(dir, 6, "scale"));
  auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(reload.output.find("reloaded: clusters\n") == 0u, reload.output);
  BOOST_TEST(reload.output.find("clusters: 4 -> 6; started 4, 5\n") != std::string::npos,
             reload.output);
  for (int c = 0; c < 4; ++c) {
    run->waitForLine("TOTAL id=" + std::to_string(c) + " total=6 old=4");
  }
  for (int c = 4; c < 6; ++c) {
    waitReady(*run, c);
    BOOST_TEST(run->waitForLine("START id=" + std::to_string(c) + " ").find(" total=6 ") !=
               std::string::npos);
  }
  // The round's broadcast reaches the new clusters as well as the old ones.
  touch(dir, "round-2");
  long ticksBefore = 0;
  for (int c = 1; c < 6; ++c) {
    const auto pong = run->waitForLine("PONG id=" + std::to_string(c) + " round=2 ");
    BOOST_TEST(field(pong, "total") == 6);
    if (c == 1) {
      ticksBefore = field(pong, "ticks");
      BOOST_TEST(ticksBefore > ticksAtRound1);  // events kept flowing through the reload
    }
  }

  // 6 -> 3: three clusters stop; the rest keep running and learn the total.
  const auto clustersBefore = statusOf(config).at("clusters").as_array();
  dir.write("bot.toml", probeConfig(dir, 3, "scale"));
  reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(reload.output.find("clusters: 6 -> 3; stopped 3..5\n") != std::string::npos,
             reload.output);
  // The answer came once the removed clusters were gone (their exit lines, written by the
  // output thread, may follow the answer by a moment).
  for (int c = 3; c < 6; ++c) {
    const pid_t removed = startedPid(*run, c);
    BOOST_TEST(!processExists(removed), "removed worker " << removed << " still runs");
    const std::string who =
        "cluster " + std::to_string(c) + " (pid " + std::to_string(removed) + ") ";
    run->waitForLine(
        [&](const std::string& line) {
          return line.find(who) != std::string::npos &&
                 line.find(", removed by a reload; stopped") != std::string::npos;
        },
        "the exit line of " + who);
    BOOST_TEST(countLines(*run, {who, ", removed by a reload; stopped"}) == 1u);
  }
  for (int c = 0; c < 3; ++c) {
    run->waitForLine("TOTAL id=" + std::to_string(c) + " total=3 old=6");
  }
  touch(dir, "round-3");
  for (int c = 1; c < 3; ++c) {
    const auto pong = run->waitForLine("PONG id=" + std::to_string(c) + " round=3 ");
    BOOST_TEST(field(pong, "total") == 3);
    if (c == 1) {
      BOOST_TEST(field(pong, "ticks") > ticksBefore);  // events kept flowing
    }
  }
  // Nobody that stayed was restarted, and the broadcast order held throughout.
  for (int c = 0; c < 3; ++c) {
    BOOST_TEST(countLines(*run, {"START id=" + std::to_string(c) + " "}) == 1u);
    BOOST_TEST(processExists(pids[c]));
  }
  BOOST_TEST(!run->hasLine("ORDER broken"), run->transcript());
  const auto status = statusOf(config);
  BOOST_TEST(status.at("clusters").as_array().size() == 3u);
  BOOST_TEST(status.at("totals").as_object().at("clusters").as_int64() == 3);
  BOOST_TEST(status.at("reloads").as_int64() == 2);
  // The totals count what the removed clusters relayed too: at least what the clusters listed
  // now count, and what clusters 3 to 5 counted before they were removed.
  const auto& totals = status.at("totals").as_object();
  for (const char* key : {"events_in", "events_out"}) {
    std::int64_t listed = 0;
    for (const auto& cluster : status.at("clusters").as_array()) {
      listed += cluster.as_object().at(key).to_number<std::int64_t>();
    }
    std::int64_t removed = 0;
    for (std::size_t c = 3; c < 6; ++c) {
      removed += clustersBefore.at(c).as_object().at(key).to_number<std::int64_t>();
    }
    if (std::string(key) == "events_out") {
      BOOST_TEST(removed > 0);  // they got the broadcasts of round 2
    }
    BOOST_TEST(totals.at(key).to_number<std::int64_t>() >= listed + removed, key);
  }
  run->signal(SIGTERM);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(a_reload_that_moves_shards_never_gives_a_shard_two_workers) {
  // 2 clusters with shards 0,1 and 2,3; then 4 clusters, one shard each. No worker may start with
  // a shard while a worker of another cluster still has it (two gateway sessions of a shard).
  TempDir dir;
  const std::string shards = "[shards]\ntotal = 4\n";
  const auto config = dir.write("bot.toml", probeConfig(dir, 2, "basic", "", shards));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  BOOST_TEST(run->waitForLine("START id=0 ").find(" shards=0,1 ") != std::string::npos);
  BOOST_TEST(run->waitForLine("START id=1 ").find(" shards=2,3 ") != std::string::npos);
  const pid_t old0 = startedPid(*run, 0);
  const pid_t old1 = startedPid(*run, 1);
  const std::size_t before = run->lines().size();
  dir.write("bot.toml", probeConfig(dir, 4, "basic", "", shards));
  const auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(reload.output.find("clusters: 2 -> 4; started 2, 3\n") != std::string::npos,
             reload.output);
  BOOST_TEST(reload.output.find("shards moved: stopped 0, 1, started again") != std::string::npos,
             reload.output);
  // The new split was applied at once, not left for new workers.
  BOOST_TEST(reload.output.find("changed for workers") == std::string::npos, reload.output);
  const auto exitLine = [&](int cluster, pid_t pid) {
    return lineIndex(*run,
                     {"cluster " + std::to_string(cluster) + " (pid " + std::to_string(pid) + ") ",
                      "moved its shards; starting with its new shards once every worker that "
                      "held moved shards has stopped"},
                     before);
  };
  const std::size_t gone0 = exitLine(0, old0);
  const std::size_t gone1 = exitLine(1, old1);
  // Every new worker, with its one shard, starts after both old workers have exited.
  for (int c = 0; c < 4; ++c) {
    const std::string id = std::to_string(c);
    const std::size_t started =
        lineIndex(*run, {"[cluster " + id + "] START id=" + id + " "}, before);
    BOOST_TEST(started > std::max(gone0, gone1), "cluster " << c << " started too early:\n"
                                                            << run->transcript());
    BOOST_TEST(run->lines()[started].find(" shards=" + id + " ") != std::string::npos,
               run->lines()[started]);
  }
  for (int c = 0; c < 4; ++c) {
    lineIndex(*run, {"clustervisor: cluster " + std::to_string(c) + " (pid ", ") is ready after "},
              before);
  }
  // The line that says the new split starts comes before the starts it announces.
  const std::size_t split = lineIndex(*run,
                                      {"clustervisor: reload: the workers that held the moved "
                                       "shards have stopped; starting clusters 0..3 with the new "
                                       "shard split"},
                                      before);
  for (int c = 0; c < 4; ++c) {
    const std::size_t spawned = lineIndex(
        *run, {"clustervisor: cluster " + std::to_string(c) + " (pid ", ") started"}, before);
    BOOST_TEST(spawned > split, "cluster " << c << ":\n" << run->transcript());
  }
  BOOST_TEST(!processExists(old0));
  BOOST_TEST(!processExists(old1));
  // Nothing is left out of date: the moved clusters run with the new split.
  const auto status = statusOf(config);
  for (const auto& cluster : status.at("clusters").as_array()) {
    BOOST_TEST(!cluster.as_object().at("outdated").as_bool());
  }
  // A new total is applied the same way, and said to be.
  dir.write("bot.toml", probeConfig(dir, 4, "basic", "", "[shards]\ntotal = 8\n"));
  const auto retotal = runCli({"reload", config.string()});
  BOOST_TEST(retotal.status == 0, retotal.output);
  BOOST_TEST(retotal.output.find(
                 "reloaded: shards.total\nshards moved: stopped 0..3, started again") == 0u,
             retotal.output);
  run->signal(SIGTERM);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(a_worker_started_before_a_reload_that_raised_max_payload_takes_larger_events) {
  TempDir dir;
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 1, "big", "", "[events]\nmax_payload = \"4KiB\"\n"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  const pid_t first = startedPid(*run, 0);
  // Cluster 1 starts with the new limit and sends an event of 64 KiB to cluster 0, whose
  // WELCOME said 4 KiB.
  dir.write("bot.toml", probeConfig(dir, 2, "big", "", "[events]\nmax_payload = \"64KiB\"\n"));
  const auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  run->waitForLine("[cluster 1] SENT big 65536 ok");
  run->waitForLine("[cluster 0] RECV big from=1 bytes=65536");
  BOOST_TEST(processExists(first));
  BOOST_TEST(countLines(*run, {"START id=0"}) == 1u, run->transcript());
}

BOOST_AUTO_TEST_CASE(an_invalid_reload_keeps_the_running_config_and_reports_every_error) {
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 2, "basic"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  dir.write("bot.toml",
            probeConfig(dir, 0, "basic", "", "[stop]\ntimeout = \"5s\"\nsignal = \"SIGFOO\"\n"));
  const auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 1, reload.output);
  // Every error, each with file:line:column, and the verdict.
  BOOST_TEST(reload.output.find(config.string() + ":2:12: clusters: ") != std::string::npos,
             reload.output);
  BOOST_TEST(reload.output.find(": stop.signal: ") != std::string::npos, reload.output);
  BOOST_TEST(reload.output.find("2 errors in " + config.string()) != std::string::npos,
             reload.output);
  BOOST_TEST(
      reload.output.find("reload refused, the running configuration stays") != std::string::npos,
      reload.output);
  // Each line is marked as an error, the CLI's and the supervisor's log alike.
  std::istringstream lines(reload.output);
  for (std::string line; std::getline(lines, line);) {
    BOOST_TEST(line.starts_with("clustervisor: error: "), line);
  }
  run->waitForLine("clustervisor: error: 2 errors in " + config.string() +
                   "; reload refused, the running configuration stays");
  BOOST_TEST(run->hasLine("clustervisor: error: " + config.string() + ":2:12: clusters: "));
  auto status = statusOf(config);
  BOOST_TEST(status.at("clusters").as_array().size() == 2u);
  BOOST_TEST(status.at("reloads").as_int64() == 0);
  BOOST_TEST(countLines(*run, {"START id="}) == 2u);  // nothing restarted

  // A command whose program is missing is refused too.
  dir.write("bot.toml", "command = [\"./gone\"]\nclusters = 2\n");
  const auto missing = runCli({"reload", config.string()});
  BOOST_TEST(missing.status == 1, missing.output);
  BOOST_TEST(missing.output.find(config.string() + ":1:11: command: \"./gone\" (" +
                                 (dir.path() / "gone").string() +
                                 ") cannot be run: No such file or directory") != std::string::npos,
             missing.output);
  BOOST_TEST(statusOf(config).at("reloads").as_int64() == 0);

  // Fixed, and sent by SIGHUP this time: applied.
  dir.write("bot.toml", probeConfig(dir, 3, "basic"));
  run->signal(SIGHUP);
  run->waitForLine("received SIGHUP; reloading");
  waitReady(*run, 2);
  status = statusOf(config);
  BOOST_TEST(status.at("clusters").as_array().size() == 3u);
  BOOST_TEST(status.at("reloads").as_int64() == 1);
}

BOOST_AUTO_TEST_CASE(worker_settings_are_reported_then_applied_by_a_rolling_reload) {
  TempDir dir;
  // Each start takes 400ms to be ready: the rolling restart lasts long enough for the second
  // reload to arrive while it runs.
  const auto config = dir.write(
      "bot.toml",
      probeConfig(dir, 3, "slow-ready", "PROBE_EXTRA = \"old\", PROBE_READY_MS = \"400\""));
  auto run = SupervisorRun::run(config);
  for (int c = 0; c < 3; ++c) {
    waitReady(*run, c);
  }
  dir.write("bot.toml",
            probeConfig(dir, 3, "slow-ready", "PROBE_EXTRA = \"new\", PROBE_READY_MS = \"400\""));
  auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(reload.output ==
             "reloaded: nothing to apply now\n"
             "changed for workers: environment\n"
             "clusters 0..2 run with settings for workers from before the "
             "reload until restarted (clustervisor restart --all --rolling, or "
             "reload --rolling)\n");
  BOOST_TEST(clusterOutdated(statusOf(config), 1));
  BOOST_TEST(countLines(*run, {"START id="}) == 3u);  // reported, not applied

  // --rolling applies it; a second reload sent meanwhile waits its turn.
  SupervisorRun rolling({supervisorBinary().string(), "reload", "--rolling", config.string()});
  run->waitForLine(
      "reload: an earlier reload's settings for workers; rolling restart of 3 "
      "clusters");
  SupervisorRun second({supervisorBinary().string(), "reload", config.string()});
  run->waitForLine("reload queued behind the reload in progress");
  BOOST_TEST(rolling.waitExit(60s).value_or(-1) == 0, rolling.transcript());
  BOOST_TEST(rolling.transcript().find("rolling restart done: clusters 0..2 restarted and ready") !=
                 std::string::npos,
             rolling.transcript());
  BOOST_TEST(second.waitExit(60s).value_or(-1) == 0, second.transcript());
  BOOST_TEST(second.transcript().find("reloaded: nothing changed") != std::string::npos,
             second.transcript());
  for (int c = 0; c < 3; ++c) {
    BOOST_TEST(run->waitForLine("START id=" + std::to_string(c) +
                                " pid=" + std::to_string(startedPid(*run, c, 1)))
                   .find(" extra=new ") != std::string::npos);
  }
  BOOST_TEST(!clusterOutdated(statusOf(config), 1));
  // The second reload was applied only after the rolling restart was done.
  const auto done = lineIndex(*run, {"rolling restart done: 3 clusters restarted and ready"});
  lineIndex(*run, {"reloaded ", ": nothing changed"}, done);  // waits for it: logged by a thread
  BOOST_TEST(countLines(*run, {"reloaded ", ": nothing changed"}) == 2u);
}

BOOST_AUTO_TEST_CASE(a_reload_back_to_the_settings_workers_run_with_leaves_none_outdated) {
  TempDir dir;
  const auto old = probeConfig(dir, 2, "basic", "PROBE_EXTRA = \"old\"");
  const auto config = dir.write("bot.toml", old);
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  dir.write("bot.toml", probeConfig(dir, 2, "basic", "PROBE_EXTRA = \"new\""));
  auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(clusterOutdated(statusOf(config), 0));
  BOOST_TEST(clusterOutdated(statusOf(config), 1));

  // Back to what they were started with: up to date again, and a rolling reload restarts none.
  dir.write("bot.toml", old);
  reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(reload.output == "reloaded: nothing to apply now\nchanged for workers: environment\n");
  BOOST_TEST(!clusterOutdated(statusOf(config), 0));
  BOOST_TEST(!clusterOutdated(statusOf(config), 1));
  reload = runCli({"reload", "--rolling", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(reload.output == "reloaded: nothing changed\n");
  BOOST_TEST(countLines(*run, {"START id="}) == 2u, run->transcript());

  // Cluster 1 restarted after a change: only cluster 0 runs with the old settings then.
  dir.write("bot.toml", probeConfig(dir, 2, "basic", "PROBE_EXTRA = \"new\""));
  BOOST_TEST(runCli({"reload", config.string()}).status == 0);
  const auto restart = runCli({"restart", config.string(), "1"});
  BOOST_TEST(restart.status == 0, restart.output);
  waitReady(*run, 1, 1);
  BOOST_TEST(clusterOutdated(statusOf(config), 0));
  BOOST_TEST(!clusterOutdated(statusOf(config), 1));
  dir.write("bot.toml", old);
  reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.output.find("\ncluster 1 runs with settings for workers from before") !=
                 std::string::npos,
             reload.output);
  BOOST_TEST(!clusterOutdated(statusOf(config), 0));
  BOOST_TEST(clusterOutdated(statusOf(config), 1));
}

BOOST_AUTO_TEST_CASE(rolling_restart_goes_one_cluster_at_a_time_each_after_the_last_is_ready) {
  TempDir dir;
  // Every start takes 300ms to become ready, so an overlap would show.
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 4, "slow-ready", "PROBE_READY_MS = \"300\""));
  auto run = SupervisorRun::run(config);
  std::map<int, pid_t> before;
  for (int c = 0; c < 4; ++c) {
    waitReady(*run, c);
    before[c] = startedPid(*run, c);
  }
  const auto result = runCli({"restart", "--all", "--rolling", config.string()}, 60s);
  BOOST_TEST(result.status == 0, result.output);
  BOOST_TEST(result.output == "rolling restart done: clusters 0..3 restarted and ready\n");
  std::size_t previousReady = 0;
  for (int c = 0; c < 4; ++c) {
    const std::string name = "cluster " + std::to_string(c);
    const auto asked = lineIndex(
        *run, {name + " (pid " + std::to_string(before[c]) + "): rolling restart (was running)"});
    const auto ready =
        lineIndex(*run, {name + " (pid " + std::to_string(startedPid(*run, c, 1)) + ") is ready"});
    BOOST_TEST(asked > previousReady, "cluster " << c << " restarted before the last was ready");
    BOOST_TEST(ready > asked);
    previousReady = ready;
  }
  // The replaced workers' exits are the clusters' last, as the metrics count them.
  for (int c = 0; c < 4; ++c) {
    run->waitForLine("cluster " + std::to_string(c) + "'s replaced worker (pid " +
                     std::to_string(before[c]) + ") ");
  }
  const auto status = statusOf(config);
  for (std::size_t c = 0; c < 4; ++c) {
    const auto& cluster = status.at("clusters").as_array().at(c).as_object();
    BOOST_TEST(cluster.at("last_exit_reason") == "restart", json::serialize(cluster));
    BOOST_TEST(cluster.at("last_exit").is_string(), json::serialize(cluster));
  }
}

BOOST_AUTO_TEST_CASE(a_replaced_worker_ending_after_its_successor_does_not_hide_its_exit) {
  // The old worker ignores SIGTERM, so it ends at stop.timeout; its successor exits with status
  // 3 soon after it took over, before that.
  TempDir dir;
  const auto config = dir.write(
      "bot.toml",
      probeConfig(dir, 1, "exit", "PROBE_PLAN = \"3600000,300,3600000\", PROBE_IGNORE_TERM = \"1\"",
                  "[stop]\ntimeout = \"3s\"\n[restart]\ndelay = \"100ms\"\n"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  const pid_t old = startedPid(*run, 0);
  const auto restart = runCli({"restart", config.string(), "--rolling", "0"}, 60s);
  BOOST_TEST(restart.status == 0, restart.output);
  const pid_t successor = startedPid(*run, 0, 1);
  run->waitForLine("cluster 0 (pid " + std::to_string(successor) + ") exited with status 3");
  run->waitForLine("cluster 0's replaced worker (pid " + std::to_string(old) +
                   ") was killed by SIGKILL");
  const auto status = statusOf(config);
  const auto& cluster = status.at("clusters").as_array().at(0).as_object();
  BOOST_TEST(cluster.at("last_exit") == "exited with status 3", json::serialize(cluster));
  BOOST_TEST(cluster.at("last_exit_reason") == "failure", json::serialize(cluster));
}

BOOST_AUTO_TEST_CASE(rolling_restart_keeps_the_old_worker_serving_until_the_new_one_is_ready) {
  TempDir dir;
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 2, "slow-ready", "PROBE_READY_MS = \"800\""));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  const pid_t old = startedPid(*run, 1);
  SupervisorRun rolling(
      {supervisorBinary().string(), "restart", config.string(), "--rolling", "1"});
  const auto started =
      run->waitForLine("cluster 1 (pid " + std::to_string(old) + "): new worker (pid ");
  const pid_t successor =
      static_cast<pid_t>(std::atol(started.c_str() + started.find("new worker (pid ") + 16));
  // While the new worker logs in, the old one is the cluster: running, connected, serving.
  auto status = statusOf(config);
  const auto& during = status.at("clusters").as_array().at(1).as_object();
  BOOST_TEST(during.at("pid").as_int64() == old);
  BOOST_TEST(during.at("state").as_string() == "running");
  BOOST_TEST(during.at("connected").as_bool());
  BOOST_TEST(during.at("successor_pid").as_int64() == successor);
  BOOST_TEST(processExists(old));
  BOOST_TEST(rolling.waitExit(30s).value_or(-1) == 0, rolling.transcript());
  // It takes over once ready, and only then is the old one stopped.
  const auto takeOver =
      lineIndex(*run, {"cluster 1 (pid " + std::to_string(successor) + ") is ready after ",
                       " and takes over cluster 1 from pid " + std::to_string(old)});
  const auto oldGone =
      lineIndex(*run, {"cluster 1's replaced worker (pid " + std::to_string(old) + ")"});
  BOOST_TEST(takeOver < oldGone);
  BOOST_TEST(waitGone(old));
  status = statusOf(config);
  const auto& after = status.at("clusters").as_array().at(1).as_object();
  BOOST_TEST(after.at("pid").as_int64() == successor);
  BOOST_TEST(after.at("restarts").as_int64() == 1);
  BOOST_TEST(after.at("ready").as_bool());
  BOOST_TEST(!run->hasLine("cluster 1 (pid " + std::to_string(old) + ") was killed"));
}

BOOST_AUTO_TEST_CASE(both_workers_of_a_rolling_restart_have_their_waits_acknowledged) {
  // The new worker waits before it is ready, the one it replaces in its stop handler: each is
  // told the acknowledgements of its own wait, though both are cluster 1.
  TempDir dir;
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 3, "rolling-waits", "",
                                        "[stop]\ntimeout = \"60s\"\nsignal_delay = \"30s\"\n"));
  auto run = SupervisorRun::run(config);
  for (int id = 0; id < 3; ++id) {
    waitReady(*run, id);
  }
  const pid_t old = startedPid(*run, 1);
  const auto restart = runCli({"restart", config.string(), "--rolling", "1"}, 60s);
  BOOST_TEST(restart.status == 0, restart.output);
  BOOST_TEST(run->waitForLine("[cluster 1] HELLO run=2 ")
                 .find(" acked=2 clusters=[0,2] recipients=-1 timedOut=0 ") != std::string::npos);
  BOOST_TEST(run->waitForLine("[cluster 1] LEAVING run=1 ")
                 .find(" acked=2 clusters=[0,2] recipients=-1 timedOut=0 ") != std::string::npos);
  // Still in its stop handler: status shows it beside the cluster's new worker.
  auto status = statusOf(config);
  const auto& during = status.at("clusters").as_array().at(1).as_object();
  BOOST_REQUIRE(during.contains("replaced_pids"));
  BOOST_TEST(during.at("replaced_pids").as_array().size() == 1u);
  BOOST_TEST(during.at("replaced_pids").as_array().at(0).as_int64() == old);
  dir.write("leave", "1\n");
  BOOST_TEST(run->waitForLine("cluster 1's replaced worker (pid " + std::to_string(old) + ")")
                 .find(") exited with status 0") != std::string::npos);
  status = statusOf(config);
  BOOST_TEST(!status.at("clusters").as_array().at(1).as_object().contains("replaced_pids"));
}

BOOST_AUTO_TEST_CASE(a_new_workers_wait_that_the_takeover_completes_is_closed_towards_it) {
  // Cluster 1's new worker waits on its own cluster, whose only recipient is the worker it
  // replaces, which never acknowledges: the takeover completes the wait without it, and the new
  // worker, the cluster's own from then on, is told.
  TempDir dir;
  const auto config = dir.write(
      "bot.toml", probeConfig(dir, 2, "self-wait", "", "[heartbeat]\ntimeout = \"0s\"\n"));
  auto run = SupervisorRun::run(config);
  run->waitForLine("[cluster 1] SELFWAIT run=1 ready");
  const auto restart = runCli({"restart", config.string(), "--rolling", "1"}, 60s);
  BOOST_TEST(restart.status == 0, restart.output);
  run->waitForLine(
      "[cluster 1] SELFWAIT run=2 got WAIT_CLOSED correlation=4660 recipients=1 "
      "acked=0");
}

BOOST_AUTO_TEST_CASE(rolling_restart_in_batches_restarts_a_batch_together) {
  TempDir dir;
  const auto config = dir.write(
      "bot.toml",
      probeConfig(dir, 4, "slow-ready", "PROBE_READY_MS = \"300\"", "[rolling]\nbatch = 3\n"));
  auto run = SupervisorRun::run(config);
  for (int c = 0; c < 4; ++c) {
    waitReady(*run, c);
  }
  // The command line's --batch wins over rolling.batch.
  const auto result =
      runCli({"restart", config.string(), "--rolling", "--batch", "2", "3", "2", "1", "0"}, 60s);
  BOOST_TEST(result.status == 0, result.output);
  BOOST_TEST(run->hasLine("rolling restart of clusters 3, 2, 1, 0 in batches of 2 clusters"));
  const auto asked = [&](int c) {
    return lineIndex(*run, {"cluster " + std::to_string(c) + " (pid ", "): rolling restart"});
  };
  const auto ready = [&](int c) {
    return lineIndex(*run, {"cluster " + std::to_string(c) + " (pid " +
                            std::to_string(startedPid(*run, c, 1)) + ") is ready"});
  };
  // 3 and 2 together, then 1 and 0 once both are ready.
  BOOST_TEST(asked(2) < ready(3));
  BOOST_TEST(asked(1) > std::max(ready(3), ready(2)));
  BOOST_TEST(asked(0) < ready(1));
}

BOOST_AUTO_TEST_CASE(rolling_restart_halts_when_a_new_worker_never_becomes_ready) {
  TempDir dir;
  const auto config = dir.write(
      "bot.toml", probeConfig(dir, 4, "basic", "PROBE_STALL_ON = \"broken\", PROBE_ONLY = \"2\"",
                              "[start]\ntimeout = \"1s\"\n"));
  auto run = SupervisorRun::run(config);
  std::map<int, pid_t> before;
  for (int c = 0; c < 4; ++c) {
    waitReady(*run, c);
    before[c] = startedPid(*run, c);
  }
  touch(dir, "broken");  // from now on, cluster 2 cannot start
  const auto result = runCli({"restart", "--all", "--rolling", config.string()}, 60s);
  BOOST_TEST(result.status == 1, result.output);
  BOOST_TEST(result.output.find("rolling restart halted: the new worker of cluster 2 did not "
                                "become ready (") != std::string::npos,
             result.output);
  BOOST_TEST(result.output.find("(was not ready within 1s (start.timeout)); its old worker keeps "
                                "running") != std::string::npos,
             result.output);
  BOOST_TEST(result.output.find("restarted and ready: 0, 1; not restarted: 3") != std::string::npos,
             result.output);
  run->waitForLine("rolling restart halted");
  // Cluster 2 is still served by its old worker, the stalled new one is gone.
  const pid_t stalled = startedPid(*run, 2, 1);
  BOOST_TEST(waitGone(stalled));
  BOOST_TEST(processExists(before[2]));
  const auto status = statusOf(config);
  const auto& cluster2 = status.at("clusters").as_array().at(2).as_object();
  BOOST_TEST(cluster2.at("pid").as_int64() == before[2]);
  BOOST_TEST(cluster2.at("state").as_string() == "running");
  BOOST_TEST(cluster2.at("restarts").as_int64() == 0);
  // Cluster 3 was left alone.
  BOOST_TEST(countLines(*run, {"START id=3 "}) == 1u);
  BOOST_TEST(processExists(before[3]));
  BOOST_TEST(!run->hasLine("cluster 3 (pid " + std::to_string(before[3]) + "): rolling restart"));
}

BOOST_AUTO_TEST_CASE(a_reload_whose_rolling_restart_halts_says_what_it_applied) {
  // The new command runs the probe, except for cluster 1, where it fails at once: the rolling
  // restart gets cluster 0 done and halts at cluster 1. The reload was applied all the same (a
  // restart of any cluster now runs the new command), and the command says so, and which
  // clusters still run with the settings from before it.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 3, "basic"));
  auto run = SupervisorRun::run(config);
  for (int c = 0; c < 3; ++c) {
    waitReady(*run, c);
  }
  const auto wrapper = dir.write("wrapper.sh",
                                 "#!/bin/sh\n[ \"$CLUSTERVISOR_CLUSTER_ID\" = 1 ] && "
                                 "exit 1\nexec " +
                                     probeWorkerBinary().string() + "\n");
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all);
  std::string changed = probeConfig(dir, 3, "basic");
  changed.replace(changed.find(probeWorkerBinary().string()), probeWorkerBinary().string().size(),
                  wrapper.string());
  dir.write("bot.toml", changed);
  const auto reload = runCli({"reload", "--rolling", config.string()}, 60s);
  BOOST_TEST(reload.status == 1, reload.output);
  BOOST_TEST(reload.output.find("reloaded: nothing to apply now\nchanged for workers: command\n"
                                "clusters 1, 2 run with settings for workers from before the "
                                "reload until restarted") == 0u,
             reload.output);
  // Why, as the supervisor saw it first: the end of the connection, or the exit.
  const std::regex halted(
      "clustervisor: error: rolling restart halted: the new worker of cluster 1 did not become "
      "ready \\((exited or closed its connection before it was ready|exited with status 1 after "
      "[0-9.]+m?s)\\); its old worker keeps running; restarted and ready: 0; not restarted: "
      "2\n");
  BOOST_TEST(std::regex_search(reload.output, halted), reload.output);
  const auto status = statusOf(config);
  BOOST_TEST(status.at("reloads").as_int64() == 1);
  BOOST_TEST(!clusterOutdated(status, 0));
  BOOST_TEST(clusterOutdated(status, 1));
  BOOST_TEST(clusterOutdated(status, 2));
}

BOOST_AUTO_TEST_CASE(a_successor_started_before_a_reload_is_outdated_when_it_takes_over) {
  // A rolling restart of clusters 0 and 1 together halts (cluster 1's new worker exits at once)
  // while cluster 0's new worker, started with the old settings, is still starting. A reload
  // then changes a setting for workers; when that new worker takes over, it is out of date.
  TempDir dir;
  const auto withExtra = [&](const std::string& extra) {
    return probeConfig(
        dir, 2, "basic",
        "PROBE_FAIL_LATER = \"1\", PROBE_HOLD_READY = \"0\", PROBE_EXTRA = \"" + extra + "\"");
  };
  const auto config = dir.write("bot.toml", withExtra("old"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  const auto halted =
      runCli({"restart", "--all", "--rolling", "--batch", "2", config.string()}, 60s);
  BOOST_TEST(halted.status == 1, halted.output);
  BOOST_TEST(halted.output.find("still starting: 0") != std::string::npos, halted.output);
  const pid_t successor = startedPid(*run, 0, 1);
  run->waitForLine("[cluster 0] HOLDING until release");

  dir.write("bot.toml", withExtra("new"));
  const auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(clusterOutdated(statusOf(config), 0));

  touch(dir, "release");
  BOOST_REQUIRE(waitUntil([&] {
    const auto status = statusOf(config);
    const auto& cluster = status.at("clusters").as_array().at(0).as_object();
    return cluster.at("pid").to_number<pid_t>() == successor;
  }));
  BOOST_TEST(clusterOutdated(statusOf(config), 0));
}

BOOST_AUTO_TEST_CASE(clients_that_give_up_on_a_long_request_free_their_connection) {
  TempDir dir;
  // Each start takes 3 s to be ready, so a rolling restart of cluster 0 takes that long, and
  // twenty of them queue behind one another.
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 1, "slow-ready", "PROBE_READY_MS = \"3000\""));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  for (int i = 0; i < 20; ++i) {
    SupervisorRun client(
        {supervisorBinary().string(), "restart", config.string(), "--rolling", "0"});
    const auto handedOver = [&] {
      return i == 0 ? run->hasLine("rolling restart of cluster 0")
                    : run->linesContaining("rolling restart queued behind").size() >=
                          static_cast<std::size_t>(i);
    };
    // A client that ended instead (an error) says why.
    const bool over = waitUntil([&] { return handedOver() || client.waitExit(0ms).has_value(); });
    BOOST_REQUIRE_MESSAGE(over && handedOver(),
                          "request " << i << " was not handed over; client (exit "
                                     << client.waitExit(0ms).value_or(-1)
                                     << "): " << client.transcript() << "\nsupervisor:\n"
                                     << run->transcript());
    client.signal(SIGKILL);  // Ctrl-C, in effect
    client.waitExit(10s);
  }
  // More clients gave up than the 16 connections the socket serves: status still gets through.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  int status = -1;
  while (status != 0 && std::chrono::steady_clock::now() < deadline) {
    status = runCli({"status", config.string()}).status;
  }
  BOOST_TEST(status == 0);
  run->signal(SIGTERM);
  BOOST_TEST(run->waitExit(60s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(a_hundred_reloads_leak_no_fds_or_memory) {
  TempDir dir;
  const std::string two = probeConfig(dir, 2, "basic");
  const std::string three = probeConfig(dir, 3, "basic", "", "[restart]\ndelay = \"150ms\"\n");
  const auto config = dir.write("bot.toml", two);
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  // Every reload scales 2 <-> 3 (a worker started or stopped, a slot reused) and changes a
  // restart setting; the first ones warm up the allocator.
  const auto reloads = [&](int count) {
    for (int i = 0; i < count; ++i) {
      dir.write("bot.toml", i % 2 == 0 ? three : two);
      const auto reload = runCli({"reload", config.string()});
      BOOST_REQUIRE_MESSAGE(reload.status == 0, reload.output);
    }
  };
  // The descriptors of two running clusters, before any reload. After a reload, the removed
  // worker's connection drains for up to a second after the answer, and the CLI's session
  // closes: each count below is read once it is back to this one, with a deadline.
  // Under AddressSanitizer, whose leak checker finds a leak of a single reload at exit, fewer
  // reloads do (this was the longest test of the sanitizer run).
  const bool asan = sanitizer() == Sanitizer::kAddress;
  const int warmUp = asan ? 10 : 20;
  const int measured = asan ? 30 : 100;
  const std::size_t twoClusters = usageOf(run->pid()).fds;
  reloads(warmUp);
  const auto start = usageWhenFdsAre(run->pid(), twoClusters);
  BOOST_TEST(start.fds == twoClusters);
  reloads(measured);
  const auto end = usageWhenFdsAre(run->pid(), twoClusters);
  BOOST_TEST_MESSAGE("supervisor after " << warmUp << " reloads: " << start.fds << " fds, "
                                         << start.rssKiB << " KiB; after " << warmUp + measured
                                         << ": " << end.fds << " fds, " << end.rssKiB << " KiB");
  BOOST_TEST(end.fds == start.fds);
  BOOST_TEST(statusOf(config).at("reloads").as_int64() == warmUp + measured);
  switch (sanitizer()) {
    case Sanitizer::kAddress:
      // AddressSanitizer keeps freed memory in quarantine, so RSS grows without a leak; its leak
      // checker looks at the supervisor when it exits instead. The other builds measure.
      run->signal(SIGTERM);
      BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
      break;
    case Sanitizer::kThread:
      // ThreadSanitizer's shadow memory and bookkeeping grow with the memory a run has touched,
      // so RSS is no measure of a leak there (it grew by 230 to 670 KiB over these reloads in
      // runs of that build): the other builds measure it.
      break;
    case Sanitizer::kNone:
      // A leak of even 2 KiB per reload would show as 200 KiB.
      BOOST_TEST(end.rssKiB - start.rssKiB < 200,
                 "RSS grew by " << end.rssKiB - start.rssKiB << " KiB");
      break;
  }
}

BOOST_AUTO_TEST_CASE(the_cli_does_not_trust_a_control_socket_served_by_another_user) {
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: needs root, to listen as another user");
    return;
  }
  TempDir dir;
  const auto path = dir.path() / "ctl.sock";
  // An impostor: a process of another user (nobody) answers every request "done".
  const int listener = bindUnixSocket(path, SOCK_STREAM);
  int listening[2];  // the impostor tells when it listens: the CLI must not find nothing there
  BOOST_REQUIRE(::pipe2(listening, O_CLOEXEC) == 0);
  const pid_t impostor = ::fork();
  BOOST_REQUIRE(impostor >= 0);
  if (impostor == 0) {
    // listen() records the credentials a client sees: those of nobody.
    if (::setgid(65534) != 0 || ::setuid(65534) != 0 || ::listen(listener, 4) != 0 ||
        ::write(listening[1], "L", 1) != 1) {
      ::_exit(2);
    }
    for (;;) {
      const int client = ::accept(listener, nullptr, nullptr);
      if (client < 0) {
        ::_exit(3);
      }
      char request[4096];
      (void)!::read(client, request, sizeof request);
      const char answer[] = R"({"version":1,"ok":true,"result":{"stopping":true,"already":false}})"
                            "\n";
      (void)!::write(client, answer, sizeof answer - 1);
      ::close(client);
    }
  }
  ::close(listener);
  ::close(listening[1]);
  char listens = 0;
  const bool ready = ::read(listening[0], &listens, 1) == 1;  // 0: it exited before listening
  ::close(listening[0]);
  const auto stop = ready ? runCli({"stop", "--socket", path.string()}) : CliResult{};
  ::kill(impostor, SIGKILL);
  ::waitpid(impostor, nullptr, 0);
  BOOST_REQUIRE_MESSAGE(ready, "the impostor could not listen as nobody");
  BOOST_TEST(stop.status == 69, stop.output);
  BOOST_TEST(stop.output.find(") runs as uid 65534, not as this user (uid 0): not this user's "
                              "supervisor; the request was not sent") != std::string::npos,
             stop.output);
}

BOOST_AUTO_TEST_CASE(a_supervisor_that_refuses_expires_ms_is_asked_again_without_it) {
  // A supervisor from before the field (running while a newer CLI is installed) refuses it as an
  // unknown field: the CLI asks again without it, once.
  TempDir dir;
  const auto path = dir.path() / "ctl.sock";
  const int listener = bindUnixSocket(path, SOCK_STREAM);
  BOOST_REQUIRE(::listen(listener, 4) == 0);
  const auto requests = dir.path() / "requests";
  // Opened before the fork: the child uses system calls only.
  const int log = ::open(requests.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  BOOST_REQUIRE(log >= 0);
  const pid_t old = ::fork();
  BOOST_REQUIRE(old >= 0);
  if (old == 0) {
    for (;;) {
      const int client = ::accept(listener, nullptr, nullptr);
      if (client < 0) {
        ::_exit(3);
      }
      char request[4096];
      const ssize_t n = ::read(client, request, sizeof request);
      if (n <= 0 || ::write(log, request, static_cast<std::size_t>(n)) != n) {
        ::_exit(4);
      }
      const bool expiring =
          ::memmem(request, static_cast<std::size_t>(n), "expires_ms", 10) != nullptr;
      const char* answer =
          expiring
              ? R"({"version":1,"ok":false,"error":"unknown field \"expires_ms\" in a stop request"})"
                "\n"
              : R"({"version":1,"ok":true,"result":{"stopping":true,"already":false}})"
                "\n";
      (void)!::write(client, answer, std::strlen(answer));
      ::close(client);
    }
  }
  ::close(listener);
  ::close(log);
  const auto stop = runCli({"stop", "--no-wait", "--socket", path.string()});
  ::kill(old, SIGKILL);
  ::waitpid(old, nullptr, 0);
  BOOST_TEST(stop.status == 0, stop.output);
  std::ifstream in(requests);
  std::vector<std::string> sent;
  for (std::string line; std::getline(in, line);) {
    sent.push_back(line);
  }
  BOOST_REQUIRE(sent.size() == 2u);
  BOOST_TEST(sent[0].find(R"("command":"stop","expires_ms":)") != std::string::npos, sent[0]);
  BOOST_TEST(sent[1] == R"({"version":1,"command":"stop"})");
}

BOOST_AUTO_TEST_CASE(check_says_when_run_would_refuse_its_runtime_directory) {
  // XDG_RUNTIME_DIR/clustervisor is a directory anyone may write to: `run` refuses it, so
  // `check`, which makes nothing, says so (the file itself is valid).
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  const auto runtime = ownRuntimeDirectory(dir);
  const auto shared = runtime / "clustervisor";
  std::filesystem::create_directory(shared);
  std::filesystem::permissions(shared, std::filesystem::perms::all);
  SupervisorRun check({"/usr/bin/env", "XDG_RUNTIME_DIR=" + runtime.string(),
                       supervisorBinary().string(), "check", config.string()});
  BOOST_TEST(check.waitExit(30s).value_or(-1) == 0, check.transcript());
  check.waitForLine("clustervisor: warning: the runtime directory " + shared.string() +
                    " is not a directory owned by this user and writable only by it; `run` will "
                    "refuse to start; remove it or set XDG_RUNTIME_DIR");
  BOOST_TEST(std::filesystem::is_empty(shared));
  // As `run` does.
  SupervisorRun run({"/usr/bin/env", "XDG_RUNTIME_DIR=" + runtime.string(),
                     supervisorBinary().string(), "run", config.string()});
  BOOST_TEST(run.waitExit(30s).value_or(0) == 71, run.transcript());
  run.waitForLine(
      "is not a directory owned by this user and writable only by it; remove it or "
      "set XDG_RUNTIME_DIR");
}

BOOST_AUTO_TEST_CASE(the_cli_finds_a_supervisor_started_with_another_runtime_directory) {
  // A service has no XDG_RUNTIME_DIR and a login shell has one, so each computes another socket
  // path: the CLI asks the process that holds the file's lock where it listens.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  const auto runtime = ownRuntimeDirectory(dir);
  auto run = SupervisorRun::run(config, {"XDG_RUNTIME_DIR=" + runtime.string()});
  waitReady(*run, 0);
  BOOST_REQUIRE(std::filesystem::exists(runtime / "clustervisor"));
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.status == 0, status.output);
  BOOST_TEST(status.output.find("1 of 1 clusters running") != std::string::npos, status.output);
  // Its file saved by an editor (a new file renamed over it, which the supervisor holds no lock
  // on), then removed: the commands still reach it, through the lock file it has open.
  std::filesystem::rename(dir.write("saved.toml", probeConfig(dir, 1, "basic")), config);
  const auto afterSave = runCli({"status", config.string()});
  BOOST_TEST(afterSave.status == 0, afterSave.output);
  BOOST_TEST(afterSave.output.find("1 of 1 clusters running") != std::string::npos,
             afterSave.output);
  std::filesystem::remove(config);
  const auto afterRemove = runCli({"status", config.string()});
  BOOST_TEST(afterRemove.status == 0, afterRemove.output);
  // Also by a path through a link to its directory (resolved as far as it exists).
  std::filesystem::create_directory_symlink(dir.path(), dir.path() / "link");
  const auto throughLink = runCli({"status", (dir.path() / "link" / "bot.toml").string()});
  BOOST_TEST(throughLink.status == 0, throughLink.output);
  const auto stop = runCli({"stop", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
  // With no supervisor left, a missing file is an error again (not "nothing to stop").
  const auto again = runCli({"stop", config.string()});
  BOOST_TEST(again.status == 78, again.output);
  BOOST_TEST(
      again.output == "clustervisor: error: " + config.string() + ": No such file or directory\n",
      again.output);
}

BOOST_AUTO_TEST_CASE(without_xdg_runtime_dir_the_files_are_in_tmp_clustervisor_uid) {
  // As a service's supervisor: no XDG_RUNTIME_DIR. This CLI has one (the test module's).
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  auto run = SupervisorRun::run(config, {"-u", "XDG_RUNTIME_DIR"});
  waitReady(*run, 0);
  // Where `check` says they are, without XDG_RUNTIME_DIR.
  SupervisorRun check(
      {"env", "-u", "XDG_RUNTIME_DIR", supervisorBinary().string(), "check", config.string()});
  BOOST_REQUIRE(check.waitExit(30s).value_or(-1) == 0);
  const auto placeOf = [&](const std::string& label) {
    const auto line = check.waitForLine("  " + label + " ");
    return std::filesystem::path(line.substr(line.find_first_not_of(' ', label.size() + 2)));
  };
  const auto lockFile = placeOf("lock file");
  const std::string fallback = "/tmp/clustervisor-" + std::to_string(::getuid()) + "/";
  BOOST_TEST(lockFile.string().find(fallback) == 0u, lockFile);
  BOOST_TEST(std::filesystem::exists(lockFile), lockFile);
  BOOST_TEST(std::filesystem::exists(placeOf("control socket")));
  const auto stop = runCli({"stop", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
  BOOST_TEST(!std::filesystem::exists(lockFile), lockFile);  // removed as it ended
}

BOOST_AUTO_TEST_CASE(a_service_manager_is_told_when_the_bot_is_ready_reloading_and_stopping) {
  // systemd's side of Type=notify: a datagram socket named by NOTIFY_SOCKET.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 2, "basic"));
  const auto path = dir.path() / "notify.sock";
  const int manager = bindUnixSocket(path, SOCK_DGRAM);
  const auto receive = [&] { return receiveDatagram(manager); };
  auto run = SupervisorRun::run(config, {"NOTIFY_SOCKET=" + path.string()});
  // How far the start is, for `systemctl status`, then ready.
  BOOST_TEST(receive() == "STATUS=starting: 0 of 2 clusters ready");
  BOOST_TEST(receive() == "STATUS=starting: 1 of 2 clusters ready");
  const auto ready = receive();
  BOOST_TEST(ready ==
             "READY=1\nSTATUS=all 2 clusters ready\nMAINPID=" + std::to_string(run->pid()));
  // Told once both were ready; the workers do not get the socket (it is the supervisor's).
  const auto status = statusOf(config);
  for (const auto& cluster : status.at("clusters").as_array()) {
    BOOST_TEST(cluster.as_object().at("ready").as_bool());
  }
  BOOST_TEST(run->waitForLine("START id=0 ").find(" notify=-") != std::string::npos);
  BOOST_TEST(run->waitForLine("START id=1 ").find(" notify=-") != std::string::npos);
  const auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(receive().find("RELOADING=1\nMONOTONIC_USEC=") == 0u);
  BOOST_TEST(receive() == "READY=1");
  // STATUS= follows the clusters ready: a crash and the restart after it.
  const pid_t crashed = startedPid(*run, 1);
  BOOST_REQUIRE(::kill(crashed, SIGKILL) == 0);
  BOOST_TEST(receive() == "STATUS=1 of 2 clusters ready");
  BOOST_TEST(receive() == "STATUS=all 2 clusters ready");
  waitReady(*run, 1, 1);
  run->signal(SIGTERM);
  BOOST_TEST(receive().find("STOPPING=1\nSTATUS=") == 0u);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
  ::close(manager);
}

BOOST_AUTO_TEST_CASE(a_reload_that_removes_the_last_cluster_not_ready_tells_the_manager_ready) {
  TempDir dir;
  // Cluster 0 runs the probe and becomes ready; cluster 1 never connects.
  const auto write = [&](int clusters) {
    return writeMixedBot(dir, clusters, "exec sleep 600", "[start]\ntimeout = \"60s\"\n");
  };
  const auto config = write(2);
  const auto path = dir.path() / "notify.sock";
  const int manager = bindUnixSocket(path, SOCK_DGRAM);
  auto run = SupervisorRun::run(config, {"NOTIFY_SOCKET=" + path.string()});
  waitReady(*run, 0);
  // One request through the event loop after the ready line: whatever it sent for that is sent.
  const auto status = statusOf(config);
  BOOST_TEST(status.at("clusters").as_array().at(1).as_object().at("state").as_string() ==
             "starting");
  BOOST_TEST(receiveDatagram(manager) == "STATUS=starting: 0 of 2 clusters ready");
  BOOST_TEST(receiveDatagram(manager) == "STATUS=starting: 1 of 2 clusters ready");
  pollfd nothing{manager, POLLIN, 0};
  BOOST_TEST(::poll(&nothing, 1, 0) == 0);  // not ready: cluster 1 is not
  write(1);
  const auto reload = runCli({"reload", config.string()});
  BOOST_TEST(reload.status == 0, reload.output);
  BOOST_TEST(receiveDatagram(manager) ==
             "READY=1\nSTATUS=1 cluster ready\nMAINPID=" + std::to_string(run->pid()));
  run->signal(SIGTERM);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
  ::close(manager);
}

BOOST_AUTO_TEST_CASE(a_cluster_that_ends_for_good_counts_as_done_for_the_managers_ready) {
  TempDir dir;
  // Once cluster 0 is ready, cluster 1 exits with status 0, which restart.policy = "on-failure"
  // does not restart.
  const auto config =
      writeMixedBot(dir, 2, "while [ ! -e \"$PROBE_DIR/go\" ]; do sleep 0.05; done; exit 0",
                    "[restart]\npolicy = \"on-failure\"\n");
  const auto path = dir.path() / "notify.sock";
  const int manager = bindUnixSocket(path, SOCK_DGRAM);
  auto run = SupervisorRun::run(config, {"NOTIFY_SOCKET=" + path.string()});
  waitReady(*run, 0);
  (void)statusOf(config);  // one request through the event loop after the ready line
  BOOST_TEST(receiveDatagram(manager) == "STATUS=starting: 0 of 2 clusters ready");
  BOOST_TEST(receiveDatagram(manager) == "STATUS=starting: 1 of 2 clusters ready");
  pollfd nothing{manager, POLLIN, 0};
  BOOST_TEST(::poll(&nothing, 1, 0) == 0);  // cluster 1 still runs, not ready
  dir.write("go", "");
  BOOST_TEST(receiveDatagram(manager) ==
             "READY=1\nSTATUS=1 of 2 clusters ready; the others "
             "ended\nMAINPID=" +
                 std::to_string(run->pid()));
  const auto status = statusOf(config);
  const auto& clusters = status.at("clusters").as_array();
  BOOST_TEST(clusters.at(0).as_object().at("state").as_string() == "running");
  BOOST_TEST(clusters.at(1).as_object().at("state").as_string() == "exited");
  run->signal(SIGTERM);
  BOOST_TEST(receiveDatagram(manager).find("STOPPING=1\n") == 0u);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
  ::close(manager);
}

BOOST_AUTO_TEST_CASE(a_bot_whose_clusters_all_end_before_ready_tells_ready_then_stopping) {
  TempDir dir;
  const auto config = dir.write("bot.toml",
                                "command = [\"/bin/sh\", \"-c\", \"exit 0\"]\nclusters = 2\n"
                                "[restart]\npolicy = \"on-failure\"\n");
  const auto path = dir.path() / "notify.sock";
  const int manager = bindUnixSocket(path, SOCK_DGRAM);
  auto run = SupervisorRun::run(config, {"NOTIFY_SOCKET=" + path.string()});
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
  BOOST_TEST(receiveDatagram(manager) == "STATUS=starting: 0 of 2 clusters ready");
  BOOST_TEST(receiveDatagram(manager) ==
             "READY=1\nSTATUS=no cluster ready; every cluster ended\nMAINPID=" +
                 std::to_string(run->pid()));
  BOOST_TEST(receiveDatagram(manager) ==
             "STOPPING=1\nSTATUS=no cluster is running or will be restarted");
  ::close(manager);
}

BOOST_AUTO_TEST_CASE(the_service_managers_watchdog_is_fed_from_the_event_loop) {
  // WatchdogSec=200ms: WATCHDOG_USEC=200000, a WATCHDOG=1 about every 100ms.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  const auto path = dir.path() / "notify.sock";
  const int manager = bindUnixSocket(path, SOCK_DGRAM);
  auto run = SupervisorRun::run(config, {"NOTIFY_SOCKET=" + path.string(), "WATCHDOG_USEC=200000"});
  int fed = 0;
  while (fed < 3) {
    BOOST_TEST_CONTEXT("the watchdog was fed " << fed << " times") {
      fed += receiveDatagram(manager) == "WATCHDOG=1" ? 1 : 0;
    }
  }
  // The workers are not given the watchdog.
  BOOST_TEST(run->waitForLine("START id=0 ").find(" notify=- watchdog=-/-") != std::string::npos);
  run->signal(SIGTERM);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
  ::close(manager);
}

BOOST_AUTO_TEST_CASE(the_cli_gives_up_on_a_control_socket_that_takes_no_connection) {
  // A listener that never accepts (a stopped or hung supervisor), its backlog full: a connect()
  // that blocked would never return.
  TempDir dir;
  const auto path = dir.path() / "ctl.sock";
  const int listener = bindUnixSocket(path, SOCK_STREAM);
  BOOST_REQUIRE(::listen(listener, 0) == 0);
  const auto address = unixAddress(path);
  std::vector<int> queued;
  for (int i = 0; i < 64; ++i) {
    const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    BOOST_REQUIRE(client >= 0);
    if (::connect(client, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      queued.push_back(client);
      continue;
    }
    BOOST_REQUIRE_MESSAGE(errno == EAGAIN, std::strerror(errno));
    ::close(client);
    break;
  }
  BOOST_REQUIRE(queued.size() < 64);
  const auto status = runCli({"status", "--socket", path.string()}, 60s);
  for (const int client : queued) {
    ::close(client);
  }
  ::close(listener);
  BOOST_TEST(status.status == 69, status.output);
  BOOST_TEST(status.output.find("took none of") != std::string::npos, status.output);
  BOOST_TEST(
      status.output.find("not taking connections at all (stopped or hung)") != std::string::npos,
      status.output);
}

BOOST_AUTO_TEST_CASE(the_control_socket_can_be_placed_by_the_config) {
  TempDir dir;
  const auto socket = dir.path() / "ctl.sock";
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 1, "basic", "", "[control]\nsocket = \"ctl.sock\"\n"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  BOOST_TEST(std::filesystem::is_socket(socket));
  BOOST_TEST(((std::filesystem::status(socket).permissions() & std::filesystem::perms::all) ==
              (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)));
  BOOST_TEST(runCli({"status", config.string()}).status == 0);
  BOOST_TEST(runCli({"status", "--socket", socket.string()}).status == 0);
  const auto check = runCli({"check", config.string()});
  BOOST_TEST(check.output.find(socket.string()) != std::string::npos, check.output);
  // A second bot told to use the same path does not take it over; nor is a file replaced.
  const auto other = dir.write(
      "other.toml", probeConfig(dir, 1, "basic", "", "[control]\nsocket = \"ctl.sock\"\n"));
  auto second = SupervisorRun::run(other);
  second->waitForLine("another supervisor answers there");
  const auto onFile = dir.write(
      "third.toml", probeConfig(dir, 1, "basic", "", "[control]\nsocket = \"other.toml\"\n"));
  auto third = SupervisorRun::run(onFile);
  third->waitForLine("something that is not a socket is there");
  BOOST_TEST(std::filesystem::is_regular_file(other));
  second->signal(SIGTERM);
  third->signal(SIGTERM);
  BOOST_TEST(second->waitExit(30s).value_or(-1) == 0);
  BOOST_TEST(third->waitExit(30s).value_or(-1) == 0);
  BOOST_TEST(std::filesystem::is_socket(socket));  // still the first bot's
  BOOST_TEST(runCli({"status", config.string()}).status == 0);
  BOOST_TEST(runCli({"stop", config.string()}).status == 0);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0);
  BOOST_TEST(!std::filesystem::exists(socket));
}

namespace {
sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  return address;
}

// A socket bound to a free loopback port (0: any), listening when `listening`.
int boundLoopbackSocket(int port = 0, bool listening = false) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in address = loopback(port);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  BOOST_REQUIRE(!listening || ::listen(fd, 16) == 0);
  return fd;
}

int portOf(int fd) {
  sockaddr_in address{};
  socklen_t size = sizeof address;
  BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
  return ntohs(address.sin_port);
}

// A free port: bind to 0, read it back, release it.
int freeLoopbackPort() {
  const int fd = boundLoopbackSocket();
  const int port = portOf(fd);
  ::close(fd);
  return port;
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_metrics_address_in_use_is_tried_again_until_it_is_free) {
  // Another process holds the port (another bot's supervisor, an exporter): the bot runs
  // without its endpoint, status says why, and the endpoint comes up once the port is free.
  TempDir dir;
  const int holder = boundLoopbackSocket(0, true);
  const std::string address = "127.0.0.1:" + std::to_string(portOf(holder));
  const auto config = dir.write(
      "bot.toml", probeConfig(dir, 1, "basic", "", "[metrics]\nlisten = \"" + address + "\"\n"));
  auto run = SupervisorRun::run(config);
  run->waitForLine("clustervisor: error: cannot serve metrics on " + address +
                   ": Address already in use; running without the metrics endpoint, trying "
                   "again every 5s");
  waitReady(*run, 0);
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.output.find("\nmetrics: not served: cannot serve metrics on " + address +
                                ": Address already in use\n") != std::string::npos,
             status.output);
  BOOST_TEST(!statusOf(config).at("metrics").at("serving").as_bool());
  ::close(holder);
  run->waitForLine("serving metrics at http://" + address + "/metrics (the address is free again)");
  const auto metrics = statusOf(config).at("metrics");
  BOOST_TEST(metrics.at("serving").as_bool());
  BOOST_TEST(metrics.at("error").is_null());
  BOOST_TEST(runCli({"status", config.string()})
                 .output.find("\nmetrics: http://" + address + "/metrics\n") != std::string::npos);
  SupervisorRun curl({"curl", "--silent", "--fail", "http://" + address + "/metrics"});
  BOOST_TEST(curl.waitExit(20s).value_or(-1) == 0, curl.transcript());
  BOOST_TEST(run->linesContaining("cannot serve metrics").size() == 1u, run->transcript());
  BOOST_TEST(runCli({"stop", config.string()}).status == 0);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_CASE(the_metrics_endpoint_serves_prometheus_text_to_curl) {
  TempDir dir;
  const int port = freeLoopbackPort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const auto config =
      dir.write("bot.toml", probeConfig(dir, 2, "crash", "PROBE_CRASH = \"1\"",
                                        "[metrics]\nlisten = \"" + address + "\"\n"));
  auto run = SupervisorRun::run(config);
  run->waitForLine("serving metrics at http://" + address + "/metrics");
  waitReady(*run, 0);
  waitReady(*run, 1, 1);  // cluster 1 crashed once and is back
  SupervisorRun curl({"curl", "--silent", "--show-error", "--fail", "--include",
                      "http://" + address + "/metrics"});
  BOOST_REQUIRE(curl.waitExit(20s).value_or(-1) == 0);
  const auto lines = curl.lines();
  BOOST_REQUIRE(!lines.empty());
  BOOST_TEST(lines[0].starts_with("HTTP/1.1 200 OK"));
  BOOST_TEST(curl.transcript().find("Content-Type: text/plain; version=0.0.4") !=
             std::string::npos);
  // Every sample line is `name{labels} value`, every family has HELP and TYPE.
  const std::regex sample(R"(^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$)");
  std::set<std::string> families;
  std::map<std::string, std::string> values;
  bool body = false;
  for (const auto& line : lines) {
    if (!body) {
      body = line.empty() || line == "\r";
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      families.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (!line.starts_with("# HELP ")) {
      BOOST_TEST(std::regex_match(line, sample), "not a sample: " << line);
      values[line.substr(0, line.rfind(' '))] = line.substr(line.rfind(' ') + 1);
    }
  }
  for (const char* family :
       {"clustervisor_cluster_state", "clustervisor_cluster_restarts_total",
        "clustervisor_cluster_exits_total", "clustervisor_cluster_events_received_total",
        "clustervisor_cluster_delivered_bytes_total", "clustervisor_cluster_outbox_bytes",
        "clustervisor_cluster_held_events", "clustervisor_cluster_resident_bytes",
        "clustervisor_cluster_cpu_seconds_total", "clustervisor_dropped_events_total",
        "clustervisor_waits_opened_total", "clustervisor_waits_ended_early_total",
        "clustervisor_waits_discarded_total", "clustervisor_supervisor_resident_bytes",
        "clustervisor_supervisor_open_fds"}) {
    BOOST_TEST(families.count(family) == 1u, family);
  }
  // Which supervisor answered: the bot, its file and the supervisor's pid.
  BOOST_TEST(values["clustervisor_info{name=\"bot\",config=\"" +
                    std::filesystem::canonical(config).string() + "\",pid=\"" +
                    std::to_string(run->pid()) + "\"}"] == "1",
             curl.transcript());
  BOOST_TEST(values["clustervisor_cluster_state{cluster=\"0\",state=\"running\"}"] == "1");
  BOOST_TEST(values["clustervisor_cluster_state{cluster=\"0\",state=\"queued\"}"] == "0");
  BOOST_TEST(values["clustervisor_cluster_restarts_total{cluster=\"1\"}"] == "1");
  BOOST_TEST(values["clustervisor_cluster_exits_total{cluster=\"1\",reason=\"failure\"}"] == "1");
  // Every reason has a series from the start, at 0 until it happens: a rate or an alert over
  // them sees a cluster's first exit too.
  BOOST_TEST(values["clustervisor_cluster_exits_total{cluster=\"0\",reason=\"failure\"}"] == "0");
  BOOST_TEST(values["clustervisor_cluster_exits_total{cluster=\"1\",reason=\"signal\"}"] == "0");
  BOOST_TEST(values["clustervisor_cluster_exits_total{cluster=\"1\",reason=\"spawn_failed\"}"] ==
             "0");
  BOOST_TEST(std::stol(values["clustervisor_supervisor_resident_bytes"]) > 0);
  // Each running worker's memory, as /proc gives it, and its CPU time (a number of seconds).
  for (const char* cluster : {"0", "1"}) {
    const std::string labels = std::string("{cluster=\"") + cluster + "\"}";
    BOOST_REQUIRE(values.contains("clustervisor_cluster_resident_bytes" + labels));
    BOOST_REQUIRE(values.contains("clustervisor_cluster_cpu_seconds_total" + labels));
    BOOST_TEST(std::stol(values["clustervisor_cluster_resident_bytes" + labels]) > 0, cluster);
    BOOST_CHECK_NO_THROW(
        (void)std::stod(values["clustervisor_cluster_cpu_seconds_total" + labels]));
  }
  // Anything but GET /metrics: the right status, and the supervisor unharmed.
  SupervisorRun missing({"curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
                         "http://" + address + "/nope"});
  missing.waitExit(20s);
  BOOST_TEST(missing.transcript().find("404") != std::string::npos, missing.transcript());
  SupervisorRun post({"curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
                      "--data", "x=1", "http://" + address + "/metrics"});
  post.waitExit(20s);
  BOOST_TEST(post.transcript().find("405") != std::string::npos, post.transcript());
  // Typed by hand (bare LF line ends), and a target in absolute form: both answered.
  const auto connectToEndpoint = [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to = loopback(port);
    BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
    return fd;
  };
  // The whole answer on `fd`: up to the end the supervisor sends after it.
  const auto askOn = [&](int fd, const std::string& request) {
    std::string answer;
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (pollfd in{fd, POLLIN, 0}; ::poll(&in, 1, 20'000) == 1; in.revents = 0) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) {
          break;
        }
        answer.append(buffer, static_cast<std::size_t>(n));
      }
    }
    return answer;
  };
  const auto ask = [&](const std::string& request) {
    const int fd = connectToEndpoint();
    std::string answer = askOn(fd, request);
    ::close(fd);
    return answer;
  };
  // 16 connections that send nothing (its limit) do not keep a scrape out: the oldest makes
  // room for it.
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) {
    idle.push_back(connectToEndpoint());
  }
  // (Accepted in the order they connected: all 16 before the scrape.)
  const auto crowded = ask("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  BOOST_TEST(crowded.starts_with("HTTP/1.1 200 OK\r\n"), crowded.substr(0, 200));
  // The oldest was closed to make room, before the scrape was answered: well before its request
  // deadline (5 s) would have closed it.
  pollfd first{idle.front(), POLLIN, 0};
  char byte = 0;
  BOOST_TEST((::poll(&first, 1, 2'000) == 1 && ::read(idle.front(), &byte, 1) <= 0));
  for (const int fd : idle) {
    ::close(fd);
  }
  // Nor do 16 that asked, had their answer, and never close: the oldest of those makes room.
  std::vector<int> lingering;
  for (int i = 0; i < 16; ++i) {
    lingering.push_back(connectToEndpoint());
    BOOST_REQUIRE(askOn(lingering.back(), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                      .starts_with("HTTP/1.1 200 OK\r\n"));
  }
  const auto crowdedAgain = ask("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  BOOST_TEST(crowdedAgain.starts_with("HTTP/1.1 200 OK\r\n"), crowdedAgain.substr(0, 200));
  for (const int fd : lingering) {
    ::close(fd);
  }
  const auto typed = ask("GET /metrics HTTP/1.0\nHost: localhost\n\n");
  BOOST_TEST(typed.starts_with("HTTP/1.1 200 OK\r\n"), typed.substr(0, 200));
  BOOST_TEST(typed.find("clustervisor_cluster_state{") != std::string::npos);
  const auto absolute =
      ask("GET http://" + address + "/metrics?x=1 HTTP/1.1\r\nHost: " + address + "\r\n\r\n");
  BOOST_TEST(absolute.starts_with("HTTP/1.1 200 OK\r\n"), absolute.substr(0, 200));
  // What a browser sends for a page whose site name was pointed at 127.0.0.1 (DNS rebinding):
  // refused, whichever way the name comes.
  const auto rebound =
      ask("GET /metrics HTTP/1.1\r\nHost: evil.example:" + std::to_string(port) + "\r\n\r\n");
  BOOST_TEST(rebound.starts_with("HTTP/1.1 403 Forbidden\r\n"), rebound.substr(0, 200));
  BOOST_TEST(rebound.find("clustervisor_") == std::string::npos, rebound);
  const auto reboundAbsolute = ask("GET http://evil.example:" + std::to_string(port) +
                                   "/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  BOOST_TEST(reboundAbsolute.starts_with("HTTP/1.1 403 Forbidden\r\n"),
             reboundAbsolute.substr(0, 200));
  BOOST_TEST(statusOf(config).at("totals").as_object().at("running").as_int64() == 2);
}

BOOST_AUTO_TEST_SUITE_END()
