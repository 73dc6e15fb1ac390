// SPDX-License-Identifier: MIT
#include "process_table.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "clustervisor/wire/frame.hpp"

namespace clustervisor {

namespace {

// The whole file, or nothing when the process is gone or unreadable.
std::optional<std::string> readSmallFile(const std::string& path, std::size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      ::close(fd);
      if (n < 0) {
        return std::nullopt;
      }
      return text;
    }
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > limit) {
      ::close(fd);
      return text;
    }
  }
}

template <typename T>
bool parseNumber(std::string_view text, T& value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
}

}  // namespace

std::optional<ProcessInfo> parseStat(std::string_view stat) {
  ProcessInfo info;
  const auto open = stat.find(" (");
  const auto close = stat.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open ||
      !parseNumber(stat.substr(0, open), info.pid)) {
    return std::nullopt;
  }
  // After ") ": field 3 (state), 4 (ppid), 5 (pgrp), ... 14 (utime), 15 (stime), ... 22
  // (starttime), 23 (vsize), 24 (rss).
  std::string_view rest = stat.substr(close + 1);
  int field = 2;
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') {
      rest.remove_prefix(1);
    }
    const auto end = std::min(rest.find(' '), rest.size());
    const std::string_view token = rest.substr(0, end);
    rest.remove_prefix(end);
    if (token.empty()) {
      break;
    }
    ++field;
    if (field == 3) {
      info.state = token.front();
    } else if (field == 4) {
      if (!parseNumber(token, info.parent)) {
        return std::nullopt;
      }
    } else if (field == 5) {
      if (!parseNumber(token, info.group)) {
        return std::nullopt;
      }
    } else if (field == 14 || field == 15) {
      std::uint64_t ticks = 0;
      if (!parseNumber(token, ticks)) {
        return std::nullopt;
      }
      info.cpuTicks += ticks;
    } else if (field == 22) {
      if (!parseNumber(token, info.startTime)) {
        return std::nullopt;
      }
    } else if (field == 24) {
      // A negative rss (never seen, but the field is signed) counts as none.
      if (!parseNumber(token, info.residentPages)) {
        info.residentPages = 0;
      }
      return info;
    }
  }
  return field >= 22 ? std::optional<ProcessInfo>(info) : std::nullopt;
}

std::optional<ProcessInfo> readProcess(pid_t pid) {
  const auto text = readSmallFile("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!text) {
    return std::nullopt;
  }
  return parseStat(*text);
}

std::optional<ResourceUse> resourceUseOf(pid_t pid) {
  const auto info = readProcess(pid);
  // A zombie (exited, not reaped yet, or its main thread gone while others run) shows no memory:
  // not a figure to report.
  if (!info || info->state == 'Z' || info->state == 'X') {
    return std::nullopt;
  }
  static const auto pageSize = static_cast<std::uint64_t>(std::max(::sysconf(_SC_PAGESIZE), 0L));
  static const auto ticksPerSecond =
      static_cast<std::uint64_t>(std::max(::sysconf(_SC_CLK_TCK), 0L));
  return ResourceUse{info->residentPages * pageSize,
                     ticksPerSecond > 0 ? info->cpuTicks * 1000 / ticksPerSecond : 0};
}

bool anyThreadInKernelWait(pid_t pid, const std::string& proc) {
  const std::string tasks = proc + "/" + std::to_string(pid) + "/task";
  DIR* directory = ::opendir(tasks.c_str());
  if (directory == nullptr) {
    return false;
  }
  bool waiting = false;
  while (const dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.') {
      continue;
    }
    const auto text = readSmallFile(tasks + "/" + entry->d_name + "/stat", 4096);
    const auto thread = text ? parseStat(*text) : std::nullopt;
    if (thread && thread->state == 'D') {
      waiting = true;
      break;
    }
  }
  ::closedir(directory);
  return waiting;
}

