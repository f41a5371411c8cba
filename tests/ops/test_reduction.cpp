// Reductions and scans: the derivative table (reduce_sum/prod/max/min/mean/
// logsumexp, softmax, log_softmax, cumsum over axes, negative axes, keepdims),
// hand-derived derivatives at zeros and ties, eager values, bad axes.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace bj = batchjac;
using check::Case;
using check::Context;

namespace {
const int kRegistered =
    check::register_ops({"reduce_sum", "reduce_prod", "reduce_max", "reduce_min", "cumsum"});

using ReduceFn = bj::Tensor (*)(const bj::Tensor&, bj::Axes, bool);

struct ReduceRow {
  std::string_view name;
  ReduceFn op;
  double lo, hi;
};
const ReduceRow kReduceRows[] = {
    {"reduce_sum", [](const bj::Tensor& x, bj::Axes a, bool k) { return bj::reduce_sum(x, a, k); }, -1, 1},
    {"reduce_prod", [](const bj::Tensor& x, bj::Axes a, bool k) { return bj::reduce_prod(x, a, k); }, 0.5, 1.5},
    {"reduce_max", [](const bj::Tensor& x, bj::Axes a, bool k) { return bj::reduce_max(x, a, k); }, -1, 1},
    {"reduce_min", [](const bj::Tensor& x, bj::Axes a, bool k) { return bj::reduce_min(x, a, k); }, -1, 1},
    {"reduce_mean", [](const bj::Tensor& x, bj::Axes a, bool k) { return bj::reduce_mean(x, a, k); }, -1, 1},
    {"reduce_logsumexp", [](const bj::Tensor& x, bj::Axes a, bool k) { return bj::reduce_logsumexp(x, a, k); }, -1, 1},
};

std::string axes_str(const bj::Axes& axes) {
  std::string s = "{";
  for (std::size_t i = 0; i < axes.size(); ++i) s += (i ? ", " : "") + std::to_string(axes[i]);
  return s + "}";
}

// batch_jacobian needs rank >= 2: a per-example scalar [b] becomes [b, 1].
bj::Tensor at_least_2d(const bj::Tensor& t) {
  return t.rank() == 1 ? bj::reshape(t, {t.shape()[0], 1}) : t;
}
}  // namespace

TEST_CASE("reductions: derivative check table", "[ops][reduction]") {
  struct Axis {
    bj::Axes axes;
    bool keepdims;
  };
  // Source [b, 3, 2, 2]: axis sets, positive and negative, with and without keepdims.
  const Axis axis_sets[] = {
      {{1}, false}, {{-1}, true}, {{-2}, false}, {{-1, 1}, true}, {{1, 2, 3}, false}, {{3, -3}, false}, {{}, false},
  };
  for (const ReduceRow& row : kReduceRows) {
    for (const Axis& a : axis_sets) {
      Case c;
      c.name = std::string(row.name) + "(x * (1 + x^2 / 8), " + axes_str(a.axes) +
               (a.keepdims ? ", keepdims" : "") + ")";
      c.example = bj::Shape{3, 2, 2};
      c.lo = row.lo;
      c.hi = row.hi;
      c.f = [op = row.op, axes = a.axes, keep = a.keepdims](const bj::Tensor& x, const Context&) {
        return at_least_2d(op(x * (1.0 + x * x / 8.0), axes, keep));
      };
      check::check_case(c);
    }
  }
}

TEST_CASE("softmax, log_softmax and cumsum: derivative check table", "[ops][reduction]") {
  struct Row {
    std::string name;
    check::Fn f;
  };
  const std::vector<Row> rows = {
      {"softmax(x), last axis", [](const bj::Tensor& x, const Context&) { return bj::softmax(x); }},
      {"softmax(x, 1)", [](const bj::Tensor& x, const Context&) { return bj::softmax(x, 1); }},
      {"log_softmax(x)", [](const bj::Tensor& x, const Context&) { return bj::log_softmax(x); }},
      {"log_softmax(x, -2)", [](const bj::Tensor& x, const Context&) { return bj::log_softmax(x, -2); }},
      {"cumsum(x, 1)", [](const bj::Tensor& x, const Context&) { return bj::cumsum(x, 1); }},
      {"cumsum(x, -1, exclusive)", [](const bj::Tensor& x, const Context&) { return bj::cumsum(x, -1, true); }},
      {"cumsum(x, 2, reverse)", [](const bj::Tensor& x, const Context&) { return bj::cumsum(x, 2, false, true); }},
      {"cumsum(sin(x), 1, exclusive, reverse) * x",
       [](const bj::Tensor& x, const Context&) { return bj::cumsum(bj::sin(x), 1, true, true) * x; }},
      {"x / ||x|| per row",
       [](const bj::Tensor& x, const Context&) {
         return x / bj::sqrt(bj::reduce_sum(bj::square(x), {2}, true) + 0.1);
       }},
      {"per-example weighted sum, keepdims then broadcast back",
       [](const bj::Tensor& x, const Context& ctx) {
         return x * bj::reduce_sum(x * ctx.per_example(1, {3, 5}), {1, 2}, true);
       }},
  };
  for (const Row& r : rows) {
    Case c;
    c.name = r.name;
    c.f = r.f;
    c.example = bj::Shape{3, 5};
    check::check_case(c);
  }
}

