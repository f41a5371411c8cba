// Compiling linear steps into slots and terms (see sparse.hpp).
#include "engine/sparse.hpp"

#include "ops/elementwise_math.hpp"
#include "tensor/tensor_impl.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>

namespace batchjac::engine {

namespace {

namespace m = ops::math;
using m::kNegative, m::kIdentity, m::kAdd, m::kSubtract, m::kMultiply, m::kDivide, m::kAxpy, m::kLincomb,
    m::kSelectFirst, m::kSelectSecond;

// Direction `dir` of an element lives in `slot`.
struct Col {
  int dir;
  int slot;
};
// An element's directions: n Cols from `begin` in the compiler's pool, sorted
// by direction. (One pool, not a vector per element: an element is written
// once and never changes, so gathers and scatters copy the view alone.)
struct Cols {
  int begin = 0, n = 0;
};

template <class T>
class Compiler {
 public:
  Compiler(const graph::Program& program, const kernels::KernelTable<T>& table,
           std::int64_t max_terms)
      : program_(program),
        table_(table),
        max_terms_(max_terms),
        cols_(program.values.size()),
        constants_(program.values.size()) {
    slot_const_.push_back(1.0);  // slot 0: ones
    def_op_.push_back(-1);
  }

  void seed(int value) {
    const std::int64_t n = program_.info(value).shape.num_elements();
    n_dirs_ = static_cast<int>(n);
    by_dir_.resize(static_cast<std::size_t>(n));
    cols_[value].assign(static_cast<std::size_t>(n), {});
    for (std::int64_t e = 0; e < n; ++e) {
      cols_[value][e] = {static_cast<int>(pool_.size()), 1};
      pool_.push_back({static_cast<int>(e), 0});
    }
  }

  bool step(const ops::Step<T>& s) {
    switch (s.kind) {
      case ops::Step<T>::Kind::elementwise: return elementwise(s);
      case ops::Step<T>::Kind::index: return index(s);
      case ops::Step<T>::Kind::matmul: return matmul(s);
      case ops::Step<T>::Kind::scan: return scan(s);
      case ops::Step<T>::Kind::matrix: return false;  // nonlinear: primal steps only
    }
    return false;
  }

  // Ops writing every entry of one example's Jacobian from the answer.
  SparseProgram finish(int answer, bool forward, bool mirrored) {
    const std::int64_t n_elem = program_.info(answer).shape.num_elements();
    const std::int64_t n = n_elem * n_dirs_;
    // Entries below the diagonal of a mirrored answer get no op (the runner
    // copies them), nor do the slots only they would read.
    auto below = [&](std::int64_t k) { return mirrored && k / n_dirs_ > k % n_dirs_; };
    std::vector<int> entry(static_cast<std::size_t>(n), -1);
    auto& ans = cols_[answer];
    for (std::int64_t e = 0; e < n_elem && e < static_cast<std::int64_t>(ans.size()); ++e)
      for (const Col& c : of(ans[e])) entry[forward ? e * n_dirs_ + c.dir : c.dir * n_elem + e] = c.slot;
    out_.n_slots = static_cast<int>(slot_const_.size());
    for (std::int64_t k = 0; k < n; ++k) {
      if (below(k)) continue;
      SymOp op;
      op.out = out_.n_slots + static_cast<int>(k);
      op.begin = op.coef_end = static_cast<int>(out_.terms.size());
      if (const int slot = entry[k]; slot >= 0) {
        SymTerm t;
        t.in = slot;
        if (slot_const_[slot]) {
          t.in = 0;
          t.scale = *slot_const_[slot];
        }
        out_.terms.push_back(t);
      }
      op.end = static_cast<int>(out_.terms.size());
      out_.ops.push_back(op);
    }
    fold_scales();
    merge_single_reader_sums();
    share_sums();
    drop_dead_ops();
    return std::move(out_);
  }

