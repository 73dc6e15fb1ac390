// SPDX-License-Identifier: MIT
//
// WorkerState: where one cluster's worker is in its life, as shown in logs and documented in
// clustervisor(1):
//
//   starting ──hello──▶ running ──exit──▶ backing-off ──delay──▶ starting
//      │                   │                                        ▲
//      └──exit─────────────┴──protocol error──▶ stopping ──exit─────┘
//   any state ──supervisor stops──▶ stopping ──exit──▶ stopped
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
