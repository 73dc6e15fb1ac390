// SPDX-License-Identifier: MIT
//
// UTF-8 text in messages and file names: cut short on a character boundary, and the control
// characters a terminal would act on.
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

// How many bytes at `text[i]` make a control character a terminal may act on: 1 for C0 and DEL,
// 2 for a C1 character (U+0080 to U+009F) in UTF-8, some of which terminals take as ESC and a
// letter; 0 for anything else.
inline std::size_t controlCharacterAt(std::string_view text, std::size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x20U || c == 0x7FU) {
    return 1;
  }
  if (c == 0xC2U && i + 1 < text.size()) {
    const auto next = static_cast<unsigned char>(text[i + 1]);
    return next >= 0x80U && next <= 0x9FU ? 2 : 0;
  }
  return 0;
}

}  // namespace clustervisor::config