std::optional<ProcessInfo> readSelf() {
  const auto text = readSmallFile("/proc/self/stat", 4096);
  if (!text) {
    return std::nullopt;
  }
  return parseStat(*text);
}

namespace {

// The children of this process from /proc/self/task/*/children: a few small files instead of the
// whole process table. Nothing when the kernel does not provide them (CONFIG_PROC_CHILDREN).
std::optional<std::vector<pid_t>> ownChildren() {
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr) {
    return std::nullopt;
  }
  std::vector<pid_t> pids;
  bool any = false;
  while (const dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') {
      continue;
    }
    const auto text =
        readSmallFile(std::string("/proc/self/task/") + entry->d_name + "/children", 1 << 20);
    if (!text) {
      continue;
    }
    any = true;
    std::string_view rest(*text);
    while (!rest.empty()) {
      const auto end = std::min(rest.find(' '), rest.size());
      pid_t pid = 0;
      if (parseNumber(rest.substr(0, end), pid)) {
        pids.push_back(pid);
      }
      rest.remove_prefix(std::min(end + 1, rest.size()));
    }
  }
  ::closedir(tasks);
  if (!any) {
    return std::nullopt;
  }
  return pids;
}

}  // namespace

std::vector<ProcessInfo> childrenOf(pid_t parent) {
  std::vector<ProcessInfo> children;
  if (parent == ::getpid()) {
    if (const auto pids = ownChildren()) {
      for (const pid_t pid : *pids) {
        if (const auto info = readProcess(pid); info && info->parent == parent) {
          children.push_back(*info);
        }
      }
      return children;
    }
  }
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return children;
  }
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    if (!parseNumber(std::string_view(entry->d_name), pid)) {
      continue;
    }
    if (const auto info = readProcess(pid); info && info->parent == parent) {
      children.push_back(*info);
    }
  }
  ::closedir(proc);
  return children;
}

Lineage parseLineage(std::string_view environ) {
  if (environ.empty()) {
    return {};
  }
  const std::string prefix = std::string(wire::kEnvClusterId) + "=";
  std::string_view rest(environ);
  while (!rest.empty()) {
    const auto end = std::min(rest.find('\0'), rest.size());
    const std::string_view entry = rest.substr(0, end);
    if (entry.starts_with(prefix)) {
      std::uint32_t id = 0;
      if (parseNumber(entry.substr(prefix.size()), id)) {
        return {Lineage::Kind::kCluster, id};
      }
      return {Lineage::Kind::kUnmarked};
    }
    rest.remove_prefix(std::min(end + 1, rest.size()));
  }
  return {Lineage::Kind::kUnmarked};
}

Lineage lineageOf(pid_t pid) {
  const auto environ = readSmallFile("/proc/" + std::to_string(pid) + "/environ", 1 << 20);
  return environ ? parseLineage(*environ) : Lineage{};
}

std::optional<RunMark> parseRunMark(std::string_view environ) {
  const std::string bot = std::string(kEnvBot) + "=";
  const std::string supervisor = std::string(kEnvSupervisor) + "=";
  RunMark mark;
  bool hasBot = false;
  bool hasSupervisor = false;
  std::string_view rest(environ);
  while (!rest.empty()) {
    const auto end = std::min(rest.find('\0'), rest.size());
    const std::string_view entry = rest.substr(0, end);
    if (entry.starts_with(bot)) {
      mark.bot = std::string(entry.substr(bot.size()));
      hasBot = !mark.bot.empty();
    } else if (entry.starts_with(supervisor)) {
      const std::string_view value = entry.substr(supervisor.size());
      const auto colon = value.find(':');
      hasSupervisor =
          colon != std::string_view::npos && parseNumber(value.substr(0, colon), mark.supervisor) &&
          parseNumber(value.substr(colon + 1), mark.supervisorStart) && mark.supervisor > 0;
    }
    rest.remove_prefix(std::min(end + 1, rest.size()));
  }
  if (!hasBot || !hasSupervisor) {
    return std::nullopt;
  }
  mark.lineage = parseLineage(environ);
  return mark;
}

