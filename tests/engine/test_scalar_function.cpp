// bj::scalar_function: scalar templated functors, compiled (bj::Dual in SIMD
// lanes) and traced (bj::TracedScalar into the engine), against each other,
// the tape and central differences.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>
#include <batchjac/scalar_function.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <thread>
#include <vector>

namespace bj = batchjac;

namespace {

// R^3 -> R^4 with products, quotients, math functions, constants and a
// per-example branch.
struct Mixed {
  template <class T>
  void operator()(const T* x, T* y) const {
    using std::exp;
    using std::atan2;
    using std::sin;
    using std::sqrt;
    const T r2 = x[0] * x[0] + x[1] * x[1] + 1.0;
    y[0] = exp(-0.5 * r2) * sin(x[2]);
    y[1] = x[0] / r2 - 2.0 * x[1] * x[2];
    y[2] = atan2(x[1], x[0] + 2.0) + sqrt(r2);
    y[3] = bj::select(x[0] > x[1], x[0] * x[2], T(1.5) - x[1]);
  }
};

// The same as tensor code, for the tape.
bj::Tensor mixed_tensors(const bj::Tensor& x) {
  auto col = [&](std::int64_t i) { return bj::slice(x, {0, i}, {-1, 1}); };
  const bj::Tensor x0 = col(0), x1 = col(1), x2 = col(2);
  const bj::Tensor r2 = x0 * x0 + x1 * x1 + 1.0;
  return bj::concat({bj::exp(-0.5 * r2) * bj::sin(x2), x0 / r2 - 2.0 * x1 * x2,
                     bj::atan2(x1, x0 + 2.0) + bj::sqrt(r2), bj::where(x0 > x1, x0 * x2, 1.5 - x1)},
                    1);
}

// Every math function of both number types.
struct AllMath {
  template <class T>
  void operator()(const T* x, T* y) const {
    using namespace std;
    const T a = x[0], b = x[1];  // a in (0.1, 0.9), b in (1.1, 1.9)
    int k = 0;
    y[k++] = exp(a);
    y[k++] = expm1(a);
    y[k++] = log(b);
    y[k++] = log1p(a);
    y[k++] = sqrt(b);
    y[k++] = sin(a) + cos(b);
    y[k++] = tan(a);
    y[k++] = asin(a) + acos(a * 0.5);
    y[k++] = atan(b);
    y[k++] = sinh(a) * cosh(b);
    y[k++] = tanh(b);
    y[k++] = asinh(a) + acosh(b) + atanh(a * 0.5);
    y[k++] = erf(a);
    y[k++] = abs(a - b) + fabs(b);
    y[k++] = bj::square(a) + pow(b, 2.5) + pow(a, b) + pow(2.0, a);
    y[k++] = atan2(a, b) + fmax(a, b) + fmin(a, b * 0.1) + fmax(a, 0.5) + fmin(0.5, b) + pow(a, 2) / 2 + 2 * a;
    T acc = 1.0;
    acc *= a;
    acc += b;
    acc -= 0.25;
    acc /= b;
    y[k++] = acc;
  }
};
constexpr int kAllMath = 17;

// N = 40 inputs, 3 outputs.
constexpr int kChainInputs = 40;
struct Chain {
  template <class T>
  void operator()(const T* x, T* y) const {
    using std::tanh;
    T s = 0.0;
    for (int i = 0; i < kChainInputs; ++i) s += x[i] * double(i + 1);
    for (int j = 0; j < 3; ++j) y[j] = tanh(s * 0.01 * (j + 1)) * x[j * 7];
  }
};

// sqrt(x0) + x1.
struct Root {
  template <class T>
  void operator()(const T* x, T* y) const {
    using std::sqrt;
    y[0] = sqrt(x[0]) + x[1];
  }
};

// A Ceres-style functor that fails.
struct Fails {
  template <class T>
  bool operator()(const T* x, T* y) const {
    y[0] = x[0];
    return false;
  }
};

template <int N, int M, class F, class S>
std::vector<S> jacobian_of(const bj::ScalarFunction<N, M, F>& f, const std::vector<S>& x,
                           std::type_identity_t<std::vector<S>>* value = nullptr, const bj::JacobianOptions& o = {}) {
  std::vector<S> jac(x.size() / N * M * N);
  if (value) {
    value->assign(x.size() / N * M, S(0));
    f.value_and_batch_jacobian_into(std::span<const S>(x), std::span<S>(*value), std::span<S>(jac), o);
  } else {
    f.batch_jacobian_into(std::span<const S>(x), std::span<S>(jac), o);
  }
  return jac;
}

std::vector<std::int64_t> batch_sizes() {
  const std::int64_t L = xsimd::batch<double>::size;
  return {1, L - 1, L, L + 1, 2 * L + 3, 33};
}

}  // namespace

