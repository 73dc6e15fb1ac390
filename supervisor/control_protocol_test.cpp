// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "control_protocol.hpp"

namespace control = clustervisor::control;
using control::parseRequest;
using control::Request;
using control::RestartRequest;

namespace {

// A rendering written independently of encodeRequest, so that a round trip through the codec
// is checked against something the codec did not produce.
std::string show(const Request& request) {
  if (std::holds_alternative<control::StatusRequest>(request)) {
    return "status";
  }
  if (std::holds_alternative<control::StopRequest>(request)) {
    return "stop";
  }
  if (const auto* reload = std::get_if<control::ReloadRequest>(&request)) {
    return reload->rolling ? "reload rolling" : "reload";
  }
  const auto& restart = std::get<RestartRequest>(request);
  std::string text = "restart";
  if (restart.all) {
    text += " all";
  }
  for (const std::uint32_t id : restart.clusters) {
    text += " " + std::to_string(id);
  }
  if (restart.rolling) {
    text += " rolling";
    if (restart.batch) {
      text += " batch " + std::to_string(*restart.batch);
    }
    if (restart.delay) {
      text += " delay " + std::to_string(restart.delay->count()) + "ms";
    }
  }
  return text;
}

RestartRequest restartOf(std::vector<std::uint32_t> clusters) {
  RestartRequest r;
  r.all = clusters.empty();
  r.clusters = std::move(clusters);
  return r;
}

RestartRequest rollingOf(std::vector<std::uint32_t> clusters, std::optional<std::uint32_t> batch,
                         std::optional<std::chrono::milliseconds> delay) {
  RestartRequest r = restartOf(std::move(clusters));
  r.rolling = true;
  r.batch = batch;
  r.delay = delay;
  return r;
}

// What a test prints for a parse: the request or the error, marked so the two cannot be confused.
std::string outcome(const control::ParseResult& result) {
  return result.ok() ? "ok: " + show(result.request()) : "error: " + result.error();
}

std::string outcome(std::string_view line) {
  try {
    return outcome(parseRequest(line));
  } catch (const std::exception& e) {
    return std::string("threw: ") + e.what();
  } catch (...) {
    return "threw";
  }
}

std::string withoutNewline(std::string line) {
  BOOST_REQUIRE(!line.empty() && line.back() == '\n');
  line.pop_back();
  return line;
}

// What every error must look like, whatever the input: one short line that an error reply
// carries intact.
void checkErrorIsReplyable(const std::string& error) {
  BOOST_TEST(!error.empty());
  BOOST_TEST(error.size() <= 160u);
  BOOST_TEST(error.find('\n') == std::string::npos);
  BOOST_TEST(error.back() != '.');
  const std::string reply = control::encodeError(error);
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(withoutNewline(reply), ec);
  BOOST_REQUIRE_MESSAGE(!ec, "reply for \"" << error << "\" is not JSON: " << ec.message());
  BOOST_TEST(parsed.at("error").as_string() == error);
}

std::string restartWith(std::string_view fields) {
  return R"({"version":1,"command":"restart",)" + std::string(fields) + "}";
}

struct ErrorCase {
  std::string input;
  std::string error;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(control_protocol)

BOOST_AUTO_TEST_CASE(encodes_each_request_as_one_compact_line) {
  BOOST_TEST(control::encodeRequest(control::StatusRequest{}) ==
             "{\"version\":1,\"command\":\"status\"}\n");
  BOOST_TEST(control::encodeRequest(control::StopRequest{}) ==
             "{\"version\":1,\"command\":\"stop\"}\n");
  BOOST_TEST(control::encodeRequest(restartOf({0, 2})) ==
             "{\"version\":1,\"command\":\"restart\",\"clusters\":[0,2]}\n");
  BOOST_TEST(control::encodeRequest(restartOf({})) ==
             "{\"version\":1,\"command\":\"restart\",\"all\":true}\n");
  BOOST_TEST(control::encodeRequest(rollingOf({}, 2, std::chrono::milliseconds(500))) ==
             "{\"version\":1,\"command\":\"restart\",\"all\":true,\"rolling\":true,"
             "\"batch\":2,\"delay_ms\":500}\n");
  BOOST_TEST(control::encodeRequest(control::ReloadRequest{}) ==
             "{\"version\":1,\"command\":\"reload\"}\n");
  BOOST_TEST(control::encodeRequest(control::ReloadRequest{true}) ==
             "{\"version\":1,\"command\":\"reload\",\"rolling\":true}\n");
}

BOOST_AUTO_TEST_CASE(any_request_may_carry_the_time_it_expires_at) {
  const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795000000123));
  BOOST_TEST(control::encodeRequest(control::StopRequest{}, at) ==
             "{\"version\":1,\"command\":\"stop\",\"expires_ms\":1795000000123}\n");
  for (const Request& request :
       std::vector<Request>{control::StatusRequest{}, control::StopRequest{}, restartOf({1}),
                            control::ReloadRequest{true}}) {
    const auto parsed = control::parseRequest(withoutNewline(control::encodeRequest(request, at)));
    BOOST_TEST_REQUIRE(parsed.ok(), show(request));
    BOOST_TEST(show(parsed.request()) == show(request));
    BOOST_TEST((parsed.expires == at), show(request));
  }
  BOOST_TEST(!control::parseRequest(R"({"version":1,"command":"stop"})").expires.has_value());
  for (const char* bad : {R"({"version":1,"command":"stop","expires_ms":-1})",
                          R"({"version":1,"command":"stop","expires_ms":1.5})",
                          R"({"version":1,"command":"stop","expires_ms":"soon"})"}) {
    const auto parsed = control::parseRequest(bad);
    BOOST_TEST_REQUIRE(!parsed.ok(), bad);
    BOOST_TEST(
        parsed.error().starts_with(
            R"("expires_ms" must be a time in milliseconds since 1970 (an integer >= 0), not )"),
        parsed.error());
  }
}

