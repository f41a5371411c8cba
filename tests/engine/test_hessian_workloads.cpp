// Acceptance test of issue #19 (per-example Hessians) on the workloads of
// shared/WORKLOADS.md: the Hessian of a per-example scalar of W2 (sum of the
// mlp's outputs), W3 (the kinetics' dT), W8 (the neo-Hookean strain energy,
// whose gradient is W8's P) and W10 (the Lennard-Jones energy, whose gradient
// is minus W10's forces), computed
//   (a) by nested tapes, as TF's per-example Hessian pattern:
//       outer.batch_jacobian(inner.gradient(y, x), x), and with the inner
//       batch_jacobian of the [b, 1] target reshaped to [b, n];
//   (b) by bj::batch_hessian, in forward and reverse mode;
// against a reference from the ANALYTIC Jacobians written below in plain C++:
// W8's material tangent and minus W10's force Jacobian are the Hessians
// themselves; for W2 and W3 the reference is central differences (five
// points) of the analytic gradient of the scalar, derived from the analytic
// Jacobian (W2: the sum of J's rows, W3: J's row 0). Agreement: 1e-9
// relative to the largest magnitude of the reference. Also: batch_hessian is
// symmetric bit for bit, and batch_hvp with random vectors is H v to 1e-12.

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace bj = batchjac;

namespace {

using Energy = std::function<bj::Tensor(const bj::Tensor&)>;  // x [b, n] -> [b] or [b, 1]
using Gradient = std::function<std::vector<double>(const double* x)>;  // one example: n -> n

constexpr double kTol = 1e-9;
constexpr double kHvpTol = 1e-12;

// Examples spread out along the generators' index (their 0.001 i phase would
// make neighbouring examples nearly equal).
constexpr std::int64_t kSpread = 997;

std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }

// max |a - ref| / max |ref|.
double relative_error(const std::vector<double>& a, const std::vector<double>& ref) {
  REQUIRE(a.size() == ref.size());
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  REQUIRE(scale > 0);
  return err / scale;
}

// The Hessian of every example as central differences of its analytic
// gradient (five points, h_j = step * max(1, |x_j|)): [b, n, n] flat.
std::vector<double> central_differences(const Gradient& grad, const std::vector<double>& x, std::int64_t b,
                                        std::int64_t n, double step) {
  std::vector<double> out(at(b * n * n));
  for (std::int64_t e = 0; e < b; ++e) {
    std::vector<double> p(x.begin() + e * n, x.begin() + (e + 1) * n);
    for (std::int64_t k = 0; k < n; ++k) {
      const double x0 = p[at(k)], h = step * std::max(1.0, std::abs(x0));
      auto g = [&](double shift) {
        p[at(k)] = x0 + shift;
        std::vector<double> v = grad(p.data());
        p[at(k)] = x0;
        return v;
      };
      const std::vector<double> p2 = g(2 * h), p1 = g(h), m1 = g(-h), m2 = g(-2 * h);
      for (std::int64_t r = 0; r < n; ++r)
        out[at((e * n + r) * n + k)] = (-p2[at(r)] + 8 * p1[at(r)] - 8 * m1[at(r)] + m2[at(r)]) / (12 * h);
    }
  }
  return out;
}

bj::JacobianOptions mode_options(bj::JacobianMode mode) {
  bj::JacobianOptions options;
  options.mode = mode;
  return options;
}

const char* mode_name(bj::JacobianMode mode) {
  switch (mode) {
    case bj::JacobianMode::forward: return "forward";
    case bj::JacobianMode::reverse: return "reverse";
    default: return "automatic";
  }
}

