// SPDX-License-Identifier: MIT
//
// Fuzz target for the wire frame decoder: decodeFrame() on a whole byte stream, the same stream
// fed to a FrameReader in small reads (into its own buffer, and into a scratch shared with
// another reader), and the body accessors on every frame either accepted.
//
// Input: byte 0 is the read size (0: one read of everything), bytes 1-2 the frame size limit in
// units of 16 bytes, byte 3 the reader's chunk size; the rest is the stream.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "clustervisor/wire/frame.hpp"
#include "clustervisor/wire/frame_reader.hpp"
#include "fuzz_check.hpp"

namespace wire = clustervisor::wire;

namespace {

struct Decoded {
  std::vector<std::vector<std::byte>> frames;
  wire::DecodeStatus end = wire::DecodeStatus::kIncomplete;  // what stopped the decoding
};

bool sameHeader(const wire::Header& a, const wire::Header& b) {
  return a.length == b.length && a.type == b.type && a.flags == b.flags &&
         a.nameLength == b.nameLength && a.source == b.source && a.target == b.target &&
         a.correlation == b.correlation;
}

// Everything a reader of a frame may call on it. The frame is copied to a buffer of exactly its
// size first, so that AddressSanitizer sees any read past its end.
void checkFrame(std::span<const std::byte> bytes, const wire::DecodeResult& result,
                std::size_t maxFrameSize) {
  const wire::Header& header = result.header;
  FUZZ_CHECK(header.length >= wire::kHeaderSize);
  FUZZ_CHECK(header.length <= maxFrameSize);
  FUZZ_CHECK(header.length <= bytes.size());
  FUZZ_CHECK(header.flags == 0);
  FUZZ_CHECK(result.error.empty());
  std::vector<std::byte> frame(bytes.begin(), bytes.begin() + header.length);

  // The header encodes back to the bytes it was decoded from.
  std::array<std::byte, wire::kHeaderSize> encoded{};
  wire::encodeHeader(header, encoded);
  FUZZ_CHECK(std::memcmp(encoded.data(), frame.data(), wire::kHeaderSize) == 0);

  switch (header.type) {
    case wire::FrameType::kEvent: {
      const auto name = wire::eventName(frame, header);
      const auto payload = wire::eventPayload(frame, header);
      FUZZ_CHECK(!name.empty() && name.size() <= wire::kMaxEventNameLength);
      FUZZ_CHECK(wire::kHeaderSize + name.size() + payload.size() == header.length);
      // Re-encoding the event reproduces the frame.
      const auto again =
          wire::encodeEvent(header.source, header.target, header.correlation, name, payload);
      FUZZ_CHECK(again == frame);
      break;
    }
    case wire::FrameType::kHello:
      FUZZ_CHECK(wire::encodeHello(wire::helloBody(frame)).size() == frame.size());
      break;
    case wire::FrameType::kWelcome:
      FUZZ_CHECK(wire::encodeWelcome(wire::welcomeBody(frame)).size() == frame.size());
      break;
    case wire::FrameType::kWaitClosed:
      FUZZ_CHECK(
          wire::encodeWaitClosed(header.target, header.correlation, wire::waitClosedBody(frame))
              .size() == frame.size());
      break;
    case wire::FrameType::kTotalChanged:
      FUZZ_CHECK(wire::encodeTotalChanged(wire::totalChangedBody(frame)).size() == frame.size());
      break;
    case wire::FrameType::kStop:
      FUZZ_CHECK(wire::encodeStop(wire::stopBody(frame)).size() == frame.size());
      break;
    case wire::FrameType::kAck:
    case wire::FrameType::kReady:
    case wire::FrameType::kWaitDone:
    case wire::FrameType::kHeartbeat:
    case wire::FrameType::kStopHandler:
      FUZZ_CHECK(frame.size() == wire::kHeaderSize);
      break;
  }
  FUZZ_CHECK(!wire::toString(header.type).empty());

  // Stamping the source changes the source and nothing else.
  wire::stampSource(frame, header.source ^ 0x5A5A5A5Au);
  const auto stamped = wire::decodeFrame(frame, maxFrameSize);
  FUZZ_CHECK(stamped.status == wire::DecodeStatus::kFrame);
  wire::Header expected = header;
  expected.source ^= 0x5A5A5A5Au;
  FUZZ_CHECK(sameHeader(stamped.header, expected));
}

// decodeFrame() over the whole stream at once.
Decoded decodeAll(std::span<const std::byte> stream, std::size_t maxFrameSize) {
  Decoded out;
  for (;;) {
    const auto result = wire::decodeFrame(stream, maxFrameSize);
    out.end = result.status;
    if (result.status != wire::DecodeStatus::kFrame) {
      if (result.status != wire::DecodeStatus::kIncomplete) {
        FUZZ_CHECK(!result.error.empty());
      }
      // Every shorter view of what is left says the same or asks for more bytes: a verdict never
      // depends on bytes that have not arrived yet.
      for (std::size_t n = 0; n < std::min<std::size_t>(stream.size(), 64); ++n) {
        const auto partial = wire::decodeFrame(stream.first(n), maxFrameSize);
        FUZZ_CHECK(partial.status == wire::DecodeStatus::kIncomplete ||
                   partial.status == result.status);
      }
      return out;
    }
    checkFrame(stream, result, maxFrameSize);
    for (std::size_t n = 0; n < std::min<std::size_t>(result.header.length, 64); ++n) {
      FUZZ_CHECK(wire::decodeFrame(stream.first(n), maxFrameSize).status ==
                 wire::DecodeStatus::kIncomplete);
    }
    out.frames.emplace_back(stream.begin(), stream.begin() + result.header.length);
    stream = stream.subspan(result.header.length);
  }
}

// The same stream through a FrameReader, `readSize` bytes per read (0: all at once): into its own
// buffer, or (`throughScratch`) into a scratch that another reader overwrites between reads
// (FrameReader::prepare(scratch) and keepRest(), as the supervisor's connections share one).
Decoded decodeStreamed(std::span<const std::byte> stream, std::size_t maxFrameSize,
                       std::size_t readSize, std::size_t readChunk, bool throughScratch) {
  Decoded out;
  wire::FrameReader reader(maxFrameSize, readChunk);
  std::vector<std::byte> scratch(throughScratch ? 2 * readChunk + readSize : 0);
  std::size_t consumed = 0;
  std::size_t committed = 0;
  for (;;) {
    for (;;) {
      const auto next = reader.next();
      if (next.result.status != wire::DecodeStatus::kFrame) {
        out.end = next.result.status;
        break;
      }
      FUZZ_CHECK(next.frame.size() == next.result.header.length);
      out.frames.emplace_back(next.frame.begin(), next.frame.end());
      consumed += next.frame.size();
    }
    if (throughScratch) {
      reader.keepRest();
      std::fill(scratch.begin(), scratch.end(), std::byte{0xA5});
    }
    FUZZ_CHECK(reader.buffered() == committed - consumed);
    if (out.end != wire::DecodeStatus::kIncomplete || stream.empty()) {
      return out;
    }
    const auto space = throughScratch ? reader.prepare(scratch) : reader.prepare();
    FUZZ_CHECK(space.size() >= readChunk);
    std::size_t n = std::min(space.size(), stream.size());
    if (readSize != 0) {
      n = std::min(n, readSize);
    }
    std::memcpy(space.data(), stream.data(), n);
    reader.commit(n);
    committed += n;
    stream = stream.subspan(n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) {
    return 0;
  }
  const std::size_t readSize = data[0];
  const std::size_t maxFrameSize = 16 * (std::size_t{data[1]} | (std::size_t{data[2]} << 8));
  const std::size_t readChunk = std::size_t{data[3]} + 1;
  const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data) + 4, size - 4);

  const Decoded whole = decodeAll(stream, maxFrameSize);
  const Decoded streamed = decodeStreamed(stream, maxFrameSize, readSize, readChunk, false);
  FUZZ_CHECK(whole.frames == streamed.frames);
  FUZZ_CHECK(whole.end == streamed.end);
  const Decoded scratched = decodeStreamed(stream, maxFrameSize, readSize, readChunk, true);
  FUZZ_CHECK(whole.frames == scratched.frames);
  FUZZ_CHECK(whole.end == scratched.end);
  return 0;
}
