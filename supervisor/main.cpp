// SPDX-License-Identifier: MIT
//
// clustervisor: the command-line entry point. Parses the command line, loads the config and runs
// the Supervisor; maps every outcome to a documented exit status.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>

#include "clustervisor/config/bot_config.hpp"
#include "command_line.hpp"
#include "control_client.hpp"
#include "control_protocol.hpp"
#include "exit_status.hpp"
#include "log.hpp"
#include "plan.hpp"
#include "process_table.hpp"
#include "run_lock.hpp"
#include "spawner.hpp"
#include "status_text.hpp"
#include "supervisor.hpp"

#ifndef CLUSTERVISOR_VERSION
#define CLUSTERVISOR_VERSION "unknown"
#endif

namespace {

// Started with standard input, output or error closed (`clustervisor run bot.toml >&-`), the
// next descriptor opened (the lock file, the config, a socket) would take its number, and a log
// line or a worker's output would be written into it: /dev/null takes each one closed.
void openStandardDescriptors() {
  for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
    if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      // The lowest free number: fd itself. (Failing, nothing else could be done about it.)
      (void)::open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
    }
  }
}

// How long the last lines may take to be written when the run ends.
constexpr std::chrono::milliseconds kOutputGraceOnExit{2000};

using namespace clustervisor;

// Loads CONFIG, or reports every problem in it (nothing is started either way).
std::optional<config::BotConfig> loadConfig(const std::string& configPath) {
  // A worker that cannot be started is refused now, not retried for ever (as systemd refuses a
  // unit whose ExecStart is missing).
  auto loaded = loadConfigToRun(configPath);
  if (!loaded.errors.empty()) {
    for (const auto& error : loaded.errors) {
      logError(error.format());
    }
    logLine(std::to_string(loaded.errors.size()) + " error" +
            (loaded.errors.size() == 1 ? "" : "s") + " in " + configPath + "; nothing was started");
    return std::nullopt;
  }
  return std::move(loaded.config);
}

// Where the supervisor of `config` listens: control.socket, or the runtime directory's default.
std::filesystem::path controlSocketOf(const config::BotConfig& config,
                                      const std::string& configPath,
                                      const std::filesystem::path& runtimeDirectory) {
  return config.control.socket.empty() ? RunLock::controlSocketFor(configPath, runtimeDirectory)
                                       : config.control.socket;
}

int checkBot(const std::string& configPath) {
  const auto config = loadConfig(configPath);
  if (!config) {
    return kExitConfig;
  }
  auto directory = RunLock::runtimeDirectoryPath();
  // Said as `run` would say it, without making anything.
  if (const auto problem = RunLock::directoryProblem(directory)) {
    if (directory == RunLock::fallbackDirectoryPath()) {
      directory += ".XXXXXX";
      logWarning("warning: " + *problem + " (another user's?); `run` will use a private " +
                 directory.string() + " (a random name) instead; " +
                 std::string(RunLock::kFallbackDirectoryFix));
    } else {
      logWarning("warning: " + *problem + "; `run` will refuse to start; " +
                 std::string(RunLock::kDirectoryFix));
    }
  }
  std::fputs(describePlan(*config, RunLock::lockFileFor(configPath, directory),
                          controlSocketOf(*config, configPath, directory))
                 .c_str(),
             stdout);
  return kExitOk;
}

// The cluster ids a supervisor's answer lists under `key`.
std::vector<std::uint32_t> idsOf(const boost::json::object& body, std::string_view key) {
  std::vector<std::uint32_t> ids;
  if (const auto* list = body.if_contains(key); list != nullptr && list->is_array()) {
    for (const auto& id : list->get_array()) {
      if (const auto* n = id.if_int64(); n != nullptr && *n >= 0 && *n <= UINT32_MAX) {
        ids.push_back(static_cast<std::uint32_t>(*n));
      }
    }
  }
  return ids;
}

// "rolling restart done: clusters 0, 1 restarted and ready", after `restart --rolling` and
// `reload --rolling` alike.
void printRollingDone(const boost::json::object& body) {
  const auto ids = idsOf(body, "restarted");
  std::printf("rolling restart done: %s restarted and ready\n",
              ids.empty() ? "no cluster" : formatClusters(ids).c_str());
}

