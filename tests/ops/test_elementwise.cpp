// Elementwise ops: every row of the tables (ops/elementwise_rows.hpp) through
// the derivative checker, over every operand layout the batch-axis rule
// distinguishes; comparisons and logic through where; where itself.
#include "ops/elementwise_rows.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace bj = batchjac;
using check::Case;
using check::Context;
using namespace elementwise_rows;

namespace {
const int kRegistered = [] {
  for (const auto& r : kUnaryRows) check::register_ops({r.name});
  for (const auto& r : kBinaryRows) check::register_ops({r.name});
  check::register_ops({"where"});
  return 0;
}();

}  // namespace

// ---- derivatives ------------------------------------------------------------------------

TEST_CASE("unary ops: derivative check table", "[ops][elementwise]") {
  for (const UnaryRow& row : kUnaryRows) {
    const UnaryFn op = row.op;
    Case c;
    if (row.kind == Kind::logic) {
      // No derivative: through a where whose branches carry it.
      c.name = row_name(row.name, "where(op(x > 0), sin(x), x * x)");
      c.f = [op](const bj::Tensor& x, const Context&) { return bj::where(op(x > 0.0), bj::sin(x), x * x); };
      c.example = bj::Shape{2, 3};
      check::check_case(c);
      continue;
    }
    c.name = row_name(row.name, "op(x), x [b, 2, 3]");
    c.f = [op](const bj::Tensor& x, const Context&) { return op(x); };
    c.example = bj::Shape{2, 3};
    c.lo = row.lo;
    c.hi = row.hi;
    check::check_case(c);

    // After a shared affine map into the domain: the Jacobian is dense.
    c.name = row_name(row.name, "op(x W * s + m), x [b, 4]");
    c.f = [op, lo = row.lo, hi = row.hi](const bj::Tensor& x, const Context& ctx) {
      return op(bj::matmul(x, ctx.shared(1, {4, 3}, -0.25, 0.25)) * (0.45 * (hi - lo)) + 0.5 * (lo + hi));
    };
    c.example = bj::Shape{4};
    c.lo = -1;
    c.hi = 1;
    check::check_case(c);
  }
}

TEST_CASE("pow: exponents and domains", "[ops][elementwise]") {
  struct PowRow {
    double p, lo, hi;
  };
  // Integral exponents on negative bases, p = 0 (derivative 0), p = 1, roots.
  const PowRow rows[] = {{2.5, 0.1, 3},  {3.0, -2, 2},  {2.0, -2, 2},   {1.0, -2, 2},
                         {0.0, -2, 2},   {0.5, 0.1, 3}, {-1.5, 0.2, 3}, {-2.0, 0.2, 3}};
  for (const auto& r : rows) {
    Case c;
    c.name = "pow(x, " + std::to_string(r.p) + ")";
    c.f = [p = r.p](const bj::Tensor& x, const Context&) { return bj::pow(x, p); };
    c.example = bj::Shape{5};
    c.lo = r.lo;
    c.hi = r.hi;
    check::check_case(c);
  }
  Case c;
  c.example = bj::Shape{5};
  c.name = "pow(x, y) with integral y on negative x";
  c.lo = -2;
  c.hi = 2;
  c.f = [](const bj::Tensor& x, const Context& ctx) { return bj::pow(x, ctx.shared(1, {}, 3.0, 3.0)); };
  check::check_case(c);
}

