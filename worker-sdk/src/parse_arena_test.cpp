// SPDX-License-Identifier: MIT
#define BOOST_TEST_MODULE sdk
#include <boost/test/unit_test.hpp>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "parse_arena.hpp"

namespace json = boost::json;
using clustervisor::detail::ParseArena;

namespace {

// Strings too long to be stored in place, so each is an allocation of its own.
const std::string kBan =
    R"({"action":"ban","guild":"533961200438099968","user":"447796768693156649",)"
    R"("reason":"spam, three warnings today"})";
const std::string kKick =
    R"({"action":"kick","guild":"111111111111111111111","user":"222222222222222222222",)"
    R"("reason":"a different and longer reason"})";

json::value parse(ParseArena::Delivery& delivery, json::parser& parser, const std::string& text) {
  boost::system::error_code ec;
  json::value v = delivery.parse(parser, text, ec);
  BOOST_TEST_REQUIRE(!ec, ec.message());
  return v;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(parse_arena)

BOOST_AUTO_TEST_CASE(a_parsed_value_lives_in_the_arena_and_equals_the_text) {
  ParseArena arena;
  json::parser parser;
  ParseArena::Delivery delivery(arena);
  const json::value v = parse(delivery, parser, kBan);
  BOOST_TEST(json::serialize(v) == json::serialize(json::parse(kBan)));
  BOOST_TEST(arena.holds(v.as_object().at("guild").as_string().data()));
  BOOST_TEST(arena.holds(v.as_object().begin()));
}

BOOST_AUTO_TEST_CASE(the_next_delivery_reuses_the_same_memory) {
  ParseArena arena;
  json::parser parser;
  const char* first = nullptr;
  for (int i = 0; i < 100; ++i) {
    ParseArena::Delivery delivery(arena);
    const json::value v = parse(delivery, parser, i % 2 == 0 ? kBan : kKick);
    const char* object = reinterpret_cast<const char*>(v.as_object().begin());
    if (first == nullptr) {
      first = object;
    }
    BOOST_TEST(static_cast<const void*>(object) == static_cast<const void*>(first));
  }
  BOOST_TEST(arena.keptBytes() == ParseArena::kFirstBlock);
}

BOOST_AUTO_TEST_CASE(a_copy_kept_by_a_listener_is_on_the_heap_and_outlives_later_events) {
  ParseArena arena;
  json::parser parser;
  std::vector<json::value> kept;
  for (int i = 0; i < 10; ++i) {
    ParseArena::Delivery delivery(arena);
    const json::value v = parse(delivery, parser, i % 2 == 0 ? kBan : kKick);
    json::value copy = v;  // shares the resource (Boost.JSON copies keep the storage)
    BOOST_TEST(copy.storage().get() == v.storage().get());
    BOOST_TEST(!arena.holds(copy.as_object().at("guild").as_string().data()));
    kept.push_back(std::move(copy));
    // The copy the documentation gives for the default resource.
    const json::value own(v, json::storage_ptr());
    BOOST_TEST(own.storage().get() == json::storage_ptr().get());
    BOOST_TEST(!arena.holds(own.as_object().begin()));
  }
  for (std::size_t i = 0; i < kept.size(); ++i) {
    BOOST_TEST(json::serialize(kept[i]) == json::serialize(json::parse(i % 2 == 0 ? kBan : kKick)));
  }
}

BOOST_AUTO_TEST_CASE(a_copy_may_change_on_another_thread_while_events_are_parsed) {
  ParseArena arena;
  json::parser parser;
  std::optional<json::value> copy;
  {
    ParseArena::Delivery delivery(arena);
    const json::value v = parse(delivery, parser, kBan);
    copy.emplace(v);  // on the arena's resource, like every copy of v
    BOOST_TEST(copy->storage().get() == v.storage().get());
  }
  std::thread other([&copy] {
    auto& object = copy->as_object();
    for (int i = 0; i < 2000; ++i) {
      object["n" + std::to_string(i)] = std::string(40, 'x');
    }
    object.clear();
  });
  for (int i = 0; i < 2000; ++i) {
    ParseArena::Delivery delivery(arena);
    const json::value v = parse(delivery, parser, kKick);
    BOOST_TEST_REQUIRE(v.as_object().at("action").as_string() == "kick");
  }
  other.join();
  BOOST_TEST(copy->as_object().empty());
}

BOOST_AUTO_TEST_CASE(a_copy_outlives_the_arena_itself) {
  std::optional<json::value> copy;
  {
    ParseArena arena;
    json::parser parser;
    ParseArena::Delivery delivery(arena);
    const json::value v = parse(delivery, parser, kBan);
    copy.emplace(v);
  }
  copy->as_object()["more"] = std::string(100, 'y');
  BOOST_TEST(copy->as_object().at("user").as_string() == "447796768693156649");
}

BOOST_AUTO_TEST_CASE(a_big_event_is_parsed_and_the_memory_kept_afterwards_is_bounded) {
  ParseArena arena;
  json::parser parser;
  json::array big;
  for (int i = 0; i < 30000; ++i) {
    big.emplace_back(std::string(60, static_cast<char>('a' + i % 26)));
  }
  const std::string text = json::serialize(big);
  {
    ParseArena::Delivery delivery(arena);
    const json::value v = parse(delivery, parser, text);
    BOOST_TEST(v.as_array().size() == 30000u);
    BOOST_TEST(v.as_array()[29999].as_string() == std::string(60, 'a' + 29999 % 26));
  }
  {
    ParseArena::Delivery delivery(arena);
    const json::value v = parse(delivery, parser, kBan);
    BOOST_TEST(arena.holds(v.as_object().begin()));
  }
  BOOST_TEST(arena.keptBytes() <= ParseArena::kMaxKept);
  BOOST_TEST(arena.keptBytes() > ParseArena::kFirstBlock);
}

BOOST_AUTO_TEST_CASE(a_delivery_inside_another_parses_onto_the_heap) {
  ParseArena arena;
  json::parser outerParser;
  json::parser innerParser;
  ParseArena::Delivery outer(arena);
  const json::value v = parse(outer, outerParser, kBan);
  {
    ParseArena::Delivery inner(arena);
    const json::value w = parse(inner, innerParser, kKick);
    BOOST_TEST(!arena.holds(w.as_object().begin()));
    BOOST_TEST(w.as_object().at("action").as_string() == "kick");
  }
  BOOST_TEST(arena.holds(v.as_object().begin()));
  BOOST_TEST(v.as_object().at("action").as_string() == "ban");
}

BOOST_AUTO_TEST_CASE(invalid_text_is_an_error_and_the_arena_stays_usable) {
  ParseArena arena;
  json::parser parser;
  {
    ParseArena::Delivery delivery(arena);
    boost::system::error_code ec;
    const json::value v =
        delivery.parse(parser, R"({"a":"a string long enough to be allocated", "b": trux})", ec);
    BOOST_TEST(ec.failed());
    BOOST_TEST(v.is_null());
  }
  ParseArena::Delivery delivery(arena);
  const json::value v = parse(delivery, parser, kBan);
  BOOST_TEST(v.as_object().at("reason").as_string() == "spam, three warnings today");
}

BOOST_AUTO_TEST_SUITE_END()
