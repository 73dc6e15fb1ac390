// SPDX-License-Identifier: MIT
#include "wait_table.hpp"

#include <algorithm>

namespace clustervisor {

WaitTable::OpenResult WaitTable::open(std::uint32_t waiter, std::uint64_t correlation,
                                      std::span<const std::uint32_t> recipients,
                                      Clock::time_point now, std::uint64_t owner) {
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
  wait.owner = owner;
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
  out.owner = wait.owner;
  if (wait.pending.empty()) {
    out.closed = true;
    out.body = {wait.recipients, wait.acked};
    waits_.erase(it);
    dropped(waiter);
  }
  return out;
}

void WaitTable::dropped(std::uint32_t waiter) {
  if (auto it = waitsPerCluster_.find(waiter); it != waitsPerCluster_.end() && --it->second == 0) {
    waitsPerCluster_.erase(it);
  }
}

std::vector<WaitTable::Closed> WaitTable::clusterGone(std::uint32_t cluster, std::uint64_t owner) {
  ownerGone(cluster, owner);
  return recipientGone(cluster);
}

std::vector<WaitTable::Closed> WaitTable::recipientGone(std::uint32_t cluster) {
  std::vector<Closed> closed;
  for (auto it = waits_.begin(); it != waits_.end();) {
    auto& pending = it->second.pending;
    if (auto pos = std::find(pending.begin(), pending.end(), cluster); pos != pending.end()) {
      *pos = pending.back();
      pending.pop_back();
      if (pending.empty()) {
        closed.push_back({it->first.waiter,
                          it->first.correlation,
                          {it->second.recipients, it->second.acked},
                          it->second.owner});
        dropped(it->first.waiter);
        it = waits_.erase(it);
        continue;
      }
    }
    ++it;
  }
  // Deterministic order for the caller (and its tests): by waiter, then correlation.
  std::sort(closed.begin(), closed.end(), [](const Closed& a, const Closed& b) {
    return a.waiter != b.waiter ? a.waiter < b.waiter : a.correlation < b.correlation;
  });
  return closed;
}

std::size_t WaitTable::ownerGone(std::uint32_t cluster, std::uint64_t owner) {
  if (!waitsPerCluster_.contains(cluster)) {
    return 0;  // no wait of the cluster's: nothing to look through
  }
  return discard([&](const Key& key, const Wait& wait) {
    return key.waiter == cluster && wait.owner == owner;
  });
}

bool WaitTable::cancel(std::uint32_t waiter, std::uint64_t correlation, std::uint64_t owner) {
  const auto it = waits_.find(Key{waiter, correlation});
  if (it == waits_.end() || it->second.owner != owner) {
    return false;
  }
  waits_.erase(it);
  dropped(waiter);
  return true;
}

std::size_t WaitTable::expire(Clock::time_point openedBefore) {
  return discard([&](const Key&, const Wait& wait) { return wait.opened < openedBefore; });
}

template <typename Predicate>
std::size_t WaitTable::discard(const Predicate& matches) {
  const std::size_t gone = std::erase_if(waits_, [&](const auto& entry) {
    if (!matches(entry.first, entry.second)) {
      return false;
    }
    dropped(entry.first.waiter);
    return true;
  });
  discarded_ += gone;
  return gone;
}

}  // namespace clustervisor
