// bj::trace: a Function gives the tape's numbers bit for bit, records and
// plans nothing per call, binds the caller's arrays, and is safe to call
// from many threads at once.
#include "autodiff/autodiff.hpp"
#include "engine/plan_cache.hpp"
#include "graph/program.hpp"
#include "ops/elementwise_math.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

namespace bj = batchjac;

namespace {

// [b, 5] -> [b, 3, 2]: shared weights, a matmul, a reduction, a per-example
// broadcast, math functions.
bj::Tensor program(const bj::Tensor& x) {
  std::mt19937_64 rng(5);
  const bj::DType t = x.dtype();
  const bj::Tensor w = check::random_tensor(rng, {5, 6}, -0.5, 0.5, t);
  const bj::Tensor h = bj::tanh(bj::matmul(x, w));
  const bj::Tensor s = bj::reshape(bj::reduce_sum(x * x, {1}, true), {x.shape()[0], 1, 1});
  return bj::reshape(h, {x.shape()[0], 3, 2}) * bj::exp(s * 0.1) + s;
}

bj::DType dtype_of(bool wide) { return wide ? bj::float64 : bj::float32; }

// The tape's batch_jacobian and value of f at x.
struct TapeResult {
  std::optional<bj::Tensor> jacobian;
  bj::Tensor value;
};
TapeResult on_tape(const std::function<bj::Tensor(const bj::Tensor&)>& f, const bj::Tensor& x,
                   const bj::JacobianOptions& o) {
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = f(x);
  auto j = tape.batch_jacobian(y, x, o);
  (void)check::values(y);  // read: computed now
  return {j, y};
}

std::vector<bj::JacobianOptions> option_grid() {
  return check::options({.modes = {bj::JacobianMode::automatic, bj::JacobianMode::forward, bj::JacobianMode::reverse},
                         .parallel_iterations = {std::nullopt, 2},
                         .pfor = {true, false}});
}

template <class T>
std::span<const T> span_of(const bj::Tensor& t) {
  return t.data<T>();
}

template <class T>
void check_function_matches_tape(const std::function<bj::Tensor(const bj::Tensor&)>& f, const bj::Shape& x_shape,
                                 std::uint64_t seed) {
  const bool wide = sizeof(T) == 8;
  const bj::Function fn = bj::trace(f, bj::TensorSpec{x_shape, dtype_of(wide)});
  std::mt19937_64 rng(seed);
  for (std::int64_t b : {1, 7, 8, 9, 17, 33}) {
    bj::Shape shape = x_shape;
    shape[0] = b;
    const bj::Tensor x = check::random_tensor(rng, shape, -1, 1, dtype_of(wide));
    for (const bj::JacobianOptions& o : option_grid()) {
      INFO("b = " << b << ", mode " << static_cast<int>(o.mode) << ", parallel_iterations "
                  << o.parallel_iterations.value_or(-1) << ", pfor " << o.experimental_use_pfor);
      const TapeResult want = on_tape(f, x, o);
      REQUIRE(want.jacobian.has_value());
      const std::optional<bj::Tensor> got = fn.batch_jacobian(x, o);
      REQUIRE(got.has_value());
      CHECK(check::same_bits(*got, *want.jacobian));
      // Into the caller's arrays, with and without the value.
      std::vector<T> jac(static_cast<std::size_t>(want.jacobian->num_elements()),
                         std::numeric_limits<T>::quiet_NaN());
      fn.batch_jacobian_into(span_of<T>(x), std::span<T>(jac), o);
      CHECK(std::memcmp(jac.data(), want.jacobian->data<T>().data(), jac.size() * sizeof(T)) == 0);
      std::vector<T> value(static_cast<std::size_t>(want.value.num_elements()));
      std::fill(jac.begin(), jac.end(), std::numeric_limits<T>::quiet_NaN());
      fn.value_and_batch_jacobian_into(span_of<T>(x), std::span<T>(value), std::span<T>(jac), o);
      CHECK(std::memcmp(jac.data(), want.jacobian->data<T>().data(), jac.size() * sizeof(T)) == 0);
      CHECK(std::memcmp(value.data(), want.value.data<T>().data(), value.size() * sizeof(T)) == 0);
    }
    CHECK(check::same_bits(fn(x), on_tape(f, x, {}).value));
  }
}

}  // namespace

