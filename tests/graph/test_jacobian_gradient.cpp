// jacobian() and gradient(): full Jacobians of any ranks, against
// batch_jacobian and hand-derived values.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

namespace bj = batchjac;

namespace {
const bj::JacobianMode kModes[] = {bj::JacobianMode::forward, bj::JacobianMode::reverse,
                                   bj::JacobianMode::automatic};
using check::with_mode;
}  // namespace

TEST_CASE("jacobian: x * x is diagonal 2x over every pair of indices", "[graph][jacobian]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = x * x;
  for (auto mode : kModes) {
    const auto j = tape.jacobian(y, x, with_mode(mode));
    REQUIRE(j.has_value());
    REQUIRE(j->shape() == bj::Shape{2, 2, 2, 2});
    for (std::int64_t a = 0; a < 2; ++a)
      for (std::int64_t b = 0; b < 2; ++b)
        for (std::int64_t c = 0; c < 2; ++c)
          for (std::int64_t d = 0; d < 2; ++d)
            CHECK(j->at({a, b, c, d}) == (a == c && b == d ? 2 * x.at({a, b}) : 0.0));
  }
}

TEST_CASE("jacobian: block diagonal, with batch_jacobian's blocks", "[graph][jacobian]") {
  std::mt19937_64 rng(3);
  const std::int64_t b = 5, n = 3, m = 2;
  const bj::Tensor x = check::random_tensor(rng, {b, n}, -1, 1);
  const bj::Tensor w = check::random_tensor(rng, {n, m}, -1, 1);
  const bj::Tensor pe = check::random_tensor(rng, {b, m}, -1, 1);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = bj::tanh(bj::matmul(x, w)) * pe;
  const auto jb = tape.batch_jacobian(y, x);
  REQUIRE(jb.has_value());
  for (auto mode : kModes) {
    const auto jf = tape.jacobian(y, x, with_mode(mode));
    REQUIRE(jf.has_value());
    REQUIRE(jf->shape() == bj::Shape{b, m, b, n});
    std::int64_t bad = 0;
    for (std::int64_t i = 0; i < b; ++i)
      for (std::int64_t r = 0; r < m; ++r)
        for (std::int64_t k = 0; k < b; ++k)
          for (std::int64_t c = 0; c < n; ++c) {
            const double want = i == k ? jb->at({i, r, c}) : 0.0;
            if (std::abs(jf->at({i, r, k, c}) - want) > 1e-14) ++bad;
          }
    CHECK(bad == 0);
  }
}

TEST_CASE("jacobian: functions that mix examples", "[graph][jacobian]") {
  // y[i][j] = x[i][j] * S[j], S[j] = sum_k x[k][j]:
  // dy[i][j] / dx[k][l] = [j == l] ([i == k] S[j] + x[i][j]).
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}, {5., 6.}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = x * bj::reduce_sum(x, {0}, true);
  const double s[2] = {9., 12.};
  for (auto mode : kModes) {
    const auto j = tape.jacobian(y, x, with_mode(mode));
    REQUIRE(j.has_value());
    REQUIRE(j->shape() == bj::Shape{3, 2, 3, 2});
    for (std::int64_t i = 0; i < 3; ++i)
      for (std::int64_t jj = 0; jj < 2; ++jj)
        for (std::int64_t k = 0; k < 3; ++k)
          for (std::int64_t l = 0; l < 2; ++l) {
            const double want = jj == l ? (i == k ? s[jj] : 0.0) + x.at({i, jj}) : 0.0;
            CHECK(j->at({i, jj, k, l}) == want);
          }
  }
  // x^T x: d(x^T x)[a][c] / dx[k][l] = [a == l] x[k][c] + [c == l] x[k][a].
  const bj::Tensor g = bj::matmul(x, x, true, false);
  for (auto mode : kModes) {
    const auto j = tape.jacobian(g, x, with_mode(mode));
    REQUIRE(j.has_value());
    REQUIRE(j->shape() == bj::Shape{2, 2, 3, 2});
    for (std::int64_t a = 0; a < 2; ++a)
      for (std::int64_t c = 0; c < 2; ++c)
        for (std::int64_t k = 0; k < 3; ++k)
          for (std::int64_t l = 0; l < 2; ++l)
            CHECK(j->at({a, c, k, l}) == (a == l ? x.at({k, c}) : 0.0) + (c == l ? x.at({k, a}) : 0.0));
  }
}

