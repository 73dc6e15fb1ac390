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

[restart]
delay = "1m30s"

[stop]
timeout = "2.5s"
signal = "USR1"

[events]
max_payload = "512KiB"
outbox_limit = 16777216
)";

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
  BOOST_TEST(config.restart.delay.count() == 1000);
  BOOST_TEST(config.stop.timeout.count() == 10'000);
  BOOST_TEST(config.stop.signal == SIGTERM);
  BOOST_TEST(config.events.maxPayload == 1024U * 1024U);
  BOOST_TEST(config.events.outboxLimit == 64ULL * 1024 * 1024);
}

BOOST_AUTO_TEST_CASE(accepts_full_config_with_every_key) {
  const BotConfig config = configOf(kFullConfig);
  BOOST_TEST(config.command == (std::vector<std::string>{"./bot", "--shard-count", "16"}));
  BOOST_TEST(config.clusters == 4U);
  BOOST_TEST(config.name == "my-bot.eu_1");
  BOOST_TEST(config.workingDirectory == kBase / "run");
  BOOST_TEST((config.environment ==
              std::map<std::string, std::string>{{"LOG_LEVEL", "debug"}, {"_EMPTY", ""}}));
  BOOST_TEST(config.restart.delay.count() == 90'000);
  BOOST_TEST(config.stop.timeout.count() == 2500);
  BOOST_TEST(config.stop.signal == SIGUSR1);
  BOOST_TEST(config.events.maxPayload == 512U * 1024U);
  BOOST_TEST(config.events.outboxLimit == 16ULL * 1024 * 1024);
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
  BOOST_TEST(written == 7);  // clusters, environment and the five keys in tables
  const BotConfig implicit = configOf(kCommand);
  const BotConfig explicitly = configOf(text);
  BOOST_TEST(explicitly.clusters == implicit.clusters);
  BOOST_TEST((explicitly.environment == implicit.environment));
  BOOST_TEST(explicitly.restart.delay.count() == implicit.restart.delay.count());
  BOOST_TEST(explicitly.stop.timeout.count() == implicit.stop.timeout.count());
  BOOST_TEST(explicitly.stop.signal == implicit.stop.signal);
  BOOST_TEST(explicitly.events.maxPayload == implicit.events.maxPayload);
  BOOST_TEST(explicitly.events.outboxLimit == implicit.events.outboxLimit);
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
  });
}

BOOST_AUTO_TEST_CASE(lists_valid_keys_when_nothing_is_close) {
  const std::string topLevel =
      ": unknown key (expected one of: command, clusters, name, working_directory, environment, "
      "restart, stop, events)\n";
  checkCases({
      {kCommand + "threads = 2", "bot.toml:2:1: threads" + topLevel},
      {kCommand + "[logging]\nfile = \"x\"", "bot.toml:2:2: logging" + topLevel},
      // A quoted key with a dot is one key, not restart.delay.
      {kCommand + "\"restart.delay\" = \"1s\"", "bot.toml:2:1: \"restart.delay\"" + topLevel},
      {kCommand + "[stop]\ngrace = \"5s\"",
       "bot.toml:3:1: stop.grace: unknown key (expected one of: timeout, signal)\n"},
      {kCommand + "[events]\nqueue = 1",
       "bot.toml:3:1: events.queue: unknown key (expected one of: max_payload, outbox_limit)\n"},
      {kCommand + "[restart.policy]\nmode = \"always\"",
       "bot.toml:2:10: restart.policy: unknown key (expected one of: delay)\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_table_where_value_expected_and_vice_versa) {
  checkCases({
      {kCommand + "restart = 5", "bot.toml:2:11: restart: expected a table, got integer\n"},
      {kCommand + "stop = \"SIGTERM\"", "bot.toml:2:8: stop: expected a table, got string\n"},
      {kCommand + "[[events]]\nmax_payload = 1024",
       "bot.toml:2:1: events: expected a table, got array\n"},
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
      {kCommand + "clusters = 99999999999999999999\n",
       "bot.toml:2:32: syntax error: Error while parsing decimal integer: '99999999999999999999' "
       "is not representable in 64 bits\n"},
      {kCommand + "name = \"unterminated\n",
       "bot.toml:2:21: syntax error: Error while parsing string: unescaped control characters "
       "other than TAB (U+0009) are explicitly prohibited\n"},
  });
}

BOOST_AUTO_TEST_CASE(rejects_invalid_utf8_as_syntax_error) {
  checkCases({
      {kCommand + "name = \"\xFF\"\n",
       "bot.toml:2:8: syntax error: Encountered invalid utf-8 sequence\n"},
      {kCommand + "# \xC3\x28\n",
       "bot.toml:2:2: syntax error: Encountered invalid utf-8 sequence\n"},
  });
}

BOOST_AUTO_TEST_CASE(escapes_control_characters_in_quoted_values) {
  checkCases({
      {kCommand + "name = \"a\\tb\\u001b[31m\\\"\\\\\"",
       "bot.toml:2:8: name: expected 1 to 64 of the characters A-Z a-z 0-9 . _ -, got "
       "\"a\\tb\\u001B[31m\\\"\\\\\"\n"},
  });
}

BOOST_AUTO_TEST_CASE(formats_diagnostic_with_and_without_position_or_key) {
  BOOST_TEST((Diagnostic{{"bot.toml", 12, 11}, "restart.delay", "bad"}.format()) ==
             "bot.toml:12:11: restart.delay: bad");
  BOOST_TEST((Diagnostic{{"bot.toml", 3, 4}, "", "syntax error: x"}.format()) ==
             "bot.toml:3:4: syntax error: x");
  BOOST_TEST((Diagnostic{{"dir/bot.toml", 0, 0}, "", "cannot read: Permission denied"}.format()) ==
             "dir/bot.toml: cannot read: Permission denied");
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
  BOOST_TEST((seen == std::set<std::string_view>{"command", "clusters", "name", "working_directory",
                                                 "environment", "restart", "restart.delay", "stop",
                                                 "stop.timeout", "stop.signal", "events",
                                                 "events.max_payload", "events.outbox_limit"}));
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
           RangeCase{"restart.delay", "[restart]\ndelay = \"2h\""},
           RangeCase{"stop.timeout", "[stop]\ntimeout = \"0s\""},
           RangeCase{"events.max_payload", "[events]\nmax_payload = 0"},
           RangeCase{"events.outbox_limit", "[events]\noutbox_limit = 0"},
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
