// x^y with std::pow's values in every SIMD lane: shared by the engine's
// kernels (lib/ops/elementwise_math.hpp) and bj::Dual (scalar_function.hpp),
// so that both paths of a power give the same values.
#pragma once

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <limits>
#include <type_traits>

namespace batchjac::detail {

// std::pow's values (C99 Annex F) in every lane. xsimd 8's pow is
// exp(y log|x|) signed for odd integer y, but it gives 0 for x = +-0 whatever
// y is (std::pow: +-inf for y < 0, 1 for y = 0) and NaN for pow(+-1, +-inf)
// and pow(-inf, 0.5). Here: the same exp(y log|x|), where log(0) = -inf and
// exp(+-inf) = inf, 0 give the zero and infinite bases, then the sign of odd
// powers, NaN for negative bases with other exponents, and the ones.
// Always inlined, for negate's reason (simd_negate.hpp).
template <class V>
[[gnu::always_inline]] inline V std_pow(V x, V y) {
  if constexpr (std::is_arithmetic_v<V>) {
    return std::pow(x, y);
  } else {
    using S = typename V::value_type;
    const V zero(S(0)), one(S(1)), inf(std::numeric_limits<S>::infinity());
    V r = xsimd::exp(y * xsimd::log(xsimd::abs(x)));
    // Odd integer powers keep x's sign (-0's too); floats from 2^digits up are even.
    const auto odd = xsimd::is_odd(y) && xsimd::abs(y) < V(S(2) / std::numeric_limits<S>::epsilon());
    r = xsimd::select(odd, xsimd::copysign(r, x), r);
    // A finite negative base to a finite power that is not an integer: NaN.
    const auto invalid = x < zero && x > -inf && !xsimd::is_flint(y) && xsimd::abs(y) < inf;
    r = xsimd::select(invalid, V(std::numeric_limits<S>::quiet_NaN()), r);
    // 1 for y = +-0 (any x, even NaN), x = 1 (any y, even NaN), x = -1 with y = +-inf.
    return xsimd::select(y == zero || x == one || (x == -one && xsimd::abs(y) == inf), one, r);
  }
}

}  // namespace batchjac::detail