 private:
  // (Ids past the program's values are reciprocals: per-example, not linear.)
  bool linear(int v) const {
    return v < n_values() && program_.values[v].kind == graph::ValueKind::linear;
  }
  bool shared(int v) const {
    return v < n_values() && program_.values[v].kind == graph::ValueKind::constant &&
           !program_.values[v].varying;
  }
  int n_values() const { return static_cast<int>(program_.values.size()); }
  // The id of 1 / v (see SparseProgram::reciprocals).
  int reciprocal(int v) {
    const auto it = std::find(out_.reciprocals.begin(), out_.reciprocals.end(), v);
    if (it != out_.reciprocals.end()) return n_values() + static_cast<int>(it - out_.reciprocals.begin());
    out_.reciprocals.push_back(v);
    return n_values() + static_cast<int>(out_.reciprocals.size()) - 1;
  }
  double constant(int v, std::int64_t e) {
    std::vector<double>& values = constants_[v];
    if (values.empty()) {
      const Tensor& c = program_.constants[program_.values[v].constant];
      const Tensor d = c.dtype() == DType::float64 ? c : detail::convert(c, DType::float64);
      const double* p = d.impl().template as<double>();
      values.assign(p, p + d.shape().num_elements());
    }
    return values[static_cast<std::size_t>(e)];
  }
  std::span<const Col> of(Cols c) const { return {pool_.data() + c.begin, static_cast<std::size_t>(c.n)}; }

  // A slot that only scales a sum no one else reads (W3's dT = -sum): the
  // scale moves into the sum's terms and the slot's readers read the sum
  // (a Jacobian entry then has the sum written straight to it,
  // engine/plan.cpp). The scaling op, read by no one, is dropped.
  void fold_scales() {
    std::vector<int> readers(slot_const_.size(), 0);
    for (const SymTerm& t : out_.terms) ++readers[t.in];
    std::vector<int> alias(slot_const_.size());
    for (std::size_t s = 0; s < alias.size(); ++s) alias[s] = static_cast<int>(s);
    for (const SymOp& op : out_.ops) {
      if (op.out >= out_.n_slots || op.end - op.begin != 1) continue;
      const SymTerm& t = out_.terms[op.begin];
      const int def = t.in > 0 ? def_op_[t.in] : -1;
      // (A sum already standing for another slot keeps its own scales.)
      if (t.coef_value >= 0 || def < 0 || readers[t.in] != 1 || alias[t.in] != t.in) continue;
      const SymOp& sum = out_.ops[def];
      for (int i = sum.begin; i < sum.end; ++i) out_.terms[i].scale *= t.scale;
      alias[op.out] = t.in;
    }
    for (SymTerm& t : out_.terms) t.in = alias[t.in];
  }

  // The ops some Jacobian entry needs: the entries' ops and, back from
  // them, the ops writing the slots they read (those inlined into all their
  // readers, or aliased away, are not).
  std::vector<char> live_ops() const {
    std::vector<char> needed(slot_const_.size(), 0);
    std::vector<char> live(out_.ops.size(), 0);
    for (std::size_t i = out_.ops.size(); i-- > 0;) {
      const SymOp& op = out_.ops[i];
      if (op.out < out_.n_slots && !needed[op.out]) continue;
      live[i] = 1;
      for (int t = op.begin; t < op.end; ++t) {
        const SymTerm& term = out_.terms[t];
        needed[term.in] = 1;
        each_coefficient_slot(term, [&](int s) { needed[s] = 1; });
      }
    }
    return live;
  }

  // A sum whose slot one plain term of a live op alone reads (no
  // coefficient: the slot times a scale) moves into that term's op: each of
  // its terms, its scale times the reader's, becomes a term of the reader,
  // and the slot is no longer written or read. Scalar code builds a sum of k
  // terms as k - 1 additions, one op of two terms each; merged, it is one op
  // of k terms, as a reduction over a tensor gives. No term gains a factor.
  // A term that stands for a merged sum is only marked here; the live ops
  // are then expanded once, depth first (a merged sum has one reader, so
  // each term is written once: linear in the form's size however long the
  // chain), keeping the order of coefficient terms before plain ones.
  void merge_single_reader_sums() {
    const std::vector<char> live = live_ops();
    std::vector<int> readers(slot_const_.size(), 0);
    for (std::size_t i = 0; i < out_.ops.size(); ++i)
      if (live[i])
        for (int k = out_.ops[i].begin; k < out_.ops[i].end; ++k) ++readers[out_.terms[k].in];
    std::vector<int> sum_of(out_.terms.size(), -1);  // per term: the op it stands for
    std::vector<char> merged(out_.ops.size(), 0);
    for (std::size_t i = 0; i < out_.ops.size(); ++i) {
      if (!live[i]) continue;
      for (int k = out_.ops[i].begin; k < out_.ops[i].end; ++k) {
        const SymTerm& t = out_.terms[k];
        const int def = t.in > 0 ? def_op_[t.in] : -1;
        if (def < 0 || readers[t.in] != 1 || t.coef_value >= 0) continue;
        sum_of[k] = def;
        merged[def] = 1;
      }
    }
    std::vector<SymTerm> terms, coef, plain;
    terms.reserve(out_.terms.size());
    struct Frame {
      int next, end;
      double scale;  // the product of the readers' scales above
    };
    std::vector<Frame> stack;
    std::vector<std::pair<int, int>> range(out_.ops.size());  // each op's terms before this pass
    for (std::size_t i = 0; i < out_.ops.size(); ++i) range[i] = {out_.ops[i].begin, out_.ops[i].end};
    for (std::size_t i = 0; i < out_.ops.size(); ++i) {
      SymOp& op = out_.ops[i];
      coef.clear();
      plain.clear();
      if (live[i] && !merged[i]) stack.push_back({range[i].first, range[i].second, 1.0});
      while (!stack.empty()) {
        Frame& f = stack.back();
        if (f.next == f.end) {
          stack.pop_back();
          continue;
        }
        const int k = f.next++;
        SymTerm t = out_.terms[k];
        t.scale *= f.scale;
        if (const int d = sum_of[k]; d >= 0) stack.push_back({range[d].first, range[d].second, t.scale});
        else (t.coef_value >= 0 ? coef : plain).push_back(t);
      }
      // Dead and merged ops keep no terms: drop_dead_ops removes them.
      op.begin = static_cast<int>(terms.size());
      terms.insert(terms.end(), coef.begin(), coef.end());
      op.coef_end = static_cast<int>(terms.size());
      terms.insert(terms.end(), plain.begin(), plain.end());
      op.end = static_cast<int>(terms.size());
    }
    out_.terms = std::move(terms);
  }

