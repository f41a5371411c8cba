// The engine end to end: the seed example exactly, and a tanh MLP against its
// analytic Jacobian W2 diag(1 - a^2) W1, in float64 and float32, through the
// buffered and the straight-to-rows paths of the scaled matmul.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

namespace bj = batchjac;

namespace {
const bj::JacobianMode kModes[] = {bj::JacobianMode::forward, bj::JacobianMode::reverse,
                                   bj::JacobianMode::automatic};

// y = W2 tanh(W1 x + c1) + c2 per example; W1 [h, n], W2 [m, h].
struct Mlp {
  std::int64_t n = 5, h = 7, m = 3;
  std::vector<double> w1, c1, w2, c2;
  explicit Mlp(std::uint64_t seed) : Mlp(seed, 5, 7, 3) {}
  Mlp(std::uint64_t seed, std::int64_t n_, std::int64_t h_, std::int64_t m_) : n(n_), h(h_), m(m_) {
    std::mt19937_64 rng(seed);
    w1 = check::random_values(rng, h * n, -0.6, 0.6);
    c1 = check::random_values(rng, h, -0.3, 0.3);
    w2 = check::random_values(rng, m * h, -0.6, 0.6);
    c2 = check::random_values(rng, m, -0.3, 0.3);
  }
  bj::Tensor forward(const bj::Tensor& x) const {
    const bj::DType t = x.dtype();
    const bj::Tensor a = bj::tanh(bj::matmul(x, bj::constant(w1, {h, n}, t), false, true) +
                                  bj::constant(c1, {h}, t));
    return bj::matmul(a, bj::constant(w2, {m, h}, t), false, true) + bj::constant(c2, {m}, t);
  }
  // J[i] = W2 diag(1 - a_i^2) W1, in double from x's values.
  std::vector<double> analytic(const std::vector<double>& x, std::int64_t b) const {
    std::vector<double> J(static_cast<std::size_t>(b * m * n), 0.0);
    for (std::int64_t i = 0; i < b; ++i) {
      std::vector<double> d(h);
      for (std::int64_t k = 0; k < h; ++k) {
        double z = c1[k];
        for (std::int64_t j = 0; j < n; ++j) z += w1[k * n + j] * x[i * n + j];
        const double a = std::tanh(z);
        d[k] = 1 - a * a;
      }
      for (std::int64_t r = 0; r < m; ++r)
        for (std::int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (std::int64_t k = 0; k < h; ++k) s += w2[r * h + k] * d[k] * w1[k * n + j];
          J[(i * m + r) * n + j] = s;
        }
    }
    return J;
  }
};
}  // namespace

TEST_CASE("the seed example, exactly", "[engine]") {
  for (bj::DType dtype : {bj::float32, bj::float64}) {
    for (auto mode : kModes) {
      INFO(bj::dtype_name(dtype) << ", mode " << static_cast<int>(mode));
      bj::GradientTape g;
      const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}}, dtype);
      g.watch(x);
      const bj::Tensor y = x * x;
      bj::JacobianOptions o;
      o.mode = mode;
      const std::optional<bj::Tensor> jac = g.batch_jacobian(y, x, o);
      REQUIRE(jac.has_value());
      CHECK(jac->shape() == bj::Shape{2, 2, 2});
      CHECK(jac->dtype() == dtype);
      CHECK(jac->to_vector<double>() == std::vector<double>{2, 0, 0, 4, 6, 0, 0, 8});
      if (dtype == bj::float32) CHECK(jac->to_vector<float>() == std::vector<float>{2, 0, 0, 4, 6, 0, 0, 8});
    }
  }
}

TEST_CASE("tanh MLP against its analytic Jacobian W2 diag(1 - a^2) W1", "[engine]") {
  const Mlp net(11);
  for (std::int64_t b : {1, 7, 8, 9, 25, 100}) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(b));
    const auto xv = check::random_values(rng, b * net.n, -1.5, 1.5);
    const auto want = net.analytic(xv, b);
    for (auto mode : kModes) {
      INFO("float64, batch " << b << ", mode " << static_cast<int>(mode));
      const bj::Tensor x = bj::constant(xv, {b, net.n});
      bj::GradientTape g;
      g.watch(x);
      bj::JacobianOptions o;
      o.mode = mode;
      const auto J = g.batch_jacobian(net.forward(x), x, o);
      REQUIRE(J.has_value());
      CHECK(J->shape() == bj::Shape{b, net.m, net.n});
      check::check_close(check::values(*J), want, 1e-13, 1e-14, "J");
    }
    for (auto mode : kModes) {
      INFO("float32, batch " << b << ", mode " << static_cast<int>(mode));
      std::vector<float> xf(xv.begin(), xv.end());
      std::vector<double> xr(xf.begin(), xf.end());
      const auto want32 = net.analytic(xr, b);
      const bj::Tensor x = bj::constant(xf, {b, net.n});
      bj::GradientTape g;
      g.watch(x);
      bj::JacobianOptions o;
      o.mode = mode;
      const auto J = g.batch_jacobian(net.forward(x), x, o);
      REQUIRE(J.has_value());
      CHECK(J->dtype() == bj::float32);
      check::check_close(check::values(*J), want32, 1e-5, 1e-6, "J float32");
    }
  }
}

