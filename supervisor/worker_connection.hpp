// SPDX-License-Identifier: MIT
//
// WorkerConnection: the supervisor's end of one worker's socket.
//
// A read loop takes bytes in large reads into the supervisor's one ReadScratch, cuts them into
// frames with wire::FrameReader and hands each frame to the FrameSink (the supervisor) in place,
// so the sink can stamp and forward it without a copy. A write loop drains the bounded Outbox with
// gathered writes. Both are coroutines on the supervisor's single io_context thread. The first
// transport error, end of file or protocol error ends both loops and reports once to the sink;
// after close() nothing is reported. Owned by a shared_ptr held by the supervisor's cluster slot
// and by the two loops.
//
// Backpressure: a connection whose outbox is past its high-water mark (kHighWaterBytes, or half
// the limit when that is less) is congested. The sink remembers which congested connections a
// sender fed (heldBackBy()), and the sender's read loop waits before its next frame until the
// sink says none of them holds it back any more: each fell to its low-water mark (half the
// high-water mark), went away, or is stalled, having taken no bytes for the stall timeout
// (events.stall_timeout) while it had some queued. A stalled worker holds nobody back; what does
// not fit its outbox is dropped for it alone. Progress counts every partial write, and, between
// writes, any drop in what the worker's socket still holds for it (SIOCOUTQ): the kernel wakes a
// writer blocked on a full socket only once the reader has emptied three quarters of it, so a
// worker that reads slowly (an SDK whose listeners are behind reads as they make room) would
// otherwise look stalled meanwhile.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "clustervisor/wire/frame_reader.hpp"
#include "outbox.hpp"

namespace clustervisor {

class WorkerConnection;

// What the connection reports to its owner.
class FrameSink {
 public:
  // A whole frame, decoded and checked; `frame` may be modified (the source gets stamped).
  virtual void onFrame(WorkerConnection& connection, const wire::Header& header,
                       std::span<std::byte> frame) = 0;
  // The connection ended. `protocolError` is true when the worker sent something malformed.
  virtual void onDisconnected(WorkerConnection& connection, const std::string& reason,
                              bool protocolError) = 0;
  // Whether the connection's read loop must wait before its next frame; asked after a frame
  // when heldBackBy() is not empty or heldByOwnBacklog(), and again while it waits, at least
  // every kRecheckInterval.
  virtual bool holdsBack(WorkerConnection& connection) = 0;
  // The outbox fell to its low-water mark after watchDrain().
  virtual void onDrained(WorkerConnection& connection) = 0;
  // The frames handed to onFrame since the last call are all there is for now (the end of a
  // read, a pause for flow control, or the connection failing): their bytes are valid until
  // the next read, so anything kept from them must be queued now.
  virtual void onFramesRelayed(WorkerConnection& connection) = 0;

 protected:
  ~FrameSink() = default;
};

class WorkerConnection;

// The buffer every connection of one supervisor reads into: a read takes up to kBytes, as a
// plain relay's does, while a connection keeps only what its reads leave over (the start of a
// frame; the frames a congested receiver holds back), so an idle one holds 4 KiB at most. Safe
// because the connections take turns on the event loop's one thread, and a read loop relays or
// keeps (wire::FrameReader::keepRest()) what a read brought before it waits for anything. One per
// supervisor; allocated at the first read, and its pages only as reads reach them.
class ReadScratch {
 public:
  static constexpr std::size_t kBytes = 256 * 1024;
  std::span<std::byte> bytes() {
    if (!bytes_) {
      bytes_.reset(new std::byte[kBytes]);
    }
    return {bytes_.get(), kBytes};
  }

