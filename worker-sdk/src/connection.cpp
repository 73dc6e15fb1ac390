// SPDX-License-Identifier: MIT
#include "connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/json/parse.hpp>

#include "io_threads.hpp"

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
      corkBytes_(std::min(kCorkBytes, sendQueueLimit_ / 2)),
      io_(settings.ioExecutor),
      bus_(asio::make_strand(settings.busExecutor)),
      onSupervisorLost_(std::move(settings.onSupervisorLost)),
      busWork_(asio::prefer(settings.busExecutor, asio::execution::outstanding_work.tracked)),
      socket_(settings.ioExecutor),
      closeTimer_(settings.ioExecutor),
      corkTimer_(settings.ioExecutor),
      heartbeatTimer_(settings.ioExecutor),
      heartbeatInterval_(settings.heartbeatInterval),
      heartbeatFromBus_(settings.heartbeatFromBus),
      busOnIoThread_(settings.busExecutor == settings.ioExecutor),
      threads_(settings.threads),
      reader_(std::move(settings.reader)),
      fd_(settings.fd),
      receiveLimit_(settings.receiveQueueLimit),
      pauseTimer_(settings.ioExecutor),
      waitTimer_(settings.ioExecutor) {
  socket_.assign(asio::local::stream_protocol(), settings.fd);
  std::random_device random;
  const std::uint64_t seed = (static_cast<std::uint64_t>(random()) << 32) | random();
  nextWaitId_ = (seed >> 1) + 1;  // never 0 (0 means "no acknowledgement wanted"), no wrap soon
}

