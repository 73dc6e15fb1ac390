// SPDX-License-Identifier: MIT
#include "supervisor.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <set>
#include <utility>
#include <variant>

#include "exit_status.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "process_table.hpp"
#include "run_lock.hpp"
#include "status_text.hpp"

namespace clustervisor {

namespace asio = boost::asio;
using boost::system::error_code;
using Kind = WorkerLifecycle::EventKind;
using Action = WorkerLifecycle::Action;

namespace {

// Held events are delivered into the worker's outbox all at once when it is back, so by default
// they take at most half of it: the rest is room for the events its senders are in the middle of.
// Past 1 MiB, those senders wait for it to read, as for any receiver behind (flow control). (The
// config refuses an explicit events.hold_max_bytes above that.)
HeldMessages::Limits holdLimitsFor(const config::BotConfig& config) {
  return HeldMessages::Limits{
      config.events.holdMaxCount,
      static_cast<std::size_t>(std::min(config.events.holdMaxBytes, config.events.outboxLimit / 2)),
      config.events.holdMaxAge};
}

std::string_view policyName(config::RestartPolicy policy) {
  switch (policy) {
    case config::RestartPolicy::kAlways:
      return "always";
    case config::RestartPolicy::kOnFailure:
      return "on-failure";
    case config::RestartPolicy::kNever:
      return "never";
  }
  return "?";
}

// "cluster 4" or "clusters 4..6": a run of cluster ids for a log line.
std::string rangeOf(std::uint32_t first, std::uint32_t last) {
  return first == last ? "cluster " + std::to_string(first)
                       : "clusters " + std::to_string(first) + ".." + std::to_string(last);
}

}  // namespace

Supervisor::Supervisor(asio::io_context& io, config::BotConfig config,
                       std::filesystem::path controlSocket)
    : io_(io),
      config_(std::move(config)),
      spawner_(io.get_executor()),
      queue_(config_.start.delay, config_.start.waitForReady),
      queueTimer_(io),
      relay_(config_.clusters),
      held_(config_.clusters, holdLimitsFor(config_)),
      stopSignals_(io, SIGINT, SIGTERM, SIGQUIT),
      childSignal_(io, SIGCHLD),
      finishTimer_(io),
      outputRoom_(io),
      orphanTimer_(io),
      orphanLookTimer_(io),
      random_(std::random_device{}()),
      watchdogTimer_(io),
      reportTimer_(io),
      sweepTimer_(io),
      controlPath_(std::move(controlSocket)),
      metricsRetryTimer_(io),
      rolloutTimer_(io) {
  if (!config_.sourceFile.empty()) {
    botId_ = RunLock::botId(config_.sourceFile);
    const auto self = readSelf();
    supervisorMark_ = std::to_string(::getpid()) + ":" + std::to_string(self ? self->startTime : 0);
  }
  for (const int reloadOrIgnored : {SIGHUP, SIGUSR1, SIGUSR2}) {
    stopSignals_.add(reloadOrIgnored);
  }
  slots_.reserve(config_.clusters);
  for (std::uint32_t id = 0; id < config_.clusters; ++id) {
    slots_.push_back(std::make_unique<Slot>(io_, id, config_));
  }
}

Supervisor::~Supervisor() {
  for (auto& slot : slots_) {
    if (slot->connection) {
      slot->connection->close();
    }
  }
  for (auto& connection : retiring_) {
    connection->close();
  }
}

int Supervisor::run() {
  // Orphaned descendants of the workers are re-parented here: reaped, never left as zombies, and
  // killed with their cluster.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // The relay allocates and frees outbox segments (up to 64 KiB) at a high rate. By default
  // glibc hands a freed heap top back to the kernel at once, and the next segment faults the
  // pages in again (a seventh of the supervisor's time in a unicast stream, measured with perf).
  // Keep up to 4 MiB of it; the sweep gives memory back (malloc_trim) every kSweepInterval.
  // Setting the trim threshold fixes glibc's otherwise adaptive mmap threshold at 128 KiB, so
  // every large frame would be mapped and unmapped: up to 1 MiB comes from the heap instead.
  ::mallopt(M_TRIM_THRESHOLD, 4 << 20);
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  killLeftoversOfEarlierRuns();
  watchSignals();
  watchChildren();
  if (notifier_.enabled()) {
    keepWatchdogFed(ServiceNotifier::watchdogInterval());
  }
  if (const int fd = outputRoomFd(); fd >= 0) {
    if (const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0); own >= 0) {
      outputRoom_.assign(own);
      watchOutputRoom();
    } else {
      // Then worker output that waited for the output thread waits until the run ends.
      logError(std::string("cannot watch the output queue: ") + std::strerror(errno));
    }
  }
  sweep();
  if (!controlPath_.empty()) {
    control_ = std::make_unique<ControlServer>(
        io_, controlPath_, [this](const control::Request& request, ControlServer::Reply reply) {
          onControl(request, std::move(reply));
        });
    std::string error;
    if (!control_->start(error)) {
      // The bot matters more than its remote control: run on without it.
      logError(error + "; clustervisor status/restart/stop cannot reach this supervisor");
      control_.reset();
    }
  }
  if (!config_.metrics.listen.empty()) {
    startMetrics();
  }
  logLine("starting " + std::to_string(config_.clusters) + " cluster" +
          (config_.clusters == 1 ? "" : "s") + " of " + config_.name);
  tellStatus();
  for (auto& slot : slots_) {
    queue_.push(slot->id);
  }
  pumpQueue();
  io_.run();
  return exitStatus_;
}

