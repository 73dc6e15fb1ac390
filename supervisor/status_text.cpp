// SPDX-License-Identifier: MIT
#include "status_text.hpp"

#include <algorithm>
#include <vector>

#include "clustervisor/config/duration.hpp"
#include "clustervisor/config/size.hpp"

namespace clustervisor {

namespace json = boost::json;

std::string formatMemory(std::uint64_t bytes) {
  constexpr std::uint64_t kKiB = 1024;
  if (bytes < kKiB) {
    return std::to_string(bytes) + "B";
  }
  // Whole KiB below 1 MiB; then tenths of the largest unit the rounded figure stays under 1024 of.
  const std::uint64_t kib = (bytes + kKiB / 2) / kKiB;
  if (kib < kKiB) {
    return std::to_string(kib) + "KiB";
  }
  const char* suffix = "MiB";
  std::uint64_t unit = kKiB * kKiB;
  std::uint64_t tenths = (bytes * 10 + unit / 2) / unit;
  if (tenths >= 10 * kKiB) {
    suffix = "GiB";
    unit *= kKiB;
    tenths = (bytes * 10 + unit / 2) / unit;
  }
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + suffix;
}

std::string humanDuration(std::chrono::milliseconds duration) {
  const std::int64_t ms = std::max<std::int64_t>(duration.count(), 0);
  if (ms == 0) {
    return "0s";
  }
  if (ms < 1000) {
    return std::to_string(ms) + "ms";
  }
  if (ms < 59'950) {  // (from 59.95 s on, tenths would round to "60s": a minute)
    const std::int64_t tenths = (ms + 50) / 100;
    return std::to_string(tenths / 10) +
           (tenths % 10 != 0 ? "." + std::to_string(tenths % 10) : std::string()) + "s";
  }
  // Whole seconds, written as a configured duration is (no unit that is zero).
  return config::formatDuration(std::chrono::seconds((ms + 500) / 1000));
}

std::string formatUptime(std::int64_t ms) {
  if (ms < 3'599'500) {  // (what humanDuration() rounds to "1h" is shown as the hours below)
    return humanDuration(std::chrono::milliseconds(ms));
  }
  // Rounded to the minute, then to the hour: "1h0m" just short of an hour too.
  const std::int64_t minutes = (ms + 30'000) / 60'000;
  if (minutes < 24 * 60) {
    return std::to_string(minutes / 60) + "h" + std::to_string(minutes % 60) + "m";
  }
  const std::int64_t hours = (ms + 1'800'000) / 3'600'000;
  return std::to_string(hours / 24) + "d" + std::to_string(hours % 24) + "h";
}

namespace {

const json::value* field(const json::object& object, std::string_view key) {
  const auto it = object.find(key);
  return it == object.end() || it->value().is_null() ? nullptr : &it->value();
}

std::string text(const json::object& object, std::string_view key) {
  const json::value* v = field(object, key);
  if (v == nullptr) {
    return "-";
  }
  if (v->is_string()) {
    return std::string(v->get_string());
  }
  if (v->is_int64()) {
    return std::to_string(v->get_int64());
  }
  if (v->is_uint64()) {
    return std::to_string(v->get_uint64());
  }
  if (v->is_bool()) {
    return v->get_bool() ? "yes" : "no";
  }
  return "-";
}

// The status answer's last_exit_reason, where the supervisor stopped the worker, in words.
std::string stopCause(std::string_view reason) {
  if (reason == "start_timeout") {
    return "not ready within start.timeout";
  }
  if (reason == "hung") {
    return "hung: no heartbeat";
  }
  if (reason == "protocol_error") {
    return "protocol error";
  }
  if (reason == "restart") {
    return "restarted on request";
  }
  if (reason == "resharded") {
    return "its shards moved";
  }
  return {};
}

std::int64_t number(const json::object& object, std::string_view key) {
  const json::value* v = field(object, key);
  if (v != nullptr && v->is_int64()) {
    return v->get_int64();
  }
  if (v != nullptr && v->is_uint64()) {
    return static_cast<std::int64_t>(v->get_uint64());
  }
  return -1;
}

}  // namespace

std::string formatIdList(const std::vector<std::uint32_t>& ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t end = i + 1;  // the run ids[i..end) ascends by one
    while (end < ids.size() && ids[end - 1] != UINT32_MAX && ids[end] == ids[end - 1] + 1) {
      ++end;
    }
    out += out.empty() ? "" : ", ";
    if (end - i >= 3) {
      out += std::to_string(ids[i]) + ".." + std::to_string(ids[end - 1]);
      i = end;
    } else {
      out += std::to_string(ids[i]);
      ++i;
    }
  }
  return out;
}

std::string formatClusters(const std::vector<std::uint32_t>& ids) {
  return (ids.size() == 1 ? "cluster " : "clusters ") + formatIdList(ids);
}

std::string formatStatus(const json::object& status) {
  std::string out = text(status, "name") + ": supervisor pid " + text(status, "pid");
  if (const auto up = number(status, "uptime_ms"); up >= 0) {
    out += ", up " + formatUptime(up);
  }
  const json::value* totals = field(status, "totals");
  if (totals != nullptr && totals->is_object()) {
    const auto& t = totals->get_object();
    out += "; " + text(t, "running") + " of " + text(t, "clusters") + " clusters running";
    out += "; events " + text(t, "events_in") + " in, " + text(t, "events_out") + " out, " +
           text(t, "dropped_events") + " dropped";
  }
  if (const json::value* stopping = field(status, "stopping");
      stopping != nullptr && stopping->is_bool() && stopping->get_bool()) {
    out += "; stopping";
  }
  if (const json::value* operation = field(status, "operation");
      operation != nullptr && operation->is_string()) {
    out += "; " + std::string(operation->get_string()) + " in progress";
  }
  out += "\n";
  if (const json::value* metrics = field(status, "metrics");
      metrics != nullptr && metrics->is_object()) {
    const auto& m = metrics->get_object();
    const json::value* serving = field(m, "serving");
    if (serving != nullptr && serving->is_bool() && serving->get_bool()) {
      out += "metrics: http://" + text(m, "listen") + "/metrics\n";
    } else {
      out += "metrics: not served: " + text(m, "error") + "\n";
    }
  }

  // Per cluster, as the cluster sees them: events_in are those its workers sent (into the
  // supervisor), events_out those delivered to it.
  const std::vector<std::string> header = {
      "CLUSTER", "STATE",          "PID",    "UPTIME", "MEM",      "CPU", "RESTARTS",
      "READY",   "SENT/DELIVERED", "QUEUED", "HELD",   "LAST EXIT"};
  std::vector<std::vector<std::string>> rows{header};
  const json::value* clusters = field(status, "clusters");
  if (clusters != nullptr && clusters->is_array()) {
    for (const auto& entry : clusters->get_array()) {
      if (!entry.is_object()) {
        continue;
      }
      const auto& c = entry.get_object();
      const auto up = number(c, "uptime_ms");
      const auto queued = number(c, "queued_bytes");
      const auto flag = [&](std::string_view key) {
        const json::value* v = field(c, key);
        return v != nullptr && v->is_bool() && v->get_bool();
      };
      // A removed cluster still stopping; a worker running with settings a reload changed; when
      // one that waits (a backoff, the retry of a failed cluster) starts again.
      std::string state = text(c, "state");
      const auto nextStart = number(c, "next_start_ms");
      if (flag("removed")) {
        state += " (removed)";
      } else if (flag("outdated")) {
        state += " (outdated)";
      } else if (nextStart >= 0) {
        state += " (starts in " + formatUptime(nextStart) + ")";
      }
      // Why the supervisor stopped the last worker, where it did.
      std::string lastExit = text(c, "last_exit");
      if (const auto why = stopCause(text(c, "last_exit_reason")); !why.empty()) {
        lastExit += " (" + why + ")";
      }
      const auto rss = number(c, "rss_bytes");
      const auto cpu = number(c, "cpu_ms");
      rows.push_back({text(c, "id"), state, text(c, "pid"), up >= 0 ? formatUptime(up) : "-",
                      rss >= 0 ? formatMemory(static_cast<std::uint64_t>(rss)) : "-",
                      cpu >= 0 ? formatUptime(cpu) : "-", text(c, "restarts"), text(c, "ready"),
                      text(c, "events_in") + "/" + text(c, "events_out"),
                      queued >= 0 ? config::formatSize(static_cast<std::uint64_t>(queued)) : "-",
                      text(c, "held_events"), lastExit});
    }
  }
  std::vector<std::size_t> widths(header.size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(widths[i] - row[i].size() + 2, ' ');
      }
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace clustervisor
