// SPDX-License-Identifier: MIT
//
// formatStatus(): the table `clustervisor status` prints, made from the supervisor's status
// answer (the "result" object of control protocol 1). Pure; fields it does not know are ignored
// and missing ones shown as "-", so an older or newer supervisor's answer still prints.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

namespace clustervisor {

std::string formatStatus(const boost::json::object& status);

// Resident memory: "900B", "512KiB", "45.2MiB", "1.3GiB" (whole KiB below 1 MiB, tenths above).
std::string formatMemory(std::uint64_t bytes);

// A duration in a log line or a command's output: "0s", "340ms", "1.5s", "5s", "1m", "1m30s",
// "10m", "1h2m3s". Below a minute in tenths of a second, without a trailing ".0"; from a minute
// on in whole seconds, without the units that are zero. A configured duration of whole seconds
// reads as `clustervisor plan` shows it.
std::string humanDuration(std::chrono::milliseconds duration);
template <typename Rep, typename Period>
std::string humanDuration(std::chrono::duration<Rep, Period> duration) {
  return humanDuration(std::chrono::round<std::chrono::milliseconds>(duration));
}

// An uptime or CPU time column: humanDuration() below an hour, then "1h2m", "1d1h".
std::string formatUptime(std::int64_t milliseconds);

// Cluster ids in the order given, runs of three or more consecutive ones as a range:
// "0..3, 5, 7, 8, 10..99". Log lines and the commands' output of a bot of a thousand clusters
// stay readable.
std::string formatIdList(const std::vector<std::uint32_t>& ids);
// The same with its noun: "cluster 3", "clusters 0..3, 5".
std::string formatClusters(const std::vector<std::uint32_t>& ids);

}  // namespace clustervisor
