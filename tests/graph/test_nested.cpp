// Derivatives of derivatives: nested tapes, batch_hessian and batch_hvp,
// against central differences of first derivatives (computed by the tape on
// shifted inputs) and against each other.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <thread>
#include <vector>

namespace bj = batchjac;

namespace {

using check::with_mode;
using Fn = std::function<bj::Tensor(const bj::Tensor&)>;
const bj::JacobianMode kModes[] = {bj::JacobianMode::forward, bj::JacobianMode::reverse};

// x with element (e, k) of every example e moved by h: [b, n] flat per example.
bj::Tensor shifted(const bj::Tensor& x, std::int64_t k, double h) {
  std::vector<double> v = x.to_vector<double>();
  const std::int64_t b = x.shape()[0], n = x.num_elements() / b;
  for (std::int64_t e = 0; e < b; ++e) v[static_cast<std::size_t>(e * n + k)] += h;
  return bj::constant(v, x.shape(), x.dtype());
}

// The per-example Jacobian of g (itself a derivative) by central
// differences: [b, g..., x...] flat, entry (e, r, k).
std::vector<double> central(const Fn& g, const bj::Tensor& x, double h) {
  const std::int64_t b = x.shape()[0], n = x.num_elements() / b;
  const std::int64_t m = g(x).num_elements() / b;
  std::vector<double> out(static_cast<std::size_t>(b * m * n));
  for (std::int64_t k = 0; k < n; ++k) {
    const std::vector<double> up = g(shifted(x, k, h)).to_vector<double>();
    const std::vector<double> down = g(shifted(x, k, -h)).to_vector<double>();
    for (std::int64_t e = 0; e < b; ++e)
      for (std::int64_t r = 0; r < m; ++r)
        out[static_cast<std::size_t>((e * m + r) * n + k)] =
            (up[static_cast<std::size_t>(e * m + r)] - down[static_cast<std::size_t>(e * m + r)]) / (2 * h);
  }
  return out;
}

// Largest |a - b| over the largest |b| (at least 1).
double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double err = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

// The inner Jacobian of f at x, by a tape of its own.
bj::Tensor jacobian_of(const Fn& f, const bj::Tensor& x, bj::JacobianMode mode = bj::JacobianMode::automatic) {
  bj::GradientTape tape;
  tape.watch(x);
  return *tape.batch_jacobian(f(x), x, with_mode(mode));
}

// A function of three inputs using most elementwise ops with second derivatives.
bj::Tensor mixed(const bj::Tensor& x) {
  const bj::Tensor a = bj::slice(x, {0, 0}, {-1, 1});
  const bj::Tensor b = bj::slice(x, {0, 1}, {-1, 1});
  const bj::Tensor c = bj::slice(x, {0, 2}, {-1, 1});
  return bj::concat({bj::sin(a) * bj::exp(b) + bj::pow(c, 3.0),
                     bj::atan2(a, b) + bj::log(c) * bj::tanh(a * c),
                     bj::sqrt(c) / (1.0 + a * a) + bj::pow(c, b)},
                    1);
}

}  // namespace

TEST_CASE("nested tapes: outer batch_jacobian of an inner one", "[graph][nested]") {
  std::mt19937_64 rng(11);
  const bj::Tensor x = bj::abs(check::random_tensor(rng, {5, 3}, 0.3, 1.2));
  const std::vector<double> want = central([](const bj::Tensor& z) { return jacobian_of(mixed, z); }, x, 1e-5);
  for (auto inner_mode : kModes)
    for (auto outer_mode : kModes) {
      bj::GradientTape outer;
      outer.watch(x);
      bj::GradientTape inner;
      inner.watch(x);
      const bj::Tensor y = mixed(x);
      const auto j = inner.batch_jacobian(y, x, with_mode(inner_mode));
      REQUIRE(j.has_value());
      const auto h = outer.batch_jacobian(*j, x, with_mode(outer_mode));
      REQUIRE(h.has_value());
      REQUIRE(h->shape() == bj::Shape{5, 3, 3, 3});
      CHECK(relative_error(h->to_vector<double>(), want) < 1e-8);
    }
}

namespace {

// d/dx of the inner per-example Jacobian of f, by nested tapes.
std::optional<bj::Tensor> nested(const Fn& f, const bj::Tensor& x, const bj::JacobianOptions& outer_options = {}) {
  bj::GradientTape outer;
  outer.watch(x);
  bj::GradientTape inner;
  inner.watch(x);
  const auto j = inner.batch_jacobian(f(x), x);
  REQUIRE(j.has_value());
  return outer.batch_jacobian(*j, x, outer_options);
}

struct OpCase {
  const char* name;
  Fn f;
  double lo, hi;
};

}  // namespace

