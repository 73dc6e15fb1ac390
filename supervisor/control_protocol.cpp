// SPDX-License-Identifier: MIT
#include "control_protocol.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include "clustervisor/config/utf8.hpp"

namespace clustervisor::control {
namespace {

namespace json = boost::json;

// A valid request is an object holding at most one array; the bound only has to stop a
// hostile "[[[[..." from costing more than it must.
constexpr std::size_t kMaxDepth = 8;

// Quoted client text (a command or field name) is cut to this many bytes so that an error
// reply stays one short line whatever the client sent.
constexpr std::size_t kMaxQuotedBytes = 40;

constexpr std::string_view kExpectedCommands = "(expected status, restart, stop or reload)";
constexpr std::string_view kExpectedClusterId = "a cluster id from 0 to 4294967295";

// Length of the well-formed UTF-8 sequence starting at text[i], or 0 if there is none there.
// Follows RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
std::size_t utf8SequenceLength(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) {
    return 1;
  }
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    low = lead == 0xE0 ? 0xA0 : 0x80;
    high = lead == 0xED ? 0x9F : 0xBF;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    low = lead == 0xF0 ? 0x90 : 0x80;
    high = lead == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (text.size() - i < length || byte(i + 1) < low || byte(i + 1) > high) {
    return 0;
  }
  for (std::size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) {
      return 0;
    }
  }
  return length;
}

// Boost.JSON serializes strings byte for byte, so invalid UTF-8 in an error message would make
// the whole reply unparseable for the client; each bad byte becomes U+FFFD instead.
std::string validUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = utf8SequenceLength(text, i);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

// Client text as a JSON string literal, so quotes, control characters and "\n" show escaped,
// cut short on a character boundary. The parser has already checked that `text` is UTF-8.
std::string quote(std::string_view text) {
  const bool cut = text.size() > kMaxQuotedBytes;
  text = config::utf8Prefix(text, kMaxQuotedBytes);
  std::string quoted = json::serialize(json::string(text));
  if (cut) {
    quoted.insert(quoted.size() - 1, "...");
  }
  return quoted;
}

std::string formatDouble(double number) {
  // Boost.JSON reads a literal beyond the range of double, such as 1e999, as infinity.
  if (!std::isfinite(number)) {
    return "an out-of-range number";
  }
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, number);
  std::string text(buffer, ec == std::errc() ? end : buffer);
  // Shortest form prints 2.0 as "2"; keep the point so the reader sees why it is not an id.
  if (text.find_first_of(".en") == std::string::npos) {
    text += ".0";
  }
  return text;
}

// How a value appears after "not": scalars as themselves, strings and containers by kind
// (their content may be long, and the kind is what is wrong).
std::string describe(const json::value& value) {
  switch (value.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return value.get_bool() ? "true" : "false";
    case json::kind::int64:
      return std::to_string(value.get_int64());
    case json::kind::uint64:
      return std::to_string(value.get_uint64());
    case json::kind::double_:
      return formatDouble(value.get_double());
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "an unknown value";
}

ParseResult fail(std::string message) {
  return ParseResult{std::move(message)};
}

// The first field, in the order sent, that the request does not take; null if there is none.
const json::key_value_pair* firstUnknownField(const json::object& object,
                                              std::string_view command) {
  for (const auto& field : object) {
    const std::string_view key = field.key();
    if (key == "version" || key == "command" || key == "expires_ms") {
      continue;
    }
    if (command == "restart" && (key == "all" || key == "clusters" || key == "rolling" ||
                                 key == "batch" || key == "delay_ms")) {
      continue;
    }
    if (command == "reload" && key == "rolling") {
      continue;
    }
    return &field;
  }
  return nullptr;
}

// "rolling": absent or a boolean. Sets `error` when it is something else.
bool parseRolling(const json::object& object, std::string& error) {
  const json::value* rolling = object.if_contains("rolling");
  if (rolling == nullptr) {
    return false;
  }
  if (!rolling->is_bool()) {
    error = R"("rolling" must be true or false, not )" + describe(*rolling);
    return false;
  }
  return rolling->get_bool();
}

// A whole number in [min, max], as JSON writes integers.
std::optional<std::int64_t> integerIn(const json::value& value, std::int64_t min,
                                      std::int64_t max) {
  if (!value.is_int64() || value.get_int64() < min || value.get_int64() > max) {
    return std::nullopt;
  }
  return value.get_int64();
}

// An optional setting of a rolling restart ("batch", "delay_ms"): absent, or an integer in
// [min, max] when the request is rolling. Sets `error` (the first one only) otherwise.
std::optional<std::int64_t> rollingSetting(const json::object& object, std::string_view key,
                                           bool rolling, std::int64_t min, std::int64_t max,
                                           std::string& error) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr || !error.empty()) {
    return std::nullopt;
  }
  const std::string quoted = "\"" + std::string(key) + "\"";
  if (!rolling) {
    error = quoted + R"( is only for a rolling restart ("rolling": true))";
    return std::nullopt;
  }
  const auto n = integerIn(*value, min, max);
  if (!n) {
    error = quoted + " must be an integer from " + std::to_string(min) + " to " +
            std::to_string(max) + ", not " + describe(*value);
  }
  return n;
}

