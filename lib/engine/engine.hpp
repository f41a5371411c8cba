// The block engine: runs a linear program over blocks of L examples (one per
// SIMD lane) and chunks of D directions, writing the dense Jacobian.
#pragma once

#include "graph/program.hpp"

#include <batchjac/jacobian_options.hpp>
#include <batchjac/tensor.hpp>

namespace batchjac::engine {

// mode is forward (lin = JVP program: directions are source elements) or
// reverse (lin = VJP program: directions are target elements). The source
// supplies the parameter's values; `out` receives program.batch Jacobians of
// (target elements x source elements) each, row-major, of type `out_dtype`
// (float or double).
void run(const graph::Program& program, const graph::LinearProgram& lin, JacobianMode mode,
         const Tensor& source, void* out, DType out_dtype, const JacobianOptions& options);

}  // namespace batchjac::engine
