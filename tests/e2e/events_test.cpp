// SPDX-License-Identifier: MIT
//
// The EventBus contract (DESIGN.md §3), end to end: real supervisor, real probe workers.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/syscall.h>

#include <filesystem>
#include <fstream>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_events)

using namespace clustervisor::test;

namespace {
std::unique_ptr<SupervisorRun> start(const TempDir& dir, int clusters, const std::string& mode,
                                     const std::string& environment = "",
                                     const std::string& extra = "") {
  return SupervisorRun::run(
      dir.write("bot.toml", probeConfig(dir, clusters, mode, environment, extra)));
}

// Parses "key=value" out of a probe line.
std::string field(const std::string& line, const std::string& key) {
  const auto at = line.find(" " + key + "=");
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "no " << key << " in: " << line);
  const auto begin = at + key.size() + 2;
  return line.substr(begin, line.find(' ', begin) - begin);
}

// The checks below run with the SDK's default threads and with listeners on its I/O thread
// (kIoThread): the same contract either way.

// The SDK starts the threads the environment asks for: its I/O thread, and its dispatch thread
// unless listeners run on the I/O thread. ThreadSanitizer's runtime starts a thread of its own
// with the first one the program creates.
void expectSdkThreads(SupervisorRun& run, int cluster, const std::string& environment) {
  const int runtimeThreads = sanitizer() == Sanitizer::kThread ? 1 : 0;
  const auto line = run.waitForLine("[cluster " + std::to_string(cluster) + "] SDK id=");
  BOOST_TEST(
      std::stoi(field(line, "sdkThreads")) == (environment == kIoThread ? 1 : 2) + runtimeThreads,
      line);
}

void expectRawAndParsedListenersInOrder(const std::string& environment) {
  TempDir dir;
  auto run = start(dir, 2, "raw-listeners", environment);
  expectSdkThreads(*run, 1, environment);
  // The last of the three events: an empty payload, null for parsed listeners.
  run->waitForLine("[cluster 1] PARSED2 null");
  std::vector<std::string> seen;
  for (const auto& line : run->linesContaining("[cluster 1] ")) {
    if (line.find("] PARSED") != std::string::npos || line.find("] RAW") != std::string::npos) {
      seen.push_back(line.substr(line.find("] ") + 2));
    }
  }
  // In the order the listeners were added; the raw one sees the text exactly as it was sent;
  // text that is not JSON reaches a raw listener, and with no parsed listener it is not parsed.
  const std::vector<std::string> expected = {"PARSED1 {\"n\":1}", "RAW r from=0 text={\"n\": 1}",
                                             "PARSED2 {\"n\":1}", "RAW bad text=not json",
                                             "PARSED1 null",      "RAW r from=0 text=",
                                             "PARSED2 null"};
  BOOST_TEST(seen == expected, run->transcript());
  BOOST_TEST(run->linesContaining("LISTENER_ERROR").empty(), run->transcript());
}

// The SDK's own report, without an error handler or with one that throws.
void expectErrorReports(const std::string& handler, const std::string& handlerNote) {
  TempDir dir;
  auto run = start(dir, 2, "error-reports", "PROBE_ERROR_HANDLER = \"" + handler + "\"");
  run->waitForLine("[cluster 1] MARKER");
  // Empty and 256 bytes are refused by on(), once() and onRaw(); 255 bytes is a name.
  const std::vector<std::string> names = {
      "ON_BAD_NAME on threw on: event name must be 1 to 255 bytes (got 0 bytes)",
      "ON_BAD_NAME on threw on: event name must be 1 to 255 bytes (got 256 bytes)",
      "ON_BAD_NAME once threw once: event name must be 1 to 255 bytes (got 0 bytes)",
      "ON_BAD_NAME onRaw threw onRaw: event name must be 1 to 255 bytes (got 256 bytes)",
      "ON_LONGEST_NAME accepted"};
  for (const auto& expected : names) {
    BOOST_TEST(run->hasLine("[cluster 1] " + expected), run->transcript());
  }
  // Not given to the parsed listener (the raw one gets it), rather than a listener failing.
  run->waitForLine(
      "[cluster 1] clustervisor-worker: event \"nj\" not given to its JSON "
      "listeners: payload from cluster 0 is not valid JSON: ");
  BOOST_TEST(run->linesContaining("NJ called").empty(), run->transcript());
  run->waitForLine("[cluster 1] RAW nj {bad");
  const auto boom = run->waitForLine(
      "[cluster 1] clustervisor-worker: listener for \"boom\" "
      "failed: boom from listener");
  BOOST_TEST(boom.ends_with("boom from listener" + handlerNote), boom);
}

