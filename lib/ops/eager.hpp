// Eager evaluation of a primitive on tensors, and its recording on tapes.
#pragma once

#include "ops/primitive.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/tensor.hpp>

#include <vector>

namespace batchjac::ops {

// Applies prim to `inputs`. If a live tape of this thread tracks an input,
// records it on every such tape and returns a deferred result (DeferredOp);
// otherwise evaluates it now (the primitive's own lowering, lanes = 1).
Tensor apply(Prim prim, const Attrs& attrs, std::vector<Tensor> inputs);

// The value of an op recorded on a tape (apply returns it deferred): on
// first read, the engine computes it in one pass over blocks of examples
// with every deferred value it needs (engine/values.hpp); where that does
// not apply, each is evaluated as an eager op.
struct DeferredOp final : detail::Deferred {
  Node node;                      // its inputs are 0 .. n-1, its output n
  std::vector<ValueInfo> values;  // the inputs', then the result's

  std::shared_ptr<const detail::TensorImpl> compute_all(
      const std::shared_ptr<const detail::TensorImpl>& self) const override;
  std::shared_ptr<const detail::TensorImpl> compute() const override;
};

}  // namespace batchjac::ops
