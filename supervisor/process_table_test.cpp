// SPDX-License-Identifier: MIT
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "process_table.hpp"

using clustervisor::parseLineage;
using clustervisor::parseStat;

BOOST_AUTO_TEST_SUITE(process_table)

BOOST_AUTO_TEST_CASE(parses_parent_state_and_start_time) {
  const auto info = parseStat(
      "4242 (bot) S 17 4240 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 3 0 98765 10000 200");
  BOOST_REQUIRE(info.has_value());
  BOOST_TEST(info->pid == 4242);
  BOOST_TEST(info->parent == 17);
  BOOST_TEST(info->group == 4240);
  BOOST_TEST(info->state == 'S');
  BOOST_TEST(info->startTime == 98765u);
  BOOST_TEST(info->cpuTicks == 3u);         // utime 1 + stime 2
  BOOST_TEST(info->residentPages == 200u);  // rss
}

BOOST_AUTO_TEST_CASE(resource_use_agrees_with_getrusage_and_a_zombie_has_none) {
  const auto usedMs = [] {
    rusage self{};
    ::getrusage(RUSAGE_SELF, &self);
    return (self.ru_utime.tv_sec + self.ru_stime.tv_sec) * 1000L +
           (self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1000L;
  };
  // Some CPU time of this process's own, so a unit error (ticks for milliseconds) shows.
  volatile std::uint64_t spin = 0;
  const long start = usedMs();
  while (usedMs() - start < 300) {
    for (int i = 0; i < 100000; ++i) {
      spin = spin + static_cast<std::uint64_t>(i);
    }
  }
  const auto use = clustervisor::resourceUseOf(::getpid());
  const long after = usedMs();
  BOOST_REQUIRE(use.has_value());
  // /proc counts in clock ticks (10 ms at the usual 100 per second).
  BOOST_TEST(static_cast<long>(use->cpuMilliseconds) >= start + 300 - 30);
  BOOST_TEST(static_cast<long>(use->cpuMilliseconds) <= after + 30);
  rusage self{};
  ::getrusage(RUSAGE_SELF, &self);
  BOOST_TEST(use->residentBytes > 0u);
  BOOST_TEST(use->residentBytes <= static_cast<std::uint64_t>(self.ru_maxrss) * 1024u);
  // A child that exited and is not reaped yet: a zombie, which has nothing to report.
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    ::_exit(0);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (clustervisor::readProcess(child).value_or(clustervisor::ProcessInfo{}).state != 'Z' &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  BOOST_TEST(!clustervisor::resourceUseOf(child).has_value());
  ::waitpid(child, nullptr, 0);
  BOOST_TEST(!clustervisor::resourceUseOf(child).has_value());  // gone
}

BOOST_AUTO_TEST_CASE(a_stat_line_that_ends_after_the_start_time_still_parses_without_memory) {
  const auto info = parseStat("9 (bot) S 1 9 9 0 -1 4194560 120 0 0 0 5 7 0 0 20 0 3 0 4321");
  BOOST_REQUIRE(info.has_value());
  BOOST_TEST(info->startTime == 4321u);
  BOOST_TEST(info->cpuTicks == 12u);
  BOOST_TEST(info->residentPages == 0u);
}

BOOST_AUTO_TEST_CASE(a_command_name_with_spaces_and_parentheses_does_not_shift_fields) {
  const auto info =
      parseStat("7 (my (odd) bot) Z 1 7 7 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 3 0 555 10000 200");
  BOOST_REQUIRE(info.has_value());
  BOOST_TEST(info->parent == 1);
  BOOST_TEST(info->state == 'Z');
  BOOST_TEST(info->startTime == 555u);
}

BOOST_AUTO_TEST_CASE(truncated_or_garbled_text_is_rejected) {
  BOOST_TEST(!parseStat("").has_value());
  BOOST_TEST(!parseStat("12 (x) S").has_value());
  BOOST_TEST(!parseStat("12 (x) S notanumber 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 5").has_value());
  BOOST_TEST(!parseStat("x (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 5").has_value());
}

BOOST_AUTO_TEST_CASE(reads_this_process_from_proc) {
  const auto self = clustervisor::readProcess(::getpid());
  BOOST_REQUIRE(self.has_value());
  BOOST_TEST(self->parent == ::getppid());
  BOOST_TEST(self->startTime > 0u);
}

BOOST_AUTO_TEST_CASE(the_cluster_a_process_came_from_is_read_from_its_environment) {
  using namespace std::string_view_literals;
  using Kind = clustervisor::Lineage::Kind;
  const auto marked = parseLineage("HOME=/root\0CLUSTERVISOR_CLUSTER_ID=12\0PATH=/bin\0"sv);
  BOOST_TEST((marked.kind == Kind::kCluster));
  BOOST_TEST(marked.cluster == 12u);
  // The last entry need not end in a NUL.
  BOOST_TEST(parseLineage("CLUSTERVISOR_CLUSTER_ID=3"sv).cluster == 3u);
  BOOST_TEST((parseLineage("HOME=/root\0PATH=/bin\0"sv).kind == Kind::kUnmarked));
  BOOST_TEST((parseLineage("CLUSTERVISOR_CLUSTER_ID=x1\0"sv).kind == Kind::kUnmarked));
  BOOST_TEST((parseLineage("CLUSTERVISOR_CLUSTER_IDS=1\0"sv).kind == Kind::kUnmarked));
}

BOOST_AUTO_TEST_CASE(the_bot_and_supervisor_a_process_came_from_are_read_from_its_environment) {
  using namespace std::string_view_literals;
  using clustervisor::parseRunMark;
  const auto mark = parseRunMark(
      "CLUSTERVISOR_BOT=bot-508e07b561d4\0CLUSTERVISOR_CLUSTER_ID=2\0"
      "CLUSTERVISOR_SUPERVISOR=4242:123456\0PATH=/bin"sv);
  BOOST_REQUIRE(mark.has_value());
  BOOST_TEST(mark->bot == "bot-508e07b561d4");
  BOOST_TEST(mark->supervisor == 4242);
  BOOST_TEST(mark->supervisorStart == 123456u);
  BOOST_TEST((mark->lineage.kind == clustervisor::Lineage::Kind::kCluster));
  BOOST_TEST(mark->lineage.cluster == 2u);
  // Both marks, well formed, or nothing.
  BOOST_TEST(!parseRunMark("CLUSTERVISOR_BOT=b\0CLUSTERVISOR_CLUSTER_ID=2\0"sv));
  BOOST_TEST(!parseRunMark("CLUSTERVISOR_SUPERVISOR=4242:1\0"sv));
  BOOST_TEST(!parseRunMark("CLUSTERVISOR_BOT=b\0CLUSTERVISOR_SUPERVISOR=4242\0"sv));
  BOOST_TEST(!parseRunMark("CLUSTERVISOR_BOT=b\0CLUSTERVISOR_SUPERVISOR=0:1\0"sv));
  BOOST_TEST(!parseRunMark("CLUSTERVISOR_BOT=\0CLUSTERVISOR_SUPERVISOR=4242:1\0"sv));
  BOOST_TEST(!parseRunMark(""sv));
}

BOOST_AUTO_TEST_CASE(the_unix_sockets_a_process_listens_on_are_read_from_its_socket_table) {
  using clustervisor::parseListeningSockets;
  const std::string table =
      "Num       RefCount Protocol Flags    Type St Inode Path\n"
      "0000000044477858: 00000002 00000000 00010000 0001 01 41001 /run/user/0/clustervisor/b.sock\n"
      "0000000044477859: 00000002 00000000 00010000 0001 01 41002 @abstract\n"
      "000000004447785a: 00000003 00000000 00000000 0001 03 41003 /run/connected.sock\n"
      "000000004447785b: 00000002 00000000 00010000 0001 01 41004 /tmp/a path with spaces\n"
      "000000004447785c: 00000002 00000000 00010000 0001 01 41005\n"
      "000000004447785d: 00000002 00000000 00010000 0001 01 41006 /not/ours.sock\n";
  const auto found = parseListeningSockets(table, {41001, 41002, 41003, 41004, 41005});
  BOOST_TEST(found == (std::vector<std::string>{"/run/user/0/clustervisor/b.sock",
                                                "/tmp/a path with spaces"}),
             boost::test_tools::per_element());
  BOOST_TEST(parseListeningSockets(table, {}).empty());
  BOOST_TEST(parseListeningSockets("", {41001}).empty());

  // And for real: a socket this process listens on.
  const auto path = std::filesystem::temp_directory_path() /
                    ("listening-" + std::to_string(::getpid()) + ".sock");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  BOOST_REQUIRE(::listen(fd, 4) == 0);
  const auto mine = clustervisor::listeningSocketsOf(::getpid());
  ::close(fd);
  std::filesystem::remove(path);
  BOOST_TEST((std::find(mine.begin(), mine.end(), path.string()) != mine.end()));
}

BOOST_AUTO_TEST_CASE(no_running_or_missing_process_counts_as_in_a_kernel_wait) {
  // This process's threads (this one, and one asleep in nanosleep: state S) are not in state D;
  // a process that does not exist has none.
  std::thread sleeper([] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); });
  BOOST_TEST(!clustervisor::anyThreadInKernelWait(::getpid()));
  sleeper.join();
  BOOST_TEST(!clustervisor::anyThreadInKernelWait(0));
}