TEST_CASE("trace: a Function equals the tape bit for bit, every option and batch tail", "[engine][function]") {
  check_function_matches_tape<double>(program, {-1, 5}, 1);
  check_function_matches_tape<float>(program, {-1, 5}, 2);
  // Elementwise only, rank 3 source; and the identity.
  auto chain = [](const bj::Tensor& x) { return bj::sin(x) * bj::log1p(x * x) + bj::sqrt(x * x + 1.0); };
  check_function_matches_tape<double>(chain, {-1, 2, 3}, 3);
  check_function_matches_tape<double>([](const bj::Tensor& x) { return x; }, {-1, 4}, 4);
  // Index maps, per-example matmuls, a softmax, a where, cumsum, a gather
  // from a shared table.
  auto many = [](const bj::Tensor& x) {
    const bj::Tensor a = bj::slice(x, {0, 0}, {-1, 3});
    const bj::Tensor m = bj::reshape(x, {-1, 2, 3});
    const bj::Tensor mm = bj::reshape(bj::matmul(m, bj::transpose(m, {0, 2, 1})), {-1, 4});  // [b, 4]
    const bj::Tensor g = bj::gather(x, {5, 4, 3}, 1);
    const bj::Tensor s = bj::softmax(a) * g + bj::where(a > g, bj::sin(a), bj::cumsum(g, 1));
    return bj::concat({s, mm, bj::reduce_max(x, {1}, true)}, 1);  // [b, 8]
  };
  check_function_matches_tape<double>(many, {-1, 6}, 5);
  check_function_matches_tape<float>(many, {-1, 6}, 6);
}

TEST_CASE("trace: derivatives agree with central differences and across modes", "[engine][function]") {
  const bj::Function fn = bj::trace(program, bj::TensorSpec{{-1, 5}, bj::float64});
  std::mt19937_64 rng(11);
  const std::int64_t b = 3;
  const std::vector<double> xs = check::random_values(rng, b * 5, -1, 1);
  std::vector<double> fwd(b * 6 * 5), rev(b * 6 * 5);
  fn.batch_jacobian_into(xs, fwd, check::with_mode(bj::JacobianMode::forward));
  fn.batch_jacobian_into(xs, rev, check::with_mode(bj::JacobianMode::reverse));
  check::check_close(fwd, rev, 1e-13, 1e-14, "forward against reverse");
  for (std::int64_t i = 0; i < b; ++i) {
    const std::vector<double> xi(xs.begin() + i * 5, xs.begin() + (i + 1) * 5);
    const auto fd = check::central_differences(
        [&](const std::vector<double>& v) { return fn(bj::constant(v, {1, 5})).to_vector<double>(); }, xi, 1e-6);
    check::check_close(std::span<const double>(fwd).subspan(static_cast<std::size_t>(i * 30), 30), fd, 1e-7, 1e-8,
                       "example " + std::to_string(i) + " against central differences");
  }
}

TEST_CASE("trace: a per-example input (aux) is bound per call", "[engine][function]") {
  // aux enters through ops of its own (aux * aux, exp(aux)) and with x.
  auto f = [](const bj::Tensor& x, const bj::Tensor& aux) {
    const bj::Tensor a2 = aux * aux;
    return bj::tanh(x * bj::exp(aux)) + bj::reshape(bj::reduce_sum(x, {1}, true), {x.shape()[0], 1}) * a2;
  };
  const bj::Function fn = bj::trace(f, bj::TensorSpec{{-1, 4}, bj::float64}, bj::TensorSpec{{-1, 4}, bj::float64});
  REQUIRE(fn.aux_spec().has_value());
  CHECK(fn.output_spec().shape == bj::Shape{-1, 4});
  std::mt19937_64 rng(21);
  for (std::int64_t b : {1, 5, 9}) {
    const bj::Tensor x = check::random_tensor(rng, {b, 4}, -1, 1);
    const bj::Tensor aux = check::random_tensor(rng, {b, 4}, -1, 1);
    // The tape: aux a plain tensor, its ops eager (the Function runs them
    // in the engine: equal to rounding).
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = f(x, aux);
    for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
      const auto want = tape.batch_jacobian(y, x, check::with_mode(mode));
      const auto got = fn.batch_jacobian(x, aux, check::with_mode(mode));
      REQUIRE(got.has_value());
      check::check_close(*got, *want, 1e-14, 1e-15, "Jacobian with aux");
      std::vector<double> jac(static_cast<std::size_t>(want->num_elements()));
      std::vector<double> value(static_cast<std::size_t>(b * 4));
      fn.value_and_batch_jacobian_into(x.data<double>(), aux.data<double>(), value, jac, check::with_mode(mode));
      check::check_close(jac, want->to_vector<double>(), 1e-14, 1e-15, "Jacobian with aux, into");
      check::check_close(value, y.to_vector<double>(), 1e-14, 1e-15, "value with aux, into");
    }
    check::check_close(fn(x, aux), y, 1e-14, 1e-15, "value with aux");
  }
  // Missing or extra aux, a batch that differs.
  const bj::Tensor x = bj::ones({2, 4});
  CHECK_THROWS_AS(fn(x), bj::ValueError);
  CHECK_THROWS_AS(fn.batch_jacobian(x, bj::ones({3, 4})), bj::ValueError);
  std::vector<double> xs(8), aux(12), jac(32);
  CHECK_THROWS_AS(fn.batch_jacobian_into(xs, aux, jac), bj::ValueError);
  CHECK_THROWS_AS(fn.batch_jacobian_into(std::span<const double>(xs), std::span<double>(jac)), bj::ValueError);
  const bj::Function plain = bj::trace(program, bj::TensorSpec{{-1, 5}, bj::float64});
  CHECK_THROWS_AS(plain(bj::ones({2, 5}), bj::ones({2, 5})), bj::ValueError);
}

