// SPDX-License-Identifier: MIT
#include "clustervisor/wire/frame.hpp"

#include <cstring>

namespace clustervisor::wire {
namespace {

std::uint8_t byteAt(std::span<const std::byte> bytes, std::size_t offset) {
  return std::to_integer<std::uint8_t>(bytes[offset]);
}

std::uint16_t load16(std::span<const std::byte> bytes, std::size_t offset) {
  return static_cast<std::uint16_t>(byteAt(bytes, offset) | (byteAt(bytes, offset + 1) << 8));
}

std::uint32_t load32(std::span<const std::byte> bytes, std::size_t offset) {
  return static_cast<std::uint32_t>(load16(bytes, offset)) |
         (static_cast<std::uint32_t>(load16(bytes, offset + 2)) << 16);
}

std::uint64_t load64(std::span<const std::byte> bytes, std::size_t offset) {
  return static_cast<std::uint64_t>(load32(bytes, offset)) |
         (static_cast<std::uint64_t>(load32(bytes, offset + 4)) << 32);
}

void store16(std::span<std::byte> bytes, std::size_t offset, std::uint16_t value) {
  bytes[offset] = static_cast<std::byte>(value & 0xFFu);
  bytes[offset + 1] = static_cast<std::byte>(value >> 8);
}

void store32(std::span<std::byte> bytes, std::size_t offset, std::uint32_t value) {
  store16(bytes, offset, static_cast<std::uint16_t>(value & 0xFFFFu));
  store16(bytes, offset + 2, static_cast<std::uint16_t>(value >> 16));
}

void store64(std::span<std::byte> bytes, std::size_t offset, std::uint64_t value) {
  store32(bytes, offset, static_cast<std::uint32_t>(value & 0xFFFFFFFFu));
  store32(bytes, offset + 4, static_cast<std::uint32_t>(value >> 32));
}

// The body size a frame type must have, or nullopt when it varies (events).
std::optional<std::size_t> fixedBodySize(FrameType type) {
  switch (type) {
    case FrameType::kHello:
      return kHelloBodySize;
    case FrameType::kWelcome:
      return kWelcomeBodySize;
    case FrameType::kAck:
    case FrameType::kReady:
    case FrameType::kWaitDone:
    case FrameType::kHeartbeat:
    case FrameType::kStopHandler:
      return 0;
    case FrameType::kStop:
      return kStopBodySize;
    case FrameType::kWaitClosed:
      return kWaitClosedBodySize;
    case FrameType::kTotalChanged:
      return kTotalChangedBodySize;
    case FrameType::kEvent:
      return std::nullopt;
  }
  return std::nullopt;
}

bool isKnownType(std::uint8_t type) {
  return type >= static_cast<std::uint8_t>(FrameType::kHello) &&
         type <= static_cast<std::uint8_t>(FrameType::kStopHandler);
}

std::vector<std::byte> makeFrame(const Header& header, std::size_t bodySize) {
  std::vector<std::byte> frame(kHeaderSize + bodySize);
  Header h = header;
  h.length = static_cast<std::uint32_t>(frame.size());
  encodeHeader(h, std::span<std::byte, kHeaderSize>(frame.data(), kHeaderSize));
  return frame;
}

}  // namespace

DecodeResult decodeFrame(std::span<const std::byte> bytes, std::size_t maxFrameSize) {
  DecodeResult result;
  // The length field alone can already prove a frame oversize or malformed; report that as
  // early as possible so a hostile 4 GiB length never makes anyone wait for the bytes.
  if (bytes.size() < 4) {
    return result;
  }
  const std::uint32_t length = load32(bytes, 0);
  result.header.length = length;
  if (length < kHeaderSize) {
    result.status = DecodeStatus::kMalformed;
    result.error = "length field smaller than the 24-byte header";
    return result;
  }
  if (length > maxFrameSize) {
    result.status = DecodeStatus::kOversize;
    result.error = "frame larger than the configured limit";
    return result;
  }
  if (bytes.size() < kHeaderSize) {
    return result;
  }
  Header& h = result.header;
  const std::uint8_t type = byteAt(bytes, 4);
  result.rawType = type;
  h.flags = byteAt(bytes, 5);
  h.nameLength = load16(bytes, 6);
  h.source = load32(bytes, 8);
  h.target = load32(bytes, 12);
  h.correlation = load64(bytes, 16);
  if (!isKnownType(type)) {
    result.status = DecodeStatus::kMalformed;
    result.error = "unknown frame type";
    return result;
  }
  h.type = static_cast<FrameType>(type);
  if (h.flags != 0) {
    result.status = DecodeStatus::kMalformed;
    result.error = "reserved flags set";
    return result;
  }
  const std::size_t bodySize = length - kHeaderSize;
  if (const auto fixed = fixedBodySize(h.type)) {
    if (bodySize != *fixed) {
      result.status = DecodeStatus::kMalformed;
      result.error = "body size wrong for the frame type";
      return result;
    }
    if (h.nameLength != 0) {
      result.status = DecodeStatus::kMalformed;
      result.error = "name length set on a frame that has no name";
      return result;
    }
  } else {
    if (h.nameLength == 0 || h.nameLength > kMaxEventNameLength) {
      result.status = DecodeStatus::kMalformed;
      result.error = "event name length outside 1..255";
      return result;
    }
    if (h.nameLength > bodySize) {
      result.status = DecodeStatus::kMalformed;
      result.error = "event name longer than the frame";
      return result;
    }
  }
  if (bytes.size() < length) {
    return result;
  }
  result.status = DecodeStatus::kFrame;
  return result;
}

std::string describeDecodeError(const DecodeResult& result, std::size_t maxFrameSize) {
  const Header& h = result.header;
  std::string text(result.error);
  const auto number = [](auto n) { return std::to_string(n); };
  if (result.status == DecodeStatus::kOversize) {
    return text + " (" + number(h.length) + " > " + number(maxFrameSize) + " bytes)";
  }
  if (result.status != DecodeStatus::kMalformed) {
    return text;
  }
  if (h.length < kHeaderSize) {
    return text + " (length " + number(h.length) + ")";
  }
  if (!isKnownType(result.rawType)) {
    return text + " (" + number(result.rawType) + "; the types are 1 to 11)";
  }
  if (h.flags != 0) {
    return text + " (" + number(h.flags) + ")";
  }
  const std::size_t bodySize = h.length - kHeaderSize;
  const auto fixed = fixedBodySize(h.type);
  if (fixed && bodySize != *fixed) {
    return text + " (" + std::string(toString(h.type)) + ": " + number(bodySize) + " bytes, not " +
           number(*fixed) + ")";
  }
  if (fixed) {
    return text + " (" + number(h.nameLength) + " on " + std::string(toString(h.type)) + ")";
  }
  if (h.nameLength == 0 || h.nameLength > kMaxEventNameLength) {
    return text + " (" + number(h.nameLength) + ")";
  }
  return text + " (name " + number(h.nameLength) + " bytes, body " + number(bodySize) + " bytes)";
}

void encodeHeader(const Header& header, std::span<std::byte, kHeaderSize> out) {
  std::span<std::byte> bytes(out);
  store32(bytes, 0, header.length);
  bytes[4] = static_cast<std::byte>(header.type);
  bytes[5] = static_cast<std::byte>(header.flags);
  store16(bytes, 6, header.nameLength);
  store32(bytes, 8, header.source);
  store32(bytes, 12, header.target);
  store64(bytes, 16, header.correlation);
}

void stampSource(std::span<std::byte> frame, std::uint32_t source) {
  store32(frame, 8, source);
}

std::vector<std::byte> encodeEvent(std::uint32_t source, std::uint32_t target,
                                   std::uint64_t correlation, std::string_view name,
                                   std::string_view payload) {
  Header h;
  h.type = FrameType::kEvent;
  h.nameLength = static_cast<std::uint16_t>(name.size());
  h.source = source;
  h.target = target;
  h.correlation = correlation;
  auto frame = makeFrame(h, name.size() + payload.size());
  std::memcpy(frame.data() + kHeaderSize, name.data(), name.size());
  if (!payload.empty()) {
    std::memcpy(frame.data() + kHeaderSize + name.size(), payload.data(), payload.size());
  }
  return frame;
}

std::vector<std::byte> encodeHello(const HelloBody& body) {
  Header h;
  h.type = FrameType::kHello;
  auto frame = makeFrame(h, kHelloBodySize);
  std::span<std::byte> b(frame);
  store32(b, kHeaderSize, body.magic);
  store16(b, kHeaderSize + 4, body.minVersion);
  store16(b, kHeaderSize + 6, body.maxVersion);
  store32(b, kHeaderSize + 8, body.pid);
  return frame;
}

std::vector<std::byte> encodeWelcome(const WelcomeBody& body) {
  Header h;
  h.type = FrameType::kWelcome;
  h.source = kSupervisor;
  h.target = body.clusterId;
  auto frame = makeFrame(h, kWelcomeBodySize);
  std::span<std::byte> b(frame);
  store16(b, kHeaderSize, body.version);
  store16(b, kHeaderSize + 2, body.reserved);
  store32(b, kHeaderSize + 4, body.clusterId);
  store32(b, kHeaderSize + 8, body.totalClusters);
  store32(b, kHeaderSize + 12, body.maxPayload);
  store32(b, kHeaderSize + 16, body.heartbeatIntervalMs);
  return frame;
}

std::vector<std::byte> encodeAck(std::uint32_t source, std::uint32_t target,
                                 std::uint64_t correlation) {
  Header h;
  h.type = FrameType::kAck;
  h.source = source;
  h.target = target;
  h.correlation = correlation;
  return makeFrame(h, 0);
}

std::vector<std::byte> encodeWaitClosed(std::uint32_t target, std::uint64_t correlation,
                                        const WaitClosedBody& body) {
  Header h;
  h.type = FrameType::kWaitClosed;
  h.source = kSupervisor;
  h.target = target;
  h.correlation = correlation;
  auto frame = makeFrame(h, kWaitClosedBodySize);
  std::span<std::byte> b(frame);
  store32(b, kHeaderSize, body.recipients);
  store32(b, kHeaderSize + 4, body.acked);
  return frame;
}

std::vector<std::byte> encodeReady() {
  Header h;
  h.type = FrameType::kReady;
  h.target = kSupervisor;
  return makeFrame(h, 0);
}

std::vector<std::byte> encodeTotalChanged(std::uint32_t totalClusters) {
  Header h;
  h.type = FrameType::kTotalChanged;
  h.source = kSupervisor;
  h.target = kBroadcast;
  auto frame = makeFrame(h, kTotalChangedBodySize);
  store32(frame, kHeaderSize, totalClusters);
  return frame;
}

std::vector<std::byte> encodeWaitDone(std::uint64_t correlation) {
  Header h;
  h.type = FrameType::kWaitDone;
  h.target = kSupervisor;
  h.correlation = correlation;
  return makeFrame(h, 0);
}

std::vector<std::byte> encodeHeartbeat() {
  Header h;
  h.type = FrameType::kHeartbeat;
  h.target = kSupervisor;
  return makeFrame(h, 0);
}

std::vector<std::byte> encodeStop(std::uint32_t millisecondsUntilKill) {
  Header h;
  h.type = FrameType::kStop;
  h.source = kSupervisor;
  auto frame = makeFrame(h, kStopBodySize);
  store32(frame, kHeaderSize, millisecondsUntilKill);
  return frame;
}

std::vector<std::byte> encodeStopHandler() {
  Header h;
  h.type = FrameType::kStopHandler;
  h.target = kSupervisor;
  return makeFrame(h, 0);
}

std::string_view eventName(std::span<const std::byte> frame, const Header& header) {
  return {reinterpret_cast<const char*>(frame.data()) + kHeaderSize, header.nameLength};
}

std::string_view eventPayload(std::span<const std::byte> frame, const Header& header) {
  const std::size_t offset = kHeaderSize + header.nameLength;
  return {reinterpret_cast<const char*>(frame.data()) + offset, header.length - offset};
}

HelloBody helloBody(std::span<const std::byte> frame) {
  return {load32(frame, kHeaderSize), load16(frame, kHeaderSize + 4),
          load16(frame, kHeaderSize + 6), load32(frame, kHeaderSize + 8)};
}

WelcomeBody welcomeBody(std::span<const std::byte> frame) {
  return {load16(frame, kHeaderSize),      load16(frame, kHeaderSize + 2),
          load32(frame, kHeaderSize + 4),  load32(frame, kHeaderSize + 8),
          load32(frame, kHeaderSize + 12), load32(frame, kHeaderSize + 16)};
}

WaitClosedBody waitClosedBody(std::span<const std::byte> frame) {
  return {load32(frame, kHeaderSize), load32(frame, kHeaderSize + 4)};
}

std::uint32_t totalChangedBody(std::span<const std::byte> frame) {
  return load32(frame, kHeaderSize);
}

std::uint32_t stopBody(std::span<const std::byte> frame) {
  return load32(frame, kHeaderSize);
}

std::string_view toString(FrameType type) {
  switch (type) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kWelcome:
      return "WELCOME";
    case FrameType::kEvent:
      return "EVENT";
    case FrameType::kAck:
      return "ACK";
    case FrameType::kWaitClosed:
      return "WAIT_CLOSED";
    case FrameType::kReady:
      return "READY";
    case FrameType::kTotalChanged:
      return "TOTAL_CHANGED";
    case FrameType::kWaitDone:
      return "WAIT_DONE";
    case FrameType::kHeartbeat:
      return "HEARTBEAT";
    case FrameType::kStop:
      return "STOP";
    case FrameType::kStopHandler:
      return "STOP_HANDLER";
  }
  return "UNKNOWN";
}

}  // namespace clustervisor::wire
