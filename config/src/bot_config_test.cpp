// SPDX-License-Identifier: MIT
#define BOOST_TEST_MODULE clustervisor_config
#include "clustervisor/config/bot_config.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>

#include <boost/test/unit_test.hpp>

namespace clustervisor::config {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

const std::filesystem::path kBase = "/srv/bots/demo";

// Every diagnostic formatted, one per line, so a failure shows the whole text side by side.
std::string errorsOf(std::string_view text, std::string_view fileName = "bot.toml") {
  const LoadResult result = parseConfig(text, fileName, kBase);
  BOOST_TEST(result.config.has_value() == result.errors.empty());
  std::string lines;
  for (const Diagnostic& error : result.errors) {
    lines += error.format();
    lines += '\n';
  }
  return lines;
}

BotConfig configOf(std::string_view text, std::string_view fileName = "bot.toml") {
  const LoadResult result = parseConfig(text, fileName, kBase);
  std::string lines;
  for (const Diagnostic& error : result.errors) {
    lines += error.format() + "\n";
  }
  BOOST_TEST_REQUIRE(lines.empty(), "unexpected errors:\n" << lines);
  BOOST_TEST_REQUIRE(result.config.has_value());
  return *result.config;
}

// An input and the exact diagnostics it must produce, one per line.
struct Case {
  std::string text;
  std::string expected;
};

void checkCases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("input:\n" << c.text) {
      BOOST_TEST(errorsOf(c.text) == c.expected);
    }
  }
}

const std::string kCommand = "command = [\"./bot\"]\n";

// Every key set to something other than its default.
const std::string kFullConfig = R"(# every key
command = ["./bot", "--shard-count", "16"]
clusters = 4
name = "my-bot.eu_1"
working_directory = "run"

[environment]
LOG_LEVEL = "debug"
_EMPTY = ""

[start]
ready = "connect"
timeout = "2m"
delay = "250ms"
wait_for_ready = true

[restart]
policy = "on-failure"
success_exit_codes = [0, 3]
delay = "1m30s"
max_delay = "5m"
stable_after = "10m"
limit = 0
window = "1h"
on_crash_loop = "stop-supervisor"
retry_failed_after = "0s"

[stop]
timeout = "2.5s"
signal = "USR1"
signal_delay = "0s"

[heartbeat]
interval = "250ms"
timeout = "5s"

[events]
max_payload = "512KiB"
outbox_limit = 16777216
hold_max_count = 50
hold_max_bytes = "8MiB"
hold_max_age = "2m"

[shards]
total = 15
per_cluster = 4
)";

// Every field of two configs, one check each, so a difference names the field.
void checkSameConfig(const BotConfig& a, const BotConfig& b) {
  BOOST_TEST(a.sourceFile == b.sourceFile);
  BOOST_TEST(a.name == b.name);
  BOOST_TEST(a.command == b.command);
  BOOST_TEST(a.clusters == b.clusters);
  BOOST_TEST(a.workingDirectory == b.workingDirectory);
  BOOST_TEST((a.environment == b.environment));
  BOOST_TEST((a.restart.policy == b.restart.policy));
  BOOST_TEST(a.restart.successExitCodes == b.restart.successExitCodes);
  BOOST_TEST(a.restart.delay.count() == b.restart.delay.count());
  BOOST_TEST(a.restart.maxDelay.count() == b.restart.maxDelay.count());
  BOOST_TEST(a.restart.stableAfter.count() == b.restart.stableAfter.count());
  BOOST_TEST(a.restart.limit == b.restart.limit);
  BOOST_TEST(a.restart.window.count() == b.restart.window.count());
  BOOST_TEST((a.restart.onCrashLoop == b.restart.onCrashLoop));
  BOOST_TEST(a.restart.retryFailedAfter.count() == b.restart.retryFailedAfter.count());
  BOOST_TEST((a.start.ready == b.start.ready));
  BOOST_TEST(a.start.timeout.count() == b.start.timeout.count());
  BOOST_TEST(a.start.delay.count() == b.start.delay.count());
  BOOST_TEST(a.start.waitForReady == b.start.waitForReady);
  BOOST_TEST(a.stop.timeout.count() == b.stop.timeout.count());
  BOOST_TEST(a.stop.signal == b.stop.signal);
  BOOST_TEST(a.stop.signalDelay.count() == b.stop.signalDelay.count());
  BOOST_TEST(a.heartbeat.interval.count() == b.heartbeat.interval.count());
  BOOST_TEST(a.heartbeat.timeout.count() == b.heartbeat.timeout.count());
  BOOST_TEST(a.events.maxPayload == b.events.maxPayload);
  BOOST_TEST(a.events.outboxLimit == b.events.outboxLimit);
  BOOST_TEST(a.events.holdMaxCount == b.events.holdMaxCount);
  BOOST_TEST(a.events.holdMaxBytes == b.events.holdMaxBytes);
  BOOST_TEST(a.events.holdMaxAge.count() == b.events.holdMaxAge.count());
  BOOST_TEST(a.events.stallTimeout.count() == b.events.stallTimeout.count());
  BOOST_TEST(a.shards.total == b.shards.total);
  BOOST_TEST(a.shards.perCluster == b.shards.perCluster);
  BOOST_TEST(a.rolling.batch == b.rolling.batch);
  BOOST_TEST(a.rolling.delay.count() == b.rolling.delay.count());
  BOOST_TEST(a.control.socket == b.control.socket);
  BOOST_TEST(a.metrics.listen == b.metrics.listen);
  BOOST_TEST(a.metrics.host == b.metrics.host);
  BOOST_TEST(a.metrics.port == b.metrics.port);
}

// The shards of every cluster, in cluster order: {{0, 1, 2}, {3, 4, 5}, ...}.
std::vector<std::vector<std::uint32_t>> shardsOfEveryCluster(const BotConfig& config) {
  std::vector<std::vector<std::uint32_t>> shards;
  for (std::uint32_t id = 0; id < config.clusters; ++id) {
    shards.push_back(shardsFor(config, id));
  }
  return shards;
}

// A temporary directory, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "cv-config-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  std::filesystem::path write(const std::filesystem::path& relative, std::string_view text) const {
    const std::filesystem::path file = path_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out << text;
    BOOST_TEST_REQUIRE(out.good());
    return file;
  }

 private:
  std::filesystem::path path_;
};

