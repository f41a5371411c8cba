// Deferred values computed by the engine: the recorded ops a deferred tensor
// needs, run as one primal program over blocks of examples (one per SIMD
// lane), with no whole-batch intermediate.
#pragma once

#include "ops/eager.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/tensor.hpp>

#include <memory>

namespace batchjac::engine {

// The value of `root` (a deferred tensor), computed by a plan of values
// only (kept across calls like Jacobian plans) from the ready tensors its
// recorded ops read, one of which becomes the program's parameter; the
// deferred values between them are not computed. Null when the engine does
// not apply: root is not a float32 or float64 tensor of rank >= 1, or no
// float tensor among those has root's first dimension with root depending
// on it and no op mixing examples along it; the caller then evaluates op by
// op. The pass runs isolated (tbb::this_task_arena::isolate): the caller
// holds root's lock.
// `how` is root's own op: its caller holds root's lock.
std::shared_ptr<const detail::TensorImpl> compute_value(const Tensor& root, const ops::DeferredOp& how);

}  // namespace batchjac::engine
