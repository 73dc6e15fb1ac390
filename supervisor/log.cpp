// SPDX-License-Identifier: MIT
#include "log.hpp"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

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

struct OutputThread {
  std::mutex mutex;
  std::condition_variable changed;  // something queued, written, or the end asked for
  std::deque<std::pair<int, std::string>> queue;
  std::size_t bytes = 0;  // queued or being written
  bool stopping = false;
  std::atomic<bool> full{false};
  std::atomic<std::uint64_t> dropped{0};
  std::uint64_t droppedUntold = 0;
  std::thread thread;

  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      changed.wait(lock, [&] { return !queue.empty() || stopping; });
      if (queue.empty()) {
        return;  // stopping, and everything is written
      }
      auto batch = std::exchange(queue, {});
      lock.unlock();
      std::size_t written = 0;
      for (const auto& [fd, text] : batch) {
        writeAll(fd, text);
        written += text.size();
      }
      lock.lock();
      bytes -= written;
      full = bytes > kOutputQueueLimit;
      changed.notify_all();
    }
  }
};

// Created by startOutputThread() and never destroyed: a thread stuck in write(2) at exit may
// still use it.
std::atomic<OutputThread*> output{nullptr};

void writeLine(std::string_view prefix, std::string_view message) {
  std::string line;
  line.reserve(prefix.size() + message.size() + 1);
  line.append(prefix).append(message).push_back('\n');
  writeOutput(STDERR_FILENO, line, true);
}

}  // namespace

void startOutputThread() {
  if (output.load() != nullptr) {
    return;
  }
  auto* state = new OutputThread;
  // Signals go to the main thread's event loop, never to this one.
  sigset_t all;
  sigset_t previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  state->thread = std::thread([state] { state->run(); });
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  output.store(state);
}

void stopOutputThread(std::chrono::milliseconds grace) {
  OutputThread* state = output.exchange(nullptr);
  if (state == nullptr) {
    return;
  }
  std::unique_lock lock(state->mutex);
  state->stopping = true;
  state->changed.notify_all();
  if (state->changed.wait_for(lock, grace, [&] { return state->bytes == 0; })) {
    lock.unlock();
    state->thread.join();
    delete state;
    return;
  }
  // The output takes nothing: what is left is lost with the process; the thread stays blocked.
  lock.unlock();
  state->thread.detach();
}

void writeOutput(int fd, std::string_view bytes, bool own) {
  OutputThread* state = output.load();
  if (state == nullptr) {
    writeAll(fd, bytes);
    return;
  }
  std::lock_guard lock(state->mutex);
  if (own && state->bytes + bytes.size() > kOutputHardLimit) {
    ++state->droppedUntold;
    ++state->dropped;
    return;
  }
  const auto push = [&](int to, std::string text) {
    state->bytes += text.size();
    state->queue.emplace_back(to, std::move(text));
  };
  if (state->droppedUntold > 0) {
    push(STDERR_FILENO, "clustervisor: error: " + std::to_string(state->droppedUntold) +
                            " of the supervisor's own lines were dropped: its standard output or "
                            "error took nothing for too long\n");
    state->droppedUntold = 0;
  }
  push(fd, std::string(bytes));
  state->full = state->bytes > kOutputQueueLimit;
  state->changed.notify_all();
}

bool outputQueueFull() {
  const OutputThread* state = output.load();
  return state != nullptr && state->full.load();
}

std::uint64_t droppedOutputLines() {
  const OutputThread* state = output.load();
  return state == nullptr ? 0 : state->dropped.load();
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