BOOST_AUTO_TEST_CASE(without_an_error_handler_the_sdk_reports_what_failed_on_standard_error) {
  expectErrorReports("none", "");
}

BOOST_AUTO_TEST_CASE(an_error_handler_that_throws_is_reported_with_the_listeners_error) {
  expectErrorReports("throws", " (and the error handler threw: handler broke)");
}

void expectEventsInOrder(const std::string& environment) {
  TempDir dir;
  auto run = start(dir, 2, "order", environment);
  expectSdkThreads(*run, 0, environment);
  run->waitForLine("[cluster 1] ORDER sent 5000", 60s);
  run->waitForLine("[cluster 0] ORDER done 5000", 60s);
  BOOST_TEST(run->linesContaining("ORDER broken").empty(), run->transcript());
  // Payload copies a listener kept still hold what was sent (the SDK reuses its parse memory).
  const auto kept = run->waitForLine("[cluster 0] ORDER kept");
  BOOST_TEST(field(kept, "intact") == "100");
  BOOST_TEST(field(kept, "of") == "100");
}

void expectAcksAfterListenersAndNothingStoppedByThrows(const std::string& environment) {
  TempDir dir;
  auto run = start(dir, 4, "acks", environment);
  expectSdkThreads(*run, 2, environment);
  const auto line = run->waitForLine("[cluster 0] ACKS acked=");
  BOOST_TEST(field(line, "acked") == "3");
  BOOST_TEST(field(line, "clusters") == "[1,2,3]");
  BOOST_TEST(field(line, "timedOut") == "0");
  BOOST_TEST(field(run->waitForLine("[cluster 0] ACKS listenersDoneBeforeReturn="),
                   "listenersDoneBeforeReturn") == "3");
  // Replies the listeners sent before their acknowledgements were handled before the future
  // returned.
  BOOST_TEST(field(run->waitForLine("[cluster 0] ACKS repliesHandledBeforeReturn="),
                   "repliesHandledBeforeReturn") == "3");
  run->waitForLine("[cluster 2] LISTENER_ERROR work listener failed on purpose");
  // The worker whose listener threw kept running and acknowledging.
  BOOST_TEST(field(run->waitForLine("[cluster 0] ACKS again="), "again") == "3");
  // A completion handler that throws reaches the error handler; the worker goes on.
  run->waitForLine(
      "[cluster 0] LISTENER_ERROR (completion handler) completion handler failed on purpose");
  BOOST_TEST(field(run->waitForLine("[cluster 0] ACKS afterThrowingHandler="),
                   "afterThrowingHandler") == "3");
  BOOST_TEST(run->linesContaining("exited").empty(), run->transcript());
}
}  // namespace

