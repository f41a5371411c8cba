// The linear-program optimiser: fewer passes over [D][element][L] buffers.
//
// Every linear node costs one pass per direction, a primal node one pass per
// block; so work moves from the first to the second:
//  - a chain of scalings y = (x c1) c2 becomes y = x (c1 c2), the product
//    computed once per block (also through negation: -(x c) = x (-c));
//  - y = x1 c1 + x2 c2 (or x c + z, or with a minus) becomes one fused pass.
// Only single-use intermediates are rewritten, so no value is computed twice.
#include "autodiff/autodiff.hpp"

#include "ops/elementwise_math.hpp"
#include "ops/op_list.hpp"

#include <batchjac/tensor.hpp>

namespace batchjac::autodiff {

namespace {
namespace m = ops::math;
using m::kNegative, m::kAdd, m::kSubtract, m::kMultiply;

struct Optimizer {
  graph::Program& program;
  graph::LinearProgram& lin;
  std::vector<int> producer;  // value -> index in lin.nodes, or -1
  std::vector<int> uses;

  bool linear(int v) const { return program.values[v].kind == graph::ValueKind::linear; }
  const Shape& shape(int v) const { return program.info(v).shape; }

  int primal(ops::Prim prim, int op, std::vector<int> inputs) {
    const int v = program.emit(program.nodes, graph::ValueKind::primal, prim, ops::op_attrs(op),
                               std::move(inputs));
    grow();
    return v;
  }
  void grow() {
    producer.resize(program.values.size(), -1);
    uses.resize(program.values.size(), 0);
  }

  // x c with x linear (x and c broadcast to the result): a scaling node.
  struct Scaling {
    int x = -1, c = -1;
  };
  Scaling scaling(const ops::Node& n) const {
    if (n.prim != ops::Prim::binary || n.attrs.op != kMultiply) return {};
    const bool first = linear(n.inputs[0]);
    const int x = first ? n.inputs[0] : n.inputs[1], c = first ? n.inputs[1] : n.inputs[0];
    if (linear(c)) return {};
    return {x, c};
  }
  // The scaling that single-use value v is, if any.
  Scaling single_use_scaling(int v) const {
    if (uses[v] != 1 || producer[v] < 0) return {};
    return scaling(lin.nodes[producer[v]]);
  }

  void run() {
    grow();
    for (std::size_t i = 0; i < lin.nodes.size(); ++i) {
      producer[lin.nodes[i].output] = static_cast<int>(i);
      for (int v : lin.nodes[i].inputs) ++uses[v];
    }
    if (lin.output >= 0) ++uses[lin.output];
    for (std::size_t i = 0; i < lin.nodes.size(); ++i) {
      ops::Node n = lin.nodes[i];
      if (rewrite(n)) lin.nodes[i] = std::move(n);
    }
  }

  // Replaces node n (in place) by a cheaper equivalent; the nodes it bypasses
  // lose their only use and are pruned later.
  bool rewrite(ops::Node& n) {
    // (x c1) c2 -> x (c1 c2)
    if (Scaling outer = scaling(n); outer.x >= 0) {
      if (Scaling inner = single_use_scaling(outer.x); inner.x >= 0) {
        // Strong: the chain is 0 where either coefficient is, even against inf.
        const int c = primal(ops::Prim::binary, m::kStrongMultiply, {inner.c, outer.c});
        --uses[outer.x];
        n.inputs = {inner.x, c};
        rewrite(n);  // the chain may go on
        return true;
      }
      return false;
    }
    // -(x c) -> x (-c)
    if (n.prim == ops::Prim::unary && n.attrs.op == kNegative && linear(n.inputs[0])) {
      if (Scaling inner = single_use_scaling(n.inputs[0]); inner.x >= 0) {
        --uses[n.inputs[0]];
        n = ops::Node{ops::Prim::binary, ops::op_attrs(kMultiply),
                      {inner.x, primal(ops::Prim::unary, kNegative, {inner.c})}, n.output};
        return true;
      }
      return false;
    }
    // x1 c1 +- x2 c2 -> lincomb (x c1 +- x c2 -> x (c1 +- c2));
    // x c +- z, z +- x c -> axpy
    if (n.prim == ops::Prim::binary && (n.attrs.op == kAdd || n.attrs.op == kSubtract) &&
        linear(n.inputs[0]) && linear(n.inputs[1])) {
      const bool minus = n.attrs.op == kSubtract;
      Scaling a = single_use_scaling(n.inputs[0]), b = single_use_scaling(n.inputs[1]);
      // An unscaled input must have the result's shape (axpy's z).
      if (a.x < 0 && (b.x < 0 || shape(n.inputs[0]) != shape(n.output))) return false;
      if (b.x < 0 && shape(n.inputs[1]) != shape(n.output)) return false;
      if (a.x >= 0) --uses[n.inputs[0]];
      if (b.x >= 0) --uses[n.inputs[1]];
      if (a.x >= 0 && b.x >= 0 && a.x == b.x) {
        const int c = primal(ops::Prim::binary, minus ? kSubtract : kAdd, {a.c, b.c});
        n = ops::Node{ops::Prim::binary, ops::op_attrs(kMultiply), {a.x, c}, n.output};
        rewrite(n);  // a scaling again: it may fold into the one before
      } else if (a.x >= 0 && b.x >= 0) {
        const int c2 = minus ? primal(ops::Prim::unary, kNegative, {b.c}) : b.c;
        n = ops::Node{ops::Prim::lincomb, ops::op_attrs(1), {a.x, a.c, b.x, c2}, n.output};
      } else if (b.x >= 0) {  // z +- x c
        const int c = minus ? primal(ops::Prim::unary, kNegative, {b.c}) : b.c;
        n = ops::Node{ops::Prim::lincomb, ops::op_attrs(0), {b.x, c, n.inputs[0]}, n.output};
      } else if (!minus) {    // x c + z
        n = ops::Node{ops::Prim::lincomb, ops::op_attrs(0), {a.x, a.c, n.inputs[1]}, n.output};
      } else {                // x c - z: keep z's sign with a -1 coefficient
        ++uses[n.inputs[0]];
        return false;
      }
      return true;
    }
    return false;
  }
};
}  // namespace

void optimize(graph::Program& program, graph::LinearProgram& lin) {
  Optimizer{program, lin, {}, {}}.run();
}

}  // namespace batchjac::autodiff
