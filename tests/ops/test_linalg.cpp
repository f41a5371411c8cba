// matmul: the derivative table (shared weights, transposes, per-example
// matrices from the source and from constants), eager values, shape errors.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace bj = batchjac;
using check::Case;
using check::Context;

namespace {

const int kRegistered = check::register_ops({"matmul"});

// Reference: C[p][i][j] = sum_k op(A)[p][i][k] op(B)[p][k][j] on row-major data.
std::vector<double> ref_matmul(const std::vector<double>& a, const std::vector<double>& b,
                               std::int64_t batch, std::int64_t m, std::int64_t k, std::int64_t n,
                               bool ta, bool tb, bool b_shared) {
  std::vector<double> c(static_cast<std::size_t>(batch * m * n), 0.0);
  for (std::int64_t p = 0; p < batch; ++p)
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::int64_t q = 0; q < k; ++q) {
          const double av = a[p * m * k + (ta ? q * m + i : i * k + q)];
          const double bv = b[(b_shared ? 0 : p * k * n) + (tb ? j * k + q : q * n + j)];
          s += av * bv;
        }
        c[p * m * n + i * n + j] = s;
      }
  return c;
}

}  // namespace

TEST_CASE("matmul: derivative check table", "[ops][linalg]") {
  struct Row {
    std::string what;
    bj::Shape example;
    check::Fn f;
  };
  const std::vector<Row> rows = {
      {"[b, n] x shared [n, h]", {4},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.shared(1, {4, 3})); }},
      {"[b, k, n] x shared [n, h]", {2, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.shared(2, {4, 3})); }},
      {"[b, n] x shared [h, n], transpose_b", {4},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.shared(3, {3, 4}), false, true); }},
      {"[b, k, n] x shared [h, n], transpose_b", {2, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.shared(4, {3, 4}), false, true); }},
      {"[b, n, k] transpose_a x shared [n, h]", {4, 2},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.shared(5, {4, 3}), true, false); }},
      {"[b, n, k] transpose_a x shared [h, n] transpose_b", {4, 2},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.shared(6, {3, 4}), true, true); }},
      {"[b, p, k, n] x shared [n, h] (rank 4)", {2, 3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.shared(7, {4, 2})); }},
      {"per-example x x, both operands from the source", {3, 3},
       [](const bj::Tensor& x, const Context&) { return bj::matmul(x, x); }},
      {"per-example x^T x (transpose_a)", {3, 3},
       [](const bj::Tensor& x, const Context&) { return bj::matmul(x, x, true, false); }},
      {"per-example x x^T (transpose_b)", {3, 2},
       [](const bj::Tensor& x, const Context&) { return bj::matmul(x, x, false, true); }},
      {"per-example sin(x)^T cos(x)^T (both transposed)", {3, 3},
       [](const bj::Tensor& x, const Context&) { return bj::matmul(bj::sin(x), bj::cos(x), true, true); }},
      {"per-example constant [b, n, n] x source [b, n, k]", {3, 2},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(c.per_example(8, {3, 3}), x); }},
      {"source [b, n, n] x per-example constant [b, n, k]", {3, 3},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.per_example(9, {3, 2})); }},
      {"per-example constant^T x source, transpose_a", {3, 2},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(c.per_example(10, {3, 4}), x, true, false); }},
      {"source x per-example constant^T, transpose_b", {2, 3},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.per_example(11, {4, 3}), false, true); }},
      {"rank-4 per-example [b, p, n, n] x [b, p, n, k]", {2, 3, 3},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.per_example(12, {2, 3, 2})); }},
      {"tanh MLP: W2 tanh(W1 x + c1) + c2", {5},
       [](const bj::Tensor& x, const Context& c) {
         const bj::Tensor a = bj::tanh(bj::matmul(x, c.shared(13, {5, 7})) + c.shared(14, {7}));
         return bj::matmul(a, c.shared(15, {7, 3})) + c.shared(16, {3});
       }},
      // A tangent scaled after a shared-weight matmul, into another one: the
      // engine's lane-shared scaled matmul (per-example matrices, transposes,
      // and widths of whole vectors, whose Jacobian rows it writes directly).
      {"tanh layers of per-example matrices: tanh(x W1) W2", {3, 4},
       [](const bj::Tensor& x, const Context& c) {
         return bj::matmul(bj::tanh(bj::matmul(x, c.shared(22, {4, 5}))), c.shared(23, {5, 2}));
       }},
      {"tanh layers, transpose_a: tanh(x W1)^T W2", {3, 4},
       [](const bj::Tensor& x, const Context& c) {
         return bj::matmul(bj::tanh(bj::matmul(x, c.shared(24, {4, 5}))), c.shared(25, {3, 2}), true, false);
       }},
      {"tanh layers, transpose_b: tanh(x W1) W2^T", {3, 4},
       [](const bj::Tensor& x, const Context& c) {
         return bj::matmul(bj::tanh(bj::matmul(x, c.shared(26, {4, 5}))), c.shared(27, {2, 5}), false, true);
       }},
      {"tanh MLP with widths of whole vectors: [16] -> 8 -> [16]", {16},
       [](const bj::Tensor& x, const Context& c) {
         return bj::matmul(bj::tanh(bj::matmul(x, c.shared(28, {16, 8}))), c.shared(29, {8, 16}));
       }},
      {"quadratic form x^T A x = reduce_sum(matmul(x, A) * x)", {3},
       [](const bj::Tensor& x, const Context& c) {
         return bj::reduce_sum(bj::matmul(x, c.shared(17, {3, 3})) * x, {1}, true);
       }},
      {"shared [n, n] x per-example [b, n, k] (broadcast leading dims)", {3, 2},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(c.shared(19, {3, 3}), bj::sin(x)); }},
      {"source [b, p, m, k] x per-example [b, 1, k, n] (broadcast p)", {2, 2, 3},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(x, c.per_example(20, {1, 3, 2})); }},
      {"shared [1, m, k] x source [b, k, n]", {3, 2},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(c.shared(21, {1, 2, 3}), x, false, false); }},
      {"per-example A x as [b, n, n] x reshape(x, [b, n, 1])", {3},
       [](const bj::Tensor& x, const Context& c) {
         const std::int64_t b = x.shape()[0];
         return bj::reshape(bj::matmul(c.per_example(18, {3, 3}), bj::reshape(x, {b, 3, 1})), {b, 3});
       }},
  };
  for (const Row& r : rows) {
    Case c;
    c.name = "matmul: " + r.what;
    c.f = r.f;
    c.example = r.example;
    check::check_case(c);
  }
}

