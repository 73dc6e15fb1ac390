// SPDX-License-Identifier: MIT
#include "metrics.hpp"

#include <charconv>
#include <cmath>

namespace clustervisor {

void MetricsText::appendEscaped(std::string_view text, bool quote) {
  for (const char c : text) {
    if (c == '\\') {
      text_ += "\\\\";
    } else if (c == '\n') {
      text_ += "\\n";
    } else if (quote && c == '"') {
      text_ += "\\\"";
    } else {
      text_ += c;
    }
  }
}

void MetricsText::family(std::string_view name, std::string_view type, std::string_view help) {
  name_ = name;
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  appendEscaped(help, false);  // HELP text escapes backslash and newline
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void MetricsText::labels(std::initializer_list<Label> labels) {
  text_ += name_;
  if (labels.size() == 0) {
    return;
  }
  text_ += '{';
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) {
      text_ += ',';
    }
    first = false;
    text_ += key;
    text_ += "=\"";
    appendEscaped(value, true);  // label values escape the quote as well
    text_ += '"';
  }
  text_ += '}';
}

void MetricsText::sample(std::initializer_list<Label> labelList, std::uint64_t value) {
  labels(labelList);
  text_ += ' ';
  text_ += std::to_string(value);
  text_ += '\n';
}

void MetricsText::sample(std::initializer_list<Label> labelList, double value) {
  labels(labelList);
  text_ += ' ';
  if (std::isnan(value)) {
    text_ += "NaN";
  } else if (std::isinf(value)) {
    text_ += value > 0 ? "+Inf" : "-Inf";
  } else {
    // The shortest text that reads back as the same double: 2.3, not 2.2999999999999998.
    char number[32];
    const auto end = std::to_chars(number, number + sizeof number, value).ptr;
    text_.append(number, end);
  }
  text_ += '\n';
}

}  // namespace clustervisor
