// Planning: lowering, buffer layout, and the direction chunk D.
#include "engine/plan.hpp"

#include "engine/sparse.hpp"
#include "ops/elementwise_math.hpp"
#include "ops/op_list.hpp"
#include "tensor/tensor_impl.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>

namespace batchjac::engine {

namespace {
// A task's direction buffers should stay in L2 beside the primal values.
constexpr std::int64_t kDirectionBudgetBytes = 512 * 1024;

// Steps' work per block per direction: elements read and written (multiply-
// adds for matmul).
template <class T>
double steps_cost(const std::vector<ops::Step<T>>& steps) {
  double cost = 0;
  for (const auto& s : steps) {
    switch (s.kind) {
      case ops::Step<T>::Kind::elementwise: cost += double(s.ew.n_elem) * (s.n_in + 1); break;
      case ops::Step<T>::Kind::index: cost += double(s.ix.n_in + s.ix.n_out); break;
      case ops::Step<T>::Kind::matmul:
        cost += double(s.mm.batch * s.mm.m * s.mm.n) * double(s.mm.k + 1);
        break;
      case ops::Step<T>::Kind::scan: cost += 2.0 * double(s.sc.outer * s.sc.len * s.sc.inner); break;
      case ops::Step<T>::Kind::matrix:  // Gauss-Jordan: about 2 n^3 operations per matrix
        cost += 2.0 * double(s.mx.batch * s.mx.n * s.mx.n) * double(s.mx.n + 1);
        break;
    }
  }
  return cost;
}

// The sparse form's interpreted terms cost more than a dense kernel's
// streamed elements.
constexpr double kSparseTermCost = 1.5;

}  // namespace

int sparse_override() {
  const char* env = std::getenv("BATCHJAC_SPARSE");
  if (env == nullptr || *env == '\0') return -1;
  return *env == '0' ? 0 : 1;
}

// A linear value scaled elementwise by a per-example coefficient, read only
// by a matmul against shared weights (a network layer's JVP or VJP: the
// tangent times 1 - tanh^2, then the weights): the matmul scales its rows as
// it packs them, and the separate pass over [D][element][L] disappears.
template <class T>
void fuse_scale_into_matmul(Plan<T>& p, const std::vector<char>& linear) {
  using Kind = typename ops::Step<T>::Kind;
  auto& steps = p.linear_steps;
  std::vector<int> readers(linear.size(), 0);
  for (const auto& s : steps)
    for (int i = 0; i < s.n_in; ++i) ++readers[s.in[i]];
  std::vector<ops::Step<T>> kept;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const ops::Step<T>& s = steps[i];
    if (i + 1 < steps.size() && s.kind == Kind::elementwise &&
        s.ew_fn == p.table->binary[ops::math::kMultiply] && !s.ew.accumulate && !s.ew.in[0].map &&
        !s.ew.in[1].map && readers[s.out] == 1 && s.out != p.answer) {
      ops::Step<T>& mm = steps[i + 1];
      const int lin = linear[s.in[0]] ? s.in[0] : s.in[1], coef = lin == s.in[0] ? s.in[1] : s.in[0];
      if (mm.kind == Kind::matmul && mm.in[0] == s.out && mm.in[1] != s.out && mm.n_in == 2 &&
          !mm.mm.accumulate && p.table->width > 1 && !p.varying[mm.in[1]] && mm.mm.k <= 256 &&
          linear[lin] && !linear[coef] && p.varying[coef]) {
        mm.in[0] = lin;
        mm.in[2] = coef;
        mm.n_in = 3;
        continue;
      }
    }
    kept.push_back(s);
  }
  steps = std::move(kept);
}

