// SPDX-License-Identifier: MIT
//
// Spawning, restarting and stopping, end to end.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_lifecycle)

using namespace clustervisor::test;

namespace {
std::unique_ptr<SupervisorRun> start(const TempDir& dir, int clusters, const std::string& mode,
                                     const std::string& environment = "") {
  return SupervisorRun::run(dir.write("bot.toml", probeConfig(dir, clusters, mode, environment)));
}

// A "flood" run of 3 clusters (see probe_worker.cpp), every worker ready.
struct Flood {
  std::filesystem::path config;
  std::unique_ptr<SupervisorRun> run;
};
Flood startFlood(const TempDir& dir, const std::string& environment, const std::string& extra) {
  Flood flood{dir.write("bot.toml", probeConfig(dir, 3, "flood", environment, extra)), nullptr};
  flood.run = SupervisorRun::run(flood.config);
  for (int id = 0; id < 3; ++id) {
    waitReady(*flood.run, id);
  }
  return flood;
}

// Clusters 1 and 2 of a flood got all 20000 events, in order; no event was dropped and no worker
// was found stalled.
void expectWholeFloodDeliveredAndNothingDropped(SupervisorRun& run,
                                                const std::filesystem::path& config) {
  run.waitForLine("[cluster 1] FLOOD got 20000 in order", 60s);
  run.waitForLine("[cluster 2] FLOOD got 20000 in order", 60s);
  BOOST_TEST(!run.hasLine("FLOOD broken"));
  BOOST_TEST(!run.hasLine("dropped, outbox full"));
  BOOST_TEST(!run.hasLine("took no bytes"), run.transcript());
  const auto totals = statusOf(config).at("totals").as_object();
  BOOST_TEST(totals.at("dropped_events").as_int64() == 0);
  BOOST_TEST(totals.at("receivers_stalled").as_int64() == 0);
}

// Failed starts of `cluster`: each an error line with the cause and "retrying in", and not a busy
// loop: each wait longer than the one before (the restart backoff doubles, with jitter).
// Returns the waits, in milliseconds.
std::vector<long> expectRetriesWithGrowingDelays(const std::vector<std::string>& lines,
                                                 int cluster) {
  BOOST_TEST_MESSAGE(lines.front());
  std::vector<long> delays;
  for (const auto& line : lines) {
    BOOST_TEST(line.find("clustervisor: error: cluster " + std::to_string(cluster)) == 0u, line);
    const auto at = line.rfind("; retrying in ");
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, line);
    delays.push_back(delayMs(line.substr(at + 14)));
  }
  for (std::size_t i = 1; i < delays.size(); ++i) {
    BOOST_TEST(delays[i] > delays[i - 1], lines[i - 1] << "\n" << lines[i]);
  }
  return delays;
}
}  // namespace

