// The caller's threads: a call made inside the caller's tbb::task_arena, or
// from the tasks of a TBB parallel loop there, runs in that arena (batchjac
// makes no arena of its own) and gives the bits of a one-thread call.
// OpenMP callers: tests/engine/test_openmp.cpp.
#include "engine/engine.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <optional>
#include <vector>

namespace bj = batchjac;

namespace {

// Shared weights, a reduction, elementwise math: [b, 6] -> [b, 5].
bj::Tensor program(const bj::Tensor& x) {
  std::mt19937_64 rng(31);
  const bj::Tensor w = check::random_tensor(rng, {6, 5}, -0.5, 0.5);
  return bj::tanh(bj::matmul(x, w)) + bj::sin(bj::reduce_sum(x * x, {1}, true));
}

bj::Tensor jacobian(const bj::Tensor& x, std::optional<int> max_threads) {
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = program(x);
  bj::JacobianOptions o;
  o.max_threads = max_threads;
  auto j = tape.batch_jacobian(y, x, o);
  REQUIRE(j.has_value());
  return *j;
}

}  // namespace

TEST_CASE("a call inside the caller's task_arena runs there", "[engine][threads]") {
  std::mt19937_64 rng(1);
  const bj::Tensor x = check::random_tensor(rng, {3000, 6}, -1, 1);  // hundreds of blocks
  const bj::Tensor ref = jacobian(x, 1);
  const int most = bj::engine::max_concurrency();
  for (int concurrency : {1, 2, most}) {
    INFO("caller's arena of " << concurrency << " threads");
    tbb::task_arena caller(concurrency);
    // max_threads unset, equal to the arena's size, above it: the caller's
    // arena suffices each time, so no arena of batchjac's is made.
    const std::size_t arenas = bj::engine::task_arenas();
    for (std::optional<int> n : {std::optional<int>{}, std::optional<int>{concurrency}, std::optional<int>{most + 8}}) {
      INFO("max_threads " << n.value_or(0));
      caller.execute([&] { CHECK(check::same_bits(jacobian(x, n), ref)); });
    }
    CHECK(bj::engine::task_arenas() == arenas);
  }
}

TEST_CASE("one call per iteration of a TBB parallel loop in the caller's arena", "[engine][threads]") {
  // Each task records on its own tape and calls batch_jacobian, whose tasks
  // join the same arena: no deadlock, no second pool, the same bits.
#if defined(__SANITIZE_THREAD__)
  // Debian's oneTBB is not instrumented: ThreadSanitizer cannot see this
  // test's own parallel_for join (the engine annotates its own) and would
  // report the results read after it as races.
  return;
#endif
  const int cells = 12;
  std::vector<bj::Tensor> xs, refs;
  for (int c = 0; c < cells; ++c) {
    std::mt19937_64 rng(100 + static_cast<std::uint64_t>(c));
    xs.push_back(check::random_tensor(rng, {500, 6}, -1, 1));
    refs.push_back(jacobian(xs.back(), 1));
  }
  const std::size_t arenas = bj::engine::task_arenas();
  tbb::task_arena caller(bj::engine::max_concurrency());
  for (std::optional<int> n : {std::optional<int>{}, std::optional<int>{bj::engine::max_concurrency()}}) {
    std::vector<std::optional<bj::Tensor>> got(cells);
    caller.execute([&] {
      tbb::parallel_for(0, cells, [&](int c) { got[static_cast<std::size_t>(c)] = jacobian(xs[static_cast<std::size_t>(c)], n); });
    });
    for (int c = 0; c < cells; ++c) {
      INFO("cell " << c << ", max_threads " << n.value_or(0));
      REQUIRE(got[static_cast<std::size_t>(c)].has_value());
      CHECK(check::same_bits(*got[static_cast<std::size_t>(c)], refs[static_cast<std::size_t>(c)]));
    }
  }
  CHECK(bj::engine::task_arenas() == arenas);
}
