// The sparse form of the linear program (engine/sparse.hpp) against the dense
// engine: the same Jacobians on programs whose directions reach few elements,
// exact structural zeros, and a fallback where it has no form. The whole op
// suite also runs with BATCHJAC_SPARSE=0 and =1 (tests/CMakeLists.txt).
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace bj = batchjac;

namespace {


// Kinetics-shaped: gathers of species, a sparse constant stoichiometry
// matmul, a running sum, a reduction and a concat. [b, 7] -> [b, 8].
bj::Tensor reactions(const bj::Tensor& x) {
  const bj::DType t = x.dtype();
  const bj::Tensor temp = bj::slice(x, {0, 0}, {-1, 1});
  const bj::Tensor c = bj::slice(x, {0, 1}, {-1, 6});
  const std::vector<std::int64_t> a{0, 1, 2, 3, 4, 5, 0, 2, 4}, b{1, 2, 3, 4, 5, 0, 3, 5, 1};
  std::vector<double> nu(9 * 6, 0.0);
  for (int r = 0; r < 9; ++r) {
    nu[r * 6 + a[r]] -= 1;
    nu[r * 6 + b[r]] += 1;
  }
  std::vector<double> ea;
  for (int r = 0; r < 9; ++r) ea.push_back(0.5 + 0.1 * r);
  const bj::Tensor k = bj::exp(-bj::cast(bj::constant(ea, {1, 9}), t) / temp);
  const bj::Tensor q = k * bj::gather(c, a, 1) * bj::gather(c, b, 1);
  const bj::Tensor w = bj::matmul(q, bj::cast(bj::constant(nu, {9, 6}), t));
  const bj::Tensor heat = bj::reduce_sum(bj::cumsum(w, 1, /*exclusive=*/true, /*reverse=*/true), {1}, true);
  return bj::concat({-heat, w, bj::reduce_sum(c, {1}, true)}, 1);
}

bj::Tensor jacobian_with(const char* sparse, const bj::Tensor& x, bj::JacobianMode mode,
                         bj::Tensor (*f)(const bj::Tensor&)) {
  const check::ScopedEnv setting("BATCHJAC_SPARSE", sparse);
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = f(x);
  bj::JacobianOptions o;
  o.mode = mode;
  return *tape.batch_jacobian(y, x, o);
}

// Central differences of f at every example of x (float64), [b, y, x] like
// batch_jacobian.
std::vector<double> central_differences(bj::Tensor (*f)(const bj::Tensor&), const bj::Tensor& x) {
  const std::int64_t b = x.shape()[0], n = x.shape()[1];
  const std::vector<double> all = check::values(x);
  std::vector<double> jac;
  for (std::int64_t e = 0; e < b; ++e) {
    const std::vector<double> xe(all.begin() + e * n, all.begin() + (e + 1) * n);
    const auto je = check::central_differences(
        [&](const std::vector<double>& v) { return check::values(f(bj::constant(v, {1, n}))); }, xe, 1e-6);
    jac.insert(jac.end(), je.begin(), je.end());
  }
  return jac;
}

bj::Tensor kinetics_input(std::int64_t b, bj::DType dtype) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(b) + 7);
  return check::random_tensor(rng, {b, 7}, 0.5, 1.5, dtype);
}

}  // namespace

TEST_CASE("the sparse form equals the dense engine on a kinetics-shaped program", "[engine][sparse]") {
  for (bj::DType dtype : {bj::float64, bj::float32})
    for (std::int64_t b : {1, 7, 8, 9, 33})
      for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
        CAPTURE(bj::dtype_name(dtype), b, static_cast<int>(mode));
        const bj::Tensor x = kinetics_input(b, dtype);
        const bj::Tensor sparse = jacobian_with("1", x, mode, reactions);
        const bj::Tensor dense = jacobian_with("0", x, mode, reactions);
        REQUIRE(sparse.shape() == bj::Shape{b, 8, 7});
        const double tol = dtype == bj::float64 ? 1e-13 : 1e-5;
        check::check_close(sparse, dense, tol, tol, "sparse vs dense");
        // Both against central differences of the program itself.
        if (dtype == bj::float64)
          check::check_close(check::values(sparse), central_differences(reactions, x), 1e-6, 1e-7,
                             "sparse vs central differences");
      }
}

TEST_CASE("the sparse form keeps structural zeros exact where a partial is infinite", "[engine][sparse]") {
  // d sqrt(x_j) / d x_i at x = 0: the diagonal is inf, the rest cannot be reached.
  const bj::Tensor x = bj::constant({{0.0, 4.0, 0.0}, {1.0, 0.0, 9.0}});
  for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    const bj::Tensor j = jacobian_with("1", x, mode, [](const bj::Tensor& v) { return bj::sqrt(v); });
    const std::vector<double> p = check::values(j), xs = check::values(x);
    for (int e = 0; e < 2; ++e)
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) {
          const double v = p[(e * 3 + r) * 3 + c];
          const double in = xs[e * 3 + r];
          if (r != c) CHECK(v == 0.0);
          else if (in == 0.0) CHECK(std::isinf(v));
          else CHECK(v == Approx(0.5 / std::sqrt(in)));
        }
  }
}

TEST_CASE("programs the sparse form cannot express run densely under BATCHJAC_SPARSE=1", "[engine][sparse]") {
  // where's derivative is a select, which has no sparse form.
  const bj::Tensor x = kinetics_input(9, bj::float64);
  auto f = [](const bj::Tensor& v) { return bj::where(bj::greater(v, bj::constant(1.0)), v * v, -v); };
  const bj::Tensor forced = jacobian_with("1", x, bj::JacobianMode::forward, f);
  const bj::Tensor dense = jacobian_with("0", x, bj::JacobianMode::forward, f);
  CHECK(check::same_bits(forced, dense));
}

TEST_CASE("Jacobians of more than 32768 entries per example always run densely", "[engine][sparse]") {
  // The sparse form holds a block of every entry of an example; beyond its
  // limit the dense engine runs even under BATCHJAC_SPARSE=1, and shows it:
  // 0 * inf off the diagonal of sqrt's Jacobian at 0.
  for (std::int64_t n : {181, 182}) {  // 32761 and 33124 entries
    std::vector<double> zeros(static_cast<std::size_t>(n), 0.0);
    const bj::Tensor x = bj::constant(zeros, {1, n});
    const bj::Tensor j = jacobian_with("1", x, bj::JacobianMode::forward, [](const bj::Tensor& v) { return bj::sqrt(v); });
    const std::vector<double> p = check::values(j);
    CHECK(std::isinf(p[0]));
    if (n * n <= 32768) CHECK(p[1] == 0.0);
    else CHECK(std::isnan(p[1]));
  }
}
