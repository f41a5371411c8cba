// The kernels, templated on the vector type V: an xsimd batch (engine: one
// example per lane) or a plain scalar (eager: lanes = 1). Each instruction set's
// .cpp instantiates make_table for its V; nothing here is arch-specific.
#pragma once

#include "kernels/kernels.hpp"
#include "ops/elementwise_math.hpp"

#include <xsimd/xsimd.hpp>

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace batchjac::kernels {
// Internal linkage: each instruction set's .cpp gets its own copies, so the
// linker never mixes code compiled for different instruction sets (ODR).
namespace {

using ops::math::fused_fma;

// Products of the linear program, plain or with strong zeros
// (ops::math::strong_mul): the same rounding wherever no factor is zero.
template <class V>
inline bool any_nan(V v) {
  if constexpr (std::is_arithmetic_v<V>) return ops::math::is_nan(v);
  else return xsimd::any(ops::math::is_nan(v));
}
template <bool Strong, class V>
inline V mul(V a, V b) {
  if constexpr (Strong) return ops::math::strong_mul(a, b);
  else return a * b;
}
template <bool Strong, class V>
inline V mul_add(V a, V b, V c) {
  if constexpr (Strong) return ops::math::strong_fma(a, b, c);
  else return fused_fma(a, b, c);
}

template <class V>
struct Vec {  // scalar
  using S = V;
  static constexpr std::int64_t width = 1;
  static V load(const S* p) { return *p; }
  static void store(S* p, V v) { *p = v; }
};
template <class T, class A>
struct Vec<xsimd::batch<T, A>> {
  using V = xsimd::batch<T, A>;
  using S = T;
  static constexpr std::int64_t width = V::size;
  static V load(const S* p) { return V::load_unaligned(p); }
  static void store(S* p, V v) { v.store_unaligned(p); }
};

// Reads operand `o` at element e of direction d as a vector starting at lane l.
template <class V, class T>
inline V read(const Operand<T>& o, std::int64_t d, std::int64_t e, std::int64_t l,
              std::int64_t lanes) {
  const std::int64_t idx = o.map ? o.map[e] : e;
  if (o.varying) return Vec<V>::load(o.ptr + d * o.dir_stride + idx * lanes + l);
  return V(o.ptr[idx]);
}

template <class V, class T, bool Accumulate>
inline void write(T* p, V v) {
  if constexpr (Accumulate) v = v + Vec<V>::load(p);
  Vec<V>::store(p, v);
}

// What an elementwise kernel computes from its N operands.
enum Eval : int {
  kPrimal,    // F::primal(x...)
  kPartial,   // unary: F::partial(x, y)
  kPartialA,  // binary: F::partial_a(a, b, y)
  kPartialB,  // binary: F::partial_b(a, b, y)
};

template <class F, int N, int E, class V, class T>
inline V apply(const V* x, T s) {
  if constexpr (E == kPartial) return F::partial(x[0], x[1], s);
  else if constexpr (E == kPartialA) return F::partial_a(x[0], x[1], x[2], s);
  else if constexpr (E == kPartialB) return F::partial_b(x[0], x[1], x[2], s);
  else if constexpr (N == 1) return F::primal(x[0], s);
  else if constexpr (N == 2) return F::primal(x[0], x[1], s);
  else if constexpr (N == 3) return F::primal(x[0], x[1], x[2], s);
  else return F::primal(x[0], x[1], x[2], x[3], s);
}

template <class V, class F, int N, int Partial, bool Accumulate>
void elementwise_impl(const ElementwiseArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  bool flat = true;
  for (int i = 0; i < N; ++i) flat = flat && a.in[i].varying && a.in[i].map == nullptr;
  if (flat) {
    // Every operand is lane-contiguous: one pass over n_elem * lanes per direction.
    const std::int64_t n = a.n_elem * a.lanes;
    for (std::int64_t d = 0; d < a.n_dir; ++d) {
      const T* p[N];
      for (int i = 0; i < N; ++i) p[i] = a.in[i].ptr + d * a.in[i].dir_stride;
      T* out = a.out + d * a.out_dir_stride;
      std::int64_t j = 0;
      for (; j + W <= n; j += W) {
        V x[N];
        for (int i = 0; i < N; ++i) x[i] = Vec<V>::load(p[i] + j);
        write<V, T, Accumulate>(out + j, apply<F, N, Partial>(x, a.scalar));
      }
      for (; j < n; ++j) {  // only when lanes is not a multiple of W
        T x[N];
        for (int i = 0; i < N; ++i) x[i] = p[i][j];
        write<T, T, Accumulate>(out + j, apply<F, N, Partial>(x, a.scalar));
      }
    }
    return;
  }
  if (a.lanes == W) {
    // The engine's case: one vector per element. Each operand is a vector
    // per element (varying) or one value per element, either read through
    // its map or not.
    // Operand descriptions in locals: stores through `out` cannot change them.
    const std::int64_t* map[N];
    bool varying[N];
    for (int i = 0; i < N; ++i) map[i] = a.in[i].map, varying[i] = a.in[i].varying;
    const std::int64_t n_elem = a.n_elem;
    const T scalar = a.scalar;
    for (std::int64_t d = 0; d < a.n_dir; ++d) {
      const T* p[N];
      for (int i = 0; i < N; ++i) p[i] = a.in[i].ptr + d * a.in[i].dir_stride;
      T* out = a.out + d * a.out_dir_stride;
      for (std::int64_t e = 0; e < n_elem; ++e) {
        V x[N];
        for (int i = 0; i < N; ++i) {
          const std::int64_t idx = map[i] ? map[i][e] : e;
          x[i] = varying[i] ? Vec<V>::load(p[i] + idx * W) : V(p[i][idx]);
        }
        write<V, T, Accumulate>(out + e * W, apply<F, N, Partial>(x, scalar));
      }
    }
    return;
  }
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    for (std::int64_t e = 0; e < a.n_elem; ++e) {
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W) {
        V x[N];
        for (int i = 0; i < N; ++i) x[i] = read<V>(a.in[i], d, e, l, a.lanes);
        write<V, T, Accumulate>(out + e * a.lanes + l, apply<F, N, Partial>(x, a.scalar));
      }
      for (; l < a.lanes; ++l) {
        T x[N];
        for (int i = 0; i < N; ++i) x[i] = read<T>(a.in[i], d, e, l, a.lanes);
        write<T, T, Accumulate>(out + e * a.lanes + l, apply<F, N, Partial>(x, a.scalar));
      }
    }
  }
}

template <class V, class F, int N, int Partial>
void elementwise(const ElementwiseArgs<typename Vec<V>::S>& a) {
  if (a.accumulate) elementwise_impl<V, F, N, Partial, true>(a);
  else elementwise_impl<V, F, N, Partial, false>(a);
}