TEST_CASE("nested tapes: second derivatives of every elementwise op", "[graph][nested]") {
  using T = const bj::Tensor&;
  const OpCase cases[] = {
      {"square", [](T x) { return bj::square(x); }, -1, 1},
      {"sqrt", [](T x) { return bj::sqrt(x); }, 0.3, 2},
      {"rsqrt", [](T x) { return bj::rsqrt(x); }, 0.3, 2},
      {"reciprocal", [](T x) { return bj::reciprocal(x); }, 0.3, 2},
      {"exp", [](T x) { return bj::exp(x); }, -1, 1},
      {"expm1", [](T x) { return bj::expm1(x); }, -1, 1},
      {"log", [](T x) { return bj::log(x); }, 0.3, 2},
      {"log1p", [](T x) { return bj::log1p(x); }, -0.5, 1},
      {"sin", [](T x) { return bj::sin(x); }, -2, 2},
      {"cos", [](T x) { return bj::cos(x); }, -2, 2},
      {"tan", [](T x) { return bj::tan(x); }, -1, 1},
      {"asin", [](T x) { return bj::asin(x); }, -0.8, 0.8},
      {"acos", [](T x) { return bj::acos(x); }, -0.8, 0.8},
      {"atan", [](T x) { return bj::atan(x); }, -2, 2},
      {"sinh", [](T x) { return bj::sinh(x); }, -1, 1},
      {"cosh", [](T x) { return bj::cosh(x); }, -1, 1},
      {"tanh", [](T x) { return bj::tanh(x); }, -1.5, 1.5},
      {"asinh", [](T x) { return bj::asinh(x); }, -2, 2},
      {"acosh", [](T x) { return bj::acosh(x); }, 1.3, 3},
      {"atanh", [](T x) { return bj::atanh(x); }, -0.8, 0.8},
      {"sigmoid", [](T x) { return bj::sigmoid(x); }, -3, 3},
      {"softplus", [](T x) { return bj::softplus(x); }, -3, 3},
      {"erf", [](T x) { return bj::erf(x); }, -1.5, 1.5},
      {"pow scalar", [](T x) { return bj::pow(x, 2.5); }, 0.3, 2},
      {"pow scalar 0", [](T x) { return bj::pow(x, 0.0) * x; }, 0.3, 2},
      {"relu, abs", [](T x) { return bj::relu(x) * bj::abs(x) + bj::negative(x) * x; }, -1, 1},
      // Binary ops of the two halves of x: [b, 2] -> [b, 1].
      {"pow", [](T x) { return bj::pow(bj::slice(x, {0, 0}, {-1, 1}), bj::slice(x, {0, 1}, {-1, 1})); }, 0.3, 2},
      {"atan2", [](T x) { return bj::atan2(bj::slice(x, {0, 0}, {-1, 1}), bj::slice(x, {0, 1}, {-1, 1})); }, 0.3, 2},
      {"squared_difference",
       [](T x) {
         return bj::squared_difference(bj::slice(x, {0, 0}, {-1, 1}), bj::slice(x, {0, 1}, {-1, 1})) * x;
       },
       -1, 1},
      {"maximum, minimum",
       [](T x) {
         const bj::Tensor a = bj::slice(x, {0, 0}, {-1, 1}), b = bj::slice(x, {0, 1}, {-1, 1});
         return bj::maximum(a, b) * bj::minimum(a, b) * x;
       },
       -1, 1},
      {"divide", [](T x) { return bj::slice(x, {0, 0}, {-1, 1}) / bj::slice(x, {0, 1}, {-1, 1}); }, 0.3, 2},
      {"where", [](T x) { return bj::where(x > 0.0, bj::exp(x), bj::sin(x) * x); }, -1, 1},
  };
  std::mt19937_64 rng(5);
  for (const OpCase& c : cases) {
    INFO(c.name);
    const bj::Tensor x = check::random_tensor(rng, {4, 2}, c.lo, c.hi);
    const auto h = nested(c.f, x);
    const std::vector<double> want = central([&](const bj::Tensor& z) { return jacobian_of(c.f, z); }, x, 1e-5);
    bool zero = true;
    for (double v : want) zero = zero && std::abs(v) < 1e-9;
    if (zero) {  // piecewise linear: the outer tape sees no connection
      CHECK((!h || relative_error(h->to_vector<double>(), want) < 1e-12));
      continue;
    }
    REQUIRE(h.has_value());
    CHECK(relative_error(h->to_vector<double>(), want) < 1e-7);
  }
}

