// per_sample_gradients: the gradient norm of every sample's loss with
// respect to an MLP's parameters, as differentially private SGD (clipping
// each sample's gradient) and data-attribution methods need.
//
// The trick that makes it a batch Jacobian: give every sample its own copy
// of the parameters, theta [b, P] (one row per sample, all equal), so that
// sample i's loss depends only on row i. batch_jacobian(loss [b, 1], theta)
// is then [b, 1, P]: each sample's gradient. The network reads its weights
// from theta's rows as per-example matrices (matmul of [b, h, n] by [b, n, 1]).
//
// Checked: the per-sample gradients sum to tape.gradient of the summed loss
// (the ordinary batch gradient), and three samples' gradients agree with
// central differences.
//
// Usage: per_sample_gradients [samples]   (default 4096)
// Exit status: 0 if every check passes, 1 if one fails, 2 on an exception.
#include <batchjac/batchjac.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

namespace bj = batchjac;

namespace {
constexpr std::int64_t n = 8, h = 16, m = 2;                 // inputs, hidden units, outputs
constexpr std::int64_t n_params = h * n + h + m * h + m;   // W1, c1, W2, c2: 178

// The squared-error loss of each sample: theta [rows, P], x [rows, n], y [rows, m] -> [rows, 1].
bj::Tensor loss(const bj::Tensor& theta, const bj::Tensor& x, const bj::Tensor& y) {
  const std::int64_t rows = x.shape()[0];
  auto part = [&](std::int64_t begin, std::int64_t size) { return bj::slice(theta, {0, begin}, {-1, size}); };
  const bj::Tensor w1 = bj::reshape(part(0, h * n), {rows, h, n});
  const bj::Tensor c1 = part(h * n, h);
  const bj::Tensor w2 = bj::reshape(part(h * n + h, m * h), {rows, m, h});
  const bj::Tensor c2 = part(h * n + h + m * h, m);
  const bj::Tensor a = bj::tanh(bj::reshape(bj::matmul(w1, bj::reshape(x, {rows, n, 1})), {rows, h}) + c1);
  const bj::Tensor out = bj::reshape(bj::matmul(w2, bj::reshape(a, {rows, h, 1})), {rows, m}) + c2;
  return bj::reduce_sum(bj::square(out - y), {1}, /*keepdims=*/true);
}
}  // namespace

int main(int argc, char** argv) {
  try {
    const std::int64_t b = argc > 1 ? std::atoll(argv[1]) : 4096;
    std::vector<double> params(n_params), xs(static_cast<std::size_t>(b * n)), ys(static_cast<std::size_t>(b * m));
    for (std::int64_t k = 0; k < n_params; ++k) params[static_cast<std::size_t>(k)] = 0.4 * std::cos(0.37 * double(k) + 0.1);
    for (std::int64_t i = 0; i < b * n; ++i) xs[static_cast<std::size_t>(i)] = std::sin(0.01 * double(i) + 0.3);
    for (std::int64_t i = 0; i < b * m; ++i) ys[static_cast<std::size_t>(i)] = 0.5 * std::cos(0.02 * double(i));
    const bj::Tensor x = bj::constant(xs, {b, n}), y = bj::constant(ys, {b, m});
    const bj::Tensor theta = bj::constant(params, {1, n_params});

    const auto start = std::chrono::steady_clock::now();
    const bj::Tensor rows = bj::broadcast_to(theta, {b, n_params});  // each sample's own copy
    bj::GradientTape tape;
    tape.watch(rows);
    const bj::Tensor l = loss(rows, x, y);
    const bj::Tensor grads = bj::reshape(*tape.batch_jacobian(l, rows), {b, n_params});  // [b, P]
    const bj::Tensor norms = bj::sqrt(bj::reduce_sum(bj::square(grads), {1}));         // [b]
    const auto nv = norms.to_vector<double>();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%lld samples, %lld parameters: per-sample gradient norms in %.2f ms\n", static_cast<long long>(b),
                static_cast<long long>(n_params), 1e3 * seconds);
    std::printf("norms: first %.4f, largest %.4f, smallest %.4f\n", nv[0], *std::max_element(nv.begin(), nv.end()),
                *std::min_element(nv.begin(), nv.end()));

    // Check 1: the per-sample gradients sum to the batch gradient.
    bj::GradientTape whole;
    const bj::Tensor shared = theta;
    whole.watch(shared);
    const bj::Tensor total = bj::reduce_sum(loss(bj::broadcast_to(shared, {b, n_params}), x, y));
    const auto g_batch = whole.gradient(total, shared)->to_vector<double>();
    const auto g_sum = bj::reduce_sum(grads, {0}).to_vector<double>();
    double worst_sum = 0;
    for (std::int64_t k = 0; k < n_params; ++k)
      worst_sum = std::max(worst_sum, std::abs(g_sum[static_cast<std::size_t>(k)] - g_batch[static_cast<std::size_t>(k)]) /
                                          (1 + std::abs(g_batch[static_cast<std::size_t>(k)])));
    // Check 2: three samples against central differences of their loss alone.
    double worst_fd = 0;
    const auto gv = grads.to_vector<double>();
    for (std::int64_t i : {std::int64_t{0}, b / 2, b - 1}) {
      const bj::Tensor xi = bj::slice(x, {i, 0}, {1, n}), yi = bj::slice(y, {i, 0}, {1, m});
      for (std::int64_t k = 0; k < n_params; ++k) {
        std::vector<double> plus = params, minus = params;
        const double step = 1e-6;
        plus[static_cast<std::size_t>(k)] += step, minus[static_cast<std::size_t>(k)] -= step;
        const double fd = (loss(bj::constant(plus, {1, n_params}), xi, yi).at({0, 0}) -
                           loss(bj::constant(minus, {1, n_params}), xi, yi).at({0, 0})) / (2 * step);
        worst_fd = std::max(worst_fd, std::abs(fd - gv[static_cast<std::size_t>(i * n_params + k)]) / (1 + std::abs(fd)));
      }
    }
    std::printf("sum of per-sample gradients vs batch gradient: %.2e; vs central differences: %.2e\n", worst_sum, worst_fd);
    const bool ok = worst_sum < 1e-10 && worst_fd < 1e-7;
    std::printf("%s\n", ok ? "per_sample_gradients: ok" : "per_sample_gradients: FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "per_sample_gradients: %s\n", e.what());
    return 2;
  }
}
