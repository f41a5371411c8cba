// Small matrices (linalg.inv, linalg.det, linalg.solve), eye, the C++-scalar
// forms of where/equal/not_equal and gather_rows: the derivative table,
// Jacobians against closed forms with a different pivot row in every lane,
// eager values, singular matrices and errors.
#include "kernels/arch_tables.hpp"
#include "kernels/kernels.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>
#include <xsimd/xsimd.hpp>

#include <array>
#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace bj = batchjac;
using check::Case;
using check::Context;

namespace {

const int kRegistered = check::register_ops({"linalg.inv", "linalg.det"});

// Well conditioned per-example matrices from the source: x + s I with the
// rows permuted by a shared permutation (so that elimination must pivot).
bj::Tensor conditioned(const bj::Tensor& x, double s, bool permute) {
  const std::int64_t n = x.shape()[x.rank() - 1];
  bj::Tensor a = x + bj::cast(bj::eye(n), x.dtype()) * s;
  if (!permute) return a;
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = (i * 3 + 1) % n;
  if (n % 3 == 0)  // 3 divides n: the map above is not a permutation
    for (std::int64_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = n - 1 - i;
  return bj::gather(a, rows, x.rank() - 2);
}

// Reference inverse and determinant of one row-major n x n matrix (Gaussian
// elimination in long double, with partial pivoting).
struct Ref {
  std::vector<double> inv;
  double det = 1;
};
Ref reference(std::vector<double> a, std::int64_t n) {
  std::vector<long double> m(a.begin(), a.end()), x(static_cast<std::size_t>(n * n), 0.0L);
  for (std::int64_t i = 0; i < n; ++i) x[static_cast<std::size_t>(i * n + i)] = 1;
  long double det = 1;
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t p = k;
    for (std::int64_t i = k + 1; i < n; ++i)
      if (std::fabs(m[i * n + k]) > std::fabs(m[p * n + k])) p = i;
    if (p != k) {
      det = -det;
      for (std::int64_t j = 0; j < n; ++j) std::swap(m[k * n + j], m[p * n + j]), std::swap(x[k * n + j], x[p * n + j]);
    }
    const long double piv = m[k * n + k];
    det *= piv;
    for (std::int64_t j = 0; j < n; ++j) m[k * n + j] /= piv, x[k * n + j] /= piv;
    for (std::int64_t i = 0; i < n; ++i) {
      if (i == k) continue;
      const long double f = m[i * n + k];
      for (std::int64_t j = 0; j < n; ++j) m[i * n + j] -= f * m[k * n + j], x[i * n + j] -= f * x[k * n + j];
    }
  }
  return {std::vector<double>(x.begin(), x.end()), static_cast<double>(det)};
}

}  // namespace

