// SPDX-License-Identifier: MIT
#include "io_threads.hpp"

#include <pthread.h>

#include <csignal>
#include <stdexcept>

#include <boost/asio/post.hpp>

namespace clustervisor::detail {

namespace asio = boost::asio;

IoThreads::IoThreads(std::shared_ptr<asio::io_context> io, std::chrono::milliseconds period,
                     std::chrono::microseconds nudgeDelay)
    : io_(std::move(io)), period_(period), nudgeDelay_(nudgeDelay) {
  // Built for one thread, the io_context keeps what a handler posts on that handler's thread
  // until it returns: a handler that blocks (a bus run at a BusRunAtEnd's end) would keep it from
  // the standby.
  const int hint = asio::use_service<asio::detail::scheduler>(*io_).concurrency_hint();
  if (hint == 1 || !BOOST_ASIO_CONCURRENCY_HINT_IS_LOCKING(SCHEDULER, hint) ||
      !BOOST_ASIO_CONCURRENCY_HINT_IS_LOCKING(REACTOR_IO, hint)) {
    throw std::invalid_argument("IoThreads: the io_context must be built for several threads");
  }
}

IoThreads::~IoThreads() {
  join();
}

void IoThreads::start() {
  threads_[0] = std::thread([this] { threadMain(0); });
  threads_[1] = std::thread([this] { threadMain(1); });
}

void IoThreads::join() {
  for (auto& thread : threads_) {
    if (thread.joinable()) {
      thread.join();
    }
  }
}

void IoThreads::detach() {
  for (auto& thread : threads_) {
    if (thread.joinable()) {
      thread.detach();
    }
  }
}

bool IoThreads::runsOnThisThread() const noexcept {
  const auto self = std::this_thread::get_id();
  return threads_[0].get_id() == self || threads_[1].get_id() == self;
}

asio::any_io_executor IoThreads::busExecutor() {
  return Executor<asio::io_context::executor_type>(this, io_->get_executor());
}

namespace {
thread_local IoThreads::BusRunAtEnd* openScope = nullptr;
}  // namespace

IoThreads::BusRunAtEnd::BusRunAtEnd(IoThreads* threads) noexcept
    : threads_(threads), outer_(openScope), open_(threads != nullptr) {
  if (open_) {
    openScope = this;
  }
}

void IoThreads::BusRunAtEnd::close() noexcept {
  if (open_) {
    openScope = outer_;
    open_ = false;
  }
}

void IoThreads::BusRunAtEnd::end() {
  close();
  if (kept_ == nullptr) {
    return;
  }
  const DestroyKept destroy{*this};  // also when the run throws
  (*kept_)();
}

IoThreads::BusRunAtEnd::~BusRunAtEnd() {
  close();
  if (kept_ != nullptr) {
    postKept();  // left by an exception; out of memory here ends the program (noexcept)
  }
}

void IoThreads::BusRunAtEnd::destroyKept() noexcept {
  kept_->~Run();
  kept_ = nullptr;
}

IoThreads::BusRunAtEnd* IoThreads::BusRunAtEnd::current(const IoThreads* threads) noexcept {
  return openScope != nullptr && openScope->threads_ == threads ? openScope : nullptr;
}

void IoThreads::BusRunAtEnd::postKept() {
  spilled_ = true;
  if (kept_ != nullptr) {
    const DestroyKept destroy{*this};  // the function is moved out, or lost with a failed post
    kept_->postTo(*threads_->io_);
  }
}

void IoThreads::nudge(bool urgent) noexcept {
  if (!busHeld()) {
    return;
  }
  if (!urgent && nudged_.load(std::memory_order_relaxed)) {
    return;  // the standby is already looking
  }
  {
    std::lock_guard lock(mutex_);
    // Kept for the run that holds the owner now: a thread that stands by later (one about to,
    // or one still in a run that was taken over) acts on it only while that run lasts.
    nudged_.store(true, std::memory_order_relaxed);
    urgent_ = urgent_ || urgent;
    nudgedRun_ = entered_.load(std::memory_order_seq_cst);
    if (standingBy_ == 0) {
      return;
    }
  }
  standby_.notify_one();
}

void blockAllSignals() {
  sigset_t all;
  sigfillset(&all);
  // Except the signals of a fault in the code the thread runs (a listener's): blocked, they
  // would kill the process without running the worker's own handler (a crash reporter's).
  for (const int fault : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) {
    sigdelset(&all, fault);
  }
  ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
}

void IoThreads::threadMain(int self) {
  blockAllSignals();
  while (waitForOwnership(self)) {
    // Owner until the standby takes over: a bus run that held this thread too long gives the
    // io_context up when it returns (the standby runs it meanwhile).
    while (owner_.load(std::memory_order_seq_cst) == self) {
      if (io_->run_one() == 0) {
        // Out of work (the Cluster is gone): the standby ends too.
        std::lock_guard lock(mutex_);
        finished_ = true;
        owner_.store(kNobody, std::memory_order_seq_cst);
        standby_.notify_all();
        return;
      }
    }
  }
}

bool IoThreads::waitForOwnership(int self) {
  std::unique_lock lock(mutex_);
  struct StandingBy {
    IoThreads& t;
    explicit StandingBy(IoThreads& threads) : t(threads) {
      ++t.standingBy_;
      if (t.entered_.load(std::memory_order_seq_cst) != t.nudgedRun_ || !t.busHeld()) {
        // Asked about a run that has ended.
        t.nudged_.store(false, std::memory_order_relaxed);
        t.urgent_ = false;
      }
    }
    ~StandingBy() { --t.standingBy_; }  // under mutex_ (declared after the lock)
  } standingBy(*this);
  std::uint64_t seen = entered_.load(std::memory_order_seq_cst);
  for (;;) {
    if (finished_) {
      return false;
    }
    const int owner = owner_.load(std::memory_order_seq_cst);
    if (owner == self) {
      return true;  // a takeover that found the bus run over gave it back
    }
    if (owner == kNobody) {
      owner_.store(self, std::memory_order_seq_cst);
      return true;
    }
    if (nudged_.load(std::memory_order_relaxed)) {
      if (lookAfterNudge(self, lock)) {
        return true;
      }
      seen = entered_.load(std::memory_order_seq_cst);
      continue;
    }
    const auto called = [&] {
      return finished_ || nudged_.load(std::memory_order_relaxed) ||
             owner_.load(std::memory_order_seq_cst) == kNobody;
    };
    standby_.wait_for(lock, period_, called);
    if (called()) {
      continue;
    }
    looks_.fetch_add(1, std::memory_order_relaxed);
    // Read once, both: a run that starts after these loads is not the one looked at.
    const std::uint64_t now = entered_.load(std::memory_order_seq_cst);
    const bool held = now != left_.load(std::memory_order_seq_cst);
    if (now == seen && held) {
      // The same bus run as a period ago, still going: the owner has been held a whole period.
      if (takeOver(self)) {
        return true;
      }
    } else if (now == seen) {
      // No bus run for a whole period: nothing to watch until one starts, which wakes this
      // thread (enter()), so an idle worker's standby does not wake every period.
      dozing_.store(true, std::memory_order_seq_cst);
      standby_.wait(lock,
                    [&] { return called() || entered_.load(std::memory_order_seq_cst) != seen; });
      dozing_.store(false, std::memory_order_seq_cst);
    }
    seen = entered_.load(std::memory_order_seq_cst);
  }
}

void IoThreads::wakeStandby() noexcept {
  {
    // Under the mutex, so the notification cannot fall between the standby's look at entered_
    // and its wait.
    std::lock_guard lock(mutex_);
    dozing_.store(false, std::memory_order_seq_cst);
  }
  standby_.notify_all();
}

bool IoThreads::lookAfterNudge(int self, std::unique_lock<std::mutex>& lock) {
  // Someone needs the connection while a bus run holds the owner: at once (urgent), or once that
  // run has lasted the nudge delay. A run that ends meanwhile and is followed by another that holds
  // the owner gives that one its delay too, once.
  for (int look = 0; look < 2; ++look) {
    const std::uint64_t run = entered_.load(std::memory_order_seq_cst);
    if (!urgent_) {
      standby_.wait_for(lock, nudgeDelay_, [&] { return urgent_ || finished_; });
    }
    if (finished_) {
      return false;
    }
    const bool sameRun = entered_.load(std::memory_order_seq_cst) == run;
    if (urgent_ || sameRun || !busHeld()) {
      break;
    }
  }
  nudged_.store(false, std::memory_order_relaxed);
  urgent_ = false;
  return busHeld() && takeOver(self);
}

bool IoThreads::takeOver(int self) {
  // Taken first, then checked: the owner, leaving its bus run, counts it (leave()) before it
  // looks at owner_ again. Either it sees this thread as the owner and stands by, or this
  // thread sees the run ended and gives the io_context back (both sequentially consistent).
  const int previous = owner_.exchange(self, std::memory_order_seq_cst);
  if (busHeld()) {
    takeovers_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // The owner may have seen this thread as the owner meanwhile: it waits for mutex_ (held
  // here), then finds itself the owner again.
  owner_.store(previous, std::memory_order_seq_cst);
  return false;
}

}  // namespace clustervisor::detail