BOOST_AUTO_TEST_CASE(broadcast_reaches_every_other_cluster_and_skips_the_sender) {
  TempDir dir;
  auto run = start(dir, 4, "broadcast");
  for (int c = 1; c < 4; ++c) {
    run->waitForLine("[cluster " + std::to_string(c) + "] RECV b from=0 data={\"n\":1}");
  }
  // The sender's emitTo to itself was sent after the broadcast on the same connection, so had
  // the broadcast come back to the sender it would be here before this line.
  run->waitForLine("[cluster 0] RECV marker from=0 data={\"self\":true}");
  BOOST_TEST(run->linesContaining("[cluster 0] RECV b ").empty(), run->transcript());
  BOOST_TEST(run->linesContaining("RECV b ").size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_payload_written_in_place_arrives_as_the_same_payload_as_a_json_value) {
  TempDir dir;
  auto run = start(dir, 2, "braced");
  const std::string prefix = "[cluster 1] RECV v from=0 data=";
  const std::string object =
      prefix +
      R"({"guild":"533961200438099968","nested":{"list":[1,2,3],"none":null},"ok":true,"half":5E-1})";
  // Each round: an object written in place and the same as a json::value, a repeated key both
  // ways, braced payloads that are not objects (an array, a json::value in braces, nothing);
  // between the rounds, payloads larger than the SDK's reused memory.
  const std::vector<std::string> round = {object,
                                          object,
                                          prefix + R"({"k":1})",
                                          prefix + R"({"k":1})",
                                          prefix + R"([1,"two",false])",
                                          prefix + R"({"a":1})",
                                          prefix + "null"};
  std::vector<std::string> expected = round;
  for (int n = 0; n < 40; ++n) {
    expected.push_back(prefix + R"({"pad":")" + std::string(10000, 'x') + R"(","n":)" +
                       std::to_string(n) + "}");
  }
  expected.insert(expected.end(), round.begin(), round.end());
  // Infinities and NaN go as null, as JSON.stringify sends them; strings are left alone.
  expected.push_back(prefix + R"({"inf":null,"list":[null,null,1.5E0],"s":"NaN Infinity"})");
  expected.push_back(prefix + R"({"inf":null,"list":[null,null,1.5E0]})");
  expected.push_back(prefix + R"({"s":"NaN"})");
  const auto lines = run->waitForLines("[cluster 1] RECV v ", expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    BOOST_TEST(lines[i] == expected[i], "event " << i << ": " << lines[i].substr(0, 200));
  }
}

BOOST_AUTO_TEST_CASE(raw_listeners_get_the_text_as_sent_in_order_with_parsed_ones) {
  expectRawAndParsedListenersInOrder("");
}

BOOST_AUTO_TEST_CASE(listeners_on_the_io_thread_get_raw_and_parsed_events_in_order) {
  expectRawAndParsedListenersInOrder(kIoThread);
}

BOOST_AUTO_TEST_CASE(listeners_changed_by_a_listener_apply_from_the_next_event_of_the_same_burst) {
  TempDir dir;
  auto run = start(dir, 2, "listener-changes");
  run->waitForLine("[cluster 1] RECV marker from=0 data={\"end\":true}");
  const auto seen = [&](const std::string& prefix) {
    std::vector<std::string> lines;
    for (const auto& line : run->linesContaining("[cluster 1] " + prefix)) {
      lines.push_back(line.substr(line.find("] ") + 2));
    }
    return lines;
  };
  // Three "o", three "s": the once-listener and the one that removed itself ran for the first
  // only. "late" before "g" added its listener reached none; the two after it, that listener.
  BOOST_TEST(seen("ONCE ") == std::vector<std::string>{"ONCE o n=0"}, run->transcript());
  BOOST_TEST(seen("SELF ") == std::vector<std::string>{"SELF s n=0"}, run->transcript());
  BOOST_TEST(seen("LATE ") == (std::vector<std::string>{"LATE n=1", "LATE n=2"}),
             run->transcript());
}

BOOST_AUTO_TEST_CASE(a_once_listener_per_request_gets_its_own_reply_exactly_once) {
  // 3000 once-listeners under names of their own, a third of them removed before their request;
  // each reply is sent twice.
  TempDir dir;
  auto run = start(dir, 2, "requests", "PROBE_COUNT = \"3000\"");
  const auto line = run->waitForLine("[cluster 1] REPLIES ");
  BOOST_TEST(line.substr(line.find("REPLIES ")) == "REPLIES once=2000 never=1000 more=0 wrong=0",
             run->transcript());
}

BOOST_AUTO_TEST_CASE(a_listener_whose_captures_remove_another_when_destroyed_can_be_removed) {
  TempDir dir;
  auto run = start(dir, 1, "guarded-removal");
  run->waitForLine("[cluster 0] GUARDED removal done, other still subscribed: 0");
  // A once-listener with such captures, used up in the middle of a burst.
  run->waitForLine("[cluster 0] GUARDED once ran");
  run->waitForLine("[cluster 0] GUARDED burst done, other still subscribed: 0");
}

BOOST_AUTO_TEST_CASE(emit_to_outside_the_cluster_range_is_an_error_the_caller_sees) {
  TempDir dir;
  auto run = start(dir, 2, "broadcast");
  run->waitForLine("[cluster 0] EMIT_OUT_OF_RANGE cluster id outside 0..totalClusters-1");
  // The exception says which id and what the total is.
  run->waitForLine(
      "[cluster 0] EMIT_NEGATIVE threw emitTo: cluster id outside 0..totalClusters-1 (cluster id "
      "-1; totalClusters is 2)");
}

BOOST_AUTO_TEST_CASE(supervisor_stamps_the_real_source_over_a_forged_one) {
  TempDir dir;
  auto run = start(dir, 4, "basic", "PROBE_RAW = \"1:forge\"");
  run->waitForLine("[cluster 1] RAW sent forge");
  run->waitForLine("[cluster 0] RECV forged from=1 data={\"claim\":3}");
}

BOOST_AUTO_TEST_CASE(events_from_one_sender_arrive_in_order) {
  expectEventsInOrder("");
}

BOOST_AUTO_TEST_CASE(listeners_on_the_io_thread_get_events_in_order) {
  expectEventsInOrder(kIoThread);
}

BOOST_AUTO_TEST_CASE(a_long_stream_from_a_thread_of_its_own_arrives_whole_and_in_order) {
  // Tens of megabytes from the worker's main thread: written in turn by that thread itself (a
  // write's worth at a time) and by the SDK's I/O thread (what a burst leaves, and what waits
  // for room in the socket), thousands of times over. No byte may overtake another.
  // Sanitized, still tens of megabytes. A million took 42 s under ASan and ~19 s under TSan,
  // which reports a race between the two writers the first time it happens.
  const int count = sanitized() ? 200000 : 1000000;
  TempDir dir;
  auto run = start(dir, 2, "order", "PROBE_COUNT = \"" + std::to_string(count) + "\"");
  run->waitForLine("[cluster 1] ORDER sent " + std::to_string(count), 120s);
  run->waitForLine("[cluster 0] ORDER done " + std::to_string(count), 120s);
  BOOST_TEST(run->linesContaining("ORDER broken").empty(), run->transcript());
  const auto kept = run->waitForLine("[cluster 0] ORDER kept");
  BOOST_TEST(field(kept, "intact") == std::to_string(count / 50));
}

BOOST_AUTO_TEST_CASE(events_sent_just_before_a_worker_exits_are_still_delivered_in_order) {
  TempDir dir;
  auto run = start(dir, 2, "burst-exit");
  run->waitForLine("[cluster 1] BURST waiting");
  const pid_t sender = startedPid(*run, 1);
  // With the supervisor stopped, cluster 1 writes its whole run into the socket and exits, so
  // the supervisor wakes up to the exit and ~80 KiB of unread events (more than one read) at once.
  BOOST_REQUIRE(::kill(run->pid(), SIGSTOP) == 0);
  dir.write("go", "1\n");
  const bool exited = waitZombie(sender);
  BOOST_REQUIRE(::kill(run->pid(), SIGCONT) == 0);
  BOOST_REQUIRE(exited);
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(sender) +
                   ") exited with status 0");
  run->waitForLine("[cluster 0] ORDER done 40", 60s);
  BOOST_TEST(run->linesContaining("ORDER broken").empty(), run->transcript());
}

