// The generic derivative checker (see check.hpp).
#include "support/check.hpp"

#include "tensor/tensor_impl.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <sstream>

namespace check {

namespace {

std::int64_t product(const bj::Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  // splitmix64 of a combined key: well-spread seeds for nearby tags.
  std::uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double round_float(double v) { return static_cast<double>(static_cast<float>(v)); }

std::string shape_str(const bj::Shape& s) { return s.to_string(); }

// Largest |v| of an example's block, at least `floor`.
double block_scale(std::span<const double> a, std::span<const double> b, double floor) {
  double s = floor;
  for (double v : a)
    if (std::isfinite(v)) s = std::max(s, std::abs(v));
  for (double v : b)
    if (std::isfinite(v)) s = std::max(s, std::abs(v));
  return s;
}

bool equal_or_close(double g, double w, double allowed) {
  if (std::isnan(g) || std::isnan(w)) return std::isnan(g) && std::isnan(w);
  if (std::isinf(g) || std::isinf(w)) return g == w;
  return std::abs(g - w) <= allowed;
}

// Per-example comparison of two [b][per] arrays: element error within
// tol * max(floor, max |J| of the example). One CHECK for all of it.
void check_examples(const std::string& what, std::span<const double> got,
                    std::span<const double> want, std::int64_t b, std::int64_t per, double tol,
                    double floor) {
  std::int64_t bad = 0;
  std::ostringstream first;
  for (std::int64_t i = 0; i < b; ++i) {
    auto g = got.subspan(static_cast<std::size_t>(i * per), static_cast<std::size_t>(per));
    auto w = want.subspan(static_cast<std::size_t>(i * per), static_cast<std::size_t>(per));
    const double allowed = tol * block_scale(g, w, floor);
    for (std::int64_t e = 0; e < per; ++e) {
      if (equal_or_close(g[e], w[e], allowed)) continue;
      if (bad++ == 0) {
        first.precision(17);
        first << "example " << i << ", element " << e << ": got " << g[e] << ", want " << w[e]
              << " (allowed error " << allowed << ")";
      }
    }
  }
  INFO(what << ": " << bad << " of " << b * per << " elements differ; first: " << first.str());
  CHECK(bad == 0);
}

}  // namespace

// ---- Context --------------------------------------------------------------------

Context::Context(bj::DType dtype, std::int64_t batch, std::optional<std::int64_t> example,
                 bool round_to_float)
    : dtype_(dtype), batch_(batch), example_(example), round_(round_to_float || dtype == bj::float32) {}

bj::Tensor Context::make(const std::vector<double>& v, const bj::Shape& shape) const {
  std::vector<double> r = v;
  if (round_)
    for (auto& x : r) x = round_float(x);
  return bj::constant(r, shape, dtype_);
}

bj::Tensor Context::shared(int tag, const bj::Shape& shape, double lo, double hi) const {
  std::mt19937_64 rng(mix(static_cast<std::uint64_t>(tag), 0xC0FFEEull));
  return make(random_values(rng, product(shape), lo, hi), shape);
}

bj::Tensor Context::per_example(int tag, const bj::Shape& dims, double lo, double hi) const {
  const std::int64_t n = product(dims);
  auto row = [&](std::int64_t i) {
    std::mt19937_64 rng(mix(static_cast<std::uint64_t>(tag) + 1000, static_cast<std::uint64_t>(i)));
    return random_values(rng, n, lo, hi);
  };
  if (example_) return make(row(*example_), with_batch(1, dims));
  std::vector<double> all;
  for (std::int64_t i = 0; i < batch_; ++i) {
    auto r = row(i);
    all.insert(all.end(), r.begin(), r.end());
  }
  return make(all, with_batch(batch_, dims));
}

// ---- helpers --------------------------------------------------------------------

double uniform(std::mt19937_64& rng, double lo, double hi) {
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * u;
}

std::vector<double> random_values(std::mt19937_64& rng, std::int64_t n, double lo, double hi) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = uniform(rng, lo, hi);
  return v;
}

bj::Tensor random_tensor(std::mt19937_64& rng, const bj::Shape& shape, double lo, double hi,
                         bj::DType dtype) {
  return bj::constant(random_values(rng, product(shape), lo, hi), shape, dtype);
}

bj::Shape with_batch(std::int64_t b, const bj::Shape& s) {
  std::vector<std::int64_t> d{b};
  d.insert(d.end(), s.begin(), s.end());
  return bj::Shape(d);
}

bj::Shape concat(const bj::Shape& a, const bj::Shape& b) {
  std::vector<std::int64_t> d(a.begin(), a.end());
  d.insert(d.end(), b.begin(), b.end());
  return bj::Shape(d);
}

std::vector<double> values(const bj::Tensor& t) { return t.to_vector<double>(); }

bool same_bits(const bj::Tensor& a, const bj::Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const std::size_t n = static_cast<std::size_t>(a.num_elements());
  switch (a.dtype()) {
    case bj::DType::float32:
      return std::memcmp(a.data<float>().data(), b.data<float>().data(), n * sizeof(float)) == 0;
    case bj::DType::float64:
      return std::memcmp(a.data<double>().data(), b.data<double>().data(), n * sizeof(double)) == 0;
    case bj::DType::boolean:
      return a.to_vector<bool>() == b.to_vector<bool>();
  }
  return false;
}

void check_close(std::span<const double> got, std::span<const double> want, double rtol,
                 double atol, const std::string& what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, worst = 0;
  double worst_excess = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double allowed = rtol * std::abs(want[i]) + atol;
    if (equal_or_close(got[i], want[i], allowed)) continue;
    ++bad;
    const double excess = std::isfinite(got[i] - want[i]) ? std::abs(got[i] - want[i]) - allowed
                                                          : std::numeric_limits<double>::max();
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  std::ostringstream os;
  os.precision(17);
  if (bad) os << "worst element " << worst << ": got " << got[worst] << ", want " << want[worst];
  INFO(bad << " of " << got.size() << " elements differ; " << os.str());
  CHECK(bad == 0);
}

void check_close(const bj::Tensor& got, const bj::Tensor& want, double rtol, double atol,
                 const std::string& what) {
  INFO(what << ": got shape " << got.shape() << ", want " << want.shape());
  CHECK(got.shape() == want.shape());
  if (got.shape() != want.shape()) return;
  const auto g = values(got), w = values(want);
  check_close(g, w, rtol, atol, what);
}

std::vector<double> central_differences(
    const std::function<std::vector<double>(const std::vector<double>&)>& f,
    const std::vector<double>& x, double step) {
  const std::size_t n_x = x.size();
  std::vector<double> jac;
  for (std::size_t j = 0; j < n_x; ++j) {
    const double h = step * std::max(1.0, std::abs(x[j]));
    std::vector<double> plus = x, minus = x;
    plus[j] += h;
    minus[j] -= h;
    const double dh = plus[j] - minus[j];
    const auto yp = f(plus), ym = f(minus);
    if (jac.empty()) jac.resize(yp.size() * n_x);
    for (std::size_t r = 0; r < yp.size(); ++r) jac[r * n_x + j] = (yp[r] - ym[r]) / dh;
  }
  return jac;
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name) {
  if (const char* old = std::getenv(name)) old_ = old;
  ::setenv(name, value, 1);
}

ScopedEnv::~ScopedEnv() {
  if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
  else ::unsetenv(name_.c_str());
}

int register_ops(std::initializer_list<std::string_view> names) {
  auto& set = const_cast<std::set<std::string>&>(covered_ops());
  for (auto n : names) set.emplace(n);
  return static_cast<int>(set.size());
}

const std::set<std::string>& covered_ops() {
  static std::set<std::string> names;
  return names;
}

// ---- the checker ------------------------------------------------------------------

// (e) f recorded returns at once, a deferred value, which the Jacobians
// may write in their pass over the blocks (call after them); read, it
// equals f evaluated eagerly to the documented accuracy (README: the
// engine's SIMD math against the scalar kernels' libm).
void check_deferred(const Case& c, bj::GradientTape& tape, const bj::Tensor& x, const bj::Tensor& y,
                    const Context& ctx) {
  const bj::Tensor eager = [&] {
    const auto pause = tape.stop_recording();
    return c.f(x, ctx);
  }();
  CHECK_FALSE(eager.impl().deferred());
  const double eps = x.dtype() == bj::float32 ? std::numeric_limits<float>::epsilon()
                                              : std::numeric_limits<double>::epsilon();
  const double tol = c.value_tol > 0 ? c.value_tol : 16 * eps;
  const auto a = y.to_vector<double>(), b = eager.to_vector<double>();
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i]) || std::isinf(b[i])) {
      CHECK(same_bits(bj::constant(a[i]), bj::constant(b[i])));
      continue;
    }
    worst = std::max(worst, std::abs(a[i] - b[i]) / (1 + std::abs(b[i])));
  }
  INFO("deferred vs eager: max |a - b| / (1 + |b|) = " << worst);
  CHECK(worst <= tol);
}

