// Strong zeros: a zero tangent or cotangent times an infinite or NaN partial
// is 0 in derivative propagation, so every mode, form and option gives the
// same finite and non-finite entries (README, "Differences from TensorFlow").
// The engine runs the sparse form by cost, everywhere (BATCHJAC_SPARSE=1)
// and never (=0): ctest runs this suite all three ways.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <vector>

namespace bj = batchjac;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// Entries equal, NaN where NaN, infinities of the same sign; finite ones to
// a relative tolerance.
void require_same_entries(const bj::Tensor& got, const std::vector<double>& want, double tol) {
  const std::vector<double> g = got.to_vector<double>();
  REQUIRE(g.size() == want.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("entry " << i << ": got " << g[i] << ", want " << want[i]);
    if (std::isnan(want[i])) CHECK(std::isnan(g[i]));
    else if (std::isinf(want[i])) CHECK(g[i] == want[i]);
    else CHECK(std::abs(g[i] - want[i]) <= tol * std::max(1.0, std::abs(want[i])));
  }
}

std::vector<bj::JacobianOptions> all_modes_and_options() {
  return check::options({.modes = {bj::JacobianMode::automatic, bj::JacobianMode::forward, bj::JacobianMode::reverse},
                         .parallel_iterations = {std::nullopt, 1},
                         .pfor = {true, false},
                         .max_threads = {1, 2}});
}

// f's batch Jacobian at x (per example [n] -> [m]) in every mode and with
// every option: `want` (one example's m x n entries, repeated over the
// batch), and the same bits within each mode.
void check_every_mode(const std::function<bj::Tensor(const bj::Tensor&)>& f,
                      const std::vector<double>& example, const std::vector<double>& want,
                      std::int64_t batch) {
  for (bj::DType dtype : {bj::float64, bj::float32}) {
    const auto n = static_cast<std::int64_t>(example.size());
    std::vector<double> xs;
    for (std::int64_t b = 0; b < batch; ++b) xs.insert(xs.end(), example.begin(), example.end());
    const bj::Tensor x = bj::constant(xs, bj::Shape{batch, n}, dtype);
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = f(x);
    std::vector<double> all_want;
    for (std::int64_t b = 0; b < batch; ++b) all_want.insert(all_want.end(), want.begin(), want.end());
    std::optional<bj::Tensor> first[3];
    for (const auto& o : all_modes_and_options()) {
      INFO(bj::dtype_name(dtype) << ", batch " << batch << ", " << check::describe(o));
      const auto j = tape.batch_jacobian(y, x, o);
      REQUIRE(j.has_value());
      require_same_entries(*j, all_want, dtype == bj::float32 ? 1e-6 : 1e-14);
      auto& ref = first[static_cast<int>(o.mode)];
      if (!ref) ref = j;
      else CHECK(check::same_bits(*j, *ref));
    }
  }
}

}  // namespace

TEST_CASE("strong zeros: the where idiom is right in every mode", "[engine][strong_zeros]") {
  // d/dx where(x > 0, sqrt(x), 0 x) at -1, 4, 0: 0, 1/(2 sqrt 4), 0. The
  // untaken sqrt has partial NaN (x < 0) or inf (x = 0).
  auto f = [](const bj::Tensor& x) {
    return bj::reduce_sum(bj::where(x > 0.0, bj::sqrt(x), x * 0.0), {1}, true);
  };
  for (std::int64_t b : {1, 9, 17}) check_every_mode(f, {-1, 4, 0}, {0, 0.25, 0}, b);
}

TEST_CASE("strong zeros: an infinite partial does not leak into other entries", "[engine][strong_zeros]") {
  // matmul(sqrt(x), I) at (0, 4): the Jacobian is diag(inf, 1/4).
  auto g = [](const bj::Tensor& x) {
    const bj::Tensor eye = bj::cast(bj::constant({{1., 0.}, {0., 1.}}), x.dtype());
    return bj::matmul(bj::sqrt(x), eye);
  };
  for (std::int64_t b : {1, 8, 19}) check_every_mode(g, {0, 4}, {inf, 0, 0, 0.25}, b);
  // cosh and sinh at +-800: partials of +-inf on the diagonal, zeros off it.
  auto h = [](const bj::Tensor& x) { return bj::concat({bj::cosh(x), bj::sinh(x)}, 1); };
  const double c = std::cosh(1.0), s = std::sinh(1.0);
  check_every_mode(h, {800, -800, 1},
                   {inf, 0, 0, 0, -inf, 0, 0, 0, s, inf, 0, 0, 0, inf, 0, 0, 0, c}, 9);
}

