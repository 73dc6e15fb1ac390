// SPDX-License-Identifier: MIT
//
// The end-to-end harness: runs the real clustervisor binary on a bot.toml in a temporary
// directory and reads its merged stdout/stderr line by line on a background thread. Tests wait
// for lines with deadlines (never sleep and hope) and signal the supervisor or its workers. The
// destructor kills whatever is left, so a failing test cannot leave processes behind.
#pragma once

#include <atomic>
#include <boost/json/object.hpp>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace clustervisor::test {

using namespace std::chrono_literals;

// A directory removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

// The programs under test: the ones CMake built with this test program, or, when it runs as
// another build's driver, those the environment names (CLUSTERVISOR_E2E_SUPERVISOR,
// CLUSTERVISOR_E2E_PROBE_WORKER; tests/CMakeLists.txt sets them).
std::filesystem::path supervisorBinary();
std::filesystem::path probeWorkerBinary();

// The sanitizer the programs under test were built with: the probe worker, and the supervisor
// too unless it comes from another build (tsan-sdk runs build/dev's). They are slower then, and
// their memory is not all their own, so cases that measure volume or memory say what they do
// instead. It is this program's own unless CLUSTERVISOR_E2E_SANITIZER ("none", "address",
// "thread") says.
enum class Sanitizer { kNone, kAddress, kThread };
Sanitizer sanitizer();
inline bool sanitized() {
  return sanitizer() != Sanitizer::kNone;
}

// A bot.toml running the probe worker in `mode`. `extra` is appended TOML; when it has a [restart]
// or [stop] table, that table replaces the default one (restart.delay 100ms, stop.timeout 5s).
std::string probeConfig(const TempDir& dir, int clusters, const std::string& mode,
                        const std::string& environment = "", const std::string& extra = "");

// dir/runtime, made with mode 0700: an XDG_RUNTIME_DIR other than the test module's, as a
// supervisor run as a service and a login shell's commands each have their own.
std::filesystem::path ownRuntimeDirectory(const TempDir& dir);

class SupervisorRun;

// The exit line of cluster `cluster`'s worker that says `how` ("exited with status 0"), or fails
// the test.
std::string waitForExitLine(SupervisorRun& run, int cluster, const std::string& how);

// Lines of the run's output that contain every one of `needles`.
std::size_t countLines(const SupervisorRun& run, std::initializer_list<std::string> needles);

// "250ms", "1.5s", "2s" or "1m30s" (how the supervisor writes durations) in milliseconds; -1 if
// the text does not start with one.
long delayMs(const std::string& text);

class SupervisorRun {
 public:
  explicit SupervisorRun(std::vector<std::string> args);
  // `clustervisor run <config>`
  static std::unique_ptr<SupervisorRun> run(const std::filesystem::path& config);
  // The same with `environment` ("NAME=value" each) added to the supervisor's, through env(1).
  static std::unique_ptr<SupervisorRun> run(const std::filesystem::path& config,
                                            const std::vector<std::string>& environment);
  ~SupervisorRun();

  pid_t pid() const { return pid_; }

  // The first line (in arrival order, from the start) containing `needle`, or fails the test.
  std::string waitForLine(const std::string& needle, std::chrono::milliseconds timeout = 20s);
  // The first line satisfying `match`, scanning from line `from`; its index through `index`.
  std::string waitForLine(const std::function<bool(const std::string&)>& match,
                          const std::string& what, std::chrono::milliseconds timeout = 20s,
                          std::size_t from = 0, std::size_t* index = nullptr);
  // Waits until `count` lines contain `needle`.
  std::vector<std::string> waitForLines(const std::string& needle, std::size_t count,
                                        std::chrono::milliseconds timeout = 20s);

  // Like waitForLine(), but returns nullopt at the timeout instead of failing the test.
  std::optional<std::string> tryWaitForLine(const std::string& needle,
                                            std::chrono::milliseconds timeout);
  bool hasLine(const std::string& needle) const { return !linesContaining(needle).empty(); }

  std::vector<std::string> lines() const;
  std::vector<std::string> linesContaining(const std::string& needle) const;
  std::string transcript() const;

  void signal(int sig);
  // Stops reading the supervisor's output (it then fills the pipe and waits, as behind a
  // suspended pager), and starts again; and how many bytes wait in that pipe meanwhile.
  void pauseReading();
  void resumeReading();
  std::size_t unreadBytes() const;
  // Exit status as the shell shows it (128+N for a signal), or nullopt at the timeout.
  std::optional<int> waitExit(std::chrono::milliseconds timeout = 30s);

 private:
  void readLoop(int fd);

  pid_t pid_ = -1;
  std::optional<int> exitStatus_;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  bool paused_ = false;
  std::atomic<int> outputFd_{-1};  // -1 once the reader closed it
};

// A command that ran to its end: `clustervisor ARGS...` with its exit status and its output
// (stdout and stderr merged, whole lines).
struct CliResult {
  int status = -1;
  std::string output;
};
CliResult runCli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s);

// The Unix socket address of `path`.
sockaddr_un unixAddress(const std::filesystem::path& path);
// A Unix socket of `type` (SOCK_STREAM, SOCK_DGRAM) bound at `path`; fails the test if it
// cannot be.
int bindUnixSocket(const std::filesystem::path& path, int type);
// The next datagram on `fd` (a socket from bindUnixSocket(path, SOCK_DGRAM)); fails the test if
// none comes within `timeout`.
std::string receiveDatagram(int fd, std::chrono::milliseconds timeout = 20s);

// `clustervisor status --json CONFIG` of a running supervisor: its result object (fails the test
// when the command does not succeed).
boost::json::object statusOf(const std::filesystem::path& config);

// A process's open descriptors and resident memory, from /proc.
struct ProcessUsage {
  std::size_t fds = 0;
  long rssKiB = 0;
};
ProcessUsage usageOf(pid_t pid);
// usageOf(pid), read again until its fd count is `fds` or `timeout` passes (a connection that
// is still closing, say).
ProcessUsage usageWhenFdsAre(pid_t pid, std::size_t fds, std::chrono::milliseconds timeout = 5s);

// Pid printed by a probe worker's START line for `cluster` (the n-th such line, 0-based).
pid_t startedPid(SupervisorRun& run, int cluster, std::size_t nth = 0,
                 std::chrono::milliseconds timeout = 20s);
// Waits for the supervisor's "is ready" line of that worker (the n-th start of `cluster`).
void waitReady(SupervisorRun& run, int cluster, std::size_t nth = 0);

// The probe's `environment` for listeners on the SDK's I/O thread
// (ClusterOptions::listenersOnIoThread); tests that check a contract in both thread modes
// run once with "" and once with this.
inline const std::string kIoThread = "PROBE_THREADS = \"io\"";

// Polls `condition` every 10 ms until it holds (true) or `timeout` passes (false).
bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 20s);

bool processExists(pid_t pid);
// The state letter /proc gives `pid` (R, S, T for stopped, Z, ...), or '?' once it is gone.
char processState(pid_t pid);
// Waits until `pid` has exited but not been reaped yet (its parent is not reaping), or the
// timeout.
bool waitZombie(pid_t pid, std::chrono::milliseconds timeout = 20s);
// Children of `parent` that have exited and not been reaped.
std::vector<pid_t> zombieChildren(pid_t parent);
// Waits until `pid` no longer exists (not even as a zombie), or the timeout.
bool waitGone(pid_t pid, std::chrono::milliseconds timeout = 20s);

}  // namespace clustervisor::test
