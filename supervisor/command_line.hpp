// SPDX-License-Identifier: MIT
//
// CommandLine: what the user asked for on the command line. Pure: parseCommandLine() takes the
// arguments and returns either a command or a usage error; it prints nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace clustervisor {

struct CommandLine {
  enum class Command { kRun, kCheck, kStatus, kRestart, kStop, kReload, kHelp, kVersion };
  Command command = Command::kHelp;
  std::string configPath;  // run, check; status/restart/stop/reload unless socketPath is given
  std::string socketPath;  // status/restart/stop/reload: --socket PATH
  bool json = false;       // status --json
  bool noWait = false;     // stop --no-wait
  bool all = false;        // restart --all
  std::vector<std::uint32_t> clusters;             // restart ID...
  bool rolling = false;                            // restart --rolling, reload --rolling
  std::optional<std::uint32_t> batch;              // restart --rolling --batch N
  std::optional<std::chrono::milliseconds> delay;  // restart --rolling --delay DURATION
  std::string error;  // non-empty: a usage error, for "clustervisor: error: <error>"
};

// `args` excludes the program name.
CommandLine parseCommandLine(std::span<const std::string_view> args);

// The text of `clustervisor --help`.
std::string_view usageText();

}  // namespace clustervisor