TEST_CASE("float32 source programs run in float32", "[engine]") {
  // y = x * exp(x) per element: in float32 the Jacobian matches float32
  // arithmetic to float32 accuracy, not float64 to float64's.
  const std::int64_t b = 37;
  std::mt19937_64 rng(2);
  const auto xv = check::random_values(rng, b * 4, -2, 2);
  const std::vector<float> xf(xv.begin(), xv.end());
  const bj::Tensor x = bj::constant(xf, {b, 4});
  bj::GradientTape g(bj::TapeOptions{.persistent = true});
  g.watch(x);
  const bj::Tensor y = x * bj::exp(x);
  CHECK(y.dtype() == bj::float32);
  for (auto mode : kModes) {
    bj::JacobianOptions o;
    o.mode = mode;
    const auto J = g.batch_jacobian(y, x, o);
    REQUIRE(J.has_value());
    CHECK(J->dtype() == bj::float32);
    std::int64_t bad = 0;
    for (std::int64_t i = 0; i < b; ++i)
      for (std::int64_t r = 0; r < 4; ++r)
        for (std::int64_t c = 0; c < 4; ++c) {
          const double xi = xf[static_cast<std::size_t>(i * 4 + r)];
          const double want = r == c ? (1 + xi) * std::exp(xi) : 0.0;
          const double got = J->at({i, r, c});
          if (std::abs(got - want) > 4e-7 * std::max(1.0, std::abs(want))) ++bad;
        }
    CHECK(bad == 0);
  }
}

TEST_CASE("MLP with vector-wide layers: Jacobian rows written from registers equal the buffered path",
          "[engine]") {
  // Widths that are multiples of every vector width: full blocks write the
  // Jacobian rows straight from the matmul's registers (streamed beyond
  // 8 MiB), a partial block goes through the block buffer. Both must match
  // the analytic Jacobian, and a batch of 9 alone (buffered) must equal the
  // same examples of the large call bit for bit.
  const Mlp net(5, 32, 24, 16);
  for (bj::DType dtype : {bj::float64, bj::float32}) {
    for (std::int64_t b : {std::int64_t{64}, std::int64_t{77}, std::int64_t{4101}}) {
      std::mt19937_64 rng(static_cast<std::uint64_t>(b));
      std::vector<double> xv = check::random_values(rng, b * net.n, -1.5, 1.5);
      if (dtype == bj::float32)
        for (double& v : xv) v = static_cast<float>(v);
      const auto want = net.analytic(xv, b);
      const bj::Tensor x = bj::cast(bj::constant(xv, {b, net.n}), dtype);
      bj::GradientTape g(bj::TapeOptions{.persistent = true});
      g.watch(x);
      const bj::Tensor y = net.forward(x);
      const bj::Tensor xs = bj::slice(x, {b - 9, 0}, {9, net.n});
      bj::GradientTape small(bj::TapeOptions{.persistent = true});
      small.watch(xs);
      const bj::Tensor ys = net.forward(xs);
      for (auto mode : kModes)
        for (std::optional<std::int64_t> pi : {std::optional<std::int64_t>{}, std::optional<std::int64_t>{8}}) {
          INFO(bj::dtype_name(dtype) << ", batch " << b << ", mode " << static_cast<int>(mode)
                                     << ", parallel_iterations " << pi.value_or(0));
          bj::JacobianOptions o;
          o.mode = mode;
          o.parallel_iterations = pi;
          const auto J = g.batch_jacobian(y, x, o);
          REQUIRE(J.has_value());
          if (dtype == bj::float64) check::check_close(check::values(*J), want, 1e-13, 1e-14, "J");
          else check::check_close(check::values(*J), want, 1e-5, 1e-6, "J float32");
          const std::vector<double> all = check::values(*J), part = check::values(*small.batch_jacobian(ys, xs, o));
          const std::int64_t per = net.m * net.n;
          CHECK(std::equal(part.begin(), part.end(), all.begin() + (b - 9) * per));
        }
    }
  }
}
