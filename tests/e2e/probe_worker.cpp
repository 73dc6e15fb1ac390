// SPDX-License-Identifier: MIT
//
// probe-worker: the worker the end-to-end tests run under the real supervisor. PROBE_MODE (from
// the test's bot.toml `environment`) picks a scenario; PROBE_DIR is a directory the test owns.
// Everything observable is printed as one line per fact on stdout ("START id=1 pid=42 …",
// "RECV b from=0 data={…}"), which the supervisor prefixes with "[cluster N] " and the test
// reads. Scenarios that need one cluster to act once (not again after its restart) leave a
// marker file in PROBE_DIR.
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include "clustervisor/wire/frame.hpp"
#include "clustervisor/wire/frame_reader.hpp"
#include "clustervisor/worker.hpp"
#include "sanitizer_build.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;
using clustervisor::Cluster;
using clustervisor::EventBus;

namespace {

std::mutex outputMutex;

template <typename... Args>
void say(const Args&... args) {
  std::ostringstream line;
  (line << ... << args);
  std::lock_guard lock(outputMutex);
  std::cout << line.str() << std::endl;
}

std::string env(const char* name, const char* fallback = "") {
  const char* value = std::getenv(name);
  return value ? value : fallback;
}

std::string openFds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  const int own = ::dirfd(dir);
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != own) {
      fds.push_back(std::atoi(entry->d_name));
    }
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  std::string out;
  for (int fd : fds) {
    out += (out.empty() ? "" : ",") + std::to_string(fd);
  }
  return out;
}

// True the first time a cluster asks for `name`, false on every later start.
bool firstTime(const std::string& name) {
  const std::string path = env("PROBE_DIR", "/tmp") + "/" + name;
  if (std::ifstream(path).good()) {
    return false;
  }
  std::ofstream(path) << "1\n";
  return true;
}

// Waits until the test creates PROBE_DIR/name: how the test tells a worker "now".
void waitForFile(const std::string& name) {
  while (!std::ifstream(env("PROBE_DIR") + "/" + name).good()) {
    std::this_thread::sleep_for(10ms);
  }
}

// How many times this cluster has started, this start included (a counter file per cluster).
int countRun(const std::string& id) {
  const std::string path = env("PROBE_DIR", "/tmp") + "/runs-" + id;
  int runs = 0;
  std::ifstream(path) >> runs;
  // Written whole, then renamed over the count: a worker stopped meanwhile (the chaos test stops
  // them at any moment) leaves the old count, never an empty file that would start it over at 1.
  const std::string written = path + "." + std::to_string(::getpid());
  std::ofstream(written) << ++runs << "\n";
  std::rename(written.c_str(), path.c_str());
  return runs;
}

// Element `run` (1-based) of a comma-separated list of integers; the last repeats.
long planFor(const std::string& plan, int run) {
  std::vector<long> values;
  std::istringstream in(plan);
  for (std::string item; std::getline(in, item, ',');) {
    values.push_back(std::atol(item.c_str()));
  }
  if (values.empty()) {
    return 0;
  }
  return values[static_cast<std::size_t>(std::min<int>(run, static_cast<int>(values.size())) - 1)];
}

// Starts `sleep 1000` as a child; with `newSession`, in a session (and process group) of its own,
// as a daemon would.
pid_t startSleeper(bool newSession) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (newSession) {
      ::setsid();
    }
    ::execlp("sleep", "sleep", "1000", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Reported only once it has left: a test that kills us right after must find it outside.
  while (newSession && ::getsid(pid) != pid) {
    std::this_thread::sleep_for(1ms);
  }
  return pid;
}

// A setsid'd shell with a child of its own (`sleep`): that child becomes the supervisor's only
// when the shell dies, after the look the supervisor takes when this worker exits. Returns the
// child's pid once it runs.
pid_t startChain() {
  const std::string file = env("PROBE_DIR") + "/chain-" + std::to_string(::getpid());
  const std::string script =
      "sleep 1000 & echo $! > '" + file + ".tmp' && mv '" + file + ".tmp' '" + file + "'; wait";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    std::ifstream in(file);
    pid_t child = 0;
    if (in >> child) {
      return child;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid || std::chrono::steady_clock::now() > deadline) {
      say("FAIL the chain's shell ended or wrote no pid");
      std::exit(1);
    }
    std::this_thread::sleep_for(1ms);
  }
}

// A setsid'd child that has no environment until PROBE_DIR/exec exists, then execs a program
// with this cluster's id in its environment (at once: no program in between without it): what a
// process caught in the middle of an exec looks like to the supervisor, for as long as the test
// wants. Reported once its environment is empty.
pid_t startUnmarkedChild(int id) {
  const std::string script = "while [ ! -e '" + env("PROBE_DIR") +
                             "/exec' ]; do sleep 0.01; done; export " +
                             std::string(clustervisor::wire::kEnvClusterId) + "=" +
                             std::to_string(id) + "; exec sleep 1000";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    const char* const argv[] = {"sh", "-c", script.c_str(), nullptr};
    const char* const none[] = {nullptr};
    ::execve("/bin/sh", const_cast<char* const*>(argv), const_cast<char* const*>(none));
    ::_exit(127);
  }
  const std::string environ = "/proc/" + std::to_string(pid) + "/environ";
  for (;;) {
    std::ifstream in(environ);
    if (in && in.peek() == std::ifstream::traits_type::eof()) {
      return pid;
    }
    std::this_thread::sleep_for(1ms);
  }
}

// Returns once the supervisor has handled everything this worker sent before: an emitTo to
// ourselves comes back only after it, on the same connection.
void echoThroughSupervisor(EventBus& events, int self) {
  auto echoed = std::make_shared<std::promise<void>>();
  events.once("echo", [echoed](const json::value&, int) { echoed->set_value(); });
  events.emitTo(self, "echo");
  echoed->get_future().wait();
}

[[noreturn]] void sleepForever() {
  for (;;) {
    std::this_thread::sleep_for(1h);
  }
}

// Returns once every other cluster is connected: a broadcastAndWait reaches only connected
// clusters, so all of them acknowledging proves it.
void barrier(Cluster& cluster) {
  const int others = cluster.totalClusters() - 1;
  while (cluster.events().broadcastAndWait("probe.sync", nullptr, 200ms, others).get() < others) {
  }
}

void logEvents(EventBus& events, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    events.on(name, [name](const json::value& data, int source) {
      say("RECV ", name, " from=", source, " data=", json::serialize(data));
    });
  }
}

void printReport(const char* label, const clustervisor::AckReport& r,
                 std::chrono::steady_clock::duration elapsed) {
  std::string clusters;
  for (int c : r.clusters) {
    clusters += (clusters.empty() ? "" : ",") + std::to_string(c);
  }
  say(label, " acked=", r.acked, " clusters=[", clusters, "] recipients=", r.recipients,
      " timedOut=", r.timedOut ? 1 : 0,
      " elapsedMs=", std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());
}

// Cluster 1 of "self-wait", speaking the protocol by hand in both of its workers: the first one
// says READY and never acknowledges anything; the second, started by a rolling restart, opens a
// wait on its own cluster (an emitTo with a correlation: the first worker is its only
// recipient), then says READY, and prints every frame it reads after that.
int rawSelfWaitMain() {
  namespace wire = clustervisor::wire;
  const int fd = wire::kWorkerFd;
  const int run = countRun("1");
  wire::HelloBody hello;
  hello.pid = static_cast<std::uint32_t>(::getpid());
  const auto write = [](const std::vector<std::byte>& frame) {
    (void)!::write(fd, frame.data(), frame.size());
  };
  write(wire::encodeHello(hello));
  wire::FrameReader reader(1 << 20);
  const auto next = [&]() -> std::optional<std::vector<std::byte>> {
    for (;;) {
      const auto frame = reader.next();
      if (frame.result.status == wire::DecodeStatus::kFrame) {
        return std::vector<std::byte>(frame.frame.begin(), frame.frame.end());
      }
      const auto space = reader.prepare();
      const ssize_t n = ::read(fd, space.data(), space.size());
      if (n <= 0) {
        return std::nullopt;
      }
      reader.commit(static_cast<std::size_t>(n));
    }
  };
  (void)next();  // WELCOME
  if (run > 1) {
    write(wire::encodeEvent(0, 1, 0x1234, "self", "{}"));
  }
  write(wire::encodeReady());
  say("SELFWAIT run=", run, " ready");
  while (const auto frame = next()) {
    const auto decoded = wire::decodeFrame(*frame, frame->size());
    std::string body;
    if (decoded.header.type == wire::FrameType::kWaitClosed) {
      const auto closed = wire::waitClosedBody(*frame);
      body = " recipients=" + std::to_string(closed.recipients) +
             " acked=" + std::to_string(closed.acked);
    }
    say("SELFWAIT run=", run, " got ", wire::toString(decoded.header.type),
        " correlation=", decoded.header.correlation, body);
  }
  return 0;
}

