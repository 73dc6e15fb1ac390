// SPDX-License-Identifier: MIT
#define BOOST_TEST_MODULE wire
#include <boost/test/unit_test.hpp>

#include <cstring>

#include "clustervisor/wire/frame.hpp"

namespace wire = clustervisor::wire;

BOOST_TEST_DONT_PRINT_LOG_VALUE(std::byte)

namespace {

constexpr std::size_t kLimit = wire::maxFrameSizeFor(1024);

std::vector<std::byte> bytesOf(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) {
    out.push_back(static_cast<std::byte>(v));
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(frame)

BOOST_AUTO_TEST_CASE(header_is_little_endian_at_documented_offsets) {
  const auto frame = wire::encodeEvent(0x01020304, 0x0A0B0C0D, 0x1122334455667788ull, "ab", "7");
  const auto expected = bytesOf({27,   0,    0,    0,                             // length
                                 3,                                               // type EVENT
                                 0,                                               // flags
                                 2,    0,                                         // name length
                                 0x04, 0x03, 0x02, 0x01,                          // source
                                 0x0D, 0x0C, 0x0B, 0x0A,                          // target
                                 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // correlation
                                 'a',  'b',  '7'});
  BOOST_TEST(frame == expected);
}

BOOST_AUTO_TEST_CASE(event_round_trips_name_payload_and_fields) {
  const auto frame = wire::encodeEvent(2, wire::kBroadcast, 42, "configUpdated", R"({"k":1})");
  const auto r = wire::decodeFrame(frame, kLimit);
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(wire::DecodeStatus::kFrame));
  BOOST_TEST(r.header.length == frame.size());
  BOOST_TEST(r.header.source == 2u);
  BOOST_TEST(r.header.target == wire::kBroadcast);
  BOOST_TEST(r.header.correlation == 42u);
  BOOST_TEST(wire::eventName(frame, r.header) == "configUpdated");
  BOOST_TEST(wire::eventPayload(frame, r.header) == R"({"k":1})");
}

BOOST_AUTO_TEST_CASE(control_frames_round_trip) {
  wire::HelloBody hello;
  hello.pid = 4242;
  auto f = wire::encodeHello(hello);
  auto r = wire::decodeFrame(f, kLimit);
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(wire::DecodeStatus::kFrame));
  BOOST_TEST(wire::helloBody(f).pid == 4242u);
  BOOST_TEST(wire::helloBody(f).magic == wire::kHelloMagic);
  BOOST_TEST(std::memcmp(f.data() + wire::kHeaderSize, "CVSR", 4) == 0);

  wire::WelcomeBody welcome{1, 0, 3, 8, 65536, 1500};
  f = wire::encodeWelcome(welcome);
  r = wire::decodeFrame(f, kLimit);
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(wire::DecodeStatus::kFrame));
  BOOST_TEST(wire::welcomeBody(f).clusterId == 3u);
  BOOST_TEST(wire::welcomeBody(f).totalClusters == 8u);
  BOOST_TEST(wire::welcomeBody(f).maxPayload == 65536u);
  BOOST_TEST(wire::welcomeBody(f).heartbeatIntervalMs == 1500u);
  BOOST_TEST(f.size() == wire::kHeaderSize + 20);

  f = wire::encodeWaitClosed(5, 77, {4, 3});
  r = wire::decodeFrame(f, kLimit);
  BOOST_TEST(static_cast<int>(r.header.type) == static_cast<int>(wire::FrameType::kWaitClosed));
  BOOST_TEST(r.header.correlation == 77u);
  BOOST_TEST(wire::waitClosedBody(f).recipients == 4u);
  BOOST_TEST(wire::waitClosedBody(f).acked == 3u);

  f = wire::encodeAck(1, 2, 9);
  r = wire::decodeFrame(f, kLimit);
  BOOST_TEST(static_cast<int>(r.header.type) == static_cast<int>(wire::FrameType::kAck));
  BOOST_TEST(f.size() == wire::kHeaderSize);

  f = wire::encodeTotalChanged(6);
  BOOST_TEST(wire::totalChangedBody(f) == 6u);
  f = wire::encodeWaitDone(0xABCDEF);
  r = wire::decodeFrame(f, kLimit);
  BOOST_TEST(static_cast<int>(r.header.type) == static_cast<int>(wire::FrameType::kWaitDone));
  BOOST_TEST(r.header.correlation == 0xABCDEFu);
  BOOST_TEST(f.size() == wire::kHeaderSize);

  f = wire::encodeReady();
  BOOST_TEST(static_cast<int>(wire::decodeFrame(f, kLimit).status) ==
             static_cast<int>(wire::DecodeStatus::kFrame));

  f = wire::encodeHeartbeat();
  r = wire::decodeFrame(f, kLimit);
  BOOST_TEST(static_cast<int>(r.header.type) == static_cast<int>(wire::FrameType::kHeartbeat));
  BOOST_TEST(f.size() == wire::kHeaderSize);

  f = wire::encodeStop(10000);
  r = wire::decodeFrame(f, kLimit);
  BOOST_TEST(static_cast<int>(r.header.type) == static_cast<int>(wire::FrameType::kStop));
  BOOST_TEST(r.header.source == wire::kSupervisor);
  BOOST_TEST(wire::stopBody(f) == 10000u);

  f = wire::encodeStopHandler();
  r = wire::decodeFrame(f, kLimit);
  BOOST_TEST(static_cast<int>(r.header.type) == static_cast<int>(wire::FrameType::kStopHandler));
  BOOST_TEST(f.size() == wire::kHeaderSize);
}