namespace {
template <class T>
constexpr bj::DType dtype_of = std::is_same_v<T, float> ? bj::float32 : bj::float64;
// A column [b, 1] of dtype T: one value per example.
template <class T>
bj::Tensor column(const std::vector<double>& v) {
  return bj::constant(v, bj::Shape{static_cast<std::int64_t>(v.size()), 1}, dtype_of<T>);
}
// `want` of each example's (x, q), computed in T.
template <class T, class F>
std::vector<double> per_example(const std::vector<double>& xs, const std::vector<double>& qs, F want) {
  std::vector<double> r;
  for (std::size_t i = 0; i < xs.size(); ++i) r.push_back(want(static_cast<T>(xs[i]), static_cast<T>(qs[i])));
  return r;
}
// xsimd's exp(y log|x|): a relative error of about |y log|x|| ulp, largest at 1e-300.
template <class T>
constexpr double kPowTol = std::is_same_v<T, float> ? 2e-5 : 2e-13;

template <class T>
void check_pow_special_values() {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  // Signed zeros, tiny, negative and infinite bases; integer, half-integer,
  // zero and non-finite exponents. (No subnormal results: xsimd's exp
  // flushes them to 0, as 1e-30f^1.5 would be.)
  const std::vector<double> bases = {0.0, -0.0, 1e-300, -1e-300, 1e-36, -2.0, -1.0, -0.5,
                                     1.0, 3.0,  inf,    -inf,    nan};
  const std::vector<double> exps = {0.5, -1.0, -0.5, 2.0, 3.0, -2.0, -3.0, 0.0, 1.0, 1.5, inf, -inf, nan};
  // A constant exponent: every base, twice (26 examples: whole vectors and a part).
  std::vector<double> xs = bases;
  xs.insert(xs.end(), bases.begin(), bases.end());
  const bj::Tensor x = column<T>(xs);
  for (double p : exps) {
    const std::string ps = std::to_string(p);
    // dy/dx = p x^(p-1), 0 for p = 0.
    check::check_at_values(
        "pow(x, " + ps + ")", [p](const bj::Tensor& v, const bj::Tensor&) { return bj::pow(v, p); }, x, x,
        per_example<T>(xs, xs, [p](T v, T) { return T(p) == T(0) ? T(0) : T(p) * std::pow(v, T(p) - T(1)); }),
        kPowTol<T>);
    // The engine's primal values: d/dx (x * stop_gradient(x^p)) = x^p.
    check::check_at_values(
        "x * stop_gradient(pow(x, " + ps + "))",
        [p](const bj::Tensor& v, const bj::Tensor&) { return v * bj::stop_gradient(bj::pow(v, p)); }, x, x,
        per_example<T>(xs, xs, [p](T v, T) { return std::pow(v, T(p)); }), kPowTol<T>);
  }
  // Per-example exponents: every (base, exponent) pair, 169 examples.
  std::vector<double> as, bs;
  for (double a : bases)
    for (double b : exps) as.push_back(a), bs.push_back(b);
  const bj::Tensor a = column<T>(as), b = column<T>(bs);
  // dy/da = b a^(b-1).
  check::check_at_values(
      "pow(a, b), d/da", [](const bj::Tensor& v, const bj::Tensor& e) { return bj::pow(v, e); }, a, b,
      per_example<T>(as, bs, [](T v, T e) { return e * std::pow(v, e - T(1)); }), kPowTol<T>);
  check::check_at_values(
      "a * stop_gradient(pow(a, b))",
      [](const bj::Tensor& v, const bj::Tensor& e) { return v * bj::stop_gradient(bj::pow(v, e)); }, a, b,
      per_example<T>(as, bs, [](T v, T e) { return std::pow(v, e); }), kPowTol<T>);
  // dy/db = a^b log(a) for a > 0, else 0.
  check::check_at_values(
      "pow(a, b), d/db", [](const bj::Tensor& e, const bj::Tensor& v) { return bj::pow(v, e); }, b, a,
      per_example<T>(bs, as, [](T e, T v) { return v > T(0) ? std::pow(v, e) * std::log(v) : T(0); }),
      kPowTol<T>);
}
}  // namespace

// Regression test (a bug found and fixed): xsimd 8.1's pow computes exp(y
// log|x|) and gives 0 wherever x = ±0, so in the engine pow(x, 0.5) had
// derivative 0 at x = 0 (std::pow, eagerly and in TF: inf) and pow(x, -1)
// -0 (-inf); pow(0, 0) was 0, pow(1, inf) and pow(-1, ±inf) NaN. The engine
// must give std::pow's values (C99 Annex F), lane by lane.
TEST_CASE("pow at zeros, negative, tiny and infinite bases: the engine as std::pow", "[ops][elementwise]") {
  check_pow_special_values<double>();
  check_pow_special_values<float>();
}

