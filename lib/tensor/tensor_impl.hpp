// The storage behind a Tensor: its shape, dtype, identity and elements,
// which are either ready (an owned buffer or a view of the caller's memory)
// or deferred: computed from the inputs of a recorded op on first read.
#pragma once

#include "tensor/memory.hpp"
#include "tensor/sizes.hpp"

#include <batchjac/tensor.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace batchjac::detail {

struct TensorImpl;

// How a deferred value is computed: with every deferred value it needs in
// one pass (`compute_all`, the engine's block pass), or else by `compute`,
// once its inputs are ready.
struct Deferred {
  std::vector<std::shared_ptr<const TensorImpl>> inputs;
  virtual ~Deferred() = default;
  // The value of `self` (whose Deferred this is), computed without
  // computing the deferred values it needs; null when it cannot be.
  virtual std::shared_ptr<const TensorImpl> compute_all(const std::shared_ptr<const TensorImpl>& self) const = 0;
  virtual std::shared_ptr<const TensorImpl> compute() const = 0;
};

struct TensorImpl {
  Shape shape;
  DType dtype = DType::float64;
  std::uint64_t id = 0;
  Buffer buffer;  // the elements of a tensor made ready

  TensorImpl() = default;
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;
  ~TensorImpl();

  // The elements; a deferred value is computed first (once, whichever
  // thread asks first; the others wait for it), with every deferred value
  // it needs.
  const std::byte* bytes() const {
    if (ready_.load(std::memory_order_acquire)) return data_;
    return compute();
  }
  template <class T>
  const T* as() const { return reinterpret_cast<const T*>(bytes()); }
  // For the code that fills a new tensor, before it is shared.
  template <class T>
  T* as_mutable() noexcept { return reinterpret_cast<T*>(buffer.get()); }

  // Gives a deferred tensor `value` (ready, of its shape and dtype),
  // computed elsewhere: by the block pass of a Jacobian. A tensor that has
  // its value keeps it.
  void fulfil(std::shared_ptr<const TensorImpl> value) const;

  // Calls f(the Deferred, or null once the value is computed) under the
  // tensor's lock.
  template <class F>
  void visit_pending(F&& f) const {
    std::lock_guard<std::mutex> lock(mutex_);
    f(pending_.get());
  }

  // Whether the elements are yet to be computed.
  bool deferred() const noexcept { return !ready_.load(std::memory_order_acquire); }
  bool is_view() const noexcept { return buffer.is_view(); }

 private:
  friend std::shared_ptr<TensorImpl> new_tensor(const Shape&, DType);
  friend std::shared_ptr<TensorImpl> new_view(const void*, const Shape&, DType);
  friend std::shared_ptr<TensorImpl> new_deferred(const Shape&, DType, std::unique_ptr<Deferred>);
  const std::byte* compute() const;
  bool compute_whole() const;
  void compute_one() const;
  void set_value(std::shared_ptr<const TensorImpl> value) const;  // under mutex_
  void pending_inputs(std::vector<std::shared_ptr<const TensorImpl>>& out) const;

  mutable std::atomic<bool> ready_{true};
  mutable const std::byte* data_ = nullptr;  // set before ready_
  // Deferred state, under mutex_: what computes the value, then the value.
  mutable std::mutex mutex_;
  mutable std::unique_ptr<Deferred> pending_;
  mutable std::shared_ptr<const TensorImpl> value_;
};

// A fresh tensor with uninitialised elements and a new identity; fill it, then
// wrap it with make_tensor.
std::shared_ptr<TensorImpl> new_tensor(const Shape& shape, DType dtype);
// A tensor over `data` (not owned), with a new identity.
std::shared_ptr<TensorImpl> new_view(const void* data, const Shape& shape, DType dtype);
// A tensor whose elements `how` computes on first read, with a new identity.
std::shared_ptr<TensorImpl> new_deferred(const Shape& shape, DType dtype, std::unique_ptr<Deferred> how);
// A new identity.
std::uint64_t next_id();
inline Tensor make_tensor(std::shared_ptr<TensorImpl> impl) {
  return Tensor(std::shared_ptr<const TensorImpl>(std::move(impl)));
}

// Element i as double, whatever the dtype.
double element_as_double(const TensorImpl& t, std::int64_t i);
// A copy of t's elements converted to `dtype`.
Tensor convert(const Tensor& t, DType dtype);
// A copy of t in memory of its own (t itself unless it is a view).
Tensor owned(const Tensor& t);

}  // namespace batchjac::detail
