// SPDX-License-Identifier: MIT
//
// ConfigChange: what a reload changes, key by key, and how each change can be applied to a bot
// that is running. Pure: compares two validated configs.
//
// Every key falls in one of three kinds:
//   - applied at once: name, clusters (scaling), restart.*, start.*, stop.*, events.hold_*,
//     rolling.*, which the supervisor reads for its next decision, and shards.*: the clusters
//     whose shards move (shardsChanged, also after a new cluster count) are stopped and started
//     again;
//   - for new workers: command, working_directory, environment, heartbeat.*, events.max_payload,
//     events.outbox_limit; a worker gets them when it is (re)started, so the running ones keep
//     what they were started with until a (rolling) restart;
//   - for a new supervisor: control.socket, metrics.listen; the running supervisor keeps its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "clustervisor/config/bot_config.hpp"

namespace clustervisor {

struct ConfigChange {
  std::uint32_t clustersBefore = 0;
  std::uint32_t clustersAfter = 0;
  std::vector<std::string> applied;           // dotted keys, in schema order ("clusters" too)
  std::vector<std::string> forNewWorkers;     // dotted keys
  std::vector<std::string> forNewSupervisor;  // dotted keys
  // Clusters that stay (id below both counts) whose shard list, or the total it is out of,
  // differs.
  std::vector<std::uint32_t> shardsChanged;

  bool empty() const {
    return applied.empty() && forNewWorkers.empty() && forNewSupervisor.empty();
  }
  // The clusters that stay and need a restart to run with the new config: all of them when a key
  // for new workers changed, else those whose shards changed.
  std::vector<std::uint32_t> clustersToRestart() const;
};

ConfigChange compareConfigs(const config::BotConfig& running, const config::BotConfig& loaded);

}  // namespace clustervisor
