// SPDX-License-Identifier: MIT
//
// The SDK against a supervisor played by the test itself over a real socketpair: the handshake
// and what a worker does when its supervisor goes away.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "clustervisor/wire/frame.hpp"
#include "clustervisor/wire/frame_reader.hpp"
#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_sdk)

using namespace clustervisor::test;
namespace wire = clustervisor::wire;

namespace {

struct FakeWorker {
  pid_t pid = -1;
  int socket = -1;  // the supervisor's end
  int output = -1;  // the worker's stdout+stderr
};

FakeWorker spawnProbe(const std::string& id, const std::string& total,
                      const std::string& mode = "basic") {
  int pair[2];
  int out[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  BOOST_REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  const std::string probe = probeWorkerBinary().string();
  const pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(pair[1], 3);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::setenv("CLUSTERVISOR_CLUSTER_ID", id.c_str(), 1);
    ::setenv("CLUSTERVISOR_TOTAL_CLUSTERS", total.c_str(), 1);
    ::setenv("CLUSTERVISOR_FD", "3", 1);
    ::setenv("CLUSTERVISOR_PROTOCOL", std::to_string(wire::kProtocolVersion).c_str(), 1);
    ::setenv("PROBE_MODE", mode.c_str(), 1);
    ::execl(probe.c_str(), probe.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(pair[1]);
  ::close(out[1]);
  return {pid, pair[0], out[0]};
}

std::vector<std::byte> readFrame(int fd) {
  wire::FrameReader reader(4096);
  for (;;) {
    auto next = reader.next();
    if (next.result.status == wire::DecodeStatus::kFrame) {
      return {next.frame.begin(), next.frame.end()};
    }
    BOOST_REQUIRE(next.result.status == wire::DecodeStatus::kIncomplete);
    auto space = reader.prepare();
    const ssize_t n = ::read(fd, space.data(), 1);  // one byte at a time: never over-read
    BOOST_REQUIRE(n == 1);
    reader.commit(1);
  }
}

std::string readAll(int fd) {
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

int waitStatus(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Cluster 0 of `total` in `mode`, through the handshake (HELLO, the welcome, no heartbeats)
// up to its READY.
FakeWorker readyProbe(std::uint32_t total, const std::string& mode) {
  auto worker = spawnProbe("0", std::to_string(total), mode);
  readFrame(worker.socket);  // HELLO
  const auto welcome = wire::encodeWelcome({wire::kProtocolVersion, 0, 0, total, 65536, 0});
  BOOST_REQUIRE(::write(worker.socket, welcome.data(), welcome.size()) ==
                static_cast<ssize_t>(welcome.size()));
  readFrame(worker.socket);  // READY
  return worker;
}

// Cluster 0 of 1 in `mode`: welcomed, then, once it said READY, its socket is closed (the
// supervisor is gone). Its exit status and output.
std::pair<int, std::string> loseSupervisorOf(const char* mode) {
  auto worker = readyProbe(1, mode);
  ::close(worker.socket);
  const int status = waitStatus(worker.pid);
  return {status, readAll(worker.output)};
}

}  // namespace

BOOST_AUTO_TEST_CASE(worker_says_hello_then_exits_when_the_supervisor_closes_the_socket) {
  auto worker = spawnProbe("1", "2");
  const auto hello = readFrame(worker.socket);
  const auto decoded = wire::decodeFrame(hello, 4096);
  BOOST_REQUIRE(decoded.status == wire::DecodeStatus::kFrame);
  BOOST_TEST(static_cast<int>(decoded.header.type) == static_cast<int>(wire::FrameType::kHello));
  BOOST_TEST(wire::helloBody(hello).magic == wire::kHelloMagic);
  BOOST_TEST(wire::helloBody(hello).pid == static_cast<std::uint32_t>(worker.pid));
  const auto welcome = wire::encodeWelcome({wire::kProtocolVersion, 0, 1, 2, 65536, 0});
  BOOST_REQUIRE(::write(worker.socket, welcome.data(), welcome.size()) ==
                static_cast<ssize_t>(welcome.size()));
  // READY follows once the worker is set up.
  const auto ready = readFrame(worker.socket);
  BOOST_TEST(static_cast<int>(wire::decodeFrame(ready, 4096).header.type) ==
             static_cast<int>(wire::FrameType::kReady));
  ::close(worker.socket);
  BOOST_TEST(waitStatus(worker.pid) == 1);
  const auto output = readAll(worker.output);
  BOOST_TEST(output.find("clustervisor-worker: the supervisor closed the connection; exiting "
                         "(cluster 1)\n") != std::string::npos,
             output);
}

BOOST_AUTO_TEST_CASE(supervisor_lost_handler_is_told_instead_of_the_default_exit) {
  const auto [status, output] = loseSupervisorOf("lost");
  BOOST_TEST(status == 7);
  BOOST_TEST(output.find("LOST handler called\n") != std::string::npos, output);
  BOOST_TEST(output.find("clustervisor-worker:") == std::string::npos, output);
}

BOOST_AUTO_TEST_CASE(a_supervisor_lost_handler_that_throws_is_reported_and_the_worker_exits) {
  const auto [status, output] = loseSupervisorOf("lost-throws");
  BOOST_TEST(status == 1);
  BOOST_TEST(output.find("LOST handler called\n") != std::string::npos, output);
  BOOST_TEST(output.find("LISTENER_ERROR (supervisor lost handler) lost handler failed on "
                         "purpose\n") != std::string::npos,
             output);
  BOOST_TEST(output.find("clustervisor-worker: the supervisor closed the connection; exiting "
                         "(cluster 0)\n") != std::string::npos,
             output);
}

BOOST_AUTO_TEST_CASE(a_worker_that_stopped_reading_for_a_blocked_listener_sees_the_socket_close) {
  // Its listener blocks in the first event, so after 64 KiB (its receiveQueueLimit) the SDK
  // stops reading.
  auto worker = readyProbe(2, "blocked-lost");
  // Events from cluster 1 until the socket takes no more for a second: the worker stopped
  // reading (one that was merely slow to be scheduled would have read on).
  const auto event =
      wire::encodeEvent(1, 0, 0, "f", std::string("\"") + std::string(200, 'x') + "\"");
  std::size_t written = 0;
  for (pollfd out{worker.socket, POLLOUT, 0}; ::poll(&out, 1, 1000) == 1; out.revents = 0) {
    BOOST_REQUIRE(::write(worker.socket, event.data(), event.size()) ==
                  static_cast<ssize_t>(event.size()));
    written += event.size();
    BOOST_REQUIRE_MESSAGE(written < 64 * 1024 * 1024, "the worker never stopped reading");
  }
  BOOST_TEST_MESSAGE("written before the worker stopped reading: " << written << " bytes");
  // The supervisor ends its side. Although the listener never returns, the worker reads what
  // is left, sees the end and closes the connection (its lost-supervisor path: waits finished,
  // timers stopped) instead of leaving it paused forever.
  BOOST_REQUIRE(::shutdown(worker.socket, SHUT_WR) == 0);
  pollfd in{worker.socket, POLLIN, 0};
  const bool closed = ::poll(&in, 1, 20'000) == 1 && ::read(worker.socket, &written, 1) == 0;
  int status = 0;
  const bool running = ::waitpid(worker.pid, &status, WNOHANG) == 0;  // closed, not crashed
  ::kill(worker.pid, SIGKILL);
  const int end = waitStatus(worker.pid);
  ::close(worker.socket);
  const auto output = readAll(worker.output);
  BOOST_TEST(closed, output);
  BOOST_TEST(running, output);
  BOOST_TEST(end == 128 + SIGKILL, output);
  BOOST_TEST(output.find("BLOCKED\n") != std::string::npos, output);
}

BOOST_AUTO_TEST_CASE(a_future_a_listener_waits_for_completes_when_the_supervisor_is_lost) {
  // Cluster 0 of 2: its listener for "go" blocks on the future of a broadcastAndWait that
  // nobody answers, and keeps the bus executor busy meanwhile.
  auto worker = readyProbe(2, "nested-wait");
  // Nothing more for a while: the worker's I/O thread is done with that write (it keeps the
  // writer's turn for a moment after each write, and would take a send made meanwhile along).
  pollfd quiet{worker.socket, POLLIN, 0};
  BOOST_REQUIRE(::poll(&quiet, 1, 200) == 0);
  const auto go = wire::encodeEvent(1, 0, 0, "go", "null");
  BOOST_REQUIRE(::write(worker.socket, go.data(), go.size()) == static_cast<ssize_t>(go.size()));
  // The wait's event arrives although the listener that sent it has not returned (it waits).
  pollfd in{worker.socket, POLLIN, 0};
  const bool sent = ::poll(&in, 1, 20'000) == 1;
  if (sent) {
    const auto frame = readFrame(worker.socket);
    const auto header = wire::decodeFrame(frame, 4096).header;
    BOOST_TEST((header.type == wire::FrameType::kEvent && header.correlation != 0));
  }
  // The end of the stream, not a close: nothing the worker still sends turns into a reset.
  BOOST_REQUIRE(::shutdown(worker.socket, SHUT_WR) == 0);
  // The wait completes with what it learned (nothing), the listener returns, and the default
  // lost-supervisor exit runs after it. A worker stuck in the listener is killed at the deadline.
  int status = 0;
  pid_t ended = 0;
  if (!waitUntil([&] { return (ended = ::waitpid(worker.pid, &status, WNOHANG)) != 0; })) {
    ::kill(worker.pid, SIGKILL);
    ::waitpid(worker.pid, &status, 0);
  }
  ::close(worker.socket);
  const auto output = readAll(worker.output);
  BOOST_TEST(sent, "the wait's event was held back while its listener waited: " << output);
  BOOST_TEST_REQUIRE(ended == worker.pid, "the worker is still in its listener: " << output);
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 1), output);
  BOOST_TEST(
      output.find("NESTED acked=0 clusters=[] recipients=-1 timedOut=0") != std::string::npos,
      output);
  // The next wait, started after the loss, fails at once (its future throws in the listener).
  BOOST_TEST(output.find("LISTENER_ERROR go") != std::string::npos, output);
  BOOST_TEST(output.find("clustervisor-worker: the supervisor closed the connection; exiting "
                         "(cluster 0)\n") != std::string::npos,
             output);
}

BOOST_AUTO_TEST_CASE(worker_refuses_a_welcome_for_another_cluster) {
  auto worker = spawnProbe("1", "2");
  readFrame(worker.socket);
  const auto welcome = wire::encodeWelcome({wire::kProtocolVersion, 0, 0, 2, 65536, 0});
  BOOST_REQUIRE(::write(worker.socket, welcome.data(), welcome.size()) > 0);
  BOOST_TEST(waitStatus(worker.pid) != 0);
  ::close(worker.socket);
  const auto output = readAll(worker.output);
  BOOST_TEST(output.find("the welcome does not match this worker (version 2, cluster 0)") !=
                 std::string::npos,
             output);
}

BOOST_AUTO_TEST_SUITE_END()
