// SPDX-License-Identifier: MIT
#include "service_notifier.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace clustervisor {

ServiceNotifier ServiceNotifier::fromEnvironment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || (socket[0] != '/' && socket[0] != '@') || socket[1] == '\0') {
    return {};
  }
  return ServiceNotifier(socket);
}

std::chrono::microseconds ServiceNotifier::watchdogInterval() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  char* end = nullptr;
  const unsigned long long value = usec != nullptr ? std::strtoull(usec, &end, 10) : 0;
  if (usec == nullptr || end == usec || *end != '\0' || value == 0 ||
      (pid != nullptr && std::strtoll(pid, nullptr, 10) != ::getpid())) {
    return std::chrono::microseconds(0);
  }
  return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(value / 2));
}

bool ServiceNotifier::send(std::string_view state) const {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (address_.empty() || address_.size() > sizeof address.sun_path) {
    return false;
  }
  std::memcpy(address.sun_path, address_.data(), address_.size());
  if (address.sun_path[0] == '@') {
    address.sun_path[0] = '\0';  // the abstract namespace
  }
  // A path ends with its NUL (when it fits); an abstract name is exactly its bytes.
  const auto length = static_cast<socklen_t>(
      offsetof(sockaddr_un, sun_path) + address_.size() +
      (address_[0] == '/' && address_.size() < sizeof address.sun_path ? 1 : 0));
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return false;
  }
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address), length);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

}  // namespace clustervisor
