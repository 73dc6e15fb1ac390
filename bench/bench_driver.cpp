// SPDX-License-Identifier: MIT
//
// clustervisor-bench: runs every benchmark case against the plain baseline (bench-baseline) and
// against the real `clustervisor run` with SDK workers (bench-worker), prints a table with the
// ratio clustervisor / baseline and the goal of each figure, and writes the same numbers as JSON.
// Each case starts its processes afresh in a temporary directory and reads what the workers
// measured from their results files (scenario.hpp); the driver itself measures only resident
// memory (from /proc) and start time. Each case runs on the baseline and then on clustervisor
// before the next case starts; with --runs N all of it runs N times, and the table shows
// medians (ratios: the median of the per-run ratios, so a noisy moment tends to fall on both
// sides of one ratio).
//
// Not a test: figures depend on the machine and its load. --smoke runs every case for a
// fraction of a second and fails only when a case produced no figure.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "scenario.hpp"

namespace fs = std::filesystem;
namespace json = boost::json;
namespace bench = clustervisor::bench;
using namespace std::chrono_literals;

namespace {

struct Options {
  double seconds = 2.0;
  int runs = 1;
  int big = 1024;      // clusters of the large memory case
  int restarts = 200;  // restart samples
  bool smoke = false;
  std::string jsonPath;
  std::vector<std::string> only;  // case groups to run; empty: all
  std::string side;               // "baseline" or "clustervisor": run only that side
  fs::path clustervisor = CLUSTERVISOR_BINARY;
  fs::path worker;
  fs::path baseline;
};

[[noreturn]] void usage(const std::string& error) {
  std::fprintf(stderr,
               "clustervisor-bench: %s\n"
               "usage: clustervisor-bench [--seconds S] [--runs N] [--json PATH] [--smoke]\n"
               "                          [--big CLUSTERS] [--restarts N] [--only GROUP,...]\n"
               "                          [--side baseline|clustervisor]\n"
               "groups: unicast broadcast roundtrip wait restart memory json stall\n",
               error.c_str());
  std::exit(64);
}

// --- processes -----------------------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  std::int64_t startedNs = 0;
};

Child launch(const std::vector<std::string>& args, const fs::path& log,
             const std::map<std::string, std::string>& environment = {}) {
  std::vector<char*> argv;
  std::vector<std::string> copy = args;
  for (auto& a : copy) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  Child child;
  child.startedNs = bench::nowNs();
  child.pid = ::fork();
  if (child.pid == 0) {
    ::setpgid(0, 0);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    for (const auto& [key, value] : environment) {
      ::setenv(key.c_str(), value.c_str(), 1);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return child;
}

bool exited(const Child& child, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    int status = 0;
    if (::waitpid(child.pid, &status, WNOHANG) == child.pid) {
      return true;
    }
    std::this_thread::sleep_for(5ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

// SIGTERM, then SIGKILL to its whole process group if it takes too long.
void stop(const Child& child) {
  ::kill(child.pid, SIGTERM);
  if (!exited(child, 30s)) {
    ::kill(-child.pid, SIGKILL);
    exited(child, 5s);
  }
}

std::int64_t rssKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::atoll(line.c_str() + 6);
    }
  }
  return -1;
}

// --- results files -------------------------------------------------------------------------

struct Results {
  std::map<std::string, std::int64_t> values;
  std::vector<std::int64_t> samples;
};

std::optional<Results> readResults(const fs::path& dir, int id) {
  std::ifstream in(bench::resultsPath(dir, static_cast<std::uint32_t>(id)));
  if (!in) {
    return std::nullopt;
  }
  Results r;
  for (std::string key; in >> key;) {
    std::int64_t value = 0;
    in >> value;
    if (key == "samples") {
      r.samples.resize(static_cast<std::size_t>(value));
      for (auto& s : r.samples) {
        in >> s;
      }
      break;
    }
    r.values[key] = value;
  }
  return r;
}

// Waits until every worker in `ids` wrote its results, or `timeout`.
std::optional<std::vector<Results>> awaitResults(const fs::path& dir, const std::vector<int>& ids,
                                                 const Child& owner,
                                                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<Results> all;
    for (const int id : ids) {
      if (auto r = readResults(dir, id)) {
        all.push_back(std::move(*r));
      }
    }
    if (all.size() == ids.size()) {
      return all;
    }
    int status = 0;
    if (std::chrono::steady_clock::now() > deadline ||
        ::waitpid(owner.pid, &status, WNOHANG) == owner.pid) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(2ms);
  }
}