TEST_CASE("small matrices: derivative check table", "[ops][linalg]") {
  struct Row {
    std::string what;
    bj::Shape example;
    check::Fn f;
  };
  const std::vector<Row> rows = {
      {"inv 1 x 1", {1, 1}, [](const bj::Tensor& x, const Context&) { return bj::linalg::inv(x + 2.0); }},
      {"inv 2 x 2, pivoting", {2, 2},
       [](const bj::Tensor& x, const Context&) { return bj::linalg::inv(conditioned(x, 3, true)); }},
      {"inv 3 x 3", {3, 3},
       [](const bj::Tensor& x, const Context&) { return bj::linalg::inv(conditioned(x, 3, false)); }},
      {"inv 5 x 5, pivoting", {5, 5},
       [](const bj::Tensor& x, const Context&) { return bj::linalg::inv(conditioned(x, 5, true)); }},
      {"inv 8 x 8, pivoting", {8, 8},
       [](const bj::Tensor& x, const Context&) { return bj::linalg::inv(conditioned(x, 8, true)); }},
      {"inv of [b, 2, 3, 3] (leading dims)", {2, 3, 3},
       [](const bj::Tensor& x, const Context&) { return bj::linalg::inv(conditioned(x, 3, true)); }},
      {"inv of a nonlinear matrix: inv(exp(x) + 3 I)", {3, 3},
       [](const bj::Tensor& x, const Context&) {
         return bj::linalg::inv(bj::exp(x) + bj::cast(bj::eye(3), x.dtype()) * 3.0);
       }},
      {"det 1 x 1", {1, 1}, [](const bj::Tensor& x, const Context&) { return bj::expand_dims(bj::linalg::det(x), -1); }},
      {"det 2 x 2", {2, 2}, [](const bj::Tensor& x, const Context&) { return bj::expand_dims(bj::linalg::det(x), -1); }},
      {"det 3 x 3, pivoting", {3, 3},
       [](const bj::Tensor& x, const Context&) { return bj::expand_dims(bj::linalg::det(conditioned(x, 2, true)), -1); }},
      {"det 8 x 8, pivoting", {8, 8},
       [](const bj::Tensor& x, const Context&) { return bj::expand_dims(bj::linalg::det(conditioned(x, 2, true)), -1); }},
      {"det of [b, 3, 2, 2] (leading dims)", {3, 2, 2},
       [](const bj::Tensor& x, const Context&) { return bj::linalg::det(conditioned(x, 2, false)); }},
      {"log det(F^T F) (neo-Hookean's J^2)", {3, 3},
       [](const bj::Tensor& x, const Context&) {
         const bj::Tensor f = conditioned(x * 0.3, 1, false);
         return bj::expand_dims(bj::log(bj::linalg::det(bj::matmul(f, f, true, false))), -1);
       }},
      {"solve(A(x), per-example B)", {4, 4},
       [](const bj::Tensor& x, const Context& c) {
         return bj::linalg::solve(conditioned(x, 4, true), c.per_example(1, {4, 2}));
       }},
      {"solve(A(x), B(x)), adjoint", {3, 3},
       [](const bj::Tensor& x, const Context&) {
         return bj::linalg::solve(conditioned(x, 3, true), bj::sin(x), true);
       }},
      {"solve(shared A, b(x)) with [b, n, 1]", {4, 1},
       [](const bj::Tensor& x, const Context& c) {
         return bj::linalg::solve(c.shared(2, {4, 4}) + bj::eye(4, c.dtype()) * 4.0, x);
       }},
      {"solve(per-example constant A, x)", {3, 2},
       [](const bj::Tensor& x, const Context& c) {
         return bj::linalg::solve(c.per_example(3, {3, 3}) + bj::eye(3, c.dtype()) * 3.0, x);
       }},
  };
  for (const Row& r : rows) {
    Case c;
    c.name = "small matrices: " + r.what;
    c.f = r.f;
    c.example = r.example;
    c.tol = 1e-11;
    check::check_case(c);
  }
}

TEST_CASE("small matrices: Jacobians against closed forms, a pivot per lane", "[ops][linalg]") {
  // 13 examples (a vector of 8 lanes and a tail): each a diagonally dominant
  // 3 x 3 matrix with its rows permuted by one of the 6 permutations, so
  // that the lanes of one vector pivot on different rows.
  const std::int64_t b = 13, n = 3;
  const std::array<std::array<int, 3>, 6> perms{{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}};
  std::mt19937_64 rng(11);
  std::vector<double> a(static_cast<std::size_t>(b * n * n));
  for (std::int64_t e = 0; e < b; ++e) {
    const auto& p = perms[static_cast<std::size_t>(e % 6)];
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        a[static_cast<std::size_t>(e * 9 + p[static_cast<std::size_t>(i)] * 3 + j)] =
            check::uniform(rng, -1, 1) + (i == j ? 4.0 : 0.0);
  }
  const bj::Tensor x = bj::constant(a, {b, n, n});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = bj::linalg::inv(x);
  const bj::Tensor d = bj::expand_dims(bj::linalg::det(x), -1);  // [b, 1]
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    INFO("mode " << static_cast<int>(mode));
    const auto jy = tape.batch_jacobian(y, x, check::with_mode(mode));
    const auto jd = tape.batch_jacobian(d, x, check::with_mode(mode));
    REQUIRE(jy.has_value());
    REQUIRE(jd.has_value());
    std::vector<double> want_y, want_d, got_v;
    for (std::int64_t e = 0; e < b; ++e) {
      const Ref r = reference(std::vector<double>(a.begin() + e * 9, a.begin() + e * 9 + 9), n);
      got_v.insert(got_v.end(), r.inv.begin(), r.inv.end());
      // dY_ij / dA_kl = -Y_ik Y_lj;  d det / dA_kl = det Y_lk
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          for (std::int64_t k = 0; k < n; ++k)
            for (std::int64_t l = 0; l < n; ++l)
              want_y.push_back(-r.inv[static_cast<std::size_t>(i * n + k)] * r.inv[static_cast<std::size_t>(l * n + j)]);
      for (std::int64_t k = 0; k < n; ++k)
        for (std::int64_t l = 0; l < n; ++l) want_d.push_back(r.det * r.inv[static_cast<std::size_t>(l * n + k)]);
    }
    check::check_close(check::values(*jy), want_y, 1e-13, 1e-15, "d inv");
    check::check_close(check::values(*jd), want_d, 1e-13, 1e-15, "d det");
    check::check_close(check::values(y), got_v, 1e-14, 1e-15, "inv values (engine)");
  }
}

