// SPDX-License-Identifier: MIT
#include "toml_precheck.hpp"

#include <algorithm>

namespace clustervisor::config {

bool isBareKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

namespace {

bool isQuote(char c) {
  return c == '"' || c == '\'';
}

bool isContinuationByte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U;
}

bool isAscii(char c) {
  return (static_cast<unsigned char>(c) & 0x80U) == 0;
}

// The code point of the well-formed UTF-8 sequence at text[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or -1 when there is none.
long codePointAt(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) -> unsigned {
    return k < text.size() ? static_cast<unsigned char>(text[k]) : 0U;
  };
  const unsigned lead = byte(i);
  std::size_t length = 0;
  unsigned low = 0x80;
  unsigned high = 0xBF;
  unsigned value = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    value = lead & 0x1FU;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    value = lead & 0x0FU;
    low = lead == 0xE0 ? 0xA0 : 0x80;
    high = lead == 0xED ? 0x9F : 0xBF;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    value = lead & 0x07U;
    low = lead == 0xF0 ? 0x90 : 0x80;
    high = lead == 0xF4 ? 0x8F : 0xBF;
  } else {
    return -1;
  }
  if (byte(i + 1) < low || byte(i + 1) > high) {
    return -1;
  }
  for (std::size_t k = 1; k < length; ++k) {
    if (k > 1 && (byte(i + k) < 0x80 || byte(i + k) > 0xBF)) {
      return -1;
    }
    value = (value << 6U) | (byte(i + k) & 0x3FU);
  }
  return static_cast<long>(value);
}

std::size_t utf8Length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

std::string codePointName(long codePoint) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string digits;
  for (auto value = static_cast<unsigned long>(codePoint); value != 0 || digits.size() < 4;
       value >>= 4U) {
    digits.insert(digits.begin(), kHex[value & 0xFU]);
  }
  return "U+" + digits;
}

// A character for a message: itself when printable ASCII, else its byte value.
std::string shown(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20U && byte < 0x7FU) {
    return std::string("'") + c + "'";
  }
  constexpr std::string_view kHex = "0123456789ABCDEF";
  return std::string("byte 0x") + kHex[byte >> 4U] + kHex[byte & 0xFU];
}

// Every loop below consumes at least one byte per turn or returns, and every level of recursion
// (an array element, an inline-table key) first passes enter(), which stops the scan beyond
// maxDepth: the scan is linear in the text and its own recursion is bounded.
constexpr std::string_view kNonAsciiInKey =
    "non-ASCII character % in a key (every key of a bot.toml is ASCII)";

class Scanner {
 public:
  Scanner(std::string_view text, std::size_t maxDepth) : text_(text), maxDepth_(maxDepth) {}

  TomlPrecheck run() {
    checkUtf8();
    if (stopped()) {
      return std::move(result_);
    }
    line_ = 1;
    column_ = 1;
    pos_ = 0;
    if (text_.starts_with("\xEF\xBB\xBF")) {
      pos_ = 3;  // toml++ skips a byte order mark
    }
    while (!stopped() && !atEnd()) {
      skipSpaces();
      if (atEnd()) {
        break;
      }
      const char c = peek();
      if (c == '\n' || c == '\r') {
        advance();
      } else if (c == '#') {
        skipComment();
      } else if (c == '[') {
        tableHeader();
        skipRestOfLine();
      } else {
        keyValue(base_);
        skipRestOfLine();
      }
    }
    return std::move(result_);
  }

 private:
  struct Position {
    std::uint32_t line;
    std::uint32_t column;
  };