void Connection::start() {
  asio::post(io_, [self = shared_from_this()] {
    // Frames that arrived together with the welcome are already buffered.
    self->handleFrames();
    if (self->connected()) {
      self->readMore();
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
  enqueueFrame(wire::encodeHeartbeat(), true);
}

void Connection::setStopHandler(StopHandler handler) {
  bool announce = false;
  std::shared_ptr<StopHandler> replaced;  // destroyed after the unlock, as a listener is
  {
    auto fresh = handler ? std::make_shared<StopHandler>(std::move(handler)) : nullptr;
    std::lock_guard lock(stopMutex_);
    replaced = std::exchange(stopHandler_, std::move(fresh));
    announce = stopHandler_ && !stopHandlerAnnounced_;
    stopHandlerAnnounced_ = stopHandlerAnnounced_ || announce;
  }
  if (announce) {
    enqueueFrame(wire::encodeStopHandler(), true);
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
  postHandler("(stop handler)", [handler, untilKill] { (*handler)(untilKill); });
}

template <typename F>
void Connection::postHandler(std::string_view what, F f) {
  asio::post(bus_, [self = shared_from_this(), what, f = std::move(f)]() mutable {
    if (self->shutdown_) {
      return;
    }
    // What it sends goes out as it returns, as a listener's sends do.
    self->asBatch([&] {
      try {
        f();
      } catch (...) {
        self->reportListenerError(what, std::current_exception());
      }
    });
  });
}

void Connection::setTotalHandler(TotalHandler handler) {
  auto fresh = handler ? std::make_shared<TotalHandler>(std::move(handler)) : nullptr;
  std::shared_ptr<TotalHandler> replaced;  // destroyed after the unlock, as a listener is
  std::lock_guard lock(stopMutex_);
  replaced = std::exchange(totalHandler_, std::move(fresh));
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
  postHandler("(total clusters handler)", [handler, total, old] {
    (*handler)(static_cast<int>(total), static_cast<int>(old));
  });
}

void Connection::releaseBusWork() {
  std::lock_guard lock(busWorkMutex_);
  busWork_ = asio::any_io_executor();
}

void Connection::shutdown() {
  {
    // Under the lock that startWait() registers waits with: a wait is either refused or
    // registered in time to be finished below.
    std::lock_guard lock(waitsMutex_);
    shutdown_ = true;
  }
  releaseBusWork();
  // Posted, never run here: bus code does not run I/O handlers (see the class comment).
  asio::post(io_, [self = shared_from_this()] {
    self->closeWhenFlushed();
    std::vector<std::uint64_t> ids;
    {
      std::lock_guard lock(self->waitsMutex_);
      for (const auto& [id, wait] : self->waits_) {
        ids.push_back(id);
      }
    }
    for (auto id : ids) {
      self->finishWait(id);
    }
  });
}

void Connection::writeQueuedNow() {
  if (::getpid() != pid_) {
    return;  // a child forked without exec: the parent writes its own queue
  }
  const bool onBus = bus_.running_in_this_thread();
  const auto deadline = std::chrono::steady_clock::now() + kFlushOnShutdown;
  std::unique_lock lock(sendMutex_);
  for (;;) {
    if (!socketOpen_ || exitWriteGaveUp_) {
      return;  // (one wait for room per connection: ~Cluster and the exit handler both call this)
    }
    // What the I/O thread's write has left goes first (from where the socket stopped taking
    // it), then the queue.
    int error = 0;
    if (writeInFlight_ && !sendInflightNow(error)) {
      return;  // the supervisor is gone
    }
    const bool inflightDone = !writeInFlight_ || inflightWritten_ == inflight_.size();
    if (inflightDone && !sendPendingNow()) {
      return;
    }
    if (inflightDone && pending_.empty()) {
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      exitWriteGaveUp_ = true;
      return;
    }
    lock.unlock();
    pollfd room{fd_, POLLOUT, 0};
    (void)::poll(&room, 1, static_cast<int>(left.count()));
    lock.lock();
  }
  if (onBus && busOwnsWrite_) {
    // The write this bus run owned is done: a shutdown waiting for it need not wait for the run
    // to end (with exit(3) it never does).
    busOwnsWrite_ = false;
    writing_ = false;
    flushAfterBatch_ = false;
  }
}

error_code Connection::checkTarget(int clusterId) const {
  if (clusterId < 0 || static_cast<std::uint32_t>(clusterId) >= totalClusters()) {
    return make_error_code(Errc::kInvalidClusterId);
  }
  return {};
}

template <typename Write>
error_code Connection::enqueue(std::size_t frameSize, const Write& write, bool control, bool now) {
  const bool onBus = bus_.running_in_this_thread();
  bool startWriting = false;
  bool helpCorkedWriter = false;
  bool helpBusWriter = false;
  bool releaseCork = false;
  {
    std::lock_guard lock(sendMutex_);
    if (!connected()) {
      return make_error_code(Errc::kNotConnected);
    }
    if (!control && queuedBytes_ + frameSize > sendQueueLimit_) {
      return make_error_code(Errc::kQueueFull);
    }
    write(pending_.append(frameSize));
    queuedBytes_ += frameSize;
    urgent_ = urgent_ || onBus;
    if (!writing_) {
      writing_ = true;
      busOwnsWrite_ = onBus;
      startWriting = true;
    } else if (onBus && corked_ && !writeInFlight_ && !busHelping_) {
      // The I/O thread holds back a burst; a reply should not wait for it.
      busHelping_ = true;
      helpCorkedWriter = true;
    } else if (!onBus && corked_ && !uncorking_ && queuedBytes_ >= sendQueueLimit_ / 2) {
      // Held back any longer, the queue would fill while the supervisor is reading. (Ending the
      // hold at corkBytes_ instead costs a stream ~10% of its events: more, smaller writes.)
      uncorking_ = true;
      releaseCork = true;
    } else if (!onBus && busOwnsWrite_ && !ioHelping_) {
      // The bus executor writes when its handler returns, which may be long (a listener that
      // blocks after a send): a heartbeat must not wait for it.
      ioHelping_ = true;
      helpBusWriter = true;
    }
    if (!onBus && !control && pending_.size() >= corkBytes_ &&
        pending_.size() <= kInlineMaxFactor * corkBytes_ && !writeInFlight_ && !busOwnsWrite_ &&
        !inlineBlocked_ && socketOpen_ && ::getpid() == pid_) {
      // A stream from this thread, a write's worth queued: written from here, non-blocking. The
      // bytes are still in this core's cache, where the I/O thread's send(2) would copy them from
      // another core's, and the I/O thread does not write them. (Unicast stream on two cores:
      // ~20% more events/s, bench/README.md.) Nothing of the I/O thread's is unsent (no write in
      // flight), so the order holds; what the socket does not take stays queued for its write.
      // At most kWriteChunk per send, as the I/O thread holds the mutex for no more.
      int error = 0;
      const std::size_t n = sendPendingFront(kWriteChunk, error);
      if (n == 0) {
        // Full (or an error, which the I/O thread's write reports): that write waits for room,
        // at once rather than after a hold-back.
        inlineBlocked_ = true;
        if (corked_ && !uncorking_) {
          uncorking_ = true;
          releaseCork = true;
        }
      } else {
        urgent_ = urgent_ && !pending_.empty();  // a reply it held is out
        lastWriteEnd_ = std::chrono::steady_clock::now();
      }
    }
    if (now && onBus && busOwnsWrite_) {
      // Out before the handler returns; what the socket does not take now, the I/O thread
      // writes as soon as it has room.
      sendPendingNow();
      if (!pending_.empty() && !ioHelping_) {
        ioHelping_ = true;
        helpBusWriter = true;
      }
    }
  }
  if (startWriting && onBus && batching_) {
    flushAfterBatch_ = true;  // asBatch() writes when the handler returns
  } else if (startWriting && onBus) {
    // After the current handler, on this thread: the sends of a whole batch of listeners go
    // out in one write, without waking the I/O thread.
    asio::post(bus_, [self = shared_from_this()] { self->flushFromBus(true); });
  } else if (startWriting) {
    asio::post(io_, [self = shared_from_this()] { self->flushSoon(); });
  } else if (helpCorkedWriter) {
    asio::post(bus_, [self = shared_from_this()] { self->flushFromBus(false); });
  }
  if (helpBusWriter) {
    asio::post(io_, [self = shared_from_this()] { self->flushForBus(); });
  }
  if (releaseCork) {
    asio::post(io_, [self = shared_from_this()] { self->releaseCork(); });
  }
  if (threads_ != nullptr && !onBus) {
    // The write (this one, or one under way or held back that it joins) waits for the thread
    // running the connection, which may be running a listener.
    threads_->nudge(false);
  }
  return {};
}

error_code Connection::enqueueFrame(std::span<const std::byte> frame, bool control) {
  return enqueue(
      frame.size(), [&](std::byte* out) { std::memcpy(out, frame.data(), frame.size()); }, control);
}

error_code Connection::sendEvent(std::uint32_t target, std::uint64_t correlation,
                                 std::string_view name, std::string_view payload, bool now) {
  if (name.empty() || name.size() > wire::kMaxEventNameLength) {
    return make_error_code(Errc::kInvalidEventName);
  }
  if (payload.size() > maxPayload_) {
    return make_error_code(Errc::kPayloadTooLarge);
  }
  const std::size_t size = wire::kHeaderSize + name.size() + payload.size();
  return enqueue(
      size,
      [&](std::byte* out) {
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
      },
      false, now);
}

error_code Connection::sendReady() {
  return enqueueFrame(wire::encodeReady(), false);
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
  {
    std::lock_guard lock(sendMutex_);
    socketOpen_ = false;
    error_code ignored;
    socket_.close(ignored);
  }
  closeTimer_.cancel();
  corkTimer_.cancel();
  pauseTimer_.cancel();
  heartbeatTimer_.cancel();
  waitTimer_.cancel();
}

void Connection::flushSoon() {
  // Within kCork of the last write, a burst is under way: let it gather for the rest of kCork, so
  // it goes out in a few large writes rather than many small ones (each of which also wakes the
  // supervisor and, through it, every recipient).
  // Sends from the bus executor (replies, acknowledgements) are never held back.
  bool holdBack = false;
  std::chrono::steady_clock::duration since{};
  {
    std::lock_guard lock(sendMutex_);
    since = std::chrono::steady_clock::now() - lastWriteEnd_;
    holdBack = !pending_.empty() && since < kCork && pending_.size() < corkBytes_ && !urgent_;
    corked_ = holdBack;
    uncorking_ = false;
  }
  if (!holdBack) {
    flush();
    return;
  }
  corkTimer_.expires_after(kCork - since);
  corkTimer_.async_wait([self = shared_from_this()](error_code) {
    {
      std::lock_guard lock(self->sendMutex_);
      self->corked_ = false;
    }
    self->flush();
  });
}

void Connection::releaseCork() {
  // Posted by a send while corked_; the hold-back may have ended meanwhile (then this cancels
  // nothing), or a new one begun (then it ends early: a write sooner, nothing lost).
  corkTimer_.cancel();
}

void Connection::flush() {
  bool drained = false;
  {
    std::lock_guard lock(sendMutex_);
    if (pending_.empty() || !socketOpen_) {
      writing_ = false;
      drained = true;
    } else {
      pending_.swap(inflight_);
      writeInFlight_ = true;
      inflightWritten_ = 0;
      urgent_ = false;
    }
  }
  if (drained) {
    if (closing_) {
      closeSocket();  // shutting down and everything is written
    }
    return;
  }
  writeInflight();
}

std::size_t Connection::sendSome(const std::byte* data, std::size_t size, int& error) {
  for (;;) {
    const ssize_t n = ::send(fd_, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0 || errno != EINTR) {
      if (n > 0) {
        queuedBytes_ -= static_cast<std::size_t>(n);
        return static_cast<std::size_t>(n);
      }
      error = n < 0 && errno != EAGAIN && errno != EWOULDBLOCK ? errno : 0;
      return 0;
    }
  }
}

bool Connection::sendInflightNow(int& error, std::size_t limit) {
  std::size_t sent = 0;
  while (socketOpen_ && inflightWritten_ < inflight_.size() && sent < limit) {
    const std::size_t n =
        sendSome(inflight_.data() + inflightWritten_,
                 std::min(inflight_.size() - inflightWritten_, limit - sent), error);
    if (n == 0) {
      return error == 0;  // full (true), or an error
    }
    inflightWritten_ += n;
    sent += n;
  }
  return true;
}

void Connection::writeInflight() {
  int error = 0;
  for (;;) {
    // A chunk per hold of the lock, so senders on other threads do not wait behind the copy of
    // a whole large write into the socket.
    std::lock_guard lock(sendMutex_);
    const std::size_t before = inflightWritten_;
    if (!sendInflightNow(error, kWriteChunk)) {
      break;  // an error
    }
    if (!socketOpen_ || inflightWritten_ == inflight_.size()) {
      break;
    }
    if (inflightWritten_ - before < kWriteChunk) {
      // The socket is full: the rest once it has room.
      socket_.async_wait(asio::socket_base::wait_write, [self = shared_from_this()](error_code ec) {
        if (ec) {
          self->afterWrite(ec.value());
          return;
        }
        self->writeInflight();
      });
      return;
    }
  }
  // As an async_write's completion would: after the handler that started the write.
  asio::post(io_, [self = shared_from_this(), error] { self->afterWrite(error); });
}

void Connection::afterWrite(int error) {
  {
    std::lock_guard lock(sendMutex_);
    writeInFlight_ = false;
    inlineBlocked_ = false;
    lastWriteEnd_ = std::chrono::steady_clock::now();
  }
  // A burst's buffer serves the next burst, but a huge one is not kept once bursts are small.
  inflight_.clearAfterWrite();
  if (error != 0) {
    lost("cannot write to the supervisor: " +
         error_code(error, boost::system::system_category()).message());
    return;
  }
  flushSoon();
}

std::size_t Connection::sendPendingFront(std::size_t limit, int& error) {
  const std::size_t n = sendSome(pending_.data(), std::min(pending_.size(), limit), error);
  pending_.consume(n);
  return n;
}

bool Connection::sendPendingNow() {
  int error = 0;
  if (!pending_.empty() && socketOpen_) {
    // Non-blocking: what the socket does not take now goes to the I/O thread's write. An error
    // is left to that write as well, which reports it.
    const std::size_t n = sendPendingFront(SIZE_MAX, error);
    urgent_ = !pending_.empty();
    inlineBlocked_ = inlineBlocked_ && n == 0;  // the socket took bytes: it may take more
  }
  return error == 0;
}

void Connection::flushForBus() {
  std::lock_guard lock(sendMutex_);
  if (!busOwnsWrite_ || !socketOpen_) {
    ioHelping_ = false;  // the bus executor's flush has ended writing_ (or the socket is gone)
    return;
  }
  // The bus executor's flush still owns writing_ and ends it. After an error the socket is
  // writable at once, for good: no waiting for room then (the read loop reports the loss).
  if (!sendPendingNow() || pending_.empty()) {
    ioHelping_ = false;
    return;
  }
  // The socket is full: the rest when it has room, unless the bus executor has written it by
  // then. A write error is left to the flush that owns writing_.
  socket_.async_wait(asio::socket_base::wait_write, [self = shared_from_this()](error_code ec) {
    if (!ec) {
      self->flushForBus();
      return;
    }
    std::lock_guard guard(self->sendMutex_);
    self->ioHelping_ = false;
  });
}

void Connection::flushFromBus(bool owner) {
  std::unique_lock lock(sendMutex_);
  if (!owner) {
    busHelping_ = false;
    if (writeInFlight_) {
      return;  // the I/O thread woke meanwhile and writes it all
    }
  }
  sendPendingNow();
  if (!owner) {
    return;  // the I/O thread's held-back flush still owns writing_ and ends it
  }
  busOwnsWrite_ = false;
  if (!pending_.empty() && socketOpen_) {
    lock.unlock();
    asio::post(io_, [self = shared_from_this()] { self->flush(); });
    return;
  }
  writing_ = false;
  lock.unlock();
  if (shutdown_) {
    // A shutdown may be waiting for this write to end before it closes the socket.
    asio::post(io_, [self = shared_from_this()] {
      if (!self->closing_) {
        return;
      }
      bool idle = false;
      {
        std::lock_guard guard(self->sendMutex_);
        idle = !self->writing_ && self->pending_.empty();
      }
      if (idle) {
        self->closeSocket();
      }
    });
  }
}

void Connection::readLoop() {
  std::span<std::byte> space;
  try {
    space = reader_.prepare();  // the whole of a frame whose header is in: up to 256 MiB
  } catch (const std::bad_alloc&) {
    lost("cannot allocate memory for the frame being read from the supervisor");
    return;
  }
  socket_.async_read_some(asio::buffer(space.data(), space.size()),
                          [self = shared_from_this()](error_code ec, std::size_t n) {
                            if (ec) {
                              self->lost(ec == asio::error::eof
                                             ? "the supervisor closed the connection"
                                             : "cannot read from the supervisor: " + ec.message());
                              return;
                            }
                            // With the default threads, the listeners of what was read run
                            // as this handler ends, once the next read is under way (a thread
                            // taking the connection over from a listener that blocks reads
                            // on), rather than through the event loop.
                            IoThreads::BusRunAtEnd listenersLast(self->threads_);
                            self->reader_.commit(n);
                            self->handleFrames();
                            if (self->connected()) {
                              // What they are about to take is not held against the next read.
                              self->readMore(listenersLast.keeps());
                            }
                            listenersLast.end();
                          });
}

void Connection::readMore(bool allDeliveredNext) {
  if (allDeliveredNext || peerClosed_ || undelivered_.load() <= receiveLimit_) {
    readLoop();
    return;
  }
  // Listeners are behind: what else comes waits in the socket and in the supervisor's outbox for
  // this cluster, which bounds it. The delivery that brings the backlog back under the limit
  // resumes reading; if it did so between the check above and the flag, reading resumes here.
  readPaused_.store(true);
  if (undelivered_.load() <= receiveLimit_ && readPaused_.exchange(false)) {
    readLoop();
    return;
  }
  watchPeerWhilePaused();
}

void Connection::watchPeerWhilePaused() {
  pauseTimer_.expires_after(kPausedPeerCheck);
  pauseTimer_.async_wait([self = shared_from_this()](error_code ec) {
    if (ec || !self->connected() || !self->readPaused_.load()) {
      return;  // closed, or reading again
    }
    pollfd peer{self->fd_, POLLRDHUP, 0};
    if (::poll(&peer, 1, 0) == 1 && (peer.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      // The supervisor closed its end: what is left in the socket is all there will be, so it
      // is read straight through to the end, whatever the listeners' backlog.
      self->peerClosed_ = true;
      if (self->readPaused_.exchange(false)) {
        self->readLoop();
      }
      return;
    }
    if (self->undelivered_.load() <= self->receiveLimit_ && self->readPaused_.exchange(false)) {
      self->readLoop();  // a resume that could not be posted (see delivered())
      return;
    }
    self->watchPeerWhilePaused();
  });
}

void Connection::handleFrames() {
  // The frames of one read lie back to back in the reader's buffer, valid until the next
  // prepare(): the events among them are handed on as one copy of the stretch they occupy.
  Batch batch;
  const std::byte* stretch = nullptr;  // start of the first event frame in the batch
  const std::byte* stretchEnd = nullptr;
  const auto handOn = [&] {
    if (batch.empty()) {
      return;
    }
    batch.bytes.assign(reinterpret_cast<const char*>(stretch),
                       reinterpret_cast<const char*>(stretchEnd));
    receive(std::move(batch));
    batch = Batch{};
    stretch = nullptr;
  };
  for (;;) {
    const auto next = reader_.next();
    const auto& h = next.result.header;
    if (next.result.status == wire::DecodeStatus::kIncomplete) {
      break;
    }
    if (next.result.status != wire::DecodeStatus::kFrame) {
      lost("malformed frame from the supervisor: " +
           wire::describeDecodeError(next.result, reader_.maxFrameSize()));
      break;
    }
    switch (h.type) {
      case wire::FrameType::kEvent: {
        if (stretch == nullptr) {
          stretch = next.frame.data();
          batch = spareBatch();
          batch.events.reserve(reader_.buffered() / 64 + 1);
        }
        stretchEnd = next.frame.data() + next.frame.size();
        const std::size_t nameLength = h.nameLength;
        batch.events.push_back(
            {static_cast<std::size_t>(next.frame.data() - stretch) + wire::kHeaderSize,
             static_cast<std::uint16_t>(nameLength),
             static_cast<std::uint32_t>(next.frame.size() - wire::kHeaderSize - nameLength),
             h.source, h.correlation});
        break;
      }
      // A wait's completion comes after the listeners of the events before what completed it
      // (replies sent to the waiter before an acknowledgement).
      case wire::FrameType::kAck:
        if (onAck(h.source, h.correlation)) {
          handOn();
          // The supervisor is told at the end of this read, unless the read also closes the
          // wait: the ack that completes a wait over every recipient comes with WAIT_CLOSED.
          finishWait(h.correlation, WaitEnd::kDone, &countedOut_);
        }
        break;
      case wire::FrameType::kWaitClosed:
        if (onWaitClosed(h.correlation, wire::waitClosedBody(next.frame))) {
          handOn();
          finishWait(h.correlation);
        }
        break;
      case wire::FrameType::kTotalChanged:
        // Events that came before the change are handed on before the handler is told.
        handOn();
        onTotalChanged(wire::totalChangedBody(next.frame));
        break;
      case wire::FrameType::kStop:
        // Events that came before the stop are handed on before the stop handler is.
        handOn();
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
  handOn();
  for (const auto id : countedOut_) {
    if (connected()) {
      (void)enqueueFrame(wire::encodeWaitDone(id), true);
    }
  }
  countedOut_.clear();
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
          "(before listen)",
          std::make_exception_ptr(std::runtime_error(
              std::to_string(dropped) +
              " event(s) arrived before the worker started listening and did not fit the "
              "waiting room; they were dropped")),
          ErrorKind::kDropped);
    });
  }
}

void Connection::receive(Batch batch) {
  std::unique_lock lock(parkedMutex_);
  if (listening_) {
    // Parked batches were queued on the bus strand before listening_ was set, so this one
    // follows them even when it runs at once.
    lock.unlock();
    handOver(std::move(batch));
    return;
  }
  // Not listening yet: keep events, in order, until listeners are in place (bounded).
  if (parkedBytes_ + batch.bytes.size() <= sendQueueLimit_) {
    parkedBytes_ += batch.bytes.size();
    parked_.push_back(std::move(batch));
    return;
  }
  Batch kept;
  for (const auto& event : batch.events) {
    const std::size_t size = event.nameLength + std::size_t{event.payloadLength};
    if (parkedBytes_ + size > sendQueueLimit_) {
      ++droppedBeforeListening_;
      continue;
    }
    parkedBytes_ += size;
    auto copy = event;
    copy.offset = kept.bytes.size();
    kept.bytes.insert(kept.bytes.end(),
                      batch.bytes.begin() + static_cast<std::ptrdiff_t>(event.offset),
                      batch.bytes.begin() + static_cast<std::ptrdiff_t>(event.offset + size));
    kept.events.push_back(copy);
  }
  if (!kept.empty()) {
    parked_.push_back(std::move(kept));
  }
}

Connection::Batch Connection::spareBatch() {
  std::lock_guard lock(spareMutex_);
  if (spare_.empty()) {
    return {};
  }
  Batch batch = std::move(spare_.back());
  spare_.pop_back();
  return batch;
}

void Connection::recycle(Batch batch) {
  if (batch.bytes.capacity() > kSpareBytes ||
      batch.events.capacity() * sizeof(Batch::Event) > kSpareBytes) {
    return;  // a large read's buffers are not kept
  }
  batch.bytes.clear();
  batch.events.clear();
  std::lock_guard lock(spareMutex_);
  if (spare_.size() < kSpareBatches) {
    spare_.push_back(std::move(batch));
  }
}

void Connection::post(Batch batch) {
  undelivered_ += batch.footprint();
  asio::post(bus_, [self = shared_from_this(), batch = std::move(batch)]() mutable {
    self->deliver(std::move(batch));
  });
}

void Connection::handOver(Batch batch) {
  if (!busOnIoThread_) {
    post(std::move(batch));
    return;
  }
  // The bus strand runs on this thread: dispatch() runs the listeners now, without a trip
  // through the event loop, unless the strand has work queued, which they then follow.
  undelivered_ += batch.footprint();
  asio::dispatch(bus_, [self = shared_from_this(), batch = std::move(batch)]() mutable {
    self->deliver(std::move(batch));
  });
}

template <typename F>
void Connection::asBatch(F&& f) {
  if (!bus_.running_in_this_thread() || batching_) {
    f();
    return;
  }
  // Restores the state and writes even when `f` throws (a completion handler may).
  struct Batching {
    Connection& c;
    explicit Batching(Connection& connection) : c(connection) { c.batching_ = true; }
    ~Batching() {
      c.batching_ = false;
      if (std::exchange(c.flushAfterBatch_, false)) {
        c.flushFromBus(true);
      }
    }
  } batching(*this);
  f();
}

void Connection::deliver(Batch batch) {
  // Counted off even when a listener's error handling throws (the batch is gone either way).
  struct Delivered {
    Connection& c;
    std::size_t footprint;
    ~Delivered() { c.delivered(footprint); }
  } delivered{*this, batch.footprint()};
  // Sends made by the listeners (replies) and the acknowledgements go out in one write when the
  // batch is done, without another trip through the bus executor.
  asBatch([&] { deliverEach(batch); });
  recycle(std::move(batch));
}

void Connection::delivered(std::size_t footprint) {
  const std::size_t left = undelivered_ -= footprint;
  if (left <= receiveLimit_ && readPaused_.load() && connected() && readPaused_.exchange(false)) {
    // Weak: a connection whose I/O thread has already stopped must not be kept alive (with its
    // io_context) by a handler that will never run.
    try {
      asio::post(io_, [weak = weak_from_this()] {
        if (const auto self = weak.lock(); self && self->connected()) {
          self->readLoop();
        }
      });
    } catch (...) {
      readPaused_ = true;  // out of memory: the pause timer resumes reading instead
    }
  }
}

void Connection::deliverEach(const Batch& batch) {
  // Events of a batch mostly share their name with the one before: its lookup (listeners found
  // or none) is reused while no listener has been added or removed since. The list found is held
  // here, so a change made meanwhile (by a listener, or another thread) cannot free it.
  std::shared_ptr<const ListenerList> found;
  std::uint64_t foundVersion = 0;
  std::string_view lastName;
  bool lastValid = false;
  for (const auto& event : batch.events) {
    if (shutdown_) {
      return;
    }
    const std::string_view name(batch.bytes.data() + event.offset, event.nameLength);
    const std::string_view payload(batch.bytes.data() + event.offset + event.nameLength,
                                   event.payloadLength);
    if (!lastValid || name != lastName ||
        listenersVersion_.load(std::memory_order_acquire) != foundVersion) {
      // Let go of after the unlock (see changeListeners()).
      const std::shared_ptr<const ListenerList> previous = std::move(found);
      std::lock_guard lock(listenersMutex_);
      const auto it = listeners_.find(name);
      found = it == listeners_.end() ? nullptr : it->second;
      foundVersion = listenersVersion_.load(std::memory_order_relaxed);
      lastName = name;
      lastValid = true;
    }
    if (found) {
      deliverOne(name, payload, event.source, *found);
    }
    if (event.correlation != 0) {
      // A failed ack means the connection is gone; the waiter learns from the supervisor.
      (void)enqueue(
          wire::kHeaderSize,
          [&](std::byte* out) {
            wire::Header h;
            h.type = wire::FrameType::kAck;
            h.source = id_;
            h.target = event.source;
            h.correlation = event.correlation;
            wire::encodeHeader(h, std::span<std::byte, wire::kHeaderSize>(out, wire::kHeaderSize));
          },
          true);
    }
  }
}

void Connection::deliverOne(std::string_view name, std::string_view payload, std::uint32_t source,
                            const ListenerList& found) {
  bool wantsJson = false;
  bool hasOnce = false;
  for (const auto& entry : found) {
    wantsJson = wantsJson || entry.listener != nullptr;
    hasOnce = hasOnce || entry.once;
  }
  // Parsed only for a Listener (raw listeners take the text as it came). The value lives in the
  // arena (see ParseArena) and dies before the delivery ends. (Constructed, not assigned:
  // assigning a value on another resource would copy it.)
  std::optional<ParseArena::Delivery> delivery;
  if (wantsJson && !payload.empty()) {
    delivery.emplace(arena_);
  }
  error_code ec;
  const boost::json::value data =
      delivery ? delivery->parse(parser_, payload, ec) : boost::json::value();
  const bool parsed = !ec;
  if (ec) {
    const std::string why = ec == boost::json::error::too_deep
                                ? "is nested deeper than " + std::to_string(kMaxPayloadDepth) +
                                      " levels, which its receivers do not parse"
                                : "is not valid JSON: " + ec.message();
    reportListenerError(name,
                        std::make_exception_ptr(std::runtime_error(
                            "payload from cluster " + std::to_string(source) + " " + why)),
                        ErrorKind::kNotParsed);
  }
  std::shared_ptr<const ListenerList> taken;
  const ListenerList* listeners = &found;
  if (hasOnce && parsed) {
    // Taken only now, so a once-listener is used up by an event it is actually given: this event
    // goes to the list as it is now (another thread may have changed it since the lookup), and
    // its once-listeners are removed from the table. What they captured goes with `taken`, once
    // they have run.
    std::lock_guard lock(listenersMutex_);
    changeListeners(
        name,
        [](ListenerList& list) {
          return std::erase_if(list, [](const ListenerEntry& e) { return e.once; }) > 0;
        },
        taken);
    if (!taken) {
      if (const auto it = listeners_.find(name); it != listeners_.end()) {
        taken = it->second;  // its once-listeners were removed meanwhile
      }
    }
    listeners = taken.get();
    if (listeners == nullptr) {
      return;  // every listener of the event was removed meanwhile
    }
  }
  for (const auto& entry : *listeners) {
    try {
      if (entry.raw) {
        (*entry.raw)(payload, static_cast<int>(source));
      } else if (parsed) {
        (*entry.listener)(data, static_cast<int>(source));
      }
    } catch (...) {
      reportListenerError(name, std::current_exception());
    }
  }
}

template <typename Change>
bool Connection::changeListeners(std::string_view event, const Change& change,
                                 std::shared_ptr<const ListenerList>& replaced) {
  const auto it = listeners_.find(event);
  ListenerList list;
  if (it != listeners_.end()) {
    list = *it->second;  // this event's listeners only
  }
  if (!change(list)) {
    return false;
  }
  if (list.empty()) {
    if (it != listeners_.end()) {
      replaced = std::move(it->second);
      listeners_.erase(it);
    }
  } else if (it != listeners_.end()) {
    auto fresh = std::make_shared<const ListenerList>(std::move(list));
    replaced = std::exchange(it->second, std::move(fresh));
  } else {
    listeners_.emplace(std::string(event), std::make_shared<const ListenerList>(std::move(list)));
  }
  listenersVersion_.fetch_add(1, std::memory_order_release);
  return true;
}

namespace {

std::string whatOf(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown exception";
}

}  // namespace

void Connection::reportListenerError(std::string_view event, std::exception_ptr error,
                                     ErrorKind kind) {
  ErrorHandler handler;
  {
    std::lock_guard lock(listenersMutex_);
    handler = errorHandler_;
  }
  std::string handlerFailed;
  if (handler) {
    try {
      handler(event, error);
      return;
    } catch (...) {
      // An error handler that throws falls back to the default report below, which says so.
      handlerFailed = " (and the error handler threw: " + whatOf(std::current_exception()) + ")";
    }
  }
  std::string line = "clustervisor-worker: ";
  switch (kind) {
    case ErrorKind::kListenerFailed:
      line += "listener for \"" + std::string(event) + "\" failed: ";
      break;
    case ErrorKind::kNotParsed:
      line += "event \"" + std::string(event) + "\" not given to its JSON listeners: ";
      break;
    case ErrorKind::kDropped:
      break;
  }
  line += whatOf(error) + handlerFailed + "\n";
  std::fputs(line.c_str(), stderr);
}

std::uint64_t Connection::addListener(std::string_view event, Listener listener, bool once) {
  auto shared = std::make_shared<Listener>(std::move(listener));
  std::shared_ptr<const ListenerList> replaced;  // let go of after the unlock
  std::lock_guard lock(listenersMutex_);
  const auto id = nextListenerId_++;
  changeListeners(
      event,
      [&](ListenerList& list) {
        list.push_back({id, std::move(shared), nullptr, once});
        return true;
      },
      replaced);
  return id;
}

std::uint64_t Connection::addRawListener(std::string_view event, RawListener listener) {
  auto shared = std::make_shared<RawListener>(std::move(listener));
  std::shared_ptr<const ListenerList> replaced;  // let go of after the unlock
  std::lock_guard lock(listenersMutex_);
  const auto id = nextListenerId_++;
  changeListeners(
      event,
      [&](ListenerList& list) {
        list.push_back({id, nullptr, std::move(shared), false});
        return true;
      },
      replaced);
  return id;
}

void Connection::removeListener(const std::string& event, std::uint64_t id) {
  std::shared_ptr<const ListenerList> replaced;  // let go of after the unlock
  std::lock_guard lock(listenersMutex_);
  changeListeners(
      event,
      [id](ListenerList& list) {
        return std::erase_if(list, [id](const ListenerEntry& e) { return e.id == id; }) > 0;
      },
      replaced);
}

void Connection::removeAllListeners(std::string_view event) {
  std::shared_ptr<const ListenerList> replaced;  // let go of after the unlock
  std::lock_guard lock(listenersMutex_);
  changeListeners(
      event,
      [](ListenerList& list) {
        const bool had = !list.empty();
        list.clear();
        return had;
      },
      replaced);
}

void Connection::setErrorHandler(ErrorHandler handler) {
  std::lock_guard lock(listenersMutex_);
  std::swap(errorHandler_, handler);
  // (The handler replaced, now in `handler`, is destroyed after the unlock.)
}

void Connection::startWait(std::string_view event, std::string_view payload,
                           std::chrono::milliseconds timeout, int expectedClusters,
                           WaitHandler handler) {
  const bool bypassBus = bypassesBus(handler);
  if (bypassBus && threads_ != nullptr) {
    // The listener that starts it may block on its result, which the thread running the
    // connection hands over (at once when it completes at once, or with the acknowledgements it
    // reads): that thread is the one the listener holds, so the other one takes the connection
    // over now.
    threads_->nudge(true);
  }
  // A wait that may be waited for on the bus leaves at once, not when the bus handler returns.
  const bool now = bypassBus && !busOnIoThread_;
  if (expectedClusters <= 0) {
    const error_code ec = sendEvent(wire::kBroadcast, 0, event, payload, now);
    completeHandler(std::move(handler), ec, AckReport{}, false, bypassBus);
    return;
  }
  const std::uint64_t id = nextWaitId_.fetch_add(1, std::memory_order_relaxed);  // never 0
  auto slot =
      std::visit([](auto& h) { return asio::get_associated_cancellation_slot(h); }, handler);
  auto wait = std::make_shared<Wait>(std::move(handler));
  wait->expected = expectedClusters;
  wait->bypassBus = bypassBus;
  wait->work = asio::prefer(bus_.get_inner_executor(), asio::execution::outstanding_work.tracked);
  if (slot.is_connected()) {
    // Before the wait is registered: from then on another thread may end it and run its handler,
    // which may free the slot's signal.
    slot.template emplace<WaitCanceller>(WaitCanceller{weak_from_this(), id});
  }
  bool arm = false;
  bool refused = false;
  {
    std::lock_guard lock(waitsMutex_);
    // Once the Cluster is going, shutdown() finishes the waits registered before it; a later
    // one would never be finished.
    refused = shutdown_;
    if (!refused) {
      const auto deadline = deadlineAfter(timeout);
      wait->deadline = deadlines_.emplace(deadline, id);
      waits_.emplace(id, wait);
      if (deadline < armedDeadline_) {
        armedDeadline_ = deadline;
        arm = true;
      }
    }
  }
  if (refused) {
    completeHandler(std::move(wait->handler), make_error_code(Errc::kNotConnected), AckReport{},
                    false, bypassBus);
    return;
  }
  // Registered before sending, so an ack can never arrive for a wait that is not known yet.
  const error_code ec = sendEvent(wire::kBroadcast, id, event, payload, now);
  if (ec) {
    bool mine = false;
    {
      std::lock_guard lock(waitsMutex_);
      mine = waits_.erase(id) == 1;
      if (mine) {
        deadlines_.erase(wait->deadline);
      }
    }
    // If the connection was lost meanwhile, lost() already took the wait and completes it.
    if (mine) {
      completeHandler(std::move(wait->handler), ec, AckReport{}, false, bypassBus);
    }
  }
  if (arm) {
    // Also when the send failed: this wait lowered armedDeadline_, and the timer, set again for
    // the waits left, must take it back (or no later wait would arm it, and none would time out).
    asio::post(io_, [self = shared_from_this()] { self->armWaitTimer(); });
  }
}

void Connection::armWaitTimer() {
  std::chrono::steady_clock::time_point next;
  {
    std::lock_guard lock(waitsMutex_);
    if (deadlines_.empty() || !connected()) {
      armedDeadline_ = std::chrono::steady_clock::time_point::max();
      return;
    }
    next = deadlines_.begin()->first;
    armedDeadline_ = next;
  }
  waitTimer_.expires_at(next);
  waitTimer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) {
      self->onWaitTimer();
    }
  });
}

