// Validates the hand-written baselines before they are trusted as the yardstick:
// the scalar references against central differences of their own values, and
// the fast kernels against the references (WORKLOADS.md's tolerances), at the
// benchmark sizes and at awkward ones. `--time` also prints the fast kernels'
// median time on 1 thread. Exits nonzero on any failure.
#include "analytic.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace bjbench;

int failures = 0;

void report(const std::string& what, double err, double tol) {
  const bool ok = err < tol;
  std::printf("%-4s %-58s max rel err %.3g (tol %.0e)\n", ok ? "ok" : "FAIL", what.c_str(), err,
              tol);
  if (!ok) ++failures;
}

template <class T>
double rel_error(const std::vector<T>& got, const std::vector<T>& want) {
  return max_rel_error<T>(got, want);
}

// Central differences of f: R^n -> R^m at a few examples of x, against jac.
template <class F>
double fd_error(F&& f, const double* x, std::int64_t b, int n, int m, const double* jac) {
  double worst = 0;
  for (std::int64_t i : {std::int64_t{0}, std::int64_t{1}, b / 3, b - 1}) {
    std::vector<double> xi(x + i * n, x + (i + 1) * n), yp(m), ym(m);
    for (int j = 0; j < n; ++j) {
      const double step = 1e-5 * std::max(1.0, std::abs(xi[j]));
      const double keep = xi[j];
      xi[j] = keep + step;
      f(xi.data(), yp.data());
      xi[j] = keep - step;
      f(xi.data(), ym.data());
      xi[j] = keep;
      for (int r = 0; r < m; ++r) {
        const double fd = (yp[r] - ym[r]) / (2 * step);
        const double exact = jac[(i * m + r) * n + j];
        worst = std::max(worst, std::abs(fd - exact) / (1 + std::abs(exact)));
      }
    }
  }
  return worst;
}

// Runs `kernel(x, b, jac)` with the output at `offset` elements past a 64-byte
// boundary (0: the streaming path; 1: the plain-store path), on `threads` threads.
template <class T, class Kernel>
std::vector<T> run_fast(Kernel&& kernel, const T* x, std::int64_t b, int n, int m, int offset,
                        int threads) {
  AlignedVector<T> buf(static_cast<std::size_t>(b * m * n + offset), T(-7));
  T* jac = buf.data() + offset;
  split_batch(b, threads, 64, [&](std::int64_t begin, std::int64_t end) {
    kernel(x + begin * n, end - begin, jac + begin * m * n);
  });
  return std::vector<T>(jac, jac + b * m * n);
}

template <class T>
void check_mlp(const std::vector<std::int64_t>& sizes) {
  const char* name = sizeof(T) == 8 ? "W2 f64" : "W2 f32";
  const MlpWeights<T> w = mlp_weights<T>();
  auto fast = [&](const T* x, std::int64_t b, T* jac) { mlp_jacobian(w, x, b, jac); };
  for (std::int64_t b : sizes) {
    const AlignedVector<T> x = default_inputs<T>(b, w2::n);
    std::vector<T> ref(static_cast<std::size_t>(b * w2::m * w2::n));
    mlp_jacobian_ref(w, x.data(), b, ref.data());
    for (int offset : {0, 1}) {
      for (int threads : {1, 2}) {
        const auto got = run_fast<T>(fast, x.data(), b, w2::n, w2::m, offset, threads);
        report(std::string(name) + " fast vs ref, b=" + std::to_string(b) +
                   (offset ? " unaligned" : " aligned") + ", threads=" + std::to_string(threads),
               rel_error(got, ref), tolerance<T>());
      }
    }
  }
}

