// bj::scalar_function: per-example Jacobians of scalar templated code, the
// functors Ceres's AutoDiffCostFunction takes:
//
//   struct F { template <class T> void operator()(const T* x, T* y) const; };
//
// Two paths run them. Compiled: the functor instantiated with bj::Dual, a
// forward-mode dual number whose value and tangents are xsimd batches with
// one example in each SIMD lane, so the caller's compiler emits straight-line
// SIMD code over a block of examples. Traced: the functor instantiated with
// bj::TracedScalar, which records the program once (bj::trace), so reverse
// mode, the sparse form and every JacobianOptions apply.
//
// This header includes xsimd (the compiled path is instantiated in the
// caller's translation unit): the lane width is that of the instruction set
// the caller compiles for (xsimd::default_arch: build with -march=native, or
// -mavx2 / -mavx512f, for wide lanes).
//
// Write math unqualified (`using std::exp; exp(x[0])`) or as bj::exp, and
// per-example branches as bj::select(mask, a, b): comparisons of Dual or
// TracedScalar values give per-lane masks, which do not convert to bool.
#pragma once

#include <batchjac/errors.hpp>
#include <batchjac/function.hpp>
#include <batchjac/ops.hpp>

// GCC 12 warns that its own AVX-512 intrinsics (avx512fintrin.h's
// `__Y = __Y`) use `__Y` uninitialized once xsimd's math is inlined into
// the caller's code: a false positive that -Werror would make fatal. The
// headers' lines are included here with those warnings off.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop
#else
#include <xsimd/xsimd.hpp>
#endif
#include <batchjac/detail/simd_negate.hpp>
#include <batchjac/detail/simd_pow.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace batchjac {

// ============================================================================
// Dual: the compiled path's number. v holds one example's value per lane;
// d[k] the derivative along direction k (a source element), per lane, where
// bit k of `active` is set, and zero elsewhere whatever d[k] holds. The
// directions a value can depend on are the same in every lane (the same
// code runs on them), so each operation runs only over the active ones of
// its operands: a reaction rate reading 5 of 17 species costs 5 tangent
// operations, not 17, and constants cost none. Strong zeros: the compiled
// path runs a pass whose Jacobian has a NaN again with Strong duals, whose
// products are 0 wherever a factor is 0 (as the engine reruns a chunk), so
// 0 x inf is 0 as on every other path; other entries keep their bits.
// ============================================================================
template <class T, int D, class Arch = xsimd::default_arch, bool Strong = false>
struct Dual {
  static_assert(D >= 1 && D <= 64, "Dual: 1 to 64 directions");
  using batch_type = xsimd::batch<T, Arch>;
  using mask_type = xsimd::batch_bool<T, Arch>;
  using Active = std::uint64_t;
  static constexpr int directions = D;
  static constexpr Active kAll = D == 64 ? ~Active(0) : (Active(1) << D) - 1;

  batch_type v;
  std::array<batch_type, D> d;
  Active active = 0;

  Dual() : Dual(0.0) {}
  // A constant (no derivative): `T(2)`, `T y = 0;` in the functor.
  Dual(double c) : v(static_cast<T>(c)) {}  // NOLINT: implicit by design
  Dual(batch_type value, const std::array<batch_type, D>& tangents) : v(value), d(tangents), active(kAll) {}
  // A value whose tangents the caller sets, with `active`.
  struct Uninitialized {};
  Dual(batch_type value, Uninitialized) : v(value) {}

  // p t, and a strong zero (0 where either factor is 0) when Strong: the
  // compiled path reruns a block whose Jacobian has a NaN with Strong duals,
  // as the engine does, so 0 x inf is 0 along every direction.
  static batch_type mul(const batch_type& p, const batch_type& t) {
    if constexpr (Strong) {
      const batch_type zero(T(0));
      return xsimd::select(p == zero || t == zero, zero, p * t);
    } else {
      return p * t;
    }
  }
  // fma(a, b, c), c exactly where a or b is 0 when Strong.
  static batch_type fma(const batch_type& a, const batch_type& b, const batch_type& c) {
    if constexpr (Strong) {
      const batch_type zero(T(0));
      return xsimd::select(a == zero || b == zero, c, xsimd::fma(a, b, c));
    } else {
      return xsimd::fma(a, b, c);
    }
  }

  // f(k) for each k of `m`: unrolled when every direction is active.
  template <class F>
  static void each(Active m, F&& f) {
    if (m == kAll) {
      for (int k = 0; k < D; ++k) f(k);
    } else {
      for (; m; m &= m - 1) f(std::countr_zero(m));
    }
  }
  // The tangent k as a batch (zero where inactive).
  batch_type tangent(int k) const { return (active >> k) & 1 ? d[k] : batch_type(T(0)); }

  // ---- in place, with the arithmetic of the binary operators below (a += b
  // gives the bits of a = a + b); b may be *this ----
  Dual& operator+=(const Dual& b) {
    each(active & b.active, [&](int k) { d[k] = d[k] + b.d[k]; });
    each(b.active & ~active, [&](int k) { d[k] = b.d[k]; });
    active |= b.active;
    v = v + b.v;
    return *this;
  }
  Dual& operator-=(const Dual& b) {
    each(active & b.active, [&](int k) { d[k] = d[k] - b.d[k]; });
    each(b.active & ~active, [&](int k) { d[k] = detail::negate(b.d[k]); });
    active |= b.active;
    v = v - b.v;
    return *this;
  }
  Dual& operator*=(const Dual& b) {
    each(active & b.active, [&](int k) { d[k] = fma(d[k], b.v, mul(v, b.d[k])); });
    each(active & ~b.active, [&](int k) { d[k] = mul(d[k], b.v); });
    each(b.active & ~active, [&](int k) { d[k] = mul(v, b.d[k]); });
    active |= b.active;
    v = v * b.v;
    return *this;
  }
  Dual& operator/=(const Dual& b) {
    const batch_type inv = batch_type(T(1)) / b.v;
    const batch_type q = v * inv;
    each(active & b.active, [&](int k) { d[k] = mul(fma(detail::negate(q), b.d[k], d[k]), inv); });
    each(active & ~b.active, [&](int k) { d[k] = mul(d[k], inv); });
    each(b.active & ~active, [&](int k) { d[k] = mul(detail::negate(mul(q, b.d[k])), inv); });
    active |= b.active;
    v = q;
    return *this;
  }
  Dual& operator+=(double b) {
    v = v + batch_type(static_cast<T>(b));
    return *this;
  }
  Dual& operator-=(double b) {
    v = v - batch_type(static_cast<T>(b));
    return *this;
  }
  Dual& operator*=(double b) {
    const batch_type s = batch_type(static_cast<T>(b));
    each(active, [&](int k) { d[k] = mul(s, d[k]); });
    v = v * s;
    return *this;
  }
  Dual& operator/=(double b) {
    const batch_type s = batch_type(static_cast<T>(b));
    const batch_type inv = batch_type(T(1)) / s;
    each(active, [&](int k) { d[k] = mul(d[k], inv); });
    v = v / s;
    return *this;
  }

