// Linear algebra primitives: matmul (cross is a composition, see linalg.cpp),
// and the small-matrix inverse and determinant.
#pragma once

#include "ops/primitive.hpp"

namespace batchjac::ops {

// y = op(a) op(b) over the last two axes, leading dimensions broadcast. Inside
// per-example programs a may be a vector [k] (a row of a batch [b, k]).
struct MatmulOp {
  static constexpr Prim id = Prim::matmul;
  BATCHJAC_PRIMITIVE_RULES
};

// Small square matrices in the last two axes (ops/small_matrix.cpp): their
// inverse and determinant, by Gauss-Jordan elimination with partial pivoting
// in each example's lane (kernels::MatrixArgs).
struct MatrixInverseOp {
  static constexpr Prim id = Prim::matrix_inverse;
  BATCHJAC_PRIMITIVE_RULES
};
struct MatrixDeterminantOp {
  static constexpr Prim id = Prim::matrix_determinant;
  BATCHJAC_PRIMITIVE_RULES
};

}  // namespace batchjac::ops
