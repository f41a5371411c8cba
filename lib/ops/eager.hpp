// Eager evaluation of a primitive on tensors, and its recording on tapes.
#pragma once

#include "ops/primitive.hpp"

#include <batchjac/tensor.hpp>

#include <vector>

namespace batchjac::ops {

// Evaluates prim on `inputs` now (the primitive's own lowering, lanes = 1),
// records it on every live tape of this thread that tracks an input, and
// returns the result.
Tensor apply(Prim prim, const Attrs& attrs, std::vector<Tensor> inputs);

}  // namespace batchjac::ops