TEST_CASE("nested tapes: depth 3, against differences of depth 2", "[graph][nested]") {
  std::mt19937_64 rng(7);
  const bj::Tensor x = check::random_tensor(rng, {3, 2}, 0.4, 1.0);
  const Fn f = [](const bj::Tensor& z) { return bj::exp(z) * bj::sin(bj::reduce_sum(z * z, {1}, true)); };
  const Fn second = [&](const bj::Tensor& z) { return *nested(f, z); };
  const std::vector<double> want = central(second, x, 1e-4);
  for (auto mode : kModes) {
    bj::GradientTape t3;
    t3.watch(x);
    bj::GradientTape t2;
    t2.watch(x);
    bj::GradientTape t1;
    t1.watch(x);
    const auto j1 = t1.batch_jacobian(f(x), x, with_mode(mode));
    const auto j2 = t2.batch_jacobian(*j1, x, with_mode(mode));
    const auto j3 = t3.batch_jacobian(*j2, x, with_mode(mode));
    REQUIRE(j3.has_value());
    REQUIRE(j3->shape() == bj::Shape{3, 2, 2, 2, 2});
    CHECK(relative_error(j3->to_vector<double>(), want) < 1e-6);
  }
}

TEST_CASE("nested tapes: jacobian and gradient, and derivatives with respect to weights",
          "[graph][nested]") {
  std::mt19937_64 rng(9);
  const bj::Tensor x = check::random_tensor(rng, {3, 2}, -1, 1);
  const bj::Tensor w = check::random_tensor(rng, {2, 2}, -1, 1);
  SECTION("outer gradient of an inner gradient: the Hessian summed over rows") {
    bj::GradientTape outer;
    outer.watch(x);
    bj::GradientTape inner;
    inner.watch(x);
    const auto g = inner.gradient(bj::reduce_sum(bj::sin(x) * x * x, {1}), x);
    const auto h = outer.jacobian(*g, x);
    REQUIRE(h.has_value());
    // d/dx_j (cos x_j x_j^2 + 2 x_j sin x_j): diagonal across every element.
    for (std::int64_t e = 0; e < 3; ++e)
      for (std::int64_t k = 0; k < 2; ++k) {
        const double v = x.at({e, k});
        const double want = -std::sin(v) * v * v + 4 * v * std::cos(v) + 2 * std::sin(v);
        CHECK(std::abs(h->at({e, k, e, k}) - want) < 1e-12);
        CHECK(h->at({e, k, e, 1 - k}) == 0.0);
      }
  }
  SECTION("a Jacobian's derivative with respect to a weight the outer tape watches") {
    // J = diag(1 - tanh(x w)^2) w^T per example; d J / d w by differences.
    const auto jac = [&](const bj::Tensor& weights) {
      bj::GradientTape inner;
      inner.watch(x);
      return *inner.batch_jacobian(bj::tanh(bj::matmul(x, weights)), x);
    };
    bj::GradientTape outer;
    outer.watch(w);
    const auto dj = outer.jacobian(jac(w), w);
    REQUIRE(dj.has_value());
    REQUIRE(dj->shape() == bj::Shape{3, 2, 2, 2, 2});
    std::vector<double> want(dj->to_vector<double>().size());
    const std::int64_t per = 12;  // entries of J
    for (std::int64_t k = 0; k < 4; ++k) {
      std::vector<double> up = w.to_vector<double>(), down = up;
      up[static_cast<std::size_t>(k)] += 1e-6;
      down[static_cast<std::size_t>(k)] -= 1e-6;
      const auto ju = jac(bj::constant(up, w.shape())).to_vector<double>();
      const auto jd = jac(bj::constant(down, w.shape())).to_vector<double>();
      for (std::int64_t i = 0; i < per; ++i)
        want[static_cast<std::size_t>(i * 4 + k)] = (ju[static_cast<std::size_t>(i)] - jd[static_cast<std::size_t>(i)]) / 2e-6;
    }
    CHECK(relative_error(dj->to_vector<double>(), want) < 1e-8);
  }
}

