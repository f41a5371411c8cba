// Recording: each thread keeps its own list of live tapes, which a tape
// leaves from whatever thread destroys it.
#include "graph/tape.hpp"

#include <algorithm>

namespace batchjac::graph {

namespace {

// This thread's list, made by its first tape and released when the thread
// exits (tapes still alive keep it). Thread-local objects are destroyed
// before static ones, so `exited`, trivially destructible, tells an op run
// later (a static object's destructor) that `list` is gone.
thread_local bool exited = false;
struct ThreadTapes {
  std::shared_ptr<detail::TapeRegistry> list;
  ~ThreadTapes() { exited = true; }
};
thread_local ThreadTapes this_thread;
// Set by RecordOnlyOn: the one tape ops record on.
thread_local detail::TapeState* only = nullptr;

}  // namespace

RecordOnlyOn::RecordOnlyOn(detail::TapeState& tape) : previous_(only) { only = &tape; }
RecordOnlyOn::~RecordOnlyOn() { only = previous_; }

void push_tape(detail::TapeState* tape) {
  if (exited) return;
  if (!this_thread.list) this_thread.list = std::make_shared<detail::TapeRegistry>();
  tape->registry = this_thread.list;
  std::lock_guard<std::mutex> lock(tape->registry->mutex);
  tape->registry->tapes.push_back(tape);
}

void pop_tape(detail::TapeState* tape) {
  if (!tape->registry) return;
  std::lock_guard<std::mutex> lock(tape->registry->mutex);
  auto& tapes = tape->registry->tapes;
  tapes.erase(std::remove(tapes.begin(), tapes.end(), tape), tapes.end());
}

std::size_t live_tapes_of_this_thread() {
  if (exited || !this_thread.list) return 0;
  std::lock_guard<std::mutex> lock(this_thread.list->mutex);
  return this_thread.list->tapes.size();
}

namespace {
bool tracks(const detail::TapeState& tape, const std::vector<Tensor>& inputs) {
  return tape.paused == 0 && !tape.ended && std::any_of(inputs.begin(), inputs.end(), [&](const Tensor& t) {
           return tape.tracked.count(t.id()) != 0;
         });
}
}  // namespace

std::vector<bool> tracked_everywhere(const std::vector<Tensor>& inputs, const std::vector<Tensor>& tensors) {
  std::vector<bool> out(tensors.size(), true);
  auto check = [&](const detail::TapeState& tape) {
    if (!tracks(tape, inputs)) return;
    for (std::size_t i = 0; i < tensors.size(); ++i)
      if (!tape.tracked.count(tensors[i].id())) out[i] = false;
  };
  if (only) {
    check(*only);
    return out;
  }
  if (exited || !this_thread.list) return out;
  std::lock_guard<std::mutex> lock(this_thread.list->mutex);
  for (const detail::TapeState* tape : this_thread.list->tapes) check(*tape);
  return out;
}

bool others_record(const detail::TapeState& tape) {
  const auto records = [&](const detail::TapeState* t) { return t != &tape && t->paused == 0 && !t->ended; };
  if (only) return records(only);
  if (exited || !this_thread.list) return false;
  std::lock_guard<std::mutex> lock(this_thread.list->mutex);
  return std::any_of(this_thread.list->tapes.begin(), this_thread.list->tapes.end(), records);
}

bool recorded(const std::vector<Tensor>& inputs) {
  if (only) return tracks(*only, inputs);
  if (exited || !this_thread.list) return false;
  std::lock_guard<std::mutex> lock(this_thread.list->mutex);
  return std::any_of(this_thread.list->tapes.begin(), this_thread.list->tapes.end(),
                     [&](const detail::TapeState* tape) { return tracks(*tape, inputs); });
}

void record(ops::Prim prim, const ops::Attrs& attrs, const std::vector<Tensor>& inputs,
            const Tensor& output) {
  auto add = [&](detail::TapeState& tape) {
    tape.producer[output.id()] = static_cast<int>(tape.records.size());
    tape.tracked.insert(output.id());
    tape.records.push_back(detail::Record{prim, attrs, inputs, output});
  };
  if (only) {
    if (tracks(*only, inputs)) add(*only);
    return;
  }
  if (exited || !this_thread.list) return;
  // Held while recording: a tape destroyed meanwhile on another thread waits.
  std::lock_guard<std::mutex> lock(this_thread.list->mutex);
  for (detail::TapeState* tape : this_thread.list->tapes) {
    if (tracks(*tape, inputs)) add(*tape);
  }
}

}  // namespace batchjac::graph
