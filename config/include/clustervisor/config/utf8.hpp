// SPDX-License-Identifier: MIT
//
// Cutting UTF-8 text short for messages and file names, on a character boundary.
#pragma once

#include <cstddef>
#include <string_view>

namespace clustervisor::config {

// The longest prefix of `text` of at most `maxBytes` bytes that does not end inside a UTF-8
// sequence (text that is not UTF-8 is cut before its continuation bytes the same way).
inline std::string_view utf8Prefix(std::string_view text, std::size_t maxBytes) {
  if (text.size() <= maxBytes) {
    return text;
  }
  std::size_t cut = maxBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) {
    --cut;  // text[cut] continues a sequence: it starts before the cut
  }
  return text.substr(0, cut);
}

}  // namespace clustervisor::config
