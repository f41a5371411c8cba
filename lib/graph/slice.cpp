// Slicing a tape into a Program, and the batch-axis analysis.
#include "graph/slice.hpp"

#include "ops/op_list.hpp"

#include <batchjac/errors.hpp>

#include <map>
#include <string>
#include <unordered_map>

namespace batchjac::graph {

namespace {

struct Builder {
  const detail::TapeState& tape;
  const Tensor& source;
  bool batched;
  Program program;
  std::unordered_map<std::uint64_t, int> computed;       // tensor id -> value
  std::map<std::pair<std::uint64_t, bool>, int> consts;  // (tensor id, per-example) -> value
  std::vector<std::optional<Tensor>>* tensors = nullptr;  // value -> the recorded tensor, when wanted
  // The program's nodes by what they compute (prim, attributes, inputs):
  // a record that computes the same as an earlier node reuses its value.
  NodeIndex same{};

  int constant(const Tensor& t, const Shape& shape, bool per_example) {
    auto key = std::make_pair(t.id(), per_example);
    if (auto it = consts.find(key); it != consts.end()) return it->second;
    int v = program.add_value({shape, t.dtype()}, ValueKind::constant, per_example);
    program.values[v].constant = static_cast<int>(program.constants.size());
    program.constants.push_back(t);
    consts.emplace(key, v);
    return v;
  }

  // Adds the node of record r to `into` (the program's nodes, or a rule's).
  void add(const detail::Record& r) { add(r, program.nodes); }
  void add(const detail::Record& r, std::vector<ops::Node>& into) {
    const std::size_t n_in = r.inputs.size();
    std::vector<int> from_source(n_in, -1);
    for (std::size_t i = 0; i < n_in; ++i) {
      auto it = computed.find(r.inputs[i].id());
      if (it != computed.end()) from_source[i] = it->second;
    }
    ops::Node node{r.prim, r.attrs, std::vector<int>(n_in, -1), -1};
    std::vector<Shape> shapes;
    for (const auto& t : r.inputs) shapes.push_back(t.shape());
    std::vector<ops::Batching> status(n_in);
    for (std::size_t i = 0; i < n_in; ++i)
      status[i] = from_source[i] >= 0 ? ops::Batching::batched : ops::Batching::constant;
    ops::BatchQuery q{shapes, status, program.batch, r.attrs, {}};
    if (batched) {
      ops::batch_rule(node, q);
      node.attrs = q.attrs;
    } else {
      q.per_example = shapes;
    }
    for (std::size_t i = 0; i < n_in; ++i) {
      if (from_source[i] >= 0) node.inputs[i] = from_source[i];
      else node.inputs[i] = constant(r.inputs[i], q.per_example[i], status[i] == ops::Batching::batched);
    }
    std::vector<ops::ValueInfo> in;
    for (int v : node.inputs) in.push_back(program.info(v));
    ops::ValueInfo out = ops::infer(node, in);
    const Shape expected = batched ? ops::drop_batch_axis(r.output.shape()) : r.output.shape();
    if (out.shape != expected || (batched && (r.output.rank() == 0 || r.output.shape()[0] != program.batch)))
      ops::fail(node, "result of shape " + r.output.shape().to_string() +
                          " does not keep the batch axis first: each result example would mix "
                          "several source examples");
    // Derived programs repeat their primal's subexpressions (a rule's
    // inverse beside the program's own): one node computes each. Not in a
    // custom_jvp rule's nodes, nor where the caller maps values back to
    // their recorded tensors (each keeps its own).
    const bool merge = &into == &program.nodes && !tensors && r.prim != ops::Prim::custom_jvp;
    if (merge)
      if (const std::optional<int> v = same.same(node)) {
        computed[r.output.id()] = *v;
        return;
      }
    node.output = program.add_value(out, ValueKind::primal, true);
    if (merge) same.add(node.output);
    computed[r.output.id()] = node.output;
    if (tensors) {
      tensors->resize(program.values.size());
      (*tensors)[node.output] = r.output;
    }
    if (r.prim == ops::Prim::custom_jvp) {
      node.attrs.op = add_rule(*r.attrs.custom);
      node.attrs.custom.reset();
    }
    into.push_back(std::move(node));
  }

