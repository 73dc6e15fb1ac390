// SPDX-License-Identifier: MIT
//
// example-bot: a Discord-style bot that runs as many clusters under clustervisor, fully offline.
// Each cluster owns the shards bot.toml gives it (two of eight), caches guild settings, and
// plays fake guild traffic (TrafficGenerator) that uses the four cross-cluster patterns of the SDK:
//
//   cache invalidation  broadcast("invalidateCache"); broadcastAndWait("cacheInvalidate")
//   config reload       broadcast("configUpdated")
//   maintenance mode    broadcast("maintenance")
//   audit log           emitTo(0, "logAction"), heard only by the primary (cluster 0)
//
// Threads: main() plays the traffic and blocks freely (sleeps, broadcastAndWait(...).get());
// listeners run one at a time on the SDK's threads. SIGTERM, which clustervisor sends to
// stop a worker, sets a flag that the main loop checks while it waits for the next action.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <boost/json/value_to.hpp>
#include <clustervisor/worker.hpp>

#include "bot_state.hpp"
#include "traffic_generator.hpp"

namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
std::atomic<bool> stopRequested{false};

extern "C" void requestStop(int) {
  stopRequested = true;
}

// One whole line per call: the main thread and the listeners both print, and the supervisor
// reads our stdout through a pipe, so each line is flushed at once.
void logLine(const std::string& line) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::cout << line << std::endl;
}

std::string text(const json::value& value) {
  return json::value_to<std::string>(value);
}

// Sleeps for `duration`; returns false early if a stop was requested.
bool sleepUnlessStopped(std::chrono::milliseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (!stopRequested) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= 0s) {
      return true;
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, 50ms));
  }
  return false;
}

void listen(clustervisor::Cluster& cluster, BotState& state) {
  auto& events = cluster.events();
  const auto from = [](int source) { return " (from cluster " + std::to_string(source) + ")"; };

  // A listener that throws (say, data.at() on a malformed payload) lands here, not in main().
  events.setErrorHandler([](std::string_view event, std::exception_ptr error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::cerr << "listener for " << event << " failed: " << e.what() << std::endl;
    } catch (...) {
      std::cerr << "listener for " << event << " failed" << std::endl;
    }
  });

  events.on("invalidateCache", [&state, from](const json::value& data, int source) {
    const std::string key = text(data.at("type")) + ":" + text(data.at("id"));
    logLine("cache: " + key + (state.drop(key) ? " dropped" : " was not cached") + from(source));
  });
  // broadcastAndWait's sender counts the clusters whose listeners returned: the SDK
  // acknowledges each event after its listeners ran.
  events.on("cacheInvalidate", [&state, from](const json::value& data, int source) {
    const std::string key = text(data.at("key"));
    logLine("cache: " + key + (state.drop(key) ? " dropped" : " was not cached") +
            ", acknowledging" + from(source));
  });
  events.on("configUpdated", [&state, from](const json::value& data, int source) {
    state.setConfig(text(data.at("key")), text(data.at("value")));
    logLine("config: reloaded, now " + state.describeConfig() + from(source));
  });
  events.on("maintenance", [&state, from](const json::value& data, int source) {
    const bool enabled = data.at("enabled").as_bool();
    state.setMaintenance(enabled);
    logLine(std::string("maintenance: ") + (enabled ? "ON" : "off") + from(source));
  });
  // Only the primary keeps the audit log; on other clusters the event is never addressed to us.
  if (cluster.isPrimary()) {
    events.on("logAction", [from, entry = 0](const json::value& data, int source) mutable {
      logLine("audit #" + std::to_string(++entry) + ": " + text(data.at("action")) + " user " +
              text(data.at("userId")) + " in guild " + text(data.at("guildId")) + from(source));
    });
  }
}

