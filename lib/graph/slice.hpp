// Cuts the program that computes a target from a source out of a tape.
#pragma once

#include "graph/program.hpp"
#include "graph/tape.hpp"

#include <optional>
#include <span>
#include <vector>

namespace batchjac::graph {

// The recorded ops between source and target, with the source as parameter
// and everything else they read captured as constants; nullopt when target
// does not depend on source. With `batched`, shapes become per-example and
// every op's batch-axis rule runs (ValueError naming an op that mixes examples).
// `input` (batched only; a tensor [b, ...] the tape tracks too) is a second,
// per-example input that is not differentiated against: it becomes a
// per-example constant, and the ops that read it are in the program, so a
// traced function (bj::trace) computes them per call.
// `tensors`, if given, receives the recorded tensor of each computed value
// (indexed by value; others empty): derivatives recorded on outer tapes
// read the forward values the tape recorded (engine/nested.cpp).
std::optional<Program> slice(const detail::TapeState& tape, const Tensor& target,
                             const Tensor& source, bool batched, const Tensor* input = nullptr,
                             std::vector<std::optional<Tensor>>* tensors = nullptr);

// Several independent sources at once (none computed from another on the
// tape, one dtype, distinct): the parameter is their elements joined, per
// example, in order ([N] or [b, N], N the sum of their per-example sizes),
// and each source is a slice of it, reshaped (`source_values[i]`). One
// Jacobian of this program has the sources' Jacobians side by side, each in
// its columns. nullopt when target depends on none of them.
struct JointProgram {
  Program program;
  std::vector<int> source_values;
};
std::optional<JointProgram> slice_joint(const detail::TapeState& tape, const Tensor& target,
                                        std::span<const Tensor> sources, bool batched);

// Whether no source is computed, through recorded ops, from another (then
// a derivative with respect to each holds the others fixed, and one joint
// program answers for all).
bool independent(const detail::TapeState& tape, std::span<const Tensor> sources);

}  // namespace batchjac::graph