namespace {
template <class T>
void check_nan_propagation() {
  // A product inside a derivative: 0 where either factor is 0 (strong zeros).
  auto strong = [](T p, T q) { return p == T(0) || q == T(0) ? T(0) : p * q; };
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  const T tnan = std::numeric_limits<T>::quiet_NaN();
  // Every pair of these: 49 examples.
  const std::vector<double> v = {nan, 1.0, 2.0, -inf, inf, 0.0, -0.5};
  std::vector<double> as, bs;
  for (double a : v)
    for (double b : v) as.push_back(a), bs.push_back(b);
  const bj::Tensor a = column<T>(as), b = column<T>(bs);
  struct Row {
    std::string name;
    BinaryFn op;
    T (*value)(T, T);  // TF's value: NaN if either operand is
    T (*da)(T, T);     // the partials: 0 at NaN (a comparison fails)
    T (*db)(T, T);
  };
  const Row rows[] = {
      {"maximum", [](const bj::Tensor& p, const bj::Tensor& q) { return bj::maximum(p, q); },
       [](T p, T q) { return std::isnan(p) || std::isnan(q) ? std::numeric_limits<T>::quiet_NaN() : p >= q ? p : q; },
       [](T p, T q) { return T(p >= q); }, [](T p, T q) { return T(p < q); }},
      {"minimum", [](const bj::Tensor& p, const bj::Tensor& q) { return bj::minimum(p, q); },
       [](T p, T q) { return std::isnan(p) || std::isnan(q) ? std::numeric_limits<T>::quiet_NaN() : p <= q ? p : q; },
       [](T p, T q) { return T(p <= q); }, [](T p, T q) { return T(p > q); }},
  };
  for (const Row& r : rows) {
    const BinaryFn op = r.op;
    check::check_at_values(
        r.name + "(a, b), d/da", [op](const bj::Tensor& x, const bj::Tensor& q) { return op(x, q); }, a, b,
        per_example<T>(as, bs, r.da), 0.0);
    check::check_at_values(
        r.name + "(a, b), d/db", [op](const bj::Tensor& x, const bj::Tensor& q) { return op(q, x); }, b, a,
        per_example<T>(bs, as, [&r](T x, T q) { return r.db(q, x); }), 0.0);
    // The engine's primal values: d/da (a * stop_gradient(op(a, b))) = op(a, b).
    check::check_at_values(
        "a * stop_gradient(" + r.name + "(a, b))",
        [op](const bj::Tensor& x, const bj::Tensor& q) { return x * bj::stop_gradient(op(x, q)); }, a, b,
        per_example<T>(as, bs, r.value), 0.0);
    // A rule that reads the value: d/da op(a, b)^2 = 2 op(a, b) d/da, a
    // strong zero where d/da is 0 (a NaN operand), whatever the value.
    check::check_at_values(
        "square(" + r.name + "(a, b))", [op](const bj::Tensor& x, const bj::Tensor& q) { return bj::square(op(x, q)); },
        a, b, per_example<T>(as, bs, [&r, strong](T p, T q) { return strong(T(2) * r.value(p, q), r.da(p, q)); }), 0.0);
    check::check_at_values(
        "square(" + r.name + "(b, a)), d/da",
        [op](const bj::Tensor& x, const bj::Tensor& q) { return bj::square(op(q, x)); }, a, b,
        per_example<T>(as, bs, [&r, strong](T p, T q) { return strong(T(2) * r.value(q, p), r.db(q, p)); }), 0.0);
  }
  // Comparisons with a NaN: only not_equal holds, and NaN is true as a
  // boolean; where's derivative shows which branch each lane took.
  check::check_at_values(
      "where(not_equal(a, b), 2 a, 3 a)",
      [](const bj::Tensor& x, const bj::Tensor& q) { return bj::where(bj::not_equal(x, q), x * 2.0, x * 3.0); }, a,
      b, per_example<T>(as, bs, [](T p, T q) { return p != q ? T(2) : T(3); }), 0.0);
  check::check_at_values(
      "where(cast(a, bool), 2 a, 3 a)",
      [](const bj::Tensor& x, const bj::Tensor&) { return bj::where(bj::cast(x, bj::boolean), x * 2.0, x * 3.0); },
      a, a, per_example<T>(as, as, [](T p, T) { return p != T(0) ? T(2) : T(3); }), 0.0);
  // relu(x) = max(x, 0), NaN at NaN; relu'(x) = [x > 0].
  auto relu = [tnan](T x) { return std::isnan(x) ? tnan : x > T(0) ? x : T(0); };
  check::check_at_values(
      "x * stop_gradient(relu(x))", [](const bj::Tensor& x, const bj::Tensor&) { return x * bj::stop_gradient(bj::relu(x)); },
      a, a, per_example<T>(as, as, [&](T x, T) { return relu(x); }), 0.0);
  check::check_at_values(
      "square(relu(x))", [](const bj::Tensor& x, const bj::Tensor&) { return bj::square(bj::relu(x)); }, a, a,
      per_example<T>(as, as, [&](T x, T) { return strong(T(2) * relu(x), T(x > T(0))); }), 0.0);
}
}  // namespace