// (a), (b), symmetry and batch_hvp of `energy` at x [b, n] against `want` [b, n, n].
void check_hessians(const Energy& energy, const std::vector<double>& xv, std::int64_t b, std::int64_t n,
                    const std::vector<double>& want) {
  const bj::Tensor x = bj::constant(xv, {b, n}, bj::float64);
  const bj::Shape hessian_shape{b, n, n};

  // (b) batch_hessian, and its exact symmetry.
  std::vector<double> hessian;
  for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse, bj::JacobianMode::automatic}) {
    INFO("batch_hessian, mode " << mode_name(mode));
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = energy(x);
    const std::optional<bj::Tensor> h = bj::batch_hessian(tape, y, x, mode_options(mode));
    REQUIRE(h.has_value());
    REQUIRE(h->shape() == hessian_shape);
    REQUIRE(h->dtype() == bj::float64);
    const std::vector<double> v = h->to_vector<double>();
    const double err = relative_error(v, want);
    INFO("relative error " << err);
    CHECK(err < kTol);
    std::int64_t asymmetric = 0;
    for (std::int64_t e = 0; e < b; ++e)
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          if (v[at((e * n + i) * n + j)] != v[at((e * n + j) * n + i)]) ++asymmetric;
    CHECK(asymmetric == 0);
    if (mode == bj::JacobianMode::forward) hessian = v;
  }

  // (a) nested tapes: the inner tape's per-example gradient, differentiated
  // per example by the outer tape.
  for (bj::JacobianMode outer_mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    for (int inner_kind = 0; inner_kind < 3; ++inner_kind) {
      INFO("nested: outer " << mode_name(outer_mode) << ", inner "
                            << (inner_kind == 0 ? "gradient"
                                                : inner_kind == 1 ? "batch_jacobian forward"
                                                                  : "batch_jacobian reverse"));
      bj::GradientTape outer;
      outer.watch(x);
      std::optional<bj::Tensor> grad;
      {
        bj::GradientTape inner;
        inner.watch(x);
        const bj::Tensor y = energy(x);
        if (inner_kind == 0) {
          grad = inner.gradient(y, x);
        } else {
          const auto mode = inner_kind == 1 ? bj::JacobianMode::forward : bj::JacobianMode::reverse;
          const std::optional<bj::Tensor> j = inner.batch_jacobian(bj::reshape(y, {b, 1}), x, mode_options(mode));
          REQUIRE(j.has_value());
          REQUIRE(j->shape() == bj::Shape{b, 1, n});
          grad = bj::reshape(*j, {b, n});
        }
      }
      REQUIRE(grad.has_value());
      const std::optional<bj::Tensor> h = outer.batch_jacobian(*grad, x, mode_options(outer_mode));
      REQUIRE(h.has_value());
      REQUIRE(h->shape() == hessian_shape);
      const double err = relative_error(h->to_vector<double>(), want);
      INFO("relative error " << err);
      CHECK(err < kTol);
    }
  }

  // batch_hvp with random vectors against H v of batch_hessian.
  std::mt19937_64 rng(static_cast<std::uint64_t>(n * 1000 + b));
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<double> vectors(at(b * n));
  for (double& v : vectors) v = uniform(rng);
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = energy(x);
  const std::optional<bj::Tensor> hvp = bj::batch_hvp(tape, y, x, bj::constant(vectors, {b, n}, bj::float64));
  REQUIRE(hvp.has_value());
  REQUIRE(hvp->shape() == x.shape());
  std::vector<double> hv(at(b * n), 0.0);
  for (std::int64_t e = 0; e < b; ++e)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        hv[at(e * n + i)] += hessian[at((e * n + i) * n + j)] * vectors[at(e * n + j)];
  const double err = relative_error(hvp->to_vector<double>(), hv);
  INFO("batch_hvp relative error " << err);
  CHECK(err < kHvpTol);
}

// A reference that must fail: the checks above compare against `want`, so a
// wrong reference (one entry off by 1e-6 of the largest) is caught.
void check_reference_is_sharp(const std::vector<double>& want) {
  std::vector<double> off = want;
  double scale = 0;
  for (double v : want) scale = std::max(scale, std::abs(v));
  off[off.size() / 2] += 1e-6 * scale;
  CHECK_FALSE(relative_error(off, want) < kTol);
}

// ---- W2 mlp ------------------------------------------------------------------------------------

