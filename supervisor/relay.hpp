// SPDX-License-Identifier: MIT
//
// Relay: decides where an event goes, from its header alone. Pure: no I/O, no clock.
//
// The relay knows which clusters exist (0..clusters-1) and which are connected (said hello and
// were welcomed). A broadcast goes to every connected cluster except its sender; an emitTo goes
// to its target when connected, is held while the target exists but is not connected (it is
// starting or restarting), and is refused when the target does not exist. Recipients come back
// as a span into the relay's own storage, valid until the next call, so the hot path does not
// allocate.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace clustervisor {

class Relay {
 public:
  explicit Relay(std::uint32_t clusters);

  // The cluster count changed (a reload): clusters at or above `clusters` no longer exist and
  // are no longer connected; new ones start disconnected.
  void resize(std::uint32_t clusters);

  std::uint32_t clusters() const { return static_cast<std::uint32_t>(connected_.size()); }
  void connected(std::uint32_t id);
  void disconnected(std::uint32_t id);
  bool isConnected(std::uint32_t id) const { return id < connected_.size() && connected_[id]; }
  std::uint32_t connectedCount() const { return connectedCount_; }

  enum class Route {
    kDeliver,        // to every cluster in recipients (none is possible for a broadcast)
    kHold,           // the target exists but is not connected: keep it for later
    kUnknownTarget,  // no such cluster: refuse and count
  };
  struct Decision {
    Route route;
    std::span<const std::uint32_t> recipients;
  };
  Decision route(std::uint32_t source, std::uint32_t target);

 private:
  std::vector<bool> connected_;
  std::vector<std::uint32_t> live_;  // connected ids, ascending
  std::vector<std::uint32_t> scratch_;
  std::uint32_t connectedCount_ = 0;
};

}  // namespace clustervisor
