// W3 of shared/WORKLOADS.md (a chemical source term: 16 species, 48
// reactions), written with TF-named ops as a user would, against its
// hand-derived Jacobian: max |J - J_ref| / (1 + |J_ref|) < 1e-10 in float64.
#include "engine/plan_cache.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace bj = batchjac;
namespace engine = batchjac::engine;

namespace {
constexpr int ns = 16, nr = 48, n = 1 + ns;

struct Reaction {
  double a, beta, ea, k;  // kf = a T^beta exp(-ea / T); kr = kf k
  int ra, rb, pc, pd;     // reactants A, B; products C, D
};

std::vector<Reaction> mechanism() {
  std::vector<Reaction> rs;
  for (int r = 0; r < nr; ++r)
    rs.push_back({1.0 + r % 5, 0.1 * ((r % 3) - 1), 100.0 * (1 + r % 7),
                  std::exp(-0.01 * ((r % 11) - 5)), r % ns, (3 * r + 1) % ns, (5 * r + 2) % ns,
                  (7 * r + 3) % ns});
  return rs;
}
double enthalpy(int s) { return 0.01 * (s - 8); }

bj::Tensor kinetics(const bj::Tensor& x) {
  const auto rs = mechanism();
  std::vector<double> a, beta, ea, k, nu(nr * ns, 0.0), h;
  std::vector<std::int64_t> ia, ib, ic, id;
  for (int r = 0; r < nr; ++r) {
    const Reaction& q = rs[static_cast<std::size_t>(r)];
    a.push_back(q.a), beta.push_back(q.beta), ea.push_back(q.ea), k.push_back(q.k);
    ia.push_back(q.ra), ib.push_back(q.rb), ic.push_back(q.pc), id.push_back(q.pd);
    nu[r * ns + q.ra] -= 1, nu[r * ns + q.rb] -= 1, nu[r * ns + q.pc] += 1, nu[r * ns + q.pd] += 1;
  }
  for (int s = 0; s < ns; ++s) h.push_back(enthalpy(s));
  const bj::Tensor t = bj::slice(x, {0, 0}, {-1, 1});
  const bj::Tensor c = bj::slice(x, {0, 1}, {-1, ns});
  const bj::Tensor kf = bj::constant(a, {nr}) * bj::pow(t, bj::constant(beta, {nr})) *
                        bj::exp(-bj::constant(ea, {nr}) / t);
  const bj::Tensor kr = kf * bj::constant(k, {nr});
  const bj::Tensor q = kf * bj::gather(c, ia, 1) * bj::gather(c, ib, 1) -
                       kr * bj::gather(c, ic, 1) * bj::gather(c, id, 1);
  const bj::Tensor wdot = bj::matmul(q, bj::constant(nu, {nr, ns}));
  const bj::Tensor dt = -bj::reduce_sum(wdot * bj::constant(h, {ns}), {1}, true);
  return bj::concat({dt, wdot}, 1);
}

// d[dT, wdot] / d[T, c] of one example, by hand.
std::vector<double> analytic(const double* x) {
  const double temp = x[0];
  const double* c = x + 1;
  std::vector<double> jw(ns * n, 0.0);  // d wdot_s / d x_j
  for (const Reaction& r : mechanism()) {
    const double kf = r.a * std::pow(temp, r.beta) * std::exp(-r.ea / temp);
    const double dkf = kf * (r.beta / temp + r.ea / (temp * temp));
    const double kr = kf * r.k, dkr = dkf * r.k;
    double dq[n] = {};
    dq[0] = dkf * c[r.ra] * c[r.rb] - dkr * c[r.pc] * c[r.pd];
    dq[1 + r.ra] += kf * c[r.rb];
    dq[1 + r.rb] += kf * c[r.ra];
    dq[1 + r.pc] -= kr * c[r.pd];
    dq[1 + r.pd] -= kr * c[r.pc];
    for (int j = 0; j < n; ++j) {
      jw[r.ra * n + j] -= dq[j];
      jw[r.rb * n + j] -= dq[j];
      jw[r.pc * n + j] += dq[j];
      jw[r.pd * n + j] += dq[j];
    }
  }
  std::vector<double> jac(n * n, 0.0);
  for (int j = 0; j < n; ++j) {
    for (int s = 0; s < ns; ++s) {
      jac[(1 + s) * n + j] = jw[s * n + j];
      jac[j] -= enthalpy(s) * jw[s * n + j];
    }
  }
  return jac;
}

// WORKLOADS.md's inputs for b examples, example i at phase step * i.
std::vector<double> inputs(std::int64_t b, double step) {
  std::vector<double> xs(static_cast<std::size_t>(b * n));
  for (std::int64_t i = 0; i < b; ++i) {
    xs[i * n] = 1000 + 250 * (1 + std::sin(step * i));
    for (int s = 0; s < ns; ++s) xs[i * n + 1 + s] = 0.1 + 0.05 * std::sin(step * i + 0.7 * s);
  }
  return xs;
}
}  // namespace