double percentile(std::vector<std::int64_t> samples, double p) {
  if (samples.empty()) {
    return std::nan("");
  }
  std::sort(samples.begin(), samples.end());
  const auto index = static_cast<std::size_t>(
      std::min<double>(static_cast<double>(samples.size() - 1),
                       std::floor(p * static_cast<double>(samples.size()))));
  return static_cast<double>(samples[index]);
}

double median(std::vector<double> values) {
  std::erase_if(values, [](double v) { return std::isnan(v); });
  if (values.empty()) {
    return std::nan("");
  }
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// --- one run of a scenario -------------------------------------------------------------------

enum class Side { kBaseline, kClustervisor };

// events.outbox_limit of the stalled-worker case.
constexpr int kStallOutboxLimitMiB = 8;

struct Scenario {
  std::string name;  // scenario.hpp case
  int clusters = 2;
  bool json = false;
  double seconds = 1;
  bool ioThread = false;  // SDK workers: ClusterOptions::listenersOnIoThread
};

using Figures = std::map<std::string, double>;

// The figures of a run with listeners on the SDK's I/O thread: "io_" before each name.
Figures ioNamed(const Figures& figures) {
  Figures named;
  for (const auto& [name, value] : figures) {
    named["io_" + name] = value;
  }
  return named;
}

class Bench {
 public:
  explicit Bench(Options options) : o_(std::move(options)) {}

  // Runs `s` on one side in a fresh directory; `measure` turns the started process and its
  // directory into figures. Figures stay empty when the run failed.
  template <typename Measure>
  Figures run(Side side, const Scenario& s, Measure measure) {
    const fs::path dir = freshDirectory();
    const std::map<std::string, std::string> env = {{bench::kEnvCase, s.name},
                                                    {bench::kEnvDir, dir.string()},
                                                    {bench::kEnvSeconds, std::to_string(s.seconds)},
                                                    {bench::kEnvJson, s.json ? "1" : "0"},
                                                    {bench::kEnvIoThread, s.ioThread ? "1" : "0"}};
    Child child;
    if (side == Side::kBaseline) {
      child = launch({o_.baseline.string(), "relay", s.name, std::to_string(s.clusters)},
                     dir / "baseline.log", env);
    } else {
      child = launch({o_.clustervisor.string(), "run", writeConfig(dir, s, env).string()},
                     dir / "clustervisor.log");
    }
    Figures figures = measure(child, dir);
    stop(child);
    if (figures.empty()) {
      report(side, s, dir);
    } else {
      fs::remove_all(dir);
    }
    return figures;
  }

  Figures stream(Side side, const Scenario& s) {
    return run(side, s, [&](const Child& child, const fs::path& dir) -> Figures {
      std::vector<int> ids;
      for (int id = 0; id < s.clusters; ++id) {
        ids.push_back(id);
      }
      const auto results = awaitResults(dir, ids, child, timeoutFor(s));
      if (!results) {
        return {};
      }
      const auto start = (*results)[0].values.at("start_ns");
      const auto sent = (*results)[0].values.at("sent");
      std::int64_t lastEnd = start;
      std::int64_t delivered = 0;
      std::int64_t fewest = sent;
      for (std::size_t i = 1; i < results->size(); ++i) {
        lastEnd = std::max(lastEnd, (*results)[i].values.at("end_ns"));
        delivered += (*results)[i].values.at("received");
        fewest = std::min(fewest, (*results)[i].values.at("received"));
      }
      const double seconds = static_cast<double>(lastEnd - start) / 1e9;
      return {{"events_per_s", static_cast<double>(fewest) / seconds},
              {"deliveries_per_s", static_cast<double>(delivered) / seconds},
              {"lost", static_cast<double>(sent * (s.clusters - 1) - delivered)}};
    });
  }

  Figures latency(Side side, const Scenario& s) {
    return run(side, s, [&](const Child& child, const fs::path& dir) -> Figures {
      const auto results = awaitResults(dir, {0}, child, timeoutFor(s));
      if (!results || (*results)[0].samples.empty()) {
        return {};
      }
      const auto& samples = (*results)[0].samples;
      return {{"p50_us", percentile(samples, 0.50) / 1e3},
              {"p99_us", percentile(samples, 0.99) / 1e3},
              {"count", static_cast<double>(samples.size())}};
    });
  }

  Figures memory(Side side, const Scenario& s) {
    return run(side, s, [&](const Child& child, const fs::path& dir) -> Figures {
      const auto results = awaitResults(dir, {0}, child, timeoutFor(s));
      if (!results || (*results)[0].values.at("acked") != s.clusters - 1) {
        return {};
      }
      const auto startMs =
          static_cast<double>((*results)[0].values.at("connected_ns") - child.startedNs) / 1e6;
      std::this_thread::sleep_for(300ms);  // let the broadcast's buffers go
      return {{"start_ms", startMs}, {"rss_kib", static_cast<double>(rssKiB(child.pid))}};
    });
  }

  Figures restart(Side side) {
    const fs::path dir = freshDirectory();
    const fs::path log = dir / bench::kRestartLog;
    Child child;
    if (side == Side::kBaseline) {
      child =
          launch({o_.baseline.string(), "restart", o_.worker.string(), std::to_string(o_.restarts)},
                 dir / "baseline.log", {{bench::kEnvDir, dir.string()}});
      if (!exited(child, 120s)) {
        stop(child);
      }
    } else {
      Scenario s{std::string(bench::kRestart), 1, false, 0};
      child =
          launch({o_.clustervisor.string(), "run",
                  writeConfig(dir, s, {{bench::kEnvCase, s.name}, {bench::kEnvDir, dir}}).string()},
                 dir / "clustervisor.log");
      const auto deadline = std::chrono::steady_clock::now() + 120s;
      while (countLines(log, "connected") <= static_cast<std::size_t>(o_.restarts) &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
      }
      std::ofstream(dir / bench::kStopRestartingFile) << "1\n";
      stop(child);
    }
    // connected[i+1] - died[i]: from one worker's death to its replacement's handshake.
    std::vector<std::int64_t> samples;
    std::optional<std::int64_t> died;
    std::ifstream in(log);
    for (std::string what; in >> what;) {
      std::int64_t at = 0;
      in >> at;
      if (what == "died") {
        died = at;
      } else if (died) {
        samples.push_back(at - *died);
        died.reset();
      }
    }
    if (samples.size() < static_cast<std::size_t>(o_.restarts)) {
      report(side, Scenario{"restart", 1, false, 0}, dir);
      return {};
    }
    fs::remove_all(dir);
    return {{"p50_ms", percentile(samples, 0.5) / 1e6}, {"p90_ms", percentile(samples, 0.9) / 1e6}};
  }

  // One of 16 workers stops reading (SIGSTOP); the other 15 broadcast as fast as they can.
  Figures stall(const Scenario& s) {
    return run(Side::kClustervisor, s, [&](const Child& child, const fs::path& dir) -> Figures {
      if (!awaitResults(dir, {0}, child, timeoutFor(s))) {
        return {};
      }
      std::ifstream pidFile(dir / ("pid-" + std::to_string(s.clusters - 1)));
      pid_t stalled = 0;
      pidFile >> stalled;
      if (stalled <= 0) {
        return {};
      }
      ::kill(stalled, SIGSTOP);
      const auto idleRss = rssKiB(child.pid);
      std::ofstream(dir / "go") << "1\n";
      std::int64_t peak = 0;
      const auto until = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(static_cast<int>(s.seconds * 1000) + 500);
      while (std::chrono::steady_clock::now() < until) {
        peak = std::max(peak, rssKiB(child.pid));
        std::this_thread::sleep_for(10ms);
      }
      // What the supervisor holds for the stalled worker and for the busiest other one.
      double dropped = std::nan("");  // the supervisor's own count
      double stalledQueued = std::nan("");
      double othersQueued = std::nan("");
      const Child status =
          launch({o_.clustervisor.string(), "status", "--json", (dir / "bench.toml").string()},
                 dir / "status.json");
      if (exited(status, 10s)) {
        std::ifstream in(dir / "status.json");
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        boost::system::error_code ec;
        const auto doc = json::parse(text, ec);
        if (!ec && doc.is_object() && doc.as_object().contains("clusters")) {
          othersQueued = 0;
          if (const auto* totals = doc.as_object().if_contains("totals")) {
            if (const auto* d = totals->as_object().if_contains("dropped_events")) {
              dropped = d->to_number<double>();
            }
          }
          for (const auto& c : doc.at("clusters").as_array()) {
            const auto id = c.at("id").to_number<int>();
            const auto queued = c.at("queued_bytes").to_number<double>();
            if (id == s.clusters - 1) {
              stalledQueued = queued;
            } else {
              othersQueued = std::max(othersQueued, queued);
            }
          }
        }
      }
      ::kill(stalled, SIGCONT);
      return {{"idle_rss_kib", static_cast<double>(idleRss)},
              {"peak_rss_kib", static_cast<double>(peak)},
              {"stalled_queued_kib", stalledQueued / 1024},
              {"others_queued_kib", othersQueued / 1024},
              {"dropped", dropped}};
    });
  }

 private:
  static std::size_t countLines(const fs::path& file, const std::string& word) {
    std::ifstream in(file);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      n += line.rfind(word, 0) == 0 ? 1u : 0u;
    }
    return n;
  }

  static std::chrono::milliseconds timeoutFor(const Scenario& s) {
    return std::chrono::milliseconds(static_cast<int>(s.seconds * 4000) + 30000 + s.clusters * 60);
  }

  fs::path freshDirectory() {
    std::string templ = (fs::temp_directory_path() / "clustervisor-bench-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(71);
    }
    return templ;
  }

  fs::path writeConfig(const fs::path& dir, const Scenario& s,
                       const std::map<std::string, std::string>& env) const {
    std::ostringstream toml;
    toml << "command = [\"" << o_.worker.string() << "\"]\n"
         << "clusters = " << s.clusters << "\n"
         << "environment = {";
    const char* comma = " ";
    for (const auto& [key, value] : env) {
      toml << comma << key << " = \"" << value << "\"";
      comma = ", ";
    }
    toml << " }\n"
         << "[start]\nready = \"connect\"\ntimeout = \"10m\"\n"
         << "[restart]\npolicy = \"" << (s.name == bench::kRestart ? "always" : "never")
         << "\"\ndelay = \"0s\"\nlimit = 0\n"
         << "[stop]\ntimeout = \"5s\"\n";
    if (s.name == bench::kFlood) {
      // Small enough for a few seconds of flooding to reach it on a slow machine, so the run
      // shows the bound at work; the default (64 MiB) behaves the same, only later.
      toml << "[events]\noutbox_limit = \"" << kStallOutboxLimitMiB << "MiB\"\n";
    }
    const fs::path path = dir / "bench.toml";
    std::ofstream(path) << toml.str();
    return path;
  }

  void report(Side side, const Scenario& s, const fs::path& dir) const {
    std::fprintf(stderr, "clustervisor-bench: %s %s (%d clusters) produced no figures; kept %s\n",
                 side == Side::kBaseline ? "baseline" : "clustervisor", s.name.c_str(), s.clusters,
                 dir.c_str());
  }

  Options o_;
};