TEST_CASE("trace: a program with per-example constants of its own is traced per batch size",
          "[engine][function]") {
  // bj::fill of x.shape(): a per-example constant the batch size shapes.
  auto f = [](const bj::Tensor& x) {
    const bj::Tensor scale = bj::fill({x.shape()[0], 3}, 1.5);
    return bj::where(x > 0.0, x * scale, bj::zeros(x.shape()));
  };
  const bj::Function fn = bj::trace(f, bj::TensorSpec{{-1, 3}, bj::float64});
  std::mt19937_64 rng(31);
  for (std::int64_t b : {1, 2, 5, 8, 9, 13, 5}) {
    const bj::Tensor x = check::random_tensor(rng, {b, 3}, -1, 1);
    const TapeResult want = on_tape(f, x, {});
    CHECK(check::same_bits(*fn.batch_jacobian(x), *want.jacobian));
    CHECK(check::same_bits(fn(x), want.value));
  }
}

TEST_CASE("trace: calls record and plan nothing after the first of their options", "[engine][function]") {
  const bj::Function fn = bj::trace(program, bj::TensorSpec{{-1, 5}, bj::float64});
  std::vector<double> xs(40, 0.25), jac(8 * 30), value(8 * 6);
  fn.batch_jacobian_into(xs, jac);
  const auto before = bj::engine::plan_cache_stats();
  for (int i = 0; i < 3; ++i) {
    fn.batch_jacobian_into(xs, jac);
    fn.value_and_batch_jacobian_into(xs, value, jac);
    (void)fn(bj::view(std::span<const double>(xs), {8, 5}));
  }
  const auto after = bj::engine::plan_cache_stats();
  CHECK(after.hits == before.hits);  // the tape's plan cache is not asked: no slicing, no key
  CHECK(after.misses == before.misses);
  // A live tape on this thread does not see the calls.
  bj::GradientTape outer(bj::TapeOptions{.persistent = true});
  const bj::Tensor x = bj::view(std::span<const double>(xs), {8, 5});
  outer.watch(x);
  const bj::Tensor y = fn(x);
  CHECK_FALSE(outer.batch_jacobian(y, x).has_value());
}

TEST_CASE("trace: shared constants are captured at trace time", "[engine][function]") {
  std::vector<double> w{1, 2, 3};
  const bj::Tensor wv = bj::view(std::span<const double>(w), {1, 3});
  const bj::Function fn = bj::trace([wv](const bj::Tensor& x) { return x * wv; }, bj::TensorSpec{{-1, 3}, bj::float64});
  w = {10, 20, 30};  // the caller's array changes; the Function kept a copy
  const std::vector<double> x{1, 1, 1};
  std::vector<double> value(3), jac(9);
  fn.value_and_batch_jacobian_into(x, value, jac);
  CHECK(value == std::vector<double>{1, 2, 3});
  CHECK(jac == std::vector<double>{1, 0, 0, 0, 2, 0, 0, 0, 3});
}