// One line per kind of change in a reload's answer.
void printReload(const boost::json::object& body) {
  const auto keys = [&](std::string_view key) {
    std::string text;
    if (const auto* list = body.if_contains(key); list != nullptr && list->is_array()) {
      for (const auto& item : list->get_array()) {
        if (item.is_string()) {
          text += (text.empty() ? "" : ", ") + std::string(item.get_string());
        }
      }
    }
    return text;
  };
  const auto number = [&](std::string_view key) {
    const auto* value = body.if_contains(key);
    return value != nullptr && value->is_int64() ? value->get_int64() : std::int64_t{0};
  };
  const std::string applied = keys("applied");
  const std::string forWorkers = keys("restart_needed");
  const std::string forSupervisor = keys("supervisor_restart_needed");
  if (applied.empty() && forWorkers.empty() && forSupervisor.empty()) {
    std::printf("reloaded: nothing changed\n");
  } else {
    std::printf("reloaded: %s\n", applied.empty() ? "nothing to apply now" : applied.c_str());
  }
  if (!forWorkers.empty()) {
    std::printf("changed for workers: %s\n", forWorkers.c_str());
  }
  if (number("clusters_before") != number("clusters_after")) {
    std::printf("clusters: %lld -> %lld", static_cast<long long>(number("clusters_before")),
                static_cast<long long>(number("clusters_after")));
    if (const auto started = idsOf(body, "started"); !started.empty()) {
      std::printf("; started %s", formatIdList(started).c_str());
    }
    if (const auto stopped = idsOf(body, "stopped"); !stopped.empty()) {
      std::printf("; stopped %s", formatIdList(stopped).c_str());
    }
    std::printf("\n");
  }
  if (const auto moved = idsOf(body, "resharded"); !moved.empty()) {
    std::printf(
        "shards moved: stopped %s, started again with their new shards once every worker "
        "that held shards had stopped\n",
        formatIdList(moved).c_str());
  }
  const auto outdated = idsOf(body, "clusters_needing_restart");
  if (body.if_contains("restarted") != nullptr) {
    printRollingDone(body);
  } else if (!outdated.empty()) {
    std::printf(
        "%s %s with settings for workers from before the reload until restarted (clustervisor "
        "restart --all --rolling, or reload --rolling)\n",
        formatClusters(outdated).c_str(), outdated.size() == 1 ? "runs" : "run");
  }
  if (!forSupervisor.empty()) {
    std::printf("needs a supervisor restart: %s (the running supervisor keeps its own)\n",
                forSupervisor.c_str());
  }
}

// The supervisor holding the lock on a config file (a flock(2) on the file itself, see RunLock),
// and the Unix sockets it listens on.
struct LockHolder {
  pid_t pid = 0;
  std::vector<std::string> sockets;
};
// The supervisor holding a flock(2) on the file at `path`, if one does. A lock file
// (`lockFile`) counts only as this user's: one of another user's in a directory they made
// (the fallback /tmp/clustervisor-UID, squatted) says nothing of this user's bot.
std::optional<pid_t> supervisorLocking(const std::filesystem::path& path, bool lockFile = false) {
  struct stat st {};
  if ((lockFile ? ::lstat(path.c_str(), &st) : ::stat(path.c_str(), &st)) != 0 ||
      !S_ISREG(st.st_mode) || (lockFile && st.st_uid != ::geteuid())) {
    return std::nullopt;
  }
  const auto pid = flockHolderOf(st.st_dev, st.st_ino);
  if (!pid || !isSupervisorHolding(*pid, lockFile ? ::geteuid() : st.st_uid)) {
    return std::nullopt;
  }
  return pid;
}

std::optional<LockHolder> supervisorHolding(const std::string& configPath) {
  const auto pid = supervisorLocking(configPath);
  if (!pid) {
    return std::nullopt;
  }
  return LockHolder{*pid, listeningSocketsOf(*pid)};
}

