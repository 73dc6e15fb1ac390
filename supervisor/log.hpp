// SPDX-License-Identifier: MIT
//
// The supervisor's own messages: one line each, "clustervisor: …", on stderr, written with a
// single write(2) so they never interleave with worker lines.
#pragma once

#include <string_view>

namespace clustervisor {

void logLine(std::string_view message);
void logError(std::string_view message);  // "clustervisor: error: …"

}  // namespace clustervisor
