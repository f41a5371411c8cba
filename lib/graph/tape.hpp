// Tape bookkeeping: what a GradientTape recorded, and the per-thread list of
// live tapes that ops record on.
#pragma once

#include "ops/primitive.hpp"

#include <batchjac/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
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

struct TapeState;

// The live tapes of one thread, innermost last. A tape may be destroyed on
// another thread (or after its thread has ended), so the list is locked, and
// each tape keeps its creator thread's list alive.
struct TapeRegistry {
  std::mutex mutex;
  std::vector<TapeState*> tapes;
};

struct TapeState {
  bool persistent = false;
  bool used = false;  // a non-persistent tape answered once
  int paused = 0;     // live stop_recording guards
  bool ended = false; // end_recording was called, or a non-persistent tape answered
  std::vector<Record> records;
  std::unordered_set<std::uint64_t> tracked;         // watched, or output of a record
  std::unordered_map<std::uint64_t, int> producer;   // output id -> record index
  std::vector<Tensor> watched;                       // kept alive while watched
  // The creator thread's list (null: created while its thread was exiting,
  // the tape records nothing).
  std::shared_ptr<TapeRegistry> registry;
};

// bj::custom_jvp's rule, traced when the function was called on tracked
// tensors: jvp(primals, primal_out, tangents) recorded on a tape of its
// own, the tangents being placeholders.
struct CustomJvpTrace {
  TapeState tape;
  std::vector<Tensor> primals;   // x_1..x_n
  Tensor primal_out;             // y
  std::vector<Tensor> tangents;  // placeholders for x_i's tangents
  Tensor tangent_out;            // the rule's result
};

}  // namespace batchjac::detail

namespace batchjac::graph {

// While it lives, ops of this thread are recorded on `tape` alone (and
// recorded if it tracks an input), not on the thread's tapes: a custom
// rule is traced without the tapes that record the function seeing it.
class RecordOnlyOn {
 public:
  explicit RecordOnlyOn(detail::TapeState& tape);
  ~RecordOnlyOn();
  RecordOnlyOn(const RecordOnlyOn&) = delete;
  RecordOnlyOn& operator=(const RecordOnlyOn&) = delete;

 private:
  detail::TapeState* previous_;
};

// Whether an op on `inputs` is recorded: a live, unpaused tape of this
// thread tracks one of them.
bool recorded(const std::vector<Tensor>& inputs);

// Records the op on every live, unpaused tape of this thread that tracks one
// of its inputs.
void record(ops::Prim prim, const ops::Attrs& attrs, const std::vector<Tensor>& inputs,
            const Tensor& output);

// push_tape adds a tape to the calling thread's list; pop_tape removes it
// from its creator's list, from any thread.
void push_tape(detail::TapeState* tape);
void pop_tape(detail::TapeState* tape);
// For each of `tensors`, whether every live, unpaused tape of this thread
// that tracks one of `inputs` also tracks it (true when none tracks them).
std::vector<bool> tracked_everywhere(const std::vector<Tensor>& inputs, const std::vector<Tensor>& tensors);
// Whether a live, unpaused tape of this thread other than `tape` records.
bool others_record(const detail::TapeState& tape);
// How many tapes the calling thread records on (for tests).
std::size_t live_tapes_of_this_thread();

}  // namespace batchjac::graph