template <class V>
void gather(const IndexArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  if (a.lanes == W && !a.accumulate) {  // the engine's case: one vector per element
    for (std::int64_t d = 0; d < a.n_dir; ++d) {
      T* out = a.out + d * a.out_dir_stride;
      const T* in = a.in + d * a.in_dir_stride;
      for (std::int64_t e = 0; e < a.n_out; ++e) {
        const std::int64_t src = a.map[e];
        Vec<V>::store(out + e * W, src < 0 ? V(T(0)) : Vec<V>::load(in + src * W));
      }
    }
    return;
  }
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    const T* in = a.in + d * a.in_dir_stride;
    for (std::int64_t e = 0; e < a.n_out; ++e) {
      const std::int64_t src = a.map[e];
      T* o = out + e * a.lanes;
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W) {
        V v = src < 0 ? V(T(0)) : Vec<V>::load(in + src * a.lanes + l);
        if (a.accumulate) v = v + Vec<V>::load(o + l);
        Vec<V>::store(o + l, v);
      }
      for (; l < a.lanes; ++l) {
        T v = src < 0 ? T(0) : in[src * a.lanes + l];
        o[l] = a.accumulate ? o[l] + v : v;
      }
    }
  }
}

template <class V>
void scatter_add(const IndexArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    const T* in = a.in + d * a.in_dir_stride;
    if (!a.accumulate) std::memset(out, 0, sizeof(T) * a.n_out * a.lanes);
    for (std::int64_t e = 0; e < a.n_in; ++e) {
      if (a.map[e] < 0) continue;  // dropped (a pad's border)
      T* o = out + a.map[e] * a.lanes;
      const T* x = in + e * a.lanes;
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W) Vec<V>::store(o + l, Vec<V>::load(o + l) + Vec<V>::load(x + l));
      for (; l < a.lanes; ++l) o[l] += x[l];
    }
  }
}

template <class V>
void scatter(const IndexArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    const T* in = a.in + d * a.in_dir_stride;
    for (std::int64_t e = 0; e < a.n_in; ++e) {
      if (a.map[e] < 0) continue;
      T* o = out + a.map[e] * a.lanes;
      const T* x = in + e * a.lanes;
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W) Vec<V>::store(o + l, Vec<V>::load(x + l));
      for (; l < a.lanes; ++l) o[l] = x[l];
    }
  }
}

template <class V, int Op>
V combine(V acc, V x) {
  if constexpr (Op == kProd) return acc * x;
  // A NaN wins and stays (TF): once acc is NaN, neither comparison holds.
  else if constexpr (Op == kMax) return ops::math::sel(x > acc || ops::math::is_nan(x), x, acc);
  else if constexpr (Op == kMin) return ops::math::sel(x < acc || ops::math::is_nan(x), x, acc);
  else return acc + x;
}

template <class V, int Op>
void scatter_reduce_op(const IndexArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  const T init = Op == kProd ? T(1) : Op == kMax ? -std::numeric_limits<T>::infinity()
                 : Op == kMin ? std::numeric_limits<T>::infinity() : T(0);
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    const T* in = a.in + d * a.in_dir_stride;
    std::fill_n(out, a.n_out * a.lanes, init);
    for (std::int64_t e = 0; e < a.n_in; ++e) {
      T* o = out + a.map[e] * a.lanes;
      const T* x = in + e * a.lanes;
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W)
        Vec<V>::store(o + l, combine<V, Op>(Vec<V>::load(o + l), Vec<V>::load(x + l)));
      for (; l < a.lanes; ++l) o[l] = combine<T, Op>(o[l], x[l]);
    }
  }
}

template <class V>
void scatter_reduce(const IndexArgs<typename Vec<V>::S>& a) {
  switch (a.op) {
    case kProd: return scatter_reduce_op<V, kProd>(a);
    case kMax: return scatter_reduce_op<V, kMax>(a);
    case kMin: return scatter_reduce_op<V, kMin>(a);
    default: return scatter_reduce_op<V, kSum>(a);
  }
}

// Small matrices (MatrixArgs): Gauss-Jordan elimination with partial
// pivoting on one vector of lanes at a time. Each lane picks its own pivot
// row; the row swaps are selects, so every lane runs the same instructions.
// The inverse reduces [A | I] to [I | A^-1]; the determinant is the signed
// product of the pivots of the forward elimination. Plain products and
// differences (no fused multiply-adds): one lane and a vector give the same
// bits.
template <class V>
inline V matrix_abs(V x) {
  if constexpr (std::is_arithmetic_v<V>) return std::abs(x);
  else return xsimd::abs(x);
}

template <class C>
inline bool matrix_any(C c) {
  if constexpr (std::is_same_v<C, bool>) return c;
  else return xsimd::any(c);
}

// One vector (or one lane) of a direction's matrix bt, into a.out.
// N > 0: the matrices are N x N, known when compiling: the loops unroll in
// full and the working matrices stay in registers (the same operations, so
// the same bits). N = 0: a.n, any size (GCC unrolls those loops too, with
// remainders: more code, the same operations). Inverse: a.op == kInverse.
#define BATCHJAC_UNROLL_SMALL _Pragma("GCC unroll 16")
template <class V, std::int64_t N, bool Inverse>
void matrix_lanes(const MatrixArgs<typename Vec<V>::S>& a, std::int64_t d, std::int64_t bt,
                  std::int64_t l, V* m_room, V* x_room) {
  using T = typename Vec<V>::S;
  using ops::math::sel;
  const std::int64_t n = N > 0 ? N : a.n, nn = n * n;
  std::array<V, (N > 0 ? N * N : 1)> m_local, x_local;
  V* const m = N > 0 ? m_local.data() : m_room;
  V* const x = N > 0 ? x_local.data() : x_room;
  constexpr bool inverse = Inverse;
  const T* in = a.a.ptr + (a.a.varying ? d * a.a.dir_stride : 0) + bt * nn * (a.a.varying ? a.lanes : 1);
  BATCHJAC_UNROLL_SMALL
  for (std::int64_t e = 0; e < nn; ++e) m[e] = a.a.varying ? Vec<V>::load(in + e * a.lanes + l) : V(in[e]);
  if constexpr (inverse)
    BATCHJAC_UNROLL_SMALL
    for (std::int64_t e = 0; e < nn; ++e) x[e] = V(T(e / n == e % n ? 1 : 0));
  V det = V(T(1));
  BATCHJAC_UNROLL_SMALL
  for (std::int64_t k = 0; k < n; ++k) {
    // Pivot: the first row at or below k with the largest |m[i][k]|.
    V best = matrix_abs(m[k * n + k]);
    V piv = V(T(k));
    BATCHJAC_UNROLL_SMALL
    for (std::int64_t i = k + 1; i < n; ++i) {
      const V v = matrix_abs(m[i * n + k]);
      const auto c = v > best;
      best = sel(c, v, best);
      piv = sel(c, V(T(i)), piv);
    }
    BATCHJAC_UNROLL_SMALL
    for (std::int64_t i = k + 1; i < n; ++i) {
      const auto c = piv == V(T(i));
      if (!matrix_any(c)) continue;  // no lane swaps rows k and i
      BATCHJAC_UNROLL_SMALL
      for (std::int64_t j = inverse ? 0 : k; j < n; ++j) {
        const V t = m[k * n + j];
        m[k * n + j] = sel(c, m[i * n + j], t);
        m[i * n + j] = sel(c, t, m[i * n + j]);
      }
      if constexpr (inverse)
        BATCHJAC_UNROLL_SMALL
        for (std::int64_t j = 0; j < n; ++j) {
          const V t = x[k * n + j];
          x[k * n + j] = sel(c, x[i * n + j], t);
          x[i * n + j] = sel(c, t, x[i * n + j]);
        }
    }
    const V p = m[k * n + k];
    if constexpr (!inverse) {
      // A zero pivot has zeros below it: dividing by 1 instead leaves the
      // rest finite, and the determinant exactly 0.
      det = sel(piv == V(T(k)), det, ops::math::negate(det)) * p;
      const V ps = sel(p == V(T(0)), V(T(1)), p);
      BATCHJAC_UNROLL_SMALL
      for (std::int64_t i = k + 1; i < n; ++i) {
        const V f = m[i * n + k] / ps;
        BATCHJAC_UNROLL_SMALL
        for (std::int64_t j = k + 1; j < n; ++j) m[i * n + j] = m[i * n + j] - f * m[k * n + j];
      }
      continue;
    }
    const V r = V(T(1)) / p;
    BATCHJAC_UNROLL_SMALL
    for (std::int64_t j = k + 1; j < n; ++j) m[k * n + j] = m[k * n + j] * r;
    BATCHJAC_UNROLL_SMALL
    for (std::int64_t j = 0; j < n; ++j) x[k * n + j] = x[k * n + j] * r;
    BATCHJAC_UNROLL_SMALL
    for (std::int64_t i = 0; i < n; ++i) {
      if (i == k) continue;
      const V f = m[i * n + k];
      BATCHJAC_UNROLL_SMALL
      for (std::int64_t j = k + 1; j < n; ++j) m[i * n + j] = m[i * n + j] - f * m[k * n + j];
      BATCHJAC_UNROLL_SMALL
      for (std::int64_t j = 0; j < n; ++j) x[i * n + j] = x[i * n + j] - f * x[k * n + j];
    }
  }
  T* out = a.out + d * a.out_dir_stride;
  if constexpr (inverse) {
    BATCHJAC_UNROLL_SMALL
    for (std::int64_t e = 0; e < nn; ++e) Vec<V>::store(out + (bt * nn + e) * a.lanes + l, x[e]);
  } else {
    Vec<V>::store(out + bt * a.lanes + l, det);
  }
}