TEST_CASE("trace: unconnected results follow unconnected_gradients", "[engine][function]") {
  auto f = [](const bj::Tensor& x) { return bj::stop_gradient(x) * 2.0; };
  const bj::Function fn = bj::trace(f, bj::TensorSpec{{-1, 2}, bj::float64});
  const bj::Tensor x = bj::constant({{1.0, 2.0}, {3.0, 4.0}});
  CHECK_FALSE(fn.batch_jacobian(x).has_value());
  bj::JacobianOptions zero;
  zero.unconnected_gradients = bj::UnconnectedGradients::zero;
  const auto z = fn.batch_jacobian(x, zero);
  REQUIRE(z.has_value());
  CHECK(z->shape() == bj::Shape{2, 2, 2});
  CHECK(check::values(*z) == std::vector<double>(8, 0.0));
  std::vector<double> value(4), jac(8, 7.0);
  fn.value_and_batch_jacobian_into(x.data<double>(), value, jac);
  CHECK(value == std::vector<double>{2, 4, 6, 8});
  CHECK(jac == std::vector<double>(8, 0.0));
  CHECK(check::values(fn(x)) == std::vector<double>{2, 4, 6, 8});
  // A result that does not read x at all: a constant of the trace's shape.
  const bj::Function constant = bj::trace([](const bj::Tensor& t) { return bj::ones({t.shape()[0], 3}); },
                                          bj::TensorSpec{{-1, 2}, bj::float64});
  CHECK(constant(x).shape() == bj::Shape{2, 3});
  CHECK_FALSE(constant.batch_jacobian(x).has_value());
}

TEST_CASE("trace: bad specs, results and spans raise ValueError", "[engine][function]") {
  auto id = [](const bj::Tensor& x) { return x * 1.0; };
  CHECK_THROWS_AS(bj::trace(id, bj::TensorSpec{{4, 3}, bj::float64}), bj::ValueError);   // batch not -1
  CHECK_THROWS_AS(bj::trace(id, bj::TensorSpec{{-1}, bj::float64}), bj::ValueError);     // rank 1
  CHECK_THROWS_AS(bj::trace(id, bj::TensorSpec{{-1, 3}, bj::boolean}), bj::ValueError);  // no derivative
  CHECK_THROWS_AS(bj::trace([](const bj::Tensor& x) { return bj::reduce_sum(x, {1}); },
                            bj::TensorSpec{{-1, 3}, bj::float64}),
                  bj::ValueError);  // rank-1 result
  CHECK_THROWS_AS(bj::trace([](const bj::Tensor& x) { return x - bj::reduce_mean(x, {0}, true); },
                            bj::TensorSpec{{-1, 3}, bj::float64}),
                  bj::ValueError);  // mixes examples
  CHECK_THROWS_AS(bj::trace([](const bj::Tensor&) -> bj::Tensor { throw std::runtime_error("f"); },
                            bj::TensorSpec{{-1, 3}, bj::float64}),
                  std::runtime_error);  // f's own error
  const bj::Function fn = bj::trace(id, bj::TensorSpec{{-1, 3}, bj::float64});
  std::vector<double> x(6), jac(18), value(6), short_jac(17);
  std::vector<float> xf(6), jacf(18);
  CHECK_THROWS_AS(fn.batch_jacobian_into(std::span<const double>(x.data(), 5), std::span<double>(jac)),
                  bj::ValueError);  // 5 is not a multiple of 3
  CHECK_THROWS_AS(fn.batch_jacobian_into(x, short_jac), bj::ValueError);
  CHECK_THROWS_AS(fn.value_and_batch_jacobian_into(x, std::span<double>(value.data(), 3), jac), bj::ValueError);
  CHECK_THROWS_AS(fn.batch_jacobian_into(xf, jacf), bj::ValueError);  // float spans, float64 spec
  CHECK_THROWS_AS(fn(bj::ones({2, 4})), bj::ValueError);                // per-example shape
  CHECK_THROWS_AS(fn(bj::ones({2, 3}, bj::float32)), bj::ValueError);   // dtype
  bj::JacobianOptions bad;
  bad.parallel_iterations = 0;
  CHECK_THROWS_AS(fn.batch_jacobian_into(x, jac, bad), bj::ValueError);
  // An empty batch is fine.
  fn.batch_jacobian_into(std::span<const double>(), std::span<double>());
  CHECK(fn(bj::ones({0, 3})).shape() == bj::Shape{0, 3});
}

TEST_CASE("trace: many threads call one Function at once", "[engine][function][threads]") {
  const bj::Function fn = bj::trace(program, bj::TensorSpec{{-1, 5}, bj::float64});
  constexpr int kThreads = 4;
  constexpr std::int64_t b = 37;
  std::mt19937_64 rng(41);
  std::vector<std::vector<double>> xs, want(kThreads), got(kThreads), values(kThreads);
  for (int t = 0; t < kThreads; ++t) xs.push_back(check::random_values(rng, b * 5, -1, 1));
  for (int t = 0; t < kThreads; ++t) {
    want[t].resize(b * 30);
    fn.batch_jacobian_into(xs[t], want[t]);
  }
  bj::JacobianOptions two;
  two.max_threads = 2;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      got[t].resize(b * 30);
      values[t].resize(b * 6);
      for (int k = 0; k < 5; ++k) fn.value_and_batch_jacobian_into(xs[t], values[t], got[t], t % 2 ? two : bj::JacobianOptions{});
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) CHECK(got[t] == want[t]);
}