ParseResult parseTargets(const json::object& object);

ParseResult parseRestart(const json::object& object) {
  std::string error;
  const bool rolling = parseRolling(object, error);
  if (!error.empty()) {
    return fail(error);
  }
  const auto batch = rollingSetting(object, "batch", rolling, 1, kMaxBatch, error);
  const auto delay = rollingSetting(object, "delay_ms", rolling, 0, kMaxDelayMs, error);
  if (!error.empty()) {
    return fail(error);
  }
  auto result = parseTargets(object);
  if (result.ok()) {
    auto& restart = std::get<RestartRequest>(std::get<Request>(result.value));
    restart.rolling = rolling;
    if (batch) {
      restart.batch = static_cast<std::uint32_t>(*batch);
    }
    if (delay) {
      restart.delay = std::chrono::milliseconds(*delay);
    }
  }
  return result;
}

ParseResult parseReload(const json::object& object) {
  std::string error;
  const bool rolling = parseRolling(object, error);
  if (!error.empty()) {
    return fail(error);
  }
  ReloadRequest reload;
  reload.rolling = rolling;
  return ParseResult{Request{reload}};
}

ParseResult parseTargets(const json::object& object) {
  const json::value* all = object.if_contains("all");
  const json::value* clusters = object.if_contains("clusters");
  if (all != nullptr && clusters != nullptr) {
    return fail(R"(a restart request takes "all" or "clusters", not both)");
  }
  if (all == nullptr && clusters == nullptr) {
    return fail(R"(a restart request needs "clusters": [ids] or "all": true)");
  }
  if (all != nullptr) {
    if (!all->is_bool() || !all->get_bool()) {
      return fail(R"("all" must be true, not )" + describe(*all) +
                  R"( (to restart some clusters, give "clusters" instead))");
    }
    RestartRequest restart;
    restart.all = true;
    return ParseResult{Request{std::move(restart)}};
  }
  if (!clusters->is_array()) {
    return fail(R"("clusters" must be an array of cluster ids, not )" + describe(*clusters));
  }
  const json::array& ids = clusters->get_array();
  if (ids.empty()) {
    return fail(R"("clusters" must not be empty (to restart every cluster, give "all": true))");
  }
  RestartRequest restart;
  restart.clusters.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const json::value& id = ids[i];
    constexpr auto kMaxId = std::numeric_limits<std::uint32_t>::max();
    // Integers only, as JSON writes them: 2.0 and 1e2 arrive as doubles, and an id that went
    // through floating point may have been rounded on the way.
    if (!id.is_int64() || id.get_int64() < 0 || id.get_int64() > kMaxId) {
      return fail(R"("clusters"[)" + std::to_string(i) + "] must be " +
                  std::string(kExpectedClusterId) + ", not " + describe(id));
    }
    restart.clusters.push_back(static_cast<std::uint32_t>(id.get_int64()));
  }
  // Duplicates are refused rather than merged: restarting a cluster twice in one request is
  // almost certainly a typo for another id, and the client should hear about it.
  std::vector<std::uint32_t> sorted = restart.clusters;
  std::sort(sorted.begin(), sorted.end());
  const auto duplicate = std::adjacent_find(sorted.begin(), sorted.end());
  if (duplicate != sorted.end()) {
    return fail(R"("clusters" lists cluster )" + std::to_string(*duplicate) + " twice");
  }
  return ParseResult{Request{std::move(restart)}};
}

std::string encodeLine(const json::object& object) {
  std::string line = json::serialize(object);
  line += '\n';
  return line;
}

}  // namespace

namespace {

// Finds a name given twice in one object of a JSON text (which json::parse() would take silently,
// the last one counting). Used on text that json::parse() has accepted.
class DuplicateNames {
 public:
  // The limits and callbacks json::basic_parser requires of its handler, by these names.
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  // The first such name, or nothing.
  static std::optional<std::string> in(std::string_view text) {
    json::basic_parser<DuplicateNames> parser(json::parse_options{});
    boost::system::error_code ec;
    parser.write_some(false, text.data(), text.size(), ec);
    return parser.handler().duplicate_;
  }

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    names_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    names_.pop_back();
    return true;
  }
  bool on_array_begin(boost::system::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_key_part(json::string_view part, std::size_t, boost::system::error_code&) {
    key_.append(part.data(), part.size());
    return true;
  }
  bool on_key(json::string_view part, std::size_t, boost::system::error_code& ec) {
    key_.append(part.data(), part.size());
    if (!names_.back().insert(key_).second && !duplicate_) {
      duplicate_ = key_;
      ec = json::error::syntax;  // stop here
      return false;
    }
    key_.clear();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(json::string_view, boost::system::error_code&) { return true; }

 private:
  std::vector<std::set<std::string, std::less<>>> names_;
  std::string key_;
  std::optional<std::string> duplicate_;
};

}  // namespace

std::string_view commandName(const Request& request) {
  return std::visit(
      [](const auto& r) -> std::string_view {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, StatusRequest>) {
          return "status";
        } else if constexpr (std::is_same_v<T, StopRequest>) {
          return "stop";
        } else if constexpr (std::is_same_v<T, ReloadRequest>) {
          return "reload";
        } else {
          return "restart";
        }
      },
      request);
}

