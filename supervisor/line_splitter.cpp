// SPDX-License-Identifier: MIT
#include "line_splitter.hpp"

#include <algorithm>

namespace clustervisor {

void LineSplitter::feed(std::string_view bytes, const Emit& emit) {
  while (!bytes.empty()) {
    const auto newline = bytes.find_first_of(kLineEnds);
    const std::string_view piece = bytes.substr(0, newline);
    const std::size_t room = maxLine_ - partial_.size();
    if (piece.size() > room || (newline == std::string_view::npos && piece.size() == room)) {
      // Fill the current line to maxLine and emit it as one piece of a long line.
      const std::size_t take = std::min(room, piece.size());
      partial_.append(piece.substr(0, take));
      if (partial_.size() == maxLine_) {
        emit(partial_, continuing_);
        partial_.clear();
        continuing_ = true;
      }
      bytes.remove_prefix(take);
      continue;
    }
    partial_.append(piece);
    if (newline == std::string_view::npos) {
      return;
    }
    if (!partial_.empty() || !continuing_) {
      emit(partial_, continuing_);
    }
    partial_.clear();
    continuing_ = false;
    bytes.remove_prefix(newline + 1);
  }
}

void LineSplitter::finish(const Emit& emit) {
  if (!partial_.empty()) {
    emit(partial_, continuing_);
  }
  partial_.clear();
  continuing_ = false;
}

}  // namespace clustervisor