// Values written by `steps` (those `pooled` accepts) share memory by liveness:
// a greedy first-fit over their live ranges, a value being free once the
// step after its last reader begins. `keep` (or -1) is never freed. Writes
// each value's offset in `slot` (units of elements); returns the pool size.
template <class T, class Pred>
std::int64_t share_by_liveness(const std::vector<ops::Step<T>>& steps,
                               const std::vector<ops::ValueInfo>& infos, int keep, Pred pooled,
                               std::vector<std::int64_t>& slot) {
  auto size_of = [&](int v) { return (infos[v].shape.num_elements() + 7) / 8 * 8; };
  const std::size_t n_steps = steps.size();
  std::vector<std::size_t> last(infos.size(), 0);
  for (std::size_t i = 0; i < n_steps; ++i)
    for (int j = 0; j < steps[i].n_in; ++j) last[steps[i].in[j]] = i;
  std::int64_t pool = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> free_list;  // (offset, size)
  std::vector<int> live;
  for (std::size_t i = 0; i < n_steps; ++i) {
    const int out = steps[i].out;
    if (slot[out] >= 0 || !pooled(out)) continue;
    for (auto it = live.begin(); it != live.end();) {
      if (last[*it] < i && *it != keep) {
        free_list.emplace_back(slot[*it], size_of(*it));
        it = live.erase(it);
      } else {
        ++it;
      }
    }
    const std::int64_t need = size_of(out);
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
  return pool;
}

// Lays out the sparse form's slots after `at` (slots share memory once their
// last reader has run) and its output block; returns the new end.
template <class T>
std::int64_t place_sparse(Plan<T>& p, const SparseProgram& sp, std::int64_t at) {
  const std::int64_t L = p.lanes;
  const auto n_ops = static_cast<int>(sp.ops.size());
  // A slot that is an entry of the Jacobian lives there (the first such
  // entry): its copy disappears. Entries with no terms are zero-filled once.
  std::vector<std::int64_t> entry_of(static_cast<std::size_t>(sp.n_slots), -1);
  std::vector<char> dropped(static_cast<std::size_t>(n_ops), 0);
  for (int i = 0; i < n_ops; ++i) {
    const SymOp& op = sp.ops[i];
    if (op.out < sp.n_slots) continue;
    if (op.begin == op.end) {
      dropped[i] = 1;
      continue;
    }
    const SymTerm& t = sp.terms[op.begin];
    if (op.end - op.begin == 1 && op.coef_end == op.begin && t.scale == 1.0 && t.in > 0 &&
        entry_of[t.in] < 0) {
      entry_of[t.in] = op.out - sp.n_slots;
      dropped[i] = 1;
    }
  }
  // The kernel's view of a term: how many buffer reads it multiplies (the
  // slot of ones is read only when nothing else is).
  auto factors = [&](const SymTerm& t) {
    const int values = (t.coef_value >= 0) + (t.coef2_value >= 0) + (t.coef3_value >= 0);
    return values + (t.in != 0 || values == 0 ? 1 : 0);
  };
  // Per op: its terms of three, two and one factors.
  std::vector<std::array<int, 3>> shape(static_cast<std::size_t>(n_ops));
  for (int i = 0; i < n_ops; ++i) {
    const SymOp& op = sp.ops[i];
    shape[i] = {0, 0, 0};
    for (int t = op.begin; t < op.end; ++t) ++shape[i][3 - factors(sp.terms[t])];
  }
  // The ops run by dependency level and, within a level, grouped by shape:
  // the kernel then meets long runs of ops with equal term counts, whose
  // loops it predicts, instead of counts that change from op to op.
  std::vector<int> order;
  {
    std::vector<int> slot_level(static_cast<std::size_t>(sp.n_slots), 0);
    std::vector<int> level(static_cast<std::size_t>(n_ops), 0);
    for (int i = 0; i < n_ops; ++i) {  // ops come in dependency order
      if (dropped[i]) continue;
      const SymOp& op = sp.ops[i];
      for (int t = op.begin; t < op.end; ++t) {
        const SymTerm& term = sp.terms[t];
        level[i] = std::max(level[i], slot_level[term.in] + 1);
        each_coefficient_slot(term, [&](int s) { level[i] = std::max(level[i], slot_level[s] + 1); });
      }
      if (op.out < sp.n_slots) slot_level[op.out] = level[i];
      order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return std::pair{level[a], shape[a]} < std::pair{level[b], shape[b]};
    });
  }
  const auto n_run = static_cast<int>(order.size());
  std::vector<int> last(static_cast<std::size_t>(sp.n_slots), -1);  // a position in order
  for (int i = 0; i < n_run; ++i)
    for (int t = sp.ops[order[i]].begin; t < sp.ops[order[i]].end; ++t) {
      const SymTerm& term = sp.terms[t];
      last[term.in] = i;
      each_coefficient_slot(term, [&](int s) { last[s] = i; });
    }
  std::vector<std::int64_t> phys(static_cast<std::size_t>(sp.n_slots), -1);
  std::vector<std::int64_t> free_slots;
  std::vector<std::vector<int>> dies(static_cast<std::size_t>(n_run));
  for (int s = 1; s < sp.n_slots; ++s)
    if (last[s] >= 0 && entry_of[s] < 0) dies[last[s]].push_back(s);
  std::int64_t n_phys = 1;  // 0: ones
  phys[0] = 0;
  for (int i = 0; i < n_run; ++i) {
    for (int s : dies[i]) free_slots.push_back(phys[s]);  // read for the last time here
    const int out = sp.ops[order[i]].out;
    if (out >= sp.n_slots || entry_of[out] >= 0) continue;
    if (free_slots.empty()) phys[out] = n_phys++;
    else {
      phys[out] = free_slots.back();
      free_slots.pop_back();
    }
    if (last[out] < 0) free_slots.push_back(phys[out]);  // never read
  }
  p.ones_offset = at;
  const std::int64_t out_base = at + n_phys * L;
  p.sparse_out = out_base;
  auto offset = [&](int id) {
    const std::int64_t entry = id >= sp.n_slots ? id - sp.n_slots : entry_of[id];
    return static_cast<std::int32_t>(entry >= 0 ? out_base + entry * L : at + phys[id] * L);
  };
  auto value = [&](int v, std::int64_t e) {  // element e of a per-example value, or a slot
    if (v >= kSlotCoefficient) return offset(v - kSlotCoefficient);
    return v >= 0 ? static_cast<std::int32_t>(p.offset[v] + e * L) : 0;
  };
  // Per op, how many ops from it on have its shape.
  std::vector<std::int32_t> run(static_cast<std::size_t>(n_run), 1);
  for (int i = n_run - 2; i >= 0; --i)
    if (shape[order[i]] == shape[order[i + 1]]) run[i] = run[i + 1] + 1;
  const std::int64_t n_entries = p.n_dirs * p.answer_elems;
  p.live_groups.assign(static_cast<std::size_t>((n_entries + L - 1) / L), 0);
  for (int i = 0; i < n_ops; ++i) {
    const SymOp& op = sp.ops[i];
    if (op.out >= sp.n_slots && op.begin != op.end) p.live_groups[(op.out - sp.n_slots) / L] = 1;
  }
  for (int i = 0; i < n_run; ++i) {
    const SymOp& op = sp.ops[order[i]];
    // Terms of three factors first, then two, then one; the slot of ones is
    // read only by a term with nothing else.
    kernels::SparseOp kop;
    kop.out = offset(op.out);
    kop.run = run[i];
    kop.n_triple = shape[order[i]][0];
    kop.n_coef = shape[order[i]][1];
    kop.n_plain = shape[order[i]][2];
    for (const int n : {3, 2, 1})
      for (int t = op.begin; t < op.end; ++t) {
        const SymTerm& s = sp.terms[t];
        if (factors(s) != n) continue;
        // Its reads: the slot unless it is the ones, then its values.
        std::int32_t read[3];
        int k = 0;
        if (s.in != 0 || (n == 1 && s.coef_value < 0)) read[k++] = offset(s.in);
        if (s.coef_value >= 0) read[k++] = value(s.coef_value, s.coef_elem);
        if (s.coef2_value >= 0) read[k++] = value(s.coef2_value, s.coef2_elem);
        if (s.coef3_value >= 0) read[k++] = value(s.coef3_value, s.coef3_elem);
        kernels::SparseTerm<T> term;
        term.in = read[0];
        term.coef = n > 1 ? read[1] : 0;
        term.scale = static_cast<T>(s.scale);
        p.sparse_terms.push_back(term);
        if (n == 3) p.sparse_terms.push_back({read[2], 0, T(0)});
      }
    p.sparse_ops.push_back(kop);
  }
  return out_base + n_entries * L;
}

