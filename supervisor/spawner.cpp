// SPDX-License-Identifier: MIT
#include "spawner.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/detail/last_error.hpp>
#include <boost/process/v2/posix/default_launcher.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/start_dir.hpp>
#include <boost/process/v2/stdio.hpp>
#include <boost/system/system_error.hpp>

#include "clustervisor/wire/frame.hpp"
#include "plan.hpp"
#include "process_table.hpp"
#include "signals_blocked.hpp"

extern char** environ;

namespace clustervisor {

namespace asio = boost::asio;
namespace bp = boost::process::v2;
using boost::system::error_code;

namespace {

// Closes every descriptor above the worker's fd 3 except those in `keep`. Async-signal-safe:
// no allocation, only close_range(2).
void closeAllBut(const std::vector<int>& keep) {
  unsigned int from = wire::kWorkerFd + 1;
  for (;;) {
    // The smallest kept descriptor at or above `from`.
    unsigned int next = ~0u;
    for (const int fd : keep) {
      if (fd >= 0 && static_cast<unsigned int>(fd) >= from &&
          static_cast<unsigned int>(fd) < next) {
        next = static_cast<unsigned int>(fd);
      }
    }
    if (next == ~0u) {
      ::close_range(from, ~0u, 0);
      return;
    }
    if (next > from) {
      ::close_range(from, next - 1, 0);
    }
    from = next + 1;
  }
}

// Puts the worker's end of the socketpair on fd 3 in the child. Boost 1.81's posix::bind_fd
// falls off the end of a function returning error_code (a crash at -O2), hence this one.
// Everything here runs between clone and exec, in the supervisor's memory (see CloneLauncher):
// system calls only.
struct WorkerSetup {
  int socketFd;
  pid_t supervisorPid;

  error_code on_setup(bp::posix::default_launcher& launcher, const bp::filesystem::path&,
                      const char* const*) {
    launcher.fd_whitelist.push_back(wire::kWorkerFd);
    return error_code{};
  }

  error_code on_exec_setup(bp::posix::default_launcher& launcher, const bp::filesystem::path&,
                           const char* const*) {
    // A process group of its own: a stop reaches the worker's children too, and a Ctrl-C at the
    // terminal reaches only the supervisor, which then stops the workers in order.
    if (::setpgid(0, 0) != 0) {
      return error_code(errno, boost::system::system_category());
    }
    // Die with the supervisor, even when it is SIGKILLed. The check closes the race where the
    // supervisor died before prctl ran.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != supervisorPid) {
      return error_code(ESRCH, boost::system::system_category());
    }
    if (socketFd == wire::kWorkerFd) {
      // dup2 onto itself would keep FD_CLOEXEC; clear it instead.
      if (::fcntl(socketFd, F_SETFD, 0) != 0) {
        return error_code(errno, boost::system::system_category());
      }
    } else if (::dup2(socketFd, wire::kWorkerFd) < 0) {
      return error_code(errno, boost::system::system_category());
    }
    // Every descriptor above fd 3 goes but those in the whitelist (none with CloneLauncher; the
    // fork launcher's own error pipe, which must stay open until exec). Boost 1.81's close_all()
    // skips the gaps between whitelisted descriptors (it compares each entry with itself), so it
    // is not used.
    closeAllBut(launcher.fd_whitelist);
    // Signals the supervisor ignores, handles or blocks must not stay so in the worker. The
    // supervisor's handlers (asio's) would write into the supervisor's own signal pipe until the
    // exec, so they go before the mask does (the parent blocked everything around the clone).
    // Ignoring first discards what came meanwhile: a Ctrl-C at the terminal before setpgid()
    // reached the supervisor too, which stops its workers in order; a SIGTSTP, SIGTTIN or SIGTTOU
    // would stop the child before its exec, with the spawning thread waiting for it. A fault
    // before the exec ends the child, not in a handler of the supervisor's (a sanitizer's).
    for (const int number : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD,
                             SIGTSTP, SIGTTIN, SIGTTOU, SIGSEGV, SIGBUS, SIGFPE}) {
      ::signal(number, SIG_IGN);
      ::signal(number, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    return error_code{};
  }
};

// Process v2's launcher, but the child is started with clone(CLONE_VM | CLONE_VFORK), as
// posix_spawn(3) starts it, rather than fork(2). Until its exec the child runs in the supervisor's
// memory on a stack of its own, while the thread that started it waits: no page table is copied
// and no page copied on write, neither in the child nor in the supervisor after it, and the exec
// has no copy of the supervisor's memory to take down. That was about 2.5 ms of each restart on
// a 2-core VM (bench/README.md, "restart").
// Process v2's own vfork_launcher (1.81) cannot stand in: its child calls notify_fork() on the
// launcher's io_context, rebuilding in shared memory a reactor that the supervisor then holds,
// and exit(3) after a failed exec, which runs the supervisor's atexit handlers.
// In the child, as after vfork(2): system calls only. No allocation, no lock, no exception and
// no write to the supervisor's memory but `childError` and the spawning thread's errno; its end
// is a return, not a call of a function that does not return, so nothing unwinds or is told of a
// stack it does not know.
// Not under ThreadSanitizer: its interceptors keep their table of signal handlers and of
// descriptors in the process's memory, and the child's instrumented code writes the spawning
// thread's state, so a child sharing that memory changes the supervisor's (after the first spawn
// the supervisor's signal handlers no longer ran). There workers are forked (ForkLauncher).
class CloneLauncher : public bp::posix::default_launcher {
 public:
  explicit CloneLauncher(std::span<std::byte> stack) : stack_(stack) {}

