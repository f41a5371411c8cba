// The workloads' inputs and constants, and plain per-example scalar references
// that exist only to validate the fast kernels of analytic.cpp.
#include "analytic.hpp"

#include <cmath>
#include <limits>

namespace bjbench {

// ---- inputs and constants ---------------------------------------------------------------

template <class T>
AlignedVector<T> default_inputs(std::int64_t b, int n) {
  AlignedVector<T> x(static_cast<std::size_t>(b * n));
  for (std::int64_t i = 0; i < b; ++i) {
    for (int j = 0; j < n; ++j) {
      x[i * n + j] = static_cast<T>(0.5 * std::sin(0.001 * i + 0.7 * j + 0.3));
    }
  }
  return x;
}
template AlignedVector<float> default_inputs<float>(std::int64_t, int);
template AlignedVector<double> default_inputs<double>(std::int64_t, int);

AlignedVector<double> kinetics_inputs(std::int64_t b) {
  AlignedVector<double> x(static_cast<std::size_t>(b * w3::n));
  for (std::int64_t i = 0; i < b; ++i) {
    double* row = &x[i * w3::n];
    row[0] = 1000.0 + 250.0 * (1.0 + std::sin(0.001 * i));
    for (int s = 0; s < w3::ns; ++s) row[1 + s] = 0.1 + 0.05 * std::sin(0.001 * i + 0.7 * s);
  }
  return x;
}

AlignedVector<double> neohookean_inputs(std::int64_t b) {
  AlignedVector<double> x(static_cast<std::size_t>(b * w8::n));
  for (std::int64_t i = 0; i < b; ++i) {
    for (int j = 0; j < w8::n; ++j) {
      const double delta = j % 4 == 0 ? 1.0 : 0.0;  // j = 0, 4, 8
      x[i * w8::n + j] = delta + 0.1 * std::sin(0.001 * i + 0.7 * j + 0.3);
    }
  }
  return x;
}

template <class T>
AlignedVector<T> layernorm_inputs(std::int64_t b) {
  AlignedVector<T> x(static_cast<std::size_t>(b * w9::n));
  for (std::int64_t i = 0; i < b; ++i) {
    for (int j = 0; j < w9::n; ++j) {
      x[i * w9::n + j] = static_cast<T>(2.0 * std::sin(0.001 * i + 0.7 * j + 0.3));
    }
  }
  return x;
}
template AlignedVector<float> layernorm_inputs<float>(std::int64_t);
template AlignedVector<double> layernorm_inputs<double>(std::int64_t);

AlignedVector<double> lj_inputs(std::int64_t b) {
  AlignedVector<double> x(static_cast<std::size_t>(b * w10::n));
  for (std::int64_t i = 0; i < b; ++i) {
    for (int k = 0; k < w10::atoms; ++k) {
      const int lattice[3] = {k % 2, (k / 2) % 2, k / 4};
      for (int d = 0; d < 3; ++d) {
        const int j = 3 * k + d;
        x[i * w10::n + j] = 1.12 * lattice[d] + 0.05 * std::sin(0.001 * i + 0.7 * j + 0.3);
      }
    }
  }
  return x;
}

template <class T>
LayerNormParams<T> layernorm_params() {
  LayerNormParams<T> p{std::vector<T>(w9::n), std::vector<T>(w9::n)};
  for (int j = 0; j < w9::n; ++j) {
    p.gamma[j] = static_cast<T>(1.0 + 0.1 * std::cos(0.3 * j));
    p.beta[j] = static_cast<T>(0.05 * std::sin(0.2 * j));
  }
  return p;
}
template LayerNormParams<float> layernorm_params<float>();
template LayerNormParams<double> layernorm_params<double>();

template <class T>
MlpWeights<T> mlp_weights() {
  using namespace w2;
  MlpWeights<T> w{std::vector<T>(h * n), std::vector<T>(h), std::vector<T>(m * h),
                  std::vector<T>(m)};
  for (int k = 0; k < h; ++k) {
    for (int j = 0; j < n; ++j) {
      w.w1[k * n + j] = static_cast<T>(std::cos(0.13 * k + 0.29 * j + 0.1) / std::sqrt(double{n}));
    }
    w.c1[k] = static_cast<T>(0.1 * std::sin(0.5 * k));
  }
  for (int r = 0; r < m; ++r) {
    for (int k = 0; k < h; ++k) {
      w.w2[r * h + k] = static_cast<T>(std::cos(0.17 * r + 0.23 * k + 0.2) / std::sqrt(double{h}));
    }
    w.c2[r] = static_cast<T>(0.1 * std::cos(0.5 * r));
  }
  return w;
}
template MlpWeights<float> mlp_weights<float>();
template MlpWeights<double> mlp_weights<double>();

const KineticsMechanism& kinetics_mechanism() {
  static const KineticsMechanism mech = [] {
    using namespace w3;
    KineticsMechanism k{};
    for (int r = 0; r < nr; ++r) {
      k.reactant_a[r] = r % ns;
      k.reactant_b[r] = (3 * r + 1) % ns;
      k.product_c[r] = (5 * r + 2) % ns;
      k.product_d[r] = (7 * r + 3) % ns;
      k.prefactor[r] = 1 + r % 5;
      k.temp_exponent[r] = 0.1 * ((r % 3) - 1);
      k.activation[r] = 100.0 * (1 + r % 7);
      k.reverse_ratio[r] = std::exp(-0.01 * ((r % 11) - 5));
    }
    for (int s = 0; s < ns; ++s) k.enthalpy[s] = 0.01 * (s - 8);
    return k;
  }();
  return mech;
}

// ---- W1 -------------------------------------------------------------------------------------

void square_ref(const double* x, std::int64_t b, int n, double* y) {
  for (std::int64_t i = 0; i < b * n; ++i) y[i] = x[i] * x[i];
}

void square_jacobian_ref(const double* x, std::int64_t b, int n, double* jac) {
  for (std::int64_t i = 0; i < b; ++i) {
    for (int r = 0; r < n; ++r) {
      for (int j = 0; j < n; ++j) jac[(i * n + r) * n + j] = r == j ? 2.0 * x[i * n + j] : 0.0;
    }
  }
}

// ---- W2 -------------------------------------------------------------------------------------

namespace {
template <class T>
void mlp_hidden(const MlpWeights<T>& w, const T* x, T* a) {
  using namespace w2;
  for (int k = 0; k < h; ++k) {
    T z = w.c1[k];
    for (int j = 0; j < n; ++j) z += w.w1[k * n + j] * x[j];
    a[k] = std::tanh(z);
  }
}
}  // namespace

template <class T>
void mlp_ref(const MlpWeights<T>& w, const T* x, std::int64_t b, T* y) {
  using namespace w2;
  for (std::int64_t i = 0; i < b; ++i) {
    T a[h];
    mlp_hidden(w, x + i * n, a);
    for (int r = 0; r < m; ++r) {
      T sum = w.c2[r];
      for (int k = 0; k < h; ++k) sum += w.w2[r * h + k] * a[k];
      y[i * m + r] = sum;
    }
  }
}
template void mlp_ref<float>(const MlpWeights<float>&, const float*, std::int64_t, float*);
template void mlp_ref<double>(const MlpWeights<double>&, const double*, std::int64_t, double*);

template <class T>
void mlp_jacobian_ref(const MlpWeights<T>& w, const T* x, std::int64_t b, T* jac) {
  using namespace w2;
  for (std::int64_t i = 0; i < b; ++i) {
    T a[h];
    mlp_hidden(w, x + i * n, a);
    for (int r = 0; r < m; ++r) {
      for (int j = 0; j < n; ++j) {
        T sum = 0;
        for (int k = 0; k < h; ++k) sum += w.w2[r * h + k] * (1 - a[k] * a[k]) * w.w1[k * n + j];
        jac[(i * m + r) * n + j] = sum;
      }
    }
  }
}
template void mlp_jacobian_ref<float>(const MlpWeights<float>&, const float*, std::int64_t,
                                      float*);
template void mlp_jacobian_ref<double>(const MlpWeights<double>&, const double*, std::int64_t,
                                       double*);

// ---- W3 -------------------------------------------------------------------------------------

void kinetics_ref(const double* x, std::int64_t b, double* y) {
  using namespace w3;
  const KineticsMechanism& k = kinetics_mechanism();
  for (std::int64_t i = 0; i < b; ++i) {
    const double t = x[i * n];
    const double* c = x + i * n + 1;
    double wdot[ns] = {};
    for (int r = 0; r < nr; ++r) {
      const double kf =
          k.prefactor[r] * std::pow(t, k.temp_exponent[r]) * std::exp(-k.activation[r] / t);
      const double kr = kf * k.reverse_ratio[r];
      const double q = kf * c[k.reactant_a[r]] * c[k.reactant_b[r]] -
                       kr * c[k.product_c[r]] * c[k.product_d[r]];
      wdot[k.reactant_a[r]] -= q;
      wdot[k.reactant_b[r]] -= q;
      wdot[k.product_c[r]] += q;
      wdot[k.product_d[r]] += q;
    }
    double dt = 0;
    for (int s = 0; s < ns; ++s) dt -= k.enthalpy[s] * wdot[s];
    y[i * m] = dt;
    for (int s = 0; s < ns; ++s) y[i * m + 1 + s] = wdot[s];
  }
}

void kinetics_jacobian_ref(const double* x, std::int64_t b, double* jac) {
  using namespace w3;
  const KineticsMechanism& k = kinetics_mechanism();
  for (std::int64_t i = 0; i < b; ++i) {
    const double t = x[i * n];
    const double* c = x + i * n + 1;
    double* J = jac + i * m * n;  // J[row][col]; row 0 is dT, rows 1.. are wdot
    std::fill(J, J + m * n, 0.0);
    for (int r = 0; r < nr; ++r) {
      const int a = k.reactant_a[r], bb = k.reactant_b[r], cc = k.product_c[r],
                d = k.product_d[r];
      const double beta = k.temp_exponent[r], ea = k.activation[r];
      const double kf = k.prefactor[r] * std::pow(t, beta) * std::exp(-ea / t);
      const double kr = kf * k.reverse_ratio[r];
      // d kf / dT = kf (beta / T + Ea / T^2); kr is a constant multiple of kf.
      const double dkf_dt = kf * (beta / t + ea / (t * t));
      const double dkr_dt = dkf_dt * k.reverse_ratio[r];
      double dq[n] = {};  // dq_r / d[T, c]
      dq[0] = dkf_dt * c[a] * c[bb] - dkr_dt * c[cc] * c[d];
      dq[1 + a] += kf * c[bb];
      dq[1 + bb] += kf * c[a];
      dq[1 + cc] -= kr * c[d];
      dq[1 + d] -= kr * c[cc];
      for (int col = 0; col < n; ++col) {
        J[(1 + a) * n + col] -= dq[col];
        J[(1 + bb) * n + col] -= dq[col];
        J[(1 + cc) * n + col] += dq[col];
        J[(1 + d) * n + col] += dq[col];
      }
    }
    for (int s = 0; s < ns; ++s) {
      for (int col = 0; col < n; ++col) J[col] -= k.enthalpy[s] * J[(1 + s) * n + col];
    }
  }
}

// ---- W8 -------------------------------------------------------------------------------------

namespace {
// F^{-1} of a row-major 3x3 F as the adjugate over the determinant; returns det F.
double inverse3(const double* f, double* inv) {
  auto at = [f](int r, int c) { return f[3 * r + c]; };
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {  // inv[r][c] = cofactor(c, r)
      const int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
      inv[3 * r + c] = at(r1, c1) * at(r2, c2) - at(r1, c2) * at(r2, c1);
    }
  }
  const double det = at(0, 0) * inv[0] + at(0, 1) * inv[3] + at(0, 2) * inv[6];
  for (int q = 0; q < 9; ++q) inv[q] /= det;
  return det;
}
}  // namespace