TEST_CASE("reduce_prod at zeros, reduce_max and reduce_min at ties", "[ops][reduction]") {
  auto jac = [](const bj::Tensor& x, const std::function<bj::Tensor(const bj::Tensor&)>& f,
                bj::JacobianMode mode) {
    bj::GradientTape tape;
    tape.watch(x);
    bj::JacobianOptions o;
    o.mode = mode;
    const auto j = tape.batch_jacobian(f(x), x, o);
    REQUIRE(j.has_value());
    return check::values(*j);
  };
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    INFO("mode " << static_cast<int>(mode));
    // d prod / dx_i = product of the others, exact at zeros.
    const bj::Tensor x = bj::constant({{2., 0., 3.}, {0., 0., 5.}, {1., 2., 4.}});
    auto prod = [](const bj::Tensor& t) { return bj::reduce_prod(t, {1}, true); };
    CHECK(jac(x, prod, mode) == std::vector<double>{0, 6, 0, 0, 0, 0, 8, 4, 2});
    // Ties share the derivative equally (TF).
    const bj::Tensor t = bj::constant({{1., 3., 3.}, {2., 2., 2.}, {5., -1., 0.}});
    auto mx = [](const bj::Tensor& v) { return bj::reduce_max(v, {1}, true); };
    auto mn = [](const bj::Tensor& v) { return bj::reduce_min(v, {-1}, true); };
    CHECK(jac(t, mx, mode) == std::vector<double>{0, 0.5, 0.5, 1. / 3, 1. / 3, 1. / 3, 1, 0, 0});
    CHECK(jac(t, mn, mode) == std::vector<double>{1, 0, 0, 1. / 3, 1. / 3, 1. / 3, 0, 1, 0});
  }
}

TEST_CASE("reductions: eager values", "[ops][reduction]") {
  // x[i][j][k] = 100 i + 10 j + k, shape [2, 3, 4].
  std::vector<double> v;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) v.push_back(100. * i + 10. * j + k);
  const bj::Tensor x = bj::constant(v, bj::Shape{2, 3, 4});

  const bj::Tensor s1 = bj::reduce_sum(x, {1});
  REQUIRE(s1.shape() == bj::Shape{2, 4});
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t k = 0; k < 4; ++k) CHECK(s1.at({i, k}) == 300. * i + 30. + 3. * k);
  const bj::Tensor s2 = bj::reduce_sum(x, {-1}, true);
  REQUIRE(s2.shape() == bj::Shape{2, 3, 1});
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 3; ++j) CHECK(s2.at({i, j, 0}) == 400. * i + 40. * j + 6.);
  const bj::Tensor s3 = bj::reduce_sum(x, {0, 2});
  REQUIRE(s3.shape() == bj::Shape{3});
  for (std::int64_t j = 0; j < 3; ++j) CHECK(s3.at({j}) == 400. + 80. * j + 12.);
  CHECK(bj::reduce_sum(x).shape() == bj::Shape{});
  CHECK(bj::reduce_sum(x).at({}) == 1476.0);
  CHECK(bj::reduce_sum(x, {0, 1, 2}, true).shape() == bj::Shape{1, 1, 1});
  CHECK(check::values(bj::reduce_sum(x, {})) == v);  // an empty axis list reduces nothing (TF)

  CHECK(check::values(bj::reduce_max(x, {1, 2})) == std::vector<double>{23, 123});
  CHECK(check::values(bj::reduce_min(x, {0})) ==
        std::vector<double>{0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23});
  CHECK(check::values(bj::reduce_mean(x, {2})) ==
        std::vector<double>{1.5, 11.5, 21.5, 101.5, 111.5, 121.5});
  CHECK(bj::reduce_mean(x).at({}) == 1476.0 / 24);
  const bj::Tensor p = bj::constant({{1., 2., 3.}, {-1., 0.5, 4.}});
  CHECK(check::values(bj::reduce_prod(p, {1})) == std::vector<double>{6, -2});
  CHECK(bj::reduce_prod(p).at({}) == -12.0);
  // logsumexp without overflow.
  const bj::Tensor big = bj::constant({{1000., 1000.}, {-1000., 0.}});
  const auto lse = check::values(bj::reduce_logsumexp(big, {1}));
  CHECK(lse[0] == Approx(1000.0 + std::log(2.0)).epsilon(1e-15));
  CHECK(lse[1] == Approx(0.0).margin(1e-300));
  // softmax rows sum to 1, also for large logits.
  const bj::Tensor sm = bj::softmax(big);
  CHECK(sm.at({0, 0}) == Approx(0.5));
  CHECK(sm.at({1, 1}) == Approx(1.0));
  CHECK(std::isfinite(bj::log_softmax(big).at({1, 0})));
  CHECK(bj::log_softmax(big).at({1, 0}) == Approx(-1000.0));

  // cumsum: inclusive, exclusive, reverse.
  const bj::Tensor c = bj::constant({{1., 2., 3.}, {4., 5., 6.}});
  CHECK(check::values(bj::cumsum(c, 1)) == std::vector<double>{1, 3, 6, 4, 9, 15});
  CHECK(check::values(bj::cumsum(c, 1, true)) == std::vector<double>{0, 1, 3, 0, 4, 9});
  CHECK(check::values(bj::cumsum(c, 1, false, true)) == std::vector<double>{6, 5, 3, 15, 11, 6});
  CHECK(check::values(bj::cumsum(c, -1, true, true)) == std::vector<double>{5, 3, 0, 11, 6, 0});
  CHECK(check::values(bj::cumsum(c)) == std::vector<double>{1, 2, 3, 5, 7, 9});  // axis 0 by default

  // float32 keeps its dtype.
  CHECK(bj::reduce_sum(bj::cast(x, bj::float32), {1}).dtype() == bj::float32);
  CHECK(bj::reduce_max(bj::cast(x, bj::float32), {1}).dtype() == bj::float32);
  CHECK(bj::reduce_sum(bj::constant(3.0)).at({}) == 3.0);
}