 private:
  std::unique_ptr<std::byte[]> bytes_;
};

// The writes that small reads make due. While a read loop relays the frames of a small read
// (a few events, a reply, acknowledgements: the latency-bound traffic), a frame for a connection
// whose write loop is idle does not wake that loop: the connection is noted, and when the read's
// frames are relayed, before the read loop reads again, each noted connection writes what it has
// with one non-blocking gathered write; only what the socket does not take goes to its write loop.
// The next hop's worker is woken as soon as the supervisor knows what to send it, without the
// trips through the event loop that waking a write loop costs (nor the event loop's poll and the
// next read's attempt, which come before a handler posted for later). The exception is fan-in that
// is known to be one: a waiter's connection noted for an acknowledgement that does not complete
// its wait (under a Hold) is written once the handlers already queued have run (the other reads
// that arrived with this one), so the waiter is woken once for all the acknowledgements of a turn
// of the event loop, not once for each; the one that completes the wait is written at once (unless
// others held in this turn are ahead of it). One per supervisor (single thread).
class WriteBatch {
 public:
  // While one lives (with `open`), a small read's frames are being relayed; when it ends, they
  // are written (or left to the turn's end). The writes may throw (std::bad_alloc): the exception
  // leaves the destructor, and the read loop, and the event loop (WorkerConnection::start()),
  // rather than terminate the supervisor, except while another exception is unwinding the stack
  // (then that one goes on, and the connections noted are left to their write loops).
  class Scope {
   public:
    Scope(WriteBatch& batch, bool open) : batch_(batch), exceptions_(std::uncaught_exceptions()) {
      batch_.open_ = open;
    }
    ~Scope() noexcept(false) {
      if (std::uncaught_exceptions() > exceptions_) {
        batch_.abandonRead();
        return;
      }
      batch_.endRead();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    WriteBatch& batch_;
    int exceptions_;
  };
  // While one lives (with `held`), a connection noted is written at the turn's end instead.
  class Hold {
   public:
    Hold(WriteBatch& batch, bool held) : batch_(batch) { batch_.hold_ = held; }
    ~Hold() { batch_.hold_ = false; }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    WriteBatch& batch_;
  };
  // Notes `connection` for the write; false when no Scope is open.
  bool defer(std::shared_ptr<WorkerConnection> connection);

 private:
  void endRead();
  void abandonRead() noexcept;
  void endTurn();
  static void writeAll(std::vector<std::shared_ptr<WorkerConnection>>& connections);
  bool open_ = false;
  bool hold_ = false;
  std::vector<std::shared_ptr<WorkerConnection>> due_;    // noted by the read being relayed
  std::vector<std::shared_ptr<WorkerConnection>> later_;  // written at the turn's end
};

class WorkerConnection : public std::enable_shared_from_this<WorkerConnection> {
 public:
  static constexpr std::chrono::milliseconds kRecheckInterval{100};

  WorkerConnection(boost::asio::local::stream_protocol::socket socket, std::uint32_t clusterId,
                   std::size_t maxFrameSize, std::size_t outboxLimit, FrameSink& sink,
                   WriteBatch& batch, ReadScratch& scratch);

  void start();
  void close();  // idempotent; no callback afterwards

  // The worker process is gone: stop writing, but keep reading what it sent before it exited
  // until end of file, or close after `timeout` (a descendant may hold the socket open). The
  // end is reported to the sink as usual.
  void retire(std::chrono::milliseconds timeout);
  bool retiring() const { return retiring_; }

  std::uint32_t clusterId() const { return clusterId_; }
  bool open() const { return !closed_; }
  bool welcomed() const { return welcomed_; }
  void setWelcomed() { welcomed_ = true; }

  // Queue bytes for the worker; false when the outbox is full (the frame is dropped).
  bool send(std::span<const std::byte> frame);
  bool send(Outbox::Shared frame);
  // A control frame: queued even when the outbox is at its limit (see Outbox::pushControl).
  // False only when the connection no longer takes frames.
  bool sendControl(std::span<const std::byte> frame);
  std::size_t queuedBytes() const { return outbox_.bytes(); }
  // Events queued for the worker and not yet written in full (see Outbox::unsentEvents()).
  std::size_t unsentEvents() const { return outbox_.unsentEvents(); }

  // Backpressure (see above). The outbox limit bounds what a stalled worker costs; a worker that
  // reads, however slowly, holds its senders back long before it: a few hundred KiB beyond what
  // its socket holds keep it busy, and a relay whose outboxes stay this small finds what it
  // copies in the processor's caches (with half of 64 MiB, broadcast to three clusters ran at
  // half the speed and less, every byte copied from and to memory: bench/README.md).
  static constexpr std::size_t kHighWaterBytes = 1024 * 1024;
  std::size_t highWater() const { return std::min(outbox_.limit() / 2, kHighWaterBytes); }
  std::size_t lowWater() const { return highWater() / 2; }
  std::size_t outboxLimit() const { return outbox_.limit(); }
  // Bytes are queued and none was taken for `timeout`.
  bool stalled(std::chrono::steady_clock::time_point now,
               std::chrono::steady_clock::duration timeout);
  // True once per stall: the first call after the worker stalled (for the log line).
  bool firstNoticeOfStall() { return !std::exchange(stallNoticed_, true); }
  void watchDrain() { drainWatched_ = true; }
  // The congested connections this one fed since its read loop last went on; the sink edits it.
  std::vector<std::uint32_t>& heldBackBy() { return heldBackBy_; }
  bool readingPaused() const { return paused_; }
  // Held back by the acknowledgements of its own waits that it does not read, as by a congested
  // receiver in heldBackBy() (see Supervisor::noteOwnBacklog()). Meanwhile it counts as heard
  // from only when it takes bytes.
  bool heldByOwnBacklog() const { return heldByOwnBacklog_; }
  void holdForOwnBacklog() { heldByOwnBacklog_ = true; }
  void releaseOwnBacklogHold() { heldByOwnBacklog_ = false; }
  // The worker closed its end in the middle of a frame (the partial frame was discarded).
  bool endedMidFrame() const { return endedMidFrame_; }
  void resumeReading();  // a paused read loop asks holdsBack() again now