void neohookean_ref(const double* x, std::int64_t b, double* y) {
  using namespace w8;
  for (std::int64_t i = 0; i < b; ++i) {
    const double* f = x + i * n;
    double inv[9];
    const double log_j = std::log(inverse3(f, inv));
    for (int a = 0; a < 3; ++a) {
      for (int c = 0; c < 3; ++c) {
        const double inv_t = inv[3 * c + a];  // Finv^T[a][c]
        y[i * m + 3 * a + c] = mu * (f[3 * a + c] - inv_t) + lambda * log_j * inv_t;
      }
    }
  }
}

void neohookean_jacobian_ref(const double* x, std::int64_t b, double* jac) {
  using namespace w8;
  for (std::int64_t i = 0; i < b; ++i) {
    double inv[9];
    const double log_j = std::log(inverse3(x + i * n, inv));
    auto finv = [&inv](int r, int c) { return inv[3 * r + c]; };
    for (int a = 0; a < 3; ++a) {
      for (int c = 0; c < 3; ++c) {
        for (int k = 0; k < 3; ++k) {
          for (int l = 0; l < 3; ++l) {
            jac[(i * m + 3 * a + c) * n + 3 * k + l] =
                (a == k && c == l ? mu : 0.0) +
                (mu - lambda * log_j) * finv(c, k) * finv(l, a) + lambda * finv(c, a) * finv(l, k);
          }
        }
      }
    }
  }
}

