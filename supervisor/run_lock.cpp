// SPDX-License-Identifier: MIT
#include "run_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "clustervisor/config/bot_config.hpp"
#include "clustervisor/config/utf8.hpp"
#include "process_table.hpp"

namespace clustervisor {

namespace {

std::string errnoText() {
  return std::strerror(errno);
}

// FNV-1a: a short, stable tag of the config path, so two bots with the same name in different
// directories do not share a lock.
std::string pathTag(const std::string& path) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : path) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return std::string(text, 12);
}

// The lock file's lines: the holder's pid, and when it took the lock (see finishAcquire()).
std::pair<std::string, std::string> readLockLines(int fd) {
  char buffer[64] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  const std::string text = n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
  const auto end = text.find('\n');
  const auto trim = [](std::string line) {
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    return line;
  };
  if (end == std::string::npos) {
    return {trim(text), ""};
  }
  const auto second = text.find('\n', end + 1);
  return {trim(text.substr(0, end)),
          second == std::string::npos ? "" : trim(text.substr(end + 1, second - end - 1))};
}

std::string readPid(int fd) {
  return readLockLines(fd).first;
}

// An exclusive flock(2) taken without waiting on `file`, opened read-only (and without waiting
// on anything but a regular file), with its status in `st`: the locked descriptor, or -1 with
// `held` set when another process holds a lock on it.
struct FileLock {
  int fd = -1;
  bool held = false;
};
FileLock lockRegularFile(const std::filesystem::path& file, struct stat& st) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return {};
  }
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return {};
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    return {fd, false};
  }
  const bool held = errno == EWOULDBLOCK;
  ::close(fd);
  return {-1, held};
}

std::uint64_t monotonicNanoseconds() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace

std::filesystem::path RunLock::runtimeDirectoryPath() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && xdg[0] == '/') {
    return std::filesystem::path(xdg) / "clustervisor";
  }
  return fallbackDirectoryPath();
}

std::filesystem::path RunLock::fallbackDirectoryPath() {
  return "/tmp/clustervisor-" + std::to_string(::getuid());
}

std::filesystem::path RunLock::lockFileFor(const std::filesystem::path& configFile,
                                           const std::filesystem::path& directory) {
  std::error_code ec;
  auto canonical = std::filesystem::canonical(configFile, ec);
  if (ec) {
    // A file that is gone (a command for a bot whose file was moved or removed): its directories'
    // links resolved all the same, as they were for the supervisor that found the file.
    // (Made absolute first: of a relative path none of whose parts exists, weakly_canonical()
    // would give back the relative path, another tag than the supervisor's.)
    canonical = std::filesystem::absolute(configFile, ec);
    if (!ec) {
      canonical = std::filesystem::weakly_canonical(canonical, ec);
    }
    if (ec) {
      canonical = std::filesystem::absolute(configFile, ec).lexically_normal();
    }
  }
  // Named after the file, not the bot's `name`: editing the name of a running bot must not let a
  // second supervisor of the same file start.
  // The stem cut to kMaxStem bytes (on a character boundary): the socket beside the lock file
  // must fit a socket address (107 bytes) however long the file's name; the tag tells apart the
  // files it leaves alike.
  const std::string stem(config::utf8Prefix(canonical.stem().string(), kMaxStem));
  return directory / (stem + "-" + pathTag(canonical.string()) + ".lock");
}

std::string RunLock::botId(const std::filesystem::path& configFile) {
  return lockFileFor(configFile, {}).stem().string();
}

std::filesystem::path RunLock::controlSocketFor(const std::filesystem::path& configFile,
                                                const std::filesystem::path& directory) {
  return lockFileFor(configFile, directory).replace_extension(".sock");
}

std::optional<std::filesystem::path> RunLock::runtimeDirectory(std::string& error,
                                                               std::string* warning) {
  const std::filesystem::path directory = runtimeDirectoryPath();
  return prepareDirectory(directory, directory == fallbackDirectoryPath() ? warning : nullptr,
                          error);
}

std::optional<std::string> RunLock::directoryProblem(const std::filesystem::path& directory) {
  struct stat st {};
  if (::lstat(directory.c_str(), &st) != 0 ||
      (S_ISDIR(st.st_mode) && st.st_uid == ::getuid() && (st.st_mode & 0022) == 0)) {
    return std::nullopt;
  }
  return "the runtime directory " + directory.string() +
         " is not a directory owned by this user and writable only by it";
}

