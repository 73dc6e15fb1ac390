// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "send_buffer.hpp"

using clustervisor::detail::SendBuffer;

namespace {

void put(SendBuffer& buffer, std::string_view text) {
  std::memcpy(buffer.append(text.size()), text.data(), text.size());
}

std::string text(const SendBuffer& buffer) {
  return {reinterpret_cast<const char*>(buffer.data()), buffer.size()};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(send_buffer)

BOOST_AUTO_TEST_CASE(appended_bytes_stay_in_order_across_growth) {
  SendBuffer buffer;
  BOOST_TEST(buffer.empty());
  std::string expected;
  for (int i = 0; i < 5000; ++i) {
    const std::string frame = "frame " + std::to_string(i) + ";";
    put(buffer, frame);
    expected += frame;
  }
  BOOST_TEST(buffer.size() == expected.size());
  BOOST_TEST(buffer.capacity() >= buffer.size());
  BOOST_TEST(text(buffer) == expected);
}

BOOST_AUTO_TEST_CASE(consuming_takes_bytes_off_the_front_and_keeps_the_rest) {
  SendBuffer buffer;
  put(buffer, "abcdefgh");
  buffer.consume(0);
  BOOST_TEST(text(buffer) == "abcdefgh");
  buffer.consume(3);
  BOOST_TEST(text(buffer) == "defgh");
  put(buffer, "ij");
  BOOST_TEST(text(buffer) == "defghij");
  buffer.consume(buffer.size());
  BOOST_TEST(buffer.empty());
  put(buffer, "k");
  BOOST_TEST(text(buffer) == "k");
}

BOOST_AUTO_TEST_CASE(taking_bytes_off_the_front_moves_none_of_the_rest) {
  SendBuffer buffer;
  put(buffer, std::string(100000, 'x') + "rest");
  const std::byte* const start = buffer.data();
  buffer.consume(100000);
  BOOST_TEST(buffer.data() == start + 100000);  // draining a deep queue is not quadratic
  BOOST_TEST(text(buffer) == "rest");
}

BOOST_AUTO_TEST_CASE(a_queue_drained_as_fast_as_it_fills_keeps_its_memory_and_its_order) {
  SendBuffer buffer;
  std::string expected;
  std::size_t next = 0;  // the frame the front holds
  std::size_t capacity = 0;
  for (std::size_t i = 0; i < 20000; ++i) {
    const std::string frame = "frame " + std::to_string(i % 1000) + ";";
    put(buffer, frame);
    expected += frame;
    if (i == 100) {
      capacity = buffer.capacity();
    }
    if (i >= 100) {  // some 100 frames stay queued
      const std::string front = "frame " + std::to_string(next++ % 1000) + ";";
      BOOST_TEST(text(buffer).starts_with(front));
      buffer.consume(front.size());
      expected.erase(0, front.size());
    }
  }
  BOOST_TEST(text(buffer) == expected);
  BOOST_TEST(buffer.capacity() == capacity);  // the taken bytes' room is used again
}

BOOST_AUTO_TEST_CASE(growing_keeps_the_bytes_not_yet_taken_in_order) {
  SendBuffer buffer;
  put(buffer, std::string(1000, 'a') + std::string(2000, 'b'));
  buffer.consume(1000);
  const std::size_t capacity = buffer.capacity();
  put(buffer, std::string(capacity, 'c'));  // more than fits: new memory
  BOOST_TEST(buffer.capacity() > capacity);
  BOOST_TEST(text(buffer) == std::string(2000, 'b') + std::string(capacity, 'c'));
}

BOOST_AUTO_TEST_CASE(room_is_made_by_moving_bytes_down_only_once_as_many_were_taken_as_are_left) {
  SendBuffer moved;
  put(moved, std::string(3000, 'x') + std::string(1000, 'y'));
  const std::size_t capacity = moved.capacity();
  moved.consume(3000);
  put(moved, std::string(capacity - 1000, 'z'));  // fits once the 1000 bytes are moved down
  BOOST_TEST(moved.capacity() == capacity);
  BOOST_TEST(text(moved) == std::string(1000, 'y') + std::string(capacity - 1000, 'z'));

  // A few bytes taken off a full buffer: moving the rest down for every small append would be
  // quadratic again, so the buffer grows instead.
  SendBuffer grown;
  put(grown, std::string(100, 'x'));
  const std::size_t first = grown.capacity();
  put(grown, std::string(first - 200, 'x'));
  BOOST_TEST(grown.capacity() == first);
  grown.consume(1000);
  put(grown, std::string(200, 'y'));
  BOOST_TEST(grown.capacity() > first);
  BOOST_TEST(text(grown) == std::string(first - 1100, 'x') + std::string(200, 'y'));
}

BOOST_AUTO_TEST_CASE(a_queue_taken_from_and_filled_at_once_stays_within_twice_its_peak) {
  SendBuffer buffer;
  std::size_t peak = 0;
  for (std::size_t i = 0; i < 100000; ++i) {
    put(buffer, std::string(100 + i % 300, 'x'));
    peak = std::max(peak, buffer.size());
    if (i % 3 != 0) {
      buffer.consume(std::min(buffer.size(), std::size_t{250}));
    }
  }
  BOOST_TEST(buffer.capacity() <= 2 * peak + 1000);
}

BOOST_AUTO_TEST_CASE(clearing_keeps_the_memory_and_releasing_gives_it_back) {
  SendBuffer buffer;
  put(buffer, std::string(100000, 'x'));
  const std::size_t capacity = buffer.capacity();
  buffer.clear();
  BOOST_TEST(buffer.empty());
  BOOST_TEST(buffer.capacity() == capacity);
  put(buffer, "kept");
  BOOST_TEST(buffer.capacity() == capacity);  // reused, not reallocated
  buffer.release();
  BOOST_TEST(buffer.empty());
  BOOST_TEST(buffer.capacity() == 0u);
  BOOST_TEST(buffer.data() == nullptr);
  put(buffer, "again");
  BOOST_TEST(text(buffer) == "again");
}

BOOST_AUTO_TEST_CASE(a_written_buffer_keeps_its_memory_while_bursts_fill_it) {
  SendBuffer buffer;
  // A burst of 8 MiB, written: the next one reuses the memory, whatever its size.
  put(buffer, std::string(8 * 1024 * 1024, 'x'));
  const std::size_t capacity = buffer.capacity();
  BOOST_TEST(capacity > SendBuffer::kKeepUpTo);
  buffer.clearAfterWrite();
  BOOST_TEST(buffer.empty());
  BOOST_TEST(buffer.capacity() == capacity);
  put(buffer, std::string(capacity / 4, 'y'));
  buffer.clearAfterWrite();
  BOOST_TEST(buffer.capacity() == capacity);
  // A write that filled less than a quarter of it: the burst is over, the memory goes back.
  put(buffer, "small");
  buffer.clearAfterWrite();
  BOOST_TEST(buffer.empty());
  BOOST_TEST(buffer.capacity() == 0u);
  // Up to kKeepUpTo, the memory always stays.
  put(buffer, std::string(100000, 'z'));
  buffer.clear();
  put(buffer, "small");
  const std::size_t kept = buffer.capacity();
  buffer.clearAfterWrite();
  BOOST_TEST(buffer.capacity() == kept);
}

BOOST_AUTO_TEST_CASE(swapping_and_moving_exchange_whole_queues) {
  SendBuffer a;
  SendBuffer b;
  put(a, "..first");
  a.consume(2);  // a queue partly taken is exchanged from where it stands
  put(b, "second queue");
  swap(a, b);
  BOOST_TEST(text(a) == "second queue");
  BOOST_TEST(text(b) == "first");
  SendBuffer c(std::move(a));
  BOOST_TEST(text(c) == "second queue");
  BOOST_TEST(a.empty());  // NOLINT(bugprone-use-after-move): a moved-from buffer is empty
  BOOST_TEST(a.capacity() == 0u);
  b = std::move(c);
  BOOST_TEST(text(b) == "second queue");
  BOOST_TEST(c.empty());  // NOLINT(bugprone-use-after-move)
}

BOOST_AUTO_TEST_SUITE_END()
