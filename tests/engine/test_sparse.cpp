// The sparse form of the linear program (engine/sparse.hpp) against the dense
// engine: the same Jacobians on programs whose directions reach few elements,
// exact structural zeros, and a fallback where it has no form. The whole op
// suite also runs with BATCHJAC_SPARSE=0 and =1 (tests/CMakeLists.txt).
#include "kernels/kernels.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <tuple>
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

// The sparse form's Jacobian of f at x against the dense engine's (to
// `tol`, relative and absolute) and, in float64, against central
// differences (to fd_rtol and fd_atol); returns the sparse one.
bj::Tensor check_sparse_form(bj::Tensor (*f)(const bj::Tensor&), const bj::Tensor& x, bj::JacobianMode mode,
                             double tol, double fd_rtol, double fd_atol) {
  const bj::Tensor sparse = jacobian_with("1", x, mode, f);
  const bj::Tensor dense = jacobian_with("0", x, mode, f);
  check::check_close(sparse, dense, tol, tol, "sparse vs dense");
  if (x.dtype() == bj::float64)
    check::check_close(check::values(sparse), central_differences(f, x), fd_rtol, fd_atol,
                       "sparse vs central differences");
  return sparse;
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
        const bj::Tensor sparse = check_sparse_form(reactions, x, mode, dtype == bj::float64 ? 1e-13 : 1e-5, 1e-6, 1e-7);
        REQUIRE(sparse.shape() == bj::Shape{b, 8, 7});
      }
}

// Sums of several terms per direction (through a dense matmul), read through
// a scale: -heat alone (the scale folds into the sum's terms) and a sum that
// is negated, scaled and read as it is (it may not).
bj::Tensor scaled_sums(const bj::Tensor& x) {
  std::vector<double> w(7 * 3);
  for (int i = 0; i < 21; ++i) w[i] = 0.1 * (i % 5) - 0.15;
  const bj::Tensor m = bj::matmul(x, bj::cast(bj::constant(w, {7, 3}), x.dtype()));  // [b, 3]
  const bj::Tensor heat = bj::reduce_sum(bj::exp(m), {1}, true);                      // [b, 1]
  const bj::Tensor shared = bj::reduce_sum(bj::tanh(m), {1}, true);
  return bj::concat({-heat, -shared, shared * 3.0, shared}, 1);  // [b, 4]
}

TEST_CASE("a scale folds into a sum only where the sum has no other reader", "[engine][sparse]") {
  for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    CAPTURE(static_cast<int>(mode));
    const bj::Tensor x = kinetics_input(9, bj::float64);
    const bj::Tensor sparse = jacobian_with("1", x, mode, scaled_sums);
    check::check_close(sparse, jacobian_with("0", x, mode, scaled_sums), 1e-13, 1e-13, "sparse vs dense");
    check::check_close(check::values(sparse), central_differences(scaled_sums, x), 1e-6, 1e-7,
                       "sparse vs central differences");
  }
}

// Slices and gathers the plan reads through composed maps instead of
// copying (engine/plan.cpp, forward_gathers): a gather of a slice, a slice
// broadcast against a row, values also read by matmuls (kept), and
// gathered coefficients in front of a matmul and of a plain sum.
bj::Tensor picks(const bj::Tensor& x) {
  const bj::DType t = x.dtype();
  const bj::Tensor head = bj::slice(x, {0, 0}, {-1, 1});                 // [b, 1]
  const bj::Tensor tail = bj::slice(x, {0, 1}, {-1, 6});                 // [b, 6]
  const bj::Tensor g = bj::gather(tail, std::vector<std::int64_t>{5, 0, 3, 3}, 1);  // [b, 4]
  const bj::Tensor row = bj::cast(bj::constant(std::vector<double>{0.5, -1.0, 2.0, 0.25}, {1, 4}), t);
  const bj::Tensor scaled = bj::exp(row * head) * g;                    // [b, 4]
  std::vector<double> w(4 * 3);
  for (int i = 0; i < 12; ++i) w[i] = 0.1 * (i % 5) - 0.2;
  const bj::Tensor layer = bj::matmul(scaled * bj::gather(x, std::vector<std::int64_t>{2, 4, 6, 1}, 1),
                                      bj::cast(bj::constant(w, {4, 3}), t));  // [b, 3]
  // tail also feeds a matmul whose values the derivative needs: kept.
  const bj::Tensor mixed = bj::tanh(bj::matmul(tail, bj::cast(bj::constant(w, {6, 2}), t)));
  // Per-example matrices whose product's derivative reads both: kept.
  const std::int64_t b = x.shape()[0];
  const bj::Tensor rows = bj::reshape(bj::gather(x, std::vector<std::int64_t>{1, 2, 3, 4, 5, 6}, 1), {b, 2, 3});
  const bj::Tensor prod = bj::reshape(bj::matmul(rows, rows, false, true), {b, 4});
  return bj::concat({layer, bj::reduce_sum(tail, {1}, true), g * head, mixed, prod}, 1);  // [b, 14]
}

