// SPDX-License-Identifier: MIT
//
// bench-worker: the benchmark's worker, written against the SDK as a user would write it. It
// runs under `clustervisor run` and plays the scenario named by BENCH_CASE (see scenario.hpp);
// cluster 0 drives, the others answer. With BENCH_JSON=1 payloads are boost::json::value objects
// (built per event, or parsed once for the waits) serialized and parsed by the SDK; otherwise
// they are pre-serialized JSON text sent with emitToRaw/broadcastRaw/broadcastAndWaitRaw to raw
// listeners. With BENCH_IO_THREAD=1 listeners run on the SDK's I/O thread
// (ClusterOptions::listenersOnIoThread).
//
// BENCH_CASE=restart-baseline is not an SDK worker: it is the child of the baseline's
// fork/exec/waitpid loop, which speaks the handshake by hand, so that both restart figures
// start the same executable.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include "clustervisor/wire/frame.hpp"
#include "clustervisor/worker.hpp"
#include "scenario.hpp"

namespace json = boost::json;
namespace bench = clustervisor::bench;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

void appendLine(const std::filesystem::path& file, const std::string& line) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
  }
}

// Both restart figures end here: note when this worker came up, then crash unless told to stop.
[[noreturn]] void connectedThenCrash(const std::filesystem::path& dir, std::int64_t connected) {
  appendLine(dir / bench::kRestartLog, "connected " + std::to_string(connected) + "\n");
  if (!std::filesystem::exists(dir / bench::kStopRestartingFile)) {
    appendLine(dir / bench::kRestartLog, "died " + std::to_string(bench::nowNs()) + "\n");
    ::_exit(1);
  }
  for (;;) {
    std::this_thread::sleep_for(1h);
  }
}

// The baseline loop's child: HELLO and WELCOME on fd 3, by hand.
int baselineChild(const std::filesystem::path& dir) {
  namespace wire = clustervisor::wire;
  wire::HelloBody hello;
  hello.pid = static_cast<std::uint32_t>(::getpid());
  const auto frame = wire::encodeHello(hello);
  if (::write(wire::kWorkerFd, frame.data(), frame.size()) != static_cast<ssize_t>(frame.size())) {
    return 2;
  }
  std::byte welcome[wire::kHeaderSize + wire::kWelcomeBodySize];
  std::size_t got = 0;
  while (got < sizeof welcome) {
    const ssize_t n = ::read(wire::kWorkerFd, welcome + got, sizeof welcome - got);
    if (n <= 0) {
      return 2;
    }
    got += static_cast<std::size_t>(n);
  }
  connectedThenCrash(dir, bench::nowNs());
}

class Worker {
 public:
  Worker(clustervisor::Cluster& cluster, std::string scenario, bool useJson)
      : cluster_(cluster),
        bus_(cluster.events()),
        scenario_(std::move(scenario)),
        json_(useJson),
        dir_(bench::envOr(bench::kEnvDir, ".")),
        seconds_(bench::envSeconds()),
        id_(cluster.id()),
        total_(cluster.totalClusters()),
        credits_(static_cast<std::size_t>(total_)) {}

  void run() {
    bus_.on(std::string(bench::kEventHello), [this](const json::value&, int) {
      hellos_.fetch_add(1);
      hellos_.notify_all();
    });
    if (scenario_ == bench::kUnicast || scenario_ == bench::kBroadcast) {
      streamListeners();
    } else if (scenario_ == bench::kRoundTrip) {
      roundTripListeners();
    } else if (scenario_ == bench::kWait) {
      if (json_) {
        bus_.on(std::string(bench::kEventData), [](const json::value&, int) {});
      } else {
        bus_.onRaw(std::string(bench::kEventData), [](std::string_view, int) {});
      }
    }
    cluster_.ready();
    if (scenario_ == bench::kFlood) {
      appendLine(dir_ / ("pid-" + std::to_string(id_)), std::to_string(::getpid()) + "\n");
    }
    if (id_ != 0) {
      sendRaw(0, bench::kEventHello, "null");
      if (scenario_ == bench::kFlood && id_ != total_ - 1) {
        waitForGo();
        flood();
      }
      idle();
    }
    waitForHellos();
    if (scenario_ == bench::kUnicast) {
      stream({1});
    } else if (scenario_ == bench::kBroadcast) {
      std::vector<int> receivers;
      for (int r = 1; r < total_; ++r) {
        receivers.push_back(r);
      }
      stream(receivers);
    } else if (scenario_ == bench::kRoundTrip) {
      roundTrip();
    } else if (scenario_ == bench::kWait) {
      waits();
    } else if (scenario_ == bench::kIdle) {
      reachAll();
    } else if (scenario_ == bench::kFlood) {
      bench::writeResults(dir_, 0, {{"connected_ns", bench::nowNs()}});
      waitForGo();
      flood();
    }
    idle();
  }

 private:
  [[noreturn]] static void idle() {
    for (;;) {
      std::this_thread::sleep_for(1h);
    }
  }

