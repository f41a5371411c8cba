// Elementwise primitives: unary math, its partials, and broadcasting binaries.
// Their math lives in ops/elementwise_math.hpp; the structs here adapt it to
// every rule (shape, batch axis, JVP, transpose, lowering).
#pragma once

#include "autodiff/contexts.hpp"
#include "ops/lowering.hpp"
#include "ops/primitive.hpp"

namespace batchjac::ops {

struct UnaryOp {
  static constexpr Prim id = Prim::unary;
  static std::string name(const Attrs& a);
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

struct UnaryPartialOp {
  static constexpr Prim id = Prim::unary_partial;
  static std::string name(const Attrs& a);
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

struct BinaryOp {
  static constexpr Prim id = Prim::binary;
  static std::string name(const Attrs& a);
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);
  static void batch(const Node& n, BatchQuery& q);
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t);
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);
  template <class T> static void lower(Lowering<T>& lo, const Node& n);
};

// Sums a cotangent down to `shape` over the axes that broadcasting expanded.
int unbroadcast(autodiff::TransposeContext& c, int ct, const Shape& shape);

}  // namespace batchjac::ops