namespace w2 {
constexpr std::int64_t n = 32, h = 64, m = 32;

struct Weights {
  std::vector<double> w1, c1, w2, c2;  // [h, n], [h], [m, h], [m]
};

Weights weights() {
  Weights w{std::vector<double>(at(h * n)), std::vector<double>(at(h)), std::vector<double>(at(m * h)),
            std::vector<double>(at(m))};
  for (std::int64_t k = 0; k < h; ++k) {
    for (std::int64_t j = 0; j < n; ++j)
      w.w1[at(k * n + j)] = std::cos(0.13 * k + 0.29 * j + 0.1) / std::sqrt(double(n));
    w.c1[at(k)] = 0.1 * std::sin(0.5 * k);
  }
  for (std::int64_t r = 0; r < m; ++r) {
    for (std::int64_t k = 0; k < h; ++k)
      w.w2[at(r * h + k)] = std::cos(0.17 * r + 0.23 * k + 0.2) / std::sqrt(double(h));
    w.c2[at(r)] = 0.1 * std::cos(0.5 * r);
  }
  return w;
}

// The analytic Jacobian J = W2 diag(1 - a^2) W1 of one example: [m, n].
std::vector<double> jacobian(const Weights& w, const double* x) {
  std::vector<double> s(at(h));
  for (std::int64_t k = 0; k < h; ++k) {
    double z = w.c1[at(k)];
    for (std::int64_t j = 0; j < n; ++j) z += w.w1[at(k * n + j)] * x[j];
    const double a = std::tanh(z);
    s[at(k)] = 1 - a * a;
  }
  std::vector<double> jac(at(m * n), 0.0);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t k = 0; k < h; ++k) {
      const double c = w.w2[at(r * h + k)] * s[at(k)];
      for (std::int64_t j = 0; j < n; ++j) jac[at(r * n + j)] += c * w.w1[at(k * n + j)];
    }
  return jac;
}

// The gradient of sum_r y_r: the sum of J's rows.
std::vector<double> gradient(const Weights& w, const double* x) {
  const std::vector<double> jac = jacobian(w, x);
  std::vector<double> g(at(n), 0.0);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < n; ++j) g[at(j)] += jac[at(r * n + j)];
  return g;
}

// y = matmul(tanh(matmul(x, W1^T) + c1), W2^T) + c2, summed per example: [b].
bj::Tensor energy(const Weights& w, const bj::Tensor& x) {
  const bj::Tensor w1 = bj::constant(w.w1, {h, n}, bj::float64);
  const bj::Tensor w2 = bj::constant(w.w2, {m, h}, bj::float64);
  const bj::Tensor a = bj::tanh(bj::matmul(x, w1, false, true) + bj::constant(w.c1, {h}, bj::float64));
  const bj::Tensor y = bj::matmul(a, w2, false, true) + bj::constant(w.c2, {m}, bj::float64);
  return bj::reduce_sum(y, {1});
}
}  // namespace w2

// ---- W3 kinetics -------------------------------------------------------------------------------

