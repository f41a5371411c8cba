// Derivatives as recorded ops (see engine/nested.hpp).
#include "engine/nested.hpp"

#include "autodiff/autodiff.hpp"
#include "engine/jacobian_call.hpp"
#include "graph/slice.hpp"
#include "ops/eager.hpp"
#include "tensor/tensor_impl.hpp"

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

// H = (H + H^T) / 2 over the two source halves, where they differ: bit for
// bit symmetric whichever order the passes rounded in.
template <class T>
void symmetrize(T* h, std::int64_t batch, std::int64_t n) {
  for (std::int64_t e = 0; e < batch; ++e, h += n * n)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) {
        T& a = h[i * n + j];
        T& c = h[j * n + i];
        if (a != c) a = c = T(0.5) * a + T(0.5) * c;
      }
}

}  // namespace

Tensor symmetric_hessian(const Tensor& h, std::int64_t rank) {
  const std::int64_t batch = h.shape()[0];
  std::int64_t n = 1;
  for (std::int64_t i = 0; i < rank; ++i) n *= h.shape()[static_cast<std::size_t>(1 + i)];
  if (graph::recorded({h})) {  // an outer tape differentiates it: as ops
    std::vector<std::int64_t> perm{0};
    for (std::int64_t i = 0; i < rank; ++i) perm.push_back(1 + rank + i);
    for (std::int64_t i = 0; i < rank; ++i) perm.push_back(1 + i);
    const Tensor ht = transpose(h, Axes(perm));
    const Tensor half = constant(0.5, h.dtype());
    return where(equal(h, ht), h, add(multiply(half, h), multiply(half, ht)));
  }
  // A new tensor no one else holds yet: in place.
  auto impl = std::const_pointer_cast<detail::TensorImpl>(h.impl_ptr());
  if (h.dtype() == float32) symmetrize(impl->as_mutable<float>(), batch, n);
  else symmetrize(impl->as_mutable<double>(), batch, n);
  return h;
}

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
  // the columns [b?, y...], stacked on a last axis; reverse passes the rows
  // [b?, x...], stacked after the batch axis. Neither moves an axis an
  // outer batch_jacobian keeps per example.
  const Shape out = concat_shapes(target.shape(), source.shape(), batched ? 1 : 0);
  const std::int64_t passes = forward ? n : m;
  if (passes == 1) return reshape(pass(one_hot(seed_shape, seed_dtype, 1, 0)), out);
  std::vector<Tensor> parts;
  for (std::int64_t k = 0; k < passes; ++k) {
    const Tensor part = pass(one_hot(seed_shape, seed_dtype, passes, k));
    std::vector<std::int64_t> dims;
    if (forward) {
      dims = part.shape().dims();
      dims.push_back(1);
    } else {
      if (batched) dims.push_back(b);
      dims.insert(dims.end(), {1, n});
    }
    parts.push_back(reshape(part, Shape(dims)));
  }
  const std::int64_t axis = forward ? parts[0].rank() - 1 : (batched ? 1 : 0);
  return reshape(concat(parts, axis), out);
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
