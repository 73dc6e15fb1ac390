// SPDX-License-Identifier: MIT
#include "clustervisor/wire/frame_reader.hpp"

#include <algorithm>
#include <cstring>

namespace clustervisor::wire {

namespace {
// The own buffer of a reader that reads into a scratch keeps what a read leaves, usually the
// start of one frame: up to this size it is kept for the next rest, a larger one is freed.
constexpr std::size_t kRestBytes = 4096;
}  // namespace

FrameReader::FrameReader(std::size_t maxFrameSize, std::size_t readChunk)
    : maxFrameSize_(maxFrameSize), readChunk_(readChunk) {}

void FrameReader::reallocate(std::size_t capacity) {
  // new[] of std::byte leaves the bytes uninitialized: pages are touched only when read into.
  std::unique_ptr<std::byte[]> fresh(new std::byte[capacity]);
  if (end_ > begin_) {
    std::memcpy(fresh.get(), data() + begin_, end_ - begin_);
  }
  end_ -= begin_;
  begin_ = 0;
  buffer_ = std::move(fresh);
  capacity_ = capacity;
  scratch_ = {};
}

std::size_t FrameReader::wanted() const {
  // Room for the rest of a half-received frame (its length is known once 4 bytes are here),
  // or one read chunk, whichever is larger.
  std::size_t wanted = readChunk_;
  if (end_ - begin_ >= 4) {
    const DecodeResult peek =
        decodeFrame(std::span<const std::byte>(data() + begin_, end_ - begin_), maxFrameSize_);
    if (peek.status == DecodeStatus::kIncomplete && peek.header.length > end_ - begin_) {
      wanted = std::max(wanted, static_cast<std::size_t>(peek.header.length) - (end_ - begin_));
    }
  }
  return wanted;
}

std::span<std::byte> FrameReader::prepare(std::span<std::byte> scratch) {
  const std::size_t buffered = end_ - begin_;
  // A large rest (most of a large frame, arriving in pieces) stays in the own buffer until the
  // frame is whole, rather than be copied into the scratch and back at every read.
  if (buffered + wanted() > scratch.size() || buffered > kRestBytes) {
    keepRest();
    return prepare();
  }
  if (buffered > 0) {
    std::memmove(scratch.data(), data() + begin_, buffered);
  }
  begin_ = 0;
  end_ = buffered;
  scratch_ = scratch;
  // What the own buffer held is in the scratch now; a large one is not kept for the next rest.
  releaseLargeOwnBuffer();
  return scratch.subspan(end_);
}

void FrameReader::releaseLargeOwnBuffer() {
  if (capacity_ > kRestBytes) {
    buffer_.reset();
    capacity_ = 0;
  }
}

void FrameReader::keepRest() {
  const std::size_t buffered = end_ - begin_;
  if (scratch_.empty()) {
    // Read into the own buffer (a large frame): once it is taken, the buffer goes too, so an idle
    // connection does not keep a large frame's worth.
    if (buffered == 0) {
      begin_ = end_ = 0;
      releaseLargeOwnBuffer();
    }
    return;
  }
  if (capacity_ < buffered) {
    reallocate(std::max(buffered, kRestBytes));  // copies from the scratch
    return;
  }
  if (buffered > 0) {
    std::memcpy(buffer_.get(), scratch_.data() + begin_, buffered);
  }
  begin_ = 0;
  end_ = buffered;
  scratch_ = {};
}

std::span<std::byte> FrameReader::prepare() {
  if (!scratch_.empty()) {
    keepRest();
  }
  if (begin_ == end_) {
    begin_ = end_ = 0;
    // A large frame grew the buffer; do not keep that memory for an idle connection.
    if (capacity_ > 4 * readChunk_) {
      reallocate(readChunk_);
    }
  }
  const std::size_t wanted = this->wanted();
  if (capacity_ - end_ < wanted) {
    if (begin_ > 0) {
      std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (capacity_ - end_ < wanted) {
      reallocate(end_ + wanted);
    }
  }
  return {buffer_.get() + end_, capacity_ - end_};
}

void FrameReader::commit(std::size_t bytesRead) {
  end_ += bytesRead;
}

FrameReader::Next FrameReader::next() {
  Next out;
  const auto pending = std::span<std::byte>(data() + begin_, end_ - begin_);
  out.result = decodeFrame(pending, maxFrameSize_);
  if (out.result.status == DecodeStatus::kFrame) {
    out.frame = pending.first(out.result.header.length);
    begin_ += out.result.header.length;
  }
  return out;
}

}  // namespace clustervisor::wire
