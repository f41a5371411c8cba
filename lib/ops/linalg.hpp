// Linear algebra primitives: matmul.
#pragma once

#include "autodiff/contexts.hpp"
#include "ops/lowering.hpp"
#include "ops/primitive.hpp"

namespace batchjac::ops {

// y = op(a) op(b) over the last two axes. b of rank 2 is applied to every
// row of a (a may be a vector inside per-example programs); b of rank >= 3
// needs a of equal rank and equal leading dimensions.
struct MatmulOp {
  static constexpr Prim id = Prim::matmul;
  static std::string name(const Attrs&) { return "matmul"; }
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

}  // namespace batchjac::ops
