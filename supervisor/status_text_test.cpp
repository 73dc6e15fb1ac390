// SPDX-License-Identifier: MIT
#include <chrono>

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include "status_text.hpp"

BOOST_AUTO_TEST_SUITE(status_text)

BOOST_AUTO_TEST_CASE(formats_one_row_per_cluster_in_aligned_columns) {
  const auto status = boost::json::parse(R"({
    "name":"bot","pid":100,"uptime_ms":65000,"stopping":false,
    "totals":{"clusters":2,"running":1,"events_in":7,"events_out":9,"dropped_events":0},
    "clusters":[
      {"id":0,"state":"running","pid":101,"uptime_ms":64000,"restarts":0,"ready":true,
       "rss_bytes":47395635,"cpu_ms":2300,
       "events_in":7,"events_out":2,"queued_bytes":0,"held_events":0,"last_exit":null},
      {"id":1,"state":"backing-off","pid":null,"uptime_ms":null,"restarts":3,"ready":false,
       "events_in":0,"events_out":7,"queued_bytes":2048,"held_events":4,
       "last_exit":"exited with status 3","future_field":[1,2]}
    ]})")
                          .as_object();
  BOOST_TEST(clustervisor::formatStatus(status) ==
             "bot: supervisor pid 100, up 1m5s; 1 of 2 clusters running; events 7 in, 9 out, 0 "
             "dropped\n"
             "CLUSTER  STATE        PID  UPTIME  MEM      CPU   RESTARTS  READY  SENT/DELIVERED  "
             "QUEUED  HELD  LAST EXIT\n"
             "0        running      101  1m4s    45.2MiB  2.3s  0         yes    7/2             "
             "0B      0     -\n"
             "1        backing-off  -    -       -        -     3         no     0/7             "
             "2KiB    4     exited with status 3\n");
}

BOOST_AUTO_TEST_CASE(missing_fields_show_as_dashes) {
  const auto status = boost::json::parse(R"({"clusters":[{"id":0}], "stopping":true})").as_object();
  const auto text = clustervisor::formatStatus(status);
  BOOST_TEST(text.find("-: supervisor pid -; stopping\n") == 0u, text);
  BOOST_TEST(text.find("\n0        -      -    -       -    -    -         -      -/-") !=
                 std::string::npos,
             text);
}

BOOST_AUTO_TEST_CASE(marks_removed_and_outdated_clusters_and_an_operation_in_progress) {
  const auto status = boost::json::parse(R"({
    "name":"bot","pid":100,"operation":"reload",
    "clusters":[
      {"id":0,"state":"running","outdated":true},
      {"id":1,"state":"running","outdated":false},
      {"id":4,"state":"stopping","removed":true,"outdated":true}
    ]})")
                          .as_object();
  const auto text = clustervisor::formatStatus(status);
  BOOST_TEST(text.find("bot: supervisor pid 100; reload in progress\n") == 0u, text);
  BOOST_TEST(text.find("\n0        running (outdated)") != std::string::npos, text);
  BOOST_TEST(text.find("\n1        running  ") != std::string::npos, text);
  BOOST_TEST(text.find("\n4        stopping (removed)") != std::string::npos, text);
}

BOOST_AUTO_TEST_CASE(shows_when_a_waiting_cluster_starts_and_why_its_worker_was_stopped) {
  const auto status = boost::json::parse(R"({
    "name":"bot","pid":100,
    "clusters":[
      {"id":0,"state":"backing-off","next_start_ms":1500,"last_exit":"was killed by SIGTERM",
       "last_exit_reason":"start_timeout"},
      {"id":1,"state":"failed","next_start_ms":240000,"last_exit":"was killed by SIGKILL",
       "last_exit_reason":"hung"},
      {"id":2,"state":"failed","next_start_ms":null,"last_exit":"exited with status 1",
       "last_exit_reason":"failure"}
    ]})")
                          .as_object();
  const auto text = clustervisor::formatStatus(status);
  BOOST_TEST(text.find("\n0        backing-off (starts in 1.5s)") != std::string::npos, text);
  BOOST_TEST(
      text.find("was killed by SIGTERM (not ready within start.timeout)\n") != std::string::npos,
      text);
  BOOST_TEST(text.find("\n1        failed (starts in 4m)") != std::string::npos, text);
  BOOST_TEST(text.find("was killed by SIGKILL (hung: no heartbeat)\n") != std::string::npos, text);
  // A failed cluster that is not retried, and an exit the supervisor did not cause.
  BOOST_TEST(text.find("\n2        failed  ") != std::string::npos, text);
  BOOST_TEST(text.find("exited with status 1\n") != std::string::npos, text);
}

