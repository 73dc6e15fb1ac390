// SPDX-License-Identifier: MIT
//
// WorkerState: where one cluster is in its life, as shown in logs and in clustervisor(1). The
// transitions are made by WorkerLifecycle (worker_lifecycle.hpp), which has the full table.
#pragma once

#include <string_view>

namespace clustervisor {

enum class WorkerState {
  kQueued,      // waiting for its turn in the spawn queue
  kStarting,    // spawned, not ready yet
  kRunning,     // ready
  kStopping,    // being stopped: stop frame, stop signal (or SIGABRT), SIGKILL at the timeout
  kBackingOff,  // exited; waits out its backoff before it queues to start again
  kFailed,      // crash loop; retried after restart.retry_failed_after (unless 0s)
  kExited,      // exited and not restarted by the policy (on-failure after a success, never)
  kStopped,     // the supervisor is stopping and this cluster has nothing running
};

constexpr std::string_view toString(WorkerState state) {
  switch (state) {
    case WorkerState::kQueued:
      return "queued";
    case WorkerState::kStarting:
      return "starting";
    case WorkerState::kRunning:
      return "running";
    case WorkerState::kStopping:
      return "stopping";
    case WorkerState::kBackingOff:
      return "backing-off";
    case WorkerState::kFailed:
      return "failed";
    case WorkerState::kExited:
      return "exited";
    case WorkerState::kStopped:
      return "stopped";
  }
  return "unknown";
}

// A process runs for the cluster (and must be reaped before the cluster can be stopped).
constexpr bool hasProcess(WorkerState state) {
  return state == WorkerState::kStarting || state == WorkerState::kRunning ||
         state == WorkerState::kStopping;
}

}  // namespace clustervisor
