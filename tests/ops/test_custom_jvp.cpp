// custom_jvp: rules that are the true derivative pass the derivative table
// (forward == reverse == central differences); rules that are not are
// followed in both modes; overflow, batch-axis and linearity errors; kept
// plans tell rules apart.
#include "engine/plan_cache.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace bj = batchjac;
using check::Case;
using check::Context;
using Tensors = std::vector<bj::Tensor>;

namespace {
const int kRegistered = check::register_ops({"custom_jvp"});

const bj::JacobianMode kModes[] = {bj::JacobianMode::forward, bj::JacobianMode::reverse,
                                   bj::JacobianMode::automatic};

// log(1 + exp(x)) with the derivative sigmoid(x), which does not overflow.
const bj::CustomJvp log1pexp = bj::custom_jvp(
    [](const Tensors& x) { return bj::log(1.0 + bj::exp(x[0])); },
    [](const Tensors& x, const bj::Tensor&, const Tensors& t) { return t[0] * bj::sigmoid(x[0]); });

void run(const std::string& what, const bj::Shape& example, check::Fn f) {
  Case c;
  c.name = "custom_jvp: " + what;
  c.example = example;
  c.f = std::move(f);
  check::check_case(c);
}
}  // namespace

TEST_CASE("custom_jvp: rules that are the derivative, derivative check table", "[ops][custom_jvp]") {
  run("log(1 + exp(x)), rule t sigmoid(x)", {3, 2},
      [](const bj::Tensor& x, const Context&) { return log1pexp(x * 3.0); });
  run("exp(x), rule t y (the result reused)", {4},
      [](const bj::Tensor& x, const Context&) {
        const auto f = bj::custom_jvp([](const Tensors& a) { return bj::exp(a[0]); },
                                      [](const Tensors&, const bj::Tensor& y, const Tensors& t) { return t[0] * y; });
        return f(bj::sin(x)) * x;
      });
  run("two inputs a sin(b), rule t_a sin(b) + a cos(b) t_b", {3},
      [](const bj::Tensor& x, const Context& c) {
        const auto f = bj::custom_jvp(
            [](const Tensors& a) { return a[0] * bj::sin(a[1]); },
            [](const Tensors& a, const bj::Tensor&, const Tensors& t) {
              return t[0] * bj::sin(a[1]) + a[0] * bj::cos(a[1]) * t[1];
            });
        return f({x, bj::exp(x) * c.per_example(1, {3})});
      });
  run("an input not from the source: its tangent is zero", {3},
      [](const bj::Tensor& x, const Context& c) {
        const auto f = bj::custom_jvp(
            [](const Tensors& a) { return a[0] * bj::sin(a[1]); },
            [](const Tensors& a, const bj::Tensor&, const Tensors& t) {
              return t[0] * bj::sin(a[1]) + a[0] * bj::cos(a[1]) * t[1];
            });
        return f({x, c.per_example(3, {3})}) + f({c.shared(4, {3}), x});
      });
  run("tanh(x W) with shared W, closed form (1 - y^2) (t W)", {2, 3},
      [](const bj::Tensor& x, const Context& c) {
        const bj::Tensor w = c.shared(2, {3, 4});
        const auto f = bj::custom_jvp(
            [w](const Tensors& a) { return bj::tanh(bj::matmul(a[0], w)); },
            [w](const Tensors&, const bj::Tensor& y, const Tensors& t) {
              return (1.0 - y * y) * bj::matmul(t[0], w);
            });
        return f(x);
      });
  run("norms: reduce_sum(x^2) over axis 1, rule 2 reduce_sum(x t)", {3, 2},
      [](const bj::Tensor& x, const Context&) {
        const auto f = bj::custom_jvp(
            [](const Tensors& a) { return bj::reduce_sum(a[0] * a[0], {1}, true); },
            [](const Tensors& a, const bj::Tensor&, const Tensors& t) {
              return 2.0 * bj::reduce_sum(a[0] * t[0], {1}, true);
            });
        return f(x) * x;
      });
  run("a rule of index and shape ops on the tangent (identity derivative)", {2, 3},
      [](const bj::Tensor& x, const Context&) {
        const auto f = bj::custom_jvp(
            [](const Tensors& a) { return bj::transpose(a[0], {0, 2, 1}) * 1.0; },
            [](const Tensors&, const bj::Tensor&, const Tensors& t) {
              return bj::reshape(bj::transpose(bj::reshape(t[0], {-1, 2, 3}), {0, 2, 1}), {-1, 3, 2});
            });
        return bj::sin(f(x));
      });
}

