// Reductions and scans: shapes, batch axis, JVP, transpose and lowering side
// by side, then the public functions (reduce_mean, reduce_logsumexp, softmax
// and log_softmax are compositions).
#include "ops/reduction.hpp"

#include "autodiff/contexts.hpp"
#include "ops/batching.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise_math.hpp"
#include "ops/lowering.hpp"
#include "tensor/sizes.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <algorithm>
#include <limits>
#include <string>

namespace batchjac::ops {

std::vector<std::int64_t> normalize_axes(std::string_view op, std::vector<std::int64_t> axes,
                                         std::int64_t rank) {
  for (auto& a : axes) {
    if (rank == 0)
      throw ValueError(std::string(op) + ": axis " + std::to_string(a) +
                       " is out of range for a tensor of rank 0, which has no axes");
    if (a < -rank || a >= rank)
      throw ValueError(std::string(op) + ": axis " + std::to_string(a) +
                       " is out of range for a tensor of rank " + std::to_string(rank) +
                       " (expected -" + std::to_string(rank) + " <= axis < " +
                       std::to_string(rank) + ")");
    if (a < 0) a += rank;
  }
  std::sort(axes.begin(), axes.end());
  if (auto dup = std::adjacent_find(axes.begin(), axes.end()); dup != axes.end())
    throw ValueError(std::string(op) + ": axis " + std::to_string(*dup) + " is listed twice");
  return axes;
}

namespace {
namespace m = math;
using m::kIdentity;

Shape reduced_shape(const Shape& in, const std::vector<std::int64_t>& axes, bool keepdims) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const bool reduced = std::binary_search(axes.begin(), axes.end(), static_cast<std::int64_t>(i));
    if (!reduced) out.push_back(in[i]);
    else if (keepdims) out.push_back(1);
  }
  return Shape(out);
}

ValueInfo reduce_infer(const Node& n, std::span<const ValueInfo> in) {
  require_float(op_name(n), in[0], 0);
  for (auto a : n.attrs.axes)
    if (a < 0 || a >= static_cast<std::int64_t>(in[0].shape.size()))
      fail(n, "axis " + std::to_string(a) + " is out of range for shape " + in[0].shape.to_string());
  return {reduced_shape(in[0].shape, n.attrs.axes, n.attrs.keepdims), in[0].dtype};
}

void reduce_batch(const Node& n, BatchQuery& q) {
  if (!n.attrs.axes.empty() && n.attrs.axes[0] == 0)
    fail(n, "reduces over axis 0, the batch axis, of a tensor of shape " +
                q.in_shapes[0].to_string() +
                " that depends on the source: each result example would mix all source examples");
  single_batch(n, q);
  for (auto& a : q.attrs.axes) --a;
}

// Element e of the input goes to the output element that drops its reduced
// coordinates: a broadcast map read the other way.
std::vector<std::int64_t> reduce_map(const Shape& in, const std::vector<std::int64_t>& axes) {
  return broadcast_map(reduced_shape(in, axes, true), in);
}
// Reducing only axes of size 1 moves nothing: a copy. (Not "the map is
// empty": an input with no elements has an empty map and an output of zeros,
// ones or infinities.)
bool reduces_nothing(const Shape& in, const std::vector<std::int64_t>& axes) {
  return reduced_shape(in, axes, true) == in;
}

Attrs axes_attrs(std::vector<std::int64_t> axes, bool keepdims) {
  Attrs a;
  a.axes = std::move(axes);
  a.keepdims = keepdims;
  return a;
}
}  // namespace

// ---- reduce_sum -------------------------------------------------------------------

std::string ReduceSumOp::name(const Attrs&) { return "reduce_sum"; }
ValueInfo ReduceSumOp::infer(const Node& n, std::span<const ValueInfo> in) { return reduce_infer(n, in); }
void ReduceSumOp::batch(const Node& n, BatchQuery& q) { reduce_batch(n, q); }

int ReduceSumOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // Linear: y_dot = reduce_sum(x_dot)
  return t[0] < 0 ? -1 : c.linear(Prim::reduce_sum, n.attrs, {t[0]});
}

void ReduceSumOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x_bar += broadcast_to(reshape(y_bar, keepdims shape), x shape)
  const Shape& in = c.info(n.inputs[0]).shape;
  int kept = ct;
  if (!n.attrs.keepdims) kept = c.emit(Prim::reshape, shape_attrs(reduced_shape(in, n.attrs.axes, true)), {ct});
  c.accumulate(n.inputs[0],
               c.info(kept).shape == in ? kept : c.emit(Prim::broadcast_to, shape_attrs(in), {kept}));
}

template <class T>
void ReduceSumOp::lower(Lowering<T>& lo, const Node& n) {
  const Shape& in = lo.shape(n.inputs[0]);
  if (reduces_nothing(in, n.attrs.axes))
    lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});
  else
    lo.index(lo.table().scatter_add, n.output, n.inputs[0], reduce_map(in, n.attrs.axes));
}

// ---- reduce_prod / reduce_max / reduce_min ------------------------------------------

std::string ReduceOp::name(const Attrs& a) {
  return a.op == kernels::kProd ? "reduce_prod" : a.op == kernels::kMax ? "reduce_max" : "reduce_min";
}
ValueInfo ReduceOp::infer(const Node& n, std::span<const ValueInfo> in) { return reduce_infer(n, in); }
void ReduceOp::batch(const Node& n, BatchQuery& q) { reduce_batch(n, q); }

int ReduceOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  if (t[0] < 0) return -1;
  // y_dot = reduce_sum(x_dot * w) with primal weights w = dy/dx.
  const int x = n.inputs[0];
  const Shape& in = c.info(x).shape;
  const auto& axes = n.attrs.axes;
  int w = -1;
  if (n.attrs.op == kernels::kProd) {
    // w = product of the other elements = exclusive cumprod from the left
    // times from the right, with the reduced axes moved last and flattened
    // (exact when some elements are 0).
    Attrs perm;
    perm.op = kTranspose;
    std::vector<std::int64_t> kept_dims, red_dims;
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(in.size()); ++i) {
      const bool red = std::binary_search(axes.begin(), axes.end(), i);
      (red ? red_dims : kept_dims).push_back(i);
    }
    perm.axes = kept_dims;
    perm.axes.insert(perm.axes.end(), red_dims.begin(), red_dims.end());
    const int xt = c.primal(Prim::index_map, perm, {x});
    const Shape moved = c.info(xt).shape;
    // k x g elements: one of them is 0 where the other passes int64, and any
    // empty shape serves an empty x.
    std::int64_t k = 1, g = 1;
    for (auto i : kept_dims) k = detail::checked_mul(k, in[i]).value_or(1);
    for (auto i : red_dims) g = detail::checked_mul(g, in[i]).value_or(1);
    const int x2 = c.primal(Prim::reshape, shape_attrs(Shape{k, g}), {xt});
    Attrs scan = op_attrs(kernels::kProd);
    scan.arg = 1;
    scan.exclusive = true;
    const int left = c.primal(Prim::scan, scan, {x2});
    scan.reverse = true;
    const int right = c.primal(Prim::scan, scan, {x2});
    const int w2 = c.primal(Prim::binary, op_attrs(m::index_of<m::Multiply, m::Binary>), {left, right});
    const int wt = c.primal(Prim::reshape, shape_attrs(moved), {w2});
    Attrs inverse;
    inverse.op = kTranspose;
    inverse.axes.resize(perm.axes.size());
    for (std::size_t i = 0; i < perm.axes.size(); ++i) inverse.axes[perm.axes[i]] = static_cast<std::int64_t>(i);
    w = c.primal(Prim::index_map, inverse, {wt});
  } else {
    // w = [x == y] / (number of ties): ties share the derivative (TF).
    int yk = n.output;
    if (!n.attrs.keepdims) yk = c.primal(Prim::reshape, shape_attrs(reduced_shape(in, axes, true)), {yk});
    const int eq = c.primal(Prim::binary, op_attrs(m::index_of<m::Equal, m::Binary>), {x, yk});
    Attrs to_float;
    to_float.dtype = c.info(x).dtype;
    const int eqf = c.primal(Prim::cast, to_float, {eq});
    const int count = c.primal(Prim::reduce_sum, axes_attrs(axes, true), {eqf});
    w = c.primal(Prim::binary, op_attrs(m::index_of<m::Divide, m::Binary>), {eqf, count});
  }
  const int tw = c.linear(Prim::binary, op_attrs(m::index_of<m::Multiply, m::Binary>), {t[0], w});
  return c.linear(Prim::reduce_sum, axes_attrs(axes, n.attrs.keepdims), {tw});
}

