// SPDX-License-Identifier: MIT
#include "metrics_server.hpp"

#include <algorithm>
#include <iterator>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/read_until.hpp>

#include "answering_session.hpp"
#include "metrics.hpp"

namespace clustervisor {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

std::string response(std::string_view status, std::string_view contentType, std::string body,
                     bool head, std::string_view extraHeaders = {}) {
  std::string text = "HTTP/1.1 ";
  text += status;
  text += "\r\nContent-Type: ";
  text += contentType;
  text += "\r\nContent-Length: " + std::to_string(body.size());
  text += "\r\nConnection: close\r\n";
  text += extraHeaders;
  text += "\r\n";
  if (!head) {
    text += body;
  }
  return text;
}

// Where a request head ends: at its first empty line, whose line ends are LF or CRLF (RFC 9112,
// section 2.2, lets a server take a bare LF for a line's end, as most do: so a request typed
// with printf and nc is answered).
struct HeadEnd {
  template <typename Iterator>
  std::pair<Iterator, bool> operator()(Iterator begin, Iterator end) const {
    for (Iterator i = begin; i != end; ++i) {
      if (*i != '\n') {
        continue;
      }
      Iterator next = std::next(i);
      if (next != end && *next == '\r') {
        ++next;
      }
      if (next == end) {
        return {i, false};  // the next read may complete it: looked at again from this LF
      }
      if (*next == '\n') {
        return {std::next(next), true};
      }
    }
    return {end, false};
  }
};

// The authority of a target in absolute form ("http://127.0.0.1:9464/metrics?x", which a server
// must take too) and what follows it; nothing for one in origin form ("/metrics?x").
struct AbsoluteForm {
  std::string_view authority;
  std::string_view rest;
};
std::optional<AbsoluteForm> absoluteForm(std::string_view target) {
  const auto scheme = target.find("://");
  if (scheme == std::string_view::npos || target.find('/') < scheme) {
    return std::nullopt;
  }
  const std::string_view after = target.substr(scheme + 3);
  const auto end = std::min(after.size(), after.find_first_of("/?#"));
  return AbsoluteForm{after.substr(0, end), after.substr(end)};
}

// The path of a request target, without scheme and authority (absolute form) and query.
std::string_view pathOf(std::string_view target) {
  if (const auto absolute = absoluteForm(target)) {
    target = absolute->rest.starts_with('/') ? absolute->rest : std::string_view("/");
  }
  return target.substr(0, target.find('?'));
}

char lowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return lowerAscii(x) == lowerAscii(y);
         });
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

bool allDigits(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// An authority ("host", "host:port", "[v6]:port"; "user@" first only where `userinfo` may be
// there, in an absolute-form target) names loopback: an address of it, "localhost", or a name
// under ".localhost" (which RFC 6761 has resolve there). Anything else after the host than a
// port of digits is not taken for one.
bool namesLoopback(std::string_view authority, bool userinfo) {
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    if (!userinfo) {
      return false;
    }
    authority.remove_prefix(at + 1);
  }
  std::string_view host = authority;
  std::string_view port;
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == std::string_view::npos || (close + 1 < host.size() && host[close + 1] != ':')) {
      return false;
    }
    port = host.substr(std::min(host.size(), close + 2));
    host = host.substr(1, close - 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (!allDigits(port)) {
    return false;
  }
  error_code ec;
  const auto address = asio::ip::make_address(std::string(host), ec);
  if (!ec) {
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
      return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).is_loopback();
    }
    return address.is_loopback();
  }
  if (host.ends_with('.')) {
    host.remove_suffix(1);  // a fully qualified "localhost."
  }
  constexpr std::string_view kLocalhost = "localhost";
  return equalsIgnoringCase(host, kLocalhost) ||
         (host.size() > kLocalhost.size() + 1 &&
          equalsIgnoringCase(host.substr(host.size() - kLocalhost.size() - 1), ".localhost"));
}

}  // namespace