  // A coefficient of a term: element `elem` of per-example value `value`.
  struct Coef {
    int value;
    std::int64_t elem;
    auto operator<=>(const Coef&) const = default;
  };
  // What terms of one group have in common: all but one of their factors.
  struct Factor {
    int in;
    double scale;
    int n_rest;
    std::array<Coef, 2> rest;  // sorted
    auto operator<=>(const Factor&) const = default;
  };
  static int coefficients(const SymTerm& t, Coef* c) {
    int m = 0;
    if (t.coef_value >= 0) c[m++] = {t.coef_value, t.coef_elem};
    if (t.coef2_value >= 0) c[m++] = {t.coef2_value, t.coef2_elem};
    if (t.coef3_value >= 0) c[m++] = {t.coef3_value, t.coef3_elem};
    return m;
  }
  // Term t's coefficients, none where its scale is NaN (no order to group by).
  static int groupable(const SymTerm& t, Coef* c) { return std::isnan(t.scale) ? 0 : coefficients(t, c); }
  // Term t with its coefficient j left out.
  static Factor factor_without(const SymTerm& t, const Coef* c, int m, int j) {
    Factor f{t.in, t.scale, 0, {}};
    for (int i = 0; i < m; ++i)
      if (i != j) f.rest[f.n_rest++] = c[i];
    if (f.n_rest == 2 && f.rest[1] < f.rest[0]) std::swap(f.rest[0], f.rest[1]);
    return f;
  }