#undef BATCHJAC_UNROLL_SMALL

// Every matrix of every direction, W lanes at a time, then the lanes left
// one at a time; N as in matrix_lanes. wide and one: room for [A | X] when
// N = 0.
template <class V, std::int64_t N, bool Inverse>
void matrices(const MatrixArgs<typename Vec<V>::S>& a, V* wide, typename Vec<V>::S* one) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  const std::int64_t nn = a.n * a.n;
  for (std::int64_t d = 0; d < a.n_dir; ++d)
    for (std::int64_t bt = 0; bt < a.batch; ++bt) {
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W) matrix_lanes<V, N, Inverse>(a, d, bt, l, wide, wide + nn);
      for (; l < a.lanes; ++l) matrix_lanes<T, N, Inverse>(a, d, bt, l, one, one + nn);
    }
}

template <class V>
void matrix(const MatrixArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  const std::size_t nn = static_cast<std::size_t>(a.n * a.n);
  // The working matrices [A | X]: on the stack up to 6x6 (the kernel runs
  // once per block: no allocation in the loop over blocks), else the heap.
  // Sizes up to 4 x 4 (geometry, mechanics) are unrolled.
  constexpr std::size_t kOnStack = 2 * 36;
  const bool on_stack = 2 * nn <= kOnStack;
  std::array<V, kOnStack> wide_local;
  std::array<T, kOnStack> one_local;
  std::vector<V> wide_heap(on_stack ? 0 : 2 * nn);
  std::vector<T> one_heap(on_stack ? 0 : 2 * nn);
  V* const wide = on_stack ? wide_local.data() : wide_heap.data();
  T* const one = on_stack ? one_local.data() : one_heap.data();
  auto run = [&]<bool Inverse>() {
    switch (a.n) {
      case 2: return matrices<V, 2, Inverse>(a, wide, one);
      case 3: return matrices<V, 3, Inverse>(a, wide, one);
      case 4: return matrices<V, 4, Inverse>(a, wide, one);
      default: return matrices<V, 0, Inverse>(a, wide, one);
    }
  };
  if (a.op == kInverse) run.template operator()<true>();
  else run.template operator()<false>();
}

template <class V>
void scan(const ScanArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  const std::int64_t step = a.inner * a.lanes;
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    for (std::int64_t o = 0; o < a.outer; ++o) {
      const std::int64_t base = o * a.len * step;
      for (std::int64_t l = 0; l < step; l += W) {  // inner elements x lanes, contiguous
        const bool whole = l + W <= step;
        auto run = [&](auto zero) {
          using U = decltype(zero);
          U acc(a.op == kProd ? T(1) : T(0));
          for (std::int64_t i = 0; i < a.len; ++i) {
            const std::int64_t pos = base + (a.reverse ? a.len - 1 - i : i) * step + l;
            const T* src = a.in + d * a.in_dir_stride + pos;
            T* dst = a.out + d * a.out_dir_stride + pos;
            U x;
            if constexpr (std::is_same_v<U, T>) x = *src; else x = Vec<V>::load(src);
            U next = a.op == kProd ? acc * x : acc + x;
            U val = a.exclusive ? acc : next;
            if constexpr (std::is_same_v<U, T>) *dst = val; else Vec<V>::store(dst, val);
            acc = next;
          }
        };
        if (whole) run(V(T(0)));
        else for (std::int64_t t = l; t < step; ++t) {
          // tail: one lane at a time (only when lanes is not a multiple of W)
          T acc = a.op == kProd ? T(1) : T(0);
          for (std::int64_t i = 0; i < a.len; ++i) {
            const std::int64_t pos = base + (a.reverse ? a.len - 1 - i : i) * step + t;
            const T x = a.in[d * a.in_dir_stride + pos];
            const T next = a.op == kProd ? acc * x : acc + x;
            a.out[d * a.out_dir_stride + pos] = a.exclusive ? acc : next;
            acc = next;
          }
        }
      }
    }
  }
}

// Whether any of p[0, n) is NaN (n a multiple of the width, or any n for
// scalars): the engine's test for a rerun with strong zeros.
template <class V>
bool has_nan(const typename Vec<V>::S* p, std::int64_t n) {
  constexpr std::int64_t W = Vec<V>::width;
  if constexpr (W == 1) {
    bool nan = false;
    for (std::int64_t i = 0; i < n; ++i) nan |= ops::math::is_nan(p[i]);
    return nan;
  } else {
    auto m0 = ops::math::is_nan(V(0)), m1 = m0;  // false
    std::int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      m0 = m0 | ops::math::is_nan(Vec<V>::load(p + i));
      m1 = m1 | ops::math::is_nan(Vec<V>::load(p + i + W));
    }
    bool nan = xsimd::any(m0 | m1);
    for (; i < n; ++i) nan |= ops::math::is_nan(p[i]);
    return nan;
  }
}

