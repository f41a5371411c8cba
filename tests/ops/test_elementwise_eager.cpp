// Elementwise ops: eager values against std:: math, NumPy broadcasting,
// where, comparison operators, C++ scalar operands, and dtype / shape errors.
#include "ops/elementwise_rows.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace bj = batchjac;
using check::Case;
using check::Context;
using namespace elementwise_rows;

// ---- eager values ------------------------------------------------------------------------

TEST_CASE("unary ops: eager values match std:: math", "[ops][elementwise]") {
  std::mt19937_64 rng(42);
  for (const UnaryRow& row : kUnaryRows) {
    INFO(row.name);
    if (row.kind == Kind::logic) {
      const bj::Tensor b = bj::constant({1., 0., 1.}, bj::boolean);
      const bj::Tensor y = row.op(b);
      CHECK(y.dtype() == bj::boolean);
      CHECK(y.to_vector<bool>() == std::vector<bool>{false, true, false});
      CHECK_THROWS_AS(row.op(bj::ones({2})), bj::ValueError);  // numbers are not booleans
      continue;
    }
    const bj::Tensor x = check::random_tensor(rng, {3, 5}, row.lo, row.hi);
    const bj::Tensor y = row.op(x);
    CHECK(y.shape() == x.shape());
    CHECK(y.dtype() == bj::float64);
    std::vector<double> want;
    for (double v : check::values(x)) want.push_back(row.ref(v));
    // "elementwise math is that of the C++ standard library eagerly".
    check::check_close(check::values(y), want, 4.5e-16, 0.0, "float64");

    const bj::Tensor x32 = bj::cast(x, bj::float32);
    const bj::Tensor y32 = row.op(x32);
    CHECK(y32.dtype() == bj::float32);
    std::vector<double> want32;
    for (float v : x32.data<float>()) want32.push_back(static_cast<float>(row.ref(v)));
    check::check_close(check::values(y32), want32, 2.4e-7, 0.0, "float32");
  }
}

TEST_CASE("binary ops: eager values with NumPy broadcasting", "[ops][elementwise]") {
  // a [2, 1, 3] op b [4, 1] -> [2, 4, 3]: r[i][j][k] = a[i][0][k] op b[j][0].
  const bj::Tensor a = bj::constant({{{1., 2., 3.}}, {{4., 0.5, 6.}}});
  const bj::Tensor b = bj::constant(std::vector<double>{0.5, 1.5, 2.0, 4.}, bj::Shape{4, 1});
  const bj::Tensor v = bj::constant({10., 2., 30.});
  const bj::Tensor m2 = bj::constant({{1., 2., 3.}, {4., 5., 0.}});
  for (const BinaryRow& row : kBinaryRows) {
    INFO(row.name);
    auto in = [&](const bj::Tensor& t) { return row.kind == Kind::logic ? bj::cast(t, bj::boolean) : t; };
    auto ref = [&](double p, double q) {
      return row.kind == Kind::logic ? row.ref(p != 0, q != 0) : row.ref(p, q);
    };
    const bj::DType out = row.kind == Kind::real ? bj::float64 : bj::boolean;
    const bj::Tensor r = row.op(in(a), in(b));
    REQUIRE(r.shape() == bj::Shape{2, 4, 3});
    CHECK(r.dtype() == out);
    for (std::int64_t i = 0; i < 2; ++i)
      for (std::int64_t j = 0; j < 4; ++j)
        for (std::int64_t k = 0; k < 3; ++k)
          CHECK(r.at({i, j, k}) == ref(a.at({i, 0, k}), b.at({j, 0})));
    // [3] against [2, 3], and the reverse order.
    const bj::Tensor r1 = row.op(in(m2), in(v)), r2 = row.op(in(v), in(m2));
    REQUIRE(r1.shape() == bj::Shape{2, 3});
    REQUIRE(r2.shape() == bj::Shape{2, 3});
    for (std::int64_t i = 0; i < 2; ++i)
      for (std::int64_t k = 0; k < 3; ++k) {
        CHECK(r1.at({i, k}) == ref(m2.at({i, k}), v.at({k})));
        CHECK(r2.at({i, k}) == ref(v.at({k}), m2.at({i, k})));
      }
    // A scalar tensor against a matrix, and two scalars.
    const bj::Tensor s = bj::constant(2.0);
    CHECK(row.op(in(s), in(m2)).shape() == bj::Shape{2, 3});
    CHECK(row.op(in(s), in(s)).shape() == bj::Shape{});
    CHECK(row.op(in(s), in(s)).at({}) == ref(2.0, 2.0));
    // Zero-size broadcasting: [0, 3] op [3] -> [0, 3].
    CHECK(row.op(in(bj::zeros({0, 3})), in(v)).shape() == bj::Shape{0, 3});
    // float32 keeps its dtype.
    if (row.kind == Kind::real) CHECK(row.op(bj::cast(m2, bj::float32), bj::cast(v, bj::float32)).dtype() == bj::float32);
  }
}

