// Planning: lowering, buffer layout, and the direction chunk D.
#include "engine/plan.hpp"

#include "ops/op_list.hpp"
#include "tensor/tensor_impl.hpp"

#include <algorithm>

namespace batchjac::engine {

namespace {
// A task's direction buffers should stay in L2 beside the primal values.
constexpr std::int64_t kDirectionBudgetBytes = 256 * 1024;
}  // namespace

template <class T>
Plan<T> make_plan(const graph::Program& program, const graph::LinearProgram& lin,
                  JacobianMode mode, const Tensor& source, const JacobianOptions& options) {
  Plan<T> p;
  p.mode = mode;
  // Per-example programs put examples in SIMD lanes; a whole-tensor Jacobian
  // (one "example") runs with one lane.
  p.table = program.batched ? &kernels::simd_kernels<T>() : &kernels::scalar_kernels<T>();
  p.lanes = p.table->width;
  const std::size_t n_values = program.values.size();
  std::vector<ops::ValueInfo> infos;
  for (const auto& v : program.values) infos.push_back(v.info);
  p.varying.resize(n_values);
  for (std::size_t v = 0; v < n_values; ++v) p.varying[v] = program.values[v].varying ? 1 : 0;

  ops::Lowering<T> primal(*p.table, infos, p.varying, p.primal_steps, p.maps);
  for (const auto& node : program.nodes) ops::lower(primal, node);
  ops::Lowering<T> linear(*p.table, infos, p.varying, p.linear_steps, p.maps);
  for (const auto& node : lin.nodes) ops::lower(linear, node);

  p.seed = lin.input;
  p.answer = lin.output;
  {  // Hoist the steps whose inputs are all example-independent.
    std::vector<char> invariant(n_values, 0);
    invariant[p.seed] = 1;
    for (std::size_t v = 0; v < n_values; ++v)
      if (program.values[v].kind == graph::ValueKind::constant && !program.values[v].varying)
        invariant[v] = 1;
    std::vector<ops::Step<T>> rest;
    for (auto& step : p.linear_steps) {
      bool inv = true;
      for (int i = 0; i < step.n_in; ++i) inv = inv && invariant[step.in[i]];
      // Concat writes its output in several steps: hoist all or none of them.
      if (inv && step.kind == ops::Step<T>::Kind::index && step.ix_fn == p.table->scatter) inv = false;
      invariant[step.out] = inv ? 1 : 0;
      (inv ? p.invariant_steps : rest).push_back(step);
    }
    p.linear_steps = std::move(rest);
  }
  p.n_dirs = infos[p.seed].shape.num_elements();
  p.answer_elems = infos[p.answer].shape.num_elements();

  // Values the steps touch.
  std::vector<char> used(n_values, 0);
  used[p.seed] = used[p.answer] = 1;
  for (const auto* steps : {&p.primal_steps, &p.invariant_steps, &p.linear_steps})
    for (const auto& s : *steps) {
      used[s.out] = 1;
      for (int i = 0; i < s.n_in; ++i) used[s.in[i]] = 1;
    }
  used[program.parameter] = 1;

  std::int64_t linear_elems = 0;
  for (std::size_t v = 0; v < n_values; ++v)
    if (used[v] && program.values[v].kind == graph::ValueKind::linear)
      linear_elems += program.values[v].info.shape.num_elements();
  std::int64_t dirs = kDirectionBudgetBytes /
                      std::max<std::int64_t>(1, linear_elems * p.lanes * std::int64_t(sizeof(T)));
  dirs = std::clamp<std::int64_t>(dirs, 1, std::max<std::int64_t>(p.n_dirs, 1));
  if (options.parallel_iterations) dirs = std::min(dirs, *options.parallel_iterations);
  if (!options.experimental_use_pfor) dirs = 1;
  p.max_dirs = dirs;

  p.offset.assign(n_values, -1);
  p.dir_stride.assign(n_values, 0);
  p.shared_ptr.assign(n_values, nullptr);
  std::int64_t at = 0;
  auto place = [&](std::size_t v, std::int64_t elems) {
    p.offset[v] = at;
    at += (elems + 7) / 8 * 8;  // keep every buffer 64-byte aligned
  };
  for (std::size_t v = 0; v < n_values; ++v) {
    if (!used[v]) continue;
    const auto& val = program.values[v];
    const std::int64_t e = val.info.shape.num_elements();
    if (val.kind == graph::ValueKind::linear) {
      p.dir_stride[v] = e * p.lanes;
      place(v, dirs * e * p.lanes);
    } else if (val.kind == graph::ValueKind::constant && !val.varying) {
      const Tensor& c = program.constants[val.constant];
      constexpr DType want = sizeof(T) == 4 ? DType::float32 : DType::float64;
      Tensor data = c.dtype() == want ? c : detail::convert(c, want);
      p.shared_ptr[v] = const_cast<T*>(data.impl().template as<T>());
      p.converted.push_back(std::move(data));
    } else {
      place(v, e * p.lanes);
      if (val.kind == graph::ValueKind::parameter)
        p.loads.push_back({static_cast<int>(v), source.impl().bytes.get(), source.dtype(), e});
      else if (val.kind == graph::ValueKind::constant) {
        const Tensor& c = program.constants[val.constant];
        p.loads.push_back({static_cast<int>(v), c.impl().bytes.get(), c.dtype(), e});
      }
    }
  }
  p.buffer_size = at;
  return p;
}

template Plan<float> make_plan<float>(const graph::Program&, const graph::LinearProgram&,
                                      JacobianMode, const Tensor&, const JacobianOptions&);
template Plan<double> make_plan<double>(const graph::Program&, const graph::LinearProgram&,
                                        JacobianMode, const Tensor&, const JacobianOptions&);

}  // namespace batchjac::engine