// A supervisor holding the lock file of `configPath`: it runs even when its flock on the config
// file is gone (the file was replaced by a rename, as editors save, or removed). Looked for in
// the runtime directory this environment leads to and in /tmp/clustervisor-UID (where one started
// without XDG_RUNTIME_DIR has it), then among the descriptors of the supervisors /proc shows
// (one started with another XDG_RUNTIME_DIR).
std::optional<std::pair<pid_t, std::filesystem::path>> supervisorHoldingLockFile(
    const std::string& configPath) {
  std::vector<std::filesystem::path> directories{RunLock::runtimeDirectoryPath()};
  if (RunLock::fallbackDirectoryPath() != directories.front()) {
    directories.push_back(RunLock::fallbackDirectoryPath());
  }
  for (const auto& directory : directories) {
    const auto lockFile = RunLock::lockFileFor(configPath, directory);
    if (const auto pid = supervisorLocking(lockFile, true); pid && *pid != ::getpid()) {
      return std::pair{*pid, lockFile};
    }
  }
  // Only this user's processes and lock files: anyone can name a process clustervisor and lock a
  // file of that name in a directory of their own (which root could see).
  const std::string name = RunLock::lockFileFor(configPath, {}).filename().string();
  for (const pid_t pid : allProcesses()) {
    if (pid == ::getpid() || !ownedByThisUser(pid) || !isSupervisorProcess(pid)) {
      continue;
    }
    for (const auto& path : openFilesNamed(pid, name)) {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && st.st_uid == ::geteuid() &&
          supervisorLocking(path, true) == pid) {
        return std::pair{pid, std::filesystem::path(path)};
      }
    }
  }
  return std::nullopt;
}

// When no supervisor of the bot at `configPath` runs: what the workers of one that was killed
// left running, which the next `run` kills, said so that nobody takes "not running" for "gone".
void warnOfLeftovers(const std::string& configPath) {
  const auto leftovers = leftoversOfBot(RunLock::botId(configPath));
  if (leftovers.empty()) {
    return;
  }
  std::string pids;
  std::vector<pid_t> supervisors;  // gone, each named once
  for (const auto& leftover : leftovers) {
    pids += (pids.empty() ? "" : " ") + std::to_string(leftover.pid);
    if (std::find(supervisors.begin(), supervisors.end(), leftover.mark.supervisor) ==
        supervisors.end()) {
      supervisors.push_back(leftover.mark.supervisor);
    }
  }
  std::string gone;
  for (const pid_t pid : supervisors) {
    gone += (gone.empty() ? "" : ", ") + std::to_string(pid);
  }
  const bool one = leftovers.size() == 1;
  logWarning("warning: " + std::to_string(leftovers.size()) + (one ? " process" : " processes") +
             " started by the workers of " +
             (supervisors.size() == 1 ? "a supervisor" : "supervisors") + " of " +
             quoteArgument(configPath) + " that " + (supervisors.size() == 1 ? "is" : "are") +
             " gone (pid" + (supervisors.size() == 1 ? " " : "s ") + gone + ") " +
             (one ? "still runs" : "still run") + ": " + pids + "; the next `clustervisor run` " +
             "of it kills " + (one ? "it" : "them") + ", or: kill " + pids);
}

// Another supervisor of the bot at `configPath`, found by its lock file, once this one holds its
// own locks (`lock`). Those two locks miss one started with another runtime directory after the
// config file was replaced by a rename (an editor's save, a deployment tool, a checkout): its
// lock is on the file the path named before. Two supervisors that start at the same moment find
// each other; the one that took its lock file first stays (not the older process: a wrapper
// script may have forked it long before it locked anything).
std::optional<std::pair<pid_t, std::filesystem::path>> twinSupervisor(const std::string& configPath,
                                                                      const RunLock& lock) {
  auto other = supervisorHoldingLockFile(configPath);
  if (!other || lock.takenBefore(other->second, other->first)) {
    return std::nullopt;  // none, or one that locked after this one and gives way to it
  }
  return other;
}

