// stop_gradient and cast: derivative rows, hand-derived Jacobians where finite
// differences cannot apply, eager values.
#include "kernels/arch_tables.hpp"
#include "kernels/kernels.hpp"
#include "ops/elementwise_math.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace bj = batchjac;
using check::Case;
using check::Context;

namespace {
const int kRegistered = check::register_ops({"stop_gradient", "cast"});

bj::JacobianOptions zero_if_unconnected() {
  bj::JacobianOptions o;
  o.unconnected_gradients = bj::UnconnectedGradients::zero;
  return o;
}
}  // namespace

// ---- stop_gradient ------------------------------------------------------------------

TEST_CASE("stop_gradient: no derivative flows through it", "[ops][misc]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  {
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = bj::stop_gradient(x);
    CHECK(check::values(y) == check::values(x));
    CHECK_FALSE(tape.batch_jacobian(y, x).has_value());
    const auto z = tape.batch_jacobian(y, x, zero_if_unconnected());
    REQUIRE(z.has_value());
    CHECK(z->shape() == bj::Shape{2, 2, 2});
    CHECK(check::values(*z) == std::vector<double>(8, 0.0));
    CHECK_FALSE(tape.gradient(y, x).has_value());
  }
  {
    // y = x * stop_gradient(x): dy/dx = stop_gradient(x), not 2x.
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = x * bj::stop_gradient(x);
    for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
      bj::JacobianOptions o;
      o.mode = mode;
      const auto j = tape.batch_jacobian(y, x, o);
      REQUIRE(j.has_value());
      CHECK(check::values(*j) == std::vector<double>{1, 0, 0, 2, 3, 0, 0, 4});
    }
    const auto g = tape.gradient(y, x);
    REQUIRE(g.has_value());
    CHECK(check::values(*g) == std::vector<double>{1, 2, 3, 4});
  }
}

TEST_CASE("stop_gradient: derivative rows", "[ops][misc]") {
  // Finite differences see through stop_gradient, so they are off; the
  // forward/reverse/per-example/dot checks still apply.
  Case c;
  c.example = bj::Shape{2, 3};
  c.finite_differences = false;
  c.name = "x * stop_gradient(exp(x)) + stop_gradient(x) * sin(x)";
  c.f = [](const bj::Tensor& x, const Context&) {
    return x * bj::stop_gradient(bj::exp(x)) + bj::stop_gradient(x) * bj::sin(x);
  };
  check::check_case(c);
  // A stop_gradient that cuts nothing the target needs is invisible.
  c.finite_differences = true;
  c.name = "exp(x) + 0 * stop_gradient(x)";
  c.f = [](const bj::Tensor& x, const Context&) { return bj::exp(x) + 0.0 * bj::stop_gradient(x); };
  check::check_case(c);
}

// ---- cast ------------------------------------------------------------------------------

TEST_CASE("cast: derivative rows", "[ops][misc]") {
  Case c;
  c.example = bj::Shape{2, 3};
  // Values pass through float32: finite differences need a step far above
  // float32's rounding (h = 1e-3 -> error ~1e-4), and forward and reverse
  // round tangents and cotangents at different places, so they agree to
  // float32's precision, not float64's (as TF's float32 sections would).
  c.fd_step = 1e-3;
  c.fd_tol = 1e-3;
  c.tol = 1e-6;
  c.name = "cast(cast(x, float32), source dtype)";
  c.f = [](const bj::Tensor& x, const Context&) {
    return bj::cast(bj::cast(x, bj::float32), x.dtype());
  };
  check::check_case(c);
  c.name = "cast(square(cast(x, float32)), source dtype) * x";
  // The engine computes a program with float64 values in float64: square
  // of a float32 is not rounded to float32 there (README: deferred values).
  c.value_tol = 16 * std::numeric_limits<float>::epsilon();
  c.f = [](const bj::Tensor& x, const Context&) {
    return bj::cast(bj::square(bj::cast(x, bj::float32)), x.dtype()) * x;
  };
  check::check_case(c);
  c.name = "cast(exp(cast(x, float64)), source dtype)";
  c.fd_step = 1e-6;
  c.fd_tol = 1e-6;
  c.tol = 1e-12;
  c.f = [](const bj::Tensor& x, const Context&) { return bj::cast(bj::exp(bj::cast(x, bj::float64)), x.dtype()); };
  check::check_case(c);
  c.name = "sin(x) * cast(cast(x, boolean), source dtype): the mask has no derivative";
  c.f = [](const bj::Tensor& x, const Context&) {
    return bj::sin(x) * bj::cast(bj::cast(x, bj::boolean), x.dtype());
  };
  check::check_case(c);
}

