// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "config_change.hpp"

using clustervisor::compareConfigs;
using clustervisor::ConfigChange;
namespace config = clustervisor::config;
using namespace std::chrono_literals;

namespace {

config::BotConfig base() {
  config::BotConfig c;
  c.name = "bot";
  c.command = {"/bin/worker"};
  c.clusters = 4;
  return c;
}

using Keys = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_SUITE(config_change)

BOOST_AUTO_TEST_CASE(the_same_config_changes_nothing) {
  const auto change = compareConfigs(base(), base());
  BOOST_TEST(change.empty());
  BOOST_TEST(change.clustersToRestart().empty());
}

BOOST_AUTO_TEST_CASE(scaling_alone_is_applied_and_restarts_no_cluster) {
  auto scaled = base();
  scaled.clusters = 6;
  const auto change = compareConfigs(base(), scaled);
  BOOST_TEST(change.clustersBefore == 4u);
  BOOST_TEST(change.clustersAfter == 6u);
  BOOST_TEST(change.applied == Keys{"clusters"});
  BOOST_TEST(change.forNewWorkers.empty());
  BOOST_TEST(change.clustersToRestart().empty());
}

BOOST_AUTO_TEST_CASE(supervisor_settings_apply_at_once) {
  auto changed = base();
  changed.name = "renamed";
  changed.restart.delay = 5s;
  changed.restart.limit = 9;
  changed.start.timeout = 10s;
  changed.stop.signal = 2;
  changed.events.holdMaxCount = 5;
  changed.rolling.batch = 2;
  const auto change = compareConfigs(base(), changed);
  BOOST_TEST(change.applied == (Keys{"name", "start.timeout", "restart.delay", "restart.limit",
                                     "stop.signal", "events.hold_max_count", "rolling.batch"}));
  BOOST_TEST(change.forNewWorkers.empty());
  BOOST_TEST(change.forNewSupervisor.empty());
}

BOOST_AUTO_TEST_CASE(worker_settings_need_a_restart_of_every_cluster_that_stays) {
  auto changed = base();
  changed.command = {"/bin/worker", "--v2"};
  changed.environment["TOKEN"] = "x";
  changed.heartbeat.timeout = 0ms;
  changed.clusters = 3;
  const auto change = compareConfigs(base(), changed);
  BOOST_TEST(change.forNewWorkers == (Keys{"command", "environment", "heartbeat.timeout"}));
  BOOST_TEST(change.applied == Keys{"clusters"});
  BOOST_TEST(change.clustersToRestart() == (std::vector<std::uint32_t>{0, 1, 2}));
}

BOOST_AUTO_TEST_CASE(scaling_a_sharded_bot_restarts_the_clusters_whose_shards_moved) {
  auto before = base();
  before.shards.total = 16;  // 4 each
  auto after = before;
  after.clusters = 8;  // 2 each: every staying cluster's shards change
  auto change = compareConfigs(before, after);
  BOOST_TEST(change.applied == Keys{"clusters"});
  BOOST_TEST(change.forNewWorkers.empty());
  BOOST_TEST(change.clustersToRestart() == (std::vector<std::uint32_t>{0, 1, 2, 3}));

  // With a fixed number per cluster, adding clusters keeps everyone's shard ids, but not the
  // total they are out of: that changes every cluster's shards too.
  before.shards.perCluster = 4;
  before.clusters = 4;
  after = before;
  after.shards.total = 24;
  after.clusters = 6;
  change = compareConfigs(before, after);
  BOOST_TEST(change.shardsChanged == (std::vector<std::uint32_t>{0, 1, 2, 3}));
  BOOST_TEST(change.applied == (Keys{"clusters", "shards.total"}));
  BOOST_TEST(change.forNewWorkers.empty());
  BOOST_TEST(change.clustersToRestart() == (std::vector<std::uint32_t>{0, 1, 2, 3}));
}

BOOST_AUTO_TEST_CASE(control_socket_and_metrics_wait_for_a_new_supervisor) {
  auto changed = base();
  changed.control.socket = "/run/bot/control.sock";
  changed.metrics.listen = "127.0.0.1:9464";
  const auto change = compareConfigs(base(), changed);
  BOOST_TEST(change.forNewSupervisor == (Keys{"control.socket", "metrics.listen"}));
  BOOST_TEST(change.applied.empty());
  BOOST_TEST(change.clustersToRestart().empty());
}

BOOST_AUTO_TEST_SUITE_END()
