// The generic derivative checker every op row runs through (JAX's
// check_jvp/check_vjp idea), and small helpers the test areas share.
//
// A case is a per-example function f: [b, x...] -> [b, y...] built from
// public ops. check_case records it under a persistent tape at several batch
// sizes around the SIMD lane counts and checks that
//   (a) batch_jacobian in forward mode == reverse mode (to `tol`, relative),
//   (b) == central finite differences of f re-evaluated eagerly on each
//       example alone (to `fd_tol`),
//   (c) == tape.jacobian of each example recorded as its own [1, x...] tensor,
//   (d) <J u, w> == <u, J^T w> for random u, w (forward J vs reverse J),
// and, for float32, that float32 Jacobians match the float64 ones.
#pragma once

#include <batchjac/batchjac.hpp>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace check {

namespace bj = batchjac;

// The constants a per-example function may use besides its input, made
// deterministically from a tag, so that the whole batch and each example
// evaluated alone see the same numbers. In float32 they are float32; with
// round_to_float they are float64 holding float32-representable values (the
// float64 reference of a float32 run).
class Context {
 public:
  Context(bj::DType dtype, std::int64_t batch, std::optional<std::int64_t> example = std::nullopt,
          bool round_to_float = false);

  bj::DType dtype() const noexcept { return dtype_; }
  // Examples in the whole batch (also when evaluating one example).
  std::int64_t batch() const noexcept { return batch_; }
  // The example evaluated alone, if any.
  std::optional<std::int64_t> example() const noexcept { return example_; }

  // A constant shared by every example, of `shape`, uniform in [lo, hi].
  bj::Tensor shared(int tag, const bj::Shape& shape, double lo = -1.0, double hi = 1.0) const;
  // A per-example constant: [batch, dims...] for the whole batch, the
  // example's own row [1, dims...] when one example is evaluated.
  bj::Tensor per_example(int tag, const bj::Shape& dims, double lo = -1.0, double hi = 1.0) const;

 private:
  bj::Tensor make(const std::vector<double>& values, const bj::Shape& shape) const;
  bj::DType dtype_;
  std::int64_t batch_;
  std::optional<std::int64_t> example_;
  bool round_;
};

// f(x, ctx): x is [rows, x...] with rows = ctx.batch(), or 1 for one example.
using Fn = std::function<bj::Tensor(const bj::Tensor& x, const Context& ctx)>;

struct Case {
  std::string name;
  Fn f;
  bj::Shape example;           // x...: the source is [b, x...]
  double lo = -1.0, hi = 1.0;  // the source's domain
  bool finite_differences = true;
  double fd_step = 1e-6;  // relative to max(1, |x|)
  double fd_tol = 1e-6;   // relative to max(1, max |J| of the example)
  double tol = 1e-12;     // (a), (c), (d): relative to max |J| of the example
  double f32_tol = 2e-4;  // float32 vs float64, relative to max |J| of the example
  // Deferred (engine) values vs eager ones, |a - b| / (1 + |b|); 0: 16
  // machine epsilons of the source's dtype.
  double value_tol = 0;
  // Around the AVX-512 lane counts: L - 1, L, 3L + 1 for L = 8 (double), and
  // 2, 4, 16 for narrower SIMD and float32.
  std::vector<std::int64_t> batches{1, 2, 4, 7, 8, 16, 25};
  std::vector<std::int64_t> f32_batches{1, 7, 15, 16, 17, 49};
  std::uint64_t seed = 1;
};

// (a)-(d) in float64 at every batch size of the case.
void check_float64(const Case& c);
// float32 forward and reverse against float64 (same float32-representable inputs).
void check_float32(const Case& c);
// Both. Exceptions are reported as failures of the case, so one broken row
// does not hide the others.
void check_case(const Case& c);

// Jacobians at chosen inputs, where finite differences mean nothing (NaN,
// infinities, zeros of pow): y = f(x, q) for x [b, x...] (watched) and a
// per-example constant q [b, q...] (f may ignore it). batch_jacobian in
// forward and reverse mode (the engine: one example per SIMD lane) and
// tape.jacobian of each example alone (the eager scalar kernels) must each
// equal `want` ([b, y..., x...] row-major): NaN exactly where it is NaN,
// infinities and zeros exactly, other entries to rtol.
using PointFn = std::function<bj::Tensor(const bj::Tensor& x, const bj::Tensor& q)>;
void check_at_values(const std::string& what, const PointFn& f, const bj::Tensor& x,
                     const bj::Tensor& q, std::span<const double> want, double rtol);

// ---- helpers ------------------------------------------------------------------

// Uniform in [lo, hi), the same on every platform.
double uniform(std::mt19937_64& rng, double lo, double hi);
std::vector<double> random_values(std::mt19937_64& rng, std::int64_t n, double lo, double hi);
bj::Tensor random_tensor(std::mt19937_64& rng, const bj::Shape& shape, double lo, double hi,
                         bj::DType dtype = bj::float64);

bj::Shape with_batch(std::int64_t b, const bj::Shape& s);
bj::Shape concat(const bj::Shape& a, const bj::Shape& b);
std::vector<double> values(const bj::Tensor& t);

// Central differences of one example: f maps x (n_x values) to n_y values;
// returns the [n_y][n_x] Jacobian, stepping x[j] by step * max(1, |x[j]|).
std::vector<double> central_differences(
    const std::function<std::vector<double>(const std::vector<double>&)>& f,
    const std::vector<double>& x, double step);

// Same shape, dtype and bytes.
bool same_bits(const bj::Tensor& a, const bj::Tensor& b);

// Default options but the mode.
inline bj::JacobianOptions with_mode(bj::JacobianMode mode) {
  bj::JacobianOptions o;
  o.mode = mode;
  return o;
}

// The options of a sweep: every combination of these values (defaults:
// one value each, the default option).
struct OptionGrid {
  std::vector<bj::JacobianMode> modes{bj::JacobianMode::automatic};
  std::vector<std::optional<std::int64_t>> parallel_iterations{std::nullopt};
  std::vector<bool> pfor{true};
  std::vector<std::optional<int>> max_threads{std::nullopt};
};
std::vector<bj::JacobianOptions> options(const OptionGrid& grid);
// "mode 1, pfor 1, parallel_iterations 2, max_threads unset", for INFO.
std::string describe(const bj::JacobianOptions& o);

// One CHECK: |got - want| <= rtol * |want| + atol everywhere (NaN equals
// only NaN); on failure reports the count and the worst element.
void check_close(std::span<const double> got, std::span<const double> want, double rtol,
                 double atol, const std::string& what);
void check_close(const bj::Tensor& got, const bj::Tensor& want, double rtol, double atol,
                 const std::string& what);

// Sets an environment variable (the engine's BATCHJAC_* switches) for one
// scope, restoring what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// Op-table coverage: each table registers the primitive names its rows
// exercise; tests/ops/test_op_list.cpp checks that every primitive has a row.
int register_ops(std::initializer_list<std::string_view> names);
const std::set<std::string>& covered_ops();

}  // namespace check