// More events than the socket takes, sent just before the worker ends while the supervisor is
// stopped: the SDK writes the rest as the supervisor drains the socket (within the 2 s it allows).
void expectBurstBeforeTheEndDelivered(const std::string& end) {
  TempDir dir;
  auto run = start(dir, 2, "burst-exit",
                   "PROBE_BURST_COUNT = \"1000\", PROBE_BURST_END = \"" + end + "\"");
  run->waitForLine("[cluster 1] BURST waiting");
  const pid_t sender = startedPid(*run, 1);
  BOOST_REQUIRE(::kill(run->pid(), SIGSTOP) == 0);
  dir.write("go", "1\n");
  const auto mainThreadSyscall = [sender] {
    std::string number;
    std::ifstream("/proc/" + std::to_string(sender) + "/syscall") >> number;
    return number;
  };
  // poll(2) is ppoll on some architectures.
  const auto inPoll = [&] {
    const auto number = mainThreadSyscall();
#ifdef SYS_poll
    if (number == std::to_string(SYS_poll)) {
      return true;
    }
#endif
    return number == std::to_string(SYS_ppoll);
  };
  const bool leaving = waitUntil([&] { return std::filesystem::exists(dir.path() / "exiting"); });
  // In the exit handler: the main thread waits in poll(2) for room for the rest. (Where /proc
  // does not show another process's system call, the test cannot tell.)
  const bool waitsForRoom =
      !leaving || end != "exit" || mainThreadSyscall().empty() || waitUntil(inPoll);
  BOOST_REQUIRE(::kill(run->pid(), SIGCONT) == 0);
  BOOST_REQUIRE_MESSAGE(leaving, "the worker did not leave main() (no PROBE_DIR/exiting)");
  BOOST_REQUIRE_MESSAGE(waitsForRoom, "main thread in system call " << mainThreadSyscall());
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(sender) +
                   ") exited with status 0");
  run->waitForLine("[cluster 0] ORDER done 1000", 60s);
  BOOST_TEST(run->linesContaining("ORDER broken").empty(), run->transcript());
}

