// SPDX-License-Identifier: MIT
#include "wait_table.hpp"

#include <algorithm>

namespace clustervisor {

WaitTable::OpenResult WaitTable::open(std::uint32_t waiter, std::uint64_t correlation,
                                      std::span<const std::uint32_t> recipients,
                                      Clock::time_point now) {
  if (recipients.empty()) {
    return OpenResult::kClosedEmpty;
  }
  auto& count = waitsPerCluster_[waiter];
  if (count >= maxWaitsPerCluster_) {
    return OpenResult::kRejected;
  }
  Wait wait;
  wait.pending.assign(recipients.begin(), recipients.end());
  wait.recipients = static_cast<std::uint32_t>(recipients.size());
  wait.opened = now;
  if (!waits_.emplace(Key{waiter, correlation}, std::move(wait)).second) {
    return OpenResult::kRejected;
  }
  ++count;
  return OpenResult::kOpened;
}

WaitTable::AckOutcome WaitTable::ack(std::uint32_t waiter, std::uint64_t correlation,
                                     std::uint32_t acker) {
  AckOutcome out;
  auto it = waits_.find(Key{waiter, correlation});
  if (it == waits_.end()) {
    ++ignoredAcks_;
    return out;
  }
  Wait& wait = it->second;
  auto pos = std::find(wait.pending.begin(), wait.pending.end(), acker);
  if (pos == wait.pending.end()) {
    ++ignoredAcks_;
    return out;
  }
  *pos = wait.pending.back();
  wait.pending.pop_back();
  ++wait.acked;
  out.forward = true;
  if (wait.pending.empty()) {
    out.closed = true;
    out.body = {wait.recipients, wait.acked};
    waits_.erase(it);
    --waitsPerCluster_[waiter];
  }
  return out;
}

std::vector<WaitTable::Closed> WaitTable::clusterGone(std::uint32_t cluster) {
  std::vector<Closed> closed;
  for (auto it = waits_.begin(); it != waits_.end();) {
    if (it->first.waiter == cluster) {
      it = waits_.erase(it);
      continue;
    }
    auto& pending = it->second.pending;
    if (auto pos = std::find(pending.begin(), pending.end(), cluster); pos != pending.end()) {
      *pos = pending.back();
      pending.pop_back();
      if (pending.empty()) {
        closed.push_back(
            {it->first.waiter, it->first.correlation, {it->second.recipients, it->second.acked}});
        --waitsPerCluster_[it->first.waiter];
        it = waits_.erase(it);
        continue;
      }
    }
    ++it;
  }
  waitsPerCluster_.erase(cluster);
  // Deterministic order for the caller (and its tests): by waiter, then correlation.
  std::sort(closed.begin(), closed.end(), [](const Closed& a, const Closed& b) {
    return a.waiter != b.waiter ? a.waiter < b.waiter : a.correlation < b.correlation;
  });
  return closed;
}

bool WaitTable::cancel(std::uint32_t waiter, std::uint64_t correlation) {
  if (waits_.erase(Key{waiter, correlation}) == 0) {
    return false;
  }
  --waitsPerCluster_[waiter];
  return true;
}

std::size_t WaitTable::expire(Clock::time_point openedBefore) {
  std::size_t expired = 0;
  for (auto it = waits_.begin(); it != waits_.end();) {
    if (it->second.opened < openedBefore) {
      --waitsPerCluster_[it->first.waiter];
      it = waits_.erase(it);
      ++expired;
    } else {
      ++it;
    }
  }
  return expired;
}

}  // namespace clustervisor
