// SPDX-License-Identifier: MIT
//
// ParseArena: the memory behind the json::value a listener is given. Parsing an event into the
// default resource costs a heap allocation and a free for the object and for every string that
// does not fit in place (four or more for a typical payload); into the arena it costs a pointer
// bump, and the arena is rewound when the next event is delivered.
//
// Only the parse itself allocates from the arena. Any other allocation through it (a listener
// copying the value, which shares this resource through its storage_ptr, or growing such a copy,
// on any thread) goes to the heap, and so does its free: a value a listener keeps never points
// into memory a later event reuses, and it may be moved to and changed on other threads as freely
// as a value on the default resource. Arena memory is only ever freed by the parsed value itself,
// inside its Delivery, on the thread that parsed it.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include <boost/json/parser.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

namespace clustervisor::detail {

class ParseArena {
 public:
  // Memory kept from one event to the next: as much as the largest event needed, up to this.
  static constexpr std::size_t kFirstBlock = 4096;
  static constexpr std::size_t kMaxKept = 1024 * 1024;

  ParseArena();

  // One event's delivery on this thread: the arena is rewound, parse() fills it, and the value
  // it returns must be destroyed before the Delivery is. A Delivery started inside another on
  // the same thread (a listener that delivers events itself) parses onto the heap instead.
  class Delivery {
   public:
    explicit Delivery(ParseArena& arena);
    ~Delivery();
    Delivery(const Delivery&) = delete;
    Delivery& operator=(const Delivery&) = delete;

    // `text` parsed, or null with `ec` set.
    boost::json::value parse(boost::json::parser& parser, std::string_view text,
                             boost::system::error_code& ec);

   private:
    ParseArena& arena_;
    bool nested_;
  };

  // Whether `p` is arena memory; for tests, on the thread of a Delivery only.
  bool holds(const void* p) const;
  // The memory kept between events.
  std::size_t keptBytes() const;

 private:
  struct Blocks;
  class Resource;
  // Shared with the resource, which values and their copies keep alive through storage_ptr.
  std::shared_ptr<Blocks> blocks_;
  boost::json::storage_ptr storage_;
};

}  // namespace clustervisor::detail
