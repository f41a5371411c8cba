// Shape and indexing primitives: reshape, broadcast_to, the index maps
// (transpose, slice, gather, roll, tile, pad, repeat) with their scatter transposes,
// and concat.
#pragma once

#include "ops/primitive.hpp"

namespace batchjac::ops {

// attrs.shape: the result shape, with -1 already resolved. A copy.
struct ReshapeOp {
  static constexpr Prim id = Prim::reshape;
  BATCHJAC_PRIMITIVE_RULES
};

// attrs.shape: the result shape, which the input broadcasts to.
struct BroadcastToOp {
  static constexpr Prim id = Prim::broadcast_to;
  BATCHJAC_PRIMITIVE_RULES
};

// out[e] = in[map(e)], or 0 where map(e) is outside (pad); attrs.op is an
// IndexMapKind. Linear; its transpose is IndexScatterOp with the same map.
struct IndexMapOp {
  static constexpr Prim id = Prim::index_map;
  BATCHJAC_PRIMITIVE_RULES
};

// The transpose of an index map: out (attrs.source_shape) sums in[e] into
// out[map(e)]. Appears in derived (VJP) programs, and in gradients derived
// as ops (nested tapes, batch_hessian), which are differentiated again.
struct IndexScatterOp {
  static constexpr Prim id = Prim::index_scatter;
  BATCHJAC_PRIMITIVE_RULES
};

// Joins its inputs along attrs.arg.
struct ConcatOp {
  static constexpr Prim id = Prim::concat;
  BATCHJAC_PRIMITIVE_RULES
};

// The result shape of an index map on `in`, and for each result element the
// input element it reads (-1: zero). ValueError naming the op on bad attrs.
struct IndexMapping {
  Shape out;
  std::vector<std::int64_t> map;
};
IndexMapping index_mapping(const Node& node, const Shape& in, bool with_map = true);

}  // namespace batchjac::ops
