// SPDX-License-Identifier: MIT
//
// WorkerState: where one cluster's worker is in its life, as shown in logs and documented in
// clustervisor(1). Transitions (the supervisor drives them; an exit is a reaped SIGCHLD):
//
//   starting    --hello-->             running
//   starting    --exit-->              backing-off
//   running     --exit-->              backing-off
//   starting,
//   running     --protocol error-->    stopping   (stop signal, SIGKILL at stop.timeout)
//   stopping    --exit-->              backing-off
//   backing-off --restart.delay-->     starting   (or backing-off again if the spawn failed)
//   starting, running, stopping  --supervisor stops-->  stopping --exit--> stopped
//   backing-off                  --supervisor stops-->  stopped
//
// A worker that closes its socket but keeps running stays where it is, disconnected.
#pragma once

#include <string_view>

namespace clustervisor {

enum class WorkerState {
  kStarting,    // spawned, has not said hello yet
  kRunning,     // connected; events flow
  kStopping,    // the stop signal was sent; SIGKILL follows at the stop timeout
  kBackingOff,  // exited or failed to start; waits restart.delay before starting again
  kStopped,     // the supervisor is stopping and this worker is gone
};

constexpr std::string_view toString(WorkerState state) {
  switch (state) {
    case WorkerState::kStarting:
      return "starting";
    case WorkerState::kRunning:
      return "running";
    case WorkerState::kStopping:
      return "stopping";
    case WorkerState::kBackingOff:
      return "backing-off";
    case WorkerState::kStopped:
      return "stopped";
  }
  return "unknown";
}

}  // namespace clustervisor