std::optional<RunMark> runMarkOf(pid_t pid) {
  const auto environ = readSmallFile("/proc/" + std::to_string(pid) + "/environ", 1 << 20);
  return environ ? parseRunMark(*environ) : std::nullopt;
}

std::vector<Leftover> leftoversOfBot(const std::string& botId) {
  std::vector<Leftover> found;
  // The pids below are those of /proc: a /proc of another pid namespace (mounted from outside
  // this one's) would name other processes.
  if (const auto self = readSelf(); !self || self->pid != ::getpid()) {
    return found;
  }
  // This process and its ancestors (a script a leftover started may be what runs this one).
  const auto ancestors = ancestorsOf(::getpid());
  const std::set<pid_t> spared(ancestors.begin(), ancestors.end());
  const auto ownNamespace = pidNamespaceOf(::getpid());
  const bool root = ::geteuid() == 0;
  for (const pid_t pid : allProcesses()) {
    if (pid == ::getpid() || spared.contains(pid)) {
      continue;
    }
    // Cheap looks first: reading an environment can block while its process is stuck in the
    // kernel (state D); another user's cannot be read (unless this is root).
    const auto info = readProcess(pid);
    if (!info || info->state == 'D' || info->state == 'Z' || (!root && !ownedByThisUser(pid)) ||
        anyThreadInKernelWait(pid)) {
      continue;
    }
    // Marks from another pid namespace (a container) name pids that mean something else here.
    if (!ownNamespace || pidNamespaceOf(pid) != ownNamespace) {
      continue;
    }
    auto mark = runMarkOf(pid);
    if (!mark || mark->bot != botId) {
      continue;
    }
    // Its supervisor still runs (or one that got past the locks), or cannot be told (no start
    // time): not a leftover. A zombie is gone (its locks are released).
    if (mark->supervisorStart == 0) {
      continue;
    }
    if (const auto supervisor = readProcess(mark->supervisor);
        supervisor && supervisor->startTime == mark->supervisorStart && supervisor->state != 'Z' &&
        supervisor->state != 'X') {
      continue;
    }
    found.push_back({pid, std::move(*mark)});
  }
  return found;
}

std::optional<std::string> pidNamespaceOf(pid_t pid) {
  const std::string link = "/proc/" + std::to_string(pid) + "/ns/pid";
  char target[128];
  const ssize_t n = ::readlink(link.c_str(), target, sizeof target);
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof target) {
    return std::nullopt;
  }
  return std::string(target, static_cast<std::size_t>(n));
}

bool ownedByThisUser(pid_t pid) {
  struct stat st {};
  return ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0 && st.st_uid == ::geteuid();
}

std::optional<std::string> commandNameOf(pid_t pid) {
  auto name = readSmallFile("/proc/" + std::to_string(pid) + "/comm", 64);
  if (name && !name->empty() && name->back() == '\n') {
    name->pop_back();
  }
  return name;
}

bool sameProgram(pid_t a, pid_t b) {
  struct stat first {};
  struct stat second {};
  return ::stat(("/proc/" + std::to_string(a) + "/exe").c_str(), &first) == 0 &&
         ::stat(("/proc/" + std::to_string(b) + "/exe").c_str(), &second) == 0 &&
         first.st_dev == second.st_dev && first.st_ino == second.st_ino;
}

bool isSupervisorProcess(pid_t pid) {
  const auto name = commandNameOf(pid);
  return sameProgram(pid, ::getpid()) ||
         (name && (*name == "clustervisor" || *name == commandNameOf(::getpid()).value_or("")));
}