  // When bytes last arrived from the worker (taken once per read, not per frame); the start of
  // the connection before that.
  std::chrono::steady_clock::time_point lastRead() const { return lastRead_; }

 private:
  // What the read loop does before its next read: read at once, let the event loop's other
  // handlers run first, or wait for the socket to become readable (see readLoop()).
  enum class BeforeRead { kNothing, kTurn, kWait };
  boost::asio::awaitable<void> readLoop();
  boost::asio::awaitable<void> writeLoop();
  boost::asio::awaitable<void> waitWhileHeldBack();
  // Relays the frames of the last read until they are all relayed, the connection ended, or a
  // congested receiver holds this worker back (heldBackBy() is not empty), or its own backlog does.
  // Ends with FrameSink::onFramesRelayed.
  enum class Relayed { kAll, kEnded, kHeldBack };
  Relayed relayFrames();
  Relayed relayEach();
  // async_write's completion condition: every partial write counts as progress.
  struct CountProgress {
    WorkerConnection* connection;
    std::size_t operator()(const boost::system::error_code& error, std::size_t transferred) const;
  };
  // Queues through `push` (false: refused) unless the connection takes no more frames.
  template <typename Push>
  bool queue(const Push& push);
  void madeProgress();
  // Progress when the worker has read from its socket since the last look (see above).
  void lookForReads(std::chrono::steady_clock::time_point now);
  void fail(const std::string& reason, bool protocolError);
  void wakeWriter();
  // For WriteBatch: one non-blocking write of what is queued; the write loop gets the rest.
  friend class WriteBatch;
  void writeNow();
  // For WriteBatch, when it cannot write (a write before it threw): the write loop writes.
  void leaveToWriteLoop() noexcept;
  // The next batch of the outbox as buffers, in buffers_ (free whenever the write loop is not
  // in a write).
  const std::vector<boost::asio::const_buffer>& gatherBuffers();
  void wrote(std::size_t bytes);  // the worker took `bytes` from the front of the outbox
  void noteDrain();               // tells the sink once the outbox is down to its low-water mark

  boost::asio::local::stream_protocol::socket socket_;
  std::uint32_t clusterId_;
  wire::FrameReader reader_;
  Outbox outbox_;
  boost::asio::steady_timer writerWakeup_;
  boost::asio::steady_timer retireTimer_;
  boost::asio::steady_timer resumeTimer_;
  FrameSink& sink_;
  WriteBatch& batch_;
  ReadScratch& scratch_;
  bool closed_ = false;
  bool writerIdle_ = false;  // the write loop waits on writerWakeup_
  bool writeDue_ = false;    // noted in batch_, which writes soon (the write loop stays idle)
  bool welcomed_ = false;
  bool retiring_ = false;
  bool paused_ = false;
  bool drainWatched_ = false;
  bool stallNoticed_ = false;
  bool heldByOwnBacklog_ = false;
  bool endedMidFrame_ = false;
  std::vector<std::uint32_t> heldBackBy_;
  std::vector<std::span<const std::byte>> segments_;  // gatherBuffers()'s, kept for their capacity
  std::vector<boost::asio::const_buffer> buffers_;
  std::chrono::steady_clock::time_point lastRead_ = std::chrono::steady_clock::now();
  // When the worker last took bytes, or when bytes were queued for an idle writer.
  std::chrono::steady_clock::time_point lastProgress_ = std::chrono::steady_clock::now();
  // What the socket held unread at the last look since the last progress; none yet: kNoLook.
  static constexpr int kNoLook = -1;
  static constexpr std::chrono::milliseconds kLookInterval{10};
  int unreadAtLastLook_ = kNoLook;
  std::chrono::steady_clock::time_point lastLook_{};
  std::chrono::steady_clock::time_point firstLook_{};  // the first since the last progress
};

}  // namespace clustervisor
