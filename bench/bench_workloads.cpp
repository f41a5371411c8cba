// Google Benchmark harness: the workloads of shared/WORKLOADS.md through
// batchjac's public API, each beside its hand-written analytic Jacobian
// (analytic.hpp), on 1 thread and on all threads. Every batchjac result is
// checked against the analytic one before it is timed. The run ends with a
// table of medians and ratios to the analytic baseline.
//
// Names: <workload>/<mode>/t:<threads>, e.g. "W2 f64/batchjac/forward/t:2";
// sweep points "W2 f64 sweep/b:4096/analytic/t:1" (plot.py reads these).
#include "analytic.hpp"
#include "summary.hpp"

#include <batchjac/batchjac.hpp>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace bj = batchjac;
using namespace bjbench;

namespace {

int all_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// ---- workloads --------------------------------------------------------------------------------

template <class T>
constexpr bj::DType dtype_of() {
  return sizeof(T) == sizeof(double) ? bj::float64 : bj::float32;
}

// One workload at one batch size: its inputs, its fast analytic Jacobian on a
// slice of the batch, and its function written with batchjac's ops.
template <class T>
struct Workload {
  std::string name;
  std::int64_t batch;
  int n, m;
  AlignedVector<T> x;                                          // [batch][n]
  std::function<void(const T*, std::int64_t, T*)> jacobian;   // (x, b, J) for a slice
  std::function<bj::Tensor(const bj::Tensor&)> forward;       // x [b, n] -> y [b, m]
  std::int64_t grain = 64;  // slice bounds for split_batch (W3 streams 8-example lines)

