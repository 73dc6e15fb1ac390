// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "io_threads.hpp"

namespace asio = boost::asio;
using clustervisor::detail::IoThreads;
using namespace std::chrono_literals;

namespace {

// Polls `condition` until it holds or `timeout` passes.
bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Joins `threads`; if they have not ended within `timeout`, stops `io`, which ends them unless a
// handler is stuck, so a regression fails the test instead of hanging the test program; a stuck
// handler ends the program. False when it had to stop.
bool joinWithin(IoThreads& threads, asio::io_context& io, std::chrono::milliseconds timeout = 20s) {
  std::atomic<bool> joined{false};
  std::thread joiner([&] {
    threads.join();
    joined = true;
  });
  const bool inTime = waitFor([&] { return joined.load(); }, timeout);
  if (!inTime) {
    io.stop();
    if (!waitFor([&] { return joined.load(); }, 5s)) {
      std::fprintf(stderr, "io_threads_test: the IoThreads did not end, even stopped\n");
      std::abort();
    }
  }
  joiner.join();
  return inTime;
}

// An io_context on IoThreads, with work kept until the fixture ends, and the bus strand over
// the threads' bus executor, as Cluster sets them up.
struct Threads {
  explicit Threads(std::chrono::milliseconds period,
                   std::chrono::microseconds nudgeDelay = IoThreads::kNudgeDelay)
      : io(std::make_shared<asio::io_context>()),
        threads(std::make_shared<IoThreads>(io, period, nudgeDelay)),
        work(io->get_executor()),
        bus(asio::make_strand(threads->busExecutor())) {
    threads->start();
  }
  ~Threads() {
    work.reset();
    BOOST_TEST(joinWithin(*threads, *io));
  }
  // Blocks on the bus until an I/O handler (posted to the io_context from the bus, so it can
  // only run on the other thread) has run; false if none ran within the deadline.
  bool busWaitsForIo(const std::function<void()>& beforeWaiting = {}) {
    struct State {
      std::atomic<bool> ioRan{false};
      std::atomic<int> result{0};
    };
    auto state = std::make_shared<State>();  // outlives a failed test's handlers
    asio::post(bus, [state, io = io, beforeWaiting] {
      asio::post(*io, [state] { state->ioRan = true; });
      if (beforeWaiting) {
        beforeWaiting();
      }
      state->result = waitFor([&] { return state->ioRan.load(); }) ? 1 : 2;
    });
    BOOST_TEST_REQUIRE(waitFor([&] { return state->result.load() != 0; }, 40s));
    return state->result.load() == 1;
  }

