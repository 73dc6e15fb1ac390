// SPDX-License-Identifier: MIT
//
// The supervisor's output: writeAll, and the output thread that writes every line during a run
// (its own test program: the thread is process-wide state, and ThreadSanitizer runs this program
// in the tsan-sdk preset).
#define BOOST_TEST_MODULE clustervisor_log
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "log.hpp"

BOOST_AUTO_TEST_SUITE(log_output)

using namespace std::chrono_literals;
using clustervisor::droppedOutputLines;
using clustervisor::outputQueueFull;
using clustervisor::outputRoomFd;
using clustervisor::startOutputThread;
using clustervisor::stopOutputThread;
using clustervisor::writeOutput;

namespace {

struct Pipe {
  int read = -1;
  int write = -1;
  Pipe() {
    int fds[2];
    BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read = fds[0];
    write = fds[1];
  }
  ~Pipe() {
    closeWrite();
    if (read >= 0) {
      ::close(read);
    }
  }
  void closeWrite() {
    if (write >= 0) {
      ::close(write);
      write = -1;
    }
  }
};

// Reads a pipe to its end on a thread of its own once started. Its end comes once the write end
// is closed: join() and the destructor (a failed check) close it first.
class Reader {
 public:
  explicit Reader(Pipe& pipe) : pipe_(pipe), fd_(pipe.read) {}
  ~Reader() {
    if (thread_.joinable()) {
      pipe_.closeWrite();
      thread_.join();
    }
  }
  void start() {
    thread_ = std::thread([this] {
      char buffer[65536];
      for (ssize_t n; (n = ::read(fd_, buffer, sizeof buffer)) > 0;) {
        text_.append(buffer, static_cast<std::size_t>(n));
        received_ += static_cast<std::size_t>(n);
      }
    });
  }
  std::size_t received() const { return received_.load(); }
  // Everything up to the end of the stream.
  std::string join() {
    pipe_.closeWrite();
    thread_.join();
    return text_;
  }