// One op: the sum of its terms, in order, from a zero accumulator. N3, NC
// and NP are its term counts when known at compile time (-1: read from the op).
template <class V, bool Strong, int N3, int NC, int NP>
[[gnu::always_inline]] inline V sparse_op(typename Vec<V>::S* b, const SparseOp* op,
                                          const SparseTerm<typename Vec<V>::S>*& t) {
  using T = typename Vec<V>::S;
  const int n3 = N3 >= 0 ? N3 : op->n_triple, nc = NC >= 0 ? NC : op->n_coef, np = NP >= 0 ? NP : op->n_plain;
  V acc(T(0));
#pragma GCC unroll 4
  for (int i = 0; i < n3; ++i, t += 2)
    acc = mul_add<Strong>(mul<Strong>(mul<Strong>(Vec<V>::load(b + t->in), Vec<V>::load(b + t->coef)), Vec<V>::load(b + t[1].in)),
                          V(t->scale), acc);
#pragma GCC unroll 4
  for (int i = 0; i < nc; ++i, ++t)
    acc = mul_add<Strong>(mul<Strong>(Vec<V>::load(b + t->in), Vec<V>::load(b + t->coef)), V(t->scale), acc);
#pragma GCC unroll 4
  for (int i = 0; i < np; ++i, ++t) acc = mul_add<Strong>(Vec<V>::load(b + t->in), V(t->scale), acc);
  Vec<V>::store(b + op->out, acc);
  return acc;
}

// Returns the terms after the run's, and sets `nan` if an op wrote a NaN.
// (The term pointer is passed by value and returned, so it stays in a
// register: the compiler cannot tell a reference to it from the buffer.)
template <class V, bool Strong, int N3, int NC, int NP>
const SparseTerm<typename Vec<V>::S>* sparse_run(typename Vec<V>::S* b, const SparseOp* op,
                                                 const SparseOp* end,
                                                 const SparseTerm<typename Vec<V>::S>* t, bool& nan) {
  auto seen = ops::math::is_nan(V(0));  // false
  for (; op != end; ++op) seen = seen | ops::math::is_nan(sparse_op<V, Strong, N3, NC, NP>(b, op, t));
  if constexpr (std::is_arithmetic_v<V>) nan = nan || seen;
  else nan = nan || xsimd::any(seen);
  return t;
}

// The runner of one op shape: term counts of at most kSmallTriple - 1,
// kSmallCoef - 1 and kSmallPlain - 1 are compile-time constants (the loops
// unrolled), larger ones are read from the op.
inline constexpr int kSmallTriple = 3, kSmallCoef = 4, kSmallPlain = 4;
template <class V, bool Strong>
using SparseRunFn = const SparseTerm<typename Vec<V>::S>* (*)(typename Vec<V>::S*, const SparseOp*, const SparseOp*,
                                                              const SparseTerm<typename Vec<V>::S>*, bool&);
template <class V, bool Strong, int I>
constexpr SparseRunFn<V, Strong> small_sparse_run() {
  constexpr int n3 = I / (kSmallCoef * kSmallPlain), nc = I / kSmallPlain % kSmallCoef, np = I % kSmallPlain;
  return &sparse_run<V, Strong, n3, nc, np>;
}
template <class V, bool Strong, int... I>
constexpr auto small_sparse_runs(std::integer_sequence<int, I...>) {
  return std::array<SparseRunFn<V, Strong>, sizeof...(I)>{small_sparse_run<V, Strong, I>()...};
}

// Interpreted, a run of ops of one shape at a time (the plan groups them):
// every small shape has its term loops unrolled (a table of kernels by
// shape, not a list of the shapes some program has); larger ones loop over
// counts that stay the same through the run.
template <class V, bool Strong>
bool sparse_linear(typename Vec<V>::S* buf, const SparseOp* ops, std::int64_t n_ops,
                   const SparseTerm<typename Vec<V>::S>* terms, std::int64_t lanes) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  static constexpr auto kSmall =
      small_sparse_runs<V, Strong>(std::make_integer_sequence<int, kSmallTriple * kSmallCoef * kSmallPlain>());
  bool nan = false;
  for (std::int64_t l = 0; l < lanes; l += W) {
    const SparseTerm<T>* t = terms;
    T* b = buf + l;
    for (const SparseOp* op = ops; op != ops + n_ops;) {
      const SparseOp* end = op + op->run;
      if (op->n_triple < kSmallTriple && op->n_coef < kSmallCoef && op->n_plain < kSmallPlain)
        t = kSmall[(op->n_triple * kSmallCoef + op->n_coef) * kSmallPlain + op->n_plain](b, op, end, t, nan);
      else
        t = sparse_run<V, Strong, -1, -1, -1>(b, op, end, t, nan);
      op = end;
    }
  }
  return nan;
}

// Reads a matrix operand at (row i, col j) of batch bt as a vector of lanes.
template <class V, class T>
inline V mat_read(const Operand<T>& o, std::int64_t d, std::int64_t offset, std::int64_t l,
                  std::int64_t lanes) {
  if (o.varying) return Vec<V>::load(o.ptr + d * o.dir_stride + offset * lanes + l);
  return V(o.ptr[offset]);
}

// One output element: sequential fused multiply-adds over k. Every path below
// uses this order, so results do not depend on blocking, chunking or threads.
template <class V, bool Strong>
void matmul_generic(const MatmulArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  // Lanes are a multiple of W in the engine (W = 1 eagerly), so no tail loop.
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    for (std::int64_t bt = 0; bt < a.batch; ++bt) {
      const std::int64_t ab = a.a_batch ? a.a_batch[bt] : 0, bb = a.b_batch ? a.b_batch[bt] : 0;
      for (std::int64_t i = 0; i < a.m; ++i) {
        for (std::int64_t j = 0; j < a.n; ++j) {
          T* o = out + ((bt * a.m + i) * a.n + j) * a.lanes;
          for (std::int64_t l = 0; l < a.lanes; l += W) {
            V acc(T(0));
            for (std::int64_t kk = 0; kk < a.k; ++kk) {
              const std::int64_t ao = ab + (a.ta ? kk * a.m + i : i * a.k + kk);
              const std::int64_t bo = bb + (a.tb ? j * a.k + kk : kk * a.n + j);
              acc = mul_add<Strong>(mat_read<V>(a.a, d, ao, l, a.lanes), mat_read<V>(a.b, d, bo, l, a.lanes), acc);
            }
            if (a.accumulate) acc = acc + Vec<V>::load(o + l);
            Vec<V>::store(o + l, acc);
          }
        }
      }
    }
  }
}

