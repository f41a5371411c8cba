// Planning: lowering, buffer layout, and the direction chunk D.
#include "engine/plan.hpp"

#include "ops/op_list.hpp"
#include "tensor/tensor_impl.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace batchjac::engine {

namespace {
// A task's direction buffers should stay in L2 beside the primal values.
constexpr std::int64_t kDirectionBudgetBytes = 512 * 1024;
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

  // Linear values made per block share memory by liveness: a greedy first-fit
  // over their live ranges, in units of elements per direction (buffers
  // scale with D). Seed and hoisted values keep their own.
  std::vector<std::int64_t> slot(n_values, -1);  // pool offset per direction, block values
  std::int64_t pool = 0;                          // peak pool size per direction
  {
    const std::size_t n_steps = p.linear_steps.size();
    std::vector<std::size_t> last(n_values, 0);
    for (std::size_t i = 0; i < n_steps; ++i)
      for (int j = 0; j < p.linear_steps[i].n_in; ++j) last[p.linear_steps[i].in[j]] = i;
    last[p.answer] = n_steps;  // read by the store after the last step
    std::vector<std::pair<std::int64_t, std::int64_t>> free_list;  // (offset, size)
    std::vector<int> live;
    for (std::size_t i = 0; i < n_steps; ++i) {
      const int out = p.linear_steps[i].out;
      if (slot[out] >= 0 || program.values[out].kind != graph::ValueKind::linear) continue;
      // Values whose last reader ran before step i are free again.
      for (auto it = live.begin(); it != live.end();) {
        if (last[*it] < i && *it != p.answer) {
          free_list.emplace_back(slot[*it], (infos[*it].shape.num_elements() + 7) / 8 * 8);
          it = live.erase(it);
        } else {
          ++it;
        }
      }
      const std::int64_t need = (infos[out].shape.num_elements() + 7) / 8 * 8;
      auto fit = std::find_if(free_list.begin(), free_list.end(),
                              [&](const auto& f) { return f.second >= need; });
      if (fit != free_list.end()) {
        slot[out] = fit->first;
        if (fit->second > need) *fit = {fit->first + need, fit->second - need};
        else free_list.erase(fit);
      } else {
        slot[out] = pool;
        pool += need;
      }
      live.push_back(out);
    }
  }
  std::int64_t fixed_elems = 0;  // seed and hoisted linear values, per direction
  for (std::size_t v = 0; v < n_values; ++v)
    if (used[v] && program.values[v].kind == graph::ValueKind::linear && slot[v] < 0)
      fixed_elems += (infos[v].shape.num_elements() + 7) / 8 * 8;
  std::int64_t dirs = kDirectionBudgetBytes /
                      std::max<std::int64_t>(1, (fixed_elems + pool) * p.lanes * std::int64_t(sizeof(T)));
  dirs = std::clamp<std::int64_t>(dirs, 1, std::max<std::int64_t>(p.n_dirs, 1));
  if (4 * dirs >= 3 * p.n_dirs) dirs = std::max<std::int64_t>(p.n_dirs, 1);  // one chunk: hoisting pays
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
  const std::int64_t pool_base = at;
  at += pool * dirs * p.lanes;
  for (std::size_t v = 0; v < n_values; ++v) {
    if (!used[v]) continue;
    const auto& val = program.values[v];
    const std::int64_t e = val.info.shape.num_elements();
    if (val.kind == graph::ValueKind::linear) {
      p.dir_stride[v] = e * p.lanes;
      if (slot[v] >= 0) p.offset[v] = pool_base + slot[v] * dirs * p.lanes;
      else place(v, dirs * e * p.lanes);
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
  if (std::getenv("BATCHJAC_DEBUG_PLAN")) {  // development aid: the plan's shape
    auto dump = [&](const char* what, const std::vector<ops::Step<T>>& steps) {
      std::fprintf(stderr, "%s: %zu steps\n", what, steps.size());
      for (const auto& st : steps) {
        std::fprintf(stderr, "  kind %d out %d [%lld elems%s] in", static_cast<int>(st.kind), st.out,
                     static_cast<long long>(infos[st.out].shape.num_elements()),
                     program.values[st.out].kind == graph::ValueKind::linear ? ", linear" : "");
        for (int i = 0; i < st.n_in; ++i) std::fprintf(stderr, " %d", st.in[i]);
        std::fprintf(stderr, "\n");
      }
    };
    std::fprintf(stderr, "plan: mode %s, lanes %lld, D %lld of %lld, buffer %lld\n",
                 mode == JacobianMode::forward ? "forward" : "reverse",
                 static_cast<long long>(p.lanes), static_cast<long long>(p.max_dirs),
                 static_cast<long long>(p.n_dirs), static_cast<long long>(at));
    dump("primal", p.primal_steps);
    dump("invariant", p.invariant_steps);
    dump("linear", p.linear_steps);
  }
  return p;
}

template Plan<float> make_plan<float>(const graph::Program&, const graph::LinearProgram&,
                                      JacobianMode, const Tensor&, const JacobianOptions&);
template Plan<double> make_plan<double>(const graph::Program&, const graph::LinearProgram&,
                                        JacobianMode, const Tensor&, const JacobianOptions&);

}  // namespace batchjac::engine
