// Elementwise primitives: unary math and its partials, broadcasting binaries
// and their partials, and where. Their math lives in ops/elementwise_math.hpp;
// the structs here adapt it to every rule (shape, batch axis, JVP, transpose,
// lowering).
#pragma once

#include "autodiff/contexts.hpp"
#include "ops/lowering.hpp"
#include "ops/primitive.hpp"

namespace batchjac::ops {

// y = f(x) for f in math::Unary[attrs.op]; attrs.scalar is pow's exponent.
struct UnaryOp {
  static constexpr Prim id = Prim::unary;
  BATCHJAC_PRIMITIVE_RULES
};
// dy/dx of math::Unary[attrs.op] from (x, y): a primal coefficient of JVPs.
struct UnaryPartialOp {
  static constexpr Prim id = Prim::unary_partial;
  BATCHJAC_PRIMITIVE_RULES
};
// y = f(a, b) for f in math::Binary[attrs.op], NumPy broadcasting.
struct BinaryOp {
  static constexpr Prim id = Prim::binary;
  BATCHJAC_PRIMITIVE_RULES
};
// dy/da (attrs.arg = 0) or dy/db (1) of math::Binary[attrs.op] from (a, b, y).
struct BinaryPartialOp {
  static constexpr Prim id = Prim::binary_partial;
  BATCHJAC_PRIMITIVE_RULES
};
// y = cond ? a : b per element, broadcasting all three.
struct WhereOp {
  static constexpr Prim id = Prim::where;
  BATCHJAC_PRIMITIVE_RULES
};

// Made by the linear-program optimiser (autodiff/optimize.cpp): a fused
// linear combination, x c + z (attrs.op = 0) or x1 c1 + x2 c2 (attrs.op = 1),
// linear in the x's (and z), whose shapes are the result's; c's broadcast.
struct LincombOp {
  static constexpr Prim id = Prim::lincomb;
  BATCHJAC_PRIMITIVE_RULES
};

// Sums a cotangent down to `shape` over the axes that broadcasting expanded.
int unbroadcast(autodiff::TransposeContext& c, int ct, const Shape& shape);

}  // namespace batchjac::ops
