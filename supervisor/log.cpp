// SPDX-License-Identifier: MIT
#include "log.hpp"

#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "signals_blocked.hpp"

namespace clustervisor {
void writeAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        // A descriptor someone else made non-blocking (a shared pipe, say): wait for room
        // rather than lose the rest of the line.
        pollfd out{fd, POLLOUT, 0};
        (void)::poll(&out, 1, -1);
        continue;
      }
      return;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

namespace {

// The output thread never allocates or frees memory: the main thread queues and later frees the
// lines, the thread only writes them. (A worker is forked while this thread runs; a child that
// allocated between fork and exec could otherwise find an allocator lock held for ever, as under
// AddressSanitizer, whose allocator has no fork handling.)
struct OutputThread {
  struct Line {
    int fd;
    bool own;
    std::string text;
  };
  std::mutex mutex;
  std::condition_variable changed;  // a line queued or written, or the end asked for
  // Lines in order; the first `written` are written and freed by the main thread's next call.
  // Elements keep their address while others are added or removed at the ends, so the thread
  // writes one outside the lock.
  std::deque<Line> lines;
  std::size_t written = 0;
  std::size_t workerBytes = 0;  // queued, not yet written
  std::size_t ownBytes = 0;
  bool stopping = false;
  std::atomic<bool> full{false};
  std::uint64_t dropped = 0;  // main thread only, as droppedUntold
  std::uint64_t droppedUntold = 0;
  int roomFd = -1;  // eventfd: written when `full` ends
  std::thread thread;

  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      changed.wait(lock, [&] { return written < lines.size() || stopping; });
      if (written == lines.size()) {
        return;  // stopping, and everything is written
      }
      const Line& line = lines[written];
      lock.unlock();
      writeAll(line.fd, line.text);
      lock.lock();
      ++written;
      (line.own ? ownBytes : workerBytes) -= line.text.size();
      if (full && workerBytes <= kOutputQueueLimit / 2) {
        full = false;
        const std::uint64_t one = 1;
        (void)!::write(roomFd, &one, sizeof one);
      }
      changed.notify_all();
    }
  }

  void push(int fd, bool own, std::string_view text) {
    (own ? ownBytes : workerBytes) += text.size();
    lines.push_back({fd, own, std::string(text)});
  }
};

// Created by startOutputThread(). One whose thread is stuck in write(2) at the end is left
// behind (`abandoned`), never destroyed: the thread still uses it, and later lines are dropped
// rather than written by a caller that would block the same way.
std::atomic<OutputThread*> output{nullptr};
std::atomic<bool> abandoned{false};

void writeLine(std::string_view prefix, std::string_view message) {
  std::string line;
  line.reserve(prefix.size() + message.size() + 1);
  line.append(prefix).append(message).push_back('\n');
  writeOutput(STDERR_FILENO, line, true);
}

std::string droppedNotice(std::uint64_t count) {
  return "clustervisor: error: " + std::to_string(count) +
         " of the supervisor's own lines were dropped: its standard output or error took "
         "nothing for too long\n";
}

}  // namespace

std::error_code startOutputThread() {
  if (output.load() != nullptr) {
    return {};
  }
  auto state = std::make_unique<OutputThread>();
  state->roomFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state->roomFd < 0) {
    return {errno, std::system_category()};
  }
  try {
    const SignalsBlocked blocked;  // signals go to the main thread's event loop, never here
    state->thread = std::thread([raw = state.get()] { raw->run(); });
  } catch (const std::system_error& e) {
    ::close(state->roomFd);
    return e.code();
  }
  output.store(state.release());
  return {};
}

void stopOutputThread(std::chrono::milliseconds grace) {
  OutputThread* state = output.exchange(nullptr);
  if (state == nullptr) {
    return;
  }
  std::unique_lock lock(state->mutex);
  state->stopping = true;
  state->changed.notify_all();
  if (!state->changed.wait_for(lock, grace,
                               [&] { return state->written == state->lines.size(); })) {
    // The output takes nothing: what is left is lost with the process; the thread stays blocked.
    abandoned = true;
    lock.unlock();
    state->thread.detach();
    return;
  }
  const std::uint64_t untold = state->droppedUntold;
  lock.unlock();
  state->thread.join();
  ::close(state->roomFd);
  delete state;
  if (untold > 0) {
    writeAll(STDERR_FILENO, droppedNotice(untold));
  }
}

int outputRoomFd() {
  const OutputThread* state = output.load();
  return state == nullptr ? -1 : state->roomFd;
}

void writeOutput(int fd, std::string_view bytes, bool own) {
  OutputThread* state = output.load();
  if (state == nullptr) {
    if (!abandoned) {
      writeAll(fd, bytes);
    }
    return;
  }
  std::lock_guard lock(state->mutex);
  // What the thread has written is freed here, on this thread.
  for (; state->written > 0; --state->written) {
    state->lines.pop_front();
  }
  if (own && state->ownBytes + bytes.size() > kOutputOwnLimit) {
    ++state->droppedUntold;
    ++state->dropped;
    return;
  }
  if (state->droppedUntold > 0 && state->ownBytes <= kOutputOwnLimit / 2) {
    state->push(STDERR_FILENO, true, droppedNotice(state->droppedUntold));
    state->droppedUntold = 0;
  }
  state->push(fd, own, bytes);
  if (!own && state->workerBytes > kOutputQueueLimit) {
    state->full = true;
  }
  state->changed.notify_all();
}

bool outputQueueFull() {
  const OutputThread* state = output.load();
  return state != nullptr && state->full.load();
}

std::uint64_t droppedOutputLines() {
  const OutputThread* state = output.load();
  return state == nullptr ? 0 : state->dropped;
}

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
