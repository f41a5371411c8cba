// Google Benchmark harness: the workloads of shared/WORKLOADS.md through
// batchjac's public API, each beside its hand-written analytic Jacobian
// (analytic.hpp), on 1 thread and on all threads. Every batchjac result is
// checked against the analytic one before it is timed. The run ends with a
// table of medians and ratios to the analytic baseline.
//
// Rows: the analytic baseline; the engine alone (batch_jacobian_into on a kept
// tape, one row per mode); the traced Function's batch_jacobian_into
// ("batchjac/trace"); the workload as a Ceres-style scalar functor through
// bj::scalar_function ("scalar/compiled", "scalar/traced", "scalar/automatic",
// scalar_workloads.cpp); the whole user call ("batchjac/call"); for W8 and
// W10, the whole call of bj::batch_hessian on the energy whose Hessian is the
// Jacobian ("batch_hessian/call", 1 thread). Each row also counts minor page
// faults per iteration.
//
// Names: <workload>/<mode>/t:<threads>, e.g. "W2 f64/batchjac/forward/t:2";
// sweep points "W2 f64 sweep/b:4096/analytic/t:1" (plot.py reads these).
#include "scalar_workloads.hpp"
#include "summary.hpp"
#include "workloads.hpp"

#include <batchjac/batchjac.hpp>
#include <batchjac/codegen.hpp>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

using namespace bjbench;

