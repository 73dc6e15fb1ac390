// SPDX-License-Identifier: MIT
//
// Supervisor: runs one bot. Starts a worker per cluster, relays events between them, restarts
// workers that exit, and stops everything on SIGINT/SIGTERM.
//
// Everything happens on the one io_context thread that calls run(): signal handling (SIGCHLD is
// reaped with waitpid(WNOHANG) in a loop), worker sockets, output capture and timers. Routing
// decisions come from the pure Relay, WaitTable and HeldMessages; this class carries them out.
// run() returns the process exit status once every worker has been stopped and reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "clustervisor/config/bot_config.hpp"
#include "held_messages.hpp"
#include "log_limiter.hpp"
#include "output_capture.hpp"
#include "relay.hpp"
#include "spawner.hpp"
#include "wait_table.hpp"
#include "worker_connection.hpp"
#include "worker_state.hpp"

namespace clustervisor {

class Supervisor final : private FrameSink {
 public:
  // Events held for a cluster that is not connected (see HeldMessages).
  static constexpr HeldMessages::Limits kHoldLimits{1000, 16 * 1024 * 1024,
                                                    std::chrono::seconds(60)};
  // A broadcastAndWait the supervisor still tracks after this long is forgotten: its waiter has
  // long timed out, and a recipient that never acknowledges must not pin it forever.
  static constexpr std::chrono::hours kMaxWaitAge{1};
  static constexpr std::chrono::seconds kSweepInterval{10};
  // A second stop signal this soon after the first is a duplicate, not an escalation.
  static constexpr std::chrono::milliseconds kDuplicateSignalWindow{200};
  // How long the connection of a worker that exited is still read for what it sent last.
  static constexpr std::chrono::milliseconds kDrainTimeout{1000};

  Supervisor(boost::asio::io_context& io, config::BotConfig config);
  ~Supervisor();

  // Starts the workers and runs until stopped. Returns the exit status.
  int run();

 private:
  using Clock = std::chrono::steady_clock;

  struct Slot {
    explicit Slot(boost::asio::io_context& io) : restartTimer(io), killTimer(io) {}
    std::uint32_t id = 0;
    WorkerState state = WorkerState::kBackingOff;
    pid_t pid = -1;
    Clock::time_point startedAt;
    std::uint32_t restarts = 0;
    bool ready = false;
    std::shared_ptr<WorkerConnection> connection;
    std::shared_ptr<OutputCapture> out;
    std::shared_ptr<OutputCapture> err;
    boost::asio::steady_timer restartTimer;
    boost::asio::steady_timer killTimer;
  };

  void onFrame(WorkerConnection& connection, const wire::Header& header,
               std::span<std::byte> frame) override;
  void onDisconnected(WorkerConnection& connection, const std::string& reason,
                      bool protocolError) override;

  void spawn(Slot& slot);
  void scheduleRestart(Slot& slot);
  void stopWorker(Slot& slot);
  void onHello(Slot& slot, std::span<std::byte> frame);
  void routeEvent(Slot& slot, WorkerConnection& from, const wire::Header& header,
                  std::span<std::byte> frame);
  void routeAck(Slot& slot, const wire::Header& header, std::span<std::byte> frame);
  void sendTo(std::uint32_t id, std::span<const std::byte> frame);
  void closeWaits(const std::vector<WaitTable::Closed>& closed);
  void disconnect(Slot& slot);
  void retire(Slot& slot);
  void reapChildren();
  void onExit(Slot& slot, int status);
  void watchSignals();
  void watchChildren();
  void beginShutdown(std::string_view why);
  void maybeFinish();
  bool holdFor(std::uint32_t target, std::span<const std::byte> frame);
  void reportExpired(std::uint32_t cluster, std::uint64_t expired);
  void reportOutboxFull(std::uint32_t recipient);
  void reportDrop(const std::string& message, std::uint64_t count = 1);
  void sweep();
  std::string describe(const Slot& slot) const;

  boost::asio::io_context& io_;
  config::BotConfig config_;
  Spawner spawner_;
  std::vector<std::unique_ptr<Slot>> slots_;
  Relay relay_;
  WaitTable waits_;
  HeldMessages held_;
  boost::asio::signal_set stopSignals_;
  boost::asio::signal_set childSignal_;
  boost::asio::steady_timer finishTimer_;
  bool shuttingDown_ = false;
  bool escalated_ = false;
  Clock::time_point shutdownRequestedAt_;
  bool finished_ = false;
  int exitStatus_ = 0;
  int openCaptures_ = 0;
  std::vector<std::weak_ptr<OutputCapture>> captures_;
  // Connections of workers that exited, read to the end before they are closed.
  std::vector<std::shared_ptr<WorkerConnection>> retiring_;
  std::uint64_t droppedEvents_ = 0;
  LogLimiter dropLog_;
  LogLimiter waitLog_;
  boost::asio::steady_timer sweepTimer_;
};

}  // namespace clustervisor
