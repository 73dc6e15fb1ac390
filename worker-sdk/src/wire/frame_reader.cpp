// SPDX-License-Identifier: MIT
#include "clustervisor/wire/frame_reader.hpp"

#include <algorithm>
#include <cstring>

namespace clustervisor::wire {

FrameReader::FrameReader(std::size_t maxFrameSize, std::size_t readChunk)
    : maxFrameSize_(maxFrameSize), readChunk_(readChunk), buffer_(readChunk) {}

std::span<std::byte> FrameReader::prepare() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    // A large frame grew the buffer; do not keep that memory for an idle connection.
    if (buffer_.size() > 4 * readChunk_) {
      buffer_.resize(readChunk_);
      buffer_.shrink_to_fit();
    }
  }
  // Room for the rest of a half-received frame (its length is known once 4 bytes are here),
  // or one read chunk, whichever is larger.
  std::size_t wanted = readChunk_;
  if (end_ - begin_ >= 4) {
    const DecodeResult peek =
        decodeFrame(std::span(buffer_).subspan(begin_, end_ - begin_), maxFrameSize_);
    if (peek.status == DecodeStatus::kIncomplete && peek.header.length > end_ - begin_) {
      wanted = std::max(wanted, static_cast<std::size_t>(peek.header.length) - (end_ - begin_));
    }
  }
  if (buffer_.size() - end_ < wanted) {
    if (begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buffer_.size() - end_ < wanted) {
      buffer_.resize(end_ + wanted);
    }
  }
  return std::span(buffer_).subspan(end_);
}

void FrameReader::commit(std::size_t bytesRead) {
  end_ += bytesRead;
}

FrameReader::Next FrameReader::next() {
  Next out;
  const auto pending = std::span(buffer_).subspan(begin_, end_ - begin_);
  out.result = decodeFrame(pending, maxFrameSize_);
  if (out.result.status == DecodeStatus::kFrame) {
    out.frame = pending.first(out.result.header.length);
    begin_ += out.result.header.length;
  }
  return out;
}

}  // namespace clustervisor::wire