BOOST_AUTO_TEST_CASE(every_request_shape_round_trips_through_encode_and_parse) {
  const std::vector<Request> requests = {
      control::StatusRequest{},
      control::StopRequest{},
      restartOf({}),
      restartOf({0}),
      restartOf({0, 2}),
      restartOf({7, 3, 5}),  // order kept, not sorted
      restartOf({4294967295u}),
      rollingOf({}, std::nullopt, std::nullopt),
      rollingOf({1, 0}, 1, std::nullopt),
      rollingOf({}, std::nullopt, std::chrono::milliseconds(0)),
      rollingOf({}, control::kMaxBatch, std::chrono::milliseconds(control::kMaxDelayMs)),
      control::ReloadRequest{},
      control::ReloadRequest{true},
  };
  for (const Request& request : requests) {
    BOOST_TEST_CONTEXT(show(request)) {
      BOOST_TEST(outcome(withoutNewline(control::encodeRequest(request))) ==
                 "ok: " + show(request));
    }
  }
}

BOOST_AUTO_TEST_CASE(accepts_requests_as_humans_and_scripts_write_them) {
  // Whitespace anywhere JSON allows it (a CR from a CRLF client included), fields in any order,
  // and escapes inside strings: the line is already split, so an escaped "\n" is just text.
  BOOST_TEST(outcome(" { \"command\" : \"stop\" , \"version\" : 1 } \r") == "ok: stop");
  BOOST_TEST(outcome(R"({"version":1,"command":"\u0073tatus"})") == "ok: status");
  BOOST_TEST(outcome(R"({"clusters":[3],"command":"restart","version":1})") == "ok: restart 3");
}

