// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>

#include "metrics.hpp"
#include "metrics_server.hpp"

using clustervisor::MetricsText;

BOOST_AUTO_TEST_SUITE(metrics_text)

BOOST_AUTO_TEST_CASE(writes_help_type_and_samples_in_the_exposition_format) {
  MetricsText out;
  out.family("clustervisor_cluster_restarts_total", "counter", "Restarts of each cluster.");
  out.sample({{"cluster", "0"}}, std::uint64_t{3});
  out.sample({{"cluster", "1"}}, std::uint64_t{0});
  out.family("clustervisor_supervisor_open_fds", "gauge", "Open file descriptors.");
  out.sample(std::uint64_t{12});
  BOOST_TEST(out.text() ==
             "# HELP clustervisor_cluster_restarts_total Restarts of each cluster.\n"
             "# TYPE clustervisor_cluster_restarts_total counter\n"
             "clustervisor_cluster_restarts_total{cluster=\"0\"} 3\n"
             "clustervisor_cluster_restarts_total{cluster=\"1\"} 0\n"
             "# HELP clustervisor_supervisor_open_fds Open file descriptors.\n"
             "# TYPE clustervisor_supervisor_open_fds gauge\n"
             "clustervisor_supervisor_open_fds 12\n");
}

BOOST_AUTO_TEST_CASE(escapes_label_values_and_help_text) {
  MetricsText out;
  out.family("m", "gauge", "a \\ b\nc");
  out.sample({{"name", "say \"hi\"\\\n"}, {"x", ""}}, std::uint64_t{1});
  BOOST_TEST(out.text() ==
             "# HELP m a \\\\ b\\nc\n# TYPE m gauge\nm{name=\"say \\\"hi\\\"\\\\\\n\",x=\"\"} 1\n");
}

BOOST_AUTO_TEST_CASE(writes_doubles_exactly_and_special_values_by_name) {
  MetricsText out;
  out.family("m", "gauge", "h");
  out.sample(0.5);
  out.sample(2.3);
  out.sample(std::numeric_limits<double>::infinity());
  out.sample(std::nan(""));
  BOOST_TEST(out.text() == "# HELP m h\n# TYPE m gauge\nm 0.5\nm 2.3\nm +Inf\nm NaN\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(metrics_request_host)

using clustervisor::RequestHost;
using clustervisor::requestHost;

RequestHost withHost(const std::string& host) {
  return requestHost("GET /metrics HTTP/1.1\r\nAccept: */*\r\nHost: " + host + "\r\n\r\n",
                     "/metrics");
}

BOOST_AUTO_TEST_CASE(loopback_addresses_and_localhost_names_are_answered) {
  for (const char* host : {"127.0.0.1:9464", "127.0.0.1", "127.1.2.3:80", "[::1]:9464", "[::1]",
                           "localhost:9464", "LocalHost", "localhost.", "grafana.localhost:9464",
                           "[::ffff:127.0.0.1]:9464", "  127.0.0.1:9464\t"}) {
    BOOST_TEST((withHost(host) == RequestHost::kLoopback), host);
  }
}

BOOST_AUTO_TEST_CASE(a_name_a_browser_resolved_is_refused_whatever_it_points_at) {
  for (const char* host :
       {"evil.example:9464", "evil.example", "127.0.0.1.evil.example", "localhost.evil.example",
        "xlocalhost", ".localhost", "10.0.0.5:9464", "[::2]:9464", "[::1", "0.0.0.0:9464",
        "localhost:evil.example", "127.0.0.1:1 evil.example", "[::1].evil.example", "[::1]x",
        "evil@127.0.0.1"}) {
    BOOST_TEST((withHost(host) == RequestHost::kForeign), host);
  }
}

BOOST_AUTO_TEST_CASE(an_absolute_target_names_the_host_instead_of_the_header) {
  BOOST_TEST((requestHost("GET http://evil.example:9464/metrics HTTP/1.1\r\nHost: "
                          "127.0.0.1:9464\r\n\r\n",
                          "http://evil.example:9464/metrics") == RequestHost::kForeign));
  BOOST_TEST((requestHost("GET http://127.0.0.1:9464/metrics?x HTTP/1.1\r\nHost: "
                          "evil.example\r\n\r\n",
                          "http://127.0.0.1:9464/metrics?x") == RequestHost::kLoopback));
  BOOST_TEST((requestHost("GET http://127.0.0.1:9464 HTTP/1.1\r\n\r\n", "http://127.0.0.1:9464") ==
              RequestHost::kLoopback));
}

BOOST_AUTO_TEST_CASE(without_a_host_header_a_request_is_answered_and_a_bad_or_second_one_refused) {
  BOOST_TEST((requestHost("GET /metrics HTTP/1.0\n\n", "/metrics") == RequestHost::kLoopback));
  BOOST_TEST((requestHost("GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nHOST: 127.0.0.1\r\n\r\n",
                          "/metrics") == RequestHost::kMalformed));
  BOOST_TEST((requestHost("GET /metrics HTTP/1.1\r\nHost : evil.example\r\n\r\n", "/metrics") ==
              RequestHost::kMalformed));
  BOOST_TEST((requestHost("GET /metrics HTTP/1.1\r\nX-A: b\r\n  Host: evil\r\n\r\n", "/metrics") ==
              RequestHost::kMalformed));
  // A header whose name only ends in "host" is another header.
  BOOST_TEST((requestHost("GET /metrics HTTP/1.1\r\nX-Forwarded-Host: evil.example\r\nHost: "
                          "localhost\r\n\r\n",
                          "/metrics") == RequestHost::kLoopback));
}

BOOST_AUTO_TEST_SUITE_END()
