// SPDX-License-Identifier: MIT
//
// Hostile config files and command lines against the real binary: huge files, deep nesting,
// malformed UTF-8, NUL bytes, wrong types, numbers and durations out of every range, paths that
// are not files. Each is one clear error (with file:line:col where there is a position) and exit
// 78, or usage and exit 64; never a crash, a hang or a worker started.
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "harness.hpp"

// Inside the suite, so that its file-local names are its own in a unity build.
BOOST_AUTO_TEST_SUITE(e2e_hostile_input)

using namespace clustervisor::test;

namespace {

const std::string kCommand = "command = [\"./bot\"]\n";

// `clustervisor check` and `clustervisor run` on `config` both exit 78 with exactly
// `errors` (one "file:..." line each, "clustervisor: error: " added) and the closing line.
void expectConfigErrors(const std::filesystem::path& config,
                        const std::vector<std::string>& errors) {
  std::string expected;
  for (const std::string& error : errors) {
    expected += "clustervisor: error: " + config.string() + error + "\n";
  }
  expected += "clustervisor: " + std::to_string(errors.size()) + " error" +
              (errors.size() == 1 ? "" : "s") + " in " + config.string() +
              "; nothing was started\n";
  for (const std::string command : {"check", "run"}) {
    const auto [status, output] = runCli({command, config.string()});
    BOOST_TEST_CONTEXT(command) {
      BOOST_TEST(status == 78);
      BOOST_TEST(output == expected);
    }
  }
}

std::string repeated(const std::string& text, std::size_t times) {
  std::string out;
  out.reserve(text.size() * times);
  for (std::size_t i = 0; i < times; ++i) {
    out += text;
  }
  return out;
}

std::string firstLine(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_50_mib_config_is_refused_from_its_size) {
  TempDir dir;
  const auto config = dir.write("bot.toml", kCommand);
  std::filesystem::resize_file(config, 50 * 1024 * 1024);
  expectConfigErrors(config, {": file is larger than 1 MiB"});
}

BOOST_AUTO_TEST_CASE(a_config_of_two_mib_of_comment_is_refused) {
  TempDir dir;
  const auto config = dir.write("bot.toml", kCommand + "#" + std::string(2 * 1024 * 1024, 'x'));
  expectConfigErrors(config, {": file is larger than 1 MiB"});
}

BOOST_AUTO_TEST_CASE(deep_nesting_is_refused_where_it_starts_without_overflowing_the_stack) {
  TempDir dir;
  const std::string tooDeep =
      "syntax error: tables, arrays and dotted keys nested more than 32 levels deep (a bot.toml "
      "needs two)";
  expectConfigErrors(dir.write("dotted.toml", kCommand + repeated("a.", 100000) + "a = 1\n"),
                     {":2:1: " + tooDeep});
  expectConfigErrors(dir.write("header.toml", kCommand + "[" + repeated("a.", 100000) + "a]\n"),
                     {":2:1: " + tooDeep});
  expectConfigErrors(dir.write("arrays.toml", kCommand + "x = " + repeated("[", 100000)),
                     {":2:37: " + tooDeep});
  expectConfigErrors(dir.write("inline.toml", kCommand + "x = " + repeated("{a=", 100000)),
                     {":2:99: " + tooDeep});
}

BOOST_AUTO_TEST_CASE(malformed_utf8_is_refused_at_the_byte) {
  TempDir dir;
  expectConfigErrors(dir.write("bot.toml", kCommand + "name = \"bot\xff\"\n"),
                     {":2:12: syntax error: invalid UTF-8 (byte 0xFF); a bot.toml must be UTF-8"});
  expectConfigErrors(dir.write("start.toml", "\xc0\xaf = 1\n"),
                     {":1:1: syntax error: invalid UTF-8 (byte 0xC0); a bot.toml must be UTF-8"});
}

BOOST_AUTO_TEST_CASE(non_ascii_outside_strings_is_refused_and_inside_them_is_kept) {
  TempDir dir;
  expectConfigErrors(dir.write("bot.toml", kCommand + "\xef\xb9\xbf = 1\n"),
                     {":2:1: syntax error: unexpected character U+FE7F (outside strings and "
                      "comments TOML allows only ASCII)"});
  expectConfigErrors(dir.write("key.toml", kCommand + "[environment]\n\"\xc3\xa9\" = \"x\"\n"),
                     {":3:2: syntax error: non-ASCII character U+00E9 in a key (every key of a "
                      "bot.toml is ASCII)"});
  const auto bot = dir.write("bot", "#!/bin/sh\n");
  std::filesystem::permissions(bot, std::filesystem::perms::owner_all);
  const auto valid = dir.write(
      "valid.toml", "# caf\xc3\xa9\ncommand = [\"./bot\", \"--greeting=h\xc3\xa9llo\"]\n");
  const auto [status, output] = runCli({"check", valid.string()});
  BOOST_TEST(status == 0, output);
  BOOST_TEST(
      output.find("  command           ./bot --greeting=h\xc3\xa9llo\n") != std::string::npos,
      output);
}

BOOST_AUTO_TEST_CASE(nul_bytes_are_refused_with_their_position) {
  TempDir dir;
  expectConfigErrors(
      dir.write("bare.toml", kCommand + std::string("\0 = 1\n", 6)),
      {":2:1: syntax error: Error while parsing root table: expected keys, tables, whitespace or "
       "comments, saw '\\u0000'"});
  expectConfigErrors(dir.write("string.toml", kCommand + std::string("name = \"a\0b\"\n", 13)),
                     {":2:10: syntax error: Error while parsing string: unescaped control "
                      "characters other than TAB (U+0009) are explicitly prohibited"});
  expectConfigErrors(dir.write("escaped.toml",
                               "command = [\"./bot\\u0000\"]\nenvironment = { A = \"\\u0000\" }\n"),
                     {":1:12: command[0]: must not contain a NUL character (exec cannot pass it)",
                      ":2:21: environment.A: must not contain a NUL character"});
}

BOOST_AUTO_TEST_CASE(wrong_types_are_named_with_the_value) {
  TempDir dir;
  expectConfigErrors(
      dir.write("bot.toml",
                "command = \"./bot\"\n"
                "clusters = 2.0\n"
                "name = true\n"
                "restart = 5\n"
                "[stop]\n"
                "timeout = 10\n"
                "signal = 15\n"
                "[heartbeat]\n"
                "interval = 1979-05-27\n"),
      {":1:11: command: expected an array of strings, e.g. command = [\"./bot\"], got string "
       "\"./bot\"",
       ":2:12: clusters: expected an integer from 1 to 4096, got float 2.0",
       ":3:8: name: expected 1 to 64 of the characters A-Z a-z 0-9 . _ -, got boolean true",
       ":4:11: restart: expected a table, got integer",
       ":6:11: stop.timeout: expected a duration string such as \"10s\" or \"500ms\", got integer "
       "10",
       ":7:10: stop.signal: expected one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, "
       "got integer 15",
       ":9:12: heartbeat.interval: expected a duration string such as \"10s\" or \"500ms\", got "
       "date 1979-05-27"});
}

BOOST_AUTO_TEST_CASE(negative_and_overflowing_numbers_are_out_of_range) {
  TempDir dir;
  expectConfigErrors(dir.write("bot.toml", kCommand + "clusters = -1\n"
                                                      "[restart]\n"
                                                      "limit = -9223372036854775808\n"
                                                      "success_exit_codes = [-1, 256]\n"
                                                      "[shards]\n"
                                                      "total = 9223372036854775807\n"
                                                      "[events]\n"
                                                      "max_payload = -1\n"
                                                      "hold_max_count = 0x7FFFFFFFFFFFFFFF\n"),
                     {":2:12: clusters: expected an integer from 1 to 4096, got -1",
                      ":4:9: restart.limit: expected an integer from 0 to 1000000, got "
                      "-9223372036854775808",
                      ":5:23: restart.success_exit_codes[0]: expected an integer from 0 to 255, "
                      "got -1",
                      ":5:27: restart.success_exit_codes[1]: expected an integer from 0 to 255, "
                      "got 256",
                      ":7:9: shards.total: expected an integer from 1 to 1000000, got "
                      "9223372036854775807",
                      ":9:15: events.max_payload: expected a size from 1KiB to 256MiB, got -1",
                      ":10:18: events.hold_max_count: expected an integer from 0 to 1000000, got "
                      "9223372036854775807"});
  // An integer beyond 64 bits is a TOML syntax error: where the number starts, and what fits.
  expectConfigErrors(dir.write("huge.toml", kCommand + "clusters = 99999999999999999999\n"),
                     {":2:12: syntax error: integer 99999999999999999999 does not fit in 64 bits "
                      "(TOML integers run from -9223372036854775808 to 9223372036854775807); "
                      "write a smaller number"});
}

BOOST_AUTO_TEST_CASE(hostile_durations_and_sizes_are_refused_with_the_range) {
  TempDir dir;
  expectConfigErrors(
      dir.write("bot.toml", kCommand + "[restart]\n"
                                       "delay = \"-1s\"\n"
                                       "max_delay = \"1e99h\"\n"
                                       "window = \"99999999999999999999s\"\n"
                                       "stable_after = \"0.0001s\"\n"
                                       "retry_failed_after = \"25h\"\n"
                                       "[events]\n"
                                       "max_payload = \"-1MiB\"\n"
                                       "outbox_limit = \"99999999999999999999GiB\"\n"
                                       "hold_max_bytes = \"1e3KiB\"\n"),
      {":3:9: restart.delay: expected a duration such as \"1s\" or \"500ms\", got \"-1s\"",
       ":4:13: restart.max_delay: expected a duration such as \"1s\" or \"500ms\", got \"1e99h\"",
       ":5:10: restart.window: expected a duration from 1ms to 24h, got "
       "\"99999999999999999999s\"",
       ":6:16: restart.stable_after: must be a whole number of milliseconds, got \"0.0001s\"",
       ":7:22: restart.retry_failed_after: expected a duration from 0s to 24h, got \"25h\"",
       ":9:15: events.max_payload: expected a size such as \"1MiB\" or \"512KiB\", got \"-1MiB\"",
       ":10:16: events.outbox_limit: expected a size from 64KiB to 16GiB, got "
       "\"99999999999999999999GiB\"",
       ":11:18: events.hold_max_bytes: expected a size such as \"1MiB\" or \"512KiB\", got "
       "\"1e3KiB\""});
}

BOOST_AUTO_TEST_CASE(a_directory_as_the_config_is_refused) {
  TempDir dir;
  std::filesystem::create_directory(dir.path() / "bot.toml");
  expectConfigErrors(dir.path() / "bot.toml", {": cannot read: Is a directory"});
}

BOOST_AUTO_TEST_CASE(a_fifo_or_device_as_the_config_is_refused_without_waiting) {
  TempDir dir;
  // Nobody ever writes to the FIFO: opening it to read would wait forever.
  const auto fifo = dir.path() / "bot.toml";
  BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  expectConfigErrors(fifo, {": cannot read: a FIFO, not a regular file"});
  expectConfigErrors("/dev/zero", {": cannot read: a character device, not a regular file"});
}

BOOST_AUTO_TEST_CASE(an_unreadable_config_is_refused) {
  TempDir dir;
  const auto config = dir.write("bot.toml", kCommand);
  std::vector<std::string> prefix;
  if (::geteuid() == 0) {
    // Root reads any file: run as nobody, who may enter the directory but not read the file.
    if (!std::filesystem::exists("/usr/bin/setpriv")) {
      BOOST_TEST_MESSAGE("root without setpriv: cannot run as another user; skipped");
      return;
    }
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all |
                                                 std::filesystem::perms::group_exec |
                                                 std::filesystem::perms::others_exec);
    prefix = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  }
  std::filesystem::permissions(config, std::filesystem::perms::none);
  std::vector<std::string> argv = prefix;
  argv.push_back(supervisorBinary().string());
  argv.insert(argv.end(), {"check", config.string()});
  SupervisorRun process(argv);
  const auto exit = process.waitExit(30s);
  BOOST_REQUIRE(exit.has_value());
  BOOST_TEST(*exit == 78);
  BOOST_TEST(process.transcript() == "clustervisor: error: " + config.string() +
                                         ": cannot read: Permission denied\n"
                                         "clustervisor: 1 error in " +
                                         config.string() + "; nothing was started\n");
}

