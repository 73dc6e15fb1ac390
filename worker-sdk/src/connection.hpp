// SPDX-License-Identifier: MIT
//
// detail::Connection: the SDK's side of the socket to the supervisor. Private to the SDK.
//
// Threads and ownership: the socket, the read loop, the write loop, wait timers and all wait
// bookkeeping live on the I/O executor, whose handlers never run on two threads at once (one SDK
// thread; or the default's two, IoThreads, which run them one at a time: the read handler, which
// runs the listeners of what it read as its last act, does nothing after them). Everything on the
// bus strand is written as if the bus ran on another thread, which it may: code on the bus never
// dispatches to the I/O executor (it posts), so no I/O handler runs inside a bus handler. Senders
// on any thread append encoded frames to a mutex-guarded, bounded send buffer; the write loop takes
// the whole buffer in one write, so bursts of small events coalesce. A send made on the bus strand
// (a listener's reply, an acknowledgement, the next wait started by a completion handler) is
// written by the bus strand itself once its current handler returns, when no write is in progress:
// one write for all the sends of a batch, and no hand-over to the I/O thread on the
// request/response path. Other sends that follow a write by less than kCork wait for the rest of it
// (unless kCorkBytes are queued), so bursts go out in few large writes; a thread that has queued a
// write's worth (kCorkBytes) while no write is under way writes it itself, without the I/O thread,
// so a stream's bytes are written by the core that encoded them. Incoming events are handed
// in batches (one buffer per read) to the bus strand, where listeners run and, afterwards,
// acknowledgements are queued. Each event's listeners are an immutable list, replaced whole when
// one is added or removed: a delivery holds the list it found (one lock per lookup, and a batch
// looks up again only when the name or the table changes) and copies nothing, and a change costs
// the map's O(log n) and a copy of that one event's list. Connection is shared (shared_ptr) by
// Cluster, EventBus, Subscriptions and in-flight operations; Cluster::~Cluster calls shutdown(),
// after which no callback is started.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/parser.hpp>

#include "clustervisor/event_bus.hpp"
#include "clustervisor/wire/frame_reader.hpp"
#include "parse_arena.hpp"
#include "send_buffer.hpp"

namespace clustervisor::detail {

// Now plus `timeout`, saturated: milliseconds::max() means no deadline, not an overflow.
inline std::chrono::steady_clock::time_point deadlineAfter(std::chrono::milliseconds timeout) {
  const auto now = std::chrono::steady_clock::now();
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::time_point::max() - now);
  return timeout >= room ? std::chrono::steady_clock::time_point::max() : now + timeout;
}