  std::shared_ptr<asio::io_context> io;
  std::shared_ptr<IoThreads> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  asio::strand<asio::any_io_executor> bus;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(io_threads)

BOOST_AUTO_TEST_CASE(a_bus_handler_that_blocks_has_the_io_context_taken_over_by_the_other_thread) {
  Threads t(20ms);
  BOOST_TEST(t.busWaitsForIo());
  BOOST_TEST(t.threads->takeovers() == 1U);
}

BOOST_AUTO_TEST_CASE(
    an_idle_standby_dozes_and_a_bus_handler_that_blocks_later_is_still_taken_over) {
  Threads t(5ms);
  // Once the standby has looked and found nothing to watch, forty periods without a bus run:
  // it dozes rather than looking every period. A slow machine only makes it look less.
  BOOST_TEST_REQUIRE(waitFor([&] { return t.threads->looks() >= 1; }));
  const auto before = t.threads->looks();
  std::this_thread::sleep_for(200ms);
  BOOST_TEST(t.threads->looks() - before <= 2U);
  // The next bus run wakes it, and one that blocks is taken over as before.
  BOOST_TEST(t.busWaitsForIo());
  BOOST_TEST(t.threads->takeovers() == 1U);
}

BOOST_AUTO_TEST_CASE(an_urgent_nudge_hands_the_io_context_over_at_once) {
  // Neither the periodic look nor a delayed nudge comes in time.
  Threads t(std::chrono::hours(1), std::chrono::hours(1));
  BOOST_TEST(t.busWaitsForIo([&] { t.threads->nudge(true); }));
  BOOST_TEST(t.threads->takeovers() == 1U);
}

BOOST_AUTO_TEST_CASE(a_nudge_hands_the_io_context_over_once_the_bus_handler_has_held_it_a_while) {
  constexpr auto kDelay = 200ms;
  Threads t(std::chrono::hours(1), kDelay);
  std::chrono::steady_clock::time_point nudged;
  BOOST_TEST(t.busWaitsForIo([&] {
    nudged = std::chrono::steady_clock::now();
    t.threads->nudge(false);
  }));
  BOOST_TEST((std::chrono::steady_clock::now() - nudged >= kDelay));
  BOOST_TEST(t.threads->takeovers() == 1U);
}

BOOST_AUTO_TEST_CASE(a_dispatch_to_the_bus_runs_at_once_inside_it_and_is_posted_from_elsewhere) {
  std::atomic<int> inside{-1};  // 1: the bus dispatch ran inside the caller
  std::atomic<int> fromIo{-1};  // 1: the dispatch from an I/O handler ran inside that handler
  Threads t(std::chrono::hours(1));
  asio::post(t.bus, [&] {
    auto ran = std::make_shared<std::atomic<bool>>(false);
    asio::dispatch(t.bus, [ran] { *ran = true; });
    inside = *ran ? 1 : 0;
  });
  asio::post(*t.io, [&] {
    auto ran = std::make_shared<std::atomic<bool>>(false);
    asio::dispatch(t.bus, [ran] { *ran = true; });
    fromIo = *ran ? 1 : 0;
  });
  BOOST_TEST_REQUIRE(waitFor([&] { return inside.load() >= 0 && fromIo.load() >= 0; }));
  BOOST_TEST(inside.load() == 1);
  BOOST_TEST(fromIo.load() == 0);
}

// What ran, in order, from whichever thread.
struct Record {
  std::mutex mutex;
  std::vector<int> steps;
  void operator()(int step) {
    std::lock_guard lock(mutex);
    steps.push_back(step);
  }
  std::vector<int> get() {
    std::lock_guard lock(mutex);
    return steps;
  }
};

BOOST_AUTO_TEST_CASE(a_bus_run_started_in_a_bus_run_at_end_scope_runs_when_the_scope_ends) {
  Record record;
  Threads t(std::chrono::hours(1));
  asio::post(*t.io, [&] {
    IoThreads::BusRunAtEnd scope(t.threads.get());
    asio::post(t.bus, [&] { record(2); });
    asio::post(*t.io, [&] { record(4); });  // queued before the scope ends, runs after it
    record(1);
    scope.end();
    record(3);  // the bus run is over: it ran inside end(), on this thread
  });
  BOOST_TEST_REQUIRE(waitFor([&] { return record.get().size() == 4; }));
  BOOST_TEST(record.get() == (std::vector<int>{1, 2, 3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(
    two_bus_runs_started_in_a_bus_run_at_end_scope_both_go_through_the_io_context) {
  Record record;
  Threads t(std::chrono::hours(1));
  auto other = asio::make_strand(t.threads->busExecutor());
  asio::post(*t.io, [&] {
    IoThreads::BusRunAtEnd scope(t.threads.get());
    asio::post(t.bus, [&] { record(3); });
    asio::post(other, [&] { record(4); });
    record(1);
    scope.end();
    record(2);
  });
  BOOST_TEST_REQUIRE(waitFor([&] { return record.get().size() == 4; }));
  BOOST_TEST(record.get() == (std::vector<int>{1, 2, 3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_bus_run_at_end_scope_left_by_an_exception_posts_the_run_it_kept) {
  Record record;
  Threads t(std::chrono::hours(1));
  asio::post(*t.io, [&] {
    try {
      const IoThreads::BusRunAtEnd scope(t.threads.get());
      asio::post(t.bus, [&] { record(3); });
      record(1);
      throw std::runtime_error("the handler fails");
    } catch (const std::runtime_error&) {
      record(2);
    }
  });
  BOOST_TEST_REQUIRE(waitFor([&] { return record.get().size() == 3; }));
  BOOST_TEST(record.get() == (std::vector<int>{1, 2, 3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_bus_run_at_the_end_of_an_io_handler_that_blocks_is_taken_over) {
  struct State {
    Record record;
    std::atomic<bool> ioRan{false};
    std::atomic<int> result{0};  // 1: the I/O handler ran while the bus run waited; 2: it did not
  };
  auto state = std::make_shared<State>();  // outlives a failed test's handlers
  Threads t(20ms);
  asio::post(*t.io, [&t, state] {
    IoThreads::BusRunAtEnd scope(t.threads.get());
    asio::post(t.bus, [&t, state] {
      state->record(1);
      asio::post(*t.io, [state] { state->ioRan = true; });
      state->result = waitFor([&] { return state->ioRan.load(); }) ? 1 : 2;
    });
    scope.end();
    state->record(2);  // after the bus run: it was kept for end(), not posted
  });
  BOOST_TEST_REQUIRE(waitFor([&] { return state->record.get().size() == 2; }, 40s));
  BOOST_TEST(state->result.load() == 1);
  BOOST_TEST(state->record.get() == (std::vector<int>{1, 2}), boost::test_tools::per_element());
  BOOST_TEST(t.threads->takeovers() == 1U);
}

BOOST_AUTO_TEST_CASE(the_io_contexts_own_handlers_never_run_on_two_threads_at_once) {
  // A chain of I/O handlers that notice any overlap, while bus handlers block over and over
  // (each one taken over: the threads swap roles every time).
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<bool> stop{false};
  std::atomic<long> ioRuns{0};
  std::function<void()> io;
  Threads t(2ms);  // ends (joins) before what its handlers use
  io = [&] {
    if (inside.fetch_add(1) != 0) {
      ++overlaps;
    }
    std::this_thread::yield();
    ++ioRuns;
    inside.fetch_sub(1);
    if (!stop) {
      asio::post(*t.io, io);
    }
  };
  for (int i = 0; i < 4; ++i) {
    asio::post(*t.io, io);
  }
  for (int round = 0; round < 20; ++round) {
    BOOST_TEST_REQUIRE(t.busWaitsForIo());
  }
  stop = true;
  BOOST_TEST(overlaps.load() == 0);
  BOOST_TEST(ioRuns.load() > 0);
  BOOST_TEST(t.threads->takeovers() >= 20U);
}

BOOST_AUTO_TEST_CASE(an_io_context_built_for_one_thread_is_refused) {
  // Its handlers' posts would wait on their own thread, out of the standby's reach.
  BOOST_CHECK_THROW(IoThreads(std::make_shared<asio::io_context>(1), 10ms), std::invalid_argument);
  BOOST_CHECK_NO_THROW(IoThreads(std::make_shared<asio::io_context>(), 10ms));
}

BOOST_AUTO_TEST_CASE(both_threads_end_when_the_io_context_runs_out_of_work) {
  auto io = std::make_shared<asio::io_context>();
  IoThreads threads(io, 10ms);
  std::atomic<int> ran{0};
  auto bus = asio::make_strand(threads.busExecutor());
  for (int i = 0; i < 10; ++i) {
    asio::post(bus, [&] { ++ran; });
  }
  threads.start();
  BOOST_TEST(joinWithin(threads, *io));  // nothing is left to run
  BOOST_TEST(ran.load() == 10);
}

BOOST_AUTO_TEST_SUITE_END()
