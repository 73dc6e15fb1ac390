// SPDX-License-Identifier: MIT
//
// TrafficGenerator: the fake Discord traffic of one cluster, standing in for a gateway
// connection so the example bot runs offline.
//
// It only decides: next() returns what happens next and how long to wait for it; bot.cpp carries
// it out. Seeded with the cluster id, it tells the same story on every run (no clocks, no
// std::random_device, no implementation-defined distributions). Not thread-safe: the bot's main
// loop owns it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

enum class ActionKind {
  kModerate,             // a moderator bans, kicks, ... someone: goes to the primary's audit log
  kUpdateGuildSettings,  // a guild changes its prefix: other clusters drop their cached copy
  kResetGuildSettings,   // a guild resets its settings: wait until every cluster dropped them
  kChangeConfig,         // the owner changes a bot-wide config key
  kToggleMaintenance,    // an admin runs /maintenance
};

struct Action {
  ActionKind kind = ActionKind::kModerate;
  std::chrono::milliseconds delay{0};  // quiet time before it happens
  std::string guildId;                 // kModerate, kUpdateGuildSettings, kResetGuildSettings
  std::string userId;                  // kModerate
  std::string key;                     // kModerate: the verb; kChangeConfig: the config key
  std::string value;                   // kUpdateGuildSettings: the prefix; kChangeConfig: the value
};

class TrafficGenerator {
 public:
  // The guilds every cluster knows; the bot warms its settings cache with them.
  static constexpr std::array<const char*, 6> kGuilds = {
      "412002341198086145", "412007781562696704", "533961200438099968",
      "611400988776202240", "734118562207793152", "871263095461085184"};

  // Seeds 1, 2, 3, ...: with these, four clusters show every scenario within their first seconds.
  explicit TrafficGenerator(int clusterId) : state_(static_cast<std::uint64_t>(clusterId) + 1) {}

  // One action every 1-2 s. Out of 10: 3 moderation, 3 prefix changes, 1 settings reset,
  // 2 config changes, 1 maintenance toggle.
  Action next() {
    Action action;
    action.delay = std::chrono::milliseconds(1000 + random() % 1000);
    action.guildId = pick(kGuilds);
    const std::uint64_t roll = random() % 10;
    if (roll < 3) {
      action.kind = ActionKind::kModerate;
      action.key = pick(std::array{"ban", "kick", "timeout", "warn"});
      action.userId = std::to_string(100'000'000'000'000'000 + random() % 900'000'000'000'000'000);
    } else if (roll < 6) {
      action.kind = ActionKind::kUpdateGuildSettings;
      action.value = pick(std::array{"!", "?", "$", ".", ">>"});
    } else if (roll < 7) {
      action.kind = ActionKind::kResetGuildSettings;
    } else if (roll < 9) {
      action.kind = ActionKind::kChangeConfig;
      if (random() % 2 == 0) {
        action.key = "locale";
        action.value = pick(std::array{"en-US", "de", "fr", "ja"});
      } else {
        action.key = "cooldown";
        action.value = pick(std::array{"3s", "5s", "10s"});
      }
    } else {
      action.kind = ActionKind::kToggleMaintenance;
    }
    return action;
  }

 private:
  // SplitMix64: tiny, well mixed even for the seeds 0, 1, 2, ..., and the same everywhere.
  std::uint64_t random() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }

  template <std::size_t N>
  const char* pick(const std::array<const char*, N>& choices) {
    return choices[random() % N];
  }

  std::uint64_t state_;
};
