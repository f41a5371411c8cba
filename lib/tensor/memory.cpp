// The block cache behind tensor memory.
//
// Freshly mapped pages cost a fault each on first touch (about 2.3 GB/s on
// a KVM guest), so a loop that gets a new 128 MiB Jacobian per call spends
// more time faulting than computing. Freed blocks of kCachedBytes or more
// are kept, most recently freed first, and the smallest one that fits a
// request (at most a quarter larger) is handed out again. oneTBB's scalable
// allocator does not do this for blocks past its huge-object threshold
// (a 128 MiB block faults in anew on every allocation), and changing that
// threshold, or its heap limit, changes it for the whole process.
#include "tensor/memory.hpp"

#include "tensor/sizes.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/tensor.hpp>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
// A cached block is poisoned: a use after its tensor is gone is reported
// while the block waits in the cache (not once it is handed out again; the
// asan test preset turns the cache off, BATCHJAC_MEMORY_CACHE=0).
#define BATCHJAC_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define BATCHJAC_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define BATCHJAC_POISON(p, n) ((void)(p), (void)(n))
#define BATCHJAC_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace batchjac {
namespace detail {

namespace {

constexpr std::size_t kAlign = 64;
constexpr std::size_t kPage = 4096;

std::byte* system_allocate(std::size_t bytes) {
  return static_cast<std::byte*>(std::aligned_alloc(kAlign, bytes));
}

// "0" or "off": no cache; "<n>[K|M|G]": a limit of that many bytes.
std::size_t limit_from_environment(std::size_t fallback) {
  const char* text = std::getenv("BATCHJAC_MEMORY_CACHE");
  if (text == nullptr || *text == '\0') return fallback;
  if (std::strcmp(text, "off") == 0) return 0;
  // Digits, then at most one of K, M, G: nothing else (no sign, no space).
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::isdigit(static_cast<unsigned char>(*text)) ? std::strtoull(text, &end, 10) : 0;
  std::size_t scale = 1;
  if (end != nullptr && (*end == 'K' || *end == 'k')) scale = std::size_t{1} << 10;
  else if (end != nullptr && (*end == 'M' || *end == 'm')) scale = std::size_t{1} << 20;
  else if (end != nullptr && (*end == 'G' || *end == 'g')) scale = std::size_t{1} << 30;
  if (end == nullptr || errno == ERANGE || n > std::numeric_limits<std::size_t>::max() / scale ||
      (scale != 1 && *++end != '\0') || (scale == 1 && *end != '\0')) {
    std::fprintf(stderr,
                 "batchjac: ignoring BATCHJAC_MEMORY_CACHE=%s (expected off, or bytes such as "
                 "0, 512M or 2G)\n",
                 text);
    return fallback;
  }
  return static_cast<std::size_t>(n) * scale;
}

class BlockCache {
 public:
  BlockCache()
      : limit_(limit_from_environment(static_cast<std::size_t>(max_tensor_bytes()) / 8)) {}

  // The smallest cached block of at least `bytes` (at most a quarter
  // more), with its size; {nullptr, 0} if none fits.
  std::pair<std::byte*, std::size_t> take(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto fit = by_size_.lower_bound(bytes);
    if (fit == by_size_.end() || fit->first > bytes + bytes / 4) {
      ++misses_;
      return {nullptr, 0};
    }
    ++hits_;
    const Block block = *fit->second;
    cached_ -= block.bytes;
    order_.erase(fit->second);
    by_size_.erase(fit);
    BATCHJAC_UNPOISON(block.data, block.bytes);
    return {block.data, block.bytes};
  }