std::string Supervisor::describe(const Slot& slot) const {
  std::string text = "cluster " + std::to_string(slot.id);
  if (slot.pid > 0) {
    text += " (pid " + std::to_string(slot.pid) + ")";
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// The lifecycle: events in, steps carried out.

void Supervisor::handle(Slot& slot, Kind kind, WorkerExit exit) {
  WorkerLifecycle::Event event{kind, Clock::now(), exit,
                               std::uniform_real_distribution<double>(0.0, 1.0)(random_)};
  carryOut(slot, slot.lifecycle.on(event));
}

void Supervisor::carryOut(Slot& slot, const WorkerLifecycle::Step& step) {
  switch (step.action) {
    case Action::kNone:
      break;
    case Action::kArmStartTimeout:
      slot.startTimer.expires_after(config_.start.timeout);
      slot.startTimer.async_wait([this, &slot](error_code ec) {
        if (ec || slot.lifecycle.state() != WorkerState::kStarting) {
          return;
        }
        logError(describe(slot) + " is not ready " + humanDuration(config_.start.timeout) +
                 " after it was started (start.timeout" +
                 (slot.saidHello ? "; the worker must call Cluster::ready(), or send READY"
                                 : "; it never connected: a worker uses the clustervisor SDK, or "
                                   "speaks clustervisor-protocol(7), on the socket it is given") +
                 "); stopping it");
        queue_.settled(slot.id);
        handle(slot, Kind::kStartTimeout);
        pumpQueue();
        progressOperation();
      });
      break;
    case Action::kStop:
      stopWorker(slot);
      break;
    case Action::kAbort:
      abortWorker(slot);
      break;
    case Action::kRestartAfter:
    case Action::kRetryAfter: {
      const Kind next =
          step.action == Action::kRestartAfter ? Kind::kBackoffElapsed : Kind::kRetryElapsed;
      slot.restartTimer.expires_after(step.delay);
      slot.nextStartAt = slot.restartTimer.expiry();
      slot.restartTimer.async_wait([this, &slot, next](error_code ec) {
        if (!ec) {
          slot.nextStartAt.reset();
        }
        if (!ec && !shuttingDown_) {
          if (next == Kind::kRetryElapsed) {
            logLine(describe(slot) + ": retrying the failed cluster with a fresh restart count");
          }
          handle(slot, next);
        }
      });
      break;
    }
    case Action::kEnqueue:
      // A restart request may start a cluster that was backing off or failed: its timer is done.
      slot.restartTimer.cancel();
      slot.nextStartAt.reset();
      queue_.push(slot.id);
      pumpQueue();
      break;
    case Action::kCancel:
      slot.restartTimer.cancel();
      slot.nextStartAt.reset();
      slot.startTimer.cancel();
      queue_.remove(slot.id);
      break;
    case Action::kStopSupervisor:
      exitStatus_ = kExitUnavailable;
      beginShutdown("cluster " + std::to_string(slot.id) +
                    " is in a crash loop and restart.on_crash_loop is \"stop-supervisor\"");
      break;
  }
}

void Supervisor::pumpQueue() {
  if (shuttingDown_) {
    return;
  }
  const auto now = Clock::now();
  const auto poll = queue_.poll(now);
  if (poll.wakeAt) {
    queueTimer_.expires_at(*poll.wakeAt);
    queueTimer_.async_wait([this](error_code ec) {
      if (!ec) {
        pumpQueue();
      }
    });
    return;
  }
  if (!poll.start) {
    return;
  }
  Slot& slot = *slots_[*poll.start];
  queue_.started(slot.id, now);
  if (spawn(slot)) {
    queue_.spawned(Clock::now());
  } else {
    queue_.settled(slot.id);
    checkAllEnded();
    progressOperation();
  }
  // One start per turn of the event loop: however many clusters wait, the workers already
  // started get their WELCOME, heartbeats and the control socket are served between two forks.
  if (!pumpScheduled_) {
    pumpScheduled_ = true;
    asio::post(io_, [this] {
      pumpScheduled_ = false;
      pumpQueue();
    });
  }
}

SpawnRequest Supervisor::spawnRequest(std::uint32_t cluster) const {
  SpawnRequest request;
  request.clusterId = cluster;
  request.totalClusters = config_.clusters;
  request.command = config_.command;
  request.workingDirectory = config_.workingDirectory;
  request.environment = config_.environment;
  request.shards = config::shardsFor(config_, cluster);
  request.totalShards = config_.shards.total;
  request.bot = botId_;
  request.supervisorMark = supervisorMark_;
  return request;
}

std::pair<std::shared_ptr<OutputCapture>, std::shared_ptr<OutputCapture>> Supervisor::capture(
    std::uint32_t cluster, SpawnedWorker& worker) {
  const std::string prefix = "[cluster " + std::to_string(cluster) + "] ";
  const auto onEnd = [this] {
    --openCaptures_;
    if (finished_ && openCaptures_ == 0) {
      finishTimer_.cancel();
    }
    sayAllStoppedWhenOutputEnded();
  };
  openCaptures_ += 2;
  auto out = std::make_shared<OutputCapture>(std::move(worker.out), prefix, STDOUT_FILENO, onEnd);
  auto err = std::make_shared<OutputCapture>(std::move(worker.err), prefix, STDERR_FILENO, onEnd);
  out->start();
  err->start();
  // Every capture, also those of earlier workers still draining, so a stop can close them all.
  std::erase_if(captures_, [](const auto& c) { return c.expired(); });
  captures_.push_back(out);
  captures_.push_back(err);
  return {std::move(out), std::move(err)};
}

bool Supervisor::spawn(Slot& slot) {
  error_code ec;
  std::string what;
  auto worker = spawner_.spawn(spawnRequest(slot.id), ec, what);
  if (ec) {
    const WorkerLifecycle::Step step =
        slot.lifecycle.on({Kind::kSpawnFailed,
                           Clock::now(),
                           {},
                           std::uniform_real_distribution<double>(0.0, 1.0)(random_)});
    logError(describe(slot) + ": " + what + whatNext(slot, step, "retrying"));
    slot.lastExitSucceeded = false;
    // status shows why a cluster that never ran is down.
    ++slot.exitsRecorded;
    slot.lastExit = "could not be started: " + ec.message();
    slot.lastExitNote = "could not be started: " + what;
    slot.lastExitReason = "spawn_failed";
    countExit(slot, "spawn_failed");
    carryOut(slot, step);
    return false;
  }
  slot.pid = worker.pid;
  slot.startedWith = workerConfig();
  slot.outdated = false;
  slot.stopHandler = false;
  slot.saidHello = false;
  slot.lastHeard = Clock::now();
  slot.processStartTime = 0;
  if (const auto info = readProcess(worker.pid)) {
    slot.processStartTime = info->startTime;
  }
  // What this worker is started under, whatever a reload changes before it says hello.
  slot.heartbeatTimeout = config_.heartbeat.timeout;
  slot.heartbeatInterval = config_.heartbeat.interval;
  slot.maxPayload = config_.events.maxPayload;
  slot.connection = std::make_shared<WorkerConnection>(
      std::move(worker.socket), slot.id, wire::maxFrameSizeFor(config_.events.maxPayload),
      config_.events.outboxLimit, static_cast<FrameSink&>(*this), writeBatch_, readScratch_);
  slot.connection->start();
  std::tie(slot.out, slot.err) = capture(slot.id, worker);
  handle(slot, Kind::kSpawned);
  const auto restarts = slot.lifecycle.restarts();
  logLine(describe(slot) + " started" +
          (restarts > 0 ? " (restart " + std::to_string(restarts) + ")" : ""));
  return true;
}

void Supervisor::armKillTimer(Slot& slot, std::string what) {
  slot.killTimer.expires_after(config_.stop.timeout);
  slot.killTimer.async_wait([this, &slot, what = std::move(what)](error_code ec) {
    if (!ec && slot.pid > 0) {
      logWarning(describe(slot) + " did not exit within " + humanDuration(config_.stop.timeout) +
                 " of " + what + "; sending SIGKILL");
      killGroup(slot.pid);
    }
  });
}

void Supervisor::stopWorker(Slot& slot) {
  if (slot.pid <= 0) {
    return;
  }
  slot.startTimer.cancel();
  slot.heartbeatTimer.cancel();
  armKillTimer(slot, beginStopSequence(slot.connection.get(), slot.stopHandler, slot.signalTimer,
                                       [&slot] { return slot.pid; }));
  // The stop frame is the hand-over: the worker delivers what came before it (before its onStop
  // handler runs), and what is sent to the cluster from now on is held for its next worker (or
  // counted as dropped, when it has none), not written to a worker on its way out, which would
  // lose it. Acknowledgements and the end of its own waits still reach it (sendTo()).
  relay_.disconnected(slot.id);
}

std::string Supervisor::beginStopSequence(WorkerConnection* connection, bool stopHandler,
                                          asio::steady_timer& signalTimer,
                                          std::function<pid_t()> pid) {
  // The stop frame first (a control frame: it passes a full outbox).
  const bool told = connection != nullptr && connection->welcomed() &&
                    connection->sendControl(wire::encodeStop(static_cast<std::uint32_t>(
                        std::min<std::int64_t>(config_.stop.timeout.count(), 0xFFFFFFFF))));
  // At most half the stop timeout: the signal always gets its chance before SIGKILL.
  const auto signalDelay = stopSignalDelay();
  const bool signalLater = told && stopHandler && signalDelay.count() > 0;
  const auto sendSignal = [this, pid] {
    if (const pid_t target = pid(); target > 0) {
      // The whole process group: the worker and whatever it started.
      ::kill(-target, config_.stop.signal);
    }
  };
  if (signalLater) {
    ++delayedSignals_;
    // The worker shuts down on the stop frame; the signal is the fallback.
    signalTimer.expires_after(signalDelay);
    signalTimer.async_wait([sendSignal](error_code ec) {
      if (!ec) {
        sendSignal();
      }
    });
    return "the stop frame";
  }
  sendSignal();
  return signalName(config_.stop.signal);
}

void Supervisor::abortWorker(Slot& slot) {
  if (slot.pid <= 0) {
    return;
  }
  slot.startTimer.cancel();
  logError(describe(slot) + " sent no heartbeat for " + humanDuration(slot.heartbeatTimeout) +
           " (heartbeat.timeout): hung; sending SIGABRT, SIGKILL after " +
           humanDuration(config_.stop.timeout));
  // The worker alone: a core of the hung process is what helps; its group goes when it exits.
  ::kill(slot.pid, SIGABRT);
  armKillTimer(slot, "SIGABRT");
}

void Supervisor::watchHeartbeat(Slot& slot) {
  if (slot.heartbeatTimeout.count() == 0) {
    return;
  }
  // One timer per worker, re-armed lazily: reads only move the connection's lastRead(), and the
  // timer, when it fires early, sleeps again until the last read + timeout.
  const auto heard = [&slot] {
    return slot.connection ? std::max(slot.lastHeard, slot.connection->lastRead()) : slot.lastHeard;
  };
  slot.heartbeatTimer.expires_at(heard() + slot.heartbeatTimeout);
  slot.heartbeatTimer.async_wait([this, &slot, heard](error_code ec) {
    if (ec || slot.pid <= 0 || !hasProcess(slot.lifecycle.state()) ||
        slot.lifecycle.state() == WorkerState::kStopping) {
      return;
    }
    if (Clock::now() - heard() < slot.heartbeatTimeout) {
      watchHeartbeat(slot);
      return;
    }
    handle(slot, Kind::kHeartbeatTimeout);
  });
}

// ---------------------------------------------------------------------------------------------
// Frames from workers.

void Supervisor::onFrame(WorkerConnection& connection, const wire::Header& header,
                         std::span<std::byte> frame) {
  if (header.type != wire::FrameType::kEvent) {
    flushRun();  // (a pending run is always this connection's: see onFramesRelayed)
  }
  Slot& slot = *slots_[connection.clusterId()];
  if (slot.successor && slot.successor->connection.get() == &connection) {
    onSuccessorFrame(slot, connection, header, frame);
    return;
  }
  const bool current = slot.connection.get() == &connection;
  if (!connection.welcomed()) {
    if (!current) {
      // A worker that exited before its HELLO was read: nobody is left to welcome.
      connection.close();
      return;
    }
    if (header.type == wire::FrameType::kHello) {
      onHello(slot, connection, frame);
    } else {
      connection.close();
      onDisconnected(connection,
                     "first frame must be HELLO, got " + std::string(wire::toString(header.type)),
                     true);
    }
    return;
  }
  switch (header.type) {
    case wire::FrameType::kEvent:
      routeEvent(slot, connection, header, frame);
      return;
    case wire::FrameType::kAck:
      routeAck(slot, header, frame);
      return;
    case wire::FrameType::kWaitDone:
      if (waits_.cancel(slot.id, header.correlation, waitOwner(slot, connection))) {
        ++waitsEndedEarly_;
      }
      return;
    case wire::FrameType::kHeartbeat:
      return;
    case wire::FrameType::kReady:
      if (slot.connection.get() == &connection) {
        onReady(slot);
      }
      return;
    case wire::FrameType::kStopHandler:
      if (slot.connection.get() == &connection) {
        slot.stopHandler = true;
      }
      return;
    case wire::FrameType::kHello:
    case wire::FrameType::kWelcome:
    case wire::FrameType::kWaitClosed:
    case wire::FrameType::kTotalChanged:
    case wire::FrameType::kStop:
      break;
  }
  connection.close();
  onDisconnected(connection,
                 "unexpected " + std::string(wire::toString(header.type)) + " frame from a worker",
                 true);
}

bool Supervisor::welcome(Slot& slot, WorkerConnection& connection, std::span<std::byte> frame,
                         std::chrono::milliseconds heartbeatTimeout,
                         std::chrono::milliseconds heartbeatInterval, std::uint32_t maxPayload) {
  const auto hello = wire::helloBody(frame);
  if (hello.magic != wire::kHelloMagic) {
    connection.close();
    onDisconnected(connection, "HELLO without the \"CVSR\" magic: not a clustervisor worker", true);
    return false;
  }
  if (hello.minVersion > wire::kProtocolVersion || hello.maxVersion < wire::kProtocolVersion) {
    connection.close();
    onDisconnected(connection,
                   "HELLO asks for protocol versions " + std::to_string(hello.minVersion) + ".." +
                       std::to_string(hello.maxVersion) + "; this supervisor speaks " +
                       std::to_string(wire::kProtocolVersion),
                   true);
    return false;
  }
  wire::WelcomeBody body;
  body.clusterId = slot.id;
  body.totalClusters = config_.clusters;
  body.maxPayload = maxPayload;
  body.heartbeatIntervalMs =
      heartbeatTimeout.count() == 0 ? 0 : static_cast<std::uint32_t>(heartbeatInterval.count());
  connection.send(wire::encodeWelcome(body));
  connection.setWelcomed();
  return true;
}

void Supervisor::onHello(Slot& slot, WorkerConnection& connection, std::span<std::byte> frame) {
  if (!welcome(slot, connection, frame, slot.heartbeatTimeout, slot.heartbeatInterval,
               slot.maxPayload)) {
    return;
  }
  if (slot.lifecycle.state() == WorkerState::kStopping) {
    // Its stop began before it said hello: it gets nothing more (held events stay held for the
    // next worker), and the kill timer already runs.
    logLine(describe(slot) + " connected while being stopped");
    return;
  }
  slot.saidHello = true;
  relay_.connected(slot.id);
  const auto expiredBefore = held_.droppedExpired();
  const auto held = held_.take(slot.id, Clock::now());
  reportExpired(slot.id, held_.droppedExpired() - expiredBefore);
  for (const auto& message : held) {
    if (connection.send(message)) {
      ++slot.eventsOut;
      slot.bytesOut += message.size();
    } else {
      reportDrop(DropReason::kOutboxFull, describe(slot) + ": held event dropped, outbox full");
    }
  }
  logLine(describe(slot) + " connected" +
          (held.empty() ? "" : "; delivering " + std::to_string(held.size()) + " held event(s)"));
  // Liveness is watched from the handshake on: before it, start.timeout covers a worker that
  // never connects.
  watchHeartbeat(slot);
  const auto step = slot.lifecycle.on({Kind::kConnected, Clock::now()});
  if (step.changed && step.state == WorkerState::kRunning) {
    logLine(describe(slot) + " is ready (start.ready = \"connect\")");
    slot.startTimer.cancel();
    queue_.settled(slot.id);
    pumpQueue();
    progressOperation();
    tellReadyOnce();
  }
}

void Supervisor::keepWatchdogFed(std::chrono::microseconds interval) {
  if (interval.count() <= 0 || finished_) {
    return;
  }
  notifier_.send("WATCHDOG=1");
  watchdogTimer_.expires_after(interval);
  watchdogTimer_.async_wait([this, interval](error_code ec) {
    if (!ec) {
      keepWatchdogFed(interval);
    }
  });
}

std::string Supervisor::statusText() const {
  std::uint32_t ready = 0;
  bool othersEnded = true;
  std::vector<std::uint32_t> failed;
  for (std::uint32_t id = 0; id < clusters(); ++id) {
    const WorkerState state = slots_[id]->lifecycle.state();
    if (state == WorkerState::kRunning) {
      ++ready;
      continue;
    }
    othersEnded = othersEnded && endedForGood(*slots_[id]);
    if (state == WorkerState::kFailed) {
      failed.push_back(id);
    }
  }
  if (ready == clusters()) {
    return ready == 1 ? std::string("1 cluster ready")
                      : "all " + std::to_string(ready) + " clusters ready";
  }
  if (ready == 0 && othersEnded) {
    return "no cluster ready; every cluster ended";
  }
  std::string text =
      std::to_string(ready) + " of " + std::to_string(clusters()) + " clusters ready";
  if (othersEnded) {
    return text + "; the others ended";
  }
  if (!failed.empty()) {
    text += "; " + formatClusters(failed) + " failed";
  }
  return text;
}

void Supervisor::tellReadyOnce() {
  if (toldReady_ || shuttingDown_ || !notifier_.enabled()) {
    return;
  }
  // Every cluster ready, or ended for good: nothing more to wait for.
  for (std::uint32_t id = 0; id < clusters(); ++id) {
    if (slots_[id]->lifecycle.state() != WorkerState::kRunning && !endedForGood(*slots_[id])) {
      return;
    }
  }
  toldReady_ = true;
  toldStatus_ = statusText();
  notifier_.send("READY=1\nSTATUS=" + toldStatus_ + "\nMAINPID=" + std::to_string(::getpid()));
}

void Supervisor::tellStatus() {
  if (shuttingDown_ || !notifier_.enabled()) {
    return;
  }
  // Before READY=1 too: a start of many clusters takes a while, and `systemctl status` shows how
  // far it is.
  std::string status = toldReady_ ? statusText() : "starting: " + statusText();
  if (status == toldStatus_) {
    return;
  }
  toldStatus_ = std::move(status);
  notifier_.send("STATUS=" + toldStatus_);
}

void Supervisor::onReady(Slot& slot) {
  const auto step = slot.lifecycle.on({Kind::kReady, Clock::now()});
  if (!step.changed) {
    return;
  }
  logLine(describe(slot) + " is ready after " +
          humanDuration(Clock::now() - slot.lifecycle.startedAt()));
  slot.startTimer.cancel();
  queue_.settled(slot.id);
  pumpQueue();
  progressOperation();
  tellReadyOnce();
  tellStatus();
}

void Supervisor::routeEvent(Slot& slot, WorkerConnection& from, const wire::Header& header,
                            std::span<std::byte> frame) {
  wire::stampSource(frame, slot.id);
  ++slot.eventsIn;
  slot.bytesIn += frame.size();
  const auto decision = relay_.route(slot.id, header.target);
  // Copied into each outbox, or, for several recipients of a large frame, shared (see Outbox).
  const bool copied = decision.recipients.size() <= 1 || !Outbox::worthSharing(frame.size());
  if (decision.route == Relay::Route::kDeliver && header.correlation == 0 && copied) {
    if (!decision.recipients.empty()) {
      appendToRun(from, header.target, decision.recipients, frame);
    }
    return;
  }
  flushRun();
  if (header.correlation != 0) {
    noteOwnBacklog(slot, from);
  }
  switch (decision.route) {
    case Relay::Route::kDeliver: {
      std::vector<std::uint32_t> delivered;
      // A wait from a worker that already exited has nobody to tell: just deliver the event.
      // Each worker of the cluster (in a rolling restart, its successor not ready yet and the
      // one it replaced too) has waits of its own.
      const std::uint64_t owner =
          header.correlation != 0 && !from.retiring() ? waitOwner(slot, from) : 0;
      const bool wantsAcks = owner != 0;
      const auto deliver = [&](const auto& bytes) {
        for (const auto id : decision.recipients) {
          if (queueEvents(from, id, bytes, frame.size(), 1) && wantsAcks) {
            delivered.push_back(id);
          }
        }
      };
      if (copied) {
        deliver(std::span<const std::byte>(frame));
      } else {
        // Encoded once; every recipient's outbox shares the same bytes.
        deliver(std::make_shared<const std::vector<std::byte>>(frame.begin(), frame.end()));
      }
      if (wantsAcks) {
        const auto opened =
            waits_.open(slot.id, header.correlation, delivered, Clock::now(), owner);
        ++waitsOpened_;
        waitsRejected_ += opened == WaitTable::OpenResult::kRejected ? 1 : 0;
        waitsCompleted_ += opened == WaitTable::OpenResult::kClosedEmpty ? 1 : 0;
        if (opened != WaitTable::OpenResult::kOpened) {
          if (opened == WaitTable::OpenResult::kRejected) {
            if (waitLog_.allow(Clock::now())) {
              logError(describe(slot) +
                       ": too many open broadcastAndWait calls (or a reused id); this one "
                       "completes without acknowledgements" +
                       waitLog_.suppressedNote() + "; " + std::to_string(waitsRejected_) +
                       " in total");
              waitRejectsHeldBack_.clear();
            } else {
              if (const auto at = std::ranges::lower_bound(waitRejectsHeldBack_, slot.id);
                  at == waitRejectsHeldBack_.end() || *at != slot.id) {
                waitRejectsHeldBack_.insert(at, slot.id);
              }
              scheduleHeldBackReports();
            }
          }
          from.sendControl(wire::encodeWaitClosed(
              slot.id, header.correlation, {static_cast<std::uint32_t>(delivered.size()), 0}));
        }
      }
      return;
    }
    case Relay::Route::kHold:
      if (!holdFor(header.target, frame)) {
        reportDrop(DropReason::kHoldFull,
                   "cluster " + std::to_string(header.target) +
                       " is not connected and its held events are at the limit (" +
                       std::to_string(held_.limits().maxMessages) + " events, " +
                       std::to_string(held_.limits().maxBytes) + " bytes); event from cluster " +
                       std::to_string(slot.id) + " dropped");
      }
      if (header.correlation != 0) {
        from.sendControl(wire::encodeWaitClosed(slot.id, header.correlation, {0, 0}));
      }
      return;
    case Relay::Route::kUnknownTarget:
      reportDrop(DropReason::kUnknownTarget,
                 describe(slot) + " sent an event to cluster " + std::to_string(header.target) +
                     ", which does not exist (clusters are 0.." +
                     std::to_string(relay_.clusters() - 1) + "); dropped");
      if (header.correlation != 0) {
        from.sendControl(wire::encodeWaitClosed(slot.id, header.correlation, {0, 0}));
      }
      return;
  }
}

void Supervisor::routeAck(Slot& slot, const wire::Header& header, std::span<std::byte> frame) {
  const auto outcome = waits_.ack(header.target, header.correlation, slot.id);
  if (outcome.forward) {
    wire::stampSource(frame, slot.id);
    // The waiter wants the others too: unless this one completes the wait, they go out together.
    const WriteBatch::Hold hold(writeBatch_, !outcome.closed);
    sendToWaiter(header.target, outcome.owner, frame);
  }
  if (outcome.closed) {
    ++waitsCompleted_;
    sendToWaiter(header.target, outcome.owner,
                 wire::encodeWaitClosed(header.target, header.correlation, outcome.body));
  }
}

// ---------------------------------------------------------------------------------------------
// Backpressure: a sender waits while a receiver it fed is congested and still taking bytes.

void Supervisor::noteCongestion(WorkerConnection& from, std::uint32_t recipient) {
  auto& to = *slots_[recipient]->connection;
  if (to.queuedBytes() < to.highWater() || from.retiring()) {
    return;
  }
  auto& ids = from.heldBackBy();
  if (std::find(ids.begin(), ids.end(), recipient) == ids.end()) {
    ids.push_back(recipient);
  }
  to.watchDrain();
}

void Supervisor::noteOwnBacklog(Slot& slot, WorkerConnection& from) {
  const std::size_t limit = from.outboxLimit();
  if (from.queuedBytes() <= limit + ownBacklogMargin(limit) || from.retiring() ||
      from.heldByOwnBacklog()) {
    return;
  }
  from.holdForOwnBacklog();
  ++ownBacklogHolds_;
  const auto now = Clock::now();
  if (!ownBacklogLog_.allow(now)) {
    scheduleHeldBackReports();
    return;
  }
  // A rolling restart's new worker is not the slot's pid yet.
  const bool successor = slot.successor && slot.successor->connection.get() == &from;
  logWarning(describe(slot) +
             (successor ? ": its new worker (pid " + std::to_string(slot.successor->pid) + ")"
                        : std::string()) +
             " has " + std::to_string(from.queuedBytes()) +
             " bytes queued, more than its outbox limit (" + std::to_string(limit) + ") and " +
             std::to_string(ownBacklogMargin(limit)) +
             " bytes of the acknowledgements of its own broadcastAndWait calls: it does not "
             "read them, so nothing more is read from it until it is back within the limit" +
             ownBacklogLog_.suppressedNote());
}

bool Supervisor::holdsBack(WorkerConnection& connection) {
  // A worker that does not read its own waits' acknowledgements holds back only itself, so no
  // stall ends this (see noteOwnBacklog()). (Looked at every kRecheckInterval: a drain to the
  // limit raises no onDrained().)
  if (connection.heldByOwnBacklog() && (!connection.open() || connection.retiring() ||
                                        connection.queuedBytes() <= connection.outboxLimit())) {
    connection.releaseOwnBacklogHold();
  }
  const auto now = Clock::now();
  auto& ids = connection.heldBackBy();
  std::erase_if(ids, [&](std::uint32_t id) { return !congested(id, now); });
  if (ids.empty() && !connection.heldByOwnBacklog()) {
    return false;
  }
  if (!connection.readingPaused()) {
    ++heldBack_;
  }
  return true;
}

bool Supervisor::congested(std::uint32_t id, Clock::time_point now) {
  if (id >= slots_.size()) {
    return false;
  }
  Slot& slot = *slots_[id];
  const auto& connection = slot.connection;
  if (!connection || !connection->open() || connection->retiring() ||
      connection->queuedBytes() <= connection->lowWater()) {
    return false;
  }
  if (!connection->stalled(now, config_.events.stallTimeout)) {
    return true;
  }
  if (connection->firstNoticeOfStall()) {
    ++stalls_;
    if (!stallLog_.allow(now)) {
      scheduleHeldBackReports();
      return false;
    }
    logError(describe(slot) + " took no bytes for " + humanDuration(config_.events.stallTimeout) +
             " with " + std::to_string(connection->queuedBytes()) +
             " bytes queued: senders no longer wait for it, and events that do not fit its "
             "outbox (limit " +
             std::to_string(config_.events.outboxLimit) + ") are dropped for it" +
             stallLog_.suppressedNote());
  }
  return false;
}

void Supervisor::onDrained(WorkerConnection&) {
  resumeHeldBack();
}

void Supervisor::resumeHeldBack() {
  for (const auto& slot : slots_) {
    if (slot->connection) {
      slot->connection->resumeReading();
    }
    if (slot->successor && slot->successor->connection) {
      slot->successor->connection->resumeReading();
    }
  }
  for (const auto& connection : retiring_) {
    connection->resumeReading();
  }
  for (const auto& replaced : replaced_) {
    if (replaced->connection) {
      replaced->connection->resumeReading();
    }
  }
}

void Supervisor::sendTo(std::uint32_t id, std::span<const std::byte> frame) {
  // Acks, WAIT_CLOSED, TOTAL_CHANGED: control frames, which a full outbox still takes.
  if (id >= slots_.size()) {
    return;
  }
  const auto& connection = slots_[id]->connection;
  if (connection && connection->welcomed()) {
    connection->sendControl(frame);
  }
}

template <typename Visit>
void Supervisor::forEachWorker(const Slot& slot, const Visit& visit) const {
  if (visit(slot.pid, slot.connection.get())) {
    return;
  }
  if (slot.successor && visit(slot.successor->pid, slot.successor->connection.get())) {
    return;
  }
  for (const auto& replaced : replaced_) {
    if (replaced->cluster == slot.id && visit(replaced->pid, replaced->connection.get())) {
      return;
    }
  }
}

std::uint64_t Supervisor::waitOwner(const Slot& slot, const WorkerConnection& connection) const {
  std::uint64_t owner = 0;
  forEachWorker(slot, [&](pid_t pid, const WorkerConnection* c) {
    owner = c == &connection ? static_cast<std::uint64_t>(pid) : 0;
    return owner != 0;
  });
  return owner;
}

void Supervisor::sendToWaiter(std::uint32_t cluster, std::uint64_t owner,
                              std::span<const std::byte> frame) {
  if (cluster >= slots_.size()) {
    return;
  }
  WorkerConnection* to = nullptr;
  forEachWorker(*slots_[cluster], [&](pid_t pid, WorkerConnection* c) {
    to = static_cast<std::uint64_t>(pid) == owner ? c : nullptr;
    return static_cast<std::uint64_t>(pid) == owner;
  });
  if (to != nullptr && to->welcomed()) {
    to->sendControl(frame);
  }
}

void Supervisor::closeWaits(const std::vector<WaitTable::Closed>& closed) {
  waitsCompleted_ += closed.size();
  for (const auto& c : closed) {
    sendToWaiter(c.waiter, c.owner, wire::encodeWaitClosed(c.waiter, c.correlation, c.body));
  }
}

bool Supervisor::holdFor(std::uint32_t target, std::span<const std::byte> frame) {
  const auto expiredBefore = held_.droppedExpired();
  const bool held =
      held_.hold(target, std::vector<std::byte>(frame.begin(), frame.end()), Clock::now());
  reportExpired(target, held_.droppedExpired() - expiredBefore);
  return held;
}

void Supervisor::reportExpired(std::uint32_t cluster, std::uint64_t expired) {
  if (expired > 0) {
    reportDrop(DropReason::kHoldExpired,
               "cluster " + std::to_string(cluster) + ": " + std::to_string(expired) +
                   " held event(s) older than " + humanDuration(config_.events.holdMaxAge) +
                   " dropped",
               expired);
  }
}

void Supervisor::reportOutboxFull(std::uint32_t recipient, std::uint64_t events) {
  const auto& connection = slots_[recipient]->connection;
  reportDrop(DropReason::kOutboxFull,
             "cluster " + std::to_string(recipient) + ": " +
                 (events == 1 ? std::string("event") : std::to_string(events) + " events") +
                 " dropped, outbox full (" +
                 std::to_string(connection ? connection->queuedBytes() : 0) +
                 " bytes queued, limit " + std::to_string(config_.events.outboxLimit) + ")",
             events);
}

void Supervisor::reportDrop(DropReason reason, const std::string& message, std::uint64_t count) {
  droppedEvents_ += count;
  dropped_[static_cast<std::size_t>(reason)] += count;
  // One line per second at most: a stuck worker must not flood the log as well. What that holds
  // back is reported when the second is over.
  if (dropLog_.allow(Clock::now(), count)) {
    logError(message + dropLog_.suppressedNote() + "; " + std::to_string(droppedEvents_) +
             " dropped in total");
    dropsHeldBack_.fill(0);
    return;
  }
  dropsHeldBack_[static_cast<std::size_t>(reason)] += count;
  scheduleHeldBackReports();
}

void Supervisor::countLostWith(const Slot& slot, const WorkerConnection& connection,
                               std::string_view how) {
  if (const std::size_t lost = connection.unsentEvents(); lost > 0) {
    reportDrop(DropReason::kWorkerGone,
               "cluster " + std::to_string(slot.id) + ": " + std::to_string(lost) + " event" +
                   (lost == 1 ? "" : "s") + " still queued for its worker, which " +
                   std::string(how) + ", " + (lost == 1 ? "was" : "were") + " lost",
               lost);
  }
}

void Supervisor::scheduleHeldBackReports() {
  if (finished_) {
    return;
  }
  std::optional<Clock::time_point> due;
  for (const LogLimiter* limiter : {&dropLog_, &stallLog_, &waitLog_, &ownBacklogLog_}) {
    if (limiter->suppressed() > 0 && (!due || limiter->nextReport() < *due)) {
      due = limiter->nextReport();
    }
  }
  if (!due || (reportDue_ && *reportDue_ <= *due)) {
    return;  // nothing held back, or the timer goes off by then
  }
  // Set for the first time, or again for an earlier time (the wait for the later one ends with
  // operation_aborted).
  reportDue_ = due;
  reportTimer_.expires_at(*due);
  reportTimer_.async_wait([this](error_code ec) {
    if (ec || finished_) {
      return;
    }
    reportDue_.reset();
    reportHeldBack(Clock::now());
    scheduleHeldBackReports();
  });
}

void Supervisor::reportHeldBack(Clock::time_point now, bool all) {
  const auto take = [&](LogLimiter& limiter) {
    return all ? limiter.takeAll() : limiter.takeDue(now);
  };
  if (const auto drops = take(dropLog_); drops > 0) {
    std::string byReason;
    for (std::size_t r = 0; r < kDropReasons.size(); ++r) {
      if (dropsHeldBack_[r] > 0) {
        byReason += (byReason.empty() ? "" : ", ") + std::string(kDropReasons[r]) + " " +
                    std::to_string(dropsHeldBack_[r]);
      }
    }
    dropsHeldBack_.fill(0);
    logError(std::to_string(drops) + " more event" + (drops == 1 ? "" : "s") +
             " dropped since the last report (" + byReason + "); " +
             std::to_string(droppedEvents_) + " dropped in total");
  }
  if (const auto stalls = take(stallLog_); stalls > 0) {
    logError(std::to_string(stalls) + " more time" + (stalls == 1 ? "" : "s") +
             " a cluster took no bytes for " + humanDuration(config_.events.stallTimeout) +
             " since the last report; " + std::to_string(stalls_) + " in total");
  }
  if (const auto holds = take(ownBacklogLog_); holds > 0) {
    logWarning(std::to_string(holds) + " more time" + (holds == 1 ? "" : "s") +
               " a worker was not read from for the acknowledgements of its own "
               "broadcastAndWait calls it did not read, since the last report; " +
               std::to_string(ownBacklogHolds_) + " in total");
  }
  if (const auto rejects = take(waitLog_); rejects > 0) {
    const std::string from = formatClusters(waitRejectsHeldBack_);
    waitRejectsHeldBack_.clear();
    logError(std::to_string(rejects) + " more broadcastAndWait call" + (rejects == 1 ? "" : "s") +
             " completed without acknowledgements since the last report (too many open, or a "
             "reused id; from " +
             from + "); " + std::to_string(waitsRejected_) + " in total");
  }
}

void Supervisor::sweep() {
  sweepTimer_.expires_after(kSweepInterval);
  sweepTimer_.async_wait([this](error_code ec) {
    if (ec || finished_) {
      return;
    }
    const auto now = Clock::now();
    for (std::uint32_t id = 0; id < clusters(); ++id) {
      reportExpired(id, held_.expire(id, now));
    }
    waits_.expire(now - kMaxWaitAge);
    // Outboxes that held a burst (a worker that was stopped, a flood) free their memory when
    // they drain, but the allocator keeps it; give it back, so the supervisor's size follows
    // its load instead of its worst moment.
    ::malloc_trim(0);
    sweep();
  });
}

void Supervisor::watchOutputRoom() {
  outputRoom_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
    if (ec) {
      return;
    }
    std::uint64_t count = 0;
    (void)!::read(outputRoom_.native_handle(), &count, sizeof count);
    forEachCapture(&OutputCapture::outputHasRoom);
    watchOutputRoom();
  });
}