namespace w3 {
constexpr std::int64_t ns = 16, nr = 48, n = 1 + ns, m = n;

std::int64_t reactant_a(std::int64_t r) { return r % ns; }
std::int64_t reactant_b(std::int64_t r) { return (3 * r + 1) % ns; }
std::int64_t product_c(std::int64_t r) { return (5 * r + 2) % ns; }
std::int64_t product_d(std::int64_t r) { return (7 * r + 3) % ns; }
double prefactor(std::int64_t r) { return 1.0 + double(r % 5); }
double beta(std::int64_t r) { return 0.1 * double((r % 3) - 1); }
double activation(std::int64_t r) { return 100.0 * double(1 + r % 7); }
double reverse_ratio(std::int64_t r) { return std::exp(-0.01 * double((r % 11) - 5)); }
double enthalpy(std::int64_t s) { return 0.01 * double(s - 8); }

// The analytic Jacobian of y = [dT, wdot] for one example: [m, n].
std::vector<double> jacobian(const double* x) {
  const double t = x[0];
  const double* c = x + 1;
  std::vector<double> jac(at(m * n), 0.0);
  auto wdot_row = [&](std::int64_t s) { return jac.data() + (1 + s) * n; };
  for (std::int64_t r = 0; r < nr; ++r) {
    const std::int64_t a = reactant_a(r), b = reactant_b(r), cc = product_c(r), d = product_d(r);
    const double kf = prefactor(r) * std::pow(t, beta(r)) * std::exp(-activation(r) / t);
    const double dkf = kf * (beta(r) / t + activation(r) / (t * t));  // dkf/dT
    const double rr = reverse_ratio(r);
    // dq/dT and dq/dc_s
    double dq[n] = {};
    dq[0] = dkf * (c[a] * c[b] - rr * c[cc] * c[d]);
    dq[1 + a] += kf * c[b];
    dq[1 + b] += kf * c[a];
    dq[1 + cc] -= kf * rr * c[d];
    dq[1 + d] -= kf * rr * c[cc];
    for (std::int64_t j = 0; j < n; ++j) {
      wdot_row(a)[j] -= dq[j];
      wdot_row(b)[j] -= dq[j];
      wdot_row(cc)[j] += dq[j];
      wdot_row(d)[j] += dq[j];
    }
  }
  for (std::int64_t s = 0; s < ns; ++s)
    for (std::int64_t j = 0; j < n; ++j) jac[at(j)] -= enthalpy(s) * wdot_row(s)[j];
  return jac;
}

// The gradient of dT: J's row 0.
std::vector<double> gradient(const double* x) {
  std::vector<double> jac = jacobian(x);
  return std::vector<double>(jac.begin(), jac.begin() + n);
}

// dT written with ops as bench/workloads.cpp writes W3 (slice, gather,
// matmul by the stoichiometry, concat), then sliced out of y: [b, 1].
bj::Tensor energy(const bj::Tensor& x) {
  std::vector<double> pre(nr), bet(nr), act(nr), rev(nr), ent(ns), nu(at(nr * ns), 0.0);
  std::vector<std::int64_t> ia(nr), ib(nr), ic(nr), id(nr);
  for (std::int64_t r = 0; r < nr; ++r) {
    pre[at(r)] = prefactor(r);
    bet[at(r)] = beta(r);
    act[at(r)] = activation(r);
    rev[at(r)] = reverse_ratio(r);
    ia[at(r)] = reactant_a(r);
    ib[at(r)] = reactant_b(r);
    ic[at(r)] = product_c(r);
    id[at(r)] = product_d(r);
    nu[at(r * ns + ia[at(r)])] -= 1;
    nu[at(r * ns + ib[at(r)])] -= 1;
    nu[at(r * ns + ic[at(r)])] += 1;
    nu[at(r * ns + id[at(r)])] += 1;
  }
  for (std::int64_t s = 0; s < ns; ++s) ent[at(s)] = enthalpy(s);
  auto row = [](const std::vector<double>& v) {
    return bj::constant(v, {1, static_cast<std::int64_t>(v.size())}, bj::float64);
  };
  const bj::Tensor t = bj::slice(x, {0, 0}, {-1, 1});
  const bj::Tensor c = bj::slice(x, {0, 1}, {-1, ns});
  const bj::Tensor kf = row(pre) * bj::exp(row(bet) * bj::log(t) - row(act) * bj::reciprocal(t));
  const bj::Tensor kr = kf * row(rev);
  const bj::Tensor q = kf * bj::gather(c, ia, 1) * bj::gather(c, ib, 1) -
                       kr * bj::gather(c, ic, 1) * bj::gather(c, id, 1);
  const bj::Tensor wdot = bj::matmul(q, bj::constant(nu, {nr, ns}, bj::float64));
  const bj::Tensor dt = -bj::reduce_sum(wdot * row(ent), {1}, true);
  const bj::Tensor y = bj::concat({dt, wdot}, 1);
  return bj::slice(y, {0, 0}, {-1, 1});
}

std::vector<double> inputs(std::int64_t b) {
  std::vector<double> x(at(b * n));
  for (std::int64_t e = 0; e < b; ++e) {
    const double i = double(e * kSpread);
    x[at(e * n)] = 1000 + 250 * (1 + std::sin(0.001 * i));
    for (std::int64_t s = 0; s < ns; ++s) x[at(e * n + 1 + s)] = 0.1 + 0.05 * std::sin(0.001 * i + 0.7 * s);
  }
  return x;
}
}  // namespace w3

// ---- W8 neo-Hookean ----------------------------------------------------------------------------

namespace w8 {
constexpr std::int64_t n = 9;
constexpr double mu = 0.8, lambda = 1.2;

// W8's analytic tangent dP[a][c] / dF[k][l], the Hessian of the energy: [9, 9].
std::vector<double> tangent(const double* f) {
  auto F = [&](int a, int c) { return f[3 * a + c]; };
  double cof[3][3];  // cofactors: cof[a][c] = det * Finv[c][a]
  for (int a = 0; a < 3; ++a)
    for (int c = 0; c < 3; ++c) {
      const int a1 = (a + 1) % 3, a2 = (a + 2) % 3, c1 = (c + 1) % 3, c2 = (c + 2) % 3;
      cof[a][c] = F(a1, c1) * F(a2, c2) - F(a1, c2) * F(a2, c1);
    }
  const double det = F(0, 0) * cof[0][0] + F(0, 1) * cof[0][1] + F(0, 2) * cof[0][2];
  double finv[3][3];
  for (int a = 0; a < 3; ++a)
    for (int c = 0; c < 3; ++c) finv[a][c] = cof[c][a] / det;
  const double log_j = std::log(det);
  std::vector<double> h(81);
  for (int a = 0; a < 3; ++a)
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l)
          h[at((3 * a + c) * 9 + 3 * k + l)] = mu * (a == k && c == l) +
                                               (mu - lambda * log_j) * finv[c][k] * finv[l][a] +
                                               lambda * finv[c][a] * finv[l][k];
  return h;
}

