// What JVP and transpose rules see: a way to emit primal and linear nodes.
#pragma once

#include "graph/program.hpp"

#include <batchjac/tensor.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace batchjac::autodiff {

// Given to JVP rules: emit primal nodes (coefficients such as partials) and
// linear nodes (the tangent computation) into a Program.
class JvpContext {
 public:
  JvpContext(graph::Program& program, std::vector<ops::Node>& linear)
      : program_(program), linear_(linear) {}
  // A primal node, or the value of an earlier one that computes the same
  // (rules ask again for what the program or another rule has: det's and
  // the program's inverse of one matrix).
  int primal(ops::Prim prim, ops::Attrs attrs, std::vector<int> inputs) {
    for (; indexed_ < program_.nodes.size(); ++indexed_) {
      const ops::Node& n = program_.nodes[indexed_];
      node_of_[n.output] = indexed_;
      if (n.prim != ops::Prim::custom_jvp) same_.add(n);
    }
    ops::Node node{prim, std::move(attrs), std::move(inputs), -1};
    const bool merge = prim != ops::Prim::custom_jvp;
    if (merge)
      if (const std::optional<int> earlier = same_.same(node)) return *earlier;
    const int v = program_.emit(program_.nodes, graph::ValueKind::primal, prim, std::move(node.attrs),
                                std::move(node.inputs));
    if (merge) same_.add(v);
    node_of_[v] = indexed_++;
    return v;
  }
  int linear(ops::Prim prim, ops::Attrs attrs, std::vector<int> inputs) {
    return program_.emit(linear_, graph::ValueKind::linear, prim, std::move(attrs),
                         std::move(inputs));
  }
  // A scalar shared by every example (second-derivative rules need a few).
  int constant(double value, DType dtype) {
    const int v = program_.add_value({Shape{}, dtype}, graph::ValueKind::constant, false);
    program_.values[v].constant = static_cast<int>(program_.constants.size());
    program_.constants.push_back(batchjac::constant(value, dtype));
    return v;
  }
  // By value: emitting nodes grows the value table.
  ops::ValueInfo info(int v) const { return program_.info(v); }
  const graph::Program& program() const { return program_; }
  // The nodes emitted so far (custom_jvp checks what its rule emitted).
  const std::vector<ops::Node>& primal_nodes() const { return program_.nodes; }
  // The primal node computing value v (primal() may return an earlier one's).
  const ops::Node& primal_node(int v) const {
    const auto it = node_of_.find(v);
    if (it == node_of_.end()) throw std::logic_error("JvpContext: no primal node computes the value");
    return program_.nodes[it->second];
  }
  const std::vector<ops::Node>& linear_nodes() const { return linear_; }

 private:
  graph::Program& program_;
  std::vector<ops::Node>& linear_;
  graph::NodeIndex same_;                       // primal nodes by computation_key
  std::size_t indexed_ = 0;                     // program_.nodes[0, indexed_) are in same_
  std::unordered_map<int, std::size_t> node_of_;  // value -> its node's index, for those
};

// Given to transpose rules: the cotangent of a linear node's output is known;
// the rule emits nodes computing its inputs' cotangents and accumulates them.
class TransposeContext {
 public:
  TransposeContext(graph::Program& program, std::vector<ops::Node>& out)
      : program_(program), out_(out) {}
  bool is_linear(int v) const { return program_.values[v].kind == graph::ValueKind::linear; }
  int emit(ops::Prim prim, ops::Attrs attrs, std::vector<int> inputs) {
    return program_.emit(out_, graph::ValueKind::linear, prim, std::move(attrs),
                         std::move(inputs));
  }
  // By value: emitting nodes grows the value table.
  ops::ValueInfo info(int v) const { return program_.info(v); }
  // Adds `ct` to the cotangent of linear value v.
  void accumulate(int v, int ct);
  // The cotangent of v, or -1 if nothing reached it.
  int cotangent(int v) const {
    auto it = ct_.find(v);
    return it == ct_.end() ? -1 : it->second;
  }

 private:
  graph::Program& program_;
  std::vector<ops::Node>& out_;
  std::map<int, int> ct_;
};

}  // namespace batchjac::autodiff
