// SPDX-License-Identifier: MIT
#include "held_messages.hpp"

namespace clustervisor {

HeldMessages::HeldMessages(std::uint32_t clusters, Limits limits)
    : limits_(limits), queues_(clusters) {}

std::size_t HeldMessages::resize(std::uint32_t clusters) {
  std::size_t dropped = 0;
  for (std::size_t id = clusters; id < queues_.size(); ++id) {
    dropped += queues_[id].messages.size();
  }
  queues_.resize(clusters);
  return dropped;  // the caller counts them as dropped for a removed cluster, not as over a limit
}

bool HeldMessages::hold(std::uint32_t cluster, std::vector<std::byte> frame,
                        Clock::time_point now) {
  Queue& queue = queues_[cluster];
  dropExpired(queue, now);
  if (queue.messages.size() + 1 > limits_.maxMessages ||
      queue.bytes + frame.size() > limits_.maxBytes) {
    ++droppedFull_;
    return false;
  }
  queue.bytes += frame.size();
  queue.messages.push_back({now, std::move(frame)});
  return true;
}

std::vector<std::vector<std::byte>> HeldMessages::take(std::uint32_t cluster,
                                                       Clock::time_point now) {
  Queue& queue = queues_[cluster];
  dropExpired(queue, now);
  std::vector<std::vector<std::byte>> out;
  out.reserve(queue.messages.size());
  for (auto& held : queue.messages) {
    out.push_back(std::move(held.frame));
  }
  queue.messages.clear();
  queue.bytes = 0;
  return out;
}

std::size_t HeldMessages::expire(std::uint32_t cluster, Clock::time_point now) {
  return dropExpired(queues_[cluster], now);
}

std::size_t HeldMessages::dropExpired(Queue& queue, Clock::time_point now) {
  std::size_t dropped = 0;
  while (!queue.messages.empty() && now - queue.messages.front().since > limits_.maxAge) {
    queue.bytes -= queue.messages.front().frame.size();
    queue.messages.pop_front();
    ++dropped;
  }
  droppedExpired_ += dropped;
  return dropped;
}

}  // namespace clustervisor
