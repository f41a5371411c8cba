// Fast hand-written Jacobians of the benchmark workloads: the ideal batchjac is
// measured against. Built with -O3 -march=native (see CMakeLists.txt). SIMD is
// written with GCC/Clang vector extensions, so the same source compiles to
// AVX-512, AVX2 or SSE; only the non-temporal stores need intrinsics (simd.hpp).
// W8-W11 are in analytic_physics.cpp.
#include "analytic.hpp"
#include "simd.hpp"

namespace bjbench {
namespace {

using namespace simd;

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

template <bool kStream>
void kinetics_kernel(const double* x, std::int64_t b, double* jac) {
  using namespace w3;
  constexpr int mn = m * n;  // 289 = 36 tiles of 8 rows + 1
  const KineticsMechanism& mech = kinetics_mechanism();
  alignas(64) f64x8 J[mn];
  alignas(64) double stage[8 * mn];  // the block batch-first: 8 * 289 doubles = 289 lines
  for (std::int64_t i0 = 0; i0 < b; i0 += 8) {
    const int count = static_cast<int>(std::min<std::int64_t>(8, b - i0));
    f64x8 in[n];
    load_block(x + i0 * n, n, count, in);
    kinetics_block(mech, in, J);
    store_block<kStream>(J, mn, count, stage, jac + i0 * mn);
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
