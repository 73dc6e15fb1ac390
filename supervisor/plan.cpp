// SPDX-License-Identifier: MIT
#include "plan.hpp"

#include <algorithm>
#include <string_view>

#include "clustervisor/config/duration.hpp"
#include "clustervisor/config/size.hpp"
#include "clustervisor/config/utf8.hpp"
#include "log.hpp"

namespace clustervisor {

namespace {

using config::formatDuration;
using config::formatSize;

// "0-2", "7" or "" for contiguous ids.
std::string range(const std::vector<std::uint32_t>& ids) {
  if (ids.empty()) {
    return "none";
  }
  if (ids.size() == 1) {
    return std::to_string(ids.front());
  }
  return std::to_string(ids.front()) + "-" + std::to_string(ids.back());
}

}  // namespace

// An argument as a shell needs it typed: as it is when it holds only characters no shell treats
// specially (those of Python's shlex.quote, and non-ASCII ones), otherwise in single quotes (a
// quote inside as '\''). One with a control character (a newline would break the plan's line,
// an escape sequence would reach the terminal) in bash's $'...' form, the character escaped.
std::string quoteArgument(std::string_view argument) {
  const auto plain = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80 ||  // a byte of a multibyte character: nothing to a shell
           std::string_view("@%+=:,./-_").find(static_cast<char>(c)) != std::string_view::npos;
  };
  bool controls = false;
  for (std::size_t i = 0; i < argument.size(); ++i) {
    controls = controls || config::controlCharacterAt(argument, i) > 0;
  }
  if (!argument.empty() && !controls && std::all_of(argument.begin(), argument.end(), [&](char c) {
        return plain(static_cast<unsigned char>(c));
      })) {
    return std::string(argument);
  }
  if (!controls) {
    std::string quoted = "'";
    for (const char c : argument) {
      quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return quoted + "'";
  }
  std::string quoted = "$'";
  for (std::size_t i = 0; i < argument.size(); ++i) {
    const char c = argument[i];
    if (c == '\n') {
      quoted += "\\n";
    } else if (c == '\t') {
      quoted += "\\t";
    } else if (c == '\r') {
      quoted += "\\r";
    } else if (c == '\\' || c == '\'') {
      quoted += '\\';
      quoted += c;
    } else if (const std::size_t n = config::controlCharacterAt(argument, i); n > 0) {
      constexpr char kHex[] = "0123456789abcdef";
      for (std::size_t k = 0; k < n; ++k) {
        const auto u = static_cast<unsigned char>(argument[i + k]);
        quoted += "\\x";
        quoted += kHex[u >> 4];
        quoted += kHex[u & 0xf];
      }
      i += n - 1;
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

namespace {

void line(std::string& out, std::string_view label, const std::string& value) {
  out += "  ";
  out += label;
  out.append(label.size() < 18 ? 18 - label.size() : 1, ' ');
  out += value;
  out += '\n';
}

std::string restartText(const config::RestartConfig& restart) {
  std::string text;
  switch (restart.policy) {
    case config::RestartPolicy::kAlways:
      text = "always";
      break;
    case config::RestartPolicy::kOnFailure:
      text = "on failure";
      break;
    case config::RestartPolicy::kNever:
      return "never";
  }
  text += " (success: exit status";
  if (restart.successExitCodes.empty()) {
    text += " none";
  }
  for (std::size_t i = 0; i < restart.successExitCodes.size(); ++i) {
    text += (i == 0 ? " " : ", ") + std::to_string(restart.successExitCodes[i]);
  }
  text += "); backoff " + formatDuration(restart.delay) + " doubling to " +
          formatDuration(restart.maxDelay) + ", reset after " +
          formatDuration(restart.stableAfter) + " ready";
  return text;
}

std::string crashLoopText(const config::RestartConfig& restart) {
  if (restart.policy == config::RestartPolicy::kNever) {
    return "not applicable (never restarted)";
  }
  if (restart.limit == 0) {
    return "no limit";
  }
  std::string text = "more than " + std::to_string(restart.limit) + " restart" +
                     (restart.limit == 1 ? "" : "s") + " within " + formatDuration(restart.window) +
                     " of run time: ";
  if (restart.onCrashLoop == config::CrashLoopAction::kStopSupervisor) {
    return text + "stop everything, exit 69";
  }
  return text + "cluster failed, " +
         (restart.retryFailedAfter.count() == 0
              ? std::string("not retried")
              : "retried after " + formatDuration(restart.retryFailedAfter));
}

}  // namespace

std::string describePlan(const config::BotConfig& config, const std::filesystem::path& lockFile,
                         const std::filesystem::path& controlSocket) {
  std::string out = config.sourceFile.string() + ": valid; nothing was started.\n\n";
  line(out, "name", config.name);
  std::string command;
  for (const auto& argument : config.command) {
    if (!command.empty()) {
      command += ' ';
    }
    command += quoteArgument(argument);
  }
  line(out, "command", command);
  line(out, "working directory", quoteArgument(config.workingDirectory.string()));
  line(out, "clusters",
       std::to_string(config.clusters) + " (ids 0-" + std::to_string(config.clusters - 1) + ")");
  if (config.shards.total == 0) {
    line(out, "shards", "none");
  } else {
    line(out, "shards",
         std::to_string(config.shards.total) + " in all, " +
             (config.shards.perCluster == 0
                  ? std::string("spread evenly")
                  : std::to_string(config.shards.perCluster) + " per cluster"));
    for (std::uint32_t id = 0; id < config.clusters; ++id) {
      line(out, "", "cluster " + std::to_string(id) + ": " + range(config::shardsFor(config, id)));
    }
  }
  if (config.environment.empty()) {
    line(out, "environment", "the supervisor's own");
  } else {
    bool first = true;
    for (const auto& [name, value] : config.environment) {
      line(out, first ? "environment" : "", name + "=" + quoteArgument(value));
      first = false;
    }
    line(out, "", "(added to the supervisor's own)");
  }
  line(out, "start",
       std::string(config.start.ready == config::ReadyWhen::kSdk ? "ready when it calls ready()"
                                                                 : "ready when it connects") +
           "; timeout " + formatDuration(config.start.timeout) + "; " +
           formatDuration(config.start.delay) + " between starts" +
           (config.start.waitForReady ? ", each after the previous is ready" : ""));
  line(out, "restart", restartText(config.restart));
  line(out, "crash loop", crashLoopText(config.restart));
  line(out, "heartbeat",
       config.heartbeat.timeout.count() == 0
           ? std::string("off")
           : "every " + formatDuration(config.heartbeat.interval) + "; hung after " +
                 formatDuration(config.heartbeat.timeout) + " of silence");
  line(out, "stop",
       "stop frame, " + signalName(config.stop.signal) + " (after " +
           formatDuration(std::min(config.stop.signalDelay, config.stop.timeout / 2)) +
           " for workers with an onStop handler), SIGKILL after " +
           formatDuration(config.stop.timeout));
  line(out, "events",
       "payload up to " + formatSize(config.events.maxPayload) + "; outbox " +
           formatSize(config.events.outboxLimit) + " per worker, stalled after " +
           formatDuration(config.events.stallTimeout) + "; hold " +
           std::to_string(config.events.holdMaxCount) + " events, " +
           formatSize(std::min(config.events.holdMaxBytes, config.events.outboxLimit / 2)) + ", " +
           formatDuration(config.events.holdMaxAge) + " per cluster");
  line(out, "rolling",
       std::to_string(config.rolling.batch) + " cluster" + (config.rolling.batch == 1 ? "" : "s") +
           " at a time, each batch once the last is ready" +
           (config.rolling.delay.count() > 0
                ? " and " + formatDuration(config.rolling.delay) + " have passed"
                : std::string()));
  line(out, "lock file", quoteArgument(lockFile.string()));
  line(out, "control socket", quoteArgument(controlSocket.string()));
  line(out, "metrics",
       config.metrics.listen.empty() ? std::string("off")
                                     : "http://" + config.metrics.listen + "/metrics");
  return out;
}

}  // namespace clustervisor