  // ---- arithmetic (hidden friends: found for Dual operands only) ----
  friend Dual operator+(const Dual& a) { return a; }
  friend Dual operator-(const Dual& a) {
    Dual r(detail::negate(a.v), Uninitialized{});
    each(a.active, [&](int k) { r.d[k] = detail::negate(a.d[k]); });
    r.active = a.active;
    return r;
  }
  friend Dual operator+(const Dual& a, const Dual& b) {
    Dual r(a.v + b.v, Uninitialized{});
    each(a.active & b.active, [&](int k) { r.d[k] = a.d[k] + b.d[k]; });
    each(a.active & ~b.active, [&](int k) { r.d[k] = a.d[k]; });
    each(b.active & ~a.active, [&](int k) { r.d[k] = b.d[k]; });
    r.active = a.active | b.active;
    return r;
  }
  friend Dual operator-(const Dual& a, const Dual& b) {
    Dual r(a.v - b.v, Uninitialized{});
    each(a.active & b.active, [&](int k) { r.d[k] = a.d[k] - b.d[k]; });
    each(a.active & ~b.active, [&](int k) { r.d[k] = a.d[k]; });
    each(b.active & ~a.active, [&](int k) { r.d[k] = detail::negate(b.d[k]); });
    r.active = a.active | b.active;
    return r;
  }
  friend Dual operator*(const Dual& a, const Dual& b) {
    Dual r(a.v * b.v, Uninitialized{});
    each(a.active & b.active, [&](int k) { r.d[k] = fma(a.d[k], b.v, mul(a.v, b.d[k])); });
    each(a.active & ~b.active, [&](int k) { r.d[k] = mul(a.d[k], b.v); });
    each(b.active & ~a.active, [&](int k) { r.d[k] = mul(a.v, b.d[k]); });
    r.active = a.active | b.active;
    return r;
  }
  friend Dual operator/(const Dual& a, const Dual& b) {
    const batch_type inv = batch_type(T(1)) / b.v;
    Dual r(a.v * inv, Uninitialized{});
    each(a.active & b.active, [&](int k) { r.d[k] = mul(fma(detail::negate(r.v), b.d[k], a.d[k]), inv); });
    each(a.active & ~b.active, [&](int k) { r.d[k] = mul(a.d[k], inv); });
    each(b.active & ~a.active, [&](int k) { r.d[k] = mul(detail::negate(mul(r.v, b.d[k])), inv); });
    r.active = a.active | b.active;
    return r;
  }
  friend Dual operator+(const Dual& a, double b) { return a.with_value(a.v + batch_type(static_cast<T>(b))); }
  friend Dual operator+(double a, const Dual& b) { return b.with_value(batch_type(static_cast<T>(a)) + b.v); }
  friend Dual operator-(const Dual& a, double b) { return a.with_value(a.v - batch_type(static_cast<T>(b))); }
  friend Dual operator-(double a, const Dual& b) { return -b + a; }
  friend Dual operator*(const Dual& a, double b) {
    const batch_type s = batch_type(static_cast<T>(b));
    return a.scaled(a.v * s, s);
  }
  friend Dual operator*(double a, const Dual& b) { return b * a; }
  friend Dual operator/(const Dual& a, double b) {
    const batch_type s = batch_type(static_cast<T>(b));
    const batch_type inv = batch_type(T(1)) / s;
    Dual r(a.v / s, Uninitialized{});
    each(a.active, [&](int k) { r.d[k] = mul(a.d[k], inv); });
    r.active = a.active;
    return r;
  }
  friend Dual operator/(double a, const Dual& b) { return Dual(a) / b; }

  // ---- comparisons: per-lane masks of the values ----
  friend mask_type operator<(const Dual& a, const Dual& b) { return a.v < b.v; }
  friend mask_type operator<=(const Dual& a, const Dual& b) { return a.v <= b.v; }
  friend mask_type operator>(const Dual& a, const Dual& b) { return a.v > b.v; }
  friend mask_type operator>=(const Dual& a, const Dual& b) { return a.v >= b.v; }
  friend mask_type operator==(const Dual& a, const Dual& b) { return a.v == b.v; }
  friend mask_type operator!=(const Dual& a, const Dual& b) { return a.v != b.v; }
  friend mask_type operator<(const Dual& a, double b) { return a.v < batch_type(static_cast<T>(b)); }
  friend mask_type operator<=(const Dual& a, double b) { return a.v <= batch_type(static_cast<T>(b)); }
  friend mask_type operator>(const Dual& a, double b) { return a.v > batch_type(static_cast<T>(b)); }
  friend mask_type operator>=(const Dual& a, double b) { return a.v >= batch_type(static_cast<T>(b)); }
  friend mask_type operator<(double a, const Dual& b) { return batch_type(static_cast<T>(a)) < b.v; }
  friend mask_type operator<=(double a, const Dual& b) { return batch_type(static_cast<T>(a)) <= b.v; }
  friend mask_type operator>(double a, const Dual& b) { return batch_type(static_cast<T>(a)) > b.v; }
  friend mask_type operator>=(double a, const Dual& b) { return batch_type(static_cast<T>(a)) >= b.v; }

