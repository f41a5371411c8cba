// Shape primitives: reshape and broadcast_to.
#pragma once

#include "autodiff/contexts.hpp"
#include "ops/lowering.hpp"
#include "ops/primitive.hpp"

namespace batchjac::ops {

// attrs.shape: the result shape, with -1 already resolved.
struct ReshapeOp {
  static constexpr Prim id = Prim::reshape;
  static std::string name(const Attrs&) { return "reshape"; }
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

// attrs.shape: the result shape, which the input broadcasts to.
struct BroadcastToOp {
  static constexpr Prim id = Prim::broadcast_to;
  static std::string name(const Attrs&) { return "broadcast_to"; }
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

}  // namespace batchjac::ops
