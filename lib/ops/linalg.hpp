// Linear algebra primitives: matmul (cross is a composition, see linalg.cpp),
// and the small-matrix inverse and determinant.
#pragma once

#include "ops/primitive.hpp"

#include <optional>
#include <vector>

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
// Eagerly they run the SIMD kernels too, a vector of matrices at a time
// (`eager`): the same bits as one matrix at a time.
struct MatrixInverseOp {
  static constexpr Prim id = Prim::matrix_inverse;
  BATCHJAC_PRIMITIVE_RULES
  static std::optional<Tensor> eager(const Node& n, const std::vector<Tensor>& in, const ValueInfo& out);
};
struct MatrixDeterminantOp {
  static constexpr Prim id = Prim::matrix_determinant;
  BATCHJAC_PRIMITIVE_RULES
  static std::optional<Tensor> eager(const Node& n, const std::vector<Tensor>& in, const ValueInfo& out);
};

}  // namespace batchjac::ops
