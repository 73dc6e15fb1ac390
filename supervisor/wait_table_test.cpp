// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include "wait_table.hpp"

using clustervisor::WaitTable;

namespace {
const std::vector<std::uint32_t> kOthers = {1, 2, 3};
const WaitTable::Clock::time_point kOpenedAt{};
constexpr std::uint64_t kOwner = 4242;  // the worker that made the wait (its pid)
}  // namespace

BOOST_AUTO_TEST_SUITE(wait_table)

BOOST_AUTO_TEST_CASE(forwards_each_recipients_first_ack_and_closes_after_the_last) {
  WaitTable table;
  BOOST_TEST((table.open(0, 7, kOthers, kOpenedAt, kOwner) == WaitTable::OpenResult::kOpened));
  auto a = table.ack(0, 7, 2);
  BOOST_TEST(a.forward);
  BOOST_TEST(!a.closed);
  a = table.ack(0, 7, 2);  // duplicate
  BOOST_TEST(!a.forward);
  a = table.ack(0, 7, 1);
  BOOST_TEST(a.forward);
  a = table.ack(0, 7, 3);
  BOOST_TEST(a.forward);
  BOOST_TEST(a.closed);
  BOOST_TEST(a.body.recipients == 3u);
  BOOST_TEST(a.body.acked == 3u);
  BOOST_TEST(table.openWaits() == 0u);
  BOOST_TEST(table.ignoredAcks() == 1u);
}

BOOST_AUTO_TEST_CASE(ignores_acks_from_clusters_that_were_not_sent_the_event) {
  WaitTable table;
  table.open(0, 1, kOthers, kOpenedAt, kOwner);
  BOOST_TEST(!table.ack(0, 1, 0).forward);  // the waiter itself
  BOOST_TEST(!table.ack(0, 1, 9).forward);  // a stranger
  BOOST_TEST(!table.ack(0, 2, 1).forward);  // wrong correlation
  BOOST_TEST(!table.ack(5, 1, 1).forward);  // wrong waiter
  BOOST_TEST(table.ignoredAcks() == 4u);
}

BOOST_AUTO_TEST_CASE(closes_early_when_remaining_recipients_die) {
  WaitTable table;
  table.open(0, 1, kOthers, kOpenedAt, kOwner);
  table.ack(0, 1, 1);
  BOOST_TEST(table.recipientGone(2).empty());
  const auto closed = table.recipientGone(3);
  BOOST_REQUIRE(closed.size() == 1u);
  BOOST_TEST(closed[0].waiter == 0u);
  BOOST_TEST(closed[0].correlation == 1u);
  BOOST_TEST(closed[0].body.recipients == 3u);
  BOOST_TEST(closed[0].body.acked == 1u);
  BOOST_TEST(closed[0].owner == kOwner);
  BOOST_TEST(table.openWaits() == 0u);
}

BOOST_AUTO_TEST_CASE(waiter_that_dies_takes_its_waits_along) {
  WaitTable table;
  table.open(0, 1, kOthers, kOpenedAt, kOwner);
  table.open(0, 2, kOthers, kOpenedAt, kOwner);
  table.open(1, 1, std::vector<std::uint32_t>{0, 2}, kOpenedAt, kOwner);
  BOOST_TEST(table.clusterGone(0, kOwner).empty());  // wait (1,1) still has recipient 2 pending
  BOOST_TEST(table.discardedWaits() == 2u);
  BOOST_TEST(table.openWaits() == 1u);
  BOOST_TEST(!table.ack(0, 1, 1).forward);
}

