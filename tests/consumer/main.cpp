// SPDX-License-Identifier: MIT
//
// Links the installed SDK and checks that, outside clustervisor, Cluster::fromEnvironment()
// reports exactly that.
#include <iostream>

#include <clustervisor/worker.hpp>

int main() {
  try {
    auto cluster = clustervisor::Cluster::fromEnvironment();
    std::cout << "unexpectedly connected as cluster " << cluster.id() << "\n";
    return 1;
  } catch (const clustervisor::Error& e) {
    std::cout << "consumer: " << e.what() << "\n";
    return e.code() == clustervisor::Errc::kNotUnderSupervisor ? 0 : 1;
  }
}