// Regression test (a bug found and fixed): reducing over an axis of length 0 must give the reduction's identity
// (TF: reduce_sum of a [2, 0] tensor over axis 1 is [0., 0.], reduce_prod
// [1., 1.], reduce_max [-inf, -inf]); the lowering takes the empty index map of
// a zero-element input for "identity" and copies elements out of an empty
// buffer (uninitialised memory: 0xbe.. garbage under ASan).
TEST_CASE("reductions over a zero-length axis give the identity element", "[ops][reduction]") {
  const bj::Tensor e = bj::fill({2, 0}, 7.0);
  CHECK(check::values(bj::reduce_sum(e, {1})) == std::vector<double>{0.0, 0.0});
  CHECK(check::values(bj::reduce_prod(e, {1})) == std::vector<double>{1.0, 1.0});
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(check::values(bj::reduce_max(e, {1})) == std::vector<double>{-inf, -inf});
  CHECK(check::values(bj::reduce_sum(bj::ones({3, 0, 2}), {1}, true)) == std::vector<double>(6, 0.0));
}

// Regression test (a bug found and fixed): reduce_max and reduce_min kept
// the running extremum when they met a NaN (reduce_max([3, NaN, 1]) = 3);
// TF gives NaN. The engine's lanes must agree, and the derivative's weights
// [x == y] / count are then 0 / 0: NaN for the whole row, as in TF.
TEST_CASE("reduce_max and reduce_min propagate NaN, eagerly and in the engine", "[ops][reduction]") {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  const std::vector<std::vector<double>> rows = {
      {3, nan, 1}, {nan, 3, 1}, {3, 1, nan}, {nan, nan, nan}, {1, 2, 3},
      {-inf, nan, inf}, {2, 2, 1}, {-inf, -inf, -inf}, {1, 1, 1}};
  std::vector<double> flat;
  for (int rep = 0; rep < 3; ++rep)  // 27 examples: whole vectors and a partial one
    for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  const auto b = static_cast<std::int64_t>(flat.size() / 3);
  for (const bool is_max : {true, false}) {
    const ReduceFn op = is_max ? ReduceFn(&bj::reduce_max) : ReduceFn(&bj::reduce_min);
    const std::string name = is_max ? "reduce_max" : "reduce_min";
    auto extremum = [&](const std::vector<double>& r) {
      double m = is_max ? -inf : inf;
      for (double v : r) {
        if (std::isnan(v)) return nan;
        m = is_max ? std::max(m, v) : std::min(m, v);
      }
      return m;
    };
    for (const bj::DType t : {bj::float64, bj::float32}) {
      INFO(name << (t == bj::float32 ? ", float32" : ", float64"));
      const bj::Tensor x = bj::constant(flat, bj::Shape{b, 3}, t);
      // Eager values: each row, and all of it.
      const auto v = check::values(op(x, {1}, false));
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const double want = extremum(rows[i]);
        CHECK((std::isnan(want) ? std::isnan(v[i]) : v[i] == want));
      }
      CHECK(std::isnan(op(x, {0, 1}, false).at({})));
      // Jacobians: the weights [x == y] / count, NaN for a row holding a NaN.
      auto in_dtype = [t](double w) { return t == bj::float32 ? static_cast<double>(static_cast<float>(w)) : w; };
      std::vector<double> dy, value;
      for (std::int64_t i = 0; i < b; ++i) {
        const auto& r = rows[static_cast<std::size_t>(i) % rows.size()];
        const double m = extremum(r);
        const double count = static_cast<double>(std::count(r.begin(), r.end(), m));
        for (double e : r) dy.push_back(std::isnan(m) ? nan : in_dtype((e == m) / count));
        for (std::size_t k = 0; k < 3; ++k) value.push_back(m);
      }
      check::check_at_values(
          name + "(x, {1}, keepdims)", [op](const bj::Tensor& s, const bj::Tensor&) { return op(s, {1}, true); }, x,
          x, dy, 0.0);
      // The engine's primal values: d/dx (sum(x) * stop_gradient(y)) = y.
      check::check_at_values(
          "reduce_sum(x) * stop_gradient(" + name + "(x))",
          [op](const bj::Tensor& s, const bj::Tensor&) {
            return bj::reduce_sum(s, {1}, true) * bj::stop_gradient(op(s, {1}, true));
          },
          x, x, value, 0.0);
    }
  }
}