void Connection::WaitCanceller::operator()(asio::cancellation_type type) const {
  if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial)) ==
      asio::cancellation_type::none) {
    return;
  }
  if (auto self = connection.lock()) {
    // Not ended here: the handler would run inside the emit() of the code cancelling it. What is
    // posted holds no reference: once the SDK's threads are gone (the Cluster destroyed, its
    // completions still running on an executor of the program's), it is never run, and must not
    // keep the Connection, and through it the io_context, alive.
    asio::post(self->io_, [weak = connection, id = id] {
      if (const auto alive = weak.lock()) {
        alive->finishWait(id, WaitEnd::kCancelled);
      }
    });
  }
}

void Connection::onWaitTimer() {
  std::vector<std::uint64_t> expired;
  {
    std::lock_guard lock(waitsMutex_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it) {
      expired.push_back(it->second);
    }
  }
  for (const auto id : expired) {
    finishWait(id, WaitEnd::kTimedOut);
  }
  armWaitTimer();
}

bool Connection::onAck(std::uint32_t source, std::uint64_t correlation) {
  std::shared_ptr<Wait> wait;
  {
    std::lock_guard lock(waitsMutex_);
    auto it = waits_.find(correlation);
    if (it == waits_.end()) {
      return false;  // late ack for a wait that timed out
    }
    wait = it->second;
  }
  const int cluster = static_cast<int>(source);
  auto pos = std::lower_bound(wait->acked.begin(), wait->acked.end(), cluster);
  if (pos == wait->acked.end() || *pos != cluster) {
    wait->acked.insert(pos, cluster);
  }
  return static_cast<int>(wait->acked.size()) >= wait->expected;
}