  // The pid of the child that has run its exec, or -1 with `ec` set; a child whose exec failed
  // is reaped here.
  template <typename... Inits>
  pid_t operator()(error_code& ec, const bp::filesystem::path& executable,
                   const std::vector<std::string>& args, Inits&&... inits) {
    const char* const* argv = build_argv_(executable, args);
    ec = bp::posix::detail::on_setup(*this, executable, argv, inits...);
    if (ec) {
      bp::posix::detail::on_error(*this, executable, argv, ec, inits...);
      return -1;
    }
    int childError = 0;
    auto child = [&]() noexcept -> int {
      const error_code setup = bp::posix::detail::on_exec_setup(*this, executable, argv, inits...);
      if (!setup) {
        ::execve(executable.c_str(), const_cast<char* const*>(argv), const_cast<char* const*>(env));
      }
      childError = setup ? setup.value() : errno;
      return 127;
    };
    using Child = decltype(child);
    const pid_t started =
        ::clone([](void* body) -> int { return (*static_cast<Child*>(body))(); },
                stack_.data() + stack_.size(), CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
    if (started == -1) {
      ec = error_code(errno, boost::system::system_category());
      bp::posix::detail::on_fork_error(*this, executable, argv, ec, inits...);
      bp::posix::detail::on_error(*this, executable, argv, ec, inits...);
      return -1;
    }
    if (childError != 0) {
      // It has ended (CLONE_VFORK): only its status is left.
      while (::waitpid(started, nullptr, 0) == -1 && errno == EINTR) {
      }
      ec = error_code(childError, boost::system::system_category());
      bp::posix::detail::on_error(*this, executable, argv, ec, inits...);
      return -1;
    }
    pid = started;
    bp::posix::detail::on_success(*this, executable, argv, ec, inits...);
    return started;
  }

 private:
  std::span<std::byte> stack_;
};

// Process v2's own launcher (fork and exec), for builds under ThreadSanitizer (see above). It is
// given an io_context that holds nothing and is never run (the Spawner's): the child of the fork
// calls notify_fork(fork_child) on it, which rebuilds that context's reactor and registers every
// descriptor it holds again (thousands of system calls with a thousand clusters, were it the
// supervisor's).
class ForkLauncher : public bp::posix::default_launcher {
 public:
  explicit ForkLauncher(asio::io_context& context) : context_(context) {}

