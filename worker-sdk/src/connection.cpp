// SPDX-License-Identifier: MIT
#include "connection.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>

namespace clustervisor::detail {

namespace asio = boost::asio;
using boost::system::error_code;

Connection::Connection(Settings settings)
    : keepAlive_(std::move(settings.keepAlive)),
      id_(settings.id),
      totalClusters_(settings.totalClusters),
      maxPayload_(settings.maxPayload),
      // Room for at least two of the largest frames, so a legal event is never "queue full"
      // merely for its size.
      sendQueueLimit_(
          std::max(settings.sendQueueLimit, 2 * wire::maxFrameSizeFor(settings.maxPayload))),
      io_(settings.ioExecutor),
      bus_(asio::make_strand(settings.busExecutor)),
      onSupervisorLost_(std::move(settings.onSupervisorLost)),
      busWork_(asio::prefer(settings.busExecutor, asio::execution::outstanding_work.tracked)),
      socket_(settings.ioExecutor),
      closeTimer_(settings.ioExecutor),
      heartbeatTimer_(settings.ioExecutor),
      heartbeatInterval_(settings.heartbeatInterval),
      heartbeatFromBus_(settings.heartbeatFromBus),
      reader_(std::move(settings.reader)) {
  socket_.assign(asio::local::stream_protocol(), settings.fd);
  std::random_device random;
  const std::uint64_t seed = (static_cast<std::uint64_t>(random()) << 32) | random();
  nextWaitId_ = (seed >> 1) + 1;  // never 0 (0 means "no acknowledgement wanted"), no wrap soon
}

void Connection::start() {
  asio::dispatch(io_, [self = shared_from_this()] {
    // Frames that arrived together with the welcome are already buffered.
    self->handleFrames();
    if (self->connected()) {
      self->readLoop();
      self->heartbeat();
    }
  });
}

void Connection::heartbeat() {
  if (heartbeatInterval_.count() == 0 || !connected() || closing_) {
    return;
  }
  // The first one at once: the supervisor's clock has been running since the spawn.
  if (heartbeatFromBus_) {
    if (!heartbeatPending_.exchange(true)) {
      asio::post(bus_, [self = shared_from_this()] {
        self->heartbeatPending_ = false;
        self->sendHeartbeat();
      });
    }
  } else {
    sendHeartbeat();
  }
  heartbeatTimer_.expires_after(heartbeatInterval_);
  heartbeatTimer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) {
      self->heartbeat();
    }
  });
}

void Connection::sendHeartbeat() {
  if (shutdown_) {
    return;
  }
  const auto frame = wire::encodeHeartbeat();
  enqueue(
      frame.size(), [&](std::byte* out) { std::memcpy(out, frame.data(), frame.size()); }, true);
}

void Connection::setStopHandler(StopHandler handler) {
  bool announce = false;
  {
    std::lock_guard lock(stopMutex_);
    stopHandler_ = handler ? std::make_shared<StopHandler>(std::move(handler)) : nullptr;
    announce = stopHandler_ && !stopHandlerAnnounced_;
    stopHandlerAnnounced_ = stopHandlerAnnounced_ || announce;
  }
  if (announce) {
    const auto frame = wire::encodeStopHandler();
    enqueue(
        frame.size(), [&](std::byte* out) { std::memcpy(out, frame.data(), frame.size()); }, true);
  }
}

void Connection::onStopFrame(std::chrono::milliseconds untilKill) {
  std::shared_ptr<StopHandler> handler;
  {
    std::lock_guard lock(stopMutex_);
    handler = stopHandler_;
  }
  if (!handler) {
    return;  // the stop signal follows at once and does the job
  }
  asio::post(bus_, [self = shared_from_this(), handler, untilKill] {
    if (self->shutdown_) {
      return;
    }
    try {
      (*handler)(untilKill);
    } catch (...) {
      self->reportListenerError("(stop handler)", std::current_exception());
    }
  });
}

void Connection::setTotalHandler(TotalHandler handler) {
  std::lock_guard lock(stopMutex_);
  totalHandler_ = handler ? std::make_shared<TotalHandler>(std::move(handler)) : nullptr;
}

void Connection::onTotalChanged(std::uint32_t total) {
  const std::uint32_t old = totalClusters_.exchange(total, std::memory_order_relaxed);
  if (old == total) {
    return;
  }
  std::shared_ptr<TotalHandler> handler;
  {
    std::lock_guard lock(stopMutex_);
    handler = totalHandler_;
  }
  if (!handler) {
    return;
  }
  asio::post(bus_, [self = shared_from_this(), handler, total, old] {
    if (self->shutdown_) {
      return;
    }
    try {
      (*handler)(static_cast<int>(total), static_cast<int>(old));
    } catch (...) {
      self->reportListenerError("(total clusters handler)", std::current_exception());
    }
  });
}