  // Distributivity, where it saves work: terms of one op that differ in one
  // coefficient only, scale * in * rest * c_k over k, are one term
  // scale * in * rest * S with S = sum_k c_k, a slot of per-example values
  // that no direction reaches. Where several ops have the same S (the same
  // coefficients, in order of value and element), it is written once.
  // Normalisations in reverse mode are the case: the adjoint of a row's
  // mean sums, in each of the n rows of the Jacobian, the same n
  // coefficients times that row's factor (a layer norm over n elements:
  // n^2 terms of three factors become n + n). The term of the row's own element often
  // sits in a slot of two or three terms with other readers (the adjoint of
  // x_i - mean, which also reaches the output directly); such a plain term
  // is replaced by its slot's terms when one of them joins the group.
  // Only sums shared by two ops or more are made, each of kMinShared terms
  // at least. The sum rounds in its own order: the form's entries may
  // differ from the dense engine's in the last bits, as merged sums do.
  void share_sums() {
    constexpr int kMinShared = 4;
    constexpr int kMaxExpanded = 4;  // terms of a slot replacing the plain term reading it
    const std::vector<char> live = live_ops();
    struct Rewrite {
      Factor factor;
      std::vector<Coef> sum;       // S, sorted
      std::vector<SymTerm> other;  // the op's other terms, those with a coefficient first
    };
    std::vector<std::optional<Rewrite>> rewrite(out_.ops.size());
    std::map<std::vector<Coef>, int> ops_per_sum;
    struct Candidate {
      SymTerm t;
      int origin;  // the plain term (index in out_.terms) whose slot's term this is, or -1: the op's own
    };
    std::vector<Candidate> candidates;
    std::map<Factor, std::pair<int, int>> count;  // per factor: candidates, the last one counted
    Coef c[3];
    for (std::size_t i = 0; i < out_.ops.size(); ++i) {
      const SymOp& op = out_.ops[i];
      if (!live[i] || op.end - op.begin < kMinShared - 1) continue;
      candidates.clear();
      for (int k = op.begin; k < op.end; ++k) {
        const SymTerm& t = out_.terms[k];
        candidates.push_back({t, -1});
        const int def = t.in > 0 && t.coef_value < 0 ? def_op_[t.in] : -1;
        if (def < 0 || out_.ops[def].end - out_.ops[def].begin > kMaxExpanded) continue;
        for (int d = out_.ops[def].begin; d < out_.ops[def].end; ++d) {
          SymTerm u = out_.terms[d];
          u.scale *= t.scale;
          candidates.push_back({u, k});
        }
      }
      count.clear();
      for (int k = 0; k < static_cast<int>(candidates.size()); ++k) {
        const int m = groupable(candidates[k].t, c);
        for (int j = 0; j < m; ++j) {
          auto& [n, last] = count.try_emplace(factor_without(candidates[k].t, c, m, j), 0, -1).first->second;
          if (last != k) ++n, last = k;
        }
      }
      const auto best = std::max_element(count.begin(), count.end(), [](const auto& a, const auto& b) {
        return a.second.first < b.second.first;
      });
      if (best == count.end() || best->second.first < kMinShared) continue;
      const Factor f = best->first;
      // Per candidate: its coefficient left to S, or -1 (not in the group).
      std::vector<int> varying(candidates.size(), -1);
      std::vector<int> expanded;  // the plain terms replaced by their slot's terms
      for (int k = 0; k < static_cast<int>(candidates.size()); ++k) {
        const int m = groupable(candidates[k].t, c);
        for (int j = 0; j < m && varying[k] < 0; ++j)
          if (factor_without(candidates[k].t, c, m, j) == f) varying[k] = j;
        if (varying[k] >= 0 && candidates[k].origin >= 0) expanded.push_back(candidates[k].origin);
      }
      auto is_expanded = [&](int term) { return std::find(expanded.begin(), expanded.end(), term) != expanded.end(); };
      Rewrite r{f, {}, {}};
      std::vector<SymTerm> plain;
      for (int k = 0, own = op.begin - 1; k < static_cast<int>(candidates.size()); ++k) {
        const Candidate& cand = candidates[k];
        if (cand.origin < 0 ? is_expanded(++own) : !is_expanded(cand.origin)) continue;
        if (varying[k] >= 0) {
          coefficients(cand.t, c);
          r.sum.push_back(c[varying[k]]);
        } else {
          (cand.t.coef_value >= 0 ? r.other : plain).push_back(cand.t);
        }
      }
      r.other.insert(r.other.end(), plain.begin(), plain.end());
      std::sort(r.sum.begin(), r.sum.end());
      ++ops_per_sum[r.sum];
      rewrite[i] = std::move(r);
    }
    // The sums: slots from n_slots on (the entries move up past them),
    // their ops first.
    std::map<std::vector<Coef>, int> slot_of;
    for (const auto& [sum, n] : ops_per_sum)
      if (n >= 2) slot_of.emplace(sum, out_.n_slots + static_cast<int>(slot_of.size()));
    if (slot_of.empty()) return;
    const int n_new = static_cast<int>(slot_of.size());
    std::vector<SymOp> ops;
    std::vector<SymTerm> terms;
    std::vector<const std::vector<Coef>*> by_slot(static_cast<std::size_t>(n_new));
    for (const auto& [sum, slot] : slot_of) by_slot[slot - out_.n_slots] = &sum;
    for (const std::vector<Coef>* sum : by_slot) {
      SymOp op;
      op.out = out_.n_slots + static_cast<int>(ops.size());
      op.begin = static_cast<int>(terms.size());
      for (const Coef& k : *sum) terms.push_back(SymTerm{0, k.value, k.elem, 1.0});
      op.coef_end = op.end = static_cast<int>(terms.size());
      ops.push_back(op);
    }
    // A slot that is such a sum and nothing else is read as the sum.
    std::vector<int> alias(slot_const_.size() + static_cast<std::size_t>(n_new));
    for (std::size_t s = 0; s < alias.size(); ++s) alias[s] = static_cast<int>(s);
    for (std::size_t i = 0; i < out_.ops.size(); ++i) {
      SymOp op = out_.ops[i];
      const auto it = rewrite[i] ? slot_of.find(rewrite[i]->sum) : slot_of.end();
      if (it != slot_of.end() && op.out < out_.n_slots && rewrite[i]->other.empty()) {
        const Factor& f = rewrite[i]->factor;
        if (f.in == 0 && f.scale == 1.0 && f.n_rest == 0) {
          alias[op.out] = it->second;
          continue;  // read by no one now: no op
        }
      }
      if (op.out >= out_.n_slots) op.out += n_new;
      if (it == slot_of.end()) {
        const int shift = static_cast<int>(terms.size()) - op.begin;
        terms.insert(terms.end(), out_.terms.begin() + op.begin, out_.terms.begin() + op.end);
        op.begin += shift, op.coef_end += shift, op.end += shift;
      } else {
        const Rewrite& r = *rewrite[i];
        const Factor& f = r.factor;
        SymTerm t{f.in, -1, 0, f.scale};
        int* values[3] = {&t.coef_value, &t.coef2_value, &t.coef3_value};
        std::int64_t* elems[3] = {&t.coef_elem, &t.coef2_elem, &t.coef3_elem};
        for (int k = 0; k < f.n_rest; ++k) *values[k] = f.rest[k].value, *elems[k] = f.rest[k].elem;
        *values[f.n_rest] = kSlotCoefficient + it->second;
        op.begin = static_cast<int>(terms.size());
        terms.push_back(t);
        for (const SymTerm& u : r.other) terms.push_back(u);
        op.coef_end = op.begin + 1;
        while (op.coef_end < static_cast<int>(terms.size()) && terms[op.coef_end].coef_value >= 0) ++op.coef_end;
        op.end = static_cast<int>(terms.size());
      }
      ops.push_back(op);
    }
    for (SymTerm& t : terms) t.in = alias[t.in];
    out_.ops = std::move(ops);
    out_.terms = std::move(terms);
    out_.n_slots += n_new;
    slot_const_.resize(static_cast<std::size_t>(out_.n_slots), std::nullopt);
    def_op_.assign(static_cast<std::size_t>(out_.n_slots), -1);
    for (std::size_t i = 0; i < out_.ops.size(); ++i)
      if (out_.ops[i].out < out_.n_slots) def_op_[out_.ops[i].out] = static_cast<int>(i);
  }

