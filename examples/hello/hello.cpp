// SPDX-License-Identifier: MIT
//
// The smallest clustervisor worker: say hello to the other clusters, print who answers, and keep
// running until the supervisor stops it.
#include <chrono>
#include <exception>
#include <iostream>
#include <thread>

#include <clustervisor/worker.hpp>

int main() {
  try {
    auto cluster = clustervisor::Cluster::fromEnvironment();  // throws outside clustervisor
    auto& events = cluster.events();

    events.on("hello", [&](const boost::json::value& data, int sourceCluster) {
      std::cout << "cluster " << sourceCluster << " says " << data.at("greeting").as_string()
                << std::endl;
    });

    cluster.ready();
    events.broadcast("hello", {{"greeting", "hi from cluster " + std::to_string(cluster.id())}});

    for (;;) {
      std::this_thread::sleep_for(std::chrono::hours(1));
    }
  } catch (const std::exception& e) {
    std::cerr << "hello: " << e.what() << std::endl;
    return 1;
  }
}
