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

// "1h2m", "3m4s", "5.2s", "340ms"
std::string formatUptime(std::int64_t milliseconds);

}  // namespace clustervisor
