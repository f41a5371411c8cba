// Generator families of two or more operands: binary elementwise ops with
// broadcasting, where with comparisons, and misc (stop_gradient, casts, cross).
#include "fuzz/generate.hpp"

namespace fuzz::gen {

namespace {

enum BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kMax, kMin, kAtan2, kSqDiff, kNumBinary };
const char* const kBinaryName[] = {"add",     "subtract", "multiply", "divide",           "pow",
                                   "maximum", "minimum",  "atan2",    "squared_difference"};
const char* const kOperator[] = {" + ", " - ", " * ", " / "};

bj::Tensor apply_binary(int op, bool op_form, const bj::Tensor& a, const bj::Tensor& b) {
  switch (op) {
    case kAdd: return op_form ? a + b : bj::add(a, b);
    case kSub: return op_form ? a - b : bj::subtract(a, b);
    case kMul: return op_form ? a * b : bj::multiply(a, b);
    case kDiv: return op_form ? a / b : bj::divide(a, b);
    case kPow: return bj::pow(a, b);
    case kMax: return bj::maximum(a, b);
    case kMin: return bj::minimum(a, b);
    case kAtan2: return bj::atan2(a, b);
    default: return bj::squared_difference(a, b);
  }
}

// t op s and s op t with a C++ scalar s.
bj::Tensor apply_scalar(int op, bool scalar_first, const bj::Tensor& t, double s) {
  switch (op) {
    case kAdd: return scalar_first ? s + t : t + s;
    case kSub: return scalar_first ? s - t : t - s;
    case kMul: return scalar_first ? s * t : t * s;
    default: return scalar_first ? s / t : t / s;
  }
}

enum Compare { kLess, kLessEqual, kGreater, kGreaterEqual, kNumCompare };
const char* const kCompareName[] = {"less", "less_equal", "greater", "greater_equal"};
const char* const kCompareOp[] = {" < ", " <= ", " > ", " >= "};

bj::Tensor apply_compare(int cmp, bool op_form, const bj::Tensor& a, const bj::Tensor& b) {
  switch (cmp) {
    case kLess: return op_form ? a < b : bj::less(a, b);
    case kLessEqual: return op_form ? a <= b : bj::less_equal(a, b);
    case kGreater: return op_form ? a > b : bj::greater(a, b);
    default: return op_form ? a >= b : bj::greater_equal(a, b);
  }
}

}  // namespace

bool Generator::binary(int v) {
  const Dims d = dims[static_cast<std::size_t>(v)];
  std::vector<int> inputs{v};
  const int op = static_cast<int>(rng.integer(0, kNumBinary - 1));
  const bool op_form = op <= kDiv && rng.chance(0.5);
  const Operand o = operand(d, inputs);
  const auto out = broadcast(d, o.dims);
  if (!out || count(*out) > kMaxElements) return false;
  const bool swap = rng.chance(0.4);  // the operand first
  const bj::Tensor tv = vals[static_cast<std::size_t>(v)], to = eval(o, inputs);
  const bj::Tensor& a = swap ? to : tv;
  const bj::Tensor& b = swap ? tv : to;
  Wrap wa, wb;
  switch (op) {
    case kDiv: wb = domain_wrap(Domain::nonzero, values(b), *this); break;
    case kPow:  // a positive base (d/db = a^b log a), a moderate exponent
      wa = domain_wrap(Domain::positive, values(a), *this);
      wb = domain_wrap(Domain::bounded, values(b), *this);
      break;
    case kAtan2: wb = domain_wrap(Domain::positive, values(b), *this); break;  // off the branch cut
    case kMax:
    case kMin: {  // the kink a == b a margin away: shift a
      const double t = threshold(values(a - b), -0.3, 0.3);
      if (t != 0.0) wa = Wrap{Wrap::shift, -t};
      break;
    }
    default: break;
  }
  const bool scalar_form = o.kind == Operand::scalar && op_form && wa.kind == Wrap::none &&
                           wb.kind == Wrap::none;
  const std::string ta = wa.text(swap ? o.text : name(v)), tb = wb.text(swap ? name(v) : o.text);
  const std::string text = op_form ? ta + kOperator[op] + tb
                                   : std::string(kBinaryName[op]) + "(" + ta + ", " + tb + ")";
  return add(Step{text, inputs,
                  [op, op_form, o, swap, wa, wb, scalar_form](const std::vector<bj::Tensor>& in,
                                                              const Env& env) {
                    if (scalar_form) return apply_scalar(op, swap, in[0], o.s);
                    const bj::Tensor t = o.get(in, env);
                    return apply_binary(op, op_form, wa.apply(swap ? t : in[0]),
                                        wb.apply(swap ? in[0] : t));
                  },
                  *out});
}

