// Fast hand-written Jacobians of the benchmark workloads: the ideal batchjac is
// measured against. Built with -O3 -march=native (see CMakeLists.txt). SIMD is
// written with GCC/Clang vector extensions, so the same source compiles to
// AVX-512, AVX2 or SSE; only the non-temporal stores need intrinsics.
#include "analytic.hpp"

#include <bit>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace bjbench {
namespace {

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

bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

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

// ---- W1 square -----------------------------------------------------------------------------

void square_plain(const double* x, std::int64_t b, double* jac) {
  constexpr int n = w1::n;
  for (std::int64_t i = 0; i < b; ++i) {
    double* out = jac + i * n * n;
    for (int r = 0; r < n; ++r) {
      for (int j = 0; j < n; ++j) out[r * n + j] = r == j ? 2.0 * x[i * n + j] : 0.0;
    }
  }
}

// ---- W2 mlp --------------------------------------------------------------------------------

// Per example: z = W1 x + c1 (SIMD over the hidden units), s = 1 - tanh(z)^2,
// B = diag(s) W1, then J = W2 B as a register-tiled GEMM: R rows x n columns of
// accumulators (16 vectors), W2 entries broadcast, B rows loaded. W1 is
// transposed once per call; the weights and B (48 KiB in double) stay in L1/L2.
template <class T, bool kStream>
void mlp_kernel(const MlpWeights<T>& w, const T* x, std::int64_t b, T* jac) {
  using w2::h;
  using w2::m;
  using w2::n;
  using V = typename Simd<T>::V;
  constexpr int L = Simd<T>::lanes;
  constexpr int NV = n / L;   // vectors per Jacobian row: 4 (double) or 2 (float)
  constexpr int HV = h / L;   // vectors over the hidden units: 8 or 4
  constexpr int R = 16 / NV;  // Jacobian rows per register tile
  static_assert(n % L == 0 && h % L == 0 && m % R == 0);

  alignas(64) T w1t[n][h];  // W1 transposed: z accumulates along k
  for (int k = 0; k < h; ++k) {
    for (int j = 0; j < n; ++j) w1t[j][k] = w.w1[k * n + j];
  }
  const T* w1 = w.w1.data();
  const T* w2 = w.w2.data();
  V c1[HV];
  for (int v = 0; v < HV; ++v) c1[v] = load<V>(w.c1.data() + v * L);

  alignas(64) T s[h];
  alignas(64) V bk[h][NV];
  for (std::int64_t i = 0; i < b; ++i) {
    const T* xi = x + i * n;
    V z[HV];
    for (int v = 0; v < HV; ++v) z[v] = c1[v];
    for (int j = 0; j < n; ++j) {
      const V xj = splat<V>(xi[j]);
#pragma GCC unroll 8
      for (int v = 0; v < HV; ++v) z[v] += load<V>(&w1t[j][v * L]) * xj;
    }
    // 1 - tanh(z)^2 = 1 / cosh(z)^2 = 4 e / (1 + e)^2 with e = exp(-2|z|): no
    // cancellation, no overflow.
    for (int v = 0; v < HV; ++v) {
      const V az = z[v] < 0 ? -z[v] : z[v];
      const V e = vexp(az * T(-2));
      const V one_e = e + T(1);
      store(s + v * L, (e * T(4)) / (one_e * one_e));
    }
    for (int k = 0; k < h; ++k) {
      const V sk = splat<V>(s[k]);
      for (int v = 0; v < NV; ++v) bk[k][v] = load<V>(w1 + k * n + v * L) * sk;
    }
    T* out = jac + i * m * n;
    for (int r0 = 0; r0 < m; r0 += R) {
      V acc[R][NV] = {};
      for (int k = 0; k < h; ++k) {
#pragma GCC unroll 16
        for (int rr = 0; rr < R; ++rr) {
          const V wv = splat<V>(w2[(r0 + rr) * h + k]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[rr][v] += wv * bk[k][v];
        }
      }
      for (int rr = 0; rr < R; ++rr) {
        for (int v = 0; v < NV; ++v) {
          if constexpr (kStream) {
            stream(out + (r0 + rr) * n + v * L, acc[rr][v]);
          } else {
            store(out + (r0 + rr) * n + v * L, acc[rr][v]);
          }
        }
      }
    }
  }
}

// ---- W3 kinetics ---------------------------------------------------------------------------

// One block of 8 examples, one per lane. The 17 x 17 Jacobian of the block,
// J[row * 17 + col] as lanes, lives in L1 (18 KiB); each reaction adds its five
// partials of q (dT, dcA, dcB, dcC, dcD) to the four species rows it touches.
// Row 0 (dT) follows from the species rows.
void kinetics_block(const KineticsMechanism& mech, const f64x8* in, f64x8* J) {
  using namespace w3;
  const f64x8 t = in[0];
  const f64x8* c = in + 1;
  const f64x8 inv_t = 1.0 / t;
  const f64x8 log_t = vlog(t);
  for (int q = 0; q < m * n; ++q) J[q] = f64x8{};
  for (int r = 0; r < nr; ++r) {
    const int a = mech.reactant_a[r], bb = mech.reactant_b[r], cc = mech.product_c[r],
              d = mech.product_d[r];
    const double beta = mech.temp_exponent[r], ea = mech.activation[r],
                 ratio = mech.reverse_ratio[r];
    // kf = A T^beta exp(-Ea/T);  d kf/dT = kf (beta + Ea/T) / T;  kr = ratio kf
    const f64x8 kf = mech.prefactor[r] * vexp(beta * log_t - ea * inv_t);
    const f64x8 kr = kf * ratio;
    const f64x8 dq_dt = kf * (beta + ea * inv_t) * inv_t * (c[a] * c[bb] - ratio * c[cc] * c[d]);
    const f64x8 dq_da = kf * c[bb], dq_db = kf * c[a];  // q = kf cA cB - kr cC cD
    const f64x8 dq_dc = kr * c[d], dq_dd = kr * c[cc];  // (these two enter with a minus)
    for (int s : {a, bb}) {  // reactants: wdot_s -= q
      f64x8* row = J + (1 + s) * n;
      row[0] -= dq_dt;
      row[1 + a] -= dq_da;
      row[1 + bb] -= dq_db;
      row[1 + cc] += dq_dc;
      row[1 + d] += dq_dd;
    }
    for (int s : {cc, d}) {  // products: wdot_s += q
      f64x8* row = J + (1 + s) * n;
      row[0] += dq_dt;
      row[1 + a] += dq_da;
      row[1 + bb] += dq_db;
      row[1 + cc] -= dq_dc;
      row[1 + d] -= dq_dd;
    }
  }
  for (int col = 0; col < n; ++col) {  // dT = -sum_s h_s wdot_s
    f64x8 acc{};
    for (int s = 0; s < ns; ++s) acc -= mech.enthalpy[s] * J[(1 + s) * n + col];
    J[col] = acc;
  }
}

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

template <bool kStream>
void kinetics_kernel(const double* x, std::int64_t b, double* jac) {
  using namespace w3;
  constexpr int L = 8;
  constexpr int mn = m * n;  // 289 = 36 tiles of 8 rows + 1
  const KineticsMechanism& mech = kinetics_mechanism();
  alignas(64) double in[n][L];
  alignas(64) f64x8 J[mn];
  alignas(64) double stage[L * mn];  // the block batch-first: 8 * 289 doubles = 289 lines
  for (std::int64_t i0 = 0; i0 < b; i0 += L) {
    const int count = static_cast<int>(std::min<std::int64_t>(L, b - i0));
    for (int e = 0; e < L; ++e) {  // a short last block repeats its last example
      const double* xe = x + (i0 + std::min(e, count - 1)) * n;
      for (int j = 0; j < n; ++j) in[j][e] = xe[j];
    }
    f64x8 in_v[n];
    for (int j = 0; j < n; ++j) in_v[j] = load<f64x8>(in[j]);
    kinetics_block(mech, in_v, J);
    for (int q0 = 0; q0 + L <= mn; q0 += L) {
      f64x8 cols[L];
      transpose8x8(J + q0, cols);
      for (int e = 0; e < L; ++e) store(stage + e * mn + q0, cols[e]);
    }
    for (int e = 0; e < L; ++e) stage[e * mn + mn - 1] = J[mn - 1][e];
    double* out = jac + i0 * mn;
    if (kStream && count == L) {
      for (int line = 0; line < mn; ++line) stream(out + line * L, load<f64x8>(stage + line * L));
    } else {
      std::memcpy(out, stage, sizeof(double) * count * mn);
    }
  }
}

}  // namespace

// ---- entry points --------------------------------------------------------------------------

void square_jacobian(const double* x, std::int64_t b, double* jac) {
  constexpr int n = w1::n;
  static_assert(n == 16, "the SIMD paths below hard-code 16 columns");
#if defined(__AVX512F__)
  if (aligned64(jac)) {
    const __m512d zero = _mm512_setzero_pd();
    for (std::int64_t i = 0; i < b; ++i) {
      const __m512d lo = _mm512_loadu_pd(x + i * n), hi = _mm512_loadu_pd(x + i * n + 8);
      const __m512d d0 = _mm512_add_pd(lo, lo), d1 = _mm512_add_pd(hi, hi);
      double* out = jac + i * n * n;
      for (int j = 0; j < 8; ++j) {
        _mm512_stream_pd(out + j * n, _mm512_maskz_mov_pd(static_cast<__mmask8>(1u << j), d0));
        _mm512_stream_pd(out + j * n + 8, zero);
        in_address_order();
      }
      for (int j = 0; j < 8; ++j) {
        _mm512_stream_pd(out + (8 + j) * n, zero);
        _mm512_stream_pd(out + (8 + j) * n + 8,
                         _mm512_maskz_mov_pd(static_cast<__mmask8>(1u << j), d1));
        in_address_order();
      }
    }
    stream_fence();
    return;
  }
#elif defined(__AVX__)
  if (aligned64(jac)) {
    const __m256d zero = _mm256_setzero_pd();
    const __m256d lane[4] = {_mm256_castsi256_pd(_mm256_set_epi64x(0, 0, 0, -1)),
                             _mm256_castsi256_pd(_mm256_set_epi64x(0, 0, -1, 0)),
                             _mm256_castsi256_pd(_mm256_set_epi64x(0, -1, 0, 0)),
                             _mm256_castsi256_pd(_mm256_set_epi64x(-1, 0, 0, 0))};
    for (std::int64_t i = 0; i < b; ++i) {
      __m256d d[4];
      for (int q = 0; q < 4; ++q) {
        const __m256d v = _mm256_loadu_pd(x + i * n + 4 * q);
        d[q] = _mm256_add_pd(v, v);
      }
      double* out = jac + i * n * n;
      for (int j = 0; j < n; ++j) {
        for (int q = 0; q < 4; ++q) {
          _mm256_stream_pd(out + j * n + 4 * q,
                           q == j / 4 ? _mm256_and_pd(d[q], lane[j % 4]) : zero);
        }
        in_address_order();
      }
    }
    stream_fence();
    return;
  }
#endif
  square_plain(x, b, jac);
}

template <class T>
void mlp_jacobian(const MlpWeights<T>& weights, const T* x, std::int64_t b, T* jac) {
  if (aligned64(jac)) {
    mlp_kernel<T, true>(weights, x, b, jac);
    stream_fence();
  } else {
    mlp_kernel<T, false>(weights, x, b, jac);
  }
}
template void mlp_jacobian<float>(const MlpWeights<float>&, const float*, std::int64_t, float*);
template void mlp_jacobian<double>(const MlpWeights<double>&, const double*, std::int64_t,
                                   double*);

void kinetics_jacobian(const double* x, std::int64_t b, double* jac) {
  if (aligned64(jac)) {
    kinetics_kernel<true>(x, b, jac);
    stream_fence();
  } else {
    kinetics_kernel<false>(x, b, jac);
  }
}

}  // namespace bjbench
