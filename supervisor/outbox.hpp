// SPDX-License-Identifier: MIT
//
// Outbox: the bytes waiting to be written to one worker. Pure: no I/O.
//
// Frames arrive either as shared buffers (a large broadcast is encoded once and the same buffer
// is queued for every recipient) or as bytes to copy (appended to the last owned segment so
// bursts coalesce into few large writes). worthSharing() says which: for a frame smaller than
// kShareFrom, a copy into the current segment costs less than a segment of its own (a reference
// count, an I/O vector entry, a node to free) and keeps bursts of broadcasts in few large
// writes. Either way a frame counts its full size against the limit. The writer takes a batch of
// segments with gather(), writes them in one gathered write, then consume()s what the socket
// took. Segments handed out by gather() are never modified until consumed; after a write that
// took only part of them, the next gather() starts where it stopped.
// The total is bounded: a push that would exceed the limit is refused, and the caller counts
// and logs the drop.
#pragma once

#include <cstddef>
#include <deque>
#include <limits>
#include <memory>
#include <span>
#include <vector>

namespace clustervisor {

class Outbox {
 public:
  using Shared = std::shared_ptr<const std::vector<std::byte>>;
  static constexpr std::size_t kCoalesceBytes = 64 * 1024;
  static constexpr std::size_t kShareFrom = 1024;
  static constexpr std::size_t kFirstSegmentBytes = 4096;

  explicit Outbox(std::size_t limitBytes) : limit_(limitBytes) {}

  static bool worthSharing(std::size_t frameSize) { return frameSize >= kShareFrom; }
  bool push(Shared frame);  // a frame worthSharing()
  bool push(std::span<const std::byte> frame);
  // A control frame (STOP, TOTAL_CHANGED, WAIT_CLOSED, a forwarded ACK: tens of bytes) is queued
  // even over the limit: losing one would leave a worker with a wrong total or a wait that never
  // closes, while the limit is for the event flood. The supervisor bounds them by holding back
  // a worker whose own waits' acknowledgements it does not read (Supervisor::noteOwnBacklog).
  void pushControl(std::span<const std::byte> frame);

  // Up to maxSegments segments from the front, and no more than maxBytes unless the first
  // segment alone is larger; returns how many were added to `out`.
  std::size_t gather(std::vector<std::span<const std::byte>>& out, std::size_t maxSegments,
                     std::size_t maxBytes = std::numeric_limits<std::size_t>::max());
  // Removes the first `bytes` bytes (a write took them); a segment written in part keeps the
  // rest, and what gather() handed out may be modified again.
  void consume(std::size_t bytes);

  bool empty() const { return segments_.empty(); }
  // The event frames not yet written in full (one the socket took part of counts): those lost
  // with the worker if its connection ends now. Control frames are not counted. O(frames).
  std::size_t unsentEvents() const;
  // The memory the queued segments take (capacity, not bytes queued); O(segments).
  std::size_t footprint() const;
  std::size_t bytes() const { return bytes_; }
  std::size_t limit() const { return limit_; }

 private:
  struct Segment {
    Shared shared;                 // set for shared frames
    std::vector<std::byte> owned;  // used otherwise
    std::span<const std::byte> bytes() const {
      return shared ? std::span<const std::byte>(*shared) : std::span<const std::byte>(owned);
    }
  };
  std::size_t limit_;
  std::size_t bytes_ = 0;
  std::size_t inFlight_ = 0;      // front segments handed out by gather()
  std::size_t frontWritten_ = 0;  // bytes of the front segment already written
  std::deque<Segment> segments_;
};

}  // namespace clustervisor
