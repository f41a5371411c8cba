// Dead-code elimination.
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
  if (program.kept >= 0) live[program.kept] = 1;
  std::vector<ops::Node> primal;
  for (auto it = program.nodes.rbegin(); it != program.nodes.rend(); ++it) {
    if (!live[it->output]) continue;
    for (int v : it->inputs) live[v] = 1;
    primal.push_back(*it);
  }
  program.nodes.assign(primal.rbegin(), primal.rend());
}

}  // namespace batchjac::autodiff
