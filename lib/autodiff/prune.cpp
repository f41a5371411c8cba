// Dead-code elimination and the forward/reverse cost model.
#include "autodiff/autodiff.hpp"

namespace batchjac::autodiff {

void prune(graph::Program& program, graph::LinearProgram& lin) {
  std::vector<char> live(program.values.size(), 0);
  if (lin.output >= 0) live[lin.output] = 1;
  std::vector<ops::Node> kept;
  for (auto it = lin.nodes.rbegin(); it != lin.nodes.rend(); ++it) {
    if (!live[it->output]) continue;
    for (int v : it->inputs) live[v] = 1;
    kept.push_back(*it);
  }
  lin.nodes.assign(kept.rbegin(), kept.rend());
  std::vector<ops::Node> primal;
  for (auto it = program.nodes.rbegin(); it != program.nodes.rend(); ++it) {
    if (!live[it->output]) continue;
    for (int v : it->inputs) live[v] = 1;
    primal.push_back(*it);
  }
  program.nodes.assign(primal.rbegin(), primal.rend());
}

namespace {
// The work of one direction through lin, per block of examples: elements
// written and read by each live node (multiply-adds for matmul). Nodes that
// read only the seed and shared constants run once per call, not per block,
// and cost nothing here.
double pass_cost(const graph::Program& p, const graph::LinearProgram& lin) {
  std::vector<char> live(p.values.size(), 0), invariant(p.values.size(), 0);
  if (lin.output >= 0) live[lin.output] = 1;
  for (auto it = lin.nodes.rbegin(); it != lin.nodes.rend(); ++it)
    if (live[it->output])
      for (int v : it->inputs) live[v] = 1;
  invariant[lin.input] = 1;
  for (std::size_t v = 0; v < p.values.size(); ++v)
    if (p.values[v].kind == graph::ValueKind::constant && !p.values[v].varying) invariant[v] = 1;
  double cost = 0;
  for (const auto& n : lin.nodes) {
    if (!live[n.output]) continue;
    bool inv = true;
    for (int v : n.inputs) inv = inv && invariant[v];
    invariant[n.output] = inv;
    if (inv) continue;
    const double out = static_cast<double>(p.info(n.output).shape.num_elements());
    if (n.prim == ops::Prim::matmul) {
      const Shape& a = p.info(n.inputs[0]).shape;
      const std::size_t r = a.size();
      cost += out * static_cast<double>(r >= 2 && n.attrs.transpose_a ? a[r - 2] : a[r - 1]);
    } else {
      cost += out;
      for (int v : n.inputs) cost += static_cast<double>(p.info(v).shape.num_elements());
    }
  }
  return cost;
}
}  // namespace

JacobianMode choose_mode(const graph::Program& program, const graph::LinearProgram& jvp,
                         const graph::LinearProgram& vjp) {
  const double n_in = static_cast<double>(program.info(program.parameter).shape.num_elements());
  const double n_out = static_cast<double>(program.info(program.result).shape.num_elements());
  const double forward = n_in * pass_cost(program, jvp);
  const double reverse = n_out * pass_cost(program, vjp);
  return forward <= reverse ? JacobianMode::forward : JacobianMode::reverse;
}

}  // namespace batchjac::autodiff
