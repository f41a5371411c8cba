// W1, W3, W8, W9, W10 and W11 as a Ceres user writes them: one templated
// functor per workload, straight from shared/WORKLOADS.md (loops over
// species, reactions, atoms; no tensors), run by bj::scalar_function.
//
// Built with -O3 -march=native (BATCHJAC_BENCH_NATIVE): user code is compiled
// with the user's flags, and bj::scalar_function's compiled path (bj::Dual in
// xsimd batches) is instantiated here, so its lanes are this machine's widest.
// The functors live in an anonymous namespace, so their ScalarFunction
// instantiations are this file's own.
#include "scalar_workloads.hpp"

#include <batchjac/scalar_function.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <type_traits>
#include <utility>

namespace bjbench {
namespace {

// ---- the functors --------------------------------------------------------------------------

// W1: y_j = x_j^2.
struct Square {
  template <class T>
  void operator()(const T* x, T* y) const {
    for (int j = 0; j < w1::n; ++j) y[j] = x[j] * x[j];
  }
};

// W3: x = [T, c_0 .. c_15], y = [dT, wdot_0 .. wdot_15]; reaction r: A + B -> C + D,
// kf = A_r T^beta_r exp(-Ea_r / T), kr = kf / Keq_r, q = kf c_A c_B - kr c_C c_D.
struct Kinetics {
  const KineticsMechanism* mechanism;  // kinetics_mechanism(): the tensor version's

  template <class T>
  void operator()(const T* x, T* y) const {
    using std::exp;
    using std::pow;
    using namespace w3;
    const KineticsMechanism& k = *mechanism;
    const T& temp = x[0];
    const T* c = x + 1;
    T wdot[ns];
    for (T& w : wdot) w = T(0.0);
    for (int r = 0; r < nr; ++r) {
      const T kf = k.prefactor[r] * pow(temp, k.temp_exponent[r]) * exp(-k.activation[r] / temp);
      const T kr = kf * k.reverse_ratio[r];
      const T q = kf * c[k.reactant_a[r]] * c[k.reactant_b[r]] - kr * c[k.product_c[r]] * c[k.product_d[r]];
      wdot[k.reactant_a[r]] -= q;
      wdot[k.reactant_b[r]] -= q;
      wdot[k.product_c[r]] += q;
      wdot[k.product_d[r]] += q;
    }
    T dt(0.0);
    for (int s = 0; s < ns; ++s) dt -= k.enthalpy[s] * wdot[s];
    y[0] = dt;
    for (int s = 0; s < ns; ++s) y[1 + s] = wdot[s];
  }
};

// W8: P = mu (F - F^-T) + lambda log(det F) F^-T, F[a][c] = x[3a + c]. F^-T is
// the cofactor matrix over det F.
struct NeoHookean {
  template <class T>
  void operator()(const T* x, T* y) const {
    using std::log;
    using namespace w8;
    auto f = [x](int a, int c) -> const T& { return x[3 * a + c]; };
    T cof[9];  // cofactor[a][c], signed (cyclic indices)
    for (int a = 0; a < 3; ++a) {
      for (int c = 0; c < 3; ++c) {
        const int a1 = (a + 1) % 3, a2 = (a + 2) % 3, c1 = (c + 1) % 3, c2 = (c + 2) % 3;
        cof[3 * a + c] = f(a1, c1) * f(a2, c2) - f(a1, c2) * f(a2, c1);
      }
    }
    const T det = f(0, 0) * cof[0] + f(0, 1) * cof[1] + f(0, 2) * cof[2];
    const T inv_det = 1.0 / det;
    const T log_j = log(det);
    for (int q = 0; q < 9; ++q) {
      const T finv_t = cof[q] * inv_det;
      y[q] = mu * (x[q] - finv_t) + lambda * log_j * finv_t;
    }
  }
};

// W9 (float32): layer norm over the 64 features, scale and shift, tanh GELU.
struct LayerNormGelu {
  std::array<float, w9::n> gamma, beta;  // layernorm_params<float>(): the tensor version's