TEST_CASE("matmul: eager values", "[ops][linalg]") {
  std::mt19937_64 rng(7);
  struct Shapes {
    bj::Shape a, b;
    std::int64_t batch, m, k, n;
    bool ta, tb, b_shared;
  };
  const Shapes cases[] = {
      {{2, 3}, {3, 4}, 1, 2, 3, 4, false, false, true},
      {{3, 2}, {3, 4}, 1, 2, 3, 4, true, false, true},
      {{2, 3}, {4, 3}, 1, 2, 3, 4, false, true, true},
      {{3, 2}, {4, 3}, 1, 2, 3, 4, true, true, true},
      {{5, 2, 3}, {3, 4}, 5, 2, 3, 4, false, false, true},
      {{5, 3, 2}, {3, 4}, 5, 2, 3, 4, true, false, true},
      {{5, 2, 3}, {5, 3, 4}, 5, 2, 3, 4, false, false, false},
      {{5, 3, 2}, {5, 4, 3}, 5, 2, 3, 4, true, true, false},
      {{2, 3, 2, 3}, {2, 3, 3, 1}, 6, 2, 3, 1, false, false, false},
  };
  // Leading dimensions broadcast like NumPy: [3, 3] x [4, 3, 2] -> [4, 3, 2].
  {
    const bj::Tensor a = check::random_tensor(rng, {3, 3}, -1, 1);
    const bj::Tensor b = check::random_tensor(rng, {4, 3, 2}, -1, 1);
    const bj::Tensor c = bj::matmul(a, b);
    REQUIRE(c.shape() == bj::Shape{4, 3, 2});
    for (std::int64_t p = 0; p < 4; ++p)
      for (std::int64_t i = 0; i < 3; ++i)
        for (std::int64_t j = 0; j < 2; ++j) {
          double s = 0;
          for (std::int64_t q = 0; q < 3; ++q) s += a.at({i, q}) * b.at({p, q, j});
          CHECK(c.at({p, i, j}) == Approx(s).epsilon(1e-14));
        }
    CHECK(bj::matmul(bj::ones({2, 1, 3, 4}), bj::ones({5, 4, 2})).shape() == bj::Shape{2, 5, 3, 2});
  }
  for (const auto& s : cases) {
    INFO("a " << s.a << (s.ta ? "^T" : "") << " x b " << s.b << (s.tb ? "^T" : ""));
    const bj::Tensor a = check::random_tensor(rng, s.a, -1, 1);
    const bj::Tensor b = check::random_tensor(rng, s.b, -1, 1);
    const bj::Tensor c = bj::matmul(a, b, s.ta, s.tb);
    std::vector<std::int64_t> out(s.a.begin(), s.a.end() - 2);
    out.push_back(s.m);
    out.push_back(s.n);
    CHECK(c.shape() == bj::Shape(out));
    const auto want = ref_matmul(check::values(a), check::values(b), s.batch, s.m, s.k, s.n, s.ta,
                                 s.tb, s.b_shared);
    check::check_close(check::values(c), want, 1e-14, 1e-15, "values");
    // float32 too.
    const bj::Tensor c32 = bj::matmul(bj::cast(a, bj::float32), bj::cast(b, bj::float32), s.ta, s.tb);
    CHECK(c32.dtype() == bj::float32);
    check::check_close(check::values(c32), want, 1e-5, 1e-6, "float32 values");
  }
  // Exact small case: [[1, 2], [3, 4]] x [[5, 6], [7, 8]].
  const bj::Tensor p = bj::matmul(bj::constant({{1., 2.}, {3., 4.}}), bj::constant({{5., 6.}, {7., 8.}}));
  CHECK(check::values(p) == std::vector<double>{19, 22, 43, 50});
  // Empty rows: [0, 3] x [3, 2] -> [0, 2]; an empty contraction gives zeros.
  CHECK(bj::matmul(bj::zeros({0, 3}), bj::ones({3, 2})).shape() == bj::Shape{0, 2});
  const bj::Tensor e = bj::matmul(bj::ones({2, 0}), bj::ones({0, 3}));
  CHECK(e.shape() == bj::Shape{2, 3});
  CHECK(check::values(e) == std::vector<double>(6, 0.0));
}