  // Slices a custom_jvp's traced rule (after its inputs were added): the
  // records from its tangents and the program's values to its result, each
  // checked by its batch-axis rule like the program's.
  int add_rule(const detail::CustomJvpTrace& trace) {
    JvpRule rule;
    std::unordered_set<std::uint64_t> from;  // computed from the program's values or tangents
    std::unordered_set<std::uint64_t> zero;  // placeholders of zero tangents
    for (std::size_t i = 0; i < trace.primals.size(); ++i) {
      const auto it = computed.find(trace.primals[i].id());
      if (it == computed.end()) {  // its tangent is zero: the placeholder stays a constant
        rule.tangents.push_back(-1);
        zero.insert(trace.tangents[i].id());
        continue;
      }
      const int v = program.add_value(program.info(it->second), ValueKind::linear, true);
      computed[trace.tangents[i].id()] = v;
      rule.tangents.push_back(v);
    }
    for (const auto& r : trace.tape.records)
      for (const auto& in : r.inputs)
        if (computed.count(in.id()) || from.count(in.id())) {
          from.insert(r.output.id());
          break;
        }
    std::vector<char> needed(trace.tape.records.size(), 0);
    std::vector<std::uint64_t> stack{trace.tangent_out.id()};
    while (!stack.empty()) {
      const std::uint64_t id = stack.back();
      stack.pop_back();
      const auto it = trace.tape.producer.find(id);
      if (!from.count(id) || it == trace.tape.producer.end() || needed[it->second]) continue;
      needed[it->second] = 1;
      for (const auto& in : trace.tape.records[it->second].inputs) stack.push_back(in.id());
    }
    for (std::size_t i = 0; i < trace.tape.records.size(); ++i)
      if (needed[i]) add(trace.tape.records[i], rule.nodes);
    for (const auto& [key, value] : consts)  // the constants the nodes made of placeholders
      if (zero.count(key.first)) rule.zero_tangents.push_back(value);
    const auto result = computed.find(trace.tangent_out.id());
    rule.result = result == computed.end() ? -1 : result->second;
    program.rules.push_back(std::move(rule));
    return static_cast<int>(program.rules.size()) - 1;
  }
};
}  // namespace

namespace {

bool any_of_ids(std::span<const Tensor> sources, std::uint64_t id) {
  for (const Tensor& s : sources)
    if (s.id() == id) return true;
  return false;
}

// Which recorded outputs depend on the sources (records are in execution
// order); a source's own record does not make it depend on anything.
std::unordered_set<std::uint64_t> dependents(const detail::TapeState& tape, std::span<const Tensor> sources) {
  std::unordered_set<std::uint64_t> depends;
  for (const Tensor& s : sources) depends.insert(s.id());
  for (const auto& r : tape.records) {
    if (any_of_ids(sources, r.output.id())) continue;
    for (const auto& in : r.inputs)
      if (depends.count(in.id())) {
        depends.insert(r.output.id());
        break;
      }
  }
  return depends;
}

// The records the target needs, walking back from it to the sources.
std::vector<char> needed_records(const detail::TapeState& tape, const Tensor& target,
                                 std::span<const Tensor> sources,
                                 const std::unordered_set<std::uint64_t>& depends) {
  std::vector<char> needed(tape.records.size(), 0);
  std::vector<std::uint64_t> stack{target.id()};
  while (!stack.empty()) {
    const std::uint64_t id = stack.back();
    stack.pop_back();
    if (any_of_ids(sources, id)) continue;
    auto it = tape.producer.find(id);
    if (it == tape.producer.end() || needed[it->second]) continue;
    needed[it->second] = 1;
    for (const auto& in : tape.records[it->second].inputs)
      if (depends.count(in.id())) stack.push_back(in.id());
  }
  return needed;
}

}  // namespace

std::optional<Program> slice(const detail::TapeState& tape, const Tensor& target,
                             const Tensor& source, bool batched, const Tensor* input,
                             std::vector<std::optional<Tensor>>* tensors) {
  // The input (a per-example constant whose ops stay in the program) is
  // walked like a source.
  const Tensor both[2] = {source, input ? *input : source};
  const std::span<const Tensor> sources(both, input ? 2 : 1);
  const std::unordered_set<std::uint64_t> depends = dependents(tape, sources);
  if (!depends.count(target.id())) return std::nullopt;
  const std::vector<char> needed = needed_records(tape, target, sources, depends);

  Builder b{tape, source, batched, {}, {}, {}};
  b.tensors = tensors;
  b.program.batched = batched;
  b.program.batch = batched ? source.shape()[0] : 1;
  const Shape param = batched ? ops::drop_batch_axis(source.shape()) : source.shape();
  b.program.parameter = b.program.add_value({param, source.dtype()}, ValueKind::parameter, true);
  b.computed[source.id()] = b.program.parameter;
  if (input) b.computed[input->id()] = b.constant(*input, ops::drop_batch_axis(input->shape()), true);
  for (std::size_t i = 0; i < tape.records.size(); ++i)
    if (needed[i]) b.add(tape.records[i]);
  b.program.result = b.computed.at(target.id());
  return std::move(b.program);
}

std::optional<JointProgram> slice_joint(const detail::TapeState& tape, const Tensor& target,
                                        std::span<const Tensor> sources, bool batched) {
  const std::unordered_set<std::uint64_t> depends = dependents(tape, sources);
  if (!depends.count(target.id())) return std::nullopt;
  const std::vector<char> needed = needed_records(tape, target, sources, depends);

  Builder b{tape, sources[0], batched, {}, {}, {}};
  JointProgram joint;
  b.program.batched = batched;
  b.program.batch = batched ? sources[0].shape()[0] : 1;
  std::vector<Shape> shapes;
  std::int64_t total = 0;
  for (const Tensor& s : sources) {
    shapes.push_back(batched ? ops::drop_batch_axis(s.shape()) : s.shape());
    total += shapes.back().num_elements();
  }
  const DType dtype = sources[0].dtype();
  b.program.parameter = b.program.add_value({Shape{total}, dtype}, ValueKind::parameter, true);
  // source i = reshape(parameter[offset_i : offset_i + size_i], shape_i)
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    ops::Attrs part;
    part.op = ops::kSlice;
    part.axes = {offset};
    part.shape = Shape{shapes[i].num_elements()};
    const int flat = b.program.emit(b.program.nodes, ValueKind::primal, ops::Prim::index_map, part,
                                    {b.program.parameter});
    const int v = b.program.emit(b.program.nodes, ValueKind::primal, ops::Prim::reshape,
                                 ops::shape_attrs(shapes[i]), {flat});
    b.computed[sources[i].id()] = v;
    joint.source_values.push_back(v);
    offset += shapes[i].num_elements();
  }
  for (std::size_t i = 0; i < tape.records.size(); ++i)
    if (needed[i]) b.add(tape.records[i]);
  b.program.result = b.computed.at(target.id());
  joint.program = std::move(b.program);
  return joint;
}

bool independent(const detail::TapeState& tape, std::span<const Tensor> sources) {
  for (const Tensor& from : sources) {
    const auto depends = dependents(tape, std::span<const Tensor>(&from, 1));
    for (const Tensor& to : sources)
      if (to.id() != from.id() && depends.count(to.id())) return false;
  }
  return true;
}

}  // namespace batchjac::graph
