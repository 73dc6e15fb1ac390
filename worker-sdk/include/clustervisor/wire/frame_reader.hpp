// SPDX-License-Identifier: MIT
//
// FrameReader: the receive buffer behind a read loop. The owner reads socket bytes into
// prepare(), commit()s how many arrived, then takes whole frames with next() until it says
// kIncomplete. Frames are returned as views into the buffer, valid until the next prepare().
// Pure and single-threaded; it never allocates more than one frame limit plus one read chunk,
// and gives memory back after a large frame has passed. The buffer is allocated at the first
// prepare() and never zero-filled, so memory a connection's reads never reach is never touched
// (an idle connection costs a page, not a read chunk).
//
// Readers that take turns on one thread can share one larger buffer instead: prepare(scratch)
// reads into `scratch` when what is buffered is small and it and a read chunk fit there, and
// keepRest() moves what a read leaves (the start of a frame, frames not taken yet) into the
// reader's own buffer before any other reader prepares the scratch. Between reads such a reader
// holds only that rest (a buffer of 4 KiB, or the rest's size when larger).
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
  // The same, in `scratch` (the whole of it past what is buffered) when what is buffered is small
  // (the start of a frame, up to 4 KiB) and it and the space prepare() would give fit there;
  // otherwise prepare(), after keepRest().
  std::span<std::byte> prepare(std::span<std::byte> scratch);
  void commit(std::size_t bytesRead);
  // Moves what is buffered out of the scratch of prepare(scratch), if it is there, into the
  // reader's own buffer; the scratch may then be prepared by another reader. With nothing
  // buffered, also frees an own buffer larger than a rest needs (one a large frame grew). Frames
  // next() returned before are views into the scratch, and stay valid only until then.
  void keepRest();

  struct Next {
    DecodeResult result;
    std::span<std::byte> frame;  // the whole frame when result.status == kFrame
  };
  // The next whole frame, or why there is none. After kMalformed/kOversize the stream is broken
  // and the reader must not be used again.
  Next next();

  std::size_t buffered() const { return end_ - begin_; }
  // The memory of the reader's own buffer (not the scratch's).
  std::size_t ownBytes() const { return capacity_; }
  std::size_t maxFrameSize() const { return maxFrameSize_; }
  void setMaxFrameSize(std::size_t maxFrameSize) { maxFrameSize_ = maxFrameSize; }

 private:
  void reallocate(std::size_t capacity);  // keeps the bytes [begin_, end_), moved to 0
  // Frees the own buffer when it is larger than a rest needs (its contents are not needed).
  void releaseLargeOwnBuffer();
  // What a read should have room for: a read chunk, or the rest of a half-received frame.
  std::size_t wanted() const;
  std::byte* data() const { return scratch_.empty() ? buffer_.get() : scratch_.data(); }

  std::size_t maxFrameSize_;
  std::size_t readChunk_;
  std::unique_ptr<std::byte[]> buffer_;  // the own buffer
  std::size_t capacity_ = 0;
  std::span<std::byte> scratch_;  // set while the bytes are in a shared scratch
  std::size_t begin_ = 0;         // of the bytes buffered, in data()
  std::size_t end_ = 0;
};

}  // namespace clustervisor::wire