// Regression test (bugs found and fixed): maximum and minimum dropped a NaN
// first operand (maximum(NaN, 1) = 1, maximum(1, NaN) = NaN) and relu(NaN)
// was 0; TF gives NaN for all three. The engine's lanes must agree with the
// eager values, and rules that read the value (square's) see the NaN
// behind a nonzero partial (strong zeros, test_strong_zeros.cpp). In the
// engine on AVX and AVX-512, not_equal(NaN, x) and cast(NaN, bool) were
// false (xsimd 8 compiles != to an ordered compare there); eagerly and in
// TF they are true.
TEST_CASE("maximum, minimum, relu, not_equal, cast to bool: NaN as TF, in every lane", "[ops][elementwise]") {
  check_nan_propagation<double>();
  check_nan_propagation<float>();
}

TEST_CASE("binary ops: derivative check table", "[ops][elementwise]") {
  // Every operand layout the batch-axis rule distinguishes. Domains keep
  // denominators, pow's bases and logs in [0.5, 3].
  struct Layout {
    std::string_view what;
    bj::Shape example;
    check::Fn (*make)(BinaryFn);
  };
  const Layout layouts[] = {
      {"both from the source", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context&) { return op(x, bj::cos(x) + 2.0); };
       }},
      {"the same tensor twice", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context&) { return op(x, x); };
       }},
      {"shared [n] right", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) { return op(x, ctx.shared(1, {3}, 0.5, 2)); };
       }},
      {"shared [n] left", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) { return op(ctx.shared(2, {3}, 0.5, 2), x); };
       }},
      {"shared [1, n] (same rank) right", {3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) { return op(x, ctx.shared(3, {1, 3}, 0.5, 2)); };
       }},
      {"shared [1, k, n] (same rank) left", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) { return op(ctx.shared(4, {1, 2, 3}, 0.5, 2), x); };
       }},
      {"shared scalar tensor", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) { return op(x, ctx.shared(5, {}, 0.5, 2)); };
       }},
      {"per-example [b, n] right", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) { return op(x, ctx.per_example(6, {2, 3}, 0.5, 2)); };
       }},
      {"per-example [b, n] left", {3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) { return op(ctx.per_example(7, {3}, 0.5, 2), x); };
       }},
      {"per-example [b, 1, 1] broadcast", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) { return op(x, ctx.per_example(8, {1, 1}, 0.5, 2)); };
       }},
      {"source [b, k, 1] broadcast against the source", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context&) { return op(x, bj::reduce_sum(x, {2}, true) * 0.4); };
       }},
      {"source [b, 1, n] broadcast against a per-example [b, k, n]", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) {
           return op(bj::reduce_sum(x, {1}, true), ctx.per_example(9, {2, 3}, 0.5, 2));
         };
       }},
      {"source [b, k, 1, n] broadcast against a shared [m, n]", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) {
           return op(bj::reshape(x, {x.shape()[0], 2, 1, 3}), ctx.shared(10, {4, 3}, 0.5, 2));
         };
       }},
      {"shared [m, n] broadcast against the source [b, k, 1, n] (left)", {2, 3},
       [](BinaryFn op) -> check::Fn {
         return [op](const bj::Tensor& x, const Context& ctx) {
           return op(ctx.shared(11, {4, 3}, 0.5, 2), bj::reshape(x, {x.shape()[0], 2, 1, 3}));
         };
       }},
  };
  for (const BinaryRow& row : kBinaryRows) {
    if (row.kind != Kind::real) continue;
    for (const Layout& layout : layouts) {
      Case c;
      c.name = row_name(row.name, layout.what);
      c.f = layout.make(row.op);
      c.example = layout.example;
      c.lo = 0.5;
      c.hi = 2.0;
      check::check_case(c);
    }
    Case c;
    c.example = bj::Shape{2, 3};
    c.lo = 0.5;
    c.hi = 2.0;
    if (row.scalar_right) {
      c.name = row_name(row.name, "tensor op C++ scalar");
      c.f = [f = row.scalar_right](const bj::Tensor& x, const Context&) { return f(x, 1.7); };
      check::check_case(c);
    }
    if (row.scalar_left) {
      c.name = row_name(row.name, "C++ scalar op tensor");
      c.f = [f = row.scalar_left](const bj::Tensor& x, const Context&) { return f(1.7, x); };
      check::check_case(c);
    }
  }
}