TEST_CASE("slices and gathers read through maps give the Jacobian of the copies", "[engine][sparse]") {
  for (std::int64_t b : {1, 9, 33})
    for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
      CAPTURE(b, static_cast<int>(mode));
      const bj::Tensor x = kinetics_input(b, bj::float64);
      const std::vector<double> fd = central_differences(picks, x);
      const bj::Tensor dense = jacobian_with("0", x, mode, picks);
      for (const char* sparse : {"0", "1"}) {
        CAPTURE(sparse);
        const bj::Tensor j = *sparse == '0' ? dense : jacobian_with(sparse, x, mode, picks);
        REQUIRE(j.shape() == bj::Shape{b, 14, 7});
        check::check_close(check::values(j), fd, 1e-6, 1e-7, "vs central differences");
      }
      const bj::Tensor other = jacobian_with("0", x, mode == bj::JacobianMode::forward
                                                         ? bj::JacobianMode::reverse
                                                         : bj::JacobianMode::forward, picks);
      check::check_close(dense, other, 1e-13, 1e-13, "vs the other mode");
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
  // limit the dense engine runs even under BATCHJAC_SPARSE=1, with the same
  // entries: off the diagonal of sqrt's Jacobian at 0, 0 * inf is a strong
  // zero in either form (test_strong_zeros.cpp).
  for (std::int64_t n : {181, 182}) {  // 32761 and 33124 entries
    std::vector<double> zeros(static_cast<std::size_t>(n), 0.0);
    const bj::Tensor x = bj::constant(zeros, {1, n});
    const bj::Tensor j = jacobian_with("1", x, bj::JacobianMode::forward, [](const bj::Tensor& v) { return bj::sqrt(v); });
    const std::vector<double> p = check::values(j);
    CHECK(std::isinf(p[0]));
    CHECK(p[1] == 0.0);
  }
}

