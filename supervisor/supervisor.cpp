// SPDX-License-Identifier: MIT
#include "supervisor.hpp"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "exit_status.hpp"
#include "log.hpp"

namespace clustervisor {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Held events are delivered into the worker's outbox all at once when it is back, so they may
// take at most half of it: the rest is for the traffic that goes on meanwhile.
HeldMessages::Limits holdLimitsFor(const config::BotConfig& config) {
  HeldMessages::Limits limits = Supervisor::kHoldLimits;
  limits.maxBytes = std::min<std::size_t>(limits.maxBytes, config.events.outboxLimit / 2);
  return limits;
}

std::string signalName(int signal) {
  if (const char* abbrev = ::sigabbrev_np(signal)) {
    return std::string("SIG") + abbrev;
  }
  return "signal " + std::to_string(signal);
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

}  // namespace

Supervisor::Supervisor(asio::io_context& io, config::BotConfig config)
    : io_(io),
      config_(std::move(config)),
      spawner_(io.get_executor()),
      relay_(config_.clusters),
      held_(config_.clusters, holdLimitsFor(config_)),
      stopSignals_(io, SIGINT, SIGTERM, SIGHUP),
      childSignal_(io, SIGCHLD),
      finishTimer_(io),
      sweepTimer_(io) {
  slots_.reserve(config_.clusters);
  for (std::uint32_t id = 0; id < config_.clusters; ++id) {
    auto slot = std::make_unique<Slot>(io_);
    slot->id = id;
    slots_.push_back(std::move(slot));
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
  // Orphaned descendants of the workers are re-parented here and reaped, never left as zombies.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  watchSignals();
  watchChildren();
  sweep();
  logLine("starting " + std::to_string(config_.clusters) + " cluster" +
          (config_.clusters == 1 ? "" : "s") + " of " + config_.name);
  for (auto& slot : slots_) {
    spawn(*slot);
  }
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

void Supervisor::spawn(Slot& slot) {
  if (shuttingDown_) {
    return;
  }
  SpawnRequest request;
  request.clusterId = slot.id;
  request.totalClusters = config_.clusters;
  request.command = config_.command;
  request.workingDirectory = config_.workingDirectory;
  request.environment = config_.environment;
  error_code ec;
  std::string what;
  auto worker = spawner_.spawn(request, ec, what);
  if (ec) {
    logError(describe(slot) + ": " + what + "; retrying in " +
             formatDuration(config_.restart.delay));
    slot.state = WorkerState::kBackingOff;
    scheduleRestart(slot);
    return;
  }
  slot.pid = worker.pid;
  slot.state = WorkerState::kStarting;
  slot.ready = false;
  slot.startedAt = Clock::now();
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
  logLine(describe(slot) + " started" +
          (slot.restarts > 0 ? " (restart " + std::to_string(slot.restarts) + ")" : ""));
}

void Supervisor::scheduleRestart(Slot& slot) {
  slot.restartTimer.expires_after(config_.restart.delay);
  slot.restartTimer.async_wait([this, &slot](error_code ec) {
    if (!ec && !shuttingDown_ && slot.state == WorkerState::kBackingOff) {
      spawn(slot);
    }
  });
}

void Supervisor::stopWorker(Slot& slot) {
  if (slot.pid <= 0) {
    return;
  }
  slot.state = WorkerState::kStopping;
  // The whole process group: the worker and whatever it started.
  ::kill(-slot.pid, config_.stop.signal);
  slot.killTimer.expires_after(config_.stop.timeout);
  slot.killTimer.async_wait([this, &slot](error_code ec) {
    if (!ec && slot.pid > 0) {
      logLine(describe(slot) + " did not exit within " + formatDuration(config_.stop.timeout) +
              " of " + signalName(config_.stop.signal) + "; sending SIGKILL");
      ::kill(-slot.pid, SIGKILL);
    }
  });
}

void Supervisor::onFrame(WorkerConnection& connection, const wire::Header& header,
                         std::span<std::byte> frame) {
  Slot& slot = *slots_[connection.clusterId()];
  if (!connection.welcomed()) {
    if (header.type == wire::FrameType::kHello) {
      onHello(slot, frame);
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
    case wire::FrameType::kReady:
      if (slot.connection.get() == &connection && !slot.ready) {
        slot.ready = true;
        logLine(describe(slot) + " is ready");
      }
      return;
    case wire::FrameType::kHello:
    case wire::FrameType::kWelcome:
    case wire::FrameType::kWaitClosed:
    case wire::FrameType::kTotalChanged:
      break;
  }
  connection.close();
  onDisconnected(connection,
                 "unexpected " + std::string(wire::toString(header.type)) + " frame from a worker",
                 true);
}

void Supervisor::onHello(Slot& slot, std::span<std::byte> frame) {
  const auto hello = wire::helloBody(frame);
  auto& connection = *slot.connection;
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
  connection.send(wire::encodeWelcome(welcome));
  connection.setWelcomed();
  relay_.connected(slot.id);
  if (slot.state == WorkerState::kStarting) {
    slot.state = WorkerState::kRunning;  // not when a stop already began
  }
  const auto expiredBefore = held_.droppedExpired();
  const auto held = held_.take(slot.id, Clock::now());
  reportExpired(slot.id, held_.droppedExpired() - expiredBefore);
  for (const auto& message : held) {
    if (!connection.send(message)) {
      reportDrop(describe(slot) + ": held event dropped, outbox full");
    }
  }
  logLine(describe(slot) + " connected" +
          (held.empty() ? "" : "; delivering " + std::to_string(held.size()) + " held event(s)"));
}

void Supervisor::routeEvent(Slot& slot, WorkerConnection& from, const wire::Header& header,
                            std::span<std::byte> frame) {
  wire::stampSource(frame, slot.id);
  const auto decision = relay_.route(slot.id, header.target);
  switch (decision.route) {
    case Relay::Route::kDeliver: {
      std::vector<std::uint32_t> delivered;
      // A wait from a worker that already exited has nobody to tell: just deliver the event.
      const bool wantsAcks = header.correlation != 0 && !from.retiring();
      if (decision.recipients.size() == 1) {
        const auto id = decision.recipients.front();
        if (slots_[id]->connection->send(frame)) {
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
                   " held event(s) older than " + formatDuration(kHoldLimits.maxAge) + " dropped",
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
  if (protocolError) {
    logError(describe(slot) + ": protocol error: " + reason + "; disconnected, restarting it");
    if (slot.state != WorkerState::kStopping) {
      stopWorker(slot);
    }
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
  slot.connection->close();
  slot.connection.reset();
  relay_.disconnected(slot.id);
  closeWaits(waits_.clusterGone(slot.id));
}

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
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      return;
    }
    for (auto& slot : slots_) {
      if (slot->pid == pid) {
        onExit(*slot, status);
        break;
      }
    }
  }
}

void Supervisor::onExit(Slot& slot, int status) {
  const auto uptime = Clock::now() - slot.startedAt;
  const pid_t pid = slot.pid;
  std::string how;
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    how = "was killed by " + signalName(sig);
    if (sig == SIGKILL && slot.state != WorkerState::kStopping) {
      how += " (possibly out of memory)";
    }
  } else {
    how = "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  slot.killTimer.cancel();
  retire(slot);
  // Whatever the worker started in its process group goes with it.
  ::kill(-pid, SIGKILL);
  slot.pid = -1;
  const std::string who =
      "cluster " + std::to_string(slot.id) + " (pid " + std::to_string(pid) + ")";
  if (shuttingDown_) {
    slot.state = WorkerState::kStopped;
    logLine(who + " " + how + "; stopped");
    maybeFinish();
    return;
  }
  ++slot.restarts;
  slot.state = WorkerState::kBackingOff;
  logLine(who + " " + how + " after " + formatDuration(uptime) + "; restarting in " +
          formatDuration(config_.restart.delay) + " (restart " + std::to_string(slot.restarts) +
          ")");
  scheduleRestart(slot);
}

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
    }
    if (!finished_) {
      watchSignals();
    }
  });
}

void Supervisor::beginShutdown(std::string_view why) {
  shuttingDown_ = true;
  std::size_t running = 0;
  for (auto& slot : slots_) {
    slot->restartTimer.cancel();
    switch (slot->state) {
      case WorkerState::kStarting:
      case WorkerState::kRunning:
        ++running;
        stopWorker(*slot);
        break;
      case WorkerState::kStopping:
        ++running;
        break;
      case WorkerState::kBackingOff:
      case WorkerState::kStopped:
        slot->state = WorkerState::kStopped;
        break;
    }
  }
  logLine(std::string(why) + "; stopping " + std::to_string(running) + " worker" +
          (running == 1 ? "" : "s") + " (" + signalName(config_.stop.signal) + ", SIGKILL after " +
          formatDuration(config_.stop.timeout) + "; send the signal again to kill at once)");
  maybeFinish();
}

void Supervisor::maybeFinish() {
  if (finished_ || !shuttingDown_) {
    return;
  }
  for (const auto& slot : slots_) {
    if (slot->state != WorkerState::kStopped) {
      return;
    }
  }
  finished_ = true;
  reapChildren();
  sweepTimer_.cancel();
  stopSignals_.cancel();
  childSignal_.cancel();
  // Output still in the pipes is written out; a descendant that escaped the process group and
  // keeps a pipe open cannot hold the supervisor for more than this.
  if (openCaptures_ == 0) {
    logLine("all workers stopped");
    return;
  }
  finishTimer_.expires_after(std::chrono::seconds(2));
  finishTimer_.async_wait([this](error_code) {
    for (const auto& weak : captures_) {
      if (const auto capture = weak.lock()) {
        capture->close();
      }
    }
  });
  logLine("all workers stopped");
}

}  // namespace clustervisor
