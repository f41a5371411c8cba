// Kernel dispatch: the best instruction set of the CPU, capped by
// BATCHJAC_ARCH (ctest runs this whole executable once per cap).
#include "kernels/kernels.hpp"
#include "ops/elementwise_math.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace k = batchjac::kernels;

namespace {
std::string expected_arch() {
  const char* env = std::getenv("BATCHJAC_ARCH");
  const std::string cap = env ? env : "avx512";
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (cap == "sse42") return "sse42";
  if (cap == "avx2") return avx2 ? "avx2" : "sse42";
  return avx512 ? "avx512" : avx2 ? "avx2" : "sse42";
}
std::int64_t bytes_of(const std::string& arch) {
  return arch == "avx512" ? 64 : arch == "avx2" ? 32 : 16;
}
}  // namespace

TEST_CASE("kernel dispatch honours BATCHJAC_ARCH", "[engine][dispatch]") {
  const std::string want = expected_arch();
  INFO("BATCHJAC_ARCH=" << (std::getenv("BATCHJAC_ARCH") ? std::getenv("BATCHJAC_ARCH") : "(unset)"));
  CHECK(std::string(k::simd_kernels<double>().arch) == want);
  CHECK(std::string(k::simd_kernels<float>().arch) == want);
  CHECK(k::simd_kernels<double>().width == bytes_of(want) / 8);
  CHECK(k::simd_kernels<float>().width == bytes_of(want) / 4);
  CHECK(k::scalar_kernels<double>().width == 1);
}

namespace {
// The scalar table's matmul (eager tensors, one lane) against the contract
// written out: each result the k-ordered chain of fused multiply-adds.
template <class T>
void check_one_lane_matmul() {
  const k::KernelTable<T>& table = k::scalar_kernels<T>();
  struct Shape {
    std::int64_t batch, m, n, k;
    bool ta, accumulate;
  };
  for (const Shape& s : {Shape{1, 7, 16, 48, false, false}, Shape{2, 5, 19, 3, true, false},
                         Shape{3, 1, 33, 1, false, true}, Shape{1, 9, 3, 5, false, false},
                         Shape{2, 4, 8, 17, true, true}}) {
    for (const std::int64_t n_dir : {1, 2}) {
      INFO("batch " << s.batch << " m " << s.m << " n " << s.n << " k " << s.k << " ta " << s.ta
                    << " accumulate " << s.accumulate << " directions " << n_dir);
      const std::int64_t a_size = s.batch * s.m * s.k, b_size = s.k * s.n, out_size = s.batch * s.m * s.n;
      std::vector<T> a(static_cast<std::size_t>(n_dir * a_size)), b(static_cast<std::size_t>(b_size));
      for (std::size_t i = 0; i < a.size(); ++i) a[i] = T(std::sin(1.3 * double(i) + 0.2));
      for (std::size_t i = 0; i < b.size(); ++i) b[i] = T(std::cos(0.7 * double(i)) / 3);
      std::vector<std::int64_t> a_batch;
      for (std::int64_t bt = 0; bt < s.batch; ++bt) a_batch.push_back(bt * s.m * s.k);
      std::vector<T> got(static_cast<std::size_t>(n_dir * out_size)), want(got.size());
      for (std::size_t i = 0; i < got.size(); ++i) got[i] = want[i] = T(0.25 * double(i % 7));
      k::MatmulArgs<T> args;
      args.out = got.data();
      args.out_dir_stride = out_size;
      args.a = {a.data(), nullptr, a_size, true};
      args.b = {b.data(), nullptr, 0, false};  // shared by every batch entry and direction
      args.a_batch = a_batch.data();
      args.batch = s.batch, args.m = s.m, args.n = s.n, args.k = s.k;
      args.ta = s.ta, args.accumulate = s.accumulate, args.n_dir = n_dir;
      table.matmul(args);
      for (std::int64_t d = 0; d < n_dir; ++d)
        for (std::int64_t bt = 0; bt < s.batch; ++bt)
          for (std::int64_t i = 0; i < s.m; ++i)
            for (std::int64_t j = 0; j < s.n; ++j) {
              T acc = 0;
              for (std::int64_t kk = 0; kk < s.k; ++kk) {
                const T av = a[static_cast<std::size_t>(d * a_size + bt * s.m * s.k +
                                                        (s.ta ? kk * s.m + i : i * s.k + kk))];
                acc = std::fma(av, b[static_cast<std::size_t>(kk * s.n + j)], acc);
              }
              T& w = want[static_cast<std::size_t>(d * out_size + (bt * s.m + i) * s.n + j)];
              w = s.accumulate ? acc + w : acc;
            }
      CHECK(got == want);
    }
  }
}
}  // namespace

