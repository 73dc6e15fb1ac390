// SPDX-License-Identifier: MIT
//
// Supervisor: runs one bot. Starts a worker per cluster through the spawn queue, relays events
// between them, watches their readiness and heartbeats, restarts them by the restart policy,
// reloads its config (SIGHUP, `clustervisor reload`: scaling the cluster count live), restarts
// clusters on request (one by one or rolling), serves status and metrics, and stops everything
// on SIGINT/SIGTERM.
//
// Everything happens on the one io_context thread that calls run(): signal handling (SIGCHLD is
// reaped with waitpid(WNOHANG) in a loop), worker sockets, output capture and timers. Decisions
// come from pure code (WorkerLifecycle and RestartPolicy per cluster, SpawnQueue, Relay,
// WaitTable, HeldMessages); this class feeds them events and the time and carries out what they
// return. run() returns the process exit status once every worker has been stopped and reaped.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include "clustervisor/config/bot_config.hpp"
#include "config_change.hpp"
#include "control_server.hpp"
#include "held_messages.hpp"
#include "log_limiter.hpp"
#include "metrics_server.hpp"
#include "output_capture.hpp"
#include "relay.hpp"
#include "service_notifier.hpp"
#include "spawn_queue.hpp"
#include "spawner.hpp"
#include "wait_table.hpp"
#include "worker_connection.hpp"
#include "worker_lifecycle.hpp"

namespace clustervisor {

class Supervisor final : private FrameSink {
 public:
  // A broadcastAndWait the supervisor still tracks after this long is forgotten: its waiter has
  // long timed out, and a recipient that never acknowledges must not pin it forever.
  static constexpr std::chrono::hours kMaxWaitAge{1};
  static constexpr std::chrono::seconds kSweepInterval{10};
  // A second stop signal this soon after the first is a duplicate, not an escalation.
  static constexpr std::chrono::milliseconds kDuplicateSignalWindow{200};
  // Reloads and rolling restarts waiting behind the one in progress, at most.
  static constexpr std::size_t kMaxQueuedOperations = 64;
  // How long the connection of a worker that exited is still read for what it sent last.
  static constexpr std::chrono::milliseconds kDrainTimeout{1000};
  // A worker's end of file usually comes just before its exit: a worker that closed its
  // connection is logged as such only if it has not exited this long after.
  static constexpr std::chrono::milliseconds kExitAfterClose{1000};
  // How long the end of a stop waits for descendants that escaped their worker's process group.
  static constexpr std::chrono::milliseconds kOrphanTimeout{2000};
  // A child whose environment does not tell its cluster yet is looked at again, after 10 ms at
  // first and then twice as long each time up to a second, for this long at most.
  static constexpr std::chrono::seconds kOrphanLookLimit{10};
  static constexpr std::chrono::milliseconds kFirstOrphanLook{10};
  static constexpr std::chrono::milliseconds kLastOrphanLook{1000};
  // How often the metrics endpoint's address is tried again while it cannot be used.
  static constexpr std::chrono::seconds kMetricsRetry{5};

  // `controlSocket`: where the control socket listens; empty: no control socket.
  Supervisor(boost::asio::io_context& io, config::BotConfig config,
             std::filesystem::path controlSocket = {});
  ~Supervisor();

  // Starts the workers and runs until stopped. Returns the exit status.
  int run();
  // Called on the event loop, with the config file's path, after each reload read it (valid or
  // not).
  void onConfigRead(std::function<void(const std::filesystem::path&)> hook) {
    onConfigRead_ = std::move(hook);
  }

 private:
  using Clock = std::chrono::steady_clock;

  // A worker a rolling restart starts next to the cluster's running one. It gets no events and
  // takes the cluster over once it is ready (promote()); if it is not, it is stopped and the
  // running worker goes on.
  struct Successor {
    explicit Successor(boost::asio::io_context& io) : timer(io) {}
    pid_t pid = -1;
    std::uint64_t processStartTime = 0;
    Clock::time_point spawnedAt;
    bool stopHandler = false;
    bool failed = false;  // being stopped
    std::chrono::milliseconds heartbeatTimeout{0};
    std::chrono::milliseconds heartbeatInterval{0};
    std::uint32_t maxPayload = 0;
    std::shared_ptr<const config::BotConfig> startedWith;  // the config it was started with
    std::shared_ptr<WorkerConnection> connection;
    std::shared_ptr<OutputCapture> out;
    std::shared_ptr<OutputCapture> err;
    boost::asio::steady_timer timer;  // start.timeout; once it failed, SIGKILL after stop.timeout
  };
  // A worker a successor took over from: stopped as in the stop sequence, no longer the cluster's.
  struct Replaced {
    explicit Replaced(boost::asio::io_context& io) : killTimer(io), signalTimer(io) {}
    std::uint32_t cluster = 0;
    pid_t pid = -1;
    std::uint64_t exitsBefore = 0;  // the cluster's Slot::exitsRecorded when it was replaced
    std::shared_ptr<WorkerConnection> connection;
    std::shared_ptr<OutputCapture> out;
    std::shared_ptr<OutputCapture> err;
    boost::asio::steady_timer killTimer;
    boost::asio::steady_timer signalTimer;
  };

