// SPDX-License-Identifier: MIT
#include "clustervisor/event_bus.hpp"

#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serializer.hpp>

#include "connection.hpp"

namespace clustervisor {

using boost::system::error_code;

namespace {

// Boost.JSON's text of `data` (see serialize()).
std::string_view serializeAsIs(const boost::json::value& data) {
  constexpr std::size_t kFirst = 512;
  constexpr std::size_t kKept = 1024 * 1024;  // a larger buffer is not kept after a huge payload
  thread_local boost::json::serializer serializer;
  thread_local std::string text;
  if (text.size() < kFirst || text.size() > kKept) {
    text.resize(kFirst);
    text.shrink_to_fit();
  }
  serializer.reset(&data);
  std::size_t used = 0;
  for (;;) {
    used += serializer.read(text.data() + used, text.size() - used).size();
    if (serializer.done()) {
      return {text.data(), used};
    }
    text.resize(2 * text.size());
  }
}

// Makes every infinite or NaN double in `data` null, as JavaScript's JSON.stringify writes them
// (JSON has no text for them); false when it holds none.
bool nullNonFinite(boost::json::value& data) {
  if (double* number = data.if_double()) {
    if (std::isfinite(*number)) {
      return false;
    }
    data = nullptr;
    return true;
  }
  bool changed = false;
  if (auto* array = data.if_array()) {
    for (auto& item : *array) {
      changed = nullNonFinite(item) || changed;
    }
  } else if (auto* object = data.if_object()) {
    for (auto& member : *object) {
      changed = nullNonFinite(member.value()) || changed;
    }
  }
  return changed;
}

// The JSON text of `data`, in a buffer of this thread's that is reused from one send to the next
// (the SDK copies the text into its send queue before the call returns), so a send does not
// allocate, zero-fill or set up a serializer per event. Valid until the next call on this thread.
// Boost.JSON writes an infinite or NaN double as Infinity or NaN, which no JSON parser takes (a
// receiver's listeners would never see the event): such a value goes as null, as
// JSON.stringify sends it. Only a text that has one of those words is looked at more closely.
std::string_view serialize(const boost::json::value& data) {
  const std::string_view text = serializeAsIs(data);
  if (text.find("Infinity") == std::string_view::npos &&
      text.find("NaN") == std::string_view::npos) {
    return text;
  }
  boost::json::value copy(data, boost::json::storage_ptr());  // on the heap, not in the caller's
  return nullNonFinite(copy) ? serializeAsIs(copy) : text;
}

// The memory a payload written in place is built in, one per thread: on the heap, an object and
// every string too long to be stored in place would cost an allocation and a free per event.
struct BuildMemory {
  static constexpr std::size_t kSize = 4096;
  alignas(std::max_align_t) unsigned char buffer[kSize];
  bool busy = false;
};
thread_local BuildMemory buildMemory;

template <typename Send>
void withBuilt(std::initializer_list<Field> fields, Send send) {
  if (fields.size() == 0) {
    send(boost::json::value(nullptr));  // as an empty list is for a json::value parameter
    return;
  }
  if (buildMemory.busy) {
    // A send made while one is built (a conversion that sends).
    send(boost::json::value(boost::json::object(fields)));
    return;
  }
  buildMemory.busy = true;
  struct Done {
    ~Done() { buildMemory.busy = false; }
  } done;
  // A resource of its own per send: what a payload larger than the buffer needed is freed with
  // it, and the next send starts from the buffer again. On a monotonic resource the value's
  // destruction visits and frees nothing.
  boost::json::monotonic_resource memory(buildMemory.buffer, BuildMemory::kSize);
  send(boost::json::value(boost::json::object(fields, &memory)));
}

// Throws for `ec`, with the values that make it: the cluster id asked for and the total, the
// event name's length, the payload limit.
void throwIf(const error_code& ec, const char* what, const detail::Connection& connection,
             std::string_view event, int clusterId = -1) {
  if (!ec) {
    return;
  }
  std::string message = std::string(what) + ": " + ec.message();
  if (ec == Errc::kInvalidClusterId) {
    message += " (cluster id " + std::to_string(clusterId) + "; totalClusters is " +
               std::to_string(connection.totalClusters()) + ")";
  } else if (ec == Errc::kInvalidEventName) {
    message += " (got " + std::to_string(event.size()) + " bytes)";
  } else if (ec == Errc::kPayloadTooLarge) {
    message += " (" + std::to_string(connection.maxPayload()) + " bytes)";
  }
  throw Error(ec, message);
}

}  // namespace

void Subscription::remove() {
  if (auto connection = connection_.lock()) {
    connection->removeListener(event_, id_);
  }
  connection_.reset();
  id_ = 0;
}

EventBus::EventBus(std::shared_ptr<detail::Connection> connection)
    : connection_(std::move(connection)) {}

EventBus::executor_type EventBus::get_executor() const {
  return connection_->busExecutor();
}

void EventBus::broadcast(std::string_view event, const boost::json::value& data) {
  error_code ec;
  broadcast(event, data, ec);
  throwIf(ec, "broadcast", *connection_, event);
}

void EventBus::broadcast(std::string_view event, const boost::json::value& data, error_code& ec) {
  broadcastRaw(event, serialize(data), ec);
}

void EventBus::emitTo(int clusterId, std::string_view event, const boost::json::value& data) {
  error_code ec;
  emitTo(clusterId, event, data, ec);
  throwIf(ec, "emitTo", *connection_, event, clusterId);
}

void EventBus::emitTo(int clusterId, std::string_view event, const boost::json::value& data,
                      error_code& ec) {
  emitToRaw(clusterId, event, serialize(data), ec);
}

void EventBus::broadcast(std::string_view event, std::initializer_list<Field> data) {
  error_code ec;
  broadcast(event, data, ec);
  throwIf(ec, "broadcast", *connection_, event);
}

void EventBus::broadcast(std::string_view event, std::initializer_list<Field> data,
                         error_code& ec) {
  withBuilt(data, [&](const boost::json::value& built) { broadcast(event, built, ec); });
}

void EventBus::emitTo(int clusterId, std::string_view event, std::initializer_list<Field> data) {
  error_code ec;
  emitTo(clusterId, event, data, ec);
  throwIf(ec, "emitTo", *connection_, event, clusterId);
}

void EventBus::emitTo(int clusterId, std::string_view event, std::initializer_list<Field> data,
                      error_code& ec) {
  withBuilt(data, [&](const boost::json::value& built) { emitTo(clusterId, event, built, ec); });
}

void EventBus::broadcastRaw(std::string_view event, std::string_view json, error_code& ec) {
  ec = connection_->sendEvent(wire::kBroadcast, 0, event, json);
}

void EventBus::emitToRaw(int clusterId, std::string_view event, std::string_view json,
                         error_code& ec) {
  ec = connection_->checkTarget(clusterId);
  if (!ec) {
    ec = connection_->sendEvent(static_cast<std::uint32_t>(clusterId), 0, event, json);
  }
}

namespace {

// A listener for a name no event can have would never be called: refused, as a send is.
void checkListenedName(std::string_view event, const char* what,
                       const detail::Connection& connection) {
  if (event.empty() || event.size() > wire::kMaxEventNameLength) {
    throwIf(make_error_code(Errc::kInvalidEventName), what, connection, event);
  }
}

}  // namespace

Subscription EventBus::on(std::string_view event, Listener listener) {
  checkListenedName(event, "on", *connection_);
  return {connection_, std::string(event),
          connection_->addListener(event, std::move(listener), false)};
}

Subscription EventBus::onRaw(std::string_view event, RawListener listener) {
  checkListenedName(event, "onRaw", *connection_);
  return {connection_, std::string(event), connection_->addRawListener(event, std::move(listener))};
}

Subscription EventBus::once(std::string_view event, Listener listener) {
  checkListenedName(event, "once", *connection_);
  return {connection_, std::string(event),
          connection_->addListener(event, std::move(listener), true)};
}

void EventBus::listen() {
  connection_->startListening();
}

void EventBus::removeAllListeners(std::string_view event) {
  connection_->removeAllListeners(event);
}

void EventBus::setErrorHandler(ErrorHandler handler) {
  connection_->setErrorHandler(std::move(handler));
}

std::string_view EventBus::jsonText(const boost::json::value& data) {
  return serialize(data);
}

void EventBus::startWait(std::string_view event, std::string_view json, Duration timeout,
                         int expectedClusters, CountHandler handler) {
  connection_->startWait(event, json, timeout, expectedClusters, std::move(handler));
}

void EventBus::startWait(std::string_view event, std::string_view json, Duration timeout,
                         int expectedClusters, ReportHandler handler) {
  connection_->startWait(event, json, timeout, expectedClusters, std::move(handler));
}

}  // namespace clustervisor
