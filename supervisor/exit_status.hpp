// SPDX-License-Identifier: MIT
//
// The supervisor's exit statuses (sysexits.h values), documented in clustervisor(1).
#pragma once

namespace clustervisor {

enum ExitStatus : int {
  kExitOk = 0,         // stopped on request, every worker stopped
  kExitUsage = 64,     // bad command line
  kExitSoftware = 70,  // internal error
  kExitOsError = 71,   // the OS refused something needed to start (signals, fds, …)
  kExitConfig = 78,    // bad configuration file
};

}  // namespace clustervisor
