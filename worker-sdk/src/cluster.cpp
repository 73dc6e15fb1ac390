// SPDX-License-Identifier: MIT
#include "clustervisor/cluster.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "clustervisor/wire/frame.hpp"
#include "connection.hpp"
#include "io_threads.hpp"

namespace clustervisor {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

[[noreturn]] void fail(Errc code, const std::string& what) {
  throw Error(make_error_code(code), what);
}

std::uint32_t readVariable(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) {
    fail(Errc::kNotUnderSupervisor,
         std::string(name) +
             " is not set: this program is a clustervisor worker; start it with "
             "`clustervisor run bot.toml`");
  }
  std::uint32_t value = 0;
  const std::string_view sv(text);
  const auto [end, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), value);
  if (ec != std::errc{} || end != sv.data() + sv.size() || sv.empty()) {
    fail(Errc::kNotUnderSupervisor,
         std::string(name) + "=\"" + text + "\" is not a non-negative integer");
  }
  return value;
}

void writeAll(int fd, std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail(Errc::kHandshakeFailed,
           std::string("cannot send the hello to the supervisor: ") + std::strerror(errno));
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

// CLUSTERVISOR_SHARDS ("0,1,2": ascending, distinct, below the total) and
// CLUSTERVISOR_TOTAL_SHARDS, which the supervisor sets together or not at all.
void readShards(std::vector<std::uint32_t>& shards, std::uint32_t& total) {
  const char* list = std::getenv(wire::kEnvShards);
  if (std::getenv(wire::kEnvTotalShards) == nullptr) {
    if (list != nullptr) {
      fail(Errc::kNotUnderSupervisor,
           std::string(wire::kEnvShards) + " is set without " + wire::kEnvTotalShards);
    }
    return;
  }
  total = readVariable(wire::kEnvTotalShards);
  const std::string_view text = list != nullptr ? list : "";
  const auto invalid = [&] {
    fail(Errc::kNotUnderSupervisor,
         std::string(wire::kEnvShards) + "=\"" + std::string(text) +
             "\" is not a comma-separated, ascending list of shard ids below " +
             std::to_string(total));
  };
  if (list == nullptr) {
    invalid();
  }
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    std::uint32_t shard = 0;
    const auto [end, ec] = std::from_chars(text.data() + at, text.data() + comma, shard);
    if (ec != std::errc{} || end != text.data() + comma || comma == at || shard >= total ||
        (!shards.empty() && shard <= shards.back()) || comma + 1 == text.size()) {
      invalid();
    }
    shards.push_back(shard);
    at = comma + 1;
  }
}

// Reads until a whole frame is buffered; bytes after it stay in the reader for the connection.
wire::FrameReader::Next readFirstFrame(int fd, wire::FrameReader& reader,
                                       std::chrono::milliseconds timeout) {
  const auto deadline = detail::deadlineAfter(timeout);
  for (;;) {
    auto next = reader.next();
    if (next.result.status != wire::DecodeStatus::kIncomplete) {
      return next;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      fail(Errc::kHandshakeFailed, "the supervisor did not answer the hello within " +
                                       std::to_string(timeout.count()) + " ms");
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready =
        ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60000)));
    if (ready < 0 && errno != EINTR) {
      fail(Errc::kHandshakeFailed, std::string("poll: ") + std::strerror(errno));
    }
    if (ready <= 0) {
      continue;
    }
    auto space = reader.prepare();
    const ssize_t n = ::read(fd, space.data(), space.size());
    if (n == 0) {
      fail(Errc::kHandshakeFailed, "the supervisor closed the connection during the handshake");
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      fail(Errc::kHandshakeFailed, std::string("read: ") + std::strerror(errno));
    }
    reader.commit(static_cast<std::size_t>(n));
  }
}

// exit(3) destroys no Cluster that is a local of main, and what was sent just before it waits
// for an SDK thread (or, sent by a listener, for the listener to return): the connections still
// open write what is queued for them then, as their destructor would.
std::mutex exitMutex;
std::vector<std::weak_ptr<detail::Connection>>* exitConnections = nullptr;  // never freed

void writeQueuedAtExit() {
  std::vector<std::shared_ptr<detail::Connection>> open;
  {
    const std::lock_guard lock(exitMutex);
    for (const auto& weak : *exitConnections) {
      if (auto connection = weak.lock()) {
        open.push_back(std::move(connection));
      }
    }
  }
  for (const auto& connection : open) {
    connection->writeQueuedNow();
  }
}

void writeQueuedAtExit(const std::shared_ptr<detail::Connection>& connection) {
  const std::lock_guard lock(exitMutex);
  if (exitConnections == nullptr) {
    exitConnections = new std::vector<std::weak_ptr<detail::Connection>>;
    std::atexit([] { writeQueuedAtExit(); });
  }
  std::erase_if(*exitConnections, [](const auto& weak) { return weak.expired(); });
  exitConnections->push_back(connection);
}