BOOST_AUTO_TEST_CASE(hostile_command_lines_print_usage_and_exit_64) {
  const std::string usage = "usage: clustervisor run [--] CONFIG\n";
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"run", "--frobnicate", "bot.toml"}, "run: unknown option \"--frobnicate\""},
      {{"check"}, "check: missing CONFIG (the path of a bot.toml)"},
      {{"status", "--socket"}, "status: --socket needs a PATH"},
      {{"stop", "--socket="}, "stop: --socket needs a PATH"},
      {{"restart", "bot.toml"}, "restart: say which clusters: cluster ids, or --all"},
      {{"restart", "bot.toml", "99999999999"},
       "restart: \"99999999999\" is not a cluster id (a number from 0)"},
      {{"restart", "bot.toml", "-1"}, "restart: unknown option \"-1\""},
      {{"check", "a.toml", "b.toml"},
       "check: more than one CONFIG given (\"a.toml\" and \"b.toml\")"},
      {{"check", "--json", "bot.toml"}, "check: unknown option \"--json\""},
      {{"--frobnicate"}, "unknown option \"--frobnicate\""},
  };
  for (const Case& c : cases) {
    const auto [status, output] = runCli(c.args);
    BOOST_TEST_CONTEXT(c.error) {
      BOOST_TEST(status == 64);
      BOOST_TEST(output.find("clustervisor: error: " + c.error + "\n" + usage) == 0U, output);
      // The synopsis, not the whole help text.
      BOOST_TEST(output.find("\ncommands:\n") == std::string::npos, output);
      BOOST_TEST(output.ends_with("       clustervisor --help | --version\n"
                                  "Run 'clustervisor --help' for the commands and options.\n"),
                 output);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_huge_or_garbled_argument_is_quoted_short_and_escaped) {
  const auto huge = runCli({"check", std::string(120000, 'x'), "--" + std::string(120000, 'y')});
  BOOST_TEST(huge.status == 64);
  BOOST_TEST(firstLine(huge.output) ==
             "clustervisor: error: check: unknown option \"--" + std::string(58, 'y') + "\"...");
  const auto garbled = runCli({"status", "-\x1b[2J\r\n"});
  BOOST_TEST(garbled.status == 64);
  BOOST_TEST(firstLine(garbled.output) ==
             "clustervisor: error: status: unknown option \"-\\u001B[2J\\r\\n\"");
}

BOOST_AUTO_TEST_CASE(a_hundred_thousand_arguments_are_a_usage_error) {
  std::vector<std::string> args{"restart", "bot.toml", "--all"};
  for (int i = 0; i < 100000; ++i) {
    args.push_back(std::to_string(i));
  }
  const auto [status, output] = runCli(args);
  BOOST_TEST(status == 64);
  BOOST_TEST(firstLine(output) ==
             "clustervisor: error: restart: give either --all or cluster ids, not both");
}

BOOST_AUTO_TEST_SUITE_END()