void Supervisor::forEachCapture(void (OutputCapture::*action)()) {
  for (const auto& weak : captures_) {
    if (const auto capture = weak.lock()) {
      (*capture.*action)();
    }
  }
}

void Supervisor::onFramesRelayed(WorkerConnection&) {
  flushRun();
}

template <typename Bytes>
bool Supervisor::queueEvents(WorkerConnection& from, std::uint32_t id, const Bytes& bytes,
                             std::size_t size, std::uint64_t events) {
  Slot& to = *slots_[id];
  if (!to.connection->send(bytes)) {
    reportOutboxFull(id, events);
    return false;
  }
  to.eventsOut += events;
  to.bytesOut += size;
  noteCongestion(from, id);
  return true;
}

void Supervisor::appendToRun(WorkerConnection& from, std::uint32_t target,
                             std::span<const std::uint32_t> recipients,
                             std::span<const std::byte> frame) {
  // The recipients follow from the sender and the target: nothing changes them while a run
  // waits.
  const auto runSize = [&] { return static_cast<std::size_t>(run_.end - run_.begin); };
  if (run_.from != &from || run_.target != target || run_.end != frame.data() ||
      runSize() + frame.size() > Outbox::kCoalesceBytes) {
    flushRun();  // first, so the outboxes below hold what it queues
  }
  const std::size_t size = (run_.from != nullptr ? runSize() : 0) + frame.size();
  // A run never reaches a recipient's high-water mark (where congestion starts): the event that
  // would is queued at once, alone, after the run, so flow control holds the sender back after
  // the same event as without runs.
  const bool belowMark = std::ranges::all_of(recipients, [&](std::uint32_t id) {
    const WorkerConnection& to = *slots_[id]->connection;
    return to.queuedBytes() + size < to.highWater();
  });
  if (!belowMark) {
    flushRun();
    for (const auto id : recipients) {
      queueEvents(from, id, frame, frame.size(), 1);
    }
    return;
  }
  if (run_.from != nullptr) {
    run_.end += frame.size();
    ++run_.events;
    return;
  }
  run_.from = &from;
  run_.target = target;
  run_.recipients.assign(recipients.begin(), recipients.end());
  run_.begin = frame.data();
  run_.end = frame.data() + frame.size();
  run_.events = 1;
}