TEST_CASE("small matrices: eager values", "[ops][linalg]") {
  std::mt19937_64 rng(3);
  for (std::int64_t n : {1, 2, 3, 4, 6, 8, 12}) {
    INFO("n = " << n);
    const bj::Tensor a = check::random_tensor(rng, {5, n, n}, -1, 1);
    const bj::Tensor inv = bj::linalg::inv(a);
    const bj::Tensor det = bj::linalg::det(a);
    REQUIRE(inv.shape() == bj::Shape{5, n, n});
    REQUIRE(det.shape() == bj::Shape{5});
    const auto av = check::values(a);
    std::vector<double> want_inv, want_det;
    for (std::int64_t e = 0; e < 5; ++e) {
      const Ref r = reference(std::vector<double>(av.begin() + e * n * n, av.begin() + (e + 1) * n * n), n);
      want_inv.insert(want_inv.end(), r.inv.begin(), r.inv.end());
      want_det.push_back(r.det);
    }
    // Random matrices: relative to the inverse's size (cond(A) up to ~1e3).
    check::check_close(check::values(inv), want_inv, 1e-10, 1e-10, "inv");
    check::check_close(check::values(det), want_det, 1e-12, 1e-14, "det");
    // float32 kernels: the same algorithm in float.
    check::check_close(check::values(bj::linalg::det(bj::cast(a, bj::float32))), want_det, 1e-3, 1e-4, "det f32");
    // A X = B
    const bj::Tensor rhs = check::random_tensor(rng, {5, n, 2}, -1, 1);
    const bj::Tensor sol = bj::linalg::solve(a, rhs);
    check::check_close(check::values(bj::matmul(a, sol)), check::values(rhs), 1e-9, 1e-9, "A solve(A, B)");
    const bj::Tensor sol_t = bj::linalg::solve(a, rhs, true);
    check::check_close(check::values(bj::matmul(a, sol_t, true, false)), check::values(rhs), 1e-9, 1e-9,
                       "A^T solve(A, B, adjoint)");
  }
  // Exact small cases.
  CHECK(check::values(bj::linalg::det(bj::constant({{1., 2.}, {3., 4.}}))) == std::vector<double>{-2});
  CHECK(check::values(bj::linalg::inv(bj::constant({{2., 0.}, {0., 4.}}))) == std::vector<double>{0.5, 0, 0, 0.25});
  // A permutation's determinant is its sign.
  CHECK(bj::linalg::det(bj::constant({{0., 1., 0.}, {0., 0., 1.}, {1., 0., 0.}})).at({}) == 1.0);
  CHECK(bj::linalg::det(bj::constant({{0., 1., 0.}, {1., 0., 0.}, {0., 0., 1.}})).at({}) == -1.0);
  // 0 x 0: det 1, inverse empty; no matrices: empty results.
  CHECK(bj::linalg::det(bj::zeros({2, 0, 0})).to_vector<double>() == std::vector<double>{1, 1});
  CHECK(bj::linalg::inv(bj::zeros({0, 0})).shape() == bj::Shape{0, 0});
  CHECK(bj::linalg::det(bj::zeros({0, 3, 3})).shape() == bj::Shape{0});
  // float32 in, float32 out.
  CHECK(bj::linalg::inv(bj::eye(3, bj::float32)).dtype() == bj::float32);
}