TEST_CASE("strong zeros: a small-angle branch written as one where", "[engine][strong_zeros]") {
  // A rotation's sin(theta)/theta w, its small-angle branch w: at w = 0 the
  // untaken branch has partials 0/0, and the Jacobian is the identity.
  auto f = [](const bj::Tensor& w) {
    const bj::Tensor t2 = bj::reduce_sum(w * w, {1}, true);
    const bj::Tensor theta = bj::sqrt(t2);
    return bj::where(t2 > 1e-12, w * (bj::sin(theta) / theta), w);
  };
  for (std::int64_t b : {1, 16, 33}) check_every_mode(f, {0, 0, 0}, {1, 0, 0, 0, 1, 0, 0, 0, 1}, b);
}

TEST_CASE("strong zeros: whole-tensor jacobian and gradient too", "[engine][strong_zeros]") {
  const bj::Tensor x = bj::constant({-1., 4., 0.});
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = bj::where(x > 0.0, bj::sqrt(x), x * 0.0);
    bj::JacobianOptions o;
    o.mode = mode;
    require_same_entries(*tape.jacobian(y, x, o), {0, 0, 0, 0, 0.25, 0, 0, 0, 0}, 1e-15);
    require_same_entries(*tape.gradient(y, x), {0, 0.25, 0}, 1e-15);
  }
}

TEST_CASE("strong zeros: a layer written straight to the Jacobian rows", "[engine][strong_zeros]") {
  // y = sqrt(x I) W2 with x_3 = 0: in forward mode the hoisted tangent x I
  // is shared by the lanes, and the scaled matmul writes whole rows of the
  // Jacobian from registers; its zeros meet sqrt's infinite partial at 0.
  // J[i][d] = W2[d][i] / (2 sqrt(x_d)).
  constexpr std::int64_t n = 16;
  std::vector<double> w2(n * n), eye(n * n, 0.0), example(n), want(n * n);
  for (std::int64_t k = 0; k < n * n; ++k) w2[k] = 0.5 * std::sin(double(k) + 1.0);
  for (std::int64_t k = 0; k < n; ++k) eye[k * n + k] = 1.0, example[k] = k == 3 ? 0.0 : 0.25 * double(k + 1);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t d = 0; d < n; ++d)
      want[i * n + d] = d == 3 ? (w2[d * n + i] > 0 ? inf : -inf) : w2[d * n + i] / (2 * std::sqrt(example[d]));
  auto f = [&](const bj::Tensor& x) {
    const bj::Tensor i16 = bj::constant(eye, bj::Shape{n, n}, x.dtype());
    const bj::Tensor w = bj::constant(w2, bj::Shape{n, n}, x.dtype());
    return bj::matmul(bj::sqrt(bj::matmul(x, i16)), w);
  };
  for (std::int64_t b : {16, 32}) check_every_mode(f, example, want, b);
}

TEST_CASE("strong zeros: a computed zero tangent, in the sparse form too", "[engine][strong_zeros]") {
  // u = x c with a per-example c that is 0 in one element: the tangent
  // x_dot c is a computed 0 there (not a structural one), and sqrt's partial
  // at u = 0 is inf. y = (sqrt(u), u): J = (diag(c / (2 sqrt(x c))), diag(c)),
  // 0 where c = 0. With u read twice, the optimiser keeps the two products
  // apart and the kernels meet 0 * inf; with u read once, it multiplies the
  // coefficients first (a strong product of its own).
  for (const bool twice : {true, false}) {
    auto f = [twice](const bj::Tensor& x) {
      std::vector<double> c;
      for (std::int64_t b = 0; b < x.shape()[0]; ++b) c.insert(c.end(), {0.0, 2.0, 0.5});
      const bj::Tensor u = x * bj::constant(c, bj::Shape{x.shape()[0], 3}, x.dtype());
      return twice ? bj::concat({bj::sqrt(u), u}, 1) : bj::sqrt(u);
    };
    const double d2 = 0.5 / (2 * std::sqrt(1.5));
    std::vector<double> want = {0, 0, 0, 0, 0.5, 0, 0, 0, d2};
    if (twice) want.insert(want.end(), {0, 0, 0, 0, 2, 0, 0, 0, 0.5});
    for (std::int64_t b : {1, 8, 21}) check_every_mode(f, {1, 2, 3}, want, b);
  }
}