BOOST_AUTO_TEST_CASE(events_sent_into_a_full_socket_before_main_returns_go_out_as_it_drains) {
  expectBurstBeforeTheEndDelivered("return");
}

BOOST_AUTO_TEST_CASE(events_sent_into_a_full_socket_before_exit_go_out_as_it_drains) {
  expectBurstBeforeTheEndDelivered("exit");
}

BOOST_AUTO_TEST_CASE(
    acks_come_after_listeners_ran_and_a_throwing_listener_or_callback_stops_nothing) {
  expectAcksAfterListenersAndNothingStoppedByThrows("");
}

BOOST_AUTO_TEST_CASE(listeners_on_the_io_thread_ack_after_they_ran_and_throws_stop_nothing) {
  expectAcksAfterListenersAndNothingStoppedByThrows(kIoThread);
}

BOOST_AUTO_TEST_CASE(broadcast_and_wait_raw_sends_the_text_as_is_and_counts_the_acks) {
  TempDir dir;
  auto run = start(dir, 4, "acks");
  // After the waits of the "acks" scenario, the raw forms: the text reaches every other cluster
  // exactly as sent, and each acknowledges.
  BOOST_TEST(field(run->waitForLine("[cluster 0] ACKS raw="), "raw") == "3");
  const auto report = run->waitForLine("[cluster 0] ACKS_RAW acked=");
  BOOST_TEST(field(report, "acked") == "3");
  BOOST_TEST(field(report, "clusters") == "[1,2,3]");
  BOOST_TEST(field(report, "timedOut") == "0");
  // A deferred one, whose text was gone before it started.
  BOOST_TEST(field(run->waitForLine("[cluster 0] ACKS deferred="), "deferred") == "3");
  // Text as it was written, spaces included (serializing would have changed them).
  for (int c = 1; c <= 3; ++c) {
    const std::string prefix = "[cluster " + std::to_string(c) + "] RAW work-raw from=0 text=";
    run->waitForLine(prefix + R"({"job": 2})");
    run->waitForLine(prefix + "[ 3 ]");
    run->waitForLine(prefix + R"({"deferred" : true})");
  }
  BOOST_TEST(run->linesContaining("RAW work-raw from=").size() == 9u, run->transcript());
}

BOOST_AUTO_TEST_CASE(broadcast_and_wait_with_zero_expected_returns_zero_at_once) {
  TempDir dir;
  // A 60 s timeout: returning "at once" means long before it.
  auto run = start(dir, 3, "wait", "PROBE_EXPECTED = \"0\", PROBE_TIMEOUT_MS = \"60000\"");
  const auto line = run->waitForLine("[cluster 0] WAIT result=");
  BOOST_TEST(field(line, "result") == "0");
  BOOST_TEST(std::stoi(field(line, "elapsedMs")) < 10000);
}

BOOST_AUTO_TEST_CASE(broadcast_and_wait_returns_when_the_expected_count_acked) {
  TempDir dir;
  auto run = start(dir, 4, "wait", "PROBE_EXPECTED = \"2\", PROBE_TIMEOUT_MS = \"60000\"");
  const auto line = run->waitForLine("[cluster 0] WAIT acked=");
  BOOST_TEST(field(line, "acked") == "2");
  BOOST_TEST(field(line, "timedOut") == "0");
}

