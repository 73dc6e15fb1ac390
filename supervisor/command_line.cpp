// SPDX-License-Identifier: MIT
#include "command_line.hpp"

#include <charconv>
#include <unordered_set>

#include "clustervisor/config/bot_config.hpp"
#include "clustervisor/config/duration.hpp"
#include "control_protocol.hpp"

namespace clustervisor {

std::string_view usageText() {
  return "usage: clustervisor run [--] CONFIG\n"
         "       clustervisor check [--] CONFIG\n"
         "       clustervisor status [--json] (CONFIG | --socket PATH)\n"
         "       clustervisor restart (CONFIG | --socket PATH) (--all | ID...)\n"
         "                            [--rolling [--batch N] [--delay DURATION]]\n"
         "       clustervisor reload [--rolling] (CONFIG | --socket PATH)\n"
         "       clustervisor stop [--no-wait] (CONFIG | --socket PATH)\n"
         "       clustervisor --help | --version\n"
         "\n"
         "Run a bot as many clusters: start one worker per cluster from CONFIG (a bot.toml),\n"
         "relay events between them and restart them when they exit.\n"
         "\n"
         "commands:\n"
         "  run CONFIG      start the bot described by CONFIG and supervise it until stopped\n"
         "  check CONFIG    validate CONFIG and print what a run would do; start nothing\n"
         "  status          show the state of every cluster of the running bot\n"
         "  restart         restart the given clusters (or --all) of the running bot\n"
         "  reload          re-read CONFIG in the running bot: scale the cluster count, apply\n"
         "                  new settings (as SIGHUP does)\n"
         "  stop            stop the running bot, as SIGTERM would, and wait until its\n"
         "                  supervisor has exited\n"
         "\n"
         "options:\n"
         "  --socket PATH   reach the supervisor at this control socket instead of the one\n"
         "                  of CONFIG\n"
         "  --json          status: print the supervisor's JSON answer as it is\n"
         "  --no-wait       stop: return once the supervisor has begun to stop\n"
         "  --all           restart: every cluster\n"
         "  --rolling       restart: one batch at a time, each once the previous is ready;\n"
         "                  reload: apply changes that need new workers by a rolling restart\n"
         "  --batch N       restart --rolling: clusters per batch (default: rolling.batch)\n"
         "  --delay DURATION\n"
         "                  restart --rolling: wait between batches (default: rolling.delay)\n"
         "  --              what follows is CONFIG, even if it begins with -\n"
         "  -h, --help, help\n"
         "                  show this help and exit\n"
         "  --version, version\n"
         "                  show the version and exit\n"
         "\n"
         "See clustervisor(1), clustervisor.toml(5) and clustervisor-worker(3).\n";
}

namespace {

bool parseClusterId(std::string_view text, std::uint32_t& id) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
}

}  // namespace

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
  using Command = CommandLine::Command;
  if (first == "run") {
    result.command = Command::kRun;
  } else if (first == "check") {
    result.command = Command::kCheck;
  } else if (first == "status") {
    result.command = Command::kStatus;
  } else if (first == "restart") {
    result.command = Command::kRestart;
  } else if (first == "stop") {
    result.command = Command::kStop;
  } else if (first == "reload") {
    result.command = Command::kReload;
  } else {
    result.error = (first.starts_with("-") ? "unknown option " : "unknown command ") +
                   config::quoteForMessage(first);
    return result;
  }
  const std::string name(first);
  const bool remote = result.command == Command::kStatus || result.command == Command::kRestart ||
                      result.command == Command::kStop || result.command == Command::kReload;
  const auto fail = [&](std::string message) {
    result.error = name + ": " + std::move(message);
    return result;
  };
  // "--name VALUE" or "--name=VALUE"; a missing or empty value is a usage error.
  const auto takesValue = [](std::string_view arg, std::string_view option) {
    return arg == option ||
           (arg.size() > option.size() && arg.starts_with(option) && arg[option.size()] == '=');
  };
  const auto valueOf = [&](std::size_t& i, std::string_view option,
                           std::string_view what) -> std::optional<std::string_view> {
    std::string_view value;
    if (args[i] == option) {
      if (i + 1 < args.size()) {
        value = args[++i];
      }
    } else {
      value = args[i].substr(option.size() + 1);
    }
    if (value.empty()) {
      fail(std::string(option) + " needs " + std::string(what));
      return std::nullopt;
    }
    return value;
  };
  bool endOfOptions = false;
  std::vector<std::string_view> positional;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (!endOfOptions && arg == "--") {
      endOfOptions = true;
    } else if (!endOfOptions && (arg == "-h" || arg == "--help")) {
      result.command = Command::kHelp;
      return result;
    } else if (!endOfOptions && remote && takesValue(arg, "--socket")) {
      const auto value = valueOf(i, "--socket", "a PATH");
      if (!value) {
        return result;
      }
      result.socketPath = std::string(*value);
    } else if (!endOfOptions && result.command == Command::kRestart && takesValue(arg, "--batch")) {
      const auto value = valueOf(i, "--batch", "a number of clusters");
      if (!value) {
        return result;
      }
      std::uint32_t batch = 0;
      if (!parseClusterId(*value, batch) || batch == 0 || batch > control::kMaxBatch) {
        return fail("--batch needs a number of clusters from 1 to " +
                    std::to_string(control::kMaxBatch) + ", not \"" + std::string(*value) + "\"");
      }
      result.batch = batch;
    } else if (!endOfOptions && result.command == Command::kRestart && takesValue(arg, "--delay")) {
      const auto value = valueOf(i, "--delay", "a DURATION");
      if (!value) {
        return result;
      }
      const auto parsed = config::parseDuration(*value);
      if (parsed.status != config::ParsedDuration::Status::kOk || parsed.value.count() < 0 ||
          parsed.value.count() > control::kMaxDelayMs) {
        return fail("--delay needs a duration such as \"5s\" or \"500ms\" (at most 24h), not \"" +
                    std::string(*value) + "\"");
      }
      result.delay = parsed.value;
    } else if (!endOfOptions &&
               (result.command == Command::kRestart || result.command == Command::kReload) &&
               arg == "--rolling") {
      result.rolling = true;
    } else if (!endOfOptions && result.command == Command::kStatus && arg == "--json") {
      result.json = true;
    } else if (!endOfOptions && result.command == Command::kStop && arg == "--no-wait") {
      result.noWait = true;
    } else if (!endOfOptions && result.command == Command::kRestart && arg == "--all") {
      result.all = true;
    } else if (!endOfOptions && arg.starts_with("-") && arg != "-") {
      return fail("unknown option " + config::quoteForMessage(arg));
    } else {
      positional.push_back(arg);
    }
  }
  // CONFIG comes first unless --socket names the supervisor.
  std::size_t next = 0;
  if (!remote || result.socketPath.empty()) {
    if (positional.empty()) {
      return fail("missing CONFIG (the path of a bot.toml)");
    }
    result.configPath = std::string(positional[next++]);
  }
  if (result.command == Command::kRestart) {
    std::unordered_set<std::uint32_t> given;
    for (; next < positional.size(); ++next) {
      std::uint32_t id = 0;
      if (!parseClusterId(positional[next], id)) {
        return fail(config::quoteForMessage(positional[next]) +
                    " is not a cluster id (a number from 0)");
      }
      if (!given.insert(id).second) {
        return fail("cluster " + std::to_string(id) + " is given twice");
      }
      result.clusters.push_back(id);
    }
    if (result.all == !result.clusters.empty()) {
      return fail(result.all ? "give either --all or cluster ids, not both"
                             : "say which clusters: cluster ids, or --all");
    }
    if (!result.rolling && (result.batch || result.delay)) {
      return fail(std::string(result.batch ? "--batch" : "--delay") + " is for --rolling");
    }
    return result;
  }
  if (next < positional.size()) {
    if (result.configPath.empty()) {
      return fail("unexpected " + config::quoteForMessage(positional[next]) +
                  " (--socket already names the supervisor)");
    }
    return fail("more than one CONFIG given (" + config::quoteForMessage(result.configPath) +
                " and " + config::quoteForMessage(positional[next]) + ")");
  }
  return result;
}

}  // namespace clustervisor
