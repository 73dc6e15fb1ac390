// SPDX-License-Identifier: MIT
#include "worker_connection.hpp"

#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <exception>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace clustervisor {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
// What one send takes: Boost.Asio passes at most 64 buffers to one sendmsg (more would be
// gathered for nothing by the direct write, and split by the write loop's async_write).
constexpr std::size_t kMaxSegmentsPerWrite = 64;
// Bytes per gathered write: a bounded batch keeps each write's latency low.
constexpr std::size_t kMaxBytesPerWrite = 256 * 1024;
// A read up to this size relays its frames through a WriteBatch. A larger one is part of a
// stream: the write loops, which wake a turn of the event loop later, gather more of it per
// write, and fewer, larger writes wake the receivers less often.
constexpr std::size_t kSmallRead = 4096;
}  // namespace

bool WriteBatch::defer(std::shared_ptr<WorkerConnection> connection) {
  if (!open_) {
    return false;
  }
  if (hold_) {
    if (later_.empty()) {
      // After the handlers already queued: the other reads that came in with this one.
      asio::post(connection->socket_.get_executor(), [this] { endTurn(); });
    }
    later_.push_back(std::move(connection));
    return true;
  }
  due_.push_back(std::move(connection));
  return true;
}

void WriteBatch::endRead() {
  open_ = false;
  writeAll(due_);
}

void WriteBatch::abandonRead() noexcept {
  open_ = false;
  for (const auto& connection : due_) {
    connection->leaveToWriteLoop();
  }
  due_.clear();
}

void WriteBatch::endTurn() {
  writeAll(later_);
}

void WriteBatch::writeAll(std::vector<std::shared_ptr<WorkerConnection>>& connections) {
  // No Scope is open, so nothing is noted meanwhile: a write that fails (ending its connection,
  // which may send to others) does not reach the vector being walked. Cleared, not freed, so
  // the next read allocates nothing. When a write throws, the connections not written yet are
  // left to their write loops.
  std::size_t written = 0;
  struct Clear {
    std::vector<std::shared_ptr<WorkerConnection>>& connections;
    const std::size_t& written;
    ~Clear() {
      for (std::size_t i = written; i < connections.size(); ++i) {
        connections[i]->leaveToWriteLoop();
      }
      connections.clear();
    }
  } clear{connections, written};
  for (; written < connections.size(); ++written) {
    connections[written]->writeNow();
  }
}

WorkerConnection::WorkerConnection(asio::local::stream_protocol::socket socket,
                                   std::uint32_t clusterId, std::size_t maxFrameSize,
                                   std::size_t outboxLimit, FrameSink& sink, WriteBatch& batch,
                                   ReadScratch& scratch)
    : socket_(std::move(socket)),
      clusterId_(clusterId),
      reader_(maxFrameSize),
      outbox_(outboxLimit),
      writerWakeup_(socket_.get_executor(), asio::steady_timer::time_point::max()),
      retireTimer_(socket_.get_executor()),
      resumeTimer_(socket_.get_executor()),
      sink_(sink),
      batch_(batch),
      scratch_(scratch) {}

void WorkerConnection::start() {
  // An exception that leaves a loop (std::bad_alloc, say) leaves the event loop, and main()
  // reports it as an internal error: `detached` would end that loop alone, silently, with its
  // connection left open.
  const auto rethrow = [](const std::exception_ptr& error) {
    if (error) {
      std::rethrow_exception(error);
    }
  };
  asio::co_spawn(socket_.get_executor(), readLoop(), rethrow);
  asio::co_spawn(socket_.get_executor(), writeLoop(), rethrow);
}

void WorkerConnection::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  error_code ignored;
  socket_.close(ignored);
  writerWakeup_.cancel();
  retireTimer_.cancel();
  resumeTimer_.cancel();
}

void WorkerConnection::retire(std::chrono::milliseconds timeout) {
  if (closed_ || retiring_) {
    return;
  }
  retiring_ = true;
  writerWakeup_.cancel();  // the write loop sees retiring_ and ends
  resumeTimer_.cancel();   // what it sent before it exited is read without waiting
  retireTimer_.expires_after(timeout);
  retireTimer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) {
      self->fail("kept its connection open after it exited", false);
    }
  });
}

template <typename Push>
bool WorkerConnection::queue(const Push& push) {
  if (closed_ || retiring_ || !push()) {
    return false;
  }
  wakeWriter();
  return true;
}

bool WorkerConnection::send(std::span<const std::byte> frame) {
  return queue([&] { return outbox_.push(frame); });
}

bool WorkerConnection::send(Outbox::Shared frame) {
  return queue([&] { return outbox_.push(std::move(frame)); });
}

bool WorkerConnection::sendControl(std::span<const std::byte> frame) {
  return queue([&] {
    outbox_.pushControl(frame);
    return true;
  });
}

void WorkerConnection::madeProgress() {
  lastProgress_ = std::chrono::steady_clock::now();
  stallNoticed_ = false;
  unreadAtLastLook_ = kNoLook;
}

