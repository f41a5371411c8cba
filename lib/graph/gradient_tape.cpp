// GradientTape: watching, pausing and resetting (the Jacobians are in
// engine/jacobian.cpp).
#include "graph/tape.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/gradient_tape.hpp>

#include <string>

namespace batchjac {

GradientTape::GradientTape(TapeOptions options) : state_(std::make_unique<detail::TapeState>()) {
  state_->persistent = options.persistent;
  graph::push_tape(state_.get());
}

GradientTape::~GradientTape() { graph::pop_tape(state_.get()); }

void GradientTape::watch(const Tensor& x) {
  if (!is_floating(x.dtype()))
    throw ValueError("GradientTape::watch: expected a float32 or float64 tensor, got a " +
                     std::string(dtype_name(x.dtype())) + " tensor of shape " +
                     x.shape().to_string() + " (it has no derivative)");
  if (state_->tracked.insert(x.id()).second) state_->watched.push_back(x);
}

GradientTape::RecordingPause::RecordingPause(detail::TapeState* state) : state_(state) {
  ++state_->paused;
}
GradientTape::RecordingPause::RecordingPause(RecordingPause&& other) noexcept
    : state_(other.state_) {
  other.state_ = nullptr;
}
GradientTape::RecordingPause::~RecordingPause() {
  if (state_) --state_->paused;
}

GradientTape::RecordingPause GradientTape::stop_recording() { return RecordingPause(state_.get()); }

void GradientTape::reset() {
  const bool persistent = state_->persistent;
  const int paused = state_->paused;
  *state_ = detail::TapeState{};
  state_->persistent = persistent;
  state_->paused = paused;
}

bool GradientTape::persistent() const noexcept { return state_->persistent; }

}  // namespace batchjac