template <class F>
double median_ms(F&& f, int runs = 7) {
  std::vector<double> ms;
  f();  // warm-up: page in the output
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void time_fast() {
  std::printf("\nfast analytic kernels, 1 thread, median of 7 (output preallocated):\n");
  {
    const auto x = default_inputs<double>(w1::batch, w1::n);
    AlignedVector<double> jac(static_cast<std::size_t>(w1::batch * w1::m * w1::n));
    std::printf("  W1 square   f64 b=%-6lld %8.2f ms\n", static_cast<long long>(w1::batch),
                median_ms([&] { square_jacobian(x.data(), w1::batch, jac.data()); }));
  }
  auto mlp = [](auto zero) {
    using T = decltype(zero);
    const auto w = mlp_weights<T>();
    const auto x = default_inputs<T>(w2::batch, w2::n);
    AlignedVector<T> jac(static_cast<std::size_t>(w2::batch * w2::m * w2::n));
    std::printf("  W2 mlp      %s b=%-6lld %8.2f ms\n", sizeof(T) == 8 ? "f64" : "f32",
                static_cast<long long>(w2::batch),
                median_ms([&] { mlp_jacobian(w, x.data(), w2::batch, jac.data()); }));
  };
  mlp(0.0f);
  mlp(0.0);
  {
    const auto x = kinetics_inputs(w3::batch);
    AlignedVector<double> jac(static_cast<std::size_t>(w3::batch * w3::m * w3::n));
    std::printf("  W3 kinetics f64 b=%-6lld %8.2f ms\n", static_cast<long long>(w3::batch),
                median_ms([&] { kinetics_jacobian(x.data(), w3::batch, jac.data()); }));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // ---- the seed's literal case
  {
    const std::vector<double> x = {1, 2, 3, 4}, want = {2, 0, 0, 4, 6, 0, 0, 8};
    std::vector<double> jac(8);
    square_jacobian_ref(x.data(), 2, 2, jac.data());
    report("seed: x*x at [[1,2],[3,4]] ref", rel_error(jac, want), 1e-15);
  }

  // ---- the references against central differences (double)
  {
    constexpr std::int64_t b = 1000;
    const auto x = default_inputs<double>(b, w1::n);
    std::vector<double> jac(b * w1::m * w1::n);
    square_jacobian_ref(x.data(), b, w1::n, jac.data());
    report("W1 ref vs central differences",
           fd_error([](const double* xi, double* y) { square_ref(xi, 1, w1::n, y); }, x.data(), b,
                    w1::n, w1::m, jac.data()),
           1e-7);
  }
  {
    constexpr std::int64_t b = 1000;
    const auto w = mlp_weights<double>();
    const auto x = default_inputs<double>(b, w2::n);
    std::vector<double> jac(b * w2::m * w2::n);
    mlp_jacobian_ref(w, x.data(), b, jac.data());
    report("W2 ref vs central differences",
           fd_error([&](const double* xi, double* y) { mlp_ref(w, xi, 1, y); }, x.data(), b,
                    w2::n, w2::m, jac.data()),
           1e-7);
  }
  {
    constexpr std::int64_t b = 1000;
    const auto x = kinetics_inputs(b);
    std::vector<double> jac(b * w3::m * w3::n);
    kinetics_jacobian_ref(x.data(), b, jac.data());
    report("W3 ref vs central differences",
           fd_error([](const double* xi, double* y) { kinetics_ref(xi, 1, y); }, x.data(), b,
                    w3::n, w3::m, jac.data()),
           1e-7);
  }

  // ---- the fast kernels against the references: benchmark sizes and tails
  {
    for (std::int64_t b : {w1::batch, std::int64_t{1}, std::int64_t{7}, std::int64_t{133}}) {
      const auto x = default_inputs<double>(b, w1::n);
      std::vector<double> ref(static_cast<std::size_t>(b * w1::m * w1::n));
      square_jacobian_ref(x.data(), b, w1::n, ref.data());
      for (int offset : {0, 1}) {
        for (int threads : {1, 2}) {
          const auto got =
              run_fast<double>(square_jacobian, x.data(), b, w1::n, w1::m, offset, threads);
          report("W1 fast vs ref, b=" + std::to_string(b) + (offset ? " unaligned" : " aligned") +
                     ", threads=" + std::to_string(threads),
                 rel_error(got, ref), 1e-15);
        }
      }
    }
  }
  check_mlp<float>({w2::batch, 1, 3, 129});
  check_mlp<double>({w2::batch, 1, 3, 129});
  {
    for (std::int64_t b : {w3::batch, std::int64_t{1}, std::int64_t{7}, std::int64_t{9},
                           std::int64_t{1003}}) {
      const auto x = kinetics_inputs(b);
      std::vector<double> ref(static_cast<std::size_t>(b * w3::m * w3::n));
      kinetics_jacobian_ref(x.data(), b, ref.data());
      for (int offset : {0, 1}) {
        for (int threads : {1, 2}) {
          const auto got =
              run_fast<double>(kinetics_jacobian, x.data(), b, w3::n, w3::m, offset, threads);
          report("W3 fast vs ref, b=" + std::to_string(b) + (offset ? " unaligned" : " aligned") +
                     ", threads=" + std::to_string(threads),
                 rel_error(got, ref), 1e-10);
        }
      }
    }
  }

  if (argc > 1 && std::strcmp(argv[1], "--time") == 0) time_fast();

  std::printf("\n%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
