// SPDX-License-Identifier: MIT
//
// HeldMessages: events sent with emitTo to a cluster that is not connected (starting or
// restarting), kept in order until it is back. Pure: the current time is passed in.
//
// Bounded per cluster by count, bytes and age. A message that does not fit is dropped and
// counted; messages older than the age limit are dropped (and counted) whenever the cluster's
// queue is touched and by expire(), which the supervisor runs periodically. The supervisor logs
// every drop; nothing is lost silently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace clustervisor {

class HeldMessages {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    std::size_t maxMessages = 1000;
    std::size_t maxBytes = 16 * 1024 * 1024;
    Clock::duration maxAge = std::chrono::seconds(60);
  };

  HeldMessages(std::uint32_t clusters, Limits limits);

  // The cluster count changed (a reload). Messages held for clusters that no longer exist are
  // dropped, and their number returned (the caller reports them).
  std::size_t resize(std::uint32_t clusters);
  // New limits (a reload) for messages held from now on; what is held stays.
  void setLimits(Limits limits) { limits_ = limits; }

  // False when the message does not fit the limits (it is dropped and counted).
  bool hold(std::uint32_t cluster, std::vector<std::byte> frame, Clock::time_point now);

  // Everything still fresh for `cluster`, oldest first; the queue is emptied.
  std::vector<std::vector<std::byte>> take(std::uint32_t cluster, Clock::time_point now);

  // Drops `cluster`'s messages older than the age limit; returns how many were dropped.
  std::size_t expire(std::uint32_t cluster, Clock::time_point now);

  std::size_t heldMessages(std::uint32_t cluster) const { return queues_[cluster].messages.size(); }
  std::size_t heldBytes(std::uint32_t cluster) const { return queues_[cluster].bytes; }
  const Limits& limits() const { return limits_; }
  std::uint64_t droppedFull() const { return droppedFull_; }
  std::uint64_t droppedExpired() const { return droppedExpired_; }

 private:
  struct Held {
    Clock::time_point since;
    std::vector<std::byte> frame;
  };
  struct Queue {
    std::deque<Held> messages;
    std::size_t bytes = 0;
  };
  std::size_t dropExpired(Queue& queue, Clock::time_point now);

  Limits limits_;
  std::vector<Queue> queues_;
  std::uint64_t droppedFull_ = 0;
  std::uint64_t droppedExpired_ = 0;
};

}  // namespace clustervisor
