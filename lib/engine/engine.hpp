// The block engine: runs a linear program over blocks of L examples (one per
// SIMD lane) and chunks of D directions, writing the dense Jacobian.
#pragma once

#include "graph/program.hpp"

#include <batchjac/jacobian_options.hpp>
#include <batchjac/tensor.hpp>

#include <span>

namespace batchjac::engine {

// One way to compute the Jacobian: mode forward (lin = JVP program: directions
// are source elements) or reverse (lin = VJP program: directions are target
// elements), with the primal program pruned for it.
struct Candidate {
  const graph::Program* program = nullptr;
  const graph::LinearProgram* lin = nullptr;
  JacobianMode mode = JacobianMode::forward;
};

// Plans the candidates in order, runs the one whose plan does the least work
// per block (the first of equals). A candidate stops planning as soon as it
// cannot beat the best before it. The source supplies the parameter's
// values; `out` receives program.batch Jacobians of (target elements x
// source elements) each, row-major, of type `out_dtype` (float or double).
void run(std::span<const Candidate> candidates, const Tensor& source, void* out, DType out_dtype,
         const JacobianOptions& options);

}  // namespace batchjac::engine
