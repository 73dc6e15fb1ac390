// SPDX-License-Identifier: MIT
//
// The errors the worker SDK reports, as a boost::system error category so they travel through
// Asio completion handlers and `error_code&` overloads like any other I/O error.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

namespace clustervisor {

enum class Errc {
  kNotUnderSupervisor = 1,  // the CLUSTERVISOR_* environment variables are missing or invalid
  kHandshakeFailed,         // the supervisor did not answer the hello as the protocol requires
  kNotConnected,            // the connection to the supervisor is gone
  kInvalidClusterId,        // emitTo an id outside 0..totalClusters-1
  kInvalidEventName,        // an event name that is empty or longer than 255 bytes
  kPayloadTooLarge,         // the JSON text exceeds the supervisor's events.max_payload
  kQueueFull,               // the SDK's send queue is at its limit (see clustervisor-worker(3))
};

const boost::system::error_category& errorCategory() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), errorCategory()};
}

// Thrown by the throwing overloads and by Cluster::fromEnvironment(); carries the error_code,
// and what() is a message written for the person reading it.
class Error : public boost::system::system_error {
 public:
  Error(boost::system::error_code ec, std::string message)
      : boost::system::system_error(ec), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

}  // namespace clustervisor

template <>
struct boost::system::is_error_code_enum<clustervisor::Errc> : std::true_type {};
