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

// The fast kernel against the scalar reference at each batch size, with the
// output aligned (the streaming path) and unaligned, on 1 and 2 threads.
// inputs(b) -> AlignedVector<T>; fast and ref: (x, b, jac).
template <class T, class Inputs, class Fast, class Ref>
void check_fast(const std::string& name, Inputs&& inputs, Fast&& fast, Ref&& ref, int n, int m,
                const std::vector<std::int64_t>& sizes, double tol) {
  for (std::int64_t b : sizes) {
    const AlignedVector<T> x = inputs(b);
    std::vector<T> want(static_cast<std::size_t>(b * m * n));
    ref(x.data(), b, want.data());
    for (int offset : {0, 1}) {
      for (int threads : {1, 2}) {
        const auto got = run_fast<T>(fast, x.data(), b, n, m, offset, threads);
        report(name + " fast vs ref, b=" + std::to_string(b) +
                   (offset ? " unaligned" : " aligned") + ", threads=" + std::to_string(threads),
               rel_error(got, want), tol);
      }
    }
  }
}

// A Jacobian (fast kernel or reference, of b = 1000 examples) against central
// differences of the double-precision forward function f(x_i, y_i).
template <class T, class F>
void check_fd(const std::string& what, F&& f, const AlignedVector<T>& x, int n, int m,
              const std::vector<T>& jac, double tol) {
  const std::vector<double> x64(x.begin(), x.end()), jac64(jac.begin(), jac.end());
  const auto b = static_cast<std::int64_t>(x.size()) / n;
  report(what + " vs central differences", fd_error(f, x64.data(), b, n, m, jac64.data()), tol);
}