// After `stop`: waits until the supervisor that answered has exited (as systemctl stop and
// supervisorctl stop do), for at most its stop.timeout and a margin for the rest of its stop.
int waitForExit(pid_t supervisor, const boost::json::object& answer, const std::string& who) {
  const auto* timeout = answer.if_contains("stop_timeout_ms");
  const auto start = supervisor > 0 ? readProcess(supervisor) : std::nullopt;
  if (!start || timeout == nullptr || !timeout->is_int64()) {
    return kExitOk;  // an older supervisor, or one this /proc does not show: nothing to watch
  }
  // Run by a worker of that supervisor (or by something it started): the stop waits for this
  // very process, which must not wait for the stop.
  if (const auto chain = ancestorsOf(::getpid());
      std::find(chain.begin(), chain.end(), supervisor) != chain.end()) {
    return kExitOk;
  }
  const auto limit = std::chrono::milliseconds(timeout->get_int64()) + std::chrono::seconds(10);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto now = readProcess(start->pid);
    if (!now || now->startTime != start->startTime || now->state == 'Z' || now->state == 'X') {
      std::printf("stopped %s\n", who.c_str());
      return kExitOk;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      logError("the supervisor (pid " + std::to_string(start->pid) + ") still runs " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(limit).count()) +
               " s after it was asked to stop; its output says what it waits for");
      return kExitRequestFailed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The answer of a supervisor from before expires_ms, which refuses the field as unknown.
bool refusesExpiry(const std::string& reply) {
  boost::system::error_code ec;
  const auto answer = boost::json::parse(reply, ec);
  const auto* error =
      !ec && answer.is_object() ? answer.get_object().if_contains("error") : nullptr;
  return error != nullptr && error->is_string() &&
         error->get_string().starts_with(R"(unknown field "expires_ms")");
}

// status, restart, stop: one request to the running supervisor.
int callBot(const CommandLine& commandLine) {
  std::filesystem::path socket = commandLine.socketPath;
  const std::string who =
      quoteArgument(commandLine.socketPath.empty() ? commandLine.configPath : socket.string());
  // Why CONFIG could not be read, if it could not: its supervisor may still be found (the file
  // was moved or removed while the bot runs).
  std::string unreadable;
  if (socket.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(commandLine.configPath, ec)) {
      unreadable = commandLine.configPath + ": " +
                   (ec ? ec.message() : std::string("not a configuration file"));
      socket = RunLock::controlSocketFor(commandLine.configPath, RunLock::runtimeDirectoryPath());
    } else {
      // control.socket when the file sets one; a file that does not load (edited, say) still
      // finds a supervisor at the default place.
      const auto loaded = config::loadConfigFile(commandLine.configPath);
      socket = loaded.config ? controlSocketOf(*loaded.config, commandLine.configPath,
                                               RunLock::runtimeDirectoryPath())
                             : RunLock::controlSocketFor(commandLine.configPath,
                                                         RunLock::runtimeDirectoryPath());
    }
  }
  control::Request request = control::StatusRequest{};
  if (commandLine.command == CommandLine::Command::kStop) {
    request = control::StopRequest{};
  } else if (commandLine.command == CommandLine::Command::kRestart) {
    control::RestartRequest restart;
    restart.all = commandLine.all;
    restart.clusters = commandLine.clusters;
    restart.rolling = commandLine.rolling;
    restart.batch = commandLine.batch;
    restart.delay = commandLine.delay;
    request = restart;
  } else if (commandLine.command == CommandLine::Command::kReload) {
    request = control::ReloadRequest{commandLine.rolling};
  }
  // A reload or a rolling restart is answered when it is done: as long as the stops, starts and
  // readiness waits it takes (bounded by the supervisor's timeouts).
  const bool untilDone =
      commandLine.command == CommandLine::Command::kReload || commandLine.rolling;
  const auto timeout = untilDone ? std::chrono::milliseconds(std::chrono::hours(24))
                                 : std::chrono::milliseconds(std::chrono::seconds(10));
  std::string reply;
  std::string error;
  // A request this process stops waiting for must not be carried out later by a supervisor that
  // was stopped or stuck meanwhile (someone may act on the failure): it expires a second before
  // the wait for its answer ends. Those answered when done are waited for as long as they take.
  // A supervisor from before expires_ms refuses the field: the request goes again without it.
  bool expiring = !untilDone;
  const auto encoded = [&] {
    return control::encodeRequest(request, expiring
                                               ? std::optional(std::chrono::system_clock::now() +
                                                               timeout - std::chrono::seconds(1))
                                               : std::nullopt);
  };
  constexpr std::string_view kStillCarriedOut =
      "; the request was sent, and it will still carry it out if it reads it later (check with "
      "status)";
  const std::string_view unanswered =
      untilDone ? kStillCarriedOut
                : "; the request expires unread, and will not be carried out later";
  pid_t supervisorPid = 0;  // as this process sees it (the socket's SO_PEERCRED)
  const auto callAt = [&](const std::filesystem::path& at, pid_t expectedPeer) {
    auto result = callSupervisor(at, encoded, timeout, reply, error, unanswered, &supervisorPid,
                                 expectedPeer);
    if (result == ControlCallResult::kAnswered && expiring && refusesExpiry(reply)) {
      expiring = false;
      result = callSupervisor(at, encoded, timeout, reply, error, kStillCarriedOut, &supervisorPid,
                              expectedPeer);
    }
    return result;
  };
  auto called = callAt(socket, 0);
  // Not this user's at the socket's path (someone else made the fallback runtime directory
  // first): the supervisor runs elsewhere, if at all, so it is looked for as when nothing
  // listens; found nowhere, what was at the path is the error.
  const bool notThisUsers = called == ControlCallResult::kNotThisUsers;
  if (notThisUsers && commandLine.socketPath.empty()) {
    called = ControlCallResult::kNoSupervisor;
  }
  if (called == ControlCallResult::kNoSupervisor && commandLine.socketPath.empty()) {
    // Perhaps it runs with another runtime directory (a systemd service has no XDG_RUNTIME_DIR;
    // a login shell has one), or listens at a control.socket the file no longer names: the
    // process holding the file's lock, or else the bot's lock file, says where it listens.
    std::optional<LockHolder> holder = supervisorHolding(commandLine.configPath);
    std::string held = "the lock on " + who;
    if (!holder) {
      if (const auto lockFile = supervisorHoldingLockFile(commandLine.configPath)) {
        holder = LockHolder{lockFile->first, listeningSocketsOf(lockFile->first)};
        held = "the lock file " + quoteArgument(lockFile->second.string()) + " of " + who;
      }
    }
    if (holder) {
      for (const auto& elsewhere : holder->sockets) {
        if (elsewhere != socket && called == ControlCallResult::kNoSupervisor) {
          // Only the holder itself: another socket at that path (another mount namespace's,
          // or one the holder inherited) is not sent the request.
          called = callAt(elsewhere, holder->pid);
        }
      }
      if (called == ControlCallResult::kNoSupervisor) {
        const std::string where =
            !holder->sockets.empty() ? " and listens at " + quoteArgument(holder->sockets.front())
            : descriptorTargetsOf(holder->pid)
                ? " and listens on no control socket now (starting or stopping?)"
                : " and does not show this user where it listens (another user's?)";
        logError("nothing listens at " + quoteArgument(socket.string()) + ", but pid " +
                 std::to_string(holder->pid) + ", a clustervisor, holds " + held + where +
                 "; pass --socket PATH (its control socket; see control.socket)");
        return kExitUnavailable;
      }
    }
  }
  if (called == ControlCallResult::kNoSupervisor && notThisUsers) {
    called = ControlCallResult::kNotThisUsers;  // `error` says what is at the socket's path
  }
  switch (called) {
    case ControlCallResult::kNoSupervisor: {
      if (!unreadable.empty()) {
        logError(unreadable);  // and no supervisor of it was found
        return kExitConfig;
      }
      if (commandLine.command == CommandLine::Command::kStop && commandLine.socketPath.empty()) {
        // No supervisor holds either lock: stopped already, as systemctl stop finds an inactive
        // unit. What was asked holds, so `clustervisor stop bot.toml && clustervisor run
        // bot.toml` works either way.
        std::printf("%s is not running (nothing listens at %s); nothing to stop\n", who.c_str(),
                    quoteArgument(socket.string()).c_str());
        warnOfLeftovers(commandLine.configPath);
        return kExitOk;
      }
      logError("no supervisor is running for " + who + " (nothing listens at " +
               quoteArgument(socket.string()) + ")");
      if (commandLine.socketPath.empty()) {
        warnOfLeftovers(commandLine.configPath);
      }
      return kExitUnavailable;
    }
    case ControlCallResult::kFailed:
    case ControlCallResult::kNotThisUsers:
      logError(error);
      return kExitUnavailable;
    case ControlCallResult::kAnswered:
      break;
  }
  boost::system::error_code ec;
  const auto answer = boost::json::parse(reply, ec);
  if (ec || !answer.is_object()) {
    logError("the supervisor's answer is not a JSON object: " + reply.substr(0, 200));
    return kExitSoftware;
  }
  const auto& object = answer.get_object();
  const auto* ok = object.if_contains("ok");
  if (ok == nullptr || !ok->is_bool() || !ok->get_bool()) {
    // A reload whose rolling restart halted was applied: what changed first, then why it halted.
    if (const auto* done = object.if_contains("result");
        done != nullptr && done->is_object() &&
        commandLine.command == CommandLine::Command::kReload) {
      printReload(done->get_object());
      std::fflush(stdout);
    }
    const auto* message = object.if_contains("error");
    logError(message != nullptr && message->is_string() ? std::string(message->get_string())
                                                        : "the supervisor refused the request");
    return kExitRequestFailed;
  }
  const auto* result = object.if_contains("result");
  const boost::json::object empty;
  const auto& body = result != nullptr && result->is_object() ? result->get_object() : empty;
  switch (commandLine.command) {
    case CommandLine::Command::kStatus:
      std::fputs(commandLine.json ? (boost::json::serialize(body) + "\n").c_str()
                                  : formatStatus(body).c_str(),
                 stdout);
      break;
    case CommandLine::Command::kRestart: {
      if (commandLine.rolling) {
        printRollingDone(body);
        break;
      }
      std::printf("restarting %s\n", formatClusters(idsOf(body, "restarting")).c_str());
      break;
    }
    case CommandLine::Command::kReload:
      printReload(body);
      break;
    case CommandLine::Command::kStop:
      std::printf("stopping %s\n", who.c_str());
      if (!commandLine.noWait) {
        std::fflush(stdout);
        return waitForExit(supervisorPid, body, who);
      }
      break;
    case CommandLine::Command::kRun:
    case CommandLine::Command::kCheck:
    case CommandLine::Command::kHelp:
    case CommandLine::Command::kVersion:
      break;
  }
  return kExitOk;
}

