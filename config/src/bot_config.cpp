// SPDX-License-Identifier: MIT
#include "clustervisor/config/bot_config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstddef>
#include <limits>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include "clustervisor/config/duration.hpp"
#include "clustervisor/config/size.hpp"
#include "clustervisor/config/utf8.hpp"
#include "toml_precheck.hpp"

namespace clustervisor::config {
namespace {

using namespace std::chrono_literals;

// Bounds the work and memory a config file can cost; a real bot.toml is a few hundred bytes.
constexpr std::size_t kMaxFileSize = 1024 * 1024;
constexpr std::string_view kFileTooLarge = "file is larger than 1 MiB";

// Values quoted in messages are cut here so a pasted blob cannot flood the terminal.
constexpr std::size_t kMaxQuotedBytes = 60;
constexpr std::size_t kMaxPathBytes = 4096;  // PATH_MAX: a path no longer is no path

constexpr std::uint32_t kMinClusters = 1;
constexpr std::uint32_t kMaxClusters = 4096;
constexpr std::int64_t kMaxCount = 1'000'000;  // restart.limit, hold_max_count, shards.*
constexpr std::int64_t kMaxExitStatus = 255;
constexpr std::size_t kMaxNameLength = 64;
constexpr std::string_view kReservedEnvironmentPrefix = "CLUSTERVISOR_";
constexpr std::string_view kFallbackName = "bot";

// ---------------------------------------------------------------------------------------------
// Text helpers for messages.

// A TOML basic string, escaped so that control characters cannot garble a terminal. Text longer
// than `maxBytes` is cut at a UTF-8 character boundary and marked with "...".
std::string quote(std::string_view text, std::size_t maxBytes = kMaxQuotedBytes) {
  const bool truncated = text.size() > maxBytes;
  text = utf8Prefix(text, maxBytes);
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (const std::size_t n = controlCharacterAt(text, i); n > 0) {
          // C0 and DEL are their byte; a C1 character's code point is its UTF-8 second byte.
          const auto code = static_cast<unsigned char>(text[i + n - 1]);
          constexpr std::string_view kHex = "0123456789ABCDEF";
          out += "\\u00";
          out += kHex[code >> 4U];
          out += kHex[code & 0xFU];
          i += n - 1;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  if (truncated) {
    out += "...";
  }
  return out;
}

// One segment of a dotted key as the user would write it: bare when TOML allows, else quoted
// (and a long one quoted, so that it is cut short).
std::string keySegment(std::string_view segment) {
  if (!segment.empty() && segment.size() <= kMaxQuotedBytes &&
      std::all_of(segment.begin(), segment.end(), isBareKeyChar)) {
    return std::string(segment);
  }
  return quote(segment);
}

std::string joinKey(std::string_view prefix, std::string_view segment) {
  if (prefix.empty()) {
    return keySegment(segment);
  }
  return std::string(prefix) + "." + keySegment(segment);
}

std::string_view typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
  }
  return "value";
}

std::string floatText(double value) {
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  if (ec != std::errc{}) {
    return "float";
  }
  std::string text(buffer.data(), end);
  if (text.find_first_not_of("-0123456789") == std::string::npos) {
    text += ".0";  // as TOML writes it, so "got float 4.0" does not look like an integer
  }
  return text;
}

template <typename T>
std::string streamed(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// The value as the user would recognise it: "four" quoted, 10, 1.5, true; empty for arrays and
// tables, whose contents would not fit in one line.
std::string valueText(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return quote(node.as_string()->get());
    case toml::node_type::integer:
      return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point:
      return floatText(node.as_floating_point()->get());
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::date:
      return streamed(node.as_date()->get());
    case toml::node_type::time:
      return streamed(node.as_time()->get());
    case toml::node_type::date_time:
      return streamed(node.as_date_time()->get());
    case toml::node_type::none:
    case toml::node_type::table:
    case toml::node_type::array:
      break;
  }
  return {};
}

// For a value of the wrong type: `string "four"`, `integer 10`, `table`.
std::string describe(const toml::node& node) {
  std::string text(typeName(node));
  if (const std::string value = valueText(node); !value.empty()) {
    text += ' ';
    text += value;
  }
  return text;
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> previous(b.size() + 1);
  std::vector<std::size_t> current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    previous[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

bool containsNul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Validation state.

struct Rule;

// One key's value while it is being checked: the dotted key for messages and the TOML node.
struct Value {
  std::string_view key;
  const toml::node& node;
};

class Validator {
 public:
  Validator(std::string_view fileName, const std::filesystem::path& baseDirectory)
      : fileName_(fileName), baseDirectory_(baseDirectory) {}

  void walk(const toml::table& table, std::string_view prefix);
  void finish();

  void fail(toml::source_position position, std::string key, std::string message) {
    errors_.push_back(Diagnostic{at(position), std::move(key), std::move(message)});
  }
  void fail(const Value& value, std::string message) {
    fail(value.node.source().begin, std::string(value.key), std::move(message));
  }
  SourceLocation locate(const Value& value) const { return at(value.node.source().begin); }

  std::optional<std::chrono::milliseconds> duration(const Value& value,
                                                    std::chrono::milliseconds min,
                                                    std::chrono::milliseconds max);
  std::optional<std::uint64_t> size(const Value& value, std::uint64_t min, std::uint64_t max);
  std::optional<std::int64_t> integer(const Value& value, std::int64_t min, std::int64_t max);

  const std::filesystem::path& baseDirectory() const { return baseDirectory_; }
  BotConfig& config() { return config_; }
  std::vector<Diagnostic> takeErrors() { return std::move(errors_); }

  // A key that is checked against another once the whole file has been read, because keys may
  // come in any order: where it was written (null: defaulted) and whether its value was valid by
  // itself. A check involving an invalid value is skipped; its own error says enough.
  struct Written {
    const toml::node* node = nullptr;
    bool valid = true;

    bool usable() const { return node != nullptr && valid; }
  };
  Written clusters;
  Written restartDelay;
  Written restartMaxDelay;
  Written heartbeatInterval;
  Written heartbeatTimeout;
  Written maxPayload;
  Written outboxLimit;
  Written holdMaxBytes;
  Written shardsTotal;
  Written shardsPerCluster;

 private:
  SourceLocation at(toml::source_position position) const {
    // toml++ leaves a position at 0 for a few implicit nodes; 1:1 still points into the file.
    return SourceLocation{fileName_, std::max<std::uint32_t>(position.line, 1),
                          std::max<std::uint32_t>(position.column, 1)};
  }
  void unknownKey(const toml::key& key, std::string_view prefix);
  void checkRestartDelays();
  void checkHeartbeat();
  void checkEventLimits();
  void checkShards();

  std::string fileName_;
  std::filesystem::path baseDirectory_;
  BotConfig config_;
  std::vector<Diagnostic> errors_;
  std::vector<const Rule*> seen_;
};

std::optional<std::chrono::milliseconds> Validator::duration(const Value& value,
                                                             std::chrono::milliseconds min,
                                                             std::chrono::milliseconds max) {
  const auto* string = value.node.as_string();
  if (string == nullptr) {
    fail(value,
         "expected a duration string such as \"10s\" or \"500ms\", got " + describe(value.node));
    return std::nullopt;
  }
  const std::string& text = string->get();
  const std::string range =
      "expected a duration from " + formatDuration(min) + " to " + formatDuration(max);
  const ParsedDuration parsed = parseDuration(text);
  switch (parsed.status) {
    case ParsedDuration::Status::kOk:
      if (parsed.value < min || parsed.value > max) {
        fail(value, range + ", got " + quote(text));
        return std::nullopt;
      }
      return parsed.value;
    case ParsedDuration::Status::kSyntax:
      fail(value, "expected a duration such as \"1s\" or \"500ms\", got " + quote(text));
      return std::nullopt;
    case ParsedDuration::Status::kSubMillisecond:
      fail(value, "must be a whole number of milliseconds, got " + quote(text));
      return std::nullopt;
    case ParsedDuration::Status::kTooLarge:
      fail(value, range + ", got " + quote(text));
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> Validator::size(const Value& value, std::uint64_t min,
                                             std::uint64_t max) {
  const std::string range = "expected a size from " + formatSize(min) + " to " + formatSize(max);
  if (const auto* integer = value.node.as_integer()) {
    const std::int64_t bytes = integer->get();
    if (bytes < 0 || static_cast<std::uint64_t>(bytes) < min ||
        static_cast<std::uint64_t>(bytes) > max) {
      fail(value, range + ", got " + std::to_string(bytes));
      return std::nullopt;
    }
    return static_cast<std::uint64_t>(bytes);
  }
  const auto* string = value.node.as_string();
  if (string == nullptr) {
    fail(value,
         "expected a size in bytes or a string such as \"1MiB\", got " + describe(value.node));
    return std::nullopt;
  }
  const std::string& text = string->get();
  const ParsedSize parsed = parseSize(text);
  switch (parsed.status) {
    case ParsedSize::Status::kOk:
      if (parsed.bytes < min || parsed.bytes > max) {
        fail(value, range + ", got " + quote(text));
        return std::nullopt;
      }
      return parsed.bytes;
    case ParsedSize::Status::kSyntax:
      fail(value, "expected a size such as \"1MiB\" or \"512KiB\", got " + quote(text));
      return std::nullopt;
    case ParsedSize::Status::kTooLarge:
      fail(value, range + ", got " + quote(text));
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::int64_t> Validator::integer(const Value& value, std::int64_t min,
                                               std::int64_t max) {
  const std::string expected =
      "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
  const auto* integer = value.node.as_integer();
  if (integer == nullptr) {
    fail(value, expected + ", got " + describe(value.node));
    return std::nullopt;
  }
  const std::int64_t number = integer->get();
  if (number < min || number > max) {
    fail(value, expected + ", got " + std::to_string(number));
    return std::nullopt;
  }
  return number;
}

// One accepted string of a key with a fixed set of values, and what it means.
template <typename T>
struct Choice {
  std::string_view name;
  T value;
};

template <typename T, std::size_t N>
std::optional<T> choice(Validator& v, const Value& value, const std::array<Choice<T>, N>& choices) {
  std::string names;
  for (const Choice<T>& c : choices) {
    names += names.empty() ? "" : ", ";
    names += c.name;
  }
  const auto* string = value.node.as_string();
  if (string == nullptr) {
    v.fail(value, "expected one of " + names + ", got " + describe(value.node));
    return std::nullopt;
  }
  for (const Choice<T>& c : choices) {
    if (string->get() == c.name) {
      return c.value;
    }
  }
  v.fail(value, "unknown value " + quote(string->get()) + " (expected " + names + ")");
  return std::nullopt;
}

std::optional<bool> boolean(Validator& v, const Value& value) {
  const auto* boolean = value.node.as_boolean();
  if (boolean == nullptr) {
    v.fail(value, "expected true or false, got " + describe(value.node));
    return std::nullopt;
  }
  return boolean->get();
}

// ---------------------------------------------------------------------------------------------
// One function per key: checks the value and stores it in the config.

// Stores a valid duration in `field`; says whether it was valid (for the cross-checks).
bool storeDuration(Validator& v, const Value& value, std::chrono::milliseconds min,
                   std::chrono::milliseconds max, std::chrono::milliseconds& field) {
  const auto duration = v.duration(value, min, max);
  if (duration) {
    field = *duration;
  }
  return duration.has_value();
}

constexpr std::string_view kCommandExpectation = "an array of strings, e.g. command = [\"./bot\"]";

void applyCommand(Validator& v, const Value& value) {
  const auto* array = value.node.as_array();
  if (array == nullptr) {
    v.fail(value, "expected " + std::string(kCommandExpectation) + ", got " + describe(value.node));
    return;
  }
  if (array->empty()) {
    v.fail(value,
           "expected at least the program to run, e.g. command = [\"./bot\"], got an "
           "empty array");
    return;
  }
  std::vector<std::string> command;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string key = std::string(value.key) + "[" + std::to_string(i) + "]";
    const Value item{key, element};
    const auto* string = element.as_string();
    if (string == nullptr) {
      v.fail(item, "expected a string, got " + describe(element));
    } else if (string->get().empty()) {
      v.fail(item, "expected a non-empty string, got \"\"");
    } else if (containsNul(string->get())) {
      v.fail(item, "must not contain a NUL character (exec cannot pass it)");
    } else {
      command.push_back(string->get());
    }
  }
  if (command.size() == array->size()) {
    v.config().command = std::move(command);
    v.config().commandAt = v.locate(value);
  }
}

void applyClusters(Validator& v, const Value& value) {
  const auto count = v.integer(value, kMinClusters, kMaxClusters);
  v.clusters = {&value.node, count.has_value()};
  if (count) {
    v.config().clusters = static_cast<std::uint32_t>(*count);
  }
}

bool isNameChar(char c) {
  return isBareKeyChar(c) || c == '.';
}

bool isValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameLength &&
         std::all_of(name.begin(), name.end(), isNameChar);
}

void applyName(Validator& v, const Value& value) {
  const std::string expected =
      "expected 1 to " + std::to_string(kMaxNameLength) + " of the characters A-Z a-z 0-9 . _ -";
  const auto* string = value.node.as_string();
  if (string == nullptr) {
    v.fail(value, expected + ", got " + describe(value.node));
  } else if (!isValidName(string->get())) {
    v.fail(value, expected + ", got " + quote(string->get()));
  } else {
    v.config().name = string->get();
  }
}

// The file's stem made into a valid name: one '-' per character that is not allowed.
std::string nameFromFile(std::string_view fileName) {
  const std::string stem = std::filesystem::path(fileName).stem().string();
  std::string name;
  for (std::size_t i = 0; i < stem.size() && name.size() < kMaxNameLength; ++i) {
    const char c = stem[i];
    if (isNameChar(c)) {
      name += c;
    } else if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U) {
      name += '-';  // continuation bytes of a UTF-8 character add nothing more
    }
  }
  return name.empty() ? std::string(kFallbackName) : name;
}

// Lexically normal, without the trailing separator lexically_normal() keeps ("/a/b/" → "/a/b").
std::filesystem::path normalDirectory(const std::filesystem::path& path) {
  std::filesystem::path normal = path.lexically_normal();
  if (!normal.has_filename() && normal.has_relative_path()) {
    normal = normal.parent_path();
  }
  return normal;
}

void applyWorkingDirectory(Validator& v, const Value& value) {
  const auto* string = value.node.as_string();
  if (string == nullptr) {
    v.fail(value, "expected a directory path string, got " + describe(value.node));
    return;
  }
  const std::string& text = string->get();
  if (text.empty()) {
    v.fail(value, "expected a non-empty directory path, got \"\"");
  } else if (containsNul(text)) {
    v.fail(value, "must not contain a NUL character");
  } else if (text == "~" || text.starts_with("~/")) {
    // No shell is involved, so "~" would silently become a directory named "~".
    v.fail(value,
           "\"~\" is not expanded; write an absolute path or one relative to the config file, "
           "got " +
               quote(text));
  } else {
    v.config().workingDirectory = normalDirectory(v.baseDirectory() / text);
    v.config().workingDirectoryAt = v.locate(value);
  }
}

bool isEnvironmentName(std::string_view name) {
  const auto isStart = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  };
  const auto isRest = [&](char c) { return isStart(c) || (c >= '0' && c <= '9'); };
  return !name.empty() && isStart(name.front()) &&
         std::all_of(name.begin() + 1, name.end(), isRest);
}

void applyEnvironment(Validator& v, const Value& value) {
  const auto* table = value.node.as_table();
  if (table == nullptr) {
    v.fail(value, "expected a table of strings, got " + describe(value.node));
    return;
  }
  for (auto&& [name, node] : *table) {
    const std::string key = joinKey(value.key, name.str());
    const Value entry{key, node};
    if (!isEnvironmentName(name.str())) {
      v.fail(name.source().begin, key,
             "invalid variable name (expected letters, digits and '_', not starting with a "
             "digit)");
    } else if (name.str().starts_with(kReservedEnvironmentPrefix)) {
      v.fail(name.source().begin, key, "reserved for the variables clustervisor sets");
    } else if (const auto* string = node.as_string(); string == nullptr) {
      v.fail(entry, "expected a string, got " + describe(node));
    } else if (containsNul(string->get())) {
      v.fail(entry, "must not contain a NUL character");
    } else {
      v.config().environment.emplace(name.str(), string->get());
    }
  }
}

constexpr std::array kRestartPolicies = {
    Choice<RestartPolicy>{"always", RestartPolicy::kAlways},
    Choice<RestartPolicy>{"on-failure", RestartPolicy::kOnFailure},
    Choice<RestartPolicy>{"never", RestartPolicy::kNever},
};

void applyRestartPolicy(Validator& v, const Value& value) {
  if (const auto policy = choice(v, value, kRestartPolicies)) {
    v.config().restart.policy = *policy;
  }
}

void applySuccessExitCodes(Validator& v, const Value& value) {
  const auto* array = value.node.as_array();
  if (array == nullptr) {
    v.fail(value, "expected an array of integers from 0 to " + std::to_string(kMaxExitStatus) +
                      ", e.g. [0, 3], got " + describe(value.node));
    return;
  }
  std::vector<int> codes;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const std::string key = std::string(value.key) + "[" + std::to_string(i) + "]";
    if (const auto code = v.integer(Value{key, *array->get(i)}, 0, kMaxExitStatus)) {
      codes.push_back(static_cast<int>(*code));
    }
  }
  if (codes.size() == array->size()) {
    v.config().restart.successExitCodes = std::move(codes);
  }
}

void applyRestartDelay(Validator& v, const Value& value) {
  v.restartDelay = {&value.node, storeDuration(v, value, 0ms, 1h, v.config().restart.delay)};
}

void applyRestartMaxDelay(Validator& v, const Value& value) {
  v.restartMaxDelay = {&value.node, storeDuration(v, value, 0ms, 24h, v.config().restart.maxDelay)};
}

void applyStableAfter(Validator& v, const Value& value) {
  storeDuration(v, value, 1ms, 24h, v.config().restart.stableAfter);
}

void applyRestartLimit(Validator& v, const Value& value) {
  if (const auto limit = v.integer(value, 0, kMaxCount)) {
    v.config().restart.limit = static_cast<std::uint32_t>(*limit);
  }
}

void applyRestartWindow(Validator& v, const Value& value) {
  storeDuration(v, value, 1ms, 24h, v.config().restart.window);
}

constexpr std::array kCrashLoopActions = {
    Choice<CrashLoopAction>{"fail-cluster", CrashLoopAction::kFailCluster},
    Choice<CrashLoopAction>{"stop-supervisor", CrashLoopAction::kStopSupervisor},
};

void applyOnCrashLoop(Validator& v, const Value& value) {
  if (const auto action = choice(v, value, kCrashLoopActions)) {
    v.config().restart.onCrashLoop = *action;
  }
}

void applyRetryFailedAfter(Validator& v, const Value& value) {
  storeDuration(v, value, 0ms, 24h, v.config().restart.retryFailedAfter);
}

constexpr std::array kReadyWhen = {
    Choice<ReadyWhen>{"sdk", ReadyWhen::kSdk},
    Choice<ReadyWhen>{"connect", ReadyWhen::kConnect},
};

void applyStartReady(Validator& v, const Value& value) {
  if (const auto ready = choice(v, value, kReadyWhen)) {
    v.config().start.ready = *ready;
  }
}

void applyStartTimeout(Validator& v, const Value& value) {
  storeDuration(v, value, 1s, 24h, v.config().start.timeout);
}

void applyStartDelay(Validator& v, const Value& value) {
  storeDuration(v, value, 0ms, 1h, v.config().start.delay);
}

void applyWaitForReady(Validator& v, const Value& value) {
  if (const auto wait = boolean(v, value)) {
    v.config().start.waitForReady = *wait;
  }
}

void applyStopTimeout(Validator& v, const Value& value) {
  storeDuration(v, value, 1ms, 1h, v.config().stop.timeout);
}

void applyStopSignalDelay(Validator& v, const Value& value) {
  storeDuration(v, value, 0ms, 1h, v.config().stop.signalDelay);
}

void applyHeartbeatInterval(Validator& v, const Value& value) {
  v.heartbeatInterval = {&value.node,
                         storeDuration(v, value, 100ms, 1h, v.config().heartbeat.interval)};
}

void applyHeartbeatTimeout(Validator& v, const Value& value) {
  v.heartbeatTimeout = {&value.node,
                        storeDuration(v, value, 0ms, 24h, v.config().heartbeat.timeout)};
}

struct SignalName {
  std::string_view name;
  int number;
};

constexpr std::array kStopSignals = {
    SignalName{"SIGTERM", SIGTERM}, SignalName{"SIGINT", SIGINT},   SignalName{"SIGQUIT", SIGQUIT},
    SignalName{"SIGHUP", SIGHUP},   SignalName{"SIGUSR1", SIGUSR1}, SignalName{"SIGUSR2", SIGUSR2},
};

void applyStopSignal(Validator& v, const Value& value) {
  std::string expected = "expected one of";
  for (const SignalName& signal : kStopSignals) {
    expected += (&signal == kStopSignals.data() ? " " : ", ");
    expected += signal.name;
  }
  const auto* string = value.node.as_string();
  if (string == nullptr) {
    v.fail(value, expected + ", got " + describe(value.node));
    return;
  }
  const std::string_view text = string->get();
  for (const SignalName& signal : kStopSignals) {
    if (text == signal.name || text == signal.name.substr(3)) {
      v.config().stop.signal = signal.number;
      return;
    }
  }
  v.fail(value, expected + ", got " + quote(text));
}

void applyMaxPayload(Validator& v, const Value& value) {
  // The ceiling is the SDK's wire::kMaxPayloadCeiling: what a worker accepts from the supervisor
  // whatever its own limit (keep the two equal).
  const auto bytes = v.size(value, 1 * kKiB, 256 * kMiB);
  v.maxPayload = {&value.node, bytes.has_value()};
  if (bytes) {
    v.config().events.maxPayload = static_cast<std::uint32_t>(*bytes);
  }
}

constexpr std::uint64_t kMaxOutboxLimit = 16 * kGiB;

void applyOutboxLimit(Validator& v, const Value& value) {
  const auto bytes = v.size(value, 64 * kKiB, kMaxOutboxLimit);
  v.outboxLimit = {&value.node, bytes.has_value()};
  if (bytes) {
    v.config().events.outboxLimit = *bytes;
  }
}

void applyHoldMaxCount(Validator& v, const Value& value) {
  if (const auto count = v.integer(value, 0, kMaxCount)) {
    v.config().events.holdMaxCount = static_cast<std::uint32_t>(*count);
  }
}

void applyHoldMaxBytes(Validator& v, const Value& value) {
  const auto bytes = v.size(value, 0, 16 * kGiB);
  v.holdMaxBytes = {&value.node, bytes.has_value()};
  if (bytes) {
    v.config().events.holdMaxBytes = *bytes;
  }
}

void applyHoldMaxAge(Validator& v, const Value& value) {
  storeDuration(v, value, 0ms, 24h, v.config().events.holdMaxAge);
}

void applyStallTimeout(Validator& v, const Value& value) {
  storeDuration(v, value, 100ms, 24h, v.config().events.stallTimeout);
}

void applyShardsTotal(Validator& v, const Value& value) {
  const auto total = v.integer(value, 1, kMaxCount);
  v.shardsTotal = {&value.node, total.has_value()};
  if (total) {
    v.config().shards.total = static_cast<std::uint32_t>(*total);
  }
}

void applyShardsPerCluster(Validator& v, const Value& value) {
  const auto perCluster = v.integer(value, 1, kMaxCount);
  v.shardsPerCluster = {&value.node, perCluster.has_value()};
  if (perCluster) {
    v.config().shards.perCluster = static_cast<std::uint32_t>(*perCluster);
  }
}

void applyRollingBatch(Validator& v, const Value& value) {
  if (const auto batch = v.integer(value, 1, kMaxClusters)) {
    v.config().rolling.batch = static_cast<std::uint32_t>(*batch);
  }
}

void applyRollingDelay(Validator& v, const Value& value) {
  storeDuration(v, value, 0ms, 1h, v.config().rolling.delay);
}

// sockaddr_un holds 107 bytes of path and its NUL.
constexpr std::size_t kMaxSocketPath = 107;

void applyControlSocket(Validator& v, const Value& value) {
  const auto* string = value.node.as_string();
  if (string == nullptr) {
    v.fail(value, "expected a socket path string, got " + describe(value.node));
    return;
  }
  const std::string& text = string->get();
  const auto name = std::filesystem::path(text).lexically_normal().filename();
  if (text.empty() || text.back() == '/' || name.empty() || name == "." || name == "..") {
    v.fail(value, "expected the path of a socket file, e.g. \"/run/mybot/control.sock\", got " +
                      quote(text));
  } else if (containsNul(text)) {
    v.fail(value, "must not contain a NUL character");
  } else if (text == "~" || text.starts_with("~/")) {
    v.fail(value,
           "\"~\" is not expanded; write an absolute path or one relative to the config file, "
           "got " +
               quote(text));
  } else {
    const auto path = (v.baseDirectory() / text).lexically_normal();
    if (path.native().size() > kMaxSocketPath) {
      v.fail(value, "the socket path resolves to " + std::to_string(path.native().size()) +
                        " bytes; a unix socket path has at most " + std::to_string(kMaxSocketPath) +
                        ": choose a shorter one");
    } else {
      v.config().control.socket = path;
    }
  }
}

// "127.0.0.1:9464", "[::1]:9464" or "localhost:9464": loopback only, since the metrics have no
// authentication of their own.
void applyMetricsListen(Validator& v, const Value& value) {
  const auto* string = value.node.as_string();
  if (string == nullptr) {
    v.fail(value, "expected \"ADDRESS:PORT\" on loopback, e.g. \"127.0.0.1:9464\", got " +
                      describe(value.node));
    return;
  }
  const std::string& text = string->get();
  const auto colon = text.rfind(':');
  const auto bad = [&](std::string why) { v.fail(value, why + ", got " + quote(text)); };
  if (colon == std::string::npos || colon == 0) {
    bad("expected \"ADDRESS:PORT\" on loopback, e.g. \"127.0.0.1:9464\" or \"[::1]:9464\"");
    return;
  }
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoul(port) == 0 || std::stoul(port) > 65535) {
    bad("expected a port from 1 to 65535 after the last ':'");
    return;
  }
  if (host == "localhost") {
    host = "127.0.0.1";
  } else if (host == "[::1]") {
    host = "::1";
  } else {
    // Four decimal octets, the first 127.
    unsigned octets[4] = {};
    int count = 0;
    std::size_t i = 0;
    bool ok = true;
    while (ok && count < 4) {
      std::size_t digits = 0;
      unsigned octet = 0;
      while (i < host.size() && host[i] >= '0' && host[i] <= '9' && digits < 4) {
        octet = octet * 10 + static_cast<unsigned>(host[i] - '0');
        ++i;
        ++digits;
      }
      // No leading zeros: "010" reads as octal to some tools and is refused by inet_pton.
      ok = digits > 0 && digits <= 3 && octet <= 255 && !(digits > 1 && host[i - digits] == '0');
      octets[count++] = octet;
      if (count < 4) {
        ok = ok && i < host.size() && host[i] == '.';
        ++i;
      }
    }
    if (!ok || i != host.size()) {
      bad("expected a loopback address (127.0.0.1, another 127.x.y.z, [::1] or localhost) "
          "before the port");
      return;
    }
    if (octets[0] != 127) {
      bad("metrics are served on loopback only (they have no authentication): use 127.0.0.1 or "
          "[::1], and a reverse proxy or an SSH tunnel to reach them from elsewhere");
      return;
    }
  }
  v.config().metrics.listen = text;
  v.config().metrics.host = host;
  v.config().metrics.port = static_cast<std::uint16_t>(std::stoul(port));
}

// ---------------------------------------------------------------------------------------------
// The schema. Validation walks the file against this table and knownKeys() publishes it, so the
// accepted keys and the documented keys cannot drift apart. A rule without `apply` is a table
// whose keys are the rules named "<table>.<key>".

struct Rule {
  KeyInfo info;
  void (*apply)(Validator&, const Value&) = nullptr;
  std::string_view expectation = {};  // for a required key: what to write, for its absence