// A raw protocol speaker that never links the SDK's Cluster: used to misbehave on purpose.
int rawWorker(const std::string& mode) {
  const int fd = clustervisor::wire::kWorkerFd;
  clustervisor::wire::HelloBody hello;
  hello.pid = static_cast<std::uint32_t>(::getpid());
  auto frame = clustervisor::wire::encodeHello(hello);
  (void)!::write(fd, frame.data(), frame.size());
  std::byte welcome[clustervisor::wire::kHeaderSize + clustervisor::wire::kWelcomeBodySize];
  std::size_t got = 0;
  while (got < sizeof welcome) {
    const ssize_t n = ::read(fd, welcome + got, sizeof welcome - got);
    if (n <= 0) {
      return 2;
    }
    got += static_cast<std::size_t>(n);
  }
  say("RAW welcomed mode=", mode);
  if (mode == "forge") {
    // Claims to be cluster 3; the supervisor must stamp the real id.
    frame = clustervisor::wire::encodeEvent(3, 0, 0, "forged", R"({"claim":3})");
  } else if (mode == "garbage") {
    // A plausible length, then a frame type that does not exist.
    frame.assign(32, std::byte{0x5A});
    frame[0] = std::byte{32};
    frame[1] = frame[2] = frame[3] = std::byte{0};
    frame[4] = std::byte{0xEE};
  } else if (mode == "oversize") {
    clustervisor::wire::Header h;
    h.length = 0xFFFFFFFFu;
    frame.assign(clustervisor::wire::kHeaderSize, std::byte{0});
    clustervisor::wire::encodeHeader(h, std::span<std::byte, clustervisor::wire::kHeaderSize>(
                                            frame.data(), clustervisor::wire::kHeaderSize));
  }
  if (mode == "close-on-file") {
    // Once the test says so, an orderly end of file; the process goes on running without its
    // socket.
    waitForFile("close");
    ::close(fd);
    say("RAW closed");
    sleepForever();
  }
  if (mode == "truncated") {
    // Half of an event, then end of file: the process goes on running without its socket.
    frame = clustervisor::wire::encodeEvent(0, 0, 0, "cut", R"({"half":"of me"})");
    (void)!::write(fd, frame.data(), frame.size() / 2);
    ::close(fd);
    say("RAW sent half a frame and closed");
    sleepForever();
  }
  if (mode == "ackflood") {
    // Acknowledgements for waits that do not exist, as fast as the socket takes them, while
    // reading (and discarding) what arrives, so the flood is all this worker does wrong.
    frame = clustervisor::wire::encodeReady();
    (void)!::write(fd, frame.data(), frame.size());
    std::vector<std::byte> batch;
    for (std::uint64_t i = 0; i < 1000; ++i) {
      const auto ack = clustervisor::wire::encodeAck(0, static_cast<std::uint32_t>(i % 3),
                                                     0x5EED0000ULL + i * 7919);
      batch.insert(batch.end(), ack.begin(), ack.end());
    }
    say("RAW ack flood");
    std::byte sink[65536];
    for (std::uint64_t sent = 0;; sent += 1000) {
      if (::write(fd, batch.data(), batch.size()) < 0) {
        return 3;
      }
      while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
      }
      if (sent % 1'000'000 == 0) {
        say("RAW acks sent ", sent);
      }
    }
  }
  if (mode == "waits-unread") {
    // Opens PROBE_COUNT waits on cluster 0 (which acknowledges them), and reads none of their
    // acknowledgements until the test creates the file "read"; from then on it reads and
    // discards everything.
    frame = clustervisor::wire::encodeReady();
    (void)!::write(fd, frame.data(), frame.size());
    const long count = std::atol(env("PROBE_COUNT", "20000").c_str());
    std::thread writer([count] {
      std::vector<std::byte> batch;
      for (long i = 0; i < count; ++i) {
        const auto event = clustervisor::wire::encodeEvent(0, 0, static_cast<std::uint64_t>(i) + 1,
                                                           "w", std::string_view());
        batch.insert(batch.end(), event.begin(), event.end());
      }
      say("RAW opening ", count, " waits without reading");
      std::size_t written = 0;
      while (written < batch.size()) {
        const ssize_t n = ::write(fd, batch.data() + written, batch.size() - written);
        if (n <= 0) {
          return;
        }
        written += static_cast<std::size_t>(n);
      }
      say("RAW waits all sent");
    });
    waitForFile("read");
    std::byte sink[65536];
    std::size_t read = 0;
    for (;;) {
      const ssize_t n = ::read(fd, sink, sizeof sink);
      if (n <= 0) {
        break;
      }
      read += static_cast<std::size_t>(n);
    }
    writer.join();
    say("RAW read ", read, " bytes");
    sleepForever();
  }
  if (mode == "noread") {
    // Says it is ready, then never reads again: what is sent to it piles up in the supervisor.
    frame = clustervisor::wire::encodeReady();
    (void)!::write(fd, frame.data(), frame.size());
    say("RAW not reading");
    sleepForever();
  }
  (void)!::write(fd, frame.data(), frame.size());
  say("RAW sent ", mode);
  sleepForever();
}

// The stop-handler example of clustervisor-worker(3): on the worker's own io_context, the stop
// handler broadcasts "leaving" and stops the io_context; main returns. The others print what
// they receive.
int leavingMain() {
  namespace asio = boost::asio;
  asio::io_context io;
  clustervisor::ClusterOptions options;
  options.executor = io.get_executor();
  auto cluster = Cluster::fromEnvironment(options);
  auto subscription = cluster.events().on("leaving", [](const json::value& data, int source) {
    say("RECV leaving from=", source, " data=", json::serialize(data));
  });
  auto work = asio::make_work_guard(io);
  cluster.onStop([&](std::chrono::milliseconds) {
    cluster.events().broadcast("leaving", {{"cluster", cluster.id()}});
    io.stop();
  });
  cluster.ready();
  io.run();
  say("STOPPED cleanly");
  return 0;
}

// Set in a child forked without exec: LeakSanitizer, which runs at its exit, would take what the
// parent's threads (absent in the child) hold for leaks.
bool forkedChild = false;

// A listener that forks a child which ends with exit(3) while the listener's send is still
// queued in the child's copy of the connection: only the parent may write it.
int forkInListenerMain() {
  auto cluster = Cluster::fromEnvironment();
  auto& events = cluster.events();
  int copies = 0;
  auto go = events.on("go", [&](const json::value&, int source) {
    (void)events.emitTo(source, "copy", nullptr);
    const pid_t child = ::fork();
    if (child == 0) {
      forkedChild = true;
      std::exit(0);
    }
    ::waitpid(child, nullptr, 0);
    (void)events.emitTo(source, "done", nullptr);
  });
  auto copy = events.on("copy", [&](const json::value&, int) { ++copies; });
  auto done = events.on("done", [&](const json::value&, int) { say("FORKED copies=", copies); });
  cluster.ready();
  if (cluster.id() == 1 && firstTime("go")) {
    (void)events.emitTo(0, "go", nullptr);
  }
  for (;;) {
    ::pause();
  }
}

// A Cluster of static storage duration that a listener ends with exit(3): its destructor runs on
// the SDK thread that runs the listener. Cluster 1 asks cluster 0 to quit; cluster 0 answers
// "bye" and exits at once, from inside the listener.
std::optional<Cluster>& staticCluster() {
  static std::optional<Cluster> cluster;
  return cluster;
}

// A crash reporter's handler for SIGSEGV, and a listener that faults: the handler runs although
// the listener runs on an SDK thread.
void onFault(int) {
  const char line[] = "CAUGHT SIGSEGV\n";
  (void)!::write(STDOUT_FILENO, line, sizeof line - 1);
  ::_exit(42);
}

int faultInListenerMain() {
  struct sigaction action {};
  action.sa_handler = onFault;
  ::sigaction(SIGSEGV, &action, nullptr);
  auto cluster = Cluster::fromEnvironment();
  auto& events = cluster.events();
  auto fault = events.on("fault", [](const json::value&, int) {
    say("FAULTING in a listener");
    std::fflush(nullptr);
    ::raise(SIGSEGV);
    say("NOT CAUGHT: the listener went on");
  });
  cluster.ready();
  if (cluster.id() == 1 && firstTime("fault")) {
    (void)events.emitTo(0, "fault", nullptr);
  }
  for (;;) {
    ::pause();
  }
}

int exitFromListenerMain() {
  clustervisor::ClusterOptions options;
  options.listenersOnIoThread = env("PROBE_THREADS") == "io";
  boost::asio::io_context io;  // PROBE_THREADS=executor: listeners on this one, in main
  if (env("PROBE_THREADS") == "executor") {
    options.executor = io.get_executor();
  }
  // PROBE_LOCAL=1: a local of this function instead, which exit(3) does not destroy.
  std::optional<Cluster> local;
  auto& cluster = (env("PROBE_LOCAL") == "1" ? local : staticCluster())
                      .emplace(Cluster::fromEnvironment(options));
  auto& events = cluster.events();
  auto quit = events.on("quit", [&](const json::value&, int source) {
    (void)events.emitTo(source, "bye", {{"from", cluster.id()}});
    say("EXITING from a listener");
    std::fflush(nullptr);
    std::exit(0);
  });
  auto bye = events.on("bye", [](const json::value& data, int source) {
    say("RECV bye from=", source, " data=", json::serialize(data));
  });
  // Read before listening starts: once it has, a listener's exit(3) may destroy the static
  // Cluster at any moment, and main must not touch it (cluster 0 only waits from here on).
  const bool asker = cluster.id() == 1;
  cluster.ready();
  if (asker && firstTime("quit")) {
    (void)events.emitTo(0, "quit", nullptr);
  }
  if (options.executor) {
    io.run();
  }
  for (;;) {
    ::pause();
  }
}