TEST_CASE("comparisons and logic: no derivative, but where carries one", "[ops][elementwise]") {
  for (const BinaryRow& row : kBinaryRows) {
    if (row.kind == Kind::real) continue;
    const BinaryFn op = row.op;
    Case c;
    c.example = bj::Shape{2, 3};
    if (row.kind == Kind::compare) {
      c.name = row_name(row.name, "where(op(x, c), sin(x), x * x), c shared");
      c.f = [op](const bj::Tensor& x, const Context& ctx) {
        return bj::where(op(x, ctx.shared(1, {3})), bj::sin(x), x * x);
      };
      check::check_case(c);
      c.name = row_name(row.name, "where(op(x, cos(x)), x * exp(x), -x), both from the source");
      c.f = [op](const bj::Tensor& x, const Context&) {
        return bj::where(op(x, bj::cos(x)), x * bj::exp(x), -x);
      };
      check::check_case(c);
    } else {
      c.name = row_name(row.name, "where(op(x > 0, c), sin(x), x * x), c a per-example mask");
      c.f = [op](const bj::Tensor& x, const Context& ctx) {
        return bj::where(op(x > 0.0, ctx.per_example(2, {2, 3}) > 0.0), bj::sin(x), x * x);
      };
      check::check_case(c);
    }
    // A boolean result carries no derivative: unconnected.
    const bj::Tensor x = bj::constant({{0.5, -1.0}, {2.0, 0.0}});
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor lhs = row.kind == Kind::logic ? x > 0.0 : x;
    const bj::Tensor rhs = row.kind == Kind::logic ? x < 1.0 : bj::constant({{1.0, -1.0}});
    const bj::Tensor r = op(lhs, rhs);
    CHECK(r.dtype() == bj::boolean);
    CHECK_THROWS_AS(tape.batch_jacobian(r, x), bj::ValueError);
    CHECK_FALSE(tape.batch_jacobian(bj::cast(r, bj::float64), x).has_value());
  }
}

TEST_CASE("where: derivative check table", "[ops][elementwise]") {
  struct Row {
    std::string what;
    check::Fn f;
  };
  const std::vector<Row> rows = {
      {"both branches from the source",
       [](const bj::Tensor& x, const Context&) { return bj::where(x > 0.0, bj::sin(x), x * x); }},
      {"only the first branch from the source (SelectFirst)",
       [](const bj::Tensor& x, const Context& ctx) { return bj::where(x > 0.0, bj::exp(x), ctx.shared(1, {3})); }},
      {"only the second branch from the source (SelectSecond)",
       [](const bj::Tensor& x, const Context& ctx) { return bj::where(x > 0.0, ctx.shared(2, {3}), bj::exp(x)); }},
      {"a per-example constant condition",
       [](const bj::Tensor& x, const Context& ctx) {
         return bj::where(ctx.per_example(3, {2, 3}) > 0.0, x * x, bj::cos(x));
       }},
      {"a shared condition broadcast [n]",
       [](const bj::Tensor& x, const Context& ctx) { return bj::where(ctx.shared(4, {3}) > 0.0, x * x, -x); }},
      {"branches broadcast: source [b, k, 1] against the source",
       [](const bj::Tensor& x, const Context&) {
         return bj::where(x > 0.0, bj::reduce_sum(x, {2}, true), x * 3.0);
       }},
      {"relu-like clamp via where and scalars",
       [](const bj::Tensor& x, const Context& ctx) {
         return bj::where(x > ctx.shared(5, {}, -0.5, 0.5), x, x * 0.1);
       }},
  };
  for (const Row& r : rows) {
    Case c;
    c.name = "where: " + r.what;
    c.f = r.f;
    c.example = bj::Shape{2, 3};
    check::check_case(c);
  }
}

