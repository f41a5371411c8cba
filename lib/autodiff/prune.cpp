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
// Elements touched per direction: a proxy for the work of one pass.
std::int64_t pass_cost(const graph::Program& p, const graph::LinearProgram& lin) {
  std::int64_t cost = 0;
  for (const auto& n : lin.nodes) {
    cost += p.info(n.output).shape.num_elements();
    for (int v : n.inputs) cost += p.info(v).shape.num_elements();
  }
  return cost;
}
}  // namespace

JacobianMode choose_mode(const graph::Program& program, const graph::LinearProgram& jvp,
                         const graph::LinearProgram& vjp) {
  const std::int64_t n_in = program.info(program.parameter).shape.num_elements();
  const std::int64_t n_out = program.info(program.result).shape.num_elements();
  const double forward = static_cast<double>(n_in) * static_cast<double>(pass_cost(program, jvp));
  const double reverse = static_cast<double>(n_out) * static_cast<double>(pass_cost(program, vjp));
  return forward <= reverse ? JacobianMode::forward : JacobianMode::reverse;
}

}  // namespace batchjac::autodiff