  // Removes the ops whose slots no Jacobian entry needs (those inlined into
  // all their readers).
  void drop_dead_ops() {
    const std::vector<char> keep = live_ops();
    SparseProgram live;
    live.n_slots = out_.n_slots;
    live.reciprocals = std::move(out_.reciprocals);
    for (std::size_t i = 0; i < out_.ops.size(); ++i) {
      if (!keep[i]) continue;
      SymOp op = out_.ops[i];
      const int shift = static_cast<int>(live.terms.size()) - op.begin;
      live.terms.insert(live.terms.end(), out_.terms.begin() + op.begin, out_.terms.begin() + op.end);
      op.begin += shift, op.coef_end += shift, op.end += shift;
      live.ops.push_back(op);
    }
    out_ = std::move(live);
  }

  // Adds scale * coef[coef_elem] * value[elem], over value's directions, to
  // the element being built. A slot made by one term is read through that
  // term where the product keeps at most three factors besides the slot of
  // ones (a slot and two values, or three values), so that the op making it
  // can often be dropped.
  void add(int value, std::int64_t elem, int coef, std::int64_t coef_elem, double scale) {
    if (coef >= 0 && shared(coef)) {
      scale *= constant(coef, coef_elem);
      coef = -1;
    }
    if (scale == 0.0 || cols_[value].empty()) return;
    for (const Col& c : of(cols_[value][elem])) {
      SymTerm t{c.slot, coef, coef_elem, scale};
      if (slot_const_[c.slot]) {
        t.in = 0;
        t.scale *= *slot_const_[c.slot];
      } else if (const int def = def_op_[c.slot];
                 def >= 0 && out_.ops[def].end - out_.ops[def].begin == 1) {
        const SymTerm& u = out_.terms[out_.ops[def].begin];
        const int values = (u.coef_value >= 0) + (u.coef2_value >= 0) + (u.coef3_value >= 0) + (coef >= 0);
        if ((u.in != 0) + values <= 3) {
          t.in = u.in;
          t.scale = scale * u.scale;
          if (coef < 0) {  // u's values as they are
            t.coef_value = u.coef_value, t.coef_elem = u.coef_elem;
            t.coef2_value = u.coef2_value, t.coef2_elem = u.coef2_elem;
            t.coef3_value = u.coef3_value, t.coef3_elem = u.coef3_elem;
          } else {  // this term's coefficient, then u's (two at most)
            t.coef2_value = u.coef_value, t.coef2_elem = u.coef_elem;
            t.coef3_value = u.coef2_value, t.coef3_elem = u.coef2_elem;
          }
        }
      }
      auto& terms = by_dir_[c.dir];
      if (terms.empty()) touched_.push_back(c.dir);
      terms.push_back(t);
      ++n_terms_;
    }
  }

