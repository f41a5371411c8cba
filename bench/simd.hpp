// SIMD vocabulary of the fast analytic kernels (analytic*.cpp only): 64-byte
// vectors written with GCC/Clang vector extensions, streaming stores, vectorized
// exp/log/tanh, and moving blocks of 8 examples (one per lane) in and out of
// batch-first memory. Include it only from files built with the kernels' flags
// (BATCHJAC_BENCH_NATIVE): its inline functions must see one instruction set.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace bjbench::simd {
// ---- SIMD vocabulary ----------------------------------------------------------------------
// 64-byte vectors: one zmm with AVX-512, two ymm with AVX2 (the compiler splits them).
typedef double f64x8 __attribute__((vector_size(64)));
typedef float f32x16 __attribute__((vector_size(64)));
typedef std::int64_t i64x8 __attribute__((vector_size(64)));
typedef std::int32_t i32x16 __attribute__((vector_size(64)));

template <class T>
struct Simd;
template <>
struct Simd<double> {
  using V = f64x8;
  static constexpr int lanes = 8;
};
template <>
struct Simd<float> {
  using V = f32x16;
  static constexpr int lanes = 16;
};

template <class V, class T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T, class V>
inline void store(T* p, V v) {
  std::memcpy(p, &v, sizeof v);
}
// All lanes = s. (V{} + s would cost an add: 0.0 + s is not s when s = -0.0.)
template <class V, class T, std::size_t... I>
inline V splat_lanes(T s, std::index_sequence<I...>) {
  return V{((void)I, s)...};
}
template <class V, class T>
inline V splat(T s) {
  return splat_lanes<V>(s, std::make_index_sequence<sizeof(V) / sizeof(T)>{});
}

inline bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

// Non-temporal store of one 64-byte line; p must be 64-byte aligned.
inline void stream(double* p, f64x8 v) {
#if defined(__AVX512F__)
  _mm512_stream_pd(p, std::bit_cast<__m512d>(v));
#elif defined(__AVX__)
  __m256d half[2];
  std::memcpy(half, &v, sizeof v);
  _mm256_stream_pd(p, half[0]);
  _mm256_stream_pd(p + 4, half[1]);
#else
  store(p, v);
#endif
}
inline void stream(float* p, f32x16 v) {
#if defined(__AVX512F__)
  _mm512_stream_ps(p, std::bit_cast<__m512>(v));
#elif defined(__AVX__)
  __m256 half[2];
  std::memcpy(half, &v, sizeof v);
  _mm256_stream_ps(p, half[0]);
  _mm256_stream_ps(p + 8, half[1]);
#else
  store(p, v);
#endif
}
// Keeps the compiler from reordering the stores around it. Streaming stores
// issued in address order are measurably faster (~15% for W1 with GCC 12,
// which otherwise interleaves the rows).
inline void in_address_order() { __asm__ volatile("" ::: "memory"); }

// Orders the streamed lines before anything the caller does next.
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// ---- elementwise math, vectorized -------------------------------------------------------
// exp(x): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Taylor polynomial
// to degree 13 (truncation < 1e-17 relative, so ~1 ulp), times 2^n built in
// the exponent bits. Arguments are clamped to the normal range.
inline f64x8 vexp(f64x8 x) {
  const f64x8 lo = splat<f64x8>(-708.0), hi = splat<f64x8>(709.0);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  constexpr double magic = 0x1.8p52;  // adding it rounds to an integer kept in the low mantissa bits
  const f64x8 t = x * 0x1.71547652b82fep0 + magic;
  const f64x8 k = t - magic;
  f64x8 r = x - k * 0x1.62e42fee00000p-1;  // ln2 high part: k * hi is exact
  r = r - k * 0x1.a39ef35793c76p-33;       // ln2 low part
  constexpr double inv_fact[] = {1.0 / 6227020800, 1.0 / 479001600, 1.0 / 39916800,
                                 1.0 / 3628800,    1.0 / 362880,    1.0 / 40320,
                                 1.0 / 5040,       1.0 / 720,       1.0 / 120,
                                 1.0 / 24,         1.0 / 6,         1.0 / 2};
  f64x8 p = splat<f64x8>(inv_fact[0]);
  for (int i = 1; i < 12; ++i) p = p * r + inv_fact[i];
  p = p * r + 1.0;
  p = p * r + 1.0;
  const i64x8 two_k = (std::bit_cast<i64x8>(t) + 1023) << 52;  // 2^k
  return p * std::bit_cast<f64x8>(two_k);
}

