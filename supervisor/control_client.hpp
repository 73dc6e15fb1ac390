// SPDX-License-Identifier: MIT
//
// The client side of the control socket, for `clustervisor status|restart|stop`: one blocking
// request and its one-line answer, with a deadline. Runs in the CLI process only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace clustervisor {

enum class ControlCallResult {
  kAnswered,      // `reply` holds the supervisor's answer line (without "\n")
  kNoSupervisor,  // nothing listens at the socket (no file, or refused)
  kFailed,        // connected, but the exchange failed (`error` says how)
  // What is at the socket's path is not this user's supervisor: it cannot be reached (a
  // directory on the way that is not this user's, not a directory, or a loop of links) or
  // another user's process listens there (`error` says which). Perhaps someone else made the
  // fallback runtime directory first, and the supervisor runs elsewhere.
  kNotThisUsers,
};

// How long a request is tried again while the supervisor takes no connection (all its control
// connections busy).
inline constexpr std::chrono::milliseconds kBusyRetry{10000};

// `peer`, when given, receives the pid of the process that listens at the socket (SO_PEERCRED, in
// this process's pid namespace; 0 when it cannot be told). With `expectedPeer`, a socket that
// another process listens on is not sent the request (kFailed).
// `request` makes the request line for each attempt (one that expires is given its time then).
// `unanswered` is added to the error of a request sent but not answered within `timeout`: what
// becomes of it.
ControlCallResult callSupervisor(const std::filesystem::path& socket,
                                 const std::function<std::string()>& request,
                                 std::chrono::milliseconds timeout, std::string& reply,
                                 std::string& error, std::string_view unanswered,
                                 pid_t* peer = nullptr, pid_t expectedPeer = 0);

}  // namespace clustervisor