  bool isRequired() const { return info.defaultValue.empty(); }
  std::string_view parent() const {
    const auto dot = info.key.rfind('.');
    return dot == std::string_view::npos ? std::string_view{} : info.key.substr(0, dot);
  }
  std::string_view leaf() const {
    const auto dot = info.key.rfind('.');
    return dot == std::string_view::npos ? info.key : info.key.substr(dot + 1);
  }
};

constexpr std::array kRules = {
    Rule{{"command", "array of strings", "",
          "the worker program and its arguments, run directly without a shell"},
         applyCommand,
         kCommandExpectation},
    Rule{{"clusters", "integer", "1",
          "number of worker processes (1 to 4096); each gets a cluster id 0 to clusters-1"},
         applyClusters},
    Rule{{"name", "string", "(the config file's name without extension)",
          "name of the bot in the supervisor's logs ([A-Za-z0-9._-], 1 to 64)"},
         applyName},
    Rule{{"working_directory", "string", "(the config file's directory)",
          "directory the workers run in; a relative path is resolved against the config file's "
          "directory"},
         applyWorkingDirectory},
    Rule{{"environment", "table of strings", "{}",
          "variables added to the environment the workers inherit, overriding same-named ones"},
         applyEnvironment},
    Rule{{"start", "table", "{}", "how workers are started and when they count as ready"}},
    Rule{{"start.ready", "string", "\"sdk\"",
          "when a started worker counts as ready: sdk (it called Cluster::ready()) or connect (its "
          "SDK connected)"},
         applyStartReady},
    Rule{{"start.timeout", "duration", "\"90s\"",
          "a worker not ready this long after it was started is stopped, a failed start (1s to "
          "24h)"},
         applyStartTimeout},
    Rule{{"start.delay", "duration", "\"0s\"",
          "wait between starting one cluster and starting the next, restarts included (0s to 1h)"},
         applyStartDelay},
    Rule{{"start.wait_for_ready", "boolean", "false",
          "start the next cluster only once the previous one is ready or its start failed (true "
          "or false)"},
         applyWaitForReady},
    Rule{{"restart", "table", "{}", "how workers that crashed or exited are started again"}},
    Rule{{"restart.policy", "string", "\"always\"",
          "which exits are followed by a restart: always, on-failure (all but the statuses in "
          "restart.success_exit_codes) or never"},
         applyRestartPolicy},
    Rule{{"restart.success_exit_codes", "array of integers", "[0]",
          "exit statuses that count as a clean exit for the on-failure policy (each 0 to 255; "
          "may be empty)"},
         applySuccessExitCodes},
    Rule{{"restart.delay", "duration", "\"1s\"",
          "first backoff delay, doubled (with jitter) after each restart up to restart.max_delay "
          "(0s to 1h)"},
         applyRestartDelay},
    Rule{{"restart.max_delay", "duration", "\"1m\"",
          "longest backoff delay (0s to 24h, at least restart.delay)"},
         applyRestartMaxDelay},
    Rule{{"restart.stable_after", "duration", "\"30s\"",
          "a worker ready at least this long before it exits resets the backoff to restart.delay "
          "(1ms to 24h)"},
         applyStableAfter},
    Rule{{"restart.limit", "integer", "5",
          "more restarts than this within restart.window of run time is a crash loop (0 to "
          "1000000; 0: no limit)"},
         applyRestartLimit},
    Rule{{"restart.window", "duration", "\"1m\"",
          "span of the cluster's run time (time its workers were ready) in which restart.limit "
          "applies (1ms to 24h)"},
         applyRestartWindow},
    Rule{{"restart.on_crash_loop", "string", "\"fail-cluster\"",
          "what a crash loop does: fail-cluster (that cluster stays down) or stop-supervisor"},
         applyOnCrashLoop},
    Rule{{"restart.retry_failed_after", "duration", "\"10m\"",
          "a failed cluster is started again, with a fresh backoff, this long after it failed "
          "(0s to 24h; 0s: never)"},
         applyRetryFailedAfter},
    Rule{{"stop", "table", "{}", "how workers are stopped"}},
    Rule{{"stop.timeout", "duration", "\"10s\"",
          "how long a worker may take to exit, from the start of its stop, before SIGKILL (1ms to "
          "1h)"},
         applyStopTimeout},
    Rule{{"stop.signal", "string", "\"SIGTERM\"",
          "signal that asks a worker to exit: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 or "
          "SIGUSR2"},
         applyStopSignal},
    Rule{{"stop.signal_delay", "duration", "\"5s\"",
          "for a worker with an onStop handler, wait between the stop frame and the stop signal "
          "(0s to 1h)"},
         applyStopSignalDelay},
    Rule{{"heartbeat", "table", "{}", "how the supervisor finds workers that hang"}},
    Rule{{"heartbeat.interval", "duration", "\"1s\"",
          "how often the SDK sends a heartbeat (100ms to 1h)"},
         applyHeartbeatInterval},
    Rule{{"heartbeat.timeout", "duration", "\"30s\"",
          "a worker silent this long is hung and killed (0s to 24h; 0s: no check; else at least "
          "twice heartbeat.interval)"},
         applyHeartbeatTimeout},
    Rule{{"events", "table", "{}", "limits of the event relay between workers"}},
    Rule{{"events.max_payload", "size", "\"1MiB\"",
          "largest event payload in bytes of JSON text (1KiB to 256MiB)"},
         applyMaxPayload},
    Rule{{"events.outbox_limit", "size", "\"64MiB\"",
          "bytes that may wait to be written to one worker before its events are dropped "
          "(64KiB to 16GiB, at least twice events.max_payload)"},
         applyOutboxLimit},
    Rule{{"events.hold_max_count", "integer", "1000",
          "events kept for one cluster that is not connected (0 to 1000000)"},
         applyHoldMaxCount},
    Rule{{"events.hold_max_bytes", "size", "\"16MiB\"",
          "bytes of events kept for one cluster that is not connected (0B to 16GiB, at most half "
          "of events.outbox_limit; the default is lowered to that)"},
         applyHoldMaxBytes},
    Rule{{"events.hold_max_age", "duration", "\"60s\"",
          "held events older than this are dropped (0s to 24h)"},
         applyHoldMaxAge},
    Rule{{"events.stall_timeout", "duration", "\"2s\"",
          "a worker that takes no bytes for this long while events wait for it is stalled: "
          "senders stop waiting for it and what does not fit its outbox is dropped (100ms to "
          "24h)"},
         applyStallTimeout},
    Rule{{"shards", "table", "{}", "how the bot's shards are split among the clusters"}},
    Rule{{"shards.total", "integer", "(unset: no shards)",
          "number of shards, split among the clusters in contiguous runs (1 to 1000000; at least "
          "one per cluster)"},
         applyShardsTotal},
    Rule{{"shards.per_cluster", "integer", "(unset: spread evenly)",
          "shards per cluster, the last may have fewer; clusters is then shards.total divided by "
          "it, rounded up (1 to 1000000)"},
         applyShardsPerCluster},
    Rule{{"rolling", "table", "{}",
          "how a rolling restart proceeds (clustervisor restart --rolling)"}},
    Rule{{"rolling.batch", "integer", "1",
          "clusters restarted at once; the next batch starts when these are ready (1 to 4096)"},
         applyRollingBatch},
    Rule{{"rolling.delay", "duration", "\"0s\"",
          "wait between a batch becoming ready and the next batch (0s to 1h)"},
         applyRollingDelay},
    Rule{{"control", "table", "{}", "the control socket clustervisor status/restart/stop use"}},
    Rule{{"control.socket", "string", "(in the runtime directory, see clustervisor(1))",
          "path of the control socket; relative to the config file's directory; its directory "
          "must exist"},
         applyControlSocket},
    Rule{{"metrics", "table", "{}", "the Prometheus metrics endpoint (off unless listen is set)"}},
    Rule{{"metrics.listen", "string", "(unset: no endpoint)",
          "loopback address and port to serve /metrics on, e.g. \"127.0.0.1:9464\""},
         applyMetricsListen},
};

const Rule* findRule(std::string_view parent, std::string_view leaf) {
  for (const Rule& rule : kRules) {
    if (rule.parent() == parent && rule.leaf() == leaf) {
      return &rule;
    }
  }
  return nullptr;
}

void Validator::walk(const toml::table& table, std::string_view prefix) {
  for (auto&& [key, node] : table) {
    const Rule* rule = findRule(prefix, key.str());
    if (rule == nullptr) {
      unknownKey(key, prefix);
      continue;
    }
    seen_.push_back(rule);
    const Value value{rule->info.key, node};
    if (rule->apply != nullptr) {
      rule->apply(*this, value);
    } else if (const auto* subtable = node.as_table()) {
      walk(*subtable, rule->info.key);
    } else {
      fail(value, "expected a table, got " + std::string(typeName(node)));
    }
  }
}

void Validator::unknownKey(const toml::key& key, std::string_view prefix) {
  // The closest key of the same table within a few edits, or one the user's key starts
  // ("working_dir" → "working_directory").
  const Rule* suggestion = nullptr;
  std::size_t bestDistance = std::numeric_limits<std::size_t>::max();
  std::string expected;
  for (const Rule& rule : kRules) {
    if (rule.parent() != prefix) {
      continue;
    }
    expected += expected.empty() ? "" : ", ";
    expected += rule.leaf();
    // The distance is at least the difference in length: a key far longer than any (a hostile
    // file can hold one of a megabyte) costs nothing to rule out.
    const std::size_t within = std::max<std::size_t>(2, rule.leaf().size() / 3);
    const std::size_t keyLength = key.str().size();
    const std::size_t leafLength = rule.leaf().size();
    if ((keyLength > leafLength ? keyLength - leafLength : leafLength - keyLength) > within) {
      continue;
    }
    const std::size_t distance = editDistance(key.str(), rule.leaf());
    if (distance <= within && distance < bestDistance) {
      suggestion = &rule;
      bestDistance = distance;
    }
  }
  if (suggestion == nullptr && key.str().size() >= 4) {
    for (const Rule& rule : kRules) {
      if (rule.parent() == prefix && rule.leaf().starts_with(key.str())) {
        suggestion = &rule;
        break;
      }
    }
  }
  if (suggestion == nullptr) {
    // Or one with the same stem ("sharding" → "shards", "stopping" → "stop"): a common start of
    // at least 4 bytes, after which neither has more than 4 bytes left.
    std::size_t bestStem = 0;
    for (const Rule& rule : kRules) {
      if (rule.parent() != prefix) {
        continue;
      }
      const auto leaf = rule.leaf();
      const auto stem = static_cast<std::size_t>(
          std::mismatch(leaf.begin(), leaf.end(), key.str().begin(), key.str().end()).first -
          leaf.begin());
      if (stem >= 4 && leaf.size() - stem <= 4 && key.str().size() - stem <= 4 && stem > bestStem) {
        suggestion = &rule;
        bestStem = stem;
      }
    }
  }
  const std::string message =
      suggestion != nullptr
          ? "unknown key (did you mean \"" + std::string(suggestion->leaf()) + "\"?)"
          : "unknown key (expected one of: " + expected + ")";
  fail(key.source().begin, joinKey(prefix, key.str()), message);
}

void Validator::finish() {
  for (const Rule& rule : kRules) {
    if (rule.isRequired() && std::find(seen_.begin(), seen_.end(), &rule) == seen_.end()) {
      fail(toml::source_position{1, 1}, std::string(rule.info.key),
           "missing required key (expected " + std::string(rule.expectation) + ")");
    }
  }

  checkRestartDelays();
  checkHeartbeat();
  checkEventLimits();
  checkShards();
}

// A cross-check failing is reported on the key the user wrote. When only the other key was
// written, the message names the default it collides with and the setting that would allow it.

void Validator::checkRestartDelays() {
  const std::chrono::milliseconds delay = config_.restart.delay;
  const std::chrono::milliseconds maxDelay = config_.restart.maxDelay;
  if (!restartDelay.valid || !restartMaxDelay.valid || maxDelay >= delay) {
    return;
  }
  if (restartMaxDelay.node != nullptr) {
    fail(Value{"restart.max_delay", *restartMaxDelay.node}, "expected at least restart.delay (" +
                                                                formatDuration(delay) + "), got " +
                                                                valueText(*restartMaxDelay.node));
  } else if (restartDelay.node != nullptr) {
    fail(Value{"restart.delay", *restartDelay.node},
         "expected at most restart.max_delay (" + formatDuration(maxDelay) +
             " by default; set restart.max_delay to at least " + formatDuration(delay) +
             " to allow this), got " + valueText(*restartDelay.node));
  }
}

void Validator::checkHeartbeat() {
  const std::chrono::milliseconds interval = config_.heartbeat.interval;
  const std::chrono::milliseconds timeout = config_.heartbeat.timeout;
  // A timeout of one interval would call a worker hung for a single late heartbeat.
  if (!heartbeatInterval.valid || !heartbeatTimeout.valid || timeout == 0ms ||
      timeout >= 2 * interval) {
    return;
  }
  if (heartbeatTimeout.node != nullptr) {
    fail(Value{"heartbeat.timeout", *heartbeatTimeout.node},
         "expected \"0s\" (no check) or at least twice heartbeat.interval (" +
             formatDuration(2 * interval) + "), got " + valueText(*heartbeatTimeout.node));
  } else if (heartbeatInterval.node != nullptr) {
    fail(Value{"heartbeat.interval", *heartbeatInterval.node},
         "expected at most half of heartbeat.timeout (" + formatDuration(timeout) +
             " by default; set heartbeat.timeout to at least " + formatDuration(2 * interval) +
             ", or to \"0s\" for no check, to allow this), got " +
             valueText(*heartbeatInterval.node));
  }
}

void Validator::checkEventLimits() {
  EventsConfig& events = config_.events;
  if (maxPayload.valid && outboxLimit.valid &&
      events.outboxLimit < 2 * std::uint64_t{events.maxPayload}) {
    const std::uint64_t payload = events.maxPayload;
    if (outboxLimit.node != nullptr) {
      fail(Value{"events.outbox_limit", *outboxLimit.node},
           "expected at least twice events.max_payload (" + formatSize(2 * payload) + "), got " +
               valueText(*outboxLimit.node));
    } else if (maxPayload.node != nullptr) {
      fail(Value{"events.max_payload", *maxPayload.node},
           "expected at most half of events.outbox_limit (" + formatSize(events.outboxLimit) +
               " by default; set events.outbox_limit to at least " + formatSize(2 * payload) +
               " to allow this), got " + valueText(*maxPayload.node));
    }
  }

  // Events held for a disconnected cluster are written to its outbox when it connects again,
  // beside the live ones; holding more than half the outbox would have them dropped there.
  if (!holdMaxBytes.valid || !outboxLimit.valid) {
    return;
  }
  const std::uint64_t half = events.outboxLimit / 2;
  if (holdMaxBytes.node == nullptr) {
    events.holdMaxBytes = std::min(events.holdMaxBytes, half);
    return;
  }
  if (events.holdMaxBytes <= half) {
    return;
  }
  std::string message = "expected at most half of events.outbox_limit (" + formatSize(half);
  if (outboxLimit.node == nullptr) {
    message += ", as events.outbox_limit is " + formatSize(events.outboxLimit) + " by default";
    if (2 * events.holdMaxBytes <= kMaxOutboxLimit) {
      message += "; set events.outbox_limit to at least " + formatSize(2 * events.holdMaxBytes) +
                 " to allow this";
    } else {
      message += "; no events.outbox_limit allows more than " + formatSize(kMaxOutboxLimit / 2);
    }
  }
  fail(Value{"events.hold_max_bytes", *holdMaxBytes.node},
       message + "), got " + valueText(*holdMaxBytes.node));
}

void Validator::checkShards() {
  const std::uint64_t total = config_.shards.total;
  const std::uint64_t perCluster = config_.shards.perCluster;
  if (shardsPerCluster.usable()) {
    if (shardsTotal.node == nullptr) {
      fail(Value{"shards.per_cluster", *shardsPerCluster.node},
           "requires shards.total, the number of shards to split among the clusters");
      return;
    }
    if (!shardsTotal.valid) {
      return;
    }
    const std::uint64_t needed = (total + perCluster - 1) / perCluster;
    const std::string split = "shards.total = " + std::to_string(total) +
                              " with shards.per_cluster = " + std::to_string(perCluster) +
                              " needs " + std::to_string(needed) + " clusters";
    if (needed > kMaxClusters) {
      const std::uint64_t least = (total + kMaxClusters - 1) / kMaxClusters;
      fail(Value{"shards.per_cluster", *shardsPerCluster.node},
           split + ", more than " + std::to_string(kMaxClusters) + "; expected at least " +
               std::to_string(least));
    } else if (clusters.node == nullptr) {
      config_.clusters = static_cast<std::uint32_t>(needed);
    } else if (clusters.valid && config_.clusters != needed) {
      fail(Value{"clusters", *clusters.node}, split + ", got " + std::to_string(config_.clusters));
    }
    return;
  }
  if (shardsPerCluster.node == nullptr && shardsTotal.usable() && clusters.valid &&
      total < config_.clusters) {
    fail(Value{"shards.total", *shardsTotal.node},
         "expected at least one shard per cluster (at least " + std::to_string(config_.clusters) +
             ", as clusters = " + std::to_string(config_.clusters) + "), got " +
             std::to_string(total));
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the file.

std::string fileTypeName(mode_t mode) {
  if (S_ISFIFO(mode)) {
    return "a FIFO";
  }
  if (S_ISCHR(mode)) {
    return "a character device";
  }
  if (S_ISBLK(mode)) {
    return "a block device";
  }
  if (S_ISSOCK(mode)) {
    return "a socket";
  }
  return "not a regular file";
}

// Reads at most kMaxFileSize bytes of a regular file; returns the message of a line-0 diagnostic
// on failure. O_NONBLOCK keeps open() from waiting for a writer when the path is a FIFO, and
// anything but a regular file is refused: a FIFO or a device such as /dev/zero could make the
// read wait or run forever. A file known to be too large is refused before any of it is read.
std::optional<std::string> readFile(const std::filesystem::path& path, std::string& text) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    return "cannot read: " + std::generic_category().message(errno);
  }
  std::optional<std::string> error;
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    error = "cannot read: " + std::generic_category().message(errno);
  } else if (S_ISDIR(status.st_mode)) {
    error = "cannot read: " + std::generic_category().message(EISDIR);
  } else if (!S_ISREG(status.st_mode)) {
    error = "cannot read: " + fileTypeName(status.st_mode) + ", not a regular file";
  } else if (static_cast<std::uint64_t>(status.st_size) > kMaxFileSize) {
    error = std::string(kFileTooLarge);
  }
  std::array<char, 64 * 1024> buffer{};
  while (!error) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      error = "cannot read: " + std::generic_category().message(errno);
      break;
    }
    if (n == 0) {
      break;
    }
    text.append(buffer.data(), static_cast<std::size_t>(n));
    // The file may grow while it is read.
    if (text.size() > kMaxFileSize) {
      error = std::string(kFileTooLarge);
    }
  }
  ::close(fd);
  return error;
}

