// SPDX-License-Identifier: MIT
//
// WorkerConnection: the supervisor's end of one worker's socket.
//
// A read loop takes bytes in large reads, cuts them into frames with wire::FrameReader and hands
// each frame to the FrameSink (the supervisor) in place, so the sink can stamp and forward it
// without a copy. A write loop drains the bounded Outbox with gathered writes. Both are
// coroutines on the supervisor's single io_context thread. The first transport error, end of
// file or protocol error ends both loops and reports once to the sink; after close() nothing is
// reported. Owned by a shared_ptr held by the supervisor's cluster slot and by the two loops.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <chrono>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "clustervisor/wire/frame_reader.hpp"
#include "outbox.hpp"

namespace clustervisor {

class WorkerConnection;

// What the connection reports to its owner.
class FrameSink {
 public:
  // A whole frame, decoded and checked; `frame` may be modified (the source gets stamped).
  virtual void onFrame(WorkerConnection& connection, const wire::Header& header,
                       std::span<std::byte> frame) = 0;
  // The connection ended. `protocolError` is true when the worker sent something malformed.
  virtual void onDisconnected(WorkerConnection& connection, const std::string& reason,
                              bool protocolError) = 0;

 protected:
  ~FrameSink() = default;
};

class WorkerConnection : public std::enable_shared_from_this<WorkerConnection> {
 public:
  WorkerConnection(boost::asio::local::stream_protocol::socket socket, std::uint32_t clusterId,
                   std::size_t maxFrameSize, std::size_t outboxLimit, FrameSink& sink);

  void start();
  void close();  // idempotent; no callback afterwards

  // The worker process is gone: stop writing, but keep reading what it sent before it exited
  // until end of file, or close after `timeout` (a descendant may hold the socket open). The
  // end is reported to the sink as usual.
  void retire(std::chrono::milliseconds timeout);
  bool retiring() const { return retiring_; }

  std::uint32_t clusterId() const { return clusterId_; }
  bool open() const { return !closed_; }
  bool welcomed() const { return welcomed_; }
  void setWelcomed() { welcomed_ = true; }

  // Queue bytes for the worker; false when the outbox is full (the frame is dropped).
  bool send(std::span<const std::byte> frame);
  bool send(Outbox::Shared frame);
  // A control frame: queued even when the outbox is at its limit (see Outbox::pushControl).
  // False only when the connection no longer takes frames.
  bool sendControl(std::span<const std::byte> frame);
  std::size_t queuedBytes() const { return outbox_.bytes(); }

  // When bytes last arrived from the worker (taken once per read, not per frame); the start of
  // the connection before that.
  std::chrono::steady_clock::time_point lastRead() const { return lastRead_; }

 private:
  boost::asio::awaitable<void> readLoop();
  boost::asio::awaitable<void> writeLoop();
  void fail(const std::string& reason, bool protocolError);
  void wakeWriter();

  boost::asio::local::stream_protocol::socket socket_;
  std::uint32_t clusterId_;
  wire::FrameReader reader_;
  Outbox outbox_;
  boost::asio::steady_timer writerWakeup_;
  boost::asio::steady_timer retireTimer_;
  FrameSink& sink_;
  bool closed_ = false;
  bool writerIdle_ = false;  // the write loop waits on writerWakeup_
  bool welcomed_ = false;
  bool retiring_ = false;
  std::chrono::steady_clock::time_point lastRead_ = std::chrono::steady_clock::now();
};

}  // namespace clustervisor