// A gather of a computed value (a slice, a column pick) whose readers are
// elementwise steps, or gathers like it, costs a pass that they need not
// wait for: they read its input through the composed map instead, and the
// step and its buffer disappear. The sparse form's coefficients come from
// those readers, so they follow. Not into a linear step feeding a matmul:
// fuse_scale_into_matmul wants that step's operands unmapped.
template <class T>
void forward_gathers(Plan<T>& p, const graph::Program& program) {
  using Kind = ops::Step<T>::Kind;
  const std::size_t n = program.values.size();
  auto is_gather = [&](const ops::Step<T>& s) {
    if (s.kind != Kind::index || s.ix_fn != p.table->gather || s.ix.accumulate ||
        program.values[s.out].kind != graph::ValueKind::primal ||
        program.values[s.in[0]].kind == graph::ValueKind::linear)
      return false;
    return std::all_of(s.ix.map, s.ix.map + s.ix.n_out, [](std::int64_t e) { return e >= 0; });
  };
  std::vector<char> candidate(p.primal_steps.size(), 0);  // per primal step: is_gather
  for (std::size_t i = 0; i < p.primal_steps.size(); ++i) candidate[i] = is_gather(p.primal_steps[i]);
  std::vector<char> feeds_matmul(n, 0);
  for (const auto& s : p.linear_steps)
    if (s.kind == Kind::matmul)
      for (int i = 0; i < s.n_in; ++i) feeds_matmul[s.in[i]] = 1;
  // Per value: read by a step that cannot read through a map, and the
  // gather steps (positions in primal_steps) reading it.
  std::vector<char> pinned(n, 0);
  std::vector<std::vector<std::size_t>> gather_readers(n);
  pinned[program.result] = 1;
  if (program.kept >= 0) pinned[program.kept] = 1;
  for (std::size_t i = 0; i < p.primal_steps.size(); ++i) {
    const auto& s = p.primal_steps[i];
    for (int k = 0; k < s.n_in; ++k) {
      if (candidate[i]) gather_readers[s.in[k]].push_back(i);
      else if (s.kind != Kind::elementwise) pinned[s.in[k]] = 1;
    }
  }
  for (const auto& s : p.linear_steps)
    for (int k = 0; k < s.n_in; ++k)
      if (s.kind != Kind::elementwise || feeds_matmul[s.out]) pinned[s.in[k]] = 1;
  // Last to first, so that a gather's gather readers are decided before it.
  std::vector<char> forwarded(p.primal_steps.size(), 0);
  std::vector<char> gone(n, 0);
  for (std::size_t i = p.primal_steps.size(); i-- > 0;) {
    const auto& s = p.primal_steps[i];
    if (!candidate[i] || pinned[s.out]) continue;
    const auto& readers = gather_readers[s.out];
    if (std::all_of(readers.begin(), readers.end(), [&](std::size_t r) { return forwarded[r] != 0; }))
      forwarded[i] = 1, gone[s.out] = 1;
  }
  // First to last: each forwarded value's source and map into it.
  std::vector<int> source(n, -1);
  std::vector<const std::int64_t*> via(n, nullptr);
  for (std::size_t i = 0; i < p.primal_steps.size(); ++i) {
    if (!forwarded[i]) continue;
    const auto& s = p.primal_steps[i];
    const int in = s.in[0];
    std::vector<std::int64_t> map(s.ix.map, s.ix.map + s.ix.n_out);
    if (gone[in])
      for (auto& e : map) e = via[in][e];
    source[s.out] = gone[in] ? source[in] : in;
    via[s.out] = p.maps.emplace_back(std::move(map)).data();
  }
  auto reroute = [&](std::vector<ops::Step<T>>& steps) {
    for (auto& s : steps) {
      if (s.kind != Kind::elementwise) continue;
      for (int k = 0; k < s.n_in; ++k) {
        const int v = s.in[k];
        if (!gone[v]) continue;
        auto& operand = s.ew.in[k];
        std::vector<std::int64_t> map(static_cast<std::size_t>(s.ew.n_elem));
        bool identity = true;
        for (std::int64_t e = 0; e < s.ew.n_elem; ++e) {
          map[e] = via[v][operand.map ? operand.map[e] : e];
          identity = identity && map[e] == e;
        }
        s.in[k] = source[v];
        operand.map = identity ? nullptr : p.maps.emplace_back(std::move(map)).data();
      }
    }
  };
  reroute(p.primal_steps);
  reroute(p.linear_steps);
  std::vector<ops::Step<T>> kept;
  for (std::size_t i = 0; i < p.primal_steps.size(); ++i)
    if (!forwarded[i]) kept.push_back(p.primal_steps[i]);
  p.primal_steps = std::move(kept);
}