  // value v, the tangents scaled by p (a chain-rule step f'(a) da).
  Dual scaled(batch_type value, batch_type p) const {
    Dual r(value, Uninitialized{});
    each(active, [&](int k) { r.d[k] = mul(p, d[k]); });
    r.active = active;
    return r;
  }
  // The same where the partial p may be infinite or NaN: a zero tangent
  // stays zero (the library's strong zeros), so sqrt(x) at x = 0 gives 0
  // along every direction x does not move in.
  Dual scaled_strong(batch_type value, batch_type p) const {
    Dual r(value, Uninitialized{});
    const batch_type zero(T(0));
    each(active, [&](int k) { r.d[k] = xsimd::select(d[k] == zero, zero, p * d[k]); });
    r.active = active;
    return r;
  }
  Dual with_value(batch_type value) const {
    Dual r(value, Uninitialized{});
    each(active, [&](int k) { r.d[k] = d[k]; });
    r.active = active;
    return r;
  }
  // pa da + pb db (each product a strong zero where its tangent is 0).
  static Dual chain2(batch_type value, const Dual& a, batch_type pa, const Dual& b, batch_type pb) {
    const batch_type zero(T(0));
    auto term = [&](const batch_type& p, const batch_type& t) { return xsimd::select(t == zero, zero, p * t); };
    Dual r(value, Uninitialized{});
    each(a.active & b.active, [&](int k) { r.d[k] = term(pa, a.d[k]) + term(pb, b.d[k]); });
    each(a.active & ~b.active, [&](int k) { r.d[k] = term(pa, a.d[k]); });
    each(b.active & ~a.active, [&](int k) { r.d[k] = term(pb, b.d[k]); });
    r.active = a.active | b.active;
    return r;
  }
  // The tangent of a where ta, of b where tb, else 0 (ta and tb disjoint).
  static Dual pick(batch_type value, const mask_type& ta, const Dual& a, const mask_type& tb, const Dual& b) {
    const batch_type zero(T(0));
    Dual r(value, Uninitialized{});
    each(a.active & b.active,
         [&](int k) { r.d[k] = xsimd::select(ta, a.d[k], xsimd::select(tb, b.d[k], zero)); });
    each(a.active & ~b.active, [&](int k) { r.d[k] = xsimd::select(ta, a.d[k], zero); });
    each(b.active & ~a.active, [&](int k) { r.d[k] = xsimd::select(tb, b.d[k], zero); });
    r.active = a.active | b.active;
    return r;
  }
};

template <class T, int D, class A, bool G>
Dual<T, D, A, G> select(const typename Dual<T, D, A, G>::mask_type& m, const Dual<T, D, A, G>& a, const Dual<T, D, A, G>& b) {
  using N = Dual<T, D, A, G>;
  const typename N::batch_type zero(T(0));
  N r(xsimd::select(m, a.v, b.v), typename N::Uninitialized{});
  N::each(a.active & b.active, [&](int k) { r.d[k] = xsimd::select(m, a.d[k], b.d[k]); });
  N::each(a.active & ~b.active, [&](int k) { r.d[k] = xsimd::select(m, a.d[k], zero); });
  N::each(b.active & ~a.active, [&](int k) { r.d[k] = xsimd::select(m, zero, b.d[k]); });
  r.active = a.active | b.active;
  return r;
}
template <class T, int D, class A, bool G>
Dual<T, D, A, G> select(const typename Dual<T, D, A, G>::mask_type& m, const Dual<T, D, A, G>& a, double b) {
  return select(m, a, Dual<T, D, A, G>(b));
}
template <class T, int D, class A, bool G>
Dual<T, D, A, G> select(const typename Dual<T, D, A, G>::mask_type& m, double a, const Dual<T, D, A, G>& b) {
  return select(m, Dual<T, D, A, G>(a), b);
}
// For the functor instantiated with plain numbers (the caller's own checks).
template <class T>
  requires std::is_arithmetic_v<T>
T select(bool m, T a, T b) {
  return m ? a : b;
}
template <class T>
  requires std::is_arithmetic_v<T>
T square(T x) {
  return x * x;
}

// ---- math: value and partial per lane (the partials as the tensor ops' rules) ----
#define BATCHJAC_DUAL_UNARY(name, value_expr, partial_expr, scale)         \
  template <class T, int D, class A, bool G>                                        \
  Dual<T, D, A, G> name(const Dual<T, D, A, G>& a) {                              \
    using B = typename Dual<T, D, A, G>::batch_type;                           \
    const B x = a.v;                                                        \
    const B y = value_expr;                                                 \
    (void)y;                                                                \
    return a.scale(y, partial_expr);                                        \
  }
BATCHJAC_DUAL_UNARY(exp, xsimd::exp(x), y, scaled)
BATCHJAC_DUAL_UNARY(expm1, xsimd::expm1(x), y + B(T(1)), scaled)
BATCHJAC_DUAL_UNARY(log, xsimd::log(x), B(T(1)) / x, scaled_strong)
BATCHJAC_DUAL_UNARY(log1p, xsimd::log1p(x), B(T(1)) / (B(T(1)) + x), scaled_strong)
BATCHJAC_DUAL_UNARY(sqrt, xsimd::sqrt(x), B(T(0.5)) / y, scaled_strong)
BATCHJAC_DUAL_UNARY(sin, xsimd::sin(x), xsimd::cos(x), scaled)
BATCHJAC_DUAL_UNARY(cos, xsimd::cos(x), detail::negate(xsimd::sin(x)), scaled)
BATCHJAC_DUAL_UNARY(tan, xsimd::tan(x), xsimd::fma(y, y, B(T(1))), scaled)
BATCHJAC_DUAL_UNARY(asin, xsimd::asin(x), B(T(1)) / xsimd::sqrt(xsimd::fnma(x, x, B(T(1)))), scaled_strong)
BATCHJAC_DUAL_UNARY(acos, xsimd::acos(x), B(T(-1)) / xsimd::sqrt(xsimd::fnma(x, x, B(T(1)))), scaled_strong)
BATCHJAC_DUAL_UNARY(atan, xsimd::atan(x), B(T(1)) / xsimd::fma(x, x, B(T(1))), scaled)
BATCHJAC_DUAL_UNARY(sinh, xsimd::sinh(x), xsimd::cosh(x), scaled)
BATCHJAC_DUAL_UNARY(cosh, xsimd::cosh(x), xsimd::sinh(x), scaled)
BATCHJAC_DUAL_UNARY(tanh, xsimd::tanh(x), xsimd::fnma(y, y, B(T(1))), scaled)
BATCHJAC_DUAL_UNARY(asinh, xsimd::asinh(x), B(T(1)) / xsimd::sqrt(xsimd::fma(x, x, B(T(1)))), scaled)
BATCHJAC_DUAL_UNARY(acosh, xsimd::acosh(x), B(T(1)) / xsimd::sqrt(xsimd::fms(x, x, B(T(1)))), scaled_strong)
BATCHJAC_DUAL_UNARY(atanh, xsimd::atanh(x), B(T(1)) / xsimd::fnma(x, x, B(T(1))), scaled_strong)
BATCHJAC_DUAL_UNARY(erf, xsimd::erf(x), B(T(1.1283791670955126)) * xsimd::exp(detail::negate(x * x)), scaled)
// |x|: derivative sign(x), 0 at 0.
BATCHJAC_DUAL_UNARY(abs, xsimd::abs(x), xsimd::sign(x), scaled)
BATCHJAC_DUAL_UNARY(fabs, xsimd::abs(x), xsimd::sign(x), scaled)
#undef BATCHJAC_DUAL_UNARY