TEST_CASE("scalar_function: compiled, traced and the tape agree; tails", "[engine][scalar_function]") {
  const auto compiled = bj::scalar_function<3, 4>(Mixed{}, bj::ScalarPath::compiled);
  const auto traced = bj::scalar_function<3, 4>(Mixed{}, bj::ScalarPath::traced);
  std::mt19937_64 rng(7);
  for (std::int64_t b : batch_sizes()) {
    if (b < 1) continue;
    INFO("b = " << b);
    const std::vector<double> x = check::random_values(rng, b * 3, -1, 1);
    std::vector<double> vc, vt;
    const std::vector<double> jc = jacobian_of(compiled, x, &vc);
    const std::vector<double> jt = jacobian_of(traced, x, &vt);
    // The tape on the same function written with tensors: the traced path bit for bit.
    const bj::Tensor xt = bj::constant(x, {b, 3});
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(xt);
    const bj::Tensor y = mixed_tensors(xt);
    const auto want = tape.batch_jacobian(y, xt);
    REQUIRE(want.has_value());
    CHECK(jt == want->to_vector<double>());
    CHECK(vt == y.to_vector<double>());
    // Compiled: xsimd's math, not the engine's: equal to rounding.
    check::check_close(jc, jt, 1e-13, 1e-14, "compiled against traced Jacobian");
    check::check_close(vc, vt, 1e-13, 1e-14, "compiled against traced value");
    // Reverse mode on the traced path.
    check::check_close(jacobian_of(traced, x, nullptr, check::with_mode(bj::JacobianMode::reverse)), jt, 1e-13,
                       1e-14, "traced reverse against forward");
    // Central differences of example 0.
    const std::vector<double> x0(x.begin(), x.begin() + 3);
    const auto fd = check::central_differences(
        [&](const std::vector<double>& v) {
          std::vector<double> out(4);
          Mixed{}(v.data(), out.data());
          return out;
        },
        x0, 1e-6);
    check::check_close(std::span<const double>(jc).subspan(0, 12), fd, 1e-7, 1e-8, "against central differences");
  }
}

TEST_CASE("scalar_function: every math function, both paths, both dtypes", "[engine][scalar_function]") {
  const auto compiled = bj::scalar_function<2, kAllMath>(AllMath{}, bj::ScalarPath::compiled);
  const auto traced = bj::scalar_function<2, kAllMath>(AllMath{}, bj::ScalarPath::traced);
  std::mt19937_64 rng(9);
  const std::int64_t b = 11;
  std::vector<double> x;
  for (std::int64_t i = 0; i < b; ++i) {
    x.push_back(check::uniform(rng, 0.1, 0.9));
    x.push_back(check::uniform(rng, 1.1, 1.9));
  }
  std::vector<double> vc, vt;
  const auto jc = jacobian_of(compiled, x, &vc);
  const auto jt = jacobian_of(traced, x, &vt);
  check::check_close(jc, jt, 1e-12, 1e-13, "float64 Jacobians");
  check::check_close(vc, vt, 1e-13, 1e-14, "float64 values");
  for (std::int64_t i = 0; i < b; ++i) {
    const std::vector<double> xi(x.begin() + 2 * i, x.begin() + 2 * i + 2);
    const auto fd = check::central_differences(
        [](const std::vector<double>& v) {
          std::vector<double> out(kAllMath);
          AllMath{}(v.data(), out.data());
          return out;
        },
        xi, 1e-6);
    check::check_close(std::span<const double>(jc).subspan(static_cast<std::size_t>(i) * 2 * kAllMath, 2 * kAllMath),
                       fd, 1e-6, 1e-7, "example " + std::to_string(i) + " against central differences");
  }
  const std::vector<float> xf(x.begin(), x.end());
  const auto jcf = jacobian_of(compiled, xf);
  const auto jtf = jacobian_of(traced, xf);
  check::check_close(std::vector<double>(jcf.begin(), jcf.end()), jt, 2e-5, 2e-5, "float32 compiled");
  check::check_close(std::vector<double>(jtf.begin(), jtf.end()), jt, 2e-5, 2e-5, "float32 traced");
}