// Regression test (a bug found and fixed): a tangent scaled by a scalar and then multiplied by a shared
// (non-lane-varying) constant of more than one element gets the constant's
// first element for every element: the linear-program optimiser's folding of
// scaling chains (autodiff/optimize.cpp, "fold scalings of broadcast
// tangents") drops the constant's element index. Minimal: x [3, 2, 3] watched
// (x = 1..18), c = [[1, 10, 100], [1000, 10000, 100000]] (shared [2, 3]),
// y = (x * 0.5) * c; batch_jacobian(y, x)[2][1][2][1][2] must be 0.5 * c[1][2]
// = 50000, is 0.5 (forward and reverse). jacobian() is right. With b = 1 any
// per-example constant is shared, so (reduce_sum(x, {1}, true) * 0.6) *
// c_per_example also fails there.
TEST_CASE("scaled tangents times shared constants", "[ops][elementwise]") {
  {
    std::vector<double> xv(18);
    for (int i = 0; i < 18; ++i) xv[static_cast<std::size_t>(i)] = i + 1;
    const bj::Tensor x = bj::constant(xv, bj::Shape{3, 2, 3});
    const bj::Tensor c = bj::constant({{1., 10., 100.}, {1000., 10000., 100000.}});
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = (x * 0.5) * c;
    for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
      bj::JacobianOptions o;
      o.mode = mode;
      const auto j = tape.batch_jacobian(y, x, o);
      REQUIRE(j.has_value());
      CHECK(j->at({2, 1, 2, 1, 2}) == 50000.0);
      CHECK(j->at({0, 0, 1, 0, 1}) == 5.0);
    }
  }
  struct Row {
    std::string what;
    check::Fn f;
  };
  const std::vector<Row> rows = {
      {"(x * 0.5) * shared [n]", [](const bj::Tensor& x, const Context& c) { return (x * 0.5) * c.shared(1, {3}); }},
      {"shared [k, n] * (2 * x)", [](const bj::Tensor& x, const Context& c) { return c.shared(2, {2, 3}) * (2.0 * x); }},
      {"(x / 4) * shared [1, k, n]", [](const bj::Tensor& x, const Context& c) { return (x / 4.0) * c.shared(3, {1, 2, 3}); }},
      {"(-x) * shared [n]", [](const bj::Tensor& x, const Context& c) { return (-x) * c.shared(4, {3}); }},
      {"(reduce_sum(x, {1}, true) * 0.6) * per-example [b, k, n]",
       [](const bj::Tensor& x, const Context& c) {
         return (bj::reduce_sum(x, {1}, true) * 0.6) * c.per_example(5, {2, 3});
       }},
      {"matmul(x * 3, W)", [](const bj::Tensor& x, const Context& c) {
         return bj::matmul(bj::reshape(x * 3.0, {x.shape()[0], 6}), c.shared(6, {6, 2}));
       }},
  };
  for (const Row& r : rows) {
    Case c;
    c.name = r.what;
    c.f = r.f;
    c.example = bj::Shape{2, 3};
    check::check_case(c);
  }
}

TEST_CASE("unary minus and composites of elementwise ops", "[ops][elementwise]") {
  Case c;
  c.example = bj::Shape{3, 2};
  c.name = "-x";
  c.f = [](const bj::Tensor& x, const Context&) { return -x; };
  check::check_case(c);
  c.name = "-(x * x) + sin(x) / (2 + cos(x))";
  c.f = [](const bj::Tensor& x, const Context&) { return -(x * x) + bj::sin(x) / (2.0 + bj::cos(x)); };
  check::check_case(c);
  c.name = "x reused by many ops: x * exp(x) - x / (1 + x * x)";
  c.f = [](const bj::Tensor& x, const Context&) { return x * bj::exp(x) - x / (1.0 + x * x); };
  check::check_case(c);
}

