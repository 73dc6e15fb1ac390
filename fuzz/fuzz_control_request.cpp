// SPDX-License-Identifier: MIT
//
// Fuzz target for the control-request parser: any bytes as one request line. A request that
// parses encodes back to a line that parses to the same request; an error, however hostile the
// line, makes a reply that is valid JSON and carries the error text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include "control_protocol.hpp"
#include "fuzz_check.hpp"

namespace control = clustervisor::control;
namespace json = boost::json;

namespace {

bool sameRequest(const control::Request& a, const control::Request& b) {
  if (a.index() != b.index()) {
    return false;
  }
  const auto* restartA = std::get_if<control::RestartRequest>(&a);
  const auto* restartB = std::get_if<control::RestartRequest>(&b);
  if (restartA == nullptr) {
    return true;
  }
  return restartA->all == restartB->all &&
         (restartA->all || restartA->clusters == restartB->clusters);
}

// A reply line: one JSON object ended by "\n", with no other newline.
json::object parseReply(const std::string& reply) {
  FUZZ_CHECK(!reply.empty() && reply.back() == '\n');
  FUZZ_CHECK(reply.find('\n') == reply.size() - 1);
  boost::system::error_code ec;
  json::value value = json::parse(reply, ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(value.is_object());
  return std::move(value.get_object());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const control::ParseResult result = control::parseRequest(line);
  if (result.ok()) {
    const std::string encoded = control::encodeRequest(result.request());
    FUZZ_CHECK(!encoded.empty() && encoded.back() == '\n');
    const control::ParseResult again =
        control::parseRequest(std::string_view(encoded).substr(0, encoded.size() - 1));
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(sameRequest(result.request(), again.request()));
    if (const auto* restart = std::get_if<control::RestartRequest>(&result.request())) {
      FUZZ_CHECK(restart->all != !restart->clusters.empty());
    }
    return 0;
  }
  const std::string& error = result.error();
  FUZZ_CHECK(!error.empty());
  FUZZ_CHECK(error.find('\n') == std::string::npos);
  // Error text stays one short line whatever the client sent (client strings are cut).
  FUZZ_CHECK(error.size() <= 400);
  const json::object reply = parseReply(control::encodeError(error));
  FUZZ_CHECK(reply.at("ok") == false);
  FUZZ_CHECK(reply.at("error").as_string() == error);

  // Arbitrary bytes as error text (a client's bytes can reach a message) still make valid JSON.
  parseReply(control::encodeError(line));
  return 0;
}
