// SPDX-License-Identifier: MIT
#include "output_capture.hpp"

#include <utility>

#include <boost/asio/buffer.hpp>

#include "log.hpp"

namespace clustervisor {

namespace asio = boost::asio;

OutputCapture::OutputCapture(asio::readable_pipe pipe, std::string prefix, int outputFd,
                             std::function<void()> onEnd)
    : pipe_(std::move(pipe)),
      prefix_(std::move(prefix)),
      outputFd_(outputFd),
      toJournal_(leadsToJournal(outputFd)),
      // Uninitialized: an idle worker's pipe costs no more than the page its reads touch.
      buffer_(new char[kReadSize]),
      onEnd_(std::move(onEnd)) {}

void OutputCapture::start() {
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

void OutputCapture::readWhenOutputHasRoom() {
  if (!draining_ && outputQueueFull(outputFd_)) {
    // The supervisor's output takes nothing for now: the worker's lines wait in its pipe (its
    // own writes block once that is full, as they would writing to the terminal directly).
    waitingSelf_ = shared_from_this();
    return;
  }
  readLoop();
}

void OutputCapture::end() {
  splitter_.finish([this](std::string_view line, bool continued) { writeLine(line, continued); });
  if (auto onEnd = std::exchange(onEnd_, nullptr)) {
    onEnd();
  }
}

void OutputCapture::readLoop() {
  pipe_.async_read_some(asio::buffer(buffer_.get(), kReadSize),
                        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                          const auto emit = [&](std::string_view line, bool continued) {
                            self->writeLine(line, continued);
                          };
                          if (n > 0) {
                            self->splitter_.feed(std::string_view(self->buffer_.get(), n), emit);
                          }
                          if (ec) {
                            self->close();  // its descriptor is not kept until the slot is reused
                            self->end();
                            return;
                          }
                          self->readWhenOutputHasRoom();
                        });
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
