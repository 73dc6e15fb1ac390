// SPDX-License-Identifier: MIT
//
// What Cluster::fromEnvironment() refuses before it connects to anything.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include <boost/asio/io_context.hpp>

#include "clustervisor/worker.hpp"

BOOST_AUTO_TEST_SUITE(cluster)

BOOST_AUTO_TEST_CASE(from_environment_outside_clustervisor_says_how_to_start_the_worker) {
  ::unsetenv("CLUSTERVISOR_CLUSTER_ID");
  try {
    auto cluster = clustervisor::Cluster::fromEnvironment();
    BOOST_FAIL("fromEnvironment() succeeded outside clustervisor");
  } catch (const clustervisor::Error& e) {
    BOOST_TEST((e.code() == clustervisor::Errc::kNotUnderSupervisor));
    BOOST_TEST(std::string(e.what()) ==
               "CLUSTERVISOR_CLUSTER_ID is not set: this program is a clustervisor worker; start "
               "it with `clustervisor run bot.toml`");
  }
}

BOOST_AUTO_TEST_CASE(an_executor_and_listeners_on_the_io_thread_together_are_refused) {
  boost::asio::io_context io;
  clustervisor::ClusterOptions options;
  options.executor = io.get_executor();
  options.listenersOnIoThread = true;
  BOOST_CHECK_EXCEPTION(clustervisor::Cluster::fromEnvironment(options), std::invalid_argument,
                        [](const std::invalid_argument& e) {
                          return std::string(e.what()).find("set one of them") != std::string::npos;
                        });
}

BOOST_AUTO_TEST_SUITE_END()