ParseResult parseRequest(std::string_view line) {
  if (line.size() > kMaxRequestBytes) {
    return fail("request larger than " + std::to_string(kMaxRequestBytes) + " bytes");
  }
  json::parse_options options;
  options.max_depth = kMaxDepth;
  boost::system::error_code ec;
  const json::value document = json::parse(line, ec, {}, options);
  if (ec) {
    return fail("request is not valid JSON: " + ec.message());
  }
  if (!document.is_object()) {
    return fail("request must be a JSON object");
  }
  if (const auto twice = DuplicateNames::in(line)) {
    return fail(quote(*twice) + " given twice in one object");
  }
  const json::object& object = document.get_object();

  const json::value* version = object.if_contains("version");
  if (version == nullptr) {
    return fail(R"(missing "version" (this supervisor speaks 1))");
  }
  if (!version->is_int64() && !version->is_uint64()) {
    return fail(R"("version" must be an integer, not )" + describe(*version) +
                " (this supervisor speaks 1)");
  }
  if (!version->is_int64() || version->get_int64() != kVersion) {
    return fail("unsupported control protocol version " + describe(*version) +
                " (this supervisor speaks 1)");
  }

  const json::value* command = object.if_contains("command");
  if (command == nullptr) {
    return fail(R"(missing "command" )" + std::string(kExpectedCommands));
  }
  if (!command->is_string()) {
    return fail(R"("command" must be a string, not )" + describe(*command) + " " +
                std::string(kExpectedCommands));
  }
  const std::string_view name = command->get_string();
  if (name != "status" && name != "stop" && name != "restart" && name != "reload") {
    return fail("unknown command " + quote(name) + " " + std::string(kExpectedCommands));
  }
  if (const auto* unknown = firstUnknownField(object, name); unknown != nullptr) {
    return fail("unknown field " + quote(unknown->key()) + " in a " + std::string(name) +
                " request");
  }
  std::optional<std::chrono::system_clock::time_point> expires;
  if (const json::value* value = object.if_contains("expires_ms")) {
    if (!value->is_int64() || value->get_int64() < 0) {
      return fail(R"("expires_ms" must be a time in milliseconds since 1970 (an integer >= 0), )"
                  "not " +
                  describe(*value));
    }
    expires = std::chrono::system_clock::time_point(std::chrono::milliseconds(value->get_int64()));
  }
  ParseResult result = name == "status"   ? ParseResult{Request{StatusRequest{}}}
                       : name == "stop"   ? ParseResult{Request{StopRequest{}}}
                       : name == "reload" ? parseReload(object)
                                          : parseRestart(object);
  result.expires = expires;
  return result;
}

std::string encodeRequest(const Request& request,
                          std::optional<std::chrono::system_clock::time_point> expires) {
  json::object object;
  object["version"] = kVersion;
  object["command"] = commandName(request);
  if (expires) {
    object["expires_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(expires->time_since_epoch()).count();
  }
  if (const auto* restart = std::get_if<RestartRequest>(&request)) {
    if (restart->all) {
      object["all"] = true;
    } else {
      json::array ids;
      ids.reserve(restart->clusters.size());
      for (const std::uint32_t id : restart->clusters) {
        ids.emplace_back(id);
      }
      object["clusters"] = std::move(ids);
    }
    if (restart->rolling) {
      object["rolling"] = true;
      if (restart->batch) {
        object["batch"] = *restart->batch;
      }
      if (restart->delay) {
        object["delay_ms"] = restart->delay->count();
      }
    }
  }
  if (const auto* reload = std::get_if<ReloadRequest>(&request); reload && reload->rolling) {
    object["rolling"] = true;
  }
  return encodeLine(object);
}

std::string encodeSuccess(boost::json::object result) {
  json::object object;
  object["version"] = kVersion;
  object["ok"] = true;
  object["result"] = std::move(result);
  return encodeLine(object);
}

std::string encodeError(std::string_view message, boost::json::object result) {
  json::object object;
  object["version"] = kVersion;
  object["ok"] = false;
  object["error"] = validUtf8(message);
  if (!result.empty()) {
    object["result"] = std::move(result);
  }
  return encodeLine(object);
}

}  // namespace clustervisor::control
