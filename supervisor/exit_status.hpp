// SPDX-License-Identifier: MIT
//
// The supervisor's exit statuses (sysexits.h values), documented in clustervisor(1).
#pragma once

namespace clustervisor {

enum ExitStatus : int {
  kExitOk = 0,               // stopped on request, every worker stopped
  kExitRequestFailed = 1,    // status/restart/stop: the supervisor refused the request
  kExitUsage = 64,           // bad command line
  kExitUnavailable = 69,     // workers failed: a crash loop with restart.on_crash_loop =
                             // "stop-supervisor", or every cluster ended and one of them failed;
                             // status/restart/stop: no supervisor answers
  kExitSoftware = 70,        // internal error
  kExitOsError = 71,         // the OS refused something needed to start (signals, fds, …)
  kExitAlreadyRunning = 75,  // another supervisor runs the same config file
  kExitConfig = 78,          // bad configuration file
};

}  // namespace clustervisor
