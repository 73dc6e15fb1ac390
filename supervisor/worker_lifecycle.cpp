// SPDX-License-Identifier: MIT
#include "worker_lifecycle.hpp"

#include <algorithm>

namespace clustervisor {

void WorkerLifecycle::handOver(Clock::time_point spawnedAt, Clock::time_point now) {
  if (state_ != WorkerState::kRunning) {
    return;
  }
  startedAt_ = spawnedAt;
  readyAt_ = now;
  readyUntil_.reset();
  stopCause_ = StopCause::kNone;
  ++starts_;
  policy_.reset();
}

void WorkerLifecycle::setRestartConfig(const config::RestartConfig& restart) {
  policy_.setConfig(restart);
}

WorkerLifecycle::Step WorkerLifecycle::moveTo(WorkerState next, Action action, Duration delay) {
  Step step;
  step.state = next;
  step.action = action;
  step.delay = delay;
  step.changed = next != state_;
  state_ = next;
  return step;
}

WorkerLifecycle::Step WorkerLifecycle::ended(const Event& event, Duration uptime,
                                             Duration readyTime, bool success) {
  const StopCause cause = stopCause_;
  stopCause_ = StopCause::kNone;
  if (cause == StopCause::kShutdown || cause == StopCause::kRestart) {
    if (cause == StopCause::kRestart) {
      policy_.reset();
    }
    Step step = cause == StopCause::kShutdown ? moveTo(WorkerState::kStopped, Action::kNone)
                                              : moveTo(WorkerState::kQueued, Action::kEnqueue);
    step.uptime = uptime;
    step.readyTime = readyTime;
    return step;
  }
  const RestartPolicy::Decision decision = policy_.afterExit(readyTime, success, event.jitter);
  Step step;
  switch (decision.verdict) {
    case RestartPolicy::Verdict::kRestart:
      step = moveTo(WorkerState::kBackingOff, Action::kRestartAfter, decision.delay);
      break;
    case RestartPolicy::Verdict::kDone:
      step = moveTo(WorkerState::kExited, Action::kNone);
      break;
    case RestartPolicy::Verdict::kCrashLoop:
      if (policy_.config().onCrashLoop == config::CrashLoopAction::kStopSupervisor) {
        step = moveTo(WorkerState::kFailed, Action::kStopSupervisor);
      } else if (policy_.config().retryFailedAfter.count() > 0) {
        step = moveTo(WorkerState::kFailed, Action::kRetryAfter, policy_.config().retryFailedAfter);
      } else {
        step = moveTo(WorkerState::kFailed, Action::kNone);
      }
      break;
  }
  step.success = success;
  step.uptime = uptime;
  step.readyTime = readyTime;
  step.restart = decision;
  return step;
}

WorkerLifecycle::Step WorkerLifecycle::on(const Event& event) {
  switch (event.kind) {
    case EventKind::kSpawned:
      if (state_ != WorkerState::kQueued) {
        return stay();
      }
      startedAt_ = event.now;
      readyAt_.reset();
      readyUntil_.reset();
      ++starts_;
      return moveTo(WorkerState::kStarting, Action::kArmStartTimeout);

    case EventKind::kSpawnFailed:
      if (state_ != WorkerState::kQueued) {
        return stay();
      }
      startedAt_ = event.now;
      ++starts_;
      return ended(event, Duration{0}, Duration{0}, false);

    case EventKind::kConnected:
      if (state_ == WorkerState::kStarting && readyWhen_ == config::ReadyWhen::kConnect) {
        readyAt_ = event.now;
        return moveTo(WorkerState::kRunning, Action::kNone);
      }
      return stay();

    case EventKind::kReady:
      if (state_ == WorkerState::kStarting) {
        readyAt_ = event.now;
        return moveTo(WorkerState::kRunning, Action::kNone);
      }
      return stay();

    case EventKind::kDisconnected:
      // A worker without its connection serves nothing: its ready time ends, whatever its
      // exit costs afterwards (a slow exit must not make a crashing run look stable).
      if (readyAt_ && !readyUntil_ && hasProcess(state_)) {
        readyUntil_ = event.now;
      }
      return stay();

    case EventKind::kStartTimeout:
      if (state_ != WorkerState::kStarting) {
        return stay();
      }
      stopCause_ = StopCause::kStartTimeout;
      return moveTo(WorkerState::kStopping, Action::kStop);

    case EventKind::kHeartbeatTimeout:
      if (state_ != WorkerState::kStarting && state_ != WorkerState::kRunning) {
        return stay();
      }
      stopCause_ = StopCause::kHung;
      return moveTo(WorkerState::kStopping, Action::kAbort);

    case EventKind::kProtocolError:
      if (state_ != WorkerState::kStarting && state_ != WorkerState::kRunning) {
        return stay();
      }
      stopCause_ = StopCause::kProtocolError;
      return moveTo(WorkerState::kStopping, Action::kStop);

    case EventKind::kExited: {
      if (!hasProcess(state_)) {
        return stay();
      }
      const auto uptime = std::chrono::duration_cast<Duration>(event.now - startedAt_);
      const auto& codes = policy_.config().successExitCodes;
      const bool success = stopCause_ == StopCause::kNone && !event.exit.signaled &&
                           std::find(codes.begin(), codes.end(), event.exit.code) != codes.end();
      const auto readyTime =
          readyAt_
              ? std::chrono::duration_cast<Duration>(readyUntil_.value_or(event.now) - *readyAt_)
              : Duration{0};
      return ended(event, std::max(uptime, Duration{0}), std::max(readyTime, Duration{0}), success);
    }

    case EventKind::kBackoffElapsed:
      if (state_ != WorkerState::kBackingOff) {
        return stay();
      }
      return moveTo(WorkerState::kQueued, Action::kEnqueue);

    case EventKind::kRetryElapsed:
      if (state_ != WorkerState::kFailed) {
        return stay();
      }
      policy_.reset();
      return moveTo(WorkerState::kQueued, Action::kEnqueue);

    case EventKind::kShutdown:
      switch (state_) {
        case WorkerState::kStarting:
        case WorkerState::kRunning:
          stopCause_ = StopCause::kShutdown;
          return moveTo(WorkerState::kStopping, Action::kStop);
        case WorkerState::kStopping:
          stopCause_ = StopCause::kShutdown;
          return stay();
        case WorkerState::kQueued:
        case WorkerState::kBackingOff:
        case WorkerState::kFailed:
        case WorkerState::kExited:
          return moveTo(WorkerState::kStopped, Action::kCancel);
        case WorkerState::kStopped:
          return stay();
      }
      return stay();

    case EventKind::kResume:
      if (state_ != WorkerState::kStopped) {
        return stay();
      }
      policy_.reset();
      return moveTo(WorkerState::kQueued, Action::kEnqueue);

    case EventKind::kRestartRequested:
      switch (state_) {
        case WorkerState::kStarting:
        case WorkerState::kRunning:
          stopCause_ = StopCause::kRestart;
          return moveTo(WorkerState::kStopping, Action::kStop);
        case WorkerState::kStopping:
          if (stopCause_ != StopCause::kShutdown) {
            stopCause_ = StopCause::kRestart;
          }
          return stay();
        case WorkerState::kBackingOff:
        case WorkerState::kFailed:
        case WorkerState::kExited:
          policy_.reset();
          return moveTo(WorkerState::kQueued, Action::kEnqueue);
        case WorkerState::kQueued:
        case WorkerState::kStopped:
          return stay();
      }
      return stay();
  }
  return stay();
}

}  // namespace clustervisor
