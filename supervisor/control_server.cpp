// SPDX-License-Identifier: MIT
#include "control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>

#include <boost/asio/read_until.hpp>

#include "answering_session.hpp"
#include "log.hpp"
#include "plan.hpp"
#include "status_text.hpp"

namespace clustervisor {

namespace asio = boost::asio;
using boost::system::error_code;
using Socket = asio::local::stream_protocol::socket;

// One connection: read one line (bounded, with a deadline), answer, close.
class ControlServer::Session : public AnsweringSession<ControlServer::Session, Socket> {
 public:
  Session(Socket socket, std::shared_ptr<Handler> handler, std::shared_ptr<int> open)
      : AnsweringSession(std::move(socket)), handler_(std::move(handler)), open_(std::move(open)) {
    ++*open_;
  }
  ~Session() { releaseSlot(); }

  void start() {
    expectDeadline(kRequestTimeout);  // a client that never finishes its line
    ucred peer{};
    socklen_t size = sizeof peer;
    permitted_ =
        ::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &size) == 0 &&
        peer.uid == ::geteuid();
    // The line is read in any case (bounded and timed), so the answer is not lost to a reset
    // from closing on unread bytes; a stranger's request is never parsed.
    asio::async_read_until(
        socket_, asio::dynamic_buffer(line_, control::kMaxRequestBytes + 1), '\n',
        [self = shared_from_this()](error_code ec, std::size_t length) {
          if (ec == asio::error::not_found) {
            self->reply(control::encodeError("request larger than " +
                                             std::to_string(control::kMaxRequestBytes) + " bytes"));
            return;
          }
          if (ec == asio::error::eof && !self->line_.empty()) {
            // The client ended its side after a request without its newline: it may still be
            // reading. Not taken for a request (a client cut off mid-line looks the same).
            self->reply(control::encodeError("a request is one line ending in a newline (\\n)"));
            return;
          }
          if (ec) {
            self->clearDeadline();
            return;  // the client went away, or the deadline closed the socket
          }
          if (!self->permitted_) {
            self->reply(
                control::encodeError("permission denied: this control socket serves only uid " +
                                     std::to_string(::geteuid())));
            return;
          }
          const auto parsed =
              control::parseRequest(std::string_view(self->line_).substr(0, length - 1));
          if (!parsed.ok()) {
            self->reply(control::encodeError(parsed.error()));
            return;
          }
          if (const auto now = std::chrono::system_clock::now();
              parsed.expires && now > *parsed.expires) {
            // Its client stopped waiting (this process was stopped or stuck meanwhile): carrying
            // it out now would surprise whoever took that failure at its word.
            const std::string late = humanDuration(now - *parsed.expires);
            const std::string command(control::commandName(parsed.request()));
            logWarning("a " + command + " request over the control socket was read " + late +
                       " after it expired (its client had stopped waiting); not carried out");
            self->reply(control::encodeError("the " + command + " request expired " + late +
                                             " before the supervisor read it; nothing was "
                                             "done"));
            return;
          }
          // The request is in: a long one (a rolling restart) may take minutes to answer, and
          // the deadline is for reading the request only.
          self->clearDeadline();
          (*self->handler_)(parsed.request(),
                            [self](std::string answer) { self->reply(std::move(answer)); });
          if (!self->answered()) {
            // Its slot is for reading requests: a queue of long ones (bounded by the handler)
            // must not keep `status` or `stop` out.
            self->releaseSlot();
            self->watchHangUp();
          }
        });
  }

 private:
  void reply(std::string text) {
    if (!hungUp_) {
      answer(std::move(text), kRequestTimeout);
    }
  }

