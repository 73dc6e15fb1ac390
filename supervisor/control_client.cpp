// SPDX-License-Identifier: MIT
#include "control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "plan.hpp"
#include "process_table.hpp"
#include "status_text.hpp"

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

// kNotTaken: the connection was refused for a full backlog, or reset before any answer (the
// supervisor closed it unread, at its limit of connections), so the request was not carried out
// and may be sent again.
enum class Attempt { kAnswered, kNoSupervisor, kFailed, kNotTaken, kNotThisUsers };

// "pid N", and what keeps it from answering when its state tells (stopped, in the kernel).
std::string describeProcess(pid_t pid) {
  std::string text = "pid " + std::to_string(pid);
  const auto process = readProcess(pid);
  if (!process) {
    return text + ", gone";
  }
  switch (process->state) {
    case 'T':
      return text + ", stopped by a signal (SIGCONT resumes it)";
    case 't':
      return text + ", stopped by a debugger";
    case 'D':
      return text + ", in uninterruptible sleep (waiting on the kernel, often on I/O)";
    case 'Z':
    case 'X':
      return text + ", exited";
    case 'R':
      return text + ", running";
    case 'S':
    case 'I':
      return text + ", sleeping";
    default:
      return text + ", state " + std::string(1, process->state);
  }
}

Attempt attemptCall(const std::filesystem::path& socket, std::string_view request,
                    std::string_view unanswered, std::chrono::milliseconds timeout,
                    std::string& reply, std::string& error, pid_t& peerPid, pid_t expectedPeer) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket.native().size() >= sizeof address.sun_path) {
    error = "the control socket path " + quoteArgument(socket.string()) + " is too long";
    return Attempt::kFailed;
  }
  std::memcpy(address.sun_path, socket.c_str(), socket.native().size() + 1);
  // Non-blocking: a supervisor that takes no connection (stopped, hung, or every connection
  // busy with a backlog full) must not hold the command past its deadline.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return Attempt::kFailed;
  }
  const auto fail = [&](Attempt result, std::string message) {
    ::close(fd);
    error = std::move(message);
    return result;
  };
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int why = errno;
    if (why == ENOENT || why == ECONNREFUSED) {
      return fail(Attempt::kNoSupervisor, std::strerror(why));
    }
    if (why == EAGAIN) {
      return fail(Attempt::kNotTaken, "");  // a local socket's backlog is full
    }
    return fail(
        why == EACCES || why == ENOTDIR || why == ELOOP ? Attempt::kNotThisUsers : Attempt::kFailed,
        "cannot connect to " + quoteArgument(socket.string()) + ": " + std::strerror(why));
  }
  // Only a process of this user can be this user's supervisor (it answers nobody else, either):
  // whatever else listens there (a socket placed in a directory others can write to) is not sent
  // the request, nor believed.
  ucred peer{};
  socklen_t size = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) {
    return fail(Attempt::kFailed, "cannot tell who listens at " + quoteArgument(socket.string()) +
                                      ": " + std::strerror(errno));
  }
  peerPid = peer.pid;
  if (expectedPeer != 0 && peer.pid != expectedPeer) {
    return fail(Attempt::kFailed, "the process listening at " + quoteArgument(socket.string()) +
                                      " (pid " + std::to_string(peer.pid) + ") is not pid " +
                                      std::to_string(expectedPeer) + "; the request was not sent");
  }
  if (peer.uid != ::geteuid()) {
    return fail(Attempt::kNotThisUsers,
                "the process listening at " + quoteArgument(socket.string()) + " (pid " +
                    std::to_string(peer.pid) + ") runs as uid " + std::to_string(peer.uid) +
                    ", not as this user (uid " + std::to_string(::geteuid()) +
                    "): not this user's supervisor; the request was not sent");
  }
  const auto sendBy = std::chrono::steady_clock::now() + timeout;
  while (!request.empty()) {
    const ssize_t n = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!waitFor(fd, POLLOUT, sendBy)) {
        return fail(Attempt::kFailed, "the supervisor (" + describeProcess(peerPid) +
                                          ") did not take the request within " +
                                          humanDuration(timeout));
      }
      continue;
    }
    if (n < 0 && (errno == ECONNRESET || errno == EPIPE)) {
      return fail(Attempt::kNotTaken, "");
    }
    if (n <= 0) {
      return fail(Attempt::kFailed,
                  std::string("cannot send the request: ") + std::strerror(errno));
    }
    request.remove_prefix(static_cast<std::size_t>(n));
  }
  // The answer's deadline starts once the request is in.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  reply.clear();
  char buffer[4096];
  for (;;) {
    if (!waitFor(fd, POLLIN, deadline)) {
      return fail(Attempt::kFailed, "the supervisor (" + describeProcess(peerPid) +
                                        ") did not answer within " + humanDuration(timeout) +
                                        std::string(unanswered));
    }
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
      continue;
    }
    if (n < 0 && errno == ECONNRESET && reply.empty()) {
      return fail(Attempt::kNotTaken, "");
    }
    if (n < 0) {
      return fail(Attempt::kFailed, std::string("cannot read the answer: ") + std::strerror(errno));
    }
    reply.append(buffer, static_cast<std::size_t>(n));
    if (const auto end = reply.find('\n'); end != std::string::npos) {
      reply.resize(end);
      ::close(fd);
      return Attempt::kAnswered;
    }
    if (n == 0) {
      // An orderly close: the supervisor had read the request (it ended, say, meanwhile).
      return fail(Attempt::kFailed,
                  "the supervisor closed the connection without answering; the request may "
                  "have been carried out, in part or whole");
    }
    if (reply.size() > 16 * 1024 * 1024) {
      return fail(Attempt::kFailed, "the answer is larger than 16 MiB");
    }
  }
}

}  // namespace

ControlCallResult callSupervisor(const std::filesystem::path& socket,
                                 const std::function<std::string()>& request,
                                 std::chrono::milliseconds timeout, std::string& reply,
                                 std::string& error, std::string_view unanswered, pid_t* peer,
                                 pid_t expectedPeer) {
  // A connection refused for a full backlog, or reset before any answer, was not taken: the
  // supervisor serves a bounded number at once and closes the rest unread. Tried again, a little
  // later each time, within kBusyRetry (or the timeout, if shorter).
  const auto start = std::chrono::steady_clock::now();
  const auto retryUntil = start + std::min(timeout, kBusyRetry);
  auto pause = std::chrono::milliseconds(10);
  for (int attempts = 1;; ++attempts) {
    pid_t peerPid = 0;
    const Attempt attempt =
        attemptCall(socket, request(), unanswered, timeout, reply, error, peerPid, expectedPeer);
    if (peer != nullptr) {
      *peer = peerPid;
    }
    switch (attempt) {
      case Attempt::kAnswered:
        return ControlCallResult::kAnswered;
      case Attempt::kNoSupervisor:
        return ControlCallResult::kNoSupervisor;
      case Attempt::kFailed:
        return ControlCallResult::kFailed;
      case Attempt::kNotThisUsers:
        return ControlCallResult::kNotThisUsers;
      case Attempt::kNotTaken:
        break;
    }
    if (std::chrono::steady_clock::now() + pause >= retryUntil) {
      error = "the supervisor took none of " + std::to_string(attempts) + " connections in " +
              humanDuration(std::chrono::steady_clock::now() - start) +
              ": it serves a limited number at once and others kept them busy, or it is "
              "not taking connections at all (stopped or hung)";
      return ControlCallResult::kFailed;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

}  // namespace clustervisor