TEST_CASE("jacobian: scalars and vectors", "[graph][jacobian]") {
  const bj::Tensor x = bj::constant(3.0);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = x * x * x;
  for (auto mode : kModes) {
    const auto j = tape.jacobian(y, x, with_mode(mode));
    REQUIRE(j.has_value());
    CHECK(j->shape() == bj::Shape{});
    CHECK(j->at({}) == 27.0);
  }
  // A vector source through a matmul: J = W^T.
  const bj::Tensor v = bj::constant({1., 2., 3.});
  const bj::Tensor w = bj::constant({{1., 2.}, {3., 4.}, {5., 6.}});
  tape.watch(v);
  const bj::Tensor r = bj::matmul(bj::reshape(v, {1, 3}), w);
  for (auto mode : kModes) {
    const auto j = tape.jacobian(r, v, with_mode(mode));
    REQUIRE(j.has_value());
    CHECK(j->shape() == bj::Shape{1, 2, 3});
    CHECK(check::values(*j) == std::vector<double>{1, 3, 5, 2, 4, 6});
  }
  // A scalar target of a vector source.
  const auto js = tape.jacobian(bj::reduce_sum(v * v), v);
  REQUIRE(js.has_value());
  CHECK(js->shape() == bj::Shape{3});
  CHECK(check::values(*js) == std::vector<double>{2, 4, 6});
}

TEST_CASE("gradient: of the sum, shaped like the source", "[graph][gradient]") {
  const bj::Tensor x = bj::constant({{0.5, 1.}, {1.5, 2.}}, bj::float32);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const auto g = tape.gradient(x * x, x);
  REQUIRE(g.has_value());
  CHECK(g->shape() == x.shape());
  CHECK(g->dtype() == bj::float32);
  CHECK(g->to_vector<float>() == std::vector<float>{1, 2, 3, 4});

  const bj::Tensor s = bj::reduce_sum(bj::sin(x));
  const auto gs = tape.gradient(s, x);
  REQUIRE(gs.has_value());
  for (std::int64_t i = 0; i < 4; ++i) {
    const float xv = x.data<float>()[static_cast<std::size_t>(i)];
    CHECK(gs->data<float>()[static_cast<std::size_t>(i)] == Approx(std::cos(xv)).epsilon(1e-6));
  }
  // gradient == column sums of batch_jacobian for a per-example function.
  const bj::Tensor y = bj::exp(x) * bj::reduce_sum(x, {1}, true);
  const auto gy = tape.gradient(y, x);
  const auto jy = tape.batch_jacobian(y, x);
  REQUIRE(gy.has_value());
  REQUIRE(jy.has_value());
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t c = 0; c < 2; ++c) {
      const double want = jy->at({i, 0, c}) + jy->at({i, 1, c});
      CHECK(gy->at({i, c}) == Approx(want).epsilon(1e-6));
    }
  // The gradient of the source itself is ones.
  const auto g1 = tape.gradient(x, x);
  REQUIRE(g1.has_value());
  CHECK(g1->to_vector<float>() == std::vector<float>(4, 1.0f));
}

TEST_CASE("gradient: with respect to shared weights", "[graph][gradient]") {
  // L = sum(matmul(X, W) * C): dL/dW = X^T C.
  std::mt19937_64 rng(5);
  const bj::Tensor X = check::random_tensor(rng, {4, 3}, -1, 1);
  const bj::Tensor C = check::random_tensor(rng, {4, 2}, -1, 1);
  const bj::Tensor W = check::random_tensor(rng, {3, 2}, -1, 1);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(W);
  const bj::Tensor L = bj::reduce_sum(bj::matmul(X, W) * C);
  const auto g = tape.gradient(L, W);
  REQUIRE(g.has_value());
  const auto want = bj::matmul(X, C, true, false);
  check::check_close(*g, want, 1e-14, 1e-15, "dL/dW");
  for (auto mode : kModes) {
    const auto j = tape.jacobian(L, W, with_mode(mode));
    REQUIRE(j.has_value());
    check::check_close(*j, want, 1e-14, 1e-15, "jacobian of the scalar L");
  }
}

// Reverse mode through matmul with a rank-3 constant a and rank-2 weights b
// ([B, T, n] x [n, h]) must sum b's cotangent over the leading axis.
TEST_CASE("gradient and reverse jacobian through matmul with a rank-3 left operand",
          "[graph][gradient]") {
  std::mt19937_64 rng(6);
  const bj::Tensor X = check::random_tensor(rng, {2, 3, 4}, -1, 1);
  const bj::Tensor W = check::random_tensor(rng, {4, 2}, -1, 1);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(W);
  const bj::Tensor y = bj::matmul(X, W);  // [2, 3, 2]
  // dsum(y)/dW[k][h] = sum over p, m of X[p][m][k].
  std::vector<double> want(8, 0.0);
  for (std::int64_t p = 0; p < 2; ++p)
    for (std::int64_t m = 0; m < 3; ++m)
      for (std::int64_t k = 0; k < 4; ++k)
        for (std::int64_t h = 0; h < 2; ++h) want[k * 2 + h] += X.at({p, m, k});
  const auto g = tape.gradient(y, W);
  REQUIRE(g.has_value());
  CHECK(g->shape() == W.shape());
  check::check_close(check::values(*g), want, 1e-14, 1e-14, "gradient");
  const auto jf = tape.jacobian(y, W, with_mode(bj::JacobianMode::forward));
  const auto jr = tape.jacobian(y, W, with_mode(bj::JacobianMode::reverse));
  REQUIRE(jf.has_value());
  REQUIRE(jr.has_value());
  check::check_close(*jr, *jf, 1e-14, 1e-14, "reverse vs forward");
}