TEST_CASE("eager matmul: the k-ordered fma chain of each result, W columns at a time", "[engine][dispatch]") {
  // Set where the table's fma is fused (avx2, avx512), not under sse4.2.
  CHECK((k::simd_kernels<double>().matmul_one_lane != nullptr) == (expected_arch() != "sse42"));
  check_one_lane_matmul<double>();
  check_one_lane_matmul<float>();
}

namespace {
// The SIMD table's kernels with one example per lane, where its fma is
// fused (avx2, avx512): each matmul result is the k-ordered chain of fused
// multiply-adds, and axpy rounds once, as std::fma does, in every build
// type (the kernels are compiled without contraction and say where they
// fuse). A kernel computing x * y + z unfused fails.
template <class T>
void check_lane_kernels_fuse() {
  const k::KernelTable<T>& table = k::simd_kernels<T>();
  const std::int64_t L = table.width, m = 3, n = 9, kk_n = 13, n_dir = 2;
  std::vector<T> a(static_cast<std::size_t>(n_dir * m * kk_n * L)), b(static_cast<std::size_t>(kk_n * n));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = T(std::sin(1.7 * double(i) + 0.3));
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = T(std::cos(0.9 * double(i)) / 7);
  std::vector<T> got(static_cast<std::size_t>(n_dir * m * n * L));
  k::MatmulArgs<T> args;
  args.out = got.data();
  args.out_dir_stride = m * n * L;
  args.a = {a.data(), nullptr, m * kk_n * L, true};
  args.b = {b.data(), nullptr, 0, false};
  args.m = m, args.n = n, args.k = kk_n, args.n_dir = n_dir, args.lanes = L;
  table.matmul(args);
  std::int64_t differ = 0;
  for (std::int64_t d = 0; d < n_dir; ++d)
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t l = 0; l < L; ++l) {
          T acc = 0;
          for (std::int64_t kk = 0; kk < kk_n; ++kk)
            acc = std::fma(a[static_cast<std::size_t>(d * m * kk_n * L + (i * kk_n + kk) * L + l)],
                           b[static_cast<std::size_t>(kk * n + j)], acc);
          differ += got[static_cast<std::size_t>(d * m * n * L + (i * n + j) * L + l)] != acc;
        }
  CHECK(differ == 0);

  // axpy: x c + z, rounded once.
  const std::int64_t elems = 5 * L;
  std::vector<T> x(static_cast<std::size_t>(elems)), c(x.size()), z(x.size()), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = T(std::sin(2.1 * double(i) + 1)), c[i] = T(std::cos(1.1 * double(i)) * 3);
    z[i] = T(std::sin(0.37 * double(i)) / 5);
  }
  k::ElementwiseArgs<T> ew;
  ew.out = y.data();
  ew.n_elem = 5, ew.lanes = L;
  ew.in[0] = {x.data(), nullptr, 0, true};
  ew.in[1] = {c.data(), nullptr, 0, true};
  ew.in[2] = {z.data(), nullptr, 0, true};
  table.ternary[batchjac::ops::math::kAxpy](ew);
  differ = 0;
  for (std::size_t i = 0; i < y.size(); ++i) differ += y[i] != std::fma(x[i], c[i], z[i]);
  CHECK(differ == 0);
}
}  // namespace

TEST_CASE("engine kernels fuse multiply-adds explicitly, not by contraction", "[engine][dispatch]") {
  if (expected_arch() == "sse42") return;  // no fma instruction: x * y + z
  check_lane_kernels_fuse<double>();
  check_lane_kernels_fuse<float>();
}