// exp(x) in float: the same scheme, Taylor to degree 7 (truncation < 1e-8).
inline f32x16 vexp(f32x16 x) {
  const f32x16 lo = splat<f32x16>(-87.0f), hi = splat<f32x16>(88.0f);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  constexpr float magic = 0x1.8p23f;
  const f32x16 t = x * 0x1.715476p0f + magic;
  const f32x16 k = t - magic;
  f32x16 r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  f32x16 p = splat<f32x16>(1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const i32x16 two_k = (std::bit_cast<i32x16>(t) + 127) << 23;
  return p * std::bit_cast<f32x16>(two_k);
}

// log(x) for positive normal x: x = 2^e m with m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, series to s^21.
inline f64x8 vlog(f64x8 x) {
  const i64x8 bits = std::bit_cast<i64x8>(x);
  i64x8 e = ((bits >> 52) & 0x7ff) - 1023;
  const i64x8 mant_bits = (bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;
  f64x8 mant = std::bit_cast<f64x8>(mant_bits);
  const i64x8 big = mant > 1.4142135623730951;  // -1 where true
  mant = big ? mant * 0.5 : mant;
  e = e - big;
  const f64x8 s = (mant - 1.0) / (mant + 1.0);
  const f64x8 s2 = s * s;
  f64x8 p = splat<f64x8>(1.0 / 21);
  for (int i = 19; i >= 3; i -= 2) p = p * s2 + 1.0 / i;
  p = p * s2 + 1.0;
  return __builtin_convertvector(e, f64x8) * 0.6931471805599453 + 2.0 * s * p;
}
// tanh(x) in float: 1 - 2 / (exp(2x) + 1), exact at the saturated ends
// (exp clamps, so no inf / inf); absolute error a few ulp of 1.
inline f32x16 vtanh(f32x16 x) { return 1.0f - 2.0f / (vexp(x * 2.0f) + 1.0f); }

// ---- blocks of 8 examples, one per lane ------------------------------------------------------
// rows[i] holds element i of 8 examples; returns, for each example e,
// out[e] = (rows[0][e], ..., rows[7][e]). 24 two-source shuffles.
inline void transpose8x8(const f64x8* rows, f64x8* out) {
  f64x8 e[4], o[4];  // pairs of rows interleaved: e[p] = (r2p c0, r2p+1 c0, r2p c2, ...)
  for (int p = 0; p < 4; ++p) {
    e[p] = __builtin_shufflevector(rows[2 * p], rows[2 * p + 1], 0, 8, 2, 10, 4, 12, 6, 14);
    o[p] = __builtin_shufflevector(rows[2 * p], rows[2 * p + 1], 1, 9, 3, 11, 5, 13, 7, 15);
  }
  f64x8 q[2][4];  // quads of rows: columns (0,4), (2,6), (1,5), (3,7)
  for (int h = 0; h < 2; ++h) {
    q[h][0] = __builtin_shufflevector(e[2 * h], e[2 * h + 1], 0, 1, 8, 9, 4, 5, 12, 13);
    q[h][1] = __builtin_shufflevector(e[2 * h], e[2 * h + 1], 2, 3, 10, 11, 6, 7, 14, 15);
    q[h][2] = __builtin_shufflevector(o[2 * h], o[2 * h + 1], 0, 1, 8, 9, 4, 5, 12, 13);
    q[h][3] = __builtin_shufflevector(o[2 * h], o[2 * h + 1], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  constexpr int col_lo[4] = {0, 2, 1, 3};
  for (int k = 0; k < 4; ++k) {
    out[col_lo[k]] = __builtin_shufflevector(q[0][k], q[1][k], 0, 1, 2, 3, 8, 9, 10, 11);
    out[col_lo[k] + 4] = __builtin_shufflevector(q[0][k], q[1][k], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}


// in[j] = (x[i0][j], ..., x[i0 + 7][j]) for j < n, from batch-first x (row
// stride n) at example i0; a short block (count < 8) repeats its last example.
inline void load_block(const double* x, int n, int count, f64x8* in) {
  for (int j = 0; j < n; ++j) {
    for (int e = 0; e < 8; ++e) in[j][e] = x[std::min(e, count - 1) * n + j];
  }
}

// Example e of a block gets lanes[q][e] at out[e * stride + q], q < len, for the
// block's first `count` examples. Full blocks go through 8x8 transposes; with
// kStream (full block, len and stride multiples of 8, out 64-byte aligned) each
// 8-element piece is one streamed cache line.
template <bool kStream>
inline void lanes_to_rows(const f64x8* lanes, int len, std::int64_t stride, int count,
                          double* out) {
  if (count < 8) {
    for (int e = 0; e < count; ++e) {
      for (int q = 0; q < len; ++q) out[e * stride + q] = lanes[q][e];
    }
    return;
  }
  int q0 = 0;
  for (; q0 + 8 <= len; q0 += 8) {
    f64x8 cols[8];
    transpose8x8(lanes + q0, cols);
    for (int e = 0; e < 8; ++e) {
      if constexpr (kStream) {
        stream(out + e * stride + q0, cols[e]);
      } else {
        store(out + e * stride + q0, cols[e]);
      }
    }
  }
  for (; q0 < len; ++q0) {
    for (int e = 0; e < 8; ++e) out[e * stride + q0] = lanes[q0][e];
  }
}

// A block's Jacobians of mn elements each, lanes[q] = element q of the 8
// examples, written batch-first to out (8 * mn contiguous elements, or
// count * mn for a short block). When mn is not a multiple of 8 an example's
// rows do not start on a cache line, so the block is staged (stage: 8 * mn
// elements, 64-byte aligned) and streamed out as 8 * mn / 8 = mn whole lines.
template <bool kStream>
inline void store_block(const f64x8* lanes, int mn, int count, double* stage, double* out) {
  if (mn % 8 == 0) {
    lanes_to_rows<kStream>(lanes, mn, mn, count, out);
    return;
  }
  lanes_to_rows<false>(lanes, mn, mn, 8, stage);
  if (kStream && count == 8) {
    for (int line = 0; line < mn; ++line) stream(out + line * 8, load<f64x8>(stage + line * 8));
  } else {
    std::memcpy(out, stage, sizeof(double) * static_cast<std::size_t>(count * mn));
  }
}

}  // namespace bjbench::simd