void ReduceOp::transpose(autodiff::TransposeContext&, const Node& n, int) {
  fail(n, "is not linear");
}

template <class T>
void ReduceOp::lower(Lowering<T>& lo, const Node& n) {
  const Shape& in = lo.shape(n.inputs[0]);
  if (reduces_nothing(in, n.attrs.axes))
    lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});
  else
    lo.index(lo.table().scatter_reduce, n.output, n.inputs[0], reduce_map(in, n.attrs.axes),
             n.attrs.op);
}

// ---- scan -------------------------------------------------------------------------

std::string ScanOp::name(const Attrs& a) { return a.op == kernels::kProd ? "cumprod" : "cumsum"; }

ValueInfo ScanOp::infer(const Node& n, std::span<const ValueInfo> in) {
  require_float(name(n.attrs), in[0], 0);
  if (n.attrs.arg < 0 || n.attrs.arg >= static_cast<std::int64_t>(in[0].shape.size()))
    fail(n, "axis " + std::to_string(n.attrs.arg) + " is out of range for shape " +
                in[0].shape.to_string());
  return in[0];
}

void ScanOp::batch(const Node& n, BatchQuery& q) {
  if (n.attrs.arg == 0)
    fail(n, "runs along axis 0, the batch axis, of " + q.in_shapes[0].to_string() +
                ": each result example would mix several source examples");
  single_batch(n, q);
  q.attrs.arg = n.attrs.arg - 1;
}

int ScanOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  if (t[0] < 0) return -1;
  // A product scan appears only in reduce_prod's derivative.
  if (n.attrs.op != kernels::kSum) fail(n, "(of reduce_prod's derivative) has no second derivative");
  return c.linear(Prim::scan, n.attrs, {t[0]});  // linear
}

void ScanOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // y_i = sum_{j <= i} x_j  =>  x_bar_j = sum_{i >= j} y_bar_i: the same scan, reversed.
  Attrs back = n.attrs;
  back.reverse = !back.reverse;
  c.accumulate(n.inputs[0], c.emit(Prim::scan, back, {ct}));
}

template <class T>
void ScanOp::lower(Lowering<T>& lo, const Node& n) {
  const Shape& s = lo.shape(n.inputs[0]);
  kernels::ScanArgs<T> a;
  a.len = s[n.attrs.arg];
  if (s.num_elements() == 0) {
    a.outer = 0;  // nothing to scan (the other axes' product may pass int64)
  } else {
    for (std::int64_t i = 0; i < n.attrs.arg; ++i) a.outer *= s[i];
    for (std::size_t i = static_cast<std::size_t>(n.attrs.arg) + 1; i < s.size(); ++i) a.inner *= s[i];
  }
  a.exclusive = n.attrs.exclusive;
  a.reverse = n.attrs.reverse;
  a.op = n.attrs.op;
  lo.scan(n.output, n.inputs[0], a);
}

#define BATCHJAC_INSTANTIATE_LOWER(Op)                    \
  template void Op::lower(Lowering<float>&, const Node&); \
  template void Op::lower(Lowering<double>&, const Node&);
BATCHJAC_INSTANTIATE_LOWER(ReduceSumOp)
BATCHJAC_INSTANTIATE_LOWER(ReduceOp)
BATCHJAC_INSTANTIATE_LOWER(ScanOp)
#undef BATCHJAC_INSTANTIATE_LOWER

}  // namespace batchjac::ops

// ---- public functions ---------------------------------------------------------------