  // While a long request is worked on, a client that goes away (Ctrl-C on `restart --rolling`)
  // frees its connection slot at once; the work goes on, and its answer is dropped.
  void watchHangUp() {
    readPending_ = true;
    socket_.async_read_some(asio::buffer(probe_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              self->readPending_ = false;
                              if (self->answered()) {
                                // Answered meanwhile: this read goes on as its drain, or the
                                // write, when it completes, starts one.
                                if (self->written()) {
                                  self->continueDrain(ec);
                                }
                                return;
                              }
                              if (!ec) {
                                self->watchHangUp();  // more bytes after the request: ignored
                                return;
                              }
                              self->hungUp_ = true;
                              error_code ignored;
                              self->socket_.close(ignored);
                              self->releaseSlot();
                            });
  }

  void releaseSlot() {
    if (!released_) {
      released_ = true;
      --*open_;
    }
  }

  std::shared_ptr<Handler> handler_;
  std::shared_ptr<int> open_;
  std::string line_;
  std::array<char, 256> probe_{};
  bool permitted_ = false;
  bool hungUp_ = false;
  bool released_ = false;
};

ControlServer::ControlServer(asio::io_context& io, std::filesystem::path path, Handler handler)
    : io_(io),
      path_(std::move(path)),
      handler_(std::make_shared<Handler>(std::move(handler))),
      acceptor_(io),
      retry_(io),
      open_(std::make_shared<int>(0)) {}

ControlServer::~ControlServer() {
  stop();
}

bool ControlServer::start(std::string& error) {
  // sockaddr_un holds 107 characters of path.
  if (path_.native().size() >= sizeof(sockaddr_un::sun_path)) {
    error = "the control socket path " + quoteArgument(path_.string()) + " is longer than " +
            std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
            " bytes; set XDG_RUNTIME_DIR to a shorter directory";
    return false;
  }
  // What is there already: a socket nobody answers on is a leftover of a supervisor that died,
  // and goes; anything else (a file, a live socket of another bot with the same
  // control.socket) is not ours to remove.
  struct stat existing {};
  if (::lstat(path_.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      error = "cannot listen on the control socket " + quoteArgument(path_.string()) +
              ": something that is not a socket is there (check control.socket)";
      return false;
    }
    Socket probe(io_);
    error_code connectError;
    probe.connect(asio::local::stream_protocol::endpoint(path_.string()), connectError);
    if (!connectError) {
      error = "cannot listen on the control socket " + quoteArgument(path_.string()) +
              ": another supervisor answers there (two bots with the same control.socket?)";
      return false;
    }
    ::unlink(path_.c_str());
  }
  error_code ec;
  acceptor_.open(asio::local::stream_protocol(), ec);
  // Created with mode 0600, before anyone could connect. (Set by the umask rather than a
  // chmod(2) afterwards, which would follow a symlink put in the socket's place meanwhile.)
  const mode_t previous = ::umask(0177);
  if (!ec) {
    acceptor_.bind(asio::local::stream_protocol::endpoint(path_.string()), ec);
  }
  ::umask(previous);
  if (!ec) {
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    error = "cannot listen on the control socket " + quoteArgument(path_.string()) + ": " +
            ec.message();
    error_code ignored;
    acceptor_.close(ignored);
    return false;
  }
  struct stat bound {};
  if (::lstat(path_.c_str(), &bound) == 0) {
    boundInode_ = bound.st_ino;
    boundDevice_ = bound.st_dev;
  }
  listening_ = true;
  accept();
  return true;
}

void ControlServer::stop() {
  if (!listening_) {
    return;
  }
  listening_ = false;
  retry_.cancel();
  error_code ignored;
  acceptor_.close(ignored);
  // Only the socket this server made: another may have taken the path since.
  struct stat current {};
  if (::lstat(path_.c_str(), &current) == 0 && current.st_ino == boundInode_ &&
      current.st_dev == boundDevice_) {
    ::unlink(path_.c_str());
  }
}

void ControlServer::accept() {
  acceptSessions(
      acceptor_, retry_, listening_, open_, kMaxConnections,
      [handler = handler_, open = open_](Socket socket) {
        std::make_shared<Session>(std::move(socket), handler, open)->start();
      },
      // Only its own user can connect (mode 0600, SO_PEERCRED): nobody to make room
      // for at the expense of another.
      [] { return false; });
}

}  // namespace clustervisor