// How long one run of listeners may hold the SDK's default threads before the other one takes
// the connection over (see detail::IoThreads): a quarter of the heartbeat interval, so heartbeats
// go on within half an interval, but at most 100 ms (the standby looks that often while listeners
// run).
std::chrono::milliseconds takeOverAfter(std::uint32_t heartbeatIntervalMs) {
  constexpr std::chrono::milliseconds kShortest{5};
  constexpr std::chrono::milliseconds kLongest{100};
  if (heartbeatIntervalMs == 0) {
    return kLongest;
  }
  return std::clamp(std::chrono::milliseconds(heartbeatIntervalMs / 4), kShortest, kLongest);
}

}  // namespace

struct Cluster::Impl {
  std::shared_ptr<asio::io_context> io;
  // By default: the io_context on two threads that take turns (detail::IoThreads). With
  // ClusterOptions::executor or listenersOnIoThread: ioThread alone runs it.
  std::shared_ptr<detail::IoThreads> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> ioWork;
  std::thread ioThread;
  std::shared_ptr<detail::Connection> connection;
  std::optional<EventBus> bus;
  std::vector<std::uint32_t> shards;
  std::uint32_t totalShards = 0;

  ~Impl() {
    const bool ownThread = onOwnThread();
    if (connection) {
      connection->shutdown();
      if (connection->busRunsHere() || ownThread) {
        // Destroyed inside a listener or handler (exit(3) with a Cluster of static storage
        // duration, say): its sends would go out when it returns, which may be never.
        connection->writeQueuedNow();
      }
    }
    // The threads run what is queued (listeners see shutdown and return at once) and end when
    // nothing is left, so no handler is left holding the connection when the contexts go.
    ioWork.reset();
    if (ownThread) {
      leaveToOwnThreads();
      return;
    }
    if (ioThread.joinable()) {
      ioThread.join();
    }
    if (threads) {
      threads->join();
    }
  }

  // Destroyed by a listener or handler, on an SDK thread: most often exit(3) with a Cluster of
  // static storage duration.
  bool onOwnThread() const noexcept {
    return (threads && threads->runsOnThisThread()) ||
           (ioThread.joinable() && ioThread.get_id() == std::this_thread::get_id());
  }

  // A thread cannot join itself, and the handler it is in still uses the io_context: the threads
  // finish the shutdown on their own once that handler returns (if the process goes on), and
  // what they use is kept for the rest of the process.
  void leaveToOwnThreads() {
    if (ioThread.joinable()) {
      ioThread.detach();
    }
    if (threads) {
      threads->detach();
    }
    static std::mutex mutex;
    static auto* const kept = new std::vector<std::shared_ptr<void>>;  // never freed, on purpose
    const std::lock_guard lock(mutex);
    kept->insert(kept->end(), {io, threads, connection});
  }
};

namespace {

// Set once a call of fromEnvironment() has taken the connection: it is this process's once (a
// second handshake on it would be a protocol error, for which the supervisor stops the worker),
// and once the first Cluster is gone its descriptor is closed, or belongs to something else.
std::atomic<bool> connectionTaken{false};

[[noreturn]] void throwTakenAlready() {
  throw std::logic_error(
      "Cluster::fromEnvironment: called again in this process; the connection to the supervisor "
      "(" +
      std::string(wire::kEnvFd) +
      ") is taken by the first call alone: keep that Cluster (it can be moved) for as long as the "
      "process runs");
}

}  // namespace

