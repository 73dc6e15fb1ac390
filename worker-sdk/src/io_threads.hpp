// SPDX-License-Identifier: MIT
//
// detail::IoThreads: the SDK's default threads. Private to the SDK.
//
// One io_context runs both the connection (socket, timers, writes) and the bus strand
// (listeners, completion handlers), so an event reaches its listener on the thread that read it,
// without a hand-over between threads. Two threads take turns running it: one, the owner, runs
// it; the other stands by. A slow or blocked listener must not stop the connection (its
// heartbeats, reads, the writes of other threads' sends), so the standby watches the bus: when
// one run of the bus strand has lasted a whole watch period, or a thread needs the connection
// while the bus holds the owner (see nudge()), the standby takes over the io_context, and the
// thread in the listener stands by once it returns. Only the owner runs the io_context's
// handlers, apart from the bus run the previous owner finishes: the connection's own handlers
// never run on two threads at once, as they would not with one thread. The standby looks at the
// bus once a period only while it is in use; after a period without a bus run it dozes until
// the next one starts (enter() wakes it), so an idle worker's threads do not wake for nothing.
//
// A bus run never starts in the middle of another handler: the bus executor (busExecutor())
// posts, so a listener that blocks holds nothing but the bus strand. The one exception is the end
// of a handler that has nothing left to do (BusRunAtEnd): the read handler, once the next read is
// under way, runs its listeners itself rather than through the event loop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/require.hpp>

namespace clustervisor::detail {

// Called first on every SDK thread: the SDK's threads never take the worker's signals (a SIGTERM
// handler or sigwait() in the worker's own code must see them), apart from those of a fault
// (SIGSEGV and the like), which go to the handler of the thread that faults.
void blockAllSignals();

class IoThreads {
 public:
  static constexpr std::chrono::microseconds kNudgeDelay{1000};
  // `period`: how long one run of the bus strand may hold the owner before the standby takes
  // over the connection (it notices within two periods). `nudgeDelay`: see nudge(). Throws
  // std::invalid_argument for an io_context built for one thread (concurrency hint 1).
  IoThreads(std::shared_ptr<boost::asio::io_context> io, std::chrono::milliseconds period,
            std::chrono::microseconds nudgeDelay = kNudgeDelay);
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;
  ~IoThreads();

  // Starts both threads; they end once the io_context runs out of work (join()).
  void start();
  void join();
  // For a destruction on one of these threads, which cannot join itself: they end on their own
  // once the io_context runs out of work, and this object must outlive them.
  void detach();
  bool runsOnThisThread() const noexcept;

  // The executor for the bus strand: runs each function through the io_context (or at the end of
  // a BusRunAtEnd scope), never inside the call that hands it over, and tells this watch when one
  // starts and ends.
  boost::asio::any_io_executor busExecutor();

  // Opened first in an I/O handler and ended by end() as its last act, once it has done all the
  // standby could need done (the read handler: the next read is started, unless reading is
  // paused or the connection is lost): a bus run the handler starts (the first function handed to
  // busExecutor() on this thread meanwhile) runs in end(), on this thread, instead of through the
  // io_context. That saves a read's listeners the trip through the event loop, and the standby
  // takes a run that blocks over as it does any other. A second function handed over meanwhile
  // sends both through the io_context, in order; so does a scope left without end() (an
  // exception). Nothing of the handler may follow end(): a run that blocks there has the standby
  // run the io_context's handlers meanwhile. Inert with null `threads`. (An io_context built for
  // one thread would queue what its handlers post on their own thread until they return, out of
  // the standby's reach: the IoThreads constructor refuses one.)
  class BusRunAtEnd {
   public:
    explicit BusRunAtEnd(IoThreads* threads) noexcept;
    BusRunAtEnd(const BusRunAtEnd&) = delete;
    BusRunAtEnd& operator=(const BusRunAtEnd&) = delete;
    ~BusRunAtEnd();
    void end();
    // A bus run is kept for end(): the strand was idle, so it runs everything handed to it.
    bool keeps() const noexcept { return kept_ != nullptr; }

