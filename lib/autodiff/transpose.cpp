// transpose: run every linear primitive's transpose rule, last node first.
#include "autodiff/autodiff.hpp"

#include "autodiff/contexts.hpp"
#include "ops/elementwise_math.hpp"
#include "ops/op_list.hpp"

namespace batchjac::autodiff {

void TransposeContext::accumulate(int v, int ct) {
  auto [it, fresh] = ct_.emplace(v, ct);
  if (fresh) return;
  ops::Attrs add;
  add.op = ops::math::index_of<ops::math::Add, ops::math::Binary>;
  it->second = emit(ops::Prim::binary, add, {it->second, ct});
}

graph::LinearProgram transpose(graph::Program& program, const graph::LinearProgram& jvp) {
  graph::LinearProgram vjp;
  vjp.input = program.add_value(program.info(jvp.output), graph::ValueKind::linear, true);
  TransposeContext ctx(program, vjp.nodes);
  ctx.accumulate(jvp.output, vjp.input);
  for (auto it = jvp.nodes.rbegin(); it != jvp.nodes.rend(); ++it) {
    const int ct = ctx.cotangent(it->output);
    if (ct >= 0) ops::transpose(ctx, *it, ct);
  }
  vjp.output = ctx.cotangent(jvp.input);
  return vjp;
}

}  // namespace batchjac::autodiff