  void waitForHellos() {
    for (int seen = hellos_.load(); seen < total_ - 1; seen = hellos_.load()) {
      hellos_.wait(seen);
    }
  }

  void waitForGo() const {
    while (!std::filesystem::exists(dir_ / "go")) {
      std::this_thread::sleep_for(5ms);
    }
  }

  // Sends, waiting while the SDK's send queue is full.
  void sendRaw(int target, std::string_view event, std::string_view payload) {
    for (;;) {
      error_code ec;
      if (target < 0) {
        bus_.broadcastRaw(event, payload, ec);
      } else {
        bus_.emitToRaw(target, event, payload, ec);
      }
      if (ec != clustervisor::Errc::kQueueFull) {
        if (ec) {
          std::fprintf(stderr, "bench-worker: send failed: %s\n", ec.message().c_str());
          ::_exit(3);
        }
        return;
      }
      std::this_thread::yield();
    }
  }

  void sendData(int target, std::string_view event) {
    if (!json_) {
      sendRaw(target, event, bench::kPayload);
      return;
    }
    for (;;) {
      error_code ec;
      // As a worker writes a payload it builds per event (the SDK builds it at each send).
      const std::initializer_list<clustervisor::Field> payload = {{"action", "ban"},
                                                                  {"guild", "533961200438099968"},
                                                                  {"user", "447796768693156649"},
                                                                  {"reason", "spam,3 warnings"}};
      if (target < 0) {
        bus_.broadcast(event, payload, ec);
      } else {
        bus_.emitTo(target, event, payload, ec);
      }
      if (ec != clustervisor::Errc::kQueueFull) {
        return;
      }
      std::this_thread::yield();
    }
  }

  // --- unicast and broadcast: cluster 0 streams events, receivers count and return credit.

  void streamListeners() {
    bus_.on(std::string(bench::kEventCredit), [this](const json::value& data, int source) {
      credits_[static_cast<std::size_t>(source)].store(static_cast<std::uint64_t>(data.as_int64()));
      creditVersion_.fetch_add(1);
      creditVersion_.notify_all();
    });
    // A typical worker parses (json::value listener); the text path only counts.
    if (json_) {
      bus_.on(std::string(bench::kEventData), [this](const json::value& data, int) {
        if (!data.is_object()) {
          std::fprintf(stderr, "bench-worker: payload is not an object\n");
        }
        received();
      });
    } else {
      bus_.onRaw(std::string(bench::kEventData), [this](std::string_view, int) { received(); });
    }
    bus_.on(std::string(bench::kEventEnd), [this](const json::value& data, int) {
      const auto end = bench::nowNs();
      bench::writeResults(dir_, static_cast<std::uint32_t>(id_),
                          {{"end_ns", end},
                           {"received", static_cast<std::int64_t>(received_)},
                           {"expected", data.as_int64()}});
    });
  }

  void received() {
    if (++received_ % bench::kCreditEvery == 0) {
      sendRaw(0, bench::kEventCredit, std::to_string(received_));
    }
  }

  std::uint64_t minCredit(const std::vector<int>& receivers) const {
    std::uint64_t least = UINT64_MAX;
    for (const int r : receivers) {
      least = std::min(least, credits_[static_cast<std::size_t>(r)].load());
    }
    return least;
  }

  void stream(const std::vector<int>& receivers) {
    const int target = receivers.size() == 1 ? receivers.front() : -1;
    const auto start = bench::nowNs();
    const auto end = start + static_cast<std::int64_t>(seconds_ * 1e9);
    std::uint64_t sent = 0;
    for (;;) {
      if (sent % 64 == 0 && bench::nowNs() >= end) {
        break;
      }
      while (sent - minCredit(receivers) >= bench::kWindow) {
        const auto version = creditVersion_.load();
        if (sent - minCredit(receivers) >= bench::kWindow) {
          creditVersion_.wait(version);
        }
      }
      sendData(target, bench::kEventData);
      ++sent;
    }
    sendRaw(target, bench::kEventEnd, std::to_string(sent));
    bench::writeResults(dir_, 0, {{"start_ns", start}, {"sent", static_cast<std::int64_t>(sent)}});
  }

  // --- round trip: 0 pings 1, 1 pongs back, one at a time.

  void roundTripListeners() {
    if (json_) {
      bus_.on(std::string(bench::kEventPing),
              [this](const json::value&, int source) { sendData(source, bench::kEventPong); });
      bus_.on(std::string(bench::kEventPong), [this](const json::value&, int) { pong(); });
    } else {
      bus_.onRaw(std::string(bench::kEventPing),
                 [this](std::string_view, int source) { sendData(source, bench::kEventPong); });
      bus_.onRaw(std::string(bench::kEventPong), [this](std::string_view, int) { pong(); });
    }
  }

  void pong() {
    const auto now = bench::nowNs();
    samples_.push_back(now - sentAt_);
    if (now >= until_) {
      done_.set_value();
      return;
    }
    sentAt_ = bench::nowNs();
    sendData(1, bench::kEventPing);
  }

