// GradientTape's batch_jacobian, jacobian and gradient: validate, slice the
// tape, derive the JVP/VJP program, run the engine.
#include "autodiff/autodiff.hpp"
#include "engine/engine.hpp"
#include "graph/slice.hpp"
#include "graph/tape.hpp"
#include "ops/elementwise_math.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/gradient_tape.hpp>
#include <batchjac/ops.hpp>

#include <string>

namespace batchjac {

namespace {

void check_options(const char* fn, const JacobianOptions& o) {
  if (o.parallel_iterations && *o.parallel_iterations < 1)
    throw ValueError(std::string(fn) + ": parallel_iterations must be >= 1 or unset, got " +
                     std::to_string(*o.parallel_iterations));
  if (o.max_threads && *o.max_threads < 1)
    throw ValueError(std::string(fn) + ": max_threads must be >= 1 or unset, got " +
                     std::to_string(*o.max_threads));
}

void check_float(const char* fn, const char* what, const Tensor& t) {
  if (!is_floating(t.dtype()))
    throw ValueError(std::string(fn) + ": " + what + " must be float32 or float64, got a " +
                     std::string(dtype_name(t.dtype())) + " tensor of shape " +
                     t.shape().to_string() + " (it has no derivative)");
}

void check_unused(const char* fn, const detail::TapeState& s) {
  if (s.used && !s.persistent)
    throw RuntimeError(std::string(fn) +
                       ": a non-persistent GradientTape answers one call only; create it with "
                       "TapeOptions{.persistent = true} to call it again");
}

Shape concat_shapes(const Shape& a, const Shape& b, std::size_t skip_b) {
  std::vector<std::int64_t> d(a.begin(), a.end());
  d.insert(d.end(), b.begin() + static_cast<std::ptrdiff_t>(skip_b), b.end());
  return Shape(d);
}

// Derives and runs the Jacobian of a sliced program; nullopt when no
// derivative flows from the parameter to the result.
std::optional<Tensor> differentiate(graph::Program& program, const Tensor& source,
                                    const Shape& out_shape, const JacobianOptions& options) {
  graph::LinearProgram jvp = autodiff::linearize(program);
  if (jvp.output < 0) return std::nullopt;
  JacobianMode mode = options.mode;
  graph::LinearProgram chosen;
  if (mode == JacobianMode::forward) {
    chosen = std::move(jvp);
  } else {
    graph::LinearProgram vjp = autodiff::transpose(program, jvp);
    if (mode == JacobianMode::automatic) mode = autodiff::choose_mode(program, jvp, vjp);
    chosen = mode == JacobianMode::forward ? std::move(jvp) : std::move(vjp);
  }
  autodiff::prune(program, chosen);
  return engine::run(program, chosen, mode, source, out_shape, source.dtype(), options);
}

std::optional<Tensor> unconnected(UnconnectedGradients u, const Shape& shape, DType dtype) {
  if (u == UnconnectedGradients::zero) return zeros(shape, dtype);
  return std::nullopt;
}

}  // namespace

std::optional<Tensor> GradientTape::batch_jacobian(const Tensor& target, const Tensor& source,
                                                   const JacobianOptions& options) {
  constexpr const char* fn = "batch_jacobian";
  check_options(fn, options);
  if (target.rank() < 2 || source.rank() < 2)
    throw ValueError(std::string(fn) + ": target and source must have rank >= 2 ([batch, ...]), got " +
                     "target " + target.shape().to_string() + " and source " +
                     source.shape().to_string());
  if (target.shape()[0] != source.shape()[0])
    throw ValueError(std::string(fn) + ": the first dimensions of target and source must match, got " +
                     "target " + target.shape().to_string() + " and source " +
                     source.shape().to_string());
  check_float(fn, "source", source);
  check_float(fn, "target", target);
  check_unused(fn, *state_);
  const Shape out_shape = concat_shapes(target.shape(), source.shape(), 1);
  std::optional<graph::Program> program = graph::slice(*state_, target, source, true);
  std::optional<Tensor> result;
  if (program) {
    if (source.shape()[0] == 0) result = zeros(out_shape, source.dtype());
    else result = differentiate(*program, source, out_shape, options);
  }
  if (!result) result = unconnected(options.unconnected_gradients, out_shape, source.dtype());
  state_->used = true;
  return result;
}

std::optional<Tensor> GradientTape::jacobian(const Tensor& target, const Tensor& source,
                                             const JacobianOptions& options) {
  constexpr const char* fn = "jacobian";
  check_options(fn, options);
  check_float(fn, "source", source);
  check_float(fn, "target", target);
  check_unused(fn, *state_);
  const Shape out_shape = concat_shapes(target.shape(), source.shape(), 0);
  std::optional<graph::Program> program = graph::slice(*state_, target, source, false);
  std::optional<Tensor> result;
  if (program) result = differentiate(*program, source, out_shape, options);
  if (!result) result = unconnected(options.unconnected_gradients, out_shape, source.dtype());
  state_->used = true;
  return result;
}

std::optional<Tensor> GradientTape::gradient(const Tensor& target, const Tensor& source,
                                             UnconnectedGradients unconnected_gradients) {
  constexpr const char* fn = "gradient";
  check_float(fn, "source", source);
  check_float(fn, "target", target);
  check_unused(fn, *state_);
  std::optional<graph::Program> program = graph::slice(*state_, target, source, false);
  std::optional<Tensor> result;
  if (program) {
    // The gradient of the sum: a one-row Jacobian of reduce_sum(target).
    const Shape& ts = program->info(program->result).shape;
    if (ts.size() > 0) {
      ops::Attrs all;
      for (std::size_t i = 0; i < ts.size(); ++i) all.axes.push_back(static_cast<std::int64_t>(i));
      program->result = program->emit(program->nodes, graph::ValueKind::primal, ops::Prim::reduce_sum,
                                      all, {program->result});
    }
    JacobianOptions o;
    o.mode = JacobianMode::reverse;
    result = differentiate(*program, source, source.shape(), o);
  }
  if (!result) result = unconnected(unconnected_gradients, source.shape(), source.dtype());
  state_->used = true;
  return result;
}

}  // namespace batchjac
