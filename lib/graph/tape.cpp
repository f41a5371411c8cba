// Recording: each thread keeps its own list of live tapes.
#include "graph/tape.hpp"

#include <algorithm>

namespace batchjac::graph {

namespace {
std::vector<detail::TapeState*>& live_tapes() {
  thread_local std::vector<detail::TapeState*> tapes;
  return tapes;
}
}  // namespace

void push_tape(detail::TapeState* tape) { live_tapes().push_back(tape); }

void pop_tape(detail::TapeState* tape) {
  auto& tapes = live_tapes();
  tapes.erase(std::remove(tapes.begin(), tapes.end(), tape), tapes.end());
}

void record(ops::Prim prim, const ops::Attrs& attrs, const std::vector<Tensor>& inputs,
            const Tensor& output) {
  for (detail::TapeState* tape : live_tapes()) {
    if (tape->paused > 0) continue;
    const bool tracks = std::any_of(inputs.begin(), inputs.end(), [&](const Tensor& t) {
      return tape->tracked.count(t.id()) != 0;
    });
    if (!tracks) continue;
    tape->producer[output.id()] = static_cast<int>(tape->records.size());
    tape->tracked.insert(output.id());
    tape->records.push_back(detail::Record{prim, attrs, inputs, output});
  }
}

}  // namespace batchjac::graph