void check_float64(const Case& c) {
  const std::int64_t n_x = product(c.example);
  for (const std::int64_t b : c.batches) {
    INFO(c.name << " [float64, batch " << b << ", source " << shape_str(with_batch(b, c.example))
                << "]");
    std::mt19937_64 rng(mix(c.seed, static_cast<std::uint64_t>(b)));
    const bj::Tensor x = random_tensor(rng, with_batch(b, c.example), c.lo, c.hi);
    const auto xv = values(x);

    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = c.f(x, Context(bj::float64, b));
    if (y.id() != x.id()) CHECK(y.impl().deferred());
    REQUIRE(y.rank() >= 2);
    REQUIRE(y.shape()[0] == b);
    CHECK(y.dtype() == bj::float64);
    const bj::Shape y_ex(std::vector<std::int64_t>(y.shape().begin() + 1, y.shape().end()));
    const std::int64_t n_y = product(y_ex);
    const std::int64_t per = n_y * n_x;

    bj::JacobianOptions fwd, rev;
    fwd.mode = bj::JacobianMode::forward;
    rev.mode = bj::JacobianMode::reverse;
    const auto jf_t = tape.batch_jacobian(y, x, fwd);
    const auto jr_t = tape.batch_jacobian(y, x, rev);
    REQUIRE(jf_t.has_value());
    REQUIRE(jr_t.has_value());
    const bj::Shape want_shape = concat(with_batch(b, y_ex), c.example);
    CHECK(jf_t->shape() == want_shape);
    CHECK(jr_t->shape() == want_shape);
    CHECK(jf_t->dtype() == bj::float64);
    CHECK(jr_t->dtype() == bj::float64);
    check_deferred(c, tape, x, y, Context(bj::float64, b));
    if (jf_t->shape() != want_shape || jr_t->shape() != want_shape) continue;
    const auto jf = values(*jf_t), jr = values(*jr_t);

    // (a) forward == reverse.
    check_examples("(a) forward vs reverse", jf, jr, b, per, c.tol, 1e-3);

    // (b) central differences, one example at a time; (c) jacobian of each
    // example recorded alone.
    std::vector<double> fd(static_cast<std::size_t>(b * per));
    std::vector<double> loop(static_cast<std::size_t>(b * per));
    for (std::int64_t i = 0; i < b; ++i) {
      const Context ctx(bj::float64, b, i);
      const std::vector<double> xi(xv.begin() + i * n_x, xv.begin() + (i + 1) * n_x);
      const bj::Shape xi_shape = with_batch(1, c.example);
      if (c.finite_differences) {
        const auto fd_i = central_differences(
            [&](const std::vector<double>& v) {
              auto y_i = values(c.f(bj::constant(v, xi_shape), ctx));
              REQUIRE(static_cast<std::int64_t>(y_i.size()) == n_y);
              return y_i;
            },
            xi, c.fd_step);
        std::copy(fd_i.begin(), fd_i.end(), fd.begin() + i * per);
      }
      bj::GradientTape one;
      const bj::Tensor x1 = bj::constant(xi, xi_shape);
      one.watch(x1);
      const bj::Tensor y1 = c.f(x1, ctx);
      const auto j1 = one.jacobian(y1, x1);
      REQUIRE(j1.has_value());
      CHECK(j1->shape() == concat(with_batch(1, y_ex), xi_shape));
      const auto j1v = values(*j1);
      REQUIRE(static_cast<std::int64_t>(j1v.size()) == per);
      std::copy(j1v.begin(), j1v.end(), loop.begin() + i * per);
    }
    if (c.finite_differences) check_examples("(b) forward vs finite differences", jf, fd, b, per, c.fd_tol, 1.0);
    check_examples("(c) forward vs per-example jacobian", jf, loop, b, per, c.tol, 1e-3);

    // (d) the dot-product test <J u, w> = <u, J^T w>.
    const auto u = random_values(rng, b * n_x, -1.0, 1.0);
    const auto w = random_values(rng, b * n_y, -1.0, 1.0);
    double lhs = 0, rhs = 0, scale = 0;
    for (std::int64_t i = 0; i < b; ++i)
      for (std::int64_t r = 0; r < n_y; ++r)
        for (std::int64_t col = 0; col < n_x; ++col) {
          const std::size_t e = static_cast<std::size_t>(i * per + r * n_x + col);
          const double wu = w[i * n_y + r] * u[i * n_x + col];
          lhs += jf[e] * wu;
          rhs += jr[e] * wu;
          scale += std::abs(jf[e] * wu);
        }
    INFO("(d) <J u, w> = " << lhs << ", <u, J^T w> = " << rhs);
    CHECK(std::abs(lhs - rhs) <= c.tol * std::max(scale, 1e-3));
  }
}

