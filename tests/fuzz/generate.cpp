// The program generator: its loop, operands and margins, and unary ops
// (generate_binary.cpp and generate_shape.cpp hold the other families). Every choice looks at the float64
// values of the whole batch, so that ops stay in their domains (log of
// softplus(v) + c where v can be small) and kinks, ties and comparison
// thresholds stay a margin away from every value: finite differences are
// then valid, and float32 rounding cannot flip a branch.
#include "fuzz/generate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace fuzz::gen {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", v);
  return buf;
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

namespace {

using UnaryFn = bj::Tensor (*)(const bj::Tensor&);

struct UnaryOp {
  const char* name;
  UnaryFn f;
  Domain domain;
};

const std::vector<UnaryOp>& unary_ops() {
  static const std::vector<UnaryOp> ops = {
      {"negative", bj::negative, Domain::any},   {"abs", bj::abs, Domain::kink},
      {"sign", bj::sign, Domain::kink},          {"square", bj::square, Domain::any},
      {"sqrt", bj::sqrt, Domain::positive},      {"rsqrt", bj::rsqrt, Domain::positive},
      {"reciprocal", bj::reciprocal, Domain::nonzero},
      {"exp", bj::exp, Domain::bounded},         {"expm1", bj::expm1, Domain::bounded},
      {"log", bj::log, Domain::positive},        {"log1p", bj::log1p, Domain::above_m1},
      {"sin", bj::sin, Domain::any},             {"cos", bj::cos, Domain::any},
      {"tan", bj::tan, Domain::tan},             {"asin", bj::asin, Domain::unit},
      {"acos", bj::acos, Domain::unit},          {"atan", bj::atan, Domain::any},
      {"sinh", bj::sinh, Domain::bounded},       {"cosh", bj::cosh, Domain::bounded},
      {"tanh", bj::tanh, Domain::any},           {"asinh", bj::asinh, Domain::any},
      {"acosh", bj::acosh, Domain::above1},      {"atanh", bj::atanh, Domain::unit},
      {"sigmoid", bj::sigmoid, Domain::any},     {"softplus", bj::softplus, Domain::any},
      {"relu", bj::relu, Domain::kink},          {"erf", bj::erf, Domain::any},
  };
  return ops;
}

}  // namespace

// ---- pieces ------------------------------------------------------------------------

bj::Tensor Wrap::apply(const bj::Tensor& t) const {
  switch (kind) {
    case none: return t;
    case shift: return t + c;
    case softplus_plus: return bj::softplus(t) + c;
    case tanh_times: return bj::tanh(t) * c;
  }
  return t;
}

std::string Wrap::text(const std::string& inner) const {
  switch (kind) {
    case none: return inner;
    case shift: return "(" + inner + (c < 0 ? " - " + num(-c) : " + " + num(c)) + ")";
    case softplus_plus: return "(softplus(" + inner + ") + " + num(c) + ")";
    case tanh_times: return "(tanh(" + inner + ") * " + num(c) + ")";
  }
  return inner;
}

bj::Tensor Operand::get(const std::vector<bj::Tensor>& in, const Env& env) const {
  switch (kind) {
    case value: return in[static_cast<std::size_t>(input)];
    case constant: return c.make(env);
    case scalar: return bj::constant(s, env.dtype);
  }
  return {};
}

std::optional<Dims> broadcast(const Dims& a, const Dims& b) {
  const std::size_t r = std::max(a.size(), b.size());
  Dims out(r);
  for (std::size_t i = 0; i < r; ++i) {
    const std::int64_t x = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const std::int64_t y = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (x != y && x != 1 && y != 1) return std::nullopt;
    out[i] = std::max(x, y);
  }
  return out;
}

std::string axes_str(const std::vector<std::int64_t>& axes) {
  std::string s = "[";
  for (std::size_t i = 0; i < axes.size(); ++i) s += (i ? ", " : "") + std::to_string(axes[i]);
  return s + "]";
}

// ---- the generator ---------------------------------------------------------------

