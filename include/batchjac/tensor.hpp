// Tensor: an immutable, cheaply copied n-d array (shared buffer, row-major, batch first).
#pragma once

#include <batchjac/dtype.hpp>
#include <batchjac/shape.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <span>
#include <vector>

namespace batchjac {

namespace detail {
struct TensorImpl;
}

class Tensor {
 public:
  // A float64 scalar 0.
  Tensor();

  const Shape& shape() const noexcept;
  DType dtype() const noexcept;
  std::int64_t rank() const noexcept { return static_cast<std::int64_t>(shape().size()); }
  std::int64_t num_elements() const noexcept;

  // The elements in row-major order. T must match dtype(): float, double, or
  // bool for boolean tensors; otherwise ValueError.
  template <class T>
  std::span<const T> data() const;
  // The elements converted to T (any of float, double, bool).
  template <class T>
  std::vector<T> to_vector() const;
  // One element as double; ValueError if the index has the wrong length or is
  // out of range. Negative indices are not accepted.
  double at(const std::vector<std::int64_t>& index) const;

  // Identity of the value for tapes: copies share it, new results get a new one.
  std::uint64_t id() const noexcept;

  explicit Tensor(std::shared_ptr<const detail::TensorImpl> impl) : impl_(std::move(impl)) {}
  const detail::TensorImpl& impl() const noexcept { return *impl_; }
  const std::shared_ptr<const detail::TensorImpl>& impl_ptr() const noexcept { return impl_; }

 private:
  std::shared_ptr<const detail::TensorImpl> impl_;
};

extern template std::span<const float> Tensor::data<float>() const;
extern template std::span<const double> Tensor::data<double>() const;
extern template std::span<const bool> Tensor::data<bool>() const;
extern template std::vector<float> Tensor::to_vector<float>() const;
extern template std::vector<double> Tensor::to_vector<double>() const;
extern template std::vector<bool> Tensor::to_vector<bool>() const;

// Prints like TF: tf.Tensor(\n[[1. 2.]\n [3. 4.]], shape=(2, 2), dtype=float32)
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- sizes -------------------------------------------------------------------
// A tensor's buffer is at most 2^47 bytes (128 TiB) and at most the machine's
// physical memory. Every factory and op checks its result's shape first: a
// negative dimension, an element count past int64, or more bytes than that
// limit is a ValueError naming the op and the shape, raised before anything
// is allocated (never std::bad_alloc or a wrapped size). The Jacobians of
// GradientTape are held to the same limit. Empty tensors may have any
// dimensions that fit int64 ([0, 2^62] is fine).

// ---- factories ---------------------------------------------------------------
using Init1 = std::initializer_list<double>;
using Init2 = std::initializer_list<Init1>;
using Init3 = std::initializer_list<Init2>;
using Init4 = std::initializer_list<Init3>;

// Nested lists must be rectangular (ValueError otherwise). A boolean dtype
// stores value != 0. C++ cannot tell {{1.}, {2.}} (a column) from a list of
// two braced scalars: that call does not compile; write
// constant(std::vector<double>{1., 2.}, Shape{2, 1}) instead.
Tensor constant(double value, DType dtype = float64);
Tensor constant(Init1 values, DType dtype = float64);
Tensor constant(Init2 values, DType dtype = float64);
Tensor constant(Init3 values, DType dtype = float64);
Tensor constant(Init4 values, DType dtype = float64);
// data.size() must equal shape.num_elements() (ValueError otherwise).
Tensor constant(std::span<const double> data, const Shape& shape, DType dtype = float64);
Tensor constant(std::span<const float> data, const Shape& shape, DType dtype = float32);
Tensor constant(const std::vector<double>& data, const Shape& shape, DType dtype = float64);
Tensor constant(const std::vector<float>& data, const Shape& shape, DType dtype = float32);
// A tensor over the caller's memory, without a copy (LibTorch's from_blob):
// float32 over floats, float64 over doubles, row-major. data.size() must
// equal shape.num_elements() (ValueError otherwise). No call copies it: ops,
// batch_jacobian and the other derivatives read it in place. The caller
// keeps the memory alive and unchanged while any tensor still uses it: the
// view and its copies, tapes that watched or recorded it, and tensors
// computed from it whose values have not been read yet (deferred values
// read their inputs when they are computed). Otherwise a later read sees
// the changed numbers, or reads freed memory (undefined behaviour). Plans
// kept across calls copy the few shared constants they keep (never the
// source or a tensor with a batch axis), so they never point into it.
Tensor view(std::span<const double> data, const Shape& shape);
Tensor view(std::span<const float> data, const Shape& shape);
Tensor zeros(const Shape& shape, DType dtype = float64);
Tensor ones(const Shape& shape, DType dtype = float64);
Tensor fill(const Shape& shape, double value, DType dtype = float64);

// ---- memory ------------------------------------------------------------------
// Tensor buffers of 64 KiB or more (results, Jacobians, block buffers) come
// from a cache: a freed buffer is kept and handed to the next request it
// fits (at most a quarter larger), so a loop of calls reuses its pages
// instead of faulting in new ones after its first iteration. Buffers are
// never zero-filled. The cache holds at most its limit, least recently
// freed out first: by default 1/8 of physical memory; a buffer larger than
// the limit is never kept. When the system is out of memory the cache is
// emptied and the allocation tried again. The environment variable
// BATCHJAC_MEMORY_CACHE, read once (at the first buffer of 64 KiB or more,
// or the first call below), sets the limit in bytes (digits, then K, M or
// G allowed; anything else is ignored with a warning on stderr); 0 or
// "off" turns caching off, so
// every buffer goes back to the system at once (for memory checkers; under
// AddressSanitizer cached buffers are poisoned anyway). Thread-safe.
struct MemoryCacheStats {
  std::size_t cached_bytes = 0;   // held, free, in the cache
  std::size_t cached_buffers = 0;
  std::size_t limit = 0;
  std::uint64_t hits = 0;         // requests of 64 KiB or more served from the cache
  std::uint64_t misses = 0;       // ... and from the system
};
MemoryCacheStats memory_cache_stats();
// Sets the limit (0 turns caching off); frees what no longer fits.
void set_memory_cache_limit(std::size_t bytes);
// Frees every cached buffer (buffers in use stay).
void release_memory_cache();

}  // namespace batchjac