// --- the table -------------------------------------------------------------------------------

enum class Goal { kNone, kRatioAtLeast, kRatioAtMost, kAbsoluteAtLeast };

struct Row {
  Row(std::string k, std::string l, std::string u, Goal g = Goal::kNone, double t = 0,
      bool only = false)
      : key(std::move(k)),
        label(std::move(l)),
        unit(std::move(u)),
        goal(g),
        target(t),
        clustervisorOnly(only) {}
  std::string key;    // "<case>.<figure>"
  std::string label;  // what the table shows
  std::string unit;
  Goal goal = Goal::kNone;
  double target = 0;
  bool clustervisorOnly = false;
  std::vector<double> baseline;  // one per run
  std::vector<double> clustervisor;
};

std::string formatNumber(double v) {
  if (std::isnan(v)) {
    return "-";
  }
  char text[32];
  const double a = std::fabs(v);
  if (a >= 1e6) {
    std::snprintf(text, sizeof text, "%.2fM", v / 1e6);
  } else if (a >= 1e4) {
    std::snprintf(text, sizeof text, "%.0fk", v / 1e3);
  } else if (a >= 100) {
    std::snprintf(text, sizeof text, "%.0f", v);
  } else {
    std::snprintf(text, sizeof text, "%.2f", v);
  }
  return text;
}

