// SPDX-License-Identifier: MIT
//
// MetricsText: writes the Prometheus text exposition format (version 0.0.4), one metric family
// after another. Pure: the caller adds families and samples and takes the text.
//
//   MetricsText out;
//   out.family("clustervisor_cluster_restarts_total", "counter", "Restarts of each cluster.");
//   out.sample({{"cluster", "0"}}, 3);
//   out.text();  // "# HELP ...\n# TYPE ...\nclustervisor_cluster_restarts_total{cluster=\"0\"}
//   3\n"
//
// Label values are escaped as the format requires (backslash, double quote, newline); names are
// the caller's constants and are checked only by the tests.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace clustervisor {

class MetricsText {
 public:
  using Label = std::pair<std::string_view, std::string_view>;

  // Starts a family: its HELP and TYPE lines. `type` is "counter" or "gauge".
  void family(std::string_view name, std::string_view type, std::string_view help);
  // A sample of the current family.
  void sample(std::initializer_list<Label> labels, double value);
  void sample(std::initializer_list<Label> labels, std::uint64_t value);
  void sample(double value) { sample({}, value); }
  void sample(std::uint64_t value) { sample({}, value); }

  const std::string& text() const { return text_; }

  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void labels(std::initializer_list<Label> labels);
  // `text` with backslash and newline escaped, and the double quote too when `quote` is set.
  void appendEscaped(std::string_view text, bool quote);

  std::string text_;
  std::string name_;
};

}  // namespace clustervisor
