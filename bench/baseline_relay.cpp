// SPDX-License-Identifier: MIT
//
// bench-baseline: what a plain C++ relay does on this machine, the yardstick for every
// clustervisor figure. Self-contained on purpose (no Asio, no SDK): worker processes on
// socketpair(AF_UNIX, SOCK_STREAM), a manager with one epoll loop, non-blocking descriptors,
// large batched reads and writes, and the same 24-byte frame header and ~100-byte payloads as
// clustervisor's protocol. It does only what the measured scenarios need: stamp the source,
// route by target (one cluster, or everyone but the sender), copy the bytes.
//
//   bench-baseline relay CASE CLUSTERS   the manager; starts CLUSTERS workers of itself
//   bench-baseline worker                a worker (BENCH_ID, BENCH_TOTAL, BENCH_CASE, … from env)
//   bench-baseline restart EXE COUNT     fork/exec/waitpid EXE COUNT+1 times, hello/welcome each
//
// Workers play the scenarios of scenario.hpp exactly as bench-worker does with the SDK.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "scenario.hpp"

namespace bench = clustervisor::bench;

namespace {

constexpr std::size_t kHeader = 24;
constexpr std::uint8_t kTypeHello = 1;
constexpr std::uint8_t kTypeWelcome = 2;
constexpr std::uint8_t kTypeEvent = 3;
constexpr std::uint8_t kTypeAck = 4;
constexpr std::uint32_t kBroadcast = 0xFFFFFFFFu;
constexpr std::size_t kReadChunk = 256 * 1024;
constexpr std::size_t kWriteBatch = 64 * 1024;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "bench-baseline: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

template <typename T>
T load(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof value);  // little-endian host, like the wire
  return value;
}

struct Frame {
  std::uint32_t length;
  std::uint8_t type;
  std::uint32_t source;
  std::uint32_t target;
  std::uint64_t correlation;
  std::string_view name;
  std::string_view payload;
};

Frame parse(const char* p) {
  Frame f{};
  f.length = load<std::uint32_t>(p);
  f.type = static_cast<std::uint8_t>(p[4]);
  const auto nameLength = load<std::uint16_t>(p + 6);
  f.source = load<std::uint32_t>(p + 8);
  f.target = load<std::uint32_t>(p + 12);
  f.correlation = load<std::uint64_t>(p + 16);
  f.name = std::string_view(p + kHeader, nameLength);
  f.payload = std::string_view(p + kHeader + nameLength, f.length - kHeader - nameLength);
  return f;
}

void appendFrame(std::vector<char>& out, std::uint8_t type, std::uint32_t source,
                 std::uint32_t target, std::uint64_t correlation, std::string_view name,
                 std::string_view payload, std::size_t bodyBytes = 0) {
  const auto length =
      static_cast<std::uint32_t>(kHeader + name.size() + payload.size() + bodyBytes);
  const std::size_t at = out.size();
  out.resize(at + length);
  char* p = out.data() + at;
  std::memset(p, 0, kHeader + bodyBytes);
  const auto nameLength = static_cast<std::uint16_t>(name.size());
  std::memcpy(p, &length, 4);
  p[4] = static_cast<char>(type);
  std::memcpy(p + 6, &nameLength, 2);
  std::memcpy(p + 8, &source, 4);
  std::memcpy(p + 12, &target, 4);
  std::memcpy(p + 16, &correlation, 8);
  if (!name.empty()) {
    std::memcpy(p + kHeader, name.data(), name.size());
  }
  if (!payload.empty()) {
    std::memcpy(p + kHeader + name.size(), payload.data(), payload.size());
  }
}

// The outbox of one socket: what is queued and how much of it is written.
struct Outbox {
  std::vector<char> out;
  std::size_t written = 0;  // bytes of `out` already written

  // Writes as much as the socket takes; false on error.
  bool flush(int fd) {
    while (written < out.size()) {
      const ssize_t n = ::write(fd, out.data() + written, out.size() - written);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          break;
        }
        return false;
      }
      written += static_cast<std::size_t>(n);
    }
    if (written == out.size()) {
      out.clear();
      written = 0;
    }
    return true;
  }

  bool pending() const { return written < out.size(); }
};

// A worker's end of its socketpair: receive buffer and outbox.
struct Link : Outbox {
  int fd = -1;
  std::vector<char> in = std::vector<char>(2 * kReadChunk);
  std::size_t begin = 0;
  std::size_t end = 0;

