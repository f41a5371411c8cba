// Linear algebra primitives: matmul (cross is a composition, see linalg.cpp).
#pragma once

#include "ops/primitive.hpp"

namespace batchjac::ops {

// y = op(a) op(b) over the last two axes, leading dimensions broadcast. Inside
// per-example programs a may be a vector [k] (a row of a batch [b, k]).
struct MatmulOp {
  static constexpr Prim id = Prim::matmul;
  BATCHJAC_PRIMITIVE_RULES
};

}  // namespace batchjac::ops
