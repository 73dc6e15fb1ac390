// SPDX-License-Identifier: MIT
//
// formatStatus(): the table `clustervisor status` prints, made from the supervisor's status
// answer (the "result" object of control protocol 1). Pure; fields it does not know are ignored
// and missing ones shown as "-", so an older or newer supervisor's answer still prints.
#pragma once

#include <string>

#include <boost/json/object.hpp>

namespace clustervisor {

std::string formatStatus(const boost::json::object& status);

// Resident memory: "900B", "512KiB", "45.2MiB", "1.3GiB" (whole KiB below 1 MiB, tenths above).
std::string formatMemory(std::uint64_t bytes);

// "1h2m", "3m4s", "5.2s", "340ms"
std::string formatUptime(std::int64_t milliseconds);

}  // namespace clustervisor