// Listeners and completions on the worker's own io_context (ClusterOptions::executor), with a
// callback and with a coroutine (use_awaitable).
int tokensMain() {
  namespace asio = boost::asio;
  asio::io_context io;
  clustervisor::ClusterOptions options;
  options.executor = io.get_executor();
  auto cluster = Cluster::fromEnvironment(options);
  auto& events = cluster.events();
  const auto mainThread = std::this_thread::get_id();
  events.on("b", [&](const json::value& data, int source) {
    say("TOKENS listener from=", source, " data=", json::serialize(data),
        " onOwnThread=", std::this_thread::get_id() == mainThread ? 1 : 0);
  });
  cluster.ready();
  if (cluster.id() == 0) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          const int others = cluster.totalClusters() - 1;
          int acked = 0;
          while (acked < others) {
            acked = co_await events.broadcastAndWait("probe.sync", nullptr, 200ms, others,
                                                     asio::use_awaitable);
          }
          say("TOKENS awaitable=", acked,
              " onOwnThread=", std::this_thread::get_id() == mainThread ? 1 : 0);
          events.broadcastAndWait(
              "probe.sync", nullptr, 10s, others, [&](boost::system::error_code ec, int n) {
                say("TOKENS callback=", n, " ec=", ec.message(),
                    " onOwnThread=", std::this_thread::get_id() == mainThread ? 1 : 0);
                events.broadcast("b", {{"via", "callback"}});
              });
        },
        asio::detached);
  }
  io.run();
  return 0;
}

// Waits cancelled through Asio's per-operation cancellation, three clusters. Cluster 1's
// listener of "hold" blocks until the test creates PROBE_DIR/release, so until then no wait for
// both others can end by its count. Cluster 0 (a coroutine on its own io_context) cancels one
// such wait with the awaitable `||` against a timer, and one through a cancellation signal bound
// to a callback, after a total cancellation (refused: the event has been sent) and a wait that
// cluster 2 acknowledges after it acknowledged "hold". Once the test has released cluster 1, a
// wait after them is counted as usual (their late acknowledgements are not).
int cancelMain() {
  namespace asio = boost::asio;
  using namespace asio::experimental::awaitable_operators;
  asio::io_context io;
  clustervisor::ClusterOptions options;
  options.executor = io.get_executor();
  std::optional<Cluster> cluster(Cluster::fromEnvironment(options));
  auto& events = cluster->events();
  if (cluster->id() == 1) {
    events.on("hold", [](const json::value&, int) { waitForFile("release"); });
    events.on("stall", [](const json::value&, int) { waitForFile("never"); });
  }
  cluster->ready();
  if (cluster->id() == 0) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          while (co_await events.broadcastAndWait("probe.sync", nullptr, 200ms, 2,
                                                  asio::use_awaitable) < 2) {
          }
          asio::steady_timer timer(io, 50ms);
          const auto raced =
              co_await (events.broadcastAndWait("hold", nullptr, 60s, 2, asio::use_awaitable) ||
                        timer.async_wait(asio::use_awaitable));
          say("CANCEL operators winner=", raced.index());

          asio::cancellation_signal signal;
          asio::steady_timer done(io, asio::steady_timer::time_point::max());
          events.broadcastAndWaitDetailed(
              "hold", nullptr, 60s, 2,
              asio::bind_cancellation_slot(
                  signal.slot(), [&](boost::system::error_code ec, clustervisor::AckReport report) {
                    say("CANCEL callback aborted=", ec == asio::error::operation_aborted ? 1 : 0,
                        " acked=", report.acked,
                        " clusters=", json::serialize(json::value_from(report.clusters)),
                        " timedOut=", report.timedOut ? 1 : 0);
                    done.cancel();
                  }));
          signal.emit(asio::cancellation_type::total);
          const int synced =
              co_await events.broadcastAndWait("probe.sync", nullptr, 60s, 1, asio::use_awaitable);
          say("CANCEL synced=", synced);
          signal.emit(asio::cancellation_type::terminal);
          co_await done.async_wait(asio::as_tuple(asio::use_awaitable));

          const int after =
              co_await events.broadcastAndWait("after", nullptr, 60s, 2, asio::use_awaitable);
          say("CANCEL after=", after);

          // The Cluster goes while two waits cluster 1 never acknowledges are open; the first
          // one's completion, which runs here after the destructor, cancels the second, which
          // has no SDK thread left to end it. (Nothing may be kept alive for that: a cycle that
          // valgrind shows as still in use at exit, not a leak AddressSanitizer reports.)
          auto second = std::make_shared<asio::cancellation_signal>();
          events.broadcastAndWait("stall", nullptr, 60s, 2,
                                  [second](boost::system::error_code, int n) {
                                    say("CANCEL gone first acked=", n);
                                    second->emit(asio::cancellation_type::terminal);
                                  });
          events.broadcastAndWait(
              "stall", nullptr, 60s, 2,
              asio::bind_cancellation_slot(
                  second->slot(), [second](boost::system::error_code ec, int n) {
                    say("CANCEL gone second aborted=", ec == asio::error::operation_aborted ? 1 : 0,
                        " acked=", n);
                  }));
          cluster.reset();
          say("CANCEL destroyed");
        },
        asio::detached);
  }
  io.run();
  return 0;
}

// Monotonic nanoseconds: the same clock in every process of the machine.
long long nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// chaos: every cluster floods the others with numbered events (a broadcast "b" and an emitTo
// "e" to a random other cluster each round, a broadcastAndWait "w" every 50 rounds) until the
// test creates "quiesce"; then it broadcasts "fin" with what it sent. Receivers check on the fly
// that each sender run's numbers arrive in order without gaps or repeats ("CHAOS-BAD" when
// not), and on "fin" report how many arrived ("FIN"). Waits report which clusters acknowledged
// ("WAITED"), receivers report each acknowledgement they are about to send ("ACK"), and each run
// says when it is ready ("UP").
int chaosMain(Cluster& cluster) {
  auto& events = cluster.events();
  const int id = cluster.id();
  const int run = countRun(std::to_string(id));
  struct Stream {
    long first = -1;
    long next = -1;
    long count = 0;
  };
  // Per "<kind>:<from>:<run>", touched on the bus executor only.
  auto streams = std::make_shared<std::map<std::string, Stream>>();
  const auto check = [streams, id, run](const char* kind, const json::value& data) {
    const long from = static_cast<long>(data.at("from").as_int64());
    const long senderRun = static_cast<long>(data.at("run").as_int64());
    const long n = static_cast<long>(data.at("n").as_int64());
    Stream& stream = (*streams)[std::string(kind) + ":" + std::to_string(from) + ":" +
                                std::to_string(senderRun)];
    if (stream.first < 0) {
      stream.first = n;
    } else if (n != stream.next) {
      say("CHAOS-BAD id=", id, " run=", run, " kind=", kind, " from=", from,
          " senderRun=", senderRun, " expected=", stream.next, " got=", n);
    }
    stream.next = n + 1;
    ++stream.count;
  };
  events.on("b", [check](const json::value& data, int) { check("b", data); });
  events.on("e", [check](const json::value& data, int) { check("e", data); });
  events.on("w", [id, run](const json::value& data, int) {
    say("ACK id=", id, " run=", run, " waiter=", data.at("from").as_int64(),
        " waiterRun=", data.at("run").as_int64(), " k=", data.at("k").as_int64());
  });
  events.on("fin", [streams, id, run](const json::value& data, int) {
    const long from = static_cast<long>(data.at("from").as_int64());
    const long senderRun = static_cast<long>(data.at("run").as_int64());
    const auto key = [&](const char* kind) {
      return std::string(kind) + ":" + std::to_string(from) + ":" + std::to_string(senderRun);
    };
    const Stream b = (*streams)[key("b")];
    const Stream e = (*streams)[key("e")];
    say("FIN id=", id, " run=", run, " from=", from, " senderRun=", senderRun, " b=", b.count,
        " bFirst=", b.first, " bSent=", data.at("b").as_int64(), " e=", e.count,
        " eFirst=", e.first,
        " eSent=", data.at("e").as_array().at(static_cast<std::size_t>(id)).as_int64());
  });
  cluster.ready();
  say("UP id=", id, " run=", run, " t=", nowNs());  // the others' waits count it from here on
  // At the start, every cluster is connected before the flood begins: a broadcast reaches only
  // the clusters connected when it is relayed. (Later runs start while the others run.)
  if (run == 1) {
    barrier(cluster);
  }

  std::mt19937 random(static_cast<unsigned>(id * 7919 + run));
  const int total = cluster.totalClusters();
  long broadcasts = 0;
  std::vector<long> emitted(static_cast<std::size_t>(total), 0);
  long waits = 0;
  const std::string pad(100, 'x');  // events of about the size a bot sends
  const int burst = std::atoi(env("PROBE_BURST", "5").c_str());
  while (!std::ifstream(env("PROBE_DIR") + "/quiesce").good()) {
    for (int i = 0; i < burst; ++i) {
      events.broadcast("b", {{"from", id}, {"run", run}, {"n", broadcasts++}, {"pad", pad}});
      int target = static_cast<int>(random() % static_cast<unsigned>(total - 1));
      target += target >= id ? 1 : 0;
      events.emitTo(target, "e",
                    {{"from", id},
                     {"run", run},
                     {"n", emitted[static_cast<std::size_t>(target)]++},
                     {"pad", pad}});
    }
    if (broadcasts % (burst * 100) == 0) {
      const long k = waits++;
      const long long started = nowNs();
      events.broadcastAndWaitDetailed(
          "w", {{"from", id}, {"run", run}, {"k", k}},
          std::chrono::milliseconds(std::atoi(env("PROBE_WAIT_MS", "2000").c_str())), total - 1,
          [id, run, k, started](boost::system::error_code, clustervisor::AckReport report) {
            std::string acked;
            for (const int c : report.clusters) {
              acked += (acked.empty() ? "" : ",") + std::to_string(c);
            }
            say("WAITED id=", id, " run=", run, " k=", k, " count=", report.acked,
                " acked=", acked.empty() ? "-" : acked, " t0=", started, " t1=", nowNs());
          });
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::atoi(env("PROBE_PACE_MS", "2").c_str())));
  }
  json::array perTarget;
  for (const long n : emitted) {
    perTarget.push_back(n);
  }
  events.broadcast("fin", {{"from", id}, {"run", run}, {"b", broadcasts}, {"e", perTarget}});
  say("QUIESCED id=", id, " run=", run, " b=", broadcasts);
  sleepForever();
}

