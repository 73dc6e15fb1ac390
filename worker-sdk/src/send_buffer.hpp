// SPDX-License-Identifier: MIT
//
// The bytes of a connection's send queue: appended to at the back without being zero-filled
// first, taken off at the front as the socket takes them.
//
// A std::vector<std::byte> zero-fills every byte it grows by; with an allocator that does not,
// the vector constructs, moves and destroys its bytes one call at a time, which only an
// optimizing build turns into a loop the compiler can drop. In the unoptimized builds the
// sanitizer suites run, that made the byte-by-byte calls the largest part of a sending worker's
// own time. This buffer copies with memcpy and memmove in every build.
//
// Taking bytes off the front moves nothing: the live bytes start at an offset. An append that
// needs room moves them down to the start of the memory when at least as many bytes have been
// taken off as are left, and otherwise grows the memory to twice what is live, so the bytes
// moved never add up to more than the bytes taken and appended, and the memory stays within
// about twice the most that was queued. (Moving the rest down at every take made draining a
// deep queue quadratic: 64 MiB taken off 208 KiB at a time, as a full socket takes it, moved
// ~10 GiB, half a second of a core.)
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>

namespace clustervisor::detail {

class SendBuffer {
 public:
  SendBuffer() = default;
  SendBuffer(const SendBuffer&) = delete;
  SendBuffer& operator=(const SendBuffer&) = delete;
  SendBuffer(SendBuffer&& other) noexcept { swap(other); }
  SendBuffer& operator=(SendBuffer&& other) noexcept {
    SendBuffer gone(std::move(other));
    swap(gone);
    return *this;
  }
  ~SendBuffer() = default;

  [[nodiscard]] std::byte* data() noexcept { return bytes_.get() + begin_; }
  [[nodiscard]] const std::byte* data() const noexcept { return bytes_.get() + begin_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  // Makes room for `n` more bytes at the back and returns where they start; the caller writes
  // all of them. Throws std::bad_alloc.
  std::byte* append(std::size_t n) {
    if (capacity_ - begin_ - size_ < n) {
      if (begin_ >= size_ && capacity_ - size_ >= n) {
        std::memmove(bytes_.get(), bytes_.get() + begin_, size_);
        begin_ = 0;
      } else {
        reallocate(std::max(2 * (size_ + n), kMinCapacity));
      }
    }
    std::byte* at = bytes_.get() + begin_ + size_;
    size_ += n;
    return at;
  }

  // Takes the first `n` bytes (at most size()) off the front.
  void consume(std::size_t n) noexcept {
    assert(n <= size_);
    size_ -= n;
    begin_ = size_ == 0 ? 0 : begin_ + n;
  }

  void clear() noexcept {
    begin_ = 0;
    size_ = 0;
  }

  // Empties the buffer once the bytes it held are written. Its memory is kept for the next
  // write, unless it is over kKeepUpTo and those bytes filled less than a quarter of it: the
  // burst that needed it is over. (Giving back every buffer over the limit made a stream that
  // runs far ahead allocate, grow and fault in its queue afresh at every write: half the
  // events/s of a sender 8 MiB ahead, bench/README.md. Judging by the bytes queued for the
  // next write instead gave it back too early in such a stream, and was no better.)
  void clearAfterWrite() noexcept {
    if (capacity_ > kKeepUpTo && size_ < capacity_ / 4) {
      release();
    } else {
      clear();
    }
  }
  static constexpr std::size_t kKeepUpTo = 4 * 1024 * 1024;

  // Empties the buffer and gives its memory back.
  void release() noexcept {
    bytes_.reset();
    begin_ = 0;
    size_ = 0;
    capacity_ = 0;
  }

  void swap(SendBuffer& other) noexcept {
    std::swap(bytes_, other.bytes_);
    std::swap(begin_, other.begin_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }
  friend void swap(SendBuffer& a, SendBuffer& b) noexcept { a.swap(b); }

 private:
  static constexpr std::size_t kMinCapacity = 4096;

  void reallocate(std::size_t capacity) {
    auto bytes = std::make_unique_for_overwrite<std::byte[]>(capacity);
    if (size_ > 0) {
      std::memcpy(bytes.get(), bytes_.get() + begin_, size_);
    }
    bytes_ = std::move(bytes);
    begin_ = 0;
    capacity_ = capacity;
  }

  std::unique_ptr<std::byte[]> bytes_;
  std::size_t begin_ = 0;  // where the live bytes start; 0 whenever there are none
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace clustervisor::detail