std::string readManPage() {
  const std::filesystem::path page =
      std::filesystem::path(CLUSTERVISOR_MAN_DIR) / "clustervisor.toml.5";
  std::ifstream in(page);
  BOOST_TEST_REQUIRE(in.good(), "cannot open " << page);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The tag line of a key's entry in the man page: ".B <key>" directly after ".TP" (a ".B <key>"
// line elsewhere is running text that mentions the key, not its entry).
std::vector<std::string>::const_iterator findEntry(const std::vector<std::string>& lines,
                                                   std::string_view key) {
  const std::string tag = ".B " + std::string(key);
  for (auto line = lines.begin(); line != lines.end(); ++line) {
    if (*line == tag && line != lines.begin() && *(line - 1) == ".TP") {
      return line;
    }
  }
  return lines.end();
}

std::vector<std::string> linesOf(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(bot_config)

// --- accepted configs ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(accepts_minimal_config_with_defaults) {
  const BotConfig config = configOf(kCommand);
  BOOST_TEST(config.sourceFile == std::filesystem::path("bot.toml"));
  BOOST_TEST(config.command == std::vector<std::string>{"./bot"});
  BOOST_TEST(config.clusters == 1U);
  BOOST_TEST(config.name == "bot");
  BOOST_TEST(config.workingDirectory == kBase);
  BOOST_TEST(config.environment.empty());
  BOOST_TEST((config.restart.policy == RestartPolicy::kAlways));
  BOOST_TEST(config.restart.successExitCodes == std::vector<int>{0});
  BOOST_TEST(config.restart.delay.count() == 1000);
  BOOST_TEST(config.restart.maxDelay.count() == 60'000);
  BOOST_TEST(config.restart.stableAfter.count() == 30'000);
  BOOST_TEST(config.restart.limit == 5U);
  BOOST_TEST(config.restart.window.count() == 60'000);
  BOOST_TEST((config.restart.onCrashLoop == CrashLoopAction::kFailCluster));
  BOOST_TEST(config.restart.retryFailedAfter.count() == 600'000);
  BOOST_TEST((config.start.ready == ReadyWhen::kSdk));
  BOOST_TEST(config.start.timeout.count() == 90'000);
  BOOST_TEST(config.start.delay.count() == 0);
  BOOST_TEST(config.start.waitForReady == false);
  BOOST_TEST(config.stop.timeout.count() == 10'000);
  BOOST_TEST(config.stop.signal == SIGTERM);
  BOOST_TEST(config.stop.signalDelay.count() == 5000);
  BOOST_TEST(config.heartbeat.interval.count() == 1000);
  BOOST_TEST(config.heartbeat.timeout.count() == 30'000);
  BOOST_TEST(config.events.maxPayload == 1024U * 1024U);
  BOOST_TEST(config.events.outboxLimit == 64ULL * 1024 * 1024);
  BOOST_TEST(config.events.holdMaxCount == 1000U);
  BOOST_TEST(config.events.holdMaxBytes == 16ULL * 1024 * 1024);
  BOOST_TEST(config.events.holdMaxAge.count() == 60'000);
  BOOST_TEST(config.events.stallTimeout.count() == 2'000);
  BOOST_TEST(config.shards.total == 0U);
  BOOST_TEST(config.shards.perCluster == 0U);
  BOOST_TEST(shardsFor(config, 0).empty());
}

BOOST_AUTO_TEST_CASE(accepts_full_config_with_every_key) {
  const BotConfig config = configOf(kFullConfig);
  BOOST_TEST(config.command == (std::vector<std::string>{"./bot", "--shard-count", "16"}));
  BOOST_TEST(config.clusters == 4U);
  BOOST_TEST(config.name == "my-bot.eu_1");
  BOOST_TEST(config.workingDirectory == kBase / "run");
  BOOST_TEST((config.environment ==
              std::map<std::string, std::string>{{"LOG_LEVEL", "debug"}, {"_EMPTY", ""}}));
  BOOST_TEST((config.restart.policy == RestartPolicy::kOnFailure));
  BOOST_TEST(config.restart.successExitCodes == (std::vector<int>{0, 3}));
  BOOST_TEST(config.restart.delay.count() == 90'000);
  BOOST_TEST(config.restart.maxDelay.count() == 300'000);
  BOOST_TEST(config.restart.stableAfter.count() == 600'000);
  BOOST_TEST(config.restart.limit == 0U);
  BOOST_TEST(config.restart.window.count() == 3'600'000);
  BOOST_TEST((config.restart.onCrashLoop == CrashLoopAction::kStopSupervisor));
  BOOST_TEST(config.restart.retryFailedAfter.count() == 0);
  BOOST_TEST((config.start.ready == ReadyWhen::kConnect));
  BOOST_TEST(config.start.timeout.count() == 120'000);
  BOOST_TEST(config.start.delay.count() == 250);
  BOOST_TEST(config.start.waitForReady == true);
  BOOST_TEST(config.stop.timeout.count() == 2500);
  BOOST_TEST(config.stop.signal == SIGUSR1);
  BOOST_TEST(config.stop.signalDelay.count() == 0);
  BOOST_TEST(config.heartbeat.interval.count() == 250);
  BOOST_TEST(config.heartbeat.timeout.count() == 5000);
  BOOST_TEST(config.events.maxPayload == 512U * 1024U);
  BOOST_TEST(config.events.outboxLimit == 16ULL * 1024 * 1024);
  BOOST_TEST(config.events.holdMaxCount == 50U);
  BOOST_TEST(config.events.holdMaxBytes == 8ULL * 1024 * 1024);
  BOOST_TEST(config.events.holdMaxAge.count() == 120'000);
  BOOST_TEST(config.shards.total == 15U);
  BOOST_TEST(config.shards.perCluster == 4U);
  BOOST_TEST(shardsFor(config, 3) == (std::vector<std::uint32_t>{12, 13, 14}));
}

// knownKeys() states each default as TOML text and BotConfig states it in C++; writing every
// documented default explicitly must give exactly the config that leaving them out gives.
BOOST_AUTO_TEST_CASE(documented_defaults_match_config_defaults) {
  // Top-level keys first, then one [table] section per table, keys under it in schema order.
  std::string text = kCommand;
  std::map<std::string, std::string> tables;
  int written = 0;
  for (const KeyInfo& key : knownKeys()) {
    const std::string value(key.defaultValue);
    if (value.empty() || value.starts_with("(") || key.type == "table") {
      continue;
    }
    const auto dot = key.key.find('.');
    if (dot == std::string_view::npos) {
      text += std::string(key.key) + " = " + value + "\n";
    } else {
      tables[std::string(key.key.substr(0, dot))] +=
          std::string(key.key.substr(dot + 1)) + " = " + value + "\n";
    }
    ++written;
  }
  for (const auto& [table, lines] : tables) {
    text += "[" + table + "]\n" + lines;
  }
  // clusters, environment and the keys in tables, but not name, working_directory, the shards
  // keys, control.socket and metrics.listen, whose defaults are phrases.
  BOOST_TEST(written == 28);
  BOOST_TEST_CONTEXT("config:\n" << text) {
    checkSameConfig(configOf(text), configOf(kCommand));
  }
}

BOOST_AUTO_TEST_CASE(accepts_dotted_keys_and_inline_tables) {
  const BotConfig config = configOf(kCommand +
                                    "restart.delay = \"0s\"\n"
                                    "stop = { timeout = \"1ms\", signal = \"SIGQUIT\" }\n"
                                    "environment.A = \"1\"\n");
  BOOST_TEST(config.restart.delay.count() == 0);
  BOOST_TEST(config.stop.timeout.count() == 1);
  BOOST_TEST(config.stop.signal == SIGQUIT);
  BOOST_TEST(config.environment.at("A") == "1");
}

BOOST_AUTO_TEST_CASE(accepts_clusters_at_both_limits) {
  BOOST_TEST(configOf(kCommand + "clusters = 1").clusters == 1U);
  BOOST_TEST(configOf(kCommand + "clusters = 4096").clusters == 4096U);
}

BOOST_AUTO_TEST_CASE(stores_command_as_given) {
  const BotConfig config = configOf("command = [\"node\", \"dist/index.js\", \" spaced \"]\n");
  BOOST_TEST(config.command == (std::vector<std::string>{"node", "dist/index.js", " spaced "}));
}

BOOST_AUTO_TEST_CASE(derives_name_from_file_stem) {
  struct NameCase {
    std::string fileName;
    std::string expected;
  };
  for (const NameCase& c : {
           NameCase{"examples/bot.toml", "bot"},
           NameCase{"/etc/clustervisor/prod.eu-1.toml", "prod.eu-1"},
           NameCase{"config", "config"},
           NameCase{"my bot.toml", "my-bot"},
           NameCase{"b\xC3\xB8t.toml", "b-t"},  // one '-' for one character, not per byte
           NameCase{std::string(70, 'a') + ".toml", std::string(64, 'a')},
           NameCase{"", "bot"},
       }) {
    BOOST_TEST_CONTEXT("file \"" << c.fileName << "\"") {
      BOOST_TEST(configOf(kCommand, c.fileName).name == c.expected);
    }
  }
  BOOST_TEST(configOf(kCommand + "name = \"other\"", "examples/bot.toml").name == "other");
}

BOOST_AUTO_TEST_CASE(resolves_working_directory_against_config_dir) {
  struct DirectoryCase {
    std::string value;
    std::filesystem::path expected;
  };
  for (const DirectoryCase& c : {
           DirectoryCase{"run", "/srv/bots/demo/run"},
           DirectoryCase{".", "/srv/bots/demo"},
           DirectoryCase{"./a/./b/..", "/srv/bots/demo/a"},
           DirectoryCase{"../shared/", "/srv/bots/shared"},
           DirectoryCase{"/var/lib/bot", "/var/lib/bot"},
           DirectoryCase{"/var//lib/../bot/", "/var/bot"},
           DirectoryCase{"/", "/"},
       }) {
    BOOST_TEST_CONTEXT("working_directory = \"" << c.value << "\"") {
      const BotConfig config = configOf(kCommand + "working_directory = \"" + c.value + "\"");
      BOOST_TEST(config.workingDirectory == c.expected);
    }
  }
}

BOOST_AUTO_TEST_CASE(defaults_working_directory_to_config_dir_normalized) {
  const LoadResult result = parseConfig(kCommand, "bot.toml", "/srv/bots/./demo/");
  BOOST_TEST_REQUIRE(result.config.has_value());
  BOOST_TEST(result.config->workingDirectory == kBase);
}

BOOST_AUTO_TEST_CASE(accepts_stop_signal_with_or_without_prefix) {
  struct SignalCase {
    std::string_view name;
    int number;
  };
  for (const SignalCase& c : {
           SignalCase{"SIGTERM", SIGTERM},
           SignalCase{"TERM", SIGTERM},
           SignalCase{"SIGINT", SIGINT},
           SignalCase{"INT", SIGINT},
           SignalCase{"SIGQUIT", SIGQUIT},
           SignalCase{"QUIT", SIGQUIT},
           SignalCase{"SIGHUP", SIGHUP},
           SignalCase{"HUP", SIGHUP},
           SignalCase{"SIGUSR1", SIGUSR1},
           SignalCase{"USR1", SIGUSR1},
           SignalCase{"SIGUSR2", SIGUSR2},
           SignalCase{"USR2", SIGUSR2},
       }) {
    BOOST_TEST_CONTEXT(c.name) {
      const BotConfig config =
          configOf(kCommand + "[stop]\nsignal = \"" + std::string(c.name) + "\"");
      BOOST_TEST(config.stop.signal == c.number);
    }
  }
}

BOOST_AUTO_TEST_CASE(accepts_sizes_as_integers_and_strings) {
  BOOST_TEST(configOf(kCommand + "[events]\nmax_payload = 1024").events.maxPayload == 1024U);
  BOOST_TEST(configOf(kCommand + "[events]\nmax_payload = \"100000B\"").events.maxPayload ==
             100'000U);
  BOOST_TEST(configOf(kCommand + "[events]\nmax_payload = \"1MB\"").events.maxPayload ==
             1'000'000U);
  BOOST_TEST(configOf(kCommand + "[events]\nmax_payload = \"256MiB\"\noutbox_limit = \"16GiB\"")
                 .events.outboxLimit == 16ULL * 1024 * 1024 * 1024);
}

BOOST_AUTO_TEST_CASE(accepts_outbox_of_exactly_two_payloads) {
  const BotConfig config = configOf(kCommand + "[events]\nmax_payload = \"32MiB\"");
  BOOST_TEST(config.events.maxPayload == 32U * 1024 * 1024);
  BOOST_TEST(configOf(kCommand + "[events]\nmax_payload = \"64KiB\"\noutbox_limit = \"128KiB\"")
                 .events.outboxLimit == 128U * 1024);
}

// --- errors ------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(reports_missing_command) {
  const std::string missing =
      "bot.toml:1:1: command: missing required key (expected an array of strings, e.g. command = "
      "[\"./bot\"])\n";
  checkCases({
      {"", missing},
      {"clusters = 2\n", missing},
      {"# nothing but a comment\n\n", missing},
  });
}

BOOST_AUTO_TEST_CASE(rejects_malformed_command) {
  checkCases({
      {"command = \"./bot --verbose\"",
       "bot.toml:1:11: command: expected an array of strings, e.g. command = [\"./bot\"], got "
       "string \"./bot --verbose\"\n"},
      {"command = []",
       "bot.toml:1:11: command: expected at least the program to run, e.g. command = "
       "[\"./bot\"], got an empty array\n"},
      {"command = [\"./bot\", 3, \"\"]",
       "bot.toml:1:21: command[1]: expected a string, got integer 3\n"
       "bot.toml:1:24: command[2]: expected a non-empty string, got \"\"\n"},
      {"command = [\"./bot\\u0000x\"]",
       "bot.toml:1:12: command[0]: must not contain a NUL character (exec cannot pass it)\n"},
      {"command = [[\"./bot\"]]", "bot.toml:1:12: command[0]: expected a string, got array\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_clusters_out_of_range_or_of_wrong_type) {
  const std::string prefix = "bot.toml:2:12: clusters: expected an integer from 1 to 4096, got ";
  checkCases({
      {kCommand + "clusters = \"four\"", prefix + "string \"four\"\n"},
      {kCommand + "clusters = 0", prefix + "0\n"},
      {kCommand + "clusters = 4097", prefix + "4097\n"},
      {kCommand + "clusters = -1", prefix + "-1\n"},
      {kCommand + "clusters = 9223372036854775807", prefix + "9223372036854775807\n"},
      {kCommand + "clusters = 4.0", prefix + "float 4.0\n"},
      {kCommand + "clusters = 2.5", prefix + "float 2.5\n"},
      {kCommand + "clusters = inf", prefix + "float inf\n"},
      {kCommand + "clusters = true", prefix + "boolean true\n"},
      {kCommand + "clusters = 1979-05-27", prefix + "date 1979-05-27\n"},
      {kCommand + "clusters = [1]", prefix + "array\n"},
      {kCommand + "clusters = {}", prefix + "table\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_invalid_name) {
  const std::string prefix =
      "bot.toml:2:8: name: expected 1 to 64 of the characters A-Z a-z 0-9 . _ -, got ";
  checkCases({
      {kCommand + "name = \"my bot\"", prefix + "\"my bot\"\n"},
      {kCommand + "name = \"\"", prefix + "\"\"\n"},
      {kCommand + "name = \"a/b\"", prefix + "\"a/b\"\n"},
      {kCommand + "name = 7", prefix + "integer 7\n"},
      // Long values are cut in the message at 60 bytes.
      {kCommand + "name = \"" + std::string(65, 'x') + "\"",
       prefix + "\"" + std::string(60, 'x') + "\"...\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_unusable_working_directory) {
  checkCases({
      {kCommand + "working_directory = \"\"",
       "bot.toml:2:21: working_directory: expected a non-empty directory path, got \"\"\n"},
      {kCommand + "working_directory = 5",
       "bot.toml:2:21: working_directory: expected a directory path string, got integer 5\n"},
      {kCommand + "working_directory = \"~/bot\"",
       "bot.toml:2:21: working_directory: \"~\" is not expanded; write an absolute path or one "
       "relative to the config file, got \"~/bot\"\n"},
      {kCommand + "working_directory = \"a\\u0000b\"",
       "bot.toml:2:21: working_directory: must not contain a NUL character\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_reserved_environment_name) {
  checkCases({
      {kCommand + "[environment]\nCLUSTERVISOR_CLUSTER_ID = \"3\"",
       "bot.toml:3:1: environment.CLUSTERVISOR_CLUSTER_ID: reserved for the variables "
       "clustervisor sets\n"},
      {kCommand + "environment = { CLUSTERVISOR_ = \"\" }",
       "bot.toml:2:17: environment.CLUSTERVISOR_: reserved for the variables clustervisor sets\n"},
  });
  // Only the exact upper-case prefix is reserved.
  BOOST_TEST(configOf(kCommand + "[environment]\nclustervisor_x = \"1\"\nCLUSTERVISORX = \"2\"")
                 .environment.size() == 2U);
}

BOOST_AUTO_TEST_CASE(rejects_invalid_environment_names_and_values) {
  const std::string invalidName =
      ": invalid variable name (expected letters, digits and '_', not starting with a digit)\n";
  checkCases({
      {kCommand + "[environment]\n"
                  "1X = \"a\"\n"
                  "\"A B\" = \"b\"\n"
                  "N = 1\n"
                  "M = \"a\\u0000b\"\n"
                  "\"A=B\" = \"c\"\n"
                  "\"\" = \"d\"\n",
       "bot.toml:3:1: environment.1X" + invalidName +           //
           "bot.toml:4:1: environment.\"A B\"" + invalidName +  //
           "bot.toml:5:5: environment.N: expected a string, got integer 1\n"
           "bot.toml:6:5: environment.M: must not contain a NUL character\n"
           "bot.toml:7:1: environment.\"A=B\"" +
           invalidName +  //
           "bot.toml:8:1: environment.\"\"" + invalidName},
      {kCommand + "environment = \"FOO=1\"",
       "bot.toml:2:15: environment: expected a table of strings, got string \"FOO=1\"\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_malformed_or_out_of_range_duration) {
  checkCases({
      {kCommand + "[restart]\ndelay = \"soon\"",
       "bot.toml:3:9: restart.delay: expected a duration such as \"1s\" or \"500ms\", got "
       "\"soon\"\n"},
      {kCommand + "[restart]\ndelay = \"1 s\"",
       "bot.toml:3:9: restart.delay: expected a duration such as \"1s\" or \"500ms\", got "
       "\"1 s\"\n"},
      {kCommand + "[stop]\ntimeout = 10",
       "bot.toml:3:11: stop.timeout: expected a duration string such as \"10s\" or \"500ms\", "
       "got integer 10\n"},
      {kCommand + "restart.delay = 1.5",
       "bot.toml:2:17: restart.delay: expected a duration string such as \"10s\" or \"500ms\", "
       "got float 1.5\n"},
      {kCommand + "[restart]\ndelay = \"1h1ms\"",
       "bot.toml:3:9: restart.delay: expected a duration from 0s to 1h, got \"1h1ms\"\n"},
      {kCommand + "[stop]\ntimeout = \"0s\"",
       "bot.toml:3:11: stop.timeout: expected a duration from 1ms to 1h, got \"0s\"\n"},
      {kCommand + "[restart]\ndelay = \"0.5ms\"",
       "bot.toml:3:9: restart.delay: must be a whole number of milliseconds, got \"0.5ms\"\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_overflowing_duration) {
  checkCases({
      {kCommand + "[restart]\ndelay = \"99999999999999999999h\"",
       "bot.toml:3:9: restart.delay: expected a duration from 0s to 1h, got "
       "\"99999999999999999999h\"\n"},
      {kCommand + "[stop]\ntimeout = \"9223372036854775807ms1ms\"",
       "bot.toml:3:11: stop.timeout: expected a duration from 1ms to 1h, got "
       "\"9223372036854775807ms1ms\"\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_unknown_stop_signal) {
  const std::string expected =
      "bot.toml:3:10: stop.signal: expected one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, "
      "SIGUSR2, got ";
  checkCases({
      {kCommand + "[stop]\nsignal = \"SIGKILL\"", expected + "\"SIGKILL\"\n"},
      {kCommand + "[stop]\nsignal = \"sigterm\"", expected + "\"sigterm\"\n"},
      {kCommand + "[stop]\nsignal = \"SIG\"", expected + "\"SIG\"\n"},
      {kCommand + "[stop]\nsignal = 15", expected + "integer 15\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_malformed_or_out_of_range_size) {
  const std::string maxPayload = "bot.toml:3:15: events.max_payload: ";
  const std::string outbox = "bot.toml:3:16: events.outbox_limit: ";
  checkCases({
      {kCommand + "[events]\nmax_payload = \"2GiB\"",
       maxPayload + "expected a size from 1KiB to 256MiB, got \"2GiB\"\n"},
      {kCommand + "[events]\nmax_payload = 1023",
       maxPayload + "expected a size from 1KiB to 256MiB, got 1023\n"},
      {kCommand + "[events]\nmax_payload = -1",
       maxPayload + "expected a size from 1KiB to 256MiB, got -1\n"},
      {kCommand + "[events]\nmax_payload = \"1 MiB\"",
       maxPayload + "expected a size such as \"1MiB\" or \"512KiB\", got \"1 MiB\"\n"},
      {kCommand + "[events]\nmax_payload = \"1048576\"",
       maxPayload + "expected a size such as \"1MiB\" or \"512KiB\", got \"1048576\"\n"},
      {kCommand + "[events]\nmax_payload = 1.5",
       maxPayload + "expected a size in bytes or a string such as \"1MiB\", got float 1.5\n"},
      {kCommand + "[events]\noutbox_limit = \"32KiB\"",
       outbox + "expected a size from 64KiB to 16GiB, got \"32KiB\"\n"},
      {kCommand + "[events]\noutbox_limit = \"99999999999999999999GiB\"",
       outbox + "expected a size from 64KiB to 16GiB, got \"99999999999999999999GiB\"\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_outbox_smaller_than_two_payloads) {
  checkCases({
      {kCommand + "[events]\nmax_payload = \"1MiB\"\noutbox_limit = \"1MiB\"",
       "bot.toml:4:16: events.outbox_limit: expected at least twice events.max_payload (2MiB), "
       "got \"1MiB\"\n"},
      {kCommand + "[events]\nmax_payload = \"1MiB\"\noutbox_limit = 2097151",
       "bot.toml:4:16: events.outbox_limit: expected at least twice events.max_payload (2MiB), "
       "got 2097151\n"},
      // With outbox_limit left at its default, the fix is at max_payload or in a new line.
      {kCommand + "[events]\nmax_payload = \"64MiB\"",
       "bot.toml:3:15: events.max_payload: expected at most half of events.outbox_limit (64MiB "
       "by default; set events.outbox_limit to at least 128MiB to allow this), got \"64MiB\"\n"},
      // Each key is only compared with the other once it is valid by itself.
      {kCommand + "[events]\nmax_payload = \"1GiB\"\noutbox_limit = \"1MiB\"",
       "bot.toml:3:15: events.max_payload: expected a size from 1KiB to 256MiB, got \"1GiB\"\n"},
  });
}

BOOST_AUTO_TEST_CASE(suggests_close_key_for_typo) {
  checkCases({
      {kCommand + "clustrs = 2",
       "bot.toml:2:1: clustrs: unknown key (did you mean \"clusters\"?)\n"},
      {kCommand + "Clusters = 2",
       "bot.toml:2:1: Clusters: unknown key (did you mean \"clusters\"?)\n"},
      {kCommand + "[restat]\ndelay = \"1s\"",
       "bot.toml:2:2: restat: unknown key (did you mean \"restart\"?)\n"},
      {kCommand + "[stop]\ntimout = \"5s\"",
       "bot.toml:3:1: stop.timout: unknown key (did you mean \"timeout\"?)\n"},
      {kCommand + "workingdirectroy = \"x\"",  // 3 edits, within len/3 of a 17-letter key
       "bot.toml:2:1: workingdirectroy: unknown key (did you mean \"working_directory\"?)\n"},
      {kCommand + "working_dir = \"x\"",  // a prefix of a key counts as close
       "bot.toml:2:1: working_dir: unknown key (did you mean \"working_directory\"?)\n"},
      {kCommand + "enviroment = {}",
       "bot.toml:2:1: enviroment: unknown key (did you mean \"environment\"?)\n"},
      {kCommand + "[sharding]\ntotal = 4",  // the same stem
       "bot.toml:2:2: sharding: unknown key (did you mean \"shards\"?)\n"},
      {kCommand + "[stopping]\ntimeout = \"5s\"",
       "bot.toml:2:2: stopping: unknown key (did you mean \"stop\"?)\n"},
      {kCommand + "[shell]\nx = 1",  // too little in common
       "bot.toml:2:2: shell: unknown key (expected one of: command, clusters, name, "
       "working_directory, environment, start, restart, stop, heartbeat, events, shards, rolling, "
       "control, metrics)\n"},
  });
}

BOOST_AUTO_TEST_CASE(reads_rolling_control_and_metrics_settings) {
  const auto result = parseConfig(kCommand +
                                      "[rolling]\nbatch = 3\ndelay = \"2s\"\n"
                                      "[control]\nsocket = \"run/../ctl.sock\"\n"
                                      "[metrics]\nlisten = \"127.0.0.1:9464\"\n",
                                  "bot.toml", kBase);
  BOOST_TEST_REQUIRE(result.errors.empty());
  BOOST_TEST(result.config->rolling.batch == 3u);
  BOOST_TEST(result.config->rolling.delay.count() == 2000);
  BOOST_TEST(result.config->control.socket == kBase / "ctl.sock");
  BOOST_TEST(result.config->metrics.host == "127.0.0.1");
  BOOST_TEST(result.config->metrics.port == 9464u);
  const auto v6 = parseConfig(kCommand + "[metrics]\nlisten = \"[::1]:80\"", "bot.toml", kBase);
  BOOST_TEST_REQUIRE(v6.errors.empty());
  BOOST_TEST(v6.config->metrics.host == "::1");
  const auto named =
      parseConfig(kCommand + "[metrics]\nlisten = \"localhost:9100\"", "bot.toml", kBase);
  BOOST_TEST_REQUIRE(named.errors.empty());
  BOOST_TEST(named.config->metrics.host == "127.0.0.1");
  const auto other =
      parseConfig(kCommand + "[metrics]\nlisten = \"127.1.2.3:9100\"", "bot.toml", kBase);
  BOOST_TEST_REQUIRE(other.errors.empty());
  BOOST_TEST(other.config->metrics.host == "127.1.2.3");
}

BOOST_AUTO_TEST_CASE(refuses_metrics_off_loopback_and_unusable_sockets) {
  const std::string loopback =
      "expected a loopback address (127.0.0.1, another 127.x.y.z, [::1] "
      "or localhost) before the port";
  checkCases({
      {kCommand + "[metrics]\nlisten = \"0.0.0.0:9464\"",
       "bot.toml:3:10: metrics.listen: metrics are served on loopback only (they have no "
       "authentication): use 127.0.0.1 or [::1], and a reverse proxy or an SSH tunnel to reach "
       "them from elsewhere, got \"0.0.0.0:9464\"\n"},
      {kCommand + "[metrics]\nlisten = \"example.com:9464\"",
       "bot.toml:3:10: metrics.listen: " + loopback + ", got \"example.com:9464\"\n"},
      {kCommand + "[metrics]\nlisten = \"127.0.0.256:9464\"",
       "bot.toml:3:10: metrics.listen: " + loopback + ", got \"127.0.0.256:9464\"\n"},
      {kCommand + "[metrics]\nlisten = \"127.0.0.01:9464\"",
       "bot.toml:3:10: metrics.listen: " + loopback + ", got \"127.0.0.01:9464\"\n"},
      {kCommand + "[control]\nsocket = \"run/..\"",
       "bot.toml:3:10: control.socket: expected the path of a socket file, e.g. "
       "\"/run/mybot/control.sock\", got \"run/..\"\n"},
      {kCommand + "[metrics]\nlisten = \"[::]:9464\"",
       "bot.toml:3:10: metrics.listen: " + loopback + ", got \"[::]:9464\"\n"},
      {kCommand + "[metrics]\nlisten = \"127.0.0.1:0\"",
       "bot.toml:3:10: metrics.listen: expected a port from 1 to 65535 after the last ':', got "
       "\"127.0.0.1:0\"\n"},
      {kCommand + "[metrics]\nlisten = \"127.0.0.1:65536\"",
       "bot.toml:3:10: metrics.listen: expected a port from 1 to 65535 after the last ':', got "
       "\"127.0.0.1:65536\"\n"},
      {kCommand + "[metrics]\nlisten = \"9464\"",
       "bot.toml:3:10: metrics.listen: expected \"ADDRESS:PORT\" on loopback, e.g. "
       "\"127.0.0.1:9464\" or \"[::1]:9464\", got \"9464\"\n"},
      {kCommand + "[metrics]\nlisten = 9464",
       "bot.toml:3:10: metrics.listen: expected \"ADDRESS:PORT\" on loopback, e.g. "
       "\"127.0.0.1:9464\", got integer 9464\n"},
      {kCommand + "[control]\nsocket = \"\"",
       "bot.toml:3:10: control.socket: expected the path of a socket file, e.g. "
       "\"/run/mybot/control.sock\", got \"\"\n"},
      {kCommand + "[control]\nsocket = \"/" + std::string(120, 'x') + "\"",
       "bot.toml:3:10: control.socket: the socket path resolves to 121 bytes; a unix socket "
       "path has at most 107: choose a shorter one\n"},
  });
}

BOOST_AUTO_TEST_CASE(lists_valid_keys_when_nothing_is_close) {
  const std::string topLevel =
      ": unknown key (expected one of: command, clusters, name, working_directory, environment, "
      "start, restart, stop, heartbeat, events, shards, rolling, control, metrics)\n";
  checkCases({
      {kCommand + "threads = 2", "bot.toml:2:1: threads" + topLevel},
      {kCommand + "[logging]\nfile = \"x\"", "bot.toml:2:2: logging" + topLevel},
      // A quoted key with a dot is one key, not restart.delay.
      {kCommand + "\"restart.delay\" = \"1s\"", "bot.toml:2:1: \"restart.delay\"" + topLevel},
      {kCommand + "[stop]\ngrace = \"5s\"",
       "bot.toml:3:1: stop.grace: unknown key (expected one of: timeout, signal, signal_delay)\n"},
      {kCommand + "[events]\nqueue = 1",
       "bot.toml:3:1: events.queue: unknown key (expected one of: max_payload, outbox_limit, "
       "hold_max_count, hold_max_bytes, hold_max_age, stall_timeout)\n"},
      {kCommand + "[restart.backoff]\nbase = \"1s\"",
       "bot.toml:2:10: restart.backoff: unknown key (expected one of: policy, success_exit_codes, "
       "delay, max_delay, stable_after, limit, window, on_crash_loop, retry_failed_after)\n"},
      {kCommand + "[start]\nready_when = \"sdk\"",
       "bot.toml:3:1: start.ready_when: unknown key (expected one of: ready, timeout, delay, "
       "wait_for_ready)\n"},
      {kCommand + "[heartbeat]\nperiod = \"1s\"",
       "bot.toml:3:1: heartbeat.period: unknown key (expected one of: interval, timeout)\n"},
      {kCommand + "[shards]\ncount = 16",
       "bot.toml:3:1: shards.count: unknown key (expected one of: total, per_cluster)\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_table_where_value_expected_and_vice_versa) {
  checkCases({
      {kCommand + "restart = 5", "bot.toml:2:11: restart: expected a table, got integer\n"},
      {kCommand + "stop = \"SIGTERM\"", "bot.toml:2:8: stop: expected a table, got string\n"},
      {kCommand + "[[events]]\nmax_payload = 1024",
       "bot.toml:2:1: events: expected a table, got array\n"},
      {kCommand + "start = true", "bot.toml:2:9: start: expected a table, got boolean\n"},
      {kCommand + "heartbeat = \"1s\"", "bot.toml:2:13: heartbeat: expected a table, got string\n"},
      {kCommand + "shards = 16", "bot.toml:2:10: shards: expected a table, got integer\n"},
      {kCommand + "[clusters]\nx = 1",
       "bot.toml:2:1: clusters: expected an integer from 1 to 4096, got table\n"},
      {kCommand + "[stop]\ntimeout = { seconds = 5 }",
       "bot.toml:3:11: stop.timeout: expected a duration string such as \"10s\" or \"500ms\", "
       "got table\n"},
  });
}

BOOST_AUTO_TEST_CASE(reports_every_error_at_once_in_file_order) {
  // toml++ hands out keys in alphabetical order; diagnostics must come out in file order.
  const std::string text =
      "clusters = \"four\"\n"      // 1
      "clustrs = 2\n"              // 2
      "[stop]\n"                   // 3
      "signal = \"KILL\"\n"        // 4
      "[restart]\n"                // 5
      "delay = \"soon\"\n"         // 6
      "[events]\n"                 // 7
      "outbox_limit = \"1KiB\"\n"  // 8
      "max_payload = \"2GiB\"\n";  // 9
  BOOST_TEST(errorsOf(text) ==
             "bot.toml:1:1: command: missing required key (expected an array of strings, e.g. "
             "command = [\"./bot\"])\n"
             "bot.toml:1:12: clusters: expected an integer from 1 to 4096, got string \"four\"\n"
             "bot.toml:2:1: clustrs: unknown key (did you mean \"clusters\"?)\n"
             "bot.toml:4:10: stop.signal: expected one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, "
             "SIGUSR1, SIGUSR2, got \"KILL\"\n"
             "bot.toml:6:9: restart.delay: expected a duration such as \"1s\" or \"500ms\", got "
             "\"soon\"\n"
             "bot.toml:8:16: events.outbox_limit: expected a size from 64KiB to 16GiB, got "
             "\"1KiB\"\n"
             "bot.toml:9:15: events.max_payload: expected a size from 1KiB to 256MiB, got "
             "\"2GiB\"\n");
}

BOOST_AUTO_TEST_CASE(reports_syntax_error_with_position) {
  checkCases({
      // Only the syntax error: nothing after it is validated, not even the missing command.
      {"clusters = 0\nname = = \"x\"\nbogus = 1\n",
       "bot.toml:2:8: syntax error: Error while parsing value: could not determine value type\n"},
      {kCommand + "clusters = 1\nclusters = 2\n",
       "bot.toml:3:12: syntax error: Error while parsing key-value pair: cannot redefine existing "
       "integer 'clusters'\n"},
      // An integer too large for 64 bits: where it starts, as written, and what fits.
      {kCommand + "clusters = 99999999999999999999\n",
       "bot.toml:2:12: syntax error: integer 99999999999999999999 does not fit in 64 bits (TOML "
       "integers run from -9223372036854775808 to 9223372036854775807); write a smaller number\n"},
      {kCommand + "[restart]\nmax_restarts=-99_999_999_999_999_999_999\n",
       "bot.toml:3:14: syntax error: integer -99_999_999_999_999_999_999 does not fit in 64 bits "
       "(TOML integers run from -9223372036854775808 to 9223372036854775807); write a smaller "
       "number\n"},
      // Columns count characters, not bytes (toml++'s, and so this message's).
      {kCommand + "name = \"x\"\n[environment]\nA = [\"ééééé\", 99999999999999999999]\n",
       "bot.toml:4:15: syntax error: integer 99999999999999999999 does not fit in 64 bits (TOML "
       "integers run from -9223372036854775808 to 9223372036854775807); write a smaller number\n"},
      {kCommand + "clusters = 0x1FFFFFFFFFFFFFFFFF # hex\n",
       "bot.toml:2:12: syntax error: integer 0x1FFFFFFFFFFFFFFFFF does not fit in 64 bits (TOML "
       "integers run from -9223372036854775808 to 9223372036854775807); write a smaller number\n"},
      {kCommand + "name = \"unterminated\n",
       "bot.toml:2:21: syntax error: Error while parsing string: unescaped control characters "
       "other than TAB (U+0009) are explicitly prohibited\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_invalid_utf8_as_syntax_error) {
  checkCases({
      {kCommand + "name = \"\xFF\"\n",
       "bot.toml:2:9: syntax error: invalid UTF-8 (byte 0xFF); a bot.toml must be UTF-8\n"},
      {kCommand + "# \xC3\x28\n",
       "bot.toml:2:3: syntax error: invalid UTF-8 (byte 0xC3); a bot.toml must be UTF-8\n"},
  });
}

BOOST_AUTO_TEST_CASE(escapes_control_characters_in_quoted_values) {
  checkCases({
      {kCommand + "name = \"a\\tb\\u001b[31m\\\"\\\\\"",
       "bot.toml:2:8: name: expected 1 to 64 of the characters A-Z a-z 0-9 . _ -, got "
       "\"a\\tb\\u001B[31m\\\"\\\\\"\n"},
      // A C1 control (U+009B, CSI to some terminals) too; other non-ASCII text stays.
      {kCommand + "name = \"a\\u009B2Jé\"",
       "bot.toml:2:8: name: expected 1 to 64 of the characters A-Z a-z 0-9 . _ -, got "
       "\"a\\u009B2Jé\"\n"},
  });
}

// Built field by field: GCC 12 at -O2 wrongly warns that braced SourceLocation strings may be
// used uninitialized.
Diagnostic makeDiagnostic(std::string file, std::uint32_t line, std::uint32_t column,
                          std::string key, std::string message) {
  Diagnostic diagnostic;
  diagnostic.where.file = std::move(file);
  diagnostic.where.line = line;
  diagnostic.where.column = column;
  diagnostic.key = std::move(key);
  diagnostic.message = std::move(message);
  return diagnostic;
}

BOOST_AUTO_TEST_CASE(formats_diagnostic_with_and_without_position_or_key) {
  BOOST_TEST(makeDiagnostic("bot.toml", 12, 11, "restart.delay", "bad").format() ==
             "bot.toml:12:11: restart.delay: bad");
  BOOST_TEST(makeDiagnostic("bot.toml", 3, 4, "", "syntax error: x").format() ==
             "bot.toml:3:4: syntax error: x");
  BOOST_TEST(makeDiagnostic("dir/bot.toml", 0, 0, "", "cannot read: Permission denied").format() ==
             "dir/bot.toml: cannot read: Permission denied");
}

// --- values of the restart, start, stop, heartbeat and events keys ---------------------------

// Each duration key at both ends of its range and just past them. `rest` follows the key in its
// table, to keep a cross-check with another key out of the way.
BOOST_AUTO_TEST_CASE(accepts_durations_at_both_limits_and_rejects_beyond) {
  using Get = std::chrono::milliseconds (*)(const BotConfig&);
  struct DurationCase {
    std::string table;
    std::string leaf;
    std::string min;  // as written in the file
    std::string max;
    std::string belowMin;  // empty when min is 0s
    std::string aboveMax;
    std::string rest;
    Get get;
    std::chrono::milliseconds minValue;
    std::chrono::milliseconds maxValue;
  };
  for (const DurationCase& c : {
           DurationCase{"start", "timeout", "1s", "24h", "999ms", "24h1ms", "",
                        [](const BotConfig& b) { return b.start.timeout; }, 1s, 24h},
           DurationCase{"start", "delay", "0s", "1h", "", "1h1ms", "",
                        [](const BotConfig& b) { return b.start.delay; }, 0s, 1h},
           DurationCase{"restart", "delay", "0s", "1h", "", "1h1ms", "max_delay = \"1h\"\n",
                        [](const BotConfig& b) { return b.restart.delay; }, 0s, 1h},
           DurationCase{"restart", "max_delay", "0s", "24h", "", "24h1ms", "delay = \"0s\"\n",
                        [](const BotConfig& b) { return b.restart.maxDelay; }, 0s, 24h},
           DurationCase{"restart", "stable_after", "1ms", "24h", "0s", "24h1ms", "",
                        [](const BotConfig& b) { return b.restart.stableAfter; }, 1ms, 24h},
           DurationCase{"restart", "window", "1ms", "24h", "0s", "24h1ms", "",
                        [](const BotConfig& b) { return b.restart.window; }, 1ms, 24h},
           DurationCase{"restart", "retry_failed_after", "0s", "24h", "", "24h1ms", "",
                        [](const BotConfig& b) { return b.restart.retryFailedAfter; }, 0s, 24h},
           DurationCase{"stop", "signal_delay", "0s", "1h", "", "1h1ms", "",
                        [](const BotConfig& b) { return b.stop.signalDelay; }, 0s, 1h},
           DurationCase{"heartbeat", "interval", "100ms", "1h", "99ms", "1h1ms",
                        "timeout = \"0s\"\n",
                        [](const BotConfig& b) { return b.heartbeat.interval; }, 100ms, 1h},
           DurationCase{"heartbeat", "timeout", "0s", "24h", "", "24h1ms", "",
                        [](const BotConfig& b) { return b.heartbeat.timeout; }, 0s, 24h},
           DurationCase{"events", "hold_max_age", "0s", "24h", "", "24h1ms", "",
                        [](const BotConfig& b) { return b.events.holdMaxAge; }, 0s, 24h},
           DurationCase{"events", "stall_timeout", "100ms", "24h", "99ms", "24h1ms", "",
                        [](const BotConfig& b) { return b.events.stallTimeout; }, 100ms, 24h},
       }) {
    const std::string key = c.table + "." + c.leaf;
    BOOST_TEST_CONTEXT(key) {
      const auto file = [&](const std::string& value) {
        return kCommand + "[" + c.table + "]\n" + c.leaf + " = " + value + "\n" + c.rest;
      };
      BOOST_TEST(c.get(configOf(file("\"" + c.min + "\""))).count() == c.minValue.count());
      BOOST_TEST(c.get(configOf(file("\"" + c.max + "\""))).count() == c.maxValue.count());
      const std::string at = "bot.toml:3:" + std::to_string(c.leaf.size() + 4) + ": " + key + ": ";
      const std::string range = "expected a duration from " + c.min + " to " + c.max + ", got ";
      BOOST_TEST(errorsOf(file("\"" + c.aboveMax + "\"")) ==
                 at + range + "\"" + c.aboveMax + "\"\n");
      if (!c.belowMin.empty()) {
        BOOST_TEST(errorsOf(file("\"" + c.belowMin + "\"")) ==
                   at + range + "\"" + c.belowMin + "\"\n");
      }
      BOOST_TEST(errorsOf(file("5")) == at + "expected a duration string such as \"10s\" or "
                                             "\"500ms\", got integer 5\n");
    }
  }
}

// Each integer key at both ends of its range and just past them.
BOOST_AUTO_TEST_CASE(accepts_integers_at_both_limits_and_rejects_beyond) {
  using Get = std::uint64_t (*)(const BotConfig&);
  struct IntegerCase {
    std::string table;
    std::string leaf;
    std::int64_t min;
    std::int64_t max;
    std::string rest;
    Get get;
  };
  for (const IntegerCase& c : {
           IntegerCase{"restart", "limit", 0, 1'000'000, "",
                       [](const BotConfig& b) -> std::uint64_t { return b.restart.limit; }},
           IntegerCase{"events", "hold_max_count", 0, 1'000'000, "",
                       [](const BotConfig& b) -> std::uint64_t { return b.events.holdMaxCount; }},
           IntegerCase{"shards", "total", 1, 1'000'000, "",
                       [](const BotConfig& b) -> std::uint64_t { return b.shards.total; }},
           IntegerCase{"shards", "per_cluster", 1, 1'000'000, "total = 1\n",
                       [](const BotConfig& b) -> std::uint64_t { return b.shards.perCluster; }},
       }) {
    const std::string key = c.table + "." + c.leaf;
    BOOST_TEST_CONTEXT(key) {
      const auto file = [&](const std::string& value) {
        return kCommand + "[" + c.table + "]\n" + c.leaf + " = " + value + "\n" + c.rest;
      };
      BOOST_TEST(c.get(configOf(file(std::to_string(c.min)))) == static_cast<std::uint64_t>(c.min));
      BOOST_TEST(c.get(configOf(file(std::to_string(c.max)))) == static_cast<std::uint64_t>(c.max));
      const std::string prefix = "bot.toml:3:" + std::to_string(c.leaf.size() + 4) + ": " + key +
                                 ": expected an integer from " + std::to_string(c.min) + " to " +
                                 std::to_string(c.max) + ", got ";
      BOOST_TEST(errorsOf(file(std::to_string(c.min - 1))) ==
                 prefix + std::to_string(c.min - 1) + "\n");
      BOOST_TEST(errorsOf(file(std::to_string(c.max + 1))) ==
                 prefix + std::to_string(c.max + 1) + "\n");
      BOOST_TEST(errorsOf(file("5.0")) == prefix + "float 5.0\n");
      BOOST_TEST(errorsOf(file("\"5\"")) == prefix + "string \"5\"\n");
    }
  }
}

BOOST_AUTO_TEST_CASE(restart_policy_accepts_always_on_failure_never) {
  const auto policy = [](std::string_view value) {
    return configOf(kCommand + "[restart]\npolicy = \"" + std::string(value) + "\"").restart.policy;
  };
  BOOST_TEST((policy("always") == RestartPolicy::kAlways));
  BOOST_TEST((policy("on-failure") == RestartPolicy::kOnFailure));
  BOOST_TEST((policy("never") == RestartPolicy::kNever));
}

BOOST_AUTO_TEST_CASE(on_crash_loop_accepts_fail_cluster_and_stop_supervisor) {
  const auto action = [](std::string_view value) {
    return configOf(kCommand + "[restart]\non_crash_loop = \"" + std::string(value) + "\"")
        .restart.onCrashLoop;
  };
  BOOST_TEST((action("fail-cluster") == CrashLoopAction::kFailCluster));
  BOOST_TEST((action("stop-supervisor") == CrashLoopAction::kStopSupervisor));
}

BOOST_AUTO_TEST_CASE(start_ready_accepts_sdk_and_connect) {
  const auto ready = [](std::string_view value) {
    return configOf(kCommand + "[start]\nready = \"" + std::string(value) + "\"").start.ready;
  };
  BOOST_TEST((ready("sdk") == ReadyWhen::kSdk));
  BOOST_TEST((ready("connect") == ReadyWhen::kConnect));
}

BOOST_AUTO_TEST_CASE(rejects_unknown_values_of_keys_with_fixed_choices) {
  const std::string policy = "bot.toml:3:10: restart.policy: ";
  const std::string action = "bot.toml:3:17: restart.on_crash_loop: ";
  const std::string ready = "bot.toml:3:9: start.ready: ";
  checkCases({
      {kCommand + "[restart]\npolicy = \"sometimes\"",
       policy + "unknown value \"sometimes\" (expected always, on-failure, never)\n"},
      {kCommand + "[restart]\npolicy = \"on_failure\"",
       policy + "unknown value \"on_failure\" (expected always, on-failure, never)\n"},
      {kCommand + "[restart]\npolicy = \"Always\"",
       policy + "unknown value \"Always\" (expected always, on-failure, never)\n"},
      {kCommand + "[restart]\npolicy = 1",
       policy + "expected one of always, on-failure, never, got integer 1\n"},
      {kCommand + "[restart]\non_crash_loop = \"restart\"",
       action + "unknown value \"restart\" (expected fail-cluster, stop-supervisor)\n"},
      {kCommand + "[restart]\non_crash_loop = [\"fail-cluster\"]",
       action + "expected one of fail-cluster, stop-supervisor, got array\n"},
      {kCommand + "[start]\nready = \"hello\"",
       ready + "unknown value \"hello\" (expected sdk, connect)\n"},
      {kCommand + "[start]\nready = true",
       ready + "expected one of sdk, connect, got boolean true\n"},
  });
}

BOOST_AUTO_TEST_CASE(wait_for_ready_accepts_only_booleans) {
  BOOST_TEST(configOf(kCommand + "[start]\nwait_for_ready = true").start.waitForReady == true);
  BOOST_TEST(configOf(kCommand + "[start]\nwait_for_ready = false").start.waitForReady == false);
  const std::string prefix = "bot.toml:3:18: start.wait_for_ready: expected true or false, got ";
  checkCases({
      {kCommand + "[start]\nwait_for_ready = \"yes\"", prefix + "string \"yes\"\n"},
      {kCommand + "[start]\nwait_for_ready = \"true\"", prefix + "string \"true\"\n"},
      {kCommand + "[start]\nwait_for_ready = 1", prefix + "integer 1\n"},
  });
}

BOOST_AUTO_TEST_CASE(success_exit_codes_accepts_statuses_from_0_to_255_and_empty) {
  const auto codes = [](std::string_view value) {
    return configOf(kCommand + "[restart]\nsuccess_exit_codes = " + std::string(value))
        .restart.successExitCodes;
  };
  BOOST_TEST(codes("[]").empty());
  BOOST_TEST(codes("[0, 1, 255]") == (std::vector<int>{0, 1, 255}));
  BOOST_TEST(codes("[3]") == std::vector<int>{3});
}

BOOST_AUTO_TEST_CASE(rejects_success_exit_codes_out_of_range_or_of_wrong_type) {
  const std::string key = "restart.success_exit_codes";
  checkCases({
      {kCommand + "[restart]\nsuccess_exit_codes = 0",
       "bot.toml:3:22: " + key +
           ": expected an array of integers from 0 to 255, e.g. [0, 3], got integer 0\n"},
      {kCommand + "[restart]\nsuccess_exit_codes = [0, 256, -1, \"3\", 1.0]",
       "bot.toml:3:26: " + key + "[1]: expected an integer from 0 to 255, got 256\n" +
           "bot.toml:3:31: " + key + "[2]: expected an integer from 0 to 255, got -1\n" +
           "bot.toml:3:35: " + key + "[3]: expected an integer from 0 to 255, got string \"3\"\n" +
           "bot.toml:3:40: " + key + "[4]: expected an integer from 0 to 255, got float 1.0\n"},
      {kCommand + "[restart]\nsuccess_exit_codes = [[0]]",
       "bot.toml:3:23: " + key + "[0]: expected an integer from 0 to 255, got array\n"},
  });
}

BOOST_AUTO_TEST_CASE(accepts_hold_max_bytes_of_zero) {
  BOOST_TEST(configOf(kCommand + "[events]\nhold_max_bytes = 0").events.holdMaxBytes == 0U);
  BOOST_TEST(configOf(kCommand + "[events]\nhold_max_bytes = \"0B\"").events.holdMaxBytes == 0U);
  BOOST_TEST(configOf(kCommand + "[events]\nhold_max_bytes = \"32MiB\"").events.holdMaxBytes ==
             32ULL * 1024 * 1024);
  checkCases({
      {kCommand + "[events]\nhold_max_bytes = -1",
       "bot.toml:3:18: events.hold_max_bytes: expected a size from 0B to 16GiB, got -1\n"},
  });
}

// --- cross-checks between keys -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(accepts_max_delay_equal_to_delay) {
  const BotConfig config = configOf(kCommand + "[restart]\ndelay = \"2m\"\nmax_delay = \"2m\"");
  BOOST_TEST(config.restart.delay.count() == 120'000);
  BOOST_TEST(config.restart.maxDelay.count() == 120'000);
  BOOST_TEST(configOf(kCommand + "[restart]\ndelay = \"0s\"\nmax_delay = \"0s\"")
                 .restart.maxDelay.count() == 0);
  // Up to the default max_delay, delay alone is enough.
  BOOST_TEST(configOf(kCommand + "[restart]\ndelay = \"1m\"").restart.delay.count() == 60'000);
}

BOOST_AUTO_TEST_CASE(rejects_max_delay_below_delay) {
  checkCases({
      {kCommand + "[restart]\ndelay = \"10s\"\nmax_delay = \"5s\"",
       "bot.toml:4:13: restart.max_delay: expected at least restart.delay (10s), got \"5s\"\n"},
      // Against the default delay.
      {kCommand + "[restart]\nmax_delay = \"500ms\"",
       "bot.toml:3:13: restart.max_delay: expected at least restart.delay (1s), got \"500ms\"\n"},
      // With max_delay left at its default, the fix is at delay or in a new line.
      {kCommand + "[restart]\ndelay = \"1m30s\"",
       "bot.toml:3:9: restart.delay: expected at most restart.max_delay (1m by default; set "
       "restart.max_delay to at least 1m30s to allow this), got \"1m30s\"\n"},
      // Each key is only compared with the other once it is valid by itself.
      {kCommand + "[restart]\ndelay = \"2h\"\nmax_delay = \"1s\"",
       "bot.toml:3:9: restart.delay: expected a duration from 0s to 1h, got \"2h\"\n"},
      {kCommand + "[restart]\ndelay = \"10s\"\nmax_delay = \"25h\"",
       "bot.toml:4:13: restart.max_delay: expected a duration from 0s to 24h, got \"25h\"\n"},
  });
}

BOOST_AUTO_TEST_CASE(accepts_heartbeat_timeout_of_twice_the_interval_or_zero) {
  BOOST_TEST(configOf(kCommand + "[heartbeat]\ninterval = \"15s\"").heartbeat.interval.count() ==
             15'000);
  BOOST_TEST(configOf(kCommand + "[heartbeat]\ninterval = \"5s\"\ntimeout = \"10s\"")
                 .heartbeat.timeout.count() == 10'000);
  // "0s" turns the check off, whatever the interval.
  BOOST_TEST(configOf(kCommand + "[heartbeat]\ninterval = \"1h\"\ntimeout = \"0s\"")
                 .heartbeat.timeout.count() == 0);
  BOOST_TEST(configOf(kCommand + "[heartbeat]\ntimeout = \"0s\"").heartbeat.timeout.count() == 0);
}

BOOST_AUTO_TEST_CASE(rejects_heartbeat_timeout_below_twice_the_interval) {
  checkCases({
      {kCommand + "[heartbeat]\ntimeout = \"1s\"",
       "bot.toml:3:11: heartbeat.timeout: expected \"0s\" (no check) or at least twice "
       "heartbeat.interval (2s), got \"1s\"\n"},
      {kCommand + "[heartbeat]\ninterval = \"5s\"\ntimeout = \"9999ms\"",
       "bot.toml:4:11: heartbeat.timeout: expected \"0s\" (no check) or at least twice "
       "heartbeat.interval (10s), got \"9999ms\"\n"},
      // With timeout left at its default, the fix is at interval or in a new line.
      {kCommand + "[heartbeat]\ninterval = \"20s\"",
       "bot.toml:3:12: heartbeat.interval: expected at most half of heartbeat.timeout (30s by "
       "default; set heartbeat.timeout to at least 40s, or to \"0s\" for no check, to allow "
       "this), got \"20s\"\n"},
      // Each key is only compared with the other once it is valid by itself.
      {kCommand + "[heartbeat]\ninterval = \"50ms\"\ntimeout = \"60ms\"",
       "bot.toml:3:12: heartbeat.interval: expected a duration from 100ms to 1h, got \"50ms\"\n"},
      {kCommand + "[heartbeat]\ninterval = \"20s\"\ntimeout = \"25h\"",
       "bot.toml:4:11: heartbeat.timeout: expected a duration from 0s to 24h, got \"25h\"\n"},
  });
}

BOOST_AUTO_TEST_CASE(default_hold_max_bytes_adapts_to_half_the_outbox) {
  const auto hold = [](std::string_view outbox) {
    return configOf(kCommand +
                    "[events]\nmax_payload = \"1KiB\"\noutbox_limit = " + std::string(outbox))
        .events.holdMaxBytes;
  };
  BOOST_TEST(hold("\"16MiB\"") == 8ULL * 1024 * 1024);
  BOOST_TEST(hold("\"64KiB\"") == 32ULL * 1024);
  BOOST_TEST(hold("65537") == 32768U);  // half, rounded down
  BOOST_TEST(hold("\"32MiB\"") == 16ULL * 1024 * 1024);
  BOOST_TEST(hold("\"1GiB\"") == 16ULL * 1024 * 1024);  // never raised above the default
}

BOOST_AUTO_TEST_CASE(rejects_hold_max_bytes_above_half_the_outbox) {
  BOOST_TEST(configOf(kCommand + "[events]\noutbox_limit = 65537\nhold_max_bytes = 32768\n" +
                      "max_payload = \"1KiB\"")
                 .events.holdMaxBytes == 32768U);
  checkCases({
      {kCommand + "[events]\noutbox_limit = \"16MiB\"\nhold_max_bytes = \"16MiB\"",
       "bot.toml:4:18: events.hold_max_bytes: expected at most half of events.outbox_limit "
       "(8MiB), got \"16MiB\"\n"},
      {kCommand + "[events]\noutbox_limit = 65537\nhold_max_bytes = 32769\nmax_payload = \"1KiB\"",
       "bot.toml:4:18: events.hold_max_bytes: expected at most half of events.outbox_limit "
       "(32KiB), got 32769\n"},
      // With outbox_limit left at its default, the message says which outbox would do.
      {kCommand + "[events]\nhold_max_bytes = \"40MiB\"",
       "bot.toml:3:18: events.hold_max_bytes: expected at most half of events.outbox_limit "
       "(32MiB, as events.outbox_limit is 64MiB by default; set events.outbox_limit to at least "
       "80MiB to allow this), got \"40MiB\"\n"},
      {kCommand + "[events]\nhold_max_bytes = \"9GiB\"",
       "bot.toml:3:18: events.hold_max_bytes: expected at most half of events.outbox_limit "
       "(32MiB, as events.outbox_limit is 64MiB by default; no events.outbox_limit allows more "
       "than 8GiB), got \"9GiB\"\n"},
      // Each key is only compared with the other once it is valid by itself.
      {kCommand + "[events]\noutbox_limit = \"1KiB\"\nhold_max_bytes = \"16MiB\"",
       "bot.toml:3:16: events.outbox_limit: expected a size from 64KiB to 16GiB, got \"1KiB\"\n"},
      {kCommand + "[events]\noutbox_limit = \"16MiB\"\nhold_max_bytes = \"17GiB\"",
       "bot.toml:4:18: events.hold_max_bytes: expected a size from 0B to 16GiB, got \"17GiB\"\n"},
  });
}

// --- shards ----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(spreads_shards_evenly_and_the_first_clusters_get_one_more) {
  const BotConfig config = configOf(kCommand + "clusters = 4\n[shards]\ntotal = 10");
  BOOST_TEST(config.clusters == 4U);
  BOOST_TEST(config.shards.total == 10U);
  BOOST_TEST(config.shards.perCluster == 0U);
  BOOST_TEST((shardsOfEveryCluster(config) ==
              std::vector<std::vector<std::uint32_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7}, {8, 9}}));
}

BOOST_AUTO_TEST_CASE(gives_one_shard_each_when_shards_equal_clusters) {
  const BotConfig config = configOf(kCommand + "clusters = 3\nshards.total = 3");
  BOOST_TEST(
      (shardsOfEveryCluster(config) == std::vector<std::vector<std::uint32_t>>{{0}, {1}, {2}}));
}

BOOST_AUTO_TEST_CASE(per_cluster_derives_clusters_and_the_last_may_have_fewer) {
  const BotConfig config = configOf(kCommand + "[shards]\ntotal = 16\nper_cluster = 5");
  BOOST_TEST(config.clusters == 4U);
  BOOST_TEST((shardsOfEveryCluster(config) == std::vector<std::vector<std::uint32_t>>{
                                                  {0, 1, 2, 3, 4},
                                                  {5, 6, 7, 8, 9},
                                                  {10, 11, 12, 13, 14},
                                                  {15},
                                              }));
  BOOST_TEST(configOf(kCommand + "[shards]\ntotal = 15\nper_cluster = 5").clusters == 3U);
  BOOST_TEST(configOf(kCommand + "[shards]\ntotal = 5\nper_cluster = 16").clusters == 1U);
  BOOST_TEST(configOf(kCommand + "[shards]\ntotal = 4096\nper_cluster = 1").clusters == 4096U);
  // A clusters that agrees may be written too, before or after the shards.
  BOOST_TEST(configOf(kCommand + "clusters = 4\n[shards]\ntotal = 16\nper_cluster = 5").clusters ==
             4U);
  BOOST_TEST(
      configOf(kCommand + "shards = { total = 16, per_cluster = 5 }\nclusters = 4").clusters == 4U);
}

BOOST_AUTO_TEST_CASE(shards_for_is_empty_without_shards_or_for_an_unknown_cluster) {
  BotConfig config;
  config.clusters = 4;
  BOOST_TEST(shardsFor(config, 0).empty());
  config.shards.total = 10;
  BOOST_TEST(shardsFor(config, 4).empty());
  BOOST_TEST(shardsFor(config, 4'000'000'000U).empty());
  config.shards.perCluster = 3;
  BOOST_TEST(shardsFor(config, 4).empty());
}

// Whatever the numbers, the clusters' shards in cluster order are exactly 0 .. total-1, each
// cluster's run is contiguous, and an even spread differs by at most one between clusters.
BOOST_AUTO_TEST_CASE(shards_for_gives_every_shard_to_exactly_one_cluster) {
  struct SpreadCase {
    std::uint32_t clusters;
    std::uint32_t total;
    std::uint32_t perCluster;
  };
  for (const SpreadCase& c : {
           SpreadCase{1, 1, 0},
           SpreadCase{1, 1'000'000, 0},
           SpreadCase{3, 7, 0},
           SpreadCase{7, 7, 0},
           SpreadCase{4096, 1'000'000, 0},
           SpreadCase{4096, 4097, 0},
           SpreadCase{1, 7, 7},
           SpreadCase{3, 7, 3},
           SpreadCase{1000, 1'000'000, 1000},
           SpreadCase{4082, 1'000'000, 245},
       }) {
    BOOST_TEST_CONTEXT("clusters " << c.clusters << ", total " << c.total << ", per cluster "
                                   << c.perCluster) {
      BotConfig config;
      config.clusters = c.clusters;
      config.shards.total = c.total;
      config.shards.perCluster = c.perCluster;
      std::uint32_t next = 0;
      std::size_t fewest = c.total;
      std::size_t most = 0;
      bool contiguous = true;
      for (std::uint32_t id = 0; id < c.clusters; ++id) {
        const std::vector<std::uint32_t> shards = shardsFor(config, id);
        for (const std::uint32_t shard : shards) {
          contiguous = contiguous && shard == next;
          ++next;
        }
        fewest = std::min(fewest, shards.size());
        most = std::max(most, shards.size());
      }
      BOOST_TEST(contiguous);
      BOOST_TEST(next == c.total);
      BOOST_TEST(fewest >= 1U);
      if (c.perCluster == 0) {
        BOOST_TEST(most - fewest <= 1U);
      } else {
        BOOST_TEST(most == c.perCluster);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_per_cluster_without_total) {
  checkCases({
      {kCommand + "[shards]\nper_cluster = 4",
       "bot.toml:3:15: shards.per_cluster: requires shards.total, the number of shards to split "
       "among the clusters\n"},
      // An invalid total is reported as such, not as missing.
      {kCommand + "[shards]\ntotal = 0\nper_cluster = 4",
       "bot.toml:3:9: shards.total: expected an integer from 1 to 1000000, got 0\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_clusters_that_disagree_with_per_cluster) {
  const std::string message =
      "clusters: shards.total = 16 with shards.per_cluster = 5 needs 4 clusters, got 3\n";
  checkCases({
      {kCommand + "clusters = 3\n[shards]\ntotal = 16\nper_cluster = 5",
       "bot.toml:2:12: " + message},
      // The order of the keys in the file does not matter.
      {kCommand + "shards = { total = 16, per_cluster = 5 }\nclusters = 3",
       "bot.toml:3:12: " + message},
      {kCommand + "shards.per_cluster = 5\nshards.total = 16\nclusters = 3",
       "bot.toml:4:12: " + message},
      // More than 4096 clusters: the fix is a larger per_cluster, whatever clusters says.
      {kCommand + "[shards]\ntotal = 1000000\nper_cluster = 100",
       "bot.toml:4:15: shards.per_cluster: shards.total = 1000000 with shards.per_cluster = 100 "
       "needs 10000 clusters, more than 4096; expected at least 245\n"},
      {kCommand + "clusters = 4096\n[shards]\ntotal = 4097\nper_cluster = 1",
       "bot.toml:5:15: shards.per_cluster: shards.total = 4097 with shards.per_cluster = 1 needs "
       "4097 clusters, more than 4096; expected at least 2\n"},
      // Each key is only compared with the others once it is valid by itself.
      {kCommand + "clusters = 0\n[shards]\ntotal = 16\nper_cluster = 5",
       "bot.toml:2:12: clusters: expected an integer from 1 to 4096, got 0\n"},
      {kCommand + "clusters = 3\n[shards]\ntotal = 16\nper_cluster = 0",
       "bot.toml:5:15: shards.per_cluster: expected an integer from 1 to 1000000, got 0\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_fewer_shards_than_clusters) {
  checkCases({
      {kCommand + "clusters = 8\n[shards]\ntotal = 4",
       "bot.toml:4:9: shards.total: expected at least one shard per cluster (at least 8, as "
       "clusters = 8), got 4\n"},
      {kCommand + "shards.total = 2\nclusters = 3",
       "bot.toml:2:16: shards.total: expected at least one shard per cluster (at least 3, as "
       "clusters = 3), got 2\n"},
      {kCommand + "clusters = 5000\n[shards]\ntotal = 4",
       "bot.toml:2:12: clusters: expected an integer from 1 to 4096, got 5000\n"},
  });
}

// --- loading files -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(loads_file_and_resolves_against_its_directory) {
  const TempDir dir;
  const std::filesystem::path file =
      dir.write("bots/prod.toml", kCommand + "working_directory = \"../run\"\n");
  // Diagnostics name the file as given; paths in the config are normalized.
  const std::filesystem::path given = dir.path() / "bots/./../bots/prod.toml";
  const LoadResult result = loadConfigFile(given);
  BOOST_TEST_REQUIRE(result.errors.empty());
  BOOST_TEST(result.config->sourceFile == given);
  BOOST_TEST(result.config->name == "prod");
  BOOST_TEST(result.config->workingDirectory == (dir.path() / "run").lexically_normal());

  dir.write("bots/bad.toml", kCommand + "clusters = 0\n");
  const std::filesystem::path bad = dir.path() / "bots/./bad.toml";
  const LoadResult failed = loadConfigFile(bad);
  BOOST_TEST_REQUIRE(failed.errors.size() == 1U);
  BOOST_TEST(!failed.config.has_value());
  BOOST_TEST(failed.errors[0].format() ==
             bad.string() + ":2:12: clusters: expected an integer from 1 to 4096, got 0");
}

BOOST_AUTO_TEST_CASE(reports_unreadable_file) {
  const TempDir dir;
  const std::filesystem::path missing = dir.path() / "missing.toml";
  const LoadResult result = loadConfigFile(missing);
  BOOST_TEST(!result.config.has_value());
  BOOST_TEST_REQUIRE(result.errors.size() == 1U);
  BOOST_TEST(result.errors[0].where.line == 0U);
  BOOST_TEST(result.errors[0].format() ==
             missing.string() + ": cannot read: No such file or directory");

  const LoadResult directory = loadConfigFile(dir.path());
  BOOST_TEST_REQUIRE(directory.errors.size() == 1U);
  BOOST_TEST(directory.errors[0].format() == dir.path().string() + ": cannot read: Is a directory");
}

BOOST_AUTO_TEST_CASE(rejects_file_larger_than_one_mib) {
  const TempDir dir;
  // Exactly 1 MiB is still read: a valid config padded with a comment.
  std::string text = kCommand + "#";
  text += std::string(1024 * 1024 - text.size() - 1, 'x') + "\n";
  BOOST_TEST_REQUIRE(text.size() == 1024U * 1024U);
  BOOST_TEST(loadConfigFile(dir.write("limit.toml", text)).errors.empty());

  text.insert(text.size() - 1, "x");
  const std::filesystem::path big = dir.write("big.toml", text);
  const LoadResult result = loadConfigFile(big);
  BOOST_TEST(!result.config.has_value());
  BOOST_TEST_REQUIRE(result.errors.size() == 1U);
  BOOST_TEST(result.errors[0].format() == big.string() + ": file is larger than 1 MiB");
}

BOOST_AUTO_TEST_CASE(an_unknown_key_of_a_megabyte_is_named_cut_short) {
  const std::string key(1000 * 1000, 'k');
  BOOST_TEST(errorsOf(kCommand + key + " = 1\n") ==
             "bot.toml:2:1: \"" + std::string(60, 'k') +
                 "\"...: unknown key (expected one of: command, clusters, name, working_directory, "
                 "environment, start, restart, stop, heartbeat, events, shards, rolling, control, "
                 "metrics)\n");
}

BOOST_AUTO_TEST_CASE(refuses_a_file_far_over_the_limit_from_its_size) {
  const TempDir dir;
  // 50 GiB, sparse: refused from its size, so the test cannot take long or use that much.
  const std::filesystem::path huge = dir.write("huge.toml", kCommand);
  std::filesystem::resize_file(huge, 50ULL * 1024 * 1024 * 1024);
  const LoadResult result = loadConfigFile(huge);
  BOOST_TEST_REQUIRE(result.errors.size() == 1U);
  BOOST_TEST(result.errors[0].format() == huge.string() + ": file is larger than 1 MiB");
}

BOOST_AUTO_TEST_CASE(refuses_a_fifo_or_device_without_waiting_for_it) {
  const TempDir dir;
  // Nobody writes to the FIFO: opening it for reading would wait forever, reading /dev/zero
  // would never end.
  const std::filesystem::path fifo = dir.path() / "bot.toml";
  BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  LoadResult result = loadConfigFile(fifo);
  BOOST_TEST_REQUIRE(result.errors.size() == 1U);
  BOOST_TEST(result.errors[0].format() ==
             fifo.string() + ": cannot read: a FIFO, not a regular file");

  result = loadConfigFile("/dev/zero");
  BOOST_TEST_REQUIRE(result.errors.size() == 1U);
  BOOST_TEST(result.errors[0].format() ==
             "/dev/zero: cannot read: a character device, not a regular file");
}

// --- robustness --------------------------------------------------------------------------------

// Every prefix of a full config and every single-byte mutation of it: parsing must not crash or
// trip a sanitizer, and every result must keep the LoadResult invariants.
BOOST_AUTO_TEST_CASE(survives_every_truncation_and_byte_mutation) {
  const auto checkInvariants = [](std::string_view text) {
    const LoadResult result = parseConfig(text, "bot.toml", kBase);
    BOOST_TEST(result.config.has_value() == result.errors.empty());
    for (const Diagnostic& error : result.errors) {
      BOOST_TEST(error.where.file == "bot.toml");
      BOOST_TEST(error.where.line >= 1U);
      BOOST_TEST(error.where.column >= 1U);
      BOOST_TEST(!error.message.empty());
    }
    BOOST_TEST(std::is_sorted(
        result.errors.begin(), result.errors.end(), [](const Diagnostic& a, const Diagnostic& b) {
          return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
        }));
  };
  for (std::size_t length = 0; length <= kFullConfig.size(); ++length) {
    BOOST_TEST_CONTEXT("prefix of " << length << " bytes") {
      checkInvariants(std::string_view(kFullConfig).substr(0, length));
    }
  }
  for (std::size_t i = 0; i < kFullConfig.size(); ++i) {
    for (const char replacement :
         {'\0', '\xFF', '\xC3', '"', '\'', '=', '[', ']', '{', '\n', '.', '9', 'x', '-'}) {
      std::string mutated = kFullConfig;
      mutated[i] = replacement;
      BOOST_TEST_CONTEXT("byte " << i << " replaced by " << static_cast<int>(replacement)) {
        checkInvariants(mutated);
      }
    }
  }
}

// --- the schema and its documentation --------------------------------------------------------

BOOST_AUTO_TEST_CASE(known_keys_are_unique_and_nested_in_known_tables) {
  std::set<std::string_view> tables;
  std::set<std::string_view> seen;
  for (const KeyInfo& key : knownKeys()) {
    BOOST_TEST_CONTEXT(key.key) {
      BOOST_TEST(seen.insert(key.key).second);
      BOOST_TEST(!key.type.empty());
      BOOST_TEST(!key.description.empty());
      const auto dot = key.key.rfind('.');
      if (dot != std::string_view::npos) {
        BOOST_TEST(tables.count(key.key.substr(0, dot)) == 1U);  // its table comes first
      }
      if (key.type == "table") {
        tables.insert(key.key);
      }
    }
  }
  BOOST_TEST((seen == std::set<std::string_view>{
                          "command",
                          "clusters",
                          "name",
                          "working_directory",
                          "environment",
                          "start",
                          "start.ready",
                          "start.timeout",
                          "start.delay",
                          "start.wait_for_ready",
                          "restart",
                          "restart.policy",
                          "restart.success_exit_codes",
                          "restart.delay",
                          "restart.max_delay",
                          "restart.stable_after",
                          "restart.limit",
                          "restart.window",
                          "restart.on_crash_loop",
                          "restart.retry_failed_after",
                          "stop",
                          "stop.timeout",
                          "stop.signal",
                          "stop.signal_delay",
                          "heartbeat",
                          "heartbeat.interval",
                          "heartbeat.timeout",
                          "events",
                          "events.max_payload",
                          "events.outbox_limit",
                          "events.hold_max_count",
                          "events.hold_max_bytes",
                          "events.hold_max_age",
                          "events.stall_timeout",
                          "shards",
                          "shards.total",
                          "shards.per_cluster",
                          "rolling",
                          "rolling.batch",
                          "rolling.delay",
                          "control",
                          "control.socket",
                          "metrics",
                          "metrics.listen",
                      }));
  // The only required key.
  for (const KeyInfo& key : knownKeys()) {
    BOOST_TEST(key.defaultValue.empty() == (key.key == "command"));
  }
}

// Ranges live in the validation code; the schema descriptions and the man page repeat them for
// people. Each out-of-range message names the enforced range ("from 1 to 4096"); the key's
// description and its man page entry must state the same range.
BOOST_AUTO_TEST_CASE(descriptions_and_man_page_state_the_enforced_ranges) {
  struct RangeCase {
    std::string_view key;
    std::string setting;
  };
  const std::vector<std::string> page = linesOf(readManPage());
  for (const RangeCase& c : {
           RangeCase{"clusters", "clusters = 0"},
           RangeCase{"start.timeout", "[start]\ntimeout = \"0s\""},
           RangeCase{"start.delay", "[start]\ndelay = \"2h\""},
           RangeCase{"restart.success_exit_codes", "[restart]\nsuccess_exit_codes = [256]"},
           RangeCase{"restart.delay", "[restart]\ndelay = \"2h\""},
           RangeCase{"restart.max_delay", "[restart]\nmax_delay = \"25h\""},
           RangeCase{"restart.stable_after", "[restart]\nstable_after = \"0s\""},
           RangeCase{"restart.limit", "[restart]\nlimit = -1"},
           RangeCase{"restart.window", "[restart]\nwindow = \"0s\""},
           RangeCase{"restart.retry_failed_after", "[restart]\nretry_failed_after = \"25h\""},
           RangeCase{"stop.timeout", "[stop]\ntimeout = \"0s\""},
           RangeCase{"stop.signal_delay", "[stop]\nsignal_delay = \"2h\""},
           RangeCase{"heartbeat.interval", "[heartbeat]\ninterval = \"0s\""},
           RangeCase{"heartbeat.timeout", "[heartbeat]\ntimeout = \"25h\""},
           RangeCase{"events.max_payload", "[events]\nmax_payload = 0"},
           RangeCase{"events.outbox_limit", "[events]\noutbox_limit = 0"},
           RangeCase{"events.hold_max_count", "[events]\nhold_max_count = -1"},
           RangeCase{"events.hold_max_bytes", "[events]\nhold_max_bytes = \"17GiB\""},
           RangeCase{"events.hold_max_age", "[events]\nhold_max_age = \"25h\""},
           RangeCase{"events.stall_timeout", "[events]\nstall_timeout = \"10ms\""},
           RangeCase{"shards.total", "[shards]\ntotal = 0"},
           RangeCase{"shards.per_cluster", "[shards]\ntotal = 4\nper_cluster = 0"},
           RangeCase{"rolling.batch", "[rolling]\nbatch = 0"},
           RangeCase{"rolling.delay", "[rolling]\ndelay = \"2h\""},
       }) {
    BOOST_TEST_CONTEXT(c.key) {
      const LoadResult result = parseConfig(kCommand + c.setting, "bot.toml", kBase);
      BOOST_TEST_REQUIRE(result.errors.size() == 1U);
      const std::string& message = result.errors[0].message;
      const auto from = message.find(" from ");
      const auto got = message.find(", got ");
      BOOST_TEST_REQUIRE((from != std::string::npos && got != std::string::npos), message);
      const std::string range = message.substr(from + 6, got - from - 6);  // "1 to 4096"

      const auto info = std::find_if(knownKeys().begin(), knownKeys().end(),
                                     [&](const KeyInfo& key) { return key.key == c.key; });
      BOOST_TEST_REQUIRE((info != knownKeys().end()));
      BOOST_TEST(info->description.find(range) != std::string_view::npos,
                 "description \"" << info->description << "\" does not say " << range);

      // The man page entry: from its ".B <key>" tag to the next paragraph or section macro.
      std::string entry;
      auto line = findEntry(page, c.key);
      BOOST_TEST_REQUIRE((line != page.end()));
      for (++line; line != page.end() && !line->starts_with(".TP") && !line->starts_with(".S");
           ++line) {
        entry += *line + " ";
      }
      BOOST_TEST(entry.find("from " + range) != std::string::npos,
                 "man page entry \"" << entry << "\" does not say from " << range);
    }
  }
}

// How the check reads the page: every key entry in KEYS is a `.TP` paragraph whose tag line,
// the line right after `.TP`, is `.B <dotted key>` (tables such as "restart" get an entry of
// their own). A key counts as documented only when such a tag line matches it exactly, so "stop"
// is not satisfied by "stop.timeout" and a key mentioned in running text does not count. The
// reverse check below keeps the page from documenting keys that no longer exist.
BOOST_AUTO_TEST_CASE(man_page_documents_every_known_key) {
  const std::vector<std::string> lines = linesOf(readManPage());
  std::string undocumented;
  for (const KeyInfo& key : knownKeys()) {
    if (findEntry(lines, key.key) == lines.end()) {
      undocumented += " " + std::string(key.key);
    }
  }
  BOOST_TEST(undocumented.empty(),
             "clustervisor.toml.5 has no \".TP\" entry tagged \".B <key>\" for:" << undocumented);
}

BOOST_AUTO_TEST_CASE(man_page_documents_only_known_keys) {
  const std::vector<std::string> lines = linesOf(readManPage());
  const auto keys = std::find(lines.begin(), lines.end(), ".SH KEYS");
  BOOST_TEST_REQUIRE((keys != lines.end()), "clustervisor.toml.5 has no KEYS section");
  std::string unknown;
  int entries = 0;
  for (auto line = keys + 1; line != lines.end() && !line->starts_with(".SH "); ++line) {
    if (*line == ".TP" && line + 1 != lines.end() && (line + 1)->starts_with(".B ")) {
      const std::string key = (line + 1)->substr(3);
      ++entries;
      if (std::none_of(knownKeys().begin(), knownKeys().end(),
                       [&](const KeyInfo& info) { return info.key == key; })) {
        unknown += " " + key;
      }
    }
  }
  BOOST_TEST(entries == static_cast<int>(knownKeys().size()));
  BOOST_TEST(unknown.empty(),
             "clustervisor.toml.5 documents keys the parser does not know:" << unknown);
}

// The examples are what users copy: each must be accepted as it is printed, and the full one
// must show every key.
BOOST_AUTO_TEST_CASE(man_page_examples_are_valid_and_the_full_one_sets_every_key) {
  const std::vector<std::string> lines = linesOf(readManPage());
  const auto examples = std::find(lines.begin(), lines.end(), ".SH EXAMPLES");
  BOOST_TEST_REQUIRE((examples != lines.end()), "clustervisor.toml.5 has no EXAMPLES section");
  std::vector<std::string> blocks;
  bool inBlock = false;
  for (auto line = examples + 1; line != lines.end() && !line->starts_with(".SH "); ++line) {
    if (*line == ".EX") {
      inBlock = true;
      blocks.emplace_back();
    } else if (*line == ".EE") {
      inBlock = false;
    } else if (inBlock) {
      // Undo the roff escapes the page uses inside examples.
      std::string text = *line;
      for (const auto& [escape, plain] :
           {std::pair<std::string, std::string>{"\\-", "-"}, {"\\(dq", "\""}, {"\\e", "\\"}}) {
        for (auto at = text.find(escape); at != std::string::npos;
             at = text.find(escape, at + plain.size())) {
          text.replace(at, escape.size(), plain);
        }
      }
      blocks.back() += text + "\n";
    }
  }
  BOOST_TEST_REQUIRE(blocks.size() == 2U);
  for (const std::string& block : blocks) {
    BOOST_TEST_CONTEXT("example:\n" << block) {
      BOOST_TEST(errorsOf(block, "examples/bot.toml") == "");
    }
  }
  const std::string& full = blocks.back();
  for (const KeyInfo& key : knownKeys()) {
    const auto dot = key.key.find('.');
    const bool shown =
        key.type == "table" ? full.find("[" + std::string(key.key) + "]\n") != std::string::npos
        : dot == std::string_view::npos
            ? full.find("\n" + std::string(key.key) + " = ") != std::string::npos ||
                  full.find("\n[" + std::string(key.key) + "]\n") != std::string::npos
            : full.find("[" + std::string(key.key.substr(0, dot)) + "]\n") != std::string::npos &&
                  full.find("\n" + std::string(key.key.substr(dot + 1)) + " = ") !=
                      std::string::npos;
    BOOST_TEST(shown, "the full example does not set " << key.key);
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace clustervisor::config