  struct Slot {
    Slot(boost::asio::io_context& io, std::uint32_t clusterId, const config::BotConfig& config)
        : id(clusterId),
          lifecycle(config.restart, config.start.ready),
          restartTimer(io),
          killTimer(io),
          signalTimer(io),
          startTimer(io),
          heartbeatTimer(io),
          closedTimer(io) {}
    std::uint32_t id = 0;
    bool removed = false;   // a reload lowered the cluster count below this id
    bool outdated = false;  // its worker runs with settings for workers other than config_'s
    std::shared_ptr<const config::BotConfig> startedWith;  // the config its worker was started with
    bool resharding = false;  // a reload stopped it to move its shards; it starts again after
    WorkerLifecycle lifecycle;
    pid_t pid = -1;
    std::uint64_t processStartTime = 0;  // of pid, from /proc: tells its orphans from older ones
    bool stopHandler = false;            // the worker's SDK has an onStop handler
    bool saidHello = false;              // the current worker connected (its HELLO was welcomed)
    bool lastExitSucceeded = true;       // the last exit counted as a success
    std::string lastExit;                // "exited with status 3", "was killed by SIGKILL"
    std::string lastExitNote;            // the whole exit line after "cluster N (pid P) "
    std::string lastExitReason;          // as counted in the metrics: "hung", "start_timeout"…
    std::uint64_t exitsRecorded = 0;     // times lastExit was set (or cleared) for its own worker
    std::uint64_t eventsIn = 0;          // events this cluster's workers sent
    std::uint64_t eventsOut = 0;         // events queued for this cluster's workers
    std::uint64_t bytesIn = 0;           // bytes of those events
    std::uint64_t bytesOut = 0;
    std::map<std::string, std::uint64_t, std::less<>> exits;  // by reason, for the metrics
    // The liveness timeout the current worker was started under (a reload may change the
    // config's; a worker told to send no heartbeats must not be judged by a new one).
    std::chrono::milliseconds heartbeatTimeout{0};
    std::chrono::milliseconds heartbeatInterval{0};
    std::uint32_t maxPayload = 0;  // events.max_payload its connection was made with
    std::unique_ptr<Successor> successor;
    std::string handOverFailure;  // why the last successor did not take over; empty if none
    Clock::time_point lastHeard;  // the spawn, or the last read of a connection since closed
    std::shared_ptr<WorkerConnection> connection;
    std::shared_ptr<OutputCapture> out;
    std::shared_ptr<OutputCapture> err;
    boost::asio::steady_timer restartTimer;  // backoff, or the retry of a failed cluster
    boost::asio::steady_timer killTimer;     // SIGKILL at the end of stop.timeout
    boost::asio::steady_timer signalTimer;   // the stop signal after stop.signal_delay
    boost::asio::steady_timer startTimer;    // start.timeout
    boost::asio::steady_timer heartbeatTimer;
    boost::asio::steady_timer closedTimer;  // kExitAfterClose after its connection closed
    // When restartTimer fires, while it waits.
    std::optional<Clock::time_point> nextStartAt;
  };

