// OpenMP callers: one batch_jacobian per thread of a parallel loop. With
// max_threads unset each call runs on its own thread (the team holds the
// cores): no TBB worker thread is started, nothing deadlocks, and every
// result has the bits of a one-thread call. max_threads = n asks for TBB
// threads on top of the team, and still gives the same bits.
//
// Built with OpenMP (tests/CMakeLists.txt); each Catch case runs in a process
// of its own under ctest, which the thread count below relies on.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <omp.h>

#include <filesystem>
#include <optional>
#include <vector>

namespace bj = batchjac;

namespace {

bj::Tensor program(const bj::Tensor& x) {
  std::mt19937_64 rng(41);
  const bj::Tensor w = check::random_tensor(rng, {6, 5}, -0.5, 0.5);
  return bj::tanh(bj::matmul(x, w)) + bj::sin(bj::reduce_sum(x * x, {1}, true));
}

std::optional<bj::Tensor> jacobian(const bj::Tensor& x, std::optional<int> max_threads) {
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = program(x);
  bj::JacobianOptions o;
  o.max_threads = max_threads;
  return tape.batch_jacobian(y, x, o);
}

// Threads of this process now.
std::ptrdiff_t process_threads() {
  const std::filesystem::directory_iterator tasks("/proc/self/task");
  return std::distance(std::filesystem::begin(tasks), std::filesystem::end(tasks));
}

struct Cells {
  std::vector<bj::Tensor> x, ref;
  explicit Cells(int n) {
    for (int c = 0; c < n; ++c) {
      std::mt19937_64 rng(200 + static_cast<std::uint64_t>(c));
      x.push_back(check::random_tensor(rng, {700, 6}, -1, 1));  // ~90 blocks: a threaded call
      ref.push_back(*jacobian(x.back(), 1));                       // inline: starts no thread
    }
  }
  // One call per cell, the cells spread over a team of `team` threads.
  void run(int team, std::optional<int> max_threads) const {
    const int n = static_cast<int>(x.size());
    std::vector<std::optional<bj::Tensor>> got(x.size());
#pragma omp parallel for num_threads(team) schedule(dynamic)
    for (int c = 0; c < n; ++c) got[static_cast<std::size_t>(c)] = jacobian(x[static_cast<std::size_t>(c)], max_threads);
    for (int c = 0; c < n; ++c) {
      INFO("cell " << c << ", team " << team << ", max_threads " << max_threads.value_or(0));
      REQUIRE(got[static_cast<std::size_t>(c)].has_value());
      CHECK(check::same_bits(*got[static_cast<std::size_t>(c)], ref[static_cast<std::size_t>(c)]));
    }
  }
};

}  // namespace

TEST_CASE("OpenMP loop, max_threads unset: each call on its thread, no TBB workers", "[openmp]") {
  const Cells cells(8);
  for (int team : {2, 4}) {
    // The team's threads, started by an empty region (libgomp keeps them).
#pragma omp parallel num_threads(team)
    { [[maybe_unused]] volatile int here = omp_get_thread_num(); }
    const auto before = process_threads();
    cells.run(team, std::nullopt);
    INFO("team " << team);
    CHECK(process_threads() == before);  // TBB started no worker thread
  }
}

TEST_CASE("OpenMP loop, max_threads set: no deadlock, the same bits", "[openmp]") {
  const Cells cells(8);
  for (int team : {2, 4})
    for (int n : {1, 2, 3}) cells.run(team, n);
}

TEST_CASE("a team of one thread is not a parallel region: the caller's arena", "[openmp]") {
  const Cells cells(3);
  cells.run(1, std::nullopt);
}
