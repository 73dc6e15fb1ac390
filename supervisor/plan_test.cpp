// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include "plan.hpp"

using namespace std::chrono_literals;

namespace {
clustervisor::config::BotConfig sampleConfig() {
  clustervisor::config::BotConfig config;
  config.sourceFile = "bot.toml";
  config.name = "bot";
  config.command = {"./bot", "it's"};
  config.workingDirectory = "/srv/bot";
  config.clusters = 2;
  return config;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(plan)

BOOST_AUTO_TEST_CASE(defaults_are_spelled_out) {
  const auto text = clustervisor::describePlan(sampleConfig(), "/run/lock", "/run/sock");
  const std::string expected =
      "bot.toml: valid; nothing was started.\n"
      "\n"
      "  name              bot\n"
      "  command           ./bot 'it'\\''s'\n"
      "  working directory /srv/bot\n"
      "  clusters          2 (ids 0-1)\n"
      "  shards            none\n"
      "  environment       the supervisor's own\n"
      "  start             ready when it calls ready(); timeout 1m30s; 0s between starts\n"
      "  restart           always (success: exit status 0); backoff 1s doubling to 1m, reset "
      "after 30s ready\n"
      "  crash loop        more than 5 restarts within 1m of run time: cluster failed, retried "
      "after 10m\n"
      "  heartbeat         every 1s; hung after 30s of silence\n"
      "  stop              stop frame, SIGTERM (after 5s for workers with an onStop handler), "
      "SIGKILL after 10s\n"
      "  events            payload up to 1MiB; outbox 64MiB per worker, stalled after 2s; hold "
      "1000 events, 16MiB, 1m per cluster\n"
      "  rolling           1 cluster at a time, each batch once the last is ready\n"
      "  lock file         /run/lock\n"
      "  control socket    /run/sock\n"
      "  metrics           off\n";
  BOOST_TEST(text == expected);
}

BOOST_AUTO_TEST_CASE(the_command_is_quoted_as_a_shell_needs_it) {
  auto config = sampleConfig();
  config.command = {"./bot", "plain-arg_1.5,x=y:@%+", "a;b",   "a|b", "(x)", "~x", "*", "",
                    "$HOME", "a\nb\tc\x01",           "it's\n"};
  const auto text = clustervisor::describePlan(config, "/run/lock", "/run/sock");
  BOOST_TEST(text.find("  command           ./bot plain-arg_1.5,x=y:@%+ 'a;b' 'a|b' '(x)' '~x' '*' "
                       "'' '$HOME' $'a\\nb\\tc\\x01' $'it\\'s\\n'\n") != std::string::npos,
             text);
}

BOOST_AUTO_TEST_CASE(paths_and_environment_values_cannot_reach_the_terminal_as_control_codes) {
  auto config = sampleConfig();
  config.command = {"./bot",
                    "a\xc2\x9b"
                    "2J",
                    "é"};
  config.workingDirectory = "/srv/bot\x1b]0;title\x07";
  config.environment = {{"TOKEN", "x\ry"}, {"PLAIN", "/usr/bin:/bin"}};
  const auto text = clustervisor::describePlan(config, "/run/lock\n", "/run/sock");
  BOOST_TEST(text.find("  command           ./bot $'a\\xc2\\x9b2J' é\n") != std::string::npos,
             text);
  BOOST_TEST(text.find("  working directory $'/srv/bot\\x1b]0;title\\x07'\n") != std::string::npos,
             text);
  BOOST_TEST(text.find("TOKEN=$'x\\ry'\n") != std::string::npos, text);
  BOOST_TEST(text.find("PLAIN=/usr/bin:/bin\n") != std::string::npos, text);
  BOOST_TEST(text.find("  lock file         $'/run/lock\\n'\n") != std::string::npos, text);
}

BOOST_AUTO_TEST_CASE(rolling_restarts_and_metrics_are_described) {
  auto config = sampleConfig();
  config.rolling.batch = 2;
  config.rolling.delay = 30s;
  config.metrics.listen = "127.0.0.1:9464";
  const auto text = clustervisor::describePlan(config, "/run/lock", "/run/sock");
  BOOST_TEST(text.find("  rolling           2 clusters at a time, each batch once the last is "
                       "ready and 30s have passed\n") != std::string::npos,
             text);
  BOOST_TEST(text.find("  metrics           http://127.0.0.1:9464/metrics\n") != std::string::npos,
             text);
}

BOOST_AUTO_TEST_CASE(shards_per_cluster_and_policies_are_described) {
  auto config = sampleConfig();
  config.clusters = 4;
  config.shards.total = 16;
  config.shards.perCluster = 5;
  config.restart.onCrashLoop = clustervisor::config::CrashLoopAction::kStopSupervisor;
  config.heartbeat.timeout = 0ms;
  config.stop.signalDelay = 1h;  // capped at half of stop.timeout
  const auto text = clustervisor::describePlan(config, "/run/lock", "/run/sock");
  BOOST_TEST(text.find("  shards            16 in all, 5 per cluster\n"
                       "                    cluster 0: 0-4\n"
                       "                    cluster 1: 5-9\n"
                       "                    cluster 2: 10-14\n"
                       "                    cluster 3: 15\n") != std::string::npos,
             text);
  BOOST_TEST(text.find("of run time: stop everything, exit 69\n") != std::string::npos, text);
  BOOST_TEST(text.find("  heartbeat         off\n") != std::string::npos, text);
  BOOST_TEST(text.find("SIGTERM (after 5s for workers") != std::string::npos, text);
  config.restart.policy = clustervisor::config::RestartPolicy::kNever;
  const auto never = clustervisor::describePlan(config, "/run/lock", "/run/sock");
  BOOST_TEST(
      never.find("  restart           never\n"
                 "  crash loop        not applicable (never restarted)\n") != std::string::npos,
      never);
}

BOOST_AUTO_TEST_SUITE_END()
