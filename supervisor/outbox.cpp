// SPDX-License-Identifier: MIT
#include "outbox.hpp"

#include <algorithm>
#include <limits>

#include "clustervisor/wire/frame.hpp"

namespace clustervisor {

bool Outbox::push(Shared frame) {
  if (bytes_ + frame->size() > limit_) {
    return false;
  }
  bytes_ += frame->size();
  segments_.push_back({std::move(frame), {}});
  return true;
}

void Outbox::pushControl(std::span<const std::byte> frame) {
  const std::size_t limit = limit_;
  limit_ = std::numeric_limits<std::size_t>::max();
  push(frame);
  limit_ = limit;
}

bool Outbox::push(std::span<const std::byte> frame) {
  if (bytes_ + frame.size() > limit_) {
    return false;
  }
  bytes_ += frame.size();
  // Append to the last segment when it is ours, not being written, and still small.
  if (segments_.size() > inFlight_ && !segments_.back().shared &&
      segments_.back().owned.size() + frame.size() <= kCoalesceBytes) {
    auto& owned = segments_.back().owned;
    owned.insert(owned.end(), frame.begin(), frame.end());
    return true;
  }
  // Sized for what is likely to follow, never much more than is queued already (the limit
  // counts bytes, not capacity): behind an owned segment (full, or being written), as large as
  // that one, up to a whole write, so a stream's segments are not copied as they grow; behind a
  // shared frame, this frame; a first segment, 4 KiB.
  std::size_t size = kFirstSegmentBytes;
  if (!segments_.empty()) {
    const Segment& last = segments_.back();
    size = last.shared ? frame.size()
                       : std::clamp(last.owned.size(), kFirstSegmentBytes, kCoalesceBytes);
  }
  Segment segment;
  segment.owned.reserve(std::max(frame.size(), size));
  segment.owned.assign(frame.begin(), frame.end());
  segments_.push_back(std::move(segment));
  return true;
}

std::size_t Outbox::gather(std::vector<std::span<const std::byte>>& out, std::size_t maxSegments,
                           std::size_t maxBytes) {
  const std::size_t limit = std::min(maxSegments, segments_.size());
  std::size_t n = 0;
  std::size_t bytes = 0;
  for (; n < limit; ++n) {
    const auto segment = segments_[n].bytes().subspan(n == 0 ? frontWritten_ : 0);
    if (n > 0 && (bytes >= maxBytes || segment.size() > maxBytes - bytes)) {
      break;
    }
    bytes += segment.size();
    out.push_back(segment);
  }
  inFlight_ = n;
  return n;
}

std::size_t Outbox::footprint() const {
  std::size_t total = 0;
  for (const auto& segment : segments_) {
    total += segment.shared ? segment.shared->size() : segment.owned.capacity();
  }
  return total;
}

void Outbox::consume(std::size_t bytes) {
  inFlight_ = 0;
  while (bytes > 0 && !segments_.empty()) {
    const std::size_t left = segments_.front().bytes().size() - frontWritten_;
    if (bytes < left) {
      frontWritten_ += bytes;
      bytes_ -= bytes;
      return;
    }
    bytes -= left;
    bytes_ -= left;
    frontWritten_ = 0;
    segments_.pop_front();
  }
}

std::size_t Outbox::unsentEvents() const {
  // Every segment starts at a frame and holds whole frames (push() appends whole frames).
  std::size_t events = 0;
  bool front = true;
  for (const Segment& segment : segments_) {
    const auto bytes = segment.bytes();
    std::size_t at = 0;
    while (at < bytes.size()) {
      const auto decoded =
          wire::decodeFrame(bytes.subspan(at), std::numeric_limits<std::size_t>::max());
      if (decoded.status != wire::DecodeStatus::kFrame) {
        break;  // not a frame: nothing this outbox queued
      }
      const std::size_t end = at + decoded.header.length;
      if (decoded.header.type == wire::FrameType::kEvent && (!front || end > frontWritten_)) {
        ++events;
      }
      at = end;
    }
    front = false;
  }
  return events;
}

}  // namespace clustervisor