TEST_CASE("custom_jvp: the rule, not f's derivative, in every mode (TF custom_gradient)", "[ops][custom_jvp]") {
  // A surrogate: f = x^2 differentiated as 4 x_dot (TF's
  // testCustomGradientInEagerAndGraph), and a straight-through sign.
  const auto square4 = bj::custom_jvp([](const Tensors& x) { return x[0] * x[0]; },
                                      [](const Tensors&, const bj::Tensor&, const Tensors& t) { return 4.0 * t[0]; });
  const auto straight = bj::custom_jvp([](const Tensors& x) { return bj::sign(x[0]); },
                                       [](const Tensors&, const bj::Tensor&, const Tensors& t) { return t[0]; });
  const bj::Tensor x = bj::constant({{1., -2., 3.}, {0.5, 0., -1.}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = square4(x);
  const bj::Tensor s = straight(x);
  CHECK(check::values(y) == std::vector<double>{1, 4, 9, 0.25, 0, 1});  // f's value
  CHECK(check::values(s) == std::vector<double>{1, -1, 1, 1, 0, -1});
  for (auto mode : kModes) {
    const auto j = tape.batch_jacobian(y, x, check::with_mode(mode));
    REQUIRE(j.has_value());
    const auto js = tape.batch_jacobian(s, x, check::with_mode(mode));
    REQUIRE(js.has_value());
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t r = 0; r < 3; ++r)
        for (std::int64_t c = 0; c < 3; ++c) {
          CHECK(j->at({b, r, c}) == (r == c ? 4.0 : 0.0));
          CHECK(js->at({b, r, c}) == (r == c ? 1.0 : 0.0));
        }
  }
  const auto g = tape.gradient(y, x);
  REQUIRE(g.has_value());
  CHECK(check::values(*g) == std::vector<double>(6, 4.0));
  // TF's test itself: a scalar c = 1, gradient 4.
  const bj::Tensor c = bj::constant(1.0);
  bj::GradientTape t;
  t.watch(c);
  const auto gc = t.gradient(square4(c), c);
  REQUIRE(gc.has_value());
  CHECK(gc->at({}) == 4.0);
}

TEST_CASE("custom_jvp: the automatic derivative overflows, the rule does not", "[ops][custom_jvp]") {
  // d/dx log(1 + exp(x)) at x = 800: exp overflows, so the automatic
  // derivative, exp(x) / (1 + exp(x)) through the chain rule, is not 1.
  const bj::Tensor x = bj::constant({{0.5, 40.}, {800., -800.}});
  const std::vector<double> want{1 / (1 + std::exp(-0.5)), 1 / (1 + std::exp(-40.)), 1.0, 0.0};
  for (auto mode : kModes) {
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const auto automatic = tape.batch_jacobian(bj::log(1.0 + bj::exp(x)), x, check::with_mode(mode));
    REQUIRE(automatic.has_value());
    CHECK_FALSE(automatic->at({1, 0, 0}) == 1.0);
    const auto custom = tape.batch_jacobian(log1pexp(x), x, check::with_mode(mode));
    REQUIRE(custom.has_value());
    CHECK(custom->at({0, 0, 0}) == Approx(want[0]).epsilon(1e-14));
    CHECK(custom->at({0, 1, 1}) == Approx(want[1]).epsilon(1e-14));
    CHECK(custom->at({1, 0, 0}) == 1.0);
    CHECK(custom->at({1, 1, 1}) == 0.0);
    CHECK(custom->at({1, 0, 1}) == 0.0);
  }
}

TEST_CASE("custom_jvp: a rule that mixes examples is a ValueError naming its op", "[ops][custom_jvp][errors]") {
  const auto mixing = bj::custom_jvp(
      [](const Tensors& x) { return x[0] * 2.0; },
      [](const Tensors&, const bj::Tensor&, const Tensors& t) { return t[0] - bj::reduce_sum(t[0], {0}, true); });
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}, {5., 6.}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = mixing(x);
  CHECK_THROWS_WITH(tape.batch_jacobian(y, x), Catch::StartsWith("reduce_sum:") && Catch::Contains("example"));
  // The full Jacobian follows the rule: d y_i / d x_k = delta_ik - 1 per column.
  const auto j = tape.jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(j->at({0, 1, 0, 1}) == 0.0);
  CHECK(j->at({0, 1, 2, 1}) == -1.0);
  CHECK(j->at({0, 1, 0, 0}) == 0.0);
  const auto jr = tape.jacobian(y, x, check::with_mode(bj::JacobianMode::reverse));
  REQUIRE(jr.has_value());
  check::check_close(*jr, *j, 0, 0, "reverse == forward");
}