Cluster Cluster::fromEnvironment(ClusterOptions options) {
  if (connectionTaken.load()) {
    throwTakenAlready();  // before looking at the descriptor, which may be closed or reused
  }
  if (options.executor && options.listenersOnIoThread) {
    throw std::invalid_argument(
        "Cluster::fromEnvironment: ClusterOptions::executor and listenersOnIoThread both say "
        "where listeners run; set one of them");
  }
  const std::uint32_t id = readVariable(wire::kEnvClusterId);
  const std::uint32_t total = readVariable(wire::kEnvTotalClusters);
  const std::uint32_t fdNumber = readVariable(wire::kEnvFd);
  const std::uint32_t protocol = readVariable(wire::kEnvProtocol);
  if (protocol != wire::kProtocolVersion) {
    fail(Errc::kNotUnderSupervisor, "the supervisor speaks protocol " + std::to_string(protocol) +
                                        ", this SDK speaks " +
                                        std::to_string(wire::kProtocolVersion));
  }
  if (id >= total) {
    fail(Errc::kNotUnderSupervisor,
         "cluster id " + std::to_string(id) + " is not below the total " + std::to_string(total));
  }
  std::vector<std::uint32_t> shards;
  std::uint32_t totalShards = 0;
  readShards(shards, totalShards);
  const int fd = static_cast<int>(fdNumber);
  struct stat st {};
  if (fdNumber > 1024 || ::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    fail(Errc::kNotUnderSupervisor, "file descriptor " + std::to_string(fdNumber) + " (" +
                                        wire::kEnvFd +
                                        ") is not the socket clustervisor gives its workers");
  }
  if (connectionTaken.exchange(true)) {
    throwTakenAlready();
  }
  // The worker's own children must not inherit the socket: they would keep it open after the
  // worker died, and the supervisor would not see the worker go.
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);

  wire::HelloBody hello;
  hello.pid = static_cast<std::uint32_t>(::getpid());
  writeAll(fd, wire::encodeHello(hello));
  // The welcome is small; the limit grows to the real one once the welcome says it.
  wire::FrameReader reader(wire::kHeaderSize + wire::kWelcomeBodySize);
  const auto first = readFirstFrame(fd, reader, options.handshakeTimeout);
  if (first.result.status != wire::DecodeStatus::kFrame ||
      first.result.header.type != wire::FrameType::kWelcome) {
    fail(Errc::kHandshakeFailed, "the supervisor's first frame is not a welcome");
  }
  const auto welcome = wire::welcomeBody(first.frame);
  if (welcome.version != wire::kProtocolVersion || welcome.clusterId != id) {
    fail(Errc::kHandshakeFailed, "the welcome does not match this worker (version " +
                                     std::to_string(welcome.version) + ", cluster " +
                                     std::to_string(welcome.clusterId) + ")");
  }
  // Sends are held to the WELCOME's max_payload (maxPayload below); what arrives may be larger
  // after a reload raised the limit for workers started since (see kMaxPayloadCeiling).
  reader.setMaxFrameSize(wire::maxFrameSizeFor(wire::kMaxPayloadCeiling));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  auto impl = std::make_unique<Impl>();
  impl->shards = std::move(shards);
  impl->totalShards = totalShards;
  asio::any_io_executor busExecutor;
  if (options.executor || options.listenersOnIoThread) {
    impl->io = std::make_shared<asio::io_context>(1);  // one thread: its fast path
    busExecutor = options.executor ? *options.executor : impl->io->get_executor();
  } else {
    // Not the one-thread hint: the standby must see what a handler that blocks has posted.
    impl->io = std::make_shared<asio::io_context>();
    impl->threads =
        std::make_shared<detail::IoThreads>(impl->io, takeOverAfter(welcome.heartbeatIntervalMs));
    busExecutor = impl->threads->busExecutor();
  }
  impl->ioWork.emplace(impl->io->get_executor());
  detail::Connection::Settings settings;
  settings.fd = fd;
  settings.reader = std::move(reader);
  settings.id = id;
  settings.totalClusters = welcome.totalClusters != 0 ? welcome.totalClusters : total;
  settings.maxPayload = welcome.maxPayload;
  settings.sendQueueLimit = options.sendQueueLimit;
  settings.receiveQueueLimit = options.receiveQueueLimit;
  settings.ioExecutor = impl->io->get_executor();
  settings.busExecutor = busExecutor;
  settings.onSupervisorLost = std::move(options.onSupervisorLost);
  settings.heartbeatInterval = std::chrono::milliseconds(welcome.heartbeatIntervalMs);
  settings.heartbeatFromBus = options.heartbeatFromExecutor;
  settings.threads = impl->threads.get();
  settings.keepAlive = {impl->io, impl->threads};
  impl->connection = std::make_shared<detail::Connection>(std::move(settings));
  writeQueuedAtExit(impl->connection);
  impl->bus.emplace(impl->connection);
  impl->connection->start();
  if (impl->threads) {
    impl->threads->start();
  } else {
    impl->ioThread = std::thread([ctx = impl->io.get()] {
      detail::blockAllSignals();
      ctx->run();
    });
  }
  return Cluster(std::move(impl));
}

Cluster::Cluster(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Cluster::Cluster(Cluster&&) noexcept = default;
Cluster& Cluster::operator=(Cluster&&) noexcept = default;
Cluster::~Cluster() = default;

int Cluster::id() const {
  return static_cast<int>(impl_->connection->id());
}
int Cluster::totalClusters() const {
  return static_cast<int>(impl_->connection->totalClusters());
}
std::uint32_t Cluster::maxPayload() const {
  return impl_->connection->maxPayload();
}
EventBus& Cluster::events() {
  return *impl_->bus;
}
bool Cluster::connected() const {
  return impl_->connection->connected();
}

const std::vector<std::uint32_t>& Cluster::shards() const {
  return impl_->shards;
}
std::uint32_t Cluster::totalShards() const {
  return impl_->totalShards;
}

void Cluster::onStop(std::function<void(std::chrono::milliseconds)> handler) {
  if (!handler) {
    // The supervisor has been told this worker stops on the frame; it cannot be untold.
    throw std::invalid_argument("Cluster::onStop: the handler must not be empty");
  }
  impl_->connection->setStopHandler(std::move(handler));
}

void Cluster::onTotalClustersChanged(std::function<void(int, int)> handler) {
  impl_->connection->setTotalHandler(std::move(handler));
}

void Cluster::ready() {
  impl_->connection->startListening();
  if (const error_code ec = impl_->connection->sendReady()) {
    throw Error(ec, "ready: " + ec.message());
  }
}

}  // namespace clustervisor