Generator::Generator(std::uint64_t seed) : rng{mix(seed, 0x6E6E)} {
  static const std::vector<std::int64_t> batches{1, 3, 7, 8, 9, 15, 16, 17, 33};
  prog.seed = seed;
  prog.dtype = rng.chance(0.5) ? bj::float32 : bj::float64;
  prog.batch = rng.pick(batches);
  const std::int64_t rank = rng.chance(0.5) ? 1 : rng.chance(0.7) ? 2 : 3;
  do {
    prog.source.clear();
    for (std::int64_t i = 0; i < rank; ++i)
      prog.source.push_back(rank == 1 ? rng.integer(1, 8) : rng.integer(1, rank == 2 ? 4 : 3));
  } while (count(prog.source) > 24);
  const double r = rng.real(0.0, 1.0);
  if (r < 0.7) prog.lo = -1.0, prog.hi = 1.0;
  else if (r < 0.85) prog.lo = -2.0, prog.hi = 2.0;
  else prog.lo = 0.25, prog.hi = 1.5;
  batch_env = prog.env(bj::float64);
  vals.push_back(prog.source_tensor(bj::float64));
  dims.push_back(prog.source);
}

Program Generator::run() {
  const std::int64_t n = rng.integer(1, 14);
  for (int attempt = 0; static_cast<std::int64_t>(prog.steps.size()) < n && attempt < 60; ++attempt) {
    const int v = pick_value();
    const double f = rng.real(0.0, 100.0);
    if (f < 22) unary(v);
    else if (f < 44) binary(v);
    else if (f < 52) select(v);
    else if (f < 64) reduction(v);
    else if (f < 82) index_op(v);
    else if (f < 88) along_axis(v);
    else if (f < 96) matmul_op(v);
    else misc(v);
  }
  if (prog.steps.empty()) {  // every attempt refused: a plain step keeps the program valid
    add(Step{"sin(v0)", {0}, [](const auto& in, const Env&) { return bj::sin(in[0]); }, dims[0]});
  }
  // Values nothing reads would go unchecked: mostly, the target joins them, flattened.
  std::vector<bool> read(vals.size(), false);
  for (const Step& s : prog.steps)
    for (int i : s.inputs) read[static_cast<std::size_t>(i)] = true;
  std::vector<int> leaves;
  std::int64_t total = 0;
  for (std::size_t k = 1; k < vals.size(); ++k)
    if ((!read[k] || k + 1 == vals.size()) && total + count(dims[k]) <= 2 * kMaxElements)
      leaves.push_back(static_cast<int>(k)), total += count(dims[k]);
  if (leaves.size() > 1 && rng.chance(0.7)) {
    std::string text = "concat([";
    for (std::size_t i = 0; i < leaves.size(); ++i)
      text += (i ? ", " : "") + std::string("reshape(") + name(leaves[i]) + ", [b, -1])";
    add(Step{text + "], -1)", leaves,
             [](const std::vector<bj::Tensor>& in, const Env& env) {
               std::vector<bj::Tensor> flat;
               for (const bj::Tensor& t : in) flat.push_back(bj::reshape(t, {env.rows(), -1}));
               return bj::concat(flat, -1);
             },
             Dims{total}});
  }
  return std::move(prog);
}

bool Generator::add(Step s) {
  std::vector<bj::Tensor> args;
  for (int i : s.inputs) args.push_back(vals[static_cast<std::size_t>(i)]);
  const bj::Tensor r = s.fn(args, batch_env);
  if (r.shape() != with_batch(batch_env.batch, s.out) || r.dtype() != bj::float64)
    throw std::logic_error("generator: step '" + s.text + "' gives " + r.shape().to_string() +
                           ", expected " + dims_str(s.out));
  const auto v = values(r);
  for (double e : v)
    if (!std::isfinite(e)) return false;
  prog.steps.push_back(std::move(s));
  vals.push_back(r);
  dims.push_back(prog.steps.back().out);
  const double m = max_abs(v);
  if (m > kTame) {
    const int k = static_cast<int>(vals.size()) - 1;
    const double c = fl(4.0 / m);
    add(Step{name(k) + " * " + num(c), {k},
             [c](const std::vector<bj::Tensor>& in, const Env&) { return in[0] * c; }, dims.back()});
  }
  return true;
}

