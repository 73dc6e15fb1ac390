// SPDX-License-Identifier: MIT
#include "harness.hpp"

#include "sanitizer_build.hpp"

#include <boost/json/parse.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <boost/test/unit_test.hpp>

namespace clustervisor::test {

TempDir::TempDir() {
  std::string templ =
      (std::filesystem::temp_directory_path() / "clustervisor-test-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path TempDir::write(const std::string& name, const std::string& text) const {
  const auto file = path_ / name;
  std::ofstream(file) << text;
  return file;
}

namespace {
std::filesystem::path fromEnvironmentOr(const char* name, const char* built) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : built;
}
}  // namespace

std::filesystem::path supervisorBinary() {
  return fromEnvironmentOr("CLUSTERVISOR_E2E_SUPERVISOR", CLUSTERVISOR_BINARY);
}
std::filesystem::path probeWorkerBinary() {
  return fromEnvironmentOr("CLUSTERVISOR_E2E_PROBE_WORKER", PROBE_WORKER_BINARY);
}

Sanitizer sanitizer() {
  static const Sanitizer kSanitizer = [] {
    const char* named = std::getenv("CLUSTERVISOR_E2E_SANITIZER");
    if (named == nullptr || *named == '\0') {
#if defined(CLUSTERVISOR_TEST_ASAN)
      return Sanitizer::kAddress;
#elif defined(CLUSTERVISOR_TEST_TSAN)
      return Sanitizer::kThread;
#else
      return Sanitizer::kNone;
#endif
    }
    const std::string name = named;
    if (name == "none") {
      return Sanitizer::kNone;
    }
    if (name == "address") {
      return Sanitizer::kAddress;
    }
    if (name == "thread") {
      return Sanitizer::kThread;
    }
    throw std::invalid_argument("CLUSTERVISOR_E2E_SANITIZER is \"" + name +
                                "\"; it is one of none, address, thread");
  }();
  return kSanitizer;
}

std::filesystem::path ownRuntimeDirectory(const TempDir& dir) {
  const auto runtime = dir.path() / "runtime";
  std::filesystem::create_directory(runtime);
  std::filesystem::permissions(runtime, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
  return runtime;
}

std::string probeConfig(const TempDir& dir, int clusters, const std::string& mode,
                        const std::string& environment, const std::string& extra) {
  std::ostringstream out;
  out << "command = [\"" << probeWorkerBinary().string() << "\"]\n"
      << "clusters = " << clusters << "\n"
      << "environment = { PROBE_MODE = \"" << mode << "\", PROBE_DIR = \"" << dir.path().string()
      << "\"" << (environment.empty() ? "" : ", " + environment)
      << " }\n"
      // Tables the test's `extra` writes itself replace these defaults (TOML forbids a table
      // twice).
      << (extra.find("[restart]") == std::string::npos ? "[restart]\ndelay = \"100ms\"\n" : "")
      << (extra.find("[stop]") == std::string::npos ? "[stop]\ntimeout = \"5s\"\n" : "") << extra;
  return out.str();
}

std::size_t countLines(const SupervisorRun& run, std::initializer_list<std::string> needles) {
  std::size_t count = 0;
  for (const auto& line : run.lines()) {
    bool all = true;
    for (const auto& needle : needles) {
      all = all && line.find(needle) != std::string::npos;
    }
    count += all ? 1 : 0;
  }
  return count;
}

long delayMs(const std::string& text) {
  double total = 0;
  bool any = false;
  const char* at = text.c_str();
  for (;;) {
    char* end = nullptr;
    const double value = std::strtod(at, &end);
    if (end == at || std::isspace(static_cast<unsigned char>(*at)) != 0) {
      break;
    }
    if (std::strncmp(end, "ms", 2) == 0) {
      total += value;
      at = end + 2;
    } else if (*end == 'h' || *end == 'm' || *end == 's') {
      total += value * (*end == 'h' ? 3'600'000.0 : *end == 'm' ? 60'000.0 : 1000.0);
      at = end + 1;
    } else {
      break;
    }
    any = true;
  }
  return any ? std::lround(total) : -1;
}

SupervisorRun::SupervisorRun(std::vector<std::string> args) {
  int pipefd[2];
  BOOST_REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  pid_ = ::fork();
  BOOST_REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    ::dup2(pipefd[1], STDOUT_FILENO);
    ::dup2(pipefd[1], STDERR_FILENO);
    ::execvp(argv[0], argv.data());  // a bare name ("curl") is looked up in PATH
    ::_exit(127);
  }
  ::close(pipefd[1]);
  outputFd_ = pipefd[0];
  reader_ = std::thread([this, fd = pipefd[0]] { readLoop(fd); });
}

std::unique_ptr<SupervisorRun> SupervisorRun::run(const std::filesystem::path& config) {
  return std::make_unique<SupervisorRun>(
      std::vector<std::string>{supervisorBinary().string(), "run", config.string()});
}

std::unique_ptr<SupervisorRun> SupervisorRun::run(const std::filesystem::path& config,
                                                  const std::vector<std::string>& environment) {
  std::vector<std::string> args{"env"};
  args.insert(args.end(), environment.begin(), environment.end());
  args.insert(args.end(), {supervisorBinary().string(), "run", config.string()});
  return std::make_unique<SupervisorRun>(std::move(args));
}

std::string waitForExitLine(SupervisorRun& run, int cluster, const std::string& how) {
  const std::string who = "clustervisor: cluster " + std::to_string(cluster) + " (pid ";
  return run.waitForLine(
      [&](const std::string& line) {
        return line.find(who) == 0 && line.find(") " + how + " after ") != std::string::npos;
      },
      "cluster " + std::to_string(cluster) + "'s exit line (" + how + ")");
}

SupervisorRun::~SupervisorRun() {
  if (!exitStatus_) {
    ::kill(pid_, SIGKILL);  // the workers follow through their parent-death signal
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  resumeReading();
  if (reader_.joinable()) {
    reader_.join();
  }
  // In sanitizer builds the supervisor and the workers report into this transcript: a report
  // fails the test even when the behaviour looked right.
  for (const auto& line : lines()) {
    for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "WARNING: ThreadSanitizer", "runtime error: "}) {
      if (line.find(marker) != std::string::npos) {
        BOOST_ERROR("sanitizer report in the supervisor's output:\n" << transcript());
        return;
      }
    }
  }
}

void SupervisorRun::readLoop(int fd) {
  std::string partial;
  char buffer[65536];
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return !paused_; });
    }
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    partial.append(buffer, static_cast<std::size_t>(n));
    std::size_t start = 0;
    std::vector<std::string> complete;
    for (std::size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
      complete.push_back(partial.substr(start, nl - start));
    }
    partial.erase(0, start);
    if (!complete.empty()) {
      std::lock_guard lock(mutex_);
      for (auto& line : complete) {
        lines_.push_back(std::move(line));
      }
      changed_.notify_all();
    }
  }
  outputFd_ = -1;
  ::close(fd);
  std::lock_guard lock(mutex_);
  if (!partial.empty()) {
    lines_.push_back(partial);
  }
  eof_ = true;
  changed_.notify_all();
}