TEST_CASE("scalar_function: more directions than one pass takes", "[engine][scalar_function]") {
  // N = 40: the compiled path runs two passes of 20 directions.
  constexpr int N = kChainInputs;
  static_assert(bj::detail::dual_directions(N) == 20);
  const auto compiled = bj::scalar_function<N, 3>(Chain{}, bj::ScalarPath::compiled);
  const auto traced = bj::scalar_function<N, 3>(Chain{}, bj::ScalarPath::traced);
  std::mt19937_64 rng(13);
  const std::vector<double> x = check::random_values(rng, 5 * N, -1, 1);
  check::check_close(jacobian_of(compiled, x), jacobian_of(traced, x), 1e-13, 1e-14, "N = 40");
}

TEST_CASE("scalar_function: strong zeros where a partial is infinite", "[engine][scalar_function]") {
  // sqrt(x0) at x0 = 0: d/dx0 is infinite, d/dx1 is 0 (not 0 * inf).
  const std::vector<double> x{0.0, 2.0};
  for (auto path : {bj::ScalarPath::compiled, bj::ScalarPath::traced}) {
    const auto f = bj::scalar_function<2, 1>(Root{}, path);
    const auto j = jacobian_of(f, x);
    CHECK(std::isinf(j[0]));
    CHECK(j[1] == 1.0);
  }
}

TEST_CASE("scalar_function: automatic picks one path and keeps it", "[engine][scalar_function]") {
  const auto f = bj::scalar_function<3, 4>(Mixed{});
  const bj::ScalarPath p = f.path(bj::float64);
  CHECK((p == bj::ScalarPath::compiled || p == bj::ScalarPath::traced));
  CHECK(f.path(bj::float64) == p);
  const std::vector<double> x{0.1, 0.2, 0.3, -0.4, 0.5, 0.6};
  const auto forced = bj::scalar_function<3, 4>(Mixed{}, p);
  CHECK(jacobian_of(f, x) == jacobian_of(forced, x));
  // The documented model: the smaller estimate, compiled on ties.
  const bj::detail::TracedCost t = bj::detail::traced_cost(f.traced(bj::float64), {});
  CHECK(t.ops == 20);  // Mixed's arithmetic (its slices and concat not counted)
  const double compiled = decltype(f)::compiled_cost(bj::float64, t);
  CHECK(p == (compiled <= decltype(f)::traced_cost(t) ? bj::ScalarPath::compiled : bj::ScalarPath::traced));
  CHECK(decltype(f)::traced_cost(t) ==
        (t.generated ? 0.75 * t.per_example : 1.5 * t.per_example + 2.5 * double(t.ops)));
}

TEST_CASE("scalar_function: errors", "[engine][scalar_function]") {
  const auto f = bj::scalar_function<3, 4>(Mixed{}, bj::ScalarPath::compiled);
  std::vector<double> x(6), jac(24), value(8);
  std::vector<double> short_jac(23), short_value(7), bad_x(5);
  CHECK_THROWS_AS(f.batch_jacobian_into(bad_x, jac), bj::ValueError);
  CHECK_THROWS_AS(f.batch_jacobian_into(x, short_jac), bj::ValueError);
  CHECK_THROWS_AS(f.value_and_batch_jacobian_into(x, short_value, jac), bj::ValueError);
  bj::JacobianOptions bad;
  bad.max_threads = 0;
  CHECK_THROWS_AS(f.batch_jacobian_into(x, jac, bad), bj::ValueError);
  CHECK_THROWS_AS((bj::scalar_function<3, 4>(Mixed{}, static_cast<bj::ScalarPath>(9))), bj::ValueError);
  // A Ceres-style functor that returns false: RuntimeError.
  for (auto path : {bj::ScalarPath::compiled, bj::ScalarPath::traced}) {
    const auto g = bj::scalar_function<1, 1>(Fails{}, path);
    std::vector<double> one(1), j(1);
    CHECK_THROWS_AS(g.batch_jacobian_into(one, j), bj::RuntimeError);
  }
  // An empty batch writes nothing.
  f.batch_jacobian_into(std::span<const double>(), std::span<double>());
}

