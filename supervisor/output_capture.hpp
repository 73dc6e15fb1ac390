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
//
// The pipe is read with read(2) in this class's own code, after a wait for it to be readable (not
// an Asio read, which may have taken bytes whose handler has not run yet): so readWhatIsThere()
// can take what a worker that has just exited left in it, in order, before its exit is logged.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/posix/stream_descriptor.hpp>
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
  // Reads what the pipe holds now (up to kMostAtExit), whatever the output queue holds: called
  // when the worker has exited, so its last lines come before the line that says so.
  void readWhatIsThere();

 private:
  void readLoop();
  void readReady();
  // One read(2) into buffer_, its lines written: the bytes read, 0 at the end of the pipe, -1
  // when it has nothing now (or an error, in `error`).
  long readOnce(int& error);
  // True, and waiting for outputHasRoom(), while the output queue is full (unless draining).
  bool waitsForOutputRoom();
  void readWhenOutputHasRoom();
  void end();  // the partial line, then onEnd
  void writeLine(std::string_view line, bool continued);

  boost::asio::posix::stream_descriptor pipe_;  // non-blocking
  std::string prefix_;
  int outputFd_;
  const bool toJournal_;  // see leadsToJournal()
  int priority_ = -1;     // the syslog priority of the line being written, or -1
  static constexpr std::size_t kReadSize = 8192;
  static constexpr std::size_t kMostAtExit = 4 * 1024 * 1024;  // a descendant may write on
  static constexpr int kReadsPerWake = 8;
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
