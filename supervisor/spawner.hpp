// SPDX-License-Identifier: MIT
//
// Spawner: the one place that starts workers (clone and exec, with Boost.Process v2's
// initializers; see CloneLauncher in spawner.cpp).
//
// spawn() starts one worker for a cluster: its own process group, the worker end of a fresh
// socketpair on fd 3, stdout and stderr on pipes, stdin on /dev/null, the environment of the
// supervisor plus the config's `environment` plus the CLUSTERVISOR_* variables, and a parent-death
// signal so it cannot outlive a supervisor that was killed. No other descriptor of the supervisor
// reaches the worker. The caller owns everything returned; a started worker is not waited for
// here (the supervisor reaps all children from SIGCHLD), only a process whose exec failed.
// One thread at a time: the child's stack is the Spawner's (the event loop's thread spawns).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/system/error_code.hpp>

#include "clustervisor/config/bot_config.hpp"

namespace clustervisor {

struct SpawnRequest {
  std::uint32_t clusterId = 0;
  std::uint32_t totalClusters = 0;
  std::vector<std::string> command;  // command[0] as configured
  std::filesystem::path workingDirectory;
  std::map<std::string, std::string> environment;  // added to the supervisor's own
  std::vector<std::uint32_t> shards;               // CLUSTERVISOR_SHARDS when totalShards > 0
  std::uint32_t totalShards = 0;
  // The run marks (see process_table.hpp): CLUSTERVISOR_BOT and CLUSTERVISOR_SUPERVISOR.
  std::string bot;
  std::string supervisorMark;
};

struct SpawnedWorker {
  pid_t pid = -1;
  std::filesystem::path program;  // what was executed
  boost::asio::local::stream_protocol::socket socket;
  boost::asio::readable_pipe out;
  boost::asio::readable_pipe err;
};

class Spawner {
 public:
  // Throws boost::system::system_error when the child's stack cannot be mapped.
  explicit Spawner(boost::asio::any_io_executor executor);
  ~Spawner();
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;

  // On failure `ec` is set and `what` says what failed on which path, for the log.
  SpawnedWorker spawn(const SpawnRequest& request, boost::system::error_code& ec,
                      std::string& what);

  // Where command[0] is found: a name without '/' is searched in PATH (the workers' PATH), a
  // relative path is taken relative to the working directory.
  static std::filesystem::path resolveProgram(const std::string& program,
                                              const std::filesystem::path& workingDirectory,
                                              const std::string& path);

  // Why the workers of `config` cannot be started as things are (its program missing, not
  // executable, of no format this system runs; its working directory missing), as an error at
  // the command (or working_directory) of the file; nothing when they can.
  static std::optional<config::Diagnostic> checkCanStart(const config::BotConfig& config);

 private:
  boost::asio::any_io_executor executor_;
  // The stack a worker's process runs on between clone(2) and exec (see CloneLauncher in
  // spawner.cpp), with a guard page below it. Mapped once: a spawn maps nothing.
  void* childStackMapping_ = nullptr;
  std::size_t childStackMappingBytes_ = 0;
  // Under ThreadSanitizer only, where workers are forked: the launcher's context (ForkLauncher).
  std::unique_ptr<boost::asio::io_context> forkContext_;
};

// A config file as `run` and a reload take it: loaded, and refused as well when its workers
// cannot be started (Spawner::checkCanStart); `config` is set exactly when `errors` is empty.
config::LoadResult loadConfigToRun(const std::filesystem::path& file);

}  // namespace clustervisor
