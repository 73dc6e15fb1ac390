// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include "clustervisor/wire/frame.hpp"
#include "outbox.hpp"

using clustervisor::Outbox;

namespace {
std::vector<std::byte> bytes(std::size_t n, int v) {
  return std::vector<std::byte>(n, static_cast<std::byte>(v));
}
std::size_t total(const std::vector<std::span<const std::byte>>& segments) {
  std::size_t sum = 0;
  for (const auto& s : segments) {
    sum += s.size();
  }
  return sum;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(outbox)

BOOST_AUTO_TEST_CASE(coalesces_small_copied_frames_into_one_segment) {
  Outbox box(1 << 20);
  for (int i = 0; i < 100; ++i) {
    BOOST_TEST(box.push(std::span<const std::byte>(bytes(50, i))));
  }
  std::vector<std::span<const std::byte>> out;
  BOOST_TEST(box.gather(out, 16) == 1u);
  BOOST_TEST(total(out) == 5000u);
  BOOST_TEST(static_cast<int>(out[0][50]) == 1);
}

BOOST_AUTO_TEST_CASE(shares_broadcast_buffers_without_copying) {
  Outbox a(1 << 20);
  Outbox b(1 << 20);
  const auto shared = std::make_shared<const std::vector<std::byte>>(bytes(Outbox::kShareFrom, 7));
  a.push(shared);
  b.push(shared);
  std::vector<std::span<const std::byte>> outA;
  std::vector<std::span<const std::byte>> outB;
  a.gather(outA, 4);
  b.gather(outB, 4);
  BOOST_TEST(outA[0].data() == outB[0].data());
  BOOST_TEST(shared.use_count() == 3);
}

BOOST_AUTO_TEST_CASE(control_frames_are_queued_past_the_limit_and_events_still_refused) {
  Outbox box(100);
  BOOST_TEST(box.push(std::span<const std::byte>(bytes(100, 1))));
  BOOST_TEST(!box.push(std::span<const std::byte>(bytes(1, 2))));
  box.pushControl(std::span<const std::byte>(bytes(30, 3)));
  BOOST_TEST(box.bytes() == 130u);
  BOOST_TEST(box.limit() == 100u);  // the limit is unchanged for what follows
  BOOST_TEST(!box.push(std::span<const std::byte>(bytes(1, 4))));
  std::vector<std::span<const std::byte>> out;
  box.gather(out, 16);
  BOOST_TEST(total(out) == 130u);
  BOOST_TEST(static_cast<int>(out.back().back()) == 3);  // after the event, in order
}

BOOST_AUTO_TEST_CASE(gather_stops_at_the_byte_cap_but_always_takes_one_segment) {
  Outbox box(1 << 20);
  const auto big = std::make_shared<const std::vector<std::byte>>(bytes(4096, 1));
  for (int i = 0; i < 4; ++i) {
    box.push(big);
  }
  std::vector<std::span<const std::byte>> out;
  BOOST_TEST(box.gather(out, 16, 9000) == 2u);
  BOOST_TEST(total(out) == 8192u);
  out.clear();
  BOOST_TEST(box.gather(out, 16, 100) == 1u);  // larger than the cap on its own
  box.consume(4096);
  out.clear();
  BOOST_TEST(box.gather(out, 16, 4096 + 4096) == 2u);
  box.consume(2 * 4096);
  BOOST_TEST(box.bytes() == 4096u);
}

BOOST_AUTO_TEST_CASE(refuses_a_push_over_the_limit_and_counts_bytes) {
  Outbox box(100);
  BOOST_TEST(box.push(std::span<const std::byte>(bytes(60, 1))));
  BOOST_TEST(!box.push(std::span<const std::byte>(bytes(41, 2))));
  BOOST_TEST(box.push(std::span<const std::byte>(bytes(40, 3))));
  BOOST_TEST(box.bytes() == 100u);
  std::vector<std::span<const std::byte>> out;
  box.gather(out, 8);
  box.consume(total(out));
  BOOST_TEST(box.empty());
  BOOST_TEST(box.bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(never_appends_to_a_segment_being_written) {
  Outbox box(1 << 20);
  box.push(std::span<const std::byte>(bytes(10, 1)));
  std::vector<std::span<const std::byte>> out;
  BOOST_TEST(box.gather(out, 8) == 1u);
  const auto* before = out[0].data();
  box.push(std::span<const std::byte>(bytes(10, 2)));
  BOOST_TEST(out[0].size() == 10u);
  BOOST_TEST(out[0].data() == before);
  box.consume(10);
  out.clear();
  BOOST_TEST(box.gather(out, 8) == 1u);
  BOOST_TEST(static_cast<int>(out[0][0]) == 2);
}

BOOST_AUTO_TEST_CASE(a_partial_write_is_consumed_and_the_rest_comes_next_in_order) {
  Outbox box(1 << 20);
  const auto shared = std::make_shared<const std::vector<std::byte>>(bytes(Outbox::kShareFrom, 9));
  box.push(std::span<const std::byte>(bytes(100, 1)));
  box.push(shared);
  box.push(std::span<const std::byte>(bytes(10, 2)));
  std::vector<std::span<const std::byte>> out;
  BOOST_TEST(box.gather(out, 16) == 3u);
  box.consume(60);  // part of the first segment
  BOOST_TEST(box.bytes() == 40u + Outbox::kShareFrom + 10u);
  // What was handed out may change again: a new frame joins the last owned segment.
  box.push(std::span<const std::byte>(bytes(5, 3)));
  out.clear();
  BOOST_TEST(box.gather(out, 16) == 3u);
  BOOST_TEST(out[0].size() == 40u);
  BOOST_TEST(static_cast<int>(out[0][0]) == 1);
  BOOST_TEST(out[2].size() == 15u);
  BOOST_TEST(static_cast<int>(out[2].back()) == 3);
  box.consume(40 + 24);  // the rest of the first, part of the shared one
  out.clear();
  box.gather(out, 16);
  BOOST_TEST(out[0].size() == Outbox::kShareFrom - 24u);
  box.consume(Outbox::kShareFrom - 24u);
  BOOST_TEST(box.bytes() == 15u);
  box.consume(15);
  BOOST_TEST(box.empty());
  BOOST_TEST(box.bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(memory_stays_near_the_bytes_queued_whatever_the_mix_of_frames) {
  // A receiver that takes nothing while small frames alternate with shared ones: each small
  // frame opens a segment of its own.
  const std::size_t limit = 1 << 20;
  Outbox mixed(limit);
  const auto shared = std::make_shared<const std::vector<std::byte>>(bytes(Outbox::kShareFrom, 5));
  while (mixed.push(shared) && mixed.push(std::span<const std::byte>(bytes(100, 6)))) {
  }
  BOOST_TEST(mixed.footprint() <= 2 * mixed.bytes() + Outbox::kFirstSegmentBytes);
  // A stream whose writer is always busy: every gather() closes the segments it hands out.
  Outbox stream(limit);
  std::vector<std::span<const std::byte>> out;
  for (int i = 0; stream.push(std::span<const std::byte>(bytes(128, 7))); ++i) {
    if (i % 300 == 0) {
      out.clear();
      stream.gather(out, 1024);
    }
  }
  BOOST_TEST(stream.footprint() <= 2 * stream.bytes() + Outbox::kCoalesceBytes);
}

BOOST_AUTO_TEST_CASE(counts_the_events_not_yet_written_in_full) {
  namespace wire = clustervisor::wire;
  Outbox box(1 << 20);
  const auto event = wire::encodeEvent(0, 1, 0, "e", R"({"n":1})");
  const auto large = std::make_shared<const std::vector<std::byte>>(
      wire::encodeEvent(0, 1, 0, "e", std::string(Outbox::kShareFrom, 'x')));
  box.push(std::span<const std::byte>(event));
  box.push(std::span<const std::byte>(event));
  box.pushControl(wire::encodeWaitClosed(1, 7, {1, 1}));  // not an event: not counted
  box.push(large);
  box.push(std::span<const std::byte>(event));
  BOOST_TEST(box.unsentEvents() == 4u);
  std::vector<std::span<const std::byte>> out;
  box.gather(out, 16);
  box.consume(event.size() + 1);  // the first written, the second begun: it is lost all the same
  BOOST_TEST(box.unsentEvents() == 3u);
  out.clear();
  box.gather(out, 16);
  box.consume(event.size() - 1);
  BOOST_TEST(box.unsentEvents() == 2u);
  out.clear();
  box.gather(out, 16);
  box.consume(box.bytes());
  BOOST_TEST(box.unsentEvents() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
