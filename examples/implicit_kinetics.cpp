// implicit_kinetics: stiff chemistry the way a reacting-flow code integrates
// it. Every cell of a grid carries W3's state [T, c_0 .. c_15]; each time
// step is backward Euler, x_new = x + dt f(x_new), solved by Newton's method:
// batchjac gives f and its 17 x 17 Jacobian for all cells in one pass, and
// bj::linalg::solve solves the cells' (I - dt J) delta = G as one batch
// (kinetics.hpp).
//
// Checked: Newton converges in every step; the two linear invariants (total
// moles, T + sum h_s c_s) are kept; three cells agree with a plain scalar
// backward Euler (finite-difference Jacobian, Gaussian elimination).
//
// Usage: implicit_kinetics [cells] [steps]   (default 4096 cells, 10 steps)
// Exit status: 0 if every check passes, 1 if one fails, 2 on an exception.
#include "kinetics.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

namespace {

// ---- the check: a plain scalar backward Euler for one cell -----------------------------
void f_scalar(const double* x, double* f) {
  using namespace kinetics;
  double wdot[ns] = {};
  for (int r = 0; r < nr; ++r) {
    const double t = x[0];
    const double kf = (1 + r % 5) * std::pow(t, 0.1 * ((r % 3) - 1)) * std::exp(-100.0 * (1 + r % 7) / t);
    const double kr = kf * std::exp(-0.01 * ((r % 11) - 5));
    const double q = kf * x[1 + reactant_a(r)] * x[1 + reactant_b(r)] - kr * x[1 + product_c(r)] * x[1 + product_d(r)];
    wdot[reactant_a(r)] -= q, wdot[reactant_b(r)] -= q, wdot[product_c(r)] += q, wdot[product_d(r)] += q;
  }
  f[0] = 0;
  for (int s = 0; s < ns; ++s) f[0] -= enthalpy(s) * wdot[s], f[1 + s] = wdot[s];
}

void backward_euler_scalar(double* x, double dt) {
  constexpr int n = kinetics::n;
  double z[n], f[n], g[n], a[n][n + 1];
  std::copy(x, x + n, z);
  for (int it = 0; it < 30; ++it) {
    f_scalar(z, f);
    for (int i = 0; i < n; ++i) g[i] = z[i] - x[i] - dt * f[i];
    for (int j = 0; j < n; ++j) {  // central differences: a = I - dt df/dz
      double zp[n], zm[n], fp[n], fm[n];
      std::copy(z, z + n, zp), std::copy(z, z + n, zm);
      const double h = 1e-6 * std::max(1.0, std::abs(z[j]));
      zp[j] += h, zm[j] -= h;
      f_scalar(zp, fp), f_scalar(zm, fm);
      for (int i = 0; i < n; ++i) a[i][j] = (i == j) - dt * (fp[i] - fm[i]) / (2 * h);
    }
    for (int i = 0; i < n; ++i) a[i][n] = g[i];
    for (int k = 0; k < n; ++k) {  // Gaussian elimination, partial pivoting
      int p = k;
      for (int i = k + 1; i < n; ++i)
        if (std::abs(a[i][k]) > std::abs(a[p][k])) p = i;
      for (int j = 0; j <= n; ++j) std::swap(a[k][j], a[p][j]);
      for (int i = k + 1; i < n; ++i) {
        const double m = a[i][k] / a[k][k];
        for (int j = k; j <= n; ++j) a[i][j] -= m * a[k][j];
      }
    }
    for (int i = n - 1; i >= 0; --i) {
      double s = a[i][n];
      for (int j = i + 1; j < n; ++j) s -= a[i][j] * g[j];
      g[i] = s / a[i][i];  // g now holds delta
    }
    for (int i = 0; i < n; ++i) z[i] -= g[i];
  }
  std::copy(z, z + n, x);
}

struct Invariants {
  double moles = 0, energy = 0;
};
Invariants invariants(const double* x) {
  Invariants v;
  v.energy = x[0];
  for (int s = 0; s < kinetics::ns; ++s) v.moles += x[1 + s], v.energy += kinetics::enthalpy(s) * x[1 + s];
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::int64_t cells = argc > 1 ? std::atoll(argv[1]) : 4096;
    const int steps = argc > 2 ? std::atoi(argv[2]) : 10;
    const double dt = 0.5;
    constexpr std::int64_t n = kinetics::n;
    std::vector<double> x(static_cast<std::size_t>(cells * n));
    for (std::int64_t i = 0; i < cells; ++i) kinetics::initial_state(i, &x[i * n]);
    const std::vector<double> x0 = x;

    bool ok = true;
    int iterations = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int step = 0; step < steps; ++step) {
      const kinetics::NewtonReport r = kinetics::backward_euler_step(x, dt);
      iterations += r.iterations;
      std::printf("step %2d: %d Newton iterations, residual %.2e\n", step, r.iterations, r.residual);
      if (!(r.residual < 1e-12) || r.iterations > 8) ok = false;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%lld cells, %d steps, %d Newton iterations in %.3f s (%.1f ns per cell and iteration)\n",
                static_cast<long long>(cells), steps, iterations, seconds,
                1e9 * seconds / double(cells) / iterations);

    // Invariants of every cell.
    double worst_inv = 0;
    for (std::int64_t i = 0; i < cells; ++i) {
      const Invariants a = invariants(&x0[i * n]), b = invariants(&x[i * n]);
      worst_inv = std::max({worst_inv, std::abs(a.moles - b.moles) / a.moles, std::abs(a.energy - b.energy) / a.energy});
    }
    std::printf("invariants: worst relative change %.2e\n", worst_inv);
    if (!(worst_inv < 1e-12)) ok = false;

    // Three cells against the scalar backward Euler.
    double worst_ref = 0;
    for (std::int64_t i : {std::int64_t{0}, cells / 2, cells - 1}) {
      std::vector<double> ref(x0.begin() + i * n, x0.begin() + (i + 1) * n);
      for (int step = 0; step < steps; ++step) backward_euler_scalar(ref.data(), dt);
      for (std::int64_t j = 0; j < n; ++j)
        worst_ref = std::max(worst_ref, std::abs(ref[j] - x[i * n + j]) / (1 + std::abs(ref[j])));
    }
    std::printf("against a scalar backward Euler: worst difference %.2e\n", worst_ref);
    if (!(worst_ref < 1e-9)) ok = false;
    std::printf("%s\n", ok ? "implicit_kinetics: ok" : "implicit_kinetics: FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "implicit_kinetics: %s\n", e.what());
    return 2;
  }
}