BOOST_AUTO_TEST_CASE(each_worker_of_a_cluster_keeps_its_own_waits) {
  // A rolling restart: cluster 0's replaced worker (pid 100) and its new one (pid 200).
  WaitTable table;
  table.open(0, 1, kOthers, kOpenedAt, 100);
  table.open(0, 2, kOthers, kOpenedAt, 200);
  BOOST_TEST(table.ack(0, 1, 1).owner == 100u);
  BOOST_TEST(table.ack(0, 2, 1).owner == 200u);
  BOOST_TEST(!table.cancel(0, 1, 200));  // not its wait
  // The replaced worker exits: only its waits go; the new one's still count acks.
  BOOST_TEST(table.ownerGone(0, 100) == 1u);
  BOOST_TEST(table.discardedWaits() == 1u);
  BOOST_TEST(!table.ack(0, 1, 2).forward);
  BOOST_TEST(table.ack(0, 2, 2).forward);
  const auto closed = table.recipientGone(3);
  BOOST_REQUIRE(closed.size() == 1u);
  BOOST_TEST(closed[0].correlation == 2u);
  BOOST_TEST(closed[0].owner == 200u);
  BOOST_TEST(closed[0].body.acked == 2u);
  BOOST_TEST(table.openWaits() == 0u);
  BOOST_TEST(table.ownerGone(0, 200) == 0u);
}

BOOST_AUTO_TEST_CASE(empty_recipient_list_closes_at_once) {
  WaitTable table;
  BOOST_TEST((table.open(0, 1, {}, kOpenedAt, kOwner) == WaitTable::OpenResult::kClosedEmpty));
  BOOST_TEST(table.openWaits() == 0u);
}

BOOST_AUTO_TEST_CASE(rejects_reused_correlation_and_waits_over_the_bound) {
  WaitTable table(2);
  BOOST_TEST((table.open(0, 1, kOthers, kOpenedAt, kOwner) == WaitTable::OpenResult::kOpened));
  BOOST_TEST((table.open(0, 1, kOthers, kOpenedAt, kOwner) == WaitTable::OpenResult::kRejected));
  BOOST_TEST((table.open(0, 2, kOthers, kOpenedAt, kOwner) == WaitTable::OpenResult::kOpened));
  BOOST_TEST((table.open(0, 3, kOthers, kOpenedAt, kOwner) == WaitTable::OpenResult::kRejected));
  BOOST_TEST((table.open(1, 3, kOthers, kOpenedAt, kOwner) == WaitTable::OpenResult::kOpened));
  // Closing one frees a place.
  for (std::uint32_t id : kOthers) {
    table.ack(0, 1, id);
  }
  BOOST_TEST((table.open(0, 3, kOthers, kOpenedAt, kOwner) == WaitTable::OpenResult::kOpened));
}

BOOST_AUTO_TEST_CASE(forgets_waits_opened_before_the_cutoff_and_frees_their_places) {
  using namespace std::chrono_literals;
  WaitTable table(1);
  table.open(0, 1, kOthers, kOpenedAt, kOwner);
  table.open(1, 1, kOthers, kOpenedAt + 10s, kOwner);
  BOOST_TEST(table.expire(kOpenedAt + 5s) == 1u);
  BOOST_TEST(table.discardedWaits() == 1u);
  BOOST_TEST(table.openWaits() == 1u);
  BOOST_TEST(!table.ack(0, 1, 2).forward);
  BOOST_TEST(table.ack(1, 1, 2).forward);
  BOOST_TEST(
      (table.open(0, 2, kOthers, kOpenedAt + 10s, kOwner) == WaitTable::OpenResult::kOpened));
}

BOOST_AUTO_TEST_CASE(cancelled_wait_ignores_later_acks_and_frees_its_place) {
  WaitTable table(1);
  table.open(0, 1, kOthers, kOpenedAt, kOwner);
  BOOST_TEST(table.cancel(0, 1, kOwner));
  BOOST_TEST(!table.cancel(0, 1, kOwner));
  BOOST_TEST(!table.ack(0, 1, 2).forward);
  BOOST_TEST(table.recipientGone(3).empty());
  BOOST_TEST((table.open(0, 2, kOthers, kOpenedAt, kOwner) == WaitTable::OpenResult::kOpened));
}

BOOST_AUTO_TEST_SUITE_END()