std::string SupervisorRun::waitForLine(const std::string& needle,
                                       std::chrono::milliseconds timeout) {
  return waitForLine(
      [&](const std::string& line) { return line.find(needle) != std::string::npos; },
      "a line containing \"" + needle + "\"", timeout);
}

std::string SupervisorRun::waitForLine(const std::function<bool(const std::string&)>& match,
                                       const std::string& what, std::chrono::milliseconds timeout,
                                       std::size_t from, std::size_t* index) {
  std::unique_lock lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t scanned = from;
  for (;;) {
    for (; scanned < lines_.size(); ++scanned) {
      if (match(lines_[scanned])) {
        if (index) {
          *index = scanned;
        }
        return lines_[scanned];
      }
    }
    if (eof_ || changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      // One last scan happens in the loop only if something changed; report now.
      for (; scanned < lines_.size(); ++scanned) {
        if (match(lines_[scanned])) {
          if (index) {
            *index = scanned;
          }
          return lines_[scanned];
        }
      }
      std::string all;
      for (const auto& l : lines_) {
        all += "  | " + l.substr(0, 300) + "\n";
      }
      const bool ended = eof_;
      lock.unlock();
      BOOST_FAIL("waited " << timeout.count() << " ms for " << what
                           << (ended ? " (the supervisor's output ended)" : "")
                           << "; output so far:\n"
                           << all);
    }
  }
}

