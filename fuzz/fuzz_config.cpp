// SPDX-License-Identifier: MIT
//
// Fuzz target for the config parser and validator: any bytes as the text of a bot.toml, through
// everything `clustervisor check` does with it (parse, validate every key, describe the plan),
// without touching the file system. Every diagnostic must point into the text; a valid config
// must be self-consistent (shards cover 0..total-1 once, durations and sizes print back to
// themselves); and the nesting precheck must never count less depth than toml++ builds.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "clustervisor/config/bot_config.hpp"
#include "clustervisor/config/duration.hpp"
#include "clustervisor/config/size.hpp"
#include "fuzz_check.hpp"
#include "plan.hpp"
#include "toml_precheck.hpp"

namespace config = clustervisor::config;

namespace {

constexpr std::string_view kFileName = "fuzz/bot.toml";

void checkDuration(std::chrono::milliseconds value) {
  FUZZ_CHECK(value.count() >= 0);
  const auto parsed = config::parseDuration(config::formatDuration(value));
  FUZZ_CHECK(parsed.status == config::ParsedDuration::Status::kOk);
  FUZZ_CHECK(parsed.value == value);
}

void checkSize(std::uint64_t bytes) {
  const auto parsed = config::parseSize(config::formatSize(bytes));
  FUZZ_CHECK(parsed.status == config::ParsedSize::Status::kOk);
  FUZZ_CHECK(parsed.bytes == bytes);
}

void checkShards(const config::BotConfig& bot) {
  std::uint32_t next = 0;
  for (std::uint32_t id = 0; id < bot.clusters; ++id) {
    const auto shards = config::shardsFor(bot, id);
    if (bot.shards.total != 0) {
      // Without shards.per_cluster every cluster gets at least one shard.
      FUZZ_CHECK(bot.shards.perCluster != 0 || !shards.empty());
    }
    for (const std::uint32_t shard : shards) {
      FUZZ_CHECK(shard == next);
      ++next;
    }
  }
  FUZZ_CHECK(next == bot.shards.total);
  FUZZ_CHECK(config::shardsFor(bot, bot.clusters).empty());
}

void checkValid(const config::BotConfig& bot) {
  FUZZ_CHECK(!bot.command.empty());
  FUZZ_CHECK(bot.clusters >= 1 && bot.clusters <= 4096);
  FUZZ_CHECK(!bot.name.empty() && bot.name.size() <= 64);
  FUZZ_CHECK(bot.workingDirectory.is_absolute());
  for (const auto duration :
       {bot.restart.delay, bot.restart.maxDelay, bot.restart.stableAfter, bot.restart.window,
        bot.restart.retryFailedAfter, bot.start.timeout, bot.start.delay, bot.stop.timeout,
        bot.stop.signalDelay, bot.heartbeat.interval, bot.heartbeat.timeout,
        bot.events.holdMaxAge}) {
    checkDuration(duration);
  }
  FUZZ_CHECK(bot.restart.maxDelay >= bot.restart.delay);
  FUZZ_CHECK(bot.heartbeat.timeout.count() == 0 ||
             bot.heartbeat.timeout >= 2 * bot.heartbeat.interval);
  for (const std::uint64_t size :
       {std::uint64_t{bot.events.maxPayload}, bot.events.outboxLimit, bot.events.holdMaxBytes}) {
    checkSize(size);
  }
  FUZZ_CHECK(bot.events.outboxLimit >= 2 * std::uint64_t{bot.events.maxPayload});
  FUZZ_CHECK(bot.events.holdMaxBytes <= bot.events.outboxLimit / 2);
  for (const int code : bot.restart.successExitCodes) {
    FUZZ_CHECK(code >= 0 && code <= 255);
  }
  checkShards(bot);
  const std::string plan =
      clustervisor::describePlan(bot, "/run/fuzz/bot.lock", "/run/fuzz/bot.sock");
  FUZZ_CHECK(plan.starts_with(std::string(kFileName) + ": valid; nothing was started.\n"));
}

void checkErrors(std::string_view text, const std::vector<config::Diagnostic>& errors) {
  const auto lines = static_cast<std::uint32_t>(std::count(text.begin(), text.end(), '\n') + 1);
  for (std::size_t i = 0; i < errors.size(); ++i) {
    const config::Diagnostic& error = errors[i];
    FUZZ_CHECK(error.where.file == kFileName);
    FUZZ_CHECK(error.where.line >= 1 && error.where.line <= lines);
    FUZZ_CHECK(error.where.column >= 1);
    FUZZ_CHECK(!error.message.empty());
    if (i > 0) {
      const auto& before = errors[i - 1].where;
      FUZZ_CHECK(std::pair(before.line, before.column) <=
                 std::pair(error.where.line, error.where.column));
    }
    const std::string line = error.format();
    FUZZ_CHECK(line.starts_with(std::string(kFileName) + ":" + std::to_string(error.where.line) +
                                ":" + std::to_string(error.where.column) + ": "));
  }
}

// The depth precheckToml() reports for text it lets through is at least that of the tree toml++
// builds from it, or the precheck would let through text that overflows the stack.
void checkPrecheckDepth(std::string_view text) {
  const config::TomlPrecheck precheck = config::precheckToml(text);
  if (!precheck.ok()) {
    return;
  }
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(kFileName));
  } catch (const toml::parse_error&) {
    return;
  }
  std::size_t deepest = 0;
  std::vector<std::pair<const toml::node*, std::size_t>> pending{{&root, 0}};
  while (!pending.empty()) {
    const auto [node, depth] = pending.back();
    pending.pop_back();
    deepest = std::max(deepest, depth);
    if (const auto* table = node->as_table()) {
      for (auto&& [key, child] : *table) {
        pending.emplace_back(&child, depth + 1);
      }
    } else if (const auto* array = node->as_array()) {
      for (const toml::node& child : *array) {
        pending.emplace_back(&child, depth + 1);
      }
    }
  }
  FUZZ_CHECK(deepest <= precheck.depth);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  checkPrecheckDepth(text);
  const config::LoadResult result = config::parseConfig(text, kFileName, "/fuzz");
  FUZZ_CHECK(result.config.has_value() == result.errors.empty());
  if (result.config) {
    checkValid(*result.config);
  } else {
    checkErrors(text, result.errors);
  }
  return 0;
}