namespace {
// Runs ops of the given shapes (terms of three, two and one factors) through
// a kernel table's sparse_linear, grouped into runs as the plan groups them,
// and checks every output against the sum computed here term by term: the
// shapes of the workloads, then every shape up to (3, 4, 4), in runs of two
// (the kernel's table of small shapes and the general loop past its edges).
template <class T>
void check_sparse_kernel(const batchjac::kernels::KernelTable<T>& table, std::int64_t lanes) {
  namespace k = batchjac::kernels;
  std::vector<std::array<int, 3>> shapes = {
      {0, 0, 1}, {0, 0, 1}, {0, 0, 1}, {0, 1, 0}, {0, 1, 0}, {0, 0, 9}, {0, 9, 0}, {0, 1, 1},
      {0, 2, 1}, {0, 2, 1}, {0, 3, 4}, {0, 0, 2}, {0, 1, 2}, {0, 0, 3}, {0, 2, 0}, {0, 8, 8},
      {0, 0, 8}, {0, 1, 7}, {0, 0, 1}, {2, 0, 0}, {2, 0, 0}, {1, 0, 0}, {1, 1, 1}, {9, 0, 0},
      {2, 0, 3}, {3, 2, 0}, {0, 0, 6}, {0, 0, 6}, {0, 0, 12}, {0, 3, 0}, {0, 3, 0}, {0, 3, 3},
      {0, 6, 0}, {0, 6, 6}, {0, 6, 6}, {0, 0, 13}, {0, 16, 0}, {0, 0, 1}};
  // These ops read inputs and earlier outputs; the ones after them read
  // inputs and these ops' outputs only (products of later outputs would grow
  // past float's tolerance).
  const std::size_t chained = shapes.size();
  for (int n3 = 0; n3 <= 3; ++n3)
    for (int nc = 0; nc <= 4; ++nc)
      for (int np = 0; np <= 4; ++np)
        for (int twice = 0; twice < 2; ++twice) shapes.push_back({n3, nc, np});
  const int n_in = 40;
  const auto n_slots = static_cast<std::int64_t>(n_in + shapes.size());
  std::mt19937_64 rng(static_cast<std::uint64_t>(lanes));
  const std::vector<double> init = check::random_values(rng, n_slots * lanes, -2, 2);
  std::vector<T> buf(init.begin(), init.end());
  std::vector<k::SparseOp> ops;
  std::vector<k::SparseTerm<T>> terms;
  std::uniform_real_distribution<double> scale(-1.5, 1.5);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const int can_read = n_in + static_cast<int>(std::min(i, chained));  // inputs, earlier outputs
    std::uniform_int_distribution<int> slot(0, can_read - 1);
    k::SparseOp op;
    op.out = static_cast<std::int32_t>((n_in + static_cast<std::int64_t>(i)) * lanes);
    op.n_triple = shapes[i][0];
    op.n_coef = shapes[i][1];
    op.n_plain = shapes[i][2];
    for (int t = 0; t < op.n_triple + op.n_coef + op.n_plain; ++t) {
      k::SparseTerm<T> term;
      term.in = static_cast<std::int32_t>(slot(rng) * lanes);
      term.coef = t < op.n_triple + op.n_coef ? static_cast<std::int32_t>(slot(rng) * lanes) : 0;
      term.scale = static_cast<T>(t % 3 == 0 ? 1.0 : scale(rng));
      terms.push_back(term);
      if (t < op.n_triple) terms.push_back({static_cast<std::int32_t>(slot(rng) * lanes), 0, T(0)});
    }
    ops.push_back(op);
  }
  for (std::size_t i = ops.size(); i-- > 0;)  // run lengths, as engine/plan.cpp sets them
    ops[i].run = i + 1 < ops.size() && shapes[i] == shapes[i + 1] ? ops[i + 1].run + 1 : 1;
  std::vector<T> want = buf;
  std::size_t t = 0;
  for (const auto& op : ops)
    for (std::int64_t l = 0; l < lanes; ++l) {
      std::size_t u = t;
      double acc = 0;
      for (int j = 0; j < op.n_triple + op.n_coef + op.n_plain; ++j, ++u) {
        const auto& term = terms[u];
        double x = double(want[term.in + l]);
        if (j < op.n_triple + op.n_coef) x *= double(want[term.coef + l]);
        if (j < op.n_triple) x *= double(want[terms[++u].in + l]);  // the term's second record
        acc += x * double(term.scale);
      }
      want[op.out + l] = static_cast<T>(acc);
      if (l + 1 == lanes) t = u;
    }
  table.sparse_linear(buf.data(), ops.data(), static_cast<std::int64_t>(ops.size()), terms.data(), lanes);
  const double tol = sizeof(T) == 8 ? 1e-12 : 1e-4;
  for (std::size_t i = 0; i < ops.size(); ++i)
    for (std::int64_t l = 0; l < lanes; ++l) {
      INFO(table.arch << ", op " << i << " (" << shapes[i][0] << ", " << shapes[i][1] << ", " << shapes[i][2]
                      << "), lane " << l);
      const double got = buf[ops[i].out + l], ref = want[ops[i].out + l];
      CHECK(std::abs(got - ref) <= tol * (1 + std::abs(ref)));
    }
}
}  // namespace

