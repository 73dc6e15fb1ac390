// SPDX-License-Identifier: MIT
//
// RunLock: one supervisor per bot. A bot is identified by its config file (the canonical path):
// `clustervisor run bot.toml` takes an exclusive flock(2) on a lock file in the runtime directory
// and holds it for its whole life; a second run of the same file is refused with the pid of the
// first. The kernel releases the lock when its holder dies, so a lock file left behind by a
// supervisor that was killed never blocks a start (its stale pid is simply overwritten). A
// supervisor that ends removes its lock file.
//
// The runtime directory is $XDG_RUNTIME_DIR/clustervisor when XDG_RUNTIME_DIR is set to an
// absolute path, else /tmp/clustervisor-<uid>; it is created with mode 0700 and must be owned by
// the user and not writable by anyone else. As that place depends on the environment and the
// user, the supervisor also holds a flock(2) on the config file itself (opened read-only), which
// a second supervisor started with another runtime directory meets (followConfig() moves it to
// the file a rename put in the old one's place). The descriptors are
// close-on-exec, so workers never inherit them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace clustervisor {

class RunLock {
 public:
  // Takes the lock for the bot whose config is `configFile` and records this process's pid in it.
  // On failure returns nothing and sets `error` to a message for the user; `alreadyRunning` tells
  // a held lock apart from an OS failure.
  static std::optional<RunLock> acquire(const std::filesystem::path& configFile, std::string& error,
                                        bool& alreadyRunning);

  // The directory for the supervisor's lock (and control) files, created if missing. Given a
  // `warning`, one the supervisor makes for itself (and says so there) when the fallback
  // directory in /tmp is unusable, someone else's.
  static std::optional<std::filesystem::path> runtimeDirectory(std::string& error,
                                                               std::string* warning = nullptr);
  // `directory`, created if missing, when it is one of this user's that only it can write to;
  // otherwise, given a `warning` (a fallback in a shared /tmp that anyone could have made), a
  // new one beside it of this user's alone, said in `warning`; otherwise nothing, with `error`.
  static std::optional<std::filesystem::path> prepareDirectory(
      const std::filesystem::path& directory, std::string* warning, std::string& error);
  // What keeps `directory`, which exists, from being used as it is (prepareDirectory() then
  // replaces or refuses it), without making anything: nothing when it is usable or missing.
  static std::optional<std::string> directoryProblem(const std::filesystem::path& directory);
  // What to do about such a directory, as the messages that name it end: one that is refused,
  // and the fallback one that is replaced (which a service, without XDG_RUNTIME_DIR, uses).
  static constexpr std::string_view kDirectoryFix = "remove it or set XDG_RUNTIME_DIR";
  static constexpr std::string_view kFallbackDirectoryFix =
      "remove it, or set XDG_RUNTIME_DIR (or the unit's RuntimeDirectory= and control.socket)";
  // Where that directory is, without creating or checking it.
  static std::filesystem::path runtimeDirectoryPath();
  // Where it is without XDG_RUNTIME_DIR: /tmp/clustervisor-UID.
  static std::filesystem::path fallbackDirectoryPath();
  // The control socket of the bot whose config is `configFile`, in `directory`.
  static std::filesystem::path controlSocketFor(const std::filesystem::path& configFile,
                                                const std::filesystem::path& directory);
  // The bot's identity: the stem of its lock file's name ("bot-508e07b561d4"), which depends only
  // on the config file's canonical path.
  static std::string botId(const std::filesystem::path& configFile);
  // The lock file of the bot whose config is `configFile`, in `directory`: "STEM-TAG.lock", STEM
  // the file's name without extension, cut to kMaxStem bytes.
  static constexpr std::size_t kMaxStem = 40;
  static std::filesystem::path lockFileFor(const std::filesystem::path& configFile,
                                           const std::filesystem::path& directory);

  // A lock file named `lockName`, held, in another directory this user made for itself beside
  // the fallback (see runtimeDirectory()) than `own`: its path and the pid it holds.
  static std::optional<std::pair<std::filesystem::path, std::string>> lockHeldInAnotherOwnDirectory(
      const std::filesystem::path& own, const std::filesystem::path& lockName);

  // The refusal of a second supervisor: the first one's pid (as its lock file gives it; empty
  // when it gives none) and that lock file.
  static std::string alreadyRunningMessage(const std::filesystem::path& configFile,
                                           const std::string& pid,
                                           const std::filesystem::path& lockFile);

  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&&) = delete;
  ~RunLock();

  // After the config was read again (a reload, valid or not): when `configFile` now names another
  // file than the one locked (replaced by a rename, as editors and deployment tools save), takes
  // the lock on that one instead, so a second supervisor started with another runtime directory
  // meets it and the commands find this one through it. Returns a warning for the user when the new
  // file is locked by another process (then the old lock stays); otherwise nothing.
  std::string followConfig(const std::filesystem::path& configFile);

  // Whether this supervisor took its lock before the one holding `otherLockFile` (pid
  // `otherPid`) took that one, by the time each wrote into its file: of two that find each
  // other (different runtime directories, see supervisorHoldingLockFile()), the first stays.
  // False when that file tells no time (not written yet, or by an older version).
  bool takenBefore(const std::filesystem::path& otherLockFile, pid_t otherPid) const;

  const std::filesystem::path& path() const { return path_; }
  // Something to tell the user about the lock taken (empty if nothing): another process, not a
  // supervisor, holds a lock on the config file.
  const std::string& warning() const { return warning_; }

 private:
  RunLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  static std::optional<RunLock> finishAcquire(int fd, const std::filesystem::path& path,
                                              std::string& error);
  // False (with `error` and `alreadyRunning` set) when another supervisor holds the config file.
  bool lockConfigFile(const std::filesystem::path& configFile, std::string& error,
                      bool& alreadyRunning);
  int fd_ = -1;
  int configFd_ = -1;
  std::filesystem::path path_;
  std::string warning_;
  std::uint64_t takenAt_ = 0;  // CLOCK_MONOTONIC, ns: when the lock file was locked
  bool ownDirectory_ = false;  // the directory was made for this run (see runtimeDirectory())
};

}  // namespace clustervisor
