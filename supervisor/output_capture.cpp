// SPDX-License-Identifier: MIT
#include "output_capture.hpp"

#include <unistd.h>

#include <cerrno>
#include <utility>

#include <boost/asio/buffer.hpp>

#include "log.hpp"

namespace clustervisor {

namespace asio = boost::asio;

OutputCapture::OutputCapture(asio::readable_pipe pipe, std::string prefix, int outputFd,
                             std::function<void()> onEnd)
    : pipe_(pipe.get_executor(), pipe.release()),
      prefix_(std::move(prefix)),
      outputFd_(outputFd),
      toJournal_(leadsToJournal(outputFd)),
      // Uninitialized: an idle worker's pipe costs no more than the page its reads touch.
      buffer_(new char[kReadSize]),
      onEnd_(std::move(onEnd)) {}

void OutputCapture::start() {
  boost::system::error_code ignored;
  pipe_.non_blocking(true, ignored);  // (failing, the wait for readability still precedes reads)
  readLoop();
}

void OutputCapture::close() {
  boost::system::error_code ignored;
  pipe_.close(ignored);
  if (const auto self = std::exchange(waitingSelf_, nullptr)) {
    end();  // no read is pending to report the close
  }
}

void OutputCapture::outputHasRoom() {
  if (const auto self = std::exchange(waitingSelf_, nullptr)) {
    readWhenOutputHasRoom();
  }
}

void OutputCapture::drainToEnd() {
  draining_ = true;
  outputHasRoom();
}

bool OutputCapture::waitsForOutputRoom() {
  if (draining_ || !outputQueueFull(outputFd_)) {
    return false;
  }
  // The supervisor's output takes nothing for now: the worker's lines wait in its pipe (its own
  // writes block once that is full, as they would writing to the terminal directly).
  waitingSelf_ = shared_from_this();
  return true;
}

void OutputCapture::readWhenOutputHasRoom() {
  if (!waitsForOutputRoom()) {
    readLoop();
  }
}

void OutputCapture::end() {
  splitter_.finish([this](std::string_view line, bool continued) { writeLine(line, continued); });
  if (auto onEnd = std::exchange(onEnd_, nullptr)) {
    onEnd();
  }
}

void OutputCapture::readLoop() {
  pipe_.async_wait(asio::posix::descriptor_base::wait_read,
                   [self = shared_from_this()](boost::system::error_code ec) {
                     if (ec) {
                       self->close();  // closed meanwhile (the run's end cut it off)
                       self->end();
                       return;
                     }
                     self->readReady();
                   });
}

long OutputCapture::readOnce(int& error) {
  for (;;) {
    const ssize_t n = ::read(pipe_.native_handle(), buffer_.get(), kReadSize);
    if (n > 0) {
      splitter_.feed(std::string_view(buffer_.get(), static_cast<std::size_t>(n)),
                     [this](std::string_view line, bool continued) { writeLine(line, continued); });
      return n;
    }
    if (n == 0) {
      return 0;
    }
    if (errno != EINTR) {
      error = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno;
      return -1;
    }
  }
}

void OutputCapture::readReady() {
  // A few reads per wake-up, as long as there is more and room for it: a chatty worker's lines
  // do not each wait for a turn of the event loop.
  for (int reads = 0; reads < kReadsPerWake; ++reads) {
    int error = 0;
    const long n = readOnce(error);
    if (n == 0 || (n < 0 && error != 0)) {
      close();  // the end of the pipe (or an error): its descriptor is not kept until the slot
      end();    // is reused
      return;
    }
    if (n < 0) {
      break;  // nothing more for now (readWhatIsThere() may have taken it)
    }
    if (waitsForOutputRoom()) {
      return;
    }
  }
  readLoop();
}

void OutputCapture::readWhatIsThere() {
  if (!pipe_.non_blocking()) {
    return;  // a read could wait for a descendant's next line
  }
  std::size_t taken = 0;
  int error = 0;
  long n = 0;
  while (pipe_.is_open() && taken < kMostAtExit && (n = readOnce(error)) > 0) {
    taken += static_cast<std::size_t>(n);
  }
  // The end of the pipe, or nothing more for now: the pending wait (or the one made when the
  // output has room) sees it.
}

void OutputCapture::writeLine(std::string_view line, bool continued) {
  line_.clear();
  if (toJournal_) {
    // The worker's own syslog priority ("<3>…") goes in front of the prefix, where the journal
    // looks for it; a continued piece keeps the priority of its line's first.
    if (!continued) {
      priority_ = syslogPriorityOf(line);
      if (priority_ >= 0) {
        line.remove_prefix(3);
      }
    }
    if (priority_ >= 0) {
      line_.append({'<', static_cast<char>('0' + priority_), '>'});
    }
  }
  line_.append(prefix_);
  if (continued) {
    line_.back() = '+';
    line_.push_back(' ');
  }
  line_.append(line);
  line_.push_back('\n');
  // One write(2) per line keeps lines whole and in order; see clustervisor(1) on slow readers.
  writeOutput(outputFd_, line_, false);
}

}  // namespace clustervisor