  template <typename... Inits>
  pid_t operator()(error_code& ec, const bp::filesystem::path& executable,
                   const std::vector<std::string>& args, Inits&&... inits) {
    auto process = bp::posix::default_launcher::operator()(context_.get_executor(), ec, executable,
                                                           args, std::forward<Inits>(inits)...);
    if (ec) {
      return -1;
    }
    const pid_t started = process.id();
    // The supervisor reaps its children itself (SIGCHLD + waitpid); the handle would otherwise
    // terminate the worker when it goes out of scope.
    process.detach();
    return started;
  }

 private:
  asio::io_context& context_;
};

// A worker's stack between clone and exec: the initializers and the exec, a few KiB deep (more
// under ASan), with room to spare.
constexpr std::size_t kChildStackBytes = 128 * 1024;

std::vector<std::string> buildEnvironment(const SpawnRequest& request) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    // The service manager's socket and watchdog are the supervisor's (NotifyAccess=main).
    if (eq == std::string_view::npos || entry.starts_with("CLUSTERVISOR_") ||
        entry.starts_with("NOTIFY_SOCKET=") || entry.starts_with("WATCHDOG_USEC=") ||
        entry.starts_with("WATCHDOG_PID=")) {
      continue;
    }
    merged[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
  }
  for (const auto& [key, value] : request.environment) {
    merged[key] = value;
  }
  merged[wire::kEnvClusterId] = std::to_string(request.clusterId);
  merged[wire::kEnvTotalClusters] = std::to_string(request.totalClusters);
  merged[wire::kEnvFd] = std::to_string(wire::kWorkerFd);
  merged[wire::kEnvProtocol] = std::to_string(wire::kProtocolVersion);
  if (!request.bot.empty()) {
    merged[kEnvBot] = request.bot;
    merged[kEnvSupervisor] = request.supervisorMark;
  }
  if (request.totalShards > 0) {
    std::string shards;
    for (const auto shard : request.shards) {
      if (!shards.empty()) {
        shards += ',';
      }
      shards += std::to_string(shard);
    }
    merged[wire::kEnvShards] = shards;
    merged[wire::kEnvTotalShards] = std::to_string(request.totalShards);
  }
  std::vector<std::string> out;
  out.reserve(merged.size());
  for (const auto& [key, value] : merged) {
    out.push_back(key + "=" + value);
  }
  return out;
}

}  // namespace

std::filesystem::path Spawner::resolveProgram(const std::string& program,
                                              const std::filesystem::path& workingDirectory,
                                              const std::string& path) {
  if (program.find('/') != std::string::npos) {
    const std::filesystem::path p(program);
    return (p.is_absolute() ? p : workingDirectory / p).lexically_normal();
  }
  std::string_view rest(path);
  while (true) {
    const auto colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    // An empty or relative entry is taken from the working directory, as exec(2) in the worker
    // (which runs there) would take it.
    const std::filesystem::path entry(dir);
    const std::filesystem::path candidate =
        (entry.is_absolute() ? entry : workingDirectory / entry) / program;
    if (::access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) {
      return candidate;
    }
    if (colon == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(colon + 1);
  }
  return {};  // not found: the caller reports it with the name as configured
}

namespace {

// The workers' PATH: the configuration's, or the one they inherit from the supervisor.
std::string workersPath(const std::map<std::string, std::string>& configured) {
  if (const auto it = configured.find("PATH"); it != configured.end()) {
    return it->second;
  }
  const char* inherited = std::getenv("PATH");
  return inherited != nullptr ? inherited : "/usr/local/bin:/usr/bin:/bin";
}

// Why the workers cannot run in `directory` (an errno value), or 0.
int workingDirectoryError(const std::filesystem::path& directory) {
  struct stat st {};
  if (::stat(directory.c_str(), &st) != 0) {
    return errno;
  }
  if (!S_ISDIR(st.st_mode)) {
    return ENOTDIR;
  }
  return ::access(directory.c_str(), X_OK) != 0 ? errno : 0;
}

// What to do when a path the workers need cannot be used for `why` (an errno): `make` it
// ("create", "build or install"), or correct it; a relative path is taken `from` there.
std::string fixForPath(int why, const std::string& make, const std::string& from) {
  switch (why) {
    case ENOENT:
      return "; " + make + " it, or correct the path (a relative one is taken from " + from + ")";
    case ENOTDIR:
      return "; correct the path: it, or a directory above it, is not a directory";
    case EACCES:
      return "; the supervisor's user needs search (x) permission on every directory of the path";
    default:
      return "";
  }
}

}  // namespace

config::LoadResult loadConfigToRun(const std::filesystem::path& file) {
  auto loaded = config::loadConfigFile(file);
  if (loaded.config) {
    if (auto problem = Spawner::checkCanStart(*loaded.config)) {
      loaded.errors.push_back(std::move(*problem));
      loaded.config.reset();
    }
  }
  return loaded;
}

std::optional<config::Diagnostic> Spawner::checkCanStart(const config::BotConfig& config) {
  if (const int why = workingDirectoryError(config.workingDirectory); why != 0) {
    return config::Diagnostic{config.workingDirectoryAt, "working_directory",
                              "the workers' directory " +
                                  config::quoteWholeForMessage(config.workingDirectory.string()) +
                                  " is not usable: " + std::strerror(why) +
                                  fixForPath(why, "create", "the config file's directory")};
  }
  const std::string path = workersPath(config.environment);
  const std::string& program = config.command.front();
  const auto fail = [&](const std::string& message) {
    return config::Diagnostic{config.commandAt, "command", message};
  };
  const auto resolved = resolveProgram(program, config.workingDirectory, path);
  if (resolved.empty()) {
    return fail(config::quoteWholeForMessage(program) + " is not found in the workers' PATH (" +
                quoteArgument(path) + "); give its path, such as " +
                config::quoteWholeForMessage("./" + program) + " for one next to the file");
  }
  const std::string shown =
      config::quoteWholeForMessage(program) +
      (resolved.string() == program ? "" : " (" + quoteArgument(resolved.string()) + ")");
  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0) {
    const int why = errno;
    return fail(
        shown + " cannot be run: " + std::strerror(why) +
        fixForPath(why, "build or install",
                   "the workers' directory, " + quoteArgument(config.workingDirectory.string())));
  }
  if (S_ISDIR(st.st_mode)) {
    return fail(shown + " is a directory, not a program");
  }
  if (::access(resolved.c_str(), X_OK) != 0) {
    return fail(shown + " is not executable: " + std::strerror(errno) +
                " (chmod +x, or run it through its interpreter, such as [\"/bin/sh\", " +
                config::quoteWholeForMessage(program) + "])");
  }
  // exec(2) runs a program (ELF) or a script whose first line names its interpreter (#!), and
  // what a binfmt_misc entry handles (Java, Wine...): with any such entry, that is left to exec.
  bool otherFormats = false;
  std::error_code ec;
  for (const auto& format : std::filesystem::directory_iterator("/proc/sys/fs/binfmt_misc", ec)) {
    const auto name = format.path().filename();
    otherFormats = otherFormats || (name != "register" && name != "status");
  }
  char head[4] = {};
  const int fd = otherFormats ? -1 : ::open(resolved.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const ssize_t n = ::read(fd, head, sizeof head);
    ::close(fd);
    constexpr char kElfMagic[4] = {'\x7f', 'E', 'L', 'F'};
    const bool script = n >= 2 && head[0] == '#' && head[1] == '!';
    const bool elf = n == 4 && std::memcmp(head, kElfMagic, sizeof kElfMagic) == 0;
    if (!script && !elf) {
      return fail(shown +
                  " is neither a program this system runs nor a script that names its "
                  "interpreter: a script needs a first line such as #!/bin/sh");
    }
  }
  return std::nullopt;
}

Spawner::Spawner(asio::any_io_executor executor) : executor_(std::move(executor)) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  childStackMappingBytes_ = page + kChildStackBytes;
  childStackMapping_ = ::mmap(nullptr, childStackMappingBytes_, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (childStackMapping_ == MAP_FAILED) {
    childStackMapping_ = nullptr;
    throw boost::system::system_error(errno, boost::system::system_category(),
                                      "cannot map a stack for workers");
  }
  // A child that overran its stack faults rather than writing over the supervisor's memory.
  (void)::mprotect(childStackMapping_, page, PROT_NONE);
}

Spawner::~Spawner() {
  if (childStackMapping_ != nullptr) {
    ::munmap(childStackMapping_, childStackMappingBytes_);
  }
}

SpawnedWorker Spawner::spawn(const SpawnRequest& request, error_code& ec, std::string& what) {
  SpawnedWorker worker{-1,
                       {},
                       asio::local::stream_protocol::socket(executor_),
                       asio::readable_pipe(executor_),
                       asio::readable_pipe(executor_)};
  const auto environment = buildEnvironment(request);
  const std::string path = workersPath(request.environment);
  worker.program = resolveProgram(request.command.front(), request.workingDirectory, path);
  if (worker.program.empty()) {
    ec = error_code(ENOENT, boost::system::system_category());
    what = "cannot start " + config::quoteWholeForMessage(request.command.front()) +
           ": not found in PATH (" + quoteArgument(path) + ")";
    return worker;
  }

  // Checked here so the message can say which of the two paths is at fault; exec would report
  // a missing working directory as a missing program.
  if (const int directoryError = workingDirectoryError(request.workingDirectory);
      directoryError != 0) {
    ec = error_code(directoryError, boost::system::system_category());
    what = "cannot start " + config::quoteWholeForMessage(worker.program.string()) +
           ": its working directory " +
           config::quoteWholeForMessage(request.workingDirectory.string()) +
           " (working_directory) is not usable: " + ec.message();
    return worker;
  }

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    ec = error_code(errno, boost::system::system_category());
    what = "cannot create the worker's socket: " + ec.message();
    return worker;
  }