  bool atEnd() const { return pos_ >= text_.size(); }
  bool stopped() const { return !result_.ok(); }
  char peek(std::size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  Position here() const { return {line_, column_}; }

  // Columns count characters, as toml++'s do: continuation bytes of UTF-8 add none.
  void advance() {
    if (atEnd()) {
      return;
    }
    const char left = text_[pos_++];
    if (left == '\n') {
      ++line_;
      column_ = 1;
    } else if (atEnd() || !isContinuationByte(text_[pos_])) {
      ++column_;
    }
  }

  // The first problem stops the scan; callers unwinding from it may report nothing more.
  void fail(Position at, std::string problem) {
    if (stopped()) {
      return;
    }
    result_.problem = std::move(problem);
    result_.line = at.line;
    result_.column = at.column;
  }

  // toml++ reports malformed UTF-8 one character early (at the end of the line before, for one
  // at the start of a line); this names the byte itself.
  void checkUtf8() {
    while (!atEnd()) {
      if (isAscii(peek())) {
        advance();
        continue;
      }
      if (codePointAt(text_, pos_) < 0) {
        fail(here(), "invalid UTF-8 (" + shown(peek()) + "); a bot.toml must be UTF-8");
        return;
      }
      for (std::size_t n = utf8Length(static_cast<unsigned char>(peek())); n > 0; --n) {
        advance();
      }
    }
  }

  // At a byte above 0x7F where toml++ would ask whether the character is whitespace or ends a
  // value: its functions for that are undefined behaviour (TOML_UNREACHABLE) for many code points
  // (U+00A1 to U+049A among them). A well-formed character is refused with `what` (the text is
  // known to be UTF-8 by then).
  void nonAscii(std::string_view what) {
    if (stopped()) {
      return;
    }
    const std::string name = codePointName(codePointAt(text_, pos_));
    std::string problem(what);
    problem.replace(problem.find('%'), 1, name);
    fail(here(), std::move(problem));
  }
  void unexpectedNonAscii() {
    nonAscii("unexpected character % (outside strings and comments TOML allows only ASCII)");
  }

  // A node at `depth` (the root table is 0) begins at `at`.
  bool enter(std::size_t depth, Position at) {
    result_.depth = std::max(result_.depth, depth);
    if (depth > maxDepth_) {
      fail(at, "tables, arrays and dotted keys nested more than " + std::to_string(maxDepth_) +
                   " levels deep (a bot.toml needs two)");
      return false;
    }
    return true;
  }

  void skipSpaces() {
    while (!atEnd() && (peek() == ' ' || peek() == '\t')) {
      advance();
    }
  }

  void skipComment() {
    while (!atEnd() && peek() != '\n') {
      advance();
    }
  }

  // Spaces, line breaks and comments: what may separate array elements.
  void skipBlank() {
    while (!atEnd()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        advance();
      } else if (c == '#') {
        skipComment();
      } else {
        return;
      }
    }
  }

  // What follows a value or a table header on its line; valid TOML has only a comment there,
  // and toml++ stops at anything else.
  void skipRestOfLine() {
    skipSpaces();
    if (!atEnd() && !isAscii(peek())) {
      unexpectedNonAscii();
      return;
    }
    while (!atEnd() && peek() != '\n') {
      advance();
    }
  }

  // At a quote: the whole string, basic or literal, one-line or multi-line. An unterminated
  // one-line string ends at the line break, as toml++ reports it there. A quoted key may not hold
  // non-ASCII characters: toml++ classifies each character of a key it reads.
  void skipString(bool isKey) {
    const char quote = peek();
    if (peek(1) == quote && peek(2) == quote) {
      advance();
      advance();
      advance();
      while (!stopped() && !atEnd()) {
        if (isKey && !isAscii(peek())) {
          nonAscii(kNonAsciiInKey);
        } else if (quote == '"' && peek() == '\\') {
          advance();
          afterMultiLineBackslash();
        } else if (peek() == quote && peek(1) == quote && peek(2) == quote) {
          advance();
          advance();
          advance();
          // Up to two quotes right before the closing delimiter belong to the string.
          for (int i = 0; i < 2 && peek() == quote; ++i) {
            advance();
          }
          return;
        } else {
          advance();
        }
      }
      return;
    }
    advance();
    while (!stopped() && !atEnd() && peek() != '\n') {
      const char c = peek();
      if (isKey && !isAscii(c)) {
        nonAscii(kNonAsciiInKey);
      } else if (quote == '"' && c == '\\') {
        advance();
        if (peek() != '\n') {
          advance();
        }
      } else {
        advance();
        if (c == quote) {
          return;
        }
      }
    }
  }