  // Reads what is there without blocking; false on end of file or error.
  bool readSome() {
    if (begin == end) {
      begin = end = 0;
    } else if (in.size() - end < kReadChunk) {
      std::memmove(in.data(), in.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    const ssize_t n = ::read(fd, in.data() + end, in.size() - end);
    if (n > 0) {
      end += static_cast<std::size_t>(n);
      return true;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
  }

  // The next whole frame, or nullptr.
  char* next() {
    if (end - begin < 4) {
      return nullptr;
    }
    const auto length = load<std::uint32_t>(in.data() + begin);
    if (end - begin < length) {
      if (length > in.size()) {
        in.resize(length + kReadChunk);
      }
      return nullptr;
    }
    char* frame = in.data() + begin;
    begin += length;
    return frame;
  }

  bool flush() { return Outbox::flush(fd); }
};

// The manager's side of one worker: the tail of a frame not yet complete, and the outbox. The
// manager reads every socket into one shared buffer, so an idle worker costs it next to nothing.
struct Peer : Outbox {
  int fd = -1;
  std::vector<char> partial;
};

void setNonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// ------------------------------------------------------------------------------------------
// The manager: one epoll loop relaying between CLUSTERS workers.

int relay(const std::string& scenario, std::uint32_t clusters) {
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<Peer> links(clusters);
  std::vector<char> scratch(2 * kReadChunk);
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  for (std::uint32_t id = 0; id < clusters; ++id) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      die("socketpair");
    }
    const std::string idText = std::to_string(id);
    const std::string totalText = std::to_string(clusters);
    const pid_t pid = ::fork();
    if (pid < 0) {
      die("fork");
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(pair[1], 3);  // dup2 clears close-on-exec on the copy
      ::setenv(bench::kEnvId, idText.c_str(), 1);
      ::setenv(bench::kEnvTotal, totalText.c_str(), 1);
      ::setenv(bench::kEnvCase, scenario.c_str(), 1);
      ::execl("/proc/self/exe", "bench-baseline", "worker", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(pair[1]);
    setNonBlocking(pair[0]);
    links[id].fd = pair[0];
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = id;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, pair[0], &ev);
  }

  std::vector<char> wantsOut(clusters, 0);  // EPOLLOUT registered
  std::vector<std::uint32_t> dirty;
  std::vector<char> isDirty(clusters, 0);
  const auto touch = [&](std::uint32_t id) {
    if (!isDirty[id]) {
      isDirty[id] = 1;
      dirty.push_back(id);
    }
  };
  epoll_event events[64];
  for (;;) {
    const int n = ::epoll_wait(epoll, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      const std::uint32_t from = events[i].data.u32;
      if (events[i].events & EPOLLOUT) {
        touch(from);
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        continue;
      }
      Peer& link = links[from];
      const std::size_t kept = link.partial.size();
      if (scratch.size() < kept + kReadChunk) {
        scratch.resize(kept + kReadChunk);
      }
      if (kept > 0) {
        std::memcpy(scratch.data(), link.partial.data(), kept);
      }
      const ssize_t got = ::read(link.fd, scratch.data() + kept, kReadChunk);
      if (got <= 0) {
        if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
          ::epoll_ctl(epoll, EPOLL_CTL_DEL, link.fd, nullptr);
        }
        continue;
      }
      const std::size_t filled = kept + static_cast<std::size_t>(got);
      std::size_t at = 0;
      while (filled - at >= kHeader && filled - at >= load<std::uint32_t>(scratch.data() + at)) {
        char* frame = scratch.data() + at;
        const auto length = load<std::uint32_t>(frame);
        at += length;
        std::memcpy(frame + 8, &from, 4);  // stamp the source
        const auto target = load<std::uint32_t>(frame + 12);
        if (target == kBroadcast) {
          for (std::uint32_t to = 0; to < clusters; ++to) {
            if (to != from) {
              links[to].out.insert(links[to].out.end(), frame, frame + length);
              touch(to);
            }
          }
        } else if (target < clusters) {
          links[target].out.insert(links[target].out.end(), frame, frame + length);
          touch(target);
        }
      }
      link.partial.assign(scratch.data() + at, scratch.data() + filled);
    }
    // One batched write per recipient per loop turn.
    for (const std::uint32_t id : dirty) {
      isDirty[id] = 0;
      Peer& link = links[id];
      link.flush(link.fd);
      const char want = link.pending() ? 1 : 0;
      if (want != wantsOut[id]) {
        wantsOut[id] = want;
        epoll_event ev{};
        ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
        ev.data.u32 = id;
        ::epoll_ctl(epoll, EPOLL_CTL_MOD, link.fd, &ev);
      }
    }
    dirty.clear();
  }
}

// ------------------------------------------------------------------------------------------
// A worker: the scenario of scenario.hpp on a plain socket.

class Worker {
 public:
  Worker()
      : id_(static_cast<std::uint32_t>(std::atoi(bench::envOr(bench::kEnvId, "0").c_str()))),
        total_(static_cast<std::uint32_t>(std::atoi(bench::envOr(bench::kEnvTotal, "1").c_str()))),
        scenario_(bench::envOr(bench::kEnvCase, "")),
        dir_(bench::envOr(bench::kEnvDir, ".")),
        seconds_(bench::envSeconds()),
        credits_(total_, 0) {
    link_.fd = 3;
    setNonBlocking(3);
  }