std::vector<std::string> SupervisorRun::waitForLines(const std::string& needle, std::size_t count,
                                                     std::chrono::milliseconds timeout) {
  std::vector<std::string> found;
  std::size_t from = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (found.size() < count) {
    std::size_t index = 0;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    found.push_back(
        waitForLine([&](const std::string& line) { return line.find(needle) != std::string::npos; },
                    std::to_string(count) + " lines containing \"" + needle + "\"",
                    std::max(left, std::chrono::milliseconds(1)), from, &index));
    from = index + 1;
  }
  return found;
}

std::optional<std::string> SupervisorRun::tryWaitForLine(const std::string& needle,
                                                         std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (std::size_t scanned = 0;;) {
    for (; scanned < lines_.size(); ++scanned) {
      if (lines_[scanned].find(needle) != std::string::npos) {
        return lines_[scanned];
      }
    }
    if (eof_ || changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return std::nullopt;
    }
  }
}

std::vector<std::string> SupervisorRun::lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::vector<std::string> SupervisorRun::linesContaining(const std::string& needle) const {
  std::vector<std::string> out;
  for (const auto& line : lines()) {
    if (line.find(needle) != std::string::npos) {
      out.push_back(line);
    }
  }
  return out;
}

std::string SupervisorRun::transcript() const {
  std::string all;
  for (const auto& l : lines()) {
    all += l.substr(0, 300) + "\n";
  }
  return all;
}

void SupervisorRun::pauseReading() {
  std::lock_guard lock(mutex_);
  paused_ = true;
}

void SupervisorRun::resumeReading() {
  std::lock_guard lock(mutex_);
  paused_ = false;
  changed_.notify_all();
}

std::size_t SupervisorRun::unreadBytes() const {
  int bytes = 0;
  const int fd = outputFd_;
  return fd >= 0 && ::ioctl(fd, FIONREAD, &bytes) == 0 ? static_cast<std::size_t>(bytes) : 0;
}

void SupervisorRun::signal(int sig) {
  if (!exitStatus_) {  // once reaped, the pid may be another process's
    ::kill(pid_, sig);
  }
}

std::optional<int> SupervisorRun::waitExit(std::chrono::milliseconds timeout) {
  if (exitStatus_) {
    return exitStatus_;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exitStatus_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (reader_.joinable()) {
        reader_.join();
      }
      return exitStatus_;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    // Polling a child's exit: no event to wait on without SIGCHLD plumbing in the test.
    std::this_thread::sleep_for(10ms);
  }
}

pid_t startedPid(SupervisorRun& run, int cluster, std::size_t nth,
                 std::chrono::milliseconds timeout) {
  const std::string needle =
      "[cluster " + std::to_string(cluster) + "] START id=" + std::to_string(cluster) + " ";
  const auto lines = run.waitForLines(needle, nth + 1, timeout);
  const auto& line = lines.back();
  const auto at = line.find(" pid=");
  return static_cast<pid_t>(std::stol(line.substr(at + 5)));
}

void waitReady(SupervisorRun& run, int cluster, std::size_t nth) {
  run.waitForLine("cluster " + std::to_string(cluster) + " (pid " +
                  std::to_string(startedPid(run, cluster, nth)) + ") is ready");
}