std::string goalText(const Row& row) {
  char text[48];
  switch (row.goal) {
    case Goal::kNone:
      return "";
    case Goal::kRatioAtLeast:
      std::snprintf(text, sizeof text, ">= %.2gx", row.target);
      return text;
    case Goal::kRatioAtMost:
      std::snprintf(text, sizeof text, "<= %.2gx", row.target);
      return text;
    case Goal::kAbsoluteAtLeast:
      return ">= " + formatNumber(row.target);
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const fs::path self = fs::canonical("/proc/self/exe").parent_path();
  o.worker = self / "bench-worker";
  o.baseline = self / "bench-baseline";
  std::optional<double> seconds;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage(arg + " needs a value");
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: clustervisor-bench [options]\n"
          "  --seconds S        how long each case runs (default 2)\n"
          "  --runs N           run everything N times; the table shows medians (default 1)\n"
          "  --json PATH        also write the figures as JSON\n"
          "  --only G,...       only these groups: unicast broadcast roundtrip wait restart\n"
          "                     memory json stall\n"
          "  --side S           only the baseline or only clustervisor\n"
          "  --big N            clusters of the large memory case (default 1024)\n"
          "  --restarts N       restart samples (default 200)\n"
          "  --smoke            every case briefly; fails only when a case gave no figure\n");
      return 0;
    }
    if (arg == "--seconds") {
      seconds = std::atof(value().c_str());
    } else if (arg == "--runs") {
      o.runs = std::max(1, std::atoi(value().c_str()));
    } else if (arg == "--json") {
      o.jsonPath = value();
    } else if (arg == "--big") {
      o.big = std::max(24, std::atoi(value().c_str()));
    } else if (arg == "--restarts") {
      o.restarts = std::max(2, std::atoi(value().c_str()));
    } else if (arg == "--only") {
      std::stringstream list(value());
      for (std::string group; std::getline(list, group, ',');) {
        o.only.push_back(group);
      }
    } else if (arg == "--side") {
      o.side = value();
      if (o.side != "baseline" && o.side != "clustervisor") {
        usage("--side takes baseline or clustervisor");
      }
    } else if (arg == "--smoke") {
      o.smoke = true;
      o.seconds = 0.1;
      o.big = 24;
      o.restarts = 5;
    } else if (arg == "--clustervisor") {
      o.clustervisor = value();
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (seconds) {
    o.seconds = *seconds;
  }
  const auto wanted = [&](const std::string& group) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), group) != o.only.end();
  };

  const double d = o.seconds;
  const std::string big = std::to_string(o.big);
  // The middle point of the memory case; a smoke run skips it (and the linearity figure).
  const int mid = o.smoke ? 16 : (o.big >= 512 ? 256 : std::max(20, o.big / 2));
  std::vector<Row> rows = {
      {"unicast.events_per_s", "1  unicast A->B, text", "events/s", Goal::kRatioAtLeast, 0.5},
      {"broadcast4.events_per_s", "2  broadcast N=4", "events/s", Goal::kRatioAtLeast, 0.5},
      {"broadcast4.deliveries_per_s", "2  broadcast N=4", "deliveries/s"},
      {"broadcast16.events_per_s", "2  broadcast N=16", "events/s", Goal::kRatioAtLeast, 0.5},
      {"broadcast16.deliveries_per_s", "2  broadcast N=16", "deliveries/s"},
      {"roundtrip.p50_us", "3  round trip A->B->A p50", "us", Goal::kRatioAtMost, 1.3},
      {"roundtrip.p99_us", "3  round trip A->B->A p99", "us", Goal::kRatioAtMost, 1.5},
      {"wait4.p50_us", "4  broadcastAndWait N=4 p50", "us", Goal::kRatioAtMost, 1.5},
      {"wait4.p99_us", "4  broadcastAndWait N=4 p99", "us", Goal::kRatioAtMost, 2},
      {"wait16.p50_us", "4  broadcastAndWait N=16 p50", "us", Goal::kRatioAtMost, 1.5},
      {"wait16.p99_us", "4  broadcastAndWait N=16 p99", "us", Goal::kRatioAtMost, 2},
      {"restart.p50_ms", "5  restart, death->connected p50", "ms", Goal::kRatioAtMost, 2},
      {"restart.p90_ms", "5  restart, death->connected p90", "ms"},
      {"idle16.rss_kib", "6  RSS, 16 idle clusters", "KiB", Goal::kRatioAtMost, 2},
      {"idleMid.rss_kib", "6  RSS, " + std::to_string(mid) + " clusters", "KiB"},
      {"idleBig.start_ms", "6  start, " + big + " clusters", "ms"},
      {"idleBig.rss_kib", "6  RSS, " + big + " clusters", "KiB"},
      {"idleBig.bytes_per_cluster", "6  bytes/cluster 16->" + big, "B"},
      {"idleBig.linearity",
       "6  slope " + std::to_string(mid) + "->" + big + " / 16->" + std::to_string(mid), "x"},
      {"json.unicast.events_per_s", "7  unicast A->B, json::value", "events/s",
       Goal::kAbsoluteAtLeast, 1e6},
      {"json.broadcast16.events_per_s", "7  broadcast N=16, json::value", "events/s"},
      {"json.wait16.p50_us", "7  broadcastAndWait N=16 p50, json::value", "us"},
      {"stall.idle_rss_kib", "8  RSS, 16 clusters before the flood", "KiB", Goal::kNone, 0, true},
      {"stall.peak_rss_kib", "8  peak RSS, 1 of 16 stalled, 15 flood", "KiB", Goal::kNone, 0, true},
      {"stall.stalled_queued_kib",
       "8  queued for the stalled one (limit " + std::to_string(kStallOutboxLimitMiB) + " MiB)",
       "KiB", Goal::kNone, 0, true},
      {"stall.others_queued_kib", "8  queued for the busiest other", "KiB", Goal::kNone, 0, true},
      {"stall.dropped", "8  events dropped (outbox full)", "events", Goal::kNone, 0, true},
  };
  // The cases run twice (see `both` below) get a row for each io-thread figure right after
  // its own, with the same goal.
  const std::set<std::string> twice = {"unicast", "broadcast4", "broadcast16", "roundtrip",
                                       "wait4",   "wait16",     "json.unicast"};
  for (auto it = rows.begin(); it != rows.end(); ++it) {
    if (twice.contains(it->key.substr(0, it->key.rfind('.')))) {
      Row io = *it;
      const auto dot = io.key.rfind('.');
      io.key = io.key.substr(0, dot) + ".io_" + io.key.substr(dot + 1);
      io.label += ", io-thread";
      it = rows.insert(it + 1, std::move(io));
    }
  }
  const auto record = [&](const std::string& prefix, Side side, const Figures& figures) {
    for (const auto& [name, value] : figures) {
      for (auto& r : rows) {
        if (r.key == prefix + "." + name) {
          (side == Side::kBaseline ? r.baseline : r.clustervisor).push_back(value);
        }
      }
    }
  };

  Bench bench(o);
  // Cases 1-4 and the unicast of case 7 run twice on the clustervisor side: with the SDK's
  // default threads, and with listeners on its I/O thread ("io_" figures). Both are compared
  // with the same baseline.
  const auto both = [&](const std::string& prefix, const Scenario& s, auto measure) {
    return [&, prefix, s, measure](Side side) {
      const Figures figures = measure(side, s);
      record(prefix, side, figures);
      if (side == Side::kBaseline) {
        record(prefix, side, ioNamed(figures));
        return;
      }
      Scenario io = s;
      io.ioThread = true;
      record(prefix, side, ioNamed(measure(side, io)));
    };
  };
  const auto stream = [&](Side side, const Scenario& s) { return bench.stream(side, s); };
  const auto latency = [&](Side side, const Scenario& s) { return bench.latency(side, s); };
  const auto memory = [&](Side side) {
    const auto small = bench.memory(side, {"idle", 16, false, d});
    const auto middle = mid == 16 ? small : bench.memory(side, {"idle", mid, false, d});
    const auto large = bench.memory(side, {"idle", o.big, false, d});
    record("idle16", side, small);
    record("idleMid", side, middle);
    record("idleBig", side, large);
    if (small.contains("rss_kib") && middle.contains("rss_kib") && large.contains("rss_kib")) {
      // Linear growth: the slope over the second stretch is about that over the first.
      const double first =
          mid > 16 ? (middle.at("rss_kib") - small.at("rss_kib")) / (mid - 16) : std::nan("");
      const double second =
          o.big > mid ? (large.at("rss_kib") - middle.at("rss_kib")) / (o.big - mid) : std::nan("");
      record(
          "idleBig", side,
          {{"bytes_per_cluster", (large.at("rss_kib") - small.at("rss_kib")) * 1024 / (o.big - 16)},
           {"linearity", first > 0 ? second / first : std::nan("")}});
    }
  };
  // Each case runs on both sides one right after the other, so that a busy moment on the
  // machine falls on both sides of a ratio rather than on one side of many.
  struct Case {
    std::string group;
    std::function<void(Side)> run;
  };
  const std::vector<Case> cases = {
      {"unicast", both("unicast", {"unicast", 2, false, d}, stream)},
      {"broadcast", both("broadcast4", {"broadcast", 4, false, d}, stream)},
      {"broadcast", both("broadcast16", {"broadcast", 16, false, d}, stream)},
      {"roundtrip", both("roundtrip", {"roundtrip", 2, false, d}, latency)},
      {"wait", both("wait4", {"wait", 4, false, d}, latency)},
      {"wait", both("wait16", {"wait", 16, false, d}, latency)},
      {"restart", [&](Side side) { record("restart", side, bench.restart(side)); }},
      {"memory", memory},
      // The baseline has no JSON: its column repeats the plain relay for reference.
      {"json",
       [&](Side side) {
         const bool asJson = side == Side::kClustervisor;
         both("json.unicast", {"unicast", 2, asJson, d}, stream)(side);
         record("json.broadcast16", side, bench.stream(side, {"broadcast", 16, asJson, d}));
         record("json.wait16", side, bench.latency(side, {"wait", 16, asJson, d}));
       }},
      {"stall",
       [&](Side side) {
         if (side == Side::kClustervisor) {
           record("stall", side,
                  bench.stall({"flood", 16, false, o.smoke ? 0.3 : std::max(d, 3.0)}));
         }
       }},
  };
  for (int run = 1; run <= o.runs; ++run) {
    std::fprintf(stderr, "clustervisor-bench: run %d of %d\n", run, o.runs);
    for (const auto& c : cases) {
      if (!wanted(c.group)) {
        continue;
      }
      for (const Side side : {Side::kBaseline, Side::kClustervisor}) {
        if (o.side.empty() || o.side == (side == Side::kBaseline ? "baseline" : "clustervisor")) {
          c.run(side);
        }
      }
    }
  }

  // Medians, ratios, goals.
  std::printf("\n%-46s %-13s %10s %12s %8s %9s  %s\n", "case", "unit", "baseline", "clustervisor",
              "ratio", "goal", "");
  json::array jsonRows;
  bool missing = false;
  bool allMet = true;
  for (auto& r : rows) {
    const auto prefix = r.key.substr(0, r.key.find('.'));
    const bool ran = (prefix == "unicast" && wanted("unicast")) ||
                     (prefix.rfind("broadcast", 0) == 0 && wanted("broadcast")) ||
                     (prefix == "roundtrip" && wanted("roundtrip")) ||
                     (prefix.rfind("wait", 0) == 0 && wanted("wait")) ||
                     (prefix == "restart" && wanted("restart")) ||
                     (prefix.rfind("idle", 0) == 0 && wanted("memory")) ||
                     (prefix == "json" && wanted("json")) || (prefix == "stall" && wanted("stall"));
    if (!ran) {
      continue;
    }
    const double b = median(r.baseline);
    const double c = median(r.clustervisor);
    std::vector<double> ratios;
    for (std::size_t i = 0; i < std::min(r.baseline.size(), r.clustervisor.size()); ++i) {
      ratios.push_back(r.clustervisor[i] / r.baseline[i]);
    }
    const double ratio = r.clustervisorOnly ? std::nan("") : median(ratios);
    std::optional<bool> met;
    switch (std::isnan(ratio) && r.goal != Goal::kAbsoluteAtLeast ? Goal::kNone : r.goal) {
      case Goal::kNone:
        break;
      case Goal::kRatioAtLeast:
        met = ratio >= r.target;
        break;
      case Goal::kRatioAtMost:
        met = ratio <= r.target;
        break;
      case Goal::kAbsoluteAtLeast:
        if (!std::isnan(c)) {
          met = c >= r.target;
        }
        break;
    }
    // The linearity ratio is undefined when memory did not grow measurably at first.
    // (A side left out with --side has no figures by request.)
    const bool baselineRan = o.side != "clustervisor" && !r.clustervisorOnly;
    const bool clustervisorRan = o.side != "baseline";
    if (r.key != "idleBig.linearity" &&
        ((clustervisorRan && std::isnan(c)) || (baselineRan && std::isnan(b)))) {
      missing = true;
    }
    if (met && !*met) {
      allMet = false;
    }
    char ratioText[32] = "-";
    if (!std::isnan(ratio)) {
      std::snprintf(ratioText, sizeof ratioText, "%.2fx", ratio);
    }
    std::printf("%-46s %-13s %10s %12s %8s %9s  %s\n", r.label.c_str(), r.unit.c_str(),
                formatNumber(b).c_str(), formatNumber(c).c_str(), ratioText, goalText(r).c_str(),
                met ? (*met ? "met" : "MISSED") : "");
    const auto number = [](double v) -> json::value {
      return std::isnan(v) ? json::value(nullptr) : json::value(v);
    };
    json::array baselineRuns, clustervisorRuns;
    for (double v : r.baseline) {
      baselineRuns.push_back(number(v));
    }
    for (double v : r.clustervisor) {
      clustervisorRuns.push_back(number(v));
    }
    jsonRows.push_back(json::object{
        {"key", r.key},
        {"label", r.label},
        {"unit", r.unit},
        {"baseline", number(b)},
        {"clustervisor", number(c)},
        {"ratio", number(ratio)},
        {"goal", goalText(r)},
        {"met", met ? json::value(*met) : json::value(nullptr)},
        {"runs", json::object{{"baseline", baselineRuns}, {"clustervisor", clustervisorRuns}}}});
  }
  std::printf(
      "\nmedian of %d run(s), %.2f s per case; ratio = clustervisor / baseline "
      "(median of per-run ratios)\n",
      o.runs, o.seconds);
  if (!o.jsonPath.empty()) {
    std::ofstream(o.jsonPath) << json::serialize(json::object{{"runs", o.runs},
                                                              {"seconds_per_case", o.seconds},
                                                              {"big_clusters", o.big},
                                                              {"restart_samples", o.restarts},
                                                              {"cases", jsonRows}})
                              << "\n";
  }
  if (missing) {
    std::fprintf(stderr, "clustervisor-bench: some cases produced no figures (see above)\n");
    return 1;
  }
  if (!allMet) {
    std::printf("some goals are missed (MISSED above); see README.md, \"Performance\"\n");
  }
  return 0;
}
