// Generator families that move or combine elements: reductions, index ops
// (slice gather transpose roll tile pad concat reshape expand_dims squeeze
// broadcast_to stack unstack), softmax and cumsum, matmul. Axes are never
// the batch axis; each is written positive or negative at random.
#include "fuzz/generate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace fuzz::gen {

namespace {

using Axes = std::vector<std::int64_t>;

template <class T>
void shuffle(Rng& rng, std::vector<T>& v) {
  for (std::size_t i = v.size(); i > 1; --i)
    std::swap(v[i - 1], v[static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(i) - 1))]);
}

// Over the groups that reducing the example axes `red` forms in v ([b, d...]),
// the smallest gap between the largest (smallest) value and the next one.
double extreme_gap(const std::vector<double>& v, const Dims& d, const std::vector<bool>& red,
                   bool is_max, const std::vector<double>& ramp) {
  const std::int64_t n = count(d);
  std::int64_t groups = 1;
  for (std::size_t i = 0; i < d.size(); ++i)
    if (!red[i]) groups *= d[i];
  const std::int64_t b = static_cast<std::int64_t>(v.size()) / std::max<std::int64_t>(n, 1);
  std::vector<double> top(static_cast<std::size_t>(b * groups), -INFINITY), next = top;
  for (std::int64_t e = 0; e < b * n; ++e) {
    std::int64_t rem = e % n, key = 0;  // the group: row-major over the kept axes
    std::vector<std::int64_t> mi(d.size());
    for (std::size_t i = d.size(); i-- > 0;) mi[i] = rem % d[i], rem /= d[i];
    for (std::size_t i = 0; i < d.size(); ++i)
      if (!red[i]) key = key * d[i] + mi[i];
    const std::size_t g = static_cast<std::size_t>((e / n) * groups + key);
    double x = v[static_cast<std::size_t>(e)] + (ramp.empty() ? 0.0 : ramp[static_cast<std::size_t>(e % n)]);
    if (!is_max) x = -x;
    if (x > top[g]) next[g] = top[g], top[g] = x;
    else if (x > next[g]) next[g] = x;  // an exact tie too: equal in float64 by cancellation need not be in float32
  }
  double gap = INFINITY;
  for (std::size_t g = 0; g < top.size(); ++g) gap = std::min(gap, top[g] - next[g]);
  return gap;
}

}  // namespace

bool Generator::reduction(int v) {
  const Dims d = dims[static_cast<std::size_t>(v)];
  const std::size_t r = d.size();
  std::vector<bool> red(r, false);
  if (!rng.chance(0.05)) {  // else an empty list: reduces nothing (TF)
    bool any = false;
    while (!any)
      for (std::size_t i = 0; i < r; ++i) any |= (red[i] = rng.chance(0.5));
  }
  Axes axes;
  for (std::size_t i = 0; i < r; ++i)
    if (red[i]) axes.push_back(axis_arg(rng, static_cast<std::int64_t>(i), r));
  shuffle(rng, axes);
  const bool keep = rng.chance(0.4);
  Dims out;
  std::int64_t group = 1;
  for (std::size_t i = 0; i < r; ++i) {
    if (red[i]) group *= d[i];
    if (!red[i]) out.push_back(d[i]);
    else if (keep) out.push_back(1);
  }
  const bool expand = out.empty();  // every axis reduced: add one back, ranks stay >= 2
  if (expand) out = {1};

  static const char* const names[] = {"reduce_sum", "reduce_mean", "reduce_max",
                                      "reduce_min", "reduce_prod", "reduce_logsumexp"};
  int op = static_cast<int>(rng.integer(0, 5));
  const auto vv = values(vals[static_cast<std::size_t>(v)]);
  if (op == 4 && group > 8) op = 0;
  Wrap w;
  if (op == 4 && max_abs(vv) > 1.5) w = Wrap{Wrap::tanh_times, 1.5};
  std::vector<double> ramp;  // breaks near-ties of max/min: v + a shuffled ramp
  std::string ramp_text;
  if (op == 2 || op == 3) {
    const double m = margin(max_abs(vv));
    if (extreme_gap(vv, d, red, op == 2, ramp) < m) {
      std::vector<double> perm(static_cast<std::size_t>(count(d)));
      std::iota(perm.begin(), perm.end(), 0.0);
      shuffle(rng, perm);
      const auto [lo, hi] = std::minmax_element(vv.begin(), vv.end());
      for (double s : {fl(rng.real(0.05, 0.3)), fl(*hi - *lo + 0.5)}) {
        ramp = perm;
        for (auto& e : ramp) e = fl(e * s);
        ramp_text = " + " + num(s) + " * shuffled_iota" + axes_str(d);
        if (extreme_gap(vv, d, red, op == 2, ramp) >= m) break;
      }
    }
  }
  const std::string text = std::string(names[op]) + "(" + w.text(name(v)) + ramp_text + ", " +
                           axes_str(axes) + (keep ? ", keepdims" : "") + ")";
  return add(Step{expand ? "expand_dims(" + text + ", -1)" : text, {v},
                  [=](const auto& in, const Env& env) {
                    bj::Tensor t = w.apply(in[0]);
                    if (!ramp.empty()) t = t + bj::constant(ramp, bj::Shape(d), env.dtype);
                    bj::Tensor y;
                    switch (op) {
                      case 0: y = bj::reduce_sum(t, axes, keep); break;
                      case 1: y = bj::reduce_mean(t, axes, keep); break;
                      case 2: y = bj::reduce_max(t, axes, keep); break;
                      case 3: y = bj::reduce_min(t, axes, keep); break;
                      case 4: y = bj::reduce_prod(t, axes, keep); break;
                      default: y = bj::reduce_logsumexp(t, axes, keep); break;
                    }
                    return expand ? bj::expand_dims(y, -1) : y;
                  },
                  out});
}

