// SPDX-License-Identifier: MIT
//
// The control socket and `clustervisor status|restart|stop`, end to end.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <vector>

#include <boost/json.hpp>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_control)

using namespace clustervisor::test;
namespace json = boost::json;

namespace {

// The control socket of `config`, as `clustervisor check` reports it.
std::string socketOf(const std::filesystem::path& config) {
  const auto check = runCli({"check", config.string()});
  BOOST_REQUIRE_MESSAGE(check.status == 0, check.output);
  const std::string label = "  control socket    ";
  const auto at = check.output.find(label);
  BOOST_REQUIRE(at != std::string::npos);
  const auto end = check.output.find('\n', at);
  return check.output.substr(at + label.size(), end - at - label.size());
}

const json::object& clusterIn(const json::object& status, std::size_t id) {
  return status.at("clusters").as_array().at(id).as_object();
}

// A connection to the socket; its descriptor.
int connectTo(const std::string& socketPath) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  const auto address = unixAddress(socketPath);
  BOOST_REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  return fd;
}

// One raw request line to the socket; the answer line. `thenEnd`: the client's side is shut
// down after the bytes, as by a client that sends and only reads from then on.
std::string rawRequest(const std::string& socketPath, const std::string& bytes,
                       bool thenEnd = false) {
  const int fd = connectTo(socketPath);
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;  // the supervisor may answer and close before reading everything
    }
    sent += static_cast<std::size_t>(n);
  }
  if (thenEnd) {
    ::shutdown(fd, SHUT_WR);
  }
  std::string answer;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return answer;
}

std::unique_ptr<SupervisorRun> startBot(const TempDir& dir, int clusters,
                                        std::filesystem::path& config) {
  config = dir.write("bot.toml", probeConfig(dir, clusters, "basic"));
  auto run = SupervisorRun::run(config);
  for (int c = 0; c < clusters; ++c) {
    waitReady(*run, c);
  }
  return run;
}

}  // namespace

BOOST_AUTO_TEST_CASE(status_text_and_json_match_reality_after_starts_crashes_and_restarts) {
  TempDir dir;
  std::filesystem::path config;
  auto run = startBot(dir, 3, config);
  auto status = statusOf(config);
  BOOST_TEST(status.at("name").as_string() == "bot");
  BOOST_TEST(status.at("pid").as_int64() == run->pid());
  for (std::size_t c = 0; c < 3; ++c) {
    const auto& cluster = clusterIn(status, c);
    BOOST_TEST(cluster.at("state").as_string() == "running");
    BOOST_TEST(cluster.at("pid").as_int64() == startedPid(*run, static_cast<int>(c)));
    BOOST_TEST(cluster.at("restarts").as_int64() == 0);
    BOOST_TEST(cluster.at("ready").as_bool());
    BOOST_TEST(cluster.at("last_exit").is_null());
    BOOST_TEST(cluster.at("last_exit_reason").is_null());
    BOOST_TEST(cluster.at("next_start_ms").is_null());  // a running cluster does not wait
    // The worker's own memory, as /proc says it, and CPU time.
    const long resident = usageOf(cluster.at("pid").to_number<pid_t>()).rssKiB * 1024;
    const auto rss = cluster.at("rss_bytes").as_int64();
    BOOST_TEST(rss > 0);
    // Taken a moment apart: within a quarter of each other.
    BOOST_TEST(std::abs(rss - resident) < rss / 4);
    BOOST_TEST(cluster.at("cpu_ms").is_int64());  // its unit: process_table_test
  }
  // A crash: the status shows the new worker, the count and why the old one ended.
  const pid_t crashed = startedPid(*run, 1);
  BOOST_REQUIRE(::kill(crashed, SIGKILL) == 0);
  const pid_t replacement = startedPid(*run, 1, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(replacement) + ") is ready");
  status = statusOf(config);
  const auto& cluster1 = clusterIn(status, 1);
  BOOST_TEST(cluster1.at("pid").as_int64() == replacement);
  BOOST_TEST(cluster1.at("restarts").as_int64() == 1);
  BOOST_TEST(cluster1.at("last_exit").as_string() ==
             "was killed by SIGKILL (possibly out of memory)");
  BOOST_TEST(cluster1.at("last_exit_reason").as_string() == "signal");
  BOOST_TEST(status.at("totals").as_object().at("running").as_int64() == 3);
  // The text form says the same.
  const auto text = runCli({"status", config.string()});
  BOOST_TEST(text.status == 0, text.output);
  BOOST_TEST(text.output.find("bot: supervisor pid " + std::to_string(run->pid())) == 0u,
             text.output);
  BOOST_TEST(text.output.find("3 of 3 clusters running") != std::string::npos, text.output);
  BOOST_TEST(
      text.output.find("\n1        running  " + std::to_string(replacement)) != std::string::npos,
      text.output);
  BOOST_TEST(text.output.find("was killed by SIGKILL") != std::string::npos, text.output);
}

