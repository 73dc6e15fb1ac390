// SPDX-License-Identifier: MIT
//
// EventBus: cross-cluster events, the C++ face of the TypeScript EventBusClient.
//
//   broadcast(event, data)          every other connected cluster, never the sender
//   emitTo(id, event, data)         one cluster, the sender included; held while it restarts
//   broadcastAndWait(event, data, timeout = 10 s, expectedClusters = 0, token)
//                                   the number of distinct clusters that acknowledged
//   on(event, listener)             listener(data, sourceCluster); returns a Subscription
//
// Delivery starts when the worker says so: events that arrive before listen() (or
// Cluster::ready(), which implies it) wait, in order, so none is lost while the worker is still
// registering its listeners. Register listeners, then listen()/ready(). Acknowledgements follow
// delivery, so a cluster that is not listening yet does not acknowledge yet.
//
// Threads: broadcast, emitTo, broadcastAndWait, on and off may be called from any thread.
// Listeners run one at a time, in arrival order, on the bus executor (Cluster chooses it: the
// SDK's own threads, or the executor given in ClusterOptions). On the SDK's threads a listener
// runs on the thread that read its event, and one that runs long has the connection taken over by
// the other thread, so a slow listener cannot stall the connection; unless
// ClusterOptions::listenersOnIoThread, which has one thread and no takeover. Events from one
// sender reach listeners in the order they were sent. After the listeners for an event returned,
// the SDK acknowledges it; a listener that throws does not stop the acknowledgement (the error goes
// to the error handler).
//
// Completion tokens follow Asio: a callback, asio::use_awaitable, asio::use_future (the default,
// so `bus.broadcastAndWait(...).get()` works in a worker without an event loop), asio::deferred.
// Handlers run on their associated executor, by default the bus executor, after the listeners of
// the events that arrived before what completed the wait (replies sent to the waiter before an
// acknowledgement). Except for a wait started on the bus (in a listener or a completion handler)
// whose handler has an executor of its own (a future's, say): that one is handed over from the
// thread running the connection, not through the bus (and on the SDK's own threads, starting it
// has the other thread take the connection over at once). So a listener may block on the `.get()`
// of a wait it started; later events wait until it returns (past
// ClusterOptions::receiveQueueLimit of them, the acknowledgements too: the wait then ends at its
// timeout). Not with ClusterOptions::listenersOnIoThread: there the waiting listener holds the
// only thread, which would read the acknowledgements, and `.get()` never returns. A callback or a
// coroutine holds nothing while it waits.
//
// An EventBus is owned by its Cluster and lives as long as it.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/string_view.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_ref.hpp>
#include <boost/system/error_code.hpp>

#include "clustervisor/error.hpp"

namespace clustervisor {

namespace detail {
class Connection;
}

// A listener of parsed payloads. `data` is valid until the listener returns (the SDK reuses the
// memory it parses into); a copy of it lives on the heap and may be kept and used anywhere
// (see clustervisor-worker(3) for a copy on the default resource).
using Listener = std::function<void(const boost::json::value& data, int sourceCluster)>;
// A listener that takes the payload as the JSON text that was sent, unparsed (empty for null);
// the view is valid until the listener returns.
using RawListener = std::function<void(std::string_view json, int sourceCluster)>;

// Called when a listener throws, with the exception; or when an event's payload is not valid
// JSON, with a std::runtime_error saying so (its parsed listeners are then not called; its raw
// listeners are).
using ErrorHandler = std::function<void(std::string_view event, std::exception_ptr error)>;

// One "key": value of a payload object written in place (EventBus::broadcast and emitTo), the
// element type of json::object's own braced constructor. The value is anything a json::value
// can be made of, nested braced lists included; it refers to the caller's arguments, so it lives
// only as long as the call it is written in.
using Field = std::pair<boost::json::string_view, boost::json::value_ref>;

// What a broadcastAndWait learned.
struct AckReport {
  int acked = 0;              // distinct clusters that acknowledged
  std::vector<int> clusters;  // which ones, ascending
  // Clusters the event reached, known only when the wait ended because the supervisor closed it
  // (every recipient acked or died); -1 when it ended at expectedClusters, at the timeout, or
  // because the connection was lost or the Cluster destroyed (Cluster::connected() then false).
  int recipients = -1;
  bool timedOut = false;  // the timeout elapsed before the wait was complete
};

// Removes its listener on remove(); a default-constructed or moved-from one does nothing.
// Dropping a Subscription does NOT remove the listener (like EventEmitter.on).
class Subscription {
 public:
  Subscription() = default;
  Subscription(Subscription&& other) noexcept
      : connection_(std::move(other.connection_)),
        event_(std::move(other.event_)),
        id_(std::exchange(other.id_, 0)) {}
  Subscription& operator=(Subscription&& other) noexcept {
    connection_ = std::move(other.connection_);
    event_ = std::move(other.event_);
    id_ = std::exchange(other.id_, 0);
    return *this;
  }
  void remove();
  explicit operator bool() const { return id_ != 0; }

