// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include "command_line.hpp"

using clustervisor::CommandLine;
using clustervisor::parseCommandLine;

namespace {
CommandLine parse(std::vector<std::string_view> args) {
  return parseCommandLine(args);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(command_line)

BOOST_AUTO_TEST_CASE(run_takes_one_config_path) {
  const auto c = parse({"run", "bot.toml"});
  BOOST_TEST(c.error == "");
  BOOST_TEST((c.command == CommandLine::Command::kRun));
  BOOST_TEST(c.configPath == "bot.toml");
  BOOST_TEST(parse({"run", "--", "-odd.toml"}).configPath == "-odd.toml");
}

BOOST_AUTO_TEST_CASE(check_takes_one_config_path) {
  const auto c = parse({"check", "bot.toml"});
  BOOST_TEST(c.error == "");
  BOOST_TEST((c.command == CommandLine::Command::kCheck));
  BOOST_TEST(c.configPath == "bot.toml");
  BOOST_TEST(parse({"check"}).error == "check: missing CONFIG (the path of a bot.toml)");
  BOOST_TEST(parse({"check", "--json", "a.toml"}).error == "check: unknown option \"--json\"");
}

BOOST_AUTO_TEST_CASE(status_restart_and_stop_find_the_supervisor_by_config_or_socket) {
  const auto status = parse({"status", "--json", "bot.toml"});
  BOOST_TEST(status.error == "");
  BOOST_TEST((status.command == CommandLine::Command::kStatus));
  BOOST_TEST(status.json);
  BOOST_TEST(status.configPath == "bot.toml");
  const auto bySocket = parse({"stop", "--socket", "/run/x.sock"});
  BOOST_TEST(bySocket.error == "");
  BOOST_TEST((bySocket.command == CommandLine::Command::kStop));
  BOOST_TEST(bySocket.socketPath == "/run/x.sock");
  BOOST_TEST(bySocket.configPath == "");
  BOOST_TEST(!bySocket.noWait);
  BOOST_TEST(parse({"stop", "--no-wait", "bot.toml"}).noWait);
  BOOST_TEST(parse({"status", "--socket=/run/y.sock"}).socketPath == "/run/y.sock");
  const auto restart = parse({"restart", "bot.toml", "2", "0"});
  BOOST_TEST(restart.error == "");
  BOOST_TEST((restart.clusters == std::vector<std::uint32_t>{2, 0}));
  BOOST_TEST(!restart.all);
  const auto all = parse({"restart", "--all", "--socket", "/s"});
  BOOST_TEST(all.error == "");
  BOOST_TEST(all.all);
  BOOST_TEST(!all.rolling);
}

BOOST_AUTO_TEST_CASE(rolling_restart_takes_batch_and_delay) {
  const auto rolling =
      parse({"restart", "bot.toml", "--all", "--rolling", "--batch", "2", "--delay=1m30s"});
  BOOST_TEST(rolling.error == "");
  BOOST_TEST(rolling.all);
  BOOST_TEST(rolling.rolling);
  BOOST_TEST(rolling.batch.value_or(0) == 2u);
  BOOST_TEST(rolling.delay.value_or(std::chrono::milliseconds(0)).count() == 90000);
  const auto plain = parse({"restart", "bot.toml", "--rolling", "3", "1"});
  BOOST_TEST(plain.error == "");
  BOOST_TEST(plain.rolling);
  BOOST_TEST(!plain.batch.has_value());
  BOOST_TEST(!plain.delay.has_value());
}

BOOST_AUTO_TEST_CASE(reload_finds_the_supervisor_and_may_roll) {
  const auto reload = parse({"reload", "bot.toml"});
  BOOST_TEST(reload.error == "");
  BOOST_TEST((reload.command == CommandLine::Command::kReload));
  BOOST_TEST(reload.configPath == "bot.toml");
  BOOST_TEST(!reload.rolling);
  BOOST_TEST(parse({"reload", "--rolling", "--socket", "/s"}).rolling);
}

struct UsageCase {
  std::vector<std::string_view> args;
  std::string error;
};

BOOST_AUTO_TEST_CASE(usage_errors_say_what_is_wrong) {
  const std::vector<UsageCase> cases = {
      {{}, "no command given"},
      {{"start"}, "unknown command \"start\""},
      {{"--frobnicate"}, "unknown option \"--frobnicate\""},
      {{"run"}, "run: missing CONFIG (the path of a bot.toml)"},
      {{"run", "a.toml", "b.toml"}, "run: more than one CONFIG given (\"a.toml\" and \"b.toml\")"},
      {{"run", "--fast", "a.toml"}, "run: unknown option \"--fast\""},
      {{"status"}, "status: missing CONFIG (the path of a bot.toml)"},
      {{"status", "--socket"}, "status: --socket needs a PATH"},
      {{"stop", "--json", "a.toml"}, "stop: unknown option \"--json\""},
      {{"status", "--no-wait", "a.toml"}, "status: unknown option \"--no-wait\""},
      {{"status", "--socket", "/s", "a.toml"},
       "status: unexpected \"a.toml\" (--socket already names the supervisor)"},
      {{"restart", "a.toml"}, "restart: say which clusters: cluster ids, or --all"},
      {{"restart", "a.toml", "--all", "1"}, "restart: give either --all or cluster ids, not both"},
      {{"restart", "a.toml", "one"}, "restart: \"one\" is not a cluster id (a number from 0)"},
      {{"restart", "a.toml", "0", "2", "0"}, "restart: cluster 0 is given twice"},
      {{"restart", "a.toml", "-1"}, "restart: unknown option \"-1\""},
      {{"restart", "a.toml", "--all", "--batch", "2"}, "restart: --batch is for --rolling"},
      {{"restart", "a.toml", "--all", "--delay=1s"}, "restart: --delay is for --rolling"},
      {{"restart", "a.toml", "--all", "--rolling", "--batch"},
       "restart: --batch needs a number of clusters"},
      {{"restart", "a.toml", "--all", "--rolling", "--batch=0"},
       "restart: --batch needs a number of clusters from 1 to 4096, not \"0\""},
      {{"restart", "a.toml", "--all", "--rolling", "--batch=4097"},
       "restart: --batch needs a number of clusters from 1 to 4096, not \"4097\""},
      {{"restart", "a.toml", "--all", "--rolling", "--delay", "soon"},
       "restart: --delay needs a duration such as \"5s\" or \"500ms\" (at most 24h), not \"soon\""},
      {{"restart", "a.toml", "--all", "--rolling", "--delay", "25h"},
       "restart: --delay needs a duration such as \"5s\" or \"500ms\" (at most 24h), not \"25h\""},
      {{"reload"}, "reload: missing CONFIG (the path of a bot.toml)"},
      {{"reload", "a.toml", "--batch=2"}, "reload: unknown option \"--batch=2\""},
      {{"stop", "a.toml", "--rolling"}, "stop: unknown option \"--rolling\""},
  };
  for (const auto& c : cases) {
    BOOST_TEST(parse(c.args).error == c.error);
  }
}

BOOST_AUTO_TEST_CASE(usage_errors_quote_arguments_escaped_and_cut_short) {
  const std::string huge(100000, 'y');
  BOOST_TEST(parse({"run", "--" + huge}).error ==
             "run: unknown option \"--" + std::string(58, 'y') + "\"...");
  BOOST_TEST(parse({"\x1b[2J\r\n\t\"\\"}).error ==
             "unknown command \"\\u001B[2J\\r\\n\\t\\\"\\\\\"");
  // Cut on a character boundary: the 60th byte is the second of "\xc3\xa9".
  BOOST_TEST(parse({"restart", "a.toml", std::string(59, '1') + "\xc3\xa9"}).error ==
             "restart: \"" + std::string(59, '1') + "\"... is not a cluster id (a number from 0)");
}

BOOST_AUTO_TEST_CASE(help_and_version_are_recognised) {
  BOOST_TEST((parse({"--help"}).command == CommandLine::Command::kHelp));
  BOOST_TEST((parse({"-h"}).command == CommandLine::Command::kHelp));
  BOOST_TEST((parse({"run", "--help"}).command == CommandLine::Command::kHelp));
  BOOST_TEST((parse({"--version"}).command == CommandLine::Command::kVersion));
}

BOOST_AUTO_TEST_SUITE_END()