TEST_CASE("scalar_function: many threads at once, and max_threads", "[engine][scalar_function][threads]") {
  std::mt19937_64 rng(17);
  constexpr int kThreads = 4;
  const std::int64_t b = 301;
  for (auto path : {bj::ScalarPath::compiled, bj::ScalarPath::traced}) {
    const auto f = bj::scalar_function<3, 4>(Mixed{}, path);
    std::vector<std::vector<double>> xs, want, got(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      xs.push_back(check::random_values(rng, b * 3, -1, 1));
      want.push_back(jacobian_of(f, xs.back()));
    }
    bj::JacobianOptions two;
    two.max_threads = 2;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int k = 0; k < 3; ++k) got[t] = jacobian_of(f, xs[t], nullptr, t % 2 ? two : bj::JacobianOptions{});
      });
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) CHECK(got[t] == want[t]);
  }
}

namespace {
struct SquareBoth {
  template <class T>
  void operator()(const T* x, T* y) const {
    y[0] = x[0] * x[0];
    y[1] = x[1] * x[1];
  }
};
}  // namespace

TEST_CASE("README: the seed-sized examples of bj::trace and bj::scalar_function", "[engine][function]") {
  const bj::Function f = bj::trace([](const bj::Tensor& x) { return x * x; },
                                   bj::TensorSpec{bj::Shape{-1, 2}, bj::float32});
  std::vector<float> x = {1, 2, 3, 4}, jac(8);
  f.batch_jacobian_into(x, jac);
  CHECK(jac == std::vector<float>{2, 0, 0, 4, 6, 0, 0, 8});
  const std::optional<bj::Tensor> J = f.batch_jacobian(bj::constant({{1., 2.}}, bj::float32));
  REQUIRE(J.has_value());
  CHECK(J->to_vector<float>() == std::vector<float>{2, 0, 0, 4});
  CHECK(f(bj::constant({{1., 2.}}, bj::float32)).to_vector<float>() == std::vector<float>{1, 4});

  // The cost model's counts: two products, each of one source element.
  const auto sq = bj::scalar_function<2, 2>(SquareBoth{});
  const bj::detail::TracedCost cost = bj::detail::traced_cost(sq.traced(bj::float64), {});
  CHECK(cost.ops == 2);
  CHECK(cost.active == 2);
  for (auto path : {bj::ScalarPath::automatic, bj::ScalarPath::compiled, bj::ScalarPath::traced}) {
    const auto g = bj::scalar_function<2, 2>(SquareBoth{}, path);
    std::vector<double> xd = {1, 2, 3, 4}, value(4), jd(8);
    g.value_and_batch_jacobian_into(xd, value, jd);
    CHECK(jd == std::vector<double>{2, 0, 0, 4, 6, 0, 0, 8});
    CHECK(value == std::vector<double>{1, 4, 9, 16});
  }
}

