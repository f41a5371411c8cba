// Derivatives as recorded ops (see engine/nested.hpp).
#include "engine/nested.hpp"

#include "autodiff/autodiff.hpp"
#include "engine/engine.hpp"
#include "engine/jacobian_call.hpp"
#include "graph/slice.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise_math.hpp"
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

// The entries above the diagonal copied below it, (j, i) = (i, j) for
// i < j, in every example's n x n (as the engine's runner does per block).
template <class T>
void symmetrize(T* h, std::int64_t batch, std::int64_t n) {
  for (std::int64_t e = 0; e < batch; ++e, h += n * n)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) h[j * n + i] = h[i * n + j];
}

// Ones shaped `like` (batch first, the source's batch [b, ...]), as ops on
// the source: a unary_partial of identity (1 wherever its input is) of one
// element per example, broadcast. Constants when the source has no element.
Tensor ones_from(const Tensor& source, const Shape& like, DType dtype) {
  const std::int64_t b = source.shape()[0];
  if (source.num_elements() == 0 || like.num_elements() == 0) return ones(like, dtype);
  const Tensor first = slice(reshape(source, Shape{b, -1}), {0, 0}, {-1, 1});  // [b, 1]
  Tensor one = ops::apply(ops::Prim::unary_partial, ops::op_attrs(ops::math::kIdentity), {first, first});
  if (one.dtype() != dtype) one = cast(one, dtype);
  std::vector<std::int64_t> dims(like.size(), 1);
  dims[0] = b;
  if (like.size() == 1) return reshape(one, like);
  return broadcast_to(reshape(one, Shape(dims)), like);
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
    // Above the diagonal (and on it) h's entries, below it their mirrors.
    std::vector<double> upper(static_cast<std::size_t>(n * n));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) upper[static_cast<std::size_t>(i * n + j)] = i <= j ? 1 : 0;
    const Tensor mask = constant(upper, Shape(std::vector<std::int64_t>(h.shape().begin() + 1, h.shape().end())), boolean);
    return where(mask, h, ht);
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
  std::vector<Tensor> read{source, target};
  if (direction) read.push_back(*direction);
  for (const Tensor& t : program.constants) read.push_back(t);
  std::vector<Tensor> forward_values;
  std::vector<int> of_value;
  for (std::size_t v = 0; v < recorded.size(); ++v)
    if (recorded[v]) {
      forward_values.push_back(*recorded[v]);
      of_value.push_back(static_cast<int>(v));
    }
  read.insert(read.end(), forward_values.begin(), forward_values.end());
  if (!graph::recorded(read)) return std::nullopt;
  // A forward value some recording tape did not see (it was made after the
  // value) is computed again by ops, so that its dependence on what that tape
  // watches is not lost; custom_jvp results cannot be (their rule is gone).
  const std::vector<bool> seen = graph::tracked_everywhere(read, forward_values);
  std::vector<char> custom(program.values.size(), 0);
  for (const ops::Node& node : program.nodes)
    if (node.prim == ops::Prim::custom_jvp) custom[node.output] = 1;
  for (std::size_t i = 0; i < of_value.size(); ++i)
    if (!seen[i] && !custom[of_value[i]]) recorded[of_value[i]].reset();

  graph::LinearProgram jvp = autodiff::linearize(program);
  if (jvp.output < 0) return std::nullopt;
  const bool batched = kind == Derivative::batch_jacobian || kind == Derivative::batch_gradient;
  const std::int64_t b = batched ? source.shape()[0] : 1;
  const std::int64_t n = source.num_elements() / (b > 0 ? b : 1);
  const std::int64_t m = target.num_elements() / (b > 0 ? b : 1);
  const bool gradient = kind == Derivative::gradient || kind == Derivative::batch_gradient;
  const bool forward = kind == Derivative::directional || (!gradient && n <= m);
  const Shape out = kind == Derivative::batch_jacobian || kind == Derivative::jacobian
                        ? concat_shapes(target.shape(), source.shape(), batched ? 1 : 0)
                    : kind == Derivative::directional ? target.shape()
                                                      : source.shape();
  if (out.num_elements() == 0) {  // no passes: an empty result, still computed from the source
    // (With no example at all, per-example shapes cannot be joined: the
    // outer tape sees no connection there.)
    if (source.rank() == 0 || source.shape()[0] == 0) return std::nullopt;
    const std::int64_t rows = source.shape()[0];
    const Tensor none = slice(reshape(source, Shape{rows, source.num_elements() / rows}), {0, 0}, {-1, 0});
    return reshape(none, out);
  }
  graph::LinearProgram lin = forward ? jvp : autodiff::transpose(program, jvp);
  autodiff::prune(program, lin);

  Replay replay(program, std::move(recorded));
  replay.set(program.parameter, source);
  replay.run(program.nodes);  // the partials the rules added, and values the tapes did not see
  auto pass = [&](const Tensor& seed) {
    Replay one = replay;
    one.set(lin.input, seed);
    one.run(lin.nodes);
    return one.get(lin.output);
  };
  if (kind == Derivative::directional) return pass(*direction);
  // Seeds: ones shaped like the seeded side, times a one-hot of one
  // example's shape. Per example they are made from the source by ops, so no
  // constant has the batch's size (a traced derivative stays independent of
  // the batch), and no pass computes the target for them. An unbatched
  // target (a sum over examples) is seeded by constants, which an outer
  // batch_jacobian accepts.
  const Tensor& side = forward ? source : target;
  const Tensor all = batched   ? ones_from(source, side.shape(), side.dtype())
                   : forward ? ops::apply(ops::Prim::unary_partial, ops::op_attrs(ops::math::kIdentity), {side, side})
                             : ones(side.shape(), side.dtype());
  if (gradient) return pass(all);  // of the sum, or of each example's

  // One pass per element of the smaller side, joined: forward passes give
  // the columns [b?, y...], stacked on a last axis; reverse passes the rows
  // [b?, x...], stacked after the batch axis. Neither moves an axis an
  // outer batch_jacobian keeps per example.
  const std::int64_t passes = forward ? n : m;
  if (passes == 1) return reshape(pass(all), out);
  const Shape one_example = batched ? ops::drop_batch_axis(side.shape()) : side.shape();
  std::vector<Tensor> parts;
  for (std::int64_t k = 0; k < passes; ++k) {
    std::vector<double> hot(static_cast<std::size_t>(passes), 0.0);
    hot[static_cast<std::size_t>(k)] = 1.0;
    const Tensor part = pass(multiply(all, constant(hot, one_example, side.dtype())));
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
  if (!graph::others_record(tape)) return;
  const PauseTape pause(tape);
  const std::optional<Tensor> ops = derivative_ops(tape, target, source, kind);
  if (!ops) return;  // constant, or no tape sees it: an outer tape sees no connection
  const Tensor same = ops->dtype() == result.dtype() ? *ops : cast(*ops, result.dtype());
  graph::record(ops::Prim::reshape, ops::shape_attrs(result.shape()), {same}, result);
}

}  // namespace batchjac::engine
