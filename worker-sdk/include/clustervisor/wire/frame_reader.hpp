// SPDX-License-Identifier: MIT
//
// FrameReader: the receive buffer behind a read loop. The owner reads socket bytes into
// prepare(), commit()s how many arrived, then takes whole frames with next() until it says
// kIncomplete. Frames are returned as views into the buffer, valid until the next prepare().
// Pure and single-threaded; it never allocates more than one frame limit plus one read chunk,
// and gives memory back after a large frame has passed. The buffer is allocated at the first
// prepare() and never zero-filled, so memory a connection's reads never reach is never touched
// (an idle connection costs a page, not a read chunk).
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "clustervisor/wire/frame.hpp"

namespace clustervisor::wire {

class FrameReader {
 public:
  explicit FrameReader(std::size_t maxFrameSize, std::size_t readChunk = 64 * 1024);

  // Space to read into; at least readChunk bytes, more when a large frame is half-received.
  std::span<std::byte> prepare();
  void commit(std::size_t bytesRead);

  struct Next {
    DecodeResult result;
    std::span<std::byte> frame;  // the whole frame when result.status == kFrame
  };
  // The next whole frame, or why there is none. After kMalformed/kOversize the stream is broken
  // and the reader must not be used again.
  Next next();

  std::size_t buffered() const { return end_ - begin_; }
  std::size_t maxFrameSize() const { return maxFrameSize_; }
  void setMaxFrameSize(std::size_t maxFrameSize) { maxFrameSize_ = maxFrameSize; }

 private:
  void reallocate(std::size_t capacity);  // keeps the bytes [begin_, end_), moved to 0

  std::size_t maxFrameSize_;
  std::size_t readChunk_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace clustervisor::wire
