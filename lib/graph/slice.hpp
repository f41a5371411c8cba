// Cuts the program that computes a target from a source out of a tape.
#pragma once

#include "graph/program.hpp"
#include "graph/tape.hpp"

#include <optional>

namespace batchjac::graph {

// The recorded ops between source and target, with the source as parameter
// and everything else they read captured as constants; nullopt when target
// does not depend on source. With `batched`, shapes become per-example and
// every op's batch-axis rule runs (ValueError naming an op that mixes examples).
// `input` (batched only; a tensor [b, ...] the tape tracks too) is a second,
// per-example input that is not differentiated against: it becomes a
// per-example constant, and the ops that read it are in the program, so a
// traced function (bj::trace) computes them per call.
std::optional<Program> slice(const detail::TapeState& tape, const Tensor& target,
                             const Tensor& source, bool batched, const Tensor* input = nullptr);

}  // namespace batchjac::graph
