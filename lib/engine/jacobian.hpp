// What GradientTape's Jacobians and traced functions (bj::trace) share:
// checking options, and deriving and planning a sliced program.
#pragma once

#include "engine/engine.hpp"
#include "graph/program.hpp"

#include <batchjac/jacobian_options.hpp>
#include <batchjac/tensor.hpp>

#include <cstdint>
#include <memory>

namespace batchjac::engine {

// ValueError naming `fn` for an option or tensor a Jacobian cannot take.
void check_unconnected(const char* fn, UnconnectedGradients u);
void check_options(const char* fn, const JacobianOptions& o);
void check_float(const char* fn, const char* what, const Tensor& t);

// Under automatic, a call of at most this many Jacobian entries (all
// examples) does not plan both modes: one pass per element of the smaller
// side costs less than planning twice.
constexpr std::int64_t kSmallCall = 4096;
inline bool small_call(const graph::Program& program, std::int64_t batch) {
  const std::int64_t n_in = program.info(program.parameter).shape.num_elements();
  const std::int64_t n_out = program.info(program.result).shape.num_elements();
  return batch * n_in * n_out <= kSmallCall;
}

// Derives the Jacobian program of `program` (changed: linear nodes are
// added, unused ones pruned) and plans it; null when no derivative flows
// from the parameter to the result (stop_gradient).
std::shared_ptr<const Prepared> plan_jacobian(graph::Program& program, const JacobianOptions& options,
                                              bool small_call);

}  // namespace batchjac::engine
