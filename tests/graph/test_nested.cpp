// Derivatives of derivatives: nested tapes, batch_hessian and batch_hvp,
// against central differences of first derivatives (computed by the tape on
// shifted inputs) and against each other.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
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
