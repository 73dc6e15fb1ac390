// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "spawn_queue.hpp"

using clustervisor::SpawnQueue;
using namespace std::chrono_literals;

namespace {

const SpawnQueue::Clock::time_point kQueueStart{};

// Starts whatever the queue names at `now`, until it names nothing; returns the started ids.
std::vector<std::uint32_t> startAll(SpawnQueue& queue, SpawnQueue::Clock::time_point now) {
  std::vector<std::uint32_t> order;
  for (auto poll = queue.poll(now); poll.start; poll = queue.poll(now)) {
    order.push_back(*poll.start);
    queue.started(*poll.start, now);
  }
  return order;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(spawn_queue)

BOOST_AUTO_TEST_CASE(starts_clusters_in_the_order_they_were_queued) {
  SpawnQueue queue(0ms, false);
  for (std::uint32_t cluster : {2u, 0u, 3u, 1u}) {
    queue.push(cluster);
  }
  BOOST_TEST(queue.size() == 4u);
  const std::vector<std::uint32_t> expected = {2, 0, 3, 1};
  BOOST_TEST(startAll(queue, kQueueStart) == expected, boost::test_tools::per_element());
  BOOST_TEST(queue.size() == 0u);
  const auto idle = queue.poll(kQueueStart);
  BOOST_TEST(!idle.start);
  BOOST_TEST(!idle.wakeAt);
}

BOOST_AUTO_TEST_CASE(a_cluster_queued_twice_keeps_its_first_place) {
  SpawnQueue queue(0ms, false);
  queue.push(1);
  queue.push(2);
  queue.push(1);
  BOOST_TEST(queue.size() == 2u);
  BOOST_TEST(queue.contains(1));
  BOOST_TEST(queue.contains(2));
  BOOST_TEST(!queue.contains(3));
  const std::vector<std::uint32_t> expected = {1, 2};
  BOOST_TEST(startAll(queue, kQueueStart) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(waits_the_start_delay_between_starts) {
  SpawnQueue queue(5s, false);
  queue.push(0);
  queue.push(1);
  auto poll = queue.poll(kQueueStart);
  BOOST_REQUIRE(poll.start);
  BOOST_TEST(*poll.start == 0u);  // the first start is not delayed
  queue.started(0, kQueueStart);

  poll = queue.poll(kQueueStart + 1s);
  BOOST_TEST(!poll.start);
  BOOST_REQUIRE(poll.wakeAt);
  BOOST_TEST((*poll.wakeAt == kQueueStart + 5s));

  poll = queue.poll(kQueueStart + 4999ms);
  BOOST_TEST(!poll.start);

  poll = queue.poll(kQueueStart + 5s);
  BOOST_REQUIRE(poll.start);
  BOOST_TEST(*poll.start == 1u);
  BOOST_TEST(!poll.wakeAt);
}

BOOST_AUTO_TEST_CASE(start_delay_counts_from_the_last_start_across_an_empty_queue) {
  SpawnQueue queue(5s, false);
  queue.push(0);
  queue.started(0, kQueueStart);
  BOOST_TEST(!queue.poll(kQueueStart + 1s).wakeAt);  // nothing to start
  queue.push(1);
  const auto poll = queue.poll(kQueueStart + 2s);
  BOOST_TEST(!poll.start);
  BOOST_REQUIRE(poll.wakeAt);
  BOOST_TEST((*poll.wakeAt == kQueueStart + 5s));
}

BOOST_AUTO_TEST_CASE(without_wait_for_ready_the_next_starts_before_the_previous_is_ready) {
  SpawnQueue queue(0ms, false);
  queue.push(0);
  queue.push(1);
  queue.started(0, kQueueStart);
  BOOST_TEST(!queue.waitingFor());
  const auto poll = queue.poll(kQueueStart);
  BOOST_REQUIRE(poll.start);
  BOOST_TEST(*poll.start == 1u);
}

BOOST_AUTO_TEST_CASE(wait_for_ready_holds_the_queue_until_the_started_cluster_settles) {
  SpawnQueue queue(0ms, true);
  queue.push(0);
  queue.push(1);
  queue.started(0, kQueueStart);
  BOOST_REQUIRE(queue.waitingFor());
  BOOST_TEST(*queue.waitingFor() == 0u);
  auto poll = queue.poll(kQueueStart + 1h);
  BOOST_TEST(!poll.start);
  BOOST_TEST(!poll.wakeAt);  // nothing to wait for but the event

  queue.settled(0);
  BOOST_TEST(!queue.waitingFor());
  poll = queue.poll(kQueueStart + 1h);
  BOOST_REQUIRE(poll.start);
  BOOST_TEST(*poll.start == 1u);
}

BOOST_AUTO_TEST_CASE(wait_for_ready_still_keeps_the_start_delay) {
  SpawnQueue queue(5s, true);
  queue.push(0);
  queue.push(1);
  queue.started(0, kQueueStart);
  queue.settled(0);
  const auto poll = queue.poll(kQueueStart + 1s);
  BOOST_TEST(!poll.start);
  BOOST_REQUIRE(poll.wakeAt);
  BOOST_TEST((*poll.wakeAt == kQueueStart + 5s));
}

BOOST_AUTO_TEST_CASE(settled_for_a_cluster_that_is_not_pending_is_ignored) {
  SpawnQueue queue(0ms, true);
  queue.push(0);
  queue.push(1);
  queue.push(2);
  queue.started(0, kQueueStart);
  queue.settled(1);  // still queued
  queue.settled(7);  // unknown
  BOOST_REQUIRE(queue.waitingFor());
  BOOST_TEST(*queue.waitingFor() == 0u);
  BOOST_TEST(!queue.poll(kQueueStart).start);
  BOOST_TEST(queue.contains(1));
  BOOST_TEST(queue.size() == 2u);
}

BOOST_AUTO_TEST_CASE(removing_the_pending_cluster_releases_the_queue) {
  SpawnQueue queue(0ms, true);
  queue.push(0);
  queue.push(1);
  queue.started(0, kQueueStart);
  queue.remove(0);
  BOOST_TEST(!queue.waitingFor());
  const auto poll = queue.poll(kQueueStart);
  BOOST_REQUIRE(poll.start);
  BOOST_TEST(*poll.start == 1u);
}

BOOST_AUTO_TEST_CASE(removing_a_queued_cluster_takes_it_out_of_the_order) {
  SpawnQueue queue(0ms, false);
  queue.push(0);
  queue.push(1);
  queue.push(2);
  queue.remove(1);
  queue.remove(9);  // not queued: nothing happens
  BOOST_TEST(!queue.contains(1));
  const std::vector<std::uint32_t> expected = {0, 2};
  BOOST_TEST(startAll(queue, kQueueStart) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(spawn_failure_reported_as_started_then_settled_moves_on) {
  SpawnQueue queue(0ms, true);
  queue.push(0);
  queue.push(1);
  const auto first = queue.poll(kQueueStart);
  BOOST_REQUIRE(first.start);
  queue.started(*first.start, kQueueStart);  // the spawn failed
  queue.settled(*first.start);
  BOOST_TEST(!queue.contains(0));
  const auto next = queue.poll(kQueueStart);
  BOOST_REQUIRE(next.start);
  BOOST_TEST(*next.start == 1u);
}

BOOST_AUTO_TEST_CASE(a_started_cluster_queued_again_goes_to_the_back) {
  SpawnQueue queue(0ms, false);
  queue.push(0);
  queue.push(1);
  queue.started(0, kQueueStart);
  queue.push(0);  // it exited and backed off before 1 was started
  const std::vector<std::uint32_t> expected = {1, 0};
  BOOST_TEST(startAll(queue, kQueueStart) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(set_pace_changes_the_delay_for_the_next_start) {
  SpawnQueue queue(5s, false);
  queue.push(0);
  queue.push(1);
  queue.push(2);
  queue.started(0, kQueueStart);
  queue.setPace(10s, false);
  auto poll = queue.poll(kQueueStart + 6s);
  BOOST_TEST(!poll.start);
  BOOST_REQUIRE(poll.wakeAt);
  BOOST_TEST((*poll.wakeAt == kQueueStart + 10s));
  queue.setPace(0ms, false);
  poll = queue.poll(kQueueStart + 6s);
  BOOST_REQUIRE(poll.start);
  BOOST_TEST(*poll.start == 1u);
}

BOOST_AUTO_TEST_CASE(set_pace_without_wait_for_ready_releases_a_pending_cluster) {
  SpawnQueue queue(0ms, true);
  queue.push(0);
  queue.push(1);
  queue.started(0, kQueueStart);
  BOOST_TEST(!queue.poll(kQueueStart).start);
  queue.setPace(0ms, false);
  BOOST_TEST(!queue.waitingFor());
  const auto poll = queue.poll(kQueueStart);
  BOOST_REQUIRE(poll.start);
  BOOST_TEST(*poll.start == 1u);
}

BOOST_AUTO_TEST_CASE(set_pace_with_wait_for_ready_holds_later_starts) {
  SpawnQueue queue(0ms, false);
  queue.push(0);
  queue.push(1);
  queue.setPace(0ms, true);
  queue.started(0, kQueueStart);
  BOOST_REQUIRE(queue.waitingFor());
  BOOST_TEST(*queue.waitingFor() == 0u);
  BOOST_TEST(!queue.poll(kQueueStart).start);
}

BOOST_AUTO_TEST_CASE(the_delay_counts_from_when_the_previous_process_exists) {
  SpawnQueue queue(300ms, false);
  queue.push(0);
  queue.push(1);
  queue.started(0, kQueueStart);
  queue.spawned(kQueueStart + 40ms);  // a slow spawn
  BOOST_TEST(!queue.poll(kQueueStart + 300ms).start);
  const auto poll = queue.poll(kQueueStart + 300ms);
  BOOST_REQUIRE(poll.wakeAt);
  BOOST_TEST((*poll.wakeAt == kQueueStart + 340ms));
  BOOST_TEST((queue.poll(kQueueStart + 340ms).start == std::optional<std::uint32_t>(1)));
}

BOOST_AUTO_TEST_SUITE_END()