  std::vector<const char*> envp;
  envp.reserve(environment.size() + 1);
  for (const auto& entry : environment) {
    envp.push_back(entry.c_str());
  }
  envp.push_back(nullptr);
  const std::vector<std::string> args(request.command.begin() + 1, request.command.end());

#if defined(__SANITIZE_THREAD__)
  if (!forkContext_) {
    forkContext_ = std::make_unique<asio::io_context>(1);
  }
  ForkLauncher launcher(*forkContext_);
#else
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  CloneLauncher launcher(
      {static_cast<std::byte*>(childStackMapping_) + page, childStackMappingBytes_ - page});
#endif
  launcher.env = envp.data();
  // Initializers run in this order in the child: WorkerSetup must come after process_stdio,
  // which needs its pipe descriptors until it has dup2'd them onto 1 and 2.
  worker.pid = [&] {
    // No signal handler of the supervisor may run in the child before exec (see WorkerSetup); a
    // signal for the supervisor meanwhile waits a fraction of a millisecond.
    const SignalsBlocked blocked;
    return launcher(ec, worker.program, args, bp::process_stdio{nullptr, worker.out, worker.err},
                    bp::process_start_dir(request.workingDirectory.string()),
                    WorkerSetup{pair[1], ::getpid()});
  }();
  ::close(pair[1]);
  if (ec) {
    ::close(pair[0]);
    worker.out.close();
    worker.err.close();
    what = "cannot start " + config::quoteWholeForMessage(worker.program.string()) + " in " +
           config::quoteWholeForMessage(request.workingDirectory.string()) + ": " + ec.message();
    return worker;
  }
  worker.socket.assign(asio::local::stream_protocol(), pair[0]);
  worker.socket.non_blocking(true);
  return worker;
}

}  // namespace clustervisor
