// SPDX-License-Identifier: MIT
#include "log.hpp"

#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "line_splitter.hpp"
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

// Syslog priorities (syslog(3)) of the supervisor's own lines.
constexpr int kError = 3;
constexpr int kWarning = 4;
constexpr int kInfo = 6;

// The output threads never allocate or free memory: the main thread queues and later frees the
// lines, a thread only writes them. (A worker is forked while they run; a child that allocated
// between fork and exec could otherwise find an allocator lock held for ever, as under
// AddressSanitizer, whose allocator has no fork handling.)
//
// One lane (a queue and the thread that writes it) per destination: standard output has a lane
// of its own when it goes somewhere else than standard error, so a reader of one that takes
// nothing holds up neither the other nor the supervisor's own lines there. When both go to the
// same place (a terminal, `2>&1`), one lane keeps every line in the order given.
struct Lane {
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
  std::atomic<std::uint64_t> dropped{0};  // written by the main thread only
  std::uint64_t droppedUntold = 0;
  int roomFd = -1;  // the Outputs' eventfd: written when `full` ends
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

  // Ends the thread once everything queued is written: joined, and true, if that happens by
  // `deadline`; otherwise the output takes nothing, what is left is lost with the process, and the
  // thread, still blocked in its write, is detached (false).
  bool endBy(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex);
    stopping = true;
    changed.notify_all();
    const bool done = changed.wait_until(lock, deadline, [&] { return written == lines.size(); });
    lock.unlock();
    if (done) {
      thread.join();
    } else {
      thread.detach();
    }
    return done;
  }

  void push(int fd, bool own, std::string_view text) {
    (own ? ownBytes : workerBytes) += text.size();
    lines.push_back({fd, own, std::string(text)});
  }
};

struct Outputs {
  Lane lanes[2];  // [0]: standard output when it has a lane of its own; [1]: the rest
  bool stdoutOwnLane = false;
  int roomFd = -1;

  Lane& laneFor(int fd) { return stdoutOwnLane && fd == STDOUT_FILENO ? lanes[0] : lanes[1]; }
};

// Whether standard output and standard error lead to the same file, pipe or terminal.
bool sameDestination() {
  struct stat out {};
  struct stat err {};
  return ::fstat(STDOUT_FILENO, &out) == 0 && ::fstat(STDERR_FILENO, &err) == 0 &&
         out.st_dev == err.st_dev && out.st_ino == err.st_ino;
}

// Created by startOutputThread(). One with a thread stuck in write(2) at the end is left behind,
// never destroyed: the thread still uses it. Later lines for that lane's destination are dropped
// rather than written by a caller that would block the same way (`abandonedStdout`: standard
// output; `abandonedOthers`: everything else, standard error included); the other destination
// is written directly.
std::atomic<Outputs*> output{nullptr};
std::atomic<bool> abandonedStdout{false};
std::atomic<bool> abandonedOthers{false};

// One of the supervisor's own lines, ending in a newline. `priority`: the syslog priority the
// journal gives it, where standard error leads there.
// A message of several lines (a refused reload's errors, one per line) gets the prefix, and the
// journal's priority, on each: every line reads as the supervisor's, and is filed as such. A NUL
// ends a line as well, as the journal takes it to.
std::string ownLine(std::string_view prefix, std::string_view message, int priority) {
  const bool journal = leadsToJournal(STDERR_FILENO);
  std::string line;
  line.reserve(3 + prefix.size() + message.size() + 1);
  for (;;) {
    const std::size_t end = message.find_first_of(kLineEnds);
    if (journal) {
      line.append({'<', static_cast<char>('0' + priority), '>'});
    }
    line.append(prefix).append(message.substr(0, end)).push_back('\n');
    if (end == std::string_view::npos) {
      return line;
    }
    message.remove_prefix(end + 1);
  }
}

void writeLine(std::string_view prefix, std::string_view message, int priority) {
  writeOutput(STDERR_FILENO, ownLine(prefix, message, priority), true);
}

std::string droppedNotice(std::uint64_t count) {
  return ownLine("clustervisor: error: ",
                 std::to_string(count) +
                     " of the supervisor's own lines were dropped: its standard output or error "
                     "took nothing for too long",
                 kError);
}

}  // namespace

