// SPDX-License-Identifier: MIT
#include "config_change.hpp"

#include <algorithm>

namespace clustervisor {

std::vector<std::uint32_t> ConfigChange::clustersToRestart() const {
  const std::uint32_t staying = std::min(clustersBefore, clustersAfter);
  if (forNewWorkers.empty()) {
    return shardsChanged;
  }
  std::vector<std::uint32_t> ids;
  for (std::uint32_t id = 0; id < staying; ++id) {
    ids.push_back(id);
  }
  return ids;
}

ConfigChange compareConfigs(const config::BotConfig& running, const config::BotConfig& loaded) {
  ConfigChange change;
  change.clustersBefore = running.clusters;
  change.clustersAfter = loaded.clusters;
  const auto note = [](std::vector<std::string>& into, bool differs, const char* key) {
    if (differs) {
      into.emplace_back(key);
    }
  };
  const auto& a = running;
  const auto& b = loaded;
  auto& applied = change.applied;
  auto& workers = change.forNewWorkers;
  auto& supervisor = change.forNewSupervisor;

  note(workers, a.command != b.command, "command");
  note(applied, a.clusters != b.clusters, "clusters");
  note(applied, a.name != b.name, "name");
  note(workers, a.workingDirectory != b.workingDirectory, "working_directory");
  note(workers, a.environment != b.environment, "environment");
  note(applied, a.start.ready != b.start.ready, "start.ready");
  note(applied, a.start.timeout != b.start.timeout, "start.timeout");
  note(applied, a.start.delay != b.start.delay, "start.delay");
  note(applied, a.start.waitForReady != b.start.waitForReady, "start.wait_for_ready");
  note(applied, a.restart.policy != b.restart.policy, "restart.policy");
  note(applied, a.restart.successExitCodes != b.restart.successExitCodes,
       "restart.success_exit_codes");
  note(applied, a.restart.delay != b.restart.delay, "restart.delay");
  note(applied, a.restart.maxDelay != b.restart.maxDelay, "restart.max_delay");
  note(applied, a.restart.stableAfter != b.restart.stableAfter, "restart.stable_after");
  note(applied, a.restart.limit != b.restart.limit, "restart.limit");
  note(applied, a.restart.window != b.restart.window, "restart.window");
  note(applied, a.restart.onCrashLoop != b.restart.onCrashLoop, "restart.on_crash_loop");
  note(applied, a.restart.retryFailedAfter != b.restart.retryFailedAfter,
       "restart.retry_failed_after");
  note(applied, a.stop.timeout != b.stop.timeout, "stop.timeout");
  note(applied, a.stop.signal != b.stop.signal, "stop.signal");
  note(applied, a.stop.signalDelay != b.stop.signalDelay, "stop.signal_delay");
  note(workers, a.heartbeat.interval != b.heartbeat.interval, "heartbeat.interval");
  note(workers, a.heartbeat.timeout != b.heartbeat.timeout, "heartbeat.timeout");
  note(workers, a.events.maxPayload != b.events.maxPayload, "events.max_payload");
  note(workers, a.events.outboxLimit != b.events.outboxLimit, "events.outbox_limit");
  note(applied, a.events.holdMaxCount != b.events.holdMaxCount, "events.hold_max_count");
  note(applied, a.events.holdMaxBytes != b.events.holdMaxBytes, "events.hold_max_bytes");
  note(applied, a.events.holdMaxAge != b.events.holdMaxAge, "events.hold_max_age");
  note(applied, a.events.stallTimeout != b.events.stallTimeout, "events.stall_timeout");
  note(applied, a.shards.total != b.shards.total, "shards.total");
  note(applied, a.shards.perCluster != b.shards.perCluster, "shards.per_cluster");
  note(applied, a.rolling.batch != b.rolling.batch, "rolling.batch");
  note(applied, a.rolling.delay != b.rolling.delay, "rolling.delay");
  note(supervisor, a.control.socket != b.control.socket, "control.socket");
  note(supervisor, a.metrics.listen != b.metrics.listen, "metrics.listen");

  // The split depends on the cluster count too: scaling a sharded bot moves shards between the
  // clusters that stay. A new total changes every cluster's shards, whatever their ids: which
  // shard an item belongs to depends on the total (a Discord guild's: its id >> 22, modulo it).
  const std::uint32_t staying = std::min(a.clusters, b.clusters);
  for (std::uint32_t id = 0; id < staying; ++id) {
    if (a.shards.total != b.shards.total || config::shardsFor(a, id) != config::shardsFor(b, id)) {
      change.shardsChanged.push_back(id);
    }
  }
  return change;
}

}  // namespace clustervisor