BOOST_AUTO_TEST_CASE(status_says_when_a_backing_off_cluster_starts_again_and_why_it_was_stopped) {
  TempDir dir;
  // A worker that never becomes ready is stopped at start.timeout, then waits out a long
  // backoff. (Its next run becomes ready: once started, it stays, however slowly the test looks.)
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "never-ready", "",
                                                        "[start]\ntimeout = \"1s\"\n"
                                                        "[restart]\ndelay = \"10m\"\n"
                                                        "max_delay = \"10m\"\n"));
  auto run = SupervisorRun::run(config);
  run->waitForLine("stopped for not becoming ready within");
  boost::json::object cluster;
  BOOST_REQUIRE(waitUntil([&] {
    auto status = statusOf(config);
    cluster = clusterIn(status, 0);
    return cluster.at("state").as_string() == "backing-off";
  }));
  BOOST_TEST(cluster.at("last_exit_reason").as_string() == "start_timeout");
  BOOST_TEST(cluster.at("rss_bytes").is_null());  // no worker runs meanwhile
  BOOST_TEST(cluster.at("cpu_ms").is_null());
  const auto nextStart = cluster.at("next_start_ms").as_int64();
  BOOST_TEST(nextStart > 400000);  // 10m with jitter (7.5m to 10m), a little of it gone
  BOOST_TEST(nextStart <= 600000);
  const auto text = runCli({"status", config.string()});
  BOOST_TEST(text.status == 0, text.output);
  BOOST_TEST(text.output.find("\n0        backing-off (starts in ") != std::string::npos,
             text.output);
  BOOST_TEST(text.output.find("(not ready within start.timeout)\n") != std::string::npos,
             text.output);
  // A restart request starts it at once, not after its backoff; a cluster whose worker runs has
  // no next start (in the same answer that shows the new worker).
  const auto restart = runCli({"restart", config.string(), "0"});
  BOOST_TEST(restart.status == 0, restart.output);
  BOOST_REQUIRE(waitUntil([&] {
    auto status = statusOf(config);
    cluster = clusterIn(status, 0);
    return !cluster.at("pid").is_null();
  }));
  BOOST_TEST(cluster.at("next_start_ms").is_null());
}