TEST_CASE("sparse_linear: every op shape, in runs, sums its terms", "[engine][sparse]") {
  namespace k = batchjac::kernels;
  for (std::int64_t mult : {1, 2}) {
    check_sparse_kernel<double>(k::simd_kernels<double>(), k::simd_kernels<double>().width * mult);
    check_sparse_kernel<float>(k::simd_kernels<float>(), k::simd_kernels<float>().width * mult);
  }
  check_sparse_kernel<double>(k::scalar_kernels<double>(), 1);
}

// A where under a fixed mask (a shared boolean constant) is structure: the
// sparse form keeps the masked-in elements and drops the rest as structural
// zeros. Pairs of 5 points in the plane, the upper triangle only (the
// diagonal's r2 = 0 is masked before 1 / r2, the double where), with a
// where(mask, 0, v) beside it; [b, 10] -> [b, 10].
bj::Tensor masked_pairs(const bj::Tensor& x) {
  const bj::DType t = x.dtype();
  constexpr int n = 5;
  std::vector<double> upper(n * n, 0.0);
  for (int k = 0; k < n; ++k)
    for (int l = k + 1; l < n; ++l) upper[k * n + l] = 1.0;
  const bj::Tensor mask = bj::constant(upper, {n, n, 1}, bj::boolean);
  const bj::Tensor p = bj::reshape(x, {-1, n, 2});
  const bj::Tensor d = bj::expand_dims(p, 1) - bj::expand_dims(p, 2);  // [b, 5, 5, 2]
  const bj::Tensor r2 = bj::reduce_sum(d * d, {3}, /*keepdims=*/true);  // [b, 5, 5, 1]
  const bj::Tensor inv = bj::reciprocal(bj::where(mask, r2, bj::ones({1}, t)));
  const bj::Tensor w = bj::where(mask, bj::exp(-r2) * inv, 0.0);        // c ? v : 0
  const bj::Tensor lower = bj::where(mask, 0.0, bj::tanh(d));            // c ? 0 : v
  const bj::Tensor f = bj::reduce_sum(w * d, {1}) + bj::reduce_sum(lower, {2});  // [b, 5, 2]
  return bj::reshape(f, {-1, 2 * n});
}

// The same on an elementwise chain with no pairs: every other element masked.
bj::Tensor masked_chain(const bj::Tensor& x) {
  const bj::Tensor mask = bj::constant(std::vector<double>{1, 0, 0, 1, 1, 0, 1}, {1, 7}, bj::boolean);
  const bj::Tensor a = bj::where(mask, bj::sin(x) * x, 0.0);
  return a * bj::cos(x) + bj::where(mask, 0.0, x * x * x) + bj::reduce_sum(a, {1}, true);
}

TEST_CASE("a where under a fixed mask has a sparse form equal to the dense engine's", "[engine][sparse]") {
  std::mt19937_64 rng(17);
  for (bj::DType dtype : {bj::float64, bj::float32})
    for (std::int64_t b : {1, 9, 20})
      for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse})
        for (auto [name, f, n] : {std::tuple{"pairs", &masked_pairs, std::int64_t{10}},
                                  std::tuple{"chain", &masked_chain, std::int64_t{7}}}) {
          CAPTURE(bj::dtype_name(dtype), b, static_cast<int>(mode), name);
          const bj::Tensor x = check::random_tensor(rng, {b, n}, -1.5, 1.5, dtype);
          const bj::Tensor sparse = check_sparse_form(f, x, mode, dtype == bj::float64 ? 1e-12 : 1e-4, 1e-6, 1e-6);
          for (double v : check::values(sparse)) REQUIRE(std::isfinite(v));  // no 0 * inf from the diagonal
        }
}