template <class T, class Kernel>
std::vector<T> jacobian_of(Kernel&& kernel, const AlignedVector<T>& x, int n, int m) {
  const auto b = static_cast<std::int64_t>(x.size()) / n;
  return run_fast<T>(kernel, x.data(), b, n, m, 0, 1);
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
  auto time_one = [](const char* name, auto x, std::int64_t b, int n, int m, auto kernel) {
    using T = typename decltype(x)::value_type;
    AlignedVector<T> jac(static_cast<std::size_t>(b * m * n));
    std::printf("  %-15s b=%-6lld %8.2f ms\n", name, static_cast<long long>(b),
                median_ms([&] { kernel(x.data(), b, jac.data()); }));
  };
  time_one("W3 kinetics f64", kinetics_inputs(w3::batch), w3::batch, w3::n, w3::m,
           kinetics_jacobian);
  time_one("W8 neohookean", neohookean_inputs(w8::batch), w8::batch, w8::n, w8::m,
           neohookean_jacobian);
  const auto params = layernorm_params<float>();
  time_one("W9 ln-gelu f32", layernorm_inputs<float>(w9::batch), w9::batch, w9::n, w9::m,
           [&](const float* x, std::int64_t b, float* j) { layernorm_gelu_jacobian(params, x, b, j); });
  time_one("W10 lj8", lj_inputs(w10::batch), w10::batch, w10::n, w10::m, lj_jacobian);
  time_one("W11 rk4", default_inputs<double>(w11::batch, w11::n), w11::batch, w11::n, w11::m,
           rk4_jacobian);
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

  // ---- references, then the fast kernels, against central differences (b = 1000)
  // Step h = 1e-5 max(1, |x|): truncation h^2 |f'''| / 6 and rounding ~1e-11 |f|
  // stay below 1e-7 relative for these smooth functions; W10's r^-14 terms have
  // third derivatives of ~1e5 at r ~ 1, so it gets 1e-6 (6e-8 measured; its exact Jacobian is
  // checked to 1e-10 against the reference below). W9's fast kernel is float32,
  // so it is held to the float32 tolerance against the double forward function.
  constexpr std::int64_t fd_b = 1000;
  {
    const auto x = default_inputs<double>(fd_b, w1::n);
    auto f = [](const double* xi, double* y) { square_ref(xi, 1, w1::n, y); };
    std::vector<double> jac(fd_b * w1::m * w1::n);
    square_jacobian_ref(x.data(), fd_b, w1::n, jac.data());
    check_fd("W1 ref", f, x, w1::n, w1::m, jac, 1e-7);
  }
  {
    const auto w = mlp_weights<double>();
    const auto x = default_inputs<double>(fd_b, w2::n);
    auto f = [&](const double* xi, double* y) { mlp_ref(w, xi, 1, y); };
    std::vector<double> jac(fd_b * w2::m * w2::n);
    mlp_jacobian_ref(w, x.data(), fd_b, jac.data());
    check_fd("W2 ref", f, x, w2::n, w2::m, jac, 1e-7);
  }
  {
    const auto x = kinetics_inputs(fd_b);
    auto f = [](const double* xi, double* y) { kinetics_ref(xi, 1, y); };
    std::vector<double> jac(fd_b * w3::m * w3::n);
    kinetics_jacobian_ref(x.data(), fd_b, jac.data());
    check_fd("W3 ref", f, x, w3::n, w3::m, jac, 1e-7);
  }
  {
    using namespace w8;
    const auto x = neohookean_inputs(fd_b);
    auto f = [](const double* xi, double* y) { neohookean_ref(xi, 1, y); };
    std::vector<double> jac(fd_b * m * n);
    neohookean_jacobian_ref(x.data(), fd_b, jac.data());
    check_fd("W8 ref", f, x, n, m, jac, 1e-7);
    check_fd("W8 fast", f, x, n, m, jacobian_of<double>(neohookean_jacobian, x, n, m), 1e-7);
  }
  {
    using namespace w9;
    const auto p32 = layernorm_params<float>();
    const LayerNormParams<double> p64{{p32.gamma.begin(), p32.gamma.end()},
                                      {p32.beta.begin(), p32.beta.end()}};
    auto f = [&](const double* xi, double* y) { layernorm_gelu_ref(p64, xi, 1, y); };
    const auto x64 = layernorm_inputs<double>(fd_b);
    std::vector<double> jac(fd_b * m * n);
    layernorm_gelu_jacobian_ref(p64, x64.data(), fd_b, jac.data());
    check_fd("W9 ref (double)", f, x64, n, m, jac, 1e-7);
    const auto x = layernorm_inputs<float>(fd_b);
    auto fast = [&](const float* xi, std::int64_t b, float* j) {
      layernorm_gelu_jacobian(p32, xi, b, j);
    };
    check_fd("W9 fast (float32)", f, x, n, m, jacobian_of<float>(fast, x, n, m),
             tolerance<float>());
  }
  {
    using namespace w10;
    const auto x = lj_inputs(fd_b);
    auto f = [](const double* xi, double* y) { lj_ref(xi, 1, y); };
    std::vector<double> jac(fd_b * m * n);
    lj_jacobian_ref(x.data(), fd_b, jac.data());
    check_fd("W10 ref", f, x, n, m, jac, 1e-6);
    check_fd("W10 fast", f, x, n, m, jacobian_of<double>(lj_jacobian, x, n, m), 1e-6);
  }
  {
    using namespace w11;
    const auto x = default_inputs<double>(fd_b, n);
    auto f = [](const double* xi, double* y) { rk4_ref(xi, 1, y); };
    std::vector<double> jac(fd_b * m * n);
    rk4_jacobian_ref(x.data(), fd_b, jac.data());
    check_fd("W11 ref", f, x, n, m, jac, 1e-7);
    check_fd("W11 fast", f, x, n, m, jacobian_of<double>(rk4_jacobian, x, n, m), 1e-7);
  }

  // ---- the fast kernels against the references: benchmark sizes and tails
  using Sizes = std::vector<std::int64_t>;
  check_fast<double>(
      "W1", [](std::int64_t b) { return default_inputs<double>(b, w1::n); }, square_jacobian,
      [](const double* x, std::int64_t b, double* j) { square_jacobian_ref(x, b, w1::n, j); },
      w1::n, w1::m, Sizes{w1::batch, 1, 7, 133}, 1e-15);
  auto check_mlp = [](auto zero) {
    using T = decltype(zero);
    const MlpWeights<T> w = mlp_weights<T>();
    check_fast<T>(
        sizeof(T) == 8 ? "W2 f64" : "W2 f32",
        [](std::int64_t b) { return default_inputs<T>(b, w2::n); },
        [&](const T* x, std::int64_t b, T* j) { mlp_jacobian(w, x, b, j); },
        [&](const T* x, std::int64_t b, T* j) { mlp_jacobian_ref(w, x, b, j); }, w2::n, w2::m,
        Sizes{w2::batch, 1024, 1, 3, 129}, tolerance<T>());
  };
  check_mlp(0.0f);
  check_mlp(0.0);
  check_fast<double>("W3", kinetics_inputs, kinetics_jacobian, kinetics_jacobian_ref, w3::n,
                     w3::m, Sizes{w3::batch, 1024, 1, 7, 9, 1003}, 1e-10);
  check_fast<double>("W8", neohookean_inputs, neohookean_jacobian, neohookean_jacobian_ref, w8::n,
                     w8::m, Sizes{w8::batch, 1, 7, 9, 1003}, 1e-10);
  {
    const auto p = layernorm_params<float>();
    check_fast<float>(
        "W9 f32", layernorm_inputs<float>,
        [&](const float* x, std::int64_t b, float* j) { layernorm_gelu_jacobian(p, x, b, j); },
        [&](const float* x, std::int64_t b, float* j) { layernorm_gelu_jacobian_ref(p, x, b, j); },
        w9::n, w9::m, Sizes{w9::batch, 1, 3, 129}, tolerance<float>());
  }
  check_fast<double>("W10", lj_inputs, lj_jacobian, lj_jacobian_ref, w10::n, w10::m,
                     Sizes{w10::batch, 1, 7, 9, 1003}, 1e-10);
  check_fast<double>(
      "W11", [](std::int64_t b) { return default_inputs<double>(b, w11::n); }, rk4_jacobian,
      rk4_jacobian_ref, w11::n, w11::m, Sizes{w11::batch, 1, 7, 9, 1003}, 1e-10);

  if (argc > 1 && std::strcmp(argv[1], "--time") == 0) time_fast();

  std::printf("\n%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