BOOST_AUTO_TEST_CASE(what_a_sender_serializes_its_receivers_parse) {
  TempDir dir;
  auto run = start(dir, 2, "odd-json");
  run->waitForLine("[cluster 0] SENT odd");
  run->waitForLine("[cluster 1] RECV cut from=0 bytes=4");
  run->waitForLine("[cluster 1] RECV deep from=0 depth=40");
  // Nested deeper than receivers parse: their error handlers are told, no listener runs.
  run->waitForLine(
      "[cluster 1] ERROR deeper payload from cluster 0 is nested deeper than 256 levels, which its "
      "receivers do not parse");
  BOOST_TEST(!run->hasLine("RECV deeper"), run->transcript());
  BOOST_TEST(run->linesContaining("ERROR").size() == 1u, run->transcript());
}

BOOST_AUTO_TEST_CASE(broadcast_and_wait_with_the_largest_timeout_waits_for_its_acks) {
  TempDir dir;
  // milliseconds::max(): no deadline (not one that overflowed into the past).
  auto run = start(dir, 4, "wait", "PROBE_EXPECTED = \"3\", PROBE_TIMEOUT_MS = \"max\"");
  const auto line = run->waitForLine("[cluster 0] WAIT acked=");
  BOOST_TEST(field(line, "acked") == "3");
  BOOST_TEST(field(line, "timedOut") == "0");
}

BOOST_AUTO_TEST_CASE(broadcast_and_wait_returns_the_count_at_the_timeout) {
  TempDir dir;
  // Cluster 3 never acknowledges (its listener blocks), so only 2 of the expected 3 arrive.
  auto run = start(dir, 4, "wait",
                   "PROBE_EXPECTED = \"3\", PROBE_TIMEOUT_MS = \"1000\", PROBE_SLOW = \"3\"");
  const auto line = run->waitForLine("[cluster 0] WAIT acked=");
  BOOST_TEST(field(line, "acked") == "2");
  BOOST_TEST(field(line, "clusters") == "[1,2]");
  BOOST_TEST(field(line, "timedOut") == "1");
  BOOST_TEST(std::stoi(field(line, "elapsedMs")) >= 1000);
}

BOOST_AUTO_TEST_CASE(a_wait_that_could_not_be_sent_leaves_later_waits_their_timeout) {
  TempDir dir;
  // As above, after a wait refused for its name, which came first (no timer set yet) with the
  // earliest deadline: every wait after it still ends at its own timeout.
  auto run = start(dir, 4, "wait",
                   "PROBE_EXPECTED = \"3\", PROBE_TIMEOUT_MS = \"1000\", PROBE_SLOW = \"3\", "
                   "PROBE_FAILED_WAIT_FIRST = \"1\"");
  BOOST_TEST(run->waitForLine("[cluster 0] FAILED WAIT ").find("event name") != std::string::npos);
  const auto line = run->waitForLine("[cluster 0] WAIT acked=");
  BOOST_TEST(field(line, "acked") == "2");
  BOOST_TEST(field(line, "timedOut") == "1");
}

BOOST_AUTO_TEST_CASE(broadcast_and_wait_completes_early_when_a_recipient_dies) {
  TempDir dir;
  auto run = start(dir, 4, "wait",
                   "PROBE_EXPECTED = \"3\", PROBE_TIMEOUT_MS = \"120000\", PROBE_SLOW = \"2\"");
  const pid_t slow = startedPid(*run, 2);
  run->waitForLine("[cluster 2] BLOCKING");
  BOOST_REQUIRE(::kill(slow, SIGKILL) == 0);
  const auto line = run->waitForLine("[cluster 0] WAIT acked=", 60s);
  BOOST_TEST(field(line, "acked") == "2");
  BOOST_TEST(field(line, "clusters") == "[1,3]");
  BOOST_TEST(field(line, "recipients") == "3");
  BOOST_TEST(field(line, "timedOut") == "0");
  BOOST_TEST(std::stoi(field(line, "elapsedMs")) < 60000);
}

BOOST_AUTO_TEST_CASE(a_listener_can_block_on_the_future_of_its_own_broadcast_and_wait) {
  TempDir dir;
  // Cluster 0's listener for "go" waits with .get() for a broadcastAndWait to the 2 others, then
  // for one with an expected count of 0; its listener occupies the bus executor meanwhile.
  auto run = start(dir, 3, "nested-wait", "PROBE_GO = \"self\"");
  const auto line = run->waitForLine("[cluster 0] NESTED acked=", 30s);
  BOOST_TEST(field(line, "acked") == "2");
  BOOST_TEST(field(line, "clusters") == "[1,2]");
  BOOST_TEST(field(line, "timedOut") == "0");
  BOOST_TEST(field(run->waitForLine("[cluster 0] NESTED zero="), "zero") == "0");
  BOOST_TEST(run->linesContaining("LISTENER_ERROR").empty(), run->transcript());
}