  void onFrame(WorkerConnection& connection, const wire::Header& header,
               std::span<std::byte> frame) override;
  void onDisconnected(WorkerConnection& connection, const std::string& reason,
                      bool protocolError) override;
  bool holdsBack(WorkerConnection& connection) override;
  void onDrained(WorkerConnection& connection) override;
  void onFramesRelayed(WorkerConnection& connection) override;
  // Adds an event frame to the pending run (see EventRun), queuing the run first when the frame
  // does not continue it.
  void appendToRun(WorkerConnection& from, std::uint32_t target,
                   std::span<const std::uint32_t> recipients, std::span<const std::byte> frame);
  // Queues `bytes` (`events` whole event frames, `size` bytes) for cluster `id`: counted, and
  // the sender noted for flow control; or, refused by its outbox, reported as dropped. Whether
  // it was queued.
  template <typename Bytes>
  bool queueEvents(WorkerConnection& from, std::uint32_t id, const Bytes& bytes, std::size_t size,
                   std::uint64_t events);
  // Queues the pending run into its recipients' outboxes, as the events one by one would have
  // been.
  void flushRun();
  // After a successful send to `recipient`: if that pushed it past its high-water mark, the
  // sender waits for it before its next frame.
  void noteCongestion(WorkerConnection& from, std::uint32_t recipient);
  bool congested(std::uint32_t id, Clock::time_point now);
  // Before a wait `from` opens: if what is queued for it passes its outbox limit by more than
  // a read's acknowledgements could (ownBacklogMargin(), two reads' worth at least; events are
  // never queued past the limit, so the excess is control frames: the ACKs and WAIT_CLOSED
  // frames of its own waits), it does not read them, and is held back like a sender to a congested
  // receiver until it is back within the limit, however long that takes; its waits then cannot grow
  // the supervisor's memory without bound.
  void noteOwnBacklog(Slot& slot, WorkerConnection& from);
  static std::size_t ownBacklogMargin(std::size_t outboxLimit) {
    return std::max(outboxLimit / 4, 2 * ReadScratch::kBytes);
  }
  void resumeHeldBack();