  void roundTrip() {
    until_ = bench::nowNs() + static_cast<std::int64_t>(seconds_ * 1e9);
    auto done = done_.get_future();
    // The first send happens on the bus executor, like every later one.
    boost::asio::post(bus_.get_executor(), [this] {
      sentAt_ = bench::nowNs();
      sendData(1, bench::kEventPing);
    });
    done.wait();
    writeSamples();
  }

  // --- broadcastAndWait: 0 waits for all N-1 acknowledgements, one wait at a time. The payload
  // is the pre-serialized text, as in the cases above, or a json::value with json_ (case 7).

  void nextWait() {
    sentAt_ = bench::nowNs();
    const auto completed = [this](error_code ec, int acked) {
      const auto now = bench::nowNs();
      samples_.push_back(now - sentAt_);
      if (ec || acked != total_ - 1) {
        ++incomplete_;
      }
      if (now >= until_) {
        done_.set_value();
        return;
      }
      nextWait();
    };
    if (json_) {
      bus_.broadcastAndWait(bench::kEventData, waitPayload_, 10s, total_ - 1, completed);
    } else {
      bus_.broadcastAndWaitRaw(bench::kEventData, bench::kPayload, 10s, total_ - 1, completed);
    }
  }

  void waits() {
    if (json_) {
      waitPayload_ = json::parse(bench::kPayload);
    }
    until_ = bench::nowNs() + static_cast<std::int64_t>(seconds_ * 1e9);
    auto done = done_.get_future();
    boost::asio::post(bus_.get_executor(), [this] { nextWait(); });
    done.wait();
    writeSamples({{"incomplete", incomplete_}});
  }

  void writeSamples(std::map<std::string, std::int64_t> values = {}) {
    std::vector<std::int64_t> kept(
        samples_.begin() +
            static_cast<std::ptrdiff_t>(std::min(bench::kWarmupSamples, samples_.size() / 2)),
        samples_.end());
    values["count"] = static_cast<std::int64_t>(kept.size());
    bench::writeResults(dir_, 0, values, kept);
  }

  // --- idle: everyone connected; one broadcast must reach all of them.

  void reachAll() {
    const auto connected = bench::nowNs();
    const int acked = bus_.broadcastAndWait(bench::kEventHello, nullptr, 60s, total_ - 1).get();
    bench::writeResults(dir_, 0, {{"connected_ns", connected}, {"acked", acked}});
  }

  // --- flood: broadcast unpaced for the measured time (the stalled-worker scenario).

  void flood() {
    const auto end = bench::nowNs() + static_cast<std::int64_t>(seconds_ * 1e9);
    std::int64_t sent = 0;
    while (bench::nowNs() < end) {
      for (int i = 0; i < 64; ++i) {
        error_code ec;
        bus_.broadcastRaw(bench::kEventData, bench::kPayload, ec);
        if (ec) {
          std::this_thread::yield();
          break;
        }
        ++sent;
      }
    }
    bench::writeResults(dir_, static_cast<std::uint32_t>(id_), {{"sent", sent}});
  }

  clustervisor::Cluster& cluster_;
  clustervisor::EventBus& bus_;
  const std::string scenario_;
  const bool json_;
  const std::filesystem::path dir_;
  const double seconds_;
  const int id_;
  const int total_;

  std::atomic<int> hellos_{0};
  std::vector<std::atomic<std::uint64_t>> credits_;
  std::atomic<std::uint64_t> creditVersion_{0};
  std::uint64_t received_ = 0;  // bus executor only

  std::int64_t until_ = 0;
  std::int64_t sentAt_ = 0;  // bus executor only
  std::vector<std::int64_t> samples_;
  std::int64_t incomplete_ = 0;
  std::promise<void> done_;
  json::value waitPayload_;
};

}  // namespace

int main() {
  const std::string scenario = bench::envOr(bench::kEnvCase, "");
  const std::filesystem::path dir = bench::envOr(bench::kEnvDir, ".");
  if (scenario == "restart-baseline") {
    return baselineChild(dir);
  }
  try {
    clustervisor::ClusterOptions options;
    // Starting 1024 clusters at once keeps the supervisor busy forking for many seconds, during
    // which welcomes lag far behind (see bench/README.md, "Start time"); wait for ours rather than
    // give up after the default 10 s and measure a bot that lost clusters.
    options.handshakeTimeout = std::chrono::minutes(2);
    options.listenersOnIoThread = bench::envOr(bench::kEnvIoThread, "0") == "1";
    auto cluster = clustervisor::Cluster::fromEnvironment(options);
    if (scenario == bench::kRestart) {
      connectedThenCrash(dir, bench::nowNs());
    }
    Worker worker(cluster, scenario, bench::envOr(bench::kEnvJson, "0") == "1");
    worker.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-worker: %s\n", e.what());
    return 1;
  }
  return 0;
}