template <class T, int D, class A, bool G>
Dual<T, D, A, G> square(const Dual<T, D, A, G>& a) {
  return a * a;
}
// x^p: d/dx = p x^(p-1); p = 0 gives 0 everywhere.
template <class T, int D, class A, bool G>
Dual<T, D, A, G> pow(const Dual<T, D, A, G>& a, double p) {
  using B = typename Dual<T, D, A, G>::batch_type;
  const B y = detail::std_pow(a.v, B(T(p)));
  if (p == 0) return Dual<T, D, A, G>(y, typename Dual<T, D, A, G>::Uninitialized{});  // no tangent
  return a.scaled_strong(y, B(T(p)) * detail::std_pow(a.v, B(T(p - 1))));
}
// An integer exponent: the same as a double one (not xsimd's integer power).
template <class T, int D, class A, bool G>
Dual<T, D, A, G> pow(const Dual<T, D, A, G>& a, int p) {
  return pow(a, static_cast<double>(p));
}
// a^b: d/da = b a^(b-1); d/db = a^b log(a), taken as 0 where a <= 0 (TF).
template <class T, int D, class A, bool G>
Dual<T, D, A, G> pow(const Dual<T, D, A, G>& a, const Dual<T, D, A, G>& b) {
  using B = typename Dual<T, D, A, G>::batch_type;
  const B zero(T(0));
  const B y = detail::std_pow(a.v, b.v);
  const B pa = b.v * detail::std_pow(a.v, b.v - B(T(1)));
  const B pb = xsimd::select(a.v > zero, y * xsimd::log(xsimd::select(a.v > zero, a.v, B(T(1)))), zero);
  return Dual<T, D, A, G>::chain2(y, a, pa, b, pb);
}
template <class T, int D, class A, bool G>
Dual<T, D, A, G> pow(double a, const Dual<T, D, A, G>& b) {
  using B = typename Dual<T, D, A, G>::batch_type;
  const B y = detail::std_pow(B(T(a)), b.v);
  return b.scaled_strong(y, a > 0 ? y * B(T(std::log(static_cast<T>(a)))) : B(T(0)));
}
// atan2(y, x): d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2).
template <class T, int D, class A, bool G>
Dual<T, D, A, G> atan2(const Dual<T, D, A, G>& y, const Dual<T, D, A, G>& x) {
  using B = typename Dual<T, D, A, G>::batch_type;
  const B inv = B(T(1)) / xsimd::fma(x.v, x.v, y.v * y.v);
  return Dual<T, D, A, G>::chain2(xsimd::atan2(y.v, x.v), y, x.v * inv, x, detail::negate(y.v) * inv);
}
// The larger (smaller) operand, as bj::maximum (bj::minimum): at a tie the
// derivative is a's (TF), a NaN operand gives NaN with no derivative.
template <class T, int D, class A, bool G>
Dual<T, D, A, G> fmax(const Dual<T, D, A, G>& a, const Dual<T, D, A, G>& b) {
  const auto take_a = a.v >= b.v, take_b = a.v < b.v;
  return Dual<T, D, A, G>::pick(xsimd::select(take_a || xsimd::isnan(a.v), a.v, b.v), take_a, a, take_b, b);
}
template <class T, int D, class A, bool G>
Dual<T, D, A, G> fmin(const Dual<T, D, A, G>& a, const Dual<T, D, A, G>& b) {
  const auto take_a = a.v <= b.v, take_b = a.v > b.v;
  return Dual<T, D, A, G>::pick(xsimd::select(take_a || xsimd::isnan(a.v), a.v, b.v), take_a, a, take_b, b);
}
// atan2, fmax and fmin with a plain number on either side: the number as a
// constant Dual.
#define BATCHJAC_DUAL_WITH_NUMBER(fn)                                \
  template <class T, int D, class A, bool G>                         \
  Dual<T, D, A, G> fn(const Dual<T, D, A, G>& a, double b) {         \
    return fn(a, Dual<T, D, A, G>(b));                               \
  }                                                                  \
  template <class T, int D, class A, bool G>                         \
  Dual<T, D, A, G> fn(double a, const Dual<T, D, A, G>& b) {         \
    return fn(Dual<T, D, A, G>(a), b);                               \
  }
BATCHJAC_DUAL_WITH_NUMBER(atan2)
BATCHJAC_DUAL_WITH_NUMBER(fmax)
BATCHJAC_DUAL_WITH_NUMBER(fmin)
#undef BATCHJAC_DUAL_WITH_NUMBER

// ============================================================================
// TracedScalar: the traced path's number, one per-example scalar of the
// program being recorded ([b, 1]), or a C++ constant.
// ============================================================================
class TracedMask;

class TracedScalar {
 public:
  TracedScalar() = default;
  TracedScalar(double c) : c_(c) {}  // NOLINT: constants in the functor
  explicit TracedScalar(Tensor t) : t_(std::move(t)) {}
  bool is_constant() const { return !t_.has_value(); }
  double constant() const { return c_; }
  // The recorded value [b, 1] (only when !is_constant()).
  const Tensor& tensor() const { return *t_; }

  TracedScalar& operator+=(const TracedScalar& b);
  TracedScalar& operator-=(const TracedScalar& b);
  TracedScalar& operator*=(const TracedScalar& b);
  TracedScalar& operator/=(const TracedScalar& b);

 private:
  std::optional<Tensor> t_;
  double c_ = 0;
};