BOOST_AUTO_TEST_CASE(every_proper_prefix_is_incomplete) {
  const auto frame = wire::encodeEvent(1, 2, 0, "evt", R"({"x":[1,2,3]})");
  for (std::size_t n = 0; n < frame.size(); ++n) {
    const auto r = wire::decodeFrame(std::span(frame).first(n), kLimit);
    BOOST_TEST_CONTEXT("prefix of " << n << " bytes") {
      BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(wire::DecodeStatus::kIncomplete));
    }
  }
}

BOOST_AUTO_TEST_CASE(oversize_length_is_refused_from_the_first_four_bytes) {
  const auto r = wire::decodeFrame(bytesOf({0xFF, 0xFF, 0xFF, 0xFF}), kLimit);
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(wire::DecodeStatus::kOversize));
  const auto atLimit =
      wire::encodeEvent(0, 0, 0, "e", std::string(kLimit - wire::kHeaderSize - 1, 'x'));
  BOOST_TEST(static_cast<int>(wire::decodeFrame(atLimit, kLimit).status) ==
             static_cast<int>(wire::DecodeStatus::kFrame));
  BOOST_TEST(static_cast<int>(wire::decodeFrame(atLimit, kLimit - 1).status) ==
             static_cast<int>(wire::DecodeStatus::kOversize));
}

struct MalformedCase {
  const char* what;
  std::function<void(std::vector<std::byte>&)> corrupt;
  std::string_view error;
  std::string_view described;  // describeDecodeError(): the error with the values that broke it
};

BOOST_AUTO_TEST_CASE(malformed_headers_are_rejected_with_a_reason) {
  const std::vector<MalformedCase> cases = {
      {"length below header", [](auto& f) { f[0] = std::byte{23}; },
       "length field smaller than the 24-byte header",
       "length field smaller than the 24-byte header (length 23)"},
      {"unknown type 0", [](auto& f) { f[4] = std::byte{0}; }, "unknown frame type",
       "unknown frame type (0; the types are 1 to 11)"},
      {"unknown type 200", [](auto& f) { f[4] = std::byte{200}; }, "unknown frame type",
       "unknown frame type (200; the types are 1 to 11)"},
      {"unknown type 12", [](auto& f) { f[4] = std::byte{12}; }, "unknown frame type",
       "unknown frame type (12; the types are 1 to 11)"},
      {"flags set", [](auto& f) { f[5] = std::byte{1}; }, "reserved flags set",
       "reserved flags set (1)"},
      {"empty name", [](auto& f) { f[6] = std::byte{0}; }, "event name length outside 1..255",
       "event name length outside 1..255 (0)"},
      {"name over 255",
       [](auto& f) {
         f[6] = std::byte{0};
         f[7] = std::byte{1};
       },
       "event name length outside 1..255", "event name length outside 1..255 (256)"},
      {"name longer than frame", [](auto& f) { f[6] = std::byte{200}; },
       "event name longer than the frame",
       "event name longer than the frame (name 200 bytes, "
       "body 5 bytes)"},
      {"ack with body", [](auto& f) { f[4] = std::byte{4}; }, "body size wrong for the frame type",
       "body size wrong for the frame type (ACK: 5 bytes, not 0)"},
      {"name length on ready",
       [](auto& f) {
         f[0] = std::byte{24};
         f[4] = std::byte{6};
       },
       "name length set on a frame that has no name",
       "name length set on a frame that has no name (3 on READY)"},
  };
  for (const auto& c : cases) {
    auto frame = wire::encodeEvent(1, 2, 0, "evt", "{}");
    c.corrupt(frame);
    const auto r = wire::decodeFrame(frame, kLimit);
    BOOST_TEST_CONTEXT(c.what) {
      BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(wire::DecodeStatus::kMalformed));
      BOOST_TEST(r.error == c.error);
      BOOST_TEST(wire::describeDecodeError(r, kLimit) == c.described);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_oversize_frame_is_described_with_both_sizes) {
  const auto frame = wire::encodeEvent(1, 2, 0, "evt", std::string(100, 'x'));
  const auto r = wire::decodeFrame(frame, 64);
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(wire::DecodeStatus::kOversize));
  BOOST_TEST(wire::describeDecodeError(r, 64) ==
             "frame larger than the configured limit (127 > 64 bytes)");
}

BOOST_AUTO_TEST_CASE(name_length_on_control_frame_is_malformed) {
  auto frame = wire::encodeAck(1, 2, 3);
  frame[6] = std::byte{1};
  const auto r = wire::decodeFrame(frame, kLimit);
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(wire::DecodeStatus::kMalformed));
}

BOOST_AUTO_TEST_CASE(stamp_source_rewrites_only_the_source_field) {
  auto frame = wire::encodeEvent(7, 3, 5, "e", "1");
  auto copy = frame;
  wire::stampSource(frame, 0xAABBCCDD);
  const auto r = wire::decodeFrame(frame, kLimit);
  BOOST_TEST(r.header.source == 0xAABBCCDDu);
  for (std::size_t i = 0; i < frame.size(); ++i) {
    if (i < 8 || i >= 12) {
      BOOST_TEST(frame[i] == copy[i]);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
