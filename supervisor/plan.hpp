// SPDX-License-Identifier: MIT
//
// describePlan(): what `clustervisor check bot.toml` prints for a valid config: the resolved
// values a run would use (clusters, shards per cluster, environment, restart policy, start,
// stop, heartbeats, event limits, lock file), in words an operator can check at a glance. Pure:
// the config and the lock file's path in, text out.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "clustervisor/config/bot_config.hpp"

namespace clustervisor {

// `argument` as a shell needs it typed, plain when it can be; control characters (C0, DEL, C1)
// escaped, so that it can be shown on a terminal as it is.
std::string quoteArgument(std::string_view argument);

std::string describePlan(const config::BotConfig& config, const std::filesystem::path& lockFile,
                         const std::filesystem::path& controlSocket);

}  // namespace clustervisor