  bj::Tensor source() const {
    return bj::constant(std::span<const T>(x.data(), x.size()), bj::Shape{batch, n},
                        dtype_of<T>());
  }
  // The analytic Jacobian on `threads` threads.
  void analytic(int threads, T* jac) const {
    split_batch(batch, threads, grain, [&](std::int64_t begin, std::int64_t end) {
      jacobian(x.data() + begin * n, end - begin, jac + begin * m * n);
    });
  }
};

template <class T>
bj::Tensor tensor(const std::vector<T>& data, bj::Shape shape) {
  return bj::constant(std::span<const T>(data.data(), data.size()), std::move(shape),
                      dtype_of<T>());
}

std::shared_ptr<const Workload<double>> make_square(std::int64_t b) {
  auto w = std::make_shared<Workload<double>>();
  w->name = "W1 f64";
  w->batch = b;
  w->n = w1::n;
  w->m = w1::m;
  w->x = default_inputs<double>(b, w1::n);
  w->jacobian = square_jacobian;
  w->forward = [](const bj::Tensor& x) { return x * x; };
  return w;
}

// y = matmul(tanh(matmul(x, W1^T) + c1), W2^T) + c2, with the transposed
// weights as [in, out] constants, as a TF user would write the layer.
template <class T>
std::shared_ptr<const Workload<T>> make_mlp(std::int64_t b, std::string name) {
  using namespace w2;
  auto w = std::make_shared<Workload<T>>();
  w->name = std::move(name);
  w->batch = b;
  w->n = n;
  w->m = m;
  w->x = default_inputs<T>(b, n);
  const auto weights = std::make_shared<const MlpWeights<T>>(mlp_weights<T>());
  w->jacobian = [weights](const T* x, std::int64_t count, T* jac) {
    mlp_jacobian(*weights, x, count, jac);
  };
  std::vector<T> w1t(n * h), w2t(h * m);
  for (int k = 0; k < h; ++k) {
    for (int j = 0; j < n; ++j) w1t[j * h + k] = weights->w1[k * n + j];
    for (int r = 0; r < m; ++r) w2t[k * m + r] = weights->w2[r * h + k];
  }
  w->forward = [weights, w1t, w2t](const bj::Tensor& x) {
    const bj::Tensor a = bj::tanh(bj::matmul(x, tensor(w1t, {n, h})) + tensor(weights->c1, {h}));
    return bj::matmul(a, tensor(w2t, {h, m})) + tensor(weights->c2, {m});
  };
  return w;
}

#ifdef BATCHJAC_BENCH_W3
// W3 as a user would write it with TF's ops: per-reaction rate constants as
// [1, nr] rows broadcast against T [b, 1], species picked with gather, the
// stoichiometry as a constant matrix.
bj::Tensor kinetics_forward(const bj::Tensor& x) {
  using namespace w3;
  const KineticsMechanism& k = kinetics_mechanism();
  auto row = [](auto const& values) {
    const std::vector<double> v(values.begin(), values.end());
    return tensor(v, {1, static_cast<std::int64_t>(v.size())});
  };
  auto indices = [](auto const& species) {
    return std::vector<std::int64_t>(species.begin(), species.end());
  };
  std::vector<double> nu(nr * ns, 0.0);  // [nr, ns]: wdot = q nu
  for (int r = 0; r < nr; ++r) {
    nu[r * ns + k.reactant_a[r]] -= 1;
    nu[r * ns + k.reactant_b[r]] -= 1;
    nu[r * ns + k.product_c[r]] += 1;
    nu[r * ns + k.product_d[r]] += 1;
  }
  const bj::Tensor t = bj::slice(x, {0, 0}, {-1, 1});   // [b, 1]
  const bj::Tensor c = bj::slice(x, {0, 1}, {-1, ns});  // [b, ns]
  // kf = A T^beta exp(-Ea / T), written exp(beta log T - Ea (1 / T)) since beta varies by
  // reaction; 1 / T once per example, as the analytic kernel does.
  const bj::Tensor kf = row(k.prefactor) *
                        bj::exp(row(k.temp_exponent) * bj::log(t) - row(k.activation) * bj::reciprocal(t));
  const bj::Tensor kr = kf * row(k.reverse_ratio);
  const bj::Tensor q =
      kf * bj::gather(c, indices(k.reactant_a), 1) * bj::gather(c, indices(k.reactant_b), 1) -
      kr * bj::gather(c, indices(k.product_c), 1) * bj::gather(c, indices(k.product_d), 1);
  const bj::Tensor wdot = bj::matmul(q, tensor(nu, {nr, ns}));                     // [b, ns]
  const bj::Tensor dt = -bj::reduce_sum(wdot * row(k.enthalpy), {1}, /*keepdims=*/true);  // [b, 1]
  return bj::concat({dt, wdot}, 1);
}

std::shared_ptr<const Workload<double>> make_kinetics(std::int64_t b) {
  auto w = std::make_shared<Workload<double>>();
  w->name = "W3 f64";
  w->batch = b;
  w->n = w3::n;
  w->m = w3::m;
  w->x = kinetics_inputs(b);
  w->jacobian = kinetics_jacobian;
  w->forward = kinetics_forward;
  return w;
}
#endif

// ---- benchmark bodies ---------------------------------------------------------------------------

void set_rate(benchmark::State& state, std::int64_t batch) {
  state.counters["examples/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(batch),
      benchmark::Counter::kIsRate);
}

template <class T>
void bm_analytic(benchmark::State& state, const Workload<T>& w, int threads) {
  AlignedVector<T> jac(static_cast<std::size_t>(w.batch * w.m * w.n));  // allocated once
  w.analytic(threads, jac.data());                                       // warm-up, page-in
  for (auto _ : state) {
    w.analytic(threads, jac.data());
    benchmark::DoNotOptimize(jac.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, w.batch);
}

// The verdict of a benchmark's one correctness check. Google Benchmark calls a
// benchmark function several times (to size the iteration count, then once per
// repetition); the check runs on the first call only.
struct Check {
  bool done = false;
  std::string error;  // empty: passed
};

// Why `jac` is not the analytic Jacobian of w, or "" if it is (WORKLOADS.md's tolerance).
template <class T>
std::string verify(const Workload<T>& w, const std::optional<bj::Tensor>& jac) {
  if (!jac) return "batch_jacobian returned nullopt";
  if (jac->shape() != bj::Shape{w.batch, w.m, w.n} || jac->dtype() != dtype_of<T>()) {
    return "wrong result: shape " + jac->shape().to_string() + ", dtype " +
           std::string(bj::dtype_name(jac->dtype()));
  }
  AlignedVector<T> want(static_cast<std::size_t>(w.batch * w.m * w.n));
  w.analytic(all_threads(), want.data());
  const double err = max_rel_error<T>(jac->data<T>(), want);
  if (!(err < tolerance<T>())) return "wrong Jacobian: max rel err " + std::to_string(err);
  return "";
}

// Records y = f(x) once on a persistent tape, checks a Jacobian against the
// analytic one (first call only), then times batch_jacobian_into alone,
// writing into an output allocated once, as the analytic code does.
// `record`: each iteration records f on a new tape first, as a solver does
// at each step (the time includes f's eager evaluation).
template <class T>
void bm_batchjac(benchmark::State& state, const Workload<T>& w, bj::JacobianOptions options,
                 Check& check, bool record = false) {
  try {
    bj::GradientTape tape({.persistent = true});
    const bj::Tensor x = w.source();
    tape.watch(x);
    const bj::Tensor y = w.forward(x);
    if (!check.done) {
      check.error = verify(w, tape.batch_jacobian(y, x, options));  // also the warm-up
      check.done = true;
    }
    if (!check.error.empty()) {
      state.SkipWithError(check.error.c_str());
      return;
    }
    AlignedVector<T> jac(static_cast<std::size_t>(w.batch * w.m * w.n));
    tape.batch_jacobian_into(y, x, std::span<T>(jac.data(), jac.size()), options);  // page-in
    if (record) {
      for (auto _ : state) {
        bj::GradientTape step;
        const bj::Tensor xs = w.source();
        step.watch(xs);
        const bj::Tensor ys = w.forward(xs);
        step.batch_jacobian_into(ys, xs, std::span<T>(jac.data(), jac.size()), options);
        benchmark::DoNotOptimize(jac.data());
        benchmark::ClobberMemory();
      }
      set_rate(state, w.batch);
      return;
    }
    for (auto _ : state) {
      tape.batch_jacobian_into(y, x, std::span<T>(jac.data(), jac.size()), options);
      benchmark::DoNotOptimize(jac.data());
      benchmark::ClobberMemory();
    }
    set_rate(state, w.batch);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// The seed's literal call, b = n = 2, float32. `record`: the whole snippet
// (constant, tape, watch, x * x, batch_jacobian) per iteration; otherwise only
// batch_jacobian on a persistent tape: small-call overhead.
void bm_seed(benchmark::State& state, bool record, bj::JacobianOptions options) {
  const std::vector<float> want = {2, 0, 0, 4, 6, 0, 0, 8};
  try {
    bj::GradientTape tape({.persistent = true});
    const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}}, bj::float32);
    tape.watch(x);
    const bj::Tensor y = x * x;
    const std::optional<bj::Tensor> jac = tape.batch_jacobian(y, x, options);
    if (!jac || jac->shape() != bj::Shape{2, 2, 2} || jac->dtype() != bj::float32 ||
        max_rel_error<float>(jac->data<float>(), want) != 0.0) {
      state.SkipWithError("wrong seed Jacobian");
      return;
    }
    if (record) {
      for (auto _ : state) {
        bj::GradientTape g;
        const bj::Tensor xs = bj::constant({{1., 2.}, {3., 4.}}, bj::float32);
        g.watch(xs);
        const bj::Tensor ys = xs * xs;
        std::optional<bj::Tensor> j = g.batch_jacobian(ys, xs, options);
        benchmark::DoNotOptimize(j);
      }
    } else {
      for (auto _ : state) {
        std::optional<bj::Tensor> j = tape.batch_jacobian(y, x, options);
        benchmark::DoNotOptimize(j);
      }
    }
    set_rate(state, 2);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// The machine's own two-thread scaling, for comparison: a fixed amount of
// compute-bound work (independent multiply-add chains in registers, no
// memory traffic) split over `threads` threads. Ideal: t:2 takes 0.5x t:1.
void bm_spin(benchmark::State& state, int threads) {
  constexpr std::int64_t kWork = 400'000'000;  // multiply-adds in all
  auto part = [](std::int64_t n, double* out) {
    double a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (std::int64_t i = 0; i < n; i += 8)
      for (double& v : a) v = v * 0.9999999 + 1e-7;
    double sum = 0;
    for (double v : a) sum += v;
    *out = sum;
  };
  std::vector<double> sums(static_cast<std::size_t>(threads));
  for (auto _ : state) {
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(part, kWork / threads, &sums[t]);
    part(kWork / threads, &sums[0]);
    for (auto& th : pool) th.join();
    benchmark::DoNotOptimize(sums.data());
  }
}

// ---- registration --------------------------------------------------------------------------------

std::vector<int> thread_counts() {
  return all_threads() > 1 ? std::vector<int>{1, all_threads()} : std::vector<int>{1};
}

std::vector<std::pair<std::string, Entry>> entries;  // in registration order

template <class Fn>
void add(const Entry& entry, Fn fn, benchmark::TimeUnit unit = benchmark::kMillisecond) {
  const std::string name = entry.workload + "/" + entry.mode + "/t:" + std::to_string(entry.threads);
  benchmark::RegisterBenchmark(name.c_str(), std::move(fn))->UseRealTime()->Unit(unit);
  entries.emplace_back(name, entry);
}

bj::JacobianOptions options_for(bj::JacobianMode mode, int threads) {
  bj::JacobianOptions options;
  options.mode = mode;
  options.max_threads = threads;
  return options;
}

constexpr std::pair<const char*, bj::JacobianMode> kModes[] = {
    {"batchjac/automatic", bj::JacobianMode::automatic},
    {"batchjac/forward", bj::JacobianMode::forward},
    {"batchjac/reverse", bj::JacobianMode::reverse},
};

// analytic + the three modes, at each thread count.
template <class T>
void add_workload(std::shared_ptr<const Workload<T>> w, const std::string& workload) {
  for (int threads : thread_counts()) {
    add({workload, "analytic", threads, workload},
        [w, threads](benchmark::State& s) { bm_analytic(s, *w, threads); });
    for (const auto& [mode_name, mode] : kModes) {
      add({workload, mode_name, threads, workload},
          [w, options = options_for(mode, threads), check = std::make_shared<Check>()](
              benchmark::State& s) { bm_batchjac(s, *w, options, *check); });
    }
  }
}

void register_all() {
  add_workload(make_square(w1::batch), "W1 f64");
  add_workload(make_mlp<float>(w2::batch, "W2 f32"), "W2 f32");
  const auto mlp64 = make_mlp<double>(w2::batch, "W2 f64");
  add_workload(mlp64, "W2 f64");
#ifdef BATCHJAC_BENCH_W3
  add_workload(make_kinetics(w3::batch), "W3 f64");
  // A call of a size an implicit solver makes per step: what planning costs
  // next to the work.
  const auto kinetics_1024 = make_kinetics(1024);
  add_workload(kinetics_1024, "W3 f64 b=1024");
  // Recorded anew per call (the kept plan runs): what a solver's step costs.
  add({"W3 f64 b=1024", "batchjac/record+automatic", 1, "W3 f64 b=1024"},
      [w = kinetics_1024, options = options_for(bj::JacobianMode::automatic, 1),
       check = std::make_shared<Check>()](benchmark::State& s) { bm_batchjac(s, *w, options, *check, true); });
#endif

  for (int threads : thread_counts()) {
    for (bool record : {true, false}) {
      add({"seed", record ? "batchjac/record+jacobian" : "batchjac/jacobian", threads, ""},
          [record, options = options_for(bj::JacobianMode::automatic, threads)](
              benchmark::State& s) { bm_seed(s, record, options); },
          benchmark::kMicrosecond);
    }
  }

  for (int threads : thread_counts())
    add({"machine", "spin", threads, ""}, [threads](benchmark::State& s) { bm_spin(s, threads); });

  // TF's knobs on W2 f64: the grain (rows or columns per task) and the
  // one-direction-at-a-time loop. "pi=unset" is the default of the runs above.
  for (int threads : thread_counts()) {
    for (auto [mode_name, mode] : {std::pair{"forward", bj::JacobianMode::forward},
                                   std::pair{"reverse", bj::JacobianMode::reverse}}) {
      const std::optional<std::int64_t> grains[] = {1, 4, 16, std::nullopt};
      for (const std::optional<std::int64_t>& pi : grains) {
        bj::JacobianOptions options = options_for(mode, threads);
        options.parallel_iterations = pi;
        const std::string mode_label = std::string("batchjac/") + mode_name + "/pi:" +
                                       (pi ? std::to_string(*pi) : std::string("unset"));
        add({"W2 f64 options", mode_label, threads, "W2 f64"},
            [mlp64, options, check = std::make_shared<Check>()](benchmark::State& s) {
              bm_batchjac(s, *mlp64, options, *check);
            });
      }
      bj::JacobianOptions options = options_for(mode, threads);
      options.experimental_use_pfor = false;
      add({"W2 f64 options", std::string("batchjac/") + mode_name + "/no_pfor", threads, "W2 f64"},
          [mlp64, options, check = std::make_shared<Check>()](benchmark::State& s) {
            bm_batchjac(s, *mlp64, options, *check);
          });
    }
  }

  // Batch-size sweep for the plot (plot.py).
  for (std::int64_t b = 256; b <= 65536; b *= 2) {
    const std::string workload = "W2 f64 sweep/b:" + std::to_string(b);
    add_workload(b == w2::batch ? mlp64 : make_mlp<double>(b, "W2 f64"), workload);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // WORKLOADS.md asks for the median of >= 5 repetitions: the default here.
  std::vector<char*> args(argv, argv + argc);
  std::string default_reps = "--benchmark_repetitions=5";
  if (std::none_of(args.begin() + 1, args.end(), [](const char* a) {
        return std::strncmp(a, "--benchmark_repetitions", 23) == 0;
      })) {
    args.push_back(default_reps.data());
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  register_all();
  SummaryReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Color
                                                 : benchmark::ConsoleReporter::OO_None);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_table(entries);
  benchmark::Shutdown();
  return 0;
}
