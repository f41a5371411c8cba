// demo: the seed's batch_jacobian, then the W2 mlp workload of WORKLOADS.md,
// timed and checked against its analytic Jacobian J = W2 diag(1 - a^2) W1.
//
// Usage: demo [--quick]   (--quick: one timed run instead of five)
// Exit status: 0 if every result is right, 1 if one is wrong, 2 on an exception.
#include <batchjac/batchjac.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace bj = batchjac;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The seed: with tf.GradientTape() as g: x = [[1, 2], [3, 4]]; y = x * x.
bool run_seed() {
  bj::GradientTape g;
  bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}}, bj::float32);
  g.watch(x);
  bj::Tensor y = x * x;
  std::optional<bj::Tensor> jac = g.batch_jacobian(y, x);

  if (!jac) {
    std::cout << "seed: batch_jacobian returned nullopt\n";
    return false;
  }
  std::cout << "seed: batch_jacobian(x * x, x) =\n" << *jac << "\n\n";
  const std::vector<float> expected{2, 0, 0, 4, 6, 0, 0, 8};
  const bool ok = jac->shape() == bj::Shape{2, 2, 2} && jac->dtype() == bj::float32 &&
                  jac->to_vector<float>() == expected;
  if (!ok) std::cout << "seed: expected [[[2, 0], [0, 4]], [[6, 0], [0, 8]]]\n";
  return ok;
}

// W2 mlp: n inputs -> h tanh units -> m outputs, shared weights, b examples.
struct Mlp {
  static constexpr std::int64_t b = 8192, n = 32, h = 64, m = 32;
  std::vector<double> x;   // [b][n]
  std::vector<double> w1;  // [h][n]
  std::vector<double> c1;  // [h]
  std::vector<double> w2;  // [m][h]
  std::vector<double> c2;  // [m]
};

Mlp make_mlp() {
  Mlp p;
  p.x.resize(Mlp::b * Mlp::n);
  for (std::int64_t i = 0; i < Mlp::b; ++i)
    for (std::int64_t j = 0; j < Mlp::n; ++j)
      p.x[i * Mlp::n + j] = 0.5 * std::sin(0.001 * i + 0.7 * j + 0.3);
  p.w1.resize(Mlp::h * Mlp::n);
  for (std::int64_t k = 0; k < Mlp::h; ++k)
    for (std::int64_t j = 0; j < Mlp::n; ++j)
      p.w1[k * Mlp::n + j] = std::cos(0.13 * k + 0.29 * j + 0.1) / std::sqrt(double(Mlp::n));
  p.c1.resize(Mlp::h);
  for (std::int64_t k = 0; k < Mlp::h; ++k) p.c1[k] = 0.1 * std::sin(0.5 * k);
  p.w2.resize(Mlp::m * Mlp::h);
  for (std::int64_t r = 0; r < Mlp::m; ++r)
    for (std::int64_t k = 0; k < Mlp::h; ++k)
      p.w2[r * Mlp::h + k] = std::cos(0.17 * r + 0.23 * k + 0.2) / std::sqrt(double(Mlp::h));
  p.c2.resize(Mlp::m);
  for (std::int64_t r = 0; r < Mlp::m; ++r) p.c2[r] = 0.1 * std::cos(0.5 * r);
  return p;
}

// Row-major transpose of a [rows][cols] matrix.
std::vector<double> transposed(const std::vector<double>& a, std::int64_t rows, std::int64_t cols) {
  std::vector<double> t(a.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) t[c * rows + r] = a[r * cols + c];
  return t;
}

// max |J - J_ref| / (1 + |J_ref|) over the batch, J_ref = W2 diag(1 - a^2) W1
// computed with plain loops, one example at a time.
double max_error(const Mlp& p, std::span<const double> jac) {
  constexpr auto b = Mlp::b, n = Mlp::n, h = Mlp::h, m = Mlp::m;
  std::vector<double> d(h);
  double err = 0;
  for (std::int64_t i = 0; i < b; ++i) {
    for (std::int64_t k = 0; k < h; ++k) {
      double z = p.c1[k];
      for (std::int64_t j = 0; j < n; ++j) z += p.w1[k * n + j] * p.x[i * n + j];
      const double a = std::tanh(z);
      d[k] = 1 - a * a;
    }
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t j = 0; j < n; ++j) {
        double ref = 0;
        for (std::int64_t k = 0; k < h; ++k) ref += p.w2[r * h + k] * d[k] * p.w1[k * n + j];
        const double got = jac[static_cast<std::size_t>((i * m + r) * n + j)];
        err = std::max(err, std::abs(got - ref) / (1 + std::abs(ref)));
        if (std::isnan(got)) err = kInf;
      }
  }
  return err;
}

bool run_mlp(int repetitions) {
  const Mlp p = make_mlp();
  constexpr auto b = Mlp::b, n = Mlp::n, h = Mlp::h, m = Mlp::m;
  const bj::Tensor w1t = bj::constant(transposed(p.w1, h, n), bj::Shape{n, h});
  const bj::Tensor w2t = bj::constant(transposed(p.w2, m, h), bj::Shape{h, m});
  const bj::Tensor c1 = bj::constant(p.c1, bj::Shape{h});
  const bj::Tensor c2 = bj::constant(p.c2, bj::Shape{m});

  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  const bj::Tensor x = bj::view(p.x, bj::Shape{b, n});  // the array itself, no copy
  tape.watch(x);
  const bj::Tensor a = bj::tanh(bj::matmul(x, w1t) + c1);
  const bj::Tensor y = bj::matmul(a, w2t) + c2;  // deferred: nothing computed yet
  tape.end_recording();  // the tape is kept for the calls below: record nothing more

  std::printf("W2 mlp: float64, b=%lld, n=%lld, h=%lld, m=%lld; batch_jacobian(y, x) -> [%lld, %lld, %lld]\n",
              (long long)b, (long long)n, (long long)h, (long long)m, (long long)b, (long long)m,
              (long long)n);

  bool ok = true;
  for (const std::optional<int> threads : {std::optional<int>{}, std::optional<int>{1}}) {
    bj::JacobianOptions options;
    options.max_threads = threads;
    double best = kInf;
    std::optional<bj::Tensor> jac;
    for (int rep = 0; rep < repetitions; ++rep) {
      const auto start = std::chrono::steady_clock::now();
      jac = tape.batch_jacobian(y, x, options);
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      best = std::min(best, elapsed.count());
    }
    const bool shape_ok = jac && jac->shape() == bj::Shape{b, m, n} && jac->dtype() == bj::float64;
    const double err = shape_ok ? max_error(p, jac->data<double>()) : kInf;
    const bool this_ok = shape_ok && err <= 1e-10;
    std::printf("  %-11s %10.6f s (best of %d)  %12.0f examples/s  max |J - J_ref|/(1 + |J_ref|) = %.3g  %s\n",
                threads ? "1 thread:" : "all threads:", best, repetitions, double(b) / best, err,
                this_ok ? "ok" : "WRONG");
    ok = ok && this_ok;
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string_view(argv[1]) == "--quick";
  try {
    const bool seed_ok = run_seed();
    const bool mlp_ok = run_mlp(quick ? 1 : 5);
    return seed_ok && mlp_ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "demo: " << e.what() << '\n';
    return 2;
  }
}