TEST_CASE("Dual: operations run over the directions their operands depend on", "[engine][scalar_function]") {
  using N = bj::Dual<double, 3>;
  using B = N::batch_type;
  N a(B(2.0), N::Uninitialized{}), b(B(3.0), N::Uninitialized{});
  a.d[0] = B(1.0), a.active = 0b001;  // a = x0
  b.d[2] = B(1.0), b.active = 0b100;  // b = x2
  const N c = a * b + 1.0;
  CHECK(c.active == 0b101);
  CHECK(c.tangent(0).get(0) == 3.0);  // d(x0 x2)/dx0 = x2
  CHECK(c.tangent(1).get(0) == 0.0);  // inactive: zero whatever d[1] holds
  CHECK(c.tangent(2).get(0) == 2.0);
  const N k(5.0);  // a constant has no active direction
  CHECK(k.active == 0);
  CHECK((k * a).active == 0b001);
  N s = bj::select(a.v > b.v, a, b);  // per lane: b (2 < 3), with both directions kept
  CHECK(s.active == 0b101);
  CHECK(s.tangent(0).get(0) == 0.0);
  CHECK(s.tangent(2).get(0) == 1.0);
  s -= s;  // aliasing: the same directions, zero tangents
  CHECK(s.active == 0b101);
  CHECK(s.tangent(2).get(0) == 0.0);
  // 0 x inf is never formed for an inactive direction: log at 0 along x2 only.
  N z(B(0.0), N::Uninitialized{});
  z.d[2] = B(1.0), z.active = 0b100;
  const N l = bj::log(z) + a;
  CHECK(l.tangent(0).get(0) == 1.0);
  CHECK(std::isinf(l.tangent(2).get(0)));
}

namespace {
// Powers at the edges of std::pow: a zero base, a unit base.
struct Powers {
  template <class T>
  void operator()(const T* x, T* y) const {
    using std::pow;
    y[0] = pow(x[0], 1.0);
    y[1] = pow(x[0], 0.0);
    y[2] = pow(x[0], -1.0) * 0.0 + pow(x[1], 3.5);
    y[3] = pow(x[0] + 1.0, x[1]);
    y[4] = pow(2.0, x[0]);
    y[5] = pow(x[1], 2);
  }
};
// A select between two constants, in float32 too; an inert output; a constant one.
int traced_calls = 0;
struct Selects {
  template <class T>
  void operator()(const T* x, T* y) const {
    if constexpr (std::is_same_v<T, bj::TracedScalar>) ++traced_calls;
    y[0] = x[0] * bj::select(x[0] > x[1], T(1.0), T(2.0));
    y[1] = 0.0;
    y[2] = 2.5;
    y[3] = bj::fmax(x[0], x[1]) + bj::fmin(x[0], x[1]);
  }
};
// Runs on Dual only (and says so: a constraint the traced path's check sees).
struct DualOnly {
  template <class T>
    requires requires { typename T::batch_type; }
  void operator()(const T* x, T* y) const {
    typename T::batch_type v = x[0].v;  // TracedScalar has no batch_type
    y[0] = x[0] * x[0] + T(0.0) * T(v.get(0) * 0.0);
  }
};
}  // namespace

TEST_CASE("scalar_function: powers at a zero and a unit base agree on both paths", "[engine][scalar_function]") {
  const std::vector<double> x{0.0, 1.0, 0.5, 2.0};  // two examples
  const auto compiled = bj::scalar_function<2, 6>(Powers{}, bj::ScalarPath::compiled);
  const auto traced = bj::scalar_function<2, 6>(Powers{}, bj::ScalarPath::traced);
  std::vector<double> vc, vt;
  const auto jc = jacobian_of(compiled, x, &vc), jt = jacobian_of(traced, x, &vt);
  CHECK(vc[0] == 0.0);
  CHECK(vc[1] == 1.0);    // 0^0
  CHECK(std::isnan(vc[2]));  // inf * 0
  CHECK(jc[0] == 1.0);    // d x^1 / dx at 0
  CHECK(jc[2] == 0.0);    // d x^0 / dx
  for (std::size_t k = 0; k < vc.size(); ++k)
    if (!std::isnan(vt[k])) CHECK(vc[k] == Approx(vt[k]).epsilon(1e-14));
  for (std::size_t k = 0; k < jc.size(); ++k) {
    INFO("entry " << k);
    if (std::isnan(jt[k])) CHECK(std::isnan(jc[k]));
    else CHECK(jc[k] == Approx(jt[k]).epsilon(1e-14).margin(1e-300));
  }
}

// Negations at zero: y0 = -x, y1 = cos(x) (d/dx = -sin x), y2 = x / (1 + x)
// (its quotient rule negates x / (1 + x)), at x = +0.
struct Negations {
  template <class T>
  void operator()(const T* x, T* y) const {
    y[0] = -x[0];
    y[1] = cos(x[0]);
    y[2] = x[0] / (1.0 + x[0]);
  }
};

