// SPDX-License-Identifier: MIT
//
// A bad config or command line: the exact text the user sees, the exit status, nothing started.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_config_errors)

using namespace clustervisor::test;

BOOST_AUTO_TEST_CASE(bad_config_reports_every_error_with_position_and_exits_78) {
  TempDir dir;
  const auto config = dir.write("bot.toml",
                                "clustrs = 4\n"
                                "clusters = \"four\"\n"
                                "[restart]\n"
                                "delay = \"soon\"\n");
  const auto [status, output] = runCli({"run", config.string()});
  BOOST_TEST(status == 78);
  const std::string file = config.string();
  BOOST_TEST(output ==
             "clustervisor: error: " + file +
                 ":1:1: clustrs: unknown key (did you mean \"clusters\"?)\n"
                 "clustervisor: error: " +
                 file +
                 ":1:1: command: missing required key (expected an array of strings, e.g. "
                 "command = [\"./bot\"])\n"
                 "clustervisor: error: " +
                 file +
                 ":2:12: clusters: expected an integer from 1 to 4096, got string \"four\"\n"
                 "clustervisor: error: " +
                 file +
                 ":4:9: restart.delay: expected a duration such as \"1s\" or \"500ms\", got "
                 "\"soon\"\n"
                 "clustervisor: 4 errors in " +
                 file + "; nothing was started\n");
}

BOOST_AUTO_TEST_CASE(a_worker_that_cannot_be_started_is_refused_before_anything_starts) {
  // As systemd refuses a unit whose program is missing: each case at the command's position,
  // from check and from run (exit 78), with what to do about it.
  TempDir dir;
  dir.write("plain.sh", "echo no interpreter line\n");
  std::filesystem::permissions(dir.path() / "plain.sh", std::filesystem::perms::owner_all);
  dir.write("unmarked.sh", "#!/bin/sh\n");  // no execute bit
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[\"./missing\"]", "command: \"./missing\" (" + (dir.path() / "missing").string() +
                              ") cannot be run: No such file or directory; build or install "
                              "it, or correct the path (a relative one is taken from the "
                              "workers' directory, " +
                              dir.path().string() + ")\n"},
      {"[\"no-such-program-anywhere\"]",
       "command: \"no-such-program-anywhere\" is not found in the workers' PATH ("},
      {"[\"./plain.sh\"]", "a script needs a first line such as #!/bin/sh"},
      {"[\"./unmarked.sh\"]",
       "is not executable: Permission denied (chmod +x, or run it "
       "through its interpreter, such as [\"/bin/sh\", \"./unmarked.sh\"])"},
      {"[\"/tmp\"]", "command: \"/tmp\" is a directory, not a program"},
  };
  for (const auto& [command, message] : cases) {
    const auto config = dir.write("bot.toml", "clusters = 2\ncommand = " + command + "\n");
    for (const std::string verb : {"check", "run"}) {
      const auto [status, output] = runCli({verb, config.string()});
      BOOST_TEST(status == 78, verb << " " << command << ": " << output);
      BOOST_TEST(output.find("clustervisor: error: " + config.string() + ":2:11: ") == 0u, output);
      BOOST_TEST(output.find(message) != std::string::npos, output);
      BOOST_TEST(output.find("(pid ") == std::string::npos, output);  // no worker started
    }
  }
  // A relative entry of the workers' PATH is taken from their working directory, where they run.
  std::filesystem::create_directories(dir.path() / "work" / "bin");
  const auto program = dir.write("work/bin/mybot", "#!/bin/sh\n");
  std::filesystem::permissions(program, std::filesystem::perms::owner_all);
  const auto found = dir.write("found.toml",
                               "command = [\"mybot\"]\nworking_directory = \"work\"\n"
                               "environment = { PATH = \"bin:/usr/bin:/bin\" }\n");
  const auto valid = runCli({"check", found.string()});
  BOOST_TEST(valid.status == 0, valid.output);

  const auto config =
      dir.write("bot.toml", "command = [\"/bin/true\"]\nworking_directory = \"nowhere\"\n");
  const auto [status, output] = runCli({"check", config.string()});
  BOOST_TEST(status == 78, output);
  BOOST_TEST(output.find(config.string() + ":2:21: working_directory: the workers' directory \"" +
                         (dir.path() / "nowhere").string() +
                         "\" is not usable: No such file or directory; create it, or correct "
                         "the path (a relative one is taken from the config file's "
                         "directory)\n") != std::string::npos,
             output);
}