void Supervisor::flushRun() {
  if (run_.from == nullptr) {
    return;
  }
  WorkerConnection& from = *std::exchange(run_.from, nullptr);
  // Below every recipient's high-water mark, so only a closed or retiring connection (or a
  // single event over the limit) refuses it: then every event of it is dropped.
  const std::span<const std::byte> bytes(run_.begin, run_.end);
  for (const auto id : run_.recipients) {
    queueEvents(from, id, bytes, bytes.size(), run_.events);
  }
}

void Supervisor::onDisconnected(WorkerConnection& connection, const std::string& reason,
                                bool protocolError) {
  Slot& slot = *slots_[connection.clusterId()];
  if (slot.successor && slot.successor->connection.get() == &connection) {
    failSuccessor(slot, protocolError ? "protocol error: " + reason
                                      : "exited or closed its connection before it was ready");
    return;
  }
  if (slot.connection.get() != &connection) {
    // A previous worker's connection, read to its end: forget it. (One a rolling restart replaced
    // that closed it: its waits have nobody to tell.)
    if (const auto owner = waitOwner(slot, connection); owner != 0) {
      waits_.ownerGone(slot.id, owner);
    }
    std::erase_if(retiring_, [&](const auto& c) { return c.get() == &connection; });
    return;
  }
  disconnect(slot);
  handle(slot, Kind::kDisconnected);
  if (protocolError) {
    logError(describe(slot) + ": protocol error: " + reason + "; disconnected, stopping it");
    handle(slot, Kind::kProtocolError);
  } else if (slot.pid > 0 && slot.lifecycle.state() != WorkerState::kStopping) {
    // A worker that goes on running without its connection gets no events, and is stopped as
    // hung once its heartbeats are overdue.
    std::string line = describe(slot) + " closed its connection" +
                       (reason == "closed its connection" ? std::string() : " (" + reason + ")");
    if (connection.endedMidFrame()) {
      logError(line);  // a frame was lost, whether or not the worker exits
      return;
    }
    // In the usual case its exit follows at once, and the exit line says it all.
    slot.closedTimer.expires_after(kExitAfterClose);
    slot.closedTimer.async_wait(
        [this, &slot, pid = slot.pid, line = std::move(line)](error_code ec) {
          if (!ec && slot.pid == pid && !finished_) {
            logWarning(line + " and has not exited after " + humanDuration(kExitAfterClose));
          }
        });
  }
}

void Supervisor::retire(Slot& slot) {
  if (!slot.connection) {
    return;
  }
  // Nothing more is sent to the exited worker (events for it are held from now on), but what it
  // wrote before exiting is still read and relayed, in order.
  auto connection = std::move(slot.connection);
  relay_.disconnected(slot.id);
  closeWaits(waits_.clusterGone(slot.id, static_cast<std::uint64_t>(slot.pid)));
  connection->retire(kDrainTimeout);
  countLostWith(slot, *connection, "exited");
  retiring_.push_back(std::move(connection));
  resumeHeldBack();  // nobody waits for a cluster whose worker is gone
}

void Supervisor::disconnect(Slot& slot) {
  if (!slot.connection) {
    return;
  }
  // A worker that runs on without its connection is judged by what it last sent.
  slot.lastHeard = std::max(slot.lastHeard, slot.connection->lastRead());
  slot.connection->close();
  countLostWith(slot, *slot.connection, "disconnected");
  slot.connection.reset();
  relay_.disconnected(slot.id);
  closeWaits(waits_.clusterGone(slot.id, static_cast<std::uint64_t>(slot.pid)));
  resumeHeldBack();  // nobody waits for a connection that is gone
}

// ---------------------------------------------------------------------------------------------
// Processes.

void Supervisor::watchChildren() {
  childSignal_.async_wait([this](error_code ec, int) {
    if (ec) {
      return;
    }
    reapChildren();
    if (!finished_) {
      watchChildren();
    }
  });
}

void Supervisor::reapChildren() {
  bool reaped = false;
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      break;
    }
    reaped = true;
    bool found = false;
    for (auto& slot : slots_) {
      if (slot->pid == pid) {
        onExit(*slot, status);
        found = true;
        break;
      }
      if (slot->successor && slot->successor->pid == pid) {
        onSuccessorExit(*slot, status);
        found = true;
        break;
      }
    }
    for (std::size_t i = 0; !found && i < replaced_.size(); ++i) {
      if (replaced_[i]->pid == pid) {
        onReplacedExit(i, status);
        found = true;
      }
    }
  }
  // Any death can re-parent more descendants here: a worker's, or that of a process in its group
  // whose own children had left the group.
  if (reaped && !finished_) {
    killOrphans(false);
  }
}

namespace {

// "of cluster 3 " for a process whose environment names its cluster, else nothing: for the lines
// that report a process left behind.
std::string ofCluster(const Lineage& lineage) {
  return lineage.kind == Lineage::Kind::kCluster
             ? "of cluster " + std::to_string(lineage.cluster) + " "
             : std::string();
}

}  // namespace

void Supervisor::killGroup(pid_t group) {
  ::kill(-group, SIGKILL);
  killedGroups_[group] = Clock::now();
}

void Supervisor::killOrphans(bool all) {
  // A child of the supervisor that is not a worker is a descendant whose parent died: it left its
  // worker's process group (setsid, a double fork). It goes when its cluster's worker is gone or
  // was replaced by a newer one; at the end of a stop, every one goes.
  const auto now = Clock::now();
  std::map<std::pair<pid_t, std::uint64_t>, Clock::time_point> unknown;
  std::set<std::pair<pid_t, std::uint64_t>> killed;  // sent SIGKILL and still around
  // A group's members die within moments of its kill: a pid that names a group later is another.
  std::erase_if(killedGroups_,
                [&](const auto& group) { return now - group.second > std::chrono::seconds(5); });
  for (const auto& child : childrenOf(::getpid())) {
    if (child.state == 'Z') {
      continue;  // reaped by waitpid
    }
    if (const std::pair key{child.pid, child.startTime}; killedOrphans_.contains(key)) {
      // Killed at an earlier look and still dying: not looked at (nor named) again.
      ::kill(child.pid, SIGKILL);
      killed.insert(key);
      continue;
    }
    const bool isWorker =
        std::any_of(slots_.begin(), slots_.end(),
                    [&](const auto& slot) {
                      return slot->pid == child.pid ||
                             (slot->successor && slot->successor->pid == child.pid);
                    }) ||
        std::any_of(replaced_.begin(), replaced_.end(),
                    [&](const auto& replaced) { return replaced->pid == child.pid; });
    if (isWorker) {
      continue;
    }
    bool kill = all;
    // Not looked up for a kill of all (at the end of a stop, or "kill now"): reading a process's
    // environment can block for as long as that process is stuck in the kernel.
    const Lineage lineage = all ? Lineage{} : lineageOf(child.pid);
    if (!kill) {
      if (lineage.kind == Lineage::Kind::kUnknown) {
        // Most likely caught in the middle of an exec: looked at again (see lookAgainForOrphans).
        const std::pair key{child.pid, child.startTime};
        const auto seen = unknownOrphans_.find(key);
        unknown.emplace(key, seen != unknownOrphans_.end() ? seen->second : now);
        continue;
      }
      if (lineage.kind == Lineage::Kind::kCluster && lineage.cluster < slots_.size()) {
        const Slot& owner = *slots_[lineage.cluster];
        // An unknown start time of the current worker counts the child as older: a leftover.
        kill = owner.pid <= 0 || owner.processStartTime == 0 ||
               child.startTime < owner.processStartTime;
      }
    }
    if (kill) {
      const std::pair key{child.pid, child.startTime};
      if (!killedGroups_.contains(child.group)) {
        logLine("killing pid " + std::to_string(child.pid) + ", left behind by a worker " +
                ofCluster(lineage) + "that is gone");
      }
      ::kill(child.pid, SIGKILL);
      killed.insert(key);
    }
  }
  killedOrphans_ = std::move(killed);
  if (!all) {
    unknownOrphans_ = std::move(unknown);
    lookAgainForOrphans();
  }
}

void Supervisor::killLeftoversOfEarlierRuns() {
  // A supervisor that was killed (SIGKILL, a crash) left what its workers started running: the
  // workers exit with it (parent-death signal, end of file), but not their descendants. The
  // locks say no other supervisor runs this bot; processes marked with this bot and a
  // supervisor process that no longer runs are left from such a run.
  if (botId_.empty()) {
    return;
  }
  for (const auto& [pid, mark] : leftoversOfBot(botId_)) {
    logLine("killing pid " + std::to_string(pid) + ", left behind by a worker " +
            ofCluster(mark.lineage) + "of an earlier supervisor of this bot (pid " +
            std::to_string(mark.supervisor) + ") that is gone");
    ::kill(pid, SIGKILL);
  }
}

void Supervisor::lookAgainForOrphans() {
  // Children whose environment could not be read are looked at again, each sooner at first,
  // until it tells their cluster or kOrphanLookLimit has passed (a process started with an empty
  // environment never has one; the end of a stop kills it). One that turns up while another has
  // been unknown for a while is not kept waiting by that one's longer interval.
  if (finished_) {
    return;
  }
  const auto now = Clock::now();
  std::vector<Clock::time_point> firstSeen;
  firstSeen.reserve(unknownOrphans_.size());
  for (const auto& [key, seen] : unknownOrphans_) {
    firstSeen.push_back(seen);
  }
  const auto delay =
      nextUnknownLook(now, firstSeen, kFirstOrphanLook, kLastOrphanLook, kOrphanLookLimit);
  if (!delay) {
    return;
  }
  // A look already set (the timer expires after now) that comes no later than this one stands.
  const auto at = now + *delay;
  const auto due = orphanLookTimer_.expiry();
  if (due > now && due <= at) {
    return;
  }
  // Setting the expiry cancels a wait for a later one (its handler sees operation_aborted); a
  // handler already queued with success still runs, and makes one look more.
  orphanLookTimer_.expires_at(at);
  orphanLookTimer_.async_wait([this](error_code ec) {
    if (!ec && !finished_) {
      killOrphans(false);
    }
  });
}

std::string Supervisor::whatNext(const Slot& slot, const WorkerLifecycle::Step& step,
                                 std::string_view again) const {
  switch (step.state) {
    case WorkerState::kBackingOff:
      return "; " + std::string(again) + " in " + humanDuration(step.delay);
    case WorkerState::kExited:
      return "; not restarted (restart.policy = \"" +
             std::string(policyName(config_.restart.policy)) + "\"" +
             (step.success ? ", a successful exit" : "") + ")";
    case WorkerState::kFailed:
      return "; crash loop: more than " + std::to_string(config_.restart.limit) + " restart" +
             (config_.restart.limit == 1 ? "" : "s") + " within " +
             humanDuration(config_.restart.window) +
             " of run time (restart.limit, restart.window); cluster " + std::to_string(slot.id) +
             " failed" +
             (step.action == Action::kRetryAfter ? ", retrying in " + humanDuration(step.delay)
                                                 : "");
    case WorkerState::kStopped:
      if (slot.resharding && !shuttingDown_) {
        return "; starting with its new shards once every worker that held moved shards has "
               "stopped";
      }
      return "; stopped";
    case WorkerState::kQueued:
      return "; starting it again";
    case WorkerState::kStarting:
    case WorkerState::kRunning:
    case WorkerState::kStopping:
      break;
  }
  return {};
}

