// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>

#include "clustervisor/wire/frame_reader.hpp"

namespace wire = clustervisor::wire;

namespace {

std::vector<std::byte> stream() {
  std::vector<std::byte> out;
  auto append = [&](const std::vector<std::byte>& f) { out.insert(out.end(), f.begin(), f.end()); };
  append(wire::encodeEvent(0, 1, 0, "first", R"({"n":1})"));
  append(wire::encodeAck(1, 0, 99));
  append(wire::encodeEvent(0, wire::kBroadcast, 7, "second", std::string(300, 'z')));
  append(wire::encodeReady());
  return out;
}

struct Seen {
  std::vector<wire::FrameType> types;
  std::vector<std::string> names;
};

// Takes the whole frames the reader has.
void takeFrames(wire::FrameReader& reader, Seen& seen) {
  for (;;) {
    auto next = reader.next();
    if (next.result.status != wire::DecodeStatus::kFrame) {
      BOOST_REQUIRE(next.result.status == wire::DecodeStatus::kIncomplete);
      return;
    }
    seen.types.push_back(next.result.header.type);
    if (next.result.header.type == wire::FrameType::kEvent) {
      seen.names.emplace_back(wire::eventName(next.frame, next.result.header));
    }
  }
}

void feed(wire::FrameReader& reader, std::span<const std::byte> bytes, Seen& seen) {
  while (!bytes.empty()) {
    auto space = reader.prepare();
    const std::size_t n = std::min(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), n);
    reader.commit(n);
    bytes = bytes.subspan(n);
    takeFrames(reader, seen);
  }
}

