// SPDX-License-Identifier: MIT
#include "spawn_queue.hpp"

#include <algorithm>

namespace clustervisor {

void SpawnQueue::push(std::uint32_t cluster) {
  if (!contains(cluster)) {
    queue_.push_back(cluster);
  }
}

void SpawnQueue::remove(std::uint32_t cluster) {
  std::erase(queue_, cluster);
  settled(cluster);
}

bool SpawnQueue::contains(std::uint32_t cluster) const {
  return std::find(queue_.begin(), queue_.end(), cluster) != queue_.end();
}

SpawnQueue::Poll SpawnQueue::poll(Clock::time_point now) const {
  Poll poll;
  if (queue_.empty() || pending_) {
    return poll;
  }
  if (lastStart_ && now < *lastStart_ + delay_) {
    poll.wakeAt = *lastStart_ + delay_;
    return poll;
  }
  poll.start = queue_.front();
  return poll;
}

void SpawnQueue::started(std::uint32_t cluster, Clock::time_point now) {
  std::erase(queue_, cluster);
  lastStart_ = now;
  if (waitForReady_) {
    pending_ = cluster;
  }
}

void SpawnQueue::settled(std::uint32_t cluster) {
  if (pending_ == cluster) {
    pending_.reset();
  }
}

void SpawnQueue::setPace(std::chrono::milliseconds delay, bool waitForReady) {
  delay_ = delay;
  waitForReady_ = waitForReady;
  if (!waitForReady_) {
    pending_.reset();
  }
}

}  // namespace clustervisor