class IoThreads;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using CountHandler = boost::asio::any_completion_handler<void(boost::system::error_code, int)>;
  using ReportHandler =
      boost::asio::any_completion_handler<void(boost::system::error_code, AckReport)>;

  struct Settings {
    int fd = -1;                  // connected socket, handshake done, non-blocking
    wire::FrameReader reader{0};  // may hold bytes that followed the welcome frame
    std::uint32_t id = 0;
    std::uint32_t totalClusters = 0;
    std::uint32_t maxPayload = 0;
    std::size_t sendQueueLimit = 0;
    std::size_t receiveQueueLimit = 0;  // ClusterOptions::receiveQueueLimit
    boost::asio::any_io_executor ioExecutor;
    boost::asio::any_io_executor busExecutor;
    std::function<void()> onSupervisorLost;
    std::chrono::milliseconds heartbeatInterval{0};  // from the welcome; 0: no heartbeats
    bool heartbeatFromBus = false;                   // ClusterOptions::heartbeatFromExecutor
    // The default threads, when the bus strand shares the I/O executor's io_context through them:
    // told when a send or a wait needs the connection while a listener may hold it. Kept alive by
    // keepAlive.
    IoThreads* threads = nullptr;
    // The execution contexts behind the executors: a Connection kept alive by a handler queued
    // on a user's executor must not outlive the services its socket and strand belong to.
    std::vector<std::shared_ptr<void>> keepAlive;
  };

  explicit Connection(Settings settings);

  void start();  // begins the read loop
  // Ends the connection: no listener or lost-handler starts afterwards; what is queued is still
  // written (for at most kFlushOnShutdown), then the socket is closed.
  void shutdown();
  static constexpr std::chrono::seconds kFlushOnShutdown{2};
  // For a shutdown inside a listener or handler (the Cluster destroyed there, say by exit(3)),
  // where the bus executor's own write would come only after the process is gone: writes what
  // is queued now (first the rest of a write the socket had not taken whole), waiting for room
  // for at most kFlushOnShutdown.
  void writeQueuedNow();
  bool busRunsHere() const { return bus_.running_in_this_thread(); }
  // A send from outside the bus executor that comes less than this after the previous write
  // waits for the rest of it (see flushSoon()).
  static constexpr std::chrono::microseconds kCork{100};
  // This much queued is written at once rather than held back (half the send queue's limit
  // where that is less); half the limit queued while a write is held back ends the hold at once,
  // so a small queue does not fill behind it.
  static constexpr std::size_t kCorkBytes = 64 * 1024;

  std::uint32_t id() const { return id_; }
  std::uint32_t totalClusters() const { return totalClusters_.load(std::memory_order_relaxed); }
  std::uint32_t maxPayload() const { return maxPayload_; }
  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  boost::asio::any_io_executor busExecutor() const { return bus_; }

  // `now`: on the bus executor, written at once rather than when the handler returns.
  boost::system::error_code sendEvent(std::uint32_t target, std::uint64_t correlation,
                                      std::string_view name, std::string_view payload,
                                      bool now = false);
  boost::system::error_code sendReady();
  using StopHandler = std::function<void(std::chrono::milliseconds)>;
  // Replaces the stop handler; the first one set tells the supervisor this worker has one.
  void setStopHandler(StopHandler handler);
  using TotalHandler = std::function<void(int newTotal, int oldTotal)>;
  void setTotalHandler(TotalHandler handler);
  // Starts handing incoming events to listeners; until then they wait, in order, bounded by the
  // send queue limit (what does not fit is dropped and reported to the error handler).
  void startListening();
  boost::system::error_code checkTarget(int clusterId) const;

  std::uint64_t addListener(std::string_view event, Listener listener, bool once);
  std::uint64_t addRawListener(std::string_view event, RawListener listener);
  void removeListener(const std::string& event, std::uint64_t id);
  void removeAllListeners(std::string_view event);
  void setErrorHandler(ErrorHandler handler);

  using WaitHandler = std::variant<CountHandler, ReportHandler>;
  void startWait(std::string_view event, std::string_view payload,
                 std::chrono::milliseconds timeout, int expectedClusters, WaitHandler handler);

 private:
  // The events of one read, in one buffer (with their headers and any frames between them).
  struct Batch {
    struct Event {
      std::size_t offset;  // of the name in bytes; the payload follows it
      std::uint16_t nameLength;
      std::uint32_t payloadLength;
      std::uint32_t source;
      std::uint64_t correlation;
    };
    std::vector<char> bytes;
    std::vector<Event> events;
    bool empty() const { return events.empty(); }
    // The memory it holds, as counted against the receive limit.
    std::size_t footprint() const { return bytes.capacity() + events.capacity() * sizeof(Event); }
  };
  struct Wait {
    // Built around its handler: any_completion_handler in Boost 1.81 has no usable move
    // assignment (it would wrap itself recursively), so the handler is only ever moved-constructed.
    explicit Wait(WaitHandler h) : handler(std::move(h)) {}
    int expected = 0;
    std::vector<int> acked;  // ascending, distinct
    int recipients = -1;
    std::multimap<std::chrono::steady_clock::time_point, std::uint64_t>::iterator deadline;
    WaitHandler handler;
    boost::asio::any_io_executor work;  // keeps the bus executor's context alive meanwhile
    bool bypassBus = false;             // see bypassesBus()
  };
  struct ListenerEntry {
    std::uint64_t id;
    std::shared_ptr<Listener> listener;  // one of these two is set
    std::shared_ptr<RawListener> raw;
    bool once;
  };
  // One event's listeners, in the order added; never changed once published.
  using ListenerList = std::vector<ListenerEntry>;
  using ListenerMap = std::map<std::string, std::shared_ptr<const ListenerList>, std::less<>>;

  // Control frames (acks, WAIT_DONE) pass `control`: they are tiny, and refusing them would
  // make other clusters' waits time out, so they are not held to the queue limit. `now`: sent
  // on the bus executor, it is written at once rather than when the handler returns (a wait's
  // event: the handler may block until the wait ends).
  template <typename Write>
  boost::system::error_code enqueue(std::size_t frameSize, const Write& write, bool control = false,
                                    bool now = false);
  boost::system::error_code enqueueFrame(std::span<const std::byte> frame, bool control);
  void flushSoon();
  // I/O thread: ends a hold-back of flushSoon() at once (its timer's handler writes).
  void releaseCork();
  void flush();
  // Sends what inflight_ still holds as far as the socket takes it, the rest once it has room;
  // the end (all written, or an error) is handled by afterWrite() through the io_context.
  void writeInflight();
  void afterWrite(int error);
  // Under sendMutex_: one non-blocking send(2) of `size` bytes at `data`, retried on EINTR; the
  // bytes taken (taken off queuedBytes_). 0 with `error` 0: the socket is full; with `error`
  // set: another error.
  std::size_t sendSome(const std::byte* data, std::size_t size, int& error);
  // Under sendMutex_: one non-blocking send of the front of pending_, at most `limit` bytes, and
  // takes what the socket took off it (as sendSome()).
  std::size_t sendPendingFront(std::size_t limit, int& error);
  // Under sendMutex_: sends the rest of inflight_ now, at most `limit` bytes of it; false on an
  // error (not a full socket).
  bool sendInflightNow(int& error, std::size_t limit = SIZE_MAX);
  // What the I/O thread's write sends per hold of sendMutex_.
  static constexpr std::size_t kWriteChunk = 64 * 1024;
  // `owner`: scheduled by the enqueue that set writing_ (and so ends it); otherwise a helper that
  // writes what a held-back I/O-thread flush is waiting on.
  void flushFromBus(bool owner);
  // I/O thread: writes what is queued while the bus executor owns writing_ (see ioHelping_),
  // waiting for room in the socket as long as it owns it.
  void flushForBus();
  // sendMutex_ held: a non-blocking send of what pending_ holds. False on an error other than a
  // full socket (reported by the read or the owning write, which meet it too).
  bool sendPendingNow();
  void closeWhenFlushed();
  void closeSocket();
  void readLoop();
  // After a read is handled: reads on, or pauses while undelivered_ is over the receive limit.
  // `allDeliveredNext`: everything undelivered is delivered when the read handler ends (see
  // IoThreads::BusRunAtEnd), so the backlog does not hold the next read back.
  void readMore(bool allDeliveredNext = false);
  void watchPeerWhilePaused();
  void handleFrames();
  // A read's events: parked until listening, then handed to the bus strand.
  void receive(Batch batch);
  Batch spareBatch();
  void recycle(Batch batch);
  void post(Batch batch);
  void handOver(Batch batch);
  void deliver(Batch batch);              // then recycles it
  void delivered(std::size_t footprint);  // takes it off undelivered_; may resume reading
  void deliverEach(const Batch& batch);
  void deliverOne(std::string_view name, std::string_view payload, std::uint32_t source,
                  const ListenerList& found);
  // listenersMutex_ held: `event`'s list becomes what `change` makes of a copy of it (an empty
  // list removes the event); false, and nothing changed, when `change` returns false. The list
  // replaced goes to `replaced`, for the caller to let go of after the unlock: the last reference
  // to a listener destroys what it captured, whose destructor may add or remove listeners.
  template <typename Change>
  bool changeListeners(std::string_view event, const Change& change,
                       std::shared_ptr<const ListenerList>& replaced);
  // Record an acknowledgement / the supervisor's closing of a wait: true when the wait is to be
  // finished now (the caller first hands on the events read before it, so that a completion
  // runs after their listeners).
  bool onAck(std::uint32_t source, std::uint64_t correlation);
  bool onWaitClosed(std::uint64_t correlation, const wire::WaitClosedBody& body);
  // How a wait ends, apart from its count: its timeout, or a cancellation of its handler's
  // (Asio's per-operation cancellation, see WaitCanceller).
  enum class WaitEnd { kDone, kTimedOut, kCancelled };
  // `tellLater`: the WAIT_DONE for the supervisor goes there instead of out at once.
  void finishWait(std::uint64_t id, WaitEnd end = WaitEnd::kDone,
                  std::vector<std::uint64_t>* tellLater = nullptr);
  // Installed in the cancellation slot of a wait's handler, when it has one (Asio's
  // per-operation cancellation): a terminal or partial cancellation ends the wait through the
  // I/O thread, as its timeout would, with operation_aborted and the acknowledgements so far.
  // Emitted after the wait ended, or once the SDK's threads are gone, it ends nothing. (Total
  // cancellation is not supported: the event has been sent.)
  struct WaitCanceller {
    std::weak_ptr<Connection> connection;
    std::uint64_t id;
    void operator()(boost::asio::cancellation_type type) const;
  };
  void armWaitTimer();
  void onWaitTimer();
  // A wait started on the bus executor (by a listener or a completion handler) whose handler has
  // an executor of its own: the one case where the caller may block on the result while it
  // holds the bus, so its completion does not go through the bus.
  bool bypassesBus(const WaitHandler& handler) const;
  // `outsideInitiation`: not called from the function that started the wait, so the handler
  // may run at once. `bypassBus`: see bypassesBus().
  void completeHandler(WaitHandler handler, boost::system::error_code ec, AckReport report,
                       bool outsideInitiation, bool bypassBus);
  // Runs `f`; on the bus strand, sends made meanwhile are written in one write when it returns
  // (see flushAfterBatch_).
  template <typename F>
  void asBatch(F&& f);
  // Runs a handler of the user's (stop, cluster count) on the bus strand, unless shut down, as a
  // batch; what it throws goes to the error handler as `what`'s.
  template <typename F>
  void postHandler(std::string_view what, F f);
  void lost(std::string_view why);
  void heartbeat();
  void sendHeartbeat();
  void onStopFrame(std::chrono::milliseconds untilKill);
  void onTotalChanged(std::uint32_t total);
  void releaseBusWork();
  // What reportListenerError() reports: a listener threw; an event's payload is not JSON, so
  // its parsed listeners were not called; events were dropped before the worker listened.
  enum class ErrorKind { kListenerFailed, kNotParsed, kDropped };
  // To the error handler, else (or when it throws) one line on standard error.
  void reportListenerError(std::string_view event, std::exception_ptr error,
                           ErrorKind kind = ErrorKind::kListenerFailed);

  std::vector<std::shared_ptr<void>> keepAlive_;  // destroyed last
  const std::uint32_t id_;
  std::atomic<std::uint32_t> totalClusters_;
  const std::uint32_t maxPayload_;
  const std::size_t sendQueueLimit_;
  const std::size_t corkBytes_;  // kCorkBytes, or half of sendQueueLimit_ where that is less
  boost::asio::any_io_executor io_;
  boost::asio::strand<boost::asio::any_io_executor> bus_;
  std::function<void()> onSupervisorLost_;
  // Outstanding work on the bus executor while connected: events may arrive at any time, like a
  // pending read on a socket, so a user's io_context::run() does not return meanwhile.
  boost::asio::any_io_executor busWork_;
  std::mutex busWorkMutex_;

  boost::asio::local::stream_protocol::socket socket_;
  boost::asio::steady_timer closeTimer_;
  boost::asio::steady_timer corkTimer_;
  // When the last write ended (under sendMutex_); see flushSoon().
  std::chrono::steady_clock::time_point lastWriteEnd_{};
  // A send from a thread other than the bus executor's writes pending_ itself once it holds
  // corkBytes_, and no more than this many times that (see enqueue()): a queue that grew while the
  // socket was full is the I/O thread's to write, not moved down in the buffer after each send.
  static constexpr std::size_t kInlineMaxFactor = 2;
  boost::asio::steady_timer heartbeatTimer_;
  const std::chrono::milliseconds heartbeatInterval_;
  const bool heartbeatFromBus_;
  // The bus strand runs on the I/O thread: work handed to it from that thread may run at once.
  const bool busOnIoThread_;
  // The default threads (Settings::threads), or null.
  IoThreads* const threads_;
  // A heartbeat posted to the bus executor and not yet run: a blocked executor gets one, not a
  // pile of them.
  std::atomic<bool> heartbeatPending_{false};

  std::mutex stopMutex_;  // guards stopHandler_, stopHandlerAnnounced_, totalHandler_
  std::shared_ptr<StopHandler> stopHandler_;
  std::shared_ptr<TotalHandler> totalHandler_;
  bool stopHandlerAnnounced_ = false;
  bool closing_ = false;  // I/O thread only
  wire::FrameReader reader_;
  std::atomic<bool> connected_{true};
  std::atomic<bool> shutdown_{false};

  // Guards pending_, queuedBytes_, the writer flags below and socketOpen_. Held across the bus
  // strand's direct write, and taken to close the socket, so that write never meets a closed (or
  // reused) fd.
  std::mutex sendMutex_;
  const int fd_;
  const pid_t pid_ = ::getpid();  // a child forked without exec must not write on it
  bool socketOpen_ = true;
  bool exitWriteGaveUp_ = false;  // writeQueuedNow() waited kFlushOnShutdown for room in vain
  bool writeInFlight_ = false;    // the I/O thread's write of inflight_ is under way
  // How much of inflight_ the socket has taken: recorded as each send(2) returns, so a write at
  // exit knows where to go on from.
  std::size_t inflightWritten_ = 0;
  bool corked_ = false;         // the I/O thread holds a flush back (flushSoon)
  bool uncorking_ = false;      // a send filled half the queue meanwhile and posted releaseCork()
  bool urgent_ = false;         // pending_ holds a send from the bus executor
  bool busHelping_ = false;     // a helper flushFromBus(false) is posted
  bool busOwnsWrite_ = false;   // writing_ was set by a send on the bus executor
  bool ioHelping_ = false;      // a helper flushForBus() is posted or waits for room
  bool inlineBlocked_ = false;  // enqueue()'s own send found the socket full: until a write ends
  // Grown by the size of each frame and written over at once: no zero-filling first.
  SendBuffer pending_;
  // I/O thread only, but for sending its rest (from inflightWritten_), under sendMutex_ while
  // writeInFlight_.
  SendBuffer inflight_;
  std::size_t queuedBytes_ = 0;
  bool writing_ = false;  // a flush is scheduled, held back or writing

  // Delivered batches' buffers, reused by the next reads: a stream of reads then allocates (and
  // faults in) no memory, where a fresh batch per read cost the reading thread a quarter of its
  // time in page faults (perf, unicast stream). At most kSpareBatches, none over kSpareBytes.
  static constexpr std::size_t kSpareBatches = 4;
  static constexpr std::size_t kSpareBytes = 256 * 1024;
  std::mutex spareMutex_;
  std::vector<Batch> spare_;

  // Received events handed to the bus executor and not yet delivered (Batch::footprint()). The
  // I/O thread stops reading above receiveLimit_ and sets readPaused_; the delivery that takes
  // it back under the limit resumes it (at most one read per delivered batch, so no hysteresis
  // is needed). Both are atomics so neither side takes a lock. Reading resumes as soon as there
  // is room, not when the backlog is gone: a worker whose listeners are slow keeps taking bytes
  // at their pace, so the supervisor holds its senders back (nothing lost) rather than finding
  // it stalled after events.stall_timeout.
  const std::size_t receiveLimit_;
  std::atomic<std::size_t> undelivered_{0};
  std::atomic<bool> readPaused_{false};
  // While paused, how often the I/O thread looks whether the supervisor has closed the
  // connection: then nothing more can arrive, and what is left is read (and the loss noticed).
  // It also resumes reading if a delivery could not (out of memory).
  static constexpr std::chrono::milliseconds kPausedPeerCheck{200};
  boost::asio::steady_timer pauseTimer_;  // I/O thread only
  bool peerClosed_ = false;               // I/O thread only: seen by the pause timer

  std::mutex parkedMutex_;  // guards listening_, parked_, parkedBytes_, droppedBeforeListening_
  bool listening_ = false;
  std::vector<Batch> parked_;
  std::size_t parkedBytes_ = 0;
  std::uint64_t droppedBeforeListening_ = 0;

  std::mutex listenersMutex_;  // guards listeners_, errorHandler_, nextListenerId_
  ListenerMap listeners_;
  std::atomic<std::uint64_t> listenersVersion_{1};  // bumped (under the mutex) by every change
  ErrorHandler errorHandler_;
  std::uint64_t nextListenerId_ = 1;
  // What a sender's serializer writes, a receiver parses: text that is not valid UTF-8 (a string
  // cut in the middle of a character) as it is, and nesting up to kMaxPayloadDepth (the parser
  // recurses once per level, on the bus thread's stack: a few hundred bytes each).
  static constexpr std::size_t kMaxPayloadDepth = 256;
  static boost::json::parse_options receiveParseOptions() {
    boost::json::parse_options options;
    options.max_depth = kMaxPayloadDepth;
    options.allow_invalid_utf8 = true;
    return options;
  }
  // Bus strand only; keeps its memory from one event to the next.
  boost::json::parser parser_{{}, receiveParseOptions()};
  ParseArena arena_;              // bus strand only: where payloads are parsed
  bool batching_ = false;         // bus strand only: inside asBatch()
  bool flushAfterBatch_ = false;  // bus strand only: a send during it started writing_

  std::mutex waitsMutex_;  // guards waits_, deadlines_, armedDeadline_
  std::unordered_map<std::uint64_t, std::shared_ptr<Wait>> waits_;
  // Every open wait's timeout, on one timer (I/O thread) set for the earliest. A wait whose
  // deadline is later than the one armed (the usual case: same timeout, later start) needs no
  // trip to the I/O thread; the timer re-arms for the next deadline when it fires.
  std::multimap<std::chrono::steady_clock::time_point, std::uint64_t> deadlines_;
  std::chrono::steady_clock::time_point armedDeadline_ =
      std::chrono::steady_clock::time_point::max();
  boost::asio::steady_timer waitTimer_;
  // Waits ended by their count during the read being handled, whose WAIT_DONE is sent at its
  // end unless a WAIT_CLOSED in the same read shows the supervisor closed them (I/O thread).
  std::vector<std::uint64_t> countedOut_;
  // Starts at a random value: a restarted worker must not reuse the wait ids of its previous
  // life, or a late ack meant for the old process could be counted for a new wait.
  std::atomic<std::uint64_t> nextWaitId_;
};

}  // namespace clustervisor::detail