// toml++ reports an integer too large for 64 bits after its last digit, in its own words. This
// names where the number starts, as it is written, what fits, and the fix; nullopt for any other
// error.
std::optional<Diagnostic> integerTooLarge(std::string_view text, std::string_view fileName,
                                          const toml::source_position& end,
                                          std::string_view description) {
  if (description.find("is not representable in 64 bits") == std::string_view::npos) {
    return std::nullopt;
  }
  std::size_t lineStart = 0;
  for (std::uint32_t line = 1; line < end.line; ++line) {
    lineStart = text.find('\n', lineStart);
    if (lineStart == std::string_view::npos) {
      return std::nullopt;
    }
    ++lineStart;
  }
  const std::string_view line = text.substr(lineStart, text.find('\n', lineStart) - lineStart);
  // toml++ counts columns in code points: the byte after the number is the one that starts the
  // column's code point (UTF-8 continuation bytes, 10xxxxxx, start none).
  const auto startsCodePoint = [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  };
  std::size_t stop = 0;
  for (std::uint32_t column = 1; stop < line.size(); ++stop) {
    if (startsCodePoint(line[stop]) && column++ == end.column) {
      break;
    }
  }
  std::size_t start = stop;
  const auto inNumber = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '+' || c == '-';
  };
  while (start > 0 && inNumber(line[start - 1])) {
    --start;
  }
  if (start == stop) {
    return std::nullopt;
  }
  const auto column = static_cast<std::uint32_t>(
      1 + std::count_if(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(start),
                        startsCodePoint));
  return Diagnostic{SourceLocation{std::string(fileName), end.line, column}, "",
                    "syntax error: integer " + std::string(line.substr(start, stop - start)) +
                        " does not fit in 64 bits (TOML integers run from -9223372036854775808 to "
                        "9223372036854775807); write a smaller number"};
}

}  // namespace

