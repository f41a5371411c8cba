// Deferred values through the engine: collect the deferred ops a tensor
// needs as tape records, slice them like a Jacobian's program, and run a
// plan of the value alone.
#include "engine/values.hpp"

#include "engine/engine.hpp"
#include "engine/plan_cache.hpp"
#include "graph/slice.hpp"
#include "graph/tape.hpp"
#include "ops/eager.hpp"

#include <batchjac/errors.hpp>

#include <tbb/task_arena.h>

#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

namespace batchjac::engine {

namespace {

// The deferred ops `root` needs, inputs first, as the records of a tape
// (`tape`); the ready tensors they read go to `leaves`, in the order of a
// walk that follows first inputs first. False if a deferred value is not
// an op's.
bool collect(const Tensor& root, const ops::DeferredOp& how, detail::TapeState& tape,
             std::vector<Tensor>& leaves) {
  struct Item {
    Tensor t;
    std::optional<detail::Record> record;  // set: its inputs are recorded, record it
  };
  std::vector<Item> stack;
  stack.push_back({root, std::nullopt});
  std::unordered_set<std::uint64_t> seen;
  bool ok = true;
  while (!stack.empty() && ok) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (item.record) {
      tape.producer[item.t.id()] = static_cast<int>(tape.records.size());
      tape.records.push_back(std::move(*item.record));
      continue;
    }
    if (!seen.insert(item.t.id()).second) continue;
    std::optional<detail::Record> record;
    auto add = [&](const detail::Deferred* d) {
      if (d == nullptr) return;
      const auto* op = dynamic_cast<const ops::DeferredOp*>(d);
      if (op == nullptr) {
        ok = false;
        return;
      }
      std::vector<Tensor> inputs;
      for (const auto& in : op->inputs) inputs.emplace_back(in);
      record = detail::Record{op->node.prim, op->node.attrs, std::move(inputs), item.t};
    };
    // Another thread may compute a value meanwhile: then it is a leaf.
    if (item.t.id() == root.id()) add(&how);
    else item.t.impl().visit_pending(add);
    if (!record) {
      leaves.push_back(item.t);
      continue;
    }
    const std::vector<Tensor> inputs = record->inputs;
    stack.push_back({item.t, std::move(record)});
    for (auto it = inputs.rbegin(); it != inputs.rend(); ++it) stack.push_back({*it, std::nullopt});
  }
  return ok;
}

}  // namespace

std::shared_ptr<const detail::TensorImpl> compute_value(const Tensor& root, const ops::DeferredOp& how) {
  if (!is_floating(root.dtype()) || root.rank() < 1) return nullptr;
  detail::TapeState tape;
  std::vector<Tensor> leaves;
  if (!collect(root, how, tape, leaves)) return nullptr;
  // The parameter: the first float tensor with root's batch axis from which
  // root's program keeps examples apart. (Any such choice computes the same
  // ops with the same kernels; the others are per-example constants.)
  const Tensor* source = nullptr;
  std::optional<graph::Program> program;
  for (const Tensor& leaf : leaves) {
    if (!is_floating(leaf.dtype()) || leaf.rank() < 1 || leaf.shape()[0] != root.shape()[0]) continue;
    try {
      program = graph::slice(tape, root, leaf, true);
    } catch (const ValueError&) {
      continue;  // an op mixes examples along this leaf's first axis
    }
    if (program) {
      source = &leaf;
      break;
    }
  }
  if (source == nullptr) return nullptr;  // evaluated op by op
  program->kept = program->result;
  auto out = detail::new_tensor(root.shape(), root.dtype());
  const ValueOut value{out->buffer.get(), root.dtype()};
  const JacobianOptions options;
  PlanKey key(*program, options, false, true);
  std::shared_ptr<const Prepared> plan = find_plan(key);
  if (!plan) {
    if (own_shared_views(*program)) key = PlanKey(*program, options, false, true);
    plan = prepare_value(*program);
    keep_plan(std::move(key), plan);
  }
  // The caller holds root's lock: while this thread waits for the pass's
  // tasks it must not pick up one of its caller's, which may read root.
  tbb::this_task_arena::isolate(
      [&] { plan->run(*program, *source, nullptr, source->dtype(), options, &value); });
  return out;
}

}  // namespace batchjac::engine
