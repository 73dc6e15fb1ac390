// SPDX-License-Identifier: MIT
//
// MetricsServer: the Prometheus endpoint (metrics.listen in bot.toml). A minimal HTTP/1.1 server
// on a loopback TCP address that answers GET /metrics (and HEAD) with the text the supervisor
// builds, "/" with a pointer to it, anything else with 404 or 405. One request per connection
// (Connection: close); the request head is bounded (8 KiB) and must arrive within 5 s; at most
// 16 connections at once, and a new one made while 16 are open takes the place of the oldest
// that has not sent its request yet, else of the oldest whose answer is written (so connections
// that sit idle, or ask and never close, cannot keep the scrapes out; any local user can open
// them). It serves numbers only and accepts no
// input, so a stranger on the machine learns no more than `clustervisor status` would show its
// owner; it listens on loopback only (the config refuses other addresses), and answers only
// requests addressed to loopback (see requestHost()), so that a web page cannot read it through
// the browser of the bot's owner by pointing its own site's name at 127.0.0.1 (DNS rebinding).
//
// Runs on the supervisor's io_context; the callback is called on it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace clustervisor {

// Whom an HTTP request is addressed to: the authority of an absolute-form target (RFC 9112,
// section 3.2.2: it overrides Host), else the Host header.
enum class RequestHost {
  kLoopback,  // a loopback address, localhost or a name under .localhost; or none given
  kForeign,   // anything else: a name a browser resolved, possibly rebound to loopback
  kMalformed  // Host twice (RFC 9112, section 3.2), with space before its colon, or a folded
              // header line (sections 5.1, 5.2): answered 400
};
// `head`: the request head, from the request line to the empty line; `target`: its request
// target as sent.
RequestHost requestHost(std::string_view head, std::string_view target);

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  static constexpr int kMaxConnections = 16;
  static constexpr std::size_t kMaxRequestHead = 8 * 1024;
  static constexpr std::chrono::seconds kRequestTimeout{5};

  MetricsServer(boost::asio::io_context& io, std::string host, std::uint16_t port, Render render);
  ~MetricsServer();

  // Binds and listens; false with `error` set when the address cannot be used.
  bool start(std::string& error);
  void stop();

 private:
  class Session;
  void accept();

  std::string host_;
  std::uint16_t port_;
  std::shared_ptr<Render> render_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;
  std::shared_ptr<int> open_;
  // The sessions, oldest first: those with their connection open, and some that have ended
  // since the last look.
  std::shared_ptr<std::deque<std::weak_ptr<Session>>> sessions_;
  bool listening_ = false;
};

}  // namespace clustervisor
