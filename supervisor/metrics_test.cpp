// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>

#include "metrics.hpp"

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
