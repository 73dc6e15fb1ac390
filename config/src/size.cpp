// SPDX-License-Identifier: MIT
#include "clustervisor/config/size.hpp"

#include <limits>

namespace clustervisor::config {
namespace {

using SizeStatus = ParsedSize::Status;

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

struct Unit {
  std::string_view suffix;
  std::uint64_t bytes;
};

// Binary units first: formatSize() takes the first that divides exactly, largest first.
constexpr Unit kBinaryUnits[] = {{"GiB", kGiB}, {"MiB", kMiB}, {"KiB", kKiB}, {"B", 1}};
constexpr Unit kDecimalUnits[] = {{"GB", 1'000'000'000}, {"MB", 1'000'000}, {"KB", 1000}};

}  // namespace

ParsedSize parseSize(std::string_view text) {
  std::size_t i = 0;
  std::uint64_t count = 0;
  bool tooLarge = false;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (count > (kMax - digit) / 10) {
      tooLarge = true;
    } else {
      count = count * 10 + digit;
    }
  }
  if (i == 0) {
    return {};
  }
  const std::string_view suffix = text.substr(i);
  std::uint64_t unit = 0;
  for (const Unit& candidate : kBinaryUnits) {
    if (suffix == candidate.suffix) {
      unit = candidate.bytes;
    }
  }
  for (const Unit& candidate : kDecimalUnits) {
    if (suffix == candidate.suffix) {
      unit = candidate.bytes;
    }
  }
  if (unit == 0) {
    return {};
  }
  if (tooLarge || count > kMax / unit) {
    return {SizeStatus::kTooLarge, 0};
  }
  return {SizeStatus::kOk, count * unit};
}

std::string formatSize(std::uint64_t bytes) {
  for (const Unit& unit : kBinaryUnits) {
    if (bytes != 0 && bytes % unit.bytes == 0) {
      return std::to_string(bytes / unit.bytes) + std::string(unit.suffix);
    }
  }
  return "0B";
}

}  // namespace clustervisor::config