 private:
  friend class EventBus;
  Subscription(std::weak_ptr<detail::Connection> connection, std::string event, std::uint64_t id)
      : connection_(std::move(connection)), event_(std::move(event)), id_(id) {}
  std::weak_ptr<detail::Connection> connection_;
  std::string event_;
  std::uint64_t id_ = 0;
};

class EventBus {
 public:
  using executor_type = boost::asio::any_io_executor;
  using Duration = std::chrono::milliseconds;
  static constexpr Duration kDefaultTimeout = std::chrono::seconds(10);

  explicit EventBus(std::shared_ptr<detail::Connection> connection);
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  executor_type get_executor() const;

  // To every other connected cluster. Throws clustervisor::Error (or sets ec) for an invalid name,
  // a payload over the limit, a full queue or a lost connection; nothing is half-sent. A double
  // that is infinite or NaN goes as null (JSON has no text for it), as JSON.stringify sends it.
  void broadcast(std::string_view event, const boost::json::value& data = nullptr);
  void broadcast(std::string_view event, const boost::json::value& data,
                 boost::system::error_code& ec);

  // To cluster `clusterId` (0..totalClusters-1, the sender included).
  void emitTo(int clusterId, std::string_view event, const boost::json::value& data = nullptr);
  void emitTo(int clusterId, std::string_view event, const boost::json::value& data,
              boost::system::error_code& ec);

  // The same with a payload object written in place, as for a json::value:
  //   bus.emitTo(0, "ban", {{"guild", guild}, {"user", user}, {"reason", "spam"}});
  // (a list of "key", value pairs; an empty list is null). Built in memory the SDK reuses from
  // one send to the next (4 KiB; a larger payload takes heap blocks for the rest) rather than on
  // the heap: the cheapest way to send a payload the worker builds per event. Other braced payloads
  // ({1, 2}, {v}) are json::value's, as before.
  void broadcast(std::string_view event, std::initializer_list<Field> data);
  void broadcast(std::string_view event, std::initializer_list<Field> data,
                 boost::system::error_code& ec);
  void emitTo(int clusterId, std::string_view event, std::initializer_list<Field> data);
  void emitTo(int clusterId, std::string_view event, std::initializer_list<Field> data,
              boost::system::error_code& ec);

  // The same with data that is already JSON text (sent as is; receivers parse it).
  void broadcastRaw(std::string_view event, std::string_view json, boost::system::error_code& ec);
  void emitToRaw(int clusterId, std::string_view event, std::string_view json,
                 boost::system::error_code& ec);

  // expectedClusters == 0: sends and completes at once with 0. Otherwise completes with the
  // number of distinct clusters that acknowledged, once `expectedClusters` did, the timeout
  // elapsed, or every recipient acknowledged or died (the supervisor tells). The error_code is
  // set when nothing was sent (see broadcast), and when the wait was cancelled: Asio's
  // per-operation cancellation (a bound cancellation slot, a coroutine's `||`), terminal or
  // partial, ends it with asio::error::operation_aborted and the count so far (total is not
  // supported: the event has been sent); emit it on the handler's executor (the bus executor,
  // get_executor(), for a plain callback). Signature: void(error_code, int). With use_future or
  // use_awaitable that error arrives as a boost::system::system_error (the base of
  // clustervisor::Error): catch that to handle both.
  template <typename Token = boost::asio::use_future_t<>>
  auto broadcastAndWait(std::string_view event, const boost::json::value& data,
                        Duration timeout = kDefaultTimeout, int expectedClusters = 0,
                        Token&& token = {}) {
    return initiateWait<void(boost::system::error_code, int), CountHandler>(
        event, data, timeout, expectedClusters, std::forward<Token>(token));
  }

