// The sparse form of a linear program: every (element, direction) pair that
// can be nonzero gets a slot of one lane-vector, computed as a short sum of
// terms; pairs that are structurally zero (a direction that cannot reach an
// element, a zero in a shared constant) get nothing and cost nothing.
//
// Kinetics-like programs move each direction through a few elements only, so
// the dense engine's [D][element][L] passes do mostly multiplications by zero;
// this form does the work a hand-written Jacobian does. The plan uses it when
// it counts clearly fewer operations than the dense steps (engine/plan.cpp).
#pragma once

#include "graph/program.hpp"
#include "ops/lowering.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace batchjac::engine {

// scale * in * coef * coef2 * coef3, of at most three factors besides the
// slot of ones. in: a slot (0 is the slot of ones); coef_value < 0: no
// coefficient, else element coef_elem of that per-example value (computed,
// parameter or per-example constant); coef2 and coef3 likewise, each only
// beside the one before (a slot made of a term with values, inlined into a
// reader that has a coefficient). Shared constants are folded into scale.
// A coefficient id from kSlotCoefficient on reads slot id - kSlotCoefficient:
// a sum of per-example values that no direction reaches, written once for
// the ops that share it (engine/sparse.cpp, share_sums).
inline constexpr int kSlotCoefficient = 1 << 30;
// Whether coefficient id `v` is a per-example value (not none, not a slot).
inline constexpr bool reads_value(int v) { return v >= 0 && v < kSlotCoefficient; }
struct SymTerm {
  int in = 0;
  int coef_value = -1;
  std::int64_t coef_elem = 0;
  double scale = 1;
  int coef2_value = -1;
  std::int64_t coef2_elem = 0;
  int coef3_value = -1;
  std::int64_t coef3_elem = 0;
};
// Calls f(slot) for each slot term t reads as a coefficient.
template <class F>
void each_coefficient_slot(const SymTerm& t, F f) {
  for (const int v : {t.coef_value, t.coef2_value, t.coef3_value})
    if (v >= kSlotCoefficient) f(v - kSlotCoefficient);
}

// Writes slot `out` (or, from n_slots on, entry out - n_slots of one
// example's Jacobian, row-major) as the sum of terms[begin, end); those with
// a coefficient come first, up to coef_end.
struct SymOp {
  int out = 0;
  int begin = 0, coef_end = 0, end = 0;
};

struct SparseProgram {
  int n_slots = 1;
  std::vector<SymOp> ops;
  std::vector<SymTerm> terms;
  // A linear value divided by a per-example value v (x_dot / det) becomes
  // terms of x_dot times 1 / v: value id n_values + k (n_values: the
  // program's) is the elementwise reciprocal of value reciprocals[k], with
  // its shape, which the plan computes after the primal steps.
  std::vector<int> reciprocals;
};

// The sparse form of `steps` (the linear steps in order) from the seed to the
// answer, writing every Jacobian entry (`mirrored`, of a square Jacobian:
// those on and above the diagonal only, (i, j) with i <= j); nullopt when a
// step has no sparse form or when it would take more than max_terms terms.
// Forward: directions are columns; reverse: rows.
template <class T>
std::optional<SparseProgram> compile_sparse(const graph::Program& program,
                                            const kernels::KernelTable<T>& table,
                                            std::span<const ops::Step<T>> steps, int seed,
                                            int answer, bool forward, bool mirrored, std::int64_t max_terms);

extern template std::optional<SparseProgram> compile_sparse<float>(
    const graph::Program&, const kernels::KernelTable<float>&, std::span<const ops::Step<float>>,
    int, int, bool, bool, std::int64_t);
extern template std::optional<SparseProgram> compile_sparse<double>(
    const graph::Program&, const kernels::KernelTable<double>&, std::span<const ops::Step<double>>,
    int, int, bool, bool, std::int64_t);

}  // namespace batchjac::engine
