// SPDX-License-Identifier: MIT
#include "command_line.hpp"

namespace clustervisor {

std::string_view usageText() {
  return "usage: clustervisor run CONFIG\n"
         "       clustervisor check CONFIG\n"
         "       clustervisor --help | --version\n"
         "\n"
         "Run a bot as many clusters: start one worker per cluster from CONFIG (a bot.toml),\n"
         "relay events between them and restart them when they exit.\n"
         "\n"
         "commands:\n"
         "  run CONFIG   start the bot described by CONFIG and supervise it until SIGINT/SIGTERM\n"
         "  check CONFIG validate CONFIG and print what a run would do; start nothing\n"
         "\n"
         "options:\n"
         "  -h, --help   show this help and exit\n"
         "  --version    show the version and exit\n"
         "\n"
         "See clustervisor(1), clustervisor.toml(5) and clustervisor-worker(3).\n";
}

CommandLine parseCommandLine(std::span<const std::string_view> args) {
  CommandLine result;
  if (args.empty()) {
    result.error = "no command given";
    return result;
  }
  const std::string_view first = args.front();
  if (first == "-h" || first == "--help" || first == "help") {
    result.command = CommandLine::Command::kHelp;
    return result;
  }
  if (first == "--version" || first == "version") {
    result.command = CommandLine::Command::kVersion;
    return result;
  }
  if (first != "run" && first != "check") {
    result.error = first.starts_with("-") ? "unknown option \"" + std::string(first) + "\""
                                          : "unknown command \"" + std::string(first) + "\"";
    return result;
  }
  const std::string name(first);
  result.command = first == "run" ? CommandLine::Command::kRun : CommandLine::Command::kCheck;
  bool endOfOptions = false;
  for (const std::string_view arg : args.subspan(1)) {
    if (!endOfOptions && arg == "--") {
      endOfOptions = true;
    } else if (!endOfOptions && (arg == "-h" || arg == "--help")) {
      result.command = CommandLine::Command::kHelp;
      return result;
    } else if (!endOfOptions && arg.starts_with("-") && arg != "-") {
      result.error = name + ": unknown option \"" + std::string(arg) + "\"";
      return result;
    } else if (result.configPath.empty()) {
      result.configPath = std::string(arg);
    } else {
      result.error = name + ": more than one CONFIG given (\"" + result.configPath + "\" and \"" +
                     std::string(arg) + "\")";
      return result;
    }
  }
  if (result.configPath.empty()) {
    result.error = name + ": missing CONFIG (the path of a bot.toml)";
  }
  return result;
}

}  // namespace clustervisor
