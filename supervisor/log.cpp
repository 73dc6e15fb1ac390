// SPDX-License-Identifier: MIT
#include "log.hpp"

#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace clustervisor {
void writeAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

namespace {

void writeLine(std::string_view prefix, std::string_view message) {
  std::string line;
  line.reserve(prefix.size() + message.size() + 1);
  line.append(prefix).append(message).push_back('\n');
  writeAll(STDERR_FILENO, line);
}

}  // namespace

void logLine(std::string_view message) {
  writeLine("clustervisor: ", message);
}
void logError(std::string_view message) {
  writeLine("clustervisor: error: ", message);
}

std::string signalName(int signal) {
  if (const char* abbrev = ::sigabbrev_np(signal)) {
    return std::string("SIG") + abbrev;
  }
  return "signal " + std::to_string(signal);
}

}  // namespace clustervisor