// Regression test (a bug found and fixed): xsimd 8.1 negates AVX-512 batches
// as 0 - x, which gives +0 for -(+0). The traced path (the engine's AVX-512
// kernels) gave +0 here. The compiled path had the same bug where the
// caller builds for AVX-512 (-march=native); the tests build for xsimd's
// default architecture, so that case was checked by hand (bj::Dual now
// negates with detail::negate, as the kernels do).
TEST_CASE("scalar_function: negation keeps the sign of zero on both paths", "[engine][scalar_function]") {
  const check::ScopedEnv dense("BATCHJAC_SPARSE", "0");  // the sparse form sums from +0
  auto sign = [](double v) { return std::signbit(v) ? -1 : 1; };
  for (const auto path : {bj::ScalarPath::compiled, bj::ScalarPath::traced})
    for (const std::int64_t b : batch_sizes()) {
      INFO((path == bj::ScalarPath::compiled ? "compiled" : "traced") << ", batch " << b);
      const auto f = bj::scalar_function<1, 3>(Negations{}, path);
      const std::vector<double> x(static_cast<std::size_t>(b), 0.0);
      std::vector<double> value;
      const auto jac = jacobian_of(f, x, &value);
      for (std::int64_t e = 0; e < b; ++e) {
        INFO("example " << e);
        CHECK(sign(value[static_cast<std::size_t>(3 * e)]) == -1);    // -(+0)
        CHECK(sign(jac[static_cast<std::size_t>(3 * e + 1)]) == -1);  // -sin(+0)
        CHECK(jac[static_cast<std::size_t>(3 * e + 2)] == 1.0);
        CHECK(sign(value[static_cast<std::size_t>(3 * e + 2)]) == 1);
      }
    }
}

TEST_CASE("scalar_function: constants in selects and outputs; fmax, fmin ties", "[engine][scalar_function]") {
  std::mt19937_64 rng(23);
  const std::vector<double> x{1.0, 1.0, 0.5, -0.5, -1.0, 2.0};  // a tie, a > b, a < b
  for (auto path : {bj::ScalarPath::compiled, bj::ScalarPath::traced}) {
    const auto f = bj::scalar_function<2, 4>(Selects{}, path);
    std::vector<double> value;
    const auto j = jacobian_of(f, x, &value);
    INFO("path " << static_cast<int>(path));
    // Example 0 (tie): select takes 2; fmax's derivative is a's, fmin's a's too.
    CHECK(value[0] == 2.0);
    CHECK(j[0] == 2.0);
    CHECK(j[1] == 0.0);
    CHECK(value[1] == 0.0);
    CHECK(value[2] == 2.5);
    for (int k = 2; k < 6; ++k) CHECK(j[k] == 0.0);  // the constant outputs' rows
    CHECK(j[6] == 2.0);  // d(fmax + fmin)/da at a tie: 1 + 1
    CHECK(j[7] == 0.0);
    // Example 1 (a > b): select takes 1.
    CHECK(value[4] == 0.5);
    CHECK(j[8] == 1.0);
    // float32 spans.
    const std::vector<float> xf(x.begin(), x.end());
    const auto jf = jacobian_of(f, xf);
    CHECK(jf[0] == 2.0f);
  }
  // The traced program does not depend on the batch size: traced once per
  // dtype, whatever the batch sizes of the calls.
  traced_calls = 0;
  const auto f = bj::scalar_function<2, 4>(Selects{}, bj::ScalarPath::traced);
  for (std::int64_t b : {1, 3, 5, 8, 9, 17, 33}) (void)jacobian_of(f, check::random_values(rng, b * 2, -1, 1));
  CHECK(traced_calls == 1);
}