namespace {

// "was killed by SIGKILL" or "exited with status 3", from a waitpid() status.
std::string describeExit(int status) {
  return WIFSIGNALED(status) ? "was killed by " + signalName(WTERMSIG(status))
                             : "exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

void Supervisor::readWhatIsThere(const std::shared_ptr<OutputCapture>& out,
                                 const std::shared_ptr<OutputCapture>& err) {
  for (const auto& capture : {out, err}) {
    if (capture) {
      capture->readWhatIsThere();
    }
  }
}

void Supervisor::onExit(Slot& slot, int status) {
  const pid_t pid = slot.pid;
  readWhatIsThere(slot.out, slot.err);
  // A successor waiting to take over has nothing to take over now; the policy decides.
  failSuccessor(slot, "was stopped: the running worker exited meanwhile");
  WorkerExit exit;
  std::string how = describeExit(status);
  const bool wasStopping = slot.lifecycle.state() == WorkerState::kStopping;
  if (WIFSIGNALED(status)) {
    exit.signaled = true;
    exit.code = WTERMSIG(status);
    if (exit.code == SIGKILL && !wasStopping) {
      how += " (possibly out of memory)";
    }
  } else {
    exit.code = WEXITSTATUS(status);
  }
  slot.killTimer.cancel();
  slot.signalTimer.cancel();
  slot.startTimer.cancel();
  slot.heartbeatTimer.cancel();
  slot.closedTimer.cancel();
  retire(slot);
  // Whatever the worker started in its process group goes with it.
  killGroup(pid);
  slot.pid = -1;
  queue_.settled(slot.id);
  const std::uint32_t restartsBefore = slot.lifecycle.restarts();
  const StopCause cause = slot.lifecycle.stopCause();
  const WorkerLifecycle::Step step =
      slot.lifecycle.on({Kind::kExited, Clock::now(), exit,
                         std::uniform_real_distribution<double>(0.0, 1.0)(random_)});
  std::string line = "cluster " + std::to_string(slot.id) + " (pid " + std::to_string(pid) + ") " +
                     how + " after " + humanDuration(step.uptime) + " (" +
                     std::to_string(restartsBefore) + " restart" +
                     (restartsBefore == 1 ? "" : "s") + ")";
  std::string_view reason = step.success ? "success" : exit.signaled ? "signal" : "failure";
  switch (cause) {
    case StopCause::kStartTimeout:
      line += ", stopped for not becoming ready within " + humanDuration(config_.start.timeout) +
              " (start.timeout)";
      reason = "start_timeout";
      break;
    case StopCause::kHung:
      line += ", stopped as hung";
      reason = "hung";
      break;
    case StopCause::kProtocolError:
      line += ", stopped for a protocol error";
      reason = "protocol_error";
      break;
    case StopCause::kRestart:
      line += ", restarted on request";
      reason = "restart";
      break;
    case StopCause::kShutdown:
      if (slot.removed) {
        line += ", removed by a reload";
        reason = "removed";
      } else if (slot.resharding) {
        line += ", stopped by a reload that moved its shards";
        reason = "resharded";
      } else {
        reason = "shutdown";
      }
      break;
    case StopCause::kNone:
      break;
  }
  countExit(slot, reason);
  slot.outdated = false;  // the next worker starts with the current settings
  line += whatNext(slot, step, "restarting");
  slot.lastExitSucceeded = step.success;
  ++slot.exitsRecorded;
  slot.lastExit = how;
  slot.lastExitNote = line.substr(line.find(") ") + 2);
  slot.lastExitReason = reason;
  if (step.state == WorkerState::kFailed) {
    logError(line);
  } else if (!step.success && cause != StopCause::kShutdown && cause != StopCause::kRestart) {
    logWarning(line);  // a crash, or a worker stopped for misbehaving: worth a look
  } else {
    logLine(line);
  }
  carryOut(slot, step);
  if (shuttingDown_) {
    maybeFinish();
  } else {
    pumpQueue();
    checkAllEnded();
    progressOperation();
  }
}

bool Supervisor::endedForGood(const Slot& slot) const {
  const WorkerState state = slot.lifecycle.state();
  return state == WorkerState::kExited ||
         (state == WorkerState::kFailed && config_.restart.retryFailedAfter.count() == 0);
}

void Supervisor::checkAllEnded() {
  // Nothing runs and nothing will start again (exited under on-failure or never, failed without
  // a retry): a supervisor with nothing to supervise ends, so whatever runs it notices. It fails
  // when a cluster failed or its last exit was not a success. Either way, the service manager
  // learns first: the one that ended may have been the last the bot waited for (READY=1), and
  // the clusters ready or failed changed (STATUS=); when all ended, READY=1 comes before
  // STOPPING=1 rather than a start it would take as broken.
  tellReadyOnce();
  tellStatus();
  std::vector<std::uint32_t> failed;
  for (const auto& slot : slots_) {
    if (slot->removed) {
      continue;
    }
    if (!endedForGood(*slot)) {
      return;
    }
    if (slot->lifecycle.state() == WorkerState::kFailed || !slot->lastExitSucceeded) {
      failed.push_back(slot->id);
    }
  }
  if (!failed.empty()) {
    exitStatus_ = kExitUnavailable;
  }
  beginShutdown(std::string("no cluster is running or will be restarted") +
                (failed.empty() ? std::string()
                                : " (" + formatClusters(failed) + " did not end in success)"));
}

// ---------------------------------------------------------------------------------------------
// The metrics endpoint.

void Supervisor::startMetrics() {
  metrics_ = std::make_unique<MetricsServer>(io_, config_.metrics.host, config_.metrics.port,
                                             [this] { return metricsText(); });
  std::string error;
  if (metrics_->start(error)) {
    logLine("serving metrics at http://" + config_.metrics.listen + "/metrics" +
            (metricsError_.empty() ? "" : " (the address is free again)"));
    metricsError_.clear();
    return;
  }
  metrics_.reset();
  if (shuttingDown_) {
    return;
  }
  // The address may be taken for a while only (another bot's supervisor still stopping, a port
  // in TIME_WAIT's hands, a scraper's own listener): the bot runs on, and the endpoint comes up
  // once it is free. Said when it first fails and when the reason changes, not at each try.
  if (error != metricsError_) {
    logError(error + "; running without the metrics endpoint, trying again every " +
             humanDuration(kMetricsRetry));
  }
  metricsError_ = std::move(error);
  metricsRetryTimer_.expires_after(kMetricsRetry);
  metricsRetryTimer_.async_wait([this](error_code ec) {
    if (!ec && !shuttingDown_) {
      startMetrics();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Stopping.

void Supervisor::watchSignals() {
  stopSignals_.async_wait([this](error_code ec, int signal) {
    if (ec) {
      return;
    }
    // "again" for the same stop signal; another one names the first (a SIGQUIT after a SIGINT).
    const auto again = [this](int received) {
      return received == firstStopSignal_ ? std::string(" again")
                                          : " after " + signalName(firstStopSignal_);
    };
    if (signal == SIGHUP) {
      if (!shuttingDown_) {
        logLine("received SIGHUP; reloading " + config_.sourceFile.string());
        enqueueOperation({control::ReloadRequest{}, {}});
      }
    } else if (signal == SIGUSR1 || signal == SIGUSR2) {
      // A stray signal must not end a bot (their default action is to terminate the process).
      logLine("received " + signalName(signal) +
              "; ignored (SIGINT, SIGTERM and SIGQUIT stop the supervisor, SIGHUP reloads)");
    } else if (!shuttingDown_) {
      firstStopSignalAt_ = Clock::now();
      firstStopSignal_ = signal;
      beginShutdown("received " + signalName(signal));
    } else if (!firstStopSignalAt_) {
      // The stop began otherwise (clustervisor stop, a crash loop, every cluster ended): this is
      // the first stop signal, as systemd sends one after an ExecStop= that returned at once. The
      // stop goes on; the next one kills.
      firstStopSignalAt_ = Clock::now();
      firstStopSignal_ = signal;
      logLine("received " + signalName(signal) +
              " while already stopping; the stop goes on (send a stop signal again to kill "
              "at once)");
    } else if (Clock::now() - *firstStopSignalAt_ < kDuplicateSignalWindow) {
      // Wrappers (timeout, npm, shells) often deliver one Ctrl-C twice: to the process group and
      // again to the child. Only a signal clearly after the first one means "kill now".
      logLine("received " + signalName(signal) + again(signal) + " within " +
              humanDuration(kDuplicateSignalWindow) + " of the first; taken as the same request");
    } else if (!escalated_) {
      escalated_ = true;
      logLine("received " + signalName(signal) + again(signal) + "; killing every worker now");
      for (auto& slot : slots_) {
        if (slot->pid > 0) {
          killGroup(slot->pid);
        }
      }
      killOrphans(true);
    }
    if (!finished_) {
      watchSignals();
    }
  });
}

void Supervisor::beginShutdown(std::string_view why) {
  if (shuttingDown_) {
    return;
  }
  shuttingDown_ = true;
  notifier_.send("STOPPING=1\nSTATUS=" + std::string(why));
  queueTimer_.cancel();
  rolloutTimer_.cancel();
  if (current_) {
    std::string error = "the supervisor is stopping (" + std::string(why) + ")";
    if (applying_) {
      // Reached from inside the operation's own steps (a spawn that failed into a crash loop
      // that stops the supervisor): they still use it, so it ends once they return.
      asio::post(io_, [this, error = std::move(error)] { finishOperation(false, error); });
    } else {
      finishOperation(false, error);
    }
  }
  for (auto& waiting : operations_) {
    if (waiting.reply) {
      waiting.reply(control::encodeError("the supervisor is stopping"));
    }
  }
  operations_.clear();
  std::size_t running = 0;
  const std::uint64_t delayedBefore = delayedSignals_;
  for (auto& slot : slots_) {
    failSuccessor(*slot, "was stopped with the supervisor before it was ready");
    handle(*slot, Kind::kShutdown);
    if (slot->lifecycle.state() == WorkerState::kStopping) {
      ++running;
    }
  }
  if (running == 0) {
    logLine(std::string(why) + "; no worker is running");
  } else {
    // The stop sequences this shutdown began that send the signal later: to workers told by
    // the stop frame, for their onStop handler (beginStopSequence()).
    const auto delayed = static_cast<std::size_t>(delayedSignals_ - delayedBefore);
    std::string later;
    if (delayed > 0) {
      const auto signalDelay = stopSignalDelay();
      later = " " + humanDuration(signalDelay) + " later to the " +
              (delayed == running ? std::string(running == 1 ? "one" : "ones")
                                  : std::to_string(delayed)) +
              " with an onStop handler";
    }
    logLine(std::string(why) + "; stopping " + std::to_string(running) + " worker" +
            (running == 1 ? "" : "s") + " (" + signalName(config_.stop.signal) + later +
            ", SIGKILL after " + humanDuration(config_.stop.timeout) +
            // A stop begun otherwise takes its first stop signal as the one systemd sends after
            // ExecStop= (see watchSignals()): the second kills.
            (firstStopSignalAt_ ? "; send the signal again to kill at once)"
                                : "; send a stop signal twice to kill at once)"));
  }
  maybeFinish();
}

void Supervisor::maybeFinish() {
  if (finished_ || !shuttingDown_) {
    return;
  }
  for (const auto& slot : slots_) {
    if (slot->lifecycle.state() != WorkerState::kStopped || slot->successor) {
      return;
    }
  }
  if (!replaced_.empty()) {
    return;
  }
  finished_ = true;
  reapChildren();
  reportTimer_.cancel();
  sweepTimer_.cancel();
  orphanLookTimer_.cancel();
  watchdogTimer_.cancel();
  stopSignals_.cancel();
  // Descendants that escaped their worker's process group and are still around: killed, and
  // reaped by finish(), which polls until they are gone or the bound passes.
  orphanDeadline_ = Clock::now() + kOrphanTimeout;
  finish();
}

void Supervisor::finish() {
  killOrphans(true);
  reapChildren();
  const bool orphansLeft = !childrenOf(::getpid()).empty();
  if (orphansLeft && Clock::now() < orphanDeadline_) {
    orphanTimer_.expires_after(std::chrono::milliseconds(20));
    orphanTimer_.async_wait([this](error_code ec) {
      if (!ec) {
        finish();
      }
    });
    return;
  }
  childSignal_.cancel();
  error_code ignored;
  outputRoom_.close(ignored);
  // The rest of the workers' output is read whatever the output queue holds: the workers are
  // gone, and what an escaped descendant still writes is cut off by the finish timer below.
  forEachCapture(&OutputCapture::drainToEnd);
  if (control_) {
    control_->stop();
  }
  metricsRetryTimer_.cancel();
  if (metrics_) {
    metrics_->stop();
  }
  // Output still in the pipes is written out; a descendant that escaped the process group and
  // keeps a pipe open cannot hold the supervisor for more than this.
  if (openCaptures_ > 0) {
    finishTimer_.expires_after(std::chrono::seconds(2));
    finishTimer_.async_wait([this](error_code) { forEachCapture(&OutputCapture::close); });
  }
  // What was held for clusters that stopped with the supervisor has no worker to go to.
  for (const auto& slot : slots_) {
    if (const std::size_t held = slot->removed ? 0 : held_.heldMessages(slot->id); held > 0) {
      reportDrop(DropReason::kShutdown,
                 "cluster " + std::to_string(slot->id) + ": " + std::to_string(held) + " event" +
                     (held == 1 ? "" : "s") + " held for it dropped: the supervisor stopped",
                 held);
    }
  }
  reportHeldBack(Clock::now(), true);  // the last counts are not lost with the run
  allStoppedDue_ = true;
  sayAllStoppedWhenOutputEnded();
}

void Supervisor::sayAllStoppedWhenOutputEnded() {
  if (allStoppedDue_ && openCaptures_ == 0) {
    allStoppedDue_ = false;  // said once (finish() runs once)
    logLine("all workers stopped");
  }
}

// ---------------------------------------------------------------------------------------------
// The control socket.

boost::json::object Supervisor::status() const {
  namespace json = boost::json;
  const auto now = Clock::now();
  const auto ms = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  json::array list;
  std::uint64_t eventsIn = 0;
  std::uint64_t eventsOut = 0;
  std::size_t running = 0;
  for (const auto& slot : slots_) {
    // The totals are the supervisor's: a cluster a reload removed still counts.
    eventsIn += slot->eventsIn;
    eventsOut += slot->eventsOut;
    // A removed cluster is listed while its worker still stops.
    if (slot->removed && slot->pid <= 0) {
      continue;
    }
    json::object c;
    const WorkerState state = slot->lifecycle.state();
    c["id"] = slot->id;
    c["state"] = std::string(toString(state));
    c["ready"] = state == WorkerState::kRunning;
    c["connected"] = slot->connection != nullptr && slot->connection->welcomed();
    if (slot->pid > 0) {
      c["pid"] = slot->pid;
      c["uptime_ms"] = ms(now - slot->lifecycle.startedAt());
    } else {
      c["pid"] = nullptr;
      c["uptime_ms"] = nullptr;
    }
    // The worker process's own memory and CPU time (not those of processes it started).
    const auto usage = slot->pid > 0 ? resourceUseOf(slot->pid) : std::nullopt;
    c["rss_bytes"] = usage ? json::value(usage->residentBytes) : json::value(nullptr);
    c["cpu_ms"] = usage ? json::value(usage->cpuMilliseconds) : json::value(nullptr);
    c["restarts"] = slot->lifecycle.restarts();
    c["last_exit"] = slot->lastExit.empty() ? json::value(nullptr) : json::value(slot->lastExit);
    c["last_exit_reason"] =
        slot->lastExitReason.empty() ? json::value(nullptr) : json::value(slot->lastExitReason);
    // When a cluster that waits (its backoff, or the retry of a failed one) starts again.
    if (slot->nextStartAt) {
      c["next_start_ms"] = std::max<std::int64_t>(0, ms(*slot->nextStartAt - now));
    } else {
      c["next_start_ms"] = nullptr;
    }
    c["events_in"] = slot->eventsIn;
    c["events_out"] = slot->eventsOut;
    c["queued_bytes"] = slot->connection ? slot->connection->queuedBytes() : 0;
    c["held_events"] = slot->removed ? 0 : held_.heldMessages(slot->id);
    c["shards"] = [&] {
      json::array shards;
      for (const auto shard : config::shardsFor(config_, slot->id)) {
        shards.push_back(shard);
      }
      return shards;
    }();
    if (slot->removed) {
      c["removed"] = true;
    }
    if (slot->successor) {
      c["successor_pid"] = slot->successor->pid;
    }
    // Workers a rolling restart replaced that are still stopping (in their onStop, say).
    json::array replacedPids;
    for (const auto& replaced : replaced_) {
      if (replaced->cluster == slot->id) {
        replacedPids.push_back(replaced->pid);
      }
    }
    if (!replacedPids.empty()) {
      c["replaced_pids"] = std::move(replacedPids);
    }
    c["outdated"] = slot->outdated;
    if (state == WorkerState::kRunning && !slot->removed) {
      ++running;
    }
    list.push_back(std::move(c));
  }
  json::object result;
  result["name"] = config_.name;
  result["config"] = config_.sourceFile.string();
  result["pid"] = ::getpid();
  result["uptime_ms"] = ms(now - startedAt_);
  result["stopping"] = shuttingDown_;
  result["reloads"] = reloads_;
  if (config_.metrics.listen.empty()) {
    result["metrics"] = nullptr;
  } else {
    result["metrics"] = json::object{
        {"listen", config_.metrics.listen},
        {"serving", metrics_ != nullptr},
        {"error", metricsError_.empty() ? json::value(nullptr) : json::value(metricsError_)}};
  }
  if (current_) {
    result["operation"] =
        std::holds_alternative<control::ReloadRequest>(current_->operation.request)
            ? "reload"
            : "rolling restart";
  }
  result["clusters"] = std::move(list);
  json::object droppedByReason;
  for (std::size_t r = 0; r < kDropReasons.size(); ++r) {
    droppedByReason[kDropReasons[r]] = dropped_[r];
  }
  result["totals"] = json::object{{"clusters", clusters()},
                                  {"running", running},
                                  {"events_in", eventsIn},
                                  {"events_out", eventsOut},
                                  {"dropped_events", droppedEvents_},
                                  {"dropped_by_reason", std::move(droppedByReason)},
                                  {"senders_held_back", heldBack_},
                                  {"receivers_stalled", stalls_},
                                  {"log_lines_dropped", droppedOutputLines()}};
  return result;
}

std::string Supervisor::metricsText() const {
  MetricsText out;
  const auto id = [](const Slot& slot) { return std::to_string(slot.id); };
  // Gauges describe the clusters there are (and removed ones still stopping); counters keep
  // every cluster that ever ran, so a removed cluster's last counts are not lost to a scrape.
  std::vector<const Slot*> counted;
  for (const auto& slot : slots_) {
    counted.push_back(slot.get());
  }
  std::vector<const Slot*> shown;
  for (const auto& slot : slots_) {
    if (!slot->removed || slot->pid > 0) {
      shown.push_back(slot.get());
    }
  }
  // A family with one sample per cluster of `slots`.
  const auto perCluster = [&](std::string_view name, std::string_view type, std::string_view help,
                              const std::vector<const Slot*>& slots, const auto& value) {
    out.family(name, type, help);
    for (const Slot* slot : slots) {
      out.sample({{"cluster", id(*slot)}}, value(*slot));
    }
  };
  // Which supervisor answers: a scraper pointed at an address another bot's supervisor took
  // (this one could not bind it) can tell.
  out.family("clustervisor_info", "gauge",
             "Always 1; its labels name the bot, its configuration file and the supervisor's "
             "pid.");
  const std::string configFile = config_.sourceFile.string();
  const std::string pid = std::to_string(::getpid());
  out.sample({{"name", config_.name}, {"config", configFile}, {"pid", pid}}, std::uint64_t{1});
  out.family("clustervisor_clusters", "gauge", "Clusters the bot is configured to run.");
  out.sample(std::uint64_t{clusters()});
  out.family("clustervisor_cluster_state", "gauge",
             "1 for the state each cluster is in (queued, starting, running, stopping, "
             "backing-off, failed, exited, stopped), 0 for the others.");
  constexpr std::array kStates = {WorkerState::kQueued,     WorkerState::kStarting,
                                  WorkerState::kRunning,    WorkerState::kStopping,
                                  WorkerState::kBackingOff, WorkerState::kFailed,
                                  WorkerState::kExited,     WorkerState::kStopped};
  for (const Slot* slot : shown) {
    const std::string cluster = id(*slot);
    for (const WorkerState state : kStates) {
      out.sample({{"cluster", cluster}, {"state", toString(state)}},
                 std::uint64_t{slot->lifecycle.state() == state ? 1u : 0u});
    }
  }
  perCluster("clustervisor_cluster_ready", "gauge", "1 when the cluster's worker is ready.", shown,
             [&](const Slot& slot) { return std::uint64_t{slot.lifecycle.ready() ? 1u : 0u}; });
  perCluster("clustervisor_cluster_restarts_total", "counter",
             "Starts of each cluster after its first (crashes, requests, failed spawns).", counted,
             [&](const Slot& slot) { return std::uint64_t{slot.lifecycle.restarts()}; });
  out.family("clustervisor_cluster_exits_total", "counter",
             "Worker exits by reason: success, failure (an exit status the policy counts as "
             "failed), signal, start_timeout, hung, protocol_error, restart (requested), "
             "shutdown, removed (by a reload), resharded (stopped by a reload that moved its "
             "shards), spawn_failed.");
  for (const Slot* slot : counted) {
    const std::string cluster = id(*slot);
    for (const std::string_view reason : kExitReasons) {
      const auto it = slot->exits.find(reason);
      out.sample({{"cluster", cluster}, {"reason", std::string(reason)}},
                 it != slot->exits.end() ? it->second : std::uint64_t{0});
    }
  }
  perCluster("clustervisor_cluster_events_received_total", "counter",
             "Events the cluster's workers sent to the supervisor.", counted,
             [&](const Slot& slot) { return std::uint64_t{slot.eventsIn}; });
  perCluster("clustervisor_cluster_events_delivered_total", "counter",
             "Events queued for the cluster's workers.", counted,
             [&](const Slot& slot) { return std::uint64_t{slot.eventsOut}; });
  perCluster("clustervisor_cluster_received_bytes_total", "counter",
             "Bytes of the events the cluster's workers sent (frames, headers included).", counted,
             [&](const Slot& slot) { return std::uint64_t{slot.bytesIn}; });
  perCluster("clustervisor_cluster_delivered_bytes_total", "counter",
             "Bytes of the events queued for the cluster's workers.", counted,
             [&](const Slot& slot) { return std::uint64_t{slot.bytesOut}; });
  perCluster("clustervisor_cluster_outbox_bytes", "gauge",
             "Bytes queued for the cluster's worker and not yet written (events.outbox_limit "
             "bounds it).",
             shown, [&](const Slot& slot) {
               return std::uint64_t{slot.connection ? slot.connection->queuedBytes() : 0u};
             });
  perCluster("clustervisor_cluster_held_events", "gauge",
             "emitTo events kept for the cluster while it is not connected.", shown,
             [&](const Slot& slot) {
               return std::uint64_t{slot.removed ? 0u : held_.heldMessages(slot.id)};
             });
  // The worker processes' own memory and CPU time, read from /proc now (a cluster without a
  // worker has no sample).
  std::vector<std::pair<const Slot*, ResourceUse>> used;
  for (const Slot* slot : shown) {
    if (slot->pid > 0) {
      if (const auto use = resourceUseOf(slot->pid)) {
        used.emplace_back(slot, *use);
      }
    }
  }
  out.family("clustervisor_cluster_resident_bytes", "gauge",
             "Resident memory of the cluster's worker process (not of processes it started).");
  for (const auto& [slot, use] : used) {
    out.sample({{"cluster", id(*slot)}}, use.residentBytes);
  }
  out.family("clustervisor_cluster_cpu_seconds_total", "counter",
             "User and system CPU time of the cluster's current worker process (from zero again "
             "when a new worker starts).");
  for (const auto& [slot, use] : used) {
    out.sample({{"cluster", id(*slot)}}, static_cast<double>(use.cpuMilliseconds) / 1000.0);
  }
  out.family("clustervisor_dropped_events_total", "counter",
             "Events dropped, by reason: outbox_full, hold_full, hold_expired, unknown_target, "
             "removed (held for a cluster a reload removed), worker_gone (still queued for a "
             "worker that went away), shutdown (held for a cluster when the supervisor "
             "stopped).");
  for (std::size_t r = 0; r < kDropReasons.size(); ++r) {
    out.sample({{"reason", std::string(kDropReasons[r])}}, dropped_[r]);
  }
  out.family("clustervisor_senders_held_back_total", "counter",
             "Times a worker's events were not read while a cluster it sent to caught up, or "
             "while it did not read its own waits' acknowledgements (backpressure).");
  out.sample(heldBack_);
  out.family("clustervisor_receivers_stalled_total", "counter",
             "Times a worker took no bytes for the stall timeout with bytes queued for it.");
  out.sample(stalls_);
  out.family("clustervisor_log_lines_dropped_total", "counter",
             "The supervisor's own log lines dropped because its standard output or error took "
             "nothing for too long.");
  out.sample(droppedOutputLines());
  out.family("clustervisor_waits_opened_total", "counter",
             "broadcastAndWait calls the supervisor tracked.");
  out.sample(waitsOpened_);
  out.family("clustervisor_waits_completed_total", "counter",
             "broadcastAndWait calls every recipient acknowledged (or left).");
  out.sample(waitsCompleted_);
  out.family("clustervisor_waits_ended_early_total", "counter",
             "broadcastAndWait calls the waiting worker ended before every recipient acknowledged "
             "(its timeout, its expected count reached, or a cancellation).");
  out.sample(waitsEndedEarly_);
  out.family("clustervisor_waits_rejected_total", "counter",
             "broadcastAndWait calls refused (too many open, or a reused id).");
  out.sample(waitsRejected_);
  out.family("clustervisor_waits_discarded_total", "counter",
             "broadcastAndWait calls forgotten unfinished: their worker went away, or they were "
             "open for an hour.");
  out.sample(waits_.discardedWaits());
  out.family("clustervisor_waits_open", "gauge", "broadcastAndWait calls open now.");
  out.sample(std::uint64_t{waits_.openWaits()});
  out.family("clustervisor_reloads_total", "counter", "Reloads applied.");
  out.sample(reloads_);
  out.family("clustervisor_reload_failures_total", "counter",
             "Reloads refused because the config file was invalid.");
  out.sample(reloadFailures_);
  const auto usage = readSelfUsage();
  out.family("clustervisor_supervisor_resident_bytes", "gauge",
             "Resident memory of the supervisor process.");
  out.sample(usage.residentBytes);
  out.family("clustervisor_supervisor_open_fds", "gauge",
             "Open file descriptors of the supervisor process.");
  out.sample(usage.openFds);
  out.family("clustervisor_supervisor_uptime_seconds", "gauge",
             "Seconds since the supervisor started.");
  out.sample(std::chrono::duration<double>(Clock::now() - startedAt_).count());
  return out.text();
}

void Supervisor::onControl(const control::Request& request, ControlServer::Reply reply) {
  if (const auto* restart = std::get_if<control::RestartRequest>(&request)) {
    if (shuttingDown_) {
      reply(control::encodeError("the supervisor is stopping"));
      return;
    }
    for (const auto id : restart->clusters) {
      if (id >= clusters()) {
        reply(control::encodeError("cluster " + std::to_string(id) +
                                   " does not exist (clusters are 0.." +
                                   std::to_string(clusters() - 1) + ")"));
        return;
      }
    }
    if (restart->rolling) {
      enqueueOperation({*restart, std::move(reply)});
      return;
    }
    std::vector<std::uint32_t> ids = restart->clusters;
    if (restart->all) {
      ids.clear();
      for (std::uint32_t id = 0; id < clusters(); ++id) {
        ids.push_back(id);
      }
    }
    boost::json::array restarted;
    for (const auto id : ids) {
      Slot& slot = *slots_[id];
      logLine(describe(slot) + ": restart requested over the control socket (was " +
              std::string(toString(slot.lifecycle.state())) + ")");
      failSuccessor(slot, "was stopped: a restart of its cluster was requested");
      handle(slot, Kind::kRestartRequested);
      restarted.push_back(id);
    }
    reply(control::encodeSuccess(boost::json::object{{"restarting", std::move(restarted)}}));
    return;
  }
  if (const auto* reload = std::get_if<control::ReloadRequest>(&request)) {
    if (shuttingDown_) {
      reply(control::encodeError("the supervisor is stopping"));
      return;
    }
    logLine("reload requested over the control socket");
    enqueueOperation({*reload, std::move(reply)});
    return;
  }
  if (std::holds_alternative<control::StopRequest>(request)) {
    const bool already = shuttingDown_;
    // The pid and the longest a stop takes, for a client that waits for the end.
    reply(control::encodeSuccess(
        boost::json::object{{"stopping", true},
                            {"already", already},
                            {"pid", ::getpid()},
                            {"stop_timeout_ms", config_.stop.timeout.count()}}));
    // After the reply is on its way: the stop may end the event loop soon.
    asio::post(io_, [this] { beginShutdown("stop requested over the control socket"); });
    return;
  }
  reply(control::encodeSuccess(status()));
}

// ---------------------------------------------------------------------------------------------
// Successors: a rolling restart keeps a cluster's running worker until its new one is ready.

bool Supervisor::startSuccessor(Slot& slot) {
  slot.handOverFailure.clear();
  error_code ec;
  std::string what;
  auto worker = spawner_.spawn(spawnRequest(slot.id), ec, what);
  if (ec) {
    slot.handOverFailure = "could not be started: " + what;
    logError(describe(slot) + ": its new worker " + slot.handOverFailure +
             "; the running worker goes on");
    return false;
  }
  auto successor = std::make_unique<Successor>(io_);
  successor->pid = worker.pid;
  successor->spawnedAt = Clock::now();
  if (const auto info = readProcess(worker.pid)) {
    successor->processStartTime = info->startTime;
  }
  successor->heartbeatTimeout = config_.heartbeat.timeout;
  successor->heartbeatInterval = config_.heartbeat.interval;
  successor->maxPayload = config_.events.maxPayload;
  successor->startedWith = workerConfig();
  successor->connection = std::make_shared<WorkerConnection>(
      std::move(worker.socket), slot.id, wire::maxFrameSizeFor(config_.events.maxPayload),
      config_.events.outboxLimit, static_cast<FrameSink&>(*this), writeBatch_, readScratch_);
  successor->connection->start();
  std::tie(successor->out, successor->err) = capture(slot.id, worker);
  successor->timer.expires_after(config_.start.timeout);
  successor->timer.async_wait([this, &slot](error_code timerError) {
    if (!timerError) {
      failSuccessor(slot, "was not ready within " + humanDuration(config_.start.timeout) +
                              " (start.timeout)");
    }
  });
  logLine(describe(slot) + ": new worker (pid " + std::to_string(worker.pid) +
          ") started next to it; it takes over once it is ready");
  slot.successor = std::move(successor);
  return true;
}

void Supervisor::failSuccessor(Slot& slot, const std::string& why) {
  Successor* successor = slot.successor.get();
  if (successor == nullptr || successor->failed) {
    return;
  }
  successor->failed = true;
  slot.handOverFailure = why;
  if (!shuttingDown_) {
    logError(describe(slot) + ": its new worker (pid " + std::to_string(successor->pid) + ") " +
             why + "; stopping it, the running worker goes on");
  }
  if (successor->connection) {
    successor->connection->close();
  }
  waits_.ownerGone(slot.id, static_cast<std::uint64_t>(successor->pid));
  ::kill(-successor->pid, config_.stop.signal);
  successor->timer.expires_after(config_.stop.timeout);
  successor->timer.async_wait([this, &slot](error_code ec) {
    if (!ec && slot.successor) {
      killGroup(slot.successor->pid);
    }
  });
  progressOperation();
}

void Supervisor::onSuccessorFrame(Slot& slot, WorkerConnection& connection,
                                  const wire::Header& header, std::span<std::byte> frame) {
  Successor& successor = *slot.successor;
  if (successor.failed) {
    return;
  }
  if (!connection.welcomed()) {
    if (header.type != wire::FrameType::kHello) {
      failSuccessor(slot, "sent " + std::string(wire::toString(header.type)) + " before HELLO");
      return;
    }
    if (welcome(slot, connection, frame, successor.heartbeatTimeout, successor.heartbeatInterval,
                successor.maxPayload) &&
        config_.start.ready == config::ReadyWhen::kConnect) {
      promote(slot);
    }
    return;
  }
  switch (header.type) {
    case wire::FrameType::kEvent:
      routeEvent(slot, connection, header, frame);
      return;
    case wire::FrameType::kReady:
      promote(slot);
      return;
    case wire::FrameType::kStopHandler:
      successor.stopHandler = true;
      return;
    case wire::FrameType::kWaitDone:
      if (waits_.cancel(slot.id, header.correlation, static_cast<std::uint64_t>(successor.pid))) {
        ++waitsEndedEarly_;
      }
      return;
    case wire::FrameType::kHeartbeat:
    case wire::FrameType::kAck:  // it was sent no events
      return;
    case wire::FrameType::kHello:
    case wire::FrameType::kWelcome:
    case wire::FrameType::kWaitClosed:
    case wire::FrameType::kTotalChanged:
    case wire::FrameType::kStop:
      break;
  }
  failSuccessor(
      slot, "protocol error: unexpected " + std::string(wire::toString(header.type)) + " frame");
}

void Supervisor::promote(Slot& slot) {
  if (slot.lifecycle.state() != WorkerState::kRunning || slot.pid <= 0) {
    // Restarted or stopped meanwhile: there is no running worker to hand over from.
    failSuccessor(slot, "was stopped: its cluster was restarted or stopped meanwhile");
    return;
  }
  auto successor = std::move(slot.successor);
  successor->timer.cancel();
  const auto now = Clock::now();
  auto replaced = std::make_unique<Replaced>(io_);
  replaced->cluster = slot.id;
  replaced->pid = slot.pid;
  replaced->exitsBefore = slot.exitsRecorded;
  replaced->connection = std::move(slot.connection);
  replaced->out = std::move(slot.out);
  replaced->err = std::move(slot.err);
  const bool oldStopHandler = slot.stopHandler;
  slot.startTimer.cancel();
  slot.heartbeatTimer.cancel();
  slot.killTimer.cancel();
  slot.signalTimer.cancel();

  // From here on the cluster is the new worker; the relay keeps the cluster connected, so the
  // next event goes to it.
  slot.pid = successor->pid;
  slot.processStartTime = successor->processStartTime;
  slot.connection = std::move(successor->connection);
  slot.out = std::move(successor->out);
  slot.err = std::move(successor->err);
  slot.stopHandler = successor->stopHandler;
  slot.heartbeatTimeout = successor->heartbeatTimeout;
  slot.heartbeatInterval = successor->heartbeatInterval;
  slot.maxPayload = successor->maxPayload;
  slot.startedWith = std::move(successor->startedWith);
  slot.lastHeard = now;
  // Started before a reload that changed settings for workers, it may be out of date already.
  slot.outdated = runsOutdated(slot);
  slot.handOverFailure.clear();
  slot.lifecycle.handOver(successor->spawnedAt, now);
  resumeHeldBack();  // the cluster's new outbox is empty: nobody waits for the old one
  watchHeartbeat(slot);
  logLine(describe(slot) + " is ready after " + humanDuration(now - successor->spawnedAt) +
          " and takes over cluster " + std::to_string(slot.id) + " from pid " +
          std::to_string(replaced->pid) + ", which is stopped");

  Replaced& old = *replaced;
  replaced_.push_back(std::move(replaced));
  // The waits the old worker had yet to acknowledge complete now without it, as they would at a
  // restart (the new one was not sent those events); its own waits stay open, and their
  // acknowledgements go on reaching it (see WaitTable). Only now, with both workers where
  // sendToWaiter() looks for them: a wait the new one made can be among those completing.
  closeWaits(waits_.recipientGone(slot.id));
  const std::string what = beginStopSequence(old.connection.get(), oldStopHandler, old.signalTimer,
                                             [&old] { return old.pid; });
  old.killTimer.expires_after(config_.stop.timeout);
  old.killTimer.async_wait([this, &old, what](error_code ec) {
    if (!ec && old.pid > 0) {
      logWarning("cluster " + std::to_string(old.cluster) + "'s replaced worker (pid " +
                 std::to_string(old.pid) + ") did not exit within " +
                 humanDuration(config_.stop.timeout) + " of " + what + "; sending SIGKILL");
      killGroup(old.pid);
    }
  });
  progressOperation();
}

void Supervisor::onSuccessorExit(Slot& slot, int status) {
  auto successor = std::move(slot.successor);
  successor->timer.cancel();
  readWhatIsThere(successor->out, successor->err);
  const std::string how = describeExit(status);
  if (successor->connection) {
    successor->connection->close();
  }
  waits_.ownerGone(slot.id, static_cast<std::uint64_t>(successor->pid));
  killGroup(successor->pid);  // whatever it started in its group
  countExit(slot, successor->failed ? "start_timeout" : "failure");
  if (!successor->failed) {
    slot.handOverFailure = how + " after " + humanDuration(Clock::now() - successor->spawnedAt);
    logError(describe(slot) + ": its new worker (pid " + std::to_string(successor->pid) + ") " +
             slot.handOverFailure + " before it was ready; the running worker goes on");
  } else {
    logLine(describe(slot) + ": its new worker (pid " + std::to_string(successor->pid) + ") " +
            how);
  }
  if (shuttingDown_) {
    maybeFinish();
  } else {
    progressOperation();
  }
}

void Supervisor::onReplacedExit(std::size_t index, int status) {
  std::unique_ptr<Replaced> replaced = std::move(replaced_[index]);
  replaced_.erase(replaced_.begin() + static_cast<std::ptrdiff_t>(index));
  replaced->killTimer.cancel();
  replaced->signalTimer.cancel();
  killGroup(replaced->pid);
  waits_.ownerGone(replaced->cluster, static_cast<std::uint64_t>(replaced->pid));
  const std::string how = describeExit(status);
  readWhatIsThere(replaced->out, replaced->err);
  logLine("cluster " + std::to_string(replaced->cluster) + "'s replaced worker (pid " +
          std::to_string(replaced->pid) + ") " + how);
  // The cluster's last exit, as the metrics count it, unless the worker that replaced it has
  // ended since (whether the cluster failed is for its current worker to say).
  Slot& slot = *slots_[replaced->cluster];
  countExit(slot, "restart");
  if (slot.exitsRecorded == replaced->exitsBefore) {
    slot.lastExit = how;
    slot.lastExitNote = how + ", replaced by a rolling restart";
    slot.lastExitReason = "restart";
  }
  if (replaced->connection) {
    // What it wrote before exiting is still read and relayed.
    replaced->connection->retire(kDrainTimeout);
    countLostWith(slot, *replaced->connection, "exited");
    retiring_.push_back(std::move(replaced->connection));
  }
  if (shuttingDown_) {
    maybeFinish();
  } else {
    progressOperation();  // a reload that moved shards may wait for it
  }
}

// ---------------------------------------------------------------------------------------------
// Reloads and rolling restarts: one at a time, each answered when it is done.

void Supervisor::enqueueOperation(Operation operation) {
  if (shuttingDown_) {
    if (operation.reply) {
      operation.reply(control::encodeError("the supervisor is stopping"));
    }
    return;
  }
  if (operations_.size() >= kMaxQueuedOperations) {
    const std::string why =
        std::to_string(kMaxQueuedOperations) + " reloads and rolling restarts are already queued";
    if (operation.reply) {
      operation.reply(control::encodeError(why + "; try again once one is done"));
    } else {
      logError("reload not done: " + why);
    }
    return;
  }
  if (current_) {
    logLine(std::string(std::holds_alternative<control::ReloadRequest>(operation.request)
                            ? "reload"
                            : "rolling restart") +
            " queued behind the " +
            (std::holds_alternative<control::ReloadRequest>(current_->operation.request)
                 ? "reload"
                 : "rolling restart") +
            " in progress");
  }
  operations_.push_back(std::move(operation));
  if (!current_) {
    nextOperation();
  }
}

void Supervisor::nextOperation() {
  if (current_ || operations_.empty() || shuttingDown_) {
    return;
  }
  current_.emplace();
  current_->operation = std::move(operations_.front());
  operations_.pop_front();
  // Starting an operation can finish steps at once (a spawn that fails, a cluster with nothing
  // to stop); progress is judged once it has all been set in motion.
  applying_ = true;
  if (std::holds_alternative<control::ReloadRequest>(current_->operation.request)) {
    beginReload();
  } else {
    const auto& restart = std::get<control::RestartRequest>(current_->operation.request);
    std::vector<std::uint32_t> ids = restart.clusters;
    if (restart.all) {
      ids.clear();
      for (std::uint32_t id = 0; id < clusters(); ++id) {
        ids.push_back(id);
      }
    }
    // Clusters a reload removed while this waited in line are no longer there to restart.
    std::erase_if(ids, [this](std::uint32_t id) { return id >= clusters(); });
    beginRollout(std::move(ids), restart.batch.value_or(config_.rolling.batch),
                 restart.delay.value_or(config_.rolling.delay));
  }
  applying_ = false;
  progressOperation();
}

void Supervisor::finishOperation(bool ok, std::string error) {
  if (!current_) {
    return;
  }
  rolloutTimer_.cancel();
  Operation operation = std::move(current_->operation);
  const bool reload = std::holds_alternative<control::ReloadRequest>(operation.request);
  if (toldReady_ && !shuttingDown_ && reload) {
    notifier_.send("READY=1");  // the end of RELOADING=1
  }
  tellReadyOnce();  // a reload may have removed the last cluster not ready yet
  tellStatus();     // or changed the cluster count
  if (!ok && reload && !current_->result.empty()) {
    // A reload that was applied (an invalid file has no result): its answer goes out with the
    // error (see below), and the clusters that still run with the settings from before it are
    // those its rolling restart did not get to.
    const auto needing = clustersNeedingRestart();
    current_->result["clusters_needing_restart"] =
        boost::json::array(needing.begin(), needing.end());
  }
  boost::json::object result = std::move(current_->result);
  current_.reset();
  if (operation.reply) {
    // A failed reload (its rolling restart halted, or the supervisor began to stop) was applied
    // all the same: the answer says what changed, as a successful one does.
    operation.reply(
        ok ? control::encodeSuccess(std::move(result))
           : control::encodeError(error, reload ? std::move(result) : boost::json::object{}));
  }
  // Outside the handler that finished this one: the next may finish at once too.
  asio::post(io_, [this] { nextOperation(); });
}

void Supervisor::progressOperation() {
  if (!current_ || applying_) {
    return;
  }
  std::erase_if(current_->removing, [this](std::uint32_t id) {
    return slots_[id]->lifecycle.state() == WorkerState::kStopped;
  });
  if (!current_->removing.empty()) {
    return;
  }
  if (!startWithMovedShards()) {
    return;
  }
  if (current_->rollout && !advanceRollout()) {
    return;
  }
  if (current_) {
    finishOperation(true);
  }
}

void Supervisor::beginReload() {
  if (toldReady_) {
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
    notifier_.send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(now.count()));
  }
  const auto& path = config_.sourceFile;
  auto loaded = loadConfigToRun(path);
  if (onConfigRead_) {
    onConfigRead_(path);  // whatever it holds: the file at the path is this bot's
  }
  if (!loaded.errors.empty()) {
    ++reloadFailures_;
    std::string errors;
    for (const auto& error : loaded.errors) {
      logError(error.format());
      errors += (errors.empty() ? "" : "\n") + error.format();
    }
    const std::string summary = std::to_string(loaded.errors.size()) + " error" +
                                (loaded.errors.size() == 1 ? "" : "s") + " in " + path.string() +
                                "; reload refused, the running configuration stays";
    logError(summary);
    finishOperation(false, errors + "\n" + summary);
    return;
  }
  config::BotConfig next = std::move(*loaded.config);
  const ConfigChange change = compareConfigs(config_, next);
  // What only a new supervisor takes: it keeps serving where it was started.
  next.control = config_.control;
  next.metrics = config_.metrics;
  const std::uint32_t from = config_.clusters;
  const std::uint32_t to = next.clusters;
  config_ = std::move(next);
  workerConfig_.reset();
  ++reloads_;
  for (auto& slot : slots_) {
    slot->lifecycle.setRestartConfig(config_.restart);
    slot->lifecycle.setReadyWhen(config_.start.ready);
  }
  queue_.setPace(config_.start.delay, config_.start.waitForReady);
  held_.setLimits(holdLimitsFor(config_));

  const auto keys = [](const std::vector<std::string>& list) {
    boost::json::array array;
    for (const auto& key : list) {
      array.emplace_back(key);
    }
    return array;
  };
  const auto joined = [](const std::vector<std::string>& list) {
    std::string text;
    for (const auto& key : list) {
      text += (text.empty() ? "" : ", ") + key;
    }
    return text;
  };
  auto& result = current_->result;
  result["clusters_before"] = from;
  result["clusters_after"] = to;
  result["applied"] = keys(change.applied);
  result["restart_needed"] = keys(change.forNewWorkers);
  result["supervisor_restart_needed"] = keys(change.forNewSupervisor);
  if (change.empty()) {
    logLine("reloaded " + path.string() + ": nothing changed");
  } else {
    logLine("reloaded " + path.string() + ": " +
            (change.applied.empty() ? std::string("nothing to apply now")
                                    : "applied " + joined(change.applied)));
  }
  if (!change.forNewSupervisor.empty()) {
    logLine("reload: " + joined(change.forNewSupervisor) +
            " take effect when the supervisor is started again");
  }
  // A shard must never have two workers (two gateway sessions of one Discord shard, say): the
  // clusters whose shards moved stop, and they start with their new shards, as do the clusters
  // added, only once every worker that held shards before has stopped.
  stopToMoveShards(change.shardsChanged);
  applyScale(from, to);
  markOutdated();
  const std::vector<std::uint32_t> outdated = clustersNeedingRestart();
  const bool rolling = std::get<control::ReloadRequest>(current_->operation.request).rolling;
  result["clusters_needing_restart"] = boost::json::array(outdated.begin(), outdated.end());
  if (outdated.empty()) {
    return;
  }
  const std::string what = change.forNewWorkers.empty()
                               ? std::string("an earlier reload's settings for workers")
                               : joined(change.forNewWorkers) + " changed";
  if (rolling) {
    logLine("reload: " + what + "; rolling restart of " + std::to_string(outdated.size()) +
            " cluster" + (outdated.size() == 1 ? "" : "s"));
    result["rolling"] = true;
    beginRollout(outdated, config_.rolling.batch, config_.rolling.delay);
    return;
  }
  logLine("reload: " + what + "; " + std::to_string(outdated.size()) + " running worker" +
          (outdated.size() == 1 ? " keeps the settings it was" : "s keep the settings they were") +
          " started with until restarted (clustervisor restart --all "
          "--rolling, or clustervisor reload --rolling)");
}

const std::shared_ptr<const config::BotConfig>& Supervisor::workerConfig() {
  if (!workerConfig_) {
    workerConfig_ = std::make_shared<const config::BotConfig>(config_);
  }
  return workerConfig_;
}

std::vector<std::uint32_t> Supervisor::clustersNeedingRestart() const {
  std::vector<std::uint32_t> ids;
  for (std::uint32_t id = 0; id < clusters(); ++id) {
    if (slots_[id]->outdated && !slots_[id]->resharding) {
      ids.push_back(id);
    }
  }
  return ids;
}

bool Supervisor::runsOutdated(const Slot& slot) const {
  // Judged against what its worker was started with, not against the config before the last
  // reload: whatever restarts it brings it up to date, and so does a reload back to the settings
  // it runs with.
  if (slot.pid <= 0 || slot.resharding || !slot.startedWith || slot.startedWith == workerConfig_) {
    return false;
  }
  const auto restart = compareConfigs(*slot.startedWith, config_).clustersToRestart();
  return std::find(restart.begin(), restart.end(), slot.id) != restart.end();
}

void Supervisor::markOutdated() {
  for (std::uint32_t id = 0; id < clusters(); ++id) {
    slots_[id]->outdated = runsOutdated(*slots_[id]);
  }
}

void Supervisor::applyScale(std::uint32_t from, std::uint32_t to) {
  auto& result = current_->result;
  boost::json::array started;
  boost::json::array stopping;
  if (to > from) {
    // The added clusters wait for a shard move under way; none of them is part of one.
    const bool afterResharding = resharding();
    relay_.resize(to);
    held_.resize(to);
    for (std::uint32_t id = from; id < to; ++id) {
      if (id < slots_.size()) {
        // A cluster removed earlier comes back: a fresh start, as if it were new.
        Slot& slot = *slots_[id];
        slot.removed = false;
        slot.outdated = false;
        slot.lifecycle = WorkerLifecycle(config_.restart, config_.start.ready);
        ++slot.exitsRecorded;
        slot.lastExit.clear();
        slot.lastExitNote.clear();
        slot.lastExitReason.clear();
        slot.lastExitSucceeded = true;
      } else {
        slots_.push_back(std::make_unique<Slot>(io_, id, config_));
      }
      if (!afterResharding) {
        queue_.push(id);
      } else {
        current_->startAfterResharding.push_back(id);
      }
      started.push_back(id);
    }
    logLine("scaling from " + std::to_string(from) + " to " + std::to_string(to) +
            " clusters: starting " + rangeOf(from, to - 1));
  } else if (to < from) {
    logLine("scaling from " + std::to_string(from) + " to " + std::to_string(to) +
            " clusters: stopping " + rangeOf(to, from - 1));
    // No event reaches a removed cluster from now on; the waits it was part of complete without
    // it, and what was held for it is dropped and counted.
    relay_.resize(to);
    const auto dropped = held_.resize(to);
    if (dropped > 0) {
      reportDrop(DropReason::kRemoved,
                 std::to_string(dropped) + " held event(s) for the removed clusters dropped",
                 dropped);
    }
    for (std::uint32_t id = to; id < from; ++id) {
      Slot& slot = *slots_[id];
      slot.removed = true;
      failSuccessor(slot, "was stopped: its cluster was removed by the reload");
      closeWaits(waits_.clusterGone(id, static_cast<std::uint64_t>(slot.pid)));
      handle(slot, Kind::kShutdown);
      if (slot.lifecycle.state() != WorkerState::kStopped) {
        current_->removing.push_back(id);
      }
      stopping.push_back(id);
    }
  }
  if (to != from) {
    // Every worker that stays learns the new total; new workers get it in their WELCOME.
    const auto frame = wire::encodeTotalChanged(to);
    for (std::uint32_t id = 0; id < std::min(from, to); ++id) {
      sendTo(id, frame);
    }
  }
  result["started"] = std::move(started);
  result["stopped"] = std::move(stopping);
  pumpQueue();
}

bool Supervisor::resharding() const {
  return std::any_of(slots_.begin(), slots_.end(),
                     [](const auto& slot) { return slot->resharding; });
}

void Supervisor::stopToMoveShards(const std::vector<std::uint32_t>& ids) {
  if (ids.empty()) {
    return;
  }
  logLine("reload: the shards of " + formatClusters(ids) +
          " moved; stopping them, to start them with their new shards once every worker that "
          "held shards has stopped");
  boost::json::array moved;
  for (const auto id : ids) {
    Slot& slot = *slots_[id];
    failSuccessor(slot, "was stopped: the reload moved its cluster's shards");
    slot.resharding = true;
    handle(slot, Kind::kShutdown);
    moved.push_back(id);
  }
  current_->result["resharded"] = std::move(moved);
}

bool Supervisor::startWithMovedShards() {
  if (!resharding()) {
    return true;
  }
  if (shuttingDown_) {
    return false;  // the operation ends with the supervisor; nothing starts again
  }
  // Every process that may hold shards of the old split is gone: the workers of the clusters
  // whose shards moved and of those removed, a new worker of theirs that a rolling restart
  // started, and an old one it replaced that is still stopping.
  const auto movedOrRemoved = [&](std::uint32_t id) {
    return id >= clusters() || slots_[id]->resharding;
  };
  for (std::uint32_t id = 0; id < slots_.size(); ++id) {
    if (movedOrRemoved(id) &&
        ((id < clusters() && slots_[id]->lifecycle.state() != WorkerState::kStopped) ||
         slots_[id]->successor)) {
      return false;
    }
  }
  for (const auto& replaced : replaced_) {
    if (movedOrRemoved(replaced->cluster)) {
      return false;
    }
  }
  // A start can settle at once (a spawn that fails): progress is judged after them all.
  const bool wasApplying = std::exchange(applying_, true);
  // Said before the starts, whose lines follow it.
  std::vector<std::uint32_t> resumed;
  for (const auto& slot : slots_) {
    if (slot->resharding) {
      resumed.push_back(slot->id);
    }
  }
  std::vector<std::uint32_t> added;
  for (const auto id : std::exchange(current_->startAfterResharding, {})) {
    if (id < clusters()) {
      added.push_back(id);
    }
  }
  std::vector<std::uint32_t> starting = resumed;
  starting.insert(starting.end(), added.begin(), added.end());
  logLine("reload: the workers that held the moved shards have stopped; starting " +
          formatClusters(starting) + " with the new shard split");
  for (const auto id : resumed) {
    auto& slot = *slots_[id];
    slot.resharding = false;
    slot.outdated = false;
    handle(slot, Kind::kResume);  // its restart count and last exit stay
  }
  for (const auto id : added) {
    queue_.push(id);
  }
  pumpQueue();
  applying_ = wasApplying;
  return true;
}

void Supervisor::beginRollout(std::vector<std::uint32_t> ids, std::uint32_t batch,
                              std::chrono::milliseconds delay) {
  Rollout rollout;
  rollout.pending.assign(ids.begin(), ids.end());
  rollout.batchSize = std::max<std::uint32_t>(batch, 1);
  rollout.delay = delay;
  current_->rollout = std::move(rollout);
  const std::uint32_t size = current_->rollout->batchSize;
  logLine("rolling restart of " + formatClusters(ids) + " in batches of " + std::to_string(size) +
          " cluster" + (size == 1 ? "" : "s") +
          (delay.count() > 0 ? ", " + humanDuration(delay) + " apart" : std::string()));
  startBatch();
}

void Supervisor::startBatch() {
  // A restart can settle at once (a spawn that fails): progress is judged after the batch.
  const bool wasApplying = std::exchange(applying_, true);
  auto& rollout = *current_->rollout;
  while (rollout.batch.size() < rollout.batchSize && !rollout.pending.empty()) {
    const std::uint32_t id = rollout.pending.front();
    rollout.pending.pop_front();
    if (id >= clusters()) {
      continue;  // removed by a reload meanwhile
    }
    Slot& slot = *slots_[id];
    rollout.batch.emplace_back(id, slot.lifecycle.starts());
    logLine(describe(slot) + ": rolling restart (was " +
            std::string(toString(slot.lifecycle.state())) + ")");
    slot.handOverFailure.clear();
    if (slot.lifecycle.state() == WorkerState::kRunning && !slot.successor) {
      // The running worker keeps serving until its successor is ready.
      startSuccessor(slot);
    } else {
      // Nothing ready to keep: a plain restart.
      handle(slot, Kind::kRestartRequested);
    }
  }
  applying_ = wasApplying;
}

bool Supervisor::advanceRollout() {
  auto& rollout = *current_->rollout;
  if (rollout.waiting) {
    return false;
  }
  for (auto it = rollout.batch.begin(); it != rollout.batch.end();) {
    const auto [id, startsBefore] = *it;
    const Slot& slot = *slots_[id];
    const bool newWorker = slot.lifecycle.starts() > startsBefore;
    const WorkerState state = slot.lifecycle.state();
    if (slot.removed) {
      it = rollout.batch.erase(it);
      continue;
    }
    if (newWorker && state == WorkerState::kRunning) {
      rollout.restarted.push_back(id);
      logLine(describe(slot) + " is back and ready (rolling restart: " +
              std::to_string(rollout.restarted.size()) + " done, " +
              std::to_string(rollout.pending.size() + rollout.batch.size() - 1) + " to go)");
      it = rollout.batch.erase(it);
      continue;
    }
    const bool ended = state == WorkerState::kBackingOff || state == WorkerState::kFailed ||
                       state == WorkerState::kExited || state == WorkerState::kStopped;
    const bool handOverFailed = !newWorker && !slot.handOverFailure.empty();
    if (handOverFailed || (newWorker && ended)) {
      const auto list = [](const std::vector<std::uint32_t>& ids) {
        return ids.empty() ? std::string("none") : formatIdList(ids);
      };
      std::vector<std::uint32_t> notRestarted(rollout.pending.begin(), rollout.pending.end());
      std::vector<std::uint32_t> inProgress;
      for (const auto& entry : rollout.batch) {
        if (entry.first != id) {
          inProgress.push_back(entry.first);
        }
      }
      const std::string message =
          "rolling restart halted: the new worker of cluster " + std::to_string(id) +
          " did not become ready (" +
          (handOverFailed ? slot.handOverFailure + "); its old worker keeps running"
                          : slot.lastExitNote + ")") +
          "; restarted and ready: " + list(rollout.restarted) +
          (inProgress.empty() ? std::string() : "; still starting: " + list(inProgress)) +
          "; not restarted: " + list(notRestarted);
      logError(message);
      finishOperation(false, message);
      return false;
    }
    ++it;
  }
  if (!rollout.batch.empty()) {
    return false;
  }
  if (rollout.pending.empty()) {
    boost::json::array restarted;
    for (const auto id : rollout.restarted) {
      restarted.push_back(id);
    }
    logLine("rolling restart done: " + std::to_string(rollout.restarted.size()) + " cluster" +
            (rollout.restarted.size() == 1 ? "" : "s") + " restarted and ready");
    current_->result["restarted"] = std::move(restarted);
    return true;
  }
  if (rollout.delay.count() > 0) {
    rollout.waiting = true;
    rolloutTimer_.expires_after(rollout.delay);
    rolloutTimer_.async_wait([this](error_code ec) {
      if (ec || !current_ || !current_->rollout) {
        return;
      }
      current_->rollout->waiting = false;
      startBatch();
      progressOperation();
    });
    return false;
  }
  startBatch();
  // The batch may be done at once (clusters removed meanwhile): look again.
  return advanceRollout();
}

}  // namespace clustervisor
