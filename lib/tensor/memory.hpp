// Tensor memory: 64-byte aligned buffers, large ones reused through a
// bounded cache of freed blocks (see the memory section of
// <batchjac/tensor.hpp>), or views of the caller's memory.
#pragma once

#include <cstddef>

namespace batchjac::detail {

class Buffer {
 public:
  Buffer() noexcept = default;
  // `bytes` of uninitialised memory, 64-byte aligned (at least 64 bytes).
  // Buffers of kCachedBytes or more come from the cache when a freed one fits.
  static Buffer allocate(std::size_t bytes);
  // The caller's memory, not owned.
  static Buffer view(const void* data) noexcept;

  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  std::byte* get() const noexcept { return data_; }
  bool is_view() const noexcept { return data_ != nullptr && capacity_ == 0; }

  // Requests from this size up are cached when freed.
  static constexpr std::size_t kCachedBytes = std::size_t{64} << 10;

 private:
  Buffer(std::byte* data, std::size_t capacity) noexcept : data_(data), capacity_(capacity) {}
  std::byte* data_ = nullptr;
  std::size_t capacity_ = 0;  // bytes owned; 0: a view (or empty)
};

}  // namespace batchjac::detail
