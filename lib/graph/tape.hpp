// Tape bookkeeping: what a GradientTape recorded, and the per-thread list of
// live tapes that ops record on.
#pragma once

#include "ops/primitive.hpp"

#include <batchjac/tensor.hpp>

#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace batchjac::detail {

struct Record {
  ops::Prim prim;
  ops::Attrs attrs;
  std::vector<Tensor> inputs;
  Tensor output;
};

struct TapeState {
  bool persistent = false;
  bool used = false;  // a non-persistent tape answered once
  int paused = 0;     // live stop_recording guards
  std::vector<Record> records;
  std::unordered_set<std::uint64_t> tracked;         // watched, or output of a record
  std::unordered_map<std::uint64_t, int> producer;   // output id -> record index
  std::vector<Tensor> watched;                       // kept alive while watched
};

}  // namespace batchjac::detail

namespace batchjac::graph {

// Records the op on every live, unpaused tape of this thread that tracks one
// of its inputs.
void record(ops::Prim prim, const ops::Attrs& attrs, const std::vector<Tensor>& inputs,
            const Tensor& output);

// The live tapes of the calling thread, innermost last.
void push_tape(detail::TapeState* tape);
void pop_tape(detail::TapeState* tape);

}  // namespace batchjac::graph
