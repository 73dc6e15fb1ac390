// SPDX-License-Identifier: MIT
#include "toml_precheck.hpp"

#include <algorithm>

namespace clustervisor::config {
namespace {

bool isBareKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool isQuote(char c) {
  return c == '"' || c == '\'';
}

bool isContinuationByte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U;
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
class Scanner {
 public:
  Scanner(std::string_view text, std::size_t maxDepth) : text_(text), maxDepth_(maxDepth) {}

  TomlPrecheck run() {
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

  void fail(Position at, std::string problem) {
    result_.problem = std::move(problem);
    result_.line = at.line;
    result_.column = at.column;
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
    while (!atEnd() && peek() != '\n') {
      advance();
    }
  }

  // At a quote: the whole string, basic or literal, one-line or multi-line. An unterminated
  // one-line string ends at the line break, as toml++ reports it there.
  void skipString() {
    const char quote = peek();
    if (peek(1) == quote && peek(2) == quote) {
      advance();
      advance();
      advance();
      while (!atEnd()) {
        if (quote == '"' && peek() == '\\') {
          advance();
          advance();
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
    while (!atEnd() && peek() != '\n') {
      const char c = peek();
      if (quote == '"' && c == '\\') {
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
        skipString();
      } else if (isBareKeyChar(c) || (static_cast<unsigned char>(c) & 0x80U) != 0) {
        // Non-ASCII bytes are not key characters, but toml++ reports them; count them as one.
        while (!atEnd() &&
               (isBareKeyChar(peek()) || (static_cast<unsigned char>(peek()) & 0x80U) != 0)) {
          advance();
        }
      } else {
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
    if (c != ']' && !isBareKeyChar(c) && !isQuote(c)) {
      fail(here(),
           "Error while parsing key: expected bare key starting character or string delimiter, "
           "saw " +
               shown(c));
      return;
    }
    const std::size_t depth = levels(keySegments()) + (isArray ? 1 : 0);
    if (enter(depth, at)) {
      base_ = depth;
    }
  }

  // key = value, in the root table, a table or an inline table whose keys are at base + 1.
  void keyValue(std::size_t base) {
    const Position at = here();
    const std::size_t segments = keySegments();
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
      skipString();
    } else {
      while (!atEnd()) {
        const char s = peek();
        if (s == ',' || s == ']' || s == '}' || s == '\n' || s == '\r' || s == '#' || s == ' ' ||
            s == '\t' || s == '[' || s == '{' || isQuote(s)) {
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