   private:
    friend class IoThreads;
    // The kept function, in the scope's own storage: keeping it allocates nothing. (What
    // busExecutor() is handed is always Asio's type-erased executor_function, which fits.)
    struct Run {
      virtual ~Run() = default;
      virtual void operator()() = 0;
      virtual void postTo(boost::asio::io_context& io) = 0;  // moves the function into a post
    };
    template <typename F>
    struct RunOf final : Run {
      explicit RunOf(F&& fn) : f(std::move(fn)) {}
      void operator()() override { std::move(f)(); }
      void postTo(boost::asio::io_context& io) override { boost::asio::post(io, std::move(f)); }
      F f;
    };
    static constexpr std::size_t kInlineRun = 64;

    // The innermost scope open on this thread, if it is for `threads`; else null.
    static BusRunAtEnd* current(const IoThreads* threads) noexcept;
    // Keeps `f` for the end of the scope; false (and `f` untouched) once one is kept: then what
    // was kept has been posted, and the caller posts `f` after it (if that post throws, neither
    // runs).
    template <typename F>
    bool keep(F& f);
    void postKept();
    void close() noexcept;
    void destroyKept() noexcept;
    struct DestroyKept {
      BusRunAtEnd& scope;
      ~DestroyKept() { scope.destroyKept(); }
    };

    IoThreads* threads_;
    BusRunAtEnd* outer_;
    bool open_;
    bool spilled_ = false;
    Run* kept_ = nullptr;  // in inline_
    alignas(std::max_align_t) std::byte inline_[kInlineRun];
  };

  // A thread needs the connection now (it queued a write, or a listener is about to wait for
  // an answer the connection must read). If a bus run holds the owner, the standby takes over:
  // at once when `urgent`, otherwise once that run has lasted the nudge delay. Cheap when the bus
  // is idle: two loads.
  void nudge(bool urgent) noexcept;

  // Bus runs the standby has taken the connection from.
  std::uint64_t takeovers() const { return takeovers_.load(std::memory_order_relaxed); }
  // Times the standby woke at the end of a watch period to look at the bus. It looks only while
  // the bus is in use: after a whole period without a bus run it dozes until one starts.
  std::uint64_t looks() const { return looks_.load(std::memory_order_relaxed); }

 private:
  template <typename Inner>
  class Executor;
  template <typename F>
  struct Watched;

  void enter() noexcept {
    entered_.fetch_add(1, std::memory_order_seq_cst);
    // After the count (both sequentially consistent): a standby going to doze either sees this
    // run or is woken here.
    if (dozing_.load(std::memory_order_seq_cst)) [[unlikely]] {
      wakeStandby();
    }
  }
  void wakeStandby() noexcept;
  void leave() noexcept { left_.fetch_add(1, std::memory_order_seq_cst); }
  bool busHeld() const noexcept {
    return entered_.load(std::memory_order_seq_cst) != left_.load(std::memory_order_seq_cst);
  }
  void threadMain(int self);
  // Standby: waits until the connection has no owner or should be taken over, then owns it.
  // False once the threads are ending.
  bool waitForOwnership(int self);
  bool lookAfterNudge(int self, std::unique_lock<std::mutex>& lock);
  bool takeOver(int self);  // under mutex_

  static constexpr int kNobody = -1;