// "default" when no signal is blocked and the signals the supervisor ignores or handles are at
// their default action; otherwise what differs.
std::string signalState() {
  std::string odd;
  sigset_t mask;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  for (int s = 1; s < NSIG; ++s) {
    if (sigismember(&mask, s) == 1) {
      odd += "blocked:" + std::to_string(s) + ",";
    }
  }
  for (const int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
    struct sigaction action {};
    ::sigaction(s, nullptr, &action);
    if (action.sa_handler != SIG_DFL) {
      odd += "not-default:" + std::to_string(s) + ",";
    }
  }
  return odd.empty() ? "default" : odd;
}

// The process's thread count, from /proc/self/status (-1 if it cannot be read).
int threadCount() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Threads:", 0) == 0) {
      return std::atoi(line.c_str() + 8);
    }
  }
  return -1;
}
}  // namespace

#if defined(CLUSTERVISOR_TEST_ASAN)
extern "C" int __lsan_is_turned_off() {
  return forkedChild ? 1 : 0;
}
#endif

int main() {
  const std::string mode = env("PROBE_MODE", "basic");
  if (mode == "self-wait" && env("CLUSTERVISOR_CLUSTER_ID") == "1") {
    return rawSelfWaitMain();
  }
  if (mode == "twice-after-destroyed") {
    // The descriptor is closed with the first Cluster: the second call must not look at it.
    { auto first = Cluster::fromEnvironment(); }
    try {
      (void)Cluster::fromEnvironment();
      say("TWICE accepted");
    } catch (const std::logic_error& e) {
      say("TWICE ", e.what());
    } catch (const std::exception& e) {
      say("TWICE other error: ", e.what());
    }
    sleepForever();
  }
  const std::string rawMode = env("PROBE_RAW");  // "<cluster>:<mode>"
  if (!rawMode.empty() && env("CLUSTERVISOR_CLUSTER_ID") == rawMode.substr(0, rawMode.find(':')) &&
      firstTime("raw-" + env("CLUSTERVISOR_CLUSTER_ID"))) {
    return rawWorker(rawMode.substr(rawMode.find(':') + 1));
  }

  say("START id=", env("CLUSTERVISOR_CLUSTER_ID"), " pid=", ::getpid(),
      " total=", env("CLUSTERVISOR_TOTAL_CLUSTERS"), " fd=", env("CLUSTERVISOR_FD"),
      " protocol=", env("CLUSTERVISOR_PROTOCOL"), " fds=", openFds(),
      " extra=", env("PROBE_EXTRA", "-"), " pgid-is-pid=", ::getpgrp() == ::getpid() ? 1 : 0,
      " shards=", env("CLUSTERVISOR_SHARDS", "-"),
      " totalShards=", env("CLUSTERVISOR_TOTAL_SHARDS", "-"), " signals=", signalState(),
      " notify=", env("NOTIFY_SOCKET", "-"), " watchdog=", env("WATCHDOG_USEC", "-"), "/",
      env("WATCHDOG_PID", "-"));
  // A hung worker is sent SIGABRT; its core would only litter the test directory.
  const rlimit noCore{0, 0};
  ::setrlimit(RLIMIT_CORE, &noCore);

  if (mode == "tokens") {
    return tokensMain();
  }
  if (mode == "cancel") {
    return cancelMain();
  }
  if (mode == "leaving") {
    return leavingMain();
  }
  if (mode == "exit-from-listener") {
    return exitFromListenerMain();
  }
  if (mode == "fault-in-listener") {
    return faultInListenerMain();
  }
  if (mode == "fork-in-listener") {
    return forkInListenerMain();
  }
  if (mode == "held" && env("CLUSTERVISOR_CLUSTER_ID") == "1") {
    // Stay unconnected until the test says so, while cluster 0 sends to us.
    waitForFile("go");
  }
  clustervisor::ClusterOptions options;
  // Heartbeats from the executor: a worker that stops running it stops heartbeating.
  std::optional<boost::asio::io_context> ownContext;
  // PROBE_THREADS=io: listeners on the SDK's I/O thread (ClusterOptions::listenersOnIoThread).
  const bool onIoThread = env("PROBE_THREADS") == "io";
  options.listenersOnIoThread = onIoThread;
  if (mode == "hang" && !onIoThread) {
    ownContext.emplace();
    options.executor = ownContext->get_executor();
    options.heartbeatFromExecutor = true;
  }
  if (mode == "lost") {
    options.onSupervisorLost = [] {
      say("LOST handler called");
      std::fflush(nullptr);
      ::_exit(7);
    };
  }
  if (mode == "lost-throws") {
    options.onSupervisorLost = [] {
      say("LOST handler called");
      throw std::runtime_error("lost handler failed on purpose");
    };
  }
  if (mode == "blocked-lost") {
    options.receiveQueueLimit = 64 * 1024;  // reached with a little flooding
  }
  if (!env("PROBE_RECEIVE_LIMIT").empty()) {
    options.receiveQueueLimit = std::stoul(env("PROBE_RECEIVE_LIMIT"));
  }
  if (!env("PROBE_CLUSTER1_SEND_LIMIT").empty() && env("CLUSTERVISOR_CLUSTER_ID") == "1") {
    options.sendQueueLimit = std::stoul(env("PROBE_CLUSTER1_SEND_LIMIT"));
  }
  const int threadsBefore = threadCount();
  auto cluster = Cluster::fromEnvironment(options);
  auto& events = cluster.events();
  const int id = cluster.id();
  if (mode == "twice") {
    try {
      (void)Cluster::fromEnvironment(options);
      say("TWICE accepted");
    } catch (const std::logic_error& e) {
      say("TWICE ", e.what());
    }
  }
  {
    std::string shards;
    for (const auto shard : cluster.shards()) {
      shards += (shards.empty() ? "" : ",") + std::to_string(shard);
    }
    say("SDK id=", id, " total=", cluster.totalClusters(),
        " shards=", shards.empty() ? "-" : shards, " totalShards=", cluster.totalShards(),
        " sdkThreads=", threadCount() - threadsBefore);
  }
  // PROBE_ERROR_HANDLER: "none" (the SDK's own report), "throws" (one that throws), else one
  // that prints LISTENER_ERROR.
  if (env("PROBE_ERROR_HANDLER") == "throws") {
    events.setErrorHandler(
        [](std::string_view, std::exception_ptr) { throw std::runtime_error("handler broke"); });
  } else if (env("PROBE_ERROR_HANDLER") != "none") {
    events.setErrorHandler([](std::string_view event, std::exception_ptr error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        say("LISTENER_ERROR ", event, " ", e.what());
      }
    });
  }
  logEvents(events, {"b", "marker", "forged", "back", "big", "held", "v"});
  if (mode == "raw-listeners") {
    // A raw listener between two parsed ones, and one for text that is not JSON.
    events.on("r", [](const json::value& data, int) { say("PARSED1 ", json::serialize(data)); });
    events.onRaw(
        "r", [](std::string_view text, int source) { say("RAW r from=", source, " text=", text); });
    events.on("r", [](const json::value& data, int) { say("PARSED2 ", json::serialize(data)); });
    events.onRaw("bad", [](std::string_view text, int) { say("RAW bad text=", text); });
  }
  if (mode == "error-reports" && id == 1) {
    // Names no event can have are refused; a payload that is not JSON, a listener that throws.
    const auto tryName = [](const char* how, const auto& add) {
      try {
        add();
        say("ON_BAD_NAME ", how, " accepted");
      } catch (const clustervisor::Error& e) {
        say("ON_BAD_NAME ", how, " threw ", e.what());
      }
    };
    const auto parsed = [](const json::value&, int) {};
    tryName("on", [&] { events.on("", parsed); });
    tryName("on", [&] { events.on(std::string(256, 'n'), parsed); });
    tryName("once", [&] { events.once("", parsed); });
    tryName("onRaw", [&] { events.onRaw(std::string(256, 'n'), [](std::string_view, int) {}); });
    events.on(std::string(255, 'n'), parsed);
    say("ON_LONGEST_NAME accepted");
    events.on("nj", [](const json::value&, int) { say("NJ called"); });
    events.onRaw("nj", [](std::string_view text, int) { say("RAW nj ", text); });
    events.on("boom",
              [](const json::value&, int) { throw std::logic_error("boom from listener"); });
    events.on("marker", [](const json::value&, int) { say("MARKER"); });
  }
  if (mode == "listener-changes") {
    // Listeners the listeners themselves change between two events of one burst: a
    // once-listener, one that removes itself, one that adds a listener for a later event.
    events.once("o", [](const json::value& data, int) { say("ONCE o n=", json::serialize(data)); });
    auto self = std::make_shared<clustervisor::Subscription>();
    *self = events.on("s", [self](const json::value& data, int) {
      say("SELF s n=", json::serialize(data));
      self->remove();
    });
    events.on("g", [&events](const json::value&, int) {
      events.on("late",
                [](const json::value& data, int) { say("LATE n=", json::serialize(data)); });
    });
  }
  if (mode == "requests" && id == 0) {
    // The responder answers each request twice, then says when it has answered them all.
    events.on("request", [&events](const json::value& data, int source) {
      const auto n = data.as_int64();
      for (int copy = 0; copy < 2; ++copy) {
        events.emitTo(source, "reply:" + std::to_string(n), n);
      }
    });
    events.on("requests-end", [&events](const json::value&, int source) {
      events.emitTo(source, "replies-end", nullptr);
    });
  }
  if (mode == "guarded-removal") {
    // A listener whose captured state removes another listener when it is destroyed (an RAII
    // guard): removing the first must not deadlock on the listener table.
    struct RemovesOther {
      std::shared_ptr<clustervisor::Subscription> other;
      ~RemovesOther() {
        if (other) {
          other->remove();
        }
      }
    };
    auto other = std::make_shared<clustervisor::Subscription>(
        events.on("g2", [](const json::value&, int) {}));
    auto guard = std::make_shared<RemovesOther>();
    guard->other = other;
    auto first = events.on("g1", [guard](const json::value&, int) {});
    guard.reset();
    first.remove();
    say("GUARDED removal done, other still subscribed: ", static_cast<bool>(*other));
    // The same guard in a once-listener, used up by the first event of a burst: the delivery of
    // the next one lets go of it.
    auto third = std::make_shared<clustervisor::Subscription>(
        events.on("g3", [](const json::value&, int) {}));
    auto onceGuard = std::make_shared<RemovesOther>();
    onceGuard->other = third;
    events.once("g4", [onceGuard](const json::value&, int) { say("GUARDED once ran"); });
    onceGuard.reset();
    events.on("g5", [third](const json::value&, int) {
      say("GUARDED burst done, other still subscribed: ", static_cast<bool>(*third));
    });
  }
  events.on("ping", [&events](const json::value&, int source) {
    events.emitTo(source, "pong", {{"from", 0}});
  });
  // Modes with listeners of their own start listening once those are registered too.
  if (mode == "late" && id == 1) {
    // Connected, listeners registered, but not listening until the test says so.
    waitForFile("listen");
    say("LISTENING");
  }
  if (mode != "order" && mode != "burst-exit" && mode != "acks" && mode != "wait" &&
      mode != "chaos" && mode != "flood" && mode != "nested-wait" && mode != "odd-json" &&
      mode != "big" && mode != "handover") {
    events.listen();
  }
  if (mode == "late" && id == 0) {
    waitForFile("send");
    events.broadcast("b", {{"early", 1}});
    // PROBE_LATE_FILL events of 16 KiB: more than cluster 1 keeps before it listens, with a
    // small PROBE_CLUSTER1_SEND_LIMIT (its sendQueueLimit, at least twice the largest frame:
    // 2 MiB and a little).
    const int fill = std::atoi(env("PROBE_LATE_FILL", "0").c_str());
    for (int i = 0; i < fill; ++i) {
      (void)events.emitTo(1, "fill", {{"pad", std::string(16 * 1024, 'f')}});
    }
    events.emitTo(1, "marker", {{"early", 2}});
    echoThroughSupervisor(events, id);
    say("SENT");
  }

  if (mode == "raw-listeners" && id == 0) {
    barrier(cluster);
    boost::system::error_code ec;
    events.broadcastRaw("r", R"({"n": 1})", ec);
    events.broadcastRaw("bad", "not json", ec);
    events.broadcastRaw("r", "", ec);
  }

  if (mode == "error-reports" && id == 0) {
    barrier(cluster);
    boost::system::error_code ec;
    events.broadcastRaw("nj", "{bad", ec);
    events.broadcast("boom", {{"n", 1}});
    events.emitTo(1, "marker", {{"end", true}});
  }

  if (mode == "requests" && id == 1) {
    // A once-listener per request, under a name of its own, as Node.js code writes it; every
    // third one is removed before its request goes out. Listeners run one at a time, so the
    // counts need no lock.
    barrier(cluster);
    const int requests = std::atoi(env("PROBE_COUNT", "3000").c_str());
    auto calls = std::make_shared<std::vector<int>>(static_cast<std::size_t>(requests), 0);
    auto wrong = std::make_shared<int>(0);
    std::vector<clustervisor::Subscription> removed;
    for (int n = 0; n < requests; ++n) {
      auto subscription = events.once("reply:" + std::to_string(n),
                                      [calls, wrong, n](const json::value& data, int) {
                                        ++(*calls)[static_cast<std::size_t>(n)];
                                        *wrong += data.as_int64() == n ? 0 : 1;
                                      });
      if (n % 3 == 2) {
        removed.push_back(std::move(subscription));
      }
    }
    for (auto& subscription : removed) {
      subscription.remove();
    }
    events.on("replies-end", [calls, wrong](const json::value&, int) {
      int once = 0;
      int never = 0;
      int more = 0;
      for (const int c : *calls) {
        once += c == 1 ? 1 : 0;
        never += c == 0 ? 1 : 0;
        more += c > 1 ? 1 : 0;
      }
      say("REPLIES once=", once, " never=", never, " more=", more, " wrong=", *wrong);
    });
    for (int n = 0; n < requests; ++n) {
      events.emitTo(0, "request", n);
    }
    events.emitTo(0, "requests-end", nullptr);
  }

  if (mode == "guarded-removal") {
    for (const char* name : {"g4", "g6", "g5"}) {  // back to back: mostly one batch
      events.emitTo(id, name, nullptr);
    }
  }

  if (mode == "listener-changes" && id == 0) {
    barrier(cluster);
    // Back to back from this thread: mostly one write, so one batch for the receiver.
    std::map<std::string, int> sent;
    for (const char* name : {"late", "o", "o", "o", "s", "s", "s", "g", "late", "late"}) {
      events.emitTo(1, name, sent[name]++);
    }
    events.emitTo(1, "marker", {{"end", true}});
  }

  if (mode == "broadcast" && id == 0) {
    barrier(cluster);
    events.broadcast("b", {{"n", 1}});
    events.emitTo(0, "marker", {{"self", true}});
    boost::system::error_code ec;
    events.emitTo(cluster.totalClusters(), "b", nullptr, ec);
    say("EMIT_OUT_OF_RANGE ", ec.message());
    try {
      events.emitTo(-1, "b");
    } catch (const clustervisor::Error& e) {
      say("EMIT_NEGATIVE threw ", e.what());
    }
  }

  // braced: payload objects written in place (built in the SDK's reused memory) next to the
  // same payloads as json::value, and braced payloads that are not objects; each round twice,
  // around payloads too big for that memory, sent more times than its growth would survive.
  if (mode == "braced" && id == 0) {
    barrier(cluster);
    const std::string guild = "533961200438099968";
    const json::value given = {{"a", 1}};
    for (int round = 0; round < 2; ++round) {
      events.emitTo(1, "v",
                    {{"guild", guild},
                     {"nested", {{"list", {1, 2, 3}}, {"none", nullptr}}},
                     {"ok", true},
                     {"half", 0.5}});
      events.emitTo(1, "v",
                    json::value{{"guild", guild},
                                {"nested", {{"list", {1, 2, 3}}, {"none", nullptr}}},
                                {"ok", true},
                                {"half", 0.5}});
      boost::system::error_code ec;
      events.broadcast("v", {{"k", 1}, {"k", 2}}, ec);
      events.emitTo(1, "v", json::value{{"k", 1}, {"k", 2}});
      events.broadcast("v", {1, "two", false}, ec);
      events.emitTo(1, "v", {given});  // the value itself, not an array of it
      events.emitTo(1, "v", {});
      if (round == 0) {
        for (int n = 0; n < 40; ++n) {
          events.emitTo(1, "v", {{"pad", std::string(10000, 'x')}, {"n", n}});
        }
      }
    }
    // Numbers JSON has no text for (sent as null), next to strings that only look like them.
    const double inf = std::numeric_limits<double>::infinity();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    events.emitTo(1, "v", {{"inf", inf}, {"list", {-inf, nan, 1.5}}, {"s", "NaN Infinity"}});
    events.emitTo(1, "v", json::value{{"inf", inf}, {"list", {-inf, nan, 1.5}}});
    events.emitTo(1, "v", {{"s", "NaN"}});
  }

  // order: cluster 1 sends a long run of events to cluster 0, which checks their order.
  // burst-exit: a shorter run (by default it fits the socket buffer while the test holds the
  // supervisor stopped), sent when the test creates "go", after which cluster 1 leaves main() at
  // once (the first time), so the run is still unread when its process is gone. PROBE_BURST_COUNT
  // events instead of 40: enough of them fill the socket, and the write at exit waits for room.
  // It creates PROBE_DIR/exiting as it leaves; PROBE_BURST_END=exit: by exit(3) instead.
  if (mode == "order" || mode == "burst-exit") {
    // burst-exit: few, large events (by default so few that even written one by one they fit
    // the socket buffer).
    const int count = mode == "order" ? std::atoi(env("PROBE_COUNT", "5000").c_str())
                                      : std::atoi(env("PROBE_BURST_COUNT", "40").c_str());
    if (id == 0) {
      auto next = std::make_shared<int>(0);
      // Copies of every 50th payload, kept past their delivery and checked at the end: the SDK
      // reuses the memory it parses into, which must never show through a copy.
      auto kept = std::make_shared<std::vector<json::value>>();
      events.on("seq", [next, kept, count](const json::value& data, int source) {
        const auto n = data.at("n").as_int64();
        if (n != *next) {
          say("ORDER broken expected=", *next, " got=", n, " from=", source);
        }
        if (n % 50 == 0) {
          kept->push_back(data);
        }
        *next = static_cast<int>(n) + 1;
        if (*next == count) {
          say("ORDER done ", count);
          int intact = 0;
          for (std::size_t i = 0; i < kept->size(); ++i) {
            const auto& copy = (*kept)[i].as_object();
            const auto want = static_cast<std::int64_t>(i * 50);
            intact += copy.at("n").as_int64() == want &&
                              copy.at("pad").as_string() ==
                                  std::string(static_cast<std::size_t>(want % 300), 'p')
                          ? 1
                          : 0;
          }
          say("ORDER kept intact=", intact, " of=", kept->size());
        }
      });
    }
    events.listen();
    cluster.ready();
    if (id == 1 && (mode == "order" || firstTime("burst"))) {
      barrier(cluster);
      if (mode == "burst-exit") {
        say("BURST waiting");
        waitForFile("go");
      }
      for (int i = 0; i < count; ++i) {
        events.emitTo(0, "seq",
                      {{"n", i},
                       {"pad", std::string(mode == "order" ? static_cast<std::size_t>(i % 300)
                                                           : std::size_t{2000},
                                           'p')}});
      }
      say("ORDER sent ", count);
      if (mode == "burst-exit") {
        std::ofstream(env("PROBE_DIR") + "/exiting") << "1\n";
        if (env("PROBE_BURST_END") == "exit") {
          // exit(3): `cluster` is not destroyed; the SDK's exit handler writes what is queued.
          std::fflush(nullptr);
          std::exit(0);
        }
        return 0;  // ~Cluster flushes what is queued; the supervisor reads it after the exit
      }
    }
  }

  if (mode == "acks") {
    // Receivers record that their listener finished and reply to the waiter, then the SDK
    // acknowledges; cluster 2's listener throws after that, which must not stop its
    // acknowledgement. The waiter counts the replies its listener has handled.
    auto replies = std::make_shared<std::atomic<int>>(0);
    events.on("reply", [replies](const json::value&, int) { ++*replies; });
    events.onRaw("work-raw", [](std::string_view text, int source) {
      say("RAW work-raw from=", source, " text=", text);
    });
    events.on("work", [id, &events](const json::value&, int source) {
      std::this_thread::sleep_for(100ms);
      std::ofstream(env("PROBE_DIR") + "/done-" + std::to_string(id)) << "done\n";
      events.emitTo(source, "reply", {{"from", id}});
      if (id == 2) {
        throw std::runtime_error("listener failed on purpose");
      }
    });
    events.listen();
    if (id == 0) {
      barrier(cluster);
      const auto start = std::chrono::steady_clock::now();
      const auto report =
          events.broadcastAndWaitDetailed("work", {{"job", 1}}, 30s, cluster.totalClusters() - 1)
              .get();
      int done = 0;
      for (int c = 1; c < cluster.totalClusters(); ++c) {
        done += std::ifstream(env("PROBE_DIR") + "/done-" + std::to_string(c)).good() ? 1 : 0;
      }
      // Read now: the replies' listener must have run before the future was set.
      const int repliesHandled = replies->load();
      printReport("ACKS", report, std::chrono::steady_clock::now() - start);
      say("ACKS listenersDoneBeforeReturn=", done);
      say("ACKS repliesHandledBeforeReturn=", repliesHandled);
      // The cluster whose listener threw is still alive and still acknowledging.
      const int again =
          events.broadcastAndWait("probe.sync", nullptr, 30s, cluster.totalClusters() - 1).get();
      say("ACKS again=", again);
      // A completion handler that throws: its exception goes to the error handler and the
      // SDK goes on.
      events.broadcastAndWait("probe.sync", nullptr, 30s, cluster.totalClusters() - 1,
                              [](boost::system::error_code, int) {
                                throw std::runtime_error("completion handler failed on purpose");
                              });
      const int after =
          events.broadcastAndWait("probe.sync", nullptr, 30s, cluster.totalClusters() - 1).get();
      say("ACKS afterThrowingHandler=", after);
      // Text sent as is, with both raw forms of the wait.
      const int raw =
          events.broadcastAndWaitRaw("work-raw", R"({"job": 2})", 30s, cluster.totalClusters() - 1)
              .get();
      say("ACKS raw=", raw);
      const auto rawStart = std::chrono::steady_clock::now();
      printReport(
          "ACKS_RAW",
          events.broadcastAndWaitRawDetailed("work-raw", "[ 3 ]", 30s, cluster.totalClusters() - 1)
              .get(),
          std::chrono::steady_clock::now() - rawStart);
      // Deferred: the text the call was given is gone before the operation starts.
      auto deferred = [&] {
        std::string text = R"({"deferred" : true})";
        return events.broadcastAndWaitRaw("work-raw", text, 30s, cluster.totalClusters() - 1,
                                          boost::asio::deferred);
      }();
      say("ACKS deferred=", std::move(deferred)(boost::asio::use_future).get());
    }
  }

  if (mode == "wait") {
    // PROBE_EXPECTED acks wanted within PROBE_TIMEOUT_MS; cluster PROBE_SLOW's listener blocks
    // (announcing "BLOCKING" first) so it never acknowledges.
    const int slow = std::atoi(env("PROBE_SLOW", "-1").c_str());
    events.on("job", [id, slow](const json::value&, int) {
      if (id == slow) {
        say("BLOCKING");
        sleepForever();
      }
    });
    events.listen();
    if (id == 0) {
      if (env("PROBE_FAILED_WAIT_FIRST") == "1") {
        // Before any other wait, so no timer is set: a wait that cannot be sent (no event has an
        // empty name), with the earliest deadline of all. Every wait after it (the barrier's,
        // then the one below) still has to end at its own timeout.
        try {
          (void)events.broadcastAndWait("", nullptr, 1ms, 1).get();
        } catch (const std::exception& e) {
          say("FAILED WAIT ", e.what());
        }
      }
      barrier(cluster);
      const int expected = std::atoi(env("PROBE_EXPECTED", "0").c_str());
      const auto timeout =
          env("PROBE_TIMEOUT_MS") == "max"
              ? std::chrono::milliseconds::max()
              : std::chrono::milliseconds(std::atoi(env("PROBE_TIMEOUT_MS", "10000").c_str()));
      say("WAITING expected=", expected);
      const auto start = std::chrono::steady_clock::now();
      if (expected == 0) {
        const int n = events.broadcastAndWait("job", nullptr, timeout, 0).get();
        say("WAIT result=", n, " elapsedMs=",
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count());
      } else {
        const auto report =
            events.broadcastAndWaitDetailed("job", nullptr, timeout, expected).get();
        printReport("WAIT", report, std::chrono::steady_clock::now() - start);
      }
    }
  }

  if (mode == "nested-wait") {
    // A listener blocks on futures of its own waits. They complete although the listener
    // occupies the bus executor: with every recipient's acknowledgement, at once for an
    // expected count of 0, and with what was learned when the supervisor is lost.
    events.on("job", [](const json::value&, int) {});
    events.on("go", [&events, &cluster](const json::value&, int) {
      say("NESTED waiting");
      const auto start = std::chrono::steady_clock::now();
      const auto report =
          events.broadcastAndWaitDetailed("job", nullptr, 60s, cluster.totalClusters() - 1).get();
      printReport("NESTED", report, std::chrono::steady_clock::now() - start);
      say("NESTED zero=", events.broadcastAndWait("job", nullptr, 60s, 0).get());
    });
    events.listen();
    if (id == 0 && cluster.totalClusters() > 1 && env("PROBE_GO") == "self") {
      barrier(cluster);
      events.emitTo(0, "go", nullptr);
    }
  }

  if (mode == "held" && id == 0) {
    for (int n = 0; n < 10; ++n) {
      events.emitTo(1, "held", {{"n", n}});
    }
    echoThroughSupervisor(events, id);
    say("HELD sent 10");
  }

  if (mode == "payload" && id == 0) {
    barrier(cluster);
    const auto limit = cluster.maxPayload();
    boost::system::error_code ec;
    // The JSON text of a string of n characters is n + 2 bytes.
    events.broadcast("big", json::value(std::string(limit - 2, 'x')), ec);
    say("PAYLOAD at-limit ", ec ? ec.message() : "ok");
    events.broadcast("big", json::value(std::string(limit - 1, 'x')), ec);
    say("PAYLOAD over-limit ", ec ? ec.message() : "ok");
    try {
      events.broadcast("big", json::value(std::string(limit, 'x')));
      say("PAYLOAD over-limit-throwing ok");
    } catch (const clustervisor::Error& e) {
      say("PAYLOAD over-limit-throwing threw ", e.what());
    }
    events.broadcast("marker", {{"after", "big"}});
  }

  if (mode == "logs" && id == 0 && firstTime("logs")) {
    std::cout << std::string(40000, 'x') << "\n" << std::flush;
    std::cout << "tail without newline" << std::flush;
    ::_exit(0);
  }

  if (mode == "restart-hello" && !rawMode.empty() &&
      rawMode.substr(0, rawMode.find(':')) == std::to_string(id)) {
    // Back after misbehaving and being restarted: tell everyone, so the test sees events flow.
    barrier(cluster);
    events.broadcast("back", {{"id", id}});
  }

  if (mode == "crash" && id == std::atoi(env("PROBE_CRASH", "-1").c_str()) && firstTime("crash")) {
    std::this_thread::sleep_for(50ms);
    std::exit(3);
  }

  if (mode == "exit" && (env("PROBE_ONLY").empty() || env("PROBE_ONLY") == std::to_string(id))) {
    // PROBE_PLAN: how long each run lives before it exits with status PROBE_STATUS (default 3).
    const int run = countRun(std::to_string(id));
    const long lifetime = planFor(env("PROBE_PLAN", "0"), run);
    if (run == 1 && env("PROBE_IGNORE_TERM") == "1") {
      std::signal(SIGTERM, SIG_IGN);  // the first run is killed at stop.timeout when stopped
    }
    cluster.ready();
    say("RUN ", run, " lives ", lifetime, "ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(lifetime));
    std::fflush(nullptr);
    ::_exit(std::atoi(env("PROBE_STATUS", "3").c_str()));
  }

  // PROBE_STALL_ON: once the test creates that file, starts of cluster PROBE_ONLY never become
  // ready (a release that broke start-up, for rolling restarts).
  if (!env("PROBE_STALL_ON").empty() && env("PROBE_ONLY") == std::to_string(id) &&
      std::ifstream(env("PROBE_DIR") + "/" + env("PROBE_STALL_ON")).good()) {
    say("NOT READY (stalled)");
    sleepForever();
  }
  // PROBE_FAIL_LATER: the starts of that cluster after its first exit with status 9 at once.
  if (env("PROBE_FAIL_LATER") == std::to_string(id) && countRun("fail-" + std::to_string(id)) > 1) {
    say("FAILING at start");
    std::fflush(nullptr);
    ::_exit(9);
  }
  // PROBE_HOLD_READY: the starts of that cluster after its first wait for PROBE_DIR/release
  // before they go on to become ready (a successor a test keeps starting).
  if (env("PROBE_HOLD_READY") == std::to_string(id) && countRun("hold-" + std::to_string(id)) > 1) {
    say("HOLDING until release");
    waitForFile("release");
  }

  // scale: the cluster count changes under the workers. Every worker reports the totals it is
  // told, counts the ticks cluster 0 broadcasts all along (checking their order), and answers
  // each ping round with what it knows; cluster 0 starts round N when the test creates round-N.
  if (mode == "scale") {
    cluster.onTotalClustersChanged(
        [id](int total, int old) { say("TOTAL id=", id, " total=", total, " old=", old); });
    auto ticks = std::make_shared<std::atomic<long>>(0);
    auto lastTick = std::make_shared<long>(-1);
    events.on("tick", [ticks, lastTick](const json::value& data, int) {
      const long n = static_cast<long>(data.at("n").as_int64());
      if (*lastTick >= 0 && n != *lastTick + 1) {
        say("ORDER broken expected=", *lastTick + 1, " got=", n);
      }
      *lastTick = n;
      ++*ticks;
    });
    events.on("round", [&cluster, id, ticks](const json::value& data, int) {
      say("PONG id=", id, " round=", data.at("n").as_int64(), " total=", cluster.totalClusters(),
          " ticks=", ticks->load());
    });
    cluster.ready();
    if (id != 0) {
      sleepForever();
    }
    long tick = 0;
    for (int round = 1;; ++round) {
      while (!std::ifstream(env("PROBE_DIR") + "/round-" + std::to_string(round)).good()) {
        events.broadcast("tick", {{"n", tick++}});
        std::this_thread::sleep_for(5ms);
      }
      events.broadcast("round", {{"n", round}});
      say("PONG id=0 round=", round, " total=", cluster.totalClusters(), " ticks=", tick);
    }
  }

  if (mode == "chaos") {
    return chaosMain(cluster);
  }

  // flood: when the test creates "go", cluster 0 broadcasts PROBE_COUNT numbered events as fast
  // as it can (the supervisor holds it back while a receiver catches up); the others check their
  // order and say when all arrived. Cluster PROBE_BLOCK's listener blocks in the first event
  // until the test creates "release"; cluster PROBE_SLOW's takes PROBE_SLOW_MS per event until
  // the test creates "fast", and says so every 100 events. Payloads carry PROBE_PAD bytes.
  if (mode == "flood") {
    const long count = std::atol(env("PROBE_COUNT", "20000").c_str());
    const bool blocks = env("PROBE_BLOCK") == std::to_string(id);
    const bool slow = env("PROBE_SLOW") == std::to_string(id);
    const auto slowness = std::chrono::milliseconds(std::atoi(env("PROBE_SLOW_MS", "0").c_str()));
    auto next = std::make_shared<long>(0);
    // The slow listener keeps to a schedule (PROBE_SLOW_MS per event on average): a late
    // wake-up on a loaded machine is made up by the next events instead of adding up.
    auto due = std::make_shared<std::chrono::steady_clock::time_point>();
    events.on("f", [next, count, blocks, slow, slowness, due](const json::value& data, int) {
      if (blocks && *next == 0) {
        say("FLOOD blocking");
        waitForFile("release");
      }
      if (slow && !std::ifstream(env("PROBE_DIR") + "/fast").good()) {
        if (*next == 0) {
          *due = std::chrono::steady_clock::now();
        }
        *due += slowness;
        std::this_thread::sleep_until(*due);
        if (*next % 100 == 99) {
          say("FLOOD slowly handled ", *next + 1);
        }
      }
      const long n = static_cast<long>(data.at("n").as_int64());
      if (n != *next) {
        say("FLOOD broken expected=", *next, " got=", n);
      }
      *next = n + 1;
      if (*next == count) {
        say("FLOOD got ", count, " in order");
      }
    });
    cluster.ready();
    if (id == 0) {
      waitForFile("go");
      const std::string pad(std::stoul(env("PROBE_PAD", "200")), 'p');
      for (long n = 0; n < count; ++n) {
        events.broadcast("f", {{"n", n}, {"pad", pad}});
      }
      say("FLOOD sent ", count);
    }
    sleepForever();
  }

  if (mode == "chatty") {
    // Once the test creates "go", PROBE_COUNT numbered lines of PROBE_PAD bytes on stdout (per
    // cluster: "60000,200" gives cluster 1 its own count). Cluster PROBE_LATE waits for
    // "go-late" instead, and its first run exits once it has printed.
    const bool late = env("PROBE_LATE") == std::to_string(id);
    const bool exits = late && firstTime("chatty-exited");
    cluster.ready();
    waitForFile(late ? "go-late" : "go");
    const long count = planFor(env("PROBE_COUNT", "20000"), id + 1);
    const std::string pad(std::stoul(env("PROBE_PAD", "200")), 'c');
    for (long n = 0; n < count; ++n) {
      say("CHATTY ", n, " ", pad);
    }
    say("CHATTY done");
    if (exits) {
      std::fflush(nullptr);
      ::_exit(0);
    }
    sleepForever();
  }

  if (mode == "blocked-lost") {
    // The listener blocks for good in the first event, so the SDK soon stops reading.
    events.on("f", [](const json::value&, int) {
      say("BLOCKED");
      sleepForever();
    });
    cluster.ready();
    sleepForever();
  }

  if (mode == "never-ready" &&
      (env("PROBE_ONLY").empty() || env("PROBE_ONLY") == std::to_string(id)) &&
      firstTime("never-ready-" + std::to_string(id))) {
    say("NOT READY");
    sleepForever();
  }

  if (mode == "slow-ready") {
    // PROBE_READY_MS: per-cluster list of delays before ready() ("500,0,0").
    std::this_thread::sleep_for(
        std::chrono::milliseconds(planFor(env("PROBE_READY_MS", "0"), id + 1)));
  }

  if (mode == "send-then-block") {
    // Cluster 0's listener sends to cluster 1, then blocks for PROBE_BLOCK_MS: the SDK's own
    // thread must still get the heartbeats out meanwhile, and with them what was queued; and
    // what the main thread sends while the listener blocks.
    static std::atomic<bool> blocking{false};
    events.on("block", [&events](const json::value&, int) {
      events.emitTo(1, "marker", {{"sentBy", "listener"}});
      say("BLOCKING");
      blocking = true;
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::atoi(env("PROBE_BLOCK_MS", "3000").c_str())));
      say("UNBLOCKED");
    });
    cluster.ready();
    if (id == 0) {
      waitForFile("block");
      events.emitTo(0, "block", nullptr);
      while (!blocking) {
        std::this_thread::sleep_for(1ms);
      }
      events.emitTo(1, "marker", {{"sentBy", "main"}});
    }
    sleepForever();
  }
  if (mode == "hang" && onIoThread) {
    // The listener runs on the SDK's only thread: while it blocks, so do the heartbeats.
    events.on("block", [](const json::value&, int) {
      say("HANG blocked");
      sleepForever();
    });
    cluster.ready();
    if (firstTime("hang")) {
      say("HANG running");
      waitForFile("hang");
      events.emitTo(id, "block", nullptr);
      sleepForever();
    }
    say("HANG recovered");
    sleepForever();
  }
  if (mode == "hang") {
    cluster.ready();
    if (firstTime("hang")) {
      // Runs the executor (heartbeats go out) until told to stop, then never again.
      say("HANG running");
      while (!std::ifstream(env("PROBE_DIR") + "/hang").good()) {
        ownContext->run_for(10ms);
      }
      say("HANG blocked");
      sleepForever();
    }
    say("HANG recovered");
    ownContext->run();
    return 0;
  }

  if (mode == "children") {
    const pid_t sameGroup = startSleeper(false);
    const pid_t ownSession = startSleeper(true);
    const pid_t chained = startChain();
    say("CHILDREN group=", sameGroup, " session=", ownSession, " chain=", chained);
  }

  if (mode == "unmarked-child") {
    say("UNMARKED pid=", startUnmarkedChild(id));
  }

  if (mode == "handover") {
    // Cluster 0 sends PROBE_COUNT numbered events to cluster 1, one every 300 µs, once the file
    // "go" exists, and the last one once the file "last" exists too; each worker of cluster 1
    // checks their order and says which stretch it got, in its onStop handler and when the last
    // one arrives.
    const int count = std::atoi(env("PROBE_COUNT", "3000").c_str());
    if (id == 1) {
      struct Stretch {
        long first = -1;
        long last = -1;
        long count = 0;
      };
      // The listener and the stop handler both run on the bus strand: one at a time.
      auto got = std::make_shared<Stretch>();
      events.onRaw("seq", [got, count](std::string_view text, int) {
        const long n = std::stol(std::string(text));
        if (got->first >= 0 && n != got->last + 1) {
          say("HANDOVER broken after=", got->last, " got=", n);
        }
        if (got->first < 0) {
          got->first = n;
        }
        got->last = n;
        ++got->count;
        if (n == count - 1) {
          say("HANDOVER done first=", got->first, " last=", got->last, " count=", got->count);
        }
      });
      auto stopped = std::make_shared<std::promise<void>>();
      cluster.onStop([got, stopped](std::chrono::milliseconds) {
        say("HANDOVER stopped first=", got->first, " last=", got->last, " count=", got->count);
        stopped->set_value();
      });
      cluster.ready();
      stopped->get_future().wait();
      return 0;  // the Cluster is destroyed on the way out
    }
    cluster.ready();
    if (id == 0) {
      waitForFile("go");
      for (int i = 0; i < count; ++i) {
        if (i == count - 1) {
          waitForFile("last");
        }
        boost::system::error_code ec;
        while (events.emitToRaw(1, "seq", std::to_string(i), ec), ec) {
          std::this_thread::sleep_for(1ms);  // a full send queue (or a refusal: said below)
          if (ec != clustervisor::make_error_code(clustervisor::Errc::kQueueFull)) {
            say("HANDOVER send error ", ec.message());
            break;
          }
        }
        std::this_thread::sleep_for(300us);
      }
      say("HANDOVER sent ", count);
    }
    sleepForever();
  }

  if (mode == "rolling-waits") {
    // The waits of a rolling restart's two workers of one cluster: the new one's before it is
    // ready, and the replaced one's in its stop handler.
    const int run = countRun(std::to_string(id));
    const auto wait = [&events, &cluster, run](const char* label, const char* event) {
      const auto start = std::chrono::steady_clock::now();
      const auto report =
          events.broadcastAndWaitDetailed(event, nullptr, 20s, cluster.totalClusters() - 1).get();
      printReport((std::string(label) + " run=" + std::to_string(run)).c_str(), report,
                  std::chrono::steady_clock::now() - start);
    };
    auto stopped = std::make_shared<std::promise<void>>();
    cluster.onStop([wait, stopped](std::chrono::milliseconds) {
      wait("LEAVING", "probe.leaving");
      waitForFile("leave");  // the test looks at the replaced worker meanwhile
      stopped->set_value();
    });
    if (run > 1) {
      wait("HELLO", "probe.hello");
    }
    cluster.ready();
    stopped->get_future().get();
    return 0;
  }
  if (mode == "onstop") {
    auto stopped = std::make_shared<std::promise<std::chrono::milliseconds>>();
    cluster.onStop(
        [stopped](std::chrono::milliseconds untilKill) { stopped->set_value(untilKill); });
    cluster.ready();
    const auto untilKill = stopped->get_future().get();
    say("STOP untilKill=", untilKill.count());
    return 0;  // the Cluster is destroyed on the way out: a clean exit
  }

  if (mode == "odd-json") {
    // What a sender's json::value holds, however odd, reaches the receivers' json listeners: a
    // string cut in the middle of a UTF-8 character, and 40 levels of nesting.
    events.on("cut", [](const json::value& data, int source) {
      say("RECV cut from=", source, " bytes=", data.as_string().size());
    });
    events.on("deeper", [](const json::value&, int) { say("RECV deeper"); });
    events.on("deep", [](const json::value& data, int source) {
      int depth = 0;
      for (const json::value* v = &data; v->is_array() && !v->as_array().empty();
           v = &v->as_array().front()) {
        ++depth;
      }
      say("RECV deep from=", source, " depth=", depth);
    });
    events.setErrorHandler([](std::string_view event, std::exception_ptr error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        say("ERROR ", event, " ", e.what());
      }
    });
    cluster.ready();
    if (id == 0) {
      barrier(cluster);
      events.broadcast("cut", json::value(std::string("caf\xC3")));  // "café" cut short
      json::value deep = json::array{1};
      for (int level = 1; level < 40; ++level) {
        deep = json::array{std::move(deep)};
      }
      events.broadcast("deep", deep);
      // Past the receivers' limit (256 levels): their error handlers are told.
      for (int level = 40; level < 300; ++level) {
        deep = json::array{std::move(deep)};
      }
      events.broadcast("deeper", deep);
      say("SENT odd");
    }
    sleepForever();
  }

  if (mode == "big") {
    // Cluster 1 broadcasts a payload as large as its own limit allows (see the reload test).
    auto subscription = events.onRaw("big", [](std::string_view payload, int source) {
      say("RECV big from=", source, " bytes=", payload.size());
    });
    cluster.ready();
    if (id == 1) {
      boost::system::error_code ec;
      events.broadcastRaw("big", "\"" + std::string(cluster.maxPayload() - 2, 'x') + "\"", ec);
      say("SENT big ", cluster.maxPayload(), " ", ec ? ec.message() : "ok");
    }
    sleepForever();
  }

  if (mode == "emit-on-file" && id == 0) {
    cluster.ready();
    waitForFile("send");
    for (int n = 0; n < 20; ++n) {
      events.emitTo(1, "held", {{"n", n}});
    }
    echoThroughSupervisor(events, id);
    say("SENT 20");
    sleepForever();
  }

  cluster.ready();
  sleepForever();
}