TEST_CASE("nested tapes: unconnected results follow unconnected_gradients", "[graph][nested]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  bj::JacobianOptions zeros;
  zeros.unconnected_gradients = bj::UnconnectedGradients::zero;
  SECTION("a linear function's Jacobian is constant") {
    bj::GradientTape outer(bj::TapeOptions{.persistent = true});
    outer.watch(x);
    bj::GradientTape inner;
    inner.watch(x);
    const auto j = inner.batch_jacobian(x * 3.0 + 1.0, x);
    REQUIRE(j.has_value());
    CHECK_FALSE(outer.batch_jacobian(*j, x).has_value());
    const auto z = outer.batch_jacobian(*j, x, zeros);
    REQUIRE(z.has_value());
    CHECK(z->shape() == bj::Shape{2, 2, 2, 2});
    for (double v : z->to_vector<double>()) CHECK(v == 0.0);
  }
  SECTION("an inner tape the outer one does not see") {
    bj::GradientTape inner;
    inner.watch(x);
    const bj::Tensor y = x * x;
    bj::GradientTape outer;  // created after y: it recorded nothing of y
    outer.watch(x);
    const auto j = inner.batch_jacobian(y, x);
    REQUIRE(j.has_value());
    // The derivative's ops read x (2x), which the outer tape sees, as TF's would.
    const auto h = outer.batch_jacobian(*j, x);
    REQUIRE(h.has_value());
    CHECK(h->at({1, 1, 1, 1}) == 2.0);
    CHECK(h->at({1, 0, 1, 1}) == 0.0);
    bj::GradientTape late;  // watching x * x only: the derivative's ops do not read it
    late.watch(y);
    bj::GradientTape inner2;
    inner2.watch(x);
    const bj::Tensor y2 = bj::sin(x);
    const auto j2 = inner2.batch_jacobian(y2, x);
    REQUIRE(j2.has_value());
    CHECK_FALSE(late.batch_jacobian(*j2, y).has_value());
  }
  SECTION("a tape does not record its own answers") {
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const auto j = tape.batch_jacobian(x * x, x);
    REQUIRE(j.has_value());
    CHECK_FALSE(tape.batch_jacobian(*j, x).has_value());
  }
  SECTION("_into forms are not recorded") {
    bj::GradientTape outer;
    outer.watch(x);
    bj::GradientTape inner;
    inner.watch(x);
    std::vector<double> j(8);
    CHECK(inner.batch_jacobian_into(x * x, x, std::span<double>(j)));
    CHECK(j[0] == 2.0);
  }
}