bool Connection::onWaitClosed(std::uint64_t correlation, const wire::WaitClosedBody& body) {
  std::lock_guard lock(waitsMutex_);
  auto it = waits_.find(correlation);
  if (it == waits_.end()) {
    // Ended by its count earlier in this read: the supervisor has forgotten it already.
    std::erase(countedOut_, correlation);
    return false;
  }
  it->second->recipients = static_cast<int>(body.recipients);
  return true;
}

void Connection::finishWait(std::uint64_t id, WaitEnd end, std::vector<std::uint64_t>* tellLater) {
  std::shared_ptr<Wait> wait;
  {
    std::lock_guard lock(waitsMutex_);
    auto it = waits_.find(id);
    if (it == waits_.end()) {
      return;
    }
    wait = std::move(it->second);
    waits_.erase(it);
    deadlines_.erase(wait->deadline);
  }
  if (wait->recipients < 0 && connected()) {
    // Ended by the count, the timeout or a cancellation, not by the supervisor: let it forget
    // the wait now rather than track acknowledgements nobody will count.
    if (tellLater != nullptr) {
      tellLater->push_back(id);
    } else {
      (void)enqueueFrame(wire::encodeWaitDone(id), true);
    }
  }
  AckReport report;
  report.acked = static_cast<int>(wait->acked.size());
  report.clusters = std::move(wait->acked);
  report.recipients = wait->recipients;
  report.timedOut = end == WaitEnd::kTimedOut;
  // A wait that was sent and then lost its connection still reports what it learned, as a
  // count, not an error: the error code is only for "nothing was sent", and for a cancellation
  // (Asio's convention, which a coroutine's `||` and parallel groups rely on).
  const error_code ec =
      end == WaitEnd::kCancelled ? error_code(asio::error::operation_aborted) : error_code();
  completeHandler(std::move(wait->handler), ec, std::move(report), true, wait->bypassBus);
}