namespace {
// The same subexpressions computed twice by separate op calls (exp(x),
// x[:, :2] and sum(x^2)), beside ops that differ only in an attribute
// (powers 2 and 3, slices at 0 and 1, sums over axis 1 with and without
// keepdims): each of the repeated ones is one node, the others stay apart.
bj::Tensor repeated(const bj::Tensor& x) {
  const bj::Tensor a = bj::exp(x) * bj::sin(bj::exp(x));
  const bj::Tensor s = bj::slice(x, {0, 0}, {-1, 2}) * bj::slice(x, {0, 0}, {-1, 2}) +
                       bj::slice(x, {0, 1}, {-1, 2});
  const bj::Tensor r = bj::reduce_sum(bj::pow(x, 2.0), {1}, true) + bj::reduce_sum(bj::pow(x, 2.0), {1}, true) +
                       bj::reshape(bj::reduce_sum(bj::pow(x, 3.0), {1}), {-1, 1});
  return bj::concat({a, s, r}, 1);
}
// The same, each repeated subexpression written once.
bj::Tensor written_once(const bj::Tensor& x) {
  const bj::Tensor e = bj::exp(x), head = bj::slice(x, {0, 0}, {-1, 2});
  const bj::Tensor sq = bj::reduce_sum(bj::pow(x, 2.0), {1}, true);
  return bj::concat({e * bj::sin(e), head * head + bj::slice(x, {0, 1}, {-1, 2}),
                     sq + sq + bj::reshape(bj::reduce_sum(bj::pow(x, 3.0), {1}), {-1, 1})},
                    1);
}
}  // namespace

TEST_CASE("trace: a subexpression computed twice is one node, derivatives unchanged", "[engine][function]") {
  const bj::Function f = bj::trace(repeated, bj::TensorSpec{bj::Shape{-1, 3}, bj::float64});
  const std::vector<double> x{0.3, -0.2, 0.5};
  std::vector<double> jac(6 * 3);
  f.batch_jacobian_into(x, jac);
  const bj::Function once = bj::trace(written_once, bj::TensorSpec{bj::Shape{-1, 3}, bj::float64});
  std::vector<double> jac_once(6 * 3);
  once.batch_jacobian_into(x, jac_once);
  CHECK(jac == jac_once);
  // Arithmetic nodes (slices and concat not counted): as many as written once.
  CHECK(bj::detail::traced_cost(f, {}).ops == bj::detail::traced_cost(once, {}).ops);
  check::Case c;
  c.name = "repeated subexpressions";
  c.f = [](const bj::Tensor& v, const check::Context&) { return repeated(v); };
  c.example = bj::Shape{3};
  check::check_case(c);
}

TEST_CASE("linearize: a rule's primal node that the program has is not computed again", "[engine][function]") {
  // y = det(X) + sum(inv(X)): det's JVP rule needs inv(X), which the program computes.
  namespace graph = batchjac::graph;
  namespace ops = batchjac::ops;
  graph::Program p;
  p.parameter = p.add_value({bj::Shape{3, 3}, bj::float64}, graph::ValueKind::parameter, true);
  const int inv = p.emit(p.nodes, graph::ValueKind::primal, ops::Prim::matrix_inverse, {}, {p.parameter});
  const int det = p.emit(p.nodes, graph::ValueKind::primal, ops::Prim::matrix_determinant, {}, {p.parameter});
  ops::Attrs all;
  all.axes = {0, 1};
  const int sum = p.emit(p.nodes, graph::ValueKind::primal, ops::Prim::reduce_sum, all, {inv});
  p.result = p.emit(p.nodes, graph::ValueKind::primal, ops::Prim::binary, ops::op_attrs(bj::ops::math::kAdd),
                    {det, sum});
  const graph::LinearProgram lin = batchjac::autodiff::linearize(p);
  REQUIRE(lin.output >= 0);
  int inverses = 0;
  for (const ops::Node& n : p.nodes) inverses += n.prim == ops::Prim::matrix_inverse;
  CHECK(inverses == 1);
}
