// reduce_sum: shapes, batch axis, JVP, transpose and lowering side by side.
#include "ops/reduction.hpp"

#include "ops/batching.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise_math.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <algorithm>
#include <string>

namespace batchjac::ops {

std::vector<std::int64_t> normalize_axes(std::string_view op, std::vector<std::int64_t> axes,
                                         std::int64_t rank) {
  for (auto& a : axes) {
    if (a < -rank || a >= rank)
      throw ValueError(std::string(op) + ": axis " + std::to_string(a) +
                       " is out of range for a tensor of rank " + std::to_string(rank) +
                       " (expected -" + std::to_string(rank) + " <= axis < " +
                       std::to_string(rank) + ")");
    if (a < 0) a += rank;
  }
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
    throw ValueError(std::string(op) + ": axis " +
                     std::to_string(*std::adjacent_find(axes.begin(), axes.end())) +
                     " is listed twice");
  return axes;
}

namespace {
Shape reduced_shape(const Shape& in, const std::vector<std::int64_t>& axes, bool keepdims) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const bool reduced = std::binary_search(axes.begin(), axes.end(), static_cast<std::int64_t>(i));
    if (!reduced) out.push_back(in[i]);
    else if (keepdims) out.push_back(1);
  }
  return Shape(out);
}
}  // namespace

ValueInfo ReduceSumOp::infer(const Node& n, std::span<const ValueInfo> in) {
  require_float("reduce_sum", in[0], 0);
  for (auto a : n.attrs.axes)
    if (a < 0 || a >= static_cast<std::int64_t>(in[0].shape.size()))
      fail(n, "axis " + std::to_string(a) + " is out of range for shape " + in[0].shape.to_string());
  return {reduced_shape(in[0].shape, n.attrs.axes, n.attrs.keepdims), in[0].dtype};
}

void ReduceSumOp::batch(const Node& n, BatchQuery& q) {
  if (!n.attrs.axes.empty() && n.attrs.axes[0] == 0)
    fail(n, "sums over axis 0, the batch axis, of a tensor of shape " + q.in_shapes[0].to_string() +
                " that depends on the source: each result example would mix all source examples");
  single_batch(n, q);
  for (auto& a : q.attrs.axes) --a;
}

int ReduceSumOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // Linear: y_dot = reduce_sum(x_dot)
  return t[0] < 0 ? -1 : c.linear(Prim::reduce_sum, n.attrs, {t[0]});
}

void ReduceSumOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x_bar += broadcast_to(reshape(y_bar, keepdims shape), x shape)
  const Shape& in = c.info(n.inputs[0]).shape;
  int kept = ct;
  if (!n.attrs.keepdims) {
    Attrs r;
    r.shape = reduced_shape(in, n.attrs.axes, true);
    kept = c.emit(Prim::reshape, r, {ct});
  }
  Attrs b;
  b.shape = in;
  c.accumulate(n.inputs[0], c.info(kept).shape == in ? kept : c.emit(Prim::broadcast_to, b, {kept}));
}

template <class T>
void ReduceSumOp::lower(Lowering<T>& lo, const Node& n) {
  const Shape& in = lo.shape(n.inputs[0]);
  const Shape kept = reduced_shape(in, n.attrs.axes, true);
  // Element e of the input adds into the output element that drops its
  // reduced coordinates: a broadcast map read the other way.
  std::vector<std::int64_t> map = broadcast_map(kept, in);
  if (map.empty()) {
    lo.elementwise(lo.table().unary[math::index_of<math::Identity, math::Unary>], n.output,
                   {n.inputs[0]});
    return;
  }
  lo.scatter_add(n.output, n.inputs[0], std::move(map));
}

template void ReduceSumOp::lower(Lowering<float>&, const Node&);
template void ReduceSumOp::lower(Lowering<double>&, const Node&);

}  // namespace batchjac::ops

namespace batchjac {

Tensor reduce_sum(const Tensor& x, Axes axes, bool keepdims) {
  ops::Attrs a;
  a.axes = ops::normalize_axes("reduce_sum", std::move(axes), x.rank());
  a.keepdims = keepdims;
  return ops::apply(ops::Prim::reduce_sum, a, {x});
}

Tensor reduce_sum(const Tensor& x) {
  Axes all;
  for (std::int64_t i = 0; i < x.rank(); ++i) all.push_back(i);
  return reduce_sum(x, all, false);
}

}  // namespace batchjac