TEST_CASE("scalar_function: options are checked on every path; a Dual-only functor", "[engine][scalar_function]") {
  std::vector<double> x(4, 0.5), jac(8);
  bj::JacobianOptions bad;
  bad.parallel_iterations = 0;
  for (auto path : {bj::ScalarPath::automatic, bj::ScalarPath::compiled, bj::ScalarPath::traced})
    CHECK_THROWS_AS((bj::scalar_function<2, 2>(SquareBoth{}, path).batch_jacobian_into(x, jac, bad)), bj::ValueError);
  bj::JacobianOptions mode;
  mode.mode = static_cast<bj::JacobianMode>(7);
  CHECK_THROWS_AS((bj::scalar_function<2, 2>(SquareBoth{}, bj::ScalarPath::compiled).batch_jacobian_into(x, jac, mode)),
                  bj::ValueError);
  // A functor written for Dual alone: automatic takes the compiled path; traced cannot run it.
  const auto f = bj::scalar_function<1, 1>(DualOnly{});
  CHECK(f.path() == bj::ScalarPath::compiled);
  std::vector<double> one{3.0}, j(1);
  f.batch_jacobian_into(one, j);
  CHECK(j[0] == 6.0);
  CHECK_THROWS_AS((bj::scalar_function<1, 1>(DualOnly{}, bj::ScalarPath::traced).batch_jacobian_into(one, j)),
                  bj::ValueError);
}

namespace {
// A scalar energy of three inputs, with a per-example branch.
struct Energy {
  template <class T>
  void operator()(const T* x, T* y) const {
    using std::exp;
    using std::log;
    using std::sin;
    const T r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
    y[0] = exp(-0.5 * r2) + log(1.0 + r2) * sin(x[0] * x[1]) + bj::select(x[2] > 0.0, x[2] * r2, T(0.0));
  }
};
}  // namespace

TEST_CASE("scalar_function: batch_hessian_into, against the tape's and differences", "[engine][scalar]") {
  const auto fn = bj::scalar_function<3, 1>(Energy{});
  std::mt19937_64 rng(23);
  for (std::int64_t b : {1, 5, 9}) {
    const bj::Tensor x = check::random_tensor(rng, {b, 3}, -1, 1);
    const std::vector<double> xs = x.to_vector<double>();
    std::vector<double> h(static_cast<std::size_t>(b * 9));
    fn.batch_hessian_into(xs, h);
    // The tape's Hessian of the same ops.
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor c0 = bj::slice(x, {0, 0}, {-1, 1}), c1 = bj::slice(x, {0, 1}, {-1, 1}),
                     c2 = bj::slice(x, {0, 2}, {-1, 1});
    const bj::Tensor r2 = c0 * c0 + c1 * c1 + c2 * c2;
    const bj::Tensor e = bj::exp(-0.5 * r2) + bj::log(1.0 + r2) * bj::sin(c0 * c1) +
                         bj::where(c2 > 0.0, c2 * r2, 0.0);
    const auto want = bj::batch_hessian(tape, e, x);
    REQUIRE(want.has_value());
    const std::vector<double> w = want->to_vector<double>();
    double err = 0;
    for (std::size_t i = 0; i < h.size(); ++i) err = std::max(err, std::abs(h[i] - w[i]));
    CHECK(err < 1e-13);
    // Central differences of the compiled path's gradient.
    for (std::int64_t k = 0; k < 3; ++k) {
      std::vector<double> up = xs, down = xs;
      for (std::int64_t i = 0; i < b; ++i) {
        up[static_cast<std::size_t>(i * 3 + k)] += 1e-6;
        down[static_cast<std::size_t>(i * 3 + k)] -= 1e-6;
      }
      std::vector<double> gu(static_cast<std::size_t>(b * 3)), gd(gu.size());
      fn.batch_jacobian_into(up, gu);
      fn.batch_jacobian_into(down, gd);
      for (std::int64_t i = 0; i < b; ++i)
        for (std::int64_t r = 0; r < 3; ++r) {
          const double fd = (gu[static_cast<std::size_t>(i * 3 + r)] - gd[static_cast<std::size_t>(i * 3 + r)]) / 2e-6;
          CHECK(std::abs(h[static_cast<std::size_t>((i * 3 + r) * 3 + k)] - fd) < 1e-6 * std::max(1.0, std::abs(fd)));
        }
    }
  }
  std::vector<double> x(6, 0.5), small(17);
  CHECK_THROWS_AS(fn.batch_hessian_into(x, small), bj::ValueError);
  std::vector<float> xf(3, 0.5f), hf(9);
  fn.batch_hessian_into(xf, hf);
  CHECK(hf[1] == hf[3]);
}
