// SPDX-License-Identifier: MIT
//
// LineSplitter: turns a worker's stdout or stderr byte stream into lines. Pure.
//
// Bytes arrive in arbitrary pieces; each complete line is emitted once, without its '\n' (or NUL,
// which ends a line as the journal takes it to). A line
// longer than maxLine is emitted in maxLine pieces, the later ones marked as continuations, so one
// runaway line can neither exhaust memory nor vanish. At end of stream a final line without '\n'
// is emitted as is.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace clustervisor {

// What ends a line: a newline, or a NUL, as it does for the journal (which would otherwise take
// what follows it as a line of the supervisor's own, with a priority of the writer's choosing).
inline constexpr std::string_view kLineEnds("\n\0", 2);

class LineSplitter {
 public:
  static constexpr std::size_t kDefaultMaxLine = 16 * 1024;
  // line: the text; continued: this piece continues the previous, over-long line.
  using Emit = std::function<void(std::string_view line, bool continued)>;

  explicit LineSplitter(std::size_t maxLine = kDefaultMaxLine) : maxLine_(maxLine) {}

  void feed(std::string_view bytes, const Emit& emit);
  void finish(const Emit& emit);

 private:
  std::size_t maxLine_;
  std::string partial_;
  bool continuing_ = false;  // the next piece continues a line that was split
};

}  // namespace clustervisor