TEST_CASE("small matrices: singular matrices", "[ops][linalg]") {
  // Documented: det is exactly 0, the inverse has non-finite entries, and
  // det's derivative is NaN there; no exception (each lane runs alone).
  const bj::Tensor s = bj::constant({{{1., 2.}, {2., 4.}}, {{0., 0.}, {0., 0.}}, {{1., 0.}, {0., 2.}}});
  const auto det = bj::linalg::det(s).to_vector<double>();
  CHECK(det == std::vector<double>{0, 0, 2});
  const auto inv = bj::linalg::inv(s).to_vector<double>();
  for (int e = 0; e < 2; ++e) {
    bool non_finite = false;
    for (int i = 0; i < 4; ++i) non_finite = non_finite || !std::isfinite(inv[static_cast<std::size_t>(e * 4 + i)]);
    CHECK(non_finite);
  }
  // The regular example in the same batch is unaffected, in the engine too.
  bj::GradientTape tape;
  tape.watch(s);
  const bj::Tensor d = bj::expand_dims(bj::linalg::det(s), -1);
  const auto j = tape.batch_jacobian(d, s);
  REQUIRE(j.has_value());
  const auto jv = j->to_vector<double>();
  CHECK(jv[8] == 2.0);  // d det / d a00 = a11
  CHECK(jv[11] == 1.0);
  CHECK(std::isnan(jv[4]));  // the zero matrix: det * inv^T = 0 * inf
}

namespace {
// The matrix kernel's algorithm (kernels.hpp, lane_kernels.hpp), one matrix at a time, in plain
// C++: Gauss-Jordan with the first largest |pivot| below the diagonal, plain
// products and differences; the determinant the signed product of the
// forward elimination's pivots, a zero pivot divided as 1.
template <class T>
std::vector<T> gauss_jordan(std::vector<T> m, std::int64_t n, bool inverse) {
  auto at = [&](std::vector<T>& v, std::int64_t i, std::int64_t j) -> T& { return v[static_cast<std::size_t>(i * n + j)]; };
  std::vector<T> x(static_cast<std::size_t>(n * n), T(0));
  for (std::int64_t i = 0; i < n; ++i) at(x, i, i) = T(1);
  T det = T(1);
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t piv = k;
    for (std::int64_t i = k + 1; i < n; ++i)
      if (std::abs(at(m, i, k)) > std::abs(at(m, piv, k))) piv = i;
    if (piv != k)
      for (std::int64_t j = 0; j < n; ++j) std::swap(at(m, k, j), at(m, piv, j)), std::swap(at(x, k, j), at(x, piv, j));
    const T p = at(m, k, k);
    if (!inverse) {
      det = (piv == k ? det : -det) * p;
      const T ps = p == T(0) ? T(1) : p;
      for (std::int64_t i = k + 1; i < n; ++i) {
        const T f = at(m, i, k) / ps;
        for (std::int64_t j = k + 1; j < n; ++j) at(m, i, j) = at(m, i, j) - f * at(m, k, j);
      }
      continue;
    }
    const T r = T(1) / p;
    for (std::int64_t j = k + 1; j < n; ++j) at(m, k, j) = at(m, k, j) * r;
    for (std::int64_t j = 0; j < n; ++j) at(x, k, j) = at(x, k, j) * r;
    for (std::int64_t i = 0; i < n; ++i) {
      if (i == k) continue;
      const T f = at(m, i, k);
      for (std::int64_t j = k + 1; j < n; ++j) at(m, i, j) = at(m, i, j) - f * at(m, k, j);
      for (std::int64_t j = 0; j < n; ++j) at(x, i, j) = at(x, i, j) - f * at(x, k, j);
    }
  }
  return inverse ? x : std::vector<T>{det};
}

