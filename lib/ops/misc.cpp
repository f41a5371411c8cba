// stop_gradient and cast: shapes, batch axis, JVP, transpose and lowering.
#include "ops/misc.hpp"

#include "ops/batching.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise_math.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <type_traits>

namespace batchjac::ops {

namespace {
using math::kIdentity, math::kRoundToFloat, math::kNonZero;
}  // namespace

// ---- stop_gradient ----------------------------------------------------------------

ValueInfo StopGradientOp::infer(const Node&, std::span<const ValueInfo> in) { return in[0]; }
void StopGradientOp::batch(const Node& n, BatchQuery& q) { single_batch(n, q); }
int StopGradientOp::jvp(autodiff::JvpContext&, const Node&, std::span<const int>) {
  return -1;  // no derivative flows through
}
void StopGradientOp::transpose(autodiff::TransposeContext&, const Node& n, int) {
  fail(n, "has no linear part to transpose");
}
template <class T>
void StopGradientOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});
}

// ---- cast -------------------------------------------------------------------------

ValueInfo CastOp::infer(const Node& n, std::span<const ValueInfo> in) {
  return {in[0].shape, n.attrs.dtype};
}
void CastOp::batch(const Node& n, BatchQuery& q) { single_batch(n, q); }

int CastOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // Between float types: y_dot = cast(x_dot). Booleans have no derivative.
  if (t[0] < 0 || !is_floating(n.attrs.dtype) || !is_floating(c.info(n.inputs[0]).dtype)) return -1;
  return c.linear(Prim::cast, n.attrs, {t[0]});
}

void CastOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x_bar += cast(y_bar, dtype of x)
  Attrs back = n.attrs;
  back.dtype = c.info(n.inputs[0]).dtype;
  c.accumulate(n.inputs[0], c.emit(Prim::cast, back, {ct}));
}

template <class T>
void CastOp::lower(Lowering<T>& lo, const Node& n) {
  int op = kIdentity;
  if (n.attrs.dtype == DType::boolean) op = kNonZero;
  else if (n.attrs.dtype == DType::float32 && std::is_same_v<T, double>) op = kRoundToFloat;
  lo.elementwise(lo.table().unary[op], n.output, {n.inputs[0]});
}

std::optional<Tensor> CastOp::eager(const Node& n, const std::vector<Tensor>& in,
                                    const ValueInfo&) {
  return detail::convert(in[0], n.attrs.dtype);
}

template void StopGradientOp::lower(Lowering<float>&, const Node&);
template void StopGradientOp::lower(Lowering<double>&, const Node&);
template void CastOp::lower(Lowering<float>&, const Node&);
template void CastOp::lower(Lowering<double>&, const Node&);

}  // namespace batchjac::ops

namespace batchjac {

Tensor stop_gradient(const Tensor& x) { return ops::apply(ops::Prim::stop_gradient, {}, {x}); }

Tensor cast(const Tensor& x, DType dtype) {
  ops::Attrs a;
  a.dtype = dtype;
  return ops::apply(ops::Prim::cast, a, {x});
}

}  // namespace batchjac
