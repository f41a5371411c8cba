// batch_hessian and batch_hvp: the tape's gradient derived as ops on a copy
// of the tape (engine/nested.hpp), then differentiated again.
#include "engine/jacobian_call.hpp"
#include "engine/nested.hpp"
#include "graph/slice.hpp"
#include "tensor/sizes.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/gradient_tape.hpp>
#include <batchjac/ops.hpp>

#include <atomic>
#include <string>

namespace batchjac {

namespace {

void check_second_order(const char* fn, const Tensor& target, const Tensor& source) {
  engine::check_float(fn, "source", source);
  engine::check_float(fn, "target", target);
  if (source.rank() < 2)
    throw ValueError(std::string(fn) + ": source must have rank >= 2 ([batch, ...]), got " +
                     source.shape().to_string());
  const bool scalar = target.rank() == 1 || (target.rank() == 2 && target.shape()[1] == 1);
  if (!scalar)
    throw ValueError(std::string(fn) + ": target must be one scalar per example, [b] or [b, 1], got " +
                     target.shape().to_string());
  if (target.shape()[0] != source.shape()[0])
    throw ValueError(std::string(fn) + ": the first dimensions of target and source must match, got " +
                     "target " + target.shape().to_string() + " and source " + source.shape().to_string());
}

// A persistent tape holding what `from` recorded: the derived gradient is
// recorded on it (and on outer tapes), not on the user's tape.
void copy_records(const detail::TapeState& from, detail::TapeState& to, const Tensor& source) {
  to.records = from.records;
  to.producer = from.producer;
  to.tracked = from.tracked;
  to.watched = from.watched;
  to.tracked.insert(source.id());
}

}  // namespace

std::optional<Tensor> batch_hessian(GradientTape& tape, const Tensor& target, const Tensor& source,
                                    const JacobianOptions& options) {
  constexpr const char* fn = "batch_hessian";
  engine::check_options(fn, options);
  check_second_order(fn, target, source);
  const Shape per_example = ops::drop_batch_axis(source.shape());
  const Shape out_shape = engine::concat_shapes(source.shape(), per_example, 0);
  detail::check_tensor_size(fn, out_shape, source.dtype(), "the Hessian");
  engine::check_unused(fn, *tape.state_);
  // Examples must not mix (the batch-axis rules run on the per-example slice).
  const bool depends = graph::slice(*tape.state_, target, source, true).has_value();
  std::optional<Tensor> result;
  if (source.shape()[0] == 0) {  // an empty batch: an empty Hessian (as batch_jacobian's)
    tape.answered();
    if (!depends && options.unconnected_gradients == UnconnectedGradients::none) return std::nullopt;
    return zeros(out_shape, source.dtype());
  }
  {
    const engine::PauseTape pause(*tape.state_);
    GradientTape copy(TapeOptions{.persistent = true});
    copy_records(*tape.state_, *copy.state_, source);
    const std::optional<Tensor> gradient =
        engine::derivative_ops(*copy.state_, target, source, engine::Derivative::batch_gradient);
    if (gradient) {
      JacobianOptions outer = options;
      if (outer.mode == JacobianMode::automatic) outer.mode = JacobianMode::forward;
      // The gradient's batch_jacobian on the copy: the engine computes the
      // entries on and above the diagonal and copies them below it, block by
      // block where the plan's layout lets it (else a pass after).
      std::optional<graph::Program> program = graph::slice(*copy.state_, *gradient, source, true);
      std::atomic<bool> symmetric{true};
      result = engine::finish(program, source, out_shape, nullptr, outer.unconnected_gradients, outer,
                              engine::TargetValue{*gradient, -1}, &symmetric);
      if (result) {
        engine::record_derivative(*copy.state_, *gradient, source, engine::Derivative::batch_jacobian, *result);
        if (!symmetric.load() || graph::recorded({*result}))  // a pass (or ops, for an outer tape)
          result = engine::symmetric_hessian(*result, static_cast<std::int64_t>(per_example.size()));
      }
    } else if (options.unconnected_gradients == UnconnectedGradients::zero) {
      result = zeros(out_shape, source.dtype());
    }
  }
  tape.answered();
  return result;
}

std::optional<Tensor> batch_hvp(GradientTape& tape, const Tensor& target, const Tensor& source,
                                const Tensor& vectors, UnconnectedGradients unconnected_gradients) {
  constexpr const char* fn = "batch_hvp";
  engine::check_unconnected(fn, unconnected_gradients);
  check_second_order(fn, target, source);
  if (vectors.shape() != source.shape() || vectors.dtype() != source.dtype())
    throw ValueError(std::string(fn) + ": vectors must have the source's shape and type (" +
                     source.shape().to_string() + ", " + std::string(dtype_name(source.dtype())) + "), got " +
                     vectors.shape().to_string() + ", " + std::string(dtype_name(vectors.dtype())));
  engine::check_unused(fn, *tape.state_);
  // Examples must not mix (the batch-axis rules run on the per-example slice).
  const bool depends = graph::slice(*tape.state_, target, source, true).has_value();
  std::optional<Tensor> result;
  if (source.shape()[0] == 0) {  // an empty batch
    tape.answered();
    if (!depends && unconnected_gradients == UnconnectedGradients::none) return std::nullopt;
    return zeros(source.shape(), source.dtype());
  }
  {
    const engine::PauseTape pause(*tape.state_);
    GradientTape copy(TapeOptions{.persistent = true});
    copy_records(*tape.state_, *copy.state_, source);
    if (const std::optional<Tensor> gradient =
            engine::derivative_ops(*copy.state_, target, source, engine::Derivative::batch_gradient))
      result = engine::derivative_ops(*copy.state_, *gradient, source, engine::Derivative::directional, &vectors);
  }
  if (!result && unconnected_gradients == UnconnectedGradients::zero) result = zeros(source.shape(), source.dtype());
  tape.answered();
  return result;
}

}  // namespace batchjac
