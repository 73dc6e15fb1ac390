// SPDX-License-Identifier: MIT
//
// Cluster: this worker's place in the bot, and its connection to the supervisor.
//
// Cluster::fromEnvironment() reads the variables clustervisor gives every worker
// (CLUSTERVISOR_CLUSTER_ID, CLUSTERVISOR_TOTAL_CLUSTERS, CLUSTERVISOR_FD, CLUSTERVISOR_PROTOCOL),
// takes over the inherited socket, performs the protocol handshake and starts the SDK's I/O
// thread. Outside clustervisor it throws clustervisor::Error(Errc::kNotUnderSupervisor) with a
// message saying so. Once per process: a later call throws std::logic_error.
//
// Threads: by default the SDK runs two threads of its own, which take turns running the
// connection (socket, heartbeats, writes) and the listeners: an event's listeners run on the
// thread that read it, without a hand-over. When a listener or completion handler holds that
// thread for a quarter of heartbeat.interval (at most 100 ms), or another thread needs the
// connection meanwhile, the other SDK thread takes the connection over, so it keeps working
// while user code blocks; listeners still run one at a time. Pass ClusterOptions::executor (say,
// your io_context's) to run listeners and completion handlers there instead, or set
// ClusterOptions::listenersOnIoThread for one SDK thread that does everything. With an executor of
// yours, while connected, the SDK keeps outstanding work on it (events may arrive at any time), so
// its io_context::run() returns only after the Cluster is destroyed or the supervisor is lost.
// The destructor writes what is still queued for the supervisor (for at most 2 s), stops its
// threads, and no listener starts after it begins (with the SDK's threads, none runs after it
// returns; with an executor of yours, one already running on another of your threads may still
// be: do not destroy the Cluster while your listeners may run elsewhere); broadcastAndWait calls
// still open complete (with the count so far) on their executors. Destroyed inside a listener
// or handler (exit(3) with a Cluster of static storage duration, say), it writes what is queued
// itself (for at most 2 s); on an SDK thread it cannot join that thread, and the SDK's threads
// end on their own once the listener returns. The SDK's threads block every signal but those of
// a fault (SIGSEGV and the like, so a crash in a listener reaches your handler), so signals go to
// the worker's own threads (sigwait, signalfd and asio::signal_set work as usual).
//
// When the supervisor goes away (socket closed), the SDK calls the onSupervisorLost handler;
// without one it writes a line to stderr and ends the process with _exit(1), so a worker never
// outlives its supervisor and answers twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "clustervisor/event_bus.hpp"

namespace clustervisor {

struct ClusterOptions {
  // Where listeners and completion handlers run. Unset: the SDK's own two threads (above).
  std::optional<boost::asio::any_io_executor> executor;
  // Called once, on the bus executor, when the connection to the supervisor is lost.
  // Unset: write a line to stderr and _exit(1).
  std::function<void()> onSupervisorLost;
  // How long fromEnvironment() waits for the supervisor's answer to the handshake.
  std::chrono::milliseconds handshakeTimeout{std::chrono::seconds(10)};
  // Bytes the SDK may queue for the supervisor before sends fail with Errc::kQueueFull.
  std::size_t sendQueueLimit = 64 * 1024 * 1024;
  // Memory the SDK may hold for received events that listeners have not taken yet. Past it the
  // SDK stops reading from the supervisor, and reads again as soon as listeners bring it back
  // under (so it may pass the limit by one read; two while a listener blocks). A slow or blocked
  // listener then leaves the backlog in the supervisor's bounded outbox for this cluster instead of
  // this process's memory: a slow one holds its senders back and loses nothing; one that takes less
  // than about one read (64 KiB) of events per events.stall_timeout, or blocks, gets the worker
  // treated as stalled (events that do not fit its outbox are dropped for it). What the supervisor
  // sends after the backlog (acknowledgements for this worker's waits, a new cluster count, the
  // stop notice) is read after it.
  std::size_t receiveQueueLimit = 8 * 1024 * 1024;
  // Heartbeats (heartbeat.interval in bot.toml) are sent by the thread that runs the connection,
  // so they prove the process is alive and scheduled even while your code blocks (your
  // listeners too: the other SDK thread takes the connection over; not with
  // listenersOnIoThread). Set this to send them from
  // the bus executor instead: then a blocked executor (a listener that never returns, a
  // deadlock) stops the heartbeats, and the supervisor kills the worker as hung after
  // heartbeat.timeout.
  bool heartbeatFromExecutor = false;
  // One SDK thread runs the connection and the listeners, and nothing takes over from it: as in
  // a Node.js process; in the benchmark about as fast as the default for streams and often a
  // little quicker to answer (README, "Performance"), for programs that want a single SDK thread.
  // The price is the default's isolation: while a listener runs, the connection waits (no reads,
  // writes or heartbeats), so a listener that blocks for heartbeat.timeout gets the worker killed
  // as hung, and a listener must never wait for a future of this SDK. Keep listeners short, or hand
  // long work to a thread of your own. Cannot be combined with `executor` (fromEnvironment() throws
  // std::invalid_argument).
  bool listenersOnIoThread = false;
};

class Cluster {
 public:
  static Cluster fromEnvironment(ClusterOptions options = {});

  Cluster(Cluster&&) noexcept;
  Cluster& operator=(Cluster&&) noexcept;
  ~Cluster();

  int id() const;
  int totalClusters() const;  // follows changes announced by the supervisor
  bool isPrimary() const { return id() == 0; }
  std::uint32_t maxPayload() const;  // events.max_payload of the supervisor, in bytes

  EventBus& events();

  // Tells the supervisor this worker is ready (logged in, serving), and starts delivering
  // events to listeners if EventBus::listen() has not already.
  void ready();

  // True until the connection to the supervisor is lost.
  bool connected() const;

  // The shard ids this cluster owns (ascending) and the bot's total shard count, from
  // CLUSTERVISOR_SHARDS and CLUSTERVISOR_TOTAL_SHARDS; empty and 0 when bot.toml has no
  // shards.total.
  const std::vector<std::uint32_t>& shards() const;
  std::uint32_t totalShards() const;

  // Called once, on the bus executor, when the supervisor stops this worker (the supervisor is
  // stopping, or the worker is being restarted), with the time left before SIGKILL. Finish what
  // you are doing and exit. While a handler is set, the supervisor waits stop.signal_delay after
  // the stop frame before it sends the stop signal; without one the signal comes at once. A later
  // call replaces the handler; an empty one is refused (std::invalid_argument).
  void onStop(std::function<void(std::chrono::milliseconds untilKill)> handler);

  // Called on the bus executor when the supervisor's cluster count changes (a reload that scales
  // the bot), after the events that arrived before the change; totalClusters() already returns
  // `newTotal` by then. A later call replaces the handler; an empty one removes it. This
  // worker's own id never changes: a cluster whose id is no longer below the new total is
  // stopped by the supervisor.
  void onTotalClustersChanged(std::function<void(int newTotal, int oldTotal)> handler);

 private:
  struct Impl;
  explicit Cluster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clustervisor
