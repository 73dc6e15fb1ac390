// SPDX-License-Identifier: MIT
//
// BotState: what one cluster knows: its guild-settings cache ("guild:<id>" -> prefix), the
// bot-wide config, and whether maintenance mode is on.
//
// Threads: the traffic loop writes it on the main thread and listeners write it on the SDK's
// threads, so every member function takes the lock. main() declares it before the
// Cluster, so it outlives every listener that refers to it.
#pragma once

#include <map>
#include <mutex>
#include <string>

class BotState {
 public:
  void cache(const std::string& key, const std::string& value) {
    std::lock_guard lock(mutex_);
    cache_[key] = value;
  }

  // True if the entry was cached.
  bool drop(const std::string& key) {
    std::lock_guard lock(mutex_);
    return cache_.erase(key) != 0;
  }

  std::size_t cached() {
    std::lock_guard lock(mutex_);
    return cache_.size();
  }

  void setConfig(const std::string& key, const std::string& value) {
    std::lock_guard lock(mutex_);
    config_[key] = value;
  }

  // "cooldown=3s locale=en-US", for the log.
  std::string describeConfig() {
    std::lock_guard lock(mutex_);
    std::string text;
    for (const auto& [key, value] : config_) {
      text += (text.empty() ? "" : " ") + key + "=" + value;
    }
    return text;
  }

  void setMaintenance(bool enabled) {
    std::lock_guard lock(mutex_);
    maintenance_ = enabled;
  }

  // Returns the new mode.
  bool toggleMaintenance() {
    std::lock_guard lock(mutex_);
    maintenance_ = !maintenance_;
    return maintenance_;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> cache_;
  std::map<std::string, std::string> config_{{"cooldown", "3s"}, {"locale", "en-US"}};
  bool maintenance_ = false;
};