int Generator::pick_value() {
  const int last = static_cast<int>(vals.size()) - 1;
  const double r = rng.real(0.0, 1.0);
  if (r < 0.65) return last;
  if (r < 0.8) return 0;
  return static_cast<int>(rng.integer(0, last));
}

std::vector<int> Generator::compatible(const Dims& d) const {
  std::vector<int> out;
  for (std::size_t w = 0; w < dims.size(); ++w) {
    if (dims[w].size() != d.size()) continue;
    const auto b = broadcast(dims[w], d);
    if (b && count(*b) <= kMaxElements) out.push_back(static_cast<int>(w));
  }
  return out;
}

Constant Generator::constant(const Dims& d, bool per_example, double lo, double hi) {
  Constant c;
  c.tag = next_tag++;
  c.dims = d;
  c.per_example = per_example;
  c.lo = lo;
  c.hi = hi;
  return c;
}

Operand Generator::operand(const Dims& d, std::vector<int>& inputs, bool allow_scalar) {
  Operand o;
  const double u = rng.real(0.0, 1.0);
  if (u < 0.25) {
    const auto c = compatible(d);
    if (!c.empty()) {
      const int w = rng.pick(c);
      inputs.push_back(w);
      o.kind = Operand::value;
      o.input = static_cast<int>(inputs.size()) - 1;
      o.dims = dims[static_cast<std::size_t>(w)];
      o.text = name(w);
      return o;
    }
  }
  if (u < 0.85 || !allow_scalar) {
    const bool per_example = u >= 0.55 || !allow_scalar;
    const bool grow = count(d) * 3 <= kMaxElements;
    // Shared: a suffix of the example's dims; per example: all of them.
    const std::int64_t k = per_example ? static_cast<std::int64_t>(d.size())
                                       : rng.integer(0, static_cast<std::int64_t>(d.size()));
    Dims cd(d.end() - k, d.end());
    for (auto& e : cd) {
      if (rng.chance(0.2)) e = 1;
      else if (e == 1 && grow && rng.chance(0.25)) e = rng.integer(2, 3);
    }
    o.kind = Operand::constant;
    o.c = constant(cd, per_example);
    o.c.leading_one = !per_example && k == static_cast<std::int64_t>(d.size()) && rng.chance(0.3);
    o.dims = cd;
    o.text = o.c.str();
    return o;
  }
  o.kind = Operand::scalar;
  o.s = fl(rng.real(-2.0, 2.0));
  o.text = num(o.s);
  return o;
}

bj::Tensor Generator::eval(const Operand& o, const std::vector<int>& inputs) const {
  std::vector<bj::Tensor> in;
  for (int i : inputs) in.push_back(vals[static_cast<std::size_t>(i)]);
  return o.get(in, batch_env);
}

double Generator::threshold(const std::vector<double>& v, double lo, double hi) {
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  // No exception for exact zeros (a padded zero at relu's kink): a value
  // that is 0 by cancellation in float64 need not be in float32.
  const double m = margin(max_abs(v));
  auto dist = [&](double t) {
    auto it = std::lower_bound(s.begin(), s.end(), t);
    double d = INFINITY;
    if (it != s.end()) d = std::min(d, *it - t);
    if (it != s.begin()) d = std::min(d, t - *(it - 1));
    return d;
  };
  double best = lo, best_d = -1.0;
  std::vector<double> cand{lo, hi, 0.0};
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    const double mid = 0.5 * (s[i] + s[i + 1]);
    if (mid >= lo && mid <= hi) cand.push_back(mid);
  }
  for (double t : cand) {
    const double tf = fl(t);
    if (tf < lo || tf > hi) continue;
    const double d = dist(tf);
    if (d > best_d) best = tf, best_d = d;
  }
  if (best_d >= m) return best;
  return fl(rng.chance(0.5) ? s.front() - 0.25 : s.back() + 0.25);
}

// ---- unary ---------------------------------------------------------------------------