// Per-example rows (a varying) times shared weights (b uniform): the shape of
// a network layer's JVP and VJP. Rows are (direction, i) pairs, blocked RB x
// JB in registers: per k, RB vector loads and JB broadcasts feed RB*JB FMAs.
template <class V, int RB, int JB, bool Strong>
// Rows r0 .. r0+RB of A start at arow[r] and step by a_step along k.
void matmul_rows_block(const MatmulArgs<typename Vec<V>::S>& a, std::int64_t r0, std::int64_t j0,
                       std::int64_t bt, std::int64_t l, const typename Vec<V>::S* const* arow,
                       std::int64_t a_step) {
  using T = typename Vec<V>::S;
  const std::int64_t bb = a.b_batch ? a.b_batch[bt] : 0;
  T* orow[RB];
  for (int r = 0; r < RB; ++r) {
    const std::int64_t d = (r0 + r) / a.m, i = (r0 + r) % a.m;
    orow[r] = a.out + d * a.out_dir_stride + ((bt * a.m + i) * a.n + j0) * a.lanes + l;
  }
  // Column j of op(b) starts at wp[j] and steps by w_step along k.
  const T* wp[JB];
  for (int j = 0; j < JB; ++j) wp[j] = a.b.ptr + bb + (a.tb ? (j0 + j) * a.k : j0 + j);
  const std::int64_t w_step = a.tb ? 1 : a.n, K = a.k;
  V acc[RB][JB];
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < JB; ++j) acc[r][j] = V(T(0));
  for (std::int64_t kk = 0; kk < K; ++kk) {
    V x[RB];
    for (int r = 0; r < RB; ++r) x[r] = Vec<V>::load(arow[r] + kk * a_step);
    for (int j = 0; j < JB; ++j) {
      const V w(wp[j][kk * w_step]);
      for (int r = 0; r < RB; ++r) acc[r][j] = mul_add<Strong>(x[r], w, acc[r][j]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < JB; ++j) {
      T* o = orow[r] + j * a.lanes;
      V v = acc[r][j];
      if (a.accumulate) v = v + Vec<V>::load(o);
      Vec<V>::store(o, v);
    }
}

// The rows of A from r0 on, RB at a time, against every column block of B.
// With a_scale, each group of rows is first scaled into `pack` (in L1), so
// the scaling costs no pass of its own over A.
template <class V, int RB, bool Strong>
void matmul_row_group(const MatmulArgs<typename Vec<V>::S>& a, std::int64_t r0, std::int64_t bt,
                      std::int64_t l, typename Vec<V>::S* pack) {
  using T = typename Vec<V>::S;
  constexpr int JB = 4;
  constexpr std::int64_t W = Vec<V>::width;
  const std::int64_t ab = a.a_batch ? a.a_batch[bt] : 0, cols_main = a.n / JB * JB;
  const std::int64_t a_step = (a.ta ? a.m : 1) * a.lanes;
  const T* arow[RB];
  std::int64_t step = a_step;
  for (int r = 0; r < RB; ++r) {
    const std::int64_t d = (r0 + r) / a.m, i = (r0 + r) % a.m;
    const std::int64_t at = (ab + (a.ta ? i : i * a.k)) * a.lanes + l;
    arow[r] = a.a.ptr + d * a.a.dir_stride + at;
    if (a.a_scale.ptr) {
      const T* s = a.a_scale.ptr + at;
      T* dst = pack + r * a.k * W;
      for (std::int64_t kk = 0; kk < a.k; ++kk)
        Vec<V>::store(dst + kk * W, mul<Strong>(Vec<V>::load(arow[r] + kk * a_step), Vec<V>::load(s + kk * a_step)));
      arow[r] = dst;
      step = W;
    }
  }
  for (std::int64_t j0 = 0; j0 < cols_main; j0 += JB) matmul_rows_block<V, RB, JB, Strong>(a, r0, j0, bt, l, arow, step);
  for (std::int64_t j0 = cols_main; j0 < a.n; ++j0) matmul_rows_block<V, RB, 1, Strong>(a, r0, j0, bt, l, arow, step);
}

// One lane (eager tensors, whole-tensor Jacobians), B not transposed, no
// scale: W adjacent columns j of a row in a vector, rows four at a time,
// each result its own k-ordered fma chain as in matmul_generic, hence the
// same bits (an instruction set with a fused fma only). Else matmul_generic.
template <class V, bool Strong>
void matmul_one_lane(const MatmulArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  constexpr std::int64_t RB = 4;
  if (a.lanes != 1 || a.tb || a.a_scale.ptr || a.n < W) return matmul_generic<T, Strong>(a);
  const std::int64_t cols = a.n / W * W;
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    const T* A = a.a.ptr + (a.a.varying ? d * a.a.dir_stride : 0);
    const T* B = a.b.ptr + (a.b.varying ? d * a.b.dir_stride : 0);
    T* out = a.out + d * a.out_dir_stride;
    for (std::int64_t bt = 0; bt < a.batch; ++bt) {
      const T* Ab = A + (a.a_batch ? a.a_batch[bt] : 0);
      const T* Bb = B + (a.b_batch ? a.b_batch[bt] : 0);
      T* o = out + bt * a.m * a.n;
      auto a_at = [&](std::int64_t i, std::int64_t kk) { return Ab[a.ta ? kk * a.m + i : i * a.k + kk]; };
      auto finish = [&](T* p, V acc) {
        if (a.accumulate) acc = acc + Vec<V>::load(p);
        Vec<V>::store(p, acc);
      };
      std::int64_t i = 0;
      for (; i + RB <= a.m; i += RB)
        for (std::int64_t j = 0; j < cols; j += W) {
          V acc[RB];
          for (auto& v : acc) v = V(T(0));
          for (std::int64_t kk = 0; kk < a.k; ++kk) {
            const V b = Vec<V>::load(Bb + kk * a.n + j);
            for (std::int64_t r = 0; r < RB; ++r) acc[r] = mul_add<Strong>(V(a_at(i + r, kk)), b, acc[r]);
          }
          for (std::int64_t r = 0; r < RB; ++r) finish(o + (i + r) * a.n + j, acc[r]);
        }
      for (; i < a.m; ++i)
        for (std::int64_t j = 0; j < cols; j += W) {
          V acc(T(0));
          for (std::int64_t kk = 0; kk < a.k; ++kk)
            acc = mul_add<Strong>(V(a_at(i, kk)), Vec<V>::load(Bb + kk * a.n + j), acc);
          finish(o + i * a.n + j, acc);
        }
      for (i = 0; i < a.m; ++i)  // the last columns, one at a time
        for (std::int64_t j = cols; j < a.n; ++j) {
          T acc(0);
          for (std::int64_t kk = 0; kk < a.k; ++kk) acc = mul_add<Strong>(a_at(i, kk), Bb[kk * a.n + j], acc);
          if (a.accumulate) acc = acc + o[i * a.n + j];
          o[i * a.n + j] = acc;
        }
    }
  }
}

// Whether fused_fma on V rounds once (sse4.2 has no fma instruction).
template <class V>
constexpr bool kFusedFma = false;
template <class T>
constexpr bool kFusedFma<xsimd::batch<T, xsimd::fma3<xsimd::avx2>>> = true;
template <class T>
constexpr bool kFusedFma<xsimd::batch<T, xsimd::avx512f>> = true;

template <class V, bool Strong>
void matmul_scaled_shared(const MatmulArgs<typename Vec<V>::S>& a);

template <class V, bool Strong>
void matmul(const MatmulArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  constexpr int RB = 4;
  if (a.a_scale.ptr && !a.a.varying) return matmul_scaled_shared<V, Strong>(a);
  if (W == 1 || !a.a.varying || a.b.varying) return matmul_generic<V, Strong>(a);
  thread_local std::vector<T> pack;
  if (a.a_scale.ptr && pack.size() < static_cast<std::size_t>(RB * a.k * W))
    pack.resize(static_cast<std::size_t>(RB * a.k * W));
  const std::int64_t rows = a.n_dir * a.m, rows_main = rows / RB * RB;
  for (std::int64_t l = 0; l < a.lanes; l += W)
    for (std::int64_t bt = 0; bt < a.batch; ++bt) {
      for (std::int64_t r0 = 0; r0 < rows_main; r0 += RB) matmul_row_group<V, RB, Strong>(a, r0, bt, l, pack.data());
      for (std::int64_t r0 = rows_main; r0 < rows; ++r0) matmul_row_group<V, 1, Strong>(a, r0, bt, l, pack.data());
    }
}