  // The element built by the add() calls since the last one: a slot per
  // direction reached, or an alias or a constant where no op is needed.
  Cols element() {
    std::sort(touched_.begin(), touched_.end());
    Cols result{static_cast<int>(pool_.size()), 0};
    for (int d : touched_) {
      auto& terms = by_dir_[d];
      const bool all_constant = std::all_of(terms.begin(), terms.end(), [](const SymTerm& t) {
        return t.in == 0 && t.coef_value < 0;
      });
      if (all_constant) {
        double k = 0;
        for (const SymTerm& t : terms) k += t.scale;
        if (k == 1.0) pool_.push_back({d, 0});
        else if (k != 0.0) {
          pool_.push_back({d, static_cast<int>(slot_const_.size())});
          slot_const_.push_back(k);
          def_op_.push_back(-1);
        }
      } else if (terms.size() == 1 && terms[0].coef_value < 0 && terms[0].scale == 1.0) {
        pool_.push_back({d, terms[0].in});
      } else {
        SymOp op;
        op.out = static_cast<int>(slot_const_.size());
        slot_const_.push_back(std::nullopt);
        def_op_.push_back(static_cast<int>(out_.ops.size()));
        op.begin = static_cast<int>(out_.terms.size());
        for (const SymTerm& t : terms)  // those with a coefficient first, in order
          if (t.coef_value >= 0) out_.terms.push_back(t);
        op.coef_end = static_cast<int>(out_.terms.size());
        for (const SymTerm& t : terms)
          if (t.coef_value < 0) out_.terms.push_back(t);
        op.end = static_cast<int>(out_.terms.size());
        out_.ops.push_back(op);
        pool_.push_back({d, op.out});
      }
      terms.clear();
    }
    touched_.clear();
    result.n = static_cast<int>(pool_.size()) - result.begin;
    return result;
  }

  bool over_budget() const { return n_terms_ + n_visits_ > max_terms_; }

  bool elementwise(const ops::Step<T>& s) {
    if (s.ew.accumulate) return false;
    const auto& t = table_;
    const auto fn = s.ew_fn;
    const auto& ew = s.ew;
    auto at = [&](int i, std::int64_t e) { return ew.in[i].map ? ew.in[i].map[e] : e; };
    auto lin = [&](std::initializer_list<int> which) {
      return std::all_of(which.begin(), which.end(), [&](int i) { return linear(s.in[i]); });
    };
    // One element's contributions, by kernel.
    std::function<void(std::int64_t)> body;
    if (fn == t.unary[kNegative] || fn == t.unary[kIdentity]) {
      if (!lin({0})) return false;
      const double sign = fn == t.unary[kNegative] ? -1.0 : 1.0;
      body = [&, sign](std::int64_t e) { add(s.in[0], at(0, e), -1, 0, sign); };
    } else if (fn == t.binary[kAdd] || fn == t.binary[kSubtract]) {
      if (!lin({0, 1})) return false;
      const double sign = fn == t.binary[kAdd] ? 1.0 : -1.0;
      body = [&, sign](std::int64_t e) {
        add(s.in[0], at(0, e), -1, 0, 1.0);
        add(s.in[1], at(1, e), -1, 0, sign);
      };
    } else if (fn == t.binary[kMultiply]) {
      const int l = linear(s.in[0]) ? 0 : 1;
      if (!lin({l}) || linear(s.in[1 - l])) return false;
      body = [&, l](std::int64_t e) { add(s.in[l], at(l, e), s.in[1 - l], at(1 - l, e), 1.0); };
    } else if (fn == t.binary[kDivide]) {
      if (!lin({0}) || linear(s.in[1])) return false;
      if (shared(s.in[1])) {
        body = [&](std::int64_t e) { add(s.in[0], at(0, e), -1, 0, 1.0 / constant(s.in[1], at(1, e))); };
      } else {  // by a per-example value: times its reciprocal, a coefficient
        const int r = reciprocal(s.in[1]);
        body = [&, r](std::int64_t e) { add(s.in[0], at(0, e), r, at(1, e), 1.0); };
      }
    } else if (fn == t.ternary[kAxpy]) {  // x c + z
      if (!lin({0, 2}) || linear(s.in[1])) return false;
      body = [&](std::int64_t e) {
        add(s.in[0], at(0, e), s.in[1], at(1, e), 1.0);
        add(s.in[2], at(2, e), -1, 0, 1.0);
      };
    } else if (fn == t.quaternary[kLincomb]) {  // x1 c1 + x2 c2
      if (!lin({0, 2}) || linear(s.in[1]) || linear(s.in[3])) return false;
      body = [&](std::int64_t e) {
        add(s.in[0], at(0, e), s.in[1], at(1, e), 1.0);
        add(s.in[2], at(2, e), s.in[3], at(3, e), 1.0);
      };
    } else if (fn == t.binary[kSelectFirst] || fn == t.binary[kSelectSecond]) {
      // c ? b : 0 (or c ? 0 : b) under a fixed mask (a shared constant c, as
      // the pairs k != l of a pair array): the mask is structure, a kept
      // element is its input, a dropped one a structural zero. A per-example
      // condition keeps the dense steps.
      if (!lin({1}) || !shared(s.in[0])) return false;
      for (std::int64_t e = 0; e < ew.n_elem; ++e)  // a NaN condition: the kernels' compare decides
        if (std::isnan(constant(s.in[0], at(0, e)))) return false;
      const bool first = fn == t.binary[kSelectFirst];
      body = [&, first](std::int64_t e) {
        if ((constant(s.in[0], at(0, e)) != 0.0) == first) add(s.in[1], at(1, e), -1, 0, 1.0);
      };
    } else {
      return false;  // selects on per-example conditions and everything nonlinear: the dense engine
    }
    auto& out = cols_[s.out];
    out.assign(static_cast<std::size_t>(ew.n_elem), {});
    for (std::int64_t e = 0; e < ew.n_elem; ++e) {
      body(e);
      out[e] = element();
      ++n_visits_;
      if (over_budget()) return false;
    }
    return true;
  }