// Regression test (a bug found and fixed): maximum(NaN, 1) was 1 (but
// maximum(1, NaN) NaN), minimum the same, and relu(NaN) 0. TF: NaN.
TEST_CASE("maximum, minimum and relu: NaN in, NaN out (TF)", "[ops][elementwise]") {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  for (const bj::DType t : {bj::float64, bj::float32}) {
    INFO((t == bj::float32 ? "float32" : "float64"));
    const bj::Tensor a = bj::constant({nan, 1., nan, -inf, inf, 2.}, t);
    const bj::Tensor b = bj::constant({1., nan, nan, nan, nan, 3.}, t);
    for (const bj::Tensor& r : {bj::maximum(a, b), bj::maximum(b, a), bj::minimum(a, b), bj::minimum(b, a)}) {
      const auto v = check::values(r);
      for (std::size_t i = 0; i < 5; ++i) CHECK(std::isnan(v[i]));
    }
    CHECK(bj::maximum(a, b).at({5}) == 3.0);
    CHECK(bj::minimum(b, a).at({5}) == 2.0);
    const auto relu = check::values(bj::relu(bj::constant({nan, -1., 2., -inf, inf}, t)));
    CHECK(std::isnan(relu[0]));
    CHECK(std::vector<double>(relu.begin() + 1, relu.end()) == std::vector<double>{0., 2., 0., inf});
  }
}

TEST_CASE("where: eager values and broadcasting", "[ops][elementwise]") {
  const bj::Tensor c = bj::constant({1., 0., 1.}, bj::boolean);
  const bj::Tensor a = bj::constant({{1., 2., 3.}, {4., 5., 6.}});
  const bj::Tensor w = bj::where(c, a, bj::constant(-1.0));
  CHECK(w.shape() == bj::Shape{2, 3});
  CHECK(check::values(w) == std::vector<double>{1, -1, 3, 4, -1, 6});
  const bj::Tensor col = bj::cast(bj::constant(std::vector<double>{0., 1.}, bj::Shape{2, 1}), bj::boolean);
  CHECK(check::values(bj::where(col, a, -a)) == std::vector<double>{-1, -2, -3, 4, 5, 6});
  CHECK(bj::where(c, bj::cast(a, bj::float32), bj::constant(0.0, bj::float32)).dtype() ==
        bj::float32);
  CHECK_THROWS_AS(bj::where(a, a, a), bj::ValueError);                               // not a bool condition
  CHECK_THROWS_AS(bj::where(c, a, bj::cast(a, bj::float32)), bj::ValueError);        // mixed dtypes
  CHECK_THROWS_AS(bj::where(c, a, bj::zeros({2, 4})), bj::ValueError);               // shapes
  CHECK_THROWS_AS(bj::where(bj::cast(bj::ones({4}), bj::boolean), a, a), bj::ValueError);
  // A bool value operand is named by its own position.
  CHECK_THROWS_WITH(bj::where(c, c, a), Catch::Contains("input 1") && Catch::Contains("bool"));
  CHECK_THROWS_WITH(bj::where(c, a, c), Catch::Contains("input 2") && Catch::Contains("bool"));
}

TEST_CASE("comparison operators with tensors and scalars", "[ops][elementwise]") {
  const bj::Tensor x = bj::constant({1., 2., 3.}, bj::float32);
  const bj::Tensor y = bj::constant({3., 2., 1.}, bj::float32);
  CHECK((x < y).to_vector<bool>() == std::vector<bool>{true, false, false});
  CHECK((x <= y).to_vector<bool>() == std::vector<bool>{true, true, false});
  CHECK((x > y).to_vector<bool>() == std::vector<bool>{false, false, true});
  CHECK((x >= y).to_vector<bool>() == std::vector<bool>{false, true, true});
  CHECK((x < 2.0).to_vector<bool>() == std::vector<bool>{true, false, false});
  CHECK((x >= 2.0).dtype() == bj::boolean);
  // 0.1 rounds to float32 before comparing with a float32 tensor.
  const bj::Tensor tenth = bj::constant(std::vector<float>{0.1f}, bj::Shape{1});
  CHECK((tenth <= 0.1).to_vector<bool>() == std::vector<bool>{true});
  CHECK((tenth >= 0.1).to_vector<bool>() == std::vector<bool>{true});
  CHECK_THROWS_AS(bj::less(x, bj::cast(y, bj::float64)), bj::ValueError);
}

