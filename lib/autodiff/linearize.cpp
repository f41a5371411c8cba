// linearize: run every primitive's JVP rule over the primal program.
#include "autodiff/autodiff.hpp"

#include "autodiff/contexts.hpp"
#include "ops/op_list.hpp"

namespace batchjac::autodiff {

graph::LinearProgram linearize(graph::Program& program, std::vector<int>* tangents) {
  graph::LinearProgram lin;
  std::vector<int> tangent(program.values.size(), -1);
  lin.input = program.add_value(program.info(program.parameter), graph::ValueKind::linear, true);
  tangent[program.parameter] = lin.input;
  JvpContext ctx(program, lin.nodes);
  const std::size_t n_primal = program.nodes.size();  // JVP rules append partials
  for (std::size_t i = 0; i < n_primal; ++i) {
    const ops::Node node = program.nodes[i];  // a copy: rules grow program.nodes
    std::vector<int> t;
    bool any = false;
    for (int v : node.inputs) {
      t.push_back(v < static_cast<int>(tangent.size()) ? tangent[v] : -1);
      any = any || t.back() >= 0;
    }
    if (!any) continue;
    const int out = ops::jvp(ctx, node, t);
    if (tangent.size() < program.values.size()) tangent.resize(program.values.size(), -1);
    tangent[node.output] = out;
  }
  lin.output = tangent[program.result];
  if (tangents) *tangents = std::move(tangent);
  return lin;
}

std::vector<bool> connected(const graph::Program& program, std::span<const int> values) {
  graph::Program copy = program;
  std::vector<int> tangent;
  const graph::LinearProgram lin = linearize(copy, &tangent);
  std::vector<bool> out(values.size(), false);
  if (lin.output < 0) return out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const int start = values[i] < static_cast<int>(tangent.size()) ? tangent[values[i]] : -1;
    if (start < 0) continue;
    std::vector<char> reach(copy.values.size(), 0);
    reach[start] = 1;
    for (const ops::Node& n : lin.nodes)
      for (int v : n.inputs)
        if (reach[v]) {
          reach[n.output] = 1;
          break;
        }
    out[i] = reach[lin.output] != 0;
  }
  return out;
}

}  // namespace batchjac::autodiff