bool Generator::along_axis(int v) {
  const Dims d = dims[static_cast<std::size_t>(v)];
  const std::size_t r = d.size();
  const std::string x = name(v);
  const std::int64_t a = rng.integer(0, static_cast<std::int64_t>(r) - 1);
  const std::int64_t arg = axis_arg(rng, a, r);
  const int kind = static_cast<int>(rng.integer(0, 2));
  if (kind < 2) {  // softmax / log_softmax, sometimes with the default axis (-1)
    const bool dflt = rng.chance(0.3);
    const std::string f = kind == 0 ? "softmax" : "log_softmax";
    return add(Step{f + "(" + x + (dflt ? "" : ", " + std::to_string(arg)) + ")", {v},
                    [kind, dflt, arg](const auto& in, const Env&) {
                      if (kind == 0) return dflt ? bj::softmax(in[0]) : bj::softmax(in[0], arg);
                      return dflt ? bj::log_softmax(in[0]) : bj::log_softmax(in[0], arg);
                    },
                    d});
  }
  const bool exclusive = rng.chance(0.4), reverse = rng.chance(0.4);
  return add(Step{"cumsum(" + x + ", " + std::to_string(arg) + (exclusive ? ", exclusive" : "") +
                      (reverse ? ", reverse" : "") + ")",
                  {v},
                  [arg, exclusive, reverse](const auto& in, const Env&) {
                    return bj::cumsum(in[0], arg, exclusive, reverse);
                  },
                  d});
}