  template <class T>
  void operator()(const T* x, T* y) const {
    using std::sqrt;
    using std::tanh;
    using namespace w9;
    T mean(0.0);
    for (int j = 0; j < n; ++j) mean += x[j];
    mean /= double(n);
    T var(0.0);
    for (int j = 0; j < n; ++j) {
      const T d = x[j] - mean;
      var += d * d;
    }
    var /= double(n);
    const T inv_sigma = 1.0 / sqrt(var + epsilon);
    for (int j = 0; j < n; ++j) {
      const T z = gamma[j] * ((x[j] - mean) * inv_sigma) + beta[j];
      y[j] = 0.5 * z * (1.0 + tanh(0.7978845608 * (z + 0.044715 * z * z * z)));
    }
  }
};

// W10: F_k = sum_{l != k} g(r_kl) (p_k - p_l), g(r) = 24 (2 r^-14 - r^-8). Each
// pair once: it adds g d to F_k and takes it from F_l.
struct LennardJones {
  template <class T>
  void operator()(const T* x, T* y) const {
    using namespace w10;
    for (int j = 0; j < n; ++j) y[j] = T(0.0);
    for (int k = 0; k < atoms; ++k) {
      for (int l = k + 1; l < atoms; ++l) {
        T d[3];
        for (int e = 0; e < 3; ++e) d[e] = x[3 * k + e] - x[3 * l + e];
        const T inv_r2 = 1.0 / (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        const T inv_r6 = inv_r2 * inv_r2 * inv_r2;
        const T g = 24.0 * inv_r6 * inv_r2 * (2.0 * inv_r6 - 1.0);  // 24 (2 r^-14 - r^-8)
        for (int e = 0; e < 3; ++e) {
          const T force = g * d[e];
          y[3 * k + e] += force;
          y[3 * l + e] -= force;
        }
      }
    }
  }
};

// W11: f(q, v) = [v, a], a_k = -(d_k - d_{k+1}) - 0.1 (d_k^3 - d_{k+1}^3) - 0.05 v_k,
// d_k = q_k - q_{k-1} with the ends q_{-1} = q_8 = 0.
template <class T>
void chain_rhs(const T* s, T* f) {
  using namespace w11;
  const T* q = s;
  const T* v = s + dof;
  T d[dof + 1];
  d[0] = q[0];
  for (int k = 1; k < dof; ++k) d[k] = q[k] - q[k - 1];
  d[dof] = -q[dof - 1];
  for (int k = 0; k < dof; ++k) {
    f[k] = v[k];
    f[dof + k] = -(d[k] - d[k + 1]) - 0.1 * (d[k] * d[k] * d[k] - d[k + 1] * d[k + 1] * d[k + 1]) - 0.05 * v[k];
  }
}

// One RK4 step of the chain.
struct Rk4 {
  template <class T>
  void operator()(const T* x, T* y) const {
    using namespace w11;
    T k1[n], k2[n], k3[n], k4[n], s[n];
    chain_rhs(x, k1);
    for (int j = 0; j < n; ++j) s[j] = x[j] + (dt / 2) * k1[j];
    chain_rhs(s, k2);
    for (int j = 0; j < n; ++j) s[j] = x[j] + (dt / 2) * k2[j];
    chain_rhs(s, k3);
    for (int j = 0; j < n; ++j) s[j] = x[j] + dt * k3[j];
    chain_rhs(s, k4);
    for (int j = 0; j < n; ++j) y[j] = x[j] + (dt / 6) * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
  }
};

// ---- behind std::function --------------------------------------------------------------------

bj::ScalarPath to_library(ScalarPath path) {
  switch (path) {
    case ScalarPath::compiled: return bj::ScalarPath::compiled;
    case ScalarPath::traced: return bj::ScalarPath::traced;
    case ScalarPath::automatic: break;
  }
  return bj::ScalarPath::automatic;
}

template <int N, int M, class S, class F>
ScalarVersion<S> version(F functor, ScalarPath path) {
  const auto f = bj::scalar_function<N, M>(std::move(functor), to_library(path));  // copies share state
  ScalarVersion<S> v;
  v.batch_jacobian_into = [f](std::span<const S> x, std::span<S> jacobian, const bj::JacobianOptions& options) {
    f.batch_jacobian_into(x, jacobian, options);
  };
  v.path = [f](const bj::JacobianOptions& options) {
    const bj::DType dtype = std::is_same_v<S, float> ? bj::float32 : bj::float64;
    // The path and the cost model's two estimates (operations per example).
    const bj::detail::TracedCost t = bj::detail::traced_cost(f.traced(dtype), options);
    char estimates[128];
    std::snprintf(estimates, sizeof estimates, " (est. compiled %.0f, traced %.0f; %lld ops, %.0f active)",
                  decltype(f)::compiled_cost(dtype, t), decltype(f)::traced_cost(t), static_cast<long long>(t.ops),
                  t.active);
    return std::string(f.path(dtype, options) == bj::ScalarPath::compiled ? "compiled" : "traced") + estimates;
  };
  return v;
}

}  // namespace

const char* scalar_path_name(ScalarPath path) {
  switch (path) {
    case ScalarPath::compiled: return "compiled";
    case ScalarPath::traced: return "traced";
    case ScalarPath::automatic: break;
  }
  return "automatic";
}

ScalarVersion<double> scalar_square(ScalarPath path) {
  return version<w1::n, w1::m, double>(Square{}, path);
}

ScalarVersion<double> scalar_kinetics(ScalarPath path) {
  return version<w3::n, w3::m, double>(Kinetics{&kinetics_mechanism()}, path);
}

ScalarVersion<double> scalar_neohookean(ScalarPath path) {
  return version<w8::n, w8::m, double>(NeoHookean{}, path);
}

ScalarVersion<float> scalar_layernorm_gelu(ScalarPath path) {
  const LayerNormParams<float> params = layernorm_params<float>();
  LayerNormGelu f{};
  for (int j = 0; j < w9::n; ++j) {
    f.gamma[static_cast<std::size_t>(j)] = params.gamma[static_cast<std::size_t>(j)];
    f.beta[static_cast<std::size_t>(j)] = params.beta[static_cast<std::size_t>(j)];
  }
  return version<w9::n, w9::m, float>(f, path);
}

ScalarVersion<double> scalar_lj(ScalarPath path) {
  return version<w10::n, w10::m, double>(LennardJones{}, path);
}

ScalarVersion<double> scalar_rk4(ScalarPath path) {
  return version<w11::n, w11::m, double>(Rk4{}, path);
}

}  // namespace bjbench