std::optional<std::filesystem::path> RunLock::prepareDirectory(
    const std::filesystem::path& directory, std::string* warning, std::string& error) {
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    error = "cannot create the runtime directory " + directory.string() + ": " + errnoText();
    return std::nullopt;
  }
  struct stat st {};
  if (::lstat(directory.c_str(), &st) != 0) {
    error = "cannot inspect the runtime directory " + directory.string() + ": " + errnoText();
    return std::nullopt;
  }
  const auto problem = directoryProblem(directory);
  if (!problem) {
    return directory;
  }
  if (warning == nullptr) {
    error = *problem + "; " + std::string(kDirectoryFix);
    return std::nullopt;
  }
  // In a shared /tmp, anyone can make that directory first: that must not keep a service (which
  // has no XDG_RUNTIME_DIR) from starting. A directory of its own instead, which the commands
  // find through the supervisor's open files.
  std::string name = directory.string() + ".XXXXXX";
  if (::mkdtemp(name.data()) == nullptr) {
    error = *problem + ", and no other could be made (" + errnoText() + "); " +
            std::string(kDirectoryFix);
    return std::nullopt;
  }
  *warning = *problem + " (another user's?); using " + name + " instead; " +
             std::string(kFallbackDirectoryFix);
  return std::filesystem::path(name);
}

std::optional<RunLock> RunLock::acquire(const std::filesystem::path& configFile, std::string& error,
                                        bool& alreadyRunning) {
  alreadyRunning = false;
  std::string directoryWarning;
  const auto directory = runtimeDirectory(error, &directoryWarning);
  if (!directory) {
    return std::nullopt;
  }
  const bool ownDirectory = !directoryWarning.empty();
  const auto path = lockFileFor(configFile, *directory);
  // A directory made for this run is removed, with the lock file in it, when the run does not
  // take place.
  const auto abandon = [&] {
    if (ownDirectory) {
      ::unlink(path.c_str());
      ::rmdir(directory->c_str());
    }
    return std::nullopt;
  };
  // The holder unlinks the file when it ends; a lock taken on a file that was unlinked meanwhile
  // guards nothing, so it is taken again on the file now at the path.
  int fd = -1;
  for (int attempt = 0;; ++attempt) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      error = "cannot open the lock file " + path.string() + ": " + errnoText();
      return abandon();
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      break;  // held by another supervisor, or an error: reported below
    }
    struct stat held {};
    struct stat current {};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &current) == 0 &&
        held.st_ino == current.st_ino && held.st_dev == current.st_dev) {
      auto lock = finishAcquire(fd, path, error);
      if (!lock) {
        return abandon();
      }
      lock->ownDirectory_ = ownDirectory;  // from here on, the lock removes it
      if (!lock->lockConfigFile(configFile, error, alreadyRunning)) {
        return std::nullopt;
      }
      if (ownDirectory) {
        // Each supervisor in such a directory has its own, so their lock files never meet: one
        // held in another of this user's is a twin's (which the lock on the config file no
        // longer shows once an editor has replaced the file).
        if (const auto twin = lockHeldInAnotherOwnDirectory(*directory, path.filename())) {
          alreadyRunning = true;
          error = alreadyRunningMessage(configFile, twin->second, twin->first);
          return std::nullopt;
        }
        lock->warning_ = directoryWarning + (lock->warning_.empty() ? "" : "\n" + lock->warning_);
      }
      return lock;
    }
    ::close(fd);
    if (attempt == 10) {
      error = "cannot lock " + path.string() + ": it keeps being replaced";
      return abandon();
    }
  }
  if (errno == EWOULDBLOCK) {
    alreadyRunning = true;
    error = alreadyRunningMessage(configFile, readPid(fd), path);
  } else {
    error = "cannot lock " + path.string() + ": " + errnoText();
  }
  ::close(fd);
  return abandon();
}

std::string RunLock::alreadyRunningMessage(const std::filesystem::path& configFile,
                                           const std::string& pid,
                                           const std::filesystem::path& lockFile) {
  return configFile.string() + " is already running under another supervisor" +
         (pid.empty() ? "" : " (pid " + pid + ")") +
         "; stop it first, or run a copy of the bot from a different config file (lock file " +
         lockFile.string() + ")";
}

std::optional<std::pair<std::filesystem::path, std::string>> RunLock::lockHeldInAnotherOwnDirectory(
    const std::filesystem::path& own, const std::filesystem::path& lockName) {
  const auto fallback = fallbackDirectoryPath();
  const std::string prefix = fallback.filename().string() + ".";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(fallback.parent_path(), ec)) {
    const auto& directory = entry.path();
    if (!directory.filename().string().starts_with(prefix) || directory == own) {
      continue;
    }
    struct stat st {};
    if (::lstat(directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid() ||
        (st.st_mode & 0077) != 0) {
      continue;  // only one this user made for itself
    }
    const auto lockFile = directory / lockName;
    const int fd = ::open(lockFile.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      continue;
    }
    const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    const std::string pid = held ? readPid(fd) : std::string();
    ::close(fd);
    if (held) {
      return std::pair{lockFile, pid};
    }
  }
  return std::nullopt;
}

