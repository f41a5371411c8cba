// Batch-axis rules shared by several primitives.
#pragma once

#include "ops/primitive.hpp"

namespace batchjac::ops {

// NumPy-broadcasting ops: batched inputs must have the result's rank (their
// axis 0 is the result's axis 0); constants of that rank with a leading b are
// per-example, with a leading 1 or a lower rank are shared.
void elementwise_batch(const Node& node, BatchQuery& q);

// One input whose axis 0 must stay axis 0 (reduce_sum, reshape, ...).
void single_batch(const Node& node, BatchQuery& q);

// Requires a float dtype; ValueError naming the op otherwise.
void require_float(std::string_view op, const ValueInfo& v, int input);
// Requires equal float dtypes for all inputs; in[0] is the op's input
// first_input (named in messages).
DType common_float_dtype(std::string_view op, std::span<const ValueInfo> in, int first_input = 0);

}  // namespace batchjac::ops