BOOST_AUTO_TEST_CASE(restart_of_one_cluster_leaves_the_others_pids_unchanged) {
  TempDir dir;
  std::filesystem::path config;
  auto run = startBot(dir, 3, config);
  const pid_t before0 = startedPid(*run, 0);
  const pid_t before1 = startedPid(*run, 1);
  const pid_t before2 = startedPid(*run, 2);
  const auto restart = runCli({"restart", config.string(), "1"});
  BOOST_TEST(restart.status == 0, restart.output);
  BOOST_TEST(restart.output == "restarting cluster 1\n");
  const pid_t after1 = startedPid(*run, 1, 1);
  run->waitForLine("cluster 1 (pid " + std::to_string(after1) + ") is ready");
  BOOST_TEST(after1 != before1);
  run->waitForLine("cluster 1 (pid " + std::to_string(before1) +
                   "): restart requested over the "
                   "control socket (was running)");
  BOOST_TEST(run->waitForLine("cluster 1 (pid " + std::to_string(before1) + ") was killed by")
                 .find(", restarted on request; starting it again") != std::string::npos);
  const auto status = statusOf(config);
  BOOST_TEST(clusterIn(status, 0).at("pid").as_int64() == before0);
  BOOST_TEST(clusterIn(status, 1).at("pid").as_int64() == after1);
  BOOST_TEST(clusterIn(status, 2).at("pid").as_int64() == before2);
  BOOST_TEST(processExists(before0));
  BOOST_TEST(processExists(before2));
}

