// The one compile-time list of primitives, and dispatch over it.
//
// Adding a primitive: its struct in its family header, one entry in Prim
// (ops/primitive.hpp) and one here, in the same order.
#pragma once

#include "ops/elementwise.hpp"
#include "ops/linalg.hpp"
#include "ops/misc.hpp"
#include "ops/reduction.hpp"
#include "ops/shape_ops.hpp"
#include "tensor/sizes.hpp"

#include <optional>
#include <utility>

namespace batchjac::ops {

template <class... Ps>
struct PrimList {};

using Primitives =
    PrimList<UnaryOp, UnaryPartialOp, BinaryOp, BinaryPartialOp, WhereOp, LincombOp, MatmulOp, ReduceSumOp,
             ReduceOp, ScanOp, ReshapeOp, BroadcastToOp, IndexMapOp, IndexScatterOp, ConcatOp,
             StopGradientOp, CastOp, CustomJvpOp,
             // small matrices
             MatrixInverseOp, MatrixDeterminantOp>;

namespace dispatch {
template <class... Ps>
constexpr bool ordered(PrimList<Ps...>) {
  int i = 0;
  return ((static_cast<int>(Ps::id) == i++) && ...);
}
static_assert(ordered(Primitives{}), "Primitives must list every Prim in enum order");

template <class F, class... Ps>
decltype(auto) visit(Prim p, F&& f, PrimList<Ps...>) {
  using R = decltype(f.template operator()<UnaryOp>());
  R (*table[])(F&) = {+[](F& g) -> R { return g.template operator()<Ps>(); }...};
  return table[static_cast<int>(p)](f);
}
}  // namespace dispatch

// Calls f.template operator()<PrimStruct>() for the primitive p.
template <class F>
decltype(auto) visit(Prim p, F&& f) {
  return dispatch::visit(p, f, Primitives{});
}

// The result's shape and dtype, by the primitive's rule; every result is held
// to the size limit here (tensor/sizes.hpp), whichever op made its shape.
inline ValueInfo infer(const Node& n, std::span<const ValueInfo> in) {
  ValueInfo out = visit(n.prim, [&]<class P>() { return P::infer(n, in); });
  if (auto why = detail::tensor_size_error(out.shape, dtype_size(out.dtype))) fail(n, *why);
  return out;
}
inline void batch_rule(const Node& n, BatchQuery& q) {
  visit(n.prim, [&]<class P>() { P::batch(n, q); });
}
inline int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  return visit(n.prim, [&]<class P>() { return P::jvp(c, n, t); });
}
inline void transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  visit(n.prim, [&]<class P>() { P::transpose(c, n, ct); });
}
template <class T>
void lower(Lowering<T>& lo, const Node& n) {
  visit(n.prim, [&]<class P>() { P::template lower<T>(lo, n); });
}
// A primitive may evaluate eagerly by itself (cast converts between dtypes).
inline std::optional<Tensor> eager_override(const Node& n, const std::vector<Tensor>& in,
                                            const ValueInfo& out) {
  return visit(n.prim, [&]<class P>() -> std::optional<Tensor> {
    if constexpr (requires { P::eager(n, in, out); }) return P::eager(n, in, out);
    else return std::nullopt;
  });
}

}  // namespace batchjac::ops
