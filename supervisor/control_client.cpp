// SPDX-License-Identifier: MIT
#include "control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace clustervisor {

namespace {

// Waits until `fd` is ready for `events` or the deadline passes.
bool waitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd pfd{fd, events, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready > 0) {
      return true;
    }
    if (ready < 0 && errno != EINTR) {
      return false;
    }
  }
}

}  // namespace

ControlCallResult callSupervisor(const std::filesystem::path& socket, std::string_view request,
                                 std::chrono::milliseconds timeout, std::string& reply,
                                 std::string& error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket.native().size() >= sizeof address.sun_path) {
    error = "the control socket path " + socket.string() + " is too long";
    return ControlCallResult::kFailed;
  }
  std::memcpy(address.sun_path, socket.c_str(), socket.native().size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return ControlCallResult::kFailed;
  }
  const auto fail = [&](ControlCallResult result, std::string message) {
    ::close(fd);
    error = std::move(message);
    return result;
  };
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int why = errno;
    if (why == ENOENT || why == ECONNREFUSED) {
      return fail(ControlCallResult::kNoSupervisor, std::strerror(why));
    }
    return fail(ControlCallResult::kFailed,
                "cannot connect to " + socket.string() + ": " + std::strerror(why));
  }
  // Only a process of this user can be this user's supervisor (it answers nobody else, either):
  // whatever else listens there (a socket placed in a directory others can write to) is not sent
  // the request, nor believed.
  ucred peer{};
  socklen_t size = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) {
    return fail(ControlCallResult::kFailed,
                "cannot tell who listens at " + socket.string() + ": " + std::strerror(errno));
  }
  if (peer.uid != ::geteuid()) {
    return fail(ControlCallResult::kFailed,
                "the process listening at " + socket.string() + " (pid " +
                    std::to_string(peer.pid) + ") runs as uid " + std::to_string(peer.uid) +
                    ", not as this user (uid " + std::to_string(::geteuid()) +
                    "): not this user's supervisor; the request was not sent");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!request.empty()) {
    const ssize_t n = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return fail(ControlCallResult::kFailed,
                  std::string("cannot send the request: ") + std::strerror(errno));
    }
    request.remove_prefix(static_cast<std::size_t>(n));
  }
  reply.clear();
  char buffer[4096];
  for (;;) {
    if (!waitFor(fd, POLLIN, deadline)) {
      return fail(ControlCallResult::kFailed, "the supervisor did not answer within " +
                                                  std::to_string(timeout.count()) + " ms");
    }
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return fail(ControlCallResult::kFailed,
                  std::string("cannot read the answer: ") + std::strerror(errno));
    }
    reply.append(buffer, static_cast<std::size_t>(n));
    if (const auto end = reply.find('\n'); end != std::string::npos) {
      reply.resize(end);
      ::close(fd);
      return ControlCallResult::kAnswered;
    }
    if (n == 0) {
      return fail(ControlCallResult::kFailed, "the supervisor closed the connection unanswered");
    }
    if (reply.size() > 16 * 1024 * 1024) {
      return fail(ControlCallResult::kFailed, "the answer is larger than 16 MiB");
    }
  }
}

}  // namespace clustervisor