// In-register transpose of W vectors of W lanes: afterwards r[i][j] is the
// old r[j][i]. log2(W) stages of two-input shuffles (GCC vector extensions).
template <std::size_t ElemBytes, std::size_t Bytes>
struct ShuffleMask;
#define BATCHJAC_MASK(E, B, I)                                   \
  template <>                                                    \
  struct ShuffleMask<E, B> {                                     \
    typedef I type __attribute__((vector_size(B)));              \
  };
BATCHJAC_MASK(8, 16, std::int64_t)
BATCHJAC_MASK(8, 32, std::int64_t)
BATCHJAC_MASK(8, 64, std::int64_t)
BATCHJAC_MASK(4, 16, std::int32_t)
BATCHJAC_MASK(4, 32, std::int32_t)
BATCHJAC_MASK(4, 64, std::int32_t)
#undef BATCHJAC_MASK

// Stage S of the transpose: rows i and i + S exchange blocks of S lanes.
// Element j of `lo` comes from row i (j in an even block) or row i + S.
template <class M, int W, int S, bool Hi, std::size_t... J>
constexpr M stage_mask(std::index_sequence<J...>) {
  return M{(((static_cast<int>(J) / S) % 2 == 0)
                ? (Hi ? static_cast<int>(J) + S : static_cast<int>(J))
                : (Hi ? W + static_cast<int>(J) : W + static_cast<int>(J) - S))...};
}

template <class V, int S>
[[gnu::always_inline]] inline void transpose_stages(typename V::register_type* r) {
  using R = typename V::register_type;
  using T = typename Vec<V>::S;
  constexpr int W = static_cast<int>(Vec<V>::width);
  using M = typename ShuffleMask<sizeof(T), sizeof(R)>::type;
  constexpr M lo = stage_mask<M, W, S, false>(std::make_index_sequence<W>{});
  constexpr M hi = stage_mask<M, W, S, true>(std::make_index_sequence<W>{});
  for (int base = 0; base < W; base += 2 * S)
    for (int i = base; i < base + S; ++i) {
      const R a = r[i], b = r[i + S];
      r[i] = __builtin_shuffle(a, b, lo);
      r[i + S] = __builtin_shuffle(a, b, hi);
    }
  if constexpr (2 * S < W) transpose_stages<V, 2 * S>(r);
}

// In-register transpose of W vectors of W lanes: afterwards r[i][j] is the
// old r[j][i]. log2(W) stages of two-input shuffles (GCC vector extensions).
template <class V>
[[gnu::always_inline]] inline void transpose_square(typename V::register_type* r) {
  transpose_stages<V, 1>(r);
}

// A non-temporal store of one register to an aligned address.
template <class V>
void stream_store(typename Vec<V>::S* dst, typename V::register_type v) {
  using T = typename Vec<V>::S;
  using R = typename V::register_type;
  if constexpr (std::is_same_v<T, double>) {
    if constexpr (sizeof(R) == 64) _mm512_stream_pd(dst, v);
    else if constexpr (sizeof(R) == 32) _mm256_stream_pd(dst, v);
    else _mm_stream_pd(dst, v);
  } else {
    if constexpr (sizeof(R) == 64) _mm512_stream_ps(dst, v);
    else if constexpr (sizeof(R) == 32) _mm256_stream_ps(dst, v);
    else _mm_stream_ps(dst, v);
  }
}

// One register to an aligned row, non-temporal if `stream`.
template <class V>
void store_row(typename Vec<V>::S* dst, typename V::register_type v, bool stream) {
  if (stream) stream_store<V>(dst, v);
  else Vec<V>::store(dst, V(v));
}

// One tile of a lane-shared A, scaled per lane, times shared B: TP values
// along the tile's outer axis (p0 ..) by QN along its inner axis (q0 ..),
// for row i and lanes l .. l+W. Per k: one scale load, TP multiplies
// t = scale * p and QN broadcasts q feed TP*QN FMAs. Forward mode tiles
// directions (q = A's direction, p = B's column), reverse mode columns
// (q = B's column, p = A's direction): a tile's QN results are then adjacent
// in a Jacobian row, and with a.rows it is transposed in registers and
// stored there.
template <class V, int TP, int QN, bool QContiguous, bool Strong>
void scaled_tile(const MatmulArgs<typename Vec<V>::S>& a, std::int64_t i, std::int64_t p0,
                 std::int64_t q0, std::int64_t l) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  const std::int64_t K = a.k;
  // A's element (i, kk) and B's (kk, j): base offsets and steps along kk.
  const std::int64_t a_e0 = a.ta ? i : i * K, a_ek = a.ta ? a.m : 1;
  const std::int64_t es = a.a_elem_stride;
  const T* A = a.a.ptr + a_e0 * es;  // A(d, kk) = A[kk * a_ek * es + d]
  const std::int64_t a_step = a_ek * es;
  const T* B = a.b.ptr;  // B(kk, j) = B[kk * b_step + j * b_col]
  const std::int64_t b_step = a.tb ? 1 : a.n, b_col = a.tb ? K : 1;
  const T* P;
  const T* Q;
  std::int64_t p_step, p_stride, q_step, q_stride;
  if (a.tile_dirs) {
    P = B + p0 * b_col, p_step = b_step, p_stride = b_col;
    Q = A + q0, q_step = a_step, q_stride = 1;
  } else {
    P = A + p0, p_step = a_step, p_stride = 1;
    Q = B + q0 * b_col, q_step = b_step, q_stride = b_col;
  }
  if constexpr (QContiguous) q_stride = 1;
  const T* s = a.a_scale.ptr + a_e0 * a.lanes + l;
  const std::int64_t s_step = a_ek * a.lanes;
  V acc[TP][QN];
  for (int t = 0; t < TP; ++t)
    for (int q = 0; q < QN; ++q) acc[t][q] = V(T(0));
  for (std::int64_t kk = 0; kk < K; ++kk) {
    const V sv = Vec<V>::load(s + kk * s_step);
    const T* pk = P + kk * p_step;
    const T* qk = Q + kk * q_step;
    V t[TP];
    for (int u = 0; u < TP; ++u) t[u] = mul<Strong>(sv, V(pk[u * p_stride]));
    for (int q = 0; q < QN; ++q) {
      const V qv(qk[q * q_stride]);
      for (int u = 0; u < TP; ++u) acc[u][q] = mul_add<Strong>(t[u], qv, acc[u][q]);
    }
  }
  for (int u = 0; u < TP; ++u) {
    const std::int64_t d = a.tile_dirs ? q0 : p0 + u;      // first direction of the tile
    const std::int64_t j = a.tile_dirs ? p0 + u : q0;      // first column
    if constexpr (QN == W) {  // the callers send no partial tile to rows
      if (a.rows) {
        T* dst = a.rows + d * a.rows_dir_step + (i * a.n + j) * a.rows_elem_step;
        if (a.rows_nan)
          for (int q = 0; q < QN; ++q)
            if (any_nan(acc[u][q])) *a.rows_nan = 1;
        if constexpr (W == 1) {
          *dst = acc[u][0];
        } else {
          using R = typename V::register_type;
          R r[W];
          for (int q = 0; q < QN; ++q) r[q] = acc[u][q];
          transpose_square<V>(r);
          for (std::int64_t ln = 0; ln < W; ++ln) store_row<V>(dst + ln * a.rows_lane_stride, r[ln], a.rows_stream);
        }
        continue;
      }
    }
    for (int q = 0; q < QN; ++q) {
      const std::int64_t dq = a.tile_dirs ? d + q : d, jq = a.tile_dirs ? j : j + q;
      T* o = a.out + dq * a.out_dir_stride + (i * a.n + jq) * a.lanes + l;
      V v = acc[u][q];
      if (a.accumulate) v = v + Vec<V>::load(o);
      Vec<V>::store(o, v);
    }
  }
}