// A per-example condition: a boolean [b, 1] and the dtype of the numbers
// it compared (the type of a select's constants), or a C++ constant.
class TracedMask {
 public:
  TracedMask(bool c) : c_(c) {}  // NOLINT
  TracedMask(Tensor t, DType compared) : t_(std::move(t)), dtype_(compared) {}
  bool is_constant() const { return !t_.has_value(); }
  bool constant() const { return c_; }
  const Tensor& tensor() const { return *t_; }
  DType dtype() const { return dtype_; }

 private:
  std::optional<Tensor> t_;
  bool c_ = false;
  DType dtype_ = DType::float64;
};

TracedScalar operator+(const TracedScalar& a);
TracedScalar operator-(const TracedScalar& a);
TracedScalar operator+(const TracedScalar& a, const TracedScalar& b);
TracedScalar operator-(const TracedScalar& a, const TracedScalar& b);
TracedScalar operator*(const TracedScalar& a, const TracedScalar& b);
TracedScalar operator/(const TracedScalar& a, const TracedScalar& b);
TracedMask operator<(const TracedScalar& a, const TracedScalar& b);
TracedMask operator<=(const TracedScalar& a, const TracedScalar& b);
TracedMask operator>(const TracedScalar& a, const TracedScalar& b);
TracedMask operator>=(const TracedScalar& a, const TracedScalar& b);
TracedMask operator==(const TracedScalar& a, const TracedScalar& b);
TracedMask operator!=(const TracedScalar& a, const TracedScalar& b);
TracedMask operator&&(const TracedMask& a, const TracedMask& b);
TracedMask operator||(const TracedMask& a, const TracedMask& b);
TracedMask operator!(const TracedMask& a);
TracedMask operator&(const TracedMask& a, const TracedMask& b);
TracedMask operator|(const TracedMask& a, const TracedMask& b);
TracedScalar select(const TracedMask& m, const TracedScalar& a, const TracedScalar& b);

TracedScalar exp(const TracedScalar& x);
TracedScalar expm1(const TracedScalar& x);
TracedScalar log(const TracedScalar& x);
TracedScalar log1p(const TracedScalar& x);
TracedScalar sqrt(const TracedScalar& x);
TracedScalar sin(const TracedScalar& x);
TracedScalar cos(const TracedScalar& x);
TracedScalar tan(const TracedScalar& x);
TracedScalar asin(const TracedScalar& x);
TracedScalar acos(const TracedScalar& x);
TracedScalar atan(const TracedScalar& x);
TracedScalar sinh(const TracedScalar& x);
TracedScalar cosh(const TracedScalar& x);
TracedScalar tanh(const TracedScalar& x);
TracedScalar asinh(const TracedScalar& x);
TracedScalar acosh(const TracedScalar& x);
TracedScalar atanh(const TracedScalar& x);
TracedScalar erf(const TracedScalar& x);
TracedScalar abs(const TracedScalar& x);
TracedScalar fabs(const TracedScalar& x);
TracedScalar square(const TracedScalar& x);
TracedScalar pow(const TracedScalar& a, double p);
TracedScalar pow(const TracedScalar& a, const TracedScalar& b);
TracedScalar pow(double a, const TracedScalar& b);
TracedScalar atan2(const TracedScalar& y, const TracedScalar& x);
TracedScalar fmax(const TracedScalar& a, const TracedScalar& b);
TracedScalar fmin(const TracedScalar& a, const TracedScalar& b);

// ============================================================================
// scalar_function
// ============================================================================
enum class ScalarPath : std::uint8_t {
  automatic,  // by the cost model below
  compiled,   // bj::Dual in SIMD lanes
  traced,     // bj::TracedScalar -> bj::trace
};

namespace detail {
// The compiled path's blocks on the engine's threads (max_threads as for
// batch_jacobian): body(context, begin, end) over [0, n).
void parallel_ranges(std::int64_t n, const JacobianOptions& options,
                     void (*body)(void*, std::int64_t, std::int64_t), void* context);
// dst[l * dst_stride + i] = src[i * width + l] for i < count, l < lanes
// (<= width): a block's lanes become the rows of its examples (through the
// engine's register transposes when width is its SIMD width; `stream`:
// non-temporal stores where the rows allow, for outputs past the caches).
template <class T>
void lanes_to_rows(const T* src, std::int64_t count, int width, int lanes, T* dst, std::int64_t dst_stride,
                   bool stream);
extern template void lanes_to_rows<float>(const float*, std::int64_t, int, int, float*, std::int64_t, bool);
extern template void lanes_to_rows<double>(const double*, std::int64_t, int, int, double*, std::int64_t, bool);
// engine::check_options: ValueError naming `fn` for options out of range.
void check_jacobian_options(const char* fn, const JacobianOptions& options);
// Orders the non-temporal stores of this thread before later stores.
void stream_fence();
// Directions per pass of the compiled path: all of them up to 32, else
// equal chunks of at most 32.
constexpr int dual_directions(int n) {
  const int chunks = (n + 31) / 32;
  return n == 0 ? 1 : (n + chunks - 1) / chunks;
}
template <class T>
constexpr DType dtype_of() {
  return std::is_same_v<T, float> ? DType::float32 : DType::float64;
}
}  // namespace detail

// The object bj::scalar_function returns: f R^N -> R^M per example, for
// batches in caller memory (x [b][N], value [b][M], jacobian [b][M][N],
// row-major, float or double). Copies share the traced program. Safe to
// call from many threads at once. Arch is the instruction set of the
// compiled path (the caller's translation unit's by default): part of the
// type, so translation units built for different ones do not share code.
template <int N, int M, class F, class Arch = xsimd::default_arch>
class ScalarFunction {
  static_assert(N >= 1 && M >= 1, "scalar_function<N, M>: N and M must be >= 1");
  // Whether the functor can run on TracedScalar (the traced path, and
  // automatic's estimate); else only the compiled path exists.
  static constexpr bool kTraceable = std::is_invocable_v<const F&, const TracedScalar*, TracedScalar*>;

 public:
  ScalarFunction(F f, ScalarPath path) : f_(std::move(f)), path_(path), lazy_(std::make_shared<Lazy>()) {
    if (path != ScalarPath::automatic && path != ScalarPath::compiled && path != ScalarPath::traced)
      throw ValueError("scalar_function: path must be ScalarPath::automatic, compiled or traced, got " +
                       std::to_string(static_cast<int>(path)));
  }