bool WorkerConnection::stalled(std::chrono::steady_clock::time_point now,
                               std::chrono::steady_clock::duration timeout) {
  if (outbox_.empty()) {
    return false;
  }
  // Only congested connections get here (a sender waits for them); at most one look per
  // kLookInterval, the first one right after progress (it sets the baseline).
  if (unreadAtLastLook_ == kNoLook || now - lastLook_ >= kLookInterval) {
    lastLook_ = now;
    lookForReads(now);
  }
  // Reads can only be seen from the first look on, so the worker is judged from there.
  return now - std::max(lastProgress_, firstLook_) >= timeout;
}

void WorkerConnection::lookForReads(std::chrono::steady_clock::time_point now) {
  int unread = 0;
  if (closed_ || ::ioctl(socket_.native_handle(), SIOCOUTQ, &unread) != 0) {
    return;
  }
  if (unreadAtLastLook_ == kNoLook) {
    firstLook_ = now;
  } else if (unread < unreadAtLastLook_) {
    // Only writes add to it, and a write is progress of its own (which resets the look).
    madeProgress();
  }
  unreadAtLastLook_ = unread;
}

void WorkerConnection::resumeReading() {
  if (paused_) {
    resumeTimer_.cancel();
  }
}

void WorkerConnection::wakeWriter() {
  // Only a waiting writer needs the (not free) timer cancellation; a busy one finds the new
  // bytes when its write completes.
  if (!writerIdle_ || writeDue_) {
    return;
  }
  // The stall clock starts when there is something to take, not at the last write.
  madeProgress();
  // Within a small read, the WriteBatch writes instead.
  if (batch_.defer(shared_from_this())) {
    writeDue_ = true;
    return;
  }
  writerIdle_ = false;
  writerWakeup_.cancel_one();
}

void WorkerConnection::leaveToWriteLoop() noexcept {
  if (!std::exchange(writeDue_, false) || closed_ || retiring_ || !writerIdle_) {
    return;
  }
  writerIdle_ = false;
  try {
    writerWakeup_.cancel_one();
  } catch (...) {
    // Does not fail for a timer of this connection's own (its cancellation takes no memory).
  }
}

void WorkerConnection::writeNow() {
  writeDue_ = false;
  if (closed_ || retiring_ || !writerIdle_ || outbox_.empty()) {
    return;
  }
  // The socket is non-blocking (Spawner): what it does not take now, or an error the write loop
  // will meet and report, is left to the write loop.
  error_code ec;
  const std::size_t n = socket_.send(gatherBuffers(), 0, ec);
  if (n > 0) {
    wrote(n);
    if (closed_) {
      return;
    }
  }
  if (!outbox_.empty()) {
    writerIdle_ = false;
    writerWakeup_.cancel_one();
  }
}

const std::vector<asio::const_buffer>& WorkerConnection::gatherBuffers() {
  segments_.clear();
  buffers_.clear();
  outbox_.gather(segments_, kMaxSegmentsPerWrite, kMaxBytesPerWrite);
  for (const auto& s : segments_) {
    buffers_.emplace_back(s.data(), s.size());
  }
  return buffers_;
}

void WorkerConnection::wrote(std::size_t bytes) {
  outbox_.consume(bytes);
  madeProgress();
  noteDrain();
}

void WorkerConnection::noteDrain() {
  if (drainWatched_ && outbox_.bytes() <= lowWater()) {
    drainWatched_ = false;
    sink_.onDrained(*this);
  }
}

void WorkerConnection::fail(const std::string& reason, bool protocolError) {
  if (closed_) {
    return;
  }
  // What the frames relayed before this left pending is queued while this is still open.
  sink_.onFramesRelayed(*this);
  close();
  sink_.onDisconnected(*this, reason, protocolError);
}

