// SPDX-License-Identifier: MIT
#include "relay.hpp"

#include <algorithm>

#include "clustervisor/wire/frame.hpp"

namespace clustervisor {

Relay::Relay(std::uint32_t clusters) : connected_(clusters, false) {}

void Relay::resize(std::uint32_t clusters) {
  while (!live_.empty() && live_.back() >= clusters) {
    live_.pop_back();
  }
  connected_.resize(clusters, false);
  connectedCount_ = static_cast<std::uint32_t>(live_.size());
}

void Relay::connected(std::uint32_t id) {
  if (id < connected_.size() && !connected_[id]) {
    connected_[id] = true;
    ++connectedCount_;
    live_.insert(std::lower_bound(live_.begin(), live_.end(), id), id);
  }
}

void Relay::disconnected(std::uint32_t id) {
  if (id < connected_.size() && connected_[id]) {
    connected_[id] = false;
    --connectedCount_;
    live_.erase(std::lower_bound(live_.begin(), live_.end(), id));
  }
}

Relay::Decision Relay::route(std::uint32_t source, std::uint32_t target) {
  scratch_.clear();
  if (target == wire::kBroadcast) {
    for (const std::uint32_t id : live_) {
      if (id != source) {
        scratch_.push_back(id);
      }
    }
    return {Route::kDeliver, scratch_};
  }
  if (target >= connected_.size()) {
    return {Route::kUnknownTarget, {}};
  }
  if (!connected_[target]) {
    return {Route::kHold, {}};
  }
  scratch_.push_back(target);
  return {Route::kDeliver, scratch_};
}

}  // namespace clustervisor