bool Connection::bypassesBus(const WaitHandler& handler) const {
  if (!bus_.running_in_this_thread()) {
    return false;
  }
  return std::visit(
      [&](const auto& h) {
        const auto executor = asio::get_associated_executor(h, bus_);
        if (const auto* bus = executor.template target<decltype(bus_)>(); bus && *bus == bus_) {
          return false;
        }
        // The executor under the bus strand (ClusterOptions::executor): a coroutine running
        // there resumes inside the strand, and cannot be blocking it.
        return executor != asio::any_completion_executor(bus_.get_inner_executor());
      },
      handler);
}

void Connection::completeHandler(WaitHandler handler, error_code ec, AckReport report,
                                 bool outsideInitiation, bool bypassBus) {
  // A wait that completes at once never calls its handler inside the initiating function: then
  // always through a post. A handler runs on its associated executor, after a trip through the
  // bus strand: so, once the worker listens, it runs after the listeners of the events read
  // before what completed the wait (handleFrames() hands those on first): replies sent to the
  // waiter before an acknowledgement have been handled. With the bus strand on the I/O thread
  // (this thread), dispatch, which runs it now unless the strand has work queued. On the bus
  // strand, what it sends leaves in one write when it returns.
  // A wait that bypasses the bus (see bypassesBus()) is handed to its executor from the I/O
  // thread instead, as Asio's own operations complete theirs (a future is set there, other
  // executors get a post): the bus may be held by the very listener that waits for it, and
  // could not hand that listener replies before it returns anyway.
  std::visit(
      [&](auto& h) {
        if (!h) {
          return;
        }
        auto executor = asio::get_associated_executor(h, bus_);
        auto complete = [self = shared_from_this(), h = std::move(h), ec,
                         r = std::move(report)]() mutable {
          self->asBatch([&] {
            using H = std::decay_t<decltype(h)>;
            try {
              if constexpr (std::is_same_v<H, CountHandler>) {
                std::move(h)(ec, r.acked);
              } else {
                std::move(h)(ec, std::move(r));
              }
            } catch (...) {
              // As for a listener: to the error handler. Left to propagate, it would end the
              // SDK thread running it (std::terminate), or on the I/O thread the read loop.
              self->reportListenerError("(completion handler)", std::current_exception());
            }
          });
        };
        if (bypassBus && outsideInitiation) {
          asio::dispatch(executor, std::move(complete));
        } else if (bypassBus) {
          // Through the I/O thread while it runs: under the lock shutdown() takes, a post made
          // before it is run before that thread ends. Later (a Cluster being destroyed), through
          // Asio's system executor.
          std::lock_guard lock(waitsMutex_);
          if (!shutdown_) {
            asio::post(io_, asio::bind_executor(executor, std::move(complete)));
          } else {
            asio::post(asio::system_executor(), asio::bind_executor(executor, std::move(complete)));
          }
        } else if (outsideInitiation && busOnIoThread_) {
          asio::dispatch(bus_, asio::bind_executor(executor, std::move(complete)));
        } else {
          asio::post(bus_, asio::bind_executor(executor, std::move(complete)));
        }
      },
      handler);
}

void Connection::lost(std::string_view why) {
  if (!connected_.exchange(false)) {
    return;
  }
  {
    std::lock_guard lock(sendMutex_);
    socketOpen_ = false;
    error_code ignored;
    socket_.close(ignored);
    pending_.clear();
  }
  heartbeatTimer_.cancel();
  waitTimer_.cancel();
  pauseTimer_.cancel();
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard lock(waitsMutex_);
    for (const auto& [id, wait] : waits_) {
      ids.push_back(id);
    }
  }
  for (auto id : ids) {
    finishWait(id);
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
      try {
        self->onSupervisorLost_();
        return;
      } catch (...) {
        // Reported like a listener's; then the default below, so the worker does not outlive
        // its supervisor because its handler failed.
        self->reportListenerError("(supervisor lost handler)", std::current_exception());
      }
    }
    std::fprintf(stderr, "clustervisor-worker: %s; exiting (cluster %u)\n", reason.c_str(),
                 self->id_);
    std::fflush(nullptr);
    ::_exit(1);
  });
}

}  // namespace clustervisor::detail