BOOST_AUTO_TEST_CASE(restart_all_then_stop_through_the_cli) {
  TempDir dir;
  std::filesystem::path config;
  auto run = startBot(dir, 2, config);
  const auto restart = runCli({"restart", "--all", config.string()});
  BOOST_TEST(restart.status == 0, restart.output);
  BOOST_TEST(restart.output == "restarting clusters 0, 1\n");
  for (int c = 0; c < 2; ++c) {
    run->waitForLine("cluster " + std::to_string(c) + " (pid " +
                     std::to_string(startedPid(*run, c, 1)) + ") is ready");
  }
  const auto stop = runCli({"stop", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  const auto status = run->waitExit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(*status == 0, run->transcript());
  const auto stopping =
      run->waitForLine("clustervisor: stop requested over the control socket; stopping 2 workers");
  // Not begun by a signal: the first stop signal would be taken as systemd's after ExecStop=.
  BOOST_TEST(stopping.ends_with("; send a stop signal twice to kill at once)"), stopping);
  // Gone with it: the socket.
  const auto after = runCli({"status", config.string()});
  BOOST_TEST(after.status == 69, after.output);
  BOOST_TEST(after.output.find("clustervisor: error: no supervisor is running for " +
                               config.string()) == 0u,
             after.output);
}

BOOST_AUTO_TEST_CASE(a_supervisor_is_reached_after_its_file_was_replaced_naming_another_socket) {
  // The file replaced by a rename (as editors save) with another control.socket: nothing listens
  // at the new socket and nobody holds a lock on the new file, but the supervisor holding the
  // bot's lock file listens where it always did.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  const auto replacement = dir.write(
      "new.toml", probeConfig(dir, 1, "basic", "", "[control]\nsocket = \"other.sock\"\n"));
  std::filesystem::rename(replacement, config);
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.status == 0, status.output);
  BOOST_TEST(status.output.find("1 of 1 clusters running") != std::string::npos, status.output);
  const auto stop = runCli({"stop", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(an_emit_to_stream_is_handed_over_whole_across_restarts_of_its_receiver) {
  // Cluster 0 streams 5000 numbered emitTo events to cluster 1 (a second and a half or more,
  // the last one held back until the restarts are done) while cluster 1 is restarted three
  // times: the stop frame is the hand-over, so each event reaches exactly one of cluster 1's
  // workers, in order, and none is lost or dropped. Room is held for the whole stream, so that a
  // slow restart (a loaded machine, a sanitizer build) is not a drop at events.hold_max_count.
  constexpr long kCount = 5000;
  TempDir dir;
  const auto config =
      dir.write("bot.toml",
                probeConfig(dir, 2, "handover", "PROBE_COUNT = \"" + std::to_string(kCount) + "\"",
                            "[events]\nhold_max_count = " + std::to_string(2 * kCount) + "\n"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  waitReady(*run, 1);
  std::ofstream(dir.path() / "go") << "1\n";
  for (std::size_t restart = 1; restart <= 3; ++restart) {
    BOOST_REQUIRE(runCli({"restart", config.string(), "1"}).status == 0);
    waitReady(*run, 1, restart);
  }
  // Only the last worker gets the last event (a stream that outran the restarts on a loaded
  // machine would otherwise end in a worker that also says where it stopped).
  std::ofstream(dir.path() / "last") << "1\n";
  run->waitForLine("[cluster 0] HANDOVER sent " + std::to_string(kCount), 60s);
  run->waitForLine("[cluster 1] HANDOVER done ");
  BOOST_TEST(!run->hasLine("HANDOVER broken"), run->transcript());
  BOOST_TEST(!run->hasLine("HANDOVER send error"), run->transcript());
  // The stretches of the four workers, in order, make up the whole stream.
  auto stretches = run->linesContaining("[cluster 1] HANDOVER stopped ");
  BOOST_TEST(stretches.size() == 3u, run->transcript());
  stretches.push_back(run->waitForLine("[cluster 1] HANDOVER done "));
  long next = 0;
  for (const auto& line : stretches) {
    const auto field = [&](const std::string& key) {
      return std::stol(line.substr(line.find(key + "=") + key.size() + 1));
    };
    if (field("count") == 0) {
      continue;  // a worker stopped before any event reached it
    }
    BOOST_TEST(field("first") == next, line);
    BOOST_TEST(field("count") == field("last") - field("first") + 1, line);
    next = field("last") + 1;
  }
  BOOST_TEST(next == kCount, run->transcript());
  BOOST_TEST(statusOf(config).at("totals").as_object().at("dropped_events").as_int64() == 0);
}

BOOST_AUTO_TEST_CASE(an_unknown_cluster_id_is_refused_and_changes_nothing) {
  TempDir dir;
  std::filesystem::path config;
  auto run = startBot(dir, 2, config);
  const auto restart = runCli({"restart", config.string(), "0", "5"});
  BOOST_TEST(restart.status == 1, restart.output);
  BOOST_TEST(restart.output ==
             "clustervisor: error: cluster 5 does not exist (clusters are 0..1)\n");
  BOOST_TEST(run->linesContaining("restart requested").empty(), run->transcript());
}

BOOST_AUTO_TEST_CASE(malformed_and_oversize_requests_get_an_error_and_harm_nothing) {
  TempDir dir;
  std::filesystem::path config;
  auto run = startBot(dir, 1, config);
  const auto socketPath = socketOf(config);
  const auto garbage = rawRequest(socketPath, "this is not json\n");
  BOOST_TEST(garbage.find("\"ok\":false") != std::string::npos, garbage);
  BOOST_TEST(garbage.find("request is not valid JSON") != std::string::npos, garbage);
  const auto unknown = rawRequest(socketPath, "{\"version\":1,\"command\":\"format-disk\"}\n");
  BOOST_TEST(unknown.find("unknown command \\\"format-disk\\\"") != std::string::npos, unknown);
  // A request without its newline, then the end of the client's side: an error, not a stop.
  const auto unterminated = rawRequest(socketPath, R"({"version":1,"command":"stop"})", true);
  BOOST_TEST(unterminated.find("a request is one line ending in a newline") != std::string::npos,
             unterminated);
  // Names given twice: which one would count is not for the supervisor to guess.
  const auto twice = rawRequest(socketPath, R"({"version":1,"command":"status","command":"stop"})"
                                            "\n");
  BOOST_TEST(twice.find(R"(\"command\" given twice)") != std::string::npos, twice);
  const auto oversize = rawRequest(socketPath, std::string(200 * 1024, '{'));
  BOOST_TEST(oversize.find("request larger than 65536 bytes") != std::string::npos, oversize);
  // Still answering, the worker untouched.
  const auto status = statusOf(config);
  BOOST_TEST(clusterIn(status, 0).at("pid").as_int64() == startedPid(*run, 0));
  BOOST_TEST(clusterIn(status, 0).at("restarts").as_int64() == 0);
}

// Connects to `socketPath` as user `uid` (in a child process: the test must be root), sends a
// status request and returns "refused: <error>" or "answered: <answer line>". The child does not
// exec anything, so it needs no access to the build directory.
std::string statusRequestAs(uid_t uid, const std::string& socketPath) {
  const sockaddr_un address = unixAddress(socketPath);  // before the fork: it may fail the test
  int pipefd[2];
  BOOST_REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    std::string result;
    if (::setgid(uid) != 0 || ::setuid(uid) != 0) {
      result = "setuid failed";
    } else {
      const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        result = std::string("refused: ") + std::strerror(errno);
      } else {
        const std::string request = "{\"version\":1,\"command\":\"status\"}\n";
        (void)!::write(fd, request.data(), request.size());
        result = "answered: ";
        char buffer[4096];
        ssize_t n;
        while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
          result.append(buffer, static_cast<std::size_t>(n));
        }
      }
    }
    (void)!::write(pipefd[1], result.data(), result.size());
    ::_exit(0);
  }
  ::close(pipefd[1]);
  std::string result;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buffer, sizeof buffer)) > 0) {
    result.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  ::waitpid(pid, nullptr, 0);
  return result;
}

