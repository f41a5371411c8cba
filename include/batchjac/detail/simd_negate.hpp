// -x with IEEE negation's sign of zero in every SIMD lane: shared by the
// engine's kernels (lib/ops/elementwise_math.hpp, lib/kernels) and bj::Dual
// (scalar_function.hpp).
#pragma once

#include <xsimd/xsimd.hpp>

#include <type_traits>

namespace batchjac::detail {

// xsimd 8.1 negates AVX-512 batches as 0 - x, which is +0 for x = +0 where
// C++'s -x (and xsimd on SSE and AVX) gives -0. Flipping the sign bit gives
// -x's bits for every x, NaNs included, on every instruction set. Always
// inlined: the library's kernel files are compiled for different
// instruction sets, and an out-of-line copy of negate<double> (an -O0
// build) from one of them could be the one the linker keeps for all.
template <class V>
[[gnu::always_inline]] inline V negate(V x) {
  if constexpr (std::is_arithmetic_v<V>) {
    static_assert(std::is_floating_point_v<V>, "negate: a floating-point value");
    return -x;
  } else {
    static_assert(std::is_floating_point_v<typename V::value_type>, "negate: a floating-point batch");
    return x ^ V(typename V::value_type(-0.0));
  }
}

}  // namespace batchjac::detail
