// SPDX-License-Identifier: MIT
//
// clustervisor: the command-line entry point. Parses the command line, loads the config and runs
// the Supervisor; maps every outcome to a documented exit status.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/system/system_error.hpp>

#include "clustervisor/config/bot_config.hpp"
#include "command_line.hpp"
#include "exit_status.hpp"
#include "log.hpp"
#include "plan.hpp"
#include "run_lock.hpp"
#include "supervisor.hpp"

#ifndef CLUSTERVISOR_VERSION
#define CLUSTERVISOR_VERSION "unknown"
#endif

namespace {

using namespace clustervisor;

// Loads CONFIG, or reports every problem in it (nothing is started either way).
std::optional<config::BotConfig> loadConfig(const std::string& configPath) {
  auto loaded = config::loadConfigFile(configPath);
  if (!loaded.errors.empty()) {
    for (const auto& error : loaded.errors) {
      logError(error.format());
    }
    logLine(std::to_string(loaded.errors.size()) + " error" +
            (loaded.errors.size() == 1 ? "" : "s") + " in " + configPath + "; nothing was started");
    return std::nullopt;
  }
  return std::move(loaded.config);
}

int checkBot(const std::string& configPath) {
  const auto config = loadConfig(configPath);
  if (!config) {
    return kExitConfig;
  }
  const auto lockFile = RunLock::lockFileFor(configPath, RunLock::runtimeDirectoryPath());
  std::fputs(describePlan(*config, lockFile).c_str(), stdout);
  return kExitOk;
}

int runBot(const std::string& configPath) {
  auto loaded = loadConfig(configPath);
  if (!loaded) {
    return kExitConfig;
  }
  // One supervisor per config file: a second one would start every cluster twice.
  std::string lockError;
  bool alreadyRunning = false;
  const auto lock = RunLock::acquire(configPath, lockError, alreadyRunning);
  if (!lock) {
    logError(lockError);
    return alreadyRunning ? kExitAlreadyRunning : kExitOsError;
  }
  // A worker or log reader that goes away must be an error value, not a fatal signal.
  ::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context io(1);
  std::optional<Supervisor> supervisor;
  try {
    supervisor.emplace(io, std::move(*loaded));
  } catch (const boost::system::system_error& e) {
    // Signals, the event loop: what the supervisor needs from the OS before anything starts.
    logError(std::string("cannot start: ") + e.what());
    return kExitOsError;
  }
  return supervisor->run();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  const auto commandLine = parseCommandLine(args);
  if (!commandLine.error.empty()) {
    logError(commandLine.error);
    std::fputs(std::string(usageText()).c_str(), stderr);
    return kExitUsage;
  }
  try {
    switch (commandLine.command) {
      case CommandLine::Command::kHelp:
        std::fputs(std::string(usageText()).c_str(), stdout);
        return kExitOk;
      case CommandLine::Command::kVersion:
        std::printf("clustervisor %s (wire protocol %d)\n", CLUSTERVISOR_VERSION,
                    static_cast<int>(wire::kProtocolVersion));
        return kExitOk;
      case CommandLine::Command::kRun:
        return runBot(commandLine.configPath);
      case CommandLine::Command::kCheck:
        return checkBot(commandLine.configPath);
    }
  } catch (const std::exception& e) {
    logError(std::string("internal error: ") + e.what());
    return kExitSoftware;
  }
  return kExitSoftware;
}
