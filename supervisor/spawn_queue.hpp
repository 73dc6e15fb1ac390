// SPDX-License-Identifier: MIT
//
// SpawnQueue: the order and pace in which clusters are started. Pure: the caller passes the
// current time and is told which cluster to start now, or when to ask again.
//
// Clusters start in the order they were queued (at start-up: by id), at least start.delay apart.
// With start.wait_for_ready, the next one starts only after the previous one settled: became
// ready, exited, failed to spawn, or reached its start timeout. The start timeout is what keeps a
// slow cluster from wedging the queue: the supervisor reports it as settled then.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>

namespace clustervisor {

class SpawnQueue {
 public:
  using Clock = std::chrono::steady_clock;

  struct Poll {
    std::optional<std::uint32_t> start;       // start this cluster now (and call started())
    std::optional<Clock::time_point> wakeAt;  // otherwise: ask again then (unset: on an event)
  };

  SpawnQueue(std::chrono::milliseconds delay, bool waitForReady)
      : delay_(delay), waitForReady_(waitForReady) {}

  // Adds a cluster at the end; a cluster already queued keeps its place.
  void push(std::uint32_t cluster);
  // Takes a cluster out (the supervisor stops, or it no longer exists).
  void remove(std::uint32_t cluster);
  Poll poll(Clock::time_point now) const;
  // The cluster poll() named was started (or its spawn failed) at `now`.
  void started(std::uint32_t cluster, Clock::time_point now);
  // Its process exists since `now` (the spawn returns after the exec): start.delay counts from
  // here, so the processes themselves are at least start.delay apart however long a spawn took.
  void spawned(Clock::time_point now) { lastStart_ = now; }
  // The cluster no longer holds the queue (ready, exited, timed out). Others are ignored.
  void settled(std::uint32_t cluster);

  bool contains(std::uint32_t cluster) const;
  std::size_t size() const { return queue_.size(); }
  std::optional<std::uint32_t> waitingFor() const { return pending_; }
  void setPace(std::chrono::milliseconds delay, bool waitForReady);

 private:
  std::chrono::milliseconds delay_;
  bool waitForReady_;
  std::deque<std::uint32_t> queue_;
  std::optional<Clock::time_point> lastStart_;
  std::optional<std::uint32_t> pending_;  // started, not settled (only with waitForReady)
};

}  // namespace clustervisor