void check_float32(const Case& c) {
  const std::int64_t n_x = product(c.example);
  for (const std::int64_t b : c.f32_batches) {
    INFO(c.name << " [float32, batch " << b << "]");
    std::mt19937_64 rng(mix(c.seed + 17, static_cast<std::uint64_t>(b)));
    auto xv = random_values(rng, b * n_x, c.lo, c.hi);
    for (auto& v : xv) v = round_float(v);
    const std::vector<float> xf(xv.begin(), xv.end());
    const bj::Shape xs = with_batch(b, c.example);
    const bj::Tensor x64 = bj::constant(xv, xs);
    const bj::Tensor x32 = bj::constant(xf, xs);
    REQUIRE(x32.dtype() == bj::float32);

    bj::GradientTape t64;
    t64.watch(x64);
    const bj::Tensor y64 = c.f(x64, Context(bj::float64, b, std::nullopt, true));
    bj::JacobianOptions fwd, rev;
    fwd.mode = bj::JacobianMode::forward;
    rev.mode = bj::JacobianMode::reverse;
    const auto j64 = t64.batch_jacobian(y64, x64, fwd);
    REQUIRE(j64.has_value());

    bj::GradientTape t32(bj::TapeOptions{.persistent = true});
    t32.watch(x32);
    const bj::Tensor y32 = c.f(x32, Context(bj::float32, b));
    if (y32.id() != x32.id()) CHECK(y32.impl().deferred());
    CHECK(y32.dtype() == bj::float32);
    REQUIRE(y32.shape() == y64.shape());
    const auto jf = t32.batch_jacobian(y32, x32, fwd);
    const auto jr = t32.batch_jacobian(y32, x32, rev);
    REQUIRE(jf.has_value());
    REQUIRE(jr.has_value());
    CHECK(jf->dtype() == bj::float32);
    CHECK(jr->dtype() == bj::float32);
    check_deferred(c, t32, x32, y32, Context(bj::float32, b));
    REQUIRE(jf->shape() == j64->shape());
    REQUIRE(jr->shape() == j64->shape());

    const std::int64_t per = j64->num_elements() / std::max<std::int64_t>(b, 1);
    const auto want = values(*j64);
    check_examples("float32 forward vs float64", values(*jf), want, b, per, c.f32_tol, 1e-3);
    check_examples("float32 reverse vs float64", values(*jr), want, b, per, c.f32_tol, 1e-3);
    const std::int64_t n_y = y64.num_elements() / std::max<std::int64_t>(b, 1);
    check_examples("float32 values vs float64", values(y32), values(y64), b, n_y, c.f32_tol, 1e-3);
  }
}