std::error_code startOutputThread() {
  if (output.load() != nullptr) {
    return {};
  }
  auto state = std::make_unique<Outputs>();
  state->stdoutOwnLane = !sameDestination();
  state->roomFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state->roomFd < 0) {
    return {errno, std::system_category()};
  }
  const std::size_t first = state->stdoutOwnLane ? 0 : 1;
  std::size_t started = first;
  try {
    const SignalsBlocked blocked;  // signals go to the main thread's event loop, never here
    for (; started < 2; ++started) {
      Lane& lane = state->lanes[started];
      lane.roomFd = state->roomFd;
      lane.thread = std::thread([&lane] { lane.run(); });
    }
  } catch (const std::system_error& e) {
    for (std::size_t i = first; i < started; ++i) {
      state->lanes[i].endBy(std::chrono::steady_clock::now());  // nothing queued yet
    }
    ::close(state->roomFd);
    return e.code();
  }
  output.store(state.release());
  return {};
}

void stopOutputThread(std::chrono::milliseconds grace) {
  Outputs* state = output.exchange(nullptr);
  if (state == nullptr) {
    return;
  }
  // One deadline for both lanes: they write at the same time.
  const auto deadline = std::chrono::steady_clock::now() + grace;
  bool stuck[2] = {false, false};
  std::uint64_t untold = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    Lane& lane = state->lanes[i];
    if (!lane.thread.joinable()) {
      continue;
    }
    stuck[i] = !lane.endBy(deadline);
    if (!stuck[i]) {
      untold += lane.droppedUntold;  // the thread has ended
    }
  }
  if (stuck[0] || stuck[1]) {
    abandonedStdout = stuck[0] || (stuck[1] && !state->stdoutOwnLane);
    abandonedOthers = stuck[1];
  } else {
    ::close(state->roomFd);
    delete state;
  }
  if (untold > 0 && !abandonedOthers) {
    writeAll(STDERR_FILENO, droppedNotice(untold));
  }
}

int outputRoomFd() {
  const Outputs* state = output.load();
  return state == nullptr ? -1 : state->roomFd;
}

void writeOutput(int fd, std::string_view bytes, bool own) {
  Outputs* state = output.load();
  if (state == nullptr) {
    if (!(fd == STDOUT_FILENO ? abandonedStdout : abandonedOthers)) {
      writeAll(fd, bytes);
    }
    return;
  }
  Lane& lane = state->laneFor(fd);
  std::lock_guard lock(lane.mutex);
  // What the thread has written is freed here, on this thread.
  for (; lane.written > 0; --lane.written) {
    lane.lines.pop_front();
  }
  if (own && lane.ownBytes + bytes.size() > kOutputOwnLimit) {
    ++lane.droppedUntold;
    lane.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (lane.droppedUntold > 0 && lane.ownBytes <= kOutputOwnLimit / 2) {
    lane.push(STDERR_FILENO, true, droppedNotice(lane.droppedUntold));
    lane.droppedUntold = 0;
  }
  lane.push(fd, own, bytes);
  if (!own && lane.workerBytes > kOutputQueueLimit) {
    lane.full = true;
  }
  lane.changed.notify_all();
}

bool outputQueueFull(int fd) {
  Outputs* state = output.load();
  return state != nullptr && state->laneFor(fd).full.load();
}

std::uint64_t droppedOutputLines() {
  const Outputs* state = output.load();
  if (state == nullptr) {
    return 0;
  }
  return state->lanes[0].dropped.load(std::memory_order_relaxed) +
         state->lanes[1].dropped.load(std::memory_order_relaxed);
}

void logLine(std::string_view message) {
  writeLine("clustervisor: ", message, kInfo);
}
void logWarning(std::string_view message) {
  writeLine("clustervisor: ", message, kWarning);
}
void logError(std::string_view message) {
  writeLine("clustervisor: error: ", message, kError);
}

bool leadsToJournal(int fd) {
  struct Journal {
    bool out = false;
    bool err = false;
  };
  static const Journal journal = [] {
    Journal found;
    const char* stream = std::getenv("JOURNAL_STREAM");
    unsigned long long device = 0;
    unsigned long long inode = 0;
    char end = 0;
    if (stream == nullptr || std::sscanf(stream, "%llu:%llu%c", &device, &inode, &end) != 2) {
      return found;
    }
    const auto same = [&](int which) {
      struct stat st {};
      return ::fstat(which, &st) == 0 && st.st_dev == device && st.st_ino == inode;
    };
    found.out = same(STDOUT_FILENO);
    found.err = same(STDERR_FILENO);
    return found;
  }();
  return fd == STDOUT_FILENO ? journal.out : fd == STDERR_FILENO && journal.err;
}

int syslogPriorityOf(std::string_view line) {
  if (line.size() >= 3 && line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>') {
    return line[1] - '0';
  }
  return -1;
}

std::string signalName(int signal) {
  if (const char* abbrev = ::sigabbrev_np(signal)) {
    return std::string("SIG") + abbrev;
  }
  return "signal " + std::to_string(signal);
}

}  // namespace clustervisor