BOOST_AUTO_TEST_CASE(a_cancelled_wait_ends_with_operation_aborted_and_the_acks_it_had) {
  TempDir dir;
  auto run = start(dir, 3, "cancel");
  // Cluster 1 cannot acknowledge before the release below: both waits end by their
  // cancellation, or never.
  BOOST_TEST(run->waitForLine("[cluster 0] CANCEL operators ").find("winner=1") !=
             std::string::npos);
  // The total cancellation did not end the second wait; the terminal one did, with cluster 2's
  // acknowledgement, which came before its acknowledgement of the wait in between.
  const auto has = [](const char* needle) {
    return [needle](const std::string& line) { return line.find(needle) != std::string::npos; };
  };
  std::size_t synced = 0;
  run->waitForLine(has("[cluster 0] CANCEL synced=1"), "the wait in between", 20s, 0, &synced);
  // After it (one line, so none before it).
  BOOST_TEST(run->linesContaining("[cluster 0] CANCEL callback ").size() <= 1u);
  BOOST_TEST(
      run->waitForLine(has("[cluster 0] CANCEL callback "), "the cancelled callback", 20s, synced)
          .find("aborted=1 acked=1 clusters=[2] timedOut=0") != std::string::npos);
  dir.write("release", "1\n");
  run->waitForLine("[cluster 0] CANCEL after=2");
  // Completions after the Cluster is gone, one cancelling the other, and a clean exit.
  run->waitForLine("[cluster 0] CANCEL destroyed");
  run->waitForLine("[cluster 0] CANCEL gone first ");
  run->waitForLine("[cluster 0] CANCEL gone second ");
  waitForExitLine(*run, 0, "exited with status 0");
  BOOST_TEST(run->linesContaining("LISTENER_ERROR").empty(), run->transcript());
}

BOOST_AUTO_TEST_CASE(a_second_cluster_in_one_process_is_refused_and_the_first_goes_on) {
  TempDir dir;
  auto run = start(dir, 2, "twice");
  BOOST_TEST(run->waitForLine("[cluster 0] TWICE ")
                 .find("TWICE Cluster::fromEnvironment: called again in this process; the "
                       "connection to the supervisor (CLUSTERVISOR_FD) is taken by the first "
                       "call alone") != std::string::npos);
  waitReady(*run, 0);
  waitReady(*run, 1);
  // The first Cluster's connection is as it was: the supervisor saw one handshake each.
  const auto status = runCli({"status", (dir.path() / "bot.toml").string()});
  BOOST_TEST(status.output.find("2 of 2 clusters running") != std::string::npos, status.output);
  BOOST_TEST(!run->hasLine("protocol error"), run->transcript());
}

