// The block engine: runs a linear program over blocks of L examples (one per
// SIMD lane) and chunks of D directions, writing the dense Jacobian.
#pragma once

#include "graph/program.hpp"

#include <batchjac/jacobian_options.hpp>
#include <batchjac/tensor.hpp>

namespace batchjac::engine {

// mode is forward (lin = JVP program: directions are source elements) or
// reverse (lin = VJP program: directions are target elements). The source
// supplies the parameter's values; the result has shape
// [batch, target..., source...] flattened per example, dtype `out_dtype`.
Tensor run(const graph::Program& program, const graph::LinearProgram& lin, JacobianMode mode,
           const Tensor& source, const Shape& out_shape, DType out_dtype,
           const JacobianOptions& options);

}  // namespace batchjac::engine
