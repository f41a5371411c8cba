// Reductions over axes (reduce_sum; reduce_prod, reduce_max, reduce_min) and
// running sums along an axis (cumsum, and the internal cumprod).
#pragma once

#include "ops/primitive.hpp"

namespace batchjac::ops {

// attrs.axes: sorted, distinct, non-negative; attrs.keepdims. Linear.
struct ReduceSumOp {
  static constexpr Prim id = Prim::reduce_sum;
  BATCHJAC_PRIMITIVE_RULES
};

// attrs.op = kernels::kProd, kMax or kMin; axes and keepdims as reduce_sum.
struct ReduceOp {
  static constexpr Prim id = Prim::reduce;
  BATCHJAC_PRIMITIVE_RULES
};

// Running sum (attrs.op = kSum: cumsum, linear) or product (kProd, internal:
// the partials of reduce_prod) along attrs.arg; attrs.exclusive, attrs.reverse.
struct ScanOp {
  static constexpr Prim id = Prim::scan;
  BATCHJAC_PRIMITIVE_RULES
};

// Normalises axes against `rank` (negative from the end), sorted; ValueError
// naming `op` when out of range or repeated.
std::vector<std::int64_t> normalize_axes(std::string_view op, std::vector<std::int64_t> axes,
                                         std::int64_t rank);

}  // namespace batchjac::ops