std::string Diagnostic::format() const {
  std::string text = where.file;
  if (where.line != 0) {
    text += ':' + std::to_string(where.line) + ':' + std::to_string(where.column);
  }
  text += ": ";
  if (!key.empty()) {
    text += key;
    text += ": ";
  }
  text += message;
  return text;
}

LoadResult parseConfig(std::string_view text, std::string_view fileName,
                       const std::filesystem::path& baseDirectory) {
  LoadResult result;
  // What toml++ cannot be trusted with (nesting that would overflow the stack, a table header
  // it asserts on) is refused before it sees the text.
  if (const TomlPrecheck precheck = precheckToml(text); !precheck.ok()) {
    result.errors.push_back(
        Diagnostic{SourceLocation{std::string(fileName), precheck.line, precheck.column}, "",
                   "syntax error: " + precheck.problem});
    return result;
  }
  toml::table root;
  try {
    root = toml::parse(text, fileName);
  } catch (const toml::parse_error& error) {
    const toml::source_position begin = error.source().begin;
    if (auto tooLarge = integerTooLarge(text, fileName, begin, error.description())) {
      result.errors.push_back(std::move(*tooLarge));
      return result;
    }
    result.errors.push_back(
        Diagnostic{SourceLocation{std::string(fileName), std::max<std::uint32_t>(begin.line, 1),
                                  std::max<std::uint32_t>(begin.column, 1)},
                   "", "syntax error: " + std::string(error.description())});
    return result;
  }

  Validator validator(fileName, baseDirectory);
  BotConfig& config = validator.config();
  config.sourceFile = std::filesystem::path(fileName);
  config.name = nameFromFile(fileName);
  config.workingDirectory = normalDirectory(baseDirectory);
  config.workingDirectoryAt = SourceLocation{std::string(fileName), 0, 0};
  config.commandAt = config.workingDirectoryAt;
  validator.walk(root, "");
  validator.finish();

  result.errors = validator.takeErrors();
  std::stable_sort(
      result.errors.begin(), result.errors.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
      });
  if (result.errors.empty()) {
    result.config = std::move(config);
  }
  return result;
}

