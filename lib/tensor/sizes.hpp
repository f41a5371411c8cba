// Sizes: int64 arithmetic on dimensions that reports overflow instead of
// wrapping, and the largest tensor batchjac makes (stated in tensor.hpp).
// Every shape-making op goes through these, so no size is ever computed with
// signed overflow and no buffer is allocated for a shape that cannot exist.
#pragma once

#include <batchjac/dtype.hpp>
#include <batchjac/shape.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace batchjac::detail {

// No tensor's buffer exceeds 2^47 bytes (128 TiB, the x86-64 user address
// space), nor the machine's physical memory.
inline constexpr std::int64_t kMaxTensorBytes = std::int64_t{1} << 47;

// a * b and a + b, or nullopt where int64 cannot hold them.
inline std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
inline std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// a mod n in [0, n) for n > 0, rounding toward minus infinity (roll's shift).
inline std::int64_t floor_mod(std::int64_t a, std::int64_t n) noexcept {
  const std::int64_t r = a % n;
  return r < 0 ? r + n : r;
}
// (a + b) mod n for a, b in [0, n), n > 0, without forming a + b.
inline std::int64_t add_mod(std::int64_t a, std::int64_t b, std::int64_t n) noexcept {
  return b >= n - a ? b - (n - a) : a + b;
}

// The product of `dims` (1 if empty), or nullopt where it overflows int64. A
// zero dimension makes it 0 whatever the others are.
std::optional<std::int64_t> checked_product(std::span<const std::int64_t> dims) noexcept;

// kMaxTensorBytes or the machine's physical memory, whichever is less.
std::int64_t max_tensor_bytes() noexcept;

// Why no tensor can have `shape` with elements of element_bytes bytes (a
// negative dimension, an element count past int64, more bytes than
// max_tensor_bytes()), or nullopt if it can; `what` names the tensor in the
// message. Cheap when it can.
std::optional<std::string> tensor_size_error(const Shape& shape, std::size_t element_bytes,
                                             std::string_view what = "the result");

// The element count of `shape`; ValueError "<op>: <why not>" if no tensor can
// have it. Called before anything is allocated.
std::int64_t check_tensor_size(std::string_view op, const Shape& shape, DType dtype,
                               std::string_view what = "the result");

}  // namespace batchjac::detail
