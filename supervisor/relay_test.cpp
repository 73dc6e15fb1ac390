// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include "clustervisor/wire/frame.hpp"
#include "relay.hpp"

using clustervisor::Relay;
namespace wire = clustervisor::wire;

namespace {
std::vector<std::uint32_t> recipients(const Relay::Decision& d) {
  return {d.recipients.begin(), d.recipients.end()};
}
}  // namespace

BOOST_AUTO_TEST_SUITE(relay)

BOOST_AUTO_TEST_CASE(broadcast_skips_sender) {
  Relay relay(4);
  for (std::uint32_t id = 0; id < 4; ++id) {
    relay.connected(id);
  }
  const auto d = relay.route(2, wire::kBroadcast);
  BOOST_TEST((d.route == Relay::Route::kDeliver));
  BOOST_TEST(recipients(d) == (std::vector<std::uint32_t>{0, 1, 3}));
}

BOOST_AUTO_TEST_CASE(broadcast_reaches_only_connected_clusters) {
  Relay relay(4);
  relay.connected(3);
  relay.connected(0);
  relay.connected(1);
  relay.disconnected(1);
  BOOST_TEST(recipients(relay.route(0, wire::kBroadcast)) == (std::vector<std::uint32_t>{3}));
  BOOST_TEST(relay.connectedCount() == 2u);
}

BOOST_AUTO_TEST_CASE(shrinking_forgets_removed_clusters_and_keeps_the_rest) {
  Relay relay(6);
  for (std::uint32_t id = 0; id < 6; ++id) {
    relay.connected(id);
  }
  relay.resize(3);
  BOOST_TEST(relay.clusters() == 3u);
  BOOST_TEST(relay.connectedCount() == 3u);
  BOOST_TEST(recipients(relay.route(0, wire::kBroadcast)) == (std::vector<std::uint32_t>{1, 2}));
  BOOST_TEST((relay.route(0, 4).route == Relay::Route::kUnknownTarget));
  // A removed cluster still running while it stops: its broadcast reaches those that remain.
  BOOST_TEST(recipients(relay.route(5, wire::kBroadcast)) == (std::vector<std::uint32_t>{0, 1, 2}));
  relay.disconnected(5);  // its disconnect later is harmless
  BOOST_TEST(relay.connectedCount() == 3u);
}

BOOST_AUTO_TEST_CASE(growing_adds_clusters_that_are_not_connected_yet) {
  Relay relay(2);
  relay.connected(0);
  relay.connected(1);
  relay.resize(4);
  BOOST_TEST(relay.clusters() == 4u);
  BOOST_TEST(relay.connectedCount() == 2u);
  BOOST_TEST((relay.route(0, 3).route == Relay::Route::kHold));
  relay.connected(3);
  BOOST_TEST(recipients(relay.route(0, wire::kBroadcast)) == (std::vector<std::uint32_t>{1, 3}));
}

BOOST_AUTO_TEST_CASE(emit_to_self_is_delivered) {
  Relay relay(2);
  relay.connected(1);
  const auto d = relay.route(1, 1);
  BOOST_TEST((d.route == Relay::Route::kDeliver));
  BOOST_TEST(recipients(d) == (std::vector<std::uint32_t>{1}));
}

BOOST_AUTO_TEST_CASE(emit_to_disconnected_cluster_is_held) {
  Relay relay(3);
  relay.connected(0);
  BOOST_TEST((relay.route(0, 2).route == Relay::Route::kHold));
}

BOOST_AUTO_TEST_CASE(emit_to_missing_cluster_is_refused) {
  Relay relay(3);
  relay.connected(0);
  BOOST_TEST((relay.route(0, 3).route == Relay::Route::kUnknownTarget));
  BOOST_TEST((relay.route(0, wire::kSupervisor).route == Relay::Route::kUnknownTarget));
}

BOOST_AUTO_TEST_CASE(repeated_connect_and_disconnect_are_idempotent) {
  Relay relay(2);
  relay.connected(1);
  relay.connected(1);
  BOOST_TEST(relay.connectedCount() == 1u);
  relay.disconnected(1);
  relay.disconnected(1);
  BOOST_TEST(relay.connectedCount() == 0u);
  BOOST_TEST(relay.route(0, wire::kBroadcast).recipients.empty());
}

BOOST_AUTO_TEST_SUITE_END()
