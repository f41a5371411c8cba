// Plans kept across calls: a program recorded again (an implicit solver's
// next step, a loop over batches) runs the plan of its first call, with no
// linearizing, transposing or planning.
#pragma once

#include "engine/engine.hpp"
#include "graph/program.hpp"

#include <batchjac/jacobian_options.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace batchjac::engine {

// Everything planning reads, so that equal keys get equal plans (and equal
// numbers): the program's structure, shapes and dtypes, the values of its
// shared constants, the options that shape a plan, BATCHJAC_SPARSE.
// Per-example data (the source, per-example constants) and the batch size
// are not in it; a plan binds them per call, except that under automatic
// `small_call` (a call that takes a mode without planning both,
// engine/jacobian.cpp) is.
// The shared constants are referenced, not copied (tensors are immutable):
// a kept plan usually holds the same buffers, so they are kept once.
class PlanKey {
 public:
  // `values_only`: the key of a plan of the kept value alone (prepare_value);
  // `value_optional`: of a Jacobian plan that keeps the value if it is cheap.
  PlanKey(const graph::Program& program, const JacobianOptions& options, bool small_call,
          bool values_only = false, bool value_optional = false);
  bool operator==(const PlanKey& other) const;
  std::uint64_t hash() const { return hash_; }
  // The shared constants, in the order the words describe them.
  std::span<const Tensor> constants() const { return constants_; }
  // Memory the key holds: its words and its constants' buffers (each once).
  std::size_t bytes() const;

 private:
  std::vector<std::uint64_t> words_;
  std::vector<Tensor> constants_;
  std::uint64_t hash_ = 0;
};

// A kept plan and its key hold the program's shared constants: those over
// the caller's memory (bj::view) are replaced by copies, so that nothing
// kept points into it. True if any was (a key made before is stale).
bool own_shared_views(graph::Program& program);

// The plan kept for `key`, or null. Thread-safe.
std::shared_ptr<const Prepared> find_plan(const PlanKey& key);
// Keeps `plan` for `key`. The cache holds the programs used last, at most
// 16 and 32 MiB in all (key and plan: mostly shared constants, which they
// share, and copies the plan makes of them), each at most 4 MiB (larger
// ones are not kept): its memory does not grow with the batch or the
// number of calls. Thread-safe.
void keep_plan(PlanKey key, std::shared_ptr<const Prepared> plan);

struct PlanCacheStats {
  std::uint64_t hits = 0, misses = 0;
  std::size_t entries = 0;
  std::size_t bytes = 0;  // of memory the kept keys and plans hold
};
PlanCacheStats plan_cache_stats();
// Forgets every plan (and resets the counts).
void clear_plan_cache();

}  // namespace batchjac::engine