  int run() {
    if (id_ != 0) {
      send(0, bench::kEventHello, "null");
      for (;;) {
        pump(-1);
      }
    }
    while (hellos_ < total_ - 1) {
      pump(-1);
    }
    if (scenario_ == bench::kUnicast) {
      stream(false);
    } else if (scenario_ == bench::kBroadcast) {
      stream(true);
    } else if (scenario_ == bench::kRoundTrip) {
      roundTrip();
    } else if (scenario_ == bench::kWait) {
      waits();
    } else if (scenario_ == bench::kIdle) {
      const auto connected = bench::nowNs();
      startWait(bench::kEventHello, "null");
      while (acks_ < total_ - 1) {
        pump(-1);
      }
      bench::writeResults(dir_, 0,
                          {{"connected_ns", connected}, {"acked", static_cast<int>(acks_)}});
    }
    for (;;) {
      pump(-1);
    }
  }

 private:
  void send(std::uint32_t target, std::string_view name, std::string_view payload,
            std::uint64_t correlation = 0) {
    appendFrame(link_.out, kTypeEvent, id_, target, correlation, name, payload);
  }

  // Writes what is queued, waits up to `timeoutMs` for input (or room to write), handles it.
  void pump(int timeoutMs) {
    if (!link_.flush()) {
      std::exit(0);
    }
    pollfd pfd{3, static_cast<short>(POLLIN | (link_.pending() ? POLLOUT : 0)), 0};
    if (::poll(&pfd, 1, timeoutMs) <= 0) {
      return;
    }
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!link_.readSome()) {
        std::exit(0);  // the manager is gone
      }
      while (const char* frame = link_.next()) {
        handle(parse(frame));
      }
    }
    if (!link_.flush()) {
      std::exit(0);
    }
  }

  void handle(const Frame& f) {
    if (f.type == kTypeAck) {
      if (f.correlation == waitId_) {
        ++acks_;
      }
      return;
    }
    if (f.type != kTypeEvent) {
      return;
    }
    if (f.name == bench::kEventData) {
      if (++received_ % bench::kCreditEvery == 0) {
        send(0, bench::kEventCredit, std::to_string(received_));
      }
    } else if (f.name == bench::kEventCredit) {
      credits_[f.source] = std::strtoull(std::string(f.payload).c_str(), nullptr, 10);
    } else if (f.name == bench::kEventHello) {
      ++hellos_;
    } else if (f.name == bench::kEventEnd) {
      bench::writeResults(
          dir_, id_,
          {{"end_ns", bench::nowNs()},
           {"received", static_cast<std::int64_t>(received_)},
           {"expected", std::strtoll(std::string(f.payload).c_str(), nullptr, 10)}});
    } else if (f.name == bench::kEventPing) {
      send(f.source, bench::kEventPong, bench::kPayload);
    } else if (f.name == bench::kEventPong) {
      ++pongs_;
    }
    if (f.correlation != 0) {
      appendFrame(link_.out, kTypeAck, id_, f.source, f.correlation, {}, {});
    }
  }

  std::uint64_t minCredit(bool broadcast) const {
    if (!broadcast) {
      return credits_[1];
    }
    return *std::min_element(credits_.begin() + 1, credits_.end());
  }

  void stream(bool broadcast) {
    const std::uint32_t target = broadcast ? kBroadcast : 1;
    const auto start = bench::nowNs();
    const auto end = start + static_cast<std::int64_t>(seconds_ * 1e9);
    std::uint64_t sent = 0;
    for (;;) {
      if (bench::nowNs() >= end) {
        break;
      }
      // Fill a batch as far as the window allows, then write it and take in credits.
      while (link_.out.size() < kWriteBatch && sent - minCredit(broadcast) < bench::kWindow) {
        send(target, bench::kEventData, bench::kPayload);
        ++sent;
      }
      // Wait only when there is nothing to do: the window is closed or the socket is full.
      if (!link_.flush()) {
        std::exit(0);
      }
      const bool blocked = link_.pending() || sent - minCredit(broadcast) >= bench::kWindow;
      pump(blocked ? 1 : 0);
    }
    send(target, bench::kEventEnd, std::to_string(sent));
    bench::writeResults(dir_, 0, {{"start_ns", start}, {"sent", static_cast<std::int64_t>(sent)}});
  }

  void roundTrip() {
    const auto until = bench::nowNs() + static_cast<std::int64_t>(seconds_ * 1e9);
    std::vector<std::int64_t> samples;
    while (bench::nowNs() < until) {
      const auto sentAt = bench::nowNs();
      const auto before = pongs_;
      send(1, bench::kEventPing, bench::kPayload);
      while (pongs_ == before) {
        pump(-1);
      }
      samples.push_back(bench::nowNs() - sentAt);
    }
    writeSamples(samples, {});
  }

  void startWait(std::string_view name, std::string_view payload) {
    ++waitId_;
    acks_ = 0;
    send(kBroadcast, name, payload, waitId_);
  }

  void waits() {
    const auto until = bench::nowNs() + static_cast<std::int64_t>(seconds_ * 1e9);
    std::vector<std::int64_t> samples;
    while (bench::nowNs() < until) {
      const auto sentAt = bench::nowNs();
      startWait(bench::kEventData, bench::kPayload);
      while (acks_ < total_ - 1) {
        pump(-1);
      }
      samples.push_back(bench::nowNs() - sentAt);
    }
    writeSamples(samples, {{"incomplete", 0}});
  }

  void writeSamples(const std::vector<std::int64_t>& samples,
                    std::map<std::string, std::int64_t> values) {
    std::vector<std::int64_t> kept(
        samples.begin() +
            static_cast<std::ptrdiff_t>(std::min(bench::kWarmupSamples, samples.size() / 2)),
        samples.end());
    values["count"] = static_cast<std::int64_t>(kept.size());
    bench::writeResults(dir_, 0, values, kept);
  }

  const std::uint32_t id_;
  const std::uint32_t total_;
  const std::string scenario_;
  const std::filesystem::path dir_;
  const double seconds_;
  Link link_;
  std::vector<std::uint64_t> credits_;
  std::uint64_t received_ = 0;
  std::uint32_t hellos_ = 0;
  std::uint64_t pongs_ = 0;
  std::uint64_t waitId_ = 0;
  std::uint32_t acks_ = 0;
};

