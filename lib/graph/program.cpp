// Program construction.
#include "graph/program.hpp"

#include "ops/op_list.hpp"

namespace batchjac::graph {

int Program::add_value(ops::ValueInfo info, ValueKind kind, bool varying) {
  values.push_back(Value{std::move(info), kind, varying, -1});
  return static_cast<int>(values.size()) - 1;
}

int Program::emit(std::vector<ops::Node>& into, ValueKind kind, ops::Prim prim, ops::Attrs attrs,
                  std::vector<int> inputs) {
  std::vector<ops::ValueInfo> in;
  for (int v : inputs) in.push_back(values[v].info);
  ops::Node node{prim, std::move(attrs), std::move(inputs), -1};
  ops::ValueInfo out = ops::infer(node, in);
  // Computed values live in lanes, even a product of two shared constants
  // (the optimiser's folded coefficients): kernels write lane layout.
  node.output = add_value(std::move(out), kind, true);
  into.push_back(std::move(node));
  return into.back().output;
}

}  // namespace batchjac::graph