  // Keeps the block, or frees it if the cache cannot hold it. Never
  // throws (it runs in destructors): without memory for its own
  // bookkeeping it frees the block.
  void give(std::byte* p, std::size_t bytes) noexcept {
    std::list<Block> evicted;
    bool kept = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (bytes <= limit_) {
        try {
          order_.push_front({p, bytes});
          try {
            by_size_.emplace(bytes, order_.begin());
          } catch (...) {
            order_.pop_front();
            throw;
          }
          kept = true;
          cached_ += bytes;
          BATCHJAC_POISON(p, bytes);
          shrink_to(limit_, evicted);
        } catch (...) {
        }
      }
    }
    if (!kept) std::free(p);
    free_all(evicted);  // outside the lock
  }

  void set_limit(std::size_t bytes) {
    std::list<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
      shrink_to(limit_, evicted);
    }
    free_all(evicted);
  }

  void release() {
    std::list<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shrink_to(0, evicted);
    }
    free_all(evicted);
  }

  MemoryCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_, order_.size(), limit_, hits_, misses_};
  }

 private:
  struct Block {
    std::byte* data;
    std::size_t bytes;
  };

  // Least recently freed blocks go first. Called under the lock.
  void shrink_to(std::size_t bytes, std::list<Block>& evicted) {
    while (cached_ > bytes) {
      const Block& oldest = order_.back();
      auto range = by_size_.equal_range(oldest.bytes);
      for (auto it = range.first; it != range.second; ++it)
        if (it->second == std::prev(order_.end())) {
          by_size_.erase(it);
          break;
        }
      cached_ -= oldest.bytes;
      evicted.splice(evicted.end(), order_, std::prev(order_.end()));
    }
  }

  static void free_all(const std::list<Block>& blocks) {
    for (const Block& b : blocks) {
      BATCHJAC_UNPOISON(b.data, b.bytes);
      std::free(b.data);
    }
  }

  std::mutex mutex_;
  std::list<Block> order_;  // most recently freed first
  std::multimap<std::size_t, std::list<Block>::iterator> by_size_;
  std::size_t cached_ = 0;
  std::size_t limit_;
  std::uint64_t hits_ = 0, misses_ = 0;
};

// Never destroyed: buffers in static tensors may be freed after any static.
BlockCache& cache() {
  static BlockCache* c = new BlockCache;
  return *c;
}

}  // namespace

Buffer Buffer::allocate(std::size_t bytes) {
  if (bytes < kCachedBytes) {
    const std::size_t rounded = bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
    std::byte* p = system_allocate(rounded);
    if (p == nullptr) throw std::bad_alloc();
    return Buffer(p, rounded);
  }
  // Whole pages: blocks of nearby sizes are interchangeable.
  const std::size_t rounded = (bytes + kPage - 1) / kPage * kPage;
  // A cached block keeps its own size: it goes back as large as it is.
  if (const auto [p, size] = cache().take(rounded); p != nullptr) return Buffer(p, size);
  std::byte* p = system_allocate(rounded);
  if (p == nullptr) {  // the cache's blocks may be what is missing
    cache().release();
    p = system_allocate(rounded);
    if (p == nullptr) throw std::bad_alloc();
  }
  return Buffer(p, rounded);
}

Buffer Buffer::view(const void* data) noexcept {
  return Buffer(static_cast<std::byte*>(const_cast<void*>(data)), 0);
}

Buffer::Buffer(Buffer&& other) noexcept : data_(other.data_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.capacity_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Buffer old(std::move(*this));
    data_ = other.data_;
    capacity_ = other.capacity_;
    other.data_ = nullptr;
    other.capacity_ = 0;
  }
  return *this;
}

Buffer::~Buffer() {
  if (capacity_ == 0) return;  // empty, or a view
  if (capacity_ < kCachedBytes) std::free(data_);
  else cache().give(data_, capacity_);
}

}  // namespace detail

MemoryCacheStats memory_cache_stats() { return detail::cache().stats(); }
void set_memory_cache_limit(std::size_t bytes) { detail::cache().set_limit(bytes); }
void release_memory_cache() { detail::cache().release(); }

}  // namespace batchjac
