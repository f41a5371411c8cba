// GradientTape's batch_jacobian, jacobian and gradient: validate, slice the
// tape, derive the JVP/VJP program, run the engine.
#include "autodiff/autodiff.hpp"
#include "engine/engine.hpp"
#include "engine/jacobian_call.hpp"
#include "engine/nested.hpp"
#include "engine/plan_cache.hpp"
#include "graph/slice.hpp"
#include "graph/tape.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/gradient_tape.hpp>
#include <batchjac/ops.hpp>

#include <cstring>
#include <string>

namespace batchjac {

namespace engine {

// Enum values are checked: a cast integer would otherwise pick a behaviour silently.
void check_unconnected(const char* fn, UnconnectedGradients u) {
  if (u != UnconnectedGradients::none && u != UnconnectedGradients::zero)
    throw ValueError(std::string(fn) +
                     ": unconnected_gradients must be UnconnectedGradients::none or zero, got " +
                     std::to_string(static_cast<int>(u)));
}

void check_options(const char* fn, const JacobianOptions& o) {
  if (o.mode != JacobianMode::automatic && o.mode != JacobianMode::forward &&
      o.mode != JacobianMode::reverse)
    throw ValueError(std::string(fn) + ": mode must be JacobianMode::automatic, forward or reverse, got " +
                     std::to_string(static_cast<int>(o.mode)));
  check_unconnected(fn, o.unconnected_gradients);
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

std::shared_ptr<const Prepared> plan_jacobian(graph::Program& program, const JacobianOptions& options,
                                              bool small_call) {
  const std::int64_t n_in = program.info(program.parameter).shape.num_elements();
  const std::int64_t n_out = program.info(program.result).shape.num_elements();
  graph::LinearProgram jvp = autodiff::linearize(program);
  if (jvp.output < 0) return nullptr;
  autodiff::optimize(program, jvp);
  auto only = [&](graph::LinearProgram& lin, JacobianMode mode) {
    autodiff::prune(program, lin);
    const engine::Candidate c{&program, &lin, mode};
    return engine::prepare({&c, 1}, options);
  };
  if (options.mode == JacobianMode::forward) return only(jvp, JacobianMode::forward);
  graph::LinearProgram vjp = autodiff::transpose(program, jvp);
  autodiff::optimize(program, vjp);
  if (options.mode == JacobianMode::reverse) return only(vjp, JacobianMode::reverse);
  if (small_call) return n_in <= n_out ? only(jvp, JacobianMode::forward) : only(vjp, JacobianMode::reverse);
  // The likelier winner is planned first: the other stops planning as soon
  // as it cannot cost less. (Equal costs keep the first.)
  graph::Program forward_program = program;
  autodiff::prune(forward_program, jvp);
  autodiff::prune(program, vjp);
  const engine::Candidate forward{&forward_program, &jvp, JacobianMode::forward};
  const engine::Candidate reverse{&program, &vjp, JacobianMode::reverse};
  const engine::Candidate both[] = {n_in <= n_out ? forward : reverse, n_in <= n_out ? reverse : forward};
  return engine::prepare(both, options);
}

namespace {

// At most this much more estimated work per block (steps and stores) lets a
// call that returns a new tensor write the unread target's value in its
// pass too. The estimate leaves out each step's own overhead, so a value
// made of a few small elementwise steps costs several times what it says
// (measured: 3-10% by the estimate was 11-17% of the time).
constexpr double kFillWork = 1.02;

// Plans the Jacobian (or runs the plan kept from an earlier call of the
// same key) into `out`; false when no derivative flows. With `value`, the
// program's kept value is written in the same pass; when `fill_optional`,
// only if that adds at most kFillWork to the work (else nothing is written
// there). Returns in *value_written whether it was.
bool differentiate(graph::Program& program, const Tensor& source, void* out, DType out_dtype,
                   const JacobianOptions& options, const engine::ValueOut* value, bool fill_optional,
                   bool* value_written, std::atomic<bool>* symmetric) {
  // automatic: the engine plans both and runs the cheaper, unless the call
  // is so small that planning twice would cost more than either runs: then
  // one pass per element of the smaller side.
  const std::int64_t n_in = program.info(program.parameter).shape.num_elements();
  const std::int64_t n_out = program.info(program.result).shape.num_elements();
  const bool small_call = engine::small_call(program, program.batch);
  program.symmetric = symmetric != nullptr;
  engine::PlanKey key(program, options, small_call, false, fill_optional);
  auto run = [&](const engine::Prepared& plan, const graph::Program& with) {
    *value_written = value && plan.keeps_value();
    plan.run(with, engine::Binding{with.batch, &source, with.constants, symmetric}, out, out_dtype, options,
             *value_written ? value : nullptr);
  };
  if (const std::shared_ptr<const engine::Prepared> kept = engine::find_plan(key)) {
    run(*kept, program);
    return true;
  }
  if (engine::own_shared_views(program)) key = engine::PlanKey(program, options, small_call, false, fill_optional);
  graph::Program without = program;  // planned without the value, when it is optional
  without.kept = -1;
  std::shared_ptr<const engine::Prepared> plan = plan_jacobian(program, options, small_call);
  if (!plan) return false;
  const graph::Program* planned = &program;
  if (value && fill_optional) {
    std::shared_ptr<const engine::Prepared> alone = plan_jacobian(without, options, small_call);
    // Each example stores its Jacobian entries, and with the value its elements.
    const double stores = double(n_in * n_out);
    const double value_stores = double(program.info(program.kept).shape.num_elements());
    if (plan->cost() + stores + value_stores > kFillWork * (alone->cost() + stores)) {
      plan = std::move(alone);
      planned = &without;
    }
  }
  run(*plan, *planned);
  engine::keep_plan(std::move(key), std::move(plan));
  return true;
}

}  // namespace

// Runs a sliced program (or none: unconnected) into `out`, or into a new
// tensor of out_shape when out is null. nullopt: unconnected under `none`.
// The target's value is written in the same pass over the blocks.
std::optional<Tensor> finish(std::optional<graph::Program>& program, const Tensor& source,
                             const Shape& out_shape, void* out, UnconnectedGradients unconnected,
                             const JacobianOptions& options, const TargetValue& target,
                             std::atomic<bool>* symmetric) {
  const DType dtype = source.dtype();
  std::shared_ptr<detail::TensorImpl> owned, filled;
  if (out == nullptr) {
    owned = detail::new_tensor(out_shape, dtype);
    out = owned->buffer.get();
  }
  engine::ValueOut value;
  if (program && program->batch > 0 && target.id >= 0) {
    if (target.into) {
      value = *target.into;
    } else if (owned && target.target.impl().deferred()) {
      filled = detail::new_tensor(target.target.shape(), target.target.dtype());
      value = {filled->buffer.get(), target.target.dtype()};
    }
    if (value.data) program->kept = target.id;
  }
  const std::size_t bytes = static_cast<std::size_t>(out_shape.num_elements()) * dtype_size(dtype);
  bool value_written = false;
  const bool connected =
      program && (program->batch == 0 || differentiate(*program, source, out, dtype, options,
                                                       value.data ? &value : nullptr, filled != nullptr,
                                                       &value_written, symmetric));
  if (!connected || program->batch == 0) std::memset(out, 0, bytes);
  if (value_written && filled) target.target.impl().fulfil(std::move(filled));
  if (target.into && !value_written) {  // no pass ran: the target's own value
    const std::size_t n = static_cast<std::size_t>(target.target.num_elements()) * dtype_size(target.target.dtype());
    if (n > 0) std::memcpy(target.into->data, target.target.impl().bytes(), n);
  }
  if (!connected && unconnected == UnconnectedGradients::none) return std::nullopt;
  if (!owned) return Tensor();  // written into the caller's memory
  return detail::make_tensor(std::move(owned));
}

void sum_result(graph::Program& program) {
  // The gradient of the sum: a one-row Jacobian of reduce_sum(target).
  const Shape ts = program.info(program.result).shape;
  if (ts.size() == 0) return;
  ops::Attrs all;
  for (std::size_t i = 0; i < ts.size(); ++i) all.axes.push_back(static_cast<std::int64_t>(i));
  program.result = program.emit(program.nodes, graph::ValueKind::primal, ops::Prim::reduce_sum, all,
                                {program.result});
}

JacobianOptions gradient_options(UnconnectedGradients unconnected) {
  JacobianOptions reverse;
  reverse.mode = JacobianMode::reverse;
  reverse.unconnected_gradients = unconnected;
  return reverse;
}

std::optional<Tensor> one_source(const detail::TapeState& tape, const Tensor& target, const Tensor& source,
                                 bool batched, bool sum, const JacobianOptions& options) {
  std::optional<graph::Program> program = graph::slice(tape, target, source, batched);
  const int target_value = program ? program->result : -1;
  if (program && sum) sum_result(*program);
  const Shape out_shape = sum ? source.shape() : concat_shapes(target.shape(), source.shape(), batched ? 1 : 0);
  return finish(program, source, out_shape, nullptr, options.unconnected_gradients, options,
                TargetValue{target, target_value});
}

}  // namespace engine

using engine::check_float;
using engine::check_options;
using engine::check_unconnected;
using engine::check_unused;
using engine::concat_shapes;
using engine::finish;
using engine::gradient_options;
using engine::TargetValue;

std::optional<Tensor> GradientTape::batch_jacobian_impl(const Tensor& target, const Tensor& source,
                                                        const Out* out, const Out* value_out,
                                                        const JacobianOptions& options) {
  const std::string fn = value_out ? "value_and_batch_jacobian_into" : out ? "batch_jacobian_into" : "batch_jacobian";
  check_options(fn.c_str(), options);
  if (target.rank() < 2 || source.rank() < 2)
    throw ValueError(std::string(fn) + ": target and source must have rank >= 2 ([batch, ...]), got " +
                     "target " + target.shape().to_string() + " and source " +
                     source.shape().to_string());
  if (target.shape()[0] != source.shape()[0])
    throw ValueError(std::string(fn) + ": the first dimensions of target and source must match, got " +
                     "target " + target.shape().to_string() + " and source " +
                     source.shape().to_string());
  check_float(fn.c_str(), "source", source);
  check_float(fn.c_str(), "target", target);
  const Shape out_shape = concat_shapes(target.shape(), source.shape(), 1);
  detail::check_tensor_size(fn, out_shape, source.dtype(), "the Jacobian");  // before slicing
  auto check_out = [&](const Out& o, const char* what, const Tensor& like, const Shape& shape) {
    if (o.dtype != like.dtype())
      throw ValueError(fn + ": the " + what + " must have the " + (&like == &source ? "source" : "target") +
                       "'s type (" + std::string(dtype_name(like.dtype())) + "), got " +
                       std::string(dtype_name(o.dtype)));
    if (o.size != static_cast<std::size_t>(shape.num_elements()))
      throw ValueError(fn + ": the " + what + " needs " + std::to_string(shape.num_elements()) +
                       " elements for shape " + shape.to_string() + ", got " + std::to_string(o.size));
  };
  if (out != nullptr) check_out(*out, value_out ? "Jacobian output" : "output", source, out_shape);
  if (value_out != nullptr) check_out(*value_out, "value output", target, target.shape());
  check_unused(fn.c_str(), *state_);
  std::optional<graph::Program> program = graph::slice(*state_, target, source, true);
  const engine::ValueOut into_value = value_out ? engine::ValueOut{value_out->data, value_out->dtype}
                                                : engine::ValueOut{};
  const TargetValue value{target, program ? program->result : -1, value_out ? &into_value : nullptr};
  // Into the caller's memory, an unconnected target is false and zeros.
  auto result = out ? finish(program, source, out_shape, out->data, UnconnectedGradients::none, options, value)
                    : finish(program, source, out_shape, nullptr, options.unconnected_gradients, options, value);
  if (!out && result) engine::record_derivative(*state_, target, source, engine::Derivative::batch_jacobian, *result);
  answered();
  return result;
}

std::optional<Tensor> GradientTape::batch_jacobian(const Tensor& target, const Tensor& source,
                                                   const JacobianOptions& options) {
  return batch_jacobian_impl(target, source, nullptr, nullptr, options);
}

bool GradientTape::batch_jacobian_into(const Tensor& target, const Tensor& source,
                                       std::span<float> out, const JacobianOptions& options) {
  const Out into{out.data(), out.size(), float32};
  return batch_jacobian_impl(target, source, &into, nullptr, options).has_value();
}

bool GradientTape::batch_jacobian_into(const Tensor& target, const Tensor& source,
                                       std::span<double> out, const JacobianOptions& options) {
  const Out into{out.data(), out.size(), float64};
  return batch_jacobian_impl(target, source, &into, nullptr, options).has_value();
}

bool GradientTape::value_and_batch_jacobian_into(const Tensor& target, const Tensor& source,
                                                 std::span<float> value_out, std::span<float> jacobian_out,
                                                 const JacobianOptions& options) {
  const Out value{value_out.data(), value_out.size(), float32};
  const Out into{jacobian_out.data(), jacobian_out.size(), float32};
  return batch_jacobian_impl(target, source, &into, &value, options).has_value();
}

bool GradientTape::value_and_batch_jacobian_into(const Tensor& target, const Tensor& source,
                                                 std::span<double> value_out, std::span<double> jacobian_out,
                                                 const JacobianOptions& options) {
  const Out value{value_out.data(), value_out.size(), float64};
  const Out into{jacobian_out.data(), jacobian_out.size(), float64};
  return batch_jacobian_impl(target, source, &into, &value, options).has_value();
}

std::optional<Tensor> GradientTape::jacobian(const Tensor& target, const Tensor& source,
                                             const JacobianOptions& options) {
  constexpr const char* fn = "jacobian";
  check_options(fn, options);
  check_float(fn, "source", source);
  check_float(fn, "target", target);
  detail::check_tensor_size(fn, concat_shapes(target.shape(), source.shape(), 0), source.dtype(),
                            "the Jacobian");
  check_unused(fn, *state_);
  auto result = engine::one_source(*state_, target, source, false, false, options);
  if (result) engine::record_derivative(*state_, target, source, engine::Derivative::jacobian, *result);
  answered();
  return result;
}

std::optional<Tensor> GradientTape::gradient(const Tensor& target, const Tensor& source,
                                             UnconnectedGradients unconnected_gradients) {
  constexpr const char* fn = "gradient";
  check_unconnected(fn, unconnected_gradients);
  check_float(fn, "source", source);
  check_float(fn, "target", target);
  check_unused(fn, *state_);
  auto result = engine::one_source(*state_, target, source, false, true, gradient_options(unconnected_gradients));
  if (result) engine::record_derivative(*state_, target, source, engine::Derivative::gradient, *result);
  answered();
  return result;
}

}  // namespace batchjac
