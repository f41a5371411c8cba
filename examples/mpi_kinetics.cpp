// mpi_kinetics: stiff chemistry scaled out with MPI, the way a reacting-flow
// code runs it. The cells of a grid (W3's state [T, c_0 .. c_15]) are split
// into contiguous blocks, one per rank. Each rank takes backward-Euler steps
// of its own cells with batchjac (kinetics.hpp: Newton, batched Jacobians and
// a batched solve), on its own threads: batchjac runs in the rank's task
// arena, max_threads = --threads per rank. After every step the ranks agree
// on global norms by MPI_Allreduce: the largest Newton residual and the RMS
// of the state's change.
//
// Usage: mpirun -np R mpi_kinetics [--cells N] [--steps S] [--threads T] [--check]
//   --check: rank 0 then integrates all N cells alone, as one rank would,
//   and compares (exit status 1 if they differ by more than 1e-12).
// Bind ranks to no core when a rank should use several threads:
//   mpirun --bind-to none -np 1 mpi_kinetics --threads 2
#include "kinetics.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace {

struct Args {
  std::int64_t cells = 8192;
  int steps = 5;
  std::optional<int> threads;
  bool check = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--cells" && i + 1 < argc) a.cells = std::atoll(argv[++i]);
    else if (s == "--steps" && i + 1 < argc) a.steps = std::atoi(argv[++i]);
    else if (s == "--threads" && i + 1 < argc) a.threads = std::atoi(argv[++i]);
    else if (s == "--check") a.check = true;
    else throw std::invalid_argument("unknown argument " + s);
  }
  return a;
}

// Integrates x (cells of its own), calling `after_step(step, residual, squared change)`.
template <class F>
void integrate(std::vector<double>& x, int steps, double dt, std::optional<int> threads, F&& after_step) {
  for (int step = 0; step < steps; ++step) {
    const std::vector<double> before = x;
    const kinetics::NewtonReport r = kinetics::backward_euler_step(x, dt, 1e-12, 20, threads);
    double change = 0;
    for (std::size_t i = 0; i < x.size(); ++i) change += (x[i] - before[i]) * (x[i] - before[i]);
    after_step(step, r.residual, change);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  // Only the main thread calls MPI; batchjac's threads never do.
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, ranks = 1, status = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  try {
    const Args args = parse(argc, argv);
    constexpr std::int64_t n = kinetics::n;
    const double dt = 0.5;
    // Rank r owns cells [first, last): contiguous blocks, sizes differing by at most one.
    const std::int64_t first = args.cells * rank / ranks, last = args.cells * (rank + 1) / ranks;
    std::vector<double> x(static_cast<std::size_t>((last - first) * n));
    for (std::int64_t i = first; i < last; ++i) kinetics::initial_state(i, &x[static_cast<std::size_t>((i - first) * n)]);

    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = std::chrono::steady_clock::now();
    integrate(x, args.steps, dt, args.threads, [&](int step, double residual, double change) {
      double global_residual = 0, global_change = 0;
      MPI_Allreduce(&residual, &global_residual, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      MPI_Allreduce(&change, &global_change, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      if (rank == 0)
        std::printf("step %d: Newton residual %.2e, RMS change %.6e\n", step, global_residual,
                    std::sqrt(global_change / double(args.cells * n)));
      if (!(global_residual < 1e-12)) status = 1;
    });
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
      std::printf("%d ranks x %s threads, %lld cells, %d steps: %.3f s (%.0f ns per cell and step)\n", ranks,
                  args.threads ? std::to_string(*args.threads).c_str() : "all", static_cast<long long>(args.cells),
                  args.steps, seconds, 1e9 * seconds / double(args.cells) / args.steps);

    if (args.check) {
      // Every rank's cells to rank 0, which integrates them all alone.
      std::vector<int> counts(static_cast<std::size_t>(ranks)), offsets(static_cast<std::size_t>(ranks));
      for (int r = 0; r < ranks; ++r) {
        const std::int64_t f = args.cells * r / ranks, l = args.cells * (r + 1) / ranks;
        counts[static_cast<std::size_t>(r)] = static_cast<int>((l - f) * n);
        offsets[static_cast<std::size_t>(r)] = static_cast<int>(f * n);
      }
      std::vector<double> all(rank == 0 ? static_cast<std::size_t>(args.cells * n) : 0);
      MPI_Gatherv(x.data(), static_cast<int>(x.size()), MPI_DOUBLE, all.data(), counts.data(), offsets.data(),
                  MPI_DOUBLE, 0, MPI_COMM_WORLD);
      if (rank == 0) {
        std::vector<double> one(static_cast<std::size_t>(args.cells * n));
        for (std::int64_t i = 0; i < args.cells; ++i) kinetics::initial_state(i, &one[static_cast<std::size_t>(i * n)]);
        integrate(one, args.steps, dt, args.threads, [](int, double, double) {});
        double worst = 0;
        for (std::size_t i = 0; i < one.size(); ++i) worst = std::max(worst, std::abs(all[i] - one[i]) / (1 + std::abs(one[i])));
        const bool same_bits = std::memcmp(all.data(), one.data(), one.size() * sizeof(double)) == 0;
        std::printf("against one rank: worst difference %.2e%s\n", worst, same_bits ? " (the same bits)" : "");
        if (!(worst <= 1e-12)) status = 1;
      }
    }
    MPI_Allreduce(MPI_IN_PLACE, &status, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0) std::printf("%s\n", status == 0 ? "mpi_kinetics: ok" : "mpi_kinetics: FAILED");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_kinetics (rank %d): %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Finalize();
  return status;
}