std::optional<std::array<uid_t, 3>> userIdsOf(pid_t pid) {
  const auto status = readSmallFile("/proc/" + std::to_string(pid) + "/status", 4096);
  if (!status) {
    return std::nullopt;
  }
  const auto at = status->find("\nUid:");
  if (at == std::string::npos) {
    return std::nullopt;
  }
  // "Uid:\treal\teffective\tsaved\tfs".
  std::string_view rest = std::string_view(*status).substr(at + 5);
  std::array<uid_t, 3> ids{};
  for (auto& id : ids) {
    rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
    const auto token = rest.substr(0, rest.find_first_of(" \t\n"));
    if (!parseNumber(token, id)) {
      return std::nullopt;
    }
    rest.remove_prefix(token.size());
  }
  return ids;
}

bool isSupervisorHolding(pid_t pid, uid_t fileOwner) {
  // The same program file: what only this user's processes, or root, can be seen to run.
  if (sameProgram(pid, ::getpid())) {
    return true;
  }
  // Otherwise its name, from a process all of whose user ids (real, effective, saved: a setuid
  // program keeps its caller's real one) are this user's, root's or the file owner's.
  const auto ids = userIdsOf(pid);
  return ids &&
         std::all_of(ids->begin(), ids->end(),
                     [&](uid_t id) { return id == ::geteuid() || id == 0 || id == fileOwner; }) &&
         isSupervisorProcess(pid);
}

std::vector<pid_t> ancestorsOf(pid_t pid) {
  std::vector<pid_t> chain;
  while (pid > 1 && std::find(chain.begin(), chain.end(), pid) == chain.end()) {
    chain.push_back(pid);
    const auto info = readProcess(pid);
    pid = info ? info->parent : 0;
  }
  return chain;
}

std::optional<pid_t> parseFlockHolder(std::string_view locks, dev_t device, ino_t inode) {
  // "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF"; a waiter's line ("1: -> FLOCK ...")
  // is not a holder's.
  while (!locks.empty()) {
    const auto end = std::min(locks.find('\n'), locks.size());
    const std::string line(locks.substr(0, end));
    locks.remove_prefix(std::min(end + 1, locks.size()));
    char kind[16];
    long pid = 0;
    unsigned major = 0;
    unsigned minor = 0;
    unsigned long long number = 0;
    if (std::sscanf(line.c_str(), "%*[^:]: %15s %*s %*s %ld %x:%x:%llu", kind, &pid, &major, &minor,
                    &number) == 5 &&
        std::string_view(kind) == "FLOCK" && pid > 0 && major == ::major(device) &&
        minor == ::minor(device) && number == inode) {
      return static_cast<pid_t>(pid);
    }
  }
  return std::nullopt;
}

std::optional<pid_t> flockHolderOf(dev_t device, ino_t inode) {
  const auto locks = readSmallFile("/proc/locks", 16 << 20);
  return locks ? parseFlockHolder(*locks, device, inode) : std::nullopt;
}

std::vector<std::string> parseListeningSockets(std::string_view table,
                                               const std::vector<std::uint64_t>& inodes) {
  // "Num RefCount Protocol Flags Type St Inode Path", the path only for a bound socket; a
  // listening one has __SO_ACCEPTCON (0x10000) in its flags.
  constexpr unsigned long kListening = 0x10000;
  std::vector<std::string> paths;
  std::string_view rest = table;
  while (!rest.empty()) {
    const auto end = std::min(rest.find('\n'), rest.size());
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    std::string_view fields[7];
    std::size_t count = 0;
    while (count < 7) {
      const auto start = line.find_first_not_of(' ');
      if (start == std::string_view::npos) {
        break;
      }
      line.remove_prefix(start);
      const auto stop = std::min(line.find(' '), line.size());
      fields[count++] = line.substr(0, stop);
      line.remove_prefix(stop);
    }
    unsigned long flags = 0;
    std::uint64_t inode = 0;
    if (count < 7 ||
        std::from_chars(fields[3].data(), fields[3].data() + fields[3].size(), flags, 16).ec !=
            std::errc{} ||
        (flags & kListening) == 0 || !parseNumber(fields[6], inode) ||
        std::find(inodes.begin(), inodes.end(), inode) == inodes.end()) {
      continue;
    }
    const auto path = line.substr(std::min(line.find_first_not_of(' '), line.size()));
    if (!path.empty() && path.front() == '/') {  // not unbound, not abstract ("@...")
      paths.emplace_back(path);
    }
  }
  return paths;
}

