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
