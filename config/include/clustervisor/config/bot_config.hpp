// SPDX-License-Identifier: MIT
//
// BotConfig: the typed form of a bot.toml, and the functions that read one.
//
// This is the one place that knows every configuration key. Parsing and validation are pure:
// parseConfig() takes the file's text and never touches the file system, the clock or the
// environment, so every rule is unit-testable. loadConfigFile() only adds reading the file.
//
// Validation reports every problem at once, each as a Diagnostic naming file, line, column,
// the dotted key and what is expected. Relative paths are resolved against the directory of the
// config file, so `clustervisor run path/to/bot.toml` behaves the same from any directory.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clustervisor::config {

// A 1-based position in a config file. line == 0 means "the file as a whole".
struct SourceLocation {
  std::string file;  // as the user named it (not made absolute), e.g. "examples/bot.toml"
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

// One problem in a config file, written for the person who must fix it.
struct Diagnostic {
  SourceLocation where;
  std::string key;      // dotted key ("restart.delay"); empty for syntax errors
  std::string message;  // what is wrong and what is expected; no trailing period

  // "bot.toml:12:11: restart.delay: expected a duration such as \"1s\" or \"500ms\", got ..."
  std::string format() const;
};

struct RestartConfig {
  std::chrono::milliseconds delay{1000};  // restart.delay
};

struct StopConfig {
  std::chrono::milliseconds timeout{10000};  // stop.timeout
  int signal = 15;                           // stop.signal (SIGTERM)
};

struct EventsConfig {
  std::uint32_t maxPayload = 1024 * 1024;           // events.max_payload, bytes of JSON text
  std::uint64_t outboxLimit = 64ull * 1024 * 1024;  // events.outbox_limit, bytes per worker
};

struct BotConfig {
  std::filesystem::path sourceFile;                // the file as given
  std::string name;                                // name; default: the file's stem
  std::vector<std::string> command;                // command: argv, command[0] is the program
  std::uint32_t clusters = 1;                      // clusters
  std::filesystem::path workingDirectory;          // working_directory, made absolute
  std::map<std::string, std::string> environment;  // environment
  RestartConfig restart;
  StopConfig stop;
  EventsConfig events;
};

struct LoadResult {
  std::optional<BotConfig> config;  // set exactly when errors is empty
  std::vector<Diagnostic> errors;   // in file order
};

// One entry of the schema, for documentation checks and `clustervisor check`.
// defaultValue is written as a user would write it in TOML (`"1s"` with its quotes, `1`, `{}` for
// a table); for a default derived from the file (name, working_directory) it is a phrase in
// parentheses; it is empty exactly when the key is required.
struct KeyInfo {
  std::string_view key;   // dotted: "events.max_payload"
  std::string_view type;  // "string", "integer", "duration", "size", "array of strings", …
  std::string_view defaultValue;  // see above
  std::string_view description;   // one line, lower case, no trailing period
};

// Parses and validates config text. `fileName` is used only in diagnostics; `baseDirectory` is
// the absolute directory relative paths are resolved against.
LoadResult parseConfig(std::string_view text, std::string_view fileName,
                       const std::filesystem::path& baseDirectory);

// Reads `path` and parses it. A file that cannot be read is one Diagnostic at line 0.
LoadResult loadConfigFile(const std::filesystem::path& path);

// Every key the parser accepts, tables included ("restart", "restart.delay", …).
const std::vector<KeyInfo>& knownKeys();

}  // namespace clustervisor::config