TEST_CASE("batch_hessian and batch_hvp: against nested tapes and differences", "[graph][nested]") {
  std::mt19937_64 rng(13);
  const bj::Tensor x = check::random_tensor(rng, {6, 3}, 0.3, 1.1);
  const bj::Tensor v = check::random_tensor(rng, {6, 3}, -1, 1);
  const auto energy = [](const bj::Tensor& z) {
    return bj::reduce_sum(bj::exp(z) * bj::log(z) + z * bj::sin(bj::reduce_sum(z, {1}, true)), {1});
  };
  const auto gradient = [&](const bj::Tensor& z) {
    bj::GradientTape tape;
    tape.watch(z);
    return *tape.gradient(energy(z), z);
  };
  const std::vector<double> want = central(gradient, x, 1e-5);
  for (auto mode : {bj::JacobianMode::automatic, bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor e = energy(x);
    const auto h = bj::batch_hessian(tape, e, x, with_mode(mode));
    REQUIRE(h.has_value());
    REQUIRE(h->shape() == bj::Shape{6, 3, 3});
    CHECK(relative_error(h->to_vector<double>(), want) < 1e-8);
    for (std::int64_t i = 0; i < 6; ++i)
      for (std::int64_t a = 0; a < 3; ++a)
        for (std::int64_t b = 0; b < 3; ++b) CHECK(h->at({i, a, b}) == h->at({i, b, a}));
    CHECK_THROWS_AS(bj::batch_hessian(tape, e, x), bj::RuntimeError);  // it answered
  }
  SECTION("a [b, 1] target, and the Hessian-vector products") {
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor e = bj::reshape(energy(x), {6, 1});
    const auto h = bj::batch_hessian(tape, e, x);
    const auto hv = bj::batch_hvp(tape, e, x, v);
    REQUIRE(h.has_value());
    REQUIRE(hv.has_value());
    REQUIRE(hv->shape() == bj::Shape{6, 3});
    std::vector<double> product(18, 0.0);
    for (std::int64_t i = 0; i < 6; ++i)
      for (std::int64_t a = 0; a < 3; ++a)
        for (std::int64_t b = 0; b < 3; ++b) product[static_cast<std::size_t>(i * 3 + a)] += h->at({i, a, b}) * v.at({i, b});
    CHECK(relative_error(hv->to_vector<double>(), product) < 1e-12);
    // The nested tapes give the same Hessian.
    bj::GradientTape outer;
    outer.watch(x);
    bj::GradientTape inner;
    inner.watch(x);
    const auto j = inner.batch_jacobian(bj::reshape(energy(x), {6, 1}), x);
    const auto hn = outer.batch_jacobian(bj::reshape(*j, {6, 3}), x);
    REQUIRE(hn.has_value());
    CHECK(relative_error(hn->to_vector<double>(), h->to_vector<double>()) < 1e-13);
  }
  SECTION("a third derivative: batch_hessian under an outer tape") {
    const auto hessian = [&](const bj::Tensor& z) {
      bj::GradientTape tape;
      tape.watch(z);
      return *bj::batch_hessian(tape, energy(z), z);
    };
    const std::vector<double> third = central(hessian, x, 1e-4);
    bj::GradientTape outer;
    outer.watch(x);
    bj::GradientTape tape;
    tape.watch(x);
    const auto h = bj::batch_hessian(tape, energy(x), x);
    const auto d3 = outer.batch_jacobian(*h, x);
    REQUIRE(d3.has_value());
    REQUIRE(d3->shape() == bj::Shape{6, 3, 3, 3});
    CHECK(relative_error(d3->to_vector<double>(), third) < 1e-6);
  }
}

TEST_CASE("batch_hessian and batch_hvp: errors and unconnected targets", "[graph][nested]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = x * x;
  const bj::Tensor e = bj::reduce_sum(y, {1});
  CHECK_THROWS_AS(bj::batch_hessian(tape, y, x), bj::ValueError);  // [b, 2]: not a scalar per example
  CHECK_THROWS_AS(bj::batch_hessian(tape, e, bj::reshape(x, {4})), bj::ValueError);
  CHECK_THROWS_AS(bj::batch_hvp(tape, e, x, bj::constant({1., 2.})), bj::ValueError);
  CHECK_THROWS_AS(bj::batch_hvp(tape, e, x, bj::cast(x, bj::float32)), bj::ValueError);
  // Examples mixed: ValueError naming the op.
  const bj::Tensor mixed = bj::reduce_sum(x, {0, 1}) * bj::reduce_sum(x, {1});
  CHECK_THROWS_AS(bj::batch_hessian(tape, mixed, x), bj::ValueError);
  CHECK_THROWS_AS(bj::batch_hvp(tape, mixed, x, x), bj::ValueError);
  bj::JacobianOptions zeros;
  zeros.unconnected_gradients = bj::UnconnectedGradients::zero;
  const bj::Tensor linear = bj::reduce_sum(x * 2.0, {1});
  CHECK_FALSE(bj::batch_hessian(tape, linear, x).has_value());
  const auto z = bj::batch_hessian(tape, linear, x, zeros);
  REQUIRE(z.has_value());
  CHECK(z->shape() == bj::Shape{2, 2, 2});
  const bj::Tensor other = bj::constant({1., 2.});
  CHECK_FALSE(bj::batch_hvp(tape, other, x, x).has_value());
  const auto hz = bj::batch_hvp(tape, other, x, x, bj::UnconnectedGradients::zero);
  REQUIRE(hz.has_value());
  CHECK(hz->shape() == x.shape());
  // The user's tape recorded nothing of the derivatives.
  const auto j = tape.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(j->at({1, 1, 1}) == 8.0);
}

TEST_CASE("Function::batch_hessian: traced once, the tape's numbers", "[graph][nested]") {
  std::mt19937_64 rng(17);
  const auto energy = [](const bj::Tensor& z) {  // [b, 1]: a Function's output has rank >= 2
    return bj::reduce_sum(bj::exp(z) * bj::log(z) + z * bj::sin(bj::reduce_sum(z, {1}, true)), {1}, true);
  };
  const bj::Function fn = bj::trace(energy, bj::TensorSpec{bj::Shape{-1, 3}, bj::float64});
  for (std::int64_t b : {1, 7, 9}) {
    const bj::Tensor x = check::random_tensor(rng, {b, 3}, 0.3, 1.1);
    bj::GradientTape tape;
    tape.watch(x);
    const auto want = bj::batch_hessian(tape, energy(x), x);
    const auto h = fn.batch_hessian(x);
    REQUIRE(h.has_value());
    REQUIRE(h->shape() == bj::Shape{b, 3, 3});
    CHECK(h->to_vector<double>() == want->to_vector<double>());
  }
  SECTION("with a per-example constant, and errors") {
    const bj::Function with_aux = bj::trace(
        [](const bj::Tensor& z, const bj::Tensor& p) { return bj::reduce_sum(bj::square(z * p) * z, {1}, true); },
        bj::TensorSpec{bj::Shape{-1, 2}, bj::float64}, bj::TensorSpec{bj::Shape{-1, 2}, bj::float64});
    const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
    const bj::Tensor p = bj::constant({{0.5, 1.}, {2., 3.}});
    const auto h = with_aux.batch_hessian(x, p);
    REQUIRE(h.has_value());
    // d^2/dz^2 of p^2 z^3 = 6 p^2 z on the diagonal.
    CHECK(h->at({1, 1, 1}) == 6 * 9. * 4.);
    CHECK(h->at({1, 0, 1}) == 0.0);
    const bj::Function vector_valued = bj::trace([](const bj::Tensor& z) { return z * z; },
                                                 bj::TensorSpec{bj::Shape{-1, 2}, bj::float64});
    CHECK_THROWS_AS(vector_valued.batch_hessian(x), bj::ValueError);
    const bj::Function linear = bj::trace([](const bj::Tensor& z) { return bj::reduce_sum(z, {1}, true); },
                                          bj::TensorSpec{bj::Shape{-1, 2}, bj::float64});
    CHECK_FALSE(linear.batch_hessian(x).has_value());
  }
}

TEST_CASE("nested tapes: review cases", "[graph][nested]") {
  const bj::Tensor x = bj::constant({{0.3, 0.7}, {1.1, -0.4}});
  SECTION("an outer tape made after the forward pass gets the whole second derivative") {
    bj::GradientTape inner;
    inner.watch(x);
    const bj::Tensor y = bj::tanh(x) + x * x;
    bj::GradientTape outer;
    outer.watch(x);
    const auto h = outer.batch_jacobian(*inner.batch_jacobian(y, x), x);
    REQUIRE(h.has_value());
    for (std::int64_t e = 0; e < 2; ++e)
      for (std::int64_t k = 0; k < 2; ++k) {
        const double t = std::tanh(x.at({e, k}));
        CHECK(std::abs(h->at({e, k, k, k}) - (2.0 - 2.0 * t * (1.0 - t * t))) < 1e-14);
      }
  }
  SECTION("pow of a long chain: the partial's rule grows the node list") {
    for (int k = 0; k < 12; ++k) {
      bj::GradientTape t;
      t.watch(x);
      bj::Tensor z = bj::abs(x) + 0.5;
      for (int i = 0; i < k; ++i) z = z * 1.0001;
      const auto h = bj::batch_hessian(t, bj::reduce_sum(bj::pow(z, z), {1}), x);
      REQUIRE(h.has_value());
    }
  }
  SECTION("batch_hessian checks that examples stay apart") {
    bj::GradientTape t;
    t.watch(x);
    const bj::Tensor e = bj::reduce_sum(x * x * x, {1}) + bj::reduce_sum(x);
    CHECK_THROWS_AS(bj::batch_hessian(t, e, x), bj::ValueError);
  }
  SECTION("reduce_prod has no second derivative: a ValueError that says so") {
    bj::GradientTape t;
    t.watch(x);
    CHECK_THROWS_WITH(bj::batch_hessian(t, bj::reduce_prod(x, {1}), x), Catch::Contains("no second derivative"));
  }
  SECTION("a Function's gradient is traced once, whatever the batch") {
    int calls = 0;
    const bj::Function fn = bj::trace(
        [&calls](const bj::Tensor& z) {
          ++calls;
          return bj::reduce_sum(bj::sin(z) * z * z, {1}, true);
        },
        bj::TensorSpec{bj::Shape{-1, 2}, bj::float64});
    std::mt19937_64 rng(3);
    (void)fn.batch_hessian(x);
    const int after_first = calls;
    for (std::int64_t b : {1, 3, 5, 6, 7, 9, 11}) {
      const auto h = fn.batch_hessian(check::random_tensor(rng, {b, 2}, -1, 1));
      REQUIRE(h.has_value());
    }
    CHECK(calls == after_first);
  }
}

// A gradient derived as ops holds the scatters that transpose index maps
// (slice_transpose, gather_transpose, ...); batch_hessian and an outer
// tape differentiate them per example again (their batch-axis rule).
TEST_CASE("batch_hessian through every index map", "[graph][nested]") {
  std::mt19937_64 rng(23);
  const std::vector<std::pair<const char*, Fn>> maps = {
      {"slice", [](const bj::Tensor& x) { return bj::slice(x, {0, 1}, {-1, 2}); }},
      {"gather", [](const bj::Tensor& x) { return bj::gather(x, {2, 0, 2}, 1); }},
      {"transpose", [](const bj::Tensor& x) { return bj::transpose(bj::reshape(x, {-1, 2, 3}), {0, 2, 1}); }},
      {"pad", [](const bj::Tensor& x) { return bj::pad(x, {{0, 0}, {1, 2}}); }},
      {"tile", [](const bj::Tensor& x) { return bj::tile(x, {1, 2}); }},
      {"roll", [](const bj::Tensor& x) { return bj::roll(x, 1, 1); }},
      {"repeat", [](const bj::Tensor& x) { return bj::repeat(x, {2, 1, 0, 3, 1, 1}, 1); }},
  };
  const bj::Tensor x = check::random_tensor(rng, {5, 6}, -1.0, 1.0);
  for (const auto& [name, map] : maps) {
    INFO(name);
    // Not separable: sum(sin(m)) * sum(m^2) over each example's elements.
    const Fn f = [map = map](const bj::Tensor& z) {
      const bj::Tensor m = bj::reshape(map(z), {5, -1});
      return bj::reduce_sum(bj::sin(m), {1}) * bj::reduce_sum(m * m, {1});
    };
    const Fn gradient = [&f](const bj::Tensor& z) {
      bj::GradientTape tape;
      tape.watch(z);
      return *tape.gradient(f(z), z);
    };
    const std::vector<double> want = central(gradient, x, 1e-5);
    for (auto mode : kModes) {
      bj::GradientTape tape;
      tape.watch(x);
      const auto h = bj::batch_hessian(tape, f(x), x, with_mode(mode));
      REQUIRE(h.has_value());
      REQUIRE(h->shape() == bj::Shape{5, 6, 6});
      CHECK(relative_error(h->to_vector<double>(), want) < 1e-8);
    }
    bj::GradientTape outer;
    outer.watch(x);
    bj::Tensor g = x;
    {
      bj::GradientTape inner;
      inner.watch(x);
      g = *inner.gradient(f(x), x);
    }
    const auto h = outer.batch_jacobian(g, x);
    REQUIRE(h.has_value());
    CHECK(relative_error(h->to_vector<double>(), want) < 1e-8);
  }
}

TEST_CASE("Function::batch_hessian from many threads at once", "[graph][nested][threads]") {
  // The first calls race to trace the gradient; every thread gets the numbers
  // of one thread alone.
  const bj::Function fn = bj::trace(
      [](const bj::Tensor& z) { return bj::reduce_sum(bj::exp(z) * bj::sin(z) * z, {1}, true); },
      bj::TensorSpec{bj::Shape{-1, 3}, bj::float64});
  std::mt19937_64 rng(29);
  std::vector<bj::Tensor> inputs;
  for (int t = 0; t < 4; ++t) inputs.push_back(check::random_tensor(rng, {5 + t, 3}, -1, 1));
  std::vector<std::vector<double>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] { got[static_cast<std::size_t>(t)] = fn.batch_hessian(inputs[static_cast<std::size_t>(t)])->to_vector<double>(); });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    bj::GradientTape tape;
    tape.watch(inputs[static_cast<std::size_t>(t)]);
    const bj::Tensor& x = inputs[static_cast<std::size_t>(t)];
    const auto want = bj::batch_hessian(tape, bj::reduce_sum(bj::exp(x) * bj::sin(x) * x, {1}, true), x);
    CHECK(got[static_cast<std::size_t>(t)] == want->to_vector<double>());
  }
}