namespace {

int all_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// ---- benchmark bodies ---------------------------------------------------------------------------

void set_rate(benchmark::State& state, std::int64_t batch) {
  state.counters["examples/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(batch),
      benchmark::Counter::kIsRate);
}

// Minor page faults of the process (all its threads) so far.
long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// "faults/call": minor faults per iteration of the timed loop that began when
// minor_faults() was `before`. A loop that reuses its memory shows ~0; one that
// maps a fresh output per call shows its size in pages.
void set_faults(benchmark::State& state, long before) {
  state.counters[kFaultsCounter] = benchmark::Counter(
      static_cast<double>(minor_faults() - before) / static_cast<double>(state.iterations()));
}

template <class T>
void bm_analytic(benchmark::State& state, const Workload<T>& w, int threads) {
  AlignedVector<T> jac(static_cast<std::size_t>(w.batch * w.m * w.n));  // allocated once
  w.analytic(threads, jac.data());                                       // warm-up, page-in
  const long faults = minor_faults();
  for (auto _ : state) {
    w.analytic(threads, jac.data());
    benchmark::DoNotOptimize(jac.data());
    benchmark::ClobberMemory();
  }
  set_faults(state, faults);
  set_rate(state, w.batch);
}

// The verdict of a benchmark's one correctness check. Google Benchmark calls a
// benchmark function several times (to size the iteration count, then once per
// repetition); the check runs on the first call only.
struct Check {
  bool done = false;
  std::string error;  // empty: passed
};

// Why `jac` ([batch][m][n]) is not the analytic Jacobian of w, or "" if it is
// (WORKLOADS.md's tolerance).
template <class T>
std::string verify(const Workload<T>& w, std::span<const T> jac) {
  AlignedVector<T> want(static_cast<std::size_t>(w.batch * w.m * w.n));
  w.analytic(all_threads(), want.data());
  const double err = max_rel_error<T>(jac, want);
  if (!(err < tolerance<T>())) return "wrong Jacobian: max rel err " + std::to_string(err);
  return "";
}

// The same for a Jacobian returned as a tensor; `sign` * it must be the
// analytic Jacobian (a Hessian of w.energy: sign = w.hessian_sign).
template <class T>
std::string verify(const Workload<T>& w, const std::optional<bj::Tensor>& jac, double sign = 1) {
  if (!jac) return "batch_jacobian returned nullopt";
  if (jac->shape() != bj::Shape{w.batch, w.m, w.n} || jac->dtype() != dtype_of<T>()) {
    return "wrong result: shape " + jac->shape().to_string() + ", dtype " +
           std::string(bj::dtype_name(jac->dtype()));
  }
  if (sign == 1) return verify(w, jac->data<T>());
  const std::span<const T> data = jac->data<T>();
  AlignedVector<T> scaled(data.size());
  std::transform(data.begin(), data.end(), scaled.begin(), [sign](T v) { return static_cast<T>(sign * v); });
  return verify(w, std::span<const T>(scaled.data(), scaled.size()));
}

// A Jacobian written into the caller's memory by into(x, jac): the workload's
// input array and an output allocated once, as the analytic code writes. The
// first call is checked against the analytic Jacobian (into an output filled
// with NaN, so an entry it does not write fails), one more is untimed (page-in,
// warm-up), then into alone is timed.
template <class T, class Into>
void bm_into(benchmark::State& state, const Workload<T>& w, Check& check, const Into& into) {
  const std::span<const T> x(w.x.data(), w.x.size());
  AlignedVector<T> jac(static_cast<std::size_t>(w.batch * w.m * w.n));
  const std::span<T> out(jac.data(), jac.size());
  if (!check.done) {
    std::fill(jac.begin(), jac.end(), std::numeric_limits<T>::quiet_NaN());
    into(x, out);
    check.error = verify(w, std::span<const T>(out));
    check.done = true;
  }
  if (!check.error.empty()) {
    state.SkipWithError(check.error.c_str());
    return;
  }
  into(x, out);
  const long faults = minor_faults();
  for (auto _ : state) {
    into(x, out);
    benchmark::DoNotOptimize(jac.data());
    benchmark::ClobberMemory();
  }
  set_faults(state, faults);
  set_rate(state, w.batch);
}

// bj::trace: w.forward traced once into a bj::Function (outside the timed
// loop), then Function::batch_jacobian_into on the user's array: the kept
// plan, nothing recorded.
template <class T>
void bm_trace(benchmark::State& state, const Workload<T>& w, bj::JacobianOptions options, Check& check) {
  try {
    const bj::Function fn = bj::trace(w.forward, bj::TensorSpec{bj::Shape{-1, w.n}, dtype_of<T>()});
    bm_into(state, w, check, [&](std::span<const T> x, std::span<T> jac) {
      fn.batch_jacobian_into(x, jac, options);
    });
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// The workload's Ceres-style functor (scalar_workloads.hpp) through
// bj::scalar_function on one path; `show_path` labels the row with the path
// the calls take (automatic's choice).
template <class T>
void bm_scalar(benchmark::State& state, const Workload<T>& w, const ScalarVersion<T>& f,
               bj::JacobianOptions options, Check& check, bool show_path) {
  try {
    if (show_path) state.SetLabel("took " + f.path(options));
    bm_into(state, w, check, [&](std::span<const T> x, std::span<T> jac) {
      f.batch_jacobian_into(x, jac, options);
    });
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
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
    const long faults = minor_faults();
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
    } else {
      for (auto _ : state) {
        tape.batch_jacobian_into(y, x, std::span<T>(jac.data(), jac.size()), options);
        benchmark::DoNotOptimize(jac.data());
        benchmark::ClobberMemory();
      }
    }
    set_faults(state, faults);
    set_rate(state, w.batch);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// The whole call a user's code makes each time it needs the Jacobians
// (workloads.hpp's `call`): the source from the user's array, a new tape, the
// function recorded, batch_jacobian returning a new tensor, dropped at the end
// of the iteration. Default options but max_threads, which sets the row's
// thread count as in the engine rows. The first call is checked against the
// analytic Jacobian (times `sign`); each run starts with one untimed call.
// With hessian_call, the call for the Hessians of w.energy: a new tape, the
// energy recorded, batch_hessian returning a new tensor.
template <class T, class Call>
void bm_call(benchmark::State& state, const Workload<T>& w, bj::JacobianOptions options, Check& check,
             Call make, double sign = 1) {
  try {
    if (!check.done) {
      check.error = verify(w, make(w, options), sign);
      check.done = true;
    }
    if (!check.error.empty()) {
      state.SkipWithError(check.error.c_str());
      return;
    }
    make(w, options);  // warm-up: the kept plan, the allocator's pools
    const long faults = minor_faults();
    for (auto _ : state) {
      std::optional<bj::Tensor> result = make(w, options);
      benchmark::DoNotOptimize(result);
    }
    set_faults(state, faults);
    set_rate(state, w.batch);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Recording alone: the source from the user's array, a new tape, the
// function recorded, nothing read, all dropped. Values are deferred, so this
// should not grow with the batch.
template <class T>
void bm_record(benchmark::State& state, const Workload<T>& w) {
  try {
    const long faults = minor_faults();
    for (auto _ : state) {
      bj::GradientTape tape;
      const bj::Tensor x = w.source();
      tape.watch(x);
      const bj::Tensor y = w.forward(x);
      benchmark::DoNotOptimize(y.id());
    }
    set_faults(state, faults);
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
    const long faults = minor_faults();
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
    set_faults(state, faults);
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

// A workload's scalar-code version on a path (scalar_workloads.hpp), or none.
template <class T>
using ScalarVersions = ScalarVersion<T> (*)(ScalarPath);

// analytic, the engine in the three modes and, with_call (the workloads a
// user calls, not the sweep's points), the traced Function, the whole call
// and the recording, at each thread count; with `scalar`, the scalar-code
// version on each path right after the engine rows (ratios to the same
// analytic row).
template <class T>
void add_workload(std::shared_ptr<const Workload<T>> w, const std::string& workload,
                  bool with_call = true, ScalarVersions<T> scalar = nullptr) {
  // One ScalarFunction per path, shared by its rows (t:1 and t:all): its
  // traced program and plans are made once.
  std::vector<std::pair<ScalarPath, std::shared_ptr<const ScalarVersion<T>>>> versions;
  if (scalar) {
    for (ScalarPath path : {ScalarPath::compiled, ScalarPath::traced, ScalarPath::automatic})
      versions.emplace_back(path, std::make_shared<const ScalarVersion<T>>(scalar(path)));
  }
  for (int threads : thread_counts()) {
    add({workload, "analytic", threads, workload},
        [w, threads](benchmark::State& s) { bm_analytic(s, *w, threads); });
    for (const auto& [mode_name, mode] : kModes) {
      add({workload, mode_name, threads, workload},
          [w, options = options_for(mode, threads), check = std::make_shared<Check>()](
              benchmark::State& s) { bm_batchjac(s, *w, options, *check); });
    }
    if (with_call) {
      add({workload, "batchjac/trace", threads, workload},
          [w, options = options_for(bj::JacobianMode::automatic, threads),
           check = std::make_shared<Check>()](benchmark::State& s) {
            bm_trace(s, *w, options, *check);
          });
    }
    for (const auto& [path, version] : versions) {
      add({workload, std::string("scalar/") + scalar_path_name(path), threads, workload},
          [w, version, options = options_for(bj::JacobianMode::automatic, threads),
           show_path = path == ScalarPath::automatic, check = std::make_shared<Check>()](
              benchmark::State& s) { bm_scalar(s, *w, *version, options, *check, show_path); });
    }
    if (!with_call) continue;
    add({workload, "batchjac/call", threads, workload},
        [w, options = options_for(bj::JacobianMode::automatic, threads),
         check = std::make_shared<Check>()](benchmark::State& s) {
          bm_call(s, *w, options, *check, call<T>);
        });
    if (threads == 1)  // recording runs on the caller's thread
      add({workload, "batchjac/record", threads, workload},
          [w](benchmark::State& s) { bm_record(s, *w); }, benchmark::kMicrosecond);
  }
}

void register_all() {
  add_workload(make_square(w1::batch), "W1 f64", true, scalar_square);
  add_workload(make_mlp<float>(w2::batch), "W2 f32");
  const auto mlp64 = make_mlp<double>(w2::batch);
  add_workload(mlp64, "W2 f64");
  // The size of a solver's step: what a call costs beside the work.
  add_workload(make_mlp<float>(1024), "W2 f32 b=1024");
  add_workload(make_mlp<double>(1024), "W2 f64 b=1024");
#ifdef BATCHJAC_BENCH_W3
  add_workload(make_kinetics(w3::batch), "W3 f64", true, scalar_kinetics);
  // A call of a size an implicit solver makes per step: what planning costs
  // next to the work.
  const auto kinetics_1024 = make_kinetics(1024);
  add_workload(kinetics_1024, "W3 f64 b=1024");
  // Recorded anew per call (the kept plan runs): what a solver's step costs.
  add({"W3 f64 b=1024", "batchjac/record+automatic", 1, "W3 f64 b=1024"},
      [w = kinetics_1024, options = options_for(bj::JacobianMode::automatic, 1),
       check = std::make_shared<Check>()](benchmark::State& s) { bm_batchjac(s, *w, options, *check, true); });
#endif
  // W8 and W10 are gradients of energies: their Hessians (bj::batch_hessian,
  // the whole call, 1 thread, default options) are the same numbers as the
  // Jacobians (W10: negated), timed against the same analytic rows.
  auto add_hessian = [](const std::shared_ptr<const Workload<double>>& w, const std::string& workload) {
    add({workload, "batch_hessian/call", 1, workload},
        [w, options = options_for(bj::JacobianMode::automatic, 1),
         check = std::make_shared<Check>()](benchmark::State& s) {
          bm_call(s, *w, options, *check, hessian_call<double>, w->hessian_sign);
        });
  };
  const auto neohookean = make_neohookean(w8::batch);
  add_workload(neohookean, "W8 f64", true, scalar_neohookean);
  add_hessian(neohookean, "W8 f64");
  add_workload(make_layernorm_gelu(w9::batch), "W9 f32", true, scalar_layernorm_gelu);
  const auto lj = make_lj(w10::batch);
  add_workload(lj, "W10 f64", true, scalar_lj);
  add_hessian(lj, "W10 f64");
  add_workload(make_rk4(w11::batch), "W11 f64", true, scalar_rk4);

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
    add_workload(b == w2::batch ? mlp64 : make_mlp<double>(b), workload, /*with_call=*/false);
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
  // Generated kernels are compiled when a plan is made, before its first
  // (checked, untimed) call: every timed row runs them. BATCHJAC_CODEGEN=off
  // times the interpreter instead.
  if (!std::getenv("BATCHJAC_CODEGEN")) bj::set_code_generation(bj::CodeGeneration::immediate);
  register_all();
  SummaryReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Color
                                                 : benchmark::ConsoleReporter::OO_None);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_table(entries);
  const bj::CodeGenerationStats g = bj::code_generation_stats();
  std::printf("\ngenerated code (%s): %zu objects compiled in %.2f s, %zu loaded from %s, %zu failed\n",
              bj::code_generation() == bj::CodeGeneration::off ? "off" : "on", g.compiled, g.compile_seconds,
              g.loaded, bj::code_cache_directory().c_str(), g.failed);
  benchmark::Shutdown();
  return 0;
}