  // The batch is x.size() / N. ValueError: a size that is not a multiple of
  // N or does not match. Options: the traced path takes all of them; the
  // compiled path runs forward mode and takes max_threads (mode,
  // parallel_iterations and experimental_use_pfor do not change it).
  template <class S>
    requires std::is_same_v<S, float> || std::is_same_v<S, double>
  void batch_jacobian_into(std::span<const S> x, std::span<S> jacobian, const JacobianOptions& options = {}) const {
    run<S>("batch_jacobian_into", x, nullptr, jacobian, options);
  }
  template <class S>
    requires std::is_same_v<S, float> || std::is_same_v<S, double>
  void value_and_batch_jacobian_into(std::span<const S> x, std::span<S> value, std::span<S> jacobian,
                                     const JacobianOptions& options = {}) const {
    run<S>("value_and_batch_jacobian_into", x, &value, jacobian, options);
  }
  // Non-template overloads so that vectors and arrays convert to spans.
  void batch_jacobian_into(std::span<const double> x, std::span<double> jacobian,
                           const JacobianOptions& options = {}) const {
    run<double>("batch_jacobian_into", x, nullptr, jacobian, options);
  }
  void batch_jacobian_into(std::span<const float> x, std::span<float> jacobian,
                           const JacobianOptions& options = {}) const {
    run<float>("batch_jacobian_into", x, nullptr, jacobian, options);
  }
  void value_and_batch_jacobian_into(std::span<const double> x, std::span<double> value,
                                     std::span<double> jacobian, const JacobianOptions& options = {}) const {
    run<double>("value_and_batch_jacobian_into", x, &value, jacobian, options);
  }
  void value_and_batch_jacobian_into(std::span<const float> x, std::span<float> value, std::span<float> jacobian,
                                     const JacobianOptions& options = {}) const {
    run<float>("value_and_batch_jacobian_into", x, &value, jacobian, options);
  }

  // Per-example Hessians of a scalar functor (M == 1): `hessian` holds
  // exactly b * N * N elements, [b, N, N] row-major, symmetric bit for bit
  // (zeros for a functor linear in x). Always the traced path's
  // Function::batch_hessian, forward over reverse: the functor must take
  // bj::TracedScalar (ValueError otherwise), and the path option is not used.
  void batch_hessian_into(std::span<const double> x, std::span<double> hessian,
                          const JacobianOptions& options = {}) const
    requires(M == 1)
  {
    hessian_into<double>(x, hessian, options);
  }
  void batch_hessian_into(std::span<const float> x, std::span<float> hessian,
                          const JacobianOptions& options = {}) const
    requires(M == 1)
  {
    hessian_into<float>(x, hessian, options);
  }

  // The path calls in `dtype` with `options` take: the forced one, or the
  // cost model's choice (automatic). Tracing the functor is part of it.
  ScalarPath path(DType dtype = DType::float64, const JacobianOptions& options = {}) const {
    if (path_ != ScalarPath::automatic) return path_;
    if constexpr (!kTraceable) return ScalarPath::compiled;
    const Choice key{dtype, options.mode, options.parallel_iterations.value_or(-1),
                     options.experimental_use_pfor, options.generated_code, ScalarPath::automatic};
    Lazy& l = *lazy_;
    {
      const std::lock_guard<std::mutex> lock(l.mutex);
      for (const Choice& c : l.choices)
        if (c.same_key(key)) return c.path;
    }
    const detail::TracedCost t = detail::traced_cost(traced(dtype), options);
    Choice made = key;
    made.path = compiled_cost(dtype, t) <= traced_cost(t) ? ScalarPath::compiled : ScalarPath::traced;
    const std::lock_guard<std::mutex> lock(l.mutex);
    l.choices.push_back(made);
    return made.path;
  }

  // The functor traced into a bj::Function of x [-1, N] -> [-1, M] (made on
  // first use). ValueError for a functor that does not take TracedScalar.
  const Function& traced(DType dtype) const {
    if constexpr (!kTraceable) {
      throw ValueError("scalar_function: the functor does not take bj::TracedScalar: only the compiled path runs it");
    } else {
      Lazy& l = *lazy_;
      const int i = dtype == DType::float32 ? 0 : 1;
      std::call_once(l.once[i], [&] { l.fn[i] = trace_functor(dtype); });
      return *l.fn[i];
    }
  }

  // The traced path's estimate in the same units: its plan's estimate
  // scaled, and when the interpreter runs it a step's overhead per op (it
  // runs each op of a functor as a step over one element per lane; a
  // generated kernel is straight-line code with no steps). Fitted to the
  // six scalar workloads of bench/ (bench/README.md) on an AVX-512 machine.
  static double traced_cost(const detail::TracedCost& t) {
    constexpr double kPlanScale = 1.5, kStepCost = 2.5, kGeneratedScale = 0.75;
    if (t.generated) return kGeneratedScale * t.per_example;
    return kPlanScale * t.per_example + kStepCost * double(t.ops);
  }

  // The compiled path's estimated operations per example: each op of the
  // functor (as many as the trace recorded) costs its value once per pass
  // and 1.5 vector operations per direction it depends on (inactive ones
  // are skipped), on lanes examples at a time; each Jacobian entry a store.
  static double compiled_cost(DType dtype, const detail::TracedCost& t) {
    const double lanes = dtype == DType::float32 ? double(xsimd::batch<float, Arch>::size)
                                                 : double(xsimd::batch<double, Arch>::size);
    constexpr int D = detail::dual_directions(N);
    constexpr int passes = (N + D - 1) / D;
    return (double(t.ops) * passes + 1.5 * t.active) / lanes + double(M) * N;
  }

 private:
  // automatic's choice for a dtype and the options that change the traced
  // plan or how it runs.
  struct Choice {
    DType dtype;
    JacobianMode mode;
    std::int64_t parallel_iterations;
    bool pfor;
    bool generated_code;
    ScalarPath path;
    bool same_key(const Choice& o) const {
      return dtype == o.dtype && mode == o.mode && parallel_iterations == o.parallel_iterations && pfor == o.pfor &&
             generated_code == o.generated_code;
    }
  };
  struct Lazy {
    std::once_flag once[2];
    std::optional<Function> fn[2];
    std::mutex mutex;
    std::vector<Choice> choices;
  };