RequestHost requestHost(std::string_view head, std::string_view target) {
  if (const auto absolute = absoluteForm(target)) {
    return namesLoopback(absolute->authority, true) ? RequestHost::kLoopback
                                                    : RequestHost::kForeign;
  }
  std::optional<std::string_view> host;
  head.remove_prefix(std::min(head.size(), head.find('\n') + 1));  // the request line
  while (!head.empty()) {
    const auto end = head.find('\n');
    const std::string_view line = head.substr(0, end);
    head.remove_prefix(end == std::string_view::npos ? head.size() : end + 1);
    if (line.starts_with(' ') || line.starts_with('\t')) {
      return RequestHost::kMalformed;  // a folded line (RFC 9112, section 5.2)
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    const std::string_view name = line.substr(0, colon);
    if (!equalsIgnoringCase(trimmed(name), "host")) {
      continue;
    }
    if (host || name.size() != 4) {
      return RequestHost::kMalformed;  // twice, or space before the colon (section 5.1)
    }
    host = trimmed(line.substr(colon + 1));
  }
  // Without a Host (an HTTP/1.0 request typed by hand, say) it is no browser's: browsers always
  // send one.
  if (!host || host->empty()) {
    return RequestHost::kLoopback;
  }
  return namesLoopback(*host, false) ? RequestHost::kLoopback : RequestHost::kForeign;
}

}  // namespace clustervisor

template <>
struct boost::asio::is_match_condition<clustervisor::HeadEnd> : std::true_type {};

namespace clustervisor {

class MetricsServer::Session : public AnsweringSession<MetricsServer::Session, tcp::socket> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Render> render, std::shared_ptr<int> open)
      : AnsweringSession(std::move(socket)), render_(std::move(render)), open_(std::move(open)) {
    ++*open_;
  }
  ~Session() { --*open_; }

  bool waitingForHead() const { return !headRead_; }
  // Answered, and waiting for the client to close (see AnsweringSession).
  bool answerWritten() const { return written(); }
  bool connected() const { return socket_.is_open(); }
  // Closes the connection (one that has not sent its request, or whose answer is written), for
  // a new one to take its place.
  void evict() {
    boost::system::error_code ignored;
    socket_.close(ignored);  // the read ends with an error, and with it the session
  }

  void start() {
    expectDeadline(kRequestTimeout);
    asio::async_read_until(socket_, asio::dynamic_buffer(head_, kMaxRequestHead), HeadEnd(),
                           [self = shared_from_this()](error_code ec, std::size_t length) {
                             self->onHead(ec, length);
                           });
  }

 private:
  void onHead(error_code ec, std::size_t length) {
    headRead_ = true;
    if (ec == asio::error::not_found) {
      respond(response("431 Request Header Fields Too Large", "text/plain", "request too large\n",
                       false));
      return;
    }
    if (ec) {
      clearDeadline();
      boost::system::error_code ignored;
      socket_.close(ignored);  // at once: no longer counted as an open connection
      return;
    }
    const std::string_view head(head_.data(), length);
    std::string_view requestLine = head.substr(0, head.find('\n'));
    if (requestLine.ends_with('\r')) {
      requestLine.remove_suffix(1);
    }
    const auto firstSpace = requestLine.find(' ');
    const auto secondSpace = requestLine.find(' ', firstSpace + 1);
    if (firstSpace == std::string_view::npos || secondSpace == std::string_view::npos ||
        !requestLine.substr(secondSpace + 1).starts_with("HTTP/1.")) {
      respond(response("400 Bad Request", "text/plain", "bad request\n", false));
      return;
    }
    const std::string_view method = requestLine.substr(0, firstSpace);
    const std::string_view rawTarget =
        requestLine.substr(firstSpace + 1, secondSpace - firstSpace - 1);
    const std::string_view target = pathOf(rawTarget);
    const bool headOnly = method == "HEAD";
    switch (requestHost(head, rawTarget)) {
      case RequestHost::kLoopback:
        break;
      case RequestHost::kMalformed:
        respond(response("400 Bad Request", "text/plain",
                         "bad request: Host given twice, or a folded or malformed header line\n",
                         false));
        return;
      case RequestHost::kForeign:
        respond(response("403 Forbidden", "text/plain",
                         "this endpoint answers only requests addressed to a loopback address or "
                         "localhost (Host: 127.0.0.1:PORT, say), as a guard against DNS "
                         "rebinding\n",
                         headOnly));
        return;
    }
    if (method != "GET" && !headOnly) {
      respond(response("405 Method Not Allowed", "text/plain", "only GET and HEAD\n", false,
                       "Allow: GET, HEAD\r\n"));
      return;
    }
    if (target == "/metrics") {
      respond(response("200 OK", MetricsText::kContentType, (*render_)(), headOnly));
    } else if (target == "/") {
      respond(response("200 OK", "text/plain; charset=utf-8",
                       "clustervisor: the metrics are at /metrics\n", headOnly));
    } else {
      respond(response("404 Not Found", "text/plain", "not found; the metrics are at /metrics\n",
                       headOnly));
    }
  }

  void respond(std::string text) { answer(std::move(text), kRequestTimeout); }

  std::shared_ptr<Render> render_;
  std::shared_ptr<int> open_;
  std::string head_;
  bool headRead_ = false;  // or its read ended
};