// The last pass: copies of the linear steps whose products of a linear value
// and a coefficient take strong zeros (0 where either factor is 0), for the
// chunks whose answer has a NaN. Other steps (sums, index maps, selects)
// multiply nothing and stay as they are.
template <class T>
std::vector<ops::Step<T>> bind_strong_zeros(std::vector<ops::Step<T>> steps,
                                            const kernels::KernelTable<T>& t) {
  namespace m = ops::math;
  for (auto& s : steps) {
    if (s.kind == ops::Step<T>::Kind::matmul && s.mm_fn == t.matmul) s.mm_fn = t.matmul_strong;
    if (s.kind != ops::Step<T>::Kind::elementwise) continue;
    if (s.ew_fn == t.binary[m::kMultiply]) s.ew_fn = t.binary[m::kStrongMultiply];
    else if (s.ew_fn == t.binary[m::kDivide]) s.ew_fn = t.strong_divide;
    else if (s.ew_fn == t.ternary[m::kAxpy]) s.ew_fn = t.strong_axpy;
    else if (s.ew_fn == t.quaternary[m::kLincomb]) s.ew_fn = t.strong_lincomb;
  }
  return steps;
}

template <class T>
std::optional<Plan<T>> make_plan(const graph::Program& program, const graph::LinearProgram& lin,
                                 JacobianMode mode, const JacobianOptions& options,
                                 double cost_to_beat) {
  Plan<T> p;
  p.mode = mode;
  const bool value_only = lin.input < 0;
  p.value = program.kept;
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
  forward_gathers(p, program);
  const std::vector<ops::Step<T>> all_linear = p.linear_steps;
  std::vector<char> invariant(n_values, 0);  // the same numbers in every lane
  {  // Hoist the steps whose inputs are all example-independent.
    if (!value_only) invariant[p.seed] = 1;
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
  p.n_dirs = value_only ? 0 : infos[p.seed].shape.num_elements();
  p.answer_elems = value_only ? 0 : infos[p.answer].shape.num_elements();
  {
    std::vector<char> is_linear(n_values, 0);
    for (std::size_t v = 0; v < n_values; ++v)
      is_linear[v] = program.values[v].kind == graph::ValueKind::linear ? 1 : 0;
    fuse_scale_into_matmul(p, is_linear);
  }

  const double primal_cost = steps_cost(p.primal_steps);
  std::optional<SparseProgram> sparse;
  if (const int force = sparse_override(); force != 0 && !value_only) {
    const double dense = steps_cost(p.linear_steps) * double(p.n_dirs);
    double limit = force == 1 ? 1e8 : 0.5 * dense / kSparseTermCost;
    // Nor more terms than could still beat the other mode (eight times that:
    // the compiler's count includes the elements it visits, and the terms
    // and ops its last passes merge and drop, engine/sparse.cpp).
    if (std::isfinite(cost_to_beat))
      limit = std::min(limit, 8 * std::max(0.0, cost_to_beat - primal_cost) / kSparseTermCost +
                                  double(p.n_dirs * p.answer_elems));
    sparse = compile_sparse<T>(program, *p.table, all_linear, p.seed, p.answer, mode == JacobianMode::forward,
                               program.symmetric, static_cast<std::int64_t>(limit));
  }
  if (sparse) {
    // Its offsets are 32-bit: every value, slot and entry of a block must fit.
    std::int64_t elements = sparse->n_slots + p.n_dirs * p.answer_elems;
    for (const auto& info : infos) elements += info.shape.num_elements();
    for (const int v : sparse->reciprocals) elements += infos[v].shape.num_elements();
    if (elements * p.lanes >= (std::int64_t{1} << 31)) sparse.reset();
  }
  p.cost = primal_cost;
  if (!sparse) p.cost += steps_cost(p.linear_steps) * double(p.n_dirs);
  else {
    p.cost += kSparseTermCost * double(sparse->ops.size() + sparse->terms.size());
    for (const int v : sparse->reciprocals) p.cost += 2.0 * double(infos[v].shape.num_elements());
  }
  if (!(p.cost < cost_to_beat)) return std::nullopt;
  if (sparse) {
    p.sparse = true;
    p.mirrored = program.symmetric && p.n_dirs == p.answer_elems;
    p.invariant_steps.clear();
    p.linear_steps.clear();
    // The reciprocals its terms read, after the primal steps: value ids from
    // n_values on (engine/sparse.hpp).
    std::vector<char> read(sparse->reciprocals.size(), 0);
    for (const SymTerm& t : sparse->terms)
      for (const int v : {t.coef_value, t.coef2_value, t.coef3_value})
        if (reads_value(v) && v >= static_cast<int>(n_values)) read[v - n_values] = 1;
    for (std::size_t k = 0; k < sparse->reciprocals.size(); ++k) {
      const int from = sparse->reciprocals[k];
      infos.push_back(infos[from]);
      p.varying.push_back(p.varying[from]);
    }
    ops::Lowering<T> extra(*p.table, infos, p.varying, p.primal_steps, p.maps);
    for (std::size_t k = 0; k < sparse->reciprocals.size(); ++k)
      if (read[k])
        extra.elementwise(p.table->unary[ops::math::kReciprocal], static_cast<int>(n_values + k),
                          {sparse->reciprocals[k]});
  }
  // Values of the program, and the sparse form's reciprocals after them.
  const std::size_t n_all = infos.size();

  // Values the steps touch.
  std::vector<char> used(n_all, 0);
  if (!value_only) used[p.seed] = used[p.answer] = p.sparse ? 0 : 1;
  if (p.value >= 0) used[p.value] = 1;
  for (const auto* steps : {&p.primal_steps, &p.invariant_steps, &p.linear_steps})
    for (const auto& s : *steps) {
      used[s.out] = 1;
      for (int i = 0; i < s.n_in; ++i) used[s.in[i]] = 1;
    }
  used[program.parameter] = 1;
  if (sparse)
    for (const SymTerm& t : sparse->terms)
      for (const int v : {t.coef_value, t.coef2_value, t.coef3_value})
        if (reads_value(v)) used[v] = 1;

  // Linear values made per block share memory by liveness, in units of
  // elements per direction (buffers scale with D). Seed and hoisted values
  // keep their own.
  std::vector<std::int64_t> slot(n_all, -1);  // pool offset per direction, block values
  const std::int64_t pool = share_by_liveness<T>(
      p.linear_steps, infos, p.answer,
      [&](int v) { return v < int(n_values) && program.values[v].kind == graph::ValueKind::linear; }, slot);
  // Likewise computed primal values; those the linear steps read (the
  // coefficients) live to the end.
  std::vector<std::int64_t> primal_slot(n_all, -1);
  std::vector<char> coefficient(n_all, 0);
  for (const auto* steps : {&p.invariant_steps, &p.linear_steps})
    for (const auto& s : *steps)
      for (int i = 0; i < s.n_in; ++i) coefficient[s.in[i]] = 1;
  if (sparse)
    for (const SymTerm& t : sparse->terms)
      for (const int v : {t.coef_value, t.coef2_value, t.coef3_value})
        if (reads_value(v)) coefficient[v] = 1;
  auto pooled_primal = [&](int v) {
    return v < int(n_values) && program.values[v].kind == graph::ValueKind::primal && !coefficient[v];
  };
  // What generated code may keep in registers: computed primal values
  // that only primal steps read (codegen/emit.cpp).
  p.primal_only.assign(n_all, 0);
  for (std::size_t v = 0; v < n_values; ++v)
    p.primal_only[v] = pooled_primal(static_cast<int>(v)) && static_cast<int>(v) != p.value;
  const std::int64_t primal_pool = share_by_liveness<T>(
      p.primal_steps, infos, p.value,  // the value, if kept, lives to the end
      pooled_primal, primal_slot);
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
  if (p.sparse) dirs = std::max<std::int64_t>(p.n_dirs, 1);  // all at once: no dense buffers
  p.max_dirs = dirs;

  p.offset.assign(n_all, -1);
  p.dir_stride.assign(n_all, 0);
  p.shared_ptr.assign(n_all, nullptr);
  std::int64_t at = 0;
  auto place = [&](std::size_t v, std::int64_t elems) {
    p.offset[v] = at;
    at += (elems + 7) / 8 * 8;  // keep every buffer 64-byte aligned
  };
  const std::int64_t pool_base = at;
  at += pool * dirs * p.lanes;
  const std::int64_t primal_base = at;
  at += primal_pool * p.lanes;
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
      if (primal_slot[v] >= 0) p.offset[v] = primal_base + primal_slot[v] * p.lanes;
      else place(v, e * p.lanes);
      if (val.kind == graph::ValueKind::parameter)
        p.loads.push_back({static_cast<int>(v), -1, val.info.dtype, e});
      else if (val.kind == graph::ValueKind::constant)
        p.loads.push_back({static_cast<int>(v), val.constant, program.constants[val.constant].dtype(), e});
    }
  }
  for (std::size_t v = n_values; v < n_all; ++v)  // reciprocals: coefficients, live to the end
    if (used[v]) place(v, infos[v].shape.num_elements() * p.lanes);
  if (p.sparse) at = place_sparse(p, *sparse, at);
  // A scaled matmul whose A is the same in every lane (a hoisted tangent,
  // e.g. W1's columns in an MLP's forward mode) reads A as scalars: each
  // chunk copies lane 0 of it to a value of its own, [element][direction].
  for (std::size_t i = 0; i < p.linear_steps.size(); ++i) {
    ops::Step<T>& st = p.linear_steps[i];
    // Its tiles span a vector of directions (forward) or columns (reverse).
    // Reverse mode keeps the packed kernel for fewer columns than a vector
    // (both round (scale * a) * b alike). Forward mode takes this kernel
    // whatever the chunk of directions: its products round as (scale * b) * a,
    // so choosing by the chunk would make parallel_iterations change the bits.
    if (st.kind != ops::Step<T>::Kind::matmul || st.n_in != 3 || !invariant[st.in[0]] ||
        st.mm.batch != 1 || st.mm.a_batch || st.mm.b_batch ||
        (mode == JacobianMode::reverse && st.mm.n < p.table->width))
      continue;
    const std::int64_t elems = infos[st.in[0]].shape.num_elements();
    const int v = static_cast<int>(p.offset.size());
    p.lane_shared.push_back({st.in[0], v, elems});
    p.offset.push_back(at);
    at += (dirs * elems + 7) / 8 * 8;
    p.dir_stride.push_back(1);
    p.varying.push_back(0);
    p.shared_ptr.push_back(nullptr);
    st.in[0] = v;
    st.mm.a_elem_stride = dirs;
    st.mm.tile_dirs = mode == JacobianMode::forward;
    // Tiles along B's columns read a row of B per k: keep B as [k][n].
    const T* b = p.shared_ptr[st.in[1]];
    if (!st.mm.tile_dirs && st.mm.tb && b) {
      std::vector<T> bt(static_cast<std::size_t>(st.mm.k * st.mm.n));
      for (std::int64_t kk = 0; kk < st.mm.k; ++kk)
        for (std::int64_t j = 0; j < st.mm.n; ++j) bt[kk * st.mm.n + j] = b[j * st.mm.k + kk];
      p.transposed.push_back(std::move(bt));
      st.in[1] = static_cast<int>(p.offset.size());
      st.mm.tb = false;
      p.offset.push_back(-1);
      p.dir_stride.push_back(0);
      p.varying.push_back(0);
      p.shared_ptr.push_back(p.transposed.back().data());
    }
    if (i + 1 == p.linear_steps.size() && st.out == p.answer) p.answer_to_rows = true;
  }
  p.buffer_size = at;
  p.strong_invariant_steps = bind_strong_zeros(p.invariant_steps, *p.table);
  p.strong_linear_steps = bind_strong_zeros(p.linear_steps, *p.table);
  if (std::getenv("BATCHJAC_DEBUG_PLAN")) {  // development aid: the plan's shape
    auto dump = [&](const char* what, const std::vector<ops::Step<T>>& steps) {
      std::fprintf(stderr, "%s: %zu steps\n", what, steps.size());
      for (const auto& st : steps) {
        std::fprintf(stderr, "  kind %d out %d [%lld elems%s] in", static_cast<int>(st.kind), st.out,
                     static_cast<long long>(infos[st.out].shape.num_elements()),
                     st.out < int(n_values) && program.values[st.out].kind == graph::ValueKind::linear
                         ? ", linear"
                         : "");
        for (int i = 0; i < st.n_in; ++i) std::fprintf(stderr, " %d", st.in[i]);
        std::fprintf(stderr, "\n");
      }
    };
    std::fprintf(stderr, "plan: mode %s, cost %.0f, lanes %lld, D %lld of %lld, buffer %lld\n",
                 mode == JacobianMode::forward ? "forward" : "reverse", p.cost,
                 static_cast<long long>(p.lanes), static_cast<long long>(p.max_dirs),
                 static_cast<long long>(p.n_dirs), static_cast<long long>(at));
    if (p.sparse) {
      std::fprintf(stderr, "sparse: %zu ops, %zu terms\n", p.sparse_ops.size(), p.sparse_terms.size());
      std::int64_t hist[6] = {}, coef = 0, unit = 0, ones = 0;
      for (const auto& op : p.sparse_ops) hist[std::min(op.n_triple + op.n_coef + op.n_plain, 5)]++;
      for (const auto& op : p.sparse_ops) coef += op.n_coef;
      for (const auto& t : p.sparse_terms) unit += t.scale == T(1), ones += t.in == p.ones_offset;
      std::fprintf(stderr, "  ops by terms 0..5+: %lld %lld %lld %lld %lld %lld; coef terms %lld, unit scale %lld, from ones %lld\n",
                   (long long)hist[0], (long long)hist[1], (long long)hist[2], (long long)hist[3],
                   (long long)hist[4], (long long)hist[5], (long long)coef, (long long)unit, (long long)ones);
      std::map<std::array<int, 3>, int> shapes;  // ops per (triple, coef, plain) term counts
      for (const auto& op : p.sparse_ops) ++shapes[{op.n_triple, op.n_coef, op.n_plain}];
      std::fprintf(stderr, "  ops by shape (triple, coef, plain):");
      for (const auto& [shape, count] : shapes) std::fprintf(stderr, " (%d,%d,%d) %d", shape[0], shape[1], shape[2], count);
      std::fprintf(stderr, "\n");
    }
    dump("primal", p.primal_steps);
    dump("invariant", p.invariant_steps);
    dump("linear", p.linear_steps);
  }
  return p;
}

template std::optional<Plan<float>> make_plan<float>(const graph::Program&, const graph::LinearProgram&,
                                                     JacobianMode, const JacobianOptions&, double);
template std::optional<Plan<double>> make_plan<double>(const graph::Program&, const graph::LinearProgram&,
                                                       JacobianMode, const JacobianOptions&, double);

}  // namespace batchjac::engine