TEST_CASE("second derivatives of empty batches and empty examples", "[graph][nested]") {
  for (const bj::Shape& shape : {bj::Shape{0, 3}, bj::Shape{2, 0}}) {
    INFO(shape.to_string());
    const bj::Tensor x = bj::zeros(shape);
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor e = bj::reduce_sum(bj::exp(x) * x, {1});
    const auto h = bj::batch_hessian(tape, e, x);
    REQUIRE(h.has_value());
    CHECK(h->shape() == bj::Shape{shape[0], shape[1], shape[1]});
    const auto hv = bj::batch_hvp(tape, e, x, x);
    REQUIRE(hv.has_value());
    CHECK(hv->shape() == shape);
    bj::GradientTape outer;
    outer.watch(x);
    bj::GradientTape inner;
    inner.watch(x);
    const auto j = inner.batch_jacobian(bj::exp(x) * x, x);
    REQUIRE(j.has_value());
    const auto nested = outer.batch_jacobian(*j, x);
    // Examples of no element are connected (an empty result); with no
    // example at all the outer tape sees no connection (README).
    CHECK(nested.has_value() == (shape[0] > 0));
    if (nested) CHECK(nested->shape() == bj::Shape{2, 0, 0, 0});
  }
}

TEST_CASE("batch_hessian: the same bits for every option, mirrored in the engine or after it",
          "[graph][nested]") {
  // parallel_iterations = 1 cuts forward mode into chunks of one direction:
  // the engine cannot copy a block's entries across the diagonal then, and
  // the call does it in a pass over the result. Both give the same bits.
  std::mt19937_64 rng(31);
  const auto energies = std::vector<Fn>{
      [](const bj::Tensor& z) { return bj::reduce_sum(bj::exp(z) * bj::log(z) + z * bj::sin(bj::reduce_sum(z, {1}, true)), {1}); },
      [](const bj::Tensor& z) {  // a 2x2 determinant's log, with a division by a per-example value
        const bj::Tensor m = bj::reshape(z, {-1, 2, 2});
        return bj::log(bj::abs(bj::linalg::det(m)) + 1.0) / bj::reduce_sum(z * z, {1});
      }};
  for (const Fn& energy : energies)
    for (std::int64_t b : {1, 9, 17}) {
      const bj::Tensor x = check::random_tensor(rng, {b, 4}, 0.3, 1.1);
      std::optional<std::vector<double>> first;
      for (const bj::JacobianOptions& o :
           check::options({.modes = {bj::JacobianMode::automatic, bj::JacobianMode::forward, bj::JacobianMode::reverse},
                           .parallel_iterations = {std::nullopt, 1, 3},
                           .max_threads = {1, 2}})) {
        INFO("batch " << b << ", " << check::describe(o));
        bj::GradientTape tape;
        tape.watch(x);
        const auto h = bj::batch_hessian(tape, energy(x), x, o);
        REQUIRE(h.has_value());
        const std::vector<double> v = h->to_vector<double>();
        for (std::int64_t i = 0; i < b; ++i)
          for (std::int64_t r = 0; r < 4; ++r)
            for (std::int64_t c = 0; c < r; ++c) CHECK(h->at({i, r, c}) == h->at({i, c, r}));
        if (o.mode == bj::JacobianMode::reverse) continue;  // another order of sums
        if (!first) first = v;
        CHECK(v == *first);
      }
    }
}