MetricsServer::MetricsServer(asio::io_context& io, std::string host, std::uint16_t port,
                             Render render)
    : host_(std::move(host)),
      port_(port),
      render_(std::make_shared<Render>(std::move(render))),
      acceptor_(io),
      retry_(io),
      open_(std::make_shared<int>(0)),
      sessions_(std::make_shared<std::deque<std::weak_ptr<Session>>>()) {}

MetricsServer::~MetricsServer() {
  stop();
}

bool MetricsServer::start(std::string& error) {
  error_code ec;
  const auto address = asio::ip::make_address(host_, ec);
  if (ec || !address.is_loopback()) {
    error = "metrics.listen: " + host_ + " is not a loopback address";
    return false;
  }
  const tcp::endpoint endpoint(address, port_);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor_.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    error = "cannot serve metrics on " + host_ + ":" + std::to_string(port_) + ": " + ec.message();
    error_code ignored;
    acceptor_.close(ignored);
    return false;
  }
  listening_ = true;
  accept();
  return true;
}

void MetricsServer::stop() {
  if (!listening_) {
    return;
  }
  listening_ = false;
  retry_.cancel();
  error_code ignored;
  acceptor_.close(ignored);
}

void MetricsServer::accept() {
  // The sessions with their connection open, oldest first. The count of sessions includes those
  // that have closed their connection and not ended yet (their timer's cancellation is still to
  // run): those are left out, so they make room at once.
  const auto openOnes = [](std::deque<std::weak_ptr<Session>>& sessions) {
    std::erase_if(sessions, [](const std::weak_ptr<Session>& w) {
      const auto s = w.lock();
      return !s || !s->connected();
    });
    return sessions.size();
  };
  acceptSessions(
      acceptor_, retry_, listening_, open_, kMaxConnections,
      [render = render_, open = open_, sessions = sessions_, openOnes](tcp::socket socket) {
        auto session = std::make_shared<Session>(std::move(socket), render, open);
        openOnes(*sessions);
        sessions->push_back(session);
        session->start();
      },
      [sessions = sessions_, openOnes] {
        if (openOnes(*sessions) < static_cast<std::size_t>(kMaxConnections)) {
          return true;
        }
        // The oldest that has not sent its request, else the oldest whose answer is written (a
        // client that asks and never closes); one whose answer is still being written is left
        // alone.
        for (const bool waiting : {true, false}) {
          for (const auto& w : *sessions) {
            const auto s = w.lock();
            if (s && (waiting ? s->waitingForHead() : s->answerWritten())) {
              s->evict();
              return true;
            }
          }
        }
        return false;
      });
}

}  // namespace clustervisor
