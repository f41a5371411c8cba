// Reductions over axes: reduce_sum.
#pragma once

#include "autodiff/contexts.hpp"
#include "ops/lowering.hpp"
#include "ops/primitive.hpp"

namespace batchjac::ops {

// attrs.axes: sorted, distinct, non-negative; attrs.keepdims.
struct ReduceSumOp {
  static constexpr Prim id = Prim::reduce_sum;
  static std::string name(const Attrs&) { return "reduce_sum"; }
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

// Normalises axes against `rank` (negative from the end), sorted; ValueError
// naming `op` when out of range or repeated.
std::vector<std::int64_t> normalize_axes(std::string_view op, std::vector<std::int64_t> axes,
                                         std::int64_t rank);

}  // namespace batchjac::ops
