// The size checks every shape-making op shares (tensor/sizes.hpp).
#include "tensor/sizes.hpp"

#include <batchjac/errors.hpp>

#include <algorithm>
#include <unistd.h>

namespace batchjac::detail {

std::optional<std::int64_t> checked_product(std::span<const std::int64_t> dims) noexcept {
  // A zero anywhere is exact even where a prefix of the others overflows.
  if (std::find(dims.begin(), dims.end(), 0) != dims.end()) return 0;
  std::int64_t n = 1;
  for (auto d : dims) {
    const auto next = checked_mul(n, d);
    if (!next) return std::nullopt;
    n = *next;
  }
  return n;
}

std::int64_t max_tensor_bytes() noexcept {
  static const std::int64_t limit = [] {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return kMaxTensorBytes;
    return std::min(kMaxTensorBytes, checked_mul(pages, page).value_or(kMaxTensorBytes));
  }();
  return limit;
}

std::optional<std::string> tensor_size_error(const Shape& shape, std::size_t element_bytes,
                                             std::string_view what) {
  if (std::any_of(shape.begin(), shape.end(), [](std::int64_t d) { return d < 0; }))
    return std::string(what) + " would have shape " + shape.to_string() +
           ": dimensions must be >= 0";
  const auto n = checked_product(shape.dims());
  if (!n)
    return std::string(what) + " would have shape " + shape.to_string() +
           ", more elements than int64 can count";
  const auto bytes = checked_mul(*n, static_cast<std::int64_t>(element_bytes));
  if (!bytes || *bytes > max_tensor_bytes())
    return std::string(what) + " would have shape " + shape.to_string() + ", " +
           std::to_string(*n) + " elements of " + std::to_string(element_bytes) + " bytes" +
           (bytes ? " (" + std::to_string(*bytes) + " bytes)" : std::string()) +
           ": more than the largest tensor, " + std::to_string(max_tensor_bytes()) +
           " bytes (the machine's physical memory, at most 2^47)";
  return std::nullopt;
}

std::int64_t check_tensor_size(std::string_view op, const Shape& shape, DType dtype,
                               std::string_view what) {
  if (auto why = tensor_size_error(shape, dtype_size(dtype), what))
    throw ValueError(std::string(op) + ": " + *why);
  return shape.num_elements();
}

}  // namespace batchjac::detail