// W = mu/2 (tr(F^T F) - 3) - mu ln J + lambda/2 (ln J)^2 from J = det F: [b].
bj::Tensor energy_of(const bj::Tensor& x, const bj::Tensor& det) {
  const bj::Tensor log_j = bj::log(det);
  return (mu / 2) * (bj::reduce_sum(bj::square(x), {1}) - 3.0) - mu * log_j + (lambda / 2) * log_j * log_j;
}

// det F by bj::linalg::det.
bj::Tensor energy_linalg(const bj::Tensor& x) { return energy_of(x, bj::linalg::det(bj::reshape(x, {-1, 3, 3}))); }

// det F = r0 . (r1 x r2) by cofactors, as bench/workloads.cpp writes W8.
bj::Tensor energy_cofactors(const bj::Tensor& x) {
  const bj::Tensor r0 = bj::slice(x, {0, 0}, {-1, 3});
  const bj::Tensor r1 = bj::slice(x, {0, 3}, {-1, 3});
  const bj::Tensor r2 = bj::slice(x, {0, 6}, {-1, 3});
  return energy_of(x, bj::reduce_sum(r0 * bj::cross(r1, r2), {1}));
}

std::vector<double> inputs(std::int64_t b) {
  std::vector<double> x(at(b * n));
  for (std::int64_t e = 0; e < b; ++e)
    for (std::int64_t j = 0; j < n; ++j)
      x[at(e * n + j)] = (j % 4 == 0 ? 1.0 : 0.0) + 0.1 * std::sin(0.001 * double(e * kSpread) + 0.7 * j + 0.3);
  return x;
}
}  // namespace w8

// ---- W10 Lennard-Jones ---------------------------------------------------------------------------

namespace w10 {
constexpr std::int64_t atoms = 8, n = 3 * atoms;

// Minus W10's analytic force Jacobian, the Hessian of the energy: [24, 24].
// F_k = sum_{l != k} g(r) d, d = p_k - p_l, g = 24 (2 r^-14 - r^-8):
// dF_k/dp_k = sum_l M_kl, dF_k/dp_l = -M_kl, M = g I + (g'(r) / r) d d^T.
std::vector<double> hessian(const double* x) {
  std::vector<double> jac(at(n * n), 0.0);
  for (std::int64_t k = 0; k < atoms; ++k)
    for (std::int64_t l = 0; l < atoms; ++l) {
      if (l == k) continue;
      double d[3], r2 = 0;
      for (int c = 0; c < 3; ++c) {
        d[c] = x[3 * k + c] - x[3 * l + c];
        r2 += d[c] * d[c];
      }
      const double r = std::sqrt(r2);
      const double g = 24 * (2 * std::pow(r, -14) - std::pow(r, -8));
      const double dg_over_r = 24 * (-28 * std::pow(r, -16) + 8 * std::pow(r, -10));
      for (int a = 0; a < 3; ++a)
        for (int c = 0; c < 3; ++c) {
          const double mkl = (a == c ? g : 0.0) + dg_over_r * d[a] * d[c];
          jac[at((3 * k + a) * n + 3 * k + c)] += mkl;
          jac[at((3 * k + a) * n + 3 * l + c)] -= mkl;
        }
    }
  for (double& v : jac) v = -v;
  return jac;
}

// E = sum_{k<l} 4 (r^-12 - r^-6) on all pairs at once ([b, 8, 8, 3]
// differences), the pairs k >= l masked by a double where: [b].
bj::Tensor energy(const bj::Tensor& x) {
  std::vector<double> upper(at(atoms * atoms), 0.0);
  for (std::int64_t k = 0; k < atoms; ++k)
    for (std::int64_t l = k + 1; l < atoms; ++l) upper[at(k * atoms + l)] = 1.0;
  const bj::Tensor mask = bj::constant(upper, {atoms, atoms}, bj::boolean);
  const bj::Tensor p = bj::reshape(x, {-1, atoms, 3});
  const bj::Tensor d = bj::expand_dims(p, 2) - bj::expand_dims(p, 1);  // [b, 8, 8, 3]
  const bj::Tensor r2 = bj::reduce_sum(bj::square(d), {3});          // [b, 8, 8]
  const bj::Tensor inv_r2 = bj::reciprocal(bj::where(mask, r2, 1.0));
  const bj::Tensor s6 = inv_r2 * inv_r2 * inv_r2;
  const bj::Tensor pair = 4.0 * (s6 * s6 - s6);
  return bj::reduce_sum(bj::where(mask, pair, 0.0), {1, 2});
}

std::vector<double> inputs(std::int64_t b) {
  std::vector<double> x(at(b * n));
  for (std::int64_t e = 0; e < b; ++e)
    for (std::int64_t k = 0; k < atoms; ++k) {
      const double lattice[3] = {double(k % 2), double((k / 2) % 2), double(k / 4)};
      for (int c = 0; c < 3; ++c) {
        const std::int64_t j = 3 * k + c;
        x[at(e * n + j)] = 1.12 * lattice[c] + 0.05 * std::sin(0.001 * double(e * kSpread) + 0.7 * double(j) + 0.3);
      }
    }
  return x;
}
}  // namespace w10

