// SPDX-License-Identifier: MIT
#include "output_capture.hpp"

#include <unistd.h>

#include <cerrno>
#include <utility>

#include <boost/asio/buffer.hpp>

namespace clustervisor {

namespace asio = boost::asio;

OutputCapture::OutputCapture(asio::readable_pipe pipe, std::string prefix, int outputFd,
                             std::function<void()> onEnd)
    : pipe_(std::move(pipe)),
      prefix_(std::move(prefix)),
      outputFd_(outputFd),
      buffer_(8192, '\0'),
      onEnd_(std::move(onEnd)) {}

void OutputCapture::start() {
  readLoop();
}

void OutputCapture::close() {
  boost::system::error_code ignored;
  pipe_.close(ignored);
}

void OutputCapture::readLoop() {
  pipe_.async_read_some(asio::buffer(buffer_), [self = shared_from_this()](
                                                   boost::system::error_code ec, std::size_t n) {
    const auto emit = [&](std::string_view line, bool continued) {
      self->writeLine(line, continued);
    };
    if (n > 0) {
      self->splitter_.feed(std::string_view(self->buffer_).substr(0, n), emit);
    }
    if (ec) {
      self->splitter_.finish(emit);
      if (auto onEnd = std::exchange(self->onEnd_, nullptr)) {
        onEnd();
      }
      return;
    }
    self->readLoop();
  });
}

void OutputCapture::writeLine(std::string_view line, bool continued) {
  line_.assign(prefix_);
  if (continued) {
    line_.back() = '+';
    line_.push_back(' ');
  }
  line_.append(line);
  line_.push_back('\n');
  std::string_view rest(line_);
  // A blocking write keeps lines whole and in order; see clustervisor(1) on slow log readers.
  while (!rest.empty()) {
    const ssize_t written = ::write(outputFd_, rest.data(), rest.size());
    if (written < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;  // the supervisor's own output is gone; nothing sensible to do with the line
    }
    rest.remove_prefix(static_cast<std::size_t>(written));
  }
}

}  // namespace clustervisor