int runBot(const std::string& configPath) {
  auto loaded = loadConfig(configPath);
  if (!loaded) {
    return kExitConfig;
  }
  // One supervisor per config file: a second one would start every cluster twice.
  std::string lockError;
  bool alreadyRunning = false;
  auto lock = RunLock::acquire(configPath, lockError, alreadyRunning);
  if (!lock) {
    logError(lockError);
    return alreadyRunning ? kExitAlreadyRunning : kExitOsError;
  }
  if (const auto twin = twinSupervisor(configPath, *lock)) {
    logError(RunLock::alreadyRunningMessage(configPath, std::to_string(twin->first), twin->second));
    return kExitAlreadyRunning;
  }
  if (!lock->warning().empty()) {
    logWarning("warning: " + lock->warning());
  }
  // A worker or log reader that goes away must be an error value, not a fatal signal.
  ::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context io(1);
  std::optional<Supervisor> supervisor;
  try {
    const auto socket = controlSocketOf(*loaded, configPath, lock->path().parent_path());
    supervisor.emplace(io, std::move(*loaded), socket);
    supervisor->onConfigRead([&lock](const std::filesystem::path& path) {
      if (const auto warning = lock->followConfig(path); !warning.empty()) {
        logWarning("warning: " + warning);
      }
    });
  } catch (const boost::system::system_error& e) {
    // Signals, the event loop: what the supervisor needs from the OS before anything starts.
    logError(std::string("cannot start: ") + e.what());
    return kExitOsError;
  }
  // From here on, a standard output or error that takes nothing stops neither the relay nor the
  // control socket (see log.hpp).
  const OutputThreadScope outputThread{kOutputGraceOnExit};
  if (const auto error = startOutputThread()) {
    logError("cannot start the output thread (" + error.message() +
             "); output is written directly, so a reader that stops reading stops the supervisor");
  }
  return supervisor->run();
}

}  // namespace

