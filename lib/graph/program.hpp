// The recorded program: values and primitive nodes, replayable on new inputs.
//
// A Program is data: the source is its parameter, every value that does not
// depend on the source is a captured constant, and nodes are in evaluation
// order. For batch_jacobian all shapes are per example (the batch axis is
// stripped); `varying` marks values that differ between examples (lanes).
// autodiff/ appends the linear (JVP or VJP) nodes to the same value table.
#pragma once

#include "ops/primitive.hpp"

#include <batchjac/tensor.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace batchjac::graph {

enum class ValueKind : std::uint8_t {
  parameter,  // the source
  constant,   // captured: constants[value.constant]
  primal,     // computed from the parameter
  linear,     // a tangent or cotangent
};

struct Value {
  ops::ValueInfo info;
  ValueKind kind = ValueKind::primal;
  bool varying = true;
  int constant = -1;
};

// A custom_jvp node's rule (ops/misc.hpp), sliced like the program: `nodes`
// read the node's inputs and other program values, constants, `tangents`
// (values standing for the tangents of the node's inputs x_1..x_n, -1 for
// an input not computed from the parameter) and each other's outputs;
// `result` is the output's tangent. Only linearize reads it.
struct JvpRule {
  std::vector<ops::Node> nodes;
  std::vector<int> tangents;
  // Constants standing for the zero tangents of inputs not computed from
  // the parameter (their placeholders, which the nodes may read).
  std::vector<int> zero_tangents;
  int result = -1;
};

struct Program {
  std::vector<Value> values;
  // Captured tensors. Per-example constants keep their batch axis [b, ...];
  // shared ones are used as they are.
  std::vector<Tensor> constants;
  std::vector<ops::Node> nodes;  // primal, in evaluation order
  std::vector<JvpRule> rules;    // of custom_jvp nodes (attrs.op)
  int parameter = -1;
  int result = -1;
  // A primal value a call also wants written out (the target's, for
  // value_and_batch_jacobian_into or a deferred target), or -1. Pruning
  // keeps it; plans keep it live and store it per block.
  int kept = -1;
  std::int64_t batch = 1;  // examples (1 for jacobian/gradient)
  bool batched = false;    // shapes are per example
  // The Jacobian is a Hessian (of a gradient: square and symmetric). Plans
  // give the entries on and above the diagonal, (i, j) with i <= j, and copy
  // each to (j, i); a sparse plan does not compute those below.
  bool symmetric = false;

  int add_value(ops::ValueInfo info, ValueKind kind, bool varying);
  // Appends `prim` applied to `inputs`, inferring the output; returns its id.
  int emit(std::vector<ops::Node>& into, ValueKind kind, ops::Prim prim, ops::Attrs attrs,
           std::vector<int> inputs);
  const ops::ValueInfo& info(int v) const { return values[v].info; }
};

// A linear program over a Program's values: `input` is the seed (tangent of
// the parameter, or cotangent of the result), `output` the answer.
struct LinearProgram {
  std::vector<ops::Node> nodes;
  int input = -1;
  int output = -1;  // -1: the answer is zero (not connected)
};

// All a node's result depends on, as a key: its primitive, attributes and
// inputs (not a custom_jvp's rule). Nodes of equal keys compute the same.
std::string computation_key(const ops::Node& node);

// Nodes' values by computation_key: a node about to be added finds the
// value of an earlier one that computes the same (`same`), else is added
// and indexed (`add`, with the key `same` just made).
class NodeIndex {
 public:
  std::optional<int> same(const ops::Node& node) {
    key_ = computation_key(node);
    const auto it = values_.find(key_);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  void add(int value) { values_.emplace(std::move(key_), value); }
  void add(const ops::Node& node) { values_.emplace(computation_key(node), node.output); }

 private:
  std::unordered_map<std::string, int> values_;
  std::string key_;
};

}  // namespace batchjac::graph
