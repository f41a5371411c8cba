// Memory of batch_jacobian calls, for the memory rows of bench/README.md.
//
//   memory_probe <batch> [parallel_iterations|unset] [pfor 1|0] [threads]
// Peak extra memory and time of one W2 f64 batch_jacobian_into call: the
// resident-set high-water mark is reset (/proc/self/clear_refs) after inputs,
// recording and the output buffer exist, so the peak above that baseline is
// what the call itself needed.
//
//   memory_probe --calls <workload> [batch] [threads]
// 100 whole user calls (workloads.hpp's `call`: source from the array, new
// tape, the function recorded, batch_jacobian returning a new tensor that is
// dropped) of a workload (W1 W2f32 W2f64 W3 W8 W9 W10 W11; batch 0 or absent:
// WORKLOADS.md's): the resident set after calls 1, 10, 50 and 100, the peak,
// and the minor page faults per call after the first. Flat RSS and ~0 faults
// per call mean the calls reuse their memory; faults near the output's size in
// pages mean each call maps (and zeroes) a fresh output.
#include "workloads.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <span>
#include <string>
#include <variant>

#include <sys/resource.h>
#include <unistd.h>

using namespace bjbench;

namespace {

long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::strtol(line.c_str() + std::string(field).size(), nullptr, 10);
  return -1;
}

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int one_call(int argc, char** argv) {
  const std::int64_t b = argc > 1 ? std::atoll(argv[1]) : w2::batch;
  bj::JacobianOptions options;
  if (argc > 2 && std::string(argv[2]) != "unset") options.parallel_iterations = std::atoll(argv[2]);
  if (argc > 3) options.experimental_use_pfor = std::atoi(argv[3]) != 0;
  options.max_threads = argc > 4 ? std::atoi(argv[4]) : 1;

  using namespace w2;
  const auto w = make_mlp<double>(b);
  bj::GradientTape tape({.persistent = true});
  const bj::Tensor xs = w->source();
  tape.watch(xs);
  const bj::Tensor y = w->forward(xs);
  std::vector<double> jac(static_cast<std::size_t>(b * m * n), 1.0);  // paged in

  { std::ofstream("/proc/self/clear_refs") << "5"; }  // reset the high-water mark
  const long base = status_kib("VmRSS:");
  const auto t0 = std::chrono::steady_clock::now();
  tape.batch_jacobian_into(y, xs, std::span<double>(jac), options);
  const double ms = ms_since(t0);
  const long peak = status_kib("VmHWM:");
  std::printf("b=%lld parallel_iterations=%s pfor=%d threads=%d  time_ms=%.2f  extra_peak_KiB=%ld  "
              "(baseline RSS %ld KiB, output %lld KiB)\n",
              static_cast<long long>(b), argc > 2 ? argv[2] : "unset",
              options.experimental_use_pfor ? 1 : 0, *options.max_threads, ms, peak - base, base,
              static_cast<long long>(b * m * n * 8 / 1024));
  return 0;
}

template <class T>
void hundred_calls(const std::string& name, const Workload<T>& w, int threads) {
  bj::JacobianOptions options;
  options.max_threads = threads;
  const long output_kib = w.batch * w.m * w.n * static_cast<long>(sizeof(T)) / 1024;
  const long page_kib = sysconf(_SC_PAGESIZE) / 1024;
  std::printf("%s (%s) b=%lld threads=%d: output %ld KiB (%ld pages of %ld KiB); RSS before the first call %ld KiB\n",
              name.c_str(), w.name.c_str(), static_cast<long long>(w.batch), threads, output_kib,
              output_kib / page_kib, page_kib, status_kib("VmRSS:"));
  long faults_after_first = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double first_ms = 0;
  for (int i = 1; i <= 100; ++i) {
    const long faults = minor_faults();
    const auto t = std::chrono::steady_clock::now();
    call(w, options);  // the result is dropped here, as in the benchmark's call rows
    if (i == 1) {
      first_ms = ms_since(t);
      std::printf("  call 1: %.2f ms, %ld minor faults\n", first_ms, minor_faults() - faults);
    } else {
      faults_after_first += minor_faults() - faults;
    }
    if (i == 1 || i == 10 || i == 50 || i == 100) {
      std::printf("  RSS after call %3d: %8ld KiB\n", i, status_kib("VmRSS:"));
    }
  }
  std::printf("  peak RSS (VmHWM): %ld KiB\n", status_kib("VmHWM:"));
  std::printf("  calls 2-100: %.2f ms per call, %.1f minor faults per call (%.0f KiB)\n",
              (ms_since(t0) - first_ms) / 99, faults_after_first / 99.0,
              faults_after_first / 99.0 * static_cast<double>(page_kib));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "--calls") return one_call(argc, argv);
  const std::string name = argc > 2 ? argv[2] : "W2f64";
  const std::int64_t b = argc > 3 ? std::atoll(argv[3]) : 0;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  const std::optional<AnyWorkload> w = workload_by_name(name, b);
  if (!w) {
    std::fprintf(stderr, "unknown workload %s; one of: %s\n", name.c_str(), kWorkloadNames);
    return 2;
  }
  std::visit([&](const auto& workload) { hundred_calls(name, *workload, threads); }, *w);
  return 0;
}