  std::shared_ptr<boost::asio::io_context> io_;
  const std::chrono::milliseconds period_;
  const std::chrono::microseconds nudgeDelay_;
  std::atomic<std::uint64_t> entered_{0};
  std::atomic<std::uint64_t> left_{0};
  std::atomic<int> owner_{kNobody};
  std::atomic<bool> nudged_{false};
  std::atomic<std::uint64_t> takeovers_{0};
  std::atomic<std::uint64_t> looks_{0};
  // The standby waits for the next bus run rather than a period (set and cleared under mutex_;
  // read without it by enter()).
  std::atomic<bool> dozing_{false};
  std::mutex mutex_;
  std::condition_variable standby_;
  bool urgent_ = false;          // under mutex_, with nudged_
  int standingBy_ = 0;           // under mutex_: threads in waitForOwnership()
  std::uint64_t nudgedRun_ = 0;  // under mutex_: entered_ at the last nudge
  bool finished_ = false;        // under mutex_: the io_context ran out of work
  std::thread threads_[2];
};

template <typename F>
struct IoThreads::Watched {
  IoThreads* watch;
  F f;
  void operator()() {
    struct Leave {
      IoThreads* watch;
      ~Leave() { watch->leave(); }
    };
    watch->enter();
    Leave leave{watch};
    std::move(f)();
  }
};

// A standard executor over the io_context's: execute() posts (or, inside a BusRunAtEnd scope,
// keeps the function for the scope's end), and wraps each function in enter()/leave(). Like the
// io_context's executor it reports blocking.possibly unless blocking.never is required of it (as
// asio::post() does): so a strand over it runs a function dispatched inside that strand at once (a
// listener dispatching to the bus), and posts from anywhere else, so a bus run never starts in the
// middle of an I/O handler (BusRunAtEnd runs it as the handler's last act). Outstanding work is
// tracked on the io_context as its own executor does.
template <typename Inner>
class IoThreads::Executor {
 public:
  Executor(IoThreads* watch, Inner inner, bool possiblyBlocking = true)
      : watch_(watch), inner_(std::move(inner)), possiblyBlocking_(possiblyBlocking) {}

  template <typename F>
  void execute(F&& f) const {
    Watched<std::decay_t<F>> watched{watch_, std::forward<F>(f)};
    if (auto* scope = BusRunAtEnd::current(watch_); scope != nullptr && scope->keep(watched)) {
      return;
    }
    boost::asio::require(inner_, boost::asio::execution::blocking.never)
        .execute(std::move(watched));
  }

  boost::asio::execution_context& query(
      boost::asio::execution::context_as_t<boost::asio::execution_context&>) const noexcept {
    return boost::asio::query(inner_, boost::asio::execution::context);
  }
  boost::asio::execution::blocking_t query(boost::asio::execution::blocking_t) const noexcept {
    if (possiblyBlocking_) {
      return boost::asio::execution::blocking.possibly;
    }
    return boost::asio::execution::blocking.never;
  }
  Executor require(boost::asio::execution::blocking_t::never_t) const {
    return Executor(watch_, inner_, false);
  }
  Executor require(boost::asio::execution::blocking_t::possibly_t) const {
    return Executor(watch_, inner_, true);
  }
  auto require(boost::asio::execution::outstanding_work_t::tracked_t t) const {
    using Tracked = std::decay_t<decltype(boost::asio::require(inner_, t))>;
    return Executor<Tracked>(watch_, boost::asio::require(inner_, t), possiblyBlocking_);
  }
  auto require(boost::asio::execution::outstanding_work_t::untracked_t u) const {
    using Untracked = std::decay_t<decltype(boost::asio::require(inner_, u))>;
    return Executor<Untracked>(watch_, boost::asio::require(inner_, u), possiblyBlocking_);
  }

  friend bool operator==(const Executor& a, const Executor& b) noexcept {
    return a.watch_ == b.watch_ && a.inner_ == b.inner_ &&
           a.possiblyBlocking_ == b.possiblyBlocking_;
  }
  friend bool operator!=(const Executor& a, const Executor& b) noexcept { return !(a == b); }

 private:
  IoThreads* watch_;
  Inner inner_;
  bool possiblyBlocking_;
};

template <typename F>
bool IoThreads::BusRunAtEnd::keep(F& f) {
  if (spilled_) {
    return false;
  }
  if (kept_ == nullptr) {
    using Kept = RunOf<F>;
    static_assert(sizeof(Kept) <= kInlineRun && alignof(Kept) <= alignof(std::max_align_t));
    kept_ = ::new (static_cast<void*>(inline_)) Kept(std::move(f));
    return true;
  }
  postKept();
  return false;
}

}  // namespace clustervisor::detail