// Every size (those unrolled, up to 4 x 4, and the general loop), both
// operations, lane counts with tails, two matrices per lane, a pivot row
// that differs from lane to lane, singular and integer matrices: the
// table's bits are the reference's in every lane.
template <class T>
void check_matrix_kernel(const batchjac::kernels::KernelTable<T>& table) {
  namespace k = batchjac::kernels;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<T> any(T(-2), T(2));
  auto same = [](T x, T y) {
    if constexpr (sizeof(T) == 8) return std::bit_cast<std::uint64_t>(x) == std::bit_cast<std::uint64_t>(y);
    else return std::bit_cast<std::uint32_t>(x) == std::bit_cast<std::uint32_t>(y);
  };
  for (const int op : {k::kInverse, k::kDeterminant})
    for (std::int64_t n = 1; n <= 7; ++n)
      for (const std::int64_t lanes : {std::int64_t{1}, table.width - 1, table.width, table.width + 1, 2 * table.width + 3}) {
        if (lanes < 1) continue;
        const std::int64_t nn = n * n, batch = 2;
        std::vector<std::vector<T>> mats(static_cast<std::size_t>(batch * lanes));
        for (std::size_t q = 0; q < mats.size(); ++q) {
          auto& a = mats[q];
          a.resize(static_cast<std::size_t>(nn));
          for (T& v : a) v = q % 5 == 3 ? T(static_cast<int>(rng() % 5) - 2) : any(rng);  // integers: exact ties
          if (q % 7 == 5 && n > 1) std::copy_n(a.begin(), n, a.begin() + n);             // two equal rows
        }
        std::vector<T> in(static_cast<std::size_t>(batch * nn * lanes));
        for (std::int64_t bt = 0; bt < batch; ++bt)
          for (std::int64_t e = 0; e < nn; ++e)
            for (std::int64_t l = 0; l < lanes; ++l)
              in[static_cast<std::size_t>((bt * nn + e) * lanes + l)] = mats[static_cast<std::size_t>(bt * lanes + l)][static_cast<std::size_t>(e)];
        const std::int64_t out_per = op == k::kInverse ? nn : 1;
        std::vector<T> out(static_cast<std::size_t>(batch * out_per * lanes), T(-7));
        k::MatrixArgs<T> args;
        args.out = out.data();
        args.a.ptr = in.data();
        args.batch = batch;
        args.n = n;
        args.op = op;
        args.lanes = lanes;
        table.matrix(args);
        for (std::int64_t bt = 0; bt < batch; ++bt)
          for (std::int64_t l = 0; l < lanes; ++l) {
            const auto want = gauss_jordan(mats[static_cast<std::size_t>(bt * lanes + l)], n, op == k::kInverse);
            for (std::int64_t e = 0; e < out_per; ++e) {
              const T got = out[static_cast<std::size_t>((bt * out_per + e) * lanes + l)];
              INFO(table.arch << (op == k::kInverse ? " inverse" : " det") << ", n " << n << ", lanes " << lanes
                              << ", matrix " << bt << " lane " << l << ", element " << e << ": " << got << " against "
                              << want[static_cast<std::size_t>(e)]);
              CHECK((same(got, want[static_cast<std::size_t>(e)]) || (std::isnan(got) && std::isnan(want[static_cast<std::size_t>(e)]))));
            }
          }
      }
}
}  // namespace

TEST_CASE("small matrices: the kernel's bits on every table, size and lane", "[ops][linalg]") {
  namespace k = batchjac::kernels;
  const auto has = xsimd::available_architectures();
  for (const auto* t : {&k::scalar_kernels<double>(), &k::sse42_kernels<double>()}) check_matrix_kernel(*t);
  check_matrix_kernel(k::scalar_kernels<float>());
  check_matrix_kernel(k::sse42_kernels<float>());
  if (has.fma3_avx2) check_matrix_kernel(k::avx2_kernels<double>()), check_matrix_kernel(k::avx2_kernels<float>());
  if (has.avx512f) check_matrix_kernel(k::avx512_kernels<double>()), check_matrix_kernel(k::avx512_kernels<float>());
}