BOOST_AUTO_TEST_CASE(rejects_malformed_requests_with_exact_messages) {
  const std::vector<ErrorCase> cases = {
      // The document itself.
      {"", "request is not valid JSON: incomplete JSON"},
      {"status", "request is not valid JSON: syntax error"},
      {R"({"version":1,"command":"stop")", "request is not valid JSON: incomplete JSON"},
      {R"({"version":1,"command":"stop"} x)", "request is not valid JSON: extra data"},
      {R"({"version":1,"command":"stop"}{"version":1,"command":"stop"})",
       "request is not valid JSON: extra data"},
      {R"([{"version":1,"command":"stop"}])", "request must be a JSON object"},
      {R"("status")", "request must be a JSON object"},
      // A name given twice, at any depth (json::parse() would keep the last one).
      {R"({"version":1,"command":"status","command":"stop"})",
       R"("command" given twice in one object)"},
      {R"({"version":1,"version":1,"command":"status"})", R"("version" given twice in one object)"},
      {R"({"version":1,"command":"status","x":{"a":1,"a":2}})", R"("a" given twice in one object)"},
      {R"({"version":1,"command":"status","x":[{"a":1},{"a":2}],"y":{"a":1}})",
       R"(unknown field "x" in a status request)"},  // the same name in two objects is fine
      {"1", "request must be a JSON object"},
      {"null", "request must be a JSON object"},
      // version
      {R"({"command":"status"})", R"(missing "version" (this supervisor speaks 1))"},
      {R"({"version":2,"command":"status"})",
       "unsupported control protocol version 2 (this supervisor speaks 1)"},
      {R"({"version":0,"command":"status"})",
       "unsupported control protocol version 0 (this supervisor speaks 1)"},
      {R"({"version":-1,"command":"status"})",
       "unsupported control protocol version -1 (this supervisor speaks 1)"},
      {R"({"version":18446744073709551615,"command":"status"})",
       "unsupported control protocol version 18446744073709551615 (this supervisor speaks 1)"},
      {R"({"version":"1","command":"status"})",
       R"("version" must be an integer, not a string (this supervisor speaks 1))"},
      {R"({"version":1.0,"command":"status"})",
       R"("version" must be an integer, not 1.0 (this supervisor speaks 1))"},
      {R"({"version":null,"command":"status"})",
       R"("version" must be an integer, not null (this supervisor speaks 1))"},
      {R"({"version":[1],"command":"status"})",
       R"("version" must be an integer, not an array (this supervisor speaks 1))"},
      // command
      {R"({"version":1})", R"(missing "command" (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":7})",
       R"("command" must be a string, not 7 (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":{"name":"stop"}})",
       R"("command" must be a string, not an object (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":"frobnicate"})",
       R"(unknown command "frobnicate" (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":"Status"})",
       R"(unknown command "Status" (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":""})",
       R"(unknown command "" (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":"sta\ntus"})",
       R"(unknown command "sta\ntus" (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":"a\"b"})",
       R"(unknown command "a\"b" (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":"\u0000"})",
       R"(unknown command "\u0000" (expected status, restart, stop or reload))"},
      {R"({"version":1,"command":")" + std::string(100, 'x') + R"("})",
       R"(unknown command ")" + std::string(40, 'x') +
           R"(..." (expected status, restart, stop or reload))"},
      // Cut on a character boundary: "é" is two bytes and would straddle byte 40.
      {R"({"version":1,"command":")" + std::string(39, 'x') + "\xC3\xA9\xC3\xA9\"}",
       R"(unknown command ")" + std::string(39, 'x') +
           R"(..." (expected status, restart, stop or reload))"},
      // Fields a command does not take.
      {R"({"version":1,"command":"status","x":1})", R"(unknown field "x" in a status request)"},
      {R"({"version":1,"command":"stop","all":true})", R"(unknown field "all" in a stop request)"},
      {R"({"version":1,"command":"status","clusters":[1]})",
       R"(unknown field "clusters" in a status request)"},
      {restartWith(R"("all":true,"force":true)"), R"(unknown field "force" in a restart request)"},
      {restartWith(R"("Clusters":[1])"), R"(unknown field "Clusters" in a restart request)"},
      {R"({"version":1,"command":"stop","a\nb":1})", R"(unknown field "a\nb" in a stop request)"},
      // restart: all or clusters.
      {R"({"version":1,"command":"restart"})",
       R"(a restart request needs "clusters": [ids] or "all": true)"},
      {restartWith(R"("all":true,"clusters":[1])"),
       R"(a restart request takes "all" or "clusters", not both)"},
      {restartWith(R"("all":false,"clusters":[1])"),
       R"(a restart request takes "all" or "clusters", not both)"},
      {restartWith(R"("all":false)"),
       R"("all" must be true, not false (to restart some clusters, give "clusters" instead))"},
      {restartWith(R"("all":"yes")"),
       R"("all" must be true, not a string (to restart some clusters, give "clusters" instead))"},
      {restartWith(R"("all":1)"),
       R"("all" must be true, not 1 (to restart some clusters, give "clusters" instead))"},
      {restartWith(R"("clusters":1)"), R"("clusters" must be an array of cluster ids, not 1)"},
      {restartWith(R"("clusters":"0,2")"),
       R"("clusters" must be an array of cluster ids, not a string)"},
      {restartWith(R"("clusters":null)"),
       R"("clusters" must be an array of cluster ids, not null)"},
      {restartWith(R"("clusters":[])"),
       R"("clusters" must not be empty (to restart every cluster, give "all": true))"},
      {restartWith(R"("clusters":[-1])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not -1)"},
      {restartWith(R"("clusters":[0,-9223372036854775808])"),
       R"("clusters"[1] must be a cluster id from 0 to 4294967295, not -9223372036854775808)"},
      {restartWith(R"("clusters":[4294967296])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not 4294967296)"},
      {restartWith(R"("clusters":[18446744073709551615])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not 18446744073709551615)"},
      {restartWith(R"("clusters":[18446744073709551616])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not 18446744073709551616.0)"},
      {restartWith(R"("clusters":[1e999])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not an out-of-range number)"},
      {restartWith(R"("clusters":[0,1.5])"),
       R"("clusters"[1] must be a cluster id from 0 to 4294967295, not 1.5)"},
      {restartWith(R"("clusters":[2.0])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not 2.0)"},
      {restartWith(R"("clusters":[1e2])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not 100.0)"},
      {restartWith(R"("clusters":["1"])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not a string)"},
      {restartWith(R"("clusters":[true])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not true)"},
      {restartWith(R"("clusters":[[1]])"),
       R"("clusters"[0] must be a cluster id from 0 to 4294967295, not an array)"},
      {restartWith(R"("clusters":[0,1,2,1])"), R"("clusters" lists cluster 1 twice)"},
      {restartWith(R"("clusters":[5,5])"), R"("clusters" lists cluster 5 twice)"},
      // rolling restarts
      {restartWith(R"("all":true,"rolling":1)"), R"("rolling" must be true or false, not 1)"},
      {restartWith(R"("all":true,"rolling":"yes")"),
       R"("rolling" must be true or false, not a string)"},
      {restartWith(R"("all":true,"batch":2)"),
       R"("batch" is only for a rolling restart ("rolling": true))"},
      {restartWith(R"("all":true,"rolling":false,"delay_ms":5)"),
       R"("delay_ms" is only for a rolling restart ("rolling": true))"},
      {restartWith(R"("all":true,"rolling":true,"batch":0)"),
       R"("batch" must be an integer from 1 to 4096, not 0)"},
      {restartWith(R"("all":true,"rolling":true,"batch":4097)"),
       R"("batch" must be an integer from 1 to 4096, not 4097)"},
      {restartWith(R"("all":true,"rolling":true,"batch":1.5)"),
       R"("batch" must be an integer from 1 to 4096, not 1.5)"},
      {restartWith(R"("all":true,"rolling":true,"delay_ms":-1)"),
       R"("delay_ms" must be an integer from 0 to 86400000, not -1)"},
      {restartWith(R"("all":true,"rolling":true,"delay_ms":86400001)"),
       R"("delay_ms" must be an integer from 0 to 86400000, not 86400001)"},
      {restartWith(R"("rolling":true)"),
       R"(a restart request needs "clusters": [ids] or "all": true)"},
      // reload
      {R"({"version":1,"command":"reload","rolling":null})",
       R"("rolling" must be true or false, not null)"},
      {R"({"version":1,"command":"reload","all":true})",
       R"(unknown field "all" in a reload request)"},
  };
  for (const ErrorCase& c : cases) {
    BOOST_TEST_CONTEXT("input " << c.input) {
      BOOST_TEST(outcome(c.input) == "error: " + c.error);
      checkErrorIsReplyable(c.error);
    }
  }
}

BOOST_AUTO_TEST_CASE(reports_the_first_problem_in_a_fixed_order) {
  // version, then command, then fields in the order sent, then the restart rules.
  BOOST_TEST(outcome(R"({"command":"frobnicate","x":1})") ==
             R"(error: missing "version" (this supervisor speaks 1))");
  BOOST_TEST(outcome(R"({"version":1,"command":"frobnicate","x":1})") ==
             R"(error: unknown command "frobnicate" (expected status, restart, stop or reload))");
  BOOST_TEST(outcome(R"({"version":1,"command":"restart","y":1,"x":2,"all":false})") ==
             R"(error: unknown field "y" in a restart request)");
}

BOOST_AUTO_TEST_CASE(negative_zero_is_cluster_zero) {
  // Boost.JSON reads the JSON integer -0 as 0, not as a negative id.
  BOOST_TEST(outcome(restartWith(R"("clusters":[-0])")) == "ok: restart 0");
}

BOOST_AUTO_TEST_CASE(accepts_a_request_of_exactly_the_size_limit) {
  std::string line = R"({"version":1,"command":"status"})";
  line.append(control::kMaxRequestBytes - line.size(), ' ');
  BOOST_TEST(outcome(line) == "ok: status");
}

BOOST_AUTO_TEST_CASE(rejects_a_request_one_byte_over_the_size_limit) {
  std::string line = R"({"version":1,"command":"status"})";
  line.append(control::kMaxRequestBytes + 1 - line.size(), ' ');
  BOOST_TEST(outcome(line) == "error: request larger than 65536 bytes");
}

BOOST_AUTO_TEST_CASE(rejects_deep_nesting_without_recursing) {
  BOOST_TEST(outcome(std::string(10000, '[')) == "error: request is not valid JSON: too deep");
  std::string objects;
  for (int i = 0; i < 5000; ++i) {
    objects += R"({"a":)";
  }
  BOOST_TEST(outcome(objects) == "error: request is not valid JSON: too deep");
  // Eight levels are parsed (and then refused for what they say); nine are not parsed at all.
  BOOST_TEST(outcome(R"({"version":1,"command":"stop","x":[[[[[[[1]]]]]]]})") ==
             R"(error: unknown field "x" in a stop request)");
  BOOST_TEST(outcome(R"({"version":1,"command":"stop","x":[[[[[[[[1]]]]]]]]})") ==
             "error: request is not valid JSON: too deep");
}

BOOST_AUTO_TEST_CASE(rejects_invalid_utf8_anywhere) {
  const std::vector<std::string> inputs = {
      "\xFF",
      "{\"version\":1,\"command\":\"st\xFFop\"}",
      "{\"version\":1,\"command\":\"st\xC0\xAFop\"}",      // overlong "/"
      "{\"version\":1,\"command\":\"st\xED\xA0\x80op\"}",  // encoded surrogate
      "{\"version\":1,\"command\":\"stop\",\"\xC3\":1}",   // cut sequence in a key
      R"({"version":1,"command":"\ud800"})",               // lone surrogate escape
  };
  for (const std::string& input : inputs) {
    BOOST_TEST_CONTEXT("input " << input) {
      BOOST_TEST(outcome(input) == "error: request is not valid JSON: syntax error");
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_nul_bytes_outside_escapes) {
  using namespace std::string_literals;
  BOOST_TEST(outcome("\0"s) == "error: request is not valid JSON: syntax error");
  BOOST_TEST(outcome("{\"version\":1,\"command\":\"st\0op\"}"s) ==
             "error: request is not valid JSON: syntax error");
  BOOST_TEST(outcome("{\"version\":1,\"command\":\"stop\"}\0"s) ==
             "error: request is not valid JSON: extra data");
}

BOOST_AUTO_TEST_CASE(a_name_given_twice_is_refused_rather_than_guessed) {
  // Boost.JSON alone would keep the last value: a request saying "restart" and "status" must
  // run neither.
  BOOST_TEST(outcome(R"({"version":1,"command":"restart","command":"status"})") ==
             R"(error: "command" given twice in one object)");
  BOOST_TEST(outcome(R"({"version":2,"version":1,"command":"stop"})") ==
             R"(error: "version" given twice in one object)");
  BOOST_TEST(outcome(restartWith(R"("clusters":[1],"clusters":[2,3])")) ==
             R"(error: "clusters" given twice in one object)");
  // Escapes do not hide one: "\u0063ommand" is "command".
  BOOST_TEST(outcome(R"({"version":1,"command":"stop","\u0063ommand":"status"})") ==
             R"(error: "command" given twice in one object)");
}

BOOST_AUTO_TEST_CASE(encodes_success_with_the_result_object) {
  BOOST_TEST(control::encodeSuccess({}) == "{\"version\":1,\"ok\":true,\"result\":{}}\n");
  BOOST_TEST(control::encodeSuccess({{"stopping", true}, {"clusters", {0, 1}}}) ==
             "{\"version\":1,\"ok\":true,\"result\":{\"stopping\":true,\"clusters\":[0,1]}}\n");
}

BOOST_AUTO_TEST_CASE(encodes_error_text_escaped) {
  BOOST_TEST(control::encodeError("cluster 9 does not exist (clusters are 0..3)") ==
             "{\"version\":1,\"ok\":false,\"error\":\"cluster 9 does not exist (clusters are "
             "0..3)\"}\n");
  BOOST_TEST(
      control::encodeError("unknown command \"a\\nb\"\n\x01") ==
      "{\"version\":1,\"ok\":false,\"error\":\"unknown command \\\"a\\\\nb\\\"\\n\\u0001\"}\n");
}

BOOST_AUTO_TEST_CASE(an_error_carries_what_was_done_before_it_only_when_something_was) {
  BOOST_TEST(control::encodeError("rolling restart halted", {{"applied", {"clusters"}}}) ==
             "{\"version\":1,\"ok\":false,\"error\":\"rolling restart halted\",\"result\":{"
             "\"applied\":[\"clusters\"]}}\n");
  BOOST_TEST(control::encodeError("refused", {}) ==
             "{\"version\":1,\"ok\":false,\"error\":\"refused\"}\n");
}

BOOST_AUTO_TEST_CASE(encodes_invalid_utf8_in_error_text_as_replacement_characters) {
  // An OS message or a path may not be UTF-8; the reply must still parse.
  const std::string reply = control::encodeError("bad \xFF path \xC3");
  BOOST_TEST(reply ==
             "{\"version\":1,\"ok\":false,\"error\":\"bad \xEF\xBF\xBD path \xEF\xBF\xBD\"}\n");
  boost::system::error_code ec;
  boost::json::parse(withoutNewline(reply), ec);
  BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE(random_bytes_never_throw) {
  std::mt19937 random(20240611);
  const std::string_view jsonish = R"({}[]",:0123456789-+.eE truefalsnul\u"versioncommand)";
  std::size_t errors = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string input(std::uniform_int_distribution<std::size_t>(0, 120)(random), '\0');
    const bool anyByte = i % 2 == 0;
    for (char& c : input) {
      c = anyByte
              ? static_cast<char>(std::uniform_int_distribution<int>(0, 255)(random))
              : jsonish[std::uniform_int_distribution<std::size_t>(0, jsonish.size() - 1)(random)];
    }
    BOOST_TEST_CONTEXT("input #" << i) {
      const std::string result = outcome(input);
      BOOST_TEST(result.rfind("threw", 0) != 0, result);
      if (result.rfind("error: ", 0) == 0) {
        ++errors;
        checkErrorIsReplyable(result.substr(7));
      }
    }
  }
  BOOST_TEST(errors == 2000u);
}

BOOST_AUTO_TEST_CASE(mutated_valid_requests_never_throw_and_parse_consistently) {
  const std::vector<std::string> seeds = {
      withoutNewline(control::encodeRequest(control::StatusRequest{})),
      withoutNewline(control::encodeRequest(control::StopRequest{})),
      withoutNewline(control::encodeRequest(restartOf({}))),
      withoutNewline(control::encodeRequest(restartOf({0, 2, 17}))),
  };
  const std::vector<std::string> tokens = {"{",
                                           "}",
                                           "[",
                                           "]",
                                           "\"",
                                           ",",
                                           ":",
                                           "1",
                                           "-1",
                                           "1.5",
                                           "1e999",
                                           "true",
                                           "null",
                                           "\"all\":true",
                                           "\\",
                                           "\xFF",
                                           std::string(1, '\0'),
                                           "\\n",
                                           "\"clusters\":[1]"};
  std::mt19937 random(7);
  const auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(random);
  };
  std::size_t accepted = 0;
  std::size_t rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string input = seeds[pick(seeds.size())];
    const std::size_t mutations = 1 + pick(3);
    for (std::size_t m = 0; m < mutations; ++m) {
      const std::size_t at = pick(input.size() + 1);
      switch (pick(4)) {
        case 0:  // delete a byte
          if (at < input.size()) {
            input.erase(at, 1);
          }
          break;
        case 1:  // flip a bit
          if (at < input.size()) {
            input[at] = static_cast<char>(input[at] ^ (1 << pick(8)));
          }
          break;
        case 2:  // insert a JSON token
          input.insert(at, tokens[pick(tokens.size())]);
          break;
        default:  // repeat a slice
          input.insert(at, input.substr(pick(input.size() + 1), pick(12)));
          break;
      }
    }
    BOOST_TEST_CONTEXT("input #" << i << ": " << input) {
      const control::ParseResult result = [&] {
        try {
          return parseRequest(input);
        } catch (...) {
          BOOST_ERROR("parseRequest threw");
          return control::ParseResult{std::string("threw")};
        }
      }();
      if (result.ok()) {
        // Whatever was accepted means the same thing once re-encoded.
        ++accepted;
        BOOST_TEST(outcome(withoutNewline(control::encodeRequest(result.request()))) ==
                   outcome(result));
      } else {
        ++rejected;
        checkErrorIsReplyable(result.error());
      }
    }
  }
  // Both paths must have been exercised for this test to mean anything.
  BOOST_TEST(accepted > 0u);
  BOOST_TEST(rejected > 0u);
}

BOOST_AUTO_TEST_SUITE_END()
