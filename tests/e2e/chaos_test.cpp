// SPDX-License-Identifier: MIT
//
// Chaos under load, end to end: 8 clusters flood each other with numbered events (broadcast,
// emitTo, broadcastAndWait) while a driver with a reproducible seed SIGKILLs workers, SIGSTOPs
// one for a while and restarts others through the control socket. Afterwards the supervisor must
// be alive and answering, with no zombies and its fds and memory back to their levels, and the
// events must add up: see the checks at the end.
//
// CHAOS_SEED=<n> in the environment replays a run; the seed used is printed.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <boost/json.hpp>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_chaos)

using namespace clustervisor::test;
namespace json = boost::json;

namespace {

constexpr int kClusters = 8;
// The driver disturbs clusters 0..4 (kills, restarts) and SIGSTOPs cluster 5; 5, 6 and 7 are
// never restarted, so every event sent to them must arrive exactly once and in order.
constexpr int kDisturbed = 5;
constexpr int kStopped = 5;

long long nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// "key=value" fields of a probe line.
std::map<std::string, std::string> fieldsOf(const std::string& line) {
  std::map<std::string, std::string> fields;
  std::istringstream in(line);
  for (std::string word; in >> word;) {
    const auto eq = word.find('=');
    if (eq != std::string::npos) {
      fields[word.substr(0, eq)] = word.substr(eq + 1);
    }
  }
  return fields;
}

long number(const std::map<std::string, std::string>& fields, const std::string& key) {
  const auto it = fields.find(key);
  BOOST_REQUIRE_MESSAGE(it != fields.end(), "no " << key);
  return std::atol(it->second.c_str());
}

bool allRunning(const json::object& status) {
  for (const auto& c : status.at("clusters").as_array()) {
    if (c.as_object().at("state").as_string() != "running") {
      return false;
    }
  }
  return true;
}

void waitAllRunning(const std::filesystem::path& config) {
  BOOST_REQUIRE_MESSAGE(waitUntil([&] { return allRunning(statusOf(config)); }, 60s),
                        "not every cluster is running again");
}

pid_t pidOf(const std::filesystem::path& config, int cluster) {
  const auto status = statusOf(config);
  const auto& c =
      status.at("clusters").as_array().at(static_cast<std::size_t>(cluster)).as_object();
  return c.at("pid").is_int64() ? static_cast<pid_t>(c.at("pid").as_int64()) : -1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(nothing_meant_for_a_live_cluster_is_lost_under_kills_stops_and_restarts) {
  const unsigned seed = std::getenv("CHAOS_SEED") != nullptr
                            ? static_cast<unsigned>(std::atol(std::getenv("CHAOS_SEED")))
                            : static_cast<unsigned>(std::random_device{}());
  BOOST_TEST_MESSAGE("CHAOS_SEED=" << seed);
  std::mt19937 random(seed);

  TempDir dir;
  // No crash-loop limit and short backoffs: the driver kills far more often than a bot crashes.
  // A flood the machine keeps up with, so what is checked is delivery, not speed: one round of
  // events every 4 ms per cluster (8 ms in a sanitizer build); waits allowed 10 s.
  const std::string flood = std::string("PROBE_BURST = \"1\", PROBE_WAIT_MS = \"10000\", ") +
                            (sanitized() ? "PROBE_PACE_MS = \"8\"" : "PROBE_PACE_MS = \"4\"");
  const auto config = dir.write(
      "bot.toml", probeConfig(dir, kClusters, "chaos", flood,
                              "[restart]\ndelay = \"50ms\"\nmax_delay = \"200ms\"\nlimit = 0\n"
                              "[events]\nhold_max_count = 100000\n"));
  auto run = SupervisorRun::run(config);
  run->waitForLine("starting 8 clusters");  // the control socket listens from here on
  waitAllRunning(config);
  std::this_thread::sleep_for(300ms);  // the flood and the supervisor's buffers get going
  const ProcessUsage before = usageOf(run->pid());

  // The disturbances, each with when it began (monotonic ns, as the workers log) and the cluster
  // it struck; when it ended is known for a SIGSTOP at once, for a kill or restart once the
  // cluster's next run says it is up (which can take seconds on a loaded machine).
  struct Disturbance {
    long long begin = 0;
    int cluster = 0;
    long long end = 0;
  };
  std::vector<Disturbance> disturbed;
  std::size_t kills = 0;
  std::size_t restarts = 0;
  const auto chaosEnd = std::chrono::steady_clock::now() + 6s;
  const auto stopAt = std::chrono::steady_clock::now() + 2s;
  bool stopDone = false;
  while (std::chrono::steady_clock::now() < chaosEnd) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + random() % 200));
    if (!stopDone && std::chrono::steady_clock::now() >= stopAt) {
      stopDone = true;
      const pid_t pid = pidOf(config, kStopped);
      BOOST_REQUIRE(pid > 0);
      const long long begin = nowNs();
      BOOST_TEST_MESSAGE("SIGSTOP cluster " << kStopped << " for 1.5s");
      ::kill(pid, SIGSTOP);
      std::this_thread::sleep_for(1500ms);
      ::kill(pid, SIGCONT);
      disturbed.push_back({begin, kStopped, nowNs()});
      continue;
    }
    const int target = static_cast<int>(random() % kDisturbed);
    disturbed.push_back({nowNs(), target});
    if (random() % 3 == 0) {
      const auto restart = runCli({"restart", config.string(), std::to_string(target)});
      BOOST_TEST(restart.status == 0, restart.output);
      ++restarts;
    } else if (const pid_t pid = pidOf(config, target); pid > 0) {
      ::kill(pid, SIGKILL);
      ++kills;
    }
  }
  BOOST_TEST_MESSAGE(kills << " kills, " << restarts << " restarts through the control socket");

  // Every cluster back, then a quiet spell until a wait begun 3 s after the last disturbance has
  // ended (such waits must see every cluster), then the flood ends and every sender says what it
  // sent.
  waitAllRunning(config);
  long long lastDisturbance = 0;
  for (auto& d : disturbed) {
    if (d.end == 0) {
      const std::string up = "] UP id=" + std::to_string(d.cluster) + " ";
      const auto upLine = run->waitForLine(
          [&](const std::string& line) {
            return line.find(up) != std::string::npos &&
                   std::atoll(fieldsOf(line).at("t").c_str()) > d.begin;
          },
          "cluster " + std::to_string(d.cluster) + " up again after its disturbance", 60s);
      d.end = std::atoll(fieldsOf(upLine).at("t").c_str());
    }
    lastDisturbance = std::max(lastDisturbance, d.end);
  }
  run->waitForLine(
      [&](const std::string& line) {
        return line.find("WAITED id=") != std::string::npos &&
               std::atoll(fieldsOf(line).at("t0").c_str()) > lastDisturbance + 3'000'000'000LL;
      },
      "a broadcastAndWait begun 3 s after the last disturbance", 60s);
  std::ofstream(dir.path() / "quiesce") << "1\n";
  std::map<int, long> currentRun;  // cluster -> its run at the end
  for (int c = 0; c < kClusters; ++c) {
    const auto line = run->waitForLine("QUIESCED id=" + std::to_string(c) + " ", 60s);
    currentRun[c] = number(fieldsOf(line), "run");
  }
  // Each current run's "fin" reaches every other current run.
  run->waitForLines("FIN id=", static_cast<std::size_t>(kClusters * (kClusters - 1)), 60s);

  // 1. The supervisor is alive and answering; no zombies; fds and memory back to their levels.
  const auto status = statusOf(config);
  BOOST_TEST(allRunning(status));
  BOOST_TEST(zombieChildren(run->pid()).empty());
  // A status connection may still be closing: wait for the count to settle, with a deadline.
  ProcessUsage after = usageWhenFdsAre(run->pid(), before.fds);
  BOOST_TEST_MESSAGE("supervisor before: " << before.fds << " fds, " << before.rssKiB
                                           << " KiB; after: " << after.fds << " fds, "
                                           << after.rssKiB << " KiB");
  BOOST_TEST(after.fds == before.fds);
  // What the flood queued is freed as it drains, and handed back to the system within a sweep
  // (10 s). (A sanitizer's quarantine and shadow memory are not the supervisor's.)
  if (!sanitized()) {
    for (const auto deadline = std::chrono::steady_clock::now() + 25s;
         after.rssKiB >= before.rssKiB + 8 * 1024 && std::chrono::steady_clock::now() < deadline;
         after = usageOf(run->pid())) {
      std::this_thread::sleep_for(100ms);
    }
    BOOST_TEST(after.rssKiB < before.rssKiB + 8 * 1024,
               "RSS grew from " << before.rssKiB << " to " << after.rssKiB << " KiB");
  }

  // 2. In order, no gaps, no repeats, in every run of every cluster.
  BOOST_TEST(countLines(*run, {"CHAOS-BAD"}) == 0u, run->transcript());

  // 3. Exactly once: every event a current sender run sent to a cluster that stayed alive all
  //    along (5 stopped for a while, 6 and 7 untouched) arrived, from its first one on.
  for (const auto& line : run->linesContaining("FIN id=")) {
    const auto f = fieldsOf(line);
    const long receiver = number(f, "id");
    if (receiver < kDisturbed) {
      continue;
    }
    BOOST_TEST(number(f, "b") == number(f, "bSent"), line);
    BOOST_TEST(number(f, "bFirst") == 0, line);
    BOOST_TEST(number(f, "e") == number(f, "eSent"), line);
    BOOST_TEST(number(f, "eFirst") <= 0, line);  // -1: none was sent to it
  }
  // A restarted cluster's current run got everything sent after it was back: held emitTo events
  // included (the supervisor logs their delivery), and what it got is a tail of what was sent.
  for (const auto& line : run->linesContaining("FIN id=")) {
    const auto f = fieldsOf(line);
    if (number(f, "id") < kDisturbed && number(f, "e") > 0) {
      BOOST_TEST(number(f, "eFirst") + number(f, "e") == number(f, "eSent"), line);
    }
  }
  BOOST_TEST(countLines(*run, {"held event(s)"}) > 0u);
  // Nothing was dropped but what was still queued for a worker the driver killed (counted as
  // lost with it).
  const auto& totals = status.at("totals").as_object();
  BOOST_TEST(totals.at("dropped_events").as_int64() ==
                 totals.at("dropped_by_reason").as_object().at("worker_gone").as_int64(),
             "events were dropped (see the supervisor's log)");
  for (const auto& line : run->linesContaining("events still queued for its worker, which ")) {
    const std::string_view prefix = "clustervisor: error: cluster ";
    BOOST_TEST_REQUIRE(line.starts_with(prefix), line);
    BOOST_TEST(std::stol(line.substr(prefix.size())) < kDisturbed, line);
  }

  // 4. Every broadcastAndWait counted exactly the acknowledgements that were sent: the clusters
  //    it reports acknowledged all logged an ACK for it; undisturbed, all seven did.
  std::map<std::string, std::set<long>> acks;  // "waiter:run:k" -> ackers
  for (const auto& line : run->linesContaining("ACK id=")) {
    const auto f = fieldsOf(line);
    acks[std::to_string(number(f, "waiter")) + ":" + std::to_string(number(f, "waiterRun")) + ":" +
         std::to_string(number(f, "k"))]
        .insert(number(f, "id"));
  }
  std::size_t undisturbedWaits = 0;
  const auto waited = run->linesContaining("WAITED id=");
  BOOST_TEST(!waited.empty());
  for (const auto& line : waited) {
    const auto f = fieldsOf(line);
    const auto& ackers =
        acks[std::to_string(number(f, "id")) + ":" + std::to_string(number(f, "run")) + ":" +
             std::to_string(number(f, "k"))];
    std::set<long> reported;
    if (f.at("acked") != "-") {
      std::istringstream in(f.at("acked"));
      for (std::string id; std::getline(in, id, ',');) {
        reported.insert(std::atol(id.c_str()));
      }
    }
    BOOST_TEST(static_cast<long>(reported.size()) == number(f, "count"), line);
    for (const long c : reported) {
      BOOST_TEST(ackers.count(c) == 1u, line << ": cluster " << c << " never acknowledged");
    }
    // Undisturbed: no kill, stop or restart under way from 3 s before it began until it ended.
    const long long t0 = std::atoll(f.at("t0").c_str());
    const long long t1 = std::atoll(f.at("t1").c_str());
    const bool quiet = std::none_of(disturbed.begin(), disturbed.end(), [&](const Disturbance& d) {
      return d.begin <= t1 && d.end >= t0 - 3'000'000'000LL;
    });
    if (quiet) {
      ++undisturbedWaits;
      BOOST_TEST(number(f, "count") == kClusters - 1, line);
      BOOST_TEST(ackers.size() == static_cast<std::size_t>(kClusters - 1), line);
    }
  }
  BOOST_TEST_MESSAGE(waited.size() << " waits, " << undisturbedWaits << " undisturbed");
  BOOST_TEST(undisturbedWaits > 0u);  // the quiet spell above waited for one

  run->signal(SIGTERM);
  BOOST_TEST(run->waitExit(60s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
