// Fast hand-written Jacobians of W8-W11 (neohookean, layernorm-gelu, lj8, rk4),
// built like analytic.cpp with -O3 -march=native. W8, W10 and W11 take blocks of
// 8 examples, one per lane, and transpose to batch-first on the way out; W9's
// rows are contiguous and 64 wide, so it runs SIMD along the row instead.
// Outputs are streamed (whole cache lines, non-temporal) when 64-byte aligned.
#include "analytic.hpp"
#include "simd.hpp"

#include <cmath>
#include <type_traits>

namespace bjbench {
namespace {

using namespace simd;

// ---- W8 neohookean -------------------------------------------------------------------------

// G = Finv^T = cofactor(F) / det F; J[(3a + c) * 9 + 3k + l] = mu d_ak d_cl
// + (mu - lambda log det) G[k][c] G[a][l] + lambda G[a][c] G[k][l].
void neohookean_block(const f64x8* f, f64x8* J) {
  using namespace w8;
  f64x8 g[9];
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      const int r1 = (r + 1) % 3, r2 = (r + 2) % 3, c1 = (c + 1) % 3, c2 = (c + 2) % 3;
      g[3 * r + c] = f[3 * r1 + c1] * f[3 * r2 + c2] - f[3 * r1 + c2] * f[3 * r2 + c1];
    }
  }
  const f64x8 det = f[0] * g[0] + f[1] * g[1] + f[2] * g[2];
  const f64x8 inv_det = 1.0 / det;
  for (f64x8& v : g) v *= inv_det;
  const f64x8 alpha = mu - lambda * vlog(det);
  for (int a = 0; a < 3; ++a) {
    for (int c = 0; c < 3; ++c) {
      const f64x8 lg_ac = lambda * g[3 * a + c];
      f64x8* row = J + (3 * a + c) * n;
      for (int k = 0; k < 3; ++k) {
        const f64x8 al_kc = alpha * g[3 * k + c];
        for (int l = 0; l < 3; ++l) {
          f64x8 v = al_kc * g[3 * a + l] + lg_ac * g[3 * k + l];
          if (a == k && c == l) v += mu;
          row[3 * k + l] = v;
        }
      }
    }
  }
}

template <bool kStream>
void neohookean_kernel(const double* x, std::int64_t b, double* jac) {
  using namespace w8;
  constexpr int mn = m * n;  // 81: rows of an example do not start on a line, so staged
  alignas(64) f64x8 J[mn];
  alignas(64) double stage[8 * mn];
  for (std::int64_t i0 = 0; i0 < b; i0 += 8) {
    const int count = static_cast<int>(std::min<std::int64_t>(8, b - i0));
    f64x8 f[n];
    load_block(x + i0 * n, n, count, f);
    neohookean_block(f, J);
    store_block<kStream>(J, mn, count, stage, jac + i0 * mn);
  }
}

// ---- W9 layernorm-gelu (float32) -----------------------------------------------------------

template <bool kStream>
void layernorm_gelu_kernel(const LayerNormParams<float>& p, const float* x, std::int64_t b,
                           float* jac) {
  using namespace w9;
  using V = f32x16;
  constexpr int NV = n / 16;  // 4 vectors per row
  constexpr float inv_n = 1.0f / n, c = 0.7978845608f, k3 = 0.044715f;
  V gamma[NV], beta[NV];
  for (int v = 0; v < NV; ++v) {
    gamma[v] = load<V>(p.gamma.data() + v * 16);
    beta[v] = load<V>(p.beta.data() + v * 16);
  }
  alignas(64) float coef[m];
  for (std::int64_t i = 0; i < b; ++i) {
    V xv[NV], sum{};
    for (int v = 0; v < NV; ++v) {
      xv[v] = load<V>(x + i * n + v * 16);
      sum += xv[v];
    }
    float mean = 0;
    for (int e = 0; e < 16; ++e) mean += sum[e];
    mean *= inv_n;
    V sq{};
    for (int v = 0; v < NV; ++v) {
      xv[v] -= mean;
      sq += xv[v] * xv[v];
    }
    float var = 0;
    for (int e = 0; e < 16; ++e) var += sq[e];
    const float inv_sigma = 1.0f / std::sqrt(var * inv_n + static_cast<float>(epsilon));
    // xh; gelu'(z) = (1 + t) / 2 + z (1 - t^2) c (1 + 3 k z^2) / 2, t = tanh(c (z + k z^3));
    // coef_r = gelu'(z_r) gamma_r / sigma, and row r is coef_r (e_r - 1/n - xh_r xh / n).
    V xh[NV];
    for (int v = 0; v < NV; ++v) {
      xh[v] = xv[v] * inv_sigma;
      const V z = gamma[v] * xh[v] + beta[v];
      const V z2 = z * z;
      const V t = vtanh(c * z * (1.0f + k3 * z2));
      const V dgelu = 0.5f * (1.0f + t) + 0.5f * c * z * (1.0f - t * t) * (1.0f + 3.0f * k3 * z2);
      store(coef + v * 16, dgelu * gamma[v] * inv_sigma);
    }
    float* out = jac + i * m * n;
    for (int r = 0; r < m; ++r) {
      const float cr = coef[r], scale = -cr * inv_n, xh_r = xh[r / 16][r % 16];
      V row[NV];
      for (int v = 0; v < NV; ++v) row[v] = scale * (1.0f + xh_r * xh[v]);
      row[r / 16][r % 16] += cr;
      for (int v = 0; v < NV; ++v) {
        if constexpr (kStream) {
          stream(out + r * n + v * 16, row[v]);
        } else {
          store(out + r * n + v * 16, row[v]);
        }
      }
    }
  }
}