  bool index(const ops::Step<T>& s) {
    const auto& ix = s.ix;
    if (ix.accumulate || !linear(s.in[0])) return false;
    auto& out = cols_[s.out];
    const auto& in = cols_[s.in[0]];
    auto in_cols = [&](std::int64_t e) { return in.empty() ? Cols{} : in[e]; };  // a view: no copy
    if (s.ix_fn == table_.gather) {
      out.assign(static_cast<std::size_t>(ix.n_out), {});
      for (std::int64_t e = 0; e < ix.n_out; ++e)
        if (ix.map[e] >= 0) out[e] = in_cols(ix.map[e]);
    } else if (s.ix_fn == table_.scatter) {  // one part of a concat: the rest stays
      out.resize(static_cast<std::size_t>(ix.n_out));
      for (std::int64_t e = 0; e < ix.n_in; ++e)
        if (ix.map[e] >= 0) out[ix.map[e]] = in_cols(e);
    } else if (s.ix_fn == table_.scatter_add) {
      std::vector<std::vector<std::int64_t>> from(static_cast<std::size_t>(ix.n_out));
      for (std::int64_t e = 0; e < ix.n_in; ++e)
        if (ix.map[e] >= 0) from[ix.map[e]].push_back(e);
      out.assign(static_cast<std::size_t>(ix.n_out), {});
      for (std::int64_t j = 0; j < ix.n_out; ++j) {
        for (std::int64_t e : from[j]) add(s.in[0], e, -1, 0, 1.0);
        out[j] = element();
        if (over_budget()) return false;
      }
    } else {
      return false;
    }
    n_visits_ += std::max(ix.n_in, ix.n_out);
    return !over_budget();
  }

