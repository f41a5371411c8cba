// Peak extra memory and time of one W2 f64 batch_jacobian call, for the
// memory rows of bench/README.md: the resident-set high-water mark is reset
// (/proc/self/clear_refs) after inputs, recording and the output buffer exist,
// so the peak above that baseline is what the call itself needed.
//
//   memory_probe <batch> [parallel_iterations|unset] [pfor 1|0] [threads]
#include "analytic.hpp"

#include <batchjac/batchjac.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <span>
#include <string>

namespace bj = batchjac;
using namespace bjbench;

namespace {
long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::strtol(line.c_str() + std::string(field).size(), nullptr, 10);
  return -1;
}
}  // namespace

int main(int argc, char** argv) {
  const std::int64_t b = argc > 1 ? std::atoll(argv[1]) : w2::batch;
  bj::JacobianOptions options;
  if (argc > 2 && std::string(argv[2]) != "unset") options.parallel_iterations = std::atoll(argv[2]);
  if (argc > 3) options.experimental_use_pfor = std::atoi(argv[3]) != 0;
  options.max_threads = argc > 4 ? std::atoi(argv[4]) : 1;

  using namespace w2;
  const auto x = default_inputs<double>(b, n);
  const auto weights = mlp_weights<double>();
  std::vector<double> w1t(n * h), w2t(h * m);
  for (int k = 0; k < h; ++k) {
    for (int j = 0; j < n; ++j) w1t[j * h + k] = weights.w1[k * n + j];
    for (int r = 0; r < m; ++r) w2t[k * m + r] = weights.w2[r * h + k];
  }
  bj::GradientTape tape({.persistent = true});
  const bj::Tensor xs = bj::constant(std::span<const double>(x.data(), x.size()), {b, n});
  tape.watch(xs);
  const bj::Tensor a = bj::tanh(bj::matmul(xs, bj::constant(w1t, {n, h})) +
                                bj::constant(std::vector<double>(weights.c1.begin(), weights.c1.end()), {h}));
  const bj::Tensor y = bj::matmul(a, bj::constant(w2t, {h, m})) +
                       bj::constant(std::vector<double>(weights.c2.begin(), weights.c2.end()), {m});
  std::vector<double> jac(static_cast<std::size_t>(b * m * n), 1.0);  // paged in

  { std::ofstream("/proc/self/clear_refs") << "5"; }  // reset the high-water mark
  const long base = status_kib("VmRSS:");
  const auto t0 = std::chrono::steady_clock::now();
  tape.batch_jacobian_into(y, xs, std::span<double>(jac), options);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const long peak = status_kib("VmHWM:");
  std::printf("b=%lld parallel_iterations=%s pfor=%d threads=%d  time_ms=%.2f  extra_peak_KiB=%ld  "
              "(baseline RSS %ld KiB, output %lld KiB)\n",
              static_cast<long long>(b), argc > 2 ? argv[2] : "unset",
              options.experimental_use_pfor ? 1 : 0, *options.max_threads, ms, peak - base, base,
              static_cast<long long>(b * m * n * 8 / 1024));
}
