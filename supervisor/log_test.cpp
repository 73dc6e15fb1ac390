// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "log.hpp"

BOOST_AUTO_TEST_SUITE(log_output)

BOOST_AUTO_TEST_CASE(write_all_waits_for_room_on_a_non_blocking_descriptor) {
  int pipefd[2];
  BOOST_REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
  BOOST_REQUIRE(::fcntl(pipefd[1], F_SETFL, O_NONBLOCK) == 0);
  // Four times what the pipe holds, read only after the writer has met a full pipe.
  const std::string text(4 * 65536, 'x');
  std::string got;
  std::thread reader([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    char buffer[8192];
    for (ssize_t n; (n = ::read(pipefd[0], buffer, sizeof buffer)) > 0;) {
      got.append(buffer, static_cast<std::size_t>(n));
    }
  });
  clustervisor::writeAll(pipefd[1], text);
  ::close(pipefd[1]);
  reader.join();
  ::close(pipefd[0]);
  BOOST_TEST(got.size() == text.size());
  BOOST_TEST((got == text));
}

BOOST_AUTO_TEST_SUITE_END()