TEST_CASE("matmul: bad shapes raise ValueError", "[ops][linalg][errors]") {
  const bj::Tensor a = bj::ones({2, 3});
  CHECK_THROWS_AS(bj::matmul(a, bj::ones({4, 2})), bj::ValueError);
  CHECK_THROWS_WITH(bj::matmul(a, bj::ones({4, 2})),
                    Catch::Contains("matmul") && Catch::Contains("[2, 3]") && Catch::Contains("[4, 2]"));
  CHECK_THROWS_AS(bj::matmul(a, bj::ones({2, 3}), false, false), bj::ValueError);
  CHECK_NOTHROW(bj::matmul(a, bj::ones({2, 3}), true, false));
  CHECK_THROWS_AS(bj::matmul(bj::ones({3}), bj::ones({3, 2})), bj::ValueError);  // rank 1
  CHECK_THROWS_AS(bj::matmul(a, bj::ones({3})), bj::ValueError);
  CHECK_THROWS_AS(bj::matmul(a, bj::ones({3, 2}, bj::float32)), bj::ValueError);          // dtypes
  CHECK_THROWS_AS(bj::matmul(bj::cast(a, bj::boolean), bj::ones({3, 2})), bj::ValueError);
  CHECK_THROWS_AS(bj::matmul(bj::ones({2, 2, 3}), bj::ones({3, 3, 2})), bj::ValueError);  // leading 2 vs 3
}