void Connection::releaseBusWork() {
  std::lock_guard lock(busWorkMutex_);
  busWork_ = asio::any_io_executor();
}

void Connection::shutdown() {
  shutdown_ = true;
  releaseBusWork();
  asio::dispatch(io_, [self = shared_from_this()] {
    self->closeWhenFlushed();
    std::vector<std::uint64_t> ids;
    {
      std::lock_guard lock(self->waitsMutex_);
      for (const auto& [id, wait] : self->waits_) {
        ids.push_back(id);
      }
    }
    for (auto id : ids) {
      self->finishWait(id, false);
    }
  });
}

error_code Connection::checkTarget(int clusterId) const {
  if (clusterId < 0 || static_cast<std::uint32_t>(clusterId) >= totalClusters()) {
    return make_error_code(Errc::kInvalidClusterId);
  }
  return {};
}

error_code Connection::enqueue(std::size_t frameSize, const std::function<void(std::byte*)>& write,
                               bool control) {
  bool startWriting = false;
  {
    std::lock_guard lock(sendMutex_);
    if (!connected()) {
      return make_error_code(Errc::kNotConnected);
    }
    if (!control && queuedBytes_ + frameSize > sendQueueLimit_) {
      return make_error_code(Errc::kQueueFull);
    }
    const std::size_t offset = pending_.size();
    pending_.resize(offset + frameSize);
    write(pending_.data() + offset);
    queuedBytes_ += frameSize;
    if (!writing_) {
      writing_ = true;
      startWriting = true;
    }
  }
  if (startWriting) {
    asio::post(io_, [self = shared_from_this()] { self->flush(); });
  }
  return {};
}

error_code Connection::sendEvent(std::uint32_t target, std::uint64_t correlation,
                                 std::string_view name, std::string_view payload) {
  if (name.empty() || name.size() > wire::kMaxEventNameLength) {
    return make_error_code(Errc::kInvalidEventName);
  }
  if (payload.size() > maxPayload_) {
    return make_error_code(Errc::kPayloadTooLarge);
  }
  const std::size_t size = wire::kHeaderSize + name.size() + payload.size();
  return enqueue(size, [&](std::byte* out) {
    wire::Header h;
    h.length = static_cast<std::uint32_t>(size);
    h.type = wire::FrameType::kEvent;
    h.nameLength = static_cast<std::uint16_t>(name.size());
    h.source = id_;
    h.target = target;
    h.correlation = correlation;
    wire::encodeHeader(h, std::span<std::byte, wire::kHeaderSize>(out, wire::kHeaderSize));
    std::memcpy(out + wire::kHeaderSize, name.data(), name.size());
    if (!payload.empty()) {
      std::memcpy(out + wire::kHeaderSize + name.size(), payload.data(), payload.size());
    }
  });
}

error_code Connection::sendReady() {
  const auto frame = wire::encodeReady();
  return enqueue(frame.size(),
                 [&](std::byte* out) { std::memcpy(out, frame.data(), frame.size()); });
}

void Connection::closeWhenFlushed() {
  bool idle = false;
  {
    std::lock_guard lock(sendMutex_);
    idle = !writing_ && pending_.empty();
  }
  if (idle || !socket_.is_open()) {
    closeSocket();
    return;
  }
  // What the worker sent just before it ends still reaches the supervisor, within a bound.
  closing_ = true;
  closeTimer_.expires_after(kFlushOnShutdown);
  closeTimer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) {
      self->closeSocket();
    }
  });
}

void Connection::closeSocket() {
  connected_ = false;  // before the close, so the read loop's error is not a "lost supervisor"
  error_code ignored;
  socket_.close(ignored);
  closeTimer_.cancel();
  heartbeatTimer_.cancel();
}

void Connection::flush() {
  bool drained = false;
  {
    std::lock_guard lock(sendMutex_);
    if (pending_.empty() || !socket_.is_open()) {
      writing_ = false;
      drained = true;
    } else {
      std::swap(pending_, inflight_);
    }
  }
  if (drained) {
    if (closing_) {
      closeSocket();  // shutting down and everything is written
    }
    return;
  }
  asio::async_write(socket_, asio::buffer(inflight_),
                    [self = shared_from_this()](error_code ec, std::size_t written) {
                      {
                        std::lock_guard lock(self->sendMutex_);
                        self->queuedBytes_ -= written;
                      }
                      // Keep a burst's buffer for the next burst, but not a huge one forever.
                      self->inflight_.clear();
                      if (self->inflight_.capacity() > 4 * 1024 * 1024) {
                        self->inflight_.shrink_to_fit();
                      }
                      if (ec) {
                        self->lost("cannot write to the supervisor: " + ec.message());
                        return;
                      }
                      self->flush();
                    });
}

