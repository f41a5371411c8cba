// linearize (JVP program), transpose (VJP program), optimisation and pruning.
#pragma once

#include "graph/program.hpp"

#include <batchjac/jacobian_options.hpp>

#include <span>
#include <vector>

namespace batchjac::autodiff {

// The JVP program: input = tangent of the parameter, output = tangent of the
// result (-1 when no derivative flows, e.g. through stop_gradient). Adds the
// primal coefficients it needs (partials) to program.nodes.
// With `tangents`, also the tangent of every primal value (-1: none).
graph::LinearProgram linearize(graph::Program& program, std::vector<int>* tangents = nullptr);

// For each of `values` (primal values of the program), whether a derivative
// flows from it to the result: a path of linear nodes joins its tangent to
// the result's in the JVP program (not through stop_gradient, comparisons,
// casts to bool, ...). Linearizes a copy; the program is unchanged.
std::vector<bool> connected(const graph::Program& program, std::span<const int> values);

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