BOOST_AUTO_TEST_CASE(syntax_error_names_line_and_column) {
  TempDir dir;
  const auto config = dir.write("bot.toml", "command = [\"./bot\"\nclusters = 2\n");
  const auto [status, output] = runCli({"run", config.string()});
  BOOST_TEST(status == 78);
  BOOST_TEST(output.find("clustervisor: error: " + config.string() + ":2:1: syntax error: ") == 0u,
             output);
}

BOOST_AUTO_TEST_CASE(missing_config_file_exits_78) {
  TempDir dir;
  const auto missing = (dir.path() / "absent.toml").string();
  const auto [status, output] = runCli({"run", missing});
  BOOST_TEST(status == 78);
  BOOST_TEST(output == "clustervisor: error: " + missing +
                           ": cannot read: No such file or directory\n"
                           "clustervisor: 1 error in " +
                           missing + "; nothing was started\n");
}

BOOST_AUTO_TEST_CASE(bad_command_line_prints_usage_and_exits_64) {
  const auto [status, output] = runCli({"start", "bot.toml"});
  BOOST_TEST(status == 64);
  BOOST_TEST(output.find("clustervisor: error: unknown command \"start\"\nusage: clustervisor run "
                         "[--] CONFIG\n") == 0u,
             output);
}

BOOST_AUTO_TEST_CASE(help_and_version_exit_zero) {
  const auto help = runCli({"--help"});
  BOOST_TEST(help.output.find("usage: clustervisor run [--] CONFIG") == 0u);
  BOOST_TEST(help.status == 0);
  const auto version = runCli({"--version"});
  BOOST_TEST(version.output.find("clustervisor ") == 0u);
  BOOST_TEST(version.status == 0);
}

BOOST_AUTO_TEST_CASE(check_prints_the_resolved_plan_and_starts_nothing) {
  TempDir dir;
  const auto bot = dir.write("bot", "#!/bin/sh\n");
  std::filesystem::permissions(bot, std::filesystem::perms::owner_all);
  const auto config = dir.write("bot.toml",
                                "command = [\"./bot\", \"--say\", \"hello world\"]\n"
                                "clusters = 3\n"
                                "environment = { TOKEN = \"x\" }\n"
                                "[shards]\ntotal = 10\n"
                                "[restart]\npolicy = \"on-failure\"\nlimit = 2\n");
  const auto [status, output] = runCli({"check", config.string()});
  BOOST_TEST(status == 0, output);
  BOOST_TEST(output.find(config.string() + ": valid; nothing was started.") == 0u, output);
  for (const std::string expected :
       {"  command           ./bot --say 'hello world'\n", "  clusters          3 (ids 0-2)\n",
        "  shards            10 in all, spread evenly\n", "                    cluster 0: 0-3\n",
        "                    cluster 2: 7-9\n", "  environment       TOKEN=x\n",
        "  restart           on failure (success: exit status 0)",
        "  crash loop        more than 2 restarts within 1m of run time: cluster failed, retried "
        "after 10m\n"}) {
    BOOST_TEST(output.find(expected) != std::string::npos, expected << "\nin:\n" << output);
  }
  // Nothing ran: no worker, no "starting" line.
  BOOST_TEST(output.find("starting") == std::string::npos, output);
}

BOOST_AUTO_TEST_CASE(check_of_a_bad_config_reports_every_error_and_exits_78) {
  TempDir dir;
  const auto config = dir.write("bot.toml", "command = [\"./bot\"]\nclusters = 0\n");
  const auto [status, output] = runCli({"check", config.string()});
  BOOST_TEST(status == 78);
  BOOST_TEST(output == "clustervisor: error: " + config.string() +
                           ":2:12: clusters: expected an integer from 1 to 4096, got 0\n"
                           "clustervisor: 1 error in " +
                           config.string() + "; nothing was started\n",
             output);
}

BOOST_AUTO_TEST_SUITE_END()
