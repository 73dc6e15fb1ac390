// SPDX-License-Identifier: MIT
//
// The supervisor's own messages: one line each, "clustervisor: …", on stderr, written with a
// single write(2) so they never interleave with worker lines; and the write loop both these and
// the captured worker lines use.
#pragma once

#include <string>
#include <string_view>

namespace clustervisor {

// Writes all of `bytes` to `fd`, retrying on EINTR; gives up silently when the descriptor is
// gone (there is nowhere left to report it). One write(2) when the descriptor allows.
void writeAll(int fd, std::string_view bytes);

void logLine(std::string_view message);
void logError(std::string_view message);  // "clustervisor: error: …"

// A signal as messages name it: "SIGTERM", or "signal 42" for one without a name.
std::string signalName(int signal);

}  // namespace clustervisor
