// A chemical source term (shared/WORKLOADS.md's W3: 16 species, 48
// reactions, x = [T, c_0..c_15] -> y = [dT/dt, wdot_0..wdot_15]) written
// twice, as a solver code would: once as scalar templated code (a Ceres-style
// functor) for bj::scalar_function, once with tensor ops for bj::trace. Both
// are set up once and then called on the solver's own arrays, with no
// recording per call. The two must agree, and agree with central differences.
//
//   ./scalar_kinetics [cells]      (default 4096)
#include <batchjac/batchjac.hpp>
#include <batchjac/scalar_function.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace bj = batchjac;

namespace {

constexpr int kSpecies = 16, kReactions = 48, kN = 1 + kSpecies;

// Reaction r: A + B <-> C + D, with these species indices.
constexpr int reactant_a(int r) { return r % kSpecies; }
constexpr int reactant_b(int r) { return (3 * r + 1) % kSpecies; }
constexpr int product_c(int r) { return (5 * r + 2) % kSpecies; }
constexpr int product_d(int r) { return (7 * r + 3) % kSpecies; }

// The source term as scalar code: T is double, bj::Dual or bj::TracedScalar.
struct SourceTerm {
  template <class T>
  void operator()(const T* x, T* y) const {
    using std::exp;
    using std::pow;
    const T& temp = x[0];
    const T* c = x + 1;
    T wdot[kSpecies];
    for (T& w : wdot) w = 0.0;
    const T inv_temp = 1.0 / temp;
    for (int r = 0; r < kReactions; ++r) {
      const T kf = (1.0 + r % 5) * pow(temp, 0.1 * ((r % 3) - 1)) * exp(-100.0 * (1 + r % 7) * inv_temp);
      const T kr = kf * std::exp(-0.01 * ((r % 11) - 5));  // kf / Keq
      const T q = kf * c[reactant_a(r)] * c[reactant_b(r)] - kr * c[product_c(r)] * c[product_d(r)];
      wdot[reactant_a(r)] -= q;
      wdot[reactant_b(r)] -= q;
      wdot[product_c(r)] += q;
      wdot[product_d(r)] += q;
    }
    y[0] = 0.0;
    for (int s = 0; s < kSpecies; ++s) {
      y[0] -= 0.01 * (s - 8) * wdot[s];
      y[1 + s] = wdot[s];
    }
  }
};

// The same with tensor ops, x [b, 17] -> [b, 17].
bj::Tensor source_term(const bj::Tensor& x) {
  std::vector<double> order(kReactions), scale(kReactions), energy(kReactions), back(kReactions);
  std::vector<std::int64_t> a(kReactions), b(kReactions), c(kReactions), d(kReactions);
  std::vector<double> nu(kReactions * kSpecies, 0.0), enthalpy(kSpecies);
  for (int r = 0; r < kReactions; ++r) {
    order[r] = 0.1 * ((r % 3) - 1);
    scale[r] = 1.0 + r % 5;
    energy[r] = 100.0 * (1 + r % 7);
    back[r] = std::exp(-0.01 * ((r % 11) - 5));
    a[r] = reactant_a(r), b[r] = reactant_b(r), c[r] = product_c(r), d[r] = product_d(r);
    nu[r * kSpecies + a[r]] -= 1, nu[r * kSpecies + b[r]] -= 1;
    nu[r * kSpecies + c[r]] += 1, nu[r * kSpecies + d[r]] += 1;
  }
  for (int s = 0; s < kSpecies; ++s) enthalpy[s] = 0.01 * (s - 8);
  auto row = [](const std::vector<double>& v) { return bj::constant(v, {1, std::int64_t(v.size())}); };
  const bj::Tensor temp = bj::slice(x, {0, 0}, {-1, 1});
  const bj::Tensor conc = bj::slice(x, {0, 1}, {-1, kSpecies});
  // kf = scale T^order exp(-energy / T), as exp(order log T - energy / T): the order varies by reaction.
  const bj::Tensor kf = row(scale) * bj::exp(row(order) * bj::log(temp) - row(energy) / temp);
  const bj::Tensor kr = kf * row(back);
  const bj::Tensor q = kf * bj::gather(conc, a, 1) * bj::gather(conc, b, 1) -
                       kr * bj::gather(conc, c, 1) * bj::gather(conc, d, 1);
  const bj::Tensor wdot = bj::matmul(q, bj::constant(nu, {kReactions, kSpecies}));
  return bj::concat({-bj::reduce_sum(wdot * row(enthalpy), {1}, true), wdot}, 1);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t cells = argc > 1 ? std::atoll(argv[1]) : 4096;
  std::vector<double> x(static_cast<std::size_t>(cells * kN));
  for (std::int64_t i = 0; i < cells; ++i) {
    x[i * kN] = 1000 + 250 * (1 + std::sin(0.001 * double(i)));
    for (int s = 0; s < kSpecies; ++s) x[i * kN + 1 + s] = 0.1 + 0.05 * std::sin(0.001 * double(i) + 0.7 * s);
  }
  std::vector<double> value(cells * kN), jac_scalar(cells * kN * kN), jac_trace(cells * kN * kN);

  // Set up once (a solver does this before its time loop)...
  const auto scalar = bj::scalar_function<kN, kN>(SourceTerm{});
  const bj::Function traced = bj::trace(source_term, bj::TensorSpec{bj::Shape{-1, kN}, bj::float64});

  // ...then call every step on the solver's arrays.
  auto t0 = std::chrono::steady_clock::now();
  scalar.value_and_batch_jacobian_into(x, value, jac_scalar);
  const double t_scalar = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  traced.batch_jacobian_into(x, jac_trace);
  const double t_trace = seconds_since(t0);
  const char* path = scalar.path(bj::float64) == bj::ScalarPath::compiled ? "compiled" : "traced";

  // Check: the two agree, and cell 0 agrees with central differences.
  double worst = 0;
  for (std::size_t k = 0; k < jac_scalar.size(); ++k)
    worst = std::max(worst, std::abs(jac_scalar[k] - jac_trace[k]) / (1e-12 + std::abs(jac_trace[k])));
  double worst_fd = 0;
  for (int j = 0; j < kN; ++j) {
    std::vector<double> up(x.begin(), x.begin() + kN), down = up, yu(kN), yd(kN);
    const double h = 1e-6 * std::max(1.0, std::abs(up[j]));
    up[j] += h, down[j] -= h;
    SourceTerm{}(up.data(), yu.data());
    SourceTerm{}(down.data(), yd.data());
    for (int i = 0; i < kN; ++i) {
      const double fd = (yu[i] - yd[i]) / (2 * h);
      worst_fd = std::max(worst_fd, std::abs(fd - jac_scalar[i * kN + j]) / (1e-6 + std::abs(fd)));
    }
  }
  std::printf("%lld cells: scalar_function (%s) %.3f ms, trace %.3f ms (first calls: they plan)\n",
              static_cast<long long>(cells), path, 1e3 * t_scalar, 1e3 * t_trace);
  std::printf("max relative difference scalar vs trace %.2e, cell 0 vs central differences %.2e\n", worst,
              worst_fd);
  const bool ok = worst < 1e-8 && worst_fd < 1e-5;  // exp(order log T) against pow: rounding apart
  std::printf("%s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