BOOST_AUTO_TEST_CASE(a_second_cluster_after_the_first_is_destroyed_is_refused_all_the_same) {
  TempDir dir;
  auto run = start(dir, 1, "twice-after-destroyed");
  BOOST_TEST(run->waitForLine("[cluster 0] TWICE ")
                 .find("TWICE Cluster::fromEnvironment: called again in this process;") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(payload_over_the_limit_is_refused_to_the_sender_and_nothing_is_sent) {
  TempDir dir;
  auto run = start(dir, 2, "payload", "", "[events]\nmax_payload = \"4KiB\"\n");
  run->waitForLine("[cluster 0] PAYLOAD at-limit ok");
  run->waitForLine(
      "[cluster 0] PAYLOAD over-limit event payload larger than the supervisor's "
      "events.max_payload");
  run->waitForLine(
      "[cluster 0] PAYLOAD over-limit-throwing threw broadcast: event payload larger than the "
      "supervisor's events.max_payload (4096 bytes)");
  // Whatever was sent before the marker arrived before it: exactly the one event at the limit.
  run->waitForLine("[cluster 1] RECV marker from=0");
  BOOST_TEST(run->linesContaining("[cluster 1] RECV big from=0").size() == 1u);
}

BOOST_AUTO_TEST_CASE(callbacks_and_coroutines_complete_on_the_workers_own_executor) {
  TempDir dir;
  auto run = start(dir, 3, "tokens");
  BOOST_TEST(run->waitForLine("[cluster 0] TOKENS awaitable=").find("awaitable=2 onOwnThread=1") !=
             std::string::npos);
  BOOST_TEST(run->waitForLine("[cluster 0] TOKENS callback=")
                 .find("callback=2 ec=Success onOwnThread=1") != std::string::npos);
  run->waitForLine("[cluster 1] TOKENS listener from=0 data={\"via\":\"callback\"} onOwnThread=1");
  run->waitForLine("[cluster 2] TOKENS listener from=0 data={\"via\":\"callback\"} onOwnThread=1");
}

BOOST_AUTO_TEST_CASE(emit_to_a_cluster_not_yet_connected_is_held_and_delivered_in_order) {
  TempDir dir;
  auto run = start(dir, 2, "held");
  run->waitForLine("[cluster 0] HELD sent 10");
  const pid_t late = startedPid(*run, 1);
  dir.write("go", "1\n");
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(late) +
                   ") connected; delivering 10 held event(s)");
  const auto received = run->waitForLines("[cluster 1] RECV held from=0", 10);
  for (std::size_t n = 0; n < received.size(); ++n) {
    BOOST_TEST(received[n] ==
               "[cluster 1] RECV held from=0 data={\"n\":" + std::to_string(n) + "}");
  }
}

BOOST_AUTO_TEST_CASE(events_that_do_not_fit_before_the_worker_listens_are_reported_once) {
  TempDir dir;
  auto run = start(dir, 2, "late", "PROBE_LATE_FILL = \"300\", PROBE_CLUSTER1_SEND_LIMIT = \"1\"");
  const pid_t late = startedPid(*run, 1);
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(late) + ") connected");
  dir.write("send", "1\n");
  run->waitForLine("[cluster 0] SENT");
  // Cluster 1 reads while it does not listen, keeping what fits and dropping the rest: once the
  // 302 events (b, the fill, marker) have all left the supervisor for it, more than fits has
  // reached it, however slowly it reads (a sanitizer build).
  BOOST_REQUIRE(waitUntil(
      [&] {
        const auto status = statusOf(dir.path() / "bot.toml");
        const auto& c = status.at("clusters").as_array().at(1).as_object();
        return c.at("events_out").as_int64() >= 302 && c.at("queued_bytes").as_int64() == 0;
      },
      60s));
  dir.write("listen", "1\n");
  const auto line = run->waitForLine("[cluster 1] LISTENER_ERROR (before listen) ");
  BOOST_TEST(line.find(" event(s) arrived before the worker started listening and did not fit "
                       "the waiting room; they were dropped") != std::string::npos,
             line);
  // Those that fitted came first, in order.
  run->waitForLine("[cluster 1] RECV b from=0 data={\"early\":1}");
  BOOST_TEST(run->linesContaining("LISTENER_ERROR").size() == 1u, run->transcript());
}

BOOST_AUTO_TEST_CASE(events_arriving_before_the_worker_listens_wait_for_it_in_order) {
  TempDir dir;
  auto run = start(dir, 2, "late");
  const pid_t late = startedPid(*run, 1);
  run->waitForLine("clustervisor: cluster 1 (pid " + std::to_string(late) + ") connected");
  dir.write("send", "1\n");
  run->waitForLine("[cluster 0] SENT");
  dir.write("listen", "1\n");
  std::size_t listening = 0;
  run->waitForLine([](const std::string& l) { return l == "[cluster 1] LISTENING"; },
                   "cluster 1 listening", 20s, 0, &listening);
  std::size_t broadcastAt = 0;
  std::size_t emitAt = 0;
  run->waitForLine(
      [](const std::string& l) { return l == "[cluster 1] RECV b from=0 data={\"early\":1}"; },
      "the early broadcast", 20s, 0, &broadcastAt);
  run->waitForLine(
      [](const std::string& l) { return l == "[cluster 1] RECV marker from=0 data={\"early\":2}"; },
      "the early emitTo", 20s, 0, &emitAt);
  BOOST_TEST(listening < broadcastAt);
  BOOST_TEST(broadcastAt < emitAt);
}

BOOST_AUTO_TEST_SUITE_END()