void Connection::readLoop() {
  const auto space = reader_.prepare();
  socket_.async_read_some(asio::buffer(space.data(), space.size()),
                          [self = shared_from_this()](error_code ec, std::size_t n) {
                            if (ec) {
                              self->lost(ec == asio::error::eof
                                             ? "the supervisor closed the connection"
                                             : "cannot read from the supervisor: " + ec.message());
                              return;
                            }
                            self->reader_.commit(n);
                            self->handleFrames();
                            if (self->connected()) {
                              self->readLoop();
                            }
                          });
}

void Connection::handleFrames() {
  std::vector<Incoming> batch;
  for (;;) {
    const auto next = reader_.next();
    const auto& h = next.result.header;
    if (next.result.status == wire::DecodeStatus::kIncomplete) {
      break;
    }
    if (next.result.status != wire::DecodeStatus::kFrame) {
      lost(std::string("malformed frame from the supervisor: ") + std::string(next.result.error));
      break;
    }
    switch (h.type) {
      case wire::FrameType::kEvent:
        batch.push_back({std::string(wire::eventName(next.frame, h)),
                         std::string(wire::eventPayload(next.frame, h)), h.source, h.correlation});
        break;
      case wire::FrameType::kAck:
        onAck(h.source, h.correlation);
        break;
      case wire::FrameType::kWaitClosed:
        onWaitClosed(h.correlation, wire::waitClosedBody(next.frame));
        break;
      case wire::FrameType::kTotalChanged:
        // Events that came before the change are handed on before the handler is told.
        if (!batch.empty()) {
          dispatch(std::move(batch));
          batch.clear();
        }
        onTotalChanged(wire::totalChangedBody(next.frame));
        break;
      case wire::FrameType::kStop:
        // Events that came before the stop are handed on before the stop handler is.
        if (!batch.empty()) {
          dispatch(std::move(batch));
          batch.clear();
        }
        onStopFrame(std::chrono::milliseconds(wire::stopBody(next.frame)));
        break;
      case wire::FrameType::kHello:
      case wire::FrameType::kHeartbeat:
      case wire::FrameType::kStopHandler:
      case wire::FrameType::kWelcome:
      case wire::FrameType::kReady:
      case wire::FrameType::kWaitDone:
        lost(std::string("unexpected ") + std::string(wire::toString(h.type)) +
             " frame from the supervisor");
        break;
    }
    if (!connected()) {
      break;
    }
  }
  if (!batch.empty()) {
    dispatch(std::move(batch));
  }
}

void Connection::startListening() {
  std::lock_guard lock(parkedMutex_);
  if (listening_) {
    return;
  }
  listening_ = true;
  for (auto& batch : parked_) {
    post(std::move(batch));
  }
  parked_.clear();
  parked_.shrink_to_fit();
  if (droppedBeforeListening_ > 0) {
    const auto dropped = droppedBeforeListening_;
    asio::post(bus_, [self = shared_from_this(), dropped] {
      self->reportListenerError(
          "", std::make_exception_ptr(std::runtime_error(
                  std::to_string(dropped) +
                  " event(s) arrived before the worker started listening and did not fit the "
                  "waiting room; they were dropped")));
    });
  }
}

void Connection::dispatch(std::vector<Incoming> batch) {
  std::lock_guard lock(parkedMutex_);
  if (listening_) {
    post(std::move(batch));
    return;
  }
  // Not listening yet: keep events, in order, until listeners are in place (bounded).
  for (auto& event : batch) {
    const std::size_t size = event.name.size() + event.payload.size();
    if (parkedBytes_ + size > sendQueueLimit_) {
      ++droppedBeforeListening_;
      continue;
    }
    parkedBytes_ += size;
    if (parked_.empty()) {
      parked_.emplace_back();
    }
    parked_.back().push_back(std::move(event));
  }
}