LoadResult loadConfigFile(const std::filesystem::path& path) {
  const std::string fileName = path.string();
  const auto failure = [&](std::string message) {
    LoadResult result;
    result.errors.push_back(Diagnostic{SourceLocation{fileName, 0, 0}, "", std::move(message)});
    return result;
  };
  std::string text;
  if (auto error = readFile(path, text)) {
    return failure(std::move(*error));
  }
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) {
    return failure("cannot make the path absolute: " + ec.message());
  }
  return parseConfig(text, fileName, absolute.parent_path());
}

std::vector<std::uint32_t> shardsFor(const BotConfig& config, std::uint32_t clusterId) {
  const std::uint64_t total = config.shards.total;
  const std::uint64_t perCluster = config.shards.perCluster;
  const std::uint64_t clusters = config.clusters;
  if (total == 0 || clusterId >= clusters) {
    return {};
  }
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  if (perCluster != 0) {
    begin = std::min(total, clusterId * perCluster);
    end = std::min(total, begin + perCluster);
  } else {
    const std::uint64_t base = total / clusters;
    const std::uint64_t extra = total % clusters;
    begin = clusterId * base + std::min<std::uint64_t>(clusterId, extra);
    end = begin + base + (clusterId < extra ? 1 : 0);
  }
  std::vector<std::uint32_t> shards;
  shards.reserve(static_cast<std::size_t>(end - begin));
  for (std::uint64_t shard = begin; shard < end; ++shard) {
    shards.push_back(static_cast<std::uint32_t>(shard));
  }
  return shards;
}

std::string quoteForMessage(std::string_view text) {
  return quote(text);
}

std::string quoteWholeForMessage(std::string_view text) {
  return quote(text, kMaxPathBytes);
}

const std::vector<KeyInfo>& knownKeys() {
  static const std::vector<KeyInfo> keys = [] {
    std::vector<KeyInfo> infos;
    for (const Rule& rule : kRules) {
      infos.push_back(rule.info);
    }
    return infos;
  }();
  return keys;
}

}  // namespace clustervisor::config