TEST_CASE("small matrices: errors", "[ops][linalg][errors]") {
  CHECK_THROWS_WITH(bj::linalg::inv(bj::ones({2, 3})),
                    Catch::Contains("linalg.inv") && Catch::Contains("square") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS(bj::linalg::det(bj::ones({3})), bj::ValueError);
  CHECK_THROWS_AS(bj::linalg::det(bj::ones({3, 2, 4})), bj::ValueError);
  CHECK_THROWS_AS(bj::linalg::inv(bj::cast(bj::ones({2, 2}), bj::boolean)), bj::ValueError);
  CHECK_THROWS_WITH(bj::linalg::solve(bj::ones({2, 3}), bj::ones({2, 1})), Catch::Contains("linalg.solve"));
  CHECK_THROWS_WITH(bj::linalg::solve(bj::eye(3), bj::ones({2, 1})),
                    Catch::Contains("linalg.solve") && Catch::Contains("[2, 1]"));
  CHECK_THROWS_AS(bj::linalg::solve(bj::eye(3), bj::ones({3})), bj::ValueError);
  CHECK_THROWS_AS(bj::linalg::solve(bj::eye(3), bj::ones({3, 1}, bj::float32)), bj::ValueError);
  // A source [b, n] whose batch axis is a matrix axis.
  const bj::Tensor x = bj::ones({3, 3});
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = bj::linalg::inv(x);
  CHECK_THROWS_WITH(tape.batch_jacobian(y, x), Catch::Contains("linalg.inv") && Catch::Contains("batch axis"));
}

TEST_CASE("eye", "[ops][linalg]") {
  CHECK(check::values(bj::eye(2)) == std::vector<double>{1, 0, 0, 1});
  CHECK(bj::eye(3, bj::float32).dtype() == bj::float32);
  CHECK(bj::eye(0).shape() == bj::Shape{0, 0});
  CHECK_THROWS_AS(bj::eye(-1), bj::ValueError);
  CHECK_THROWS_AS(bj::eye(2, bj::boolean), bj::ValueError);
  CHECK_THROWS_AS(bj::eye(std::int64_t{1} << 40), bj::ValueError);
}

TEST_CASE("where, equal and not_equal take C++ scalars in the tensor's dtype", "[ops][misc]") {
  for (bj::DType dt : {bj::float32, bj::float64}) {
    const bj::Tensor x = bj::cast(bj::constant({-1., 0., 2.}), dt);
    const bj::Tensor r = bj::where(x > 0.0, x, 0.0);
    CHECK(r.dtype() == dt);
    CHECK(check::values(r) == std::vector<double>{0, 0, 2});
    CHECK(check::values(bj::where(x > 0.0, 5.0, x)) == std::vector<double>{-1, 0, 5});
    CHECK(bj::equal(x, 0.0).to_vector<bool>() == std::vector<bool>{false, true, false});
    CHECK(bj::not_equal(x, 0.0).to_vector<bool>() == std::vector<bool>{true, false, true});
  }
  // The scalar side has no derivative; the tensor side keeps its branch.
  Case c;
  c.name = "where(x > 0, x^2, 0.5)";
  c.example = {4};
  c.f = [](const bj::Tensor& x, const Context&) { return bj::where(x > 0.0, x * x, 0.5); };
  check::check_case(c);
}

TEST_CASE("gather_rows: values, recording, errors", "[ops][shape]") {
  std::mt19937_64 rng(5);
  const bj::Tensor cams = check::random_tensor(rng, {4, 11}, -1, 1);
  const bj::Tensor pts = check::random_tensor(rng, {6, 3}, -1, 1);
  const bj::Tensor w = check::random_tensor(rng, {7}, 0, 1);
  const std::vector<std::int64_t> ci{0, 3, 3, 1, 2, 0, 1}, pi{5, 0, 2, 2, 4, 1, 3}, wi{0, 1, 2, 3, 4, 5, 6};
  const bj::Tensor want = bj::concat({bj::gather(cams, ci), bj::gather(pts, pi), bj::reshape(w, {7, 1})}, 1);
  const bj::Tensor got = bj::gather_rows({cams, pts, w}, {ci, pi, wi});
  REQUIRE(got.shape() == bj::Shape{7, 15});
  CHECK(check::same_bits(got, want));
  CHECK(bj::gather_rows({bj::cast(pts, bj::float32)}, {pi}).dtype() == bj::float32);
  // Differentiated tables: recorded as gathers; the gradient counts each use.
  {
    bj::GradientTape tape;
    tape.watch(pts);
    const bj::Tensor g = bj::gather_rows({cams, pts}, {ci, pi});
    CHECK(check::values(g) == check::values(bj::concat({bj::gather(cams, ci), bj::gather(pts, pi)}, 1)));
    const auto grad = tape.gradient(bj::reduce_sum(g), pts);
    REQUIRE(grad.has_value());
    CHECK(check::values(*grad) == std::vector<double>{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1});
  }
  CHECK_THROWS_WITH(bj::gather_rows({cams}, {std::vector<std::int64_t>{4}}),
                    Catch::Contains("gather_rows") && Catch::Contains("out of range"));
  CHECK_THROWS_AS(bj::gather_rows({cams, pts}, {ci}), bj::ValueError);
  CHECK_THROWS_AS(bj::gather_rows({cams, pts}, {ci, std::vector<std::int64_t>{1}}), bj::ValueError);
  CHECK_THROWS_AS(bj::gather_rows({cams, bj::cast(pts, bj::float32)}, {ci, pi}), bj::ValueError);
  CHECK_THROWS_AS(bj::gather_rows({bj::ones({2, 2, 2})}, {std::vector<std::int64_t>{0}}), bj::ValueError);
  CHECK_THROWS_AS(bj::gather_rows({}, {}), bj::ValueError);
}
