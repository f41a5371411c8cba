// batch_jacobian's argument checks and the batch-axis analysis: a target whose
// example i depends on source example j != i is a ValueError naming the op
// (TF silently returns wrong numbers), and the tape stays usable afterwards.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

namespace bj = batchjac;

TEST_CASE("batch_jacobian: ranks, first dimensions, dtypes, options", "[graph][errors]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = x * x;

  const bj::Tensor v = bj::reshape(x, {4});
  CHECK_THROWS_AS(tape.batch_jacobian(y, v), bj::ValueError);  // source rank 1
  CHECK_THROWS_AS(tape.batch_jacobian(bj::reshape(y, {4}), x), bj::ValueError);  // target rank 1
  CHECK_THROWS_AS(tape.batch_jacobian(bj::reduce_sum(y), x), bj::ValueError);     // target rank 0
  CHECK_THROWS_WITH(tape.batch_jacobian(y, v), Catch::Contains("rank") && Catch::Contains("[4]"));

  const bj::Tensor y3 = bj::reshape(y, {1, 4});
  CHECK_THROWS_AS(tape.batch_jacobian(y3, x), bj::ValueError);  // first dims 1 vs 2
  CHECK_THROWS_WITH(tape.batch_jacobian(y3, x), Catch::Contains("[1, 4]") && Catch::Contains("[2, 2]"));

  const bj::Tensor mask = bj::cast(x, bj::boolean);
  CHECK_THROWS_AS(tape.watch(mask), bj::ValueError);
  CHECK_THROWS_AS(tape.batch_jacobian(y, mask), bj::ValueError);  // boolean source
  CHECK_THROWS_AS(tape.batch_jacobian(mask, x), bj::ValueError);  // boolean target

  for (std::int64_t p : {0, -1}) {
    bj::JacobianOptions o;
    o.parallel_iterations = p;
    CHECK_THROWS_AS(tape.batch_jacobian(y, x, o), bj::ValueError);
    CHECK_THROWS_WITH(tape.batch_jacobian(y, x, o), Catch::Contains("parallel_iterations"));
    CHECK_THROWS_AS(tape.jacobian(y, x, o), bj::ValueError);
  }
  for (int t : {0, -2}) {
    bj::JacobianOptions o;
    o.max_threads = t;
    CHECK_THROWS_AS(tape.batch_jacobian(y, x, o), bj::ValueError);
    CHECK_THROWS_WITH(tape.batch_jacobian(y, x, o), Catch::Contains("max_threads"));
  }
  // parallel_iterations == 1 works (TF raises): it is one row or column per task.
  bj::JacobianOptions one;
  one.parallel_iterations = 1;
  const auto j = tape.batch_jacobian(y, x, one);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == std::vector<double>{2, 0, 0, 4, 6, 0, 0, 8});
}

TEST_CASE("batch_jacobian: an empty batch gives an empty result", "[graph]") {
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse, bj::JacobianMode::automatic}) {
    const bj::Tensor x = bj::zeros({0, 3});
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = bj::matmul(bj::tanh(x), bj::ones({3, 4})) * bj::ones({1, 4});
    REQUIRE(y.shape() == bj::Shape{0, 4});
    bj::JacobianOptions o;
    o.mode = mode;
    const auto j = tape.batch_jacobian(y, x, o);
    REQUIRE(j.has_value());
    CHECK(j->shape() == bj::Shape{0, 4, 3});
    CHECK(j->dtype() == bj::float64);
  }
  const bj::Tensor x = bj::zeros({0, 2, 2}, bj::float32);
  bj::GradientTape tape;
  tape.watch(x);
  const auto j = tape.batch_jacobian(bj::reduce_sum(x, {2}, true), x);
  REQUIRE(j.has_value());
  CHECK(j->shape() == bj::Shape{0, 2, 1, 2, 2});
  CHECK(j->dtype() == bj::float32);
}