 private:
  Pipe& pipe_;
  int fd_;
  std::string text_;  // the reader thread's until join()
  std::atomic<std::size_t> received_{0};
  std::thread thread_;
};

// A numbered line of about `size` bytes.
std::string numberedLine(const char* kind, int n, std::size_t size) {
  std::string line = std::string(kind) + " " + std::to_string(n) + " ";
  line.resize(size - 1, 'x');
  line.push_back('\n');
  return line;
}

// Points standard error at another descriptor for its lifetime (the supervisor's own lines and
// the dropped-lines notice go there).
struct StderrTo {
  int saved;
  explicit StderrTo(int fd) : saved(::dup(STDERR_FILENO)) {
    BOOST_REQUIRE(saved >= 0);
    BOOST_REQUIRE(::dup2(fd, STDERR_FILENO) == STDERR_FILENO);
  }
  ~StderrTo() {
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
  }
};

// The output thread stopped, every line given reached the reader, in order, none dropped.
void expectEverythingWrittenInOrder(Reader& reader, const std::string& expected) {
  stopOutputThread(10s);
  const auto got = reader.join();
  BOOST_TEST(got.size() == expected.size());
  BOOST_TEST((got == expected));
  BOOST_TEST(droppedOutputLines() == 0u);
}

bool readable(int fd, int timeoutMs) {
  pollfd in{fd, POLLIN, 0};
  return ::poll(&in, 1, timeoutMs) == 1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_syslog_priority_is_a_digit_0_to_7_in_angle_brackets_at_the_start) {
  using clustervisor::syslogPriorityOf;
  BOOST_TEST(syslogPriorityOf("<3>failed") == 3);
  BOOST_TEST(syslogPriorityOf("<0>") == 0);
  BOOST_TEST(syslogPriorityOf("<7>debug") == 7);
  BOOST_TEST(syslogPriorityOf("<8>not a priority") == -1);
  BOOST_TEST(syslogPriorityOf("<a>text") == -1);
  BOOST_TEST(syslogPriorityOf("<3 text") == -1);
  BOOST_TEST(syslogPriorityOf(" <3>text") == -1);
  BOOST_TEST(syslogPriorityOf("<3") == -1);
  BOOST_TEST(syslogPriorityOf("") == -1);
}

BOOST_AUTO_TEST_CASE(each_line_of_an_own_message_is_prefixed_a_nul_ending_one_too) {
  // Without the output thread: written at once. A NUL ends a line for the journal, which would
  // otherwise file what follows it as a line without the prefix.
  Pipe pipe;
  {
    const StderrTo redirected(pipe.write);
    clustervisor::logError(std::string_view("first\nsecond\0<3>third", 21));
  }
  pipe.closeWrite();
  std::string got;
  char buffer[256];
  for (ssize_t n; (n = ::read(pipe.read, buffer, sizeof buffer)) > 0;) {
    got.append(buffer, static_cast<std::size_t>(n));
  }
  BOOST_TEST(got ==
             "clustervisor: error: first\nclustervisor: error: second\n"
             "clustervisor: error: <3>third\n");
}

BOOST_AUTO_TEST_CASE(write_all_waits_for_room_on_a_non_blocking_descriptor) {
  Pipe pipe;
  BOOST_REQUIRE(::fcntl(pipe.write, F_SETFL, O_NONBLOCK) == 0);
  // Four times what the pipe holds, read only once the pipe is full: the writer meets EAGAIN.
  const int capacity = ::fcntl(pipe.write, F_GETPIPE_SZ);
  BOOST_REQUIRE(capacity > 0);
  const std::string text(4 * static_cast<std::size_t>(capacity), 'x');
  std::string got;
  std::thread reader([&] {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (int queued = 0; ::ioctl(pipe.read, FIONREAD, &queued) == 0 && queued < capacity &&
                         std::chrono::steady_clock::now() < deadline;) {
      std::this_thread::sleep_for(1ms);
    }
    char buffer[8192];
    for (ssize_t n; (n = ::read(pipe.read, buffer, sizeof buffer)) > 0;) {
      got.append(buffer, static_cast<std::size_t>(n));
    }
  });
  clustervisor::writeAll(pipe.write, text);
  pipe.closeWrite();
  reader.join();
  BOOST_TEST(got.size() == text.size());
  BOOST_TEST((got == text));
}

BOOST_AUTO_TEST_CASE(the_output_thread_writes_own_and_worker_lines_in_the_order_given) {
  Pipe pipe;
  Reader reader(pipe);
  reader.start();
  BOOST_REQUIRE(!startOutputThread());
  const clustervisor::OutputThreadScope stopAtTheEnd{10s};
  std::string expected;
  for (int n = 0; n < 2000; ++n) {
    const auto line =
        numberedLine(n % 3 == 0 ? "own" : "worker", n, static_cast<std::size_t>(100 + n % 50));
    writeOutput(pipe.write, line, n % 3 == 0);
    expected += line;
  }
  expectEverythingWrittenInOrder(reader, expected);
}

BOOST_AUTO_TEST_CASE(worker_lines_past_the_queue_limit_ask_for_a_pause_until_half_is_written) {
  Pipe pipe;
  Reader reader(pipe);
  BOOST_REQUIRE(!startOutputThread());
  const clustervisor::OutputThreadScope stopAtTheEnd{10s};
  const int room = outputRoomFd();
  BOOST_REQUIRE(room >= 0);
  // Nobody reads: the queue fills past its limit. Worker lines are never dropped: the captures
  // stop reading instead, which outputQueueFull() asks for.
  std::string expected;
  int n = 0;
  while (!outputQueueFull(pipe.write)) {
    const auto line = numberedLine("worker", n, 1024);
    writeOutput(pipe.write, line, false);
    expected += line;
    BOOST_REQUIRE_MESSAGE(++n < 4096, "the queue never reported full");
  }
  BOOST_TEST(expected.size() > clustervisor::kOutputQueueLimit);
  BOOST_TEST(!readable(room, 0));
  // A reader comes back: the room descriptor says when the captures may read again.
  reader.start();
  BOOST_TEST(readable(room, 20'000));
  BOOST_TEST(!outputQueueFull(pipe.write));
  expectEverythingWrittenInOrder(reader, expected);
}

BOOST_AUTO_TEST_CASE(own_lines_past_their_budget_are_dropped_counted_and_then_announced) {
  Pipe pipe;
  Reader reader(pipe);
  std::string expected;
  {
    // Also the notice's way out. (A sanitizer report meanwhile would land in the pipe too, and
    // fail the comparison below.)
    const StderrTo stderrToPipe(pipe.write);
    BOOST_REQUIRE(!startOutputThread());
    const clustervisor::OutputThreadScope stopAtTheEnd{10s};
    // Nobody reads: the supervisor's own lines fill their budget, then five are dropped.
    std::size_t queued = 0;
    int dropped = 0;
    for (int n = 0; dropped < 5; ++n) {
      BOOST_REQUIRE_MESSAGE(n < 8192, "no line was ever dropped");
      const auto line = numberedLine("own", n, 1024);
      const std::uint64_t before = droppedOutputLines();
      writeOutput(STDERR_FILENO, line, true);
      if (droppedOutputLines() == before) {
        expected += line;
        queued += line.size();
      } else {
        BOOST_TEST(droppedOutputLines() == before + 1);
        ++dropped;
      }
    }
    BOOST_TEST(queued > clustervisor::kOutputOwnLimit - 1024);
    // The supervisor's own lines never pause the captures.
    BOOST_TEST(!outputQueueFull(STDERR_FILENO));
    // A reader comes back. Once half the budget is written, the next line is preceded by the
    // notice of how many were dropped. (What was read was written; the thread counts a line
    // off after its write: two lines of margin.)
    reader.start();
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (reader.received() < queued - clustervisor::kOutputOwnLimit / 2 + 2 * 1024) {
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                            "the output thread wrote too little after the reader came back");
      std::this_thread::sleep_for(1ms);
    }
    const std::string after = "clustervisor: after the drops\n";
    writeOutput(STDERR_FILENO, after, true);
    expected +=
        "clustervisor: error: 5 of the supervisor's own lines were dropped: its standard output "
        "or error took nothing for too long\n" +
        after;
    BOOST_TEST(droppedOutputLines() == 5u);
    stopOutputThread(10s);
  }
  const auto got = reader.join();
  BOOST_TEST(got.size() == expected.size());
  BOOST_TEST((got == expected));
}

// Runs `body` in a child process with standard output on `out` and standard error on `err`
// (Boost.Test's own output must not go there), and returns the child's pid; the body's return
// value is its exit status.
template <typename Body>
pid_t inChild(int out, int err, Body body) {
  // Nothing buffered in the parent may reach the child's output (ThreadSanitizer's _exit()
  // flushes stdio).
  std::cout.flush();
  std::fflush(nullptr);
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    if (::dup2(out, STDOUT_FILENO) < 0 || ::dup2(err, STDERR_FILENO) < 0) {
      ::_exit(2);
    }
    ::_exit(body());
  }
  return child;
}

// The child's exit status, or -1 if it has not ended by the deadline (it is then killed).
int exitStatusOf(pid_t child) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(5ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

BOOST_AUTO_TEST_CASE(own_lines_reach_standard_error_while_standard_output_takes_nothing) {
  Pipe out;
  Pipe err;
  constexpr int kWorkerLines = 200;  // 200 KiB: more than the pipe holds
  const pid_t child = inChild(out.write, err.write, [] {
    if (startOutputThread()) {
      return 3;
    }
    for (int n = 0; n < kWorkerLines; ++n) {
      writeOutput(STDOUT_FILENO, numberedLine("worker", n, 1024), false);
    }
    clustervisor::logLine("own line while standard output is stuck");
    stopOutputThread(20s);
    return 0;
  });
  out.closeWrite();
  err.closeWrite();
  // Nobody reads standard output yet; the supervisor's line must come through regardless.
  std::string seen;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (seen.find("own line while standard output is stuck\n") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    if (readable(err.read, 100)) {
      char buffer[4096];
      const ssize_t n = ::read(err.read, buffer, sizeof buffer);
      if (n <= 0) {
        break;
      }
      seen.append(buffer, static_cast<std::size_t>(n));
    }
  }
  BOOST_TEST(seen == "clustervisor: own line while standard output is stuck\n");
  // Then standard output is read: every worker line arrives, in order.
  Reader stdoutReader(out);
  stdoutReader.start();
  BOOST_TEST(exitStatusOf(child) == 0);
  std::string expected;
  for (int n = 0; n < kWorkerLines; ++n) {
    expected += numberedLine("worker", n, 1024);
  }
  const auto gotOut = stdoutReader.join();
  BOOST_TEST(gotOut.size() == expected.size());
  BOOST_TEST((gotOut == expected), gotOut.substr(0, 300));
}

BOOST_AUTO_TEST_CASE(a_stuck_standard_output_at_the_stop_leaves_standard_error_working) {
  Pipe out;
  Pipe err;
  const pid_t child = inChild(out.write, err.write, [] {
    if (startOutputThread()) {
      return 3;
    }
    for (int n = 0; n < 200; ++n) {  // more than the pipe holds, and nobody reads
      writeOutput(STDOUT_FILENO, numberedLine("worker", n, 1024), false);
    }
    stopOutputThread(300ms);
    clustervisor::logLine("after the stop");  // written directly: its destination takes it
    writeOutput(STDOUT_FILENO, numberedLine("later", 0, 1024), false);  // dropped, not blocked
    return 0;
  });
  out.closeWrite();
  err.closeWrite();
  Reader errReader(err);
  errReader.start();
  BOOST_TEST(exitStatusOf(child) == 0);
  BOOST_TEST(errReader.join() == "clustervisor: after the stop\n");
}

BOOST_AUTO_TEST_CASE(output_and_error_lines_keep_their_order_when_both_go_to_one_place) {
  Pipe both;
  Reader reader(both);
  const pid_t child = inChild(both.write, both.write, [] {
    if (startOutputThread()) {
      return 3;
    }
    for (int n = 0; n < 2000; ++n) {
      const bool own = n % 3 == 0;
      writeOutput(own ? STDERR_FILENO : STDOUT_FILENO,
                  numberedLine(own ? "own" : "worker", n, static_cast<std::size_t>(100 + n % 50)),
                  own);
    }
    stopOutputThread(20s);
    return 0;
  });
  reader.start();  // after the fork: a child forked while another thread allocates may hang
  BOOST_TEST(exitStatusOf(child) == 0);
  std::string expected;
  for (int n = 0; n < 2000; ++n) {
    const bool own = n % 3 == 0;
    expected += numberedLine(own ? "own" : "worker", n, static_cast<std::size_t>(100 + n % 50));
  }
  const auto got = reader.join();
  BOOST_TEST(got.size() == expected.size());
  BOOST_TEST((got == expected));
}

BOOST_AUTO_TEST_CASE(a_stop_gives_an_output_that_takes_nothing_its_grace_then_drops_later_lines) {
  // In a child process: the output thread it leaves behind stays blocked in its write.
  Pipe pipe;
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    if (startOutputThread()) {
      ::_exit(2);
    }
    // More than the pipe holds, and nobody reads.
    for (int n = 0; n < 200; ++n) {
      writeOutput(pipe.write, numberedLine("worker", n, 1024), false);
    }
    const auto start = std::chrono::steady_clock::now();
    stopOutputThread(300ms);
    if (std::chrono::steady_clock::now() - start < 300ms) {
      ::_exit(3);  // it did not wait for the output
    }
    // The thread is left behind: later lines are dropped rather than block this caller.
    for (int n = 0; n < 200; ++n) {
      writeOutput(pipe.write, numberedLine("later", n, 1024), false);
    }
    ::_exit(0);
  }
  pipe.closeWrite();
  // A child blocked in a direct write never ends by itself: killed at the deadline.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int status = 0;
  pid_t ended = 0;
  while ((ended = ::waitpid(child, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  if (ended == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  }
  BOOST_TEST(ended == child, "the stop or a later line blocked on the full output");
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0), "child status " << status);
  // What the pipe took are the first lines, none of the later ones.
  Reader rest(pipe);
  rest.start();
  const auto got = rest.join();
  BOOST_TEST(got.rfind("worker 0 ", 0) == 0u);
  BOOST_TEST(got.find("later") == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
