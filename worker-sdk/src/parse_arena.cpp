// SPDX-License-Identifier: MIT
#include "parse_arena.hpp"

#include <algorithm>
#include <cstdint>
#include <new>
#include <vector>

#include <boost/json/memory_resource.hpp>

namespace clustervisor::detail {

// The arena's memory: bump allocation in the last block, rewound as a whole.
struct ParseArena::Blocks {
  struct Block {
    std::unique_ptr<std::byte[]> bytes;
    std::size_t size;
  };
  std::vector<Block> blocks;  // the last one is being filled; more than one after a big event
  std::size_t used = 0;       // of blocks.back()

  void* allocate(std::size_t n, std::size_t align) {
    if (!blocks.empty()) {
      Block& block = blocks.back();
      const auto base = reinterpret_cast<std::uintptr_t>(block.bytes.get());
      const std::size_t start = ((base + used + align - 1) & ~(std::uintptr_t{align} - 1)) - base;
      if (start <= block.size && n <= block.size - start) {
        used = start + n;
        return block.bytes.get() + start;
      }
    }
    // Does not fit: another block, at least as large as all before it (an event's parse then
    // needs few), merged into one block at the next rewind.
    const std::size_t size = std::max(kFirstBlock + total(), n + align);
    blocks.push_back({std::make_unique_for_overwrite<std::byte[]>(size), size});
    used = 0;
    return allocate(n, align);
  }

  std::size_t total() const {
    std::size_t bytes = 0;
    for (const Block& block : blocks) {
      bytes += block.size;
    }
    return bytes;
  }

  bool holds(const void* p) const {
    const auto* b = static_cast<const std::byte*>(p);
    return std::any_of(blocks.begin(), blocks.end(), [&](const Block& block) {
      return b >= block.bytes.get() && b < block.bytes.get() + block.size;
    });
  }

  void rewind() {
    used = 0;
    if (blocks.size() == 1 && blocks.front().size <= kMaxKept) {
      return;
    }
    const std::size_t all = total();
    blocks.clear();
    if (all > 0) {
      const std::size_t size = std::min(all, kMaxKept);
      blocks.push_back({std::make_unique_for_overwrite<std::byte[]>(size), size});
    }
  }
};

namespace {

// Which arena this thread is delivering from, and whether it is parsing right now.
struct ThreadState {
  const void* delivering = nullptr;
  bool parsing = false;
};
thread_local ThreadState tls;

void* heapAllocate(std::size_t n, std::size_t align) {
  if (align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    return ::operator new(n);
  }
  return ::operator new(n, std::align_val_t(align));
}

// Sized deallocation where the compiler has it (clang before 17 does not by default, and then
// the standard library declares no sized operator delete).
void heapFree(void* p, [[maybe_unused]] std::size_t n, std::size_t align) {
#if defined(__cpp_sized_deallocation)
  if (align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    ::operator delete(p, n);
  } else {
    ::operator delete(p, n, std::align_val_t(align));
  }
#else
  if (align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    ::operator delete(p);
  } else {
    ::operator delete(p, std::align_val_t(align));
  }
#endif
}

}  // namespace

// The memory resource of parsed values (and, through their storage_ptr, of copies of them).
class ParseArena::Resource final : public boost::json::memory_resource {
 public:
  explicit Resource(std::shared_ptr<Blocks> blocks) : blocks_(std::move(blocks)) {}

 private:
  void* do_allocate(std::size_t n, std::size_t align) override {
    if (tls.parsing && tls.delivering == blocks_.get()) {
      return blocks_->allocate(n, align);
    }
    return heapAllocate(n, align);
  }

  void do_deallocate(void* p, std::size_t n, std::size_t align) override {
    // Arena memory is only freed by the parsed value, in its delivery on this thread; it is
    // reused at the next rewind.
    if (tls.delivering == blocks_.get() && blocks_->holds(p)) {
      return;
    }
    heapFree(p, n, align);
  }

  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  std::shared_ptr<Blocks> blocks_;
};

ParseArena::ParseArena()
    : blocks_(std::make_shared<Blocks>()),
      storage_(boost::json::make_shared_resource<Resource>(blocks_)) {}

bool ParseArena::holds(const void* p) const {
  return blocks_->holds(p);
}

std::size_t ParseArena::keptBytes() const {
  return blocks_->blocks.empty() ? 0 : blocks_->blocks.front().size;
}

ParseArena::Delivery::Delivery(ParseArena& arena)
    : arena_(arena), nested_(tls.delivering != nullptr) {
  if (!nested_) {
    // The previous delivery's value is gone: all of the arena is free again.
    arena_.blocks_->rewind();
    tls.delivering = arena_.blocks_.get();
  }
}

ParseArena::Delivery::~Delivery() {
  if (!nested_) {
    tls.delivering = nullptr;
  }
}

boost::json::value ParseArena::Delivery::parse(boost::json::parser& parser, std::string_view text,
                                               boost::system::error_code& ec) {
  parser.reset(nested_ ? boost::json::storage_ptr() : arena_.storage_);
  struct Parsing {
    explicit Parsing(bool on) { tls.parsing = on; }
    ~Parsing() { tls.parsing = false; }
  } parsing(!nested_);
  try {
    parser.write(text.data(), text.size(), ec);
  } catch (...) {
    // (bad_alloc) What the parse built must go while arena memory can still be told apart:
    // the next rewind may free the blocks it lies in.
    parser.reset();
    throw;
  }
  if (ec) {
    // Frees what the failed parse built now, while this delivery can tell arena memory apart.
    parser.reset();
    return nullptr;
  }
  return parser.release();
}

}  // namespace clustervisor::detail
