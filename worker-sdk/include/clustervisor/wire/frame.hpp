// SPDX-License-Identifier: MIT
//
// Wire protocol v2: the frame layout shared by the worker SDK and the supervisor.
//
// Every message on a worker's socket is one frame: a fixed 24-byte little-endian header followed
// by a body. The header alone is enough to route a frame, so the supervisor never parses event
// payloads. This file is pure: it encodes and decodes bytes in memory and does no I/O.
// clustervisor-protocol(7) is the normative description; keep the two in step.
//
//   offset size field
//        0    4 length       whole frame in bytes, header included (>= 24)
//        4    1 type         FrameType
//        5    1 flags        0 in v2
//        6    2 name_length  EVENT: bytes of event name at the start of the body; otherwise 0
//        8    4 source       cluster id of the sender (stamped by the supervisor)
//       12    4 target       cluster id of the recipient, or kBroadcast
//       16    8 correlation  wait id of a broadcastAndWait, 0 when no acknowledgement is wanted
//       24    … body
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace clustervisor::wire {

// 2: WELCOME carries the heartbeat interval; HEARTBEAT, STOP and STOP_HANDLER. Version 1 (16-byte
// WELCOME, frames 1-8) is refused at the handshake with a message naming both versions.
inline constexpr std::uint16_t kProtocolVersion = 2;
inline constexpr std::size_t kHeaderSize = 24;
inline constexpr std::uint32_t kBroadcast = 0xFFFFFFFFu;
inline constexpr std::uint32_t kSupervisor = 0xFFFFFFFEu;  // source of supervisor-made frames
inline constexpr std::uint32_t kHelloMagic = 0x52535643u;  // "CVSR" in little-endian bytes
inline constexpr std::size_t kMaxEventNameLength = 255;
// The largest events.max_payload a configuration may set. A worker accepts frames up to what it
// allows from the supervisor, whatever its WELCOME said: a reload that raises events.max_payload
// lets workers started after it send larger events to those started before.
inline constexpr std::size_t kMaxPayloadCeiling = 256 * 1024 * 1024;
// Environment variable names given to workers (documented in clustervisor(1)).
inline constexpr const char* kEnvClusterId = "CLUSTERVISOR_CLUSTER_ID";
inline constexpr const char* kEnvTotalClusters = "CLUSTERVISOR_TOTAL_CLUSTERS";
inline constexpr const char* kEnvFd = "CLUSTERVISOR_FD";
inline constexpr const char* kEnvProtocol = "CLUSTERVISOR_PROTOCOL";
// Only when the config sets shards.total: the worker's shard ids ("0,1,2") and the total.
inline constexpr const char* kEnvShards = "CLUSTERVISOR_SHARDS";
inline constexpr const char* kEnvTotalShards = "CLUSTERVISOR_TOTAL_SHARDS";
inline constexpr int kWorkerFd = 3;

enum class FrameType : std::uint8_t {
  kHello = 1,         // worker → supervisor, first frame: magic, version range, pid
  kWelcome = 2,       // supervisor → worker, answer to hello: version, id, total, max payload
  kEvent = 3,         // both ways: name + JSON payload
  kAck = 4,           // worker → supervisor → waiter: acknowledges correlation for target
  kWaitClosed = 5,    // supervisor → waiter: no more acks can arrive for correlation
  kReady = 6,         // worker → supervisor: the worker is ready
  kTotalChanged = 7,  // supervisor → worker: the total cluster count changed
  kWaitDone = 8,      // worker → supervisor: the worker stopped waiting for correlation
  kHeartbeat = 9,     // worker → supervisor: the worker is alive (sent by the SDK's own threads)
  kStop = 10,         // supervisor → worker: the worker is being stopped; body: ms until SIGKILL
  kStopHandler = 11,  // worker → supervisor: the worker shuts down on kStop by itself
};

struct Header {
  std::uint32_t length = kHeaderSize;
  FrameType type = FrameType::kEvent;
  std::uint8_t flags = 0;
  std::uint16_t nameLength = 0;
  std::uint32_t source = 0;
  std::uint32_t target = 0;
  std::uint64_t correlation = 0;
};

struct HelloBody {
  std::uint32_t magic = kHelloMagic;
  std::uint16_t minVersion = kProtocolVersion;
  std::uint16_t maxVersion = kProtocolVersion;
  std::uint32_t pid = 0;
};
inline constexpr std::size_t kHelloBodySize = 12;

struct WelcomeBody {
  std::uint16_t version = kProtocolVersion;
  std::uint16_t reserved = 0;
  std::uint32_t clusterId = 0;
  std::uint32_t totalClusters = 0;
  std::uint32_t maxPayload = 0;
  std::uint32_t heartbeatIntervalMs = 0;  // 0: the supervisor wants no heartbeats
};
inline constexpr std::size_t kWelcomeBodySize = 20;

struct WaitClosedBody {
  std::uint32_t recipients = 0;  // clusters the event was delivered to
  std::uint32_t acked = 0;       // of those, how many acknowledged
};
inline constexpr std::size_t kWaitClosedBodySize = 8;
inline constexpr std::size_t kTotalChangedBodySize = 4;
inline constexpr std::size_t kStopBodySize = 4;

enum class DecodeStatus : std::uint8_t {
  kFrame,       // a complete frame is at the front of the buffer
  kIncomplete,  // more bytes are needed
  kMalformed,   // the stream is broken; close the connection
  kOversize,    // the length field exceeds the limit; close the connection
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kIncomplete;
  Header header;
  std::uint8_t rawType = 0;  // the type byte as it came (header.type is set only when known)
  std::string_view error;    // for kMalformed / kOversize: what was wrong, for the log
};

// Looks at the start of `bytes` and says whether a whole, well-formed frame is there. Only the
// header and the per-type fixed body sizes are checked; payload bytes are never inspected.
// `maxFrameSize` bounds the length field (header + name + payload).
DecodeResult decodeFrame(std::span<const std::byte> bytes, std::size_t maxFrameSize);

// The error of a kMalformed or kOversize result with the values that broke the rule, for a log
// line: "unknown frame type (238; the types are 1 to 11)", "body size wrong for the frame type
// (READY: 8 bytes, not 0)".
std::string describeDecodeError(const DecodeResult& result, std::size_t maxFrameSize);

// Writes `header` into the first kHeaderSize bytes of `out`.
void encodeHeader(const Header& header, std::span<std::byte, kHeaderSize> out);

// Overwrites the source field of an encoded frame in place (what the supervisor stamps).
void stampSource(std::span<std::byte> frame, std::uint32_t source);

// The largest frame a payload limit allows: header + longest name + payload.
constexpr std::size_t maxFrameSizeFor(std::size_t maxPayload) {
  return kHeaderSize + kMaxEventNameLength + maxPayload;
}

// Builders return whole encoded frames.
std::vector<std::byte> encodeEvent(std::uint32_t source, std::uint32_t target,
                                   std::uint64_t correlation, std::string_view name,
                                   std::string_view payload);
std::vector<std::byte> encodeHello(const HelloBody& body);
std::vector<std::byte> encodeWelcome(const WelcomeBody& body);
std::vector<std::byte> encodeAck(std::uint32_t source, std::uint32_t target,
                                 std::uint64_t correlation);
std::vector<std::byte> encodeWaitClosed(std::uint32_t target, std::uint64_t correlation,
                                        const WaitClosedBody& body);
std::vector<std::byte> encodeReady();
std::vector<std::byte> encodeTotalChanged(std::uint32_t totalClusters);
std::vector<std::byte> encodeWaitDone(std::uint64_t correlation);
std::vector<std::byte> encodeHeartbeat();
std::vector<std::byte> encodeStop(std::uint32_t millisecondsUntilKill);
std::vector<std::byte> encodeStopHandler();

// Body accessors for a frame that decodeFrame() accepted (`frame` spans the whole frame).
std::string_view eventName(std::span<const std::byte> frame, const Header& header);
std::string_view eventPayload(std::span<const std::byte> frame, const Header& header);
HelloBody helloBody(std::span<const std::byte> frame);
WelcomeBody welcomeBody(std::span<const std::byte> frame);
WaitClosedBody waitClosedBody(std::span<const std::byte> frame);
std::uint32_t totalChangedBody(std::span<const std::byte> frame);
std::uint32_t stopBody(std::span<const std::byte> frame);

std::string_view toString(FrameType type);

}  // namespace clustervisor::wire