void check_at_values(const std::string& what, const PointFn& f, const bj::Tensor& x,
                     const bj::Tensor& q, std::span<const double> want, double rtol) {
  INFO(what << " [" << (x.dtype() == bj::float32 ? "float32" : "float64") << ", source "
                << x.shape() << "]");
  const std::int64_t b = x.shape()[0];
  REQUIRE(b > 0);
  REQUIRE(q.shape()[0] == b);
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    bj::GradientTape tape;
    tape.watch(x);
    const auto j = tape.batch_jacobian(f(x, q), x, with_mode(mode));
    REQUIRE(j.has_value());
    check_close(values(*j), want, rtol, 0.0,
                mode == bj::JacobianMode::forward ? "batch_jacobian, forward" : "batch_jacobian, reverse");
  }
  // Each example alone, as its own [1, ...] tensors.
  const auto per = static_cast<std::ptrdiff_t>(want.size()) / b;
  auto row = [](const bj::Tensor& t, std::int64_t i) {
    bj::Axes begin(static_cast<std::size_t>(t.rank()), 0), size(static_cast<std::size_t>(t.rank()), -1);
    begin[0] = i;
    size[0] = 1;
    return bj::slice(t, begin, size);
  };
  std::vector<double> alone;
  for (std::int64_t i = 0; i < b; ++i) {
    const bj::Tensor xi = row(x, i);
    bj::GradientTape tape;
    tape.watch(xi);
    const auto j = tape.jacobian(f(xi, row(q, i)), xi);
    REQUIRE(j.has_value());
    const auto v = values(*j);
    REQUIRE(static_cast<std::ptrdiff_t>(v.size()) == per);
    alone.insert(alone.end(), v.begin(), v.end());
  }
  check_close(alone, want, rtol, 0.0, "tape.jacobian of each example alone");
}