TEST_CASE("C++ scalar operands take the tensor's dtype", "[ops][elementwise]") {
  const bj::Tensor x = bj::constant({{0.1, 0.2, 0.3}}, bj::float32);
  for (const BinaryRow& row : kBinaryRows) {
    if (!row.scalar_right && !row.scalar_left) continue;
    INFO(row.name);
    const float s = 0.1f;  // computed in float32 with the scalar rounded to float32, as TF does
    for (std::int64_t k = 0; k < 3; ++k) {
      const float v = x.data<float>()[static_cast<std::size_t>(k)];
      if (row.scalar_right) {
        const bj::Tensor r = row.scalar_right(x, 0.1);
        CHECK(r.dtype() == bj::float32);
        CHECK(static_cast<float>(r.at({0, k})) == static_cast<float>(row.ref(v, s)));
      }
      if (row.scalar_left) {
        const bj::Tensor l = row.scalar_left(0.1, x);
        CHECK(l.dtype() == bj::float32);
        CHECK(static_cast<float>(l.at({0, k})) == Approx(static_cast<float>(row.ref(s, v))).epsilon(2e-7));
      }
    }
  }
  CHECK((bj::constant({1., 2.}) * 2.0).dtype() == bj::float64);
  CHECK((-x).dtype() == bj::float32);
}

// ---- errors --------------------------------------------------------------------------------

TEST_CASE("binary ops: shapes that do not broadcast raise ValueError", "[ops][elementwise][errors]") {
  for (const BinaryRow& row : kBinaryRows) {
    INFO(row.name);
    const bj::DType t = row.kind == Kind::logic ? bj::boolean : bj::float64;
    const bj::Tensor a = bj::zeros({2, 3}, t);
    const bj::Tensor b = bj::zeros({4}, t);
    CHECK_THROWS_AS(row.op(a, b), bj::ValueError);
    CHECK_THROWS_WITH(row.op(a, b), Catch::Contains(std::string(row.name)) &&
                                        Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
    CHECK_THROWS_AS(row.op(bj::zeros({2, 3}, t), bj::zeros({3, 3}, t)), bj::ValueError);
    CHECK_THROWS_AS(row.op(bj::zeros({2, 1, 3}, t), bj::zeros({5, 2}, t)), bj::ValueError);
  }
}

TEST_CASE("mixing float32 and float64 raises ValueError", "[ops][elementwise][errors]") {
  const bj::Tensor a = bj::ones({2, 2}, bj::float32);
  const bj::Tensor b = bj::ones({2, 2}, bj::float64);
  for (const BinaryRow& row : kBinaryRows) {
    if (row.kind == Kind::logic) continue;
    INFO(row.name);
    CHECK_THROWS_AS(row.op(a, b), bj::ValueError);
    CHECK_THROWS_AS(row.op(b, a), bj::ValueError);
    CHECK_THROWS_WITH(row.op(a, b), Catch::Contains("float32") && Catch::Contains("float64"));
  }
  // A ValueError is also a std::invalid_argument.
  CHECK_THROWS_AS(a * b, std::invalid_argument);
}

TEST_CASE("booleans where numbers are needed, and numbers where booleans are", "[ops][elementwise][errors]") {
  const bj::Tensor x = bj::constant({{1., 0.}, {2., 3.}});
  const bj::Tensor mask = bj::cast(x, bj::boolean);
  REQUIRE(mask.dtype() == bj::boolean);
  for (const UnaryRow& row : kUnaryRows) {
    INFO(row.name);
    CHECK_THROWS_AS(row.op(row.kind == Kind::logic ? x : mask), bj::ValueError);
  }
  CHECK_THROWS_WITH(bj::exp(mask), Catch::Contains("exp") && Catch::Contains("bool"));
  for (const BinaryRow& row : kBinaryRows) {
    INFO(row.name);
    if (row.kind == Kind::logic) {
      CHECK_THROWS_AS(row.op(x, mask), bj::ValueError);
      CHECK_THROWS_AS(row.op(mask, x), bj::ValueError);
      continue;
    }
    CHECK_THROWS_AS(row.op(mask, x), bj::ValueError);
    CHECK_THROWS_AS(row.op(x, mask), bj::ValueError);
    if (row.scalar_right) CHECK_THROWS_AS(row.scalar_right(mask, 2.0), bj::ValueError);
    if (row.scalar_left) CHECK_THROWS_AS(row.scalar_left(2.0, mask), bj::ValueError);
  }
  CHECK_THROWS_AS(-mask, bj::ValueError);
}

TEST_CASE("errors leave no trace on a tape", "[ops][elementwise][errors]") {
  bj::GradientTape tape;
  const bj::Tensor x = bj::constant({{1., 2.}});
  tape.watch(x);
  CHECK_THROWS_AS(x + bj::zeros({3}), bj::ValueError);
  CHECK_THROWS_AS(x * bj::ones({1, 2}, bj::float32), bj::ValueError);
  const bj::Tensor y = x * 3.0;
  const auto j = tape.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == std::vector<double>{3, 0, 0, 3});
}