  // The same, telling which clusters acknowledged. Signature: void(error_code, AckReport).
  template <typename Token = boost::asio::use_future_t<>>
  auto broadcastAndWaitDetailed(std::string_view event, const boost::json::value& data,
                                Duration timeout = kDefaultTimeout, int expectedClusters = 0,
                                Token&& token = {}) {
    return initiateWait<void(boost::system::error_code, AckReport), ReportHandler>(
        event, data, timeout, expectedClusters, std::forward<Token>(token));
  }

  // The same two with data that is already JSON text (sent as is, as by broadcastRaw; receivers
  // parse it). The text is copied, so a deferred operation may start after the caller's is gone.
  template <typename Token = boost::asio::use_future_t<>>
  auto broadcastAndWaitRaw(std::string_view event, std::string_view json,
                           Duration timeout = kDefaultTimeout, int expectedClusters = 0,
                           Token&& token = {}) {
    return initiateWait<void(boost::system::error_code, int), CountHandler>(
        event, std::string(json), timeout, expectedClusters, std::forward<Token>(token));
  }
  template <typename Token = boost::asio::use_future_t<>>
  auto broadcastAndWaitRawDetailed(std::string_view event, std::string_view json,
                                   Duration timeout = kDefaultTimeout, int expectedClusters = 0,
                                   Token&& token = {}) {
    return initiateWait<void(boost::system::error_code, AckReport), ReportHandler>(
        event, std::string(json), timeout, expectedClusters, std::forward<Token>(token));
  }

  // Starts delivering events to listeners (idempotent). Cluster::ready() calls it too.
  void listen();

  // Any number of listeners per event, called in the order they were added. on(), once() and
  // onRaw() throw clustervisor::Error (Errc::kInvalidEventName) for a name no event can have:
  // empty, or longer than 255 bytes.
  Subscription on(std::string_view event, Listener listener);
  // Like on(), removed after its first call.
  Subscription once(std::string_view event, Listener listener);
  // Like on(), with the payload as JSON text: for a worker that parses it its own way, forwards
  // it, or only counts events. The SDK parses a payload only for events that have a Listener.
  Subscription onRaw(std::string_view event, RawListener listener);
  void off(Subscription& subscription) { subscription.remove(); }
  void removeAllListeners(std::string_view event);

  // Where listener exceptions go. The default writes one line to stderr.
  void setErrorHandler(ErrorHandler handler);

 private:
  using CountHandler = boost::asio::any_completion_handler<void(boost::system::error_code, int)>;
  using ReportHandler =
      boost::asio::any_completion_handler<void(boost::system::error_code, AckReport)>;
  // What the four waits share. `Payload` is a json::value (the SDK serializes it) or JSON text
  // (std::string, sent as is). The name is an owned copy, and so is the payload once deferred: a
  // deferred operation may start after the caller's are gone.
  template <typename Signature, typename Handler, typename Payload, typename Token>
  auto initiateWait(std::string_view event, Payload&& data, Duration timeout, int expectedClusters,
                    Token&& token) {
    using Data = std::remove_cvref_t<Payload>;
    return boost::asio::async_initiate<Token, Signature>(
        [this](auto handler, const std::string& ev, const Data& d, Duration t, int expected) {
          startWait(ev, jsonText(d), t, expected, Handler(std::move(handler)));
        },
        token, std::string(event), std::forward<Payload>(data), timeout, expectedClusters);
  }
  // A payload's JSON text: a json::value serialized into a buffer of this thread's (valid until
  // the next send on this thread), or text as it is.
  static std::string_view jsonText(const boost::json::value& data);
  static std::string_view jsonText(const std::string& json) { return json; }
  void startWait(std::string_view event, std::string_view json, Duration timeout,
                 int expectedClusters, CountHandler handler);
  void startWait(std::string_view event, std::string_view json, Duration timeout,
                 int expectedClusters, ReportHandler handler);

  std::shared_ptr<detail::Connection> connection_;
};

}  // namespace clustervisor