TEST_CASE("cast: float64 source through float32, hand-derived", "[ops][misc]") {
  // y = cast(cast(x, float32), float64) * 3: J = 3 I exactly, in float64.
  const bj::Tensor x = bj::constant({{0.1, 0.2, 0.3}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = bj::cast(bj::cast(x, bj::float32), bj::float64) * 3.0;
  CHECK(y.dtype() == bj::float64);
  CHECK(y.at({0, 0}) == static_cast<double>(0.1f) * 3.0);
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    bj::JacobianOptions o;
    o.mode = mode;
    const auto j = tape.batch_jacobian(y, x, o);
    REQUIRE(j.has_value());
    CHECK(j->dtype() == bj::float64);
    CHECK(check::values(*j) == std::vector<double>{3, 0, 0, 0, 3, 0, 0, 0, 3});
  }
  // A boolean mask: y = x * cast(x != 0): J = diag(x != 0).
  const bj::Tensor z = bj::constant({{0., 2.}, {3., 0.}});
  bj::GradientTape t2;
  t2.watch(z);
  const auto jm = t2.batch_jacobian(z * bj::cast(bj::cast(z, bj::boolean), bj::float64), z);
  REQUIRE(jm.has_value());
  CHECK(check::values(*jm) == std::vector<double>{0, 0, 0, 1, 1, 0, 0, 0});
}

// Regression test (a bug found and fixed): inside batch_jacobian (the SIMD kernels) a cast to float32 in a float64
// program does not round: the kernel table's RoundToFloat is the identity when
// lane_kernels.hpp is compiled with -O3 (GCC 12's SLP vectorizer folds the
// float round trip in math::round_to_float's store/convert/load; -O2 or
// -fno-tree-slp-vectorize keep it). Eager values and jacobian() (scalar
// kernels) do round. Minimal: x = [[0.3]] watched, y = exp(cast(cast(x,
// float32), float64)); batch_jacobian(y, x, forward) gives exp(0.3) =
// 1.3498588075760032, jacobian(y, x, forward) gives exp(float(0.3)) =
// 1.3498588236675741 (the right one).
TEST_CASE("cast to float32 inside a float64 program rounds in batch_jacobian too", "[ops][misc]") {
  const double r = static_cast<double>(static_cast<float>(0.3));
  for (std::int64_t b : {1, 9}) {
    const bj::Tensor x = bj::fill({b, 1}, 0.3);
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = bj::exp(bj::cast(bj::cast(x, bj::float32), bj::float64));
    CHECK(y.at({0, 0}) == std::exp(r));
    bj::JacobianOptions fwd;
    fwd.mode = bj::JacobianMode::forward;
    const auto jb = tape.batch_jacobian(y, x, fwd);
    const auto jf = tape.jacobian(y, x, fwd);
    REQUIRE(jb.has_value());
    REQUIRE(jf.has_value());
    INFO("batch " << b);
    CHECK(jf->at({0, 0, 0, 0}) == Approx(std::exp(r)).epsilon(1e-15));
    CHECK(jb->at({0, 0, 0}) == Approx(std::exp(r)).epsilon(1e-15));
  }
}

TEST_CASE("cast: to boolean is unconnected; boolean targets are rejected", "[ops][misc]") {
  const bj::Tensor x = bj::constant({{1., 0.}, {2., 3.}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor mask = bj::cast(x, bj::boolean);
  const bj::Tensor back = bj::cast(mask, bj::float64);
  CHECK_FALSE(tape.batch_jacobian(back, x).has_value());
  const auto z = tape.batch_jacobian(back, x, zero_if_unconnected());
  REQUIRE(z.has_value());
  CHECK(check::values(*z) == std::vector<double>(8, 0.0));
  CHECK_THROWS_AS(tape.batch_jacobian(mask, x), bj::ValueError);
}

TEST_CASE("cast: eager values", "[ops][misc]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const bj::Tensor x = bj::constant({0.1, -2.5, 0.0, 1e40, nan});
  const bj::Tensor f = bj::cast(x, bj::float32);
  CHECK(f.dtype() == bj::float32);
  CHECK(f.shape() == x.shape());
  CHECK(f.data<float>()[0] == 0.1f);
  CHECK(f.data<float>()[1] == -2.5f);
  CHECK(std::isinf(f.data<float>()[3]));
  CHECK(std::isnan(f.data<float>()[4]));
  const bj::Tensor d = bj::cast(f, bj::float64);
  CHECK(d.data<double>()[0] == static_cast<double>(0.1f));
  const bj::Tensor b = bj::cast(x, bj::boolean);
  CHECK(b.dtype() == bj::boolean);
  CHECK(b.to_vector<bool>() == std::vector<bool>{true, true, false, true, true});  // NaN != 0, as TF
  const bj::Tensor back = bj::cast(b, bj::float32);
  CHECK(back.to_vector<float>() == std::vector<float>{1, 1, 0, 1, 1});
  CHECK(bj::cast(x, bj::float64).to_vector<double>()[1] == -2.5);
}

// Regression test (a bug found and fixed): xsimd 8.1 negates AVX-512 batches
// as 0 - x, which gives +0 for x = +0 where C++'s -x gives -0. The engine's
// vector lanes then disagreed with its scalar tail lanes and with eager
// values in the sign of zero: cos'(0) = -sin(0) was +0 in lanes 0..7 of a
// batch of 9 and -0 in lane 8; negative(+0) likewise.
// (The dense plan: the sparse form sums each entry's terms from +0, so a
// lone -0 term gives +0 there on every instruction set, as documented.)
TEST_CASE("negation keeps the sign of zero in every lane and path", "[ops][misc]") {
  const check::ScopedEnv dense("BATCHJAC_SPARSE", "0");
  auto negative_zero = [](double v) { return v == 0.0 && std::signbit(v); };
  for (const std::int64_t b : {1, 7, 8, 9, 17}) {
    INFO("batch " << b);
    const bj::Tensor x = bj::zeros({b, 1}, bj::float64);
    for (const auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
      bj::GradientTape tape(bj::TapeOptions{.persistent = true});
      tape.watch(x);
      const bj::Tensor y = bj::cos(x);
      const bj::Tensor z = bj::negative(x);
      bj::JacobianOptions options;
      options.mode = mode;
      const auto jc = tape.batch_jacobian(y, x, options);
      REQUIRE(jc.has_value());
      for (const double v : jc->to_vector<double>()) CHECK(negative_zero(v));  // -sin(+0)
      for (const double v : z.to_vector<double>()) CHECK(negative_zero(v));    // eager
    }
    const bj::Function neg = bj::trace([](const bj::Tensor& t) { return bj::negative(t); },
                                       bj::TensorSpec{bj::Shape{-1, 1}, bj::float64});
    for (const double v : neg(x).to_vector<double>()) CHECK(negative_zero(v));  // the engine's values
  }
}

namespace {
// negative(+0), cos'(+0) = -sin(+0) and reciprocal'(inf) = -(0 * 0) on one
// table, over lane counts with tails: -0 in every lane.
template <class T>
void check_negations(const batchjac::kernels::KernelTable<T>& table) {
  namespace m = batchjac::ops::math;
  for (const std::int64_t lanes : {table.width, 2 * table.width + 1}) {
    const std::vector<T> zero(static_cast<std::size_t>(lanes), T(0)), inf(zero.size(), std::numeric_limits<T>::infinity());
    auto run = [&](batchjac::kernels::ElementwiseFn<T> fn, const std::vector<T>& x, const std::vector<T>& y) {
      std::vector<T> out(zero.size(), T(1));
      batchjac::kernels::ElementwiseArgs<T> a;
      a.out = out.data();
      a.n_elem = 1;
      a.lanes = lanes;
      a.in[0].ptr = x.data();
      a.in[1].ptr = y.data();
      fn(a);
      return out;
    };
    const std::vector<T> cos_zero(zero.size(), T(1)), zeros_of_inf(zero.size(), T(0));
    for (const auto& [what, out] :
         {std::pair{"negative(+0)", run(table.unary[m::kNegative], zero, zero)},
          std::pair{"cos'(+0)", run(table.unary_partial[m::index_of<m::Cos, m::Unary>], zero, cos_zero)},
          std::pair{"reciprocal'(inf)", run(table.unary_partial[m::kReciprocal], inf, zeros_of_inf)}})
      for (std::int64_t l = 0; l < lanes; ++l) {
        INFO(table.arch << ", " << what << ", lanes " << lanes << ", lane " << l);
        CHECK((out[static_cast<std::size_t>(l)] == T(0) && std::signbit(out[static_cast<std::size_t>(l)])));
      }
  }
}
}  // namespace

// The same on every kernel table this CPU runs, whichever the process chose.
TEST_CASE("negation keeps the sign of zero on every kernel table", "[ops][misc]") {
  namespace k = batchjac::kernels;
  const auto has = xsimd::available_architectures();
  check_negations(k::scalar_kernels<double>());
  check_negations(k::scalar_kernels<float>());
  check_negations(k::sse42_kernels<double>());
  check_negations(k::sse42_kernels<float>());
  if (has.fma3_avx2) check_negations(k::avx2_kernels<double>()), check_negations(k::avx2_kernels<float>());
  if (has.avx512f) check_negations(k::avx512_kernels<double>()), check_negations(k::avx512_kernels<float>());
}