TEST_CASE("W3 kinetics matches its analytic Jacobian", "[engine][workload]") {
  for (std::int64_t b : {1, 7, 8, 9, 33}) {
    const std::vector<double> xs = inputs(b, 0.001);
    const bj::Tensor x = bj::constant(xs, {b, n});
    bj::GradientTape tape({.persistent = true});
    tape.watch(x);
    const bj::Tensor y = kinetics(x);
    for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse, bj::JacobianMode::automatic}) {
      bj::JacobianOptions o;
      o.mode = mode;
      const auto jac = tape.batch_jacobian(y, x, o);
      REQUIRE(jac.has_value());
      REQUIRE(jac->shape() == bj::Shape{b, n, n});
      const auto got = jac->to_vector<double>();
      double worst = 0;
      for (std::int64_t i = 0; i < b; ++i) {
        const auto want = analytic(xs.data() + i * n);
        for (int e = 0; e < n * n; ++e)
          worst = std::max(worst, std::abs(got[i * n * n + e] - want[e]) / (1 + std::abs(want[e])));
      }
      INFO("b = " << b << ", mode " << static_cast<int>(mode));
      CHECK(worst < 1e-10);
    }
  }
}

namespace {
// The species rates alone (17 inputs, 16 outputs) of b examples.
std::vector<double> rates_jacobian(std::int64_t b, bj::JacobianMode mode) {
  const bj::Tensor x = bj::constant(inputs(b, 0.01), {b, n});
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = bj::slice(kinetics(x), {0, 1}, {-1, ns});
  bj::JacobianOptions o;
  o.mode = mode;
  return tape.batch_jacobian(y, x, o)->to_vector<double>();
}
}  // namespace

TEST_CASE("kinetics: automatic runs the cheaper plan when it is planned second", "[engine][kinetics][options]") {
  // Automatic plans reverse first (the smaller side) and forward with what
  // reverse costs as the bound to beat; forward's sparse form is the cheaper
  // (it is for W3) and must still be found whole and run, bit for bit.
  // (Also when the suite runs dense: this case is about the sparse forms.)
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  engine::clear_plan_cache();
  const auto fwd = rates_jacobian(64, bj::JacobianMode::forward);
  const auto rev = rates_jacobian(64, bj::JacobianMode::reverse);
  REQUIRE(fwd != rev);  // the two modes round differently, so the check below can fail
  CHECK(rates_jacobian(64, bj::JacobianMode::automatic) == fwd);
  // A small call (8 x 16 x 17 entries) takes reverse without planning both;
  // the plan kept for it is not the one for large calls.
  CHECK(rates_jacobian(8, bj::JacobianMode::automatic) == rates_jacobian(8, bj::JacobianMode::reverse));
  CHECK(rates_jacobian(64, bj::JacobianMode::automatic) == fwd);
  engine::clear_plan_cache();
  CHECK(rates_jacobian(8, bj::JacobianMode::automatic) == rates_jacobian(8, bj::JacobianMode::reverse));
  CHECK(rates_jacobian(64, bj::JacobianMode::automatic) == fwd);
}
