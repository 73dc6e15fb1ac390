// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "worker_lifecycle.hpp"

using clustervisor::RestartPolicy;
using clustervisor::StopCause;
using clustervisor::WorkerExit;
using clustervisor::WorkerLifecycle;
using clustervisor::WorkerState;
using clustervisor::config::CrashLoopAction;
using clustervisor::config::ReadyWhen;
using clustervisor::config::RestartConfig;
using namespace std::chrono_literals;
using Action = WorkerLifecycle::Action;
using EventKind = WorkerLifecycle::EventKind;
using Clock = WorkerLifecycle::Clock;
using Duration = WorkerLifecycle::Duration;

namespace {

const Clock::time_point t0{};

constexpr WorkerState kAllStates[] = {
    WorkerState::kQueued,     WorkerState::kStarting, WorkerState::kRunning, WorkerState::kStopping,
    WorkerState::kBackingOff, WorkerState::kFailed,   WorkerState::kExited,  WorkerState::kStopped,
};

constexpr EventKind kAllEvents[] = {
    EventKind::kSpawned,          EventKind::kSpawnFailed,
    EventKind::kConnected,        EventKind::kReady,
    EventKind::kStartTimeout,     EventKind::kHeartbeatTimeout,
    EventKind::kProtocolError,    EventKind::kExited,
    EventKind::kBackoffElapsed,   EventKind::kRetryElapsed,
    EventKind::kShutdown,         EventKind::kDisconnected,
    EventKind::kRestartRequested, EventKind::kResume,
};

std::string_view name(EventKind kind) {
  switch (kind) {
    case EventKind::kSpawned:
      return "spawned";
    case EventKind::kSpawnFailed:
      return "spawn failed";
    case EventKind::kConnected:
      return "connected";
    case EventKind::kReady:
      return "ready";
    case EventKind::kStartTimeout:
      return "start timeout";
    case EventKind::kHeartbeatTimeout:
      return "heartbeat timeout";
    case EventKind::kProtocolError:
      return "protocol error";
    case EventKind::kExited:
      return "exited";
    case EventKind::kBackoffElapsed:
      return "backoff elapsed";
    case EventKind::kRetryElapsed:
      return "retry elapsed";
    case EventKind::kShutdown:
      return "shutdown";
    case EventKind::kDisconnected:
      return "disconnected";
    case EventKind::kRestartRequested:
      return "restart requested";
    case EventKind::kResume:
      return "resume";
  }
  return "unknown";
}

std::string_view name(Action action) {
  switch (action) {
    case Action::kNone:
      return "none";
    case Action::kArmStartTimeout:
      return "arm start timeout";
    case Action::kStop:
      return "stop";
    case Action::kAbort:
      return "abort";
    case Action::kRestartAfter:
      return "restart after";
    case Action::kRetryAfter:
      return "retry after";
    case Action::kEnqueue:
      return "enqueue";
    case Action::kCancel:
      return "cancel";
    case Action::kStopSupervisor:
      return "stop supervisor";
  }
  return "unknown";
}

std::string_view name(StopCause cause) {
  switch (cause) {
    case StopCause::kNone:
      return "none";
    case StopCause::kShutdown:
      return "shutdown";
    case StopCause::kStartTimeout:
      return "start timeout";
    case StopCause::kHung:
      return "hung";
    case StopCause::kProtocolError:
      return "protocol error";
    case StopCause::kRestart:
      return "restart";
  }
  return "unknown";
}

std::string_view name(WorkerState state) {
  return clustervisor::toString(state);
}

std::string_view name(clustervisor::config::RestartPolicy policy) {
  switch (policy) {
    case clustervisor::config::RestartPolicy::kAlways:
      return "always";
    case clustervisor::config::RestartPolicy::kOnFailure:
      return "on-failure";
    case clustervisor::config::RestartPolicy::kNever:
      return "never";
  }
  return "unknown";
}

// on-failure, so that a clean exit (exited) and a failed one (backing-off) end differently.
RestartConfig restartConfig(
    clustervisor::config::RestartPolicy policy = clustervisor::config::RestartPolicy::kOnFailure) {
  RestartConfig config;
  config.policy = policy;
  config.successExitCodes = {0};
  config.delay = 1s;
  config.maxDelay = 60s;
  config.stableAfter = 30s;
  config.limit = 5;
  config.window = 60s;
  config.onCrashLoop = CrashLoopAction::kFailCluster;
  config.retryFailedAfter = 10min;
  return config;
}

WorkerLifecycle::Event event(EventKind kind, Clock::time_point now) {
  return {kind, now};
}

WorkerLifecycle::Event exited(Clock::time_point now, int code, bool signaled = false) {
  return {EventKind::kExited, now, WorkerExit{signaled, code}, 0.5};
}

// A lifecycle brought into `state` by real events from kQueued, all before t0 + 1min. A worker in
// kStopping got there through `stoppedBy`.
WorkerLifecycle lifecycleIn(WorkerState state, StopCause stoppedBy = StopCause::kShutdown,
                            const RestartConfig& config = restartConfig(),
                            ReadyWhen readyWhen = ReadyWhen::kSdk) {
  WorkerLifecycle lifecycle(config, readyWhen);
  switch (state) {
    case WorkerState::kQueued:
      break;
    case WorkerState::kStarting:
      lifecycle.on(event(EventKind::kSpawned, t0));
      break;
    case WorkerState::kRunning:
      lifecycle.on(event(EventKind::kSpawned, t0));
      lifecycle.on(event(EventKind::kReady, t0 + 1s));
      break;
    case WorkerState::kStopping:
      lifecycle.on(event(EventKind::kSpawned, t0));
      switch (stoppedBy) {
        case StopCause::kShutdown:
          lifecycle.on(event(EventKind::kReady, t0 + 1s));
          lifecycle.on(event(EventKind::kShutdown, t0 + 2s));
          break;
        case StopCause::kStartTimeout:
          lifecycle.on(event(EventKind::kStartTimeout, t0 + 2s));
          break;
        case StopCause::kHung:
          lifecycle.on(event(EventKind::kReady, t0 + 1s));
          lifecycle.on(event(EventKind::kHeartbeatTimeout, t0 + 2s));
          break;
        case StopCause::kProtocolError:
          lifecycle.on(event(EventKind::kReady, t0 + 1s));
          lifecycle.on(event(EventKind::kProtocolError, t0 + 2s));
          break;
        case StopCause::kRestart:
          lifecycle.on(event(EventKind::kReady, t0 + 1s));
          lifecycle.on(event(EventKind::kRestartRequested, t0 + 2s));
          break;
        case StopCause::kNone:
          BOOST_FAIL("a stopping worker needs a stop cause");
      }
      BOOST_REQUIRE(name(lifecycle.stopCause()) == name(stoppedBy));
      break;
    case WorkerState::kBackingOff:
      lifecycle.on(event(EventKind::kSpawned, t0));
      lifecycle.on(event(EventKind::kReady, t0 + 1s));
      lifecycle.on(exited(t0 + 2s, 1));
      break;
    case WorkerState::kFailed: {
      auto now = t0;
      for (std::uint32_t run = 0; run <= config.limit && lifecycle.state() != state; ++run) {
        lifecycle.on(event(EventKind::kSpawned, now));
        lifecycle.on(exited(now + 10ms, 1));
        lifecycle.on(event(EventKind::kBackoffElapsed, now + 1s));
        now += 1s;
      }
      break;
    }
    case WorkerState::kExited:
      lifecycle.on(event(EventKind::kSpawned, t0));
      lifecycle.on(event(EventKind::kReady, t0 + 1s));
      lifecycle.on(exited(t0 + 2s, 0));
      break;
    case WorkerState::kStopped:
      lifecycle.on(event(EventKind::kShutdown, t0));
      break;
  }
  BOOST_REQUIRE(name(lifecycle.state()) == name(state));
  return lifecycle;
}

struct Row {
  WorkerState from;
  EventKind event;
  WorkerState next;
  Action action;
};

// What every event does in every state, for an on-failure worker whose exits have status 0. The
// rows for kStopping are in the next table, one per way of getting there.
const std::vector<Row> kTransitions = {
    {WorkerState::kQueued, EventKind::kSpawned, WorkerState::kStarting, Action::kArmStartTimeout},
    {WorkerState::kQueued, EventKind::kSpawnFailed, WorkerState::kBackingOff,
     Action::kRestartAfter},
    {WorkerState::kQueued, EventKind::kConnected, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kReady, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kStartTimeout, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kHeartbeatTimeout, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kProtocolError, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kExited, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kBackoffElapsed, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kRetryElapsed, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kDisconnected, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kRestartRequested, WorkerState::kQueued, Action::kNone},
    {WorkerState::kQueued, EventKind::kShutdown, WorkerState::kStopped, Action::kCancel},
    {WorkerState::kQueued, EventKind::kResume, WorkerState::kQueued, Action::kNone},

    {WorkerState::kStarting, EventKind::kSpawned, WorkerState::kStarting, Action::kNone},
    {WorkerState::kStarting, EventKind::kSpawnFailed, WorkerState::kStarting, Action::kNone},
    {WorkerState::kStarting, EventKind::kConnected, WorkerState::kStarting, Action::kNone},
    {WorkerState::kStarting, EventKind::kReady, WorkerState::kRunning, Action::kNone},
    {WorkerState::kStarting, EventKind::kStartTimeout, WorkerState::kStopping, Action::kStop},
    {WorkerState::kStarting, EventKind::kHeartbeatTimeout, WorkerState::kStopping, Action::kAbort},
    {WorkerState::kStarting, EventKind::kProtocolError, WorkerState::kStopping, Action::kStop},
    {WorkerState::kStarting, EventKind::kExited, WorkerState::kExited, Action::kNone},
    {WorkerState::kStarting, EventKind::kBackoffElapsed, WorkerState::kStarting, Action::kNone},
    {WorkerState::kStarting, EventKind::kRetryElapsed, WorkerState::kStarting, Action::kNone},
    {WorkerState::kStarting, EventKind::kDisconnected, WorkerState::kStarting, Action::kNone},
    {WorkerState::kStarting, EventKind::kRestartRequested, WorkerState::kStopping, Action::kStop},
    {WorkerState::kStarting, EventKind::kShutdown, WorkerState::kStopping, Action::kStop},
    {WorkerState::kStarting, EventKind::kResume, WorkerState::kStarting, Action::kNone},

    {WorkerState::kRunning, EventKind::kSpawned, WorkerState::kRunning, Action::kNone},
    {WorkerState::kRunning, EventKind::kSpawnFailed, WorkerState::kRunning, Action::kNone},
    {WorkerState::kRunning, EventKind::kConnected, WorkerState::kRunning, Action::kNone},
    {WorkerState::kRunning, EventKind::kReady, WorkerState::kRunning, Action::kNone},
    {WorkerState::kRunning, EventKind::kStartTimeout, WorkerState::kRunning, Action::kNone},
    {WorkerState::kRunning, EventKind::kHeartbeatTimeout, WorkerState::kStopping, Action::kAbort},
    {WorkerState::kRunning, EventKind::kProtocolError, WorkerState::kStopping, Action::kStop},
    {WorkerState::kRunning, EventKind::kExited, WorkerState::kExited, Action::kNone},
    {WorkerState::kRunning, EventKind::kBackoffElapsed, WorkerState::kRunning, Action::kNone},
    {WorkerState::kRunning, EventKind::kRetryElapsed, WorkerState::kRunning, Action::kNone},
    {WorkerState::kRunning, EventKind::kDisconnected, WorkerState::kRunning, Action::kNone},
    {WorkerState::kRunning, EventKind::kRestartRequested, WorkerState::kStopping, Action::kStop},
    {WorkerState::kRunning, EventKind::kShutdown, WorkerState::kStopping, Action::kStop},
    {WorkerState::kRunning, EventKind::kResume, WorkerState::kRunning, Action::kNone},

    {WorkerState::kBackingOff, EventKind::kSpawned, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kSpawnFailed, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kConnected, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kReady, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kStartTimeout, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kHeartbeatTimeout, WorkerState::kBackingOff,
     Action::kNone},
    {WorkerState::kBackingOff, EventKind::kProtocolError, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kExited, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kBackoffElapsed, WorkerState::kQueued, Action::kEnqueue},
    {WorkerState::kBackingOff, EventKind::kRetryElapsed, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kDisconnected, WorkerState::kBackingOff, Action::kNone},
    {WorkerState::kBackingOff, EventKind::kRestartRequested, WorkerState::kQueued,
     Action::kEnqueue},
    {WorkerState::kBackingOff, EventKind::kShutdown, WorkerState::kStopped, Action::kCancel},
    {WorkerState::kBackingOff, EventKind::kResume, WorkerState::kBackingOff, Action::kNone},

    {WorkerState::kFailed, EventKind::kSpawned, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kSpawnFailed, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kConnected, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kReady, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kStartTimeout, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kHeartbeatTimeout, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kProtocolError, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kExited, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kBackoffElapsed, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kRetryElapsed, WorkerState::kQueued, Action::kEnqueue},
    {WorkerState::kFailed, EventKind::kDisconnected, WorkerState::kFailed, Action::kNone},
    {WorkerState::kFailed, EventKind::kRestartRequested, WorkerState::kQueued, Action::kEnqueue},
    {WorkerState::kFailed, EventKind::kShutdown, WorkerState::kStopped, Action::kCancel},
    {WorkerState::kFailed, EventKind::kResume, WorkerState::kFailed, Action::kNone},

    {WorkerState::kExited, EventKind::kSpawned, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kSpawnFailed, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kConnected, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kReady, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kStartTimeout, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kHeartbeatTimeout, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kProtocolError, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kExited, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kBackoffElapsed, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kRetryElapsed, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kDisconnected, WorkerState::kExited, Action::kNone},
    {WorkerState::kExited, EventKind::kRestartRequested, WorkerState::kQueued, Action::kEnqueue},
    {WorkerState::kExited, EventKind::kShutdown, WorkerState::kStopped, Action::kCancel},
    {WorkerState::kExited, EventKind::kResume, WorkerState::kExited, Action::kNone},

    {WorkerState::kStopped, EventKind::kSpawned, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kSpawnFailed, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kConnected, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kReady, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kStartTimeout, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kHeartbeatTimeout, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kProtocolError, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kExited, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kBackoffElapsed, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kRetryElapsed, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kDisconnected, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kRestartRequested, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kShutdown, WorkerState::kStopped, Action::kNone},
    {WorkerState::kStopped, EventKind::kResume, WorkerState::kQueued, Action::kEnqueue},
};

struct StoppingRow {
  StopCause stoppedBy;
  EventKind event;
  WorkerState next;
  Action action;
};

// kStopping ignores everything but the exit, whose outcome depends on why it was stopped: a
// worker stopped for the shutdown is stopped; one stopped for a fault failed, although it exited
// with status 0.
const std::vector<StoppingRow> kStoppingTransitions = [] {
  std::vector<StoppingRow> rows;
  for (StopCause cause : {StopCause::kShutdown, StopCause::kStartTimeout, StopCause::kHung,
                          StopCause::kProtocolError, StopCause::kRestart}) {
    for (EventKind kind : kAllEvents) {
      StoppingRow row{cause, kind, WorkerState::kStopping, Action::kNone};
      if (kind == EventKind::kExited) {
        switch (cause) {
          case StopCause::kShutdown:
            row.next = WorkerState::kStopped;
            break;
          case StopCause::kRestart:
            row.next = WorkerState::kQueued;
            row.action = Action::kEnqueue;
            break;
          case StopCause::kNone:
          case StopCause::kStartTimeout:
          case StopCause::kHung:
          case StopCause::kProtocolError:
            row.next = WorkerState::kBackingOff;
            row.action = Action::kRestartAfter;
            break;
        }
      }
      rows.push_back(row);
    }
  }
  return rows;
}();

WorkerLifecycle::Event tableEvent(EventKind kind) {
  return {kind, t0 + 1h, WorkerExit{false, 0}, 0.5};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(worker_lifecycle)

BOOST_AUTO_TEST_CASE(transition_table_covers_every_state_and_event) {
  for (WorkerState state : kAllStates) {
    for (EventKind kind : kAllEvents) {
      std::size_t rows = 0;
      if (state == WorkerState::kStopping) {
        for (const StoppingRow& row : kStoppingTransitions) {
          rows += row.event == kind ? 1 : 0;
        }
        BOOST_TEST_CONTEXT(name(state) << " x " << name(kind)) {
          BOOST_TEST(rows == 5u);  // one per stop cause
        }
      } else {
        for (const Row& row : kTransitions) {
          rows += row.from == state && row.event == kind ? 1 : 0;
        }
        BOOST_TEST_CONTEXT(name(state) << " x " << name(kind)) {
          BOOST_TEST(rows == 1u);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(every_event_in_every_state_follows_the_table) {
  for (const Row& row : kTransitions) {
    BOOST_TEST_CONTEXT("in " << name(row.from) << ", on " << name(row.event)) {
      WorkerLifecycle lifecycle = lifecycleIn(row.from);
      const auto step = lifecycle.on(tableEvent(row.event));
      BOOST_TEST(name(step.state) == name(row.next));
      BOOST_TEST(name(step.action) == name(row.action));
      BOOST_TEST(name(lifecycle.state()) == name(row.next));
      BOOST_TEST(step.changed == (row.next != row.from));
    }
  }
}

BOOST_AUTO_TEST_CASE(every_event_while_stopping_follows_the_table_for_each_stop_cause) {
  for (const StoppingRow& row : kStoppingTransitions) {
    BOOST_TEST_CONTEXT("in stopping (by " << name(row.stoppedBy) << "), on " << name(row.event)) {
      WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kStopping, row.stoppedBy);
      const auto step = lifecycle.on(tableEvent(row.event));
      BOOST_TEST(name(step.state) == name(row.next));
      BOOST_TEST(name(step.action) == name(row.action));
      BOOST_TEST(name(lifecycle.state()) == name(row.next));
      BOOST_TEST(step.changed == (row.next != WorkerState::kStopping));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_hand_over_is_a_new_start_that_is_already_running) {
  WorkerLifecycle lifecycle(RestartConfig{}, ReadyWhen::kSdk);
  lifecycle.on({EventKind::kSpawned, t0});
  lifecycle.on({EventKind::kReady, t0 + 1s});
  BOOST_TEST(lifecycle.restarts() == 0u);
  lifecycle.handOver(t0 + 10s, t0 + 12s);
  BOOST_TEST(name(lifecycle.state()) == name(WorkerState::kRunning));
  BOOST_TEST(lifecycle.restarts() == 1u);
  BOOST_TEST((lifecycle.startedAt() == t0 + 10s));
  // Its run time counts from the hand-over: an exit 1 s later is 1 s of ready time.
  const auto step = lifecycle.on({EventKind::kExited, t0 + 13s, WorkerExit{false, 1}, 0.0});
  BOOST_TEST(step.readyTime.count() == 1000);
  BOOST_TEST(step.uptime.count() == 3000);
  // Nothing happens outside the running state.
  lifecycle.handOver(t0 + 20s, t0 + 21s);
  BOOST_TEST(lifecycle.restarts() == 1u);
}

BOOST_AUTO_TEST_CASE(stop_cause_is_recorded_until_the_exit) {
  for (StopCause cause : {StopCause::kShutdown, StopCause::kStartTimeout, StopCause::kHung,
                          StopCause::kProtocolError}) {
    BOOST_TEST_CONTEXT("stopped by " << name(cause)) {
      WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kStopping, cause);
      BOOST_TEST(name(lifecycle.stopCause()) == name(cause));
      lifecycle.on(exited(t0 + 3s, 0));
      BOOST_TEST(name(lifecycle.stopCause()) == name(StopCause::kNone));
    }
  }
}

BOOST_AUTO_TEST_CASE(shutdown_while_stopping_for_a_fault_ends_in_stopped) {
  for (StopCause cause : {StopCause::kStartTimeout, StopCause::kHung, StopCause::kProtocolError}) {
    BOOST_TEST_CONTEXT("stopped by " << name(cause)) {
      WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kStopping, cause);
      const auto shutdown = lifecycle.on(event(EventKind::kShutdown, t0 + 3s));
      BOOST_TEST(name(shutdown.state) == name(WorkerState::kStopping));
      BOOST_TEST(name(shutdown.action) == name(Action::kNone));
      BOOST_TEST(!shutdown.changed);
      BOOST_TEST(name(lifecycle.stopCause()) == name(StopCause::kShutdown));
      const auto exit = lifecycle.on(exited(t0 + 4s, 1));
      BOOST_TEST(name(exit.state) == name(WorkerState::kStopped));
      BOOST_TEST(name(exit.action) == name(Action::kNone));
    }
  }
}

BOOST_AUTO_TEST_CASE(exit_after_a_stop_for_a_fault_is_a_failure_whatever_the_status) {
  struct Case {
    StopCause cause;
    WorkerState next;
    Action action;
  };
  const std::vector<Case> cases = {
      {StopCause::kShutdown, WorkerState::kStopped, Action::kNone},
      {StopCause::kStartTimeout, WorkerState::kBackingOff, Action::kRestartAfter},
      {StopCause::kHung, WorkerState::kBackingOff, Action::kRestartAfter},
      {StopCause::kProtocolError, WorkerState::kBackingOff, Action::kRestartAfter},
  };
  for (const Case& c : cases) {
    for (const WorkerExit status :
         {WorkerExit{false, 0}, WorkerExit{false, 1}, WorkerExit{true, 15}, WorkerExit{true, 9}}) {
      BOOST_TEST_CONTEXT("stopped by " << name(c.cause) << ", "
                                       << (status.signaled ? "signal " : "status ")
                                       << status.code) {
        WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kStopping, c.cause);
        const auto step = lifecycle.on({EventKind::kExited, t0 + 3s, status, 0.5});
        BOOST_TEST(name(step.state) == name(c.next));
        BOOST_TEST(name(step.action) == name(c.action));
        BOOST_TEST(!step.success);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(exit_outcome_follows_the_restart_policy) {
  using Policy = clustervisor::config::RestartPolicy;
  struct Case {
    Policy policy;
    WorkerExit status;
    bool success;
    WorkerState next;
    Action action;
  };
  const WorkerExit clean{false, 0};
  const WorkerExit failure{false, 1};
  const WorkerExit signal{true, 11};
  const std::vector<Case> cases = {
      {Policy::kAlways, clean, true, WorkerState::kBackingOff, Action::kRestartAfter},
      {Policy::kAlways, failure, false, WorkerState::kBackingOff, Action::kRestartAfter},
      {Policy::kAlways, signal, false, WorkerState::kBackingOff, Action::kRestartAfter},
      {Policy::kOnFailure, clean, true, WorkerState::kExited, Action::kNone},
      {Policy::kOnFailure, failure, false, WorkerState::kBackingOff, Action::kRestartAfter},
      {Policy::kOnFailure, signal, false, WorkerState::kBackingOff, Action::kRestartAfter},
      {Policy::kNever, clean, true, WorkerState::kExited, Action::kNone},
      {Policy::kNever, failure, false, WorkerState::kExited, Action::kNone},
      {Policy::kNever, signal, false, WorkerState::kExited, Action::kNone},
  };
  for (const Case& c : cases) {
    for (WorkerState from : {WorkerState::kStarting, WorkerState::kRunning}) {
      BOOST_TEST_CONTEXT(name(c.policy) << ", " << (c.status.signaled ? "signal " : "status ")
                                        << c.status.code << ", from " << name(from)) {
        WorkerLifecycle lifecycle = lifecycleIn(from, StopCause::kNone, restartConfig(c.policy));
        const auto step = lifecycle.on({EventKind::kExited, t0 + 5s, c.status, 0.5});
        BOOST_TEST(step.success == c.success);
        BOOST_TEST(name(step.state) == name(c.next));
        BOOST_TEST(name(step.action) == name(c.action));
        if (c.action == Action::kRestartAfter) {
          BOOST_TEST(step.delay.count() == step.restart.delay.count());
          BOOST_TEST(step.delay.count() == RestartPolicy(restartConfig()).backoff(1, 0.5).count());
        } else {
          BOOST_TEST(step.delay.count() == 0);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(listed_success_exit_codes_count_as_success) {
  auto config = restartConfig();
  config.successExitCodes = {0, 3};
  struct Case {
    WorkerExit status;
    bool success;
    WorkerState next;
  };
  const std::vector<Case> cases = {
      {WorkerExit{false, 0}, true, WorkerState::kExited},
      {WorkerExit{false, 3}, true, WorkerState::kExited},
      {WorkerExit{false, 1}, false, WorkerState::kBackingOff},
      {WorkerExit{false, 2}, false, WorkerState::kBackingOff},
      // A signal number is not an exit status, even when it matches a listed code.
      {WorkerExit{true, 3}, false, WorkerState::kBackingOff},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT((c.status.signaled ? "signal " : "status ") << c.status.code) {
      WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kRunning, StopCause::kNone, config);
      const auto step = lifecycle.on({EventKind::kExited, t0 + 5s, c.status, 0.5});
      BOOST_TEST(step.success == c.success);
      BOOST_TEST(name(step.state) == name(c.next));
    }
  }
}

BOOST_AUTO_TEST_CASE(status_zero_is_a_failure_when_not_listed) {
  auto config = restartConfig();
  config.successExitCodes = {3};
  WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kRunning, StopCause::kNone, config);
  const auto step = lifecycle.on(exited(t0 + 5s, 0));
  BOOST_TEST(!step.success);
  BOOST_TEST(name(step.state) == name(WorkerState::kBackingOff));
}

BOOST_AUTO_TEST_CASE(connect_makes_a_worker_ready_only_when_ready_on_connect) {
  {
    WorkerLifecycle lifecycle =
        lifecycleIn(WorkerState::kStarting, StopCause::kNone, restartConfig(), ReadyWhen::kConnect);
    const auto step = lifecycle.on(event(EventKind::kConnected, t0 + 1s));
    BOOST_TEST(name(step.state) == name(WorkerState::kRunning));
    BOOST_TEST(step.changed);
    BOOST_TEST(lifecycle.ready());
    // The SDK's ready() that may follow changes nothing.
    const auto again = lifecycle.on(event(EventKind::kReady, t0 + 2s));
    BOOST_TEST(name(again.state) == name(WorkerState::kRunning));
    BOOST_TEST(!again.changed);
  }
  {
    WorkerLifecycle lifecycle =
        lifecycleIn(WorkerState::kStarting, StopCause::kNone, restartConfig(), ReadyWhen::kSdk);
    const auto connected = lifecycle.on(event(EventKind::kConnected, t0 + 1s));
    BOOST_TEST(name(connected.state) == name(WorkerState::kStarting));
    BOOST_TEST(!connected.changed);
    BOOST_TEST(!lifecycle.ready());
    const auto ready = lifecycle.on(event(EventKind::kReady, t0 + 2s));
    BOOST_TEST(name(ready.state) == name(WorkerState::kRunning));
    BOOST_TEST(lifecycle.ready());
  }
}

BOOST_AUTO_TEST_CASE(ready_from_the_sdk_also_counts_when_ready_on_connect) {
  WorkerLifecycle lifecycle =
      lifecycleIn(WorkerState::kStarting, StopCause::kNone, restartConfig(), ReadyWhen::kConnect);
  const auto step = lifecycle.on(event(EventKind::kReady, t0 + 1s));
  BOOST_TEST(name(step.state) == name(WorkerState::kRunning));
}

namespace {

// Crashes a fresh lifecycle (10ms runs) until its state leaves the restart loop; returns the last
// step and the number of exits it took.
struct CrashLoop {
  WorkerLifecycle::Step last{};
  std::uint32_t exits = 0;
};

CrashLoop crashUntilItStops(WorkerLifecycle& lifecycle, Clock::time_point& now) {
  CrashLoop result;
  for (int guard = 0; guard < 1000; ++guard) {
    BOOST_REQUIRE(name(lifecycle.state()) == name(WorkerState::kQueued));
    lifecycle.on(event(EventKind::kSpawned, now));
    result.last = lifecycle.on(exited(now + 10ms, 1));
    ++result.exits;
    now += 1h;
    if (result.last.state != WorkerState::kBackingOff) {
      return result;
    }
    lifecycle.on(event(EventKind::kBackoffElapsed, now));
  }
  BOOST_FAIL("never left the restart loop");
  return result;
}

}  // namespace

BOOST_AUTO_TEST_CASE(crash_loop_fails_the_cluster_and_retries_later) {
  auto config = restartConfig();
  config.limit = 3;
  config.retryFailedAfter = 10min;
  WorkerLifecycle lifecycle(config, ReadyWhen::kSdk);
  auto now = t0;
  const auto loop = crashUntilItStops(lifecycle, now);
  BOOST_TEST(loop.exits == 4u);
  BOOST_TEST(name(loop.last.state) == name(WorkerState::kFailed));
  BOOST_TEST(name(loop.last.action) == name(Action::kRetryAfter));
  BOOST_TEST(loop.last.delay.count() == Duration{10min}.count());
  BOOST_TEST((loop.last.restart.verdict == RestartPolicy::Verdict::kCrashLoop));
}

BOOST_AUTO_TEST_CASE(crash_loop_without_retry_stays_failed) {
  auto config = restartConfig();
  config.limit = 3;
  config.retryFailedAfter = 0ms;
  WorkerLifecycle lifecycle(config, ReadyWhen::kSdk);
  auto now = t0;
  const auto loop = crashUntilItStops(lifecycle, now);
  BOOST_TEST(loop.exits == 4u);
  BOOST_TEST(name(loop.last.state) == name(WorkerState::kFailed));
  BOOST_TEST(name(loop.last.action) == name(Action::kNone));
  BOOST_TEST(loop.last.delay.count() == 0);
}

BOOST_AUTO_TEST_CASE(crash_loop_stops_the_supervisor_when_configured) {
  auto config = restartConfig();
  config.limit = 3;
  config.onCrashLoop = CrashLoopAction::kStopSupervisor;
  config.retryFailedAfter = 10min;
  WorkerLifecycle lifecycle(config, ReadyWhen::kSdk);
  auto now = t0;
  const auto loop = crashUntilItStops(lifecycle, now);
  BOOST_TEST(loop.exits == 4u);
  BOOST_TEST(name(loop.last.state) == name(WorkerState::kFailed));
  BOOST_TEST(name(loop.last.action) == name(Action::kStopSupervisor));
}

BOOST_AUTO_TEST_CASE(spawn_failures_count_toward_the_crash_loop) {
  auto config = restartConfig();
  config.limit = 2;
  WorkerLifecycle lifecycle(config, ReadyWhen::kSdk);
  auto now = t0;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    const auto step = lifecycle.on({EventKind::kSpawnFailed, now, {}, 0.5});
    BOOST_TEST_CONTEXT("attempt " << attempt) {
      BOOST_TEST(name(step.state) == name(WorkerState::kBackingOff));
      BOOST_TEST(!step.success);
      BOOST_TEST(step.uptime.count() == 0);
    }
    now += 1h;
    lifecycle.on(event(EventKind::kBackoffElapsed, now));
  }
  const auto third = lifecycle.on({EventKind::kSpawnFailed, now, {}, 0.5});
  BOOST_TEST(name(third.state) == name(WorkerState::kFailed));
  BOOST_TEST(lifecycle.restarts() == 2u);
}

BOOST_AUTO_TEST_CASE(retry_after_a_crash_loop_starts_with_a_fresh_count) {
  auto config = restartConfig();
  config.limit = 3;
  WorkerLifecycle lifecycle(config, ReadyWhen::kSdk);
  auto now = t0;
  BOOST_TEST(crashUntilItStops(lifecycle, now).exits == 4u);
  const auto retry = lifecycle.on(event(EventKind::kRetryElapsed, now));
  BOOST_TEST(name(retry.state) == name(WorkerState::kQueued));
  BOOST_TEST(name(retry.action) == name(Action::kEnqueue));
  // Not failed again after the first crash: limit + 1 exits are needed again, and the backoff
  // starts over.
  lifecycle.on(event(EventKind::kSpawned, now));
  const auto first = lifecycle.on(exited(now + 10ms, 1));
  BOOST_TEST(name(first.state) == name(WorkerState::kBackingOff));
  BOOST_TEST(first.restart.backoffStep == 1u);
  BOOST_TEST(first.restart.restartsInWindow == 1u);
  now += 1h;
  lifecycle.on(event(EventKind::kBackoffElapsed, now));
  const auto loop = crashUntilItStops(lifecycle, now);
  BOOST_TEST(loop.exits == 3u);
  BOOST_TEST(name(loop.last.state) == name(WorkerState::kFailed));
}

BOOST_AUTO_TEST_CASE(counts_restarts_including_failed_spawns) {
  WorkerLifecycle lifecycle(restartConfig(), ReadyWhen::kSdk);
  BOOST_TEST(lifecycle.starts() == 0u);
  BOOST_TEST(lifecycle.restarts() == 0u);
  lifecycle.on(event(EventKind::kSpawned, t0));
  BOOST_TEST(lifecycle.starts() == 1u);
  BOOST_TEST(lifecycle.restarts() == 0u);
  lifecycle.on(exited(t0 + 1s, 1));
  lifecycle.on(event(EventKind::kBackoffElapsed, t0 + 3s));
  lifecycle.on({EventKind::kSpawnFailed, t0 + 3s, {}, 0.5});
  BOOST_TEST(lifecycle.starts() == 2u);
  BOOST_TEST(lifecycle.restarts() == 1u);
  lifecycle.on(event(EventKind::kBackoffElapsed, t0 + 6s));
  lifecycle.on(event(EventKind::kSpawned, t0 + 6s));
  BOOST_TEST(lifecycle.starts() == 3u);
  BOOST_TEST(lifecycle.restarts() == 2u);
  // Events that do not start anything do not count.
  lifecycle.on(event(EventKind::kSpawned, t0 + 7s));
  lifecycle.on(event(EventKind::kReady, t0 + 7s));
  lifecycle.on(event(EventKind::kShutdown, t0 + 8s));
  lifecycle.on(exited(t0 + 9s, 0));
  BOOST_TEST(lifecycle.starts() == 3u);
  BOOST_TEST(lifecycle.restarts() == 2u);
}

BOOST_AUTO_TEST_CASE(uptime_runs_from_the_spawn_to_the_exit) {
  WorkerLifecycle lifecycle(restartConfig(), ReadyWhen::kSdk);
  lifecycle.on(event(EventKind::kSpawned, t0 + 5s));
  BOOST_TEST((lifecycle.startedAt() == t0 + 5s));
  lifecycle.on(event(EventKind::kReady, t0 + 6s));
  const auto step = lifecycle.on(exited(t0 + 5s + 1234ms, 1));
  BOOST_TEST(step.uptime.count() == 1234);
}

BOOST_AUTO_TEST_CASE(uptime_is_reported_for_an_exit_during_shutdown) {
  WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kStopping, StopCause::kShutdown);
  const auto step = lifecycle.on(exited(t0 + 42s, 0));
  BOOST_TEST(name(step.state) == name(WorkerState::kStopped));
  BOOST_TEST(step.uptime.count() == Duration{42s}.count());
}

BOOST_AUTO_TEST_CASE(a_stable_run_resets_the_backoff_of_the_next_restart) {
  WorkerLifecycle lifecycle(restartConfig(), ReadyWhen::kSdk);
  auto now = t0;
  for (std::uint32_t exit = 1; exit <= 3; ++exit) {
    lifecycle.on(event(EventKind::kSpawned, now));
    const auto step = lifecycle.on(exited(now + 10s, 1));
    BOOST_TEST(step.restart.backoffStep == exit);
    now += 1h;
    lifecycle.on(event(EventKind::kBackoffElapsed, now));
  }
  lifecycle.on(event(EventKind::kSpawned, now));
  lifecycle.on(event(EventKind::kReady, now + 1s));
  const auto stable = lifecycle.on(exited(now + 31s, 1));
  BOOST_TEST(stable.uptime.count() == Duration{31s}.count());
  BOOST_TEST(stable.readyTime.count() == Duration{30s}.count());
  BOOST_TEST(stable.restart.backoffStep == 1u);
}

BOOST_AUTO_TEST_CASE(ready_time_ends_when_the_connection_closes_not_when_the_exit_is_reaped) {
  WorkerLifecycle lifecycle(restartConfig(), ReadyWhen::kSdk);
  lifecycle.on(event(EventKind::kSpawned, t0));
  lifecycle.on(event(EventKind::kReady, t0 + 1s));
  lifecycle.on(event(EventKind::kDisconnected, t0 + 2s));
  lifecycle.on(event(EventKind::kDisconnected, t0 + 3s));  // only the first counts
  // A slow exit (a minute after its connection closed) does not make the run stable.
  const auto step = lifecycle.on(exited(t0 + 62s, 1));
  BOOST_TEST(step.readyTime.count() == Duration{1s}.count());
  BOOST_TEST(step.uptime.count() == Duration{62s}.count());
  BOOST_TEST(step.restart.backoffStep == 1u);
  // The next run starts a fresh ready time.
  lifecycle.on(event(EventKind::kBackoffElapsed, t0 + 2min));
  lifecycle.on(event(EventKind::kSpawned, t0 + 2min));
  lifecycle.on(event(EventKind::kReady, t0 + 2min + 1s));
  const auto next = lifecycle.on(exited(t0 + 2min + 41s, 1));
  BOOST_TEST(next.readyTime.count() == Duration{40s}.count());
  BOOST_TEST(next.restart.backoffStep == 1u);  // 40 s ready >= stable_after: reset
}

BOOST_AUTO_TEST_CASE(an_operator_restart_is_not_a_failure_and_clears_the_crash_loop_count) {
  auto config = restartConfig();
  config.limit = 2;
  WorkerLifecycle lifecycle(config, ReadyWhen::kSdk);
  auto now = t0;
  // Two quick crashes: one more would be a crash loop.
  for (int crash = 0; crash < 2; ++crash) {
    lifecycle.on(event(EventKind::kSpawned, now));
    lifecycle.on(exited(now + 10ms, 1));
    now += 1min;
    lifecycle.on(event(EventKind::kBackoffElapsed, now));
  }
  lifecycle.on(event(EventKind::kSpawned, now));
  lifecycle.on(event(EventKind::kReady, now + 1s));
  const auto stop = lifecycle.on(event(EventKind::kRestartRequested, now + 2s));
  BOOST_TEST(name(stop.action) == name(Action::kStop));
  const auto requeued = lifecycle.on(exited(now + 3s, 143));
  BOOST_TEST(name(requeued.state) == name(WorkerState::kQueued));
  BOOST_TEST(name(requeued.action) == name(Action::kEnqueue));
  // Counted afresh: two more quick crashes are not yet a loop.
  for (int crash = 0; crash < 2; ++crash) {
    lifecycle.on(event(EventKind::kSpawned, now));
    const auto step = lifecycle.on(exited(now + 10ms, 1));
    BOOST_TEST(name(step.state) == name(WorkerState::kBackingOff));
    now += 1min;
    lifecycle.on(event(EventKind::kBackoffElapsed, now));
  }
}

BOOST_AUTO_TEST_CASE(a_restart_requested_while_stopping_for_a_fault_queues_the_cluster_at_once) {
  WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kStopping, StopCause::kHung);
  lifecycle.on(event(EventKind::kRestartRequested, t0 + 3s));
  BOOST_TEST(name(lifecycle.stopCause()) == name(StopCause::kRestart));
  const auto step = lifecycle.on(exited(t0 + 4s, 0));
  BOOST_TEST(name(step.state) == name(WorkerState::kQueued));
  // But not when the supervisor is stopping.
  WorkerLifecycle stopping = lifecycleIn(WorkerState::kStopping, StopCause::kShutdown);
  stopping.on(event(EventKind::kRestartRequested, t0 + 3s));
  BOOST_TEST(name(stopping.on(exited(t0 + 4s, 0)).state) == name(WorkerState::kStopped));
}

BOOST_AUTO_TEST_CASE(a_run_that_never_became_ready_is_never_stable_and_counts_toward_a_crash_loop) {
  auto config = restartConfig();
  config.limit = 3;
  config.stableAfter = 30s;
  config.window = 60s;
  WorkerLifecycle lifecycle(config, ReadyWhen::kSdk);
  auto now = t0;
  // Each attempt is stopped at a 90 s start timeout: long, but never ready.
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    lifecycle.on(event(EventKind::kSpawned, now));
    lifecycle.on(event(EventKind::kStartTimeout, now + 90s));
    const auto step = lifecycle.on(exited(now + 91s, 0));
    BOOST_TEST(step.readyTime.count() == 0);
    BOOST_TEST(step.restart.backoffStep == attempt);  // never reset: no run was stable
    now += 2min;
    lifecycle.on(event(EventKind::kBackoffElapsed, now));
  }
  lifecycle.on(event(EventKind::kSpawned, now));
  lifecycle.on(event(EventKind::kStartTimeout, now + 90s));
  const auto loop = lifecycle.on(exited(now + 91s, 0));
  BOOST_TEST(name(loop.state) == name(WorkerState::kFailed));
}

BOOST_AUTO_TEST_CASE(restart_config_change_keeps_the_crash_loop_history) {
  auto config = restartConfig();
  config.limit = 3;
  WorkerLifecycle lifecycle(config, ReadyWhen::kSdk);
  auto now = t0;
  for (std::uint32_t exit = 1; exit <= 3; ++exit) {
    lifecycle.on(event(EventKind::kSpawned, now));
    BOOST_TEST(name(lifecycle.on(exited(now + 10ms, 1)).state) == name(WorkerState::kBackingOff));
    now += 1h;
    lifecycle.on(event(EventKind::kBackoffElapsed, now));
  }
  config.maxDelay = 2min;  // a reload that touches something else
  lifecycle.setRestartConfig(config);
  lifecycle.on(event(EventKind::kSpawned, now));
  const auto step = lifecycle.on(exited(now + 10ms, 1));
  BOOST_TEST(name(step.state) == name(WorkerState::kFailed));
  BOOST_TEST(step.restart.restartsInWindow == 4u);
}

BOOST_AUTO_TEST_CASE(restart_config_change_applies_to_later_exits) {
  WorkerLifecycle lifecycle = lifecycleIn(WorkerState::kRunning);
  lifecycle.setRestartConfig(restartConfig(clustervisor::config::RestartPolicy::kNever));
  const auto step = lifecycle.on(exited(t0 + 5s, 1));
  BOOST_TEST(name(step.state) == name(WorkerState::kExited));
}

BOOST_AUTO_TEST_SUITE_END()
