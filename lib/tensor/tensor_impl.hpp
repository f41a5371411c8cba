// The storage behind a Tensor: one aligned buffer, its shape, dtype and identity.
#pragma once

#include "tensor/sizes.hpp"

#include <batchjac/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace batchjac::detail {

// 64-byte aligned, uninitialised bytes.
struct AlignedFree {
  void operator()(std::byte* p) const noexcept;
};
using Bytes = std::unique_ptr<std::byte[], AlignedFree>;
Bytes allocate_bytes(std::size_t n);

struct TensorImpl {
  Shape shape;
  DType dtype;
  Bytes bytes;
  std::uint64_t id;

  template <class T>
  const T* as() const noexcept { return reinterpret_cast<const T*>(bytes.get()); }
  template <class T>
  T* as_mutable() noexcept { return reinterpret_cast<T*>(bytes.get()); }
};

// A fresh tensor with uninitialised elements and a new identity; fill it, then
// wrap it with make_tensor.
std::shared_ptr<TensorImpl> new_tensor(const Shape& shape, DType dtype);
inline Tensor make_tensor(std::shared_ptr<TensorImpl> impl) {
  return Tensor(std::shared_ptr<const TensorImpl>(std::move(impl)));
}

// Element i as double, whatever the dtype.
double element_as_double(const TensorImpl& t, std::int64_t i) noexcept;
// A copy of t's elements converted to `dtype`.
Tensor convert(const Tensor& t, DType dtype);

}  // namespace batchjac::detail