BOOST_AUTO_TEST_CASE(the_control_socket_is_private_to_its_user) {
  TempDir dir;
  std::filesystem::path config;
  auto run = startBot(dir, 1, config);
  const auto socketPath = socketOf(config);
  struct stat st {};
  BOOST_REQUIRE(::stat(socketPath.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_TEST(st.st_uid == ::geteuid());
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("not root: cannot connect as nobody; checked the mode only");
    return;
  }
  const uid_t nobody = 65534;
  // The directory keeps other users out altogether.
  BOOST_TEST(statusRequestAs(nobody, socketPath) == "refused: Permission denied");
  // And were the directory and socket opened up, the peer's uid is still checked.
  const auto directory = std::filesystem::path(socketPath).parent_path();
  struct stat dirStat {};
  BOOST_REQUIRE(::stat(directory.c_str(), &dirStat) == 0);
  BOOST_REQUIRE(::chmod(directory.c_str(), 0711) == 0);
  BOOST_REQUIRE(::chmod(socketPath.c_str(), 0666) == 0);
  const auto checked = statusRequestAs(nobody, socketPath);
  ::chmod(directory.c_str(), dirStat.st_mode & 07777);
  ::chmod(socketPath.c_str(), 0600);
  BOOST_TEST(checked ==
                 "answered: {\"version\":1,\"ok\":false,\"error\":\"permission denied: this "
                 "control socket serves only uid " +
                     std::to_string(::geteuid()) + "\"}\n",
             checked);
  // Root itself still gets its answer, and the worker is untouched.
  BOOST_TEST(statusOf(config).at("pid").as_int64() == run->pid());
  BOOST_TEST(processExists(startedPid(*run, 0)));
}

BOOST_AUTO_TEST_CASE(a_cli_command_waits_while_every_control_connection_is_taken) {
  TempDir dir;
  std::filesystem::path config;
  auto run = startBot(dir, 1, config);
  const auto socketPath = socketOf(config);
  std::vector<int> idle;
  for (int n = 0; n < 16; ++n) {
    idle.push_back(connectTo(socketPath));  // sends nothing: holds a slot until timed out
  }
  // All 16 taken: a 17th request is closed unread.
  BOOST_REQUIRE(waitUntil([&] {
    return rawRequest(socketPath, R"({"version":1,"command":"status"})"
                                  "\n")
        .empty();
  }));
  // The command tries again until a slot frees (the idle ones time out after 5 s).
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.status == 0, status.output);
  BOOST_TEST(status.output.find("cluster") != std::string::npos, status.output);
  for (const int fd : idle) {
    ::close(fd);
  }
}

