// SPDX-License-Identifier: MIT
//
// ProcessTable: what /proc says about the supervisor's children. The supervisor is a child
// subreaper, so a descendant of a worker that left the worker's process group (setsid, a double
// fork) becomes the supervisor's child once its parent dies; these functions find such orphans
// and tell which cluster and which run they came from. parseStat() is pure; the rest read /proc
// with read(2), and a process that vanished meanwhile is simply absent.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clustervisor {

struct ProcessInfo {
  pid_t pid = 0;
  pid_t parent = 0;
  pid_t group = 0;              // process group (field 5)
  std::uint64_t startTime = 0;  // clock ticks after boot (field 22 of /proc/<pid>/stat)
  char state = '?';
  std::uint64_t cpuTicks = 0;       // user and system time, in clock ticks (fields 14 and 15)
  std::uint64_t residentPages = 0;  // resident set size, in pages (field 24)
};

// Parses the text of /proc/<pid>/stat. The command name may contain spaces and parentheses, so
// the fields are counted from the last ')'.
std::optional<ProcessInfo> parseStat(std::string_view stat);

std::optional<ProcessInfo> readProcess(pid_t pid);
// A process's resident memory and the CPU time it used so far (user and system, not its
// children's), from readProcess(); nullopt if it is gone or a zombie.
struct ResourceUse {
  std::uint64_t residentBytes = 0;
  std::uint64_t cpuMilliseconds = 0;
};
std::optional<ResourceUse> resourceUseOf(pid_t pid);
// This process, from /proc/self: its pid there is getpid() only when /proc belongs to this
// process's pid namespace.
std::optional<ProcessInfo> readSelf();
// Whether any thread of process `pid` is in uninterruptible sleep (state D), as its
// /proc/<pid>/task/<tid>/stat say: reading its memory (its environment) could block then.
// (`proc`: where /proc is; another directory laid out alike in tests.)
bool anyThreadInKernelWait(pid_t pid, const std::string& proc = "/proc");
// For this process, read from /proc/self/task/*/children when the kernel provides it; otherwise,
// and for any other parent, by scanning /proc.
std::vector<ProcessInfo> childrenOf(pid_t parent);
// Which cluster a process came from, told by the CLUSTERVISOR_CLUSTER_ID in its environment (as
// the worker that started it inherited it).
struct Lineage {
  enum class Kind {
    kCluster,   // the variable names `cluster`
    kUnmarked,  // an environment without the variable (or with a value that is not an id)
    // No environment to read: the process is gone, or in the middle of an exec(2) (the new
    // program's environment is set up after its memory is replaced), or was started with none.
    kUnknown,
  };
  Kind kind = Kind::kUnknown;
  std::uint32_t cluster = 0;
};
// Parses the text of /proc/<pid>/environ. Pure.
Lineage parseLineage(std::string_view environ);
Lineage lineageOf(pid_t pid);

// When to look again at processes whose lineage was unknown (all of them at once): as far off as
// the most recently seen one has been unknown, at least `first` and at most `last`, so a process
// is looked at about twice as long after it was first seen as the time before, and one that
// turns up is not held back by another's longer interval; none once every one was first seen
// `limit` or longer ago. Requires first <= last. Pure.
std::optional<std::chrono::steady_clock::duration> nextUnknownLook(
    std::chrono::steady_clock::time_point now,
    const std::vector<std::chrono::steady_clock::time_point>& firstSeen,
    std::chrono::steady_clock::duration first, std::chrono::steady_clock::duration last,
    std::chrono::steady_clock::duration limit);

