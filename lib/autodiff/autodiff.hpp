// linearize (JVP program), transpose (VJP program), optimisation and pruning.
#pragma once

#include "graph/program.hpp"

#include <batchjac/jacobian_options.hpp>

#include <vector>

namespace batchjac::autodiff {

// The JVP program: input = tangent of the parameter, output = tangent of the
// result (-1 when no derivative flows, e.g. through stop_gradient). Adds the
// primal coefficients it needs (partials) to program.nodes.
graph::LinearProgram linearize(graph::Program& program);

// The VJP program: each linear node replaced by its transpose, in reverse.
// input = cotangent of the result, output = cotangent of the parameter.
graph::LinearProgram transpose(graph::Program& program, const graph::LinearProgram& jvp);

// Rewrites lin into fewer passes: scaling chains fold into one primal
// coefficient, sums of scalings fuse (autodiff/optimize.cpp). Run before prune.
void optimize(graph::Program& program, graph::LinearProgram& lin);

// Drops linear nodes that do not reach lin.output, then the primal nodes that
// no remaining linear node reads.
void prune(graph::Program& program, graph::LinearProgram& lin);

}  // namespace batchjac::autodiff
