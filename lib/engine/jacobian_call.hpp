// What GradientTape's Jacobian calls and traced functions share
// (engine/jacobian.cpp, engine/several_sources.cpp, engine/function.cpp):
// argument checks, deriving and planning a sliced program, running it.
#pragma once

#include "engine/engine.hpp"
#include "graph/program.hpp"
#include "graph/tape.hpp"

#include <batchjac/jacobian_options.hpp>
#include <batchjac/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace batchjac::engine {

// ValueError for an unconnected_gradients, mode or option out of range
// (enum values are checked: a cast integer would otherwise pick a
// behaviour silently); `fn` names the call.
void check_unconnected(const char* fn, UnconnectedGradients u);
void check_options(const char* fn, const JacobianOptions& o);
// ValueError unless t is float32 or float64 (`what`: "source", "target").
void check_float(const char* fn, const char* what, const Tensor& t);
// RuntimeError for a non-persistent tape that already answered.
void check_unused(const char* fn, const detail::TapeState& s);
// a's dims, then b's without its first skip_b.
Shape concat_shapes(const Shape& a, const Shape& b, std::size_t skip_b);

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

// Where the target's value goes, if a call wants it: the caller's memory
// (value_and_batch_jacobian_into), or, for a call that returns a new tensor
// while the target is still unread (deferred), the target itself.
struct TargetValue {
  const Tensor& target;
  int id = -1;                              // the target's value in the program
  const ValueOut* into = nullptr;  // the caller's memory
};

// Runs a sliced program (or none: unconnected) into `out`, or into a new
// tensor of out_shape when out is null. nullopt: unconnected under `none`.
// The target's value is written in the same pass over the blocks.
// `symmetric`: a Hessian's call (engine::Binding::symmetric).
std::optional<Tensor> finish(std::optional<graph::Program>& program, const Tensor& source,
                             const Shape& out_shape, void* out, UnconnectedGradients unconnected,
                             const JacobianOptions& options, const TargetValue& target,
                             std::atomic<bool>* symmetric = nullptr);

// Appends reduce_sum over every axis to the program's result (gradient).
void sum_result(graph::Program& program);
// gradient's options: reverse mode, and what an unconnected source gives.
JacobianOptions gradient_options(UnconnectedGradients unconnected);

// One source, its checks done: slices the tape (per example when batched),
// differentiates (the sum of the target when `sum`: a gradient shaped like
// source) and returns the result, or nullopt when unconnected under none.
// The tape is not marked used.
std::optional<Tensor> one_source(const detail::TapeState& tape, const Tensor& target, const Tensor& source,
                                 bool batched, bool sum, const JacobianOptions& options);

}  // namespace batchjac::engine