TEST_CASE("batch_jacobian: examples that mix are a ValueError naming the op", "[graph][errors]") {
  // x is [b, n] with b == n == 3, so that shapes alone cannot tell the axes apart.
  struct Row {
    std::string what;
    std::string op;  // the op the message must name
    std::function<bj::Tensor(const bj::Tensor&)> f;
  };
  const std::vector<Row> rows = {
      {"reduce_sum over axis 0", "reduce_sum",
       [](const bj::Tensor& x) { return x * bj::reduce_sum(x, {0}, true); }},
      {"reduce_sum over axis -2 of [b, n]", "reduce_sum",
       [](const bj::Tensor& x) { return x + bj::reduce_sum(x, {-2}, true); }},
      {"reduce_sum over every axis", "reduce_sum",
       [](const bj::Tensor& x) { return x * bj::reduce_sum(x); }},
      {"reshape merging the batch axis", "reshape",
       [](const bj::Tensor& x) { return bj::reshape(bj::exp(bj::reshape(x, {9})), {3, 3}); }},
      {"reshape moving elements between examples", "reshape",
       [](const bj::Tensor& x) { return bj::reshape(bj::reshape(x, {1, 9}), {3, 3}); }},
      {"matmul contracting the batch axis: x^T x", "matmul",
       [](const bj::Tensor& x) { return bj::matmul(x, bj::matmul(x, x, true, false)); }},
      {"matmul x x^T: the batch axis becomes columns", "matmul",
       [](const bj::Tensor& x) { return bj::matmul(x, x, false, true); }},
      {"matmul of a constant with the source on the right", "matmul",
       [](const bj::Tensor& x) { return bj::matmul(bj::ones({3, 3}), x); }},
      {"matmul transpose_a of the source with a constant", "matmul",
       [](const bj::Tensor& x) { return bj::matmul(x, bj::matmul(x, bj::ones({3, 3}), true, false)); }},
      {"broadcasting a source-derived [b] against [b, n] (aligns with n)", "multiply",
       [](const bj::Tensor& x) { return x * bj::reduce_sum(x, {1}); }},
      {"broadcasting the source [b, n] against a source-derived [b, 1, n]", "add",
       [](const bj::Tensor& x) {
         return bj::reduce_sum(x + bj::reshape(x, {3, 1, 3}), {1});
       }},
      {"broadcasting the source [b, n] against a constant [k, b, n]", "subtract",
       [](const bj::Tensor& x) { return bj::reduce_sum(x - bj::ones({2, 3, 3}), {0}); }},
      {"broadcast_to adding a leading axis", "broadcast_to",
       [](const bj::Tensor& x) { return bj::reduce_sum(bj::broadcast_to(x, {2, 3, 3}), {0}); }},
      {"reduce_max over axis 0", "reduce_max", [](const bj::Tensor& x) { return x - bj::reduce_max(x, {0}, true); }},
      {"reduce_prod over axis 0", "reduce_prod", [](const bj::Tensor& x) { return x * bj::reduce_prod(x, {0}, true); }},
      {"reduce_min over every axis", "reduce_min", [](const bj::Tensor& x) { return x * bj::reduce_min(x); }},
      {"reduce_mean over axis 0", "reduce_sum", [](const bj::Tensor& x) { return x - bj::reduce_mean(x, {0}, true); }},
      {"softmax over axis 0", "reduce_max", [](const bj::Tensor& x) { return bj::softmax(x, 0); }},
      {"cumsum along axis 0", "cumsum", [](const bj::Tensor& x) { return bj::cumsum(x, 0); }},
      {"transpose swapping the batch axis", "transpose", [](const bj::Tensor& x) { return bj::transpose(x); }},
      {"slice of the batch axis", "slice",
       [](const bj::Tensor& x) { return bj::concat({bj::slice(x, {1, 0}, {2, 3}), bj::slice(x, {0, 0}, {1, 3})}, 0); }},
      {"gather along the batch axis", "gather", [](const bj::Tensor& x) { return bj::gather(x, {2, 0, 1}, 0); }},
      {"roll along the batch axis", "roll", [](const bj::Tensor& x) { return bj::roll(x, 1, 0); }},
      {"tile of the batch axis", "tile", [](const bj::Tensor& x) { return bj::slice(bj::tile(x, {2, 1}), {1, 0}, {3, 3}); }},
      {"repeat along the batch axis", "repeat",
       [](const bj::Tensor& x) { return bj::slice(bj::repeat(x, {2, 1, 0}, 0), {0, 0}, {3, 3}); }},
      {"repeat of the flattened source (a reshape merging axis 0 first)", "reshape",
       [](const bj::Tensor& x) { return bj::reshape(bj::repeat(x, 1), {3, 3}); }},
      {"pad of the batch axis", "pad", [](const bj::Tensor& x) { return bj::slice(bj::pad(x, {{1, 0}, {0, 0}}), {0, 0}, {3, 3}); }},
      {"concat along the batch axis", "concat",
       [](const bj::Tensor& x) { return bj::reduce_sum(bj::reshape(bj::concat({x, x}, 0), {2, 3, 3}), {0}); }},
      {"stack along axis 0 (a reshape adding a leading axis)", "reshape",
       [](const bj::Tensor& x) { return bj::reduce_sum(bj::stack({x, x}, 0), {0}); }},
      {"matmul broadcasting a source [b, n] against a source [b, 1, n, k]", "matmul",
       [](const bj::Tensor& x) {
         return bj::reduce_sum(bj::matmul(x, bj::reshape(x, {3, 1, 3, 1})), {1, 2});
       }},
      {"where broadcasting a source-derived [b] condition along n", "where",
       [](const bj::Tensor& x) { return bj::where(bj::reduce_sum(x, {1}) > 1.0, x, -x); }},
  };
  const bj::Tensor x = bj::constant({{0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}, {0.7, 0.8, 0.9}});
  for (const Row& r : rows) {
    INFO(r.what);
    // A non-persistent tape: the error must not use it up.
    bj::GradientTape tape;
    tape.watch(x);
    bj::Tensor target;
    REQUIRE_NOTHROW(target = r.f(x));  // eagerly, nothing is wrong
    REQUIRE(target.rank() == 2);
    REQUIRE(target.shape()[0] == 3);
    for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse, bj::JacobianMode::automatic}) {
      bj::JacobianOptions o;
      o.mode = mode;
      CHECK_THROWS_AS(tape.batch_jacobian(target, x, o), bj::ValueError);
      CHECK_THROWS_WITH(tape.batch_jacobian(target, x, o), Catch::StartsWith(r.op + ":") &&
                                                               Catch::Contains("example"));
    }
    // The full Jacobian of the same program is fine.
    bj::GradientTape full;
    full.watch(x);
    const bj::Tensor t2 = r.f(x);
    const auto jf = full.jacobian(t2, x);
    CHECK(jf.has_value());
    // And the tape still answers a valid call.
    const bj::Tensor ok = bj::sin(x) * 2.0;
    const auto j = tape.batch_jacobian(ok, x);
    REQUIRE(j.has_value());
    CHECK(j->shape() == bj::Shape{3, 3, 3});
    CHECK(j->at({1, 2, 2}) == Approx(2.0 * std::cos(0.6)).epsilon(1e-14));
    CHECK(j->at({1, 2, 1}) == 0.0);
  }
}

