// SPDX-License-Identifier: MIT
//
// OutputCapture: reads one worker stream (stdout or stderr) from its pipe and writes it, line by
// line, to the supervisor's own stdout or stderr with the cluster's prefix:
//
//   [cluster 3] logged in as shard 12
//   [cluster 3]+ …continuation of a line longer than 16 KiB
//
// Where the output leads to the journal, a line's own syslog priority ("<3>…") is moved in front
// of the prefix, so the journal still finds it.
//
// Each line goes out in a single write(2), so lines of different workers never interleave. Runs
// on the supervisor's io_context; lives until the pipe reports end of file (the worker and every
// process that inherited the pipe have exited) or close(), then calls onEnd once. While the
// output queue is full (see log.hpp) it reads nothing, so the worker's lines wait in its pipe,
// until outputHasRoom(); drainToEnd() reads on regardless (the run is ending).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/readable_pipe.hpp>

#include "line_splitter.hpp"

namespace clustervisor {

class OutputCapture : public std::enable_shared_from_this<OutputCapture> {
 public:
  OutputCapture(boost::asio::readable_pipe pipe, std::string prefix, int outputFd,
                std::function<void()> onEnd);

  void start();
  void close();          // stops reading; a partial line is still written
  void outputHasRoom();  // reads again if it waited for the output queue
  void drainToEnd();     // from now on reads whatever the output queue holds

 private:
  void readLoop();
  void readWhenOutputHasRoom();
  void end();  // the partial line, then onEnd
  void writeLine(std::string_view line, bool continued);

  boost::asio::readable_pipe pipe_;
  std::string prefix_;
  int outputFd_;
  const bool toJournal_;  // see leadsToJournal()
  int priority_ = -1;     // the syslog priority of the line being written, or -1
  static constexpr std::size_t kReadSize = 8192;
  LineSplitter splitter_;
  std::unique_ptr<char[]> buffer_;
  std::string line_;
  std::function<void()> onEnd_;
  // Set while it waits for room in the output queue: no read is pending then to keep it alive,
  // and the supervisor may already have let go of it (its worker replaced).
  std::shared_ptr<OutputCapture> waitingSelf_;
  bool draining_ = false;
};

}  // namespace clustervisor