Wrap domain_wrap(Domain domain, const std::vector<double>& v, Generator& g) {
  const double lo = v.empty() ? 0 : *std::min_element(v.begin(), v.end());
  const double hi = v.empty() ? 0 : *std::max_element(v.begin(), v.end());
  const double m = std::max(std::abs(lo), std::abs(hi));
  switch (domain) {
    case Domain::any: return {};
    case Domain::bounded: return m <= 3 ? Wrap{} : Wrap{Wrap::tanh_times, fl(g.rng.real(1.0, 3.0))};
    case Domain::positive:
      return lo >= 0.2 ? Wrap{} : Wrap{Wrap::softplus_plus, fl(g.rng.real(0.1, 0.5))};
    case Domain::nonzero:
      return lo >= 0.2 || hi <= -0.2 ? Wrap{} : Wrap{Wrap::softplus_plus, 0.25};
    case Domain::above_m1: return lo >= -0.8 ? Wrap{} : Wrap{Wrap::softplus_plus, -0.5};
    case Domain::unit: return m <= 0.9 ? Wrap{} : Wrap{Wrap::tanh_times, 0.9f};
    case Domain::above1: return lo >= 1.1 ? Wrap{} : Wrap{Wrap::softplus_plus, 1.1f};
    case Domain::tan: return m <= 1.2 ? Wrap{} : Wrap{Wrap::tanh_times, 1.2f};
    case Domain::kink: {
      const double t = g.threshold(v, -0.5, 0.5);
      return t == 0.0 ? Wrap{} : Wrap{Wrap::shift, -t};
    }
  }
  return {};
}

bool Generator::unary(int v) {
  const Dims d = dims[static_cast<std::size_t>(v)];
  const auto vv = values(vals[static_cast<std::size_t>(v)]);
  const std::string x = name(v);
  const double r = rng.real(0.0, 1.0);
  if (r < 0.7) {
    const UnaryOp op = rng.pick(unary_ops());
    const Wrap w = domain_wrap(op.domain, vv, *this);
    const UnaryFn f = op.f;
    return add(Step{std::string(op.name) + "(" + w.text(x) + ")", {v},
                    [f, w](const auto& in, const Env&) { return f(w.apply(in[0])); }, d});
  }
  if (r < 0.82) {  // pow with a constant exponent; integer ones take any base
    const double e = rng.pick(std::vector<double>{0, 1, 2, 3, -1, 0.5, 1.5, -0.5, 2.5, -2});
    const Wrap w = e >= 0 && e == std::floor(e) ? Wrap{} : domain_wrap(Domain::positive, vv, *this);
    return add(Step{"pow(" + w.text(x) + ", " + num(e) + ")", {v},
                    [e, w](const auto& in, const Env&) { return bj::pow(w.apply(in[0]), e); }, d});
  }
  if (r < 0.88) {  // a constant base
    const double a = rng.pick(std::vector<double>{0.5, 2.0, 2.5});
    const Wrap w = domain_wrap(Domain::bounded, vv, *this);
    return add(Step{"pow(" + num(a) + ", " + w.text(x) + ")", {v},
                    [a, w](const auto& in, const Env&) { return bj::pow(a, w.apply(in[0])); }, d});
  }
  // C++ scalar operators.
  const double s = fl(rng.chance(0.5) ? rng.real(0.5, 2.0) : -rng.real(0.5, 2.0));
  const int k = static_cast<int>(rng.integer(0, 6));
  const Wrap w = k == 6 ? domain_wrap(Domain::nonzero, vv, *this) : Wrap{};
  std::string text;
  switch (k) {
    case 0: text = "-" + x; break;
    case 1: text = x + " * " + num(s); break;
    case 2: text = num(s) + " * " + x; break;
    case 3: text = num(s) + " + " + x; break;
    case 4: text = num(s) + " - " + x; break;
    case 5: text = x + " / " + num(s); break;
    default: text = num(s) + " / " + w.text(x); break;
  }
  return add(Step{text, {v},
                  [k, s, w](const auto& in, const Env&) -> bj::Tensor {
                    const bj::Tensor& t = in[0];
                    switch (k) {
                      case 0: return -t;
                      case 1: return t * s;
                      case 2: return s * t;
                      case 3: return s + t;
                      case 4: return s - t;
                      case 5: return t / s;
                      default: return s / w.apply(t);
                    }
                  },
                  d});
}

}  // namespace fuzz::gen

namespace fuzz {

Program generate(std::uint64_t seed) { return gen::Generator(seed).run(); }

}  // namespace fuzz
