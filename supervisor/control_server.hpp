// SPDX-License-Identifier: MIT
//
// ControlServer: the supervisor's control socket. A unix stream socket, mode 0600, in the
// runtime directory (which only the user can enter); every connection's peer credentials are
// checked and a peer of another uid is answered with an error and closed. One request per
// connection (control_protocol.hpp): the line is read with a size bound and a deadline, parsed,
// handed to the handler, and the reply written back. At most kMaxConnections are served at once;
// more are closed at once. Nothing a client sends can do more than get an error reply.
//
// Runs on the supervisor's io_context (one thread). The handler is called on it and answers
// through the Reply it is given, at once or later. stop() closes the listening socket and removes
// its file; connections in progress finish on their own.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "control_protocol.hpp"

namespace clustervisor {

class ControlServer {
 public:
  // Called with each request and the function that answers it (with one reply line). The answer
  // may come later, from another handler on the same io_context (a rolling restart answers when
  // it is done); a connection whose answer never comes is closed when the server is destroyed.
  using Reply = std::function<void(std::string)>;
  using Handler = std::function<void(const control::Request&, Reply)>;
  // Connections reading their request or being answered at once; one whose request takes long
  // to answer (a reload, a rolling restart) no longer counts once it is handed over.
  static constexpr int kMaxConnections = 16;
  static constexpr std::chrono::seconds kRequestTimeout{5};

  ControlServer(boost::asio::io_context& io, std::filesystem::path path, Handler handler);
  ~ControlServer();

  // Binds and listens. A socket already at the path that nobody answers on is removed first (a
  // supervisor that died left it); anything else there is refused. False with `error` set on
  // failure.
  bool start(std::string& error);
  void stop();

  const std::filesystem::path& path() const { return path_; }

 private:
  class Session;
  void accept();

  boost::asio::io_context& io_;
  std::filesystem::path path_;
  std::shared_ptr<Handler> handler_;  // shared with sessions, which may outlive stop()
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer retry_;  // after an accept error (out of fds): try again later
  std::shared_ptr<int> open_;        // sessions in progress (shared with them)
  bool listening_ = false;
  ino_t boundInode_ = 0;  // the socket file start() made, removed by stop() if still there
  dev_t boundDevice_ = 0;
};

}  // namespace clustervisor
