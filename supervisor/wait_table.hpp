// SPDX-License-Identifier: MIT
//
// WaitTable: the supervisor's bookkeeping for broadcastAndWait. Pure: no I/O, no clock.
//
// When a worker sends an event with a non-zero correlation, the supervisor opens a wait naming
// the clusters the event was delivered to. Each recipient's first ack is forwarded to the waiter;
// duplicate, forged or late acks are ignored (and counted). When every recipient has acked or
// gone away, the wait closes and the waiter is told, so a broadcastAndWait never hangs on a dead
// cluster. A waiter that goes away takes its waits with it. Open waits per waiter are bounded,
// and expire() forgets waits opened before a given time (their waiters timed out long ago).
// Acks name the waiter's cluster, but during a rolling restart a cluster has two workers, each
// with waits of its own: each wait records its `owner` (the worker that made it: the caller's
// token, a pid), handed back with what is to be sent to it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "clustervisor/wire/frame.hpp"

namespace clustervisor {

class WaitTable {
 public:
  static constexpr std::size_t kDefaultMaxWaitsPerCluster = 16384;

  explicit WaitTable(std::size_t maxWaitsPerCluster = kDefaultMaxWaitsPerCluster)
      : maxWaitsPerCluster_(maxWaitsPerCluster) {}

  enum class OpenResult {
    kOpened,       // acks will be forwarded; the wait closes later
    kClosedEmpty,  // no recipients: close it now (WAIT_CLOSED with 0 of 0)
    kRejected,     // duplicate correlation or too many open waits: close it now, untracked
  };
  using Clock = std::chrono::steady_clock;
  OpenResult open(std::uint32_t waiter, std::uint64_t correlation,
                  std::span<const std::uint32_t> recipients, Clock::time_point now,
                  std::uint64_t owner);

  struct AckOutcome {
    bool forward = false;  // pass the ack on to the waiter (the worker `owner`)
    bool closed = false;   // the wait is complete: send WAIT_CLOSED with `body`
    wire::WaitClosedBody body;
    std::uint64_t owner = 0;
  };
  AckOutcome ack(std::uint32_t waiter, std::uint64_t correlation, std::uint32_t acker);

  struct Closed {
    std::uint32_t waiter;
    std::uint64_t correlation;
    wire::WaitClosedBody body;
    std::uint64_t owner;
  };
  // `cluster`'s worker `owner` disconnected: its own waits are dropped (recipientGone()).
  std::vector<Closed> clusterGone(std::uint32_t cluster, std::uint64_t owner);
  // `cluster` is no longer the recipient it was (its worker is gone, or was replaced by a
  // rolling restart: the new one was not sent those events): the waits it was a pending
  // recipient of lose it; those that become complete are returned (to be closed towards their
  // waiters).
  std::vector<Closed> recipientGone(std::uint32_t cluster);
  // The worker `owner` of `cluster` is gone: its own waits are dropped. How many.
  std::size_t ownerGone(std::uint32_t cluster, std::uint64_t owner);

  // The waiter stopped waiting (its timeout, or enough acks): forget the wait. Later acks for it
  // are ignored. False when there was no such wait of `owner`'s.
  bool cancel(std::uint32_t waiter, std::uint64_t correlation, std::uint64_t owner);

  // Forgets waits opened before `openedBefore`; returns how many.
  std::size_t expire(Clock::time_point openedBefore);

  std::size_t openWaits() const { return waits_.size(); }
  // Waits forgotten unfinished because their worker went away (ownerGone(), clusterGone()) or
  // they were open too long (expire()): nobody was told, so no other count has them.
  std::uint64_t discardedWaits() const { return discarded_; }
  std::uint64_t ignoredAcks() const { return ignoredAcks_; }

 private:
  struct Key {
    std::uint32_t waiter;
    std::uint64_t correlation;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return std::hash<std::uint64_t>{}(k.correlation * 0x9E3779B97F4A7C15ull ^ k.waiter);
    }
  };
  struct Wait {
    std::vector<std::uint32_t> pending;  // recipients that have neither acked nor gone
    std::uint32_t recipients = 0;
    std::uint32_t acked = 0;
    Clock::time_point opened;
    std::uint64_t owner = 0;
  };
  void dropped(std::uint32_t waiter);  // one of its waits is no longer open
  // Forgets, unfinished, the waits `matches(key, wait)` picks; how many.
  template <typename Predicate>
  std::size_t discard(const Predicate& matches);

  std::size_t maxWaitsPerCluster_;
  std::unordered_map<Key, Wait, KeyHash> waits_;
  std::unordered_map<std::uint32_t, std::size_t> waitsPerCluster_;
  std::uint64_t ignoredAcks_ = 0;
  std::uint64_t discarded_ = 0;
};

}  // namespace clustervisor