TEST_CASE("custom_jvp: errors", "[ops][custom_jvp][errors]") {
  const bj::Tensor x = bj::constant({{1., 2.}});
  const auto id = [](const Tensors& a) { return a[0] * 1.0; };
  CHECK_THROWS_AS(bj::custom_jvp(nullptr, [](const Tensors&, const bj::Tensor&, const Tensors& t) { return t[0]; }),
                  bj::ValueError);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  // A rule of the wrong shape, or not computed from the tangents.
  const auto wrong_shape = bj::custom_jvp(id, [](const Tensors&, const bj::Tensor&, const Tensors& t) {
    return bj::reduce_sum(t[0], {1});
  });
  CHECK_THROWS_WITH(wrong_shape(x), Catch::Contains("custom_jvp") && Catch::Contains("[1, 2]"));
  const auto constant_rule = bj::custom_jvp(id, [](const Tensors&, const bj::Tensor& y, const Tensors&) { return y * 0.0; });
  CHECK_THROWS_WITH(constant_rule(x), Catch::Contains("computed from the tangents"));
  const auto no_inputs = bj::custom_jvp(id, [](const Tensors&, const bj::Tensor& y, const Tensors&) { return y; });
  CHECK_THROWS_AS(no_inputs(Tensors{}), bj::ValueError);
  CHECK_THROWS_AS(no_inputs(bj::constant({{1., 0.}}, bj::boolean)), bj::ValueError);
  // Not linear in the tangents: raised when a Jacobian is taken, naming custom_jvp.
  const auto squared = bj::custom_jvp(id, [](const Tensors&, const bj::Tensor&, const Tensors& t) { return t[0] * t[0]; });
  const auto of_sin = bj::custom_jvp(id, [](const Tensors&, const bj::Tensor&, const Tensors& t) { return bj::sin(t[0]); });
  // Affine, not linear: a value added to a tangent (a typo for a product).
  const auto plus_value =
      bj::custom_jvp(id, [](const Tensors& p, const bj::Tensor&, const Tensors& t) { return t[0] + bj::sigmoid(p[0]); });
  const auto minus_constant = bj::custom_jvp(id, [](const Tensors&, const bj::Tensor&, const Tensors& t) { return 1.0 - t[0]; });
  const auto concat_value = bj::custom_jvp(id, [](const Tensors& p, const bj::Tensor&, const Tensors& t) {
    return bj::concat({bj::slice(t[0], {0, 0}, {-1, 1}), bj::slice(p[0], {0, 1}, {-1, 1})}, 1);
  });
  const auto where_value = bj::custom_jvp(id, [](const Tensors& p, const bj::Tensor&, const Tensors& t) {
    return bj::where(p[0] > 1.5, t[0], p[0]);
  });
  // A step of the tangents: no derivative of its own, not linear.
  const auto step = bj::custom_jvp(id, [](const Tensors& p, const bj::Tensor&, const Tensors& t) {
    return bj::cast(t[0] > 0.0, bj::float64) * p[0] + t[0];
  });
  for (const auto* f : {&squared, &of_sin, &plus_value, &minus_constant, &concat_value, &where_value, &step}) {
    const bj::Tensor y = (*f)(x);
    for (auto mode : kModes)
      CHECK_THROWS_WITH(tape.batch_jacobian(y, x, check::with_mode(mode)),
                        Catch::StartsWith("custom_jvp:") && Catch::Contains("linear"));
  }
  // The tape still answers.
  const auto j = tape.batch_jacobian(log1pexp(x), x);
  REQUIRE(j.has_value());
}