int main(int argc, char** argv) {
  openStandardDescriptors();
  std::vector<std::string_view> args(argv + 1, argv + argc);
  const auto commandLine = parseCommandLine(args);
  if (!commandLine.error.empty()) {
    // The error, then the synopsis alone, so the error is not lost above the whole help text.
    logError(commandLine.error);
    const std::string_view usage = usageText();
    std::fputs(std::string(usage.substr(0, usage.find("\n\n") + 1)).c_str(), stderr);
    std::fputs("Run 'clustervisor --help' for the commands and options.\n", stderr);
    return kExitUsage;
  }
  try {
    switch (commandLine.command) {
      case CommandLine::Command::kHelp:
        std::fputs(std::string(usageText()).c_str(), stdout);
        return kExitOk;
      case CommandLine::Command::kVersion:
        std::printf("clustervisor %s (wire protocol %d)\n", CLUSTERVISOR_VERSION,
                    static_cast<int>(wire::kProtocolVersion));
        return kExitOk;
      case CommandLine::Command::kRun:
        return runBot(commandLine.configPath);
      case CommandLine::Command::kCheck:
        return checkBot(commandLine.configPath);
      case CommandLine::Command::kStatus:
      case CommandLine::Command::kRestart:
      case CommandLine::Command::kStop:
      case CommandLine::Command::kReload:
        return callBot(commandLine);
    }
  } catch (const std::exception& e) {
    logError(std::string("internal error: ") + e.what());
    return kExitSoftware;
  }
  return kExitSoftware;
}
