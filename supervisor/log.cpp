// SPDX-License-Identifier: MIT
#include "log.hpp"

#include <unistd.h>

#include <cerrno>
#include <string>

namespace clustervisor {
namespace {

void writeWhole(std::string_view prefix, std::string_view message) {
  std::string line;
  line.reserve(prefix.size() + message.size() + 1);
  line.append(prefix).append(message).push_back('\n');
  std::string_view rest(line);
  while (!rest.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

void logLine(std::string_view message) {
  writeWhole("clustervisor: ", message);
}
void logError(std::string_view message) {
  writeWhole("clustervisor: error: ", message);
}

}  // namespace clustervisor