void check_case(const Case& c) {
  // A failed REQUIRE (already reported) or an exception ends this case only.
  try {
    check_float64(c);
  } catch (const Catch::TestFailureException&) {
  } catch (const std::exception& e) {
    FAIL_CHECK(c.name << " [float64] threw: " << e.what());
  }
  try {
    check_float32(c);
  } catch (const Catch::TestFailureException&) {
  } catch (const std::exception& e) {
    FAIL_CHECK(c.name << " [float32] threw: " << e.what());
  }
}

std::vector<bj::JacobianOptions> options(const OptionGrid& grid) {
  std::vector<bj::JacobianOptions> all;
  for (bj::JacobianMode mode : grid.modes)
    for (bool pfor : grid.pfor)
      for (const auto& pi : grid.parallel_iterations)
        for (const auto& threads : grid.max_threads) {
          bj::JacobianOptions o;
          o.mode = mode;
          o.experimental_use_pfor = pfor;
          o.parallel_iterations = pi;
          o.max_threads = threads;
          all.push_back(o);
        }
  return all;
}

std::string describe(const bj::JacobianOptions& o) {
  std::ostringstream os;
  os << "mode " << static_cast<int>(o.mode) << ", pfor " << o.experimental_use_pfor
     << ", parallel_iterations " << (o.parallel_iterations ? std::to_string(*o.parallel_iterations) : "unset")
     << ", max_threads " << (o.max_threads ? std::to_string(*o.max_threads) : "unset");
  return os.str();
}

}  // namespace check
