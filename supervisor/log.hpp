// SPDX-License-Identifier: MIT
//
// The supervisor's own messages: one line each, "clustervisor: …", on stderr, written with a
// single write(2) so they never interleave with worker lines; and the output both these and the
// captured worker lines go through.
//
// While `clustervisor run` runs (startOutputThread() .. stopOutputThread()), output lines are
// queued and a thread of their own writes them, in order, one write(2) each: a standard output
// or error that takes nothing for a while (a suspended pager, a terminal stopped with Ctrl-S, a
// stuck log reader) then stops neither the relay nor heartbeats nor the control socket. When
// standard output leads somewhere else than standard error, it has a queue and a thread of its
// own, so a stuck reader of one holds up nothing written to the other (the supervisor's own lines
// included); when both lead to the same place, one queue keeps all lines in order. Worker lines
// for a queue wait in their pipes once more than kOutputQueueLimit bytes of them are queued there
// (outputQueueFull(): the captures stop reading, so a worker's own writes block as they would on
// a full pipe; outputRoomFd() becomes readable when they may read again); the supervisor's own
// lines have a budget of their own, kOutputOwnLimit, and are dropped and counted beyond it, with
// a line saying how many once there is room again.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace clustervisor {

// Writes all of `bytes` to `fd`, retrying on EINTR and waiting for room on a non-blocking
// descriptor; gives up silently when the descriptor is gone (there is nowhere left to report
// it). One write(2) when the descriptor allows.
void writeAll(int fd, std::string_view bytes);

inline constexpr std::size_t kOutputQueueLimit = 1024 * 1024;
inline constexpr std::size_t kOutputOwnLimit = 4 * 1024 * 1024;

// Starts the output threads (signals blocked in them); from then on writeOutput() queues. An
// error when no thread could be made: output is then written directly, as before they start.
std::error_code startOutputThread();
// Writes out what is queued, waiting at most `grace` for the descriptors to take it, and ends
// the threads; writeOutput() writes directly again. If the output took nothing meanwhile, later
// lines are dropped instead (a direct write would block the caller the same way).
void stopOutputThread(std::chrono::milliseconds grace);
// Calls stopOutputThread() when it goes out of scope, also on an exception.
struct OutputThreadScope {
  std::chrono::milliseconds grace;
  ~OutputThreadScope() { stopOutputThread(grace); }
};
// A whole line (or lines) for `fd`: queued while the output thread runs, written directly
// otherwise. `own`: one of the supervisor's lines rather than a worker's.
void writeOutput(int fd, std::string_view bytes, bool own);
// More than kOutputQueueLimit bytes of worker lines wait in the queue for `fd`: worker output
// for it should wait in its pipes.
bool outputQueueFull(int fd);
// An eventfd that becomes readable when outputQueueFull() ends (read it to reset it); -1 while
// no output thread runs.
int outputRoomFd();
// The supervisor's own lines dropped because the output took nothing for too long.
std::uint64_t droppedOutputLines();

void logLine(std::string_view message);
// "clustervisor: …" like logLine(), at the journal's warning priority (see leadsToJournal()).
void logWarning(std::string_view message);
void logError(std::string_view message);  // "clustervisor: error: …"

// Whether `fd` (standard output or error) leads to the journal: JOURNAL_STREAM, which systemd
// sets for a service whose standard output or error it connects to journald, names its device
// and inode. A line written there may start with a syslog priority ("<3>" for an error), which
// the journal takes as the line's priority and strips (systemd.exec(5), SyslogLevelPrefix=).
// Read once, at the first call.
bool leadsToJournal(int fd);
// The syslog priority a line starts with ("<3>…": 3), or -1 if it starts with none.
int syslogPriorityOf(std::string_view line);

// A signal as messages name it: "SIGTERM", or "signal 42" for one without a name.
std::string signalName(int signal);

}  // namespace clustervisor