// ---- W9 -------------------------------------------------------------------------------------

namespace {
// xh, z and gelu'(z) of one example; returns 1 / sqrt(var + eps).
template <class T>
T layernorm_forward(const LayerNormParams<T>& p, const T* x, T* xh, T* z, T* y, T* dgelu) {
  using namespace w9;
  T mean = 0, var = 0;
  for (int j = 0; j < n; ++j) mean += x[j];
  mean /= n;
  for (int j = 0; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
  var /= n;
  const T inv_sigma = 1 / std::sqrt(var + static_cast<T>(epsilon));
  const T c = static_cast<T>(0.7978845608), k = static_cast<T>(0.044715);
  for (int j = 0; j < n; ++j) {
    xh[j] = (x[j] - mean) * inv_sigma;
    z[j] = p.gamma[j] * xh[j] + p.beta[j];
    const T t = std::tanh(c * (z[j] + k * z[j] * z[j] * z[j]));
    y[j] = T(0.5) * z[j] * (1 + t);
    dgelu[j] = T(0.5) * (1 + t) + T(0.5) * z[j] * (1 - t * t) * c * (1 + 3 * k * z[j] * z[j]);
  }
  return inv_sigma;
}
}  // namespace

template <class T>
void layernorm_gelu_ref(const LayerNormParams<T>& p, const T* x, std::int64_t b, T* y) {
  using namespace w9;
  for (std::int64_t i = 0; i < b; ++i) {
    T xh[n], z[n], dgelu[n];
    layernorm_forward(p, x + i * n, xh, z, y + i * m, dgelu);
  }
}
template void layernorm_gelu_ref<float>(const LayerNormParams<float>&, const float*, std::int64_t,
                                        float*);
template void layernorm_gelu_ref<double>(const LayerNormParams<double>&, const double*,
                                         std::int64_t, double*);

template <class T>
void layernorm_gelu_jacobian_ref(const LayerNormParams<T>& p, const T* x, std::int64_t b,
                                 T* jac) {
  using namespace w9;
  for (std::int64_t i = 0; i < b; ++i) {
    T xh[n], z[n], y[n], dgelu[n];
    const T inv_sigma = layernorm_forward(p, x + i * n, xh, z, y, dgelu);
    for (int r = 0; r < m; ++r) {
      for (int j = 0; j < n; ++j) {
        const T centered = (r == j ? T(1) : T(0)) - T(1) / n - xh[r] * xh[j] / n;
        jac[(i * m + r) * n + j] = dgelu[r] * p.gamma[r] * centered * inv_sigma;
      }
    }
  }
}
template void layernorm_gelu_jacobian_ref<float>(const LayerNormParams<float>&, const float*,
                                                 std::int64_t, float*);
template void layernorm_gelu_jacobian_ref<double>(const LayerNormParams<double>&, const double*,
                                                  std::int64_t, double*);

// ---- W10 ------------------------------------------------------------------------------------

namespace {
// d = p_k - p_l and r = |d|; g(r) = 24 (2 r^-14 - r^-8), the force over the distance.
double lj_pair(const double* p, int k, int l, double* d) {
  double r2 = 0;
  for (int e = 0; e < 3; ++e) {
    d[e] = p[3 * k + e] - p[3 * l + e];
    r2 += d[e] * d[e];
  }
  return std::sqrt(r2);
}
double lj_g(double r) { return 24 * (2 * std::pow(r, -14) - std::pow(r, -8)); }
}  // namespace

void lj_ref(const double* x, std::int64_t b, double* y) {
  using namespace w10;
  for (std::int64_t i = 0; i < b; ++i) {
    const double* p = x + i * n;
    for (int k = 0; k < atoms; ++k) {
      double force[3] = {};
      for (int l = 0; l < atoms; ++l) {
        if (l == k) continue;
        double d[3];
        const double g = lj_g(lj_pair(p, k, l, d));
        for (int e = 0; e < 3; ++e) force[e] += g * d[e];
      }
      for (int e = 0; e < 3; ++e) y[i * m + 3 * k + e] = force[e];
    }
  }
}

void lj_jacobian_ref(const double* x, std::int64_t b, double* jac) {
  using namespace w10;
  for (std::int64_t i = 0; i < b; ++i) {
    const double* p = x + i * n;
    double* J = jac + i * m * n;
    std::fill(J, J + m * n, 0.0);
    for (int k = 0; k < atoms; ++k) {
      for (int l = 0; l < atoms; ++l) {
        if (l == k) continue;
        double d[3];
        const double r = lj_pair(p, k, l, d);
        // d(g(r) d)/dp_k = g I + g'(r) d (d/r)^T; d/dp_l is its negative.
        const double g = lj_g(r);
        const double dg = 24 * (-28 * std::pow(r, -15) + 8 * std::pow(r, -9));
        for (int u = 0; u < 3; ++u) {
          for (int v = 0; v < 3; ++v) {
            const double h = (u == v ? g : 0.0) + dg / r * d[u] * d[v];
            J[(3 * k + u) * n + 3 * k + v] += h;
            J[(3 * k + u) * n + 3 * l + v] -= h;
          }
        }
      }
    }
  }
}

// ---- W11 ------------------------------------------------------------------------------------

namespace {
// f(s) = [v, a] of the oscillator chain, and its Jacobian A = df/ds (dense 16 x 16).
void rk4_rhs(const double* s, double* f, double* A) {
  using namespace w11;
  const double* q = s;
  const double* v = s + dof;
  double d[dof + 1];
  for (int k = 0; k <= dof; ++k) d[k] = (k < dof ? q[k] : 0.0) - (k > 0 ? q[k - 1] : 0.0);
  std::fill(A, A + n * n, 0.0);
  for (int k = 0; k < dof; ++k) {
    f[k] = v[k];
    f[dof + k] = -(d[k] - d[k + 1]) - 0.1 * (std::pow(d[k], 3) - std::pow(d[k + 1], 3)) - 0.05 * v[k];
    A[k * n + dof + k] = 1;
    // a_k = -phi(d_k) + phi(d_{k+1}), phi(d) = d + 0.1 d^3; d_k = q_k - q_{k-1}.
    const double dphi_k = 1 + 0.3 * d[k] * d[k], dphi_k1 = 1 + 0.3 * d[k + 1] * d[k + 1];
    double* row = A + (dof + k) * n;
    row[k] = -dphi_k - dphi_k1;
    if (k > 0) row[k - 1] = dphi_k;
    if (k + 1 < dof) row[k + 1] = dphi_k1;
    row[dof + k] = -0.05;
  }
}
}  // namespace

void rk4_ref(const double* x, std::int64_t b, double* y) {
  using namespace w11;
  for (std::int64_t i = 0; i < b; ++i) {
    const double* xi = x + i * n;
    double k[4][n], s[n], A[n * n];
    const double c[4] = {0, dt / 2, dt / 2, dt};
    for (int st = 0; st < 4; ++st) {
      for (int j = 0; j < n; ++j) s[j] = xi[j] + (st ? c[st] * k[st - 1][j] : 0.0);
      rk4_rhs(s, k[st], A);
    }
    for (int j = 0; j < n; ++j) {
      y[i * m + j] = xi[j] + dt / 6 * (k[0][j] + 2 * k[1][j] + 2 * k[2][j] + k[3][j]);
    }
  }
}

void rk4_jacobian_ref(const double* x, std::int64_t b, double* jac) {
  using namespace w11;
  for (std::int64_t i = 0; i < b; ++i) {
    const double* xi = x + i * n;
    double k[n], s[n], A[n * n];
    double K[4][n * n];  // K_s = A(x_s) (I + c_s K_{s-1})
    std::copy(xi, xi + n, s);
    const double c[4] = {0, dt / 2, dt / 2, dt};
    for (int st = 0; st < 4; ++st) {
      rk4_rhs(s, k, A);
      for (int r = 0; r < n; ++r) {
        for (int j = 0; j < n; ++j) {
          double sum = A[r * n + j];
          if (st > 0) {
            for (int t = 0; t < n; ++t) sum += A[r * n + t] * c[st] * K[st - 1][t * n + j];
          }
          K[st][r * n + j] = sum;
        }
      }
      if (st < 3) {
        for (int j = 0; j < n; ++j) s[j] = xi[j] + c[st + 1] * k[j];
      }
    }
    for (int r = 0; r < n; ++r) {
      for (int j = 0; j < n; ++j) {
        jac[(i * m + r) * n + j] =
            (r == j ? 1.0 : 0.0) +
            dt / 6 * (K[0][r * n + j] + 2 * K[1][r * n + j] + 2 * K[2][r * n + j] + K[3][r * n + j]);
      }
    }
  }
}

// ---- comparison -----------------------------------------------------------------------------

template <class T>
double max_rel_error(std::span<const T> got, std::span<const T> want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double want_i = want[i];
    const double err = std::abs(double{got[i]} - want_i) / (1.0 + std::abs(want_i));
    if (!(err <= worst)) worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
  }
  return worst;
}
template double max_rel_error<float>(std::span<const float>, std::span<const float>);
template double max_rel_error<double>(std::span<const double>, std::span<const double>);

}  // namespace bjbench
