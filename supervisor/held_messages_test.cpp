// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include "held_messages.hpp"

using clustervisor::HeldMessages;
using namespace std::chrono_literals;

namespace {
std::vector<std::byte> frame(std::size_t size, int tag) {
  return std::vector<std::byte>(size, static_cast<std::byte>(tag));
}
const HeldMessages::Clock::time_point kHeldSince{};
}  // namespace

BOOST_AUTO_TEST_SUITE(held_messages)

BOOST_AUTO_TEST_CASE(delivers_held_messages_in_order_once) {
  HeldMessages held(2, {10, 1000, 60s});
  BOOST_TEST(held.hold(1, frame(10, 1), kHeldSince));
  BOOST_TEST(held.hold(1, frame(10, 2), kHeldSince + 1s));
  const auto out = held.take(1, kHeldSince + 2s);
  BOOST_REQUIRE(out.size() == 2u);
  BOOST_TEST(static_cast<int>(out[0][0]) == 1);
  BOOST_TEST(static_cast<int>(out[1][0]) == 2);
  BOOST_TEST(held.take(1, kHeldSince + 3s).empty());
  BOOST_TEST(held.heldBytes(1) == 0u);
}

BOOST_AUTO_TEST_CASE(shrinking_drops_and_counts_the_messages_of_removed_clusters) {
  HeldMessages held(3, {10, 1000, 60s});
  BOOST_TEST(held.hold(0, frame(1, 1), kHeldSince));
  BOOST_TEST(held.hold(2, frame(1, 2), kHeldSince));
  BOOST_TEST(held.hold(2, frame(1, 3), kHeldSince));
  BOOST_TEST(held.resize(2) == 2u);
  BOOST_TEST(held.droppedFull() == 0u);  // not refused for a limit: the caller counts them
  BOOST_TEST(held.heldMessages(0) == 1u);
  held.resize(3);  // the cluster comes back with nothing held
  BOOST_TEST(held.heldMessages(2) == 0u);
  BOOST_TEST(held.hold(2, frame(1, 4), kHeldSince));
}

BOOST_AUTO_TEST_CASE(new_limits_apply_to_later_messages) {
  HeldMessages held(1, {1, 1000, 60s});
  BOOST_TEST(held.hold(0, frame(1, 1), kHeldSince));
  BOOST_TEST(!held.hold(0, frame(1, 2), kHeldSince));
  held.setLimits({3, 1000, 60s});
  BOOST_TEST(held.hold(0, frame(1, 3), kHeldSince));
  BOOST_TEST(held.heldMessages(0) == 2u);
}

BOOST_AUTO_TEST_CASE(counts_messages_over_the_count_limit) {
  HeldMessages held(1, {2, 1000, 60s});
  BOOST_TEST(held.hold(0, frame(1, 1), kHeldSince));
  BOOST_TEST(held.hold(0, frame(1, 2), kHeldSince));
  BOOST_TEST(!held.hold(0, frame(1, 3), kHeldSince));
  BOOST_TEST(held.droppedFull() == 1u);
  BOOST_TEST(held.heldMessages(0) == 2u);
}

BOOST_AUTO_TEST_CASE(counts_messages_over_the_byte_limit) {
  HeldMessages held(1, {100, 25, 60s});
  BOOST_TEST(held.hold(0, frame(20, 1), kHeldSince));
  BOOST_TEST(!held.hold(0, frame(6, 2), kHeldSince));
  BOOST_TEST(held.hold(0, frame(5, 3), kHeldSince));
  BOOST_TEST(held.droppedFull() == 1u);
  BOOST_TEST(held.heldBytes(0) == 25u);
}

BOOST_AUTO_TEST_CASE(drops_messages_older_than_the_age_limit) {
  HeldMessages held(1, {100, 1000, 10s});
  held.hold(0, frame(1, 1), kHeldSince);
  held.hold(0, frame(1, 2), kHeldSince + 5s);
  const auto out = held.take(0, kHeldSince + 12s);
  BOOST_REQUIRE(out.size() == 1u);
  BOOST_TEST(static_cast<int>(out[0][0]) == 2);
  BOOST_TEST(held.droppedExpired() == 1u);
  held.hold(0, frame(1, 3), kHeldSince + 20s);
  BOOST_TEST(held.expire(0, kHeldSince + 29s) == 0u);
  BOOST_TEST(held.expire(0, kHeldSince + 31s) == 1u);
  BOOST_TEST(held.heldMessages(0) == 0u);
  BOOST_TEST(held.droppedExpired() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
