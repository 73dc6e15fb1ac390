// SPDX-License-Identifier: MIT
//
// CommandLine: what the user asked for on the command line. Pure: parseCommandLine() takes the
// arguments and returns either a command or a usage error; it prints nothing.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace clustervisor {

struct CommandLine {
  enum class Command { kRun, kCheck, kStatus, kRestart, kStop, kHelp, kVersion };
  Command command = Command::kHelp;
  std::string configPath;  // run, check; status/restart/stop unless socketPath is given
  std::string socketPath;  // status/restart/stop: --socket PATH
  bool json = false;       // status --json
  bool all = false;        // restart --all
  std::vector<std::uint32_t> clusters;  // restart ID...
  std::string error;  // non-empty: a usage error, for "clustervisor: error: <error>"
};

// `args` excludes the program name.
CommandLine parseCommandLine(std::span<const std::string_view> args);

// The text of `clustervisor --help`.
std::string_view usageText();

}  // namespace clustervisor