void Connection::post(std::vector<Incoming> batch) {
  asio::post(bus_, [self = shared_from_this(), batch = std::move(batch)] {
    for (const auto& event : batch) {
      if (self->shutdown_) {
        return;
      }
      bool hasListeners = false;
      {
        std::lock_guard lock(self->listenersMutex_);
        hasListeners = self->listeners_.contains(event.name);
      }
      if (hasListeners) {
        error_code ec;
        const boost::json::value data = event.payload.empty()
                                            ? boost::json::value(nullptr)
                                            : boost::json::parse(event.payload, ec);
        if (ec) {
          self->reportListenerError(event.name,
                                    std::make_exception_ptr(std::runtime_error(
                                        "payload from cluster " + std::to_string(event.source) +
                                        " is not valid JSON: " + ec.message())));
        } else {
          // Taken only now, so a once-listener is used up by an event it is actually given.
          std::vector<ListenerEntry> listeners;
          {
            std::lock_guard lock(self->listenersMutex_);
            if (auto it = self->listeners_.find(event.name); it != self->listeners_.end()) {
              listeners = it->second;
              std::erase_if(it->second, [](const ListenerEntry& e) { return e.once; });
              if (it->second.empty()) {
                self->listeners_.erase(it);
              }
            }
          }
          for (const auto& entry : listeners) {
            try {
              (*entry.listener)(data, static_cast<int>(event.source));
            } catch (...) {
              self->reportListenerError(event.name, std::current_exception());
            }
          }
        }
      }
      if (event.correlation != 0) {
        const auto frame = wire::encodeAck(self->id_, event.source, event.correlation);
        // A failed ack means the connection is gone; the waiter learns from the supervisor.
        (void)self->enqueue(
            frame.size(), [&](std::byte* out) { std::memcpy(out, frame.data(), frame.size()); },
            true);
      }
    }
  });
}

void Connection::reportListenerError(std::string_view event, std::exception_ptr error) {
  ErrorHandler handler;
  {
    std::lock_guard lock(listenersMutex_);
    handler = errorHandler_;
  }
  if (handler) {
    try {
      handler(event, error);
      return;
    } catch (...) {
      // An error handler that throws falls back to the default report below.
    }
  }
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  std::fprintf(stderr, "clustervisor-worker: listener for \"%.*s\" failed: %s\n",
               static_cast<int>(event.size()), event.data(), what.c_str());
}

std::uint64_t Connection::addListener(std::string_view event, Listener listener, bool once) {
  std::lock_guard lock(listenersMutex_);
  const auto id = nextListenerId_++;
  auto it = listeners_.find(event);
  if (it == listeners_.end()) {
    it = listeners_.emplace(std::string(event), std::vector<ListenerEntry>{}).first;
  }
  it->second.push_back({id, std::make_shared<Listener>(std::move(listener)), once});
  return id;
}

void Connection::removeListener(const std::string& event, std::uint64_t id) {
  std::lock_guard lock(listenersMutex_);
  if (auto it = listeners_.find(event); it != listeners_.end()) {
    std::erase_if(it->second, [id](const ListenerEntry& e) { return e.id == id; });
    if (it->second.empty()) {
      listeners_.erase(it);
    }
  }
}

void Connection::removeAllListeners(std::string_view event) {
  std::lock_guard lock(listenersMutex_);
  if (auto it = listeners_.find(event); it != listeners_.end()) {
    listeners_.erase(it);
  }
}

void Connection::setErrorHandler(ErrorHandler handler) {
  std::lock_guard lock(listenersMutex_);
  errorHandler_ = std::move(handler);
}

void Connection::startWait(std::string_view event, std::string_view payload,
                           std::chrono::milliseconds timeout, int expectedClusters,
                           WaitHandler handler) {
  if (expectedClusters <= 0) {
    const error_code ec = sendEvent(wire::kBroadcast, 0, event, payload);
    completeHandler(std::move(handler), ec, AckReport{});
    return;
  }
  const std::uint64_t id = nextWaitId_.fetch_add(1, std::memory_order_relaxed);  // never 0
  auto wait = std::make_shared<Wait>(io_, std::move(handler));
  wait->expected = expectedClusters;
  wait->work = asio::prefer(bus_.get_inner_executor(), asio::execution::outstanding_work.tracked);
  {
    std::lock_guard lock(waitsMutex_);
    waits_.emplace(id, wait);
  }
  // Registered before sending, so an ack can never arrive for a wait that is not known yet.
  if (const error_code ec = sendEvent(wire::kBroadcast, id, event, payload)) {
    bool mine = false;
    {
      std::lock_guard lock(waitsMutex_);
      mine = waits_.erase(id) == 1;
    }
    // If the connection was lost meanwhile, lost() already took the wait and completes it.
    if (mine) {
      completeHandler(std::move(wait->handler), ec, AckReport{});
    }
    return;
  }
  asio::post(io_, [self = shared_from_this(), id, wait, timeout] {
    {
      std::lock_guard lock(self->waitsMutex_);
      if (!self->waits_.contains(id)) {
        return;  // already finished: the supervisor closed it before the timer could start
      }
    }
    wait->timer.expires_after(timeout);
    wait->timer.async_wait([self, id](error_code ec) {
      if (!ec) {
        self->finishWait(id, true);
      }
    });
  });
}

