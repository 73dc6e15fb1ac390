// SPDX-License-Identifier: MIT
//
// clustervisor: the command-line entry point. Parses the command line, loads the config and runs
// the Supervisor; maps every outcome to a documented exit status.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>

#include "clustervisor/config/bot_config.hpp"
#include "command_line.hpp"
#include "control_client.hpp"
#include "control_protocol.hpp"
#include "exit_status.hpp"
#include "log.hpp"
#include "plan.hpp"
#include "run_lock.hpp"
#include "status_text.hpp"
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
  const auto directory = RunLock::runtimeDirectoryPath();
  std::fputs(describePlan(*config, RunLock::lockFileFor(configPath, directory),
                          RunLock::controlSocketFor(configPath, directory))
                 .c_str(),
             stdout);
  return kExitOk;
}

// status, restart, stop: one request to the running supervisor.
int callBot(const CommandLine& commandLine) {
  std::filesystem::path socket = commandLine.socketPath;
  const std::string who = commandLine.socketPath.empty() ? commandLine.configPath : socket.string();
  if (socket.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(commandLine.configPath, ec)) {
      logError(commandLine.configPath + ": " +
               (ec ? ec.message() : std::string("not a configuration file")));
      return kExitConfig;
    }
    socket = RunLock::controlSocketFor(commandLine.configPath, RunLock::runtimeDirectoryPath());
  }
  control::Request request = control::StatusRequest{};
  if (commandLine.command == CommandLine::Command::kStop) {
    request = control::StopRequest{};
  } else if (commandLine.command == CommandLine::Command::kRestart) {
    request = control::RestartRequest{commandLine.all, commandLine.clusters};
  }
  std::string reply;
  std::string error;
  switch (callSupervisor(socket, control::encodeRequest(request), std::chrono::seconds(10), reply,
                         error)) {
    case ControlCallResult::kNoSupervisor:
      logError("no supervisor is running for " + who + " (nothing listens at " + socket.string() +
               ")");
      return kExitUnavailable;
    case ControlCallResult::kFailed:
      logError(error);
      return kExitUnavailable;
    case ControlCallResult::kAnswered:
      break;
  }
  boost::system::error_code ec;
  const auto answer = boost::json::parse(reply, ec);
  if (ec || !answer.is_object()) {
    logError("the supervisor's answer is not a JSON object: " + reply.substr(0, 200));
    return kExitSoftware;
  }
  const auto& object = answer.get_object();
  const auto* ok = object.if_contains("ok");
  if (ok == nullptr || !ok->is_bool() || !ok->get_bool()) {
    const auto* message = object.if_contains("error");
    logError(message != nullptr && message->is_string() ? std::string(message->get_string())
                                                        : "the supervisor refused the request");
    return kExitRequestFailed;
  }
  const auto* result = object.if_contains("result");
  const boost::json::object empty;
  const auto& body = result != nullptr && result->is_object() ? result->get_object() : empty;
  switch (commandLine.command) {
    case CommandLine::Command::kStatus:
      std::fputs(commandLine.json ? (boost::json::serialize(body) + "\n").c_str()
                                  : formatStatus(body).c_str(),
                 stdout);
      break;
    case CommandLine::Command::kRestart: {
      std::string ids;
      if (const auto* restarting = body.if_contains("restarting");
          restarting != nullptr && restarting->is_array()) {
        for (const auto& id : restarting->get_array()) {
          ids += (ids.empty() ? "" : ", ") + boost::json::serialize(id);
        }
      }
      std::printf("restarting cluster%s %s\n", ids.find(',') == std::string::npos ? "" : "s",
                  ids.c_str());
      break;
    }
    case CommandLine::Command::kStop:
      std::printf("stopping %s\n", who.c_str());
      break;
    case CommandLine::Command::kRun:
    case CommandLine::Command::kCheck:
    case CommandLine::Command::kHelp:
    case CommandLine::Command::kVersion:
      break;
  }
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
    supervisor.emplace(io, std::move(*loaded),
                       RunLock::controlSocketFor(configPath, lock->path().parent_path()));
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
      case CommandLine::Command::kStatus:
      case CommandLine::Command::kRestart:
      case CommandLine::Command::kStop:
        return callBot(commandLine);
    }
  } catch (const std::exception& e) {
    logError(std::string("internal error: ") + e.what());
    return kExitSoftware;
  }
  return kExitSoftware;
}