bool Generator::matmul_op(int v) {
  Dims d = dims[static_cast<std::size_t>(v)];
  if (d.size() == 1 && rng.chance(0.4)) {  // per-example matrices from a vector: reshape first
    std::vector<std::int64_t> f;
    for (std::int64_t m = 2; m < d[0]; ++m)
      if (d[0] % m == 0) f.push_back(m);
    if (!f.empty()) {
      const std::int64_t rows = rng.pick(f);
      const Dims out{rows, d[0] / rows};
      if (!add(Step{"reshape(" + name(v) + ", [b, " + std::to_string(out[0]) + ", " +
                        std::to_string(out[1]) + "])",
                    {v},
                    [out](const auto& in, const Env& env) {
                      return bj::reshape(in[0], with_batch(env.rows(), out));
                    },
                    out}))
        return false;
      v = static_cast<int>(vals.size()) - 1;
      d = out;
    }
  }
  const std::size_t r = d.size();
  const std::string x = name(v);
  // [.., m, k] of v (after its transpose), its leading example dims.
  const Dims lead(d.begin(), d.end() - (r >= 2 ? 2 : 1));
  auto leading_for = [&](bool per_example) {  // a constant's leading dims: broadcast against lead
    Dims l;
    if (per_example) {
      l = lead;
      for (auto& e : l)
        if (rng.chance(0.2)) e = 1;
    } else if (!lead.empty() && rng.chance(0.4)) {
      l.assign(lead.end() - rng.integer(1, static_cast<std::int64_t>(lead.size())), lead.end());
    }
    return l;
  };
  auto with = [](Dims l, std::int64_t p, std::int64_t q) {
    l.push_back(p);
    l.push_back(q);
    return l;
  };
  const std::int64_t variant = r == 1 ? 0 : rng.integer(0, 4);
  const bool ta = r >= 2 && rng.chance(0.3), tb = rng.chance(0.4);
  const std::int64_t m = r == 1 ? 0 : (ta ? d[r - 1] : d[r - 2]);
  const std::int64_t k = r == 1 ? d[0] : (ta ? d[r - 2] : d[r - 1]);
  const std::int64_t n = rng.integer(1, 5);
  if (variant <= 1) {  // shared weights on the right: v [.., m, k] x W [k, n] (an MLP layer)
    Constant w = constant(with(leading_for(false), tb ? n : k, tb ? k : n), false);
    w.leading_one = r >= 2 && w.dims.size() == 2 + lead.size() && rng.chance(0.3);
    const Dims out = r == 1 ? Dims{n} : with(lead, m, n);
    if (count(out) > kMaxElements) return false;
    return add(Step{"matmul(" + x + ", " + w.str() + (ta ? ", transpose_a" : "") +
                        (tb ? ", transpose_b" : "") + ")",
                    {v},
                    [w, ta, tb](const auto& in, const Env& env) {
                      return bj::matmul(in[0], w.make(env), ta, tb);
                    },
                    out});
  }
  // v as the right operand [.., k2, n2] (transpose_b: stored [.., n2, k2]).
  const std::int64_t k2 = tb ? d[r - 1] : d[r - 2], n2 = tb ? d[r - 2] : d[r - 1];
  if (variant == 2) {  // shared or per-example matrix on the left: A [.., m2, k2] x v
    const bool pe = rng.chance(0.5);
    const std::int64_t m2 = rng.integer(1, 5);
    Constant c = constant(with(leading_for(pe), ta ? k2 : m2, ta ? m2 : k2), pe);
    const Dims out = with(lead, m2, n2);
    if (count(out) > kMaxElements) return false;
    return add(Step{"matmul(" + c.str() + ", " + x + (ta ? ", transpose_a" : "") +
                        (tb ? ", transpose_b" : "") + ")",
                    {v},
                    [c, ta, tb](const auto& in, const Env& env) {
                      return bj::matmul(c.make(env), in[0], ta, tb);
                    },
                    out});
  }
  if (variant == 3) {  // per-example matrices on the right: v [.., m, k] x P [.., k, n]
    Constant c = constant(with(leading_for(true), tb ? n : k, tb ? k : n), true);
    const Dims out = with(lead, m, n);
    if (count(out) > kMaxElements) return false;
    return add(Step{"matmul(" + x + ", " + c.str() + (ta ? ", transpose_a" : "") +
                        (tb ? ", transpose_b" : "") + ")",
                    {v},
                    [c, ta, tb](const auto& in, const Env& env) {
                      return bj::matmul(in[0], c.make(env), ta, tb);
                    },
                    out});
  }
  // Two values: v [.., m, k] x u [.., k, n], u a value with such a shape, else v itself (v v^T).
  std::vector<int> fits;
  for (std::size_t u = 0; u < dims.size(); ++u) {
    const Dims& du = dims[u];
    if (du.size() != r || du[r - 2] != k) continue;
    if (broadcast(Dims(du.begin(), du.end() - 2), lead)) fits.push_back(static_cast<int>(u));
  }
  const int u = fits.empty() || rng.chance(0.3) ? v : rng.pick(fits);
  const bool tself = u == v;  // v x v^T (after ta): [.., m, k] x [.., k, m]
  const Dims du = dims[static_cast<std::size_t>(u)];
  const auto l = broadcast(lead, Dims(du.begin(), du.end() - 2));
  if (!l) return false;
  const Dims out = with(*l, m, tself ? m : du[r - 1]);
  if (count(out) > kMaxElements) return false;
  return add(Step{"matmul(" + x + ", " + name(u) + (ta ? ", transpose_a" : "") +
                      (tself ? (ta ? "" : ", transpose_b") : "") + ")",
                  {v, u},
                  [ta, tself](const auto& in, const Env&) {
                    return bj::matmul(in[0], in[1], ta, tself ? !ta : false);
                  },
                  out});
}

}  // namespace fuzz::gen