  template <class S>
  static std::int64_t batch_of(const char* fn, std::size_t size, std::size_t per, const char* what) {
    if (size % per != 0)
      throw ValueError(std::string("scalar_function::") + fn + ": " + what + " holds " + std::to_string(size) +
                       " elements, not a multiple of " + std::to_string(per) + " (one example)");
    return static_cast<std::int64_t>(size / per);
  }

  template <class S>
  void run(const char* fn, std::span<const S> x, std::span<S>* value, std::span<S> jacobian,
           const JacobianOptions& options) const {
    const std::int64_t b = batch_of<S>(fn, x.size(), N, "x");
    auto check = [&](std::size_t size, std::size_t per, const char* what) {
      const std::size_t need = static_cast<std::size_t>(b) * per;
      if (size != need)
        throw ValueError(std::string("scalar_function::") + fn + ": " + what + " needs " + std::to_string(need) +
                         " elements (" + std::to_string(b) + " examples of " + std::to_string(per) + "), got " +
                         std::to_string(size));
    };
    check(jacobian.size(), std::size_t(M) * N, value ? "the Jacobian output" : "the output");
    if (value) check(value->size(), M, "the value output");
    detail::check_jacobian_options((std::string("scalar_function::") + fn).c_str(), options);
    if (path(detail::dtype_of<S>(), options) == ScalarPath::traced) {
      const Function& t = traced(detail::dtype_of<S>());
      if (value) t.value_and_batch_jacobian_into(x, *value, jacobian, options);
      else t.batch_jacobian_into(x, jacobian, options);
      return;
    }
    compiled<S>(x.data(), value ? value->data() : nullptr, jacobian.data(), b, options);
  }

  template <class S>
  void hessian_into(std::span<const S> x, std::span<S> hessian, const JacobianOptions& options) const {
    const std::int64_t b = batch_of<S>("batch_hessian_into", x.size(), N, "x");
    const std::size_t need = static_cast<std::size_t>(b) * N * N;
    if (hessian.size() != need)
      throw ValueError("scalar_function::batch_hessian_into: the Hessian output needs " + std::to_string(need) +
                       " elements (" + std::to_string(b) + " examples of " + std::to_string(N * N) + "), got " +
                       std::to_string(hessian.size()));
    const std::optional<Tensor> h = traced(detail::dtype_of<S>()).batch_hessian(view(x, Shape{b, N}), options);
    if (h) std::copy_n(h->data<S>().data(), need, hessian.data());
    else std::fill(hessian.begin(), hessian.end(), S(0));
  }

  // ---- the compiled path ----
  template <class S>
  struct Blocks {
    const F* f;
    const S* x;
    S* value;
    S* jacobian;
    std::int64_t batch;
    bool stream;  // the Jacobian is larger than the caches: non-temporal stores
  };

  // One pass of directions d0 .. d0 + nd on a block whose inputs' values are
  // in xs: seeds them, runs the functor, and returns whether a tangent of
  // the result is NaN in some lane.
  template <class Num>
  static bool pass(const F& f, std::vector<Num>& xs, std::vector<Num>& ys, int d0, int nd) {
    using B = typename Num::batch_type;
    using S = typename B::value_type;
    // Input i moves along direction i - d0 alone (none outside the pass).
    for (int i = 0; i < N; ++i) {
      Num& xi = xs[static_cast<std::size_t>(i)];
      const bool in_pass = i >= d0 && i < d0 + nd;
      if (in_pass) xi.d[i - d0] = B(S(1));
      xi.active = in_pass ? typename Num::Active(1) << (i - d0) : 0;
    }
    for (Num& y : ys) y = Num(0.0);
    call(f, xs.data(), ys.data());
    bool nan = false;
    for (const Num& y : ys) Num::each(y.active, [&](int k) { nan |= xsimd::any(xsimd::isnan(y.d[k])); });
    return nan;
  }

  template <class S>
  static void compiled_range(void* context, std::int64_t begin, std::int64_t end) {
    const Blocks<S>& c = *static_cast<const Blocks<S>*>(context);
    using B = xsimd::batch<S, Arch>;
    constexpr int L = static_cast<int>(B::size);
    constexpr int D = detail::dual_directions(N);
    using Num = Dual<S, D, Arch>;
    using StrongNum = Dual<S, D, Arch, true>;
    // Scratch: inputs, outputs (and their strong-zero twins), and per block
    // the tangents lane-major [M][D][L], then written row-major. Kept per
    // thread, so a call allocates nothing (W9's inputs alone are 135 KiB,
    // which malloc would map and fault in anew each call); a range that
    // starts while this thread is inside another (a functor that waits on
    // TBB) has its own.
    struct Scratch {
      std::vector<Num> xs = std::vector<Num>(N, Num(0.0)), ys = std::vector<Num>(M, Num(0.0));
      std::vector<StrongNum> strong_xs = std::vector<StrongNum>(N, StrongNum(0.0)),
                             strong_ys = std::vector<StrongNum>(M, StrongNum(0.0));
      std::vector<S, xsimd::aligned_allocator<S>> lanes =
          std::vector<S, xsimd::aligned_allocator<S>>(static_cast<std::size_t>(M * D * L));
    };
    thread_local Scratch kept;
    thread_local bool in_use = false;
    std::optional<Scratch> own;
    if (in_use) own.emplace();
    Scratch& scratch = own ? *own : kept;
    struct Release {
      bool* flag;
      ~Release() {
        if (flag) *flag = false;
      }
    } release{own ? nullptr : &in_use};
    in_use = true;
    std::vector<Num>& xs = scratch.xs;
    std::vector<Num>& ys = scratch.ys;
    auto& lanes = scratch.lanes;
    alignas(64) S buf[L];
    for (std::int64_t block = begin; block < end; ++block) {
      const std::int64_t b0 = block * L;
      const int count = static_cast<int>(std::min<std::int64_t>(L, c.batch - b0));
      for (int i = 0; i < N; ++i) {
        // A tail's empty lanes repeat its last example.
        for (int l = 0; l < L; ++l) buf[l] = c.x[(b0 + std::min(l, count - 1)) * N + i];
        xs[static_cast<std::size_t>(i)].v = B::load_aligned(buf);
      }
      for (int d0 = 0; d0 < N; d0 += D) {
        const int nd = std::min(D, N - d0);
        auto store = [&](const auto& outputs) {
          for (int m = 0; m < M; ++m)
            for (int k = 0; k < nd; ++k)
              outputs[static_cast<std::size_t>(m)].tangent(k).store_aligned(&lanes[(std::size_t(m) * D + k) * L]);
        };
        if (pass(*c.f, xs, ys, d0, nd)) {
          // A NaN: the pass again with strong zeros (0 x inf = 0), as the
          // engine reruns a chunk; entries without a zero factor keep their bits.
          for (int i = 0; i < N; ++i) scratch.strong_xs[static_cast<std::size_t>(i)].v = xs[static_cast<std::size_t>(i)].v;
          pass(*c.f, scratch.strong_xs, scratch.strong_ys, d0, nd);
          store(scratch.strong_ys);
        } else {
          store(ys);
        }
        S* rows = c.jacobian + b0 * std::int64_t(M) * N + d0;
        if (nd == N)  // one pass: each example's M x N entries are contiguous
          detail::lanes_to_rows(lanes.data(), std::int64_t(M) * N, L, count, rows, std::int64_t(M) * N, c.stream);
        else
          for (int m = 0; m < M; ++m)
            detail::lanes_to_rows(&lanes[std::size_t(m) * D * L], nd, L, count, rows + m * N, std::int64_t(M) * N,
                                  c.stream);
        if (d0 == 0 && c.value) {
          for (int m = 0; m < M; ++m) {
            ys[static_cast<std::size_t>(m)].v.store_aligned(buf);
            for (int l = 0; l < count; ++l) c.value[(b0 + l) * M + m] = buf[l];
          }
        }
      }
    }
    if (c.stream) detail::stream_fence();  // non-temporal stores done before the data is shared
  }

