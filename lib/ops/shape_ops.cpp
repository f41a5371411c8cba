// reshape and broadcast_to: shapes, batch axis, JVP, transpose and lowering.
#include "ops/shape_ops.hpp"

#include "ops/batching.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise.hpp"
#include "ops/elementwise_math.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <string>

namespace batchjac::ops {

namespace {
Attrs with_shape(const Shape& s) {
  Attrs a;
  a.shape = s;
  return a;
}
constexpr int kIdentity = math::index_of<math::Identity, math::Unary>;
}  // namespace

// ---- reshape --------------------------------------------------------------------

ValueInfo ReshapeOp::infer(const Node& n, std::span<const ValueInfo> in) {
  if (n.attrs.shape.num_elements() != in[0].shape.num_elements())
    fail(n, "cannot reshape a tensor of shape " + in[0].shape.to_string() + " (" +
                std::to_string(in[0].shape.num_elements()) + " elements) to " +
                n.attrs.shape.to_string());
  return {n.attrs.shape, in[0].dtype};
}

void ReshapeOp::batch(const Node& n, BatchQuery& q) {
  const Shape& to = n.attrs.shape;
  if (to.size() == 0 || to[0] != q.batch)
    fail(n, "reshaping " + q.in_shapes[0].to_string() + " to " + to.to_string() +
                " does not keep the batch axis (" + std::to_string(q.batch) +
                " examples) first: each result example would mix several source examples");
  single_batch(n, q);
  q.attrs.shape = Shape(std::vector<std::int64_t>(to.begin() + 1, to.end()));
}

int ReshapeOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  return t[0] < 0 ? -1 : c.linear(Prim::reshape, n.attrs, {t[0]});  // linear
}

void ReshapeOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  c.accumulate(n.inputs[0], c.emit(Prim::reshape, with_shape(c.info(n.inputs[0]).shape), {ct}));
}

template <class T>
void ReshapeOp::lower(Lowering<T>& lo, const Node& n) {
  // Row-major order is unchanged: a copy.
  lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});
}

// ---- broadcast_to ---------------------------------------------------------------

ValueInfo BroadcastToOp::infer(const Node& n, std::span<const ValueInfo> in) {
  Shape out = broadcast_shapes(in[0].shape, n.attrs.shape, "broadcast_to");
  if (out != n.attrs.shape)
    fail(n, "cannot broadcast shape " + in[0].shape.to_string() + " to " +
                n.attrs.shape.to_string());
  return {out, in[0].dtype};
}

void BroadcastToOp::batch(const Node& n, BatchQuery& q) {
  const Shape& to = n.attrs.shape;
  if (q.in_shapes[0].size() != to.size())
    fail(n, "broadcasting " + q.in_shapes[0].to_string() + " to " + to.to_string() +
                " moves the batch axis: each result example would mix several source examples");
  single_batch(n, q);
  q.attrs.shape = Shape(std::vector<std::int64_t>(to.begin() + 1, to.end()));
}

int BroadcastToOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  return t[0] < 0 ? -1 : c.linear(Prim::broadcast_to, n.attrs, {t[0]});  // linear
}

void BroadcastToOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x_bar += sum of y_bar over the broadcast axes
  c.accumulate(n.inputs[0], unbroadcast(c, ct, c.info(n.inputs[0]).shape));
}

template <class T>
void BroadcastToOp::lower(Lowering<T>& lo, const Node& n) {
  auto map = broadcast_map(lo.shape(n.inputs[0]), lo.shape(n.output));
  if (map.empty()) lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});
  else lo.gather(n.output, n.inputs[0], std::move(map));
}

template void ReshapeOp::lower(Lowering<float>&, const Node&);
template void ReshapeOp::lower(Lowering<double>&, const Node&);
template void BroadcastToOp::lower(Lowering<float>&, const Node&);
template void BroadcastToOp::lower(Lowering<double>&, const Node&);

}  // namespace batchjac::ops

namespace batchjac {

Tensor reshape(const Tensor& x, const Shape& shape) {
  std::vector<std::int64_t> dims = shape.dims();
  std::int64_t known = 1;
  int inferred = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (inferred >= 0)
        throw ValueError("reshape: only one dimension may be -1, got " + shape.to_string());
      inferred = static_cast<int>(i);
    } else if (dims[i] < 0) {
      throw ValueError("reshape: dimensions must be >= 0 or -1, got " + shape.to_string());
    } else {
      known *= dims[i];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || x.num_elements() % known != 0)
      throw ValueError("reshape: cannot infer the -1 in " + shape.to_string() + " for " +
                       std::to_string(x.num_elements()) + " elements of shape " +
                       x.shape().to_string());
    dims[inferred] = x.num_elements() / known;
  }
  ops::Attrs a;
  a.shape = Shape(dims);
  return ops::apply(ops::Prim::reshape, a, {x});
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  ops::Attrs a;
  a.shape = shape;
  return ops::apply(ops::Prim::broadcast_to, a, {x});
}

}  // namespace batchjac