std::vector<double> default_inputs(std::int64_t b, std::int64_t n) {
  std::vector<double> x(at(b * n));
  for (std::int64_t e = 0; e < b; ++e)
    for (std::int64_t j = 0; j < n; ++j)
      x[at(e * n + j)] = 0.5 * std::sin(0.001 * double(e * kSpread) + 0.7 * double(j) + 0.3);
  return x;
}

// The per-example reference of a workload whose Hessian is written in closed form.
template <class Fn>
std::vector<double> per_example(const std::vector<double>& x, std::int64_t b, std::int64_t n, const Fn& hessian) {
  std::vector<double> out;
  for (std::int64_t e = 0; e < b; ++e) {
    const std::vector<double> h = hessian(x.data() + e * n);
    REQUIRE(h.size() == at(n * n));
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
}

}  // namespace

TEST_CASE("Hessian workloads: W2 mlp, sum of the outputs", "[engine][hessian]") {
  const std::int64_t b = 5;
  const w2::Weights weights = w2::weights();
  const std::vector<double> x = default_inputs(b, w2::n);
  const std::vector<double> want = central_differences(
      [&](const double* p) { return w2::gradient(weights, p); }, x, b, w2::n, 1e-3);
  check_reference_is_sharp(want);
  check_hessians([&](const bj::Tensor& t) { return w2::energy(weights, t); }, x, b, w2::n, want);
}

TEST_CASE("Hessian workloads: W3 kinetics, dT", "[engine][hessian]") {
  const std::int64_t b = 9;
  const std::vector<double> x = w3::inputs(b);
  const std::vector<double> want = central_differences(w3::gradient, x, b, w3::n, 1e-3);
  check_reference_is_sharp(want);
  check_hessians(w3::energy, x, b, w3::n, want);
}

TEST_CASE("Hessian workloads: W8 neo-Hookean energy, Hessian = W8's tangent", "[engine][hessian]") {
  const std::int64_t b = 17;
  const std::vector<double> x = w8::inputs(b);
  const std::vector<double> want = per_example(x, b, w8::n, w8::tangent);
  check_reference_is_sharp(want);
  SECTION("det by bj::linalg::det") { check_hessians(w8::energy_linalg, x, b, w8::n, want); }
  SECTION("det by cofactors (cross)") { check_hessians(w8::energy_cofactors, x, b, w8::n, want); }
}

TEST_CASE("Hessian workloads: W10 Lennard-Jones energy, Hessian = -W10's Jacobian", "[engine][hessian]") {
  const std::int64_t b = 3;
  const std::vector<double> x = w10::inputs(b);
  const std::vector<double> want = per_example(x, b, w10::n, w10::hessian);
  check_reference_is_sharp(want);
  check_hessians(w10::energy, x, b, w10::n, want);
}