bool RunLock::lockConfigFile(const std::filesystem::path& configFile, std::string& error,
                             bool& alreadyRunning) {
  // The lock file's place depends on the environment (XDG_RUNTIME_DIR) and the user: a
  // supervisor started from a service and one from a login shell would each find their own. A
  // lock on the config file itself is the same for both. (Only a run lock: the file is opened
  // read-only, without waiting on anything but a regular file, and never written. A file system
  // without flock(2) leaves the lock file alone to keep twins out.)
  struct stat st {};
  const auto locked = lockRegularFile(configFile, st);
  if (locked.fd >= 0) {
    configFd_ = locked.fd;
    return true;
  }
  if (!locked.held) {
    return true;  // nothing to lock (reading the config reports that), or no flock(2) there
  }
  // Anyone who can read the file can lock it: only a supervisor holding it keeps this one out,
  // and only one of this user's, root's or the file owner's (anyone can name a process
  // clustervisor).
  const auto pid = flockHolderOf(st.st_dev, st.st_ino);
  const auto holder = pid ? commandNameOf(*pid) : std::nullopt;
  if (holder && !isSupervisorHolding(*pid, st.st_uid)) {
    warning_ = "pid " + std::to_string(*pid) + " (" + config::quoteForMessage(*holder) +
               ") holds a lock on " + configFile.string() +
               " and is not a supervisor of this user, root or the file's owner; going on "
               "without that lock (the lock file still keeps a second supervisor with the same "
               "runtime directory out)";
    return true;
  }
  alreadyRunning = true;
  error = configFile.string() + " is already running under another supervisor" +
          (pid ? " (pid " + std::to_string(*pid) + ")" : std::string()) +
          ", which holds a lock on the file itself: one started with another runtime directory "
          "(another XDG_RUNTIME_DIR, or as another user); stop it first, or run a copy of the " +
          "bot from a different config file";
  return false;
}

std::optional<RunLock> RunLock::finishAcquire(int fd, const std::filesystem::path& path,
                                              std::string& error) {
  // The lock is ours; a pid in the file is from a supervisor that died and is overwritten. The
  // second line, when the lock was taken, orders two supervisors that find each other's lock
  // files (see takenBefore()).
  const std::uint64_t taken = monotonicNanoseconds();
  const std::string text = std::to_string(::getpid()) + "\n" + std::to_string(taken) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
    error = "cannot write the lock file " + path.string() + ": " + errnoText();
    ::close(fd);
    return std::nullopt;
  }
  RunLock lock(fd, path);
  lock.takenAt_ = taken;
  return lock;
}

bool RunLock::takenBefore(const std::filesystem::path& otherLockFile, pid_t otherPid) const {
  const int fd = ::open(otherLockFile.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    return false;
  }
  const std::string taken = readLockLines(fd).second;
  ::close(fd);
  std::uint64_t theirs = 0;
  const auto [end, ec] = std::from_chars(taken.data(), taken.data() + taken.size(), theirs);
  if (ec != std::errc() || end != taken.data() + taken.size() || taken.empty()) {
    return false;  // not written yet, or by an older supervisor: taken first, as far as we know
  }
  return std::pair{takenAt_, ::getpid()} < std::pair{theirs, otherPid};
}

std::string RunLock::followConfig(const std::filesystem::path& configFile) {
  struct stat now {};
  struct stat held {};
  if (::stat(configFile.c_str(), &now) != 0 || !S_ISREG(now.st_mode) ||
      (configFd_ >= 0 && ::fstat(configFd_, &held) == 0 && held.st_dev == now.st_dev &&
       held.st_ino == now.st_ino)) {
    return {};  // the same file (or none to lock: the reload that read it reports that)
  }
  struct stat opened {};
  const auto locked = lockRegularFile(configFile, opened);
  if (locked.fd >= 0) {
    if (configFd_ >= 0) {
      ::close(configFd_);  // the file the path named before
    }
    configFd_ = locked.fd;
    return {};
  }
  if (!locked.held) {
    return {};  // gone meanwhile, or no flock(2) there: the lock file alone, as at the start
  }
  const auto pid = flockHolderOf(opened.st_dev, opened.st_ino);
  const auto name = pid ? commandNameOf(*pid) : std::nullopt;
  return "cannot lock " + configFile.string() + ", which replaced the file this supervisor " +
         "started from: " +
         (pid ? "pid " + std::to_string(*pid) +
                    (name ? " (" + config::quoteForMessage(*name) + ")" : std::string()) + " holds"
              : std::string("another process holds")) +
         " a lock on it; the lock file still keeps a second supervisor out";
}

RunLock::RunLock(RunLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      configFd_(std::exchange(other.configFd_, -1)),
      path_(std::move(other.path_)),
      warning_(std::move(other.warning_)),
      takenAt_(other.takenAt_),
      ownDirectory_(std::exchange(other.ownDirectory_, false)) {}

RunLock::~RunLock() {
  if (configFd_ >= 0) {
    ::close(configFd_);
  }
  if (fd_ >= 0) {
    // Unlinked while still locked: a supervisor starting now either fails to lock this file and
    // is refused (we still run), or locks it after the close and sees it was unlinked.
    ::unlink(path_.c_str());
    ::close(fd_);
    if (ownDirectory_) {
      ::rmdir(path_.parent_path().c_str());  // made for this run alone; kept if not empty
    }
  }
}

}  // namespace clustervisor