template <class V, int TP, bool QContiguous, bool Strong>
void scaled_tiles(const MatmulArgs<typename Vec<V>::S>& a, std::int64_t i, std::int64_t p0,
                  std::int64_t l) {
  constexpr int W = static_cast<int>(Vec<V>::width);
  const std::int64_t nq = a.tile_dirs ? a.n_dir : a.n, q_main = nq / W * W;
  for (std::int64_t q0 = 0; q0 < q_main; q0 += W) scaled_tile<V, TP, W, QContiguous, Strong>(a, i, p0, q0, l);
  for (std::int64_t q0 = q_main; q0 < nq; ++q0) scaled_tile<V, TP, 1, QContiguous, Strong>(a, i, p0, q0, l);
}

// A shared by the lanes, scaled per lane, times shared B (MatmulArgs):
// the JVP or VJP of a layer whose incoming tangent is example-independent,
// as W2 diag(s) W1 in an MLP. The same arithmetic whether results go to
// `out` or straight to Jacobian rows.
template <class V, bool Strong>
void matmul_scaled_shared(const MatmulArgs<typename Vec<V>::S>& a) {
  constexpr int W = static_cast<int>(Vec<V>::width);
  // 16 accumulators in 32 registers (AVX-512), 8 in 16.
  constexpr int TP = std::max(1, (sizeof(V) >= 64 ? 16 : 8) / W);
  const std::int64_t np = a.tile_dirs ? a.n : a.n_dir, p_main = np / TP * TP;
  const bool contiguous = a.tile_dirs || !a.tb;
  for (std::int64_t l = 0; l < a.lanes; l += W)
    for (std::int64_t i = 0; i < a.m; ++i) {
      for (std::int64_t p0 = 0; p0 < p_main; p0 += TP) {
        if (contiguous) scaled_tiles<V, TP, true, Strong>(a, i, p0, l);
        else scaled_tiles<V, TP, false, Strong>(a, i, p0, l);
      }
      for (std::int64_t p0 = p_main; p0 < np; ++p0) {
        if (contiguous) scaled_tiles<V, 1, true, Strong>(a, i, p0, l);
        else scaled_tiles<V, 1, false, Strong>(a, i, p0, l);
      }
    }
}

// dst[l * dst_stride + i] = src[i * src_stride + l] for i < count, l < W:
// lanes (examples) become rows. Blocks of W go through registers.
// Stream: the destination rows are vector-aligned and bypass the caches.
template <class V, bool Stream = false>
void lanes_to_rows(const typename Vec<V>::S* src, std::int64_t count, std::int64_t src_stride,
                   typename Vec<V>::S* dst, std::int64_t dst_stride, const std::uint8_t* live) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  std::int64_t i = 0;
  if constexpr (W > 1) {
    using R = typename V::register_type;
    // The tile of entries at .. at + W, transposed: r[l] is lane l's.
    auto tile = [&](std::int64_t at, R* r) {
      if (live && !live[at / W]) {
        for (std::int64_t l = 0; l < W; ++l) r[l] = V(T(0));
        return;
      }
      for (std::int64_t j = 0; j < W; ++j) r[j] = Vec<V>::load(src + (at + j) * src_stride);
      transpose_square<V>(r);
    };
    if constexpr (Stream) {
      // Two tiles at a time, so that each row receives two adjacent lines
      // before the next row: non-temporal stores that move from row to row
      // every line, 16 rows at once, ran at 3/4 of the memory bus's pace on
      // an AMD EPYC, two lines per row at its full pace (bench/README.md,
      // "Generated code": the micro-benchmark).
      for (; i + 2 * W <= count; i += 2 * W) {
        R a[W], b[W];
        tile(i, a);
        tile(i + W, b);
        for (std::int64_t l = 0; l < W; ++l) {
          store_row<V>(dst + l * dst_stride + i, a[l], true);
          store_row<V>(dst + l * dst_stride + i + W, b[l], true);
        }
      }
    }
    for (; i + W <= count; i += W) {
      R r[W];
      tile(i, r);
      for (std::int64_t l = 0; l < W; ++l) store_row<V>(dst + l * dst_stride + i, r[l], Stream);
    }
  }
  for (; i < count; ++i)
    for (std::int64_t l = 0; l < W; ++l) dst[l * dst_stride + i] = src[i * src_stride + l];
}

// Lane j of the result: lane W - s + j of the concatenation (a, b), i.e.
// the last s lanes of a, then the first W - s of b.
template <class M, int W, std::size_t... J>
constexpr M join_mask(int s, std::index_sequence<J...>) {
  return M{(W - s + static_cast<int>(J))...};
}
// Lanes below s from a, then the first W - s lanes of b.
template <class M, int W, std::size_t... J>
constexpr M splice_mask(int s, std::index_sequence<J...>) {
  return M{(static_cast<int>(J) < s ? static_cast<int>(J) : W + static_cast<int>(J) - s)...};
}