// Linear values divided by per-example values (a norm, a determinant, a
// sum): the sparse form multiplies by their reciprocals. [b, 4] -> [b, 11]:
// a 2x2 inverse by cofactors over its determinant, a unit vector, a
// normalised exp, and one quotient read by two others.
bj::Tensor quotients(const bj::Tensor& x) {
  const bj::Tensor a = bj::slice(x, {0, 0}, {-1, 1}), b = bj::slice(x, {0, 1}, {-1, 1});
  const bj::Tensor c = bj::slice(x, {0, 2}, {-1, 1}), d = bj::slice(x, {0, 3}, {-1, 1});
  const bj::Tensor det = a * d - b * c;                                             // [b, 1]
  const bj::Tensor inv = bj::concat({d, -b, -c, a}, 1) / det;                        // [b, 4]
  const bj::Tensor unit = x / bj::sqrt(bj::reduce_sum(x * x, {1}, true));            // [b, 4]
  const bj::Tensor e = bj::exp(bj::slice(x, {0, 0}, {-1, 2}));
  const bj::Tensor soft = e / bj::reduce_sum(e, {1}, true);                          // [b, 2]
  const bj::Tensor q = bj::slice(inv, {0, 0}, {-1, 1}) / (1.0 + c * c);             // [b, 1]
  return bj::concat({inv, unit, soft, q * bj::tanh(d) / a}, 1);
}

TEST_CASE("division by a per-example value has a sparse form equal to the dense engine's", "[engine][sparse]") {
  std::mt19937_64 rng(29);
  for (bj::DType dtype : {bj::float64, bj::float32})
    for (std::int64_t b : {1, 9, 20})
      for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
        CAPTURE(bj::dtype_name(dtype), b, static_cast<int>(mode));
        const bj::Tensor x = check::random_tensor(rng, {b, 4}, 0.5, 2.0, dtype);
        const bj::Tensor sparse = check_sparse_form(quotients, x, mode, dtype == bj::float64 ? 1e-12 : 1e-4, 1e-6, 1e-6);
        REQUIRE(sparse.shape() == bj::Shape{b, 11, 4});
      }
}

TEST_CASE("a zero divisor gives the same infinities and strong zeros in both forms", "[engine][sparse]") {
  // x0 / x1 and x2 / x1 at x1 = 0: the entries through 1 / x1 are infinite
  // where the tangent is not zero and strong zeros where it is.
  auto f = [](const bj::Tensor& v) {
    const bj::Tensor den = bj::slice(v, {0, 1}, {-1, 1});
    return bj::concat({bj::slice(v, {0, 0}, {-1, 1}) / den, 2.0 * bj::slice(v, {0, 2}, {-1, 1}) / den}, 1);
  };
  const bj::Tensor x = bj::constant({{1.0, 0.0, 2.0}, {0.0, 0.0, 0.0}, {3.0, 2.0, -1.0}});
  for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    CAPTURE(static_cast<int>(mode));
    const std::vector<double> s = check::values(jacobian_with("1", x, mode, f));
    const std::vector<double> d = check::values(jacobian_with("0", x, mode, f));
    REQUIRE(s.size() == d.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
      CAPTURE(i, s[i], d[i]);
      CHECK(std::isnan(s[i]) == std::isnan(d[i]));
      if (!std::isnan(d[i])) CHECK(s[i] == Approx(d[i]).epsilon(1e-14));
    }
    CHECK(std::isinf(s[0]));  // d(x0 / x1)/dx0 at x1 = 0
    CHECK(s[2] == 0.0);       // d(x0 / x1)/dx2: x0's tangent is zero there
  }
}

// Sums built one addition at a time, as scalar code writes them: partial
// sums that one plain term reads (merged into their reader, times its
// scale: 1, -1, 1 / 3), one read twice (kept), and one read through a
// coefficient (kept). [b, 6] -> [b, 7].
bj::Tensor sums_by_additions(const bj::Tensor& x) {
  auto col = [&](int i) { return bj::slice(x, {0, i}, {-1, 1}); };
  bj::Tensor s = col(0) * col(1);
  for (int i = 2; i < 6; ++i) s = s + col(0) * col(i);  // x0's direction: a sum of 5 terms
  bj::Tensor plain = col(0);
  for (int i = 1; i < 6; ++i) plain = plain - col(i) * 0.5;
  const bj::Tensor twice = col(1) * col(2) + col(1) * col(3);  // read by two ops
  const bj::Tensor scaled = col(4) * col(4) + col(4) * col(5);
  const bj::Tensor negated = col(3) * col(0) - (col(1) * col(0) + col(2) * col(0));  // scale -1
  // A scaled sum read through its scaling op (a / 3), then summed again: the
  // scaling op is dead, so the sum has one reader.
  const bj::Tensor thrice = (col(5) * col(1) + col(5) * col(2)) / 3.0 + col(5) * col(3) + col(5) * col(4) * 0.3;
  return bj::concat({s * -0.5, -plain, twice + twice * col(0), bj::exp(twice), scaled * bj::sin(col(0)), negated,
                     thrice},
                    1);
}