  // Feeds an event to a slot's lifecycle and carries out the step.
  void handle(Slot& slot, WorkerLifecycle::EventKind kind, WorkerExit exit = {});
  void carryOut(Slot& slot, const WorkerLifecycle::Step& step);
  void pumpQueue();
  bool spawn(Slot& slot);
  SpawnRequest spawnRequest(std::uint32_t cluster) const;
  // What a worker that has exited left in its pipes is written before the line that says so.
  static void readWhatIsThere(const std::shared_ptr<OutputCapture>& out,
                              const std::shared_ptr<OutputCapture>& err);
  // Starts copying the worker's stdout and stderr to ours, prefixed with its cluster.
  std::pair<std::shared_ptr<OutputCapture>, std::shared_ptr<OutputCapture>> capture(
      std::uint32_t cluster, SpawnedWorker& worker);
  void stopWorker(Slot& slot);
  // The stop frame and the stop signal (at once, or after stop.signal_delay for a worker with a
  // stop handler); returns what the SIGKILL after stop.timeout follows.
  std::string beginStopSequence(WorkerConnection* connection, bool stopHandler,
                                boost::asio::steady_timer& signalTimer, std::function<pid_t()> pid);
  bool startSuccessor(Slot& slot);
  void failSuccessor(Slot& slot, const std::string& why);
  void promote(Slot& slot);
  void onSuccessorFrame(Slot& slot, WorkerConnection& connection, const wire::Header& header,
                        std::span<std::byte> frame);
  void onSuccessorExit(Slot& slot, int status);
  void onReplacedExit(std::size_t index, int status);
  // Checks a HELLO and answers it with a WELCOME; false (connection closed) when it is refused.
  bool welcome(Slot& slot, WorkerConnection& connection, std::span<std::byte> frame,
               std::chrono::milliseconds heartbeatTimeout,
               std::chrono::milliseconds heartbeatInterval, std::uint32_t maxPayload);
  void abortWorker(Slot& slot);
  void armKillTimer(Slot& slot, std::string what);
  void watchHeartbeat(Slot& slot);
  void onHello(Slot& slot, WorkerConnection& connection, std::span<std::byte> frame);
  void onReady(Slot& slot);
  // Once every cluster is ready for the first time, tells the service manager (READY=1).
  // After READY=1: tells the service manager a new STATUS= when the clusters ready or failed
  // changed, so that systemctl status shows the bot as it is now.
  void tellStatus();
  // "all 16 clusters ready", "15 of 16 clusters ready; cluster 3 failed", "…; the others ended".
  std::string statusText() const;
  void tellReadyOnce();
  void routeEvent(Slot& slot, WorkerConnection& from, const wire::Header& header,
                  std::span<std::byte> frame);
  void routeAck(Slot& slot, const wire::Header& header, std::span<std::byte> frame);
  // A control frame (ack, WAIT_CLOSED, TOTAL_CHANGED) to the cluster's connected worker.
  void sendTo(std::uint32_t id, std::span<const std::byte> frame);
  // Calls `visit(pid, connection)` for each worker of the slot's cluster (its current one, a
  // rolling restart's successor, the workers it replaced that still run), until one returns
  // true. A connection is null once its worker has exited.
  template <typename Visit>
  void forEachWorker(const Slot& slot, const Visit& visit) const;
  // The owner of the waits `connection` makes (see WaitTable): the pid of the worker it is the
  // connection of, the cluster's current one, its successor or one a rolling restart replaced;
  // 0 for one that has exited (its waits have nobody to tell).
  std::uint64_t waitOwner(const Slot& slot, const WorkerConnection& connection) const;
  // A wait's ack or WAIT_CLOSED to the worker of `cluster` that made it, if it is still there.
  void sendToWaiter(std::uint32_t cluster, std::uint64_t owner, std::span<const std::byte> frame);
  void closeWaits(const std::vector<WaitTable::Closed>& closed);
  void disconnect(Slot& slot);
  void retire(Slot& slot);
  void reapChildren();
  void onExit(Slot& slot, int status);
  // The end of an exit (or failed spawn) line: what happens to the cluster now, "; ..." on.
  std::string whatNext(const Slot& slot, const WorkerLifecycle::Step& step,
                       std::string_view again) const;
  void killOrphans(bool all);
  // At the start: kills what the workers of an earlier supervisor of this bot, one that was
  // killed, left running.
  void killLeftoversOfEarlierRuns();
  void lookAgainForOrphans();
  // Serves metrics.listen, or says why it cannot and tries again every kMetricsRetry.
  void startMetrics();
  void watchSignals();
  void watchChildren();
  void watchOutputRoom();
  void forEachCapture(void (OutputCapture::*action)());
  void beginShutdown(std::string_view why);
  void maybeFinish();
  void finish();
  void checkAllEnded();
  // Will not start again by itself: exited under its restart policy, or failed without a retry.
  bool endedForGood(const Slot& slot) const;
  bool holdFor(std::uint32_t target, std::span<const std::byte> frame);
  void reportExpired(std::uint32_t cluster, std::uint64_t expired);
  void reportOutboxFull(std::uint32_t recipient, std::uint64_t events);
  // The reasons events are dropped for, and their names (kDropReasons, in the same order): the
  // `reason` label of clustervisor_dropped_events_total and the keys of the status's
  // dropped_by_reason.
  enum class DropReason : std::size_t {
    kOutboxFull,
    kHoldFull,
    kHoldExpired,
    kUnknownTarget,
    kRemoved,
    kWorkerGone,
    kShutdown,
  };
  static constexpr std::array<std::string_view, 7> kDropReasons = {
      "outbox_full", "hold_full",   "hold_expired", "unknown_target",
      "removed",     "worker_gone", "shutdown"};
  static_assert(kDropReasons.size() == static_cast<std::size_t>(DropReason::kShutdown) + 1);
  // Counts `count` events dropped for `reason` and logs `message` (at most once a second; see
  // reportHeldBack()).
  void reportDrop(DropReason reason, const std::string& message, std::uint64_t count = 1);
  void sweep();
  std::string describe(const Slot& slot) const;
  void onControl(const control::Request& request, ControlServer::Reply reply);
  boost::json::object status() const;
  std::string metricsText() const;
  std::uint32_t clusters() const { return config_.clusters; }

  // Reloads and rolling restarts take a while; they run one at a time, in the order asked.
  using OperationRequest = std::variant<control::ReloadRequest, control::RestartRequest>;
  struct Operation {
    OperationRequest request;
    ControlServer::Reply reply;  // empty: nobody waits for the answer (SIGHUP)
  };
  struct Rollout {
    std::deque<std::uint32_t> pending;
    // The batch being restarted: each cluster with its start count when it was restarted, so
    // its new worker can be told from the old one.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> batch;
    std::vector<std::uint32_t> restarted;  // their new worker is ready
    std::uint32_t batchSize = 1;
    std::chrono::milliseconds delay{0};
    bool waiting = false;  // for the delay between batches
  };
  struct Current {
    Operation operation;
    boost::json::object result;           // what the answer reports
    std::vector<std::uint32_t> removing;  // clusters a reload removed, until they stopped
    // The clusters a reload adds while it moves shards (Slot::resharding): started with the
    // clusters whose shards moved, once every worker of those and of `removing` has stopped.
    std::vector<std::uint32_t> startAfterResharding;
    std::optional<Rollout> rollout;
  };
  void enqueueOperation(Operation operation);
  void nextOperation();
  void progressOperation();
  void finishOperation(bool ok, std::string error = {});
  void beginReload();
  void stopToMoveShards(const std::vector<std::uint32_t>& ids);
  // false while workers that held the moved shards still run
  bool startWithMovedShards();
  void applyScale(std::uint32_t from, std::uint32_t to);
  bool resharding() const;  // a cluster is stopped for a move of its shards
  void beginRollout(std::vector<std::uint32_t> ids, std::uint32_t batch,
                    std::chrono::milliseconds delay);
  void startBatch();
  bool advanceRollout();  // false while the rollout goes on
  // The `reason` label values of clustervisor_cluster_exits_total. Every cluster has a series for
  // each from the start (at 0), so increase() and alerts see a cluster's first exit too.
  static constexpr std::array<std::string_view, 11> kExitReasons = {
      "success", "failure",  "signal",  "start_timeout", "hung",        "protocol_error",
      "restart", "shutdown", "removed", "resharded",     "spawn_failed"};
  void countExit(Slot& slot, std::string_view reason) {
    assert(std::ranges::find(kExitReasons, reason) != kExitReasons.end());
    ++slot.exits[std::string(reason)];
  }

