// -x with IEEE negation's sign of zero in every SIMD lane: shared by the
// engine's kernels (lib/ops/elementwise_math.hpp, lib/kernels) and bj::Dual
// (scalar_function.hpp).
#pragma once

#include <xsimd/xsimd.hpp>

#include <type_traits>

namespace batchjac::detail {

// xsimd 8.1 negates AVX-512 batches as 0 - x, which is +0 for x = +0 where
// C++'s -x (and xsimd on SSE and AVX) gives -0. Flipping the sign bit gives
// -x's bits for every x, NaNs included, on every instruction set.
template <class V>
V negate(V x) {
  if constexpr (std::is_arithmetic_v<V>) return -x;
  else return x ^ V(typename V::value_type(-0.0));
}

}  // namespace batchjac::detail