TEST_CASE("sums built one addition at a time have the Jacobian of the whole sum", "[engine][sparse]") {
  std::mt19937_64 rng(31);
  for (bj::DType dtype : {bj::float64, bj::float32})
    for (std::int64_t b : {1, 9, 17})
      for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
        CAPTURE(bj::dtype_name(dtype), b, static_cast<int>(mode));
        const bj::Tensor x = check::random_tensor(rng, {b, 6}, -1.5, 1.5, dtype);
        const bj::Tensor sparse =
            check_sparse_form(sums_by_additions, x, mode, dtype == bj::float64 ? 1e-13 : 1e-5, 1e-6, 1e-7);
        REQUIRE(sparse.shape() == bj::Shape{b, 7, 6});
      }
}

namespace {

// Normalisations, whose reverse form sums the same coefficients in every row
// (engine/sparse.cpp, share_sums). A layer norm with an affine map: the
// adjoint of the mean reads sum_k (x_k - mean) in each row, one term of which
// sits in the slot of x_i - mean's adjoint (two terms: it also reaches
// the output directly). [b, 10] -> [b, 10].
bj::Tensor layer_norm(const bj::Tensor& x) {
  const bj::DType t = x.dtype();
  std::vector<double> gamma, beta;
  for (int j = 0; j < 10; ++j) gamma.push_back(1.0 + 0.07 * j), beta.push_back(0.1 - 0.02 * j);
  const bj::Tensor centered = x - bj::reduce_mean(x, {1}, /*keepdims=*/true);
  const bj::Tensor var = bj::reduce_mean(bj::square(centered), {1}, /*keepdims=*/true);
  const bj::Tensor xh = centered * bj::rsqrt(var + 1e-3);
  return bj::cast(bj::constant(gamma, {10}), t) * xh + bj::cast(bj::constant(beta, {10}), t);
}

// Each output scaled by the spread of the whole row: every row's adjoint of
// the mean sums 2 (x_k - mean) over all k, no term in a slot of its own, and
// a second sum over the row (of x_k) beside it. [b, 7] -> [b, 7].
bj::Tensor spread(const bj::Tensor& x) {
  const bj::Tensor centered = x - bj::reduce_mean(x, {1}, /*keepdims=*/true);
  const bj::Tensor s = bj::reduce_sum(bj::square(centered), {1}, /*keepdims=*/true);
  return bj::sin(x) * s + bj::reduce_sum(x * x * x, {1}, /*keepdims=*/true) * x;
}

}  // namespace

TEST_CASE("sums every row of a normalisation reads give the dense engine's Jacobian", "[engine][sparse]") {
  std::mt19937_64 rng(41);
  const std::vector<std::tuple<std::string, bj::Tensor (*)(const bj::Tensor&), std::int64_t>> cases = {
      {"layer_norm", layer_norm, 10}, {"spread", spread, 7}};
  for (const auto& [name, f, n] : cases)
    for (bj::DType dtype : {bj::float64, bj::float32})
      for (std::int64_t b : {1, 9, 17})
        for (bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
          CAPTURE(name, bj::dtype_name(dtype), b, static_cast<int>(mode));
          const bj::Tensor x = check::random_tensor(rng, {b, n}, -1.5, 1.5, dtype);
          const bj::Tensor sparse =
              check_sparse_form(f, x, mode, dtype == bj::float64 ? 1e-12 : 2e-5, 1e-6, 1e-7);
          REQUIRE(sparse.shape() == bj::Shape{b, n, n});
        }
}
