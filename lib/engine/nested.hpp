// Derivatives as recorded ops, so that outer tapes differentiate them again
// (nested tapes, batch_hessian, batch_hvp).
//
// A Jacobian call answers from the engine. When another live tape of the
// thread sees what the answer is computed from, the answer is also written
// as ops on the tensors the tape recorded: the tape's program is linearized
// (and transposed), and its derived nodes are applied as ops, once per
// direction, seeded with one-hot directions. Those ops are recorded like
// any others and are differentiable again (every primitive of a derived
// program has a JVP rule), at any depth. Their values are never computed
// for the answer: it keeps the engine's numbers, and the outer tape links
// it to them.
#pragma once

#include "graph/tape.hpp"

#include <batchjac/tensor.hpp>

#include <optional>

namespace batchjac::engine {

enum class Derivative {
  batch_jacobian,  // [b, y..., x...]
  jacobian,        // [y..., x...]
  gradient,        // of the target's sum, shaped like the source
  batch_gradient,  // of each example's scalar (target [b] or [b, 1]), shaped like the source
  directional,     // along a direction shaped like the source; shaped like the target
};

// While it lives, `tape` records nothing (a tape does not record its own
// answers: nest two tapes, as in TF).
class PauseTape {
 public:
  explicit PauseTape(detail::TapeState& tape) : tape_(tape) { ++tape_.paused; }
  ~PauseTape() { --tape_.paused; }
  PauseTape(const PauseTape&) = delete;
  PauseTape& operator=(const PauseTape&) = delete;

 private:
  detail::TapeState& tape_;
};

// The derivative of target with respect to source as ops applied to the
// tensors `tape` recorded (recorded on every live tape tracking one of
// them; forward values a recording tape did not see are computed again);
// nullopt when no derivative flows, when no live tape would record the ops,
// or for an empty result with no example. `direction` is directional's
// (one forward pass, no Jacobian).
std::optional<Tensor> derivative_ops(const detail::TapeState& tape, const Tensor& target,
                                     const Tensor& source, Derivative kind,
                                     const Tensor* direction = nullptr);

// After `tape` answered `result` for target and source: if another live tape
// of this thread sees what it is computed from, records result on it as the
// ops of derivative_ops (`tape` paused meanwhile).
void record_derivative(detail::TapeState& tape, const Tensor& target, const Tensor& source,
                       Derivative kind, const Tensor& result);

// Per-example Hessians h [b, x..., x...] (a new tensor, rank = x's rank
// per example) made symmetric bit for bit: entry (j, i) of each example's
// n x n becomes entry (i, j)'s, i < j, as the engine's runner does per block;
// in place. As ops when a tape records h.
Tensor symmetric_hessian(const Tensor& h, std::int64_t rank);

}  // namespace batchjac::engine
