// Options of GradientTape::batch_jacobian and jacobian, as TF's arguments.
#pragma once

#include <cstdint>
#include <optional>

namespace batchjac {

// What a derivative is when the target does not depend on the source.
enum class UnconnectedGradients { none, zero };

enum class JacobianMode {
  // Plan both and run the one with less work per block of examples; calls of
  // at most 4096 Jacobian entries in all take forward if the source has no
  // more elements than the target, else reverse, without planning twice.
  automatic,
  forward,    // one pass per chunk of source elements (columns)
  reverse,    // one pass per chunk of target elements (rows)
};

struct JacobianOptions {
  // none: an unconnected target gives nullopt; zero: zeros of the full shape.
  UnconnectedGradients unconnected_gradients = UnconnectedGradients::none;
  // Rows (reverse) or columns (forward) computed together by one task; bounds
  // the memory of a task as in TF. Unset: chosen to fit the cache. >= 1.
  // Programs whose directions reach few elements (a kinetics source term, an
  // elementwise map) run in the engine's sparse form instead, which computes
  // every row or column of a block of examples in one pass, holding only the
  // (element, direction) pairs that can be nonzero; there this option and
  // the next change nothing.
  std::optional<std::int64_t> parallel_iterations;
  // false: one row or column at a time (TF's while_loop), same numbers.
  bool experimental_use_pfor = true;
  JacobianMode mode = JacobianMode::automatic;
  // Threads used, at most; >= 1. The caller's threads come first:
  // - unset: the caller's task arena. Called inside the caller's
  //   tbb::task_arena (or a TBB parallel loop), the call's tasks run there,
  //   next to the caller's own, in no pool of batchjac's; outside any arena,
  //   in TBB's implicit arena (all cores).
  // - unset, called from an active OpenMP parallel region (one call per
  //   thread of the team): the call runs on its calling thread alone, as
  //   with 1. The team already holds the cores; no TBB worker joins.
  // - n: a cap. A caller's arena of at most n threads runs the call
  //   itself; a larger one (or the implicit arena, or an OpenMP thread,
  //   when n is below the machine's concurrency) hands it to a task arena of
  //   n threads that batchjac keeps for that n. Inside an OpenMP team of T
  //   threads, n > 1 lets each call add TBB workers to the team's threads:
  //   up to T + n - 1 threads on the machine, the caller's choice.
  // A value above the machine's concurrency (the hardware threads this
  // process may run on) is clamped to it: more threads would only take
  // turns, and each thread count keeps a task arena for the life of the
  // process. Results are bitwise the same for every value and caller.
  std::optional<int> max_threads;
  // false: the interpreter runs even where a generated kernel is loaded
  // (<batchjac/codegen.hpp>); the numbers are the same either way.
  bool generated_code = true;
};

}  // namespace batchjac