  template <class S>
  void compiled(const S* x, S* value, S* jacobian, std::int64_t b, const JacobianOptions& options) const {
    if (b == 0) return;
    constexpr std::int64_t L = xsimd::batch<S, Arch>::size;
    constexpr std::int64_t kStreamBytes = 8 << 20;  // as the engine's
    Blocks<S> c{&f_, x, value, jacobian, b, b * M * N * std::int64_t(sizeof(S)) > kStreamBytes};
    detail::parallel_ranges((b + L - 1) / L, options, &compiled_range<S>, &c);
  }

  template <class T>
  static void call(const F& f, const T* x, T* y) {
    if constexpr (std::is_same_v<decltype(f(x, y)), bool>) {
      if (!f(x, y)) throw RuntimeError("scalar_function: the functor returned false");
    } else {
      f(x, y);
    }
  }

  // ---- the traced path ----
  Function trace_functor(DType dtype) const {
    const F f = f_;
    return trace([f](const Tensor& x) { return traced_outputs(f, x); }, TensorSpec{Shape{-1, N}, dtype});
  }

  // The functor on x's columns, its outputs as [b, M]. Outputs that are
  // C++ constants (an inert species' rate) come from shared constants, so
  // that the program does not depend on the batch size: the traced outputs
  // side by side, a zero column after them, gathered into place, and the
  // constants set by a where.
  static Tensor traced_outputs(const F& f, const Tensor& x) {
    std::vector<TracedScalar> xs, ys(M);
    for (int i = 0; i < N; ++i) xs.emplace_back(slice(x, {0, i}, {-1, 1}));
    call(f, xs.data(), ys.data());
    std::vector<Tensor> columns;
    std::vector<std::int64_t> column(M);
    std::vector<double> fixed(M, 0.0), is_fixed(M, 0.0);
    bool any_fixed = false, any_nonzero = false;
    for (int m = 0; m < M; ++m) {
      const TracedScalar& y = ys[static_cast<std::size_t>(m)];
      if (y.is_constant()) {
        any_fixed = true;
        any_nonzero |= y.constant() != 0.0 || std::signbit(y.constant());
        fixed[static_cast<std::size_t>(m)] = y.constant();
        is_fixed[static_cast<std::size_t>(m)] = 1.0;
        column[static_cast<std::size_t>(m)] = -1;
      } else {
        column[static_cast<std::size_t>(m)] = static_cast<std::int64_t>(columns.size());
        columns.push_back(y.tensor());
      }
    }
    if (!any_fixed) return concat(columns, 1);
    const Shape row{1, M};
    if (columns.empty())  // nothing computed from x: a constant function
      return broadcast_to(constant(fixed, row, x.dtype()), Shape{x.shape()[0], M});
    const auto zero_column = static_cast<std::int64_t>(columns.size());
    for (std::int64_t& c : column)
      if (c < 0) c = zero_column;
    Tensor y = gather(pad(concat(columns, 1), {{{0, 0}}, {{0, 1}}}), column, 1);
    if (any_nonzero) y = where(constant(is_fixed, row, DType::boolean), constant(fixed, row, x.dtype()), y);
    return y;
  }

  F f_;
  ScalarPath path_;
  std::shared_ptr<Lazy> lazy_;
};

// Per-example Jacobians of `functor` (template <class T> void operator()(const
// T* x, T* y) const, or returning bool as Ceres's do: false raises
// RuntimeError), x R^N -> y R^M. y starts as zeros on each call.
//
// path = automatic takes the path with the smaller estimated work per
// example: the compiled path's (ops x passes + 1.5 x active) / lanes + M N
// (active: over the ops, the source elements each depends on, summed; lanes
// of the caller's instruction set; a store per entry) against the traced
// path's: 0.75 x its plan's estimate ((cost per block + M N) / lanes) when
// its plan runs generated code (codegen.hpp: generation on, a compiler,
// a plan small enough; still compiling counts), else 1.5 x that estimate
// + 2.5 x ops (the interpreter's overhead per step, one op each). The
// constants are fitted to bench/'s six scalar workloads. Tracing the
// functor for the estimate happens on the first call of each dtype and
// options; the choice is kept (also if its compilation fails later).
template <int N, int M, class Arch = xsimd::default_arch, class F>
ScalarFunction<N, M, F, Arch> scalar_function(F functor, ScalarPath path = ScalarPath::automatic) {
  return ScalarFunction<N, M, F, Arch>(std::move(functor), path);
}

}  // namespace batchjac