// What the supervisor marks each worker's environment with, which the processes a worker starts
// inherit: the bot (kEnvBot: RunLock::botId() of its config) and the supervisor process
// (kEnvSupervisor: "<pid>:<start time>"), so the next supervisor of the bot can tell what a
// supervisor that was killed left running.
inline constexpr const char* kEnvBot = "CLUSTERVISOR_BOT";
inline constexpr const char* kEnvSupervisor = "CLUSTERVISOR_SUPERVISOR";
struct RunMark {
  std::string bot;
  pid_t supervisor = 0;
  std::uint64_t supervisorStart = 0;
  Lineage lineage;  // its cluster
};
// Parses the text of /proc/<pid>/environ: nothing unless it has both marks. Pure.
std::optional<RunMark> parseRunMark(std::string_view environ);
std::optional<RunMark> runMarkOf(pid_t pid);
// The processes left running by the workers of a supervisor of bot `botId` (RunLock::botId())
// that is gone (killed: its workers exit with it, their descendants do not), as this user may see
// them in this pid namespace: marked with the bot and a supervisor process that no longer runs.
// Leaves out this process and its ancestors, and processes it cannot read without blocking
// (state D). Nothing when /proc is another pid namespace's.
struct Leftover {
  pid_t pid = 0;
  RunMark mark;
};
std::vector<Leftover> leftoversOfBot(const std::string& botId);
// Every process /proc lists.
std::vector<pid_t> allProcesses();
// The pid namespace a process is in (the target of /proc/<pid>/ns/pid), or nothing.
std::optional<std::string> pidNamespaceOf(pid_t pid);
// Whether /proc/<pid> belongs to this process's effective user.
bool ownedByThisUser(pid_t pid);
// A process's command name (/proc/<pid>/comm), or nothing.
std::optional<std::string> commandNameOf(pid_t pid);
// Whether the program files two processes run (/proc/<pid>/exe) are one file; false if either
// cannot be told.
bool sameProgram(pid_t a, pid_t b);
// Whether process `pid` is a clustervisor supervisor: it runs the same program file as this
// process (whatever it was called), or has clustervisor's command name or this process's.
bool isSupervisorProcess(pid_t pid);
// Whether process `pid`, holding a lock on a file owned by `fileOwner`, counts as a supervisor
// of it: it runs this program file (which root can see of any user's process), or it is
// isSupervisorProcess() with all its user ids this user's, root's or the file owner's. Anyone
// who can read a file can lock it, and name a process clustervisor, or run a setuid program
// under that name.
bool isSupervisorHolding(pid_t pid, uid_t fileOwner);
// A process's real, effective and saved user ids (/proc/<pid>/status), or nothing.
std::optional<std::array<uid_t, 3>> userIdsOf(pid_t pid);
// `pid` and its ancestors, nearest first, as far as /proc shows them (up to, not including, 1).
std::vector<pid_t> ancestorsOf(pid_t pid);
// The process /proc/locks names as holding a flock(2) on the file `device`:`inode`, or nothing.
std::optional<pid_t> flockHolderOf(dev_t device, ino_t inode);
// Parses the text of /proc/locks for that holder. Pure.
std::optional<pid_t> parseFlockHolder(std::string_view locks, dev_t device, ino_t inode);

// What the descriptors of process `pid` lead to (/proc/<pid>/fd: paths, "socket:[INODE]" and
// the like); nothing when this process may not read them (another user's, unless root).
std::optional<std::vector<std::string>> descriptorTargetsOf(pid_t pid);
// The paths of the files process `pid` has open whose name (the path's last part) is `name`, as
// its descriptors show them (/proc/<pid>/fd). Empty when they cannot be read.
std::vector<std::string> openFilesNamed(pid_t pid, std::string_view name);

// The paths of the Unix sockets process `pid` listens on: its descriptors, looked up in the
// socket table of its network namespace (/proc/<pid>/net/unix). Empty when they cannot be read
// (another user's process, unless this is root).
std::vector<std::string> listeningSocketsOf(pid_t pid);
// Parses such a table (/proc/net/unix) for the bound, listening sockets among `inodes`. Pure.
std::vector<std::string> parseListeningSockets(std::string_view table,
                                               const std::vector<std::uint64_t>& inodes);

// This process's resident memory (from /proc/self/statm) and open descriptors (/proc/self/fd);
// 0 for what cannot be read.
struct SelfUsage {
  std::uint64_t residentBytes = 0;
  std::uint64_t openFds = 0;
};
SelfUsage readSelfUsage();

}  // namespace clustervisor
