// SPDX-License-Identifier: MIT
//
// The control protocol, version 1: what `clustervisor status|restart|stop|reload` and scripts send
// to a running supervisor over its control socket, and what it answers. Documented in
// clustervisor(1) (CONTROL SOCKET); keep the two in step.
//
// One request per connection: a JSON object on one line (at most kMaxRequestBytes, ended by
// "\n"), answered by one JSON object on one line, after which the supervisor closes the
// connection.
//
//   {"version":1,"command":"status"}
//   {"version":1,"command":"restart","clusters":[0,2]}
//   {"version":1,"command":"restart","all":true}
//   {"version":1,"command":"restart","all":true,"rolling":true,"batch":2,"delay_ms":5000}
//   {"version":1,"command":"stop"}
//   {"version":1,"command":"reload"}
//   {"version":1,"command":"reload","rolling":true}
//   {"version":1,"command":"stop","expires_ms":1795000000000}  (any command: see expires)
//
//   {"version":1,"ok":true,"result":{...}}
//   {"version":1,"ok":false,"error":"cluster 9 does not exist (clusters are 0..3)"}
//   {"version":1,"ok":false,"error":"the request expired 1.2s before ...; nothing was done"}
//   {"version":1,"ok":false,"error":"rolling restart halted: ...","result":{...}}  (a reload
//       applied before its rolling restart halted, or before the supervisor began to stop)
//
// Pure: parseRequest() takes the bytes of one line and returns a request or the error text the
// reply carries; it never throws, whatever the input.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>

namespace clustervisor::control {

inline constexpr int kVersion = 1;
inline constexpr std::size_t kMaxRequestBytes = 64 * 1024;

struct StatusRequest {};
struct StopRequest {};
struct RestartRequest {
  bool all = false;
  std::vector<std::uint32_t> clusters;  // when !all: distinct, in the order given
  // A rolling restart: `batch` clusters at a time, the next batch once the new workers are ready
  // and `delay` has passed. Unset batch/delay: rolling.batch / rolling.delay from bot.toml.
  bool rolling = false;
  std::optional<std::uint32_t> batch;              // 1..kMaxBatch; only with rolling
  std::optional<std::chrono::milliseconds> delay;  // "delay_ms", 0..kMaxDelayMs; only with rolling
};
// Re-read the config file and apply it. With `rolling`, changes that need new workers are applied
// by a rolling restart of the clusters that stay; without it they are reported as needing one.
struct ReloadRequest {
  bool rolling = false;
};

inline constexpr std::uint32_t kMaxBatch = 4096;  // the most clusters a bot has
inline constexpr std::int64_t kMaxDelayMs = 24ll * 3600 * 1000;

using Request = std::variant<StatusRequest, StopRequest, RestartRequest, ReloadRequest>;

// "status", "stop", "restart" or "reload".
std::string_view commandName(const Request& request);

struct ParseResult {
  std::variant<Request, std::string> value;  // the request, or what is wrong with it
  // "expires_ms" (any command): not to be carried out once the wall clock is past it. The CLI
  // sets it to before its own wait ends, so a request it gave up on is not carried out later
  // (by a supervisor that was stopped or stuck while it waited).
  std::optional<std::chrono::system_clock::time_point> expires = std::nullopt;
  bool ok() const { return value.index() == 0; }
  const Request& request() const { return std::get<0>(value); }
  const std::string& error() const { return std::get<1>(value); }
};

// `line` is the request without its "\n". Reports the first problem found, checking in this
// order: size, JSON syntax (more than 8 levels of nesting is refused), object, "version",
// "command", fields the command does not take (in the order sent), then the restart rules. Of
// duplicate keys the last one counts (Boost.JSON's behaviour). Error text is one short line, lower
// case, naming the field; client strings in it are quoted JSON-style and cut at 40 bytes.
ParseResult parseRequest(std::string_view line);

// The request as a client sends it (one line, "\n" included). A RestartRequest with `all` set is
// sent as "all": true and its `clusters` are ignored.
std::string encodeRequest(const Request& request,
                          std::optional<std::chrono::system_clock::time_point> expires = {});

// Replies, one line each, "\n" included. Bytes of `message` that are not UTF-8 become U+FFFD so
// the reply always parses.
std::string encodeSuccess(boost::json::object result);
// `result`: what was done before the error, when something was (a reload applied before the
// rolling restart it asked for halted); sent only when not empty.
std::string encodeError(std::string_view message, boost::json::object result = {});

}  // namespace clustervisor::control
