// The elementwise primitives' math: primal value and local partial, one struct
// per op (CoDiPack's style). Templated on V, which is either a scalar (eager
// evaluation) or an xsimd batch whose lanes are examples (the engine); both
// modes and both layouts use these same lines. `s` is the op's scalar
// attribute (pow's exponent), unused by most.
#pragma once

#include <batchjac/detail/simd_negate.hpp>
#include <batchjac/detail/simd_pow.hpp>

#include <xsimd/xsimd.hpp>

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <type_traits>

namespace batchjac::ops::math {
// Internal linkage, for the same reason as in kernels/lane_kernels.hpp: the
// per-instruction-set kernel files must not share instantiations.
namespace {

// A multiply-add rounded once, in every build. xsimd 8.1 computes x * y + z
// for avx512f batches, which is fused only where the compiler contracts it
// (the kernels are compiled with -ffp-contract=off so that no build does):
// the intrinsics make it explicit. Scalars: std::fma; sse4.2: x * y + z.
template <class V>
inline V fused_fma(V x, V y, V z) {
  if constexpr (std::is_same_v<V, xsimd::batch<double, xsimd::avx512f>>) return _mm512_fmadd_pd(x, y, z);
  else if constexpr (std::is_same_v<V, xsimd::batch<float, xsimd::avx512f>>) return _mm512_fmadd_ps(x, y, z);
  else return xsimd::fma(x, y, z);
}

// Helpers that read the same for scalars and xsimd batches.
template <class V, class S>
constexpr bool is_scalar = std::is_same_v<V, S>;
template <class V, class C>
V sel(C cond, V a, V b) {
  if constexpr (std::is_arithmetic_v<V>) return cond ? a : b;
  else return xsimd::select(cond, a, b);
}
// Strong zeros, for derivative propagation only (Enzyme's strong-zero
// option): a product with a zero factor is 0 even where the other factor is
// infinite or NaN, so a tangent or cotangent that is zero stays zero through
// an infinite partial (sqrt at 0, the untaken side of a where).
template <class V>
V strong_mul(V a, V b) {
  return sel((a == V(0)) | (b == V(0)), V(0), a * b);
}
// c + a b rounded once, or c where a or b is zero.
template <class V>
V strong_fma(V a, V b, V c) {
  return sel((a == V(0)) | (b == V(0)), c, fused_fma(a, b, c));
}
// 1 or 0 from a comparison.
template <class V>
struct Scalar {
  using type = typename V::value_type;
};
template <class V>
  requires std::is_arithmetic_v<V>
struct Scalar<V> {
  using type = V;
};
template <class V, class C>
V indicator(C cond) {
  using S = typename Scalar<V>::type;
  return sel(cond, V(S(1)), V(S(0)));
}

// Whether x is NaN, for scalars and batches. Not x != x: xsimd 8 compiles !=
// to an ordered compare (_CMP_NEQ_OQ) on AVX and AVX-512, false for NaN.
template <class V>
auto is_nan(V x) {
  if constexpr (std::is_arithmetic_v<V>) return std::isnan(x);
  else return xsimd::isnan(x);
}

// x^y with std::pow's values in every lane (include/batchjac/detail/simd_pow.hpp).
using batchjac::detail::std_pow;
// -x, the sign of zero included, in every lane (include/batchjac/detail/simd_negate.hpp).
using batchjac::detail::negate;

// Rounds each element to float and back (a cast to float32 inside a float64
// program). Vectors convert with GCC's __builtin_convertvector: a store,
// scalar-convert and reload loop was optimised away by GCC 12 at -O3.
template <class S, class V>
V round_to_float(V x) {
  if constexpr (std::is_arithmetic_v<V>) {
    return static_cast<S>(static_cast<float>(x));
  } else if constexpr (std::is_same_v<S, float>) {
    return x;
  } else {
    using R = typename V::register_type;
    typedef float F __attribute__((vector_size(sizeof(R) / 2)));
    return V(__builtin_convertvector(__builtin_convertvector(static_cast<R>(x), F), R));
  }
}

// Domains: real ops map floats to floats and are differentiable; compare ops
// map numbers to booleans (stored as 0/1) and logic ops booleans to
// booleans; neither has a derivative.
enum class Domain { real, compare, logic };

// ---- unary: primal(x, s) and partial(x, y, s) = dy/dx ----------------------
// Conventions at kinks follow TF: abs'(0) = 0, relu'(0) = 0, sign' = 0.
#define BATCHJAC_UNARY(Name, tf_name, primal_expr, partial_expr) \
  struct Name {                                                  \
    static constexpr std::string_view name = tf_name;            \
    static constexpr Domain domain = Domain::real;               \
    template <class V, class S> static V primal(V x, S s) {      \
      (void)s;                                                   \
      return primal_expr;                                        \
    }                                                            \
    template <class V, class S> static V partial(V x, V y, S s) { \
      (void)x, (void)y, (void)s;                                 \
      return partial_expr;                                       \
    }                                                            \
  };

// clang-format off
//              struct       TF name       y = f(x)                         dy/dx
BATCHJAC_UNARY(Negative,    "negative",   negate(x),                        V(S(-1)))
BATCHJAC_UNARY(Abs,         "abs",        xsimd::abs(x),                    indicator<V>(x > V(S(0))) - indicator<V>(x < V(S(0))))
BATCHJAC_UNARY(Sign,        "sign",       indicator<V>(x > V(S(0))) - indicator<V>(x < V(S(0))), V(S(0)))
BATCHJAC_UNARY(Square,      "square",     x * x,                            x + x)
BATCHJAC_UNARY(Sqrt,        "sqrt",       xsimd::sqrt(x),                   V(S(0.5)) / y)
BATCHJAC_UNARY(Rsqrt,       "rsqrt",      V(S(1)) / xsimd::sqrt(x),         V(S(-0.5)) * y / x)
BATCHJAC_UNARY(Reciprocal,  "reciprocal", V(S(1)) / x,                      negate(y * y))
BATCHJAC_UNARY(Exp,         "exp",        xsimd::exp(x),                    y)
BATCHJAC_UNARY(Expm1,       "expm1",      xsimd::expm1(x),                  y + V(S(1)))
BATCHJAC_UNARY(Log,         "log",        xsimd::log(x),                    V(S(1)) / x)
BATCHJAC_UNARY(Log1p,       "log1p",      xsimd::log1p(x),                  V(S(1)) / (V(S(1)) + x))
BATCHJAC_UNARY(Sin,         "sin",        xsimd::sin(x),                    xsimd::cos(x))
BATCHJAC_UNARY(Cos,         "cos",        xsimd::cos(x),                    negate(xsimd::sin(x)))
BATCHJAC_UNARY(Tan,         "tan",        xsimd::tan(x),                    V(S(1)) + y * y)
BATCHJAC_UNARY(Asin,        "asin",       xsimd::asin(x),                   V(S(1)) / xsimd::sqrt(V(S(1)) - x * x))
BATCHJAC_UNARY(Acos,        "acos",       xsimd::acos(x),                   V(S(-1)) / xsimd::sqrt(V(S(1)) - x * x))
BATCHJAC_UNARY(Atan,        "atan",       xsimd::atan(x),                   V(S(1)) / (V(S(1)) + x * x))
BATCHJAC_UNARY(Sinh,        "sinh",       xsimd::sinh(x),                   xsimd::cosh(x))
BATCHJAC_UNARY(Cosh,        "cosh",       xsimd::cosh(x),                   xsimd::sinh(x))
BATCHJAC_UNARY(Tanh,        "tanh",       xsimd::tanh(x),                   V(S(1)) - y * y)
BATCHJAC_UNARY(Asinh,       "asinh",      xsimd::asinh(x),                  V(S(1)) / xsimd::sqrt(x * x + V(S(1))))
BATCHJAC_UNARY(Acosh,       "acosh",      xsimd::acosh(x),                  V(S(1)) / xsimd::sqrt(x * x - V(S(1))))
BATCHJAC_UNARY(Atanh,       "atanh",      xsimd::atanh(x),                  V(S(1)) / (V(S(1)) - x * x))
BATCHJAC_UNARY(Sigmoid,     "sigmoid",    V(S(1)) / (V(S(1)) + xsimd::exp(negate(x))), y * (V(S(1)) - y))
// softplus(x) = log(1 + e^x), computed without overflow; d/dx = sigmoid(x)
BATCHJAC_UNARY(Softplus,    "softplus",   xsimd::log1p(xsimd::exp(negate(xsimd::abs(x)))) + sel(x > V(S(0)), x, V(S(0))),
                                                                            V(S(1)) / (V(S(1)) + xsimd::exp(negate(x))))
// relu(NaN) = NaN (TF), with derivative 0
BATCHJAC_UNARY(Relu,        "relu",       sel(x <= V(S(0)), V(S(0)), x),   indicator<V>(x > V(S(0))))
BATCHJAC_UNARY(Erf,         "erf",        xsimd::erf(x),                    V(S(1.1283791670955126)) * xsimd::exp(negate(x) * x))
// y = x^p for a constant p;  dy/dx = p x^(p-1)  (p = 0: 0 everywhere, as TF)
BATCHJAC_UNARY(PowScalar,   "pow",        std_pow(x, V(s)),                 s == S(0) ? V(S(0)) : V(s) * std_pow(x, V(s - S(1))))
// Engine-internal: copies for reshape and stop_gradient; rounding for a cast
// to float32 inside a float64 program; 0/1 for a cast to boolean (NaN is
// true: !(x == 0), as x != 0 is false for NaN in xsimd 8 on AVX, see is_nan).
BATCHJAC_UNARY(Identity,    "identity",   x,                                V(S(1)))
BATCHJAC_UNARY(RoundToFloat, "cast",      round_to_float<S>(x),             V(S(1)))
BATCHJAC_UNARY(NonZero,     "cast",       indicator<V>(!(x == V(S(0)))),    V(S(0)))
// clang-format on
#undef BATCHJAC_UNARY

struct LogicalNot {
  static constexpr std::string_view name = "logical_not";
  static constexpr Domain domain = Domain::logic;
  template <class V, class S> static V primal(V x, S) { return V(S(1)) - x; }
};

// ---- binary: primal(a, b, s); real ops also partial_a / partial_b(a, b, y, s) --
// add, subtract, multiply and divide have JVP rules of their own (they are
// linear in each input); the others use their partials.
#define BATCHJAC_BINARY(Name, tf_name, dom, primal_expr)                 \
  struct Name {                                                         \
    static constexpr std::string_view name = tf_name;                   \
    static constexpr Domain domain = Domain::dom;                       \
    template <class V, class S> static V primal(V a, V b, S) { return primal_expr; } \
  };
#define BATCHJAC_BINARY_D(Name, tf_name, primal_expr, da_expr, db_expr)         \
  struct Name {                                                                \
    static constexpr std::string_view name = tf_name;                          \
    static constexpr Domain domain = Domain::real;                             \
    template <class V, class S> static V primal(V a, V b, S) { return primal_expr; } \
    template <class V, class S> static V partial_a(V a, V b, V y, S) {         \
      (void)a, (void)b, (void)y;                                               \
      return da_expr;                                                          \
    }                                                                          \
    template <class V, class S> static V partial_b(V a, V b, V y, S) {         \
      (void)a, (void)b, (void)y;                                               \
      return db_expr;                                                          \
    }                                                                          \
  };

// clang-format off
BATCHJAC_BINARY(Add,          "add",           real,    a + b)
BATCHJAC_BINARY(Subtract,     "subtract",      real,    a - b)
BATCHJAC_BINARY(Multiply,     "multiply",      real,    a * b)
BATCHJAC_BINARY(Divide,       "divide",        real,    a / b)
// y = a^b;  dy/da = b a^(b-1), dy/db = y log(a)  (0 where a = 0, as TF)
BATCHJAC_BINARY_D(Pow,        "pow",           std_pow(a, b),
                  b * std_pow(a, b - V(S(1))),
                  sel(a > V(S(0)), y * xsimd::log(sel(a > V(S(0)), a, V(S(1)))), V(S(0))))
// At ties maximum's derivative goes to a, and minimum's too (TF's convention).
// A NaN operand gives NaN (TF), whichever side it is on; both partials are 0.
BATCHJAC_BINARY_D(Maximum,    "maximum",       sel(a >= b || is_nan(a), a, b),
                  indicator<V>(a >= b), indicator<V>(a < b))
BATCHJAC_BINARY_D(Minimum,    "minimum",       sel(a <= b || is_nan(a), a, b),
                  indicator<V>(a <= b), indicator<V>(a > b))
// y = atan2(a, b);  dy/da = b / (a^2 + b^2), dy/db = -a / (a^2 + b^2)
BATCHJAC_BINARY_D(Atan2,      "atan2",         xsimd::atan2(a, b),
                  b / (a * a + b * b), negate(a) / (a * a + b * b))
BATCHJAC_BINARY_D(SquaredDifference, "squared_difference", (a - b) * (a - b),
                  V(S(2)) * (a - b), V(S(-2)) * (a - b))
BATCHJAC_BINARY(Less,         "less",          compare, indicator<V>(a < b))
BATCHJAC_BINARY(LessEqual,    "less_equal",    compare, indicator<V>(a <= b))
BATCHJAC_BINARY(Greater,      "greater",       compare, indicator<V>(a > b))
BATCHJAC_BINARY(GreaterEqual, "greater_equal", compare, indicator<V>(a >= b))
BATCHJAC_BINARY(Equal,        "equal",         compare, indicator<V>(a == b))
// not_equal is !(a == b): true when either is NaN, in every lane (see is_nan).
BATCHJAC_BINARY(NotEqual,     "not_equal",     compare, indicator<V>(!(a == b)))
BATCHJAC_BINARY(LogicalAnd,   "logical_and",   logic,   a * b)
BATCHJAC_BINARY(LogicalOr,    "logical_or",    logic,   a + b - a * b)
// Engine-internal, linear in b: where(a, b, 0) and where(a, 0, b), the
// derivatives of where when one branch has none.
BATCHJAC_BINARY(SelectFirst,  "where",         real,    sel(a != V(S(0)), b, V(S(0))))
BATCHJAC_BINARY(SelectSecond, "where",         real,    sel(a != V(S(0)), V(S(0)), b))
// clang-format on
#undef BATCHJAC_BINARY
#undef BATCHJAC_BINARY_D

// ---- ternary ------------------------------------------------------------------
struct Where {
  static constexpr std::string_view name = "where";
  static constexpr Domain domain = Domain::real;
  // y = c ? a : b, per element; c is 0/1.
  template <class V, class S> static V primal(V c, V a, V b, S) { return sel(c != V(S(0)), a, b); }
};
// Engine-internal, from the linear-program optimiser (autodiff/optimize.cpp):
// y = x c + z, one pass instead of two.
struct Axpy {
  static constexpr std::string_view name = "axpy";
  static constexpr Domain domain = Domain::real;
  template <class V, class S> static V primal(V x, V c, V z, S) { return fused_fma(x, c, z); }
};
// y = x1 c1 + x2 c2, one pass instead of three.
struct Lincomb {
  static constexpr std::string_view name = "lincomb";
  static constexpr Domain domain = Domain::real;
  template <class V, class S> static V primal(V x1, V c1, V x2, V c2, S) {
    return fused_fma(x1, c1, x2 * c2);
  }
};

// The linear program's products with strong zeros (see strong_mul): the
// engine reruns a chunk with these where its answer has a NaN. Each rounds
// as its plain twin (multiply, divide, axpy, lincomb) wherever no factor is
// zero, so the rerun changes no other bit. StrongMultiply is also a primal
// op (in Binary): the optimiser's product of two coefficients of a chain,
// (x c1) c2 -> x (c1 c2), is 0 where either is, as the chain would be.
struct StrongMultiply {
  static constexpr std::string_view name = "multiply";
  static constexpr Domain domain = Domain::real;
  template <class V, class S> static V primal(V x, V c, S) { return strong_mul(x, c); }
};
struct StrongDivide {  // x / c, 0 where the linear x is 0
  static constexpr std::string_view name = "divide";
  static constexpr Domain domain = Domain::real;
  template <class V, class S> static V primal(V x, V c, S) { return sel(x == V(0), V(0), x / c); }
};
struct StrongAxpy {
  static constexpr std::string_view name = "axpy";
  static constexpr Domain domain = Domain::real;
  template <class V, class S> static V primal(V x, V c, V z, S) { return strong_fma(x, c, z); }
};
struct StrongLincomb {
  static constexpr std::string_view name = "lincomb";
  static constexpr Domain domain = Domain::real;
  template <class V, class S> static V primal(V x1, V c1, V x2, V c2, S) {
    return strong_fma(x1, c1, strong_mul(x2, c2));
  }
};

template <class... Ts>
struct List {
  static constexpr int size = sizeof...(Ts);
};

// The compile-time lists the kernel tables are built from. Adding an
// elementwise op = one struct above + one entry here.
using Unary = List<Negative, Abs, Sign, Square, Sqrt, Rsqrt, Reciprocal, Exp, Expm1, Log, Log1p,
                   Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Tanh, Asinh, Acosh, Atanh, Sigmoid,
                   Softplus, Relu, Erf, PowScalar, Identity, RoundToFloat, NonZero, LogicalNot>;
using Binary = List<Add, Subtract, Multiply, Divide, Pow, Maximum, Minimum, Atan2,
                    SquaredDifference, Less, LessEqual, Greater, GreaterEqual, Equal, NotEqual,
                    LogicalAnd, LogicalOr, SelectFirst, SelectSecond, StrongMultiply>;
using Ternary = List<Where, Axpy>;
using Quaternary = List<Lincomb>;

template <class F, class L>
struct IndexOf;
template <class F, class... Ts>
struct IndexOf<F, List<F, Ts...>> {
  static constexpr int value = 0;
};
template <class F, class T, class... Ts>
struct IndexOf<F, List<T, Ts...>> {
  static constexpr int value = 1 + IndexOf<F, List<Ts...>>::value;
};
template <class F, class L>
inline constexpr int index_of = IndexOf<F, L>::value;

// The ops that rules, the optimiser and the engine name directly.
inline constexpr int kNegative = index_of<Negative, Unary>;
inline constexpr int kIdentity = index_of<Identity, Unary>;
inline constexpr int kExp = index_of<Exp, Unary>;
inline constexpr int kReciprocal = index_of<Reciprocal, Unary>;
inline constexpr int kSquare = index_of<Square, Unary>;
inline constexpr int kAbs = index_of<Abs, Unary>;
inline constexpr int kRoundToFloat = index_of<RoundToFloat, Unary>;
inline constexpr int kNonZero = index_of<NonZero, Unary>;
inline constexpr int kAdd = index_of<Add, Binary>;
inline constexpr int kSubtract = index_of<Subtract, Binary>;
inline constexpr int kMultiply = index_of<Multiply, Binary>;
inline constexpr int kDivide = index_of<Divide, Binary>;
inline constexpr int kSelectFirst = index_of<SelectFirst, Binary>;
inline constexpr int kSelectSecond = index_of<SelectSecond, Binary>;
inline constexpr int kStrongMultiply = index_of<StrongMultiply, Binary>;
inline constexpr int kWhere = index_of<Where, Ternary>;
inline constexpr int kAxpy = index_of<Axpy, Ternary>;
inline constexpr int kLincomb = index_of<Lincomb, Quaternary>;

}  // namespace
}  // namespace batchjac::ops::math