void Connection::onAck(std::uint32_t source, std::uint64_t correlation) {
  std::shared_ptr<Wait> wait;
  {
    std::lock_guard lock(waitsMutex_);
    auto it = waits_.find(correlation);
    if (it == waits_.end()) {
      return;  // late ack for a wait that timed out
    }
    wait = it->second;
  }
  const int cluster = static_cast<int>(source);
  auto pos = std::lower_bound(wait->acked.begin(), wait->acked.end(), cluster);
  if (pos == wait->acked.end() || *pos != cluster) {
    wait->acked.insert(pos, cluster);
  }
  if (static_cast<int>(wait->acked.size()) >= wait->expected) {
    finishWait(correlation, false);
  }
}

void Connection::onWaitClosed(std::uint64_t correlation, const wire::WaitClosedBody& body) {
  {
    std::lock_guard lock(waitsMutex_);
    auto it = waits_.find(correlation);
    if (it == waits_.end()) {
      return;
    }
    it->second->recipients = static_cast<int>(body.recipients);
  }
  finishWait(correlation, false);
}

void Connection::finishWait(std::uint64_t id, bool timedOut) {
  std::shared_ptr<Wait> wait;
  {
    std::lock_guard lock(waitsMutex_);
    auto it = waits_.find(id);
    if (it == waits_.end()) {
      return;
    }
    wait = std::move(it->second);
    waits_.erase(it);
  }
  wait->timer.cancel();
  if (wait->recipients < 0 && connected()) {
    // Ended by the count or the timeout, not by the supervisor: let it forget the wait now
    // rather than track acknowledgements nobody will count.
    const auto done = wire::encodeWaitDone(id);
    (void)enqueue(
        done.size(), [&](std::byte* out) { std::memcpy(out, done.data(), done.size()); }, true);
  }
  AckReport report;
  report.acked = static_cast<int>(wait->acked.size());
  report.clusters = std::move(wait->acked);
  report.recipients = wait->recipients;
  report.timedOut = timedOut;
  // A wait that was sent and then lost its connection still reports what it learned, as a
  // count, not an error: the error code is only for "nothing was sent".
  completeHandler(std::move(wait->handler), {}, std::move(report));
}

void Connection::completeHandler(WaitHandler handler, error_code ec, AckReport report) {
  // Always through a post, so a wait that completes at once never calls its handler inside the
  // initiating function; the bound executor then runs it where the handler belongs (a
  // coroutine's executor for use_awaitable, the bus executor for a plain callback).
  std::visit(
      [&](auto& h) {
        if (!h) {
          return;
        }
        auto executor = asio::get_associated_executor(h, bus_);
        using H = std::decay_t<decltype(h)>;
        if constexpr (std::is_same_v<H, CountHandler>) {
          asio::post(bus_, asio::bind_executor(executor,
                                               [h = std::move(h), ec, n = report.acked]() mutable {
                                                 std::move(h)(ec, n);
                                               }));
        } else {
          asio::post(bus_, asio::bind_executor(
                               executor, [h = std::move(h), ec, r = std::move(report)]() mutable {
                                 std::move(h)(ec, std::move(r));
                               }));
        }
      },
      handler);
}

void Connection::lost(std::string_view why) {
  if (!connected_.exchange(false)) {
    return;
  }
  error_code ignored;
  socket_.close(ignored);
  heartbeatTimer_.cancel();
  {
    std::lock_guard lock(sendMutex_);
    pending_.clear();
  }
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard lock(waitsMutex_);
    for (const auto& [id, wait] : waits_) {
      ids.push_back(id);
    }
  }
  for (auto id : ids) {
    finishWait(id, false);
  }
  if (shutdown_) {
    releaseBusWork();
    return;
  }
  asio::post(bus_, [self = shared_from_this(), reason = std::string(why)] {
    self->releaseBusWork();
    if (self->shutdown_) {
      return;
    }
    if (self->onSupervisorLost_) {
      self->onSupervisorLost_();
      return;
    }
    std::fprintf(stderr, "clustervisor-worker: %s; exiting (cluster %u)\n", reason.c_str(),
                 self->id_);
    std::fflush(nullptr);
    ::_exit(1);
  });
}

}  // namespace clustervisor::detail