BOOST_AUTO_TEST_CASE(a_process_is_in_a_kernel_wait_when_any_of_its_threads_is_in_state_d) {
  // A /proc laid out alike: process 42 with a main thread asleep (S) and a second thread in
  // uninterruptible sleep (D), and process 43 whose two threads are both asleep.
  const auto root =
      std::filesystem::temp_directory_path() / ("clustervisor-proc-" + std::to_string(::getpid()));
  const auto task = [&](int pid, int tid, char state) {
    const auto dir = root / std::to_string(pid) / "task" / std::to_string(tid);
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "stat") << tid << " (bot) " << state << " 1 " << pid << " " << pid
                                << " 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 3 0 555 10000 200\n";
  };
  task(42, 42, 'S');
  task(42, 44, 'D');
  task(43, 43, 'S');
  task(43, 45, 'S');
  BOOST_TEST(clustervisor::anyThreadInKernelWait(42, root.string()));
  BOOST_TEST(!clustervisor::anyThreadInKernelWait(43, root.string()));
  BOOST_TEST(!clustervisor::anyThreadInKernelWait(46, root.string()));  // no such process
  std::filesystem::remove_all(root);
}

BOOST_AUTO_TEST_CASE(the_holder_of_a_flock_is_read_from_proc_locks) {
  using clustervisor::parseFlockHolder;
  const dev_t device = makedev(8, 1);
  const std::string locks =
      "1: POSIX  ADVISORY  WRITE 111 08:01:1234567 0 EOF\n"
      "2: FLOCK  ADVISORY  WRITE 222 08:01:7654321 0 EOF\n"
      "3: FLOCK  ADVISORY  WRITE 333 08:01:1234567 0 EOF\n"
      "3: -> FLOCK  ADVISORY  WRITE 444 08:01:1234567 0 EOF\n";
  BOOST_TEST(parseFlockHolder(locks, device, 1234567).value_or(0) == 333);
  BOOST_TEST(parseFlockHolder(locks, device, 7654321).value_or(0) == 222);
  BOOST_TEST(!parseFlockHolder(locks, makedev(8, 2), 1234567));  // another device
  BOOST_TEST(!parseFlockHolder(locks, device, 42));
  BOOST_TEST(!parseFlockHolder("", device, 1234567));
  // Its own command name, and that it runs its own program.
  BOOST_TEST(clustervisor::commandNameOf(::getpid()).value_or("") == "supervisor_test");
  BOOST_TEST(clustervisor::sameProgram(::getpid(), ::getpid()));
  BOOST_TEST(!clustervisor::sameProgram(::getpid(), -1));
}