  // Just after a backslash in a multi-line basic string: toml++ asks whether the next character
  // is whitespace, and after a line-ending backslash whether each one is, up to the first that
  // is not.
  void afterMultiLineBackslash() {
    constexpr std::string_view kNonAsciiAfterBackslash =
        "non-ASCII character % right after a backslash in a multi-line string (write it as an "
        "escape such as \\u00E9)";
    if (atEnd()) {
      return;
    }
    const char c = peek();
    if (!isAscii(c)) {
      nonAscii(kNonAsciiAfterBackslash);
      return;
    }
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      advance();  // an escape such as \n; toml++ checks the rest
      return;
    }
    while (!atEnd() && (peek() == ' ' || peek() == '\t' || peek() == '\r' || peek() == '\n')) {
      advance();
    }
    if (!atEnd() && !isAscii(peek())) {
      nonAscii(kNonAsciiAfterBackslash);
    }
  }

  // A key, possibly dotted and quoted; returns its number of segments (0: no key here).
  std::size_t keySegments() {
    std::size_t segments = 0;
    for (;;) {
      skipSpaces();
      if (atEnd()) {
        break;
      }
      const char c = peek();
      if (isQuote(c)) {
        skipString(true);
      } else if (isBareKeyChar(c)) {
        while (!atEnd() && isBareKeyChar(peek())) {
          advance();
        }
        if (!atEnd() && !isAscii(peek())) {
          unexpectedNonAscii();
        }
      } else {
        if (!isAscii(c)) {
          unexpectedNonAscii();
        }
        break;
      }
      if (stopped()) {
        break;
      }
      ++segments;
      skipSpaces();
      if (peek() != '.' || atEnd()) {
        break;
      }
      advance();
    }
    return segments;
  }

  // Each segment of a key adds a level; once the text has an array of tables, a segment may
  // also pass through one of its elements, so each counts twice from then on.
  std::size_t levels(std::size_t segments) const { return segments * (arrayOfTables_ ? 2 : 1); }

  // [a.b] or [[a.b]]: sets the depth of the keys that follow.
  void tableHeader() {
    const Position at = here();
    advance();
    skipSpaces();
    bool isArray = false;
    if (peek() == '[' && !atEnd()) {
      isArray = true;
      arrayOfTables_ = true;
      advance();
      skipSpaces();
    }
    if (atEnd()) {
      return;
    }
    const char c = peek();
    if (!isAscii(c)) {
      unexpectedNonAscii();
      return;
    }
    if (c != ']' && !isBareKeyChar(c) && !isQuote(c)) {
      fail(here(),
           "Error while parsing key: expected bare key starting character or string delimiter, "
           "saw " +
               shown(c));
      return;
    }
    const std::size_t depth = levels(keySegments()) + (isArray ? 1 : 0);
    if (stopped() || !enter(depth, at)) {
      return;
    }
    base_ = depth;
    // The closing brackets, so that what follows them is checked as the rest of the line.
    skipSpaces();
    for (int i = 0; i < (isArray ? 2 : 1) && peek() == ']' && !atEnd(); ++i) {
      advance();
    }
  }

  // key = value, in the root table, a table or an inline table whose keys are at base + 1.
  void keyValue(std::size_t base) {
    const Position at = here();
    const std::size_t segments = keySegments();
    if (stopped()) {
      return;
    }
    if (segments == 0) {
      advance();  // not a key: toml++ reports it
      return;
    }
    const std::size_t depth = base + levels(segments);
    if (!enter(depth, at)) {
      return;
    }
    skipSpaces();
    if (peek() == '=' && !atEnd()) {
      advance();
      value(depth);
    }
  }

  // The value of a node at `depth`.
  void value(std::size_t depth) {
    skipSpaces();
    if (atEnd()) {
      return;
    }
    const char c = peek();
    if (c == '{') {
      advance();
      inlineTable(depth);
    } else if (c == '[') {
      advance();
      array(depth);
    } else if (isQuote(c)) {
      skipString(false);
    } else {
      // A number, date, time or boolean: toml++ reads ahead to the next character that ends a
      // value, asking of each whether it does.
      while (!atEnd()) {
        const char s = peek();
        if (!isAscii(s)) {
          unexpectedNonAscii();
          return;
        }
        if (s == ' ' || s == '\t' || (s >= '\n' && s <= '\r') || s == ']' || s == '}' || s == ',' ||
            s == '#') {
          break;
        }
        advance();
      }
    }
  }

  void inlineTable(std::size_t depth) {
    while (!stopped()) {
      skipBlank();
      if (atEnd()) {
        return;
      }
      const char c = peek();
      if (c == '}') {
        advance();
        return;
      }
      if (c == ',') {
        advance();
      } else {
        keyValue(depth);
      }
    }
  }

  void array(std::size_t depth) {
    while (!stopped()) {
      skipBlank();
      if (atEnd()) {
        return;
      }
      const char c = peek();
      if (c == ']') {
        advance();
        return;
      }
      if (c == ',') {
        advance();
        continue;
      }
      const std::size_t before = pos_;
      if (!enter(depth + 1, here())) {
        return;
      }
      value(depth + 1);
      if (pos_ == before) {
        advance();  // not a value: toml++ reports it
      }
    }
  }

  std::string_view text_;
  std::size_t maxDepth_;
  std::size_t pos_ = 0;
  std::uint32_t line_ = 1;
  std::uint32_t column_ = 1;
  std::size_t base_ = 0;  // depth of the table the last header opened
  bool arrayOfTables_ = false;
  TomlPrecheck result_;
};

}  // namespace

TomlPrecheck precheckToml(std::string_view text, std::size_t maxDepth) {
  return Scanner(text, maxDepth).run();
}

}  // namespace clustervisor::config