namespace {

// The content of /proc/<pid>/stat, or nullopt when the process is gone. Read with plain
// read(2): the process may vanish between open and read, which iostreams turn into an
// exception.
std::optional<std::string> procStat(const std::string& pid) {
  const int fd = ::open(("/proc/" + pid + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  char buffer[1024];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  if (n <= 0) {
    return std::nullopt;
  }
  return std::string(buffer, static_cast<std::size_t>(n));
}

}  // namespace

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

bool processExists(pid_t pid) {
  // Zombies count: a process exists until it has been reaped.
  return procStat(std::to_string(pid)).has_value();
}

char processState(pid_t pid) {
  const auto content = procStat(std::to_string(pid));
  const auto close = content ? content->rfind(") ") : std::string::npos;
  return close == std::string::npos || close + 2 >= content->size() ? '?' : (*content)[close + 2];
}

std::vector<pid_t> zombieChildren(pid_t parent) {
  std::vector<pid_t> zombies;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const auto content = procStat(name);
    const auto close = content ? content->rfind(')') : std::string::npos;
    if (close == std::string::npos) {
      continue;
    }
    // After ") ": state, then ppid.
    std::istringstream fields(content->substr(close + 2));
    char state = 0;
    long ppid = 0;
    fields >> state >> ppid;
    if (state == 'Z' && ppid == parent) {
      zombies.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return zombies;
}

bool waitZombie(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto content = procStat(std::to_string(pid));
    const auto close = content ? content->rfind(')') : std::string::npos;
    if (close != std::string::npos && content->size() > close + 2 && (*content)[close + 2] == 'Z') {
      return true;
    }
    if (!content || std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
}

bool waitGone(pid_t pid, std::chrono::milliseconds timeout) {
  return waitUntil([pid] { return !processExists(pid); }, timeout);
}

sockaddr_un unixAddress(const std::filesystem::path& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  BOOST_REQUIRE(path.native().size() < sizeof address.sun_path);
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  return address;
}

int bindUnixSocket(const std::filesystem::path& path, int type) {
  const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  const auto address = unixAddress(path);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  return fd;
}

std::string receiveDatagram(int fd, std::chrono::milliseconds timeout) {
  pollfd ready{fd, POLLIN, 0};
  BOOST_REQUIRE_MESSAGE(::poll(&ready, 1, static_cast<int>(timeout.count())) == 1,
                        "no datagram within " << timeout.count() << " ms");
  char buffer[4096];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  BOOST_REQUIRE(n > 0);
  return std::string(buffer, static_cast<std::size_t>(n));
}

CliResult runCli(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{supervisorBinary().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  SupervisorRun process(argv);
  const auto status = process.waitExit(timeout);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "clustervisor " << args.front() << " did not end");
  CliResult result{*status, {}};
  for (const auto& line : process.lines()) {  // whole lines: transcript() shortens long ones
    result.output += line + "\n";
  }
  return result;
}

boost::json::object statusOf(const std::filesystem::path& config) {
  const auto status = runCli({"status", "--json", config.string()});
  BOOST_REQUIRE_MESSAGE(status.status == 0, status.output);
  return boost::json::parse(status.output).as_object();
}

ProcessUsage usageOf(pid_t pid) {
  ProcessUsage usage;
  const std::filesystem::path proc = "/proc/" + std::to_string(pid);
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(proc / "fd")) {
    ++usage.fds;
  }
  std::ifstream status(proc / "status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) {
      usage.rssKiB = std::atol(line.c_str() + 6);
    }
  }
  return usage;
}

ProcessUsage usageWhenFdsAre(pid_t pid, std::size_t fds, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto usage = usageOf(pid);
  while (usage.fds != fds && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    usage = usageOf(pid);
  }
  return usage;
}

}  // namespace clustervisor::test