namespace batchjac {

namespace {
Axes all_axes(const Tensor& x) {
  Axes all;
  for (std::int64_t i = 0; i < x.rank(); ++i) all.push_back(i);
  return all;
}

Tensor reduce(const char* name, ops::Prim prim, int op, const Tensor& x, Axes axes, bool keepdims) {
  ops::Attrs a;
  a.op = op;
  a.axes = ops::normalize_axes(name, std::move(axes), x.rank());
  a.keepdims = keepdims;
  return ops::apply(prim, a, {x});
}
}  // namespace

Tensor reduce_sum(const Tensor& x, Axes axes, bool keepdims) {
  return reduce("reduce_sum", ops::Prim::reduce_sum, 0, x, std::move(axes), keepdims);
}
Tensor reduce_sum(const Tensor& x) { return reduce_sum(x, all_axes(x)); }

Tensor reduce_prod(const Tensor& x, Axes axes, bool keepdims) {
  return reduce("reduce_prod", ops::Prim::reduce, kernels::kProd, x, std::move(axes), keepdims);
}
Tensor reduce_prod(const Tensor& x) { return reduce_prod(x, all_axes(x)); }

Tensor reduce_max(const Tensor& x, Axes axes, bool keepdims) {
  return reduce("reduce_max", ops::Prim::reduce, kernels::kMax, x, std::move(axes), keepdims);
}
Tensor reduce_max(const Tensor& x) { return reduce_max(x, all_axes(x)); }

Tensor reduce_min(const Tensor& x, Axes axes, bool keepdims) {
  return reduce("reduce_min", ops::Prim::reduce, kernels::kMin, x, std::move(axes), keepdims);
}
Tensor reduce_min(const Tensor& x) { return reduce_min(x, all_axes(x)); }

Tensor reduce_mean(const Tensor& x, Axes axes, bool keepdims) {
  axes = ops::normalize_axes("reduce_mean", std::move(axes), x.rank());
  std::vector<std::int64_t> reduced;
  for (auto a : axes) reduced.push_back(x.shape()[a]);
  // Saturates past int64, which only an empty x has (and its result is empty).
  const std::int64_t count = Shape(std::move(reduced)).num_elements();
  return reduce_sum(x, axes, keepdims) / static_cast<double>(count);
}
Tensor reduce_mean(const Tensor& x) { return reduce_mean(x, all_axes(x)); }

Tensor reduce_logsumexp(const Tensor& x, Axes axes, bool keepdims) {
  // log(sum(exp(x - m))) + m with m = max(x): no overflow. m carries no
  // derivative of its own; the result's derivative is softmax(x). Where the
  // maximum is not finite, m = 0 (TF): x - inf would give NaN for [inf, 1]
  // and [-inf, -inf], which are inf and -inf.
  axes = ops::normalize_axes("reduce_logsumexp", std::move(axes), x.rank());
  const Tensor max = reduce_max(x, axes, true);
  const Tensor m = stop_gradient(
      where(abs(max) < std::numeric_limits<double>::infinity(), max, constant(0.0, x.dtype())));
  Tensor r = log(reduce_sum(exp(x - m), axes, true)) + m;
  return keepdims || axes.empty() ? r : squeeze(r, axes);
}
Tensor reduce_logsumexp(const Tensor& x) { return reduce_logsumexp(x, all_axes(x)); }

Tensor softmax(const Tensor& logits, std::int64_t axis) {
  const Tensor e = exp(logits - stop_gradient(reduce_max(logits, {axis}, true)));
  return e / reduce_sum(e, {axis}, true);
}

Tensor log_softmax(const Tensor& logits, std::int64_t axis) {
  return logits - reduce_logsumexp(logits, {axis}, true);
}

Tensor cumsum(const Tensor& x, std::int64_t axis, bool exclusive, bool reverse) {
  ops::Attrs a;
  a.op = kernels::kSum;
  a.arg = ops::normalize_axes("cumsum", {axis}, x.rank())[0];
  a.exclusive = exclusive;
  a.reverse = reverse;
  return ops::apply(ops::Prim::scan, a, {x});
}

}  // namespace batchjac