BOOST_AUTO_TEST_CASE(workers_get_their_environment_only_fds_0_to_3_and_default_signals) {
  TempDir dir;
  auto run = start(dir, 3, "basic", "PROBE_EXTRA = \"from-config\"");
  for (int c = 0; c < 3; ++c) {
    const auto id = std::to_string(c);
    run->waitForLine("[cluster " + id + "] START id=" + id + " pid=");
    const auto line = run->linesContaining("[cluster " + id + "] START")[0];
    BOOST_TEST(line.find(" total=3 fd=3 protocol=2 fds=0,1,2,3 extra=from-config pgid-is-pid=1") !=
                   std::string::npos,
               line);
    BOOST_TEST(line.find(" signals=default") != std::string::npos, line);
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

BOOST_AUTO_TEST_CASE(a_closed_connection_is_logged_only_for_a_worker_that_lives_on) {
  // Cluster 0 exits (its end of file comes with its exit); after that, cluster 1 closes its
  // socket and lives on. Cluster 1's line comes a second after its close: later than a line for
  // cluster 0's close, logged the same way, would have come.
  TempDir dir;
  auto run = start(dir, 2, "crash", "PROBE_CRASH = \"0\", PROBE_RAW = \"1:close-on-file\"");
  const pid_t first = startedPid(*run, 0);
  run->waitForLine("clustervisor: cluster 0 (pid " + std::to_string(first) +
                   ") exited with status 3 after ");
  std::ofstream(dir.path() / "close") << "1\n";
  run->waitForLine("[cluster 1] RAW closed");
  const auto line = run->waitForLine(" closed its connection and has not exited after 1s");
  BOOST_TEST(line.find("clustervisor: cluster 1 (pid ") == 0u, line);
  BOOST_TEST(run->linesContaining("closed its connection").size() == 1u, run->transcript());
}

BOOST_AUTO_TEST_CASE(malformed_frame_costs_only_the_worker_that_sent_it) {
  TempDir dir;
  auto run = start(dir, 3, "restart-hello", "PROBE_RAW = \"1:garbage\"");
  // The worker may be stopped before it can say it sent the garbage: wait for the verdict.
  const auto error = run->waitForLine(
      "protocol error: unknown frame type (238; the types are 1 to 11); disconnected, "
      "stopping it");
  BOOST_TEST(error.find("clustervisor: error: cluster 1 (pid ") == 0u, error);
  // It comes back and events flow between everyone again.
  run->waitForLine("[cluster 1] START id=1");
  run->waitForLine("[cluster 0] RECV back from=1");
  run->waitForLine("[cluster 2] RECV back from=1");
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
  BOOST_TEST(run->linesContaining("START id=2").size() == 1u);
  BOOST_TEST(run->linesContaining("protocol error:").size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_program_that_writes_text_to_its_connection_is_told_it_needs_the_sdk) {
  // Not an SDK worker: it takes the descriptor it was given for a place to write a greeting.
  TempDir dir;
  const auto worker = dir.write("worker.sh",
                                "#!/bin/sh\necho hello supervisor >&\"$CLUSTERVISOR_FD\"\n"
                                "exec sleep 600\n");
  std::filesystem::permissions(worker, std::filesystem::perms::owner_all);
  auto run = SupervisorRun::run(dir.write("bot.toml",
                                          "command = [\"./worker.sh\"]\nclusters = 1\n"
                                          "[restart]\ndelay = \"1m\"\n"));
  const auto error = run->waitForLine("protocol error: its first bytes are not a HELLO frame: ");
  BOOST_TEST(error.find("clustervisor: error: cluster 0 (pid ") == 0u, error);
  BOOST_TEST(error.find("; is it a clustervisor SDK worker? CLUSTERVISOR_FD is its connection to "
                        "the supervisor; disconnected, stopping it") != std::string::npos,
             error);
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

BOOST_AUTO_TEST_CASE(a_frame_cut_off_by_end_of_file_costs_only_the_worker_that_sent_it) {
  TempDir dir;
  // The worker closes its socket after half a frame and lives on: an error line, then its
  // silence gets it stopped as hung and restarted.
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 3, "restart-hello", "PROBE_RAW = \"1:truncated\"",
                                        "[heartbeat]\ninterval = \"100ms\"\ntimeout = \"1s\"\n")));
  const auto error = run->waitForLine(" closed its connection (in the middle of a frame; ");
  BOOST_TEST(error.find("clustervisor: error: cluster 1 (pid ") == 0u, error);
  BOOST_TEST(error.find(" bytes of it discarded)") != std::string::npos, error);
  const auto hung = run->waitForLine("(heartbeat.timeout): hung");
  BOOST_TEST(hung.find("clustervisor: error: cluster 1 (pid ") == 0u, hung);
  run->waitForLine("[cluster 1] START id=1");
  run->waitForLine("[cluster 0] RECV back from=1");
  run->waitForLine("[cluster 2] RECV back from=1");
  BOOST_TEST(!run->hasLine("RECV cut"));  // half an event is no event
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
  BOOST_TEST(run->linesContaining("START id=2").size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_flood_of_acks_for_unknown_waits_costs_only_the_worker_that_sends_it) {
  TempDir dir;
  // Cluster 2 sends acknowledgements for waits nobody opened, flat out, for the whole test;
  // cluster 0 broadcasts 20000 events meanwhile.
  const auto config =
      dir.write("bot.toml",
                probeConfig(dir, 3, "flood", "PROBE_RAW = \"2:ackflood\", PROBE_COUNT = \"20000\"",
                            "[heartbeat]\ntimeout = \"0s\"\n"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 1);
  waitReady(*run, 0);
  run->waitForLine("[cluster 2] RAW acks sent 1000000", 60s);
  const auto go = std::chrono::steady_clock::now();
  std::ofstream(dir.path() / "go") << "1\n";
  run->waitForLine("[cluster 1] FLOOD got 20000 in order", 60s);
  const auto elapsed = std::chrono::steady_clock::now() - go;
  BOOST_TEST_MESSAGE("20000 broadcasts delivered in "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                     << " ms during the ack flood");
  BOOST_TEST(!run->hasLine("FLOOD broken"));
  BOOST_TEST(!run->hasLine("dropped, outbox full"));
  // The flood goes on (the acks are ignored, as late acks for a closed wait are), and the
  // supervisor still answers.
  const auto status = statusOf(config);
  const auto& flooder = status.at("clusters").as_array().at(2).as_object();
  BOOST_TEST(flooder.at("state").as_string() == "running");
  BOOST_TEST(flooder.at("restarts").as_int64() == 0);  // never disconnected nor restarted
  BOOST_TEST(!run->hasLine("protocol error"), run->transcript());
  BOOST_TEST(!run->hasLine("closed its connection"), run->transcript());
  BOOST_TEST(status.at("totals").as_object().at("dropped_events").as_int64() == 0);
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
  BOOST_TEST(run->linesContaining("START id=1").size() == 1u);
}

namespace {
// Three clusters: 0 broadcasts `count` events of ~250 bytes once the file "go" exists, 1 reads
// them all, 2 takes its WELCOME, says it is ready and never reads again.
std::filesystem::path floodConfig(const TempDir& dir, int count, const std::string& outboxLimit,
                                  const std::string& more = "") {
  return dir.write(
      "bot.toml",
      probeConfig(dir, 3, "flood",
                  "PROBE_RAW = \"2:noread\", PROBE_COUNT = \"" + std::to_string(count) + "\"",
                  "[heartbeat]\ntimeout = \"0s\"\n" + more +
                      "[events]\nmax_payload = \"16KiB\"\noutbox_limit = \"" + outboxLimit +
                      "\"\n"));
}

std::unique_ptr<SupervisorRun> startFlood(const std::filesystem::path& config) {
  auto run = SupervisorRun::run(config);
  run->waitForLine("[cluster 2] RAW not reading");
  waitReady(*run, 1);
  waitReady(*run, 0);
  return run;
}
}  // namespace

BOOST_AUTO_TEST_CASE(events_still_queued_for_a_worker_that_dies_are_counted_and_logged_as_dropped) {
  TempDir dir;
  // Cluster 2 takes its WELCOME, says it is ready and never reads again: what cluster 0
  // broadcasts (3000 events of ~250 bytes, more than its socket takes and less than the 1 MiB
  // at which its senders would wait) piles up in its outbox, until it is killed.
  const auto config = floodConfig(dir, 3000, "8MiB", "[restart]\ndelay = \"10s\"\n");
  auto run = startFlood(config);
  // (A raw worker says no START line: its pid is the supervisor's.)
  const std::string started = run->waitForLine("clustervisor: cluster 2 (pid ");
  const pid_t stuck = static_cast<pid_t>(
      std::stol(started.substr(std::string_view("clustervisor: cluster 2 (pid ").size())));
  std::ofstream(dir.path() / "go") << "1\n";
  run->waitForLine("[cluster 1] FLOOD got 3000 in order", 60s);
  const auto before = statusOf(config);
  BOOST_TEST(before.at("clusters").as_array().at(2).as_object().at("queued_bytes").as_int64() > 0);
  BOOST_TEST(before.at("totals").as_object().at("dropped_events").as_int64() == 0);
  BOOST_REQUIRE(::kill(stuck, SIGKILL) == 0);
  // Its end of file or its exit, whichever the supervisor sees first, ends the connection.
  const auto line = run->waitForLine("events still queued for its worker, which ");
  BOOST_TEST((line.find(", which disconnected, were lost; ") != std::string::npos ||
              line.find(", which exited, were lost; ") != std::string::npos),
             line);
  BOOST_TEST(line.starts_with("clustervisor: error: cluster 2: "), line);
  const long lost =
      std::stol(line.substr(std::string_view("clustervisor: error: cluster 2: ").size()));
  BOOST_TEST(lost > 0);
  BOOST_TEST(lost <= 3000);
  BOOST_TEST(line.ends_with("; " + std::to_string(lost) + " dropped in total"), line);
  const auto after = statusOf(config);
  BOOST_TEST(after.at("totals").as_object().at("dropped_events").as_int64() == lost);
  BOOST_TEST(after.at("totals")
                 .as_object()
                 .at("dropped_by_reason")
                 .as_object()
                 .at("worker_gone")
                 .as_int64() == lost);
}

BOOST_AUTO_TEST_CASE(a_worker_that_never_reads_costs_only_itself_and_its_outbox_bound) {
  TempDir dir;
  // Cluster 2 takes its WELCOME, says it is ready and never reads again; cluster 0 broadcasts
  // 20000 events of ~250 bytes (5 MB, far past the 1 MiB outbox and the socket's buffer) as fast
  // as it can.
  const auto config = floodConfig(dir, 20000, "1MiB");
  auto run = startFlood(config);
  std::ofstream(dir.path() / "go") << "1\n";
  // The reader gets every event, in order, however far behind the stalled one is.
  run->waitForLine("[cluster 1] FLOOD got 20000 in order", 60s);
  BOOST_TEST(!run->hasLine("FLOOD broken"));
  // Cluster 0 waited for it until it was found stalled; from then on, what did not fit its
  // outbox was dropped for it alone, counted and logged.
  run->waitForLine(
      [](const std::string& line) {
        return line.find("cluster 2 (pid ") != std::string::npos &&
               line.find(") took no bytes for 2s with ") != std::string::npos;
      },
      "cluster 2 found stalled");
  const auto drop = run->waitForLine("cluster 2: event dropped, outbox full (");
  BOOST_TEST(drop.find("limit 1048576)") != std::string::npos, drop);
  BOOST_TEST(countLines(*run, {"cluster 1: ", "dropped, outbox full"}) == 0u);
  const auto parsed = statusOf(config);
  BOOST_TEST(parsed.at("totals").as_object().at("dropped_events").as_int64() > 0);
  BOOST_TEST(parsed.at("totals").as_object().at("receivers_stalled").as_int64() >= 1);
  const auto& cluster2 = parsed.at("clusters").as_array().at(2).as_object();
  BOOST_TEST(cluster2.at("queued_bytes").as_int64() <= 1048576);
  BOOST_TEST(cluster2.at("state").as_string() == "running");  // not restarted for being slow
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
  BOOST_TEST(run->linesContaining("START id=1").size() == 1u);
  // The supervisor's memory does not follow the flood into the stalled worker's queue.
  const long rssKiB = usageOf(run->pid()).rssKiB;
  BOOST_TEST_MESSAGE("supervisor RSS after the flood: " << rssKiB << " KiB");
  if (!sanitized()) {
    BOOST_TEST(rssKiB < 32 * 1024);
  }
}

namespace {
// Cluster 1 opens 100000 waits on cluster 0, which acknowledges each, and reads nothing until
// the file "read" exists: every wait queues an ACK and a WAIT_CLOSED for it (56 bytes), which
// its outbox takes past the limit (they must not be lost): 5.6 MB in all against a 64 KiB
// outbox, and its 2.5 MB of waits are more than its socket takes.
std::filesystem::path unreadWaitsConfig(const TempDir& dir, const std::string& heartbeat) {
  return dir.write(
      "bot.toml",
      probeConfig(dir, 2, "basic", "PROBE_RAW = \"1:waits-unread\", PROBE_COUNT = \"100000\"",
                  "[heartbeat]\n" + heartbeat +
                      "[events]\nmax_payload = \"1KiB\"\n"
                      "outbox_limit = \"64KiB\"\n"));
}
constexpr std::string_view kOwnBacklogLine =
    " bytes of the acknowledgements of its own broadcastAndWait calls: it does not read them, "
    "so nothing more is read from it until it is back within the limit";
}  // namespace

BOOST_AUTO_TEST_CASE(a_worker_that_does_not_read_its_own_waits_acknowledgements_is_held_back) {
  TempDir dir;
  const auto config = unreadWaitsConfig(dir, "timeout = \"0s\"\n");
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  run->waitForLine("[cluster 1] RAW opening 100000 waits without reading");
  const auto line = run->waitForLine(std::string(kOwnBacklogLine));
  BOOST_TEST(line.starts_with("clustervisor: cluster 1 (pid "), line);
  BOOST_TEST(
      line.find("more than its outbox limit (65536) and 524288 bytes of the") != std::string::npos,
      line);
  // Held back, it opens no more waits, so what is queued for it stays bounded: the limit, the
  // margin, and the acknowledgements of the waits it had open (unbounded: 5.6 MB).
  for (int look = 0; look < 5; ++look) {
    const auto status = statusOf(config);
    const auto& cluster1 = status.at("clusters").as_array().at(1).as_object();
    BOOST_TEST(cluster1.at("queued_bytes").as_int64() <= 1024 * 1024);
    BOOST_TEST(cluster1.at("state").as_string() == "running");
    BOOST_TEST(status.at("totals").as_object().at("dropped_events").as_int64() == 0);
    std::this_thread::sleep_for(100ms);
  }
  BOOST_TEST(!run->hasLine("RAW waits all sent"));
  // Once it reads, it is read again: the rest of its waits go through.
  std::ofstream(dir.path() / "read") << "1\n";
  run->waitForLine("[cluster 1] RAW waits all sent", 60s);
  const auto status = statusOf(config);
  BOOST_TEST(status.at("totals").as_object().at("senders_held_back").as_int64() >= 1);
  BOOST_TEST(status.at("totals").as_object().at("dropped_events").as_int64() == 0);
  BOOST_TEST(!run->hasLine("protocol error"), run->transcript());
  BOOST_TEST(!run->hasLine("sent no heartbeat"), run->transcript());
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_worker_held_for_its_own_backlog_that_reads_nothing_is_still_found_hung) {
  // Not reading, its heartbeats (it sends none) cannot be seen while it is held: it counts as
  // heard from only while it takes bytes, so heartbeats still find a hung worker.
  TempDir dir;
  const auto config = unreadWaitsConfig(dir, "interval = \"500ms\"\ntimeout = \"2s\"\n");
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  run->waitForLine(std::string(kOwnBacklogLine));
  const auto hung = run->waitForLine("clustervisor: error: cluster 1 (pid ", 30s);
  BOOST_TEST(hung.find(" sent no heartbeat for 2s") != std::string::npos, hung);
}

BOOST_AUTO_TEST_CASE(a_receiver_that_falls_behind_holds_back_its_sender_and_loses_nothing) {
  TempDir dir;
  // The smallest outbox (64 KiB): cluster 1 is stopped while cluster 0 floods 20000 events of
  // ~250 bytes, so its outbox passes the high-water mark at once.
  const auto flood = startFlood(dir, "PROBE_COUNT = \"20000\"",
                                "[heartbeat]\ntimeout = \"0s\"\n"
                                "[events]\nmax_payload = \"16KiB\"\noutbox_limit = \"64KiB\"\n"
                                "stall_timeout = \"1h\"\n");  // however slow the test is
  const auto& config = flood.config;
  const auto& run = flood.run;
  const pid_t slow = startedPid(*run, 1);
  BOOST_REQUIRE(::kill(slow, SIGSTOP) == 0);
  std::ofstream(dir.path() / "go") << "1\n";
  const auto heldBack = [&] {
    return statusOf(config).at("totals").as_object().at("senders_held_back").as_int64();
  };
  BOOST_REQUIRE(waitUntil([&] { return heldBack() > 0; }));  // cluster 0 waits for cluster 1
  BOOST_REQUIRE(::kill(slow, SIGCONT) == 0);
  // Both receivers get everything, in order; nothing was dropped anywhere.
  expectWholeFloodDeliveredAndNothingDropped(*run, config);
  BOOST_TEST(run->linesContaining("START id=1").size() == 1u);
}

namespace {
// Cluster 1's listener blocks in the first event of a flood of 20000 (~250 bytes each, 5 MB)
// until the test releases it. The SDK holds at most `receiveQueueLimit` (256 KiB here) of
// events its listeners have not taken and then stops reading, so the rest waits in the
// supervisor's outbox for cluster 1 (1 MiB), which holds the sender back: cluster 2, which reads
// at full speed, cannot get far ahead either. Nothing is lost. Without the bound the worker would
// read the whole flood into its own memory and the sender would never be held back.
void expectBlockedListenerToHoldBackItsSender(const std::string& threads) {
  TempDir dir;
  const auto flood =
      startFlood(dir,
                 "PROBE_COUNT = \"20000\", PROBE_BLOCK = \"1\", PROBE_RECEIVE_LIMIT = \"262144\"" +
                     (threads.empty() ? "" : ", " + threads),
                 // A listener on the I/O thread that blocks also stops the heartbeats.
                 "[heartbeat]\ntimeout = \"0s\"\n"
                 "[events]\nmax_payload = \"16KiB\"\noutbox_limit = \"1MiB\"\n"
                 "stall_timeout = \"1h\"\n");  // however slow the test is
  const auto& config = flood.config;
  const auto& run = flood.run;
  std::ofstream(dir.path() / "go") << "1\n";
  run->waitForLine("[cluster 1] FLOOD blocking");
  // Cluster 1's outbox reached the high-water mark (half its limit), which held the sender back,
  // and the worker stopped taking the flood: its outbox stays above the quarter mark (where the
  // sender would go on) and does not move. (With the default threads the worker may take a
  // little more after the hold began: up to its receive limit once the SDK's other thread has
  // taken the connection over from the blocked listener.)
  const auto queued = [&](const boost::json::value& status) {
    return status.at("clusters").as_array().at(1).as_object().at("queued_bytes").as_int64();
  };
  const auto waiting = [&] {
    const auto before = statusOf(config);
    if (before.at("totals").as_object().at("senders_held_back").as_int64() == 0 ||
        queued(before) < 256 * 1024) {
      return false;
    }
    std::this_thread::sleep_for(300ms);
    return queued(statusOf(config)) == queued(before);
  };
  BOOST_REQUIRE(waitUntil(waiting));
  // So the fast reader is far from the end as well.
  BOOST_TEST(!run->hasLine("[cluster 2] FLOOD got 20000"));
  const auto rssKiB = usageOf(startedPid(*run, 1)).rssKiB;
  BOOST_TEST_MESSAGE("blocked worker's RSS: " << rssKiB << " KiB");
  if (!sanitized()) {
    BOOST_TEST(rssKiB < 8 * 1024);  // the 5 MB flood is not in it
  }
  std::ofstream(dir.path() / "release") << "1\n";
  expectWholeFloodDeliveredAndNothingDropped(*run, config);
  BOOST_TEST(run->linesContaining("START id=1").size() == 1u);
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_blocked_listener_stops_its_worker_reading_and_holds_back_the_sender) {
  expectBlockedListenerToHoldBackItsSender("");
}

BOOST_AUTO_TEST_CASE(a_blocked_listener_on_the_io_thread_holds_back_the_sender_too) {
  expectBlockedListenerToHoldBackItsSender(kIoThread);
}

BOOST_AUTO_TEST_CASE(a_slow_listener_is_not_taken_for_a_stalled_worker_and_loses_nothing) {
  TempDir dir;
  // Cluster 1's listener takes 10 ms per event of ~600 bytes (60 KB/s) while cluster 0 floods
  // 20000 of them, past cluster 1's 256 KiB receive queue and its 1 MiB outbox; the default
  // stall timeout (2 s). Its SDK reads as the listener makes room, 64 KiB at a time (about a
  // second apart); a write blocked on its full socket is only woken after ~190 KiB, which would
  // be ~3 s: the supervisor sees the reads in between, so the sender is held back throughout.
  const auto flood = startFlood(dir,
                                "PROBE_COUNT = \"20000\", PROBE_PAD = \"560\", PROBE_SLOW = \"1\", "
                                "PROBE_SLOW_MS = \"10\", PROBE_RECEIVE_LIMIT = \"262144\"",
                                "[events]\nmax_payload = \"16KiB\"\noutbox_limit = \"1MiB\"\n"
                                "stall_timeout = \"2s\"\n");
  const auto& config = flood.config;
  const auto& run = flood.run;
  std::ofstream(dir.path() / "go") << "1\n";
  // Six seconds of the slow listener, three stall timeouts, with the sender waiting for it.
  run->waitForLine("[cluster 1] FLOOD slowly handled 600", 60s);
  BOOST_TEST(statusOf(config).at("totals").as_object().at("senders_held_back").as_int64() > 0);
  std::ofstream(dir.path() / "fast") << "1\n";
  expectWholeFloodDeliveredAndNothingDropped(*run, config);
}

BOOST_AUTO_TEST_CASE(a_slow_receiver_holds_its_senders_back_at_1_MiB_queued_not_half_its_limit) {
  TempDir dir;
  // The flood of the test above (12 MB) with the default outbox limit, 64 MiB: its half would
  // take the whole flood. The supervisor holds cluster 0 back once 1 MiB waits for cluster 1,
  // and that is all it queues for it, one event beyond at most, for as long as it is slow.
  const auto flood = startFlood(dir,
                                "PROBE_COUNT = \"20000\", PROBE_PAD = \"560\", PROBE_SLOW = \"1\", "
                                "PROBE_SLOW_MS = \"10\", PROBE_RECEIVE_LIMIT = \"262144\"",
                                "[events]\nmax_payload = \"16KiB\"\n");
  const auto& config = flood.config;
  const auto& run = flood.run;
  std::ofstream(dir.path() / "go") << "1\n";
  constexpr std::int64_t kMark = 1024 * 1024;
  std::int64_t most = 0;
  const auto queuedForCluster1 = [&] {
    const auto status = statusOf(config);
    const auto queued =
        status.at("clusters").as_array().at(1).as_object().at("queued_bytes").as_int64();
    most = std::max(most, queued);
    return queued;
  };
  BOOST_REQUIRE_MESSAGE(waitUntil([&] { return queuedForCluster1() >= kMark / 2; }),
                        "nothing queued for the slow cluster: " << most << " bytes at most");
  // A second of the slow listener (it handles 100 events a second) while the sender waits.
  BOOST_REQUIRE(waitUntil(
      [&] {
        queuedForCluster1();
        return run->hasLine("[cluster 1] FLOOD slowly handled 100");
      },
      60s));
  BOOST_TEST(most <= kMark + 1024, "queued for the slow cluster: " << most << " bytes at most");
  BOOST_TEST(statusOf(config).at("totals").as_object().at("senders_held_back").as_int64() > 0);
  std::ofstream(dir.path() / "fast") << "1\n";
  expectWholeFloodDeliveredAndNothingDropped(*run, config);
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

namespace {
// Two running clusters; `meanwhile` runs while they do; then `stop` stops them all, and the
// supervisor exits with status 0.
void expectStopOn(int stop, const std::function<void(SupervisorRun&, pid_t)>& meanwhile = {}) {
  TempDir dir;
  auto run = start(dir, 2, "basic");
  const pid_t pid = startedPid(*run, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(pid) + ") is ready");
  if (meanwhile) {
    meanwhile(*run, pid);
  }
  run->signal(stop);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  BOOST_TEST(!processExists(pid));
  run->waitForLine("clustervisor: received SIG" + std::string(::sigabbrev_np(stop)) +
                   "; stopping 2 workers");
  BOOST_TEST(run->linesContaining("; stopped").size() == 2u);
}
}  // namespace

BOOST_AUTO_TEST_CASE(sigint_stops_like_sigterm) {
  expectStopOn(SIGINT);
}

BOOST_AUTO_TEST_CASE(sigquit_stops_like_sigterm_and_sigusr1_or_sigusr2_are_logged_and_ignored) {
  expectStopOn(SIGQUIT, [](SupervisorRun& run, pid_t pid) {
    run.signal(SIGUSR1);
    run.waitForLine("clustervisor: received SIGUSR1; ignored");
    run.signal(SIGUSR2);
    run.waitForLine("clustervisor: received SIGUSR2; ignored");
    BOOST_TEST(processExists(pid));
    BOOST_TEST(!run.hasLine("stopping"), run.transcript());
  });
}

BOOST_AUTO_TEST_CASE(a_program_gone_since_the_start_is_reported_and_retried_with_growing_backoff) {
  // The file is checked when the supervisor starts (see config_errors); this worker deletes its
  // own program, so every restart finds it missing.
  TempDir dir;
  const auto worker = dir.write("worker.sh", "#!/bin/sh\nrm -f \"$0\"\nexit 3\n");
  std::filesystem::permissions(worker, std::filesystem::perms::owner_all);
  auto run = SupervisorRun::run(dir.write("bot.toml",
                                          "command = [\"./worker.sh\"]\nclusters = 1\n"
                                          "[restart]\ndelay = \"100ms\"\nlimit = 0\n"));
  const std::string expected = "clustervisor: error: cluster 0: cannot start \"" + worker.string() +
                               "\" in \"" + dir.path().string() +
                               "\": No such file or directory; retrying in ";
  // The worker's own exit took the first backoff step (100ms, less up to a quarter of jitter);
  // the first failed start takes the second.
  const auto delays = expectRetriesWithGrowingDelays(run->waitForLines(expected, 4), 0);
  BOOST_TEST(delays[0] >= 150);
  BOOST_TEST(delays[0] <= 200);
  // A start whose exec failed leaves no process behind, not even a zombie.
  BOOST_TEST(zombieChildren(run->pid()).empty());
  // status says why the cluster is down.
  const auto cluster = statusOf(dir.path() / "bot.toml").at("clusters").as_array().at(0);
  BOOST_TEST(
      cluster.as_object().at("last_exit") == "could not be started: No such file or directory",
      cluster);
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0);
}

BOOST_AUTO_TEST_CASE(a_program_no_longer_executable_is_named_in_the_error) {
  TempDir dir;
  // Executable when the supervisor starts; the worker takes the execute bit away and exits.
  const auto worker = dir.write("worker.sh", "#!/bin/sh\nchmod a-x \"$0\"\nexit 0\n");
  std::filesystem::permissions(worker, std::filesystem::perms::owner_all);
  auto run = SupervisorRun::run(
      dir.write("bot.toml",
                "command = [\"./worker.sh\"]\n[restart]\ndelay = \"50ms\"\nlimit = 1\n"
                "retry_failed_after = \"0s\"\n"));
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 69, run->transcript());
  // Its own exit took the one restart restart.limit allows; the failed start is the second.
  run->waitForLine("clustervisor: error: cluster 0: cannot start \"" +
                   (dir.path() / "worker.sh").string() + "\" in \"" + dir.path().string() +
                   "\": Permission denied; crash loop: more than 1 restart within 1m of run "
                   "time (restart.limit, restart.window); cluster 0 failed");
}

BOOST_AUTO_TEST_CASE(a_working_directory_gone_since_the_start_is_named_in_the_error) {
  TempDir dir;
  // There when the supervisor starts; the worker removes it and exits.
  std::filesystem::create_directory(dir.path() / "work");
  auto run = SupervisorRun::run(
      dir.write("bot.toml",
                "command = [\"/bin/sh\", \"-c\", \"cd .. && rmdir work; exit 3\"]\n"
                "working_directory = \"work\"\n[restart]\ndelay = \"50ms\"\n"));
  const auto lines = run->waitForLines(
      "clustervisor: error: cluster 0: cannot start \"/bin/sh\": its working directory \"" +
          (dir.path() / "work").string() +
          "\" (working_directory) is not usable: No such file or directory; retrying in ",
      2);
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
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
  BOOST_TEST(countLines(*run, {"was killed by SIGKILL after ", "; stopped"}) == 2u,
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
  BOOST_TEST(countLines(*run, {"was killed by SIGKILL after ", "; stopped"}) == 2u);
}

BOOST_AUTO_TEST_CASE(the_first_signal_during_a_stop_not_begun_by_one_lets_the_stop_go_on) {
  // As systemd does after an ExecStop=clustervisor stop --no-wait: the stop began over the
  // control socket, then the service manager sends SIGTERM. Only a second signal kills.
  TempDir dir;
  const auto config = dir.write("bot.toml",
                                "command = [\"/bin/sh\", \"-c\", \"trap '' TERM; "
                                "echo trapped; while :; do sleep 1; done\"]\n"
                                "clusters = 2\n[stop]\ntimeout = \"1h\"\n");
  auto run = SupervisorRun::run(config);
  run->waitForLines("] trapped", 2);
  const auto stop = runCli({"stop", "--no-wait", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  run->waitForLine("stop requested over the control socket; stopping 2 workers");
  run->signal(SIGTERM);
  run->waitForLine("received SIGTERM while already stopping; the stop goes on");
  BOOST_TEST(!run->hasLine("killing every worker now"), run->transcript());
  BOOST_TEST(!run->waitExit(0ms).has_value());
  // Clearly later than that first one (past the 200 ms window for duplicates): a second, another
  // stop signal, which is named with the first.
  std::this_thread::sleep_for(300ms);
  run->signal(SIGQUIT);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0);
  run->waitForLine("received SIGQUIT after SIGTERM; killing every worker now");
  BOOST_TEST(countLines(*run, {"was killed by SIGKILL after ", "; stopped"}) == 2u);
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
  // The detached process outlived its worker; the supervisor killed it as a leftover.
  std::ifstream pidFile(detached);
  pid_t leftover = 0;
  BOOST_REQUIRE(pidFile >> leftover);
  BOOST_TEST(waitGone(leftover), "the detached descendant " << leftover << " survived");
  run->waitForLine("clustervisor: killing pid " + std::to_string(leftover) + ", left behind");
  if (processExists(leftover)) {
    ::kill(leftover, SIGKILL);
  }
}

namespace {
// The descendants a "children" probe started ("CHILDREN group=<pid> session=<pid> chain=<pid>"):
// one in its process group, one in a session of its own, and the child of a setsid'd shell (see
// startChain in the probe).
struct Descendants {
  pid_t group;
  pid_t session;
  pid_t chain;
};

Descendants childrenOf(SupervisorRun& run, int cluster, std::size_t nth = 0) {
  const auto lines =
      run.waitForLines("[cluster " + std::to_string(cluster) + "] CHILDREN ", nth + 1);
  const auto& line = lines[nth];
  const auto pid = [&](const std::string& key) {
    return static_cast<pid_t>(
        std::atoi(line.substr(line.find(key + "=") + key.size() + 1).c_str()));
  };
  return {pid("group"), pid("session"), pid("chain")};
}
}  // namespace

BOOST_AUTO_TEST_CASE(grandchildren_and_setsid_grandchildren_do_not_survive_a_stop) {
  TempDir dir;
  auto run = start(dir, 2, "children");
  const auto [group0, session0, chain0] = childrenOf(*run, 0);
  const auto [group1, session1, chain1] = childrenOf(*run, 1);
  for (const pid_t pid : {group0, session0, chain0, group1, session1, chain1}) {
    BOOST_REQUIRE(processExists(pid));
  }
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  for (const pid_t pid : {group0, session0, chain0, group1, session1, chain1}) {
    BOOST_TEST(!processExists(pid), "descendant " << pid << " survived the stop");
    if (processExists(pid)) {
      ::kill(pid, SIGKILL);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_setsid_grandchild_goes_with_its_worker_and_the_new_worker_keeps_its_own) {
  TempDir dir;
  auto run = start(dir, 1, "children");
  const pid_t worker = startedPid(*run, 0);
  const auto [group, session, chain] = childrenOf(*run, 0);
  BOOST_REQUIRE(::kill(worker, SIGKILL) == 0);
  const auto [newGroup, newSession, newChain] = childrenOf(*run, 0, 1);
  BOOST_TEST(waitGone(group), "same-group grandchild " << group << " survived its worker");
  BOOST_TEST(waitGone(session), "setsid grandchild " << session << " survived its worker");
  run->waitForLine("clustervisor: killing pid " + std::to_string(session) + ", left behind");
  // The shell's child was not the supervisor's when the worker exited; it is once the shell,
  // killed as left behind, dies, and a later look finds it.
  BOOST_TEST(waitGone(chain), "great-grandchild " << chain << " survived its worker");
  run->waitForLine("clustervisor: killing pid " + std::to_string(chain) + ", left behind");
  // The new worker's own descendants are left alone.
  BOOST_TEST(processExists(newGroup));
  BOOST_TEST(processExists(newSession));
  BOOST_TEST(processExists(newChain));
  run->signal(SIGTERM);
  BOOST_REQUIRE(run->waitExit(30s).has_value());
  BOOST_TEST(waitGone(newSession));
  BOOST_TEST(waitGone(newChain));
  // Each leftover is named once, though it may take a while to die; the same-group grandchild
  // went with its worker's group, and is not named as left behind.
  const auto named = [&](pid_t pid) {
    return countLines(*run, {"clustervisor: killing pid " + std::to_string(pid) + ", "});
  };
  BOOST_TEST(named(session) == 1u, run->transcript());
  BOOST_TEST(named(chain) == 1u, run->transcript());
  BOOST_TEST(named(group) == 0u, run->transcript());
}

BOOST_AUTO_TEST_CASE(what_the_workers_of_a_killed_supervisor_left_running_goes_at_the_next_start) {
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "children"));
  auto first = SupervisorRun::run(config);
  const pid_t worker = startedPid(*first, 0);
  const auto [group, session, chain] = childrenOf(*first, 0);
  const std::array<pid_t, 3> leftBehind{group, session, chain};  // (a lambda's to see)
  first->signal(SIGKILL);  // nothing is left to stop what its workers started
  BOOST_REQUIRE(first->waitExit(30s).has_value());
  BOOST_TEST(waitGone(worker));  // the worker itself goes with the supervisor's socket
  for (const pid_t pid : {group, session, chain}) {
    BOOST_REQUIRE(processExists(pid));
  }
  // No supervisor runs the bot, but its workers' descendants do: stop and status say so.
  const auto warned = [&](const std::string& output) {
    // (Those three, and what they started.)
    const auto at =
        output.find(" processes started by the workers of a supervisor of " + config.string() +
                    " that is gone (pid " + std::to_string(first->pid()) + ") still run: ");
    const auto line = at == std::string::npos ? std::string() : output.substr(at);
    BOOST_TEST(
        line.find("; the next `clustervisor run` of it kills them, or: kill ") != std::string::npos,
        output);
    for (const pid_t pid : leftBehind) {
      BOOST_TEST(line.find(" " + std::to_string(pid)) != std::string::npos, output);
    }
  };
  const auto stop = runCli({"stop", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  BOOST_TEST(stop.output.find("is not running") != std::string::npos, stop.output);
  warned(stop.output);
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.status == 69, status.output);
  warned(status.output);
  for (const pid_t pid : {group, session, chain}) {
    BOOST_REQUIRE(processExists(pid));  // only said, not done
  }
  auto second = SupervisorRun::run(config);
  for (const pid_t pid : {group, session, chain}) {
    second->waitForLine("clustervisor: killing pid " + std::to_string(pid) +
                        ", left behind by a worker of cluster 0 of an earlier supervisor of this "
                        "bot (pid " +
                        std::to_string(first->pid()) + ") that is gone");
    BOOST_TEST(waitGone(pid), "leftover " << pid << " survived the next start");
  }
  // The new worker's own descendants are left alone.
  const auto [newGroup, newSession, newChain] = childrenOf(*second, 0);
  BOOST_TEST(processExists(newGroup));
  BOOST_TEST(processExists(newSession));
  BOOST_TEST(processExists(newChain));
  second->signal(SIGTERM);
  BOOST_REQUIRE(second->waitExit(30s).has_value());
  for (const pid_t pid : {group, session, chain, newGroup, newSession, newChain}) {
    if (processExists(pid)) {
      ::kill(pid, SIGKILL);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_left_behind_process_with_no_environment_yet_is_looked_at_again) {
  TempDir dir;
  auto run = start(dir, 1, "unmarked-child");
  const pid_t worker = startedPid(*run, 0);
  const auto line = run->waitForLine("[cluster 0] UNMARKED pid=");
  const pid_t child = std::atoi(line.substr(line.find("pid=") + 4).c_str());
  BOOST_REQUIRE(::kill(worker, SIGKILL) == 0);
  // When the worker was reaped, the child's environment (like that of one in the middle of an
  // exec) could not tell its cluster; the replacement is up and the child is still there.
  run->waitForLines("[cluster 0] UNMARKED pid=", 2);
  BOOST_REQUIRE(processExists(child));
  // Now it execs a program whose environment names cluster 0: the next look kills it.
  dir.write("exec", "");
  run->waitForLine("clustervisor: killing pid " + std::to_string(child) +
                   ", left behind by a worker of cluster 0 that is gone");
  BOOST_TEST(waitGone(child), "the left-behind process " << child << " survived");
  run->signal(SIGTERM);
  BOOST_REQUIRE(run->waitExit(30s).has_value());
}

BOOST_AUTO_TEST_CASE(a_second_supervisor_for_the_same_config_is_refused_with_exit_75) {
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  auto first = SupervisorRun::run(config);
  const pid_t worker = startedPid(*first, 0);
  auto second = SupervisorRun::run(config);
  const auto status = second->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 75, second->transcript());
  const auto refusal = second->waitForLine("is already running under another supervisor (pid " +
                                           std::to_string(first->pid()) + ")");
  BOOST_TEST(refusal.find("clustervisor: error: " + config.string()) == 0u, refusal);
  BOOST_TEST(second->linesContaining("started").empty(), second->transcript());
  // The first one is untouched.
  BOOST_TEST(processExists(worker));
  BOOST_TEST(first->linesContaining("START id=0").size() == 1u);
}

namespace {
// A supervisor refused with `runtime` as its XDG_RUNTIME_DIR left no lock file of its own there.
void expectNoLockFileLeftIn(const std::filesystem::path& runtime) {
  BOOST_TEST((!std::filesystem::exists(runtime / "clustervisor") ||
              std::filesystem::is_empty(runtime / "clustervisor")));
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_second_supervisor_with_another_runtime_directory_is_refused_too) {
  // As from a service (no XDG_RUNTIME_DIR) and a login shell: each finds another lock file, but
  // both lock the config file itself.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  const auto runtime = ownRuntimeDirectory(dir);
  auto first = SupervisorRun::run(config);
  const pid_t worker = startedPid(*first, 0);
  auto second = SupervisorRun::run(config, {"XDG_RUNTIME_DIR=" + runtime.string()});
  const auto status = second->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 75, second->transcript());
  const auto refusal = second->waitForLine("is already running under another supervisor (pid " +
                                           std::to_string(first->pid()) +
                                           "), which holds a lock on the file itself");
  BOOST_TEST(refusal.find("clustervisor: error: " + config.string()) == 0u, refusal);
  BOOST_TEST(second->linesContaining("START id=").empty(), second->transcript());
  BOOST_TEST(processExists(worker));
  expectNoLockFileLeftIn(runtime);
}

BOOST_AUTO_TEST_CASE(a_second_supervisor_with_another_runtime_directory_is_refused_after_a_rename) {
  // A deployment tool (or an editor) replaces the config by a rename: the first supervisor's lock
  // is on the file the path named before, so only its lock file, in another runtime directory,
  // tells of it. After a reload it holds the new file too.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  const auto runtime = ownRuntimeDirectory(dir);
  auto first = SupervisorRun::run(config);
  const pid_t worker = startedPid(*first, 0);
  std::filesystem::rename(dir.write("new.toml", probeConfig(dir, 1, "basic")), config);
  const auto refused = [&](const std::string& because) {
    auto second = SupervisorRun::run(config, {"XDG_RUNTIME_DIR=" + runtime.string()});
    BOOST_TEST(second->waitExit(30s).value_or(-1) == 75, second->transcript());
    second->waitForLine("clustervisor: error: " + config.string() +
                        " is already running under another supervisor (pid " +
                        std::to_string(first->pid()) + ")" + because);
    BOOST_TEST(second->linesContaining("START id=").empty(), second->transcript());
  };
  refused("; stop it first, or run a copy of the bot from a different config file (lock file ");
  const auto reload = runCli({"reload", config.string()});
  BOOST_REQUIRE_MESSAGE(reload.status == 0, reload.output);
  refused(", which holds a lock on the file itself");
  BOOST_TEST(processExists(worker));
  BOOST_TEST(first->linesContaining("START id=0").size() == 1u, first->transcript());
  expectNoLockFileLeftIn(runtime);
}

BOOST_AUTO_TEST_CASE(of_two_supervisors_that_find_each_other_the_one_that_locked_first_stays) {
  // The second is an older process (a wrapper script forked it before the first started, and it
  // execs clustervisor later): what counts is which took its lock first, not which process is
  // older, or both would run.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  const auto runtime = ownRuntimeDirectory(dir);
  SupervisorRun wrapper({"/usr/bin/env", "XDG_RUNTIME_DIR=" + runtime.string(), "/bin/sh", "-c",
                         "while [ ! -e \"$0/go\" ]; do sleep 0.02; done; exec \"$1\" run \"$2\"",
                         dir.path().string(), supervisorBinary().string(), config.string()});
  auto first = SupervisorRun::run(config);
  const pid_t worker = startedPid(*first, 0);
  // Replaced by a rename: the wrapper's supervisor can lock the new file.
  std::filesystem::rename(dir.write("new.toml", probeConfig(dir, 1, "basic")), config);
  dir.write("go", "");
  BOOST_TEST(wrapper.waitExit(30s).value_or(-1) == 75, wrapper.transcript());
  wrapper.waitForLine("is already running under another supervisor (pid " +
                      std::to_string(first->pid()) + ")");
  BOOST_TEST(wrapper.linesContaining("START id=").empty(), wrapper.transcript());
  BOOST_TEST(processExists(worker));
  expectNoLockFileLeftIn(runtime);
}

namespace {
// A process that holds a flock(2) on `file` until it is destroyed: named `name` (as comm), and
// run by user `uid` unless that is 0; `asSetuid`: only its real user id is `uid`, its effective
// and saved ones stay root's, as a setuid-root program's would.
struct LockHoldingProcess {
  pid_t pid = -1;
  LockHoldingProcess(const std::filesystem::path& file, const char* name, uid_t uid,
                     bool asSetuid = false) {
    int ready[2];
    BOOST_REQUIRE(::pipe(ready) == 0);
    pid = ::fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
      // System calls only: the test program has threads.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the test program
      ::prctl(PR_SET_NAME, name);
      const int fd = ::open(file.c_str(), O_RDONLY);
      const bool changed = uid == 0   ? true
                           : asSetuid ? ::setresuid(uid, 0, 0) == 0
                                      : ::setgid(uid) == 0 && ::setuid(uid) == 0;
      if (fd < 0 || !changed) {
        ::_exit(2);
      }
      ::prctl(PR_SET_DUMPABLE, 1);  // its /proc entry shows its user, not root
      if (::flock(fd, LOCK_EX) != 0) {
        ::_exit(2);
      }
      (void)!::write(ready[1], "x", 1);
      ::pause();
      ::_exit(0);
    }
    char byte = 0;
    const bool locked = ::read(ready[0], &byte, 1) == 1;
    ::close(ready[0]);
    ::close(ready[1]);
    BOOST_REQUIRE(locked);
  }
  LockHoldingProcess(const LockHoldingProcess&) = delete;
  LockHoldingProcess& operator=(const LockHoldingProcess&) = delete;
  ~LockHoldingProcess() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};
}  // namespace

BOOST_AUTO_TEST_CASE(a_lock_on_the_config_held_by_something_else_does_not_keep_the_bot_out) {
  // Anyone who can read a file can flock(2) it: only a supervisor holding it keeps one out.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  const LockHoldingProcess holder(config, "lock-holder", 0);
  auto run = SupervisorRun::run(config);
  const auto warning = run->waitForLine("clustervisor: warning: pid " + std::to_string(holder.pid));
  BOOST_TEST(warning.find(" (\"lock-holder\") holds a lock on " + config.string() +
                          " and is not a supervisor") != std::string::npos,
             warning);
  waitReady(*run, 0);
  run->signal(SIGTERM);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(another_users_process_named_clustervisor_locking_the_config_is_no_supervisor) {
  // A user who can read the file, neither root nor its owner, cannot pass for its supervisor by
  // naming a process clustervisor: the bot starts, and the CLI does not name that process.
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: needs root, to run the lock holder as another user");
    return;
  }
  for (const bool asSetuid : {false, true}) {
    BOOST_TEST_CONTEXT((asSetuid ? "a setuid-root program run by nobody" : "nobody")) {
      TempDir dir;
      const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
      const uid_t nobody = 65534;  // opens the file before it becomes nobody: needs no access
      const LockHoldingProcess holder(config, "clustervisor", nobody, asSetuid);
      auto run = SupervisorRun::run(config);
      const auto warning =
          run->waitForLine("clustervisor: warning: pid " + std::to_string(holder.pid));
      BOOST_TEST(warning.find(" (\"clustervisor\") holds a lock on " + config.string() +
                              " and is not a supervisor of this user, root or the file's "
                              "owner") != std::string::npos,
                 warning);
      waitReady(*run, 0);
      run->signal(SIGTERM);
      BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
      // The bot stopped, the holder still holds its lock: not taken for its supervisor.
      const auto status = runCli({"status", config.string()});
      BOOST_TEST(status.status == 69, status.output);
      BOOST_TEST(status.output.find("no supervisor is running for ") != std::string::npos,
                 status.output);
      BOOST_TEST(status.output.find(std::to_string(holder.pid)) == std::string::npos,
                 status.output);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_lock_left_by_a_killed_supervisor_does_not_block_the_next_start) {
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  auto first = SupervisorRun::run(config);
  const pid_t worker = startedPid(*first, 0);
  first->signal(SIGKILL);
  BOOST_REQUIRE(first->waitExit(30s).has_value());
  BOOST_TEST(waitGone(worker));
  auto second = SupervisorRun::run(config);
  const pid_t next = startedPid(*second, 0);
  second->waitForLine("cluster 0 (pid " + std::to_string(next) + ") is ready");
  second->signal(SIGTERM);
  const auto status = second->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, second->transcript());
}

BOOST_AUTO_TEST_CASE(what_a_stop_handler_sends_before_ending_its_event_loop_reaches_the_others) {
  // The example of clustervisor-worker(3): the handler broadcasts, stops the worker's own
  // io_context, and main returns.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 2, "leaving"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  const auto restart = runCli({"restart", config.string(), "0"});
  BOOST_TEST(restart.status == 0, restart.output);
  run->waitForLine("[cluster 1] RECV leaving from=0 data={\"cluster\":0}");
  run->waitForLine("[cluster 0] STOPPED cleanly");
  waitForExitLine(*run, 0, "exited with status 0");
  BOOST_TEST(!run->hasLine("did not exit within"), run->transcript());
}

// exit(3) from a listener destroys a Cluster of static storage duration on the SDK thread that
// runs the listener: the worker still exits with its own status, and what the listener sent
// before it reaches the others.
void expectCleanExitFromListener(const std::string& threads, bool local = false) {
  TempDir dir;
  const auto config = dir.write(
      "bot.toml",
      probeConfig(dir, 2, "exit-from-listener",
                  "PROBE_THREADS = \"" + threads + "\"" + (local ? ", PROBE_LOCAL = \"1\"" : "")));
  auto run = SupervisorRun::run(config);
  run->waitForLine("[cluster 0] EXITING from a listener");
  run->waitForLine("[cluster 1] RECV bye from=0 data={\"from\":0}");
  waitForExitLine(*run, 0, "exited with status 0");
  BOOST_TEST(!run->hasLine("terminate"), run->transcript());
  BOOST_TEST(!run->hasLine("was killed by"), run->transcript());
}

BOOST_AUTO_TEST_CASE(exit_from_a_listener_with_a_static_cluster_ends_the_worker_cleanly) {
  expectCleanExitFromListener("default");
}

BOOST_AUTO_TEST_CASE(exit_from_a_listener_on_the_io_thread_with_a_static_cluster_ends_cleanly) {
  expectCleanExitFromListener("io");
}

BOOST_AUTO_TEST_CASE(exit_from_a_listener_on_the_workers_executor_sends_what_it_sent_first) {
  expectCleanExitFromListener("executor");
}

BOOST_AUTO_TEST_CASE(exit_from_a_listener_with_a_local_cluster_sends_what_it_sent_first) {
  // exit(3) destroys no local: the SDK writes what is queued at exit instead.
  expectCleanExitFromListener("default", true);
}

BOOST_AUTO_TEST_CASE(a_child_forked_by_a_listener_that_exits_sends_nothing_of_its_parents) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write("bot.toml", probeConfig(dir, 2, "fork-in-listener")));
  BOOST_TEST(run->waitForLine("[cluster 1] FORKED copies=") == "[cluster 1] FORKED copies=1",
             run->transcript());
  BOOST_TEST(!run->hasLine("protocol error"), run->transcript());
}

BOOST_AUTO_TEST_CASE(a_fault_in_a_listener_reaches_the_workers_own_signal_handler) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write("bot.toml", probeConfig(dir, 2, "fault-in-listener")));
  run->waitForLine("[cluster 0] FAULTING in a listener");
  run->waitForLine("[cluster 0] CAUGHT SIGSEGV");
  waitForExitLine(*run, 0, "exited with status 42");
  BOOST_TEST(!run->hasLine("NOT CAUGHT"), run->transcript());
}

BOOST_AUTO_TEST_CASE(a_worker_with_an_on_stop_handler_is_told_first_and_exits_cleanly) {
  TempDir dir;
  auto run = start(dir, 2, "onstop");
  const pid_t pid = startedPid(*run, 0);
  run->waitForLine("cluster 0 (pid " + std::to_string(pid) + ") is ready");
  waitReady(*run, 1);
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  // The handler ran with the time left before SIGKILL (stop.timeout, 5s) and the worker left on
  // its own: no stop signal reached it.
  BOOST_TEST(run->linesContaining("] STOP untilKill=5000").size() == 2u, run->transcript());
  BOOST_TEST(countLines(*run, {"exited with status 0 after ", "; stopped"}) == 2u,
             run->transcript());
  // The stop line says when the signal would come (stop.signal_delay, at most half the timeout).
  BOOST_TEST(run->hasLine("received SIGTERM; stopping 2 workers (SIGTERM 2.5s later to the ones "
                          "with an onStop handler, SIGKILL after 5s; send the signal again to "
                          "kill at once)"),
             run->transcript());
}

BOOST_AUTO_TEST_CASE(stopping_works_while_a_cluster_is_backing_off_or_still_starting) {
  TempDir dir;
  // Cluster 0 crashed and waits out a long backoff; cluster 1 never becomes ready.
  auto run = SupervisorRun::run(dir.write(
      "bot.toml",
      probeConfig(dir, 2, "never-ready", "PROBE_ONLY = \"1\"",
                  "[restart]\ndelay = \"1h\"\nmax_delay = \"1h\"\n[start]\ntimeout = \"1h\"\n")));
  const pid_t crashing = startedPid(*run, 0);
  run->waitForLine("cluster 0 (pid " + std::to_string(crashing) + ") is ready");
  BOOST_REQUIRE(::kill(crashing, SIGKILL) == 0);
  run->waitForLine("cluster 0 (pid " + std::to_string(crashing) + ") was killed by SIGKILL");
  run->waitForLine("[cluster 1] NOT READY");
  run->signal(SIGTERM);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  run->waitForLine("received SIGTERM; stopping 1 worker ");
  // Nothing was started after the stop began.
  BOOST_TEST(run->linesContaining("started (restart").empty(), run->transcript());
}

BOOST_AUTO_TEST_CASE(emit_to_a_restarting_cluster_is_delivered_in_order_when_it_is_back) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write(
      "bot.toml", probeConfig(dir, 2, "emit-on-file", "", "[restart]\ndelay = \"3s\"\n")));
  const pid_t target = startedPid(*run, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(target) + ") is ready");
  BOOST_REQUIRE(::kill(target, SIGKILL) == 0);
  run->waitForLine("cluster 1 (pid " + std::to_string(target) + ") was killed by SIGKILL");
  dir.write("send", "now\n");
  run->waitForLine("[cluster 0] SENT 20");
  // Sent while cluster 1 was down: held, then delivered to the new worker, in order.
  BOOST_TEST(run->linesContaining("clustervisor: cluster 1 (pid ").size() >= 1u);
  const pid_t back = startedPid(*run, 1, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(back) + ") connected; delivering 20 held");
  const auto received = run->waitForLines("[cluster 1] RECV held from=0", 20);
  for (int n = 0; n < 20; ++n) {
    BOOST_TEST(received[static_cast<std::size_t>(n)].find("data={\"n\":" + std::to_string(n) +
                                                          "}") != std::string::npos,
               received[static_cast<std::size_t>(n)]);
  }
}

BOOST_AUTO_TEST_CASE(held_events_over_the_configured_limit_are_counted_and_logged) {
  TempDir dir;
  auto run = SupervisorRun::run(dir.write(
      "bot.toml", probeConfig(dir, 2, "emit-on-file", "",
                              "[restart]\ndelay = \"3s\"\n[events]\nhold_max_count = 5\n")));
  const pid_t target = startedPid(*run, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(target) + ") is ready");
  BOOST_REQUIRE(::kill(target, SIGKILL) == 0);
  run->waitForLine("cluster 1 (pid " + std::to_string(target) + ") was killed by SIGKILL");
  dir.write("send", "now\n");
  run->waitForLine("[cluster 0] SENT 20");
  // The first over the limit is logged at once, with the running total; the rest within the
  // rate limit are counted, and reported when that second is over, though no drop follows.
  const auto drop = run->waitForLine(
      "cluster 1 is not connected and its held events are at the "
      "limit (5 events, ");
  BOOST_TEST(drop.find("event from cluster 0 dropped; 1 dropped in total") != std::string::npos,
             drop);
  // (In one line when the 14 others came within that second, as they do: they are one burst.)
  const auto rest = run->waitForLine("; 15 dropped in total");
  BOOST_TEST(
      rest.find(" more events dropped since the last report (hold_full ") != std::string::npos,
      rest);
  const pid_t back = startedPid(*run, 1, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(back) + ") connected; delivering 5 held");
  const auto received = run->waitForLines("[cluster 1] RECV held from=0", 5);
  for (int n = 0; n < 5; ++n) {
    BOOST_TEST(received[static_cast<std::size_t>(n)].find("data={\"n\":" + std::to_string(n) +
                                                          "}") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(cluster_id_total_and_shards_are_the_same_after_every_restart) {
  TempDir dir;
  auto run = SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, 4, "basic", "", "[shards]\ntotal = 10\n")));
  const std::vector<std::string> expected = {"0,1,2", "3,4,5", "6,7", "8,9"};
  for (std::size_t round = 0; round < 3; ++round) {
    for (int c = 0; c < 4; ++c) {
      const auto id = std::to_string(c);
      const auto& shards = expected[static_cast<std::size_t>(c)];
      const auto start = run->waitForLines("[cluster " + id + "] START id=" + id, round + 1)[round];
      BOOST_TEST(start.find(" total=4 ") != std::string::npos, start);
      BOOST_TEST(start.find(" shards=" + shards + " totalShards=10") != std::string::npos, start);
      const auto sdk = run->waitForLines("[cluster " + id + "] SDK ", round + 1)[round];
      BOOST_TEST(sdk.find("SDK id=" + id + " total=4 shards=" + shards + " totalShards=10") !=
                     std::string::npos,
                 sdk);
    }
    if (round < 2) {
      for (int c = 0; c < 4; ++c) {
        ::kill(startedPid(*run, c, round), SIGKILL);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(
    a_supervisor_started_with_its_standard_descriptors_closed_gives_them_dev_null) {
  // Closed, the lock file, the config or a socket would take their numbers, and log lines would
  // be written into those.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  SupervisorRun run({"/bin/sh", "-c", "exec \"$0\" run \"$1\" <&- >&- 2>&-",
                     supervisorBinary().string(), config.string()});
  BOOST_REQUIRE(waitUntil([&] {
    const auto status = runCli({"status", config.string(), "--json"});
    return status.status == 0 && status.output.find("\"running\"") != std::string::npos;
  }));
  for (const int fd : {0, 1, 2}) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(
        "/proc/" + std::to_string(run.pid()) + "/fd/" + std::to_string(fd), ec);
    BOOST_TEST(target == "/dev/null", "descriptor " << fd << " is " << target);
  }
  BOOST_TEST(runCli({"stop", config.string()}).status == 0);
  BOOST_TEST(run.waitExit(30s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_CASE(running_out_of_descriptors_while_spawning_is_an_error_and_a_retry) {
  TempDir dir;
  const auto config = dir.write(
      "bot.toml", probeConfig(dir, 2, "basic", "", "[restart]\ndelay = \"100ms\"\nlimit = 0\n"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 1);
  waitReady(*run, 0);
  // The supervisor's descriptor limit lowered below the lowest free descriptor: what it has
  // stays open, but a new worker's socket pair and pipes cannot be made.
  rlimit original{};
  rlimit lowered{};
  BOOST_REQUIRE(::prlimit(run->pid(), RLIMIT_NOFILE, nullptr, &original) == 0);
  lowered.rlim_cur = 5;
  lowered.rlim_max = original.rlim_max;
  BOOST_REQUIRE(::prlimit(run->pid(), RLIMIT_NOFILE, &lowered, nullptr) == 0);
  BOOST_REQUIRE(::kill(startedPid(*run, 1), SIGKILL) == 0);
  // Each attempt is an error line naming the cause, followed by a growing backoff.
  expectRetriesWithGrowingDelays(run->waitForLines("Too many open files", 3), 1);
  BOOST_TEST(processExists(run->pid()));
  // With descriptors to spare again, the next attempt starts the cluster.
  BOOST_REQUIRE(::prlimit(run->pid(), RLIMIT_NOFILE, &original, nullptr) == 0);
  const auto restarted = startedPid(*run, 1, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(restarted) + ") is ready");
  BOOST_TEST(statusOf(config).at("totals").as_object().at("running").as_int64() == 2);
  BOOST_TEST(run->linesContaining("START id=0").size() == 1u);
}

BOOST_AUTO_TEST_CASE(running_out_of_processes_while_spawning_is_an_error_and_a_retry) {
  // RLIMIT_NPROC never binds root: as root, the supervisor runs as nobody, from copies of the
  // binaries that nobody may run, in a directory nobody may write.
  std::vector<std::string> prefix;
  if (::geteuid() == 0) {
    if (!std::filesystem::exists("/usr/bin/setpriv")) {
      BOOST_TEST_MESSAGE("root without setpriv: cannot run as another user; skipped");
      return;
    }
    prefix = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  }
  TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms::all);
  const auto supervisor = dir.path() / "clustervisor";
  const auto probe = dir.path() / "probe-worker";
  std::filesystem::copy_file(supervisorBinary(), supervisor);
  std::filesystem::copy_file(probeWorkerBinary(), probe);
  std::string text = probeConfig(
      dir, 2, "basic", "",
      "[restart]\ndelay = \"100ms\"\nlimit = 0\n[control]\nsocket = \"control.sock\"\n");
  text.replace(text.find(probeWorkerBinary().string()), probeWorkerBinary().string().size(),
               probe.string());
  const auto config = dir.write("bot.toml", text);
  std::vector<std::string> argv = prefix;
  // A runtime directory in the test's directory, where nobody may create its own.
  const auto runtime = dir.path() / "runtime";
  std::filesystem::create_directory(runtime);
  std::filesystem::permissions(runtime, std::filesystem::perms::all);
  argv.insert(argv.end(), {"/usr/bin/env", "XDG_RUNTIME_DIR=" + runtime.string(),
                           supervisor.string(), "run", config.string()});
  SupervisorRun run(argv);
  waitReady(run, 1);
  waitReady(run, 0);
  // The supervisor's soft RLIMIT_NPROC set to 1 (tasks of the uid: no fork succeeds), then back.
  // Only the same uid may change it (root would need CAP_SYS_RESOURCE, which a container may
  // not grant), so prlimit(1) runs as the supervisor's user.
  const auto setSoftLimit = [&](const std::string& value) {
    std::string command;
    for (const auto& word : prefix) {
      command += word + " ";
    }
    command += "prlimit --pid " + std::to_string(run.pid()) + " --nproc=" + value + ":";
    return std::system(command.c_str()) == 0;
  };
  std::string original;
  {
    std::ifstream limits("/proc/" + std::to_string(run.pid()) + "/limits");
    for (std::string line; std::getline(limits, line);) {
      if (line.rfind("Max processes", 0) == 0) {
        std::istringstream(line.substr(13)) >> original;
      }
    }
  }
  BOOST_REQUIRE(!original.empty());
  BOOST_REQUIRE(setSoftLimit("1"));
  BOOST_REQUIRE(::kill(startedPid(run, 1), SIGKILL) == 0);
  expectRetriesWithGrowingDelays(run.waitForLines("Resource temporarily unavailable", 3), 1);
  BOOST_TEST(processExists(run.pid()));
  BOOST_REQUIRE(setSoftLimit(original));
  const auto restarted = startedPid(run, 1, 1);
  run.waitForLine("cluster 1 (pid " + std::to_string(restarted) + ") is ready");
  BOOST_TEST(run.linesContaining("START id=0").size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
