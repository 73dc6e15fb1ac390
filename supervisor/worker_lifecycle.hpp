// SPDX-License-Identifier: MIT
//
// WorkerLifecycle: the state machine of one cluster. Pure: every input is an Event carrying the
// current time (and, for exits, the status and a random number for the backoff jitter); every
// output is a Step saying which state the cluster is in now and what the supervisor must do. The
// supervisor owns the processes, timers and sockets and carries the steps out.
//
//   state        event                  next          action
//   queued       spawned                starting      arm the start timeout
//   queued       spawn failed           (as an exit of a failed run with uptime 0)
//   starting     connected              running       when start.ready = "connect"
//   starting     ready                  running       -
//   running,
//   stopping     disconnected           (same)        - (its ready time ends here)
//   starting     start timeout          stopping      stop it (counts as a failed start)
//   starting,
//   running      heartbeat timeout      stopping      abort it: SIGABRT, then SIGKILL
//   starting,
//   running      protocol error         stopping      stop it
//   starting,
//   running,
//   stopping     exited                 backing-off   restart after the backoff
//                                       exited        the policy does not restart it
//                                       failed        crash loop: retry later, or stop everything
//                                       stopped       when the supervisor is stopping
//   backing-off  backoff elapsed        queued        enqueue
//   failed       retry elapsed          queued        enqueue (fresh backoff and count)
//   starting,
//   running      shutdown               stopping      stop it
//   stopping     shutdown               stopping      - (its exit now ends in stopped)
//   queued, backing-off,
//   failed, exited  shutdown            stopped       cancel its timers, leave the queue
//   starting,
//   running      restart requested      stopping      stop it; its exit queues it at once
//   stopping     restart requested      stopping      - (unless stopping for the shutdown,
//                                                       its exit queues it at once)
//   backing-off,
//   failed,
//   exited       restart requested      queued        cancel its timers, enqueue (fresh count)
//
// An operator's restart is neither a failure nor a restart the crash-loop limit counts: the
// exit it causes queues the cluster at once, with a fresh backoff and count.
//
// Any other pair leaves the state unchanged and does nothing (a late timer, a second ready).
// The restart policy measures runs by their ready time (see RestartPolicy), so a worker that keeps
// failing before it is ready is a crash loop however long each attempt takes.
// An exit counts as a success only when the worker exited on its own with a status listed in
// restart.success_exit_codes; a worker the supervisor had to stop for a reason (start timeout,
// heartbeat timeout, protocol error) failed, whatever its status.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "clustervisor/config/bot_config.hpp"
#include "restart_policy.hpp"
#include "worker_state.hpp"

namespace clustervisor {

// Why a worker is being stopped.
enum class StopCause {
  kNone,
  kShutdown,       // the supervisor stops
  kStartTimeout,   // not ready within start.timeout
  kHung,           // no heartbeat within heartbeat.timeout
  kProtocolError,  // sent something that is not the protocol
  kRestart,        // an operator asked for a restart
};

struct WorkerExit {
  bool signaled = false;
  int code = 0;  // the exit status, or the signal number when signaled
};

class WorkerLifecycle {
 public:
  using Clock = std::chrono::steady_clock;
  using Duration = std::chrono::milliseconds;

  enum class EventKind {
    kSpawned,
    kSpawnFailed,
    kConnected,
    kReady,
    kDisconnected,
    kStartTimeout,
    kHeartbeatTimeout,
    kProtocolError,
    kExited,
    kBackoffElapsed,
    kRetryElapsed,
    kShutdown,
    kRestartRequested,  // an operator asked for a restart (clustervisor restart)
    // A cluster stopped on purpose starts again (a reload moved its shards): from kStopped only.
    kResume,
  };

  struct Event {
    EventKind kind;
    Clock::time_point now;
    WorkerExit exit{};  // kExited
    double jitter = 0;  // kExited, kSpawnFailed: uniform in [0, 1)
  };

  enum class Action {
    kNone,
    kArmStartTimeout,  // start.timeout from now
    kStop,             // stop frame, stop signal, SIGKILL after stop.timeout
    kAbort,            // SIGABRT, SIGKILL after stop.timeout
    kRestartAfter,     // wait `delay`, then deliver kBackoffElapsed
    kRetryAfter,       // wait `delay`, then deliver kRetryElapsed
    kEnqueue,          // join the spawn queue
    kCancel,           // cancel timers, leave the spawn queue
    kStopSupervisor,   // crash loop with restart.on_crash_loop = "stop-supervisor"
  };

  struct Step {
    WorkerState state = WorkerState::kQueued;
    Action action = Action::kNone;
    Duration delay{0};
    bool changed = false;               // the state differs from before the event
    bool success = false;               // kExited: the exit counts as a success
    Duration uptime{0};                 // kExited, kSpawnFailed: since the spawn
    Duration readyTime{0};              // kExited: since it became ready (0: never was)
    RestartPolicy::Decision restart{};  // kExited, kSpawnFailed
  };

  WorkerLifecycle(const config::RestartConfig& restart, config::ReadyWhen readyWhen)
      : policy_(restart), readyWhen_(readyWhen) {}

  Step on(const Event& event);

  WorkerState state() const { return state_; }
  StopCause stopCause() const { return stopCause_; }
  bool ready() const { return state_ == WorkerState::kRunning; }
  Clock::time_point startedAt() const { return startedAt_; }
  // Start attempts so far, spawns that failed included, and the restarts among them.
  std::uint32_t starts() const { return starts_; }
  std::uint32_t restarts() const { return starts_ > 0 ? starts_ - 1 : 0; }

  // Changes the policy for later exits (a reload); keeps the history.
  void setRestartConfig(const config::RestartConfig& restart);
  // A successor took the cluster over, ready (a rolling restart keeps the old worker until the
  // new one is ready): a new start, spawned at `spawnedAt`, that is running from `now`. Only in
  // the running state; the restart history is reset, as for a requested restart.
  void handOver(Clock::time_point spawnedAt, Clock::time_point now);
  // Changes when a later start counts as ready (a reload); a worker already running stays so.
  void setReadyWhen(config::ReadyWhen readyWhen) { readyWhen_ = readyWhen; }

 private:
  Step stay() const {
    Step step;
    step.state = state_;
    return step;
  }
  Step moveTo(WorkerState next, Action action, Duration delay = Duration{0});
  Step ended(const Event& event, Duration uptime, Duration readyTime, bool success);

  RestartPolicy policy_;
  config::ReadyWhen readyWhen_;
  WorkerState state_ = WorkerState::kQueued;
  StopCause stopCause_ = StopCause::kNone;
  Clock::time_point startedAt_{};
  std::optional<Clock::time_point> readyAt_;     // when this run entered running
  std::optional<Clock::time_point> readyUntil_;  // when its connection closed after that
  std::uint32_t starts_ = 0;
};

}  // namespace clustervisor
