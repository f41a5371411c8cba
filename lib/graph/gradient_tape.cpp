// GradientTape: watching, pausing and resetting (the Jacobians are in
// engine/jacobian.cpp).
#include "graph/tape.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/gradient_tape.hpp>

#include <string>
#include <utility>

namespace batchjac {

GradientTape::GradientTape(TapeOptions options) : state_(std::make_shared<detail::TapeState>()) {
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

GradientTape::RecordingPause::RecordingPause(std::weak_ptr<detail::TapeState> state)
    : state_(std::move(state)) {
  ++state_.lock()->paused;
}
GradientTape::RecordingPause::RecordingPause(RecordingPause&& other) noexcept
    : state_(std::move(other.state_)) {}
GradientTape::RecordingPause::~RecordingPause() {
  if (const std::shared_ptr<detail::TapeState> state = state_.lock()) --state->paused;
}

GradientTape::RecordingPause GradientTape::stop_recording() { return RecordingPause(state_); }

void GradientTape::reset() {
  // What was recorded and watched goes; the options, the live pauses and the
  // thread the tape records on stay.
  detail::TapeState fresh;
  fresh.persistent = state_->persistent;
  fresh.paused = state_->paused;
  fresh.registry = std::move(state_->registry);
  *state_ = std::move(fresh);
}

bool GradientTape::persistent() const noexcept { return state_->persistent; }

void GradientTape::end_recording() noexcept {
  // Ops of the creator thread read `ended` under its list's lock.
  if (state_->registry) {
    const std::lock_guard<std::mutex> lock(state_->registry->mutex);
    state_->ended = true;
  } else {
    state_->ended = true;
  }
}

bool GradientTape::recording() const noexcept { return !state_->ended && state_->registry != nullptr; }

void GradientTape::answered() {
  state_->used = true;
  if (state_->persistent) return;
  // It cannot answer again: nothing more is recorded, and what was goes.
  state_->ended = true;
  state_->records.clear();
  state_->producer.clear();
  state_->tracked.clear();
  state_->watched.clear();
}

}  // namespace batchjac