BOOST_AUTO_TEST_CASE(says_where_metrics_are_served_or_why_they_are_not) {
  const auto with = [](std::string_view metrics) {
    return clustervisor::formatStatus(
        boost::json::parse(R"({"name":"bot","pid":100,"clusters":[],"metrics":)" +
                           std::string(metrics) + "}")
            .as_object());
  };
  BOOST_TEST(with(R"({"listen":"127.0.0.1:9464","serving":true,"error":null})") ==
             "bot: supervisor pid 100\nmetrics: http://127.0.0.1:9464/metrics\n"
             "CLUSTER  STATE  PID  UPTIME  MEM  CPU  RESTARTS  READY  SENT/DELIVERED  QUEUED  "
             "HELD  LAST EXIT\n");
  const auto failed =
      with(R"({"listen":"127.0.0.1:9464","serving":false,"error":"cannot serve metrics on )"
           R"(127.0.0.1:9464: Address already in use"})");
  BOOST_TEST(failed.find("\nmetrics: not served: cannot serve metrics on 127.0.0.1:9464: Address "
                         "already in use\n") != std::string::npos,
             failed);
  // None configured: no line.
  BOOST_TEST(with("null").find("metrics") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(cluster_id_lists_show_runs_of_three_or_more_as_ranges) {
  using clustervisor::formatIdList;
  BOOST_TEST(formatIdList({}) == "");
  BOOST_TEST(formatIdList({4}) == "4");
  BOOST_TEST(formatIdList({0, 1}) == "0, 1");
  BOOST_TEST(formatIdList({0, 1, 2}) == "0..2");
  BOOST_TEST(formatIdList({0, 1, 2, 3, 5, 7, 8, 10, 11, 12, 13}) == "0..3, 5, 7, 8, 10..13");
  // In the order given (a rolling restart's): only ascending runs are ranges.
  BOOST_TEST(formatIdList({3, 2, 1, 0}) == "3, 2, 1, 0");
  BOOST_TEST(formatIdList({5, 6, 7, 0, 1, 2}) == "5..7, 0..2");
  BOOST_TEST(formatIdList({4294967294u, 4294967295u, 0}) == "4294967294, 4294967295, 0");
  // With the noun, which a range or a list makes plural.
  BOOST_TEST(clustervisor::formatClusters({3}) == "cluster 3");
  BOOST_TEST(clustervisor::formatClusters({3, 4}) == "clusters 3, 4");
  BOOST_TEST(clustervisor::formatClusters({0, 1, 2}) == "clusters 0..2");
}

BOOST_AUTO_TEST_CASE(memory_reads_in_the_unit_it_stays_under_1024_of) {
  using clustervisor::formatMemory;
  BOOST_TEST(formatMemory(900) == "900B");
  BOOST_TEST(formatMemory(1024) == "1KiB");
  BOOST_TEST(formatMemory(512 * 1024) == "512KiB");
  BOOST_TEST(formatMemory(1048064) == "1.0MiB");  // 1023.5 KiB rounds up into MiB
  BOOST_TEST(formatMemory(47395635) == "45.2MiB");
  BOOST_TEST(formatMemory(1073699021) == "1.0GiB");  // 1023.96 MiB
  BOOST_TEST(formatMemory(1395864371) == "1.3GiB");
}

BOOST_AUTO_TEST_CASE(uptimes_read_naturally) {
  BOOST_TEST(clustervisor::formatUptime(340) == "340ms");
  BOOST_TEST(clustervisor::formatUptime(5200) == "5.2s");
  BOOST_TEST(clustervisor::formatUptime(184000) == "3m4s");
  BOOST_TEST(clustervisor::formatUptime(3720000) == "1h2m");
  BOOST_TEST(clustervisor::formatUptime(90000000) == "1d1h");
  BOOST_TEST(clustervisor::formatUptime(5000) == "5s");
  BOOST_TEST(clustervisor::formatUptime(3599400) == "59m59s");
  BOOST_TEST(clustervisor::formatUptime(3599600) == "1h0m");
}

BOOST_AUTO_TEST_CASE(durations_in_log_lines_read_as_configured_without_trailing_zeros) {
  using clustervisor::humanDuration;
  using std::chrono::milliseconds;
  BOOST_TEST(humanDuration(milliseconds(0)) == "0s");
  BOOST_TEST(humanDuration(milliseconds(1)) == "1ms");
  BOOST_TEST(humanDuration(milliseconds(840)) == "840ms");
  BOOST_TEST(humanDuration(milliseconds(999)) == "999ms");
  BOOST_TEST(humanDuration(milliseconds(1000)) == "1s");
  BOOST_TEST(humanDuration(milliseconds(1049)) == "1s");
  BOOST_TEST(humanDuration(milliseconds(1050)) == "1.1s");
  BOOST_TEST(humanDuration(milliseconds(2500)) == "2.5s");
  BOOST_TEST(humanDuration(milliseconds(59949)) == "59.9s");
  BOOST_TEST(humanDuration(milliseconds(59950)) == "1m");  // not "60s"
  BOOST_TEST(humanDuration(milliseconds(90000)) == "1m30s");
  BOOST_TEST(humanDuration(milliseconds(600000)) == "10m");  // a 600 s backoff, not "600.0s"
  BOOST_TEST(humanDuration(milliseconds(3600000)) == "1h");
  BOOST_TEST(humanDuration(milliseconds(3723000)) == "1h2m3s");
  BOOST_TEST(humanDuration(milliseconds(-5)) == "0s");
  // Other units round to the millisecond.
  BOOST_TEST(humanDuration(std::chrono::seconds(30)) == "30s");
  BOOST_TEST(humanDuration(std::chrono::microseconds(1499600)) == "1.5s");
  BOOST_TEST(humanDuration(std::chrono::nanoseconds(999'600'000)) == "1s");
}

BOOST_AUTO_TEST_SUITE_END()