// The W examples of a block, `size` >= W entries each (entry q of every
// example in the lanes at src + q * src_stride), packed back to back at dst
// (aligned to the vector size) in whole lines straight from registers
// (non-temporal if Stream), for rows of any length (W3's 289). Each tile of W entries is
// transposed; example e's row of tile t starts at lane s_e of its line, so a
// line joins the end of the row's previous tile to the start of this one
// (one two-source shuffle). The line where example e - 1 ends and e begins
// is written last. `live` as in lanes_to_rows, per tile.
template <class V, bool Stream>
void lanes_to_packed_rows(const typename Vec<V>::S* src, std::int64_t size,
                          std::int64_t src_stride, typename Vec<V>::S* dst,
                          const std::uint8_t* live) {
  using T = typename Vec<V>::S;
  constexpr int W = static_cast<int>(Vec<V>::width);
  if constexpr (W == 1) {
    for (std::int64_t q = 0; q < size; ++q) dst[q] = src[q * src_stride];
  } else {
    using R = typename V::register_type;
    using M = typename ShuffleMask<sizeof(T), sizeof(R)>::type;
    constexpr auto lanes = std::make_index_sequence<W>{};
    const std::int64_t n_tiles = (size + W - 1) / W, n_last = size - (n_tiles - 1) * W;
    int s[W];
    std::int64_t line0[W];  // the line where example e starts, at lane s[e]
    M join[W];
    for (int e = 0; e < W; ++e) {
      s[e] = static_cast<int>(e * size % W);
      line0[e] = e * size / W;
      join[e] = join_mask<M, W>(s[e], lanes);
    }
    const R zero = V(T(0));
    R prev[W], head[W], tail[W];
    for (std::int64_t t = 0; t < n_tiles; ++t) {
      const std::int64_t n = t + 1 < n_tiles ? W : n_last;
      R r[W];
      if (live && !live[t]) {
        for (int j = 0; j < W; ++j) r[j] = zero;
      } else {
        for (int j = 0; j < W; ++j) r[j] = j < n ? R(Vec<V>::load(src + (t * W + j) * src_stride)) : zero;
        transpose_square<V>(r);
      }
      for (int e = 0; e < W; ++e) {
        R line = r[e];
        if (t > 0) line = __builtin_shuffle(prev[e], r[e], join[e]);
        else if (s[e] != 0) head[e] = r[e];  // its line starts with example e - 1's end
        prev[e] = r[e];
        if (t == 0 && s[e] != 0) continue;
        if (t + 1 < n_tiles || s[e] + n >= W) store_row<V>(dst + (line0[e] + t) * W, line, Stream);
        else tail[e] = line;  // example e ends inside this line
      }
    }
    for (int e = 0; e < W; ++e)  // example e ends in the line after its last tile's
      if (s[e] + n_last > W) tail[e] = __builtin_shuffle(prev[e], zero, join[e]);
    for (int e = 1; e < W; ++e)
      if (s[e] != 0)
        store_row<V>(dst + line0[e] * W, __builtin_shuffle(tail[e - 1], head[e], splice_mask<M, W>(s[e], lanes)),
                     Stream);
  }
}

template <class V>
void pack_rows_stream(const typename Vec<V>::S* src, std::int64_t rows, std::int64_t row_len,
                      std::int64_t src_stride, typename Vec<V>::S* dst) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  const std::int64_t n = rows * row_len;
  std::int64_t pos = 0;
  if constexpr (W > 1) {
    std::int64_t r = 0, q = 0;  // pos = r * row_len + q
    for (; pos + W <= n; pos += W) {
      typename V::register_type v;
      if (q + W <= row_len) {
        v = Vec<V>::load(src + r * src_stride + q);
      } else {  // the line ends one row and starts the next
        alignas(64) T line[W];
        for (std::int64_t j = 0, rr = r, qq = q; j < W; ++j) {
          line[j] = src[rr * src_stride + qq];
          if (++qq == row_len) qq = 0, ++rr;
        }
        v = Vec<V>::load(line);
      }
      stream_store<V>(dst + pos, v);
      q += W;
      while (q >= row_len) q -= row_len, ++r;
    }
  }
  for (; pos < n; ++pos) dst[pos] = src[pos / row_len * src_stride + pos % row_len];
}

template <class V>
void stream_copy(typename Vec<V>::S* dst, const typename Vec<V>::S* src, std::int64_t n) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  if constexpr (W == 1) {
    std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(n));
  } else {
    using R = typename V::register_type;
    for (; n > 0 && reinterpret_cast<std::uintptr_t>(dst) % sizeof(R) != 0; --n) *dst++ = *src++;
    for (; n >= W; n -= W, dst += W, src += W) stream_store<V>(dst, Vec<V>::load(src));
    for (; n > 0; --n) *dst++ = *src++;
  }
}

template <class F>
concept HasPartial = requires { &F::template partial<double, double>; };
template <class F>
concept HasBinaryPartials = requires { &F::template partial_a<double, double>; };

template <class V, class L>
struct Fill;
template <class V, class... Fs>
struct Fill<V, ops::math::List<Fs...>> {
  template <class T>
  static void unary(KernelTable<T>& t) {
    int i = 0;
    (
        [&] {
          t.unary[i] = &elementwise<V, Fs, 1, kPrimal>;
          if constexpr (HasPartial<Fs>) t.unary_partial[i] = &elementwise<V, Fs, 2, kPartial>;
          ++i;
        }(),
        ...);
  }
  template <class T>
  static void binary(KernelTable<T>& t) {
    int i = 0;
    (
        [&] {
          t.binary[i] = &elementwise<V, Fs, 2, kPrimal>;
          if constexpr (HasBinaryPartials<Fs>) {
            t.binary_partial[0][i] = &elementwise<V, Fs, 3, kPartialA>;
            t.binary_partial[1][i] = &elementwise<V, Fs, 3, kPartialB>;
          }
          ++i;
        }(),
        ...);
  }
  template <class T>
  static void ternary(KernelTable<T>& t) {
    int i = 0;
    ((t.ternary[i++] = &elementwise<V, Fs, 3, kPrimal>), ...);
  }
  template <class T>
  static void quaternary(KernelTable<T>& t) {
    int i = 0;
    ((t.quaternary[i++] = &elementwise<V, Fs, 4, kPrimal>), ...);
  }
};

template <class V>
KernelTable<typename Vec<V>::S> make_table(std::string_view arch) {
  using T = typename Vec<V>::S;
  static_assert(ops::math::Unary::size <= kMaxUnary && ops::math::Binary::size <= kMaxBinary &&
                ops::math::Ternary::size <= kMaxTernary &&
                ops::math::Quaternary::size <= kMaxQuaternary);
  KernelTable<T> t;
  t.arch = arch;
  t.width = Vec<V>::width;
  Fill<V, ops::math::Unary>::unary(t);
  Fill<V, ops::math::Binary>::binary(t);
  Fill<V, ops::math::Ternary>::ternary(t);
  Fill<V, ops::math::Quaternary>::quaternary(t);
  t.gather = &gather<V>;
  t.scatter_add = &scatter_add<V>;
  t.scatter = &scatter<V>;
  t.scatter_reduce = &scatter_reduce<V>;
  t.scan = &scan<V>;
  t.matmul = &matmul<V, false>;
  t.matrix = &matrix<V>;
  t.matmul_strong = &matmul<V, true>;
  if constexpr (kFusedFma<V>) t.matmul_one_lane = &matmul_one_lane<V, false>;
  t.sparse_linear = &sparse_linear<V, false>;
  t.sparse_linear_strong = &sparse_linear<V, true>;
  t.has_nan = &has_nan<V>;
  t.strong_divide = &elementwise<V, ops::math::StrongDivide, 2, kPrimal>;
  t.strong_axpy = &elementwise<V, ops::math::StrongAxpy, 3, kPrimal>;
  t.strong_lincomb = &elementwise<V, ops::math::StrongLincomb, 4, kPrimal>;
  t.stream_copy = &stream_copy<V>;
  t.lanes_to_rows = &lanes_to_rows<V>;
  t.lanes_to_rows_stream = &lanes_to_rows<V, true>;
  t.pack_rows_stream = &pack_rows_stream<V>;
  t.lanes_to_packed_rows = &lanes_to_packed_rows<V, false>;
  t.lanes_to_packed_rows_stream = &lanes_to_packed_rows<V, true>;
  return t;
}

}  // namespace
}  // namespace batchjac::kernels