BOOST_AUTO_TEST_CASE(queued_rolling_restarts_do_not_keep_status_and_stop_out) {
  TempDir dir;
  std::filesystem::path config;
  auto run = startBot(dir, 2, config);
  // One rolling restart that waits 60 s between its two batches, and 64 queued behind it: each
  // command waits for its answer, on a connection of its own (16 would fill every slot).
  std::vector<std::unique_ptr<SupervisorRun>> rolling;
  for (int n = 0; n < 65; ++n) {
    rolling.push_back(std::make_unique<SupervisorRun>(
        std::vector<std::string>{supervisorBinary().string(), "restart", "--all", "--rolling",
                                 "--batch", "1", "--delay", "60s", config.string()}));
  }
  run->waitForLines("queued behind the rolling restart in progress", 64);
  // One more is refused: the queue is bounded.
  const auto refused =
      runCli({"restart", "--all", "--rolling", "--batch", "1", "--delay", "60s", config.string()});
  BOOST_TEST(refused.status == 1, refused.output);
  BOOST_TEST(refused.output.find("64 reloads and rolling restarts are already queued") !=
                 std::string::npos,
             refused.output);
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.status == 0, status.output);
  const auto stop = runCli({"stop", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  const auto exited = run->waitExit(30s);
  BOOST_REQUIRE(exited.has_value());
  for (auto& command : rolling) {
    BOOST_TEST(command->waitExit(30s).has_value());
  }
}

BOOST_AUTO_TEST_CASE(a_cli_command_without_a_running_supervisor_says_so) {
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.status == 69, status.output);
  BOOST_TEST(status.output.find("clustervisor: error: no supervisor is running for " +
                                config.string() + " (nothing listens at ") == 0u,
             status.output);
  const auto missing = runCli({"stop", (dir.path() / "nope.toml").string()});
  BOOST_TEST(missing.status == 78, missing.output);
  // A stop finds what it asks for already done.
  const auto stop = runCli({"stop", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  BOOST_TEST(stop.output.find(config.string() + " is not running (nothing listens at ") == 0u,
             stop.output);
  BOOST_TEST(stop.output.find("; nothing to stop\n") != std::string::npos, stop.output);
  // With --socket nothing says whether a supervisor runs elsewhere: still an error.
  const auto elsewhere = runCli({"stop", "--socket", (dir.path() / "none.sock").string()});
  BOOST_TEST(elsewhere.status == 69, elsewhere.output);
  for (const auto* command : {"restart", "reload"}) {
    std::vector<std::string> args{command, config.string()};
    if (std::string(command) == "restart") {
      args.emplace_back("--all");
    }
    const auto other = runCli(args);
    BOOST_TEST(other.status == 69, other.output);
  }
}

BOOST_AUTO_TEST_CASE(a_config_file_with_a_very_long_name_still_gets_its_control_socket) {
  // 100 bytes of name: in full, the socket's path would not fit a socket address (107 bytes).
  TempDir dir;
  const std::string name(100, 'b');
  const auto config = dir.write(name + ".toml", probeConfig(dir, 1, "basic"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.status == 0, status.output);
  BOOST_TEST(!run->hasLine("control socket"), run->transcript());
  BOOST_TEST(runCli({"stop", config.string()}).status == 0);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(stop_returns_once_the_supervisor_has_exited_and_no_wait_at_once) {
  // A worker that ignores SIGTERM holds the stop for the whole stop.timeout.
  const auto botWith = [](const std::string& stopTimeout) {
    return "command = [\"/bin/sh\", \"-c\", \"trap '' TERM; echo trapped; "
           "while :; do sleep 1; done\"]\n[start]\ntimeout = \"1m\"\n[stop]\ntimeout = \"" +
           stopTimeout + "\"\n";
  };
  TempDir dir;
  auto config = dir.write("bot.toml", botWith("1s"));
  auto run = SupervisorRun::run(config);
  run->waitForLine("] trapped");
  const auto stop = runCli({"stop", config.string()});
  BOOST_TEST(stop.status == 0, stop.output);
  BOOST_TEST(stop.output == "stopping " + config.string() + "\nstopped " + config.string() + "\n");
  // It returned after the supervisor's exit: nothing left to wait for.
  BOOST_TEST(run->waitExit(0ms).has_value(), run->transcript());

  // --no-wait: back as soon as the stop has begun, while the worker still holds it.
  config = dir.write("bot.toml", botWith("3s"));
  run = SupervisorRun::run(config);
  run->waitForLine("] trapped");
  const auto begun = runCli({"stop", "--no-wait", config.string()});
  BOOST_TEST(begun.status == 0, begun.output);
  BOOST_TEST(begun.output == "stopping " + config.string() + "\n");
  BOOST_TEST(!run->waitExit(0ms).has_value());
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(a_stop_the_cli_gave_up_on_is_not_carried_out_when_the_supervisor_goes_on) {
  // The supervisor is frozen (SIGSTOP): the CLI gives up after 10 s with exit 69. Its request
  // expired before then, so the supervisor, once it goes on, reads it and does not stop: someone
  // may have acted on that failure already.
  TempDir dir;
  const auto config = dir.write("bot.toml", probeConfig(dir, 1, "basic"));
  auto run = SupervisorRun::run(config);
  waitReady(*run, 0);
  BOOST_REQUIRE(::kill(run->pid(), SIGSTOP) == 0);
  BOOST_REQUIRE(waitUntil([&] { return processState(run->pid()) == 'T'; }));
  const auto stop = runCli({"stop", "--no-wait", config.string()});
  BOOST_REQUIRE(::kill(run->pid(), SIGCONT) == 0);
  BOOST_TEST(stop.status == 69, stop.output);
  BOOST_TEST(
      stop.output.find("the supervisor (pid " + std::to_string(run->pid()) +
                       ", stopped by a signal (SIGCONT resumes it)) did not answer within 10s; "
                       "the request expires unread, and will not be carried out later") !=
          std::string::npos,
      stop.output);
  const auto ignored =
      run->waitForLine("clustervisor: a stop request over the control socket was read ");
  // The lateness as every duration is written: "840ms", "1.2s", "2s", "1m30s".
  const std::regex late(
      R"( was read ([0-9]+ms|[0-9]+(\.[0-9])?s|([0-9]+[hms])+) after it expired \(its client had )"
      R"(stopped waiting\); not carried out$)");
  BOOST_TEST(std::regex_search(ignored, late), ignored);
  const auto status = runCli({"status", config.string()});
  BOOST_TEST(status.status == 0, status.output);
  BOOST_TEST(!run->hasLine("stop requested over the control socket"), run->transcript());
  BOOST_TEST(!run->waitExit(0ms).has_value());
  BOOST_TEST(runCli({"stop", config.string()}).status == 0);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
}

BOOST_AUTO_TEST_CASE(a_worker_can_stop_its_own_bot_through_the_cli) {
  // The CLI runs in cluster 0's process group, which the stop signals like the rest of the worker:
  // the stop must not wait on the client that asked for it (stop.timeout is far off).
  TempDir dir;
  const auto config = dir.path() / "bot.toml";
  dir.write("bot.toml",
            "clusters = 2\ncommand = [\"/bin/sh\", \"-c\", \"echo up; "
            "if [ \\\"$CLUSTERVISOR_CLUSTER_ID\\\" = 0 ]; then " +
                supervisorBinary().string() + " stop " + config.string() +
                "; fi; while :; do sleep 1; done\"]\n"
                "[start]\ntimeout = \"1m\"\n[stop]\ntimeout = \"1m\"\n");
  auto run = SupervisorRun::run(config);
  BOOST_TEST(run->waitExit(30s).value_or(-1) == 0, run->transcript());
  const auto log = run->transcript();
  BOOST_TEST(log.find("stop requested over the control socket") != std::string::npos, log);
  BOOST_TEST(countLines(*run, {"was killed by SIGTERM", "; stopped"}) == 2, log);  // no SIGKILL
  BOOST_TEST(log.find("all workers stopped") != std::string::npos, log);
}

BOOST_AUTO_TEST_SUITE_END()