// A Hessian's plan computes no entry below the diagonal (the call copies
// them). The plain Jacobian of the same gradient (nested tapes), before and
// after, keeps every entry, and the Hessian's copies agree with it.
// (Plan keys include graph::Program::symmetric, and the engine refuses to
// run a Hessian's plan for a Jacobian: std::logic_error.)
TEST_CASE("batch_hessian's copies below the diagonal, and a plain Jacobian's entries", "[graph][nested]") {
  std::mt19937_64 rng(5);
  const bj::Tensor x = check::random_tensor(rng, {9, 3}, 0.4, 1.2);
  auto energy = [](const bj::Tensor& z) {  // every second derivative nonzero
    return bj::reduce_sum(bj::exp(z) * bj::sin(z), {1}) + bj::sin(bj::reduce_sum(z, {1})) * bj::reduce_sum(z * z, {1});
  };
  auto plain = [&] {  // the gradient's batch_jacobian, by nested tapes
    bj::GradientTape outer;
    outer.watch(x);
    bj::GradientTape inner;
    inner.watch(x);
    const bj::Tensor e = energy(x);
    const auto g = inner.gradient(e, x);
    REQUIRE(g.has_value());
    const auto j = outer.batch_jacobian(*g, x);
    REQUIRE(j.has_value());
    return j->to_vector<double>();
  };
  auto hessian = [&] {
    bj::GradientTape tape;
    tape.watch(x);
    const auto h = bj::batch_hessian(tape, energy(x), x);
    REQUIRE(h.has_value());
    return h->to_vector<double>();
  };
  for (const char* sparse : {"0", "1"}) {
    const check::ScopedEnv env("BATCHJAC_SPARSE", sparse);
    const std::vector<double> before = plain(), h = hessian(), after = plain();
    INFO("BATCHJAC_SPARSE=" << sparse);
    CHECK(before == after);
    REQUIRE(h.size() == after.size());
    for (std::size_t k = 0; k < h.size(); ++k) {
      CHECK(after[k] == Approx(h[k]).epsilon(1e-13));
      CHECK(after[k] != 0.0);  // below the diagonal too
    }
  }
}

TEST_CASE("batch_hessian and batch_hvp of an empty batch follow unconnected_gradients", "[graph][nested]") {
  const bj::Tensor x = bj::zeros({0, 3});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor other = bj::zeros({0});
  CHECK_FALSE(bj::batch_hessian(tape, other, x).has_value());
  CHECK_FALSE(bj::batch_hvp(tape, other, x, x).has_value());
  bj::JacobianOptions zeros;
  zeros.unconnected_gradients = bj::UnconnectedGradients::zero;
  REQUIRE(bj::batch_hessian(tape, other, x, zeros).has_value());
  REQUIRE(bj::batch_hvp(tape, other, x, x, bj::UnconnectedGradients::zero).has_value());
  REQUIRE(bj::batch_hessian(tape, bj::reduce_sum(bj::exp(x), {1}), x).has_value());
}