asio::awaitable<void> WorkerConnection::readLoop() {
  const auto self = shared_from_this();
  // What comes before the next read. A read that took less than it asked for took everything
  // the socket held (a stream socket's receive takes every byte queued, up to the size asked
  // for), so the loop waits for the socket to become readable before it reads again (the wait
  // re-arms the descriptor, a system call where a read operation of the event loop would have
  // tried a read that says "nothing more"; a synchronous read is what lets every connection
  // read into the one scratch). After a read that filled its space, more may be there: the others
  // get their turn of the event loop first. After any other wait (held back), it just reads.
  // It starts with a wait: the loop runs within start() until it first waits, which must not
  // report to the sink there, nor end before the write loop holds the connection too.
  BeforeRead next = BeforeRead::kWait;
  while (!closed_) {
    if (next == BeforeRead::kTurn) {
      co_await asio::post(socket_.get_executor(), asio::use_awaitable);
    } else if (next == BeforeRead::kWait) {
      const auto [ec] =
          co_await socket_.async_wait(asio::local::stream_protocol::socket::wait_read, kAsTuple);
      if (ec && !closed_) {
        fail("read failed: " + ec.message(), false);
      }
    }
    if (closed_) {
      co_return;
    }
    const auto space = reader_.prepare(scratch_.bytes());
    error_code ec;
    const std::size_t n = socket_.receive(asio::buffer(space.data(), space.size()), 0, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again ||
        ec == asio::error::interrupted) {
      reader_.keepRest();
      next = ec == asio::error::interrupted ? BeforeRead::kNothing : BeforeRead::kWait;
      continue;
    }
    if ((ec == asio::error::eof || (!ec && n == 0)) && reader_.buffered() > 0) {
      // Not a protocol error: a worker that crashes mid-write cuts a frame too, and its end of
      // file can come before its exit can be seen. Its exit, or its heartbeats, decide.
      endedMidFrame_ = true;
      fail("in the middle of a frame; " + std::to_string(reader_.buffered()) +
               " bytes of it discarded",
           false);
      co_return;
    }
    if (ec || n == 0) {
      fail(ec && ec != asio::error::eof ? "read failed: " + ec.message() : "closed its connection",
           false);
      co_return;
    }
    reader_.commit(n);
    next = n == space.size() ? BeforeRead::kTurn : BeforeRead::kWait;
    lastRead_ = std::chrono::steady_clock::now();
    // What a small read's frames queue for idle writers is written by the WriteBatch.
    const bool direct = n <= kSmallRead;
    for (;;) {
      const Relayed relayed = [&] {
        const WriteBatch::Scope scope(batch_, direct);
        return relayFrames();
      }();
      if (relayed == Relayed::kEnded || closed_) {
        co_return;
      }
      if (relayed == Relayed::kAll) {
        break;
      }
      // The frames not relayed yet wait in the reader's own buffer: other connections read into
      // the scratch meanwhile.
      reader_.keepRest();
      next = BeforeRead::kNothing;
      co_await waitWhileHeldBack();
      if (closed_) {
        co_return;
      }
    }
    reader_.keepRest();
  }
}

WorkerConnection::Relayed WorkerConnection::relayFrames() {
  const Relayed relayed = relayEach();
  sink_.onFramesRelayed(*this);
  return relayed;
}

WorkerConnection::Relayed WorkerConnection::relayEach() {
  for (;;) {
    const auto next = reader_.next();
    if (next.result.status == wire::DecodeStatus::kIncomplete) {
      return Relayed::kAll;
    }
    if (next.result.status != wire::DecodeStatus::kFrame) {
      std::string reason = wire::describeDecodeError(next.result, reader_.maxFrameSize());
      if (!welcomed_) {
        // Its very first bytes: most likely a program that does not speak the protocol at all,
        // writing text to the descriptor it was given.
        reason = "its first bytes are not a HELLO frame: " + reason +
                 "; is it a clustervisor SDK worker? CLUSTERVISOR_FD is its connection to the "
                 "supervisor";
      }
      fail(reason, true);
      return Relayed::kEnded;
    }
    sink_.onFrame(*this, next.result.header, next.frame);
    if (closed_) {
      return Relayed::kEnded;
    }
    if (!heldBackBy_.empty() || heldByOwnBacklog_) {
      return Relayed::kHeldBack;
    }
  }
}

std::size_t WorkerConnection::CountProgress::operator()(const error_code& error,
                                                        std::size_t transferred) const {
  if (transferred > 0) {
    connection->madeProgress();
  }
  return asio::transfer_all()(error, transferred);
}

asio::awaitable<void> WorkerConnection::waitWhileHeldBack() {
  // The rest of the last read stays in the frame reader meanwhile; nothing is read from the
  // socket, so the worker's own send queue takes the wait.
  while (!closed_ && !retiring_ && sink_.holdsBack(*this)) {
    paused_ = true;
    // Not reading is the supervisor's doing: the worker counts as heard from while it waits;
    // held for a backlog of its own, only while it reads (a hung one is not held forever).
    lastRead_ =
        heldByOwnBacklog_ ? std::max(lastRead_, lastProgress_) : std::chrono::steady_clock::now();
    resumeTimer_.expires_after(kRecheckInterval);
    co_await resumeTimer_.async_wait(kAsTuple);
  }
  if (paused_) {
    paused_ = false;
    lastRead_ = std::chrono::steady_clock::now();
  }
  if (retiring_) {
    heldBackBy_.clear();
    heldByOwnBacklog_ = false;
  }
}

asio::awaitable<void> WorkerConnection::writeLoop() {
  const auto self = shared_from_this();
  while (!closed_ && !retiring_) {
    if (outbox_.empty()) {
      writerWakeup_.expires_at(asio::steady_timer::time_point::max());
      writerIdle_ = true;
      co_await writerWakeup_.async_wait(kAsTuple);
      writerIdle_ = false;  // wakeWriter() started the stall clock
      continue;
    }
    // Every partial write is progress: a worker that reads, however slowly, is not stalled.
    const auto [ec, n] =
        co_await asio::async_write(socket_, gatherBuffers(), CountProgress{this}, kAsTuple);
    // Retired meanwhile: the worker is gone and its write side may fail, but the read side is
    // still draining what it sent; writing simply stops.
    if (closed_ || retiring_) {
      co_return;
    }
    if (ec) {
      fail("write failed: " + ec.message(), false);
      co_return;
    }
    wrote(n);
    if (closed_) {
      co_return;
    }
  }
}

}  // namespace clustervisor