TEST_CASE("custom_jvp: eager without a tape, deferred values, kept plans per rule", "[ops][custom_jvp]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  // No tape: f's value at once, the rule never runs.
  int rule_runs = 0;
  const auto counted = bj::custom_jvp([](const Tensors& a) { return a[0] * a[0]; },
                                      [&](const Tensors&, const bj::Tensor&, const Tensors& t) {
                                        ++rule_runs;
                                        return t[0] * 3.0;
                                      });
  CHECK(check::values(counted(x)) == std::vector<double>{1, 4, 9, 16});
  CHECK(rule_runs == 0);
  // Rules differing only in a constant are different programs: no kept
  // plan of one answers for the other.
  for (double k : {4.0, 5.0, 4.0}) {
    const auto scaled = bj::custom_jvp([](const Tensors& a) { return a[0] * a[0]; },
                                       [k](const Tensors&, const bj::Tensor&, const Tensors& t) { return t[0] * k; });
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = scaled(x);
    const auto j = tape.batch_jacobian(y, x);
    REQUIRE(j.has_value());
    CHECK(check::values(*j) == std::vector<double>{k, 0, 0, k, k, 0, 0, k});
    CHECK(check::values(y) == std::vector<double>{1, 4, 9, 16});  // deferred, then read
  }
}

TEST_CASE("custom_jvp with several sources, one of them through a custom function", "[ops][custom_jvp][sources]") {
  // z = a sin(b) by a rule, a and b both watched; gradient of the sum.
  const auto asinb = bj::custom_jvp(
      [](const Tensors& a) { return a[0] * bj::sin(a[1]); },
      [](const Tensors& a, const bj::Tensor&, const Tensors& t) {
        return t[0] * bj::sin(a[1]) + a[0] * bj::cos(a[1]) * t[1];
      });
  const bj::Tensor a = bj::constant({1., 2.});
  const bj::Tensor b = bj::constant({0.5, -1.});
  bj::GradientTape tape;
  tape.watch(a);
  tape.watch(b);
  const auto g = tape.gradient(asinb({a, b}), {a, b});
  REQUIRE(g[0].has_value());
  REQUIRE(g[1].has_value());
  CHECK(g[0]->at({0}) == Approx(std::sin(0.5)).epsilon(1e-15));
  CHECK(g[0]->at({1}) == Approx(std::sin(-1.)).epsilon(1e-15));
  CHECK(g[1]->at({0}) == Approx(1. * std::cos(0.5)).epsilon(1e-15));
  CHECK(g[1]->at({1}) == Approx(2. * std::cos(-1.)).epsilon(1e-15));
}

TEST_CASE("custom_jvp: nested tapes both use the rule; a throwing rule leaves recording as it was",
          "[ops][custom_jvp]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  const auto twice = bj::custom_jvp([](const Tensors& a) { return a[0] * 1.0; },
                                    [](const Tensors&, const bj::Tensor&, const Tensors& t) { return t[0] * 2.0; });
  bj::GradientTape outer(bj::TapeOptions{.persistent = true});
  outer.watch(x);
  bj::GradientTape inner(bj::TapeOptions{.persistent = true});
  inner.watch(x);
  const bj::Tensor y = twice(x);
  for (auto* tape : {&outer, &inner}) {
    const auto j = tape->batch_jacobian(y, x);
    REQUIRE(j.has_value());
    CHECK(check::values(*j) == std::vector<double>{2, 0, 0, 2, 2, 0, 0, 2});
  }
  // The rule's ops were seen by neither tape, and a rule that throws does
  // not leave the thread recording on its private tape.
  const auto throwing = bj::custom_jvp([](const Tensors& a) { return a[0] * 1.0; },
                                       [](const Tensors&, const bj::Tensor&, const Tensors&) -> bj::Tensor {
                                         throw std::runtime_error("rule failed");
                                       });
  CHECK_THROWS_WITH(throwing(x), "rule failed");
  const bj::Tensor z = bj::sin(x);
  const auto j = inner.batch_jacobian(z, x);
  REQUIRE(j.has_value());
  CHECK(j->at({1, 0, 0}) == Approx(std::cos(3.0)).epsilon(1e-15));
}
