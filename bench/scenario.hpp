// SPDX-License-Identifier: MIT
//
// What the benchmark's workers do, shared by the three bench programs: the SDK worker
// (bench_worker.cpp), the plain socketpair/epoll baseline (baseline_relay.cpp) and the driver
// (bench_driver.cpp) that starts them and reads their results.
//
// Both kinds of worker run the same scenario with the same frames: ~100-byte JSON payloads, the
// same event names, the same flow-control window and the same warm-up. A worker learns its
// scenario from the environment (kEnvCase, kEnvSeconds, kEnvDir, …) and writes what it measured
// as `key value` lines to a results file in kEnvDir, which the driver reads once the file
// appears (it is written to a temporary name and renamed, so it is never seen half-written).
// Times are CLOCK_MONOTONIC nanoseconds, comparable across the processes of one machine.
#pragma once

#include <time.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace clustervisor::bench {

// Environment of every bench worker.
inline constexpr const char* kEnvCase = "BENCH_CASE";           // see the scenario names below
inline constexpr const char* kEnvDir = "BENCH_DIR";             // where results files go
inline constexpr const char* kEnvSeconds = "BENCH_SECONDS";     // how long the measured phase runs
inline constexpr const char* kEnvJson = "BENCH_JSON";           // "1": build/parse json::value
inline constexpr const char* kEnvIoThread = "BENCH_IO_THREAD";  // "1": listenersOnIoThread
// Baseline workers only (SDK workers learn these from the supervisor).
inline constexpr const char* kEnvId = "BENCH_ID";
inline constexpr const char* kEnvTotal = "BENCH_TOTAL";

// Scenarios (kEnvCase).
inline constexpr std::string_view kUnicast = "unicast";      // 0 -> 1, as fast as credits allow
inline constexpr std::string_view kBroadcast = "broadcast";  // 0 -> everyone else
inline constexpr std::string_view kRoundTrip = "roundtrip";  // 0 -> 1 -> 0, one at a time
inline constexpr std::string_view kWait = "wait";            // 0 waits for N-1 acks, one at a time
inline constexpr std::string_view kIdle = "idle";            // connect, say hello, stay idle
inline constexpr std::string_view kRestart = "restart";      // connect, note the time, crash
inline constexpr std::string_view kFlood = "flood";          // everyone broadcasts, unpaced

// Event names on the wire.
inline constexpr std::string_view kEventData = "e";
inline constexpr std::string_view kEventEnd = "end";        // payload: events sent
inline constexpr std::string_view kEventCredit = "credit";  // payload: events received so far
inline constexpr std::string_view kEventHello = "hi";       // a worker is up and listening
inline constexpr std::string_view kEventPing = "ping";
inline constexpr std::string_view kEventPong = "pong";

// The pre-serialized event payload: 100 bytes of JSON, the size of a typical bot event.
inline constexpr std::string_view kPayload =
    R"({"action":"ban","guild":"533961200438099968","user":"447796768693156649","reason":"spam,3 warnings"})";
static_assert(kPayload.size() == 100);

// Flow control: a sender keeps at most kWindow events unacknowledged per receiver; receivers
// return credit every kCreditEvery events. Without it a sender outruns its receivers and the
// relay's bounded queues drop events, which measures nothing useful. 16384 events are ~2 MB
// per receiver, far below the default outbox limit.
inline constexpr std::uint64_t kWindow = 16384;
inline constexpr std::uint64_t kCreditEvery = 1024;

// Samples taken before this many round trips / waits are dropped (caches, page faults).
inline constexpr std::size_t kWarmupSamples = 200;

// The restart scenario stops crashing once this file exists in kEnvDir.
inline constexpr const char* kStopRestartingFile = "stop-restarting";
// Each restart-scenario worker appends "connected <ns>" and "died <ns>" lines here.
inline constexpr const char* kRestartLog = "restart.log";

inline std::int64_t nowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline std::string envOr(const char* name, std::string_view fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string(fallback);
}

inline double envSeconds() {
  return std::strtod(envOr(kEnvSeconds, "1").c_str(), nullptr);
}

// The results file of one worker: "<dir>/result-<id>".
inline std::filesystem::path resultsPath(const std::filesystem::path& dir, std::uint32_t id) {
  return dir / ("result-" + std::to_string(id));
}

// Writes `values` (and `samples`, one per line after a "samples" line) as a results file.
inline void writeResults(const std::filesystem::path& dir, std::uint32_t id,
                         const std::map<std::string, std::int64_t>& values,
                         const std::vector<std::int64_t>& samples = {}) {
  const auto path = resultsPath(dir, id);
  const auto temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary);
    for (const auto& [key, value] : values) {
      out << key << ' ' << value << '\n';
    }
    if (!samples.empty()) {
      out << "samples " << samples.size() << '\n';
      for (const auto sample : samples) {
        out << sample << '\n';
      }
    }
  }
  std::filesystem::rename(temporary, path);
}

}  // namespace clustervisor::bench
