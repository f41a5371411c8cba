// What every primitive provides, and the records that programs are made of.
//
// A primitive is a struct with static members (see ops/op_list.hpp for the
// list): `name(attrs)`, the shape rule `infer`, the batch-axis rule `batch`,
// the JVP rule `jvp`, the transpose rule `transpose` (linear primitives only),
// and `lower`, which turns a node into kernel steps for eager evaluation and
// for the engine alike.
#pragma once

#include <batchjac/dtype.hpp>
#include <batchjac/shape.hpp>
#include <batchjac/tensor.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace batchjac::autodiff {
class JvpContext;
class TransposeContext;
}  // namespace batchjac::autodiff

namespace batchjac::detail {
struct CustomJvpTrace;
}  // namespace batchjac::detail

namespace batchjac::ops {

template <class T>
class Lowering;

enum class Prim : std::uint8_t {
  unary,          // attrs.op indexes math::Unary
  unary_partial,  // inputs (x, y) -> dy/dx of math::Unary[attrs.op]
  binary,         // attrs.op indexes math::Binary; NumPy broadcasting
  binary_partial, // inputs (a, b, y) -> dy/da (attrs.arg 0) or dy/db (1)
  where,          // (cond, a, b) -> cond ? a : b, broadcasting
  lincomb,        // internal, linear: x c + z (attrs.op 0) or x1 c1 + x2 c2 (1)
  matmul,
  reduce_sum,
  reduce,         // attrs.op: kernels::kProd, kMax or kMin over attrs.axes
  scan,           // running sum (attrs.op = kSum) or product along attrs.arg
  reshape,
  broadcast_to,
  index_map,      // out[e] = in[map(e)] or 0: transpose, slice, gather, roll, tile, pad, repeat
  index_scatter,  // its transpose: out[map(e)] += in[e], out shaped attrs.shape
  concat,         // along attrs.arg
  stop_gradient,
  cast,
  custom_jvp,     // (y, x_1..x_n) -> y, differentiated by a user's rule (bj::custom_jvp)
  // Small matrices (ops/small_matrix.cpp).
  matrix_inverse,      // [..., n, n] -> [..., n, n]
  matrix_determinant,  // [..., n, n] -> [...]
};

// The index_map kinds (attrs.op) and what their attrs hold.
enum IndexMapKind : int {
  kTranspose,  // axes = perm
  kSlice,      // axes = begin, shape = size (resolved)
  kGather,     // axes = indices, arg = axis
  kRoll,       // axes = shift of every axis
  kTile,       // axes = multiples
  kPad,        // axes = {before_0, after_0, before_1, ...}
  kRepeat,     // axes = repeats of each element along axis arg
};

// Every field is part of a kept plan's key (engine/plan_cache.cpp): a new
// field must be added there too.
struct Attrs {
  int op = 0;                      // elementwise: index in its math list
  int arg = 0;                     // binary_partial: which input
  double scalar = 0.0;             // pow's exponent
  std::vector<std::int64_t> axes;  // reduce_sum: sorted, non-negative
  Shape shape;                     // reshape / broadcast_to: the result; slice: the size
  Shape source_shape;              // index_scatter: the shape it scatters into
  bool keepdims = false;
  bool exclusive = false;          // scan
  bool reverse = false;            // scan
  bool transpose_a = false;
  bool transpose_b = false;
  DType dtype = DType::float64;    // cast: the result dtype
  // custom_jvp as recorded: the user's JVP rule, traced (graph/tape.hpp).
  // Programs hold it sliced instead (Program::rules[op]) and this is null.
  std::shared_ptr<const detail::CustomJvpTrace> custom;
};

// Attrs with one field set, for rules that emit nodes.
inline Attrs op_attrs(int op, double scalar = 0.0) {
  Attrs a;
  a.op = op;
  a.scalar = scalar;
  return a;
}
inline Attrs shape_attrs(const Shape& shape) {
  Attrs a;
  a.shape = shape;
  return a;
}

// A batch-first shape without its batch axis.
inline Shape drop_batch_axis(const Shape& s) {
  return Shape(std::vector<std::int64_t>(s.begin() + 1, s.end()));
}

struct ValueInfo {
  Shape shape;
  DType dtype = DType::float64;
};

struct Node {
  Prim prim;
  Attrs attrs;
  std::vector<int> inputs;
  int output = -1;
};

// How a recorded input relates to the batch axis, for the batch-axis rules.
enum class Batching : std::uint8_t {
  batched,   // axis 0 is the example axis (computed from the source)
  constant,  // not from the source; the rule decides: per-example or shared
  shared,    // one value for every example (decided)
};

// What a batch-axis rule is given and returns.
struct BatchQuery {
  std::span<const Shape> in_shapes;  // full shapes, batch first
  std::span<Batching> in;            // constants are decided in place
  std::int64_t batch = 0;
  // In: the node's attrs; out: its attrs per example (axes shifted, ...).
  Attrs attrs;
  // Out: per-example shapes of the inputs (batched: shape[1:]; shared: as
  // they broadcast per example).
  std::vector<Shape> per_example;
};

// The rules every primitive struct declares (ops/op_list.hpp dispatches to them).
#define BATCHJAC_PRIMITIVE_RULES                                                   \
  static std::string name(const Attrs& a);                                        \
  static ValueInfo infer(const Node& n, std::span<const ValueInfo> in);           \
  static void batch(const Node& n, BatchQuery& q);                                \
  static int jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t); \
  static void transpose(autodiff::TransposeContext& c, const Node& n, int ct);    \
  template <class T>                                                              \
  static void lower(Lowering<T>& lo, const Node& n);

// The name TF gives the op, for messages.
std::string op_name(const Node& node);

// Raises ValueError: "<op>: <message>".
[[noreturn]] void fail(const Node& node, const std::string& message);

}  // namespace batchjac::ops