std::optional<std::vector<std::string>> descriptorTargetsOf(pid_t pid) {
  const std::string fdDirectory = "/proc/" + std::to_string(pid) + "/fd";
  DIR* fds = ::opendir(fdDirectory.c_str());
  if (fds == nullptr) {
    return std::nullopt;
  }
  std::vector<std::string> targets;
  while (const dirent* entry = ::readdir(fds)) {
    char target[PATH_MAX];
    const std::string link = fdDirectory + "/" + entry->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target);
    if (n > 0 && static_cast<std::size_t>(n) < sizeof target) {
      targets.emplace_back(target, static_cast<std::size_t>(n));
    }
  }
  ::closedir(fds);
  return targets;
}

std::vector<std::string> openFilesNamed(pid_t pid, std::string_view name) {
  std::vector<std::string> paths;
  for (auto& path : descriptorTargetsOf(pid).value_or(std::vector<std::string>{})) {
    // Only absolute paths ("socket:[...]" and the like are not files) ending in "/name".
    if (path.starts_with('/') && path.size() > name.size() && path.ends_with(name) &&
        path[path.size() - name.size() - 1] == '/') {
      paths.push_back(std::move(path));
    }
  }
  return paths;
}

std::vector<std::string> listeningSocketsOf(pid_t pid) {
  std::vector<std::uint64_t> inodes;
  for (const std::string_view target :
       descriptorTargetsOf(pid).value_or(std::vector<std::string>{})) {
    std::uint64_t inode = 0;
    if (target.starts_with("socket:[") && target.ends_with("]") &&
        parseNumber(target.substr(8, target.size() - 9), inode)) {
      inodes.push_back(inode);
    }
  }
  const auto table = readSmallFile("/proc/" + std::to_string(pid) + "/net/unix", 16 << 20);
  return table && !inodes.empty() ? parseListeningSockets(*table, inodes)
                                  : std::vector<std::string>{};
}

std::vector<pid_t> allProcesses() {
  std::vector<pid_t> pids;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return pids;
  }
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    if (parseNumber(std::string_view(entry->d_name), pid)) {
      pids.push_back(pid);
    }
  }
  ::closedir(proc);
  return pids;
}

std::optional<std::chrono::steady_clock::duration> nextUnknownLook(
    std::chrono::steady_clock::time_point now,
    const std::vector<std::chrono::steady_clock::time_point>& firstSeen,
    std::chrono::steady_clock::duration first, std::chrono::steady_clock::duration last,
    std::chrono::steady_clock::duration limit) {
  std::optional<std::chrono::steady_clock::duration> youngest;
  for (const auto seen : firstSeen) {
    const auto age = std::max(now - seen, std::chrono::steady_clock::duration::zero());
    if (age < limit && (!youngest || age < *youngest)) {
      youngest = age;
    }
  }
  if (!youngest) {
    return std::nullopt;
  }
  return std::clamp(*youngest, first, last);
}

SelfUsage readSelfUsage() {
  SelfUsage usage;
  if (std::FILE* statm = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0;
    unsigned long long resident = 0;
    if (std::fscanf(statm, "%llu %llu", &size, &resident) == 2) {
      usage.residentBytes = resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    }
    std::fclose(statm);
  }
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++usage.openFds;
  }
  // The directory's own descriptor, open while it was listed, is not one of ours.
  usage.openFds -= usage.openFds > 0 ? 1 : 0;
  return usage;
}

}  // namespace clustervisor
