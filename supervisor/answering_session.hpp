// SPDX-License-Identifier: MIT
//
// AnsweringSession and acceptSessions(): the parts the control socket and the metrics endpoint
// share. A connection reads one request, sends one answer, and closes: after the answer is
// written, our side is shut down and the connection is read until the client closes it, because
// closing with bytes of the client's still unread would reset the connection and lose the
// answer. Every step is bounded by a deadline, so a client that stalls costs a connection slot
// for a few seconds.
//
// Derived classes read the request from socket_ (with expectDeadline() armed) and call
// answer() once.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace clustervisor {

// Accepts connections on `acceptor` until it is closed or `listening` turns false: each socket
// goes to `start` while fewer than `maxOpen` sessions are open (`open` counts them). At the limit,
// `makeRoom()` may close an open session to let the new one in (true when it did); otherwise the
// new socket is closed at once (a flood of clients costs them, not the supervisor). After an
// accept error (out of descriptors, say) it tries again 100 ms later rather than spin. The
// acceptor, timer and flag belong to the server, which outlives the loop.
template <class Acceptor, class Start, class MakeRoom>
void acceptSessions(Acceptor& acceptor, boost::asio::steady_timer& retry, const bool& listening,
                    const std::shared_ptr<int>& open, int maxOpen, Start start, MakeRoom makeRoom) {
  acceptor.async_accept(
      [&acceptor, &retry, &listening, open, maxOpen, start, makeRoom](
          boost::system::error_code ec, typename Acceptor::protocol_type::socket socket) {
        if (ec == boost::asio::error::operation_aborted || !listening) {
          return;
        }
        if (ec) {
          retry.expires_after(std::chrono::milliseconds(100));
          retry.async_wait([&acceptor, &retry, &listening, open, maxOpen, start,
                            makeRoom](boost::system::error_code timerError) {
            if (!timerError && listening) {
              acceptSessions(acceptor, retry, listening, open, maxOpen, start, makeRoom);
            }
          });
          return;
        }
        if (*open >= maxOpen && !makeRoom()) {
          boost::system::error_code ignored;
          socket.close(ignored);
        } else {
          start(std::move(socket));
        }
        acceptSessions(acceptor, retry, listening, open, maxOpen, start, makeRoom);
      });
}

template <class Derived, class Socket>
class AnsweringSession : public std::enable_shared_from_this<Derived> {
 protected:
  explicit AnsweringSession(Socket socket)
      : socket_(std::move(socket)), timer_(socket_.get_executor()) {}

  // Closes the connection unless what follows is done within `limit`.
  void expectDeadline(std::chrono::steady_clock::duration limit) {
    timer_.expires_after(limit);
    timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
  }

  // No deadline: the request is in, and its answer may take long.
  void clearDeadline() { timer_.cancel(); }
  bool answered() const { return answered_; }

  // Sends `text` (once; later calls are ignored), then waits for the client's end.
  void answer(std::string text, std::chrono::steady_clock::duration limit) {
    if (answered_) {
      return;
    }
    answered_ = true;
    expectDeadline(limit);
    answer_ = std::move(text);
    boost::asio::async_write(
        socket_, boost::asio::buffer(answer_),
        [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
          boost::system::error_code ignored;
          if (ec) {
            self->timer_.cancel();
            self->socket_.close(ignored);
            return;
          }
          self->socket_.shutdown(Socket::shutdown_send, ignored);
          self->written_ = true;
          if (!self->readPending_) {
            self->drain();  // else the read in progress goes on as the drain
          }
        });
  }

  // For a derived class's own read that was in progress when the answer was written: it goes
  // on as the drain.
  void continueDrain(boost::system::error_code ec) {
    if (!ec) {
      drain();
      return;
    }
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  bool written() const { return written_; }

  Socket socket_;
  boost::asio::steady_timer timer_;
  bool readPending_ = false;  // a derived class's read is in progress

 private:
  void drain() {
    socket_.async_read_some(
        boost::asio::buffer(scratch_),
        [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
          if (!ec) {
            self->drain();
            return;
          }
          self->timer_.cancel();
          boost::system::error_code ignored;
          self->socket_.close(ignored);
        });
  }

  std::string answer_;
  std::array<char, 4096> scratch_{};
  bool answered_ = false;
  bool written_ = false;
};

}  // namespace clustervisor
