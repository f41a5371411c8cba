// Derivatives as recorded ops (see engine/nested.hpp).
#include "engine/nested.hpp"

#include "autodiff/autodiff.hpp"
#include "engine/jacobian_call.hpp"
#include "graph/slice.hpp"
#include "ops/eager.hpp"

#include <batchjac/ops.hpp>

#include <cstdint>
#include <optional>
#include <vector>

namespace batchjac::engine {

namespace {

// The tensors of a program's values: the tape's own for what it recorded,
// the program's constants, and ops applied for the derived nodes.
class Replay {
 public:
  Replay(const graph::Program& program, std::vector<std::optional<Tensor>> recorded)
      : program_(program), tensors_(std::move(recorded)) {
    tensors_.resize(program.values.size());
  }
  void set(int v, const Tensor& t) { tensors_[v] = t; }
  Tensor get(int v) const {
    if (tensors_[v]) return *tensors_[v];
    const graph::Value& value = program_.values[v];
    return program_.constants.at(static_cast<std::size_t>(value.constant));
  }
  // Applies the nodes whose values it does not have yet.
  void run(const std::vector<ops::Node>& nodes) {
    for (const ops::Node& n : nodes) {
      if (tensors_[n.output]) continue;
      std::vector<Tensor> in;
      for (int v : n.inputs) in.push_back(get(v));
      tensors_[n.output] = ops::apply(n.prim, n.attrs, std::move(in));
    }
  }

 private:
  const graph::Program& program_;
  std::vector<std::optional<Tensor>> tensors_;
};

// A one-hot direction shaped `shape`: 1 at flat element k of every example
// (per_example elements each), 0 elsewhere.
Tensor one_hot(const Shape& shape, DType dtype, std::int64_t per_example, std::int64_t k) {
  std::vector<double> data(static_cast<std::size_t>(shape.num_elements()), 0.0);
  for (std::size_t i = static_cast<std::size_t>(k); i < data.size(); i += static_cast<std::size_t>(per_example))
    data[i] = 1.0;
  return constant(data, shape, dtype);
}

}  // namespace

std::optional<Tensor> derivative_ops(const detail::TapeState& tape, const Tensor& target,
                                     const Tensor& source, Derivative kind, const Tensor* direction) {
  std::vector<std::optional<Tensor>> recorded;
  std::optional<graph::Program> sliced = graph::slice(tape, target, source, false, nullptr, &recorded);
  if (!sliced) return std::nullopt;
  graph::Program& program = *sliced;
  // Ops no tape records would only be evaluated now, for nothing.
  std::vector<Tensor> read{source};
  if (direction) read.push_back(*direction);
  for (const auto& t : recorded)
    if (t) read.push_back(*t);
  for (const Tensor& t : program.constants) read.push_back(t);
  if (!graph::recorded(read)) return std::nullopt;
  if (kind == Derivative::gradient) sum_result(program);
  graph::LinearProgram jvp = autodiff::linearize(program);
  if (jvp.output < 0) return std::nullopt;

  const bool batched = kind == Derivative::batch_jacobian;
  const std::int64_t b = batched ? source.shape()[0] : 1;
  const std::int64_t n = source.num_elements() / (b > 0 ? b : 1);
  const std::int64_t m = target.num_elements() / (b > 0 ? b : 1);
  const bool forward = kind == Derivative::directional || (kind != Derivative::gradient && n <= m);
  graph::LinearProgram lin = forward ? jvp : autodiff::transpose(program, jvp);
  autodiff::prune(program, lin);

  Replay replay(program, std::move(recorded));
  replay.set(program.parameter, source);
  replay.run(program.nodes);  // the partials the rules added (the rest is recorded)
  const Shape& seed_shape = forward ? source.shape() : program.info(program.result).shape;
  const DType seed_dtype = forward ? source.dtype() : target.dtype();
  auto pass = [&](const Tensor& seed) {
    Replay one = replay;
    one.set(lin.input, seed);
    one.run(lin.nodes);
    return one.get(lin.output);
  };
  if (kind == Derivative::directional) return pass(*direction);
  if (kind == Derivative::gradient) return pass(constant(1.0, seed_dtype));

  // One pass per element of the smaller side, joined: forward passes give
  // the columns [b?, y...], reverse passes the rows [b?, x...].
  const std::int64_t passes = forward ? n : m;
  const std::int64_t per_example = forward ? n : m;
  std::vector<Tensor> parts;
  for (std::int64_t k = 0; k < passes; ++k) {
    const Tensor part = pass(one_hot(seed_shape, seed_dtype, per_example, k));
    const std::int64_t other = forward ? m : n;
    std::vector<std::int64_t> dims;
    if (batched) dims.push_back(b);
    if (forward) dims.insert(dims.end(), {other, 1});
    else dims.insert(dims.end(), {1, other});
    parts.push_back(reshape(part, Shape(dims)));
  }
  const std::int64_t axis = (batched ? 1 : 0) + (forward ? 1 : 0);
  const Tensor joined = parts.size() == 1 ? parts[0] : concat(parts, axis);
  return reshape(joined, concat_shapes(target.shape(), source.shape(), batched ? 1 : 0));
}

void record_derivative(detail::TapeState& tape, const Tensor& target, const Tensor& source,
                       Derivative kind, const Tensor& result) {
  if (result.num_elements() == 0 || !graph::others_record(tape)) return;
  const PauseTape pause(tape);
  const std::optional<Tensor> ops = derivative_ops(tape, target, source, kind);
  if (!ops) return;  // constant, or no tape sees it: an outer tape sees no connection
  const Tensor same = ops->dtype() == result.dtype() ? *ops : cast(*ops, result.dtype());
  graph::record(ops::Prim::reshape, ops::shape_attrs(result.shape()), {same}, result);
}

}  // namespace batchjac::engine