// Regression test (a bug found and fixed): reduce_logsumexp shifted by the
// maximum even when it is infinite: ([inf, 1]) was inf - inf = NaN and
// ([-inf, -inf]) NaN; TF shifts by 0 where the maximum is not finite and
// gives inf and -inf.
TEST_CASE("reduce_logsumexp with infinite maxima (TF)", "[ops][reduction]") {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  const std::vector<std::vector<double>> rows = {
      {inf, 1}, {-inf, -inf}, {nan, 1}, {1000, 1000}, {-inf, 0}, {inf, -inf}, {-inf, 5}, {inf, inf}, {0, 0}};
  const std::vector<double> want = {inf, -inf, nan, 1000 + std::log(2.0), 0, inf, 5, inf, std::log(2.0)};
  std::vector<double> flat, per_row, value;
  for (int rep = 0; rep < 3; ++rep)  // 27 examples: whole vectors and a partial one
    for (std::size_t i = 0; i < rows.size(); ++i) {
      flat.insert(flat.end(), rows[i].begin(), rows[i].end());
      per_row.push_back(want[i]);
      value.insert(value.end(), {want[i], want[i]});
    }
  const auto b = static_cast<std::int64_t>(per_row.size());
  for (const bj::DType t : {bj::float64, bj::float32}) {
    INFO((t == bj::float32 ? "float32" : "float64"));
    const double rtol = t == bj::float32 ? 2.4e-7 : 4.5e-16;
    const bj::Tensor x = bj::constant(flat, bj::Shape{b, 2}, t);
    check::check_close(check::values(bj::reduce_logsumexp(x, {1})), per_row, rtol, 0.0, "eager values");
    // The engine's values: d/dx (sum(x) * stop_gradient(y)) = y.
    check::check_at_values(
        "reduce_sum(x) * stop_gradient(reduce_logsumexp(x))",
        [](const bj::Tensor& s, const bj::Tensor&) {
          return bj::reduce_sum(s, {1}, true) * bj::stop_gradient(bj::reduce_logsumexp(s, {1}, true));
        },
        x, x, value, rtol);
  }
}

TEST_CASE("reductions: bad axes raise ValueError", "[ops][reduction][errors]") {
  const bj::Tensor x = bj::ones({2, 3});
  for (const ReduceRow& row : kReduceRows) {
    INFO(row.name);
    CHECK_THROWS_AS(row.op(x, {2}, false), bj::ValueError);
    CHECK_THROWS_AS(row.op(x, {-3}, false), bj::ValueError);
    CHECK_THROWS_WITH(row.op(x, {2}, false), Catch::Contains(std::string(row.name)));
    CHECK_THROWS_AS(row.op(x, {1, 1}, false), bj::ValueError);
    CHECK_THROWS_AS(row.op(x, {1, -1}, false), bj::ValueError);  // the same axis twice
    CHECK_THROWS_AS(row.op(bj::cast(x, bj::boolean), {1}, false), bj::ValueError);
  }
  CHECK_THROWS_WITH(bj::reduce_sum(x, {1, -1}), Catch::Contains("twice"));
  CHECK_THROWS_AS(bj::reduce_sum(bj::constant(1.0), {0}), bj::ValueError);
  CHECK_THROWS_AS(bj::cumsum(x, 2), bj::ValueError);
  CHECK_THROWS_AS(bj::cumsum(bj::cast(x, bj::boolean), 1), bj::ValueError);
  CHECK_THROWS_AS(bj::softmax(x, 2), bj::ValueError);
}
