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

enum class RestartPolicy {
  kAlways,     // restart after every exit
  kOnFailure,  // restart unless the worker exited with a status in successExitCodes
  kNever,      // never restart; the cluster stays exited (or failed)
};

enum class CrashLoopAction {
  kFailCluster,     // mark the cluster failed; the others keep running
  kStopSupervisor,  // stop every worker and exit non-zero
};

struct RestartConfig {
  RestartPolicy policy = RestartPolicy::kAlways;                // restart.policy
  std::vector<int> successExitCodes{0};                         // restart.success_exit_codes
  std::chrono::milliseconds delay{1000};                        // restart.delay (first backoff)
  std::chrono::milliseconds maxDelay{60000};                    // restart.max_delay (cap)
  std::chrono::milliseconds stableAfter{30000};                 // restart.stable_after
  std::uint32_t limit = 5;                                      // restart.limit; 0: no limit
  std::chrono::milliseconds window{60000};                      // restart.window (run time)
  CrashLoopAction onCrashLoop = CrashLoopAction::kFailCluster;  // restart.on_crash_loop
  std::chrono::milliseconds retryFailedAfter{600000};  // restart.retry_failed_after; 0: never
};

enum class ReadyWhen {
  kSdk,      // the worker calls Cluster::ready()
  kConnect,  // the worker's SDK has connected (said hello)
};

struct StartConfig {
  ReadyWhen ready = ReadyWhen::kSdk;         // start.ready
  std::chrono::milliseconds timeout{90000};  // start.timeout
  std::chrono::milliseconds delay{0};        // start.delay, between one start and the next
  bool waitForReady = false;                 // start.wait_for_ready
};

struct StopConfig {
  std::chrono::milliseconds timeout{10000};     // stop.timeout
  int signal = 15;                              // stop.signal (SIGTERM)
  std::chrono::milliseconds signalDelay{5000};  // stop.signal_delay (workers with an onStop hook)
};

struct HeartbeatConfig {
  std::chrono::milliseconds interval{1000};  // heartbeat.interval
  std::chrono::milliseconds timeout{30000};  // heartbeat.timeout; 0: no liveness check
};

struct EventsConfig {
  std::uint32_t maxPayload = 1024 * 1024;            // events.max_payload, bytes of JSON text
  std::uint64_t outboxLimit = 64ull * 1024 * 1024;   // events.outbox_limit, bytes per worker
  std::uint32_t holdMaxCount = 1000;                 // events.hold_max_count
  std::uint64_t holdMaxBytes = 16ull * 1024 * 1024;  // events.hold_max_bytes, <= outboxLimit / 2
  std::chrono::milliseconds holdMaxAge{60000};       // events.hold_max_age
  std::chrono::milliseconds stallTimeout{2000};      // events.stall_timeout
};

struct ShardsConfig {
  std::uint32_t total = 0;       // shards.total; 0: the bot does not use shards
  std::uint32_t perCluster = 0;  // shards.per_cluster; 0: spread evenly
};

struct RollingConfig {
  std::uint32_t batch = 1;             // rolling.batch: clusters restarted at once
  std::chrono::milliseconds delay{0};  // rolling.delay: wait after a batch is ready
};

struct ControlConfig {
  std::filesystem::path socket;  // control.socket, made absolute; empty: the runtime directory
};

struct MetricsConfig {
  std::string listen;  // metrics.listen as written ("127.0.0.1:9464"); empty: no endpoint
  std::string host;    // its address: a loopback IPv4 address or "::1"
  std::uint16_t port = 0;
};

struct BotConfig {
  std::filesystem::path sourceFile;  // the file as given
  std::string name;                  // name; default: the file's stem
  std::vector<std::string> command;  // command: argv, command[0] is the program
  SourceLocation commandAt;    // where command was written: for what is found wrong with it later
  std::uint32_t clusters = 1;  // clusters, or derived from shards.per_cluster
  std::filesystem::path workingDirectory;          // working_directory, made absolute
  SourceLocation workingDirectoryAt;               // where it was written; line 0 if defaulted
  std::map<std::string, std::string> environment;  // environment
  RestartConfig restart;
  StartConfig start;
  StopConfig stop;
  HeartbeatConfig heartbeat;
  EventsConfig events;
  ShardsConfig shards;
  RollingConfig rolling;
  ControlConfig control;
  MetricsConfig metrics;
};

// The shard ids cluster `clusterId` owns, ascending and contiguous; empty when shards.total is 0.
// With shards.per_cluster, cluster i owns [i*per_cluster, min(total, (i+1)*per_cluster)); without
// it, the shards are spread evenly and the first total % clusters clusters own one more.
// Empty as well for a clusterId >= config.clusters.
std::vector<std::uint32_t> shardsFor(const BotConfig& config, std::uint32_t clusterId);

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

// `text` as a double-quoted string for an error line: quotes, backslashes and control
// characters escaped so they cannot garble a terminal, cut after 60 bytes on a UTF-8 character
// boundary and marked "..." after the closing quote. Config diagnostics quote values with it.
std::string quoteForMessage(std::string_view text);
// The same, whole up to 4096 bytes (PATH_MAX): for a path, whose end is often what is wrong
// with it.
std::string quoteWholeForMessage(std::string_view text);

// Every key the parser accepts, tables included ("restart", "restart.delay", …).
const std::vector<KeyInfo>& knownKeys();

}  // namespace clustervisor::config