  // config_, shared by the workers started with it (Slot::startedWith); made at the first start
  // after a reload.
  const std::shared_ptr<const config::BotConfig>& workerConfig();
  // Marks the running workers whose settings for workers differ from config_'s as outdated.
  void markOutdated();
  // Whether the slot's running worker needs a restart to run with config_'s settings for workers.
  bool runsOutdated(const Slot& slot) const;
  // The clusters whose workers run with settings for workers older than the config's (outdated),
  // those stopped to move their shards aside: clusters_needing_restart of a reload's result.
  std::vector<std::uint32_t> clustersNeedingRestart() const;
  // How long after the stop frame a worker with an onStop handler gets stop.signal: at most half
  // of stop.timeout, so the signal always comes before SIGKILL.
  std::chrono::milliseconds stopSignalDelay() const {
    return std::min(config_.stop.signalDelay, config_.stop.timeout / 2);
  }

  boost::asio::io_context& io_;
  config::BotConfig config_;
  std::shared_ptr<const config::BotConfig> workerConfig_;
  std::uint64_t delayedSignals_ = 0;  // stop sequences that sent the stop signal later
  Spawner spawner_;
  // Shared by every connection. Its posted write captures it: the io_context (main.cpp) is
  // destroyed after the supervisor, which drops that handler unrun.
  WriteBatch writeBatch_;
  ReadScratch readScratch_;  // shared by every connection's reads
  // Consecutive events of one read from one worker to the same recipients, with no
  // acknowledgement wanted and each copied into the outboxes (see Outbox::worthSharing), lie
  // back to back in the sender's read buffer: they are queued as one run, one copy and one
  // outbox push per recipient instead of one per event. The run is queued before anything else
  // is done (another kind of frame, a disconnect, the end of the read), so no recipient,
  // connection or outbox changes while it waits. A run stays within Outbox::kCoalesceBytes and
  // below every recipient's high-water mark; an event that would reach the mark is queued at
  // once, alone, so flow control holds a sender back after the same event as without runs.
  // Measured (perf, unicast stream): ~15% less supervisor CPU per event.
  struct EventRun {
    WorkerConnection* from = nullptr;  // none pending when null
    std::uint32_t target = 0;
    std::vector<std::uint32_t> recipients;
    const std::byte* begin = nullptr;
    const std::byte* end = nullptr;
    std::uint64_t events = 0;
  };
  EventRun run_;
  std::vector<std::unique_ptr<Slot>> slots_;
  SpawnQueue queue_;
  boost::asio::steady_timer queueTimer_;
  Relay relay_;
  WaitTable waits_;
  HeldMessages held_;
  boost::asio::signal_set stopSignals_;
  boost::asio::signal_set childSignal_;
  boost::asio::steady_timer finishTimer_;
  // Readable when the output queue has room for worker lines again (see log.hpp).
  boost::asio::posix::stream_descriptor outputRoom_;
  boost::asio::steady_timer orphanTimer_;
  // Children an orphan look could not tell the cluster of, by (pid, start time): when first seen.
  std::map<std::pair<pid_t, std::uint64_t>, Clock::time_point> unknownOrphans_;
  // Orphans sent SIGKILL (pid, start time), and process groups just sent SIGKILL whole (when):
  // an orphan is logged once, not again while it takes its time to die, and not at all when its
  // group's kill already took it.
  std::set<std::pair<pid_t, std::uint64_t>> killedOrphans_;
  std::map<pid_t, Clock::time_point> killedGroups_;
  void killGroup(pid_t group);  // SIGKILL to the whole group, noted in killedGroups_
  boost::asio::steady_timer orphanLookTimer_;
  std::mt19937_64 random_;
  bool shuttingDown_ = false;
  bool escalated_ = false;
  std::optional<Clock::time_point> firstStopSignalAt_;  // SIGINT, SIGTERM or SIGQUIT
  int firstStopSignal_ = 0;                             // which of them
  Clock::time_point orphanDeadline_;
  bool finished_ = false;
  int exitStatus_ = 0;
  ServiceNotifier notifier_ = ServiceNotifier::fromEnvironment();
  bool toldReady_ = false;
  std::string toldStatus_;  // the last STATUS= told the service manager
  // WATCHDOG=1 from the event loop, as often as the service manager asks (WatchdogSec=).
  boost::asio::steady_timer watchdogTimer_;
  void keepWatchdogFed(std::chrono::microseconds interval);
  int openCaptures_ = 0;
  std::vector<std::weak_ptr<OutputCapture>> captures_;
  // "all workers stopped" is the run's last line: said once finish() is done and the workers'
  // output has been read to its end (or cut off by finishTimer_).
  bool allStoppedDue_ = false;  // finish() is done and the line not said yet
  void sayAllStoppedWhenOutputEnded();
  // Connections of workers that exited, read to the end before they are closed.
  std::vector<std::shared_ptr<WorkerConnection>> retiring_;
  std::uint64_t droppedEvents_ = 0;
  std::uint64_t heldBack_ = 0;  // times a sender waited for a congested receiver
  std::uint64_t stalls_ = 0;    // times a receiver was found stalled
  LogLimiter dropLog_;
  LogLimiter stallLog_;
  LogLimiter waitLog_;
  LogLimiter ownBacklogLog_;
  std::uint64_t ownBacklogHolds_ = 0;  // times a worker was held for its own waits' backlog
  // What the limiters held back since their last line: reported when their interval is over.
  std::array<std::uint64_t, kDropReasons.size()> dropsHeldBack_{};  // by DropReason
  std::vector<std::uint32_t> waitRejectsHeldBack_;                  // clusters, sorted
  boost::asio::steady_timer reportTimer_;
  std::optional<Clock::time_point> reportDue_;  // when reportTimer_ is set to go off
  void scheduleHeldBackReports();
  // Counts (and logs) as dropped the events still queued for a worker whose connection ends.
  void countLostWith(const Slot& slot, const WorkerConnection& connection, std::string_view how);
  // Writes the held-back reports that are due at `now`, or all of them (the end of a run).
  void reportHeldBack(Clock::time_point now, bool all = false);
  boost::asio::steady_timer sweepTimer_;
  Clock::time_point startedAt_ = Clock::now();
  std::filesystem::path controlPath_;
  std::string botId_;           // RunLock::botId() of the config; empty without a config file
  std::string supervisorMark_;  // "<pid>:<start time>" of this process, for CLUSTERVISOR_SUPERVISOR
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<MetricsServer> metrics_;  // serving; none while the address cannot be used
  std::string metricsError_;                // why it cannot, while it cannot
  boost::asio::steady_timer metricsRetryTimer_;
  std::vector<std::unique_ptr<Replaced>> replaced_;
  std::deque<Operation> operations_;
  std::optional<Current> current_;
  boost::asio::steady_timer rolloutTimer_;
  bool applying_ = false;       // an operation is being set in motion: progress is judged after
  bool pumpScheduled_ = false;  // a pumpQueue() is posted to the event loop
  std::uint64_t reloads_ = 0;   // reloads applied
  std::uint64_t reloadFailures_ = 0;   // reloads refused (invalid config)
  std::uint64_t waitsOpened_ = 0;      // broadcastAndWait calls tracked
  std::uint64_t waitsCompleted_ = 0;   // every recipient acknowledged
  std::uint64_t waitsEndedEarly_ = 0;  // the waiter ended it first (its timeout or expected count)
  std::uint64_t waitsRejected_ = 0;    // too many open, or a reused id
  std::array<std::uint64_t, kDropReasons.size()> dropped_{};  // dropped events, by kDropReasons
  std::function<void(const std::filesystem::path&)> onConfigRead_;
};

}  // namespace clustervisor