void perform(const Action& action, clustervisor::Cluster& cluster, BotState& state) {
  auto& events = cluster.events();
  const std::string guildKey = "guild:" + action.guildId;
  switch (action.kind) {
    case ActionKind::kModerate:
      logLine("moderation: " + action.key + " user " + action.userId + " in guild " +
              action.guildId + ", sending it to the audit log");
      events.emitTo(
          0, "logAction",
          {{"action", action.key}, {"userId", action.userId}, {"guildId", action.guildId}});
      break;
    case ActionKind::kUpdateGuildSettings:
      state.cache(guildKey, action.value);
      logLine("settings: guild " + action.guildId + " set its prefix to \"" + action.value +
              "\", broadcasting invalidateCache");
      events.broadcast("invalidateCache", {{"type", "guild"}, {"id", action.guildId}});
      break;
    case ActionKind::kResetGuildSettings: {
      // Answer the admin only once no other cluster can serve the old settings any more.
      state.drop(guildKey);
      logLine("settings: guild " + action.guildId +
              " resets its settings, broadcasting and waiting");
      const int expected = cluster.totalClusters() - 1;
      // Blocking in .get() is fine here, on the main thread (a listener may do it too, but holds
      // every later event for this cluster meanwhile).
      const int acked =
          events.broadcastAndWait("cacheInvalidate", {{"key", guildKey}}, 2s, expected).get();
      logLine("settings: " + std::to_string(acked) + " clusters acknowledged (expected " +
              std::to_string(expected) + "), reset of guild " + action.guildId + " done");
      break;
    }
    case ActionKind::kChangeConfig:
      state.setConfig(action.key, action.value);
      logLine("config: " + action.key + " = " + action.value + ", broadcasting configUpdated");
      events.broadcast("configUpdated", {{"key", action.key}, {"value", action.value}});
      break;
    case ActionKind::kToggleMaintenance: {
      const bool enabled = state.toggleMaintenance();
      logLine(std::string("admin: /maintenance turns it ") + (enabled ? "ON" : "off") +
              ", broadcasting maintenance");
      events.broadcast("maintenance", {{"enabled", enabled}});
      break;
    }
  }
}

}  // namespace

int main() {
  std::signal(SIGTERM, requestStop);
  std::signal(SIGINT, requestStop);

  BotState state;  // before the Cluster: listeners refer to it until the Cluster is destroyed
  try {
    auto cluster = clustervisor::Cluster::fromEnvironment();
    // The shards this cluster owns come from [shards] in bot.toml, through the environment.
    std::string shards;
    for (const auto shard : cluster.shards()) {
      if (!shards.empty()) {
        shards += ',';
      }
      shards += std::to_string(shard);
    }
    logLine("shards " + (shards.empty() ? std::string("none") : shards) + " of " +
            std::to_string(cluster.totalShards()) + ", logging in");
    listen(cluster, state);  // before ready(): events that arrive early must find a listener
    // `clustervisor reload` after changing `clusters` in bot.toml scales the bot while it runs.
    cluster.onTotalClustersChanged([](int total, int old) {
      logLine("the bot now runs " + std::to_string(total) + " clusters (was " +
              std::to_string(old) + ")");
    });

    // Simulated login: connect the shards and warm the settings cache.
    std::this_thread::sleep_for(500ms);
    for (const char* guild : TrafficGenerator::kGuilds) {
      state.cache(std::string("guild:") + guild, "!");
    }
    cluster.ready();
    logLine("logged in, " + std::to_string(state.cached()) + " guild settings cached, ready" +
            (cluster.isPrimary() ? " (primary: keeps the audit log)" : ""));

    TrafficGenerator traffic(cluster.id());
    for (;;) {
      const Action action = traffic.next();
      if (!sleepUnlessStopped(action.delay)) {
        break;
      }
      try {
        perform(action, cluster, state);
      } catch (const clustervisor::Error& e) {
        // Say, Errc::kQueueFull while the supervisor is not reading: skip this action.
        std::cerr << "action failed: " << e.what() << std::endl;
      }
    }
    logLine("shutting down");
  } catch (const clustervisor::Error& e) {
    std::cerr << "example-bot: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
