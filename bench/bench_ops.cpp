// Single ops a user's code calls around batch_jacobian (issue #20): gathering
// bundle adjustment's 15 inputs per observation from shared tables (gather +
// concat, gather_rows, a plain copy loop), and small-matrix Jacobians
// (inv, det of per-example 3 x 3 matrices), per element of the batch.
#include <batchjac/batchjac.hpp>

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

namespace bj = batchjac;

namespace {
// BA: cameras [nc, 11], points [np, 3], weights [n_obs] (GradBench's sizes).
struct Ba {
  std::int64_t n_cams = 21, n_pts = 11315, n_obs = 36455;
  bj::Tensor cams, pts, w;
  std::vector<std::int64_t> cam_of, pt_of, obs;
  Ba() {
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(-1, 1);
    auto table = [&](std::int64_t n, std::int64_t k) {
      std::vector<double> v(static_cast<std::size_t>(n * (k == 0 ? 1 : k)));
      for (auto& x : v) x = u(rng);
      return bj::constant(v, k == 0 ? bj::Shape{n} : bj::Shape{n, k});
    };
    cams = table(n_cams, 11);
    pts = table(n_pts, 3);
    w = table(n_obs, 0);
    for (std::int64_t i = 0; i < n_obs; ++i) {
      cam_of.push_back(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n_cams)));
      pt_of.push_back(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n_pts)));
      obs.push_back(i);
    }
  }
};
const Ba& ba() {
  static const Ba b;
  return b;
}

void per_obs(benchmark::State& st) {
  st.counters["ns/obs"] = benchmark::Counter(double(ba().n_obs) * double(st.iterations()),
                                             benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_ba_gather_concat(benchmark::State& st) {
  const Ba& b = ba();
  for (auto _ : st) {
    bj::Tensor x = bj::concat({bj::gather(b.cams, b.cam_of), bj::gather(b.pts, b.pt_of),
                               bj::reshape(b.w, {b.n_obs, 1})}, 1);
    benchmark::DoNotOptimize(x.data<double>().data());
  }
  per_obs(st);
}
void BM_ba_gather_rows(benchmark::State& st) {
  const Ba& b = ba();
  for (auto _ : st) {
    bj::Tensor x = bj::gather_rows({b.cams, b.pts, b.w}, {b.cam_of, b.pt_of, b.obs});
    benchmark::DoNotOptimize(x.data<double>().data());
  }
  per_obs(st);
}
void BM_ba_plain_loop(benchmark::State& st) {
  const Ba& b = ba();
  const double *c = b.cams.data<double>().data(), *p = b.pts.data<double>().data(), *w = b.w.data<double>().data();
  std::vector<double> out(static_cast<std::size_t>(b.n_obs * 15));
  for (auto _ : st) {
    for (std::int64_t i = 0; i < b.n_obs; ++i) {
      double* o = out.data() + i * 15;
      std::memcpy(o, c + b.cam_of[static_cast<std::size_t>(i)] * 11, 11 * sizeof(double));
      std::memcpy(o + 11, p + b.pt_of[static_cast<std::size_t>(i)] * 3, 3 * sizeof(double));
      o[14] = w[i];
    }
    benchmark::DoNotOptimize(out.data());
  }
  per_obs(st);
}

// Jacobians of inv and det of per-example 3 x 3 matrices (well conditioned).
template <bool Det>
void BM_small_matrix_jacobian(benchmark::State& st) {
  const std::int64_t b = st.range(0);
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> a(static_cast<std::size_t>(b * 9));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = u(rng) + ((i % 9) % 4 == 0 ? 3.0 : 0.0);
  const bj::Tensor x = bj::constant(a, {b, 3, 3});
  for (auto _ : st) {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = Det ? bj::expand_dims(bj::linalg::det(x), -1) : bj::linalg::inv(x);
    auto j = tape.batch_jacobian(y, x);
    benchmark::DoNotOptimize(j->data<double>().data());
  }
  st.counters["ns/example"] = benchmark::Counter(double(b) * double(st.iterations()),
                                                 benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
}  // namespace

BENCHMARK(BM_ba_gather_concat)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ba_gather_rows)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ba_plain_loop)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_small_matrix_jacobian<false>)->Name("inv 3x3 batch_jacobian")->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_small_matrix_jacobian<true>)->Name("det 3x3 batch_jacobian")->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