TEST_CASE("batch_jacobian: ops on non-batch axes, and identity ops on the batch axis, are fine", "[graph]") {
  const bj::Tensor x = bj::constant({{0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}, {0.7, 0.8, 0.9}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  // A roll of axis 0 by a multiple of b, a full slice, tile and pad of 1 and
  // 0 along axis 0, a transpose that keeps axis 0, a repeat of 1 along axis
  // 0: each example stays itself.
  const bj::Tensor y = bj::roll(x, 3, 0) + bj::slice(x, {0, 0}, {-1, -1}) + bj::tile(x, {1, 1}) +
                       bj::pad(x, {{0, 0}, {0, 0}}) + bj::transpose(x, {0, 1}) + bj::repeat(x, 1, 0);
  const auto j = tape.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t r = 0; r < 3; ++r)
      for (std::int64_t c = 0; c < 3; ++c) CHECK(j->at({i, r, c}) == (r == c ? 6.0 : 0.0));
}

TEST_CASE("batch_jacobian: per-example and shared constants are not mixing", "[graph]") {
  // Constants of every layout the rules must accept without an error.
  const bj::Tensor x = bj::constant({{0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}, {0.7, 0.8, 0.9}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor per_example = bj::constant({{1., 2., 3.}, {4., 5., 6.}, {7., 8., 9.}});
  const bj::Tensor shared_n = bj::constant({1., 2., 3.});
  const bj::Tensor shared_1n = bj::constant({{1., 2., 3.}});
  const bj::Tensor per_example_1 = bj::constant(bj::Init2{{1.}, {2.}, {3.}});
  const bj::Tensor y = x * per_example + x * shared_n + x * shared_1n + x * per_example_1;
  const auto j = tape.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t r = 0; r < 3; ++r)
      for (std::int64_t c = 0; c < 3; ++c) {
        const double want = r == c ? per_example.at({i, r}) + shared_n.at({r}) +
                                         shared_1n.at({0, r}) + per_example_1.at({i, 0})
                                   : 0.0;
        CHECK(j->at({i, r, c}) == want);
      }
  // Constants from another watched tensor are constants here.
  const bj::Tensor w = bj::constant(bj::Init2{{2.}, {3.}, {4.}});
  tape.watch(w);
  const bj::Tensor ww = w * w;
  const auto jw = tape.batch_jacobian(x * ww, x);
  REQUIRE(jw.has_value());
  CHECK(jw->at({2, 1, 1}) == 16.0);
}