bool Generator::select(int v) {
  const Dims d = dims[static_cast<std::size_t>(v)];
  std::vector<int> inputs{v};
  const auto cands = compatible(d);  // v itself at least
  const int u = rng.pick(cands);
  inputs.push_back(u);
  const Dims du = dims[static_cast<std::size_t>(u)];
  const Operand w = operand(du, inputs);
  const auto dc = broadcast(du, w.dims);
  if (!dc) return false;
  // cond = cmp(u - t, w), t keeping u - w a margin from t.
  const double t = threshold(values(vals[static_cast<std::size_t>(u)] - eval(w, inputs)), -0.5, 0.5);
  const int cmp = static_cast<int>(rng.integer(0, kNumCompare - 1));
  const bool cmp_op = rng.chance(0.5);
  const bool negate = rng.chance(0.2);
  // Optionally and/or with v > t2.
  const int logic = rng.chance(0.25) ? static_cast<int>(rng.integer(1, 2)) : 0;
  const double t2 = logic ? threshold(values(vals[static_cast<std::size_t>(v)]), -0.5, 0.5) : 0.0;
  const Operand other = operand(d, inputs);
  auto out = broadcast(d, *dc);
  if (out) out = broadcast(*out, other.dims);
  if (!out || count(*out) > kMaxElements) return false;
  const bool swap = rng.chance(0.5);

  const std::string lhs = t == 0.0 ? name(u) : Wrap{Wrap::shift, -t}.text(name(u));
  std::string cond = cmp_op ? lhs + kCompareOp[cmp] + w.text
                            : std::string(kCompareName[cmp]) + "(" + lhs + ", " + w.text + ")";
  if (negate) cond = "logical_not(" + cond + ")";
  if (logic)
    cond = std::string(logic == 1 ? "logical_and(" : "logical_or(") + cond + ", " + name(v) +
           " > " + num(t2) + ")";
  const std::string text = "where(" + cond + ", " + (swap ? other.text + ", " + name(v)
                                                           : name(v) + ", " + other.text) + ")";
  return add(Step{text, inputs,
                  [=](const std::vector<bj::Tensor>& in, const Env& env) {
                    const bj::Tensor l = t == 0.0 ? in[1] : in[1] - t;
                    bj::Tensor c = apply_compare(cmp, cmp_op, l, w.get(in, env));
                    if (negate) c = bj::logical_not(c);
                    if (logic == 1) c = bj::logical_and(c, in[0] > t2);
                    if (logic == 2) c = bj::logical_or(c, in[0] > t2);
                    const bj::Tensor o = other.get(in, env);
                    return swap ? bj::where(c, o, in[0]) : bj::where(c, in[0], o);
                  },
                  *out});
}

bool Generator::misc(int v) {
  const Dims d = dims[static_cast<std::size_t>(v)];
  const std::string x = name(v);
  const double r = rng.real(0.0, 1.0);
  if (r < 0.3) {  // stop_gradient: the value counts, its derivative does not
    const int w = rng.pick(compatible(d));
    const auto out = broadcast(d, dims[static_cast<std::size_t>(w)]);
    const bool mul = rng.chance(0.5);
    return add(Step{x + (mul ? " * " : " + ") + "stop_gradient(" + name(w) + ")", {v, w},
                    [mul](const auto& in, const Env& env) {
                      bj::Tensor s = bj::stop_gradient(in[1]);
                      if (env.frozen) s = env.frozen->take(s);
                      return mul ? in[0] * s : in[0] + s;
                    },
                    *out});
  }
  if (r < 0.55) {  // through float64 and back (exact for float32), times a float64 constant
    Constant c = constant(rng.chance(0.5) ? Dims{d.back()} : Dims{}, false);
    const bool scale = rng.chance(0.6);
    return add(Step{"cast(cast(" + x + ", float64)" + (scale ? " * " + c.str() + " (float64)" : "") +
                        ", dtype)",
                    {v},
                    [c, scale](const auto& in, const Env& env) {
                      bj::Tensor t = bj::cast(in[0], bj::float64);
                      if (scale) {
                        Env e64 = env;
                        e64.dtype = bj::float64;
                        t = t * c.make(e64);
                      }
                      return bj::cast(t, env.dtype);
                    },
                    d});
  }
  if (r < 0.75) {  // a mask: v * cast(u > t, dtype), no derivative through the cast
    const double t = threshold(values(vals[static_cast<std::size_t>(v)]), -0.5, 0.5);
    return add(Step{x + " * cast(" + x + " > " + num(t) + ", dtype)", {v},
                    [t](const auto& in, const Env& env) {
                      return in[0] * bj::cast(in[0] > t, env.dtype);
                    },
                    d});
  }
  if (d.back() != 3) return false;
  // cross with a value of the same shape or a per-example constant
  std::vector<int> same;
  for (int w : compatible(d))
    if (dims[static_cast<std::size_t>(w)] == d) same.push_back(w);
  if (rng.chance(0.5)) {
    const int w = rng.pick(same);
    return add(Step{"cross(" + x + ", " + name(w) + ")", {v, w},
                    [](const auto& in, const Env&) { return bj::cross(in[0], in[1]); }, d});
  }
  const Constant c = constant(d, true);
  const bool swap = rng.chance(0.5);
  return add(Step{swap ? "cross(" + c.str() + ", " + x + ")" : "cross(" + x + ", " + c.str() + ")",
                  {v},
                  [c, swap](const auto& in, const Env& env) {
                    return swap ? bj::cross(c.make(env), in[0]) : bj::cross(in[0], c.make(env));
                  },
                  d});
}

}  // namespace fuzz::gen
