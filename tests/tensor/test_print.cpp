// Printing: operator<< must print exactly what TF prints for the same tensor
// (`print(t)` = "tf.Tensor(" + str(t.numpy()) + ", shape=..., dtype=...)",
// with a newline before the array text when that text has several lines).
// Every expected string below was produced by NumPy 1.24's str() of the
// same array, wrapped the way TF wraps it.
#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace bj = batchjac;

namespace {
std::string str(const bj::Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}
std::vector<double> iota(std::size_t n) {
  std::vector<double> v(n);
  std::iota(v.begin(), v.end(), 0.0);
  return v;
}
}  // namespace

TEST_CASE("print: the seed's batch_jacobian result", "[tensor][print]") {
  bj::GradientTape g;
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}}, bj::float32);
  g.watch(x);
  const bj::Tensor y = x * x;
  const auto jac = g.batch_jacobian(y, x);
  REQUIRE(jac.has_value());
  CHECK(str(*jac) ==
        "tf.Tensor(\n[[[2. 0.]\n  [0. 4.]]\n\n [[6. 0.]\n  [0. 8.]]], shape=(2, 2, 2), dtype=float32)");
}

TEST_CASE("print: layouts that match TF", "[tensor][print]") {
  CHECK(str(bj::constant({{1., 2.}, {3., 4.}}, bj::float32)) ==
        "tf.Tensor(\n[[1. 2.]\n [3. 4.]], shape=(2, 2), dtype=float32)");
  CHECK(str(bj::constant(1.5, bj::float32)) == "tf.Tensor(1.5, shape=(), dtype=float32)");
  CHECK(str(bj::constant({1., 2.}, bj::float32)) == "tf.Tensor([1. 2.], shape=(2,), dtype=float32)");
  CHECK(str(bj::constant({{1., -2.}, {3., 4.}})) ==
        "tf.Tensor(\n[[ 1. -2.]\n [ 3.  4.]], shape=(2, 2), dtype=float64)");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(str(bj::constant({nan, 1., -inf})) == "tf.Tensor([ nan   1. -inf], shape=(3,), dtype=float64)");
  CHECK(str(bj::constant({1., 0.}, bj::boolean)) == "tf.Tensor([ True False], shape=(2,), dtype=bool)");
  CHECK(str(bj::constant(iota(1001), bj::Shape{1001})) ==
        "tf.Tensor([   0.    1.    2. ...  998.  999. 1000.], shape=(1001,), dtype=float64)");
  CHECK(str(bj::zeros({10, 200})) ==
        "tf.Tensor(\n[[0. 0. 0. ... 0. 0. 0.]\n [0. 0. 0. ... 0. 0. 0.]\n [0. 0. 0. ... 0. 0. 0.]\n ...\n"
        " [0. 0. 0. ... 0. 0. 0.]\n [0. 0. 0. ... 0. 0. 0.]\n [0. 0. 0. ... 0. 0. 0.]], shape=(10, 200), "
        "dtype=float64)");
  CHECK(str(bj::constant({{1., 0.}, {0., 1.}}, bj::boolean)) ==
        "tf.Tensor(\n[[ True False]\n [False  True]], shape=(2, 2), dtype=bool)");
}

// Regression (printing, fixed): NumPy pads every element to the same number of fractional
// digits ("pad_right") and the same integer width, then right-aligns; the
// library right-aligns whole cells. [[1., 2.5], [3., 4.]] prints
// "[[ 1. 2.5]\n [ 3.  4.]]" instead of TF's "[[1.  2.5]\n [3.  4. ]]".
TEST_CASE("print: decimal points align as in NumPy", "[tensor][print]") {
  CHECK(str(bj::constant({{1., 2.5}, {3., 4.}}, bj::float32)) ==
        "tf.Tensor(\n[[1.  2.5]\n [3.  4. ]], shape=(2, 2), dtype=float32)");
  CHECK(str(bj::constant({-1., 2.5})) == "tf.Tensor([-1.   2.5], shape=(2,), dtype=float64)");
  CHECK(str(bj::constant({0.1, 0.25}, bj::float32)) ==
        "tf.Tensor([0.1  0.25], shape=(2,), dtype=float32)");
  CHECK(str(bj::constant({1.0 / 3, 2.0})) ==
        "tf.Tensor([0.33333333 2.        ], shape=(2,), dtype=float64)");
  CHECK(str(bj::constant({1.0 / 3, 2.0}, bj::float32)) ==
        "tf.Tensor([0.33333334 2.        ], shape=(2,), dtype=float32)");
}

// Regression (printing, fixed): NumPy's precision 8 counts fractional digits, the library's
// %.8g significant ones: 123.456789123 prints "123.45679", TF "123.45678912".
TEST_CASE("print: precision is 8 fractional digits as in NumPy", "[tensor][print]") {
  CHECK(str(bj::constant({123.456789123, 1.})) ==
        "tf.Tensor([123.45678912   1.        ], shape=(2,), dtype=float64)");
}

// Regression (printing, fixed): NumPy switches the whole array to scientific notation when
// max |x| >= 1e8, min |x| < 1e-4 or max / min > 1000, and writes "1.e+08";
// the library decides per element and writes "1e+08" or "2000.".
TEST_CASE("print: scientific notation as in NumPy", "[tensor][print]") {
  CHECK(str(bj::constant({1e8, 1.})) == "tf.Tensor([1.e+08 1.e+00], shape=(2,), dtype=float64)");
  CHECK(str(bj::constant({1., 2000.})) == "tf.Tensor([1.e+00 2.e+03], shape=(2,), dtype=float64)");
  CHECK(str(bj::constant({1e-5, 1.})) == "tf.Tensor([1.e-05 1.e+00], shape=(2,), dtype=float64)");
  std::vector<double> v = iota(2000);
  CHECK(str(bj::constant(v, bj::Shape{2, 1000})) ==
        "tf.Tensor(\n[[0.000e+00 1.000e+00 2.000e+00 ... 9.970e+02 9.980e+02 9.990e+02]\n"
        " [1.000e+03 1.001e+03 1.002e+03 ... 1.997e+03 1.998e+03 1.999e+03]], shape=(2, 1000), "
        "dtype=float64)");
}

// Regression (printing, fixed): TF puts a newline after "tf.Tensor(" only when the array
// text has several lines; the library always does for rank >= 2, so
// [[1., 2.]] prints "tf.Tensor(\n[[1. 2.]], ..." instead of
// "tf.Tensor([[1. 2.]], ...", and an empty [0, 2] tensor "tf.Tensor(\n[], ...".
TEST_CASE("print: one-line arrays of rank >= 2 start on the same line", "[tensor][print]") {
  CHECK(str(bj::constant({{1., 2.}}, bj::float32)) ==
        "tf.Tensor([[1. 2.]], shape=(1, 2), dtype=float32)");
  CHECK(str(bj::zeros({0, 2}, bj::float32)) == "tf.Tensor([], shape=(0, 2), dtype=float32)");
}

// Regression (printing, fixed): NumPy wraps lines at 75 characters (linewidth); the library
// never wraps.
TEST_CASE("print: long rows wrap at 75 columns as in NumPy", "[tensor][print]") {
  CHECK(str(bj::constant(iota(30), bj::Shape{30})) ==
        "tf.Tensor(\n[ 0.  1.  2.  3.  4.  5.  6.  7.  8.  9. 10. 11. 12. 13. 14. 15. 16. 17.\n"
        " 18. 19. 20. 21. 22. 23. 24. 25. 26. 27. 28. 29.], shape=(30,), dtype=float64)");
}