// ------------------------------------------------------------------------------------------
// Restarts: fork/exec/waitpid, with the same hello/welcome handshake as a real worker.

int connectedLines(const std::filesystem::path& log) {
  std::ifstream in(log);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    n += line.rfind("connected", 0) == 0 ? 1 : 0;
  }
  return n;
}

int restartLoop(const char* exe, int count) {
  const std::filesystem::path dir = bench::envOr(bench::kEnvDir, ".");
  ::setenv(bench::kEnvCase, "restart-baseline", 1);
  for (int run = 0; run <= count; ++run) {
    if (run == count) {
      std::ofstream(dir / bench::kStopRestartingFile) << "1\n";
    }
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      die("socketpair");
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
      die("fork");
    }
    if (pid == 0) {
      ::dup2(pair[1], 3);
      ::execl(exe, exe, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(pair[1]);
    char hello[kHeader + 12];
    std::size_t got = 0;
    while (got < sizeof hello) {
      const ssize_t n = ::read(pair[0], hello + got, sizeof hello - got);
      if (n <= 0) {
        die("reading the hello");
      }
      got += static_cast<std::size_t>(n);
    }
    std::vector<char> welcome;
    appendFrame(welcome, kTypeWelcome, 0xFFFFFFFEu, 0, 0, {}, {}, 20);
    welcome[24] = 2;  // protocol version
    if (::write(pair[0], welcome.data(), welcome.size()) != static_cast<ssize_t>(welcome.size())) {
      die("writing the welcome");
    }
    if (run == count) {
      // The last one stays up: let it note its start before it goes.
      const auto log = dir / bench::kRestartLog;
      const auto deadline = bench::nowNs() + 10'000'000'000;
      while (bench::nowNs() < deadline && connectedLines(log) <= count) {
        ::usleep(1000);
      }
      ::kill(pid, SIGKILL);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(pair[0]);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "relay" && argc == 4) {
    return relay(argv[2], static_cast<std::uint32_t>(std::atoi(argv[3])));
  }
  if (mode == "worker") {
    return Worker().run();
  }
  if (mode == "restart" && argc == 4) {
    return restartLoop(argv[2], std::atoi(argv[3]));
  }
  std::fprintf(stderr,
               "usage: bench-baseline relay CASE CLUSTERS | worker | restart EXE COUNT\n"
               "(run by clustervisor-bench; see bench/README)\n");
  return 64;
}
