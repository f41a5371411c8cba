// stop_gradient, cast and custom_jvp.
#pragma once

#include "autodiff/contexts.hpp"
#include "ops/lowering.hpp"
#include "ops/primitive.hpp"

#include <optional>

namespace batchjac::ops {

struct StopGradientOp {
  static constexpr Prim id = Prim::stop_gradient;
  static std::string name(const Attrs&) { return "stop_gradient"; }
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

// attrs.dtype: the result dtype. Inside a Jacobian program every value is
// computed in one type (float64 if any value is float64), so a cast to
// float32 there rounds through float.
struct CastOp {
  static constexpr Prim id = Prim::cast;
  static std::string name(const Attrs&) { return "cast"; }
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
  static std::optional<Tensor> eager(const Node& n, const std::vector<Tensor>& in,
                                     const ValueInfo& out);
};

// bj::custom_jvp's node: (y, x_1, ..., x_n) -> y, where y = f(x) was
// recorded op by op; its derivative is the user's rule, not f's ops. As
// recorded, attrs.custom holds the rule traced on the tensors; in a Program
// attrs.op indexes Program::rules, the rule sliced like the program (its
// ops per example, checked by their batch-axis rules). The JVP rule emits
// the user's rule, its ops on tangents as linear nodes and the others as
// primal ones; a rule that is not linear in the tangents is a ValueError.
struct CustomJvpOp {
  static constexpr Prim id = Prim::custom_jvp;
  static std::string name(const Attrs&) { return "custom_jvp"; }
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

}  // namespace batchjac::ops
