// The block engine: runs a linear program over blocks of L examples (one per
// SIMD lane) and chunks of D directions, writing the dense Jacobian.
#pragma once

#include "graph/program.hpp"

#include <batchjac/jacobian_options.hpp>
#include <batchjac/tensor.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <span>

namespace batchjac::engine {

// One way to compute the Jacobian: mode forward (lin = JVP program: directions
// are source elements) or reverse (lin = VJP program: directions are target
// elements), with the primal program pruned for it.
struct Candidate {
  const graph::Program* program = nullptr;
  const graph::LinearProgram* lin = nullptr;
  JacobianMode mode = JacobianMode::forward;
};

// Where a call writes the program's kept value: program.batch rows of its
// elements, of type `dtype` (float or double).
struct ValueOut {
  void* data = nullptr;
  DType dtype = DType::float64;
};

// A call's data for a plan: its batch size, the parameter's rows and the
// program's constants (per-example ones [batch, ...]), in the program's
// order. A program's own (program.batch, program.constants) is one; a
// traced function binds the caller's arrays instead (bj::trace).
struct Binding {
  std::int64_t batch = 0;
  const Tensor* source = nullptr;
  std::span<const Tensor> constants;
  // A Hessian's call (square per-example answers; the plan's program has
  // graph::Program::symmetric): the runner makes each block's answers
  // symmetric before storing them, entry (j, i) a copy of entry (i, j) for
  // i < j, and clears the flag if some block's layout did not let it (the
  // caller then does it in a pass, symmetric_hessian).
  std::atomic<bool>* symmetric = nullptr;
};

// A plan ready to run: it holds no pointer to a call's per-example data, so
// it runs any call whose program has the same key (engine/plan_cache.hpp).
class Prepared {
 public:
  virtual ~Prepared() = default;
  // Runs the plan on a call's data (`program` gives only the shapes):
  // `out` receives call.batch Jacobians of (target elements x source
  // elements) each, row-major, of type `out_dtype` (float or double), and
  // `value` (if given; the program must have a kept value) that value, in
  // the same pass over the blocks. A plan of values only writes `value`
  // alone (`out` is unused).
  virtual void run(const graph::Program& program, const Binding& call, void* out, DType out_dtype,
                   const JacobianOptions& options, const ValueOut* value = nullptr) const = 0;
  // The same, on `program`'s own batch and constants, `source` the parameter's values.
  void run(const graph::Program& program, const Tensor& source, void* out, DType out_dtype,
           const JacobianOptions& options, const ValueOut* value = nullptr) const {
    run(program, Binding{program.batch, &source, program.constants}, out, out_dtype, options, value);
  }
  // Its estimated work per block (vector operations), and the examples in a block.
  virtual double cost() const = 0;
  virtual std::int64_t lanes() const = 0;
  // Whether it writes the program's kept value when asked.
  virtual bool keeps_value() const = 0;
  // Whether its calls run a generated kernel (loaded, or compiling and not
  // failed) when generation is on and the options allow it.
  virtual bool generated() const = 0;
  // Memory the plan holds, in bytes: its steps, maps and terms, copies it
  // made of shared constants, and the constants it keeps, except buffers of
  // `counted` (a plan cache key's, counted there).
  virtual std::size_t bytes(std::span<const Tensor> counted) const = 0;
};

// Plans the candidates in order and keeps the one that does the least work
// per block (the first of equals). A candidate stops planning as soon as it
// cannot beat the best before it.
std::unique_ptr<const Prepared> prepare(std::span<const Candidate> candidates,
                                        const JacobianOptions& options);
// A plan that computes the program's kept value alone, block by block.
std::unique_ptr<const Prepared> prepare_value(const graph::Program& program);

// The most threads a call uses: the hardware threads this process may run
// on (tbb::info::default_concurrency()). A larger max_threads is clamped to it.
int max_concurrency();
// The task arenas made for max_threads so far: one per thread count used,
// so at most max_concurrency() of them (for tests).
std::size_t task_arenas();

}  // namespace batchjac::engine