// ---- W10 lj8 -------------------------------------------------------------------------------

// The pairs k < l in order, and each ordered pair's index.
struct Pairs {
  int count = 0;
  int first[28], second[28];
  int index[8][8];
};
constexpr Pairs make_pairs() {
  Pairs p{};
  for (int k = 0; k < w10::atoms; ++k) {
    for (int l = k + 1; l < w10::atoms; ++l) {
      p.first[p.count] = k;
      p.second[p.count] = l;
      p.index[k][l] = p.index[l][k] = p.count;
      ++p.count;
    }
  }
  return p;
}
constexpr Pairs kPairs = make_pairs();

// H = g(r) I + (g'(r) / r) d d^T of each pair, d = p_k - p_l, as the 6 entries
// (xx, xy, xz, yy, yz, zz) of a symmetric 3x3: dF_k/dp_l = -H, dF_k/dp_k = sum_l H.
void lj_pairs(const f64x8* p, f64x8 (*h)[6]) {
  for (int q = 0; q < kPairs.count; ++q) {
    const int k = kPairs.first[q], l = kPairs.second[q];
    f64x8 d[3];
    for (int e = 0; e < 3; ++e) d[e] = p[3 * k + e] - p[3 * l + e];
    const f64x8 inv_r2 = 1.0 / (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    const f64x8 s6 = inv_r2 * inv_r2 * inv_r2;
    const f64x8 s8 = s6 * inv_r2;
    const f64x8 g = 24.0 * s8 * (2.0 * s6 - 1.0);                  // 24 (2 r^-14 - r^-8)
    const f64x8 dg_r = 24.0 * s8 * inv_r2 * (8.0 - 28.0 * s6);     // g'(r) / r
    h[q][0] = g + dg_r * d[0] * d[0];
    h[q][1] = dg_r * d[0] * d[1];
    h[q][2] = dg_r * d[0] * d[2];
    h[q][3] = g + dg_r * d[1] * d[1];
    h[q][4] = dg_r * d[1] * d[2];
    h[q][5] = g + dg_r * d[2] * d[2];
  }
}

template <bool kStream>
void lj_kernel(const double* x, std::int64_t b, double* jac) {
  using namespace w10;
  constexpr int sym[3][3] = {{0, 1, 2}, {1, 3, 4}, {2, 4, 5}};
  alignas(64) f64x8 h[28][6];
  alignas(64) f64x8 strip[3 * n];  // the 3 rows of one atom, 24 columns each
  for (std::int64_t i0 = 0; i0 < b; i0 += 8) {
    const int count = static_cast<int>(std::min<std::int64_t>(8, b - i0));
    f64x8 p[n];
    load_block(x + i0 * n, n, count, p);
    lj_pairs(p, h);
    for (int k = 0; k < atoms; ++k) {
      f64x8 diag[6] = {};
      for (int l = 0; l < atoms; ++l) {
        if (l == k) continue;
        const f64x8* hkl = h[kPairs.index[k][l]];
        for (int s = 0; s < 6; ++s) diag[s] += hkl[s];
        for (int u = 0; u < 3; ++u) {
          for (int v = 0; v < 3; ++v) strip[u * n + 3 * l + v] = -hkl[sym[u][v]];
        }
      }
      for (int u = 0; u < 3; ++u) {
        for (int v = 0; v < 3; ++v) strip[u * n + 3 * k + v] = diag[sym[u][v]];
      }
      // Rows 3k..3k+2 of example e: 72 contiguous elements at e * 576 + 72 k.
      lanes_to_rows<kStream>(strip, 3 * n, m * n, count, jac + i0 * m * n + 3 * k * n);
    }
  }
}

// ---- W11 rk4 -------------------------------------------------------------------------------

// One stage's f = [v, a] at the state s = (q, v), and T(q)'s diagonals:
// phi'(d_k) = 1 + 0.3 d_k^2 for k = 0..8 give T[k][k-1] = phi'_k,
// T[k][k] = -phi'_k - phi'_{k+1}, T[k][k+1] = phi'_{k+1}.
struct Tridiagonal {
  f64x8 off[w11::dof + 1];  // off[k] = phi'_k
  f64x8 mid[w11::dof];
};
void rk4_rhs(const f64x8* s, f64x8* f, Tridiagonal& t) {
  using namespace w11;
  f64x8 d[dof + 1], phi[dof + 1];
  for (int k = 0; k <= dof; ++k) {
    d[k] = (k < dof ? s[k] : f64x8{}) - (k > 0 ? s[k - 1] : f64x8{});
    phi[k] = d[k] + 0.1 * d[k] * d[k] * d[k];
    t.off[k] = 1.0 + 0.3 * d[k] * d[k];
  }
  for (int k = 0; k < dof; ++k) {
    f[k] = s[dof + k];
    f[dof + k] = phi[k + 1] - phi[k] - 0.05 * s[dof + k];
    t.mid[k] = -(t.off[k] + t.off[k + 1]);
  }
}

// Column j of J = I + dt/6 (K1 + 2 K2 + 2 K3 + K4), K_s = A(x_s) (I + c_s K_{s-1}):
// the tangent u = e_j + c_s t_{s-1} goes through t_s = A(x_s) u, in registers.
// A u = [u_v, T u_q - 0.05 u_v]. The four stages' T are computed once per block.
// (A version with 16 x 16 matrices of lanes in memory was store-bound: 4x slower.)
template <bool kStream>
void rk4_kernel(const double* x, std::int64_t b, double* jac) {
  using namespace w11;
  constexpr int nn = n * n;
  constexpr double c[4] = {0, dt / 2, dt / 2, dt}, w[4] = {dt / 6, dt / 3, dt / 3, dt / 6};
  alignas(64) f64x8 J[nn];
  for (std::int64_t i0 = 0; i0 < b; i0 += 8) {
    const int count = static_cast<int>(std::min<std::int64_t>(8, b - i0));
    f64x8 x0[n], s[n], f[n];
    Tridiagonal tri[4];
    load_block(x + i0 * n, n, count, x0);
    for (int j = 0; j < n; ++j) s[j] = x0[j];
    for (int st = 0; st < 4; ++st) {
      rk4_rhs(s, f, tri[st]);
      if (st < 3) {
        for (int j = 0; j < n; ++j) s[j] = x0[j] + c[st + 1] * f[j];
      }
    }
    for (int j = 0; j < n; ++j) {
      double unit[n] = {};
      unit[j] = 1.0;
      f64x8 u[n], acc[n];
      for (int r = 0; r < n; ++r) {
        u[r] = splat<f64x8>(unit[r]);
        acc[r] = u[r];
      }
      for (int st = 0; st < 4; ++st) {
        const Tridiagonal& t = tri[st];
        f64x8 a[n];
        for (int k = 0; k < dof; ++k) {
          a[k] = u[dof + k];
          f64x8 v = t.mid[k] * u[k] - 0.05 * u[dof + k];
          if (k > 0) v += t.off[k] * u[k - 1];
          if (k + 1 < dof) v += t.off[k + 1] * u[k + 1];
          a[dof + k] = v;
        }
        for (int r = 0; r < n; ++r) {
          acc[r] += w[st] * a[r];
          u[r] = c[(st + 1) % 4] * a[r] + unit[r];
        }
      }
      for (int r = 0; r < n; ++r) J[r * n + j] = acc[r];
    }
    lanes_to_rows<kStream>(J, nn, nn, count, jac + i0 * nn);
  }
}

// Streams when the output is 64-byte aligned, as analytic.cpp's entry points do.
template <class T, class Kernel>
void dispatch(T* jac, Kernel&& kernel) {
  if (aligned64(jac)) {
    kernel(std::true_type{});
    stream_fence();
  } else {
    kernel(std::false_type{});
  }
}

}  // namespace

// ---- entry points --------------------------------------------------------------------------

void neohookean_jacobian(const double* x, std::int64_t b, double* jac) {
  dispatch(jac, [&](auto stream) { neohookean_kernel<decltype(stream)::value>(x, b, jac); });
}

void layernorm_gelu_jacobian(const LayerNormParams<float>& params, const float* x,
                             std::int64_t b, float* jac) {
  dispatch(jac, [&](auto stream) { layernorm_gelu_kernel<decltype(stream)::value>(params, x, b, jac); });
}

void lj_jacobian(const double* x, std::int64_t b, double* jac) {
  dispatch(jac, [&](auto stream) { lj_kernel<decltype(stream)::value>(x, b, jac); });
}

void rk4_jacobian(const double* x, std::int64_t b, double* jac) {
  dispatch(jac, [&](auto stream) { rk4_kernel<decltype(stream)::value>(x, b, jac); });
}

}  // namespace bjbench
