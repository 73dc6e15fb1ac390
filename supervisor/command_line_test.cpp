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
  };
  for (const auto& c : cases) {
    BOOST_TEST(parse(c.args).error == c.error);
  }
}

BOOST_AUTO_TEST_CASE(help_and_version_are_recognised) {
  BOOST_TEST((parse({"--help"}).command == CommandLine::Command::kHelp));
  BOOST_TEST((parse({"-h"}).command == CommandLine::Command::kHelp));
  BOOST_TEST((parse({"run", "--help"}).command == CommandLine::Command::kHelp));
  BOOST_TEST((parse({"--version"}).command == CommandLine::Command::kVersion));
}

BOOST_AUTO_TEST_SUITE_END()
