// SPDX-License-Identifier: MIT
#include "supervisor.hpp"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <variant>

#include "exit_status.hpp"
#include "log.hpp"
#include "process_table.hpp"

namespace clustervisor {

namespace asio = boost::asio;
using boost::system::error_code;
using Kind = WorkerLifecycle::EventKind;
using Action = WorkerLifecycle::Action;

namespace {

// Held events are delivered into the worker's outbox all at once when it is back, so by default
// they take at most half of it: the rest is for the traffic that goes on meanwhile. (The config
// refuses an explicit events.hold_max_bytes above that.)
HeldMessages::Limits holdLimitsFor(const config::BotConfig& config) {
  return HeldMessages::Limits{
      config.events.holdMaxCount,
      static_cast<std::size_t>(std::min(config.events.holdMaxBytes, config.events.outboxLimit / 2)),
      config.events.holdMaxAge};
}

std::string formatDuration(std::chrono::steady_clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  char text[32];
  if (ms < 1000) {
    std::snprintf(text, sizeof text, "%lldms", static_cast<long long>(ms));
  } else {
    std::snprintf(text, sizeof text, "%.1fs", static_cast<double>(ms) / 1000.0);
  }
  return text;
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
      stopSignals_(io, SIGINT, SIGTERM, SIGHUP),
      childSignal_(io, SIGCHLD),
      finishTimer_(io),
      orphanTimer_(io),
      random_(std::random_device{}()),
      sweepTimer_(io),
      controlPath_(std::move(controlSocket)) {
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
  watchSignals();
  watchChildren();
  sweep();
  if (!controlPath_.empty()) {
    control_ = std::make_unique<ControlServer>(
        io_, controlPath_, [this](const control::Request& request) { return onControl(request); });
    std::string error;
    if (!control_->start(error)) {
      // The bot matters more than its remote control: run on without it.
      logError(error + "; clustervisor status/restart/stop cannot reach this supervisor");
      control_.reset();
    }
  }
  logLine("starting " + std::to_string(config_.clusters) + " cluster" +
          (config_.clusters == 1 ? "" : "s") + " of " + config_.name);
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
        logError(describe(slot) + " is not ready " + formatDuration(config_.start.timeout) +
                 " after it was started (start.timeout" +
                 (config_.start.ready == config::ReadyWhen::kSdk
                      ? "; the worker must call Cluster::ready()"
                      : "; the worker's SDK never connected") +
                 "); stopping it");
        queue_.settled(slot.id);
        handle(slot, Kind::kStartTimeout);
        pumpQueue();
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
      slot.restartTimer.async_wait([this, &slot, next](error_code ec) {
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
      queue_.push(slot.id);
      pumpQueue();
      break;
    case Action::kCancel:
      slot.restartTimer.cancel();
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
  while (!shuttingDown_) {
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
    if (!spawn(slot)) {
      queue_.settled(slot.id);
      checkAllEnded();
    }
  }
}

bool Supervisor::spawn(Slot& slot) {
  SpawnRequest request;
  request.clusterId = slot.id;
  request.totalClusters = config_.clusters;
  request.command = config_.command;
  request.workingDirectory = config_.workingDirectory;
  request.environment = config_.environment;
  request.shards = config::shardsFor(config_, slot.id);
  request.totalShards = config_.shards.total;
  error_code ec;
  std::string what;
  auto worker = spawner_.spawn(request, ec, what);
  if (ec) {
    const WorkerLifecycle::Step step =
        slot.lifecycle.on({Kind::kSpawnFailed,
                           Clock::now(),
                           {},
                           std::uniform_real_distribution<double>(0.0, 1.0)(random_)});
    logError(describe(slot) + ": " + what + whatNext(slot, step, "retrying"));
    slot.lastExitSucceeded = false;
    carryOut(slot, step);
    return false;
  }
  slot.pid = worker.pid;
  slot.stopHandler = false;
  slot.lastHeard = Clock::now();
  slot.processStartTime = 0;
  if (const auto info = readProcess(worker.pid)) {
    slot.processStartTime = info->startTime;
  }
  slot.connection = std::make_shared<WorkerConnection>(
      std::move(worker.socket), slot.id, wire::maxFrameSizeFor(config_.events.maxPayload),
      config_.events.outboxLimit, static_cast<FrameSink&>(*this));
  slot.connection->start();
  const std::string prefix = "[cluster " + std::to_string(slot.id) + "] ";
  const auto onEnd = [this] {
    --openCaptures_;
    if (finished_ && openCaptures_ == 0) {
      finishTimer_.cancel();
    }
  };
  openCaptures_ += 2;
  slot.out = std::make_shared<OutputCapture>(std::move(worker.out), prefix, STDOUT_FILENO, onEnd);
  slot.err = std::make_shared<OutputCapture>(std::move(worker.err), prefix, STDERR_FILENO, onEnd);
  slot.out->start();
  slot.err->start();
  // Every capture, also those of earlier runs still draining, so a stop can close them all.
  std::erase_if(captures_, [](const auto& c) { return c.expired(); });
  captures_.push_back(slot.out);
  captures_.push_back(slot.err);
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
      logLine(describe(slot) + " did not exit within " + formatDuration(config_.stop.timeout) +
              " of " + what + "; sending SIGKILL");
      ::kill(-slot.pid, SIGKILL);
    }
  });
}

void Supervisor::stopWorker(Slot& slot) {
  if (slot.pid <= 0) {
    return;
  }
  slot.startTimer.cancel();
  slot.heartbeatTimer.cancel();
  // The stop frame first; it may not fit a full outbox, and then only the signal tells.
  const bool told = slot.connection && slot.connection->welcomed() &&
                    slot.connection->send(wire::encodeStop(static_cast<std::uint32_t>(
                        std::min<std::int64_t>(config_.stop.timeout.count(), 0xFFFFFFFF))));
  // At most half the stop timeout: the signal always gets its chance before SIGKILL.
  const auto signalDelay = std::min(config_.stop.signalDelay, config_.stop.timeout / 2);
  const bool signalLater = told && slot.stopHandler && signalDelay.count() > 0;
  armKillTimer(slot, signalLater ? "the stop frame" : signalName(config_.stop.signal));
  const auto sendSignal = [this, &slot] {
    if (slot.pid > 0) {
      // The whole process group: the worker and whatever it started.
      ::kill(-slot.pid, config_.stop.signal);
    }
  };
  if (signalLater) {
    // The worker shuts down on the stop frame; the signal is the fallback.
    slot.signalTimer.expires_after(signalDelay);
    slot.signalTimer.async_wait([sendSignal](error_code ec) {
      if (!ec) {
        sendSignal();
      }
    });
  } else {
    sendSignal();
  }
}

void Supervisor::abortWorker(Slot& slot) {
  if (slot.pid <= 0) {
    return;
  }
  slot.startTimer.cancel();
  logError(describe(slot) + " sent no heartbeat for " + formatDuration(config_.heartbeat.timeout) +
           " (heartbeat.timeout): hung; sending SIGABRT, SIGKILL after " +
           formatDuration(config_.stop.timeout));
  // The worker alone: a core of the hung process is what helps; its group goes when it exits.
  ::kill(slot.pid, SIGABRT);
  armKillTimer(slot, "SIGABRT");
}

void Supervisor::watchHeartbeat(Slot& slot) {
  if (config_.heartbeat.timeout.count() == 0) {
    return;
  }
  // One timer per worker, re-armed lazily: reads only move the connection's lastRead(), and the
  // timer, when it fires early, sleeps again until the last read + timeout.
  const auto heard = [&slot] {
    return slot.connection ? std::max(slot.lastHeard, slot.connection->lastRead()) : slot.lastHeard;
  };
  slot.heartbeatTimer.expires_at(heard() + config_.heartbeat.timeout);
  slot.heartbeatTimer.async_wait([this, &slot, heard](error_code ec) {
    if (ec || slot.pid <= 0 || !hasProcess(slot.lifecycle.state()) ||
        slot.lifecycle.state() == WorkerState::kStopping) {
      return;
    }
    if (Clock::now() - heard() < config_.heartbeat.timeout) {
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
  Slot& slot = *slots_[connection.clusterId()];
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
      waits_.cancel(slot.id, header.correlation);
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

void Supervisor::onHello(Slot& slot, WorkerConnection& connection, std::span<std::byte> frame) {
  const auto hello = wire::helloBody(frame);
  if (hello.magic != wire::kHelloMagic) {
    connection.close();
    onDisconnected(connection, "HELLO without the \"CVSR\" magic: not a clustervisor worker", true);
    return;
  }
  if (hello.minVersion > wire::kProtocolVersion || hello.maxVersion < wire::kProtocolVersion) {
    connection.close();
    onDisconnected(connection,
                   "HELLO asks for protocol versions " + std::to_string(hello.minVersion) + ".." +
                       std::to_string(hello.maxVersion) + "; this supervisor speaks " +
                       std::to_string(wire::kProtocolVersion),
                   true);
    return;
  }
  wire::WelcomeBody welcome;
  welcome.clusterId = slot.id;
  welcome.totalClusters = config_.clusters;
  welcome.maxPayload = config_.events.maxPayload;
  welcome.heartbeatIntervalMs =
      config_.heartbeat.timeout.count() == 0
          ? 0
          : static_cast<std::uint32_t>(config_.heartbeat.interval.count());
  connection.send(wire::encodeWelcome(welcome));
  connection.setWelcomed();
  if (slot.lifecycle.state() == WorkerState::kStopping) {
    // Its stop began before it said hello: it gets nothing more (held events stay held for the
    // next worker), and the kill timer already runs.
    logLine(describe(slot) + " connected while being stopped");
    return;
  }
  relay_.connected(slot.id);
  const auto expiredBefore = held_.droppedExpired();
  const auto held = held_.take(slot.id, Clock::now());
  reportExpired(slot.id, held_.droppedExpired() - expiredBefore);
  for (const auto& message : held) {
    if (connection.send(message)) {
      ++slot.eventsOut;
    } else {
      reportDrop(describe(slot) + ": held event dropped, outbox full");
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
  }
}

void Supervisor::onReady(Slot& slot) {
  const auto step = slot.lifecycle.on({Kind::kReady, Clock::now()});
  if (!step.changed) {
    return;
  }
  logLine(describe(slot) + " is ready after " +
          formatDuration(Clock::now() - slot.lifecycle.startedAt()));
  slot.startTimer.cancel();
  queue_.settled(slot.id);
  pumpQueue();
}

void Supervisor::routeEvent(Slot& slot, WorkerConnection& from, const wire::Header& header,
                            std::span<std::byte> frame) {
  wire::stampSource(frame, slot.id);
  ++slot.eventsIn;
  const auto decision = relay_.route(slot.id, header.target);
  switch (decision.route) {
    case Relay::Route::kDeliver: {
      std::vector<std::uint32_t> delivered;
      // A wait from a worker that already exited has nobody to tell: just deliver the event.
      const bool wantsAcks = header.correlation != 0 && !from.retiring();
      if (decision.recipients.size() == 1) {
        const auto id = decision.recipients.front();
        if (slots_[id]->connection->send(frame)) {
          ++slots_[id]->eventsOut;
          if (wantsAcks) {
            delivered.push_back(id);
          }
        } else {
          reportOutboxFull(id);
        }
      } else if (!decision.recipients.empty()) {
        // Encoded once; every recipient's outbox shares the same bytes.
        const auto shared =
            std::make_shared<const std::vector<std::byte>>(frame.begin(), frame.end());
        for (const auto id : decision.recipients) {
          if (slots_[id]->connection->send(shared)) {
            ++slots_[id]->eventsOut;
            if (wantsAcks) {
              delivered.push_back(id);
            }
          } else {
            reportOutboxFull(id);
          }
        }
      }
      if (wantsAcks) {
        const auto opened = waits_.open(slot.id, header.correlation, delivered, Clock::now());
        if (opened != WaitTable::OpenResult::kOpened) {
          if (opened == WaitTable::OpenResult::kRejected && waitLog_.allow(Clock::now())) {
            logError(describe(slot) +
                     ": too many open broadcastAndWait calls (or a reused id); this one "
                     "completes without acknowledgements" +
                     waitLog_.suppressedNote());
          }
          from.send(wire::encodeWaitClosed(slot.id, header.correlation,
                                           {static_cast<std::uint32_t>(delivered.size()), 0}));
        }
      }
      return;
    }
    case Relay::Route::kHold:
      if (!holdFor(header.target, frame)) {
        reportDrop("cluster " + std::to_string(header.target) +
                   " is not connected and its held events are at the limit (" +
                   std::to_string(held_.limits().maxMessages) + " events, " +
                   std::to_string(held_.limits().maxBytes) + " bytes); event from cluster " +
                   std::to_string(slot.id) + " dropped");
      }
      if (header.correlation != 0) {
        from.send(wire::encodeWaitClosed(slot.id, header.correlation, {0, 0}));
      }
      return;
    case Relay::Route::kUnknownTarget:
      reportDrop(describe(slot) + " sent an event to cluster " + std::to_string(header.target) +
                 ", which does not exist (clusters are 0.." +
                 std::to_string(relay_.clusters() - 1) + "); dropped");
      if (header.correlation != 0) {
        from.send(wire::encodeWaitClosed(slot.id, header.correlation, {0, 0}));
      }
      return;
  }
}

void Supervisor::routeAck(Slot& slot, const wire::Header& header, std::span<std::byte> frame) {
  const auto outcome = waits_.ack(header.target, header.correlation, slot.id);
  if (outcome.forward) {
    wire::stampSource(frame, slot.id);
    sendTo(header.target, frame);
  }
  if (outcome.closed) {
    sendTo(header.target, wire::encodeWaitClosed(header.target, header.correlation, outcome.body));
  }
}

void Supervisor::sendTo(std::uint32_t id, std::span<const std::byte> frame) {
  if (id >= slots_.size()) {
    return;
  }
  const auto& connection = slots_[id]->connection;
  if (connection && connection->welcomed() && !connection->send(frame)) {
    reportOutboxFull(id);
  }
}

void Supervisor::closeWaits(const std::vector<WaitTable::Closed>& closed) {
  for (const auto& c : closed) {
    sendTo(c.waiter, wire::encodeWaitClosed(c.waiter, c.correlation, c.body));
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
    reportDrop("cluster " + std::to_string(cluster) + ": " + std::to_string(expired) +
                   " held event(s) older than " + formatDuration(config_.events.holdMaxAge) +
                   " dropped",
               expired);
  }
}

void Supervisor::reportOutboxFull(std::uint32_t recipient) {
  const auto& connection = slots_[recipient]->connection;
  reportDrop("cluster " + std::to_string(recipient) + ": event dropped, outbox full (" +
             std::to_string(connection ? connection->queuedBytes() : 0) + " bytes queued, limit " +
             std::to_string(config_.events.outboxLimit) + ")");
}

void Supervisor::reportDrop(const std::string& message, std::uint64_t count) {
  droppedEvents_ += count;
  // One line per second at most: a stuck worker must not flood the log as well.
  if (dropLog_.allow(Clock::now(), count)) {
    logError(message + dropLog_.suppressedNote() + "; " + std::to_string(droppedEvents_) +
             " dropped in total");
  }
}

void Supervisor::sweep() {
  sweepTimer_.expires_after(kSweepInterval);
  sweepTimer_.async_wait([this](error_code ec) {
    if (ec || finished_) {
      return;
    }
    const auto now = Clock::now();
    for (std::uint32_t id = 0; id < slots_.size(); ++id) {
      reportExpired(id, held_.expire(id, now));
    }
    waits_.expire(now - kMaxWaitAge);
    sweep();
  });
}

void Supervisor::onDisconnected(WorkerConnection& connection, const std::string& reason,
                                bool protocolError) {
  Slot& slot = *slots_[connection.clusterId()];
  if (slot.connection.get() != &connection) {
    // A previous worker's connection, read to its end: forget it.
    std::erase_if(retiring_, [&](const auto& c) { return c.get() == &connection; });
    return;
  }
  disconnect(slot);
  handle(slot, Kind::kDisconnected);
  if (protocolError) {
    logError(describe(slot) + ": protocol error: " + reason + "; disconnected, stopping it");
    handle(slot, Kind::kProtocolError);
  } else if (slot.pid > 0 && slot.lifecycle.state() != WorkerState::kStopping) {
    // Its exit follows soon in the usual case; a worker that goes on running without its
    // connection gets no events, and is stopped as hung once its heartbeats are overdue.
    logLine(describe(slot) + " closed its connection" +
            (reason == "closed its connection" ? std::string() : " (" + reason + ")"));
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
  closeWaits(waits_.clusterGone(slot.id));
  connection->retire(kDrainTimeout);
  retiring_.push_back(std::move(connection));
}

void Supervisor::disconnect(Slot& slot) {
  if (!slot.connection) {
    return;
  }
  // A worker that runs on without its connection is judged by what it last sent.
  slot.lastHeard = std::max(slot.lastHeard, slot.connection->lastRead());
  slot.connection->close();
  slot.connection.reset();
  relay_.disconnected(slot.id);
  closeWaits(waits_.clusterGone(slot.id));
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
    for (auto& slot : slots_) {
      if (slot->pid == pid) {
        onExit(*slot, status);
        break;
      }
    }
  }
  // Any death can re-parent more descendants here: a worker's, or that of a process in its group
  // whose own children had left the group.
  if (reaped && !finished_) {
    killOrphans(false);
  }
}

void Supervisor::killOrphans(bool all) {
  // A child of the supervisor that is not a worker is a descendant whose parent died: it left its
  // worker's process group (setsid, a double fork). It goes when its cluster's worker is gone or
  // was replaced by a newer one; at the end of a stop, every one goes.
  for (const auto& child : childrenOf(::getpid())) {
    if (child.state == 'Z') {
      continue;  // reaped by waitpid
    }
    const bool isWorker = std::any_of(slots_.begin(), slots_.end(),
                                      [&](const auto& slot) { return slot->pid == child.pid; });
    if (isWorker) {
      continue;
    }
    bool kill = all;
    const auto cluster = clusterOf(child.pid);
    if (!kill) {
      if (cluster && *cluster < slots_.size()) {
        const Slot& owner = *slots_[*cluster];
        // An unknown start time of the current worker counts the child as older: a leftover.
        kill = owner.pid <= 0 || owner.processStartTime == 0 ||
               child.startTime < owner.processStartTime;
      }
    }
    if (kill) {
      logLine("killing pid " + std::to_string(child.pid) + ", left behind by a worker of cluster " +
              (cluster ? std::to_string(*cluster) : std::string("?")) + " that is gone");
      ::kill(child.pid, SIGKILL);
    }
  }
}

std::string Supervisor::whatNext(const Slot& slot, const WorkerLifecycle::Step& step,
                                 std::string_view again) const {
  switch (step.state) {
    case WorkerState::kBackingOff:
      return "; " + std::string(again) + " in " + formatDuration(step.delay);
    case WorkerState::kExited:
      return "; not restarted (restart.policy = \"" +
             std::string(policyName(config_.restart.policy)) + "\"" +
             (step.success ? ", a successful exit" : "") + ")";
    case WorkerState::kFailed:
      return "; crash loop: more than " + std::to_string(config_.restart.limit) +
             " restarts within " + formatDuration(config_.restart.window) +
             " of run time (restart.limit, restart.window); cluster " + std::to_string(slot.id) +
             " failed" +
             (step.action == Action::kRetryAfter ? ", retrying in " + formatDuration(step.delay)
                                                 : "");
    case WorkerState::kStopped:
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

void Supervisor::onExit(Slot& slot, int status) {
  const pid_t pid = slot.pid;
  WorkerExit exit;
  std::string how;
  const bool wasStopping = slot.lifecycle.state() == WorkerState::kStopping;
  if (WIFSIGNALED(status)) {
    exit.signaled = true;
    exit.code = WTERMSIG(status);
    how = "was killed by " + signalName(exit.code);
    if (exit.code == SIGKILL && !wasStopping) {
      how += " (possibly out of memory)";
    }
  } else {
    exit.code = WEXITSTATUS(status);
    how = "exited with status " + std::to_string(exit.code);
  }
  slot.killTimer.cancel();
  slot.signalTimer.cancel();
  slot.startTimer.cancel();
  slot.heartbeatTimer.cancel();
  retire(slot);
  // Whatever the worker started in its process group goes with it.
  ::kill(-pid, SIGKILL);
  slot.pid = -1;
  queue_.settled(slot.id);
  const std::uint32_t restartsBefore = slot.lifecycle.restarts();
  const StopCause cause = slot.lifecycle.stopCause();
  const WorkerLifecycle::Step step =
      slot.lifecycle.on({Kind::kExited, Clock::now(), exit,
                         std::uniform_real_distribution<double>(0.0, 1.0)(random_)});
  std::string line = "cluster " + std::to_string(slot.id) + " (pid " + std::to_string(pid) + ") " +
                     how + " after " + formatDuration(step.uptime) + " (" +
                     std::to_string(restartsBefore) + " restart" +
                     (restartsBefore == 1 ? "" : "s") + ")";
  switch (cause) {
    case StopCause::kStartTimeout:
      line += ", stopped for not becoming ready";
      break;
    case StopCause::kHung:
      line += ", stopped as hung";
      break;
    case StopCause::kProtocolError:
      line += ", stopped for a protocol error";
      break;
    case StopCause::kRestart:
      line += ", restarted on request";
      break;
    case StopCause::kNone:
    case StopCause::kShutdown:
      break;
  }
  line += whatNext(slot, step, "restarting");
  slot.lastExitSucceeded = step.success;
  slot.lastExit = how;
  if (step.state == WorkerState::kFailed) {
    logError(line);
  } else {
    logLine(line);
  }
  carryOut(slot, step);
  if (shuttingDown_) {
    maybeFinish();
  } else {
    pumpQueue();
    checkAllEnded();
  }
}

void Supervisor::checkAllEnded() {
  // Nothing runs and nothing will start again (exited under on-failure or never, failed without
  // a retry): a supervisor with nothing to supervise ends, so whatever runs it notices. It fails
  // when a cluster failed or its last exit was not a success.
  bool anyFailed = false;
  for (const auto& slot : slots_) {
    const WorkerState state = slot->lifecycle.state();
    if (state == WorkerState::kFailed && config_.restart.retryFailedAfter.count() == 0) {
      anyFailed = true;
    } else if (state == WorkerState::kExited) {
      anyFailed = anyFailed || !slot->lastExitSucceeded;
    } else {
      return;
    }
  }
  if (anyFailed) {
    exitStatus_ = kExitUnavailable;
  }
  beginShutdown(std::string("no cluster is running or will be restarted") +
                (anyFailed ? " (a cluster failed)" : ""));
}

// ---------------------------------------------------------------------------------------------
// Stopping.

void Supervisor::watchSignals() {
  stopSignals_.async_wait([this](error_code ec, int signal) {
    if (ec) {
      return;
    }
    if (signal == SIGHUP) {
      logLine(
          "received SIGHUP; reloading the configuration is not supported by this version, "
          "ignored");
    } else if (!shuttingDown_) {
      shutdownRequestedAt_ = Clock::now();
      beginShutdown("received " + signalName(signal));
    } else if (Clock::now() - shutdownRequestedAt_ < kDuplicateSignalWindow) {
      // Wrappers (timeout, npm, shells) often deliver one Ctrl-C twice: to the process group and
      // again to the child. Only a signal clearly after the first one means "kill now".
      logLine("received " + signalName(signal) + " again within " +
              formatDuration(kDuplicateSignalWindow) + " of the first; taken as the same request");
    } else if (!escalated_) {
      escalated_ = true;
      logLine("received " + signalName(signal) + " again; killing every worker now");
      for (auto& slot : slots_) {
        if (slot->pid > 0) {
          ::kill(-slot->pid, SIGKILL);
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
  shutdownRequestedAt_ = Clock::now();
  queueTimer_.cancel();
  std::size_t running = 0;
  for (auto& slot : slots_) {
    handle(*slot, Kind::kShutdown);
    if (slot->lifecycle.state() == WorkerState::kStopping) {
      ++running;
    }
  }
  if (running == 0) {
    logLine(std::string(why) + "; no worker is running");
  } else {
    logLine(std::string(why) + "; stopping " + std::to_string(running) + " worker" +
            (running == 1 ? "" : "s") + " (" + signalName(config_.stop.signal) +
            ", SIGKILL after " + formatDuration(config_.stop.timeout) +
            "; send the signal again to kill at once)");
  }
  maybeFinish();
}

void Supervisor::maybeFinish() {
  if (finished_ || !shuttingDown_) {
    return;
  }
  for (const auto& slot : slots_) {
    if (slot->lifecycle.state() != WorkerState::kStopped) {
      return;
    }
  }
  finished_ = true;
  reapChildren();
  sweepTimer_.cancel();
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
  if (control_) {
    control_->stop();
  }
  // Output still in the pipes is written out; a descendant that escaped the process group and
  // keeps a pipe open cannot hold the supervisor for more than this.
  if (openCaptures_ > 0) {
    finishTimer_.expires_after(std::chrono::seconds(2));
    finishTimer_.async_wait([this](error_code) {
      for (const auto& weak : captures_) {
        if (const auto capture = weak.lock()) {
          capture->close();
        }
      }
    });
  }
  logLine("all workers stopped");
}

// ---------------------------------------------------------------------------------------------
// The control socket.

boost::json::object Supervisor::status() const {
  namespace json = boost::json;
  const auto now = Clock::now();
  const auto ms = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  json::array clusters;
  std::uint64_t eventsIn = 0;
  std::uint64_t eventsOut = 0;
  std::size_t running = 0;
  for (const auto& slot : slots_) {
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
    c["restarts"] = slot->lifecycle.restarts();
    c["last_exit"] = slot->lastExit.empty() ? json::value(nullptr) : json::value(slot->lastExit);
    c["events_in"] = slot->eventsIn;
    c["events_out"] = slot->eventsOut;
    c["queued_bytes"] = slot->connection ? slot->connection->queuedBytes() : 0;
    c["held_events"] = held_.heldMessages(slot->id);
    c["shards"] = [&] {
      json::array shards;
      for (const auto shard : config::shardsFor(config_, slot->id)) {
        shards.push_back(shard);
      }
      return shards;
    }();
    eventsIn += slot->eventsIn;
    eventsOut += slot->eventsOut;
    running += state == WorkerState::kRunning ? 1 : 0;
    clusters.push_back(std::move(c));
  }
  json::object result;
  result["name"] = config_.name;
  result["config"] = config_.sourceFile.string();
  result["pid"] = ::getpid();
  result["uptime_ms"] = ms(now - startedAt_);
  result["stopping"] = shuttingDown_;
  result["clusters"] = std::move(clusters);
  result["totals"] = json::object{{"clusters", slots_.size()},
                                  {"running", running},
                                  {"events_in", eventsIn},
                                  {"events_out", eventsOut},
                                  {"dropped_events", droppedEvents_}};
  return result;
}

std::string Supervisor::onControl(const control::Request& request) {
  if (const auto* restart = std::get_if<control::RestartRequest>(&request)) {
    if (shuttingDown_) {
      return control::encodeError("the supervisor is stopping");
    }
    std::vector<std::uint32_t> ids = restart->clusters;
    if (restart->all) {
      ids.clear();
      for (const auto& slot : slots_) {
        ids.push_back(slot->id);
      }
    }
    for (const auto id : ids) {
      if (id >= slots_.size()) {
        return control::encodeError("cluster " + std::to_string(id) +
                                    " does not exist (clusters are 0.." +
                                    std::to_string(slots_.size() - 1) + ")");
      }
    }
    boost::json::array restarted;
    for (const auto id : ids) {
      Slot& slot = *slots_[id];
      logLine(describe(slot) + ": restart requested over the control socket (was " +
              std::string(toString(slot.lifecycle.state())) + ")");
      handle(slot, Kind::kRestartRequested);
      restarted.push_back(id);
    }
    return control::encodeSuccess(boost::json::object{{"restarting", std::move(restarted)}});
  }
  if (std::holds_alternative<control::StopRequest>(request)) {
    const bool already = shuttingDown_;
    // After the reply is on its way: the stop may end the event loop soon.
    asio::post(io_, [this] { beginShutdown("stop requested over the control socket"); });
    return control::encodeSuccess(boost::json::object{{"stopping", true}, {"already", already}});
  }
  return control::encodeSuccess(status());
}

}  // namespace clustervisor
