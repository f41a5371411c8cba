// W3's chemical source term (shared/WORKLOADS.md) written with batchjac's ops,
// and one backward-Euler step of dx/dt = f(x) solved by Newton's method with
// batched Jacobians and a batched solve. Used by implicit_kinetics.cpp and
// mpi_kinetics.cpp; copy it as the pattern for your own stiff source terms.
//
// A cell's state is x = [T, c_0 .. c_15]. Reaction r: A + B <-> C + D with
// A = r % 16, B = (3r + 1) % 16, C = (5r + 2) % 16, D = (7r + 3) % 16,
//   kf = (1 + r % 5) T^(0.1 ((r % 3) - 1)) exp(-100 (1 + r % 7) / T),
//   kr = kf exp(-0.01 ((r % 11) - 5)),  q = kf c_A c_B - kr c_C c_D,
//   wdot_s = sum_r nu_sr q_r,  dT/dt = -sum_s h_s wdot_s,  h_s = 0.01 (s - 8).
// Every reaction keeps the number of moles, so sum_s c_s is conserved, and so
// is T + sum_s h_s c_s: backward Euler keeps both linear invariants.
#pragma once

#include <batchjac/batchjac.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace kinetics {

namespace bj = batchjac;

inline constexpr std::int64_t ns = 16, nr = 48, n = ns + 1;

inline int reactant_a(int r) { return r % ns; }
inline int reactant_b(int r) { return (3 * r + 1) % ns; }
inline int product_c(int r) { return (5 * r + 2) % ns; }
inline int product_d(int r) { return (7 * r + 3) % ns; }
inline double enthalpy(int s) { return 0.01 * (s - 8); }

// W3's initial state of cell i.
inline void initial_state(std::int64_t i, double* x) {
  x[0] = 1000 + 250 * (1 + std::sin(0.001 * double(i)));
  for (int s = 0; s < ns; ++s) x[1 + s] = 0.1 + 0.05 * std::sin(0.001 * double(i) + 0.7 * s);
}

// f(x) for a batch of cells x [b, 17] -> [b, 17].
inline bj::Tensor source_term(const bj::Tensor& x) {
  std::vector<double> pre(nr), beta(nr), act(nr), ratio(nr), nu(nr * ns, 0.0), h(ns);
  std::vector<std::int64_t> a(nr), b(nr), c(nr), d(nr);
  for (int r = 0; r < nr; ++r) {
    pre[r] = 1 + r % 5;
    beta[r] = 0.1 * ((r % 3) - 1);
    act[r] = 100.0 * (1 + r % 7);
    ratio[r] = std::exp(-0.01 * ((r % 11) - 5));
    a[r] = reactant_a(r), b[r] = reactant_b(r), c[r] = product_c(r), d[r] = product_d(r);
    nu[r * ns + a[r]] -= 1, nu[r * ns + b[r]] -= 1, nu[r * ns + c[r]] += 1, nu[r * ns + d[r]] += 1;
  }
  for (int s = 0; s < ns; ++s) h[s] = enthalpy(s);
  auto row = [](const std::vector<double>& v) { return bj::constant(v, {1, static_cast<std::int64_t>(v.size())}); };
  const bj::Tensor t = bj::slice(x, {0, 0}, {-1, 1});    // [b, 1]
  const bj::Tensor conc = bj::slice(x, {0, 1}, {-1, ns});  // [b, 16]
  const bj::Tensor kf = row(pre) * bj::exp(row(beta) * bj::log(t) - row(act) / t);
  const bj::Tensor q = kf * bj::gather(conc, a, 1) * bj::gather(conc, b, 1) -
                       kf * row(ratio) * bj::gather(conc, c, 1) * bj::gather(conc, d, 1);
  const bj::Tensor wdot = bj::matmul(q, bj::constant(nu, {nr, ns}));  // [b, 16]
  const bj::Tensor dt = -bj::reduce_sum(wdot * row(h), {1}, /*keepdims=*/true);
  return bj::concat({dt, wdot}, 1);
}

struct NewtonReport {
  int iterations = 0;
  double residual = 0;  // max over cells and components of |G| / (1 + |x|) at the end
};

// One backward-Euler step, x_new = x + dt f(x_new), for every cell of x
// ([b, 17], updated in place): Newton on G(z) = z - x - dt f(z), each
// iteration one pass for f(z) and its 17 x 17 Jacobians, then the batched
// solve (I - dt J) delta = G. Stops when the scaled residual is below tol.
// max_threads: batchjac's JacobianOptions::max_threads (unset: the caller's arena).
inline NewtonReport backward_euler_step(std::span<double> x, double dt, double tol = 1e-12, int max_iterations = 20,
                                        std::optional<int> max_threads = std::nullopt) {
  const std::int64_t b = static_cast<std::int64_t>(x.size()) / n;
  std::vector<double> z(x.begin(), x.end()), f(x.size()), jac(x.size() * n);
  NewtonReport report;
  for (report.iterations = 0; report.iterations <= max_iterations; ++report.iterations) {
    bj::GradientTape tape;
    const bj::Tensor zt = bj::view(std::span<const double>(z), {b, n});
    tape.watch(zt);
    const bj::Tensor ft = source_term(zt);
    bj::JacobianOptions options;
    options.max_threads = max_threads;
    tape.value_and_batch_jacobian_into(ft, zt, f, jac, options);
    std::vector<double> g(x.size());
    report.residual = 0;
    for (std::size_t i = 0; i < g.size(); ++i) {
      g[i] = z[i] - x[i] - dt * f[i];
      report.residual = std::max(report.residual, std::abs(g[i]) / (1 + std::abs(z[i])));
    }
    if (report.residual < tol || report.iterations == max_iterations) break;
    // (I - dt J) delta = G, one 17 x 17 system per cell, solved as a batch:
    // the matrices are made in place in the Jacobian array, then viewed.
    for (std::size_t e = 0; e < jac.size(); ++e) jac[e] = ((e % (n * n)) % (n + 1) == 0 ? 1.0 : 0.0) - dt * jac[e];
    const bj::Tensor a = bj::view(std::span<const double>(jac), {b, n, n});
    const bj::Tensor delta = bj::linalg::solve(a, bj::view(std::span<const double>(g), {b, n, 1}));
    const auto dv = delta.data<double>();
    for (std::size_t i = 0; i < z.size(); ++i) z[i] -= dv[i];
  }
  std::copy(z.begin(), z.end(), x.begin());
  return report;
}

}  // namespace kinetics