BOOST_AUTO_TEST_CASE(an_empty_environment_tells_nothing_yet) {
  // What /proc/<pid>/environ gives for a process in the middle of an exec: it may be any
  // cluster's, so it is looked at again rather than taken for an unmarked one.
  BOOST_TEST((parseLineage("").kind == clustervisor::Lineage::Kind::kUnknown));
  BOOST_TEST((clustervisor::lineageOf(-1).kind == clustervisor::Lineage::Kind::kUnknown));
}

BOOST_AUTO_TEST_CASE(each_unknown_process_is_looked_at_again_on_a_schedule_of_its_own) {
  using namespace std::chrono_literals;
  using clustervisor::nextUnknownLook;
  const auto now = std::chrono::steady_clock::time_point{} + 1h;
  const auto look = [&](std::vector<std::chrono::steady_clock::time_point> firstSeen) {
    return nextUnknownLook(now, firstSeen, 10ms, 1s, 10s);
  };
  // Just seen: the first interval; then as long as it has been unknown, up to the longest.
  BOOST_TEST((look({now}) == std::chrono::steady_clock::duration(10ms)));
  BOOST_TEST((look({now - 80ms}) == std::chrono::steady_clock::duration(80ms)));
  BOOST_TEST((look({now - 5s}) == std::chrono::steady_clock::duration(1s)));
  // One that has been unknown for seconds does not hold back one that just turned up.
  BOOST_TEST((look({now - 5s, now - 2ms}) == std::chrono::steady_clock::duration(10ms)));
  // Past the limit nothing is looked at again (the end of a stop kills what is left).
  BOOST_TEST(!look({now - 10s, now - 20s}).has_value());
  BOOST_TEST(!look({}).has_value());
  BOOST_TEST((look({now - 20s, now - 300ms}) == std::chrono::steady_clock::duration(300ms)));
  // The most recently seen one decides, wherever it is in the list.
  BOOST_TEST((look({now - 2ms, now - 5s}) == std::chrono::steady_clock::duration(10ms)));
  BOOST_TEST((look({now - 5s, now - 40ms}) == std::chrono::steady_clock::duration(40ms)));
  BOOST_TEST((look({now - 40ms, now - 5s}) == std::chrono::steady_clock::duration(40ms)));
  // Bounds: exactly the longest interval; just inside the limit; a time ahead of now.
  BOOST_TEST((look({now - 1s}) == std::chrono::steady_clock::duration(1s)));
  BOOST_TEST((look({now - 9999ms}) == std::chrono::steady_clock::duration(1s)));
  BOOST_TEST((look({now + 1s}) == std::chrono::steady_clock::duration(10ms)));
}

BOOST_AUTO_TEST_CASE(a_processs_real_effective_and_saved_user_ids_are_read_from_proc) {
  const auto ids = clustervisor::userIdsOf(::getpid());
  BOOST_REQUIRE(ids.has_value());
  uid_t real = 0;
  uid_t effective = 0;
  uid_t saved = 0;
  BOOST_REQUIRE(::getresuid(&real, &effective, &saved) == 0);
  BOOST_TEST((*ids)[0] == real);
  BOOST_TEST((*ids)[1] == effective);
  BOOST_TEST((*ids)[2] == saved);
  BOOST_TEST(!clustervisor::userIdsOf(-1).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