  bool matmul(const ops::Step<T>& s) {
    const auto& a = s.mm;
    if (a.accumulate) return false;
    const int l = linear(s.in[0]) ? 0 : 1;
    if (!linear(s.in[l]) || linear(s.in[1 - l])) return false;
    // Every (output element, k) pair: its linear and coefficient elements.
    auto each = [&](auto&& fn) {
      for (std::int64_t bt = 0; bt < a.batch; ++bt) {
        const std::int64_t ab = a.a_batch ? a.a_batch[bt] : 0, bb = a.b_batch ? a.b_batch[bt] : 0;
        for (std::int64_t i = 0; i < a.m; ++i)
          for (std::int64_t j = 0; j < a.n; ++j)
            for (std::int64_t kk = 0; kk < a.k; ++kk) {
              const std::int64_t ao = ab + (a.ta ? kk * a.m + i : i * a.k + kk);
              const std::int64_t bo = bb + (a.tb ? j * a.k + kk : kk * a.n + j);
              if (!fn((bt * a.m + i) * a.n + j, l == 0 ? ao : bo, l == 0 ? bo : ao)) return false;
            }
      }
      return true;
    };
    // Count the terms first, without building them: a dense product gives
    // up here, cheaply.
    const auto& lin_cols = cols_[s.in[l]];
    const int coef = s.in[1 - l];
    std::int64_t count = n_terms_ + n_visits_;
    const bool fits = each([&](std::int64_t, std::int64_t x, std::int64_t c) {
      if (!lin_cols.empty() && !(shared(coef) && constant(coef, c) == 0.0))
        count += lin_cols[x].n;
      return ++count <= max_terms_;
    });
    if (!fits) return false;
    auto& out = cols_[s.out];
    out.assign(static_cast<std::size_t>(a.batch * a.m * a.n), {});
    std::int64_t at = 0;
    each([&](std::int64_t o, std::int64_t x, std::int64_t c) {
      add(s.in[l], x, coef, c, 1.0);
      if (++at % a.k == 0) out[o] = element();  // the last k of element o
      return true;
    });
    n_visits_ += a.batch * a.m * a.n * a.k;
    return !over_budget();
  }

  bool scan(const ops::Step<T>& s) {
    const auto& a = s.sc;
    if (a.op != kernels::kSum || !linear(s.in[0])) return false;
    auto& out = cols_[s.out];
    out.assign(static_cast<std::size_t>(a.outer * a.len * a.inner), {});
    // A running sum: each element from the one before it.
    for (std::int64_t o = 0; o < a.outer; ++o)
      for (std::int64_t t = 0; t < a.inner; ++t)
        for (std::int64_t i = 0; i < a.len; ++i) {
          auto pos = [&](std::int64_t k) {
            return (o * a.len + (a.reverse ? a.len - 1 - k : k)) * a.inner + t;
          };
          if (i > 0) {
            add(s.out, pos(i - 1), -1, 0, 1.0);
            if (a.exclusive) add(s.in[0], pos(i - 1), -1, 0, 1.0);
          }
          if (!a.exclusive) add(s.in[0], pos(i), -1, 0, 1.0);
          out[pos(i)] = element();
          ++n_visits_;
          if (over_budget()) return false;
        }
    return true;
  }

  const graph::Program& program_;
  const kernels::KernelTable<T>& table_;
  std::int64_t max_terms_;
  std::int64_t n_terms_ = 0, n_visits_ = 0;
  int n_dirs_ = 0;
  std::vector<std::vector<Cols>> cols_;          // per value, per element
  std::vector<Col> pool_;                          // what the Cols view
  std::vector<std::optional<double>> slot_const_;  // per slot: its value if known
  std::vector<int> def_op_;                        // per slot: the op making it, or -1
  std::vector<std::vector<SymTerm>> by_dir_;     // the element being built
  std::vector<int> touched_;
  std::vector<std::vector<double>> constants_;     // per value, loaded when first read
  SparseProgram out_;
};

}  // namespace

template <class T>
std::optional<SparseProgram> compile_sparse(const graph::Program& program,
                                            const kernels::KernelTable<T>& table,
                                            std::span<const ops::Step<T>> steps, int seed,
                                            int answer, bool forward, bool mirrored, std::int64_t max_terms) {
  // The form writes a block of every entry of one example's Jacobian: only
  // for Jacobians of moderate size (256 KiB of doubles per lane).
  constexpr std::int64_t kMaxEntries = 1 << 15;
  if (program.info(seed).shape.num_elements() * program.info(answer).shape.num_elements() > kMaxEntries)
    return std::nullopt;
  Compiler<T> c(program, table, max_terms);
  c.seed(seed);
  for (const auto& s : steps)
    if (!c.step(s)) return std::nullopt;
  return c.finish(answer, forward, mirrored && program.info(seed).shape.num_elements() ==
                                                   program.info(answer).shape.num_elements());
}

template std::optional<SparseProgram> compile_sparse<float>(const graph::Program&,
                                                            const kernels::KernelTable<float>&,
                                                            std::span<const ops::Step<float>>, int,
                                                            int, bool, bool, std::int64_t);
template std::optional<SparseProgram> compile_sparse<double>(const graph::Program&,
                                                             const kernels::KernelTable<double>&,
                                                             std::span<const ops::Step<double>>,
                                                             int, int, bool, bool, std::int64_t);

}  // namespace batchjac::engine
