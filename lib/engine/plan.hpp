// Planning: lower a program once per call into kernel steps, and lay out the
// per-task block buffers ([D][element][L] for directions, [element][L] for
// primal values).
#pragma once

#include "codegen/compile.hpp"
#include "graph/program.hpp"
#include "kernels/kernels.hpp"
#include "ops/lowering.hpp"

#include <batchjac/jacobian_options.hpp>

#include <limits>
#include <memory>
#include <optional>
#include <vector>

namespace batchjac::engine {

// A per-example tensor loaded into lanes for each block: the parameter, or a
// per-example constant. Its data ([batch][elements] of `dtype`) is bound per
// call.
struct Load {
  int value = -1;
  int constant = -1;  // index in the program's constants; -1: the parameter
  DType dtype = DType::float64;
  std::int64_t elements = 0;
};

template <class T>
struct Plan {
  const kernels::KernelTable<T>* table = nullptr;
  std::vector<ops::Step<T>> primal_steps;
  // Linear steps that read only the seed and shared constants give the same
  // numbers for every example: they run once per direction chunk, not per block.
  std::vector<ops::Step<T>> invariant_steps;
  std::vector<ops::Step<T>> linear_steps;
  // The same steps with strong zeros (bind_strong_zeros): a chunk whose
  // answer has a NaN runs again with these. Their products round as the
  // plain ones wherever no factor is zero, so only entries that met
  // 0 * inf or 0 * NaN change.
  std::vector<ops::Step<T>> strong_invariant_steps;
  std::vector<ops::Step<T>> strong_linear_steps;
  ops::MapStore maps;
  std::vector<Load> loads;
  std::vector<Tensor> converted;    // shared constants converted to T
  std::vector<T*> shared_ptr;       // per value: shared constant data, else nullptr
  std::vector<std::int64_t> offset; // per value: position in the block buffer
  std::vector<std::int64_t> dir_stride;
  std::vector<std::uint8_t> varying;
  // Per value: a computed primal value that only primal steps read (not a
  // coefficient of the linear steps or sparse terms, not the kept value).
  std::vector<std::uint8_t> primal_only;
  std::int64_t lanes = 1;
  std::int64_t max_dirs = 1;        // directions per pass (D)
  std::int64_t buffer_size = 0;     // elements of T per task
  std::int64_t n_dirs = 0;          // all directions: source or target elements
  std::int64_t answer_elems = 0;    // elements of the answer per direction
  int seed = -1, answer = -1;     // -1: a plan of values only
  // The program's kept value (the target's), stored per block when a call
  // asks for it (-1: the plan does not keep one).
  int value = -1;
  JacobianMode mode = JacobianMode::forward;
  // The sparse form (engine/sparse.hpp), used instead of the linear steps
  // when it is much cheaper: per block, ones fill `ones_offset`, the ops
  // write the example's Jacobian entries, lanes last, at `sparse_out`.
  bool sparse = false;
  // A sparse plan of a Hessian (graph::Program::symmetric) whose ops write
  // the entries on and above the diagonal only: the runner copies the rest.
  bool mirrored = false;
  // Estimated work per block (vector operations), to choose between plans.
  double cost = 0;
  std::vector<kernels::SparseOp> sparse_ops;
  std::vector<kernels::SparseTerm<T>> sparse_terms;
  std::int64_t ones_offset = -1;
  std::int64_t sparse_out = -1;
  // Per group of `lanes` consecutive Jacobian entries: whether any is written.
  std::vector<std::uint8_t> live_groups;
  // Lane-shared copies: per chunk, direction d of element e of `from` (lane
  // 0) goes to offset[to] + e * max_dirs + d.
  struct LaneShared {
    int from = -1, to = -1;
    std::int64_t elems = 0;
  };
  std::vector<LaneShared> lane_shared;
  std::vector<std::vector<T>> transposed;  // shared constants stored transposed for a kernel
  // The generated kernel of a sparse plan (codegen/emit.hpp), once loaded;
  // null: the interpreter runs.
  std::shared_ptr<const codegen::Module> generated;
  // The last linear step is a scaled matmul (kernels::MatmulArgs::rows) that
  // can write the answer straight to the Jacobian rows.
  bool answer_to_rows = false;
};

// The plan of one mode; nullopt as soon as its cost cannot come below
// cost_to_beat (the other mode's plan, under automatic): the rest of it is
// not built. The program's `kept` value, if any, lives to the end of the
// primal steps, for calls that want it written out too. A linear program
// with no input (lin.input < 0) makes a plan of the kept value alone.
template <class T>
std::optional<Plan<T>> make_plan(const graph::Program& program, const graph::LinearProgram& lin,
                                 JacobianMode mode, const JacobianOptions& options,
                                 double cost_to_beat = std::numeric_limits<double>::infinity());

extern template std::optional<Plan<float>> make_plan<float>(const graph::Program&,
                                                            const graph::LinearProgram&, JacobianMode,
                                                            const JacobianOptions&, double);
extern template std::optional<Plan<double>> make_plan<double>(const graph::Program&,
                                                              const graph::LinearProgram&, JacobianMode,
                                                              const JacobianOptions&, double);

// BATCHJAC_SPARSE=0 never uses the sparse form, =1 whenever it exists (tests
// run both ways); unset (-1): when it does at most half the dense work.
int sparse_override();

}  // namespace batchjac::engine
