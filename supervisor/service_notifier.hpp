// SPDX-License-Identifier: MIT
//
// ServiceNotifier: tells the service manager how the supervisor is doing, through the socket
// systemd names in NOTIFY_SOCKET (the sd_notify(3) protocol: one datagram of "KEY=value" lines),
// so a unit can be Type=notify: started once every cluster is ready, reloading while a reload
// runs, stopping once the supervisor stops. Inert without NOTIFY_SOCKET. A message that cannot
// be sent is dropped: the service manager's state is advisory, the bot runs on.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace clustervisor {

class ServiceNotifier {
 public:
  // From NOTIFY_SOCKET: an absolute path, or "@name" for the abstract namespace.
  static ServiceNotifier fromEnvironment();
  ServiceNotifier() = default;
  explicit ServiceNotifier(std::string address) : address_(std::move(address)) {}

  bool enabled() const { return !address_.empty(); }
  // How often the service manager wants WATCHDOG=1 (half its WatchdogSec=, from WATCHDOG_USEC),
  // when it wants it from this process (WATCHDOG_PID unset or this pid); zero otherwise.
  static std::chrono::microseconds watchdogInterval();
  // Sends `state` ("READY=1\nSTATUS=...") in one datagram; whether it was sent.
  bool send(std::string_view state) const;

 private:
  std::string address_;
};

}  // namespace clustervisor