// Reads `bytes` in pieces of up to `piece` into `scratch` (prepare(scratch)), takes the frames of
// each read, and keeps the rest (keepRest()) before `between` runs: what another reader sharing
// the scratch would do to it meanwhile.
void feedThroughScratch(wire::FrameReader& reader, std::span<const std::byte> bytes,
                        std::span<std::byte> scratch, std::size_t piece, Seen& seen,
                        const std::function<void()>& between) {
  while (!bytes.empty()) {
    auto space = reader.prepare(scratch);
    const std::size_t n = std::min({space.size(), bytes.size(), piece});
    std::memcpy(space.data(), bytes.data(), n);
    reader.commit(n);
    bytes = bytes.subspan(n);
    takeFrames(reader, seen);
    reader.keepRest();
    between();
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(frame_reader)

BOOST_AUTO_TEST_CASE(decodes_stream_split_at_every_byte_boundary) {
  const auto bytes = stream();
  for (std::size_t split = 0; split <= bytes.size(); ++split) {
    wire::FrameReader reader(wire::maxFrameSizeFor(4096), 16);
    Seen seen;
    feed(reader, std::span(bytes).first(split), seen);
    feed(reader, std::span(bytes).subspan(split), seen);
    BOOST_TEST_CONTEXT("split at " << split) {
      BOOST_TEST(seen.types.size() == 4u);
      BOOST_TEST(seen.names == (std::vector<std::string>{"first", "second"}));
      BOOST_TEST(reader.buffered() == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(decodes_stream_fed_one_byte_at_a_time) {
  const auto bytes = stream();
  wire::FrameReader reader(wire::maxFrameSizeFor(4096), 8);
  Seen seen;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    feed(reader, std::span(bytes).subspan(i, 1), seen);
  }
  BOOST_TEST(seen.names == (std::vector<std::string>{"first", "second"}));
}

BOOST_AUTO_TEST_CASE(prepare_makes_room_for_a_frame_larger_than_a_chunk) {
  const auto frame = wire::encodeEvent(0, 1, 0, "big", std::string(100000, 'q'));
  wire::FrameReader reader(wire::maxFrameSizeFor(200000), 1024);
  auto space = reader.prepare();
  std::memcpy(space.data(), frame.data(), 100);
  reader.commit(100);
  BOOST_TEST(static_cast<int>(reader.next().result.status) ==
             static_cast<int>(wire::DecodeStatus::kIncomplete));
  space = reader.prepare();
  BOOST_TEST(space.size() >= frame.size() - 100);
  std::memcpy(space.data(), frame.data() + 100, frame.size() - 100);
  reader.commit(frame.size() - 100);
  const auto next = reader.next();
  BOOST_TEST(static_cast<int>(next.result.status) == static_cast<int>(wire::DecodeStatus::kFrame));
  BOOST_TEST(wire::eventPayload(next.frame, next.result.header).size() == 100000u);
}

BOOST_AUTO_TEST_CASE(truncated_frame_stays_incomplete_and_buffered) {
  const auto frame = wire::encodeEvent(0, 1, 0, "e", "12345");
  wire::FrameReader reader(wire::maxFrameSizeFor(4096));
  auto space = reader.prepare();
  std::memcpy(space.data(), frame.data(), frame.size() - 1);
  reader.commit(frame.size() - 1);
  BOOST_TEST(static_cast<int>(reader.next().result.status) ==
             static_cast<int>(wire::DecodeStatus::kIncomplete));
  BOOST_TEST(reader.buffered() == frame.size() - 1);
}

BOOST_AUTO_TEST_CASE(garbage_after_a_good_frame_is_reported_after_the_frame) {
  auto bytes = wire::encodeEvent(0, 1, 0, "ok", "1");
  for (int i = 0; i < 24; ++i) {
    bytes.push_back(std::byte{0xFF});
  }
  wire::FrameReader reader(wire::maxFrameSizeFor(4096));
  auto space = reader.prepare();
  std::memcpy(space.data(), bytes.data(), bytes.size());
  reader.commit(bytes.size());
  BOOST_TEST(static_cast<int>(reader.next().result.status) ==
             static_cast<int>(wire::DecodeStatus::kFrame));
  BOOST_TEST(static_cast<int>(reader.next().result.status) ==
             static_cast<int>(wire::DecodeStatus::kOversize));
}

BOOST_AUTO_TEST_CASE(readers_sharing_a_scratch_keep_what_each_read_leaves_over) {
  // Two readers take turns on one scratch, which is scribbled over between their reads (as the
  // other reader's read would): each still gets its own frames whole and in order, at every size
  // of read, the frame cut anywhere.
  const auto bytes = stream();
  for (std::size_t piece = 1; piece <= bytes.size(); ++piece) {
    std::vector<std::byte> scratch(512);
    const auto scribble = [&] { std::ranges::fill(scratch, std::byte{0xEE}); };
    wire::FrameReader first(wire::maxFrameSizeFor(4096), 16);
    wire::FrameReader second(wire::maxFrameSizeFor(4096), 16);
    Seen seenFirst;
    Seen seenSecond;
    feedThroughScratch(first, std::span(bytes).first(bytes.size() / 2), scratch, piece, seenFirst,
                       scribble);
    feedThroughScratch(second, bytes, scratch, piece, seenSecond, scribble);
    feedThroughScratch(first, std::span(bytes).subspan(bytes.size() / 2), scratch, piece, seenFirst,
                       scribble);
    BOOST_TEST_CONTEXT("reads of " << piece << " bytes") {
      for (const Seen* seen : {&seenFirst, &seenSecond}) {
        BOOST_TEST(seen->types.size() == 4u);
        BOOST_TEST(seen->names == (std::vector<std::string>{"first", "second"}));
      }
      BOOST_TEST(first.buffered() == 0u);
      BOOST_TEST(second.buffered() == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_frame_larger_than_the_scratch_is_read_into_the_reader_s_own_buffer) {
  const auto frame = wire::encodeEvent(0, 1, 0, "big", std::string(5000, 'q'));
  std::vector<std::byte> scratch(1024);
  wire::FrameReader reader(wire::maxFrameSizeFor(8192), 256);
  auto space = reader.prepare(scratch);
  BOOST_TEST((space.data() == scratch.data()));
  std::memcpy(space.data(), frame.data(), 100);
  reader.commit(100);
  BOOST_TEST(static_cast<int>(reader.next().result.status) ==
             static_cast<int>(wire::DecodeStatus::kIncomplete));
  // The rest of the frame does not fit the scratch: the reader's own buffer takes all of it.
  space = reader.prepare(scratch);
  BOOST_TEST((space.data() < scratch.data() || space.data() >= scratch.data() + scratch.size()));
  BOOST_TEST(space.size() >= frame.size() - 100);
  std::memcpy(space.data(), frame.data() + 100, frame.size() - 100);
  reader.commit(frame.size() - 100);
  std::ranges::fill(scratch, std::byte{0xEE});
  const auto next = reader.next();
  BOOST_REQUIRE(static_cast<int>(next.result.status) ==
                static_cast<int>(wire::DecodeStatus::kFrame));
  BOOST_TEST(wire::eventPayload(next.frame, next.result.header) == std::string(5000, 'q'));
  // Once it is taken, the memory it took goes (an idle reader waits with none of it), and reads
  // go to the scratch again.
  BOOST_TEST(reader.ownBytes() >= frame.size());
  reader.keepRest();
  BOOST_TEST(reader.ownBytes() == 0u);
  BOOST_TEST((reader.prepare(scratch).data() == scratch.data()));
}

BOOST_AUTO_TEST_CASE(most_of_a_large_frame_is_not_copied_back_into_the_scratch_at_every_read) {
  // 8000 bytes of a frame that fits the scratch arrived: the rest of it is read after them in
  // the reader's own buffer, not into the scratch behind a copy of them (a frame arriving in
  // small pieces would be copied over and over).
  const auto frame = wire::encodeEvent(0, 1, 0, "big", std::string(20000, 'q'));
  std::vector<std::byte> scratch(64 * 1024);
  wire::FrameReader reader(wire::maxFrameSizeFor(32768), 1024);
  auto space = reader.prepare(scratch);
  std::memcpy(space.data(), frame.data(), 8000);
  reader.commit(8000);
  BOOST_TEST(static_cast<int>(reader.next().result.status) ==
             static_cast<int>(wire::DecodeStatus::kIncomplete));
  reader.keepRest();
  std::ranges::fill(scratch, std::byte{0xEE});
  for (std::size_t at = 8000; at < frame.size();) {
    space = reader.prepare(scratch);
    BOOST_TEST((space.data() < scratch.data() || space.data() >= scratch.data() + scratch.size()));
    const std::size_t n = std::min<std::size_t>(1000, frame.size() - at);
    std::memcpy(space.data(), frame.data() + at, n);
    reader.commit(n);
    at += n;
    if (at < frame.size()) {
      BOOST_TEST(static_cast<int>(reader.next().result.status) ==
                 static_cast<int>(wire::DecodeStatus::kIncomplete));
    }
    reader.keepRest();
  }
  const auto next = reader.next();
  BOOST_REQUIRE(static_cast<int>(next.result.status) ==
                static_cast<int>(wire::DecodeStatus::kFrame));
  BOOST_TEST(wire::eventPayload(next.frame, next.result.header) == std::string(20000, 'q'));
}

BOOST_AUTO_TEST_SUITE_END()
