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
#include <span>
#include <string>
#include <vector>

namespace batchjac::ops {

enum class Prim : std::uint8_t {
  unary,          // attrs.op indexes math::Unary
  unary_partial,  // inputs (x, y) -> dy/dx of math::Unary[attrs.op]
  binary,         // attrs.op indexes math::Binary; NumPy broadcasting
  matmul,
  reduce_sum,
  reshape,
  broadcast_to,
  stop_gradient,
  cast,
};

struct Attrs {
  int op = 0;                      // elementwise: index in its math list
  double scalar = 0.0;             // pow's exponent
  std::vector<std::int64_t> axes;  // reduce_sum: sorted, non-negative
  Shape shape;                     // reshape / broadcast_to: the result shape
  bool keepdims = false;
  bool transpose_a = false;
  bool transpose_b = false;
  DType dtype = DType::float64;    // cast: the result dtype
};

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

// The name TF gives the op, for messages.
std::string op_name(const Node& node);

// Raises ValueError: "<op>: <message>".
[[noreturn]] void fail(const Node& node, const std::string& message);

}  // namespace batchjac::ops
