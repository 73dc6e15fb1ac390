// SPDX-License-Identifier: MIT
#include "clustervisor/error.hpp"

namespace clustervisor {
namespace {

// boost::system::error_category's destructor is protected and non-virtual by design (categories
// are never deleted through a base pointer); -Wnon-virtual-dtor cannot tell.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "clustervisor"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::kNotUnderSupervisor:
        return "not running under clustervisor";
      case Errc::kHandshakeFailed:
        return "handshake with the supervisor failed";
      case Errc::kNotConnected:
        return "not connected to the supervisor";
      case Errc::kInvalidClusterId:
        return "cluster id outside 0..totalClusters-1";
      case Errc::kInvalidEventName:
        return "event name must be 1 to 255 bytes";
      case Errc::kPayloadTooLarge:
        return "event payload larger than the supervisor's events.max_payload";
      case Errc::kQueueFull:
        return "send queue full: the supervisor is not reading, or this worker sends faster "
               "than its queue is written (ClusterOptions::sendQueueLimit)";
    }
    return "unknown clustervisor error";
  }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& errorCategory() noexcept {
  static const Category category;
  return category;
}

}  // namespace clustervisor
