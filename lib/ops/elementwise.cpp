// Elementwise primitives and their public functions.
#include "ops/elementwise.hpp"

#include "ops/batching.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise_math.hpp"
#include "ops/op_list.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <array>
#include <map>
#include <string>

namespace batchjac::ops {

namespace {
namespace m = math;

template <class L>
struct Traits;
template <class... Fs>
struct Traits<m::List<Fs...>> {
  static constexpr std::array<std::string_view, sizeof...(Fs)> name{Fs::name...};
  static constexpr std::array<m::Domain, sizeof...(Fs)> domain{Fs::domain...};
};

using m::kNegative, m::kIdentity, m::kRoundToFloat, m::kAdd, m::kSubtract, m::kMultiply, m::kDivide, m::kSelectFirst, m::kSelectSecond;

bool linear_unary(int op) { return op == kNegative || op == kIdentity || op == kRoundToFloat; }

// Broadcasts tangent t to `shape` when the op broadcast its input.
int broadcast_tangent(autodiff::JvpContext& c, int t, const Shape& shape) {
  if (c.info(t).shape == shape) return t;
  Attrs a;
  a.shape = shape;
  return c.linear(Prim::broadcast_to, a, {t});
}

int sum_tangents(autodiff::JvpContext& c, int p, int q) {
  if (p < 0) return q;
  if (q < 0) return p;
  return c.linear(Prim::binary, op_attrs(kAdd), {p, q});
}

void require_boolean(const std::string& op, const ValueInfo& v, int input) {
  if (v.dtype != DType::boolean)
    throw ValueError(op + ": input " + std::to_string(input) + " must be a bool tensor, got " +
                     std::string(dtype_name(v.dtype)) + " of shape " + v.shape.to_string());
}

// Second derivatives: a local partial (unary_partial, binary_partial) is
// written again as primitives of its inputs, each differentiated by its own
// JVP rule. The rewritten value is only differentiated: the partial's own
// value stays the kernel's.
class Expansion {
 public:
  // `values` are the partial node's inputs, `tangents` theirs (-1: none).
  Expansion(autodiff::JvpContext& c, const Node& n, std::span<const int> tangents)
      : c_(c), dtype_(c.info(n.output).dtype) {
    for (std::size_t i = 0; i < n.inputs.size(); ++i) tangent_[n.inputs[i]] = tangents[i];
  }
  int unary(int op, int x, double s = 0.0) { return emit(Prim::unary, op_attrs(op, s), {x}); }
  int binary(int op, int a, int b) { return emit(Prim::binary, op_attrs(op), {a, b}); }
  int where(int cond, int a, int b) { return emit(Prim::where, {}, {cond, a, b}); }
  int number(double v) { return c_.constant(v, dtype_); }
  // The tangent of an emitted (or input) value; -1 when it has none.
  int tangent(int v) const {
    const auto it = tangent_.find(v);
    return it == tangent_.end() ? -1 : it->second;
  }

 private:
  int emit(Prim prim, Attrs attrs, std::vector<int> inputs) {
    const int v = c_.primal(prim, std::move(attrs), inputs);
    std::vector<int> t;
    bool any = false;
    for (int in : inputs) {
      t.push_back(tangent(in));
      any = any || t.back() >= 0;
    }
    if (any) {
      const Node node = c_.primal_node(v);  // a copy: rules grow the node list
      tangent_[v] = ops::jvp(c_, node, t);
    }
    return v;
  }

  autodiff::JvpContext& c_;
  DType dtype_;
  std::map<int, int> tangent_;
};

template <class F>
constexpr int unary_index = m::index_of<F, m::Unary>;
template <class F>
constexpr int binary_index = m::index_of<F, m::Binary>;

// 1 / sqrt(one_minus ? 1 - x^2 : x^2 + sign), the partials of asin, acos, asinh, acosh.
int inverse_sqrt_of_square(Expansion& e, int x, bool one_minus, double sign) {
  const int xx = e.binary(kMultiply, x, x);
  const int r = one_minus ? e.binary(kSubtract, e.number(1), xx) : e.binary(kAdd, xx, e.number(sign));
  return e.binary(kDivide, e.number(1), e.unary(unary_index<m::Sqrt>, r));
}
}  // namespace

int unbroadcast(autodiff::TransposeContext& c, int ct, const Shape& shape) {
  const Shape& from = c.info(ct).shape;
  if (from == shape) return ct;
  Attrs a;
  const std::size_t off = from.size() - shape.size();
  // (Not over axes of size 1 on both sides: that sum is the identity, and
  // over the batch axis of one example an outer batch_jacobian would take
  // it for a mix of examples.)
  for (std::size_t i = 0; i < from.size(); ++i)
    if (i < off || (shape[i - off] == 1 && from[i] != 1)) a.axes.push_back(static_cast<std::int64_t>(i));
  int summed = c.emit(Prim::reduce_sum, a, {ct});
  Attrs r;
  r.shape = shape;
  return c.emit(Prim::reshape, r, {summed});
}

// ---- unary --------------------------------------------------------------------

std::string UnaryOp::name(const Attrs& a) { return std::string(Traits<m::Unary>::name[a.op]); }

ValueInfo UnaryOp::infer(const Node& n, std::span<const ValueInfo> in) {
  if (Traits<m::Unary>::domain[n.attrs.op] == m::Domain::logic) {
    require_boolean(name(n.attrs), in[0], 0);
    return in[0];
  }
  require_float(name(n.attrs), in[0], 0);
  return in[0];
}

void UnaryOp::batch(const Node& n, BatchQuery& q) { elementwise_batch(n, q); }

int UnaryOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  if (t[0] < 0 || Traits<m::Unary>::domain[n.attrs.op] != m::Domain::real) return -1;
  if (linear_unary(n.attrs.op)) return c.linear(Prim::unary, n.attrs, {t[0]});
  // y = f(x);  y_dot = f'(x) x_dot, with f' from the op's `partial`
  // (exp's is y itself: no pass to copy it).
  const int partial = n.attrs.op == m::kExp
                          ? n.output
                          : c.primal(Prim::unary_partial, n.attrs, {n.inputs[0], n.output});
  return c.linear(Prim::binary, op_attrs(kMultiply), {t[0], partial});
}

void UnaryOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // negative, identity and rounding are their own transposes.
  if (!linear_unary(n.attrs.op)) fail(n, "is not linear");
  c.accumulate(n.inputs[0], c.emit(Prim::unary, n.attrs, {ct}));
}

template <class T>
void UnaryOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().unary[n.attrs.op], n.output, {n.inputs[0]}, T(n.attrs.scalar));
}

std::string UnaryPartialOp::name(const Attrs& a) {
  std::string s = "d";  // (not "d" + ...: GCC 12 warns falsely, -Wrestrict)
  return s += UnaryOp::name(a);
}
ValueInfo UnaryPartialOp::infer(const Node&, std::span<const ValueInfo> in) { return in[0]; }
void UnaryPartialOp::batch(const Node& n, BatchQuery& q) { elementwise_batch(n, q); }
int UnaryPartialOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // The partial p(x, y) of y = f(x), written as primitives (its table in
  // ops/elementwise_math.hpp); a piecewise-constant partial has none.
  Expansion e(c, n, t);
  const int x = n.inputs[0], y = n.inputs[1], op = n.attrs.op;
  const auto one = [&] { return e.number(1); };
  const auto square = [&](int v) { return e.binary(kMultiply, v, v); };
  int p = -1;
  switch (op) {
    case unary_index<m::Square>: p = e.binary(kAdd, x, x); break;
    case unary_index<m::Sqrt>: p = e.binary(kDivide, e.number(0.5), y); break;
    case unary_index<m::Rsqrt>: p = e.binary(kDivide, e.binary(kMultiply, e.number(-0.5), y), x); break;
    case unary_index<m::Reciprocal>: p = e.unary(kNegative, square(y)); break;
    case unary_index<m::Exp>: return e.tangent(y);
    case unary_index<m::Expm1>: return e.tangent(y);  // y + 1
    case unary_index<m::Log>: p = e.unary(unary_index<m::Reciprocal>, x); break;
    case unary_index<m::Log1p>: p = e.unary(unary_index<m::Reciprocal>, e.binary(kAdd, one(), x)); break;
    case unary_index<m::Sin>: p = e.unary(unary_index<m::Cos>, x); break;
    case unary_index<m::Cos>: p = e.unary(kNegative, e.unary(unary_index<m::Sin>, x)); break;
    case unary_index<m::Tan>: p = e.binary(kAdd, one(), square(y)); break;
    case unary_index<m::Asin>: p = inverse_sqrt_of_square(e, x, true, 0); break;
    case unary_index<m::Acos>: p = e.unary(kNegative, inverse_sqrt_of_square(e, x, true, 0)); break;
    case unary_index<m::Atan>: p = e.unary(unary_index<m::Reciprocal>, e.binary(kAdd, one(), square(x))); break;
    case unary_index<m::Sinh>: p = e.unary(unary_index<m::Cosh>, x); break;
    case unary_index<m::Cosh>: p = e.unary(unary_index<m::Sinh>, x); break;
    case unary_index<m::Tanh>: p = e.binary(kSubtract, one(), square(y)); break;
    case unary_index<m::Asinh>: p = inverse_sqrt_of_square(e, x, false, 1); break;
    case unary_index<m::Acosh>: p = inverse_sqrt_of_square(e, x, false, -1); break;
    case unary_index<m::Atanh>: p = e.unary(unary_index<m::Reciprocal>, e.binary(kSubtract, one(), square(x))); break;
    case unary_index<m::Sigmoid>: p = e.binary(kMultiply, y, e.binary(kSubtract, one(), y)); break;
    case unary_index<m::Softplus>: p = e.unary(unary_index<m::Sigmoid>, x); break;
    case unary_index<m::Erf>:  // 2/sqrt(pi) exp(-x^2)
      p = e.binary(kMultiply, e.number(1.1283791670955126),
                   e.unary(unary_index<m::Exp>, e.unary(kNegative, square(x))));
      break;
    case unary_index<m::PowScalar>:  // p x^(p-1); 0 for p = 0
      if (n.attrs.scalar == 0.0) return -1;
      p = e.binary(kMultiply, e.number(n.attrs.scalar),
                   e.unary(unary_index<m::PowScalar>, x, n.attrs.scalar - 1.0));
      break;
    case kNegative:
    case kIdentity:
    case kRoundToFloat:
    case unary_index<m::Abs>:
    case unary_index<m::Sign>:
    case unary_index<m::Relu>:
    case unary_index<m::NonZero>:
      return -1;  // constant between kinks (TF's convention at them: 0)
    default:
      fail(n, "has no second derivative");
  }
  return e.tangent(p);
}
void UnaryPartialOp::transpose(autodiff::TransposeContext&, const Node& n, int) {
  fail(n, "is not linear");
}
template <class T>
void UnaryPartialOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().unary_partial[n.attrs.op], n.output, {n.inputs[0], n.inputs[1]},
                 T(n.attrs.scalar));
}

// ---- binary -------------------------------------------------------------------

std::string BinaryOp::name(const Attrs& a) { return std::string(Traits<m::Binary>::name[a.op]); }

ValueInfo BinaryOp::infer(const Node& n, std::span<const ValueInfo> in) {
  const std::string op = name(n.attrs);
  const Shape shape = broadcast_shapes(in[0].shape, in[1].shape, op);
  switch (Traits<m::Binary>::domain[n.attrs.op]) {
    case m::Domain::logic:
      require_boolean(op, in[0], 0);
      require_boolean(op, in[1], 1);
      return {shape, DType::boolean};
    case m::Domain::compare:
      if (in[0].dtype != in[1].dtype)
        throw ValueError(op + ": cannot compare " + std::string(dtype_name(in[0].dtype)) +
                         " with " + std::string(dtype_name(in[1].dtype)) + "; cast one of them");
      return {shape, DType::boolean};
    case m::Domain::real:
      break;
  }
  if (n.attrs.op == kSelectFirst || n.attrs.op == kSelectSecond) return {shape, in[1].dtype};
  return {shape, common_float_dtype(op, in)};
}

void BinaryOp::batch(const Node& n, BatchQuery& q) { elementwise_batch(n, q); }

int BinaryOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  if (Traits<m::Binary>::domain[n.attrs.op] != m::Domain::real) return -1;
  const int a = n.inputs[0], b = n.inputs[1], y = n.output;
  const Shape& out = c.info(y).shape;
  auto term = [&](int op, int lin, int coef) {
    return c.linear(Prim::binary, op_attrs(op), {lin, coef});
  };
  int ta = -1, tb = -1;
  switch (n.attrs.op) {
    case kAdd:  // y = a + b;  y_dot = a_dot + b_dot
      if (t[0] >= 0 && t[1] >= 0) return c.linear(Prim::binary, n.attrs, {t[0], t[1]});
      return broadcast_tangent(c, t[0] >= 0 ? t[0] : t[1], out);
    case kSubtract:  // y = a - b;  y_dot = a_dot - b_dot
      if (t[0] >= 0 && t[1] >= 0) return c.linear(Prim::binary, n.attrs, {t[0], t[1]});
      if (t[0] >= 0) return broadcast_tangent(c, t[0], out);
      return c.linear(Prim::unary, op_attrs(kNegative), {broadcast_tangent(c, t[1], out)});
    case kMultiply:  // y = a b;  y_dot = a_dot b + a b_dot
      if (a == b)  // y = a^2: one pass, y_dot = a_dot (2a)
        return term(kMultiply, t[0], c.primal(Prim::binary, op_attrs(kAdd), {a, a}));
      if (t[0] >= 0) ta = term(kMultiply, t[0], b);
      if (t[1] >= 0) tb = term(kMultiply, t[1], a);
      return sum_tangents(c, ta, tb);
    case kDivide:  // y = a / b;  y_dot = a_dot / b + b_dot (-y / b)
      if (t[0] >= 0) ta = term(kDivide, t[0], b);
      if (t[1] >= 0) {
        const int q = c.primal(Prim::binary, op_attrs(kDivide), {y, b});
        tb = term(kMultiply, t[1], c.primal(Prim::unary, op_attrs(kNegative), {q}));
      }
      return sum_tangents(c, ta, tb);
    case kSelectFirst:   // y = c ? b : 0 (a derived program's): linear in b
    case kSelectSecond:  // y = c ? 0 : b
      return t[1] < 0 ? -1 : c.linear(Prim::binary, n.attrs, {a, t[1]});
    default: {  // y = f(a, b);  y_dot = f_a a_dot + f_b b_dot, partials from the op
      for (int i = 0; i < 2; ++i) {
        if (t[i] < 0) continue;
        Attrs pa = n.attrs;
        pa.arg = i;
        const int partial = c.primal(Prim::binary_partial, pa, {a, b, y});
        (i == 0 ? ta : tb) = term(kMultiply, t[i], partial);
      }
      return sum_tangents(c, ta, tb);
    }
  }
}

void BinaryOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  const int a = n.inputs[0], b = n.inputs[1];
  switch (n.attrs.op) {
    case kAdd:       // a_bar += y_bar;  b_bar += y_bar (summed over broadcast axes)
    case kSubtract:  // a_bar += y_bar;  b_bar -= y_bar
      if (c.is_linear(a)) c.accumulate(a, unbroadcast(c, ct, c.info(a).shape));
      if (c.is_linear(b)) {
        int nb = n.attrs.op == kAdd ? ct : c.emit(Prim::unary, op_attrs(kNegative), {ct});
        c.accumulate(b, unbroadcast(c, nb, c.info(b).shape));
      }
      return;
    case kMultiply: {  // linear in the one linear input: lin_bar += y_bar * coef
      const bool a_lin = c.is_linear(a);
      const int lin = a_lin ? a : b, coef = a_lin ? b : a;
      c.accumulate(lin, unbroadcast(c, c.emit(Prim::binary, n.attrs, {ct, coef}), c.info(lin).shape));
      return;
    }
    case kDivide:  // linear in the numerator: a_bar += y_bar / b
      c.accumulate(a, unbroadcast(c, c.emit(Prim::binary, n.attrs, {ct, b}), c.info(a).shape));
      return;
    case kSelectFirst:   // y = c ? b : 0;  b_bar += c ? y_bar : 0
    case kSelectSecond:  // y = c ? 0 : b;  b_bar += c ? 0 : y_bar
      c.accumulate(b, unbroadcast(c, c.emit(Prim::binary, n.attrs, {a, ct}), c.info(b).shape));
      return;
  }
  fail(n, "is not linear");
}

template <class T>
void BinaryOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().binary[n.attrs.op], n.output, {n.inputs[0], n.inputs[1]});
}

std::string BinaryPartialOp::name(const Attrs& a) {
  std::string s = "d";
  return s += BinaryOp::name(a);
}
ValueInfo BinaryPartialOp::infer(const Node&, std::span<const ValueInfo> in) { return in[2]; }
void BinaryPartialOp::batch(const Node& n, BatchQuery& q) { elementwise_batch(n, q); }
int BinaryPartialOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // The partial dy/da (arg 0) or dy/db (arg 1) of y = f(a, b), written as
  // primitives (ops/elementwise_math.hpp).
  Expansion e(c, n, t);
  const int a = n.inputs[0], b = n.inputs[1], y = n.inputs[2];
  const bool da = n.attrs.arg == 0;
  int p = -1;
  switch (n.attrs.op) {
    case binary_index<m::Pow>:
      if (da) {  // b a^(b-1)
        p = e.binary(kMultiply, b, e.binary(binary_index<m::Pow>, a, e.binary(kSubtract, b, e.number(1))));
      } else {  // a > 0 ? y log(a) : 0
        const int positive = e.binary(binary_index<m::Greater>, a, e.number(0));
        const int log_a = e.unary(unary_index<m::Log>, e.where(positive, a, e.number(1)));
        p = e.where(positive, e.binary(kMultiply, y, log_a), e.number(0));
      }
      break;
    case binary_index<m::Atan2>: {  // b / (a^2 + b^2), -a / (a^2 + b^2)
      const int r2 = e.binary(kAdd, e.binary(kMultiply, a, a), e.binary(kMultiply, b, b));
      p = e.binary(kDivide, da ? b : e.unary(kNegative, a), r2);
      break;
    }
    case binary_index<m::SquaredDifference>:  // 2 (a - b), -2 (a - b)
      p = e.binary(kMultiply, e.number(da ? 2.0 : -2.0), e.binary(kSubtract, a, b));
      break;
    case binary_index<m::Maximum>:
    case binary_index<m::Minimum>:
      return -1;  // 0 or 1 between ties
    default:
      fail(n, "has no second derivative");
  }
  return e.tangent(p);
}
void BinaryPartialOp::transpose(autodiff::TransposeContext&, const Node& n, int) {
  fail(n, "is not linear");
}
template <class T>
void BinaryPartialOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().binary_partial[n.attrs.arg][n.attrs.op], n.output,
                 {n.inputs[0], n.inputs[1], n.inputs[2]});
}

// ---- where --------------------------------------------------------------------

std::string WhereOp::name(const Attrs&) { return "where"; }

ValueInfo WhereOp::infer(const Node&, std::span<const ValueInfo> in) {
  require_boolean("where", in[0], 0);
  const DType dtype = common_float_dtype("where", in.subspan(1), 1);
  Shape shape = broadcast_shapes(in[0].shape, in[1].shape, "where");
  return {broadcast_shapes(shape, in[2].shape, "where"), dtype};
}

void WhereOp::batch(const Node& n, BatchQuery& q) { elementwise_batch(n, q); }

int WhereOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // y = c ? a : b;  y_dot = c ? a_dot : b_dot (a missing tangent is zero)
  const int cond = n.inputs[0];
  if (t[1] < 0 && t[2] < 0) return -1;
  if (t[1] >= 0 && t[2] >= 0) return c.linear(Prim::where, n.attrs, {cond, t[1], t[2]});
  const Shape& out = c.info(n.output).shape;
  const int op = t[1] >= 0 ? kSelectFirst : kSelectSecond;
  return c.linear(Prim::binary, op_attrs(op),
                  {cond, broadcast_tangent(c, t[1] >= 0 ? t[1] : t[2], out)});
}

void WhereOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // a_bar += c ? y_bar : 0;  b_bar += c ? 0 : y_bar
  const int cond = n.inputs[0];
  for (int i = 1; i <= 2; ++i) {
    const int v = n.inputs[i];
    if (!c.is_linear(v)) continue;
    const int part = c.emit(Prim::binary, op_attrs(i == 1 ? kSelectFirst : kSelectSecond), {cond, ct});
    c.accumulate(v, unbroadcast(c, part, c.info(v).shape));
  }
}

template <class T>
void WhereOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().ternary[m::index_of<m::Where, m::Ternary>], n.output,
                 {n.inputs[0], n.inputs[1], n.inputs[2]});
}

// ---- lincomb -------------------------------------------------------------------

std::string LincombOp::name(const Attrs& a) { return a.op == 0 ? "axpy" : "lincomb"; }

ValueInfo LincombOp::infer(const Node& n, std::span<const ValueInfo> in) {
  Shape shape = broadcast_shapes(in[0].shape, in[1].shape, op_name(n));
  for (std::size_t i = 2; i < in.size(); ++i) shape = broadcast_shapes(shape, in[i].shape, op_name(n));
  return {shape, in[0].dtype};
}

void LincombOp::batch(const Node& n, BatchQuery&) { fail(n, "appears only in derived programs"); }

int LincombOp::jvp(autodiff::JvpContext&, const Node& n, std::span<const int>) {
  fail(n, "appears only in derived programs");
}

void LincombOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x1_bar += y_bar c1;  x2_bar += y_bar c2 (or z_bar += y_bar), each summed
  // over the axes it was broadcast on.
  const int x1 = n.inputs[0], x2 = n.inputs[2];
  c.accumulate(x1, unbroadcast(c, c.emit(Prim::binary, op_attrs(kMultiply), {ct, n.inputs[1]}),
                               c.info(x1).shape));
  const int g2 = n.attrs.op == 0 ? ct : c.emit(Prim::binary, op_attrs(kMultiply), {ct, n.inputs[3]});
  c.accumulate(x2, unbroadcast(c, g2, c.info(x2).shape));
}

template <class T>
void LincombOp::lower(Lowering<T>& lo, const Node& n) {
  if (n.attrs.op == 0)
    lo.elementwise(lo.table().ternary[m::index_of<m::Axpy, m::Ternary>], n.output,
                   {n.inputs[0], n.inputs[1], n.inputs[2]});
  else
    lo.elementwise(lo.table().quaternary[m::index_of<m::Lincomb, m::Quaternary>], n.output,
                   {n.inputs[0], n.inputs[1], n.inputs[2], n.inputs[3]});
}

#define BATCHJAC_INSTANTIATE_LOWER(Op)                 \
  template void Op::lower(Lowering<float>&, const Node&); \
  template void Op::lower(Lowering<double>&, const Node&);
BATCHJAC_INSTANTIATE_LOWER(UnaryOp)
BATCHJAC_INSTANTIATE_LOWER(UnaryPartialOp)
BATCHJAC_INSTANTIATE_LOWER(BinaryOp)
BATCHJAC_INSTANTIATE_LOWER(BinaryPartialOp)
BATCHJAC_INSTANTIATE_LOWER(WhereOp)
BATCHJAC_INSTANTIATE_LOWER(LincombOp)
#undef BATCHJAC_INSTANTIATE_LOWER

}  // namespace batchjac::ops

// ---- public functions -----------------------------------------------------------

namespace batchjac {

namespace {
using ops::Prim;
namespace m = ops::math;

template <class F>
Tensor unary(const Tensor& x, double scalar = 0.0) {
  ops::Attrs a;
  a.op = m::index_of<F, m::Unary>;
  a.scalar = scalar;
  return ops::apply(Prim::unary, a, {x});
}
template <class F>
Tensor binary(const Tensor& x, const Tensor& y) {
  ops::Attrs a;
  a.op = m::index_of<F, m::Binary>;
  return ops::apply(Prim::binary, a, {x, y});
}
// A C++ scalar takes the tensor's dtype, as a Python scalar does in TF.
Tensor scalar_like(double v, const Tensor& t) {
  return constant(v, is_floating(t.dtype()) ? t.dtype() : float64);
}
}  // namespace

#define BATCHJAC_UNARY_FN(fn, F) \
  Tensor fn(const Tensor& x) { return unary<m::F>(x); }
BATCHJAC_UNARY_FN(negative, Negative)
BATCHJAC_UNARY_FN(abs, Abs)
BATCHJAC_UNARY_FN(sign, Sign)
BATCHJAC_UNARY_FN(square, Square)
BATCHJAC_UNARY_FN(sqrt, Sqrt)
BATCHJAC_UNARY_FN(rsqrt, Rsqrt)
BATCHJAC_UNARY_FN(reciprocal, Reciprocal)
BATCHJAC_UNARY_FN(exp, Exp)
BATCHJAC_UNARY_FN(expm1, Expm1)
BATCHJAC_UNARY_FN(log, Log)
BATCHJAC_UNARY_FN(log1p, Log1p)
BATCHJAC_UNARY_FN(sin, Sin)
BATCHJAC_UNARY_FN(cos, Cos)
BATCHJAC_UNARY_FN(tan, Tan)
BATCHJAC_UNARY_FN(asin, Asin)
BATCHJAC_UNARY_FN(acos, Acos)
BATCHJAC_UNARY_FN(atan, Atan)
BATCHJAC_UNARY_FN(sinh, Sinh)
BATCHJAC_UNARY_FN(cosh, Cosh)
BATCHJAC_UNARY_FN(tanh, Tanh)
BATCHJAC_UNARY_FN(asinh, Asinh)
BATCHJAC_UNARY_FN(acosh, Acosh)
BATCHJAC_UNARY_FN(atanh, Atanh)
BATCHJAC_UNARY_FN(sigmoid, Sigmoid)
BATCHJAC_UNARY_FN(softplus, Softplus)
BATCHJAC_UNARY_FN(relu, Relu)
BATCHJAC_UNARY_FN(erf, Erf)
BATCHJAC_UNARY_FN(logical_not, LogicalNot)
#undef BATCHJAC_UNARY_FN

#define BATCHJAC_BINARY_FN(fn, F) \
  Tensor fn(const Tensor& a, const Tensor& b) { return binary<m::F>(a, b); }
BATCHJAC_BINARY_FN(add, Add)
BATCHJAC_BINARY_FN(subtract, Subtract)
BATCHJAC_BINARY_FN(multiply, Multiply)
BATCHJAC_BINARY_FN(divide, Divide)
BATCHJAC_BINARY_FN(maximum, Maximum)
BATCHJAC_BINARY_FN(minimum, Minimum)
BATCHJAC_BINARY_FN(atan2, Atan2)
BATCHJAC_BINARY_FN(squared_difference, SquaredDifference)
BATCHJAC_BINARY_FN(less, Less)
BATCHJAC_BINARY_FN(less_equal, LessEqual)
BATCHJAC_BINARY_FN(greater, Greater)
BATCHJAC_BINARY_FN(greater_equal, GreaterEqual)
BATCHJAC_BINARY_FN(equal, Equal)
BATCHJAC_BINARY_FN(not_equal, NotEqual)
BATCHJAC_BINARY_FN(logical_and, LogicalAnd)
BATCHJAC_BINARY_FN(logical_or, LogicalOr)
#undef BATCHJAC_BINARY_FN

Tensor pow(const Tensor& x, double p) { return unary<m::PowScalar>(x, p); }
Tensor pow(const Tensor& x, const Tensor& y) { return binary<m::Pow>(x, y); }
Tensor pow(double x, const Tensor& y) { return binary<m::Pow>(scalar_like(x, y), y); }

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  return ops::apply(Prim::where, {}, {condition, a, b});
}

Tensor operator-(const Tensor& x) { return negative(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return subtract(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return multiply(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return divide(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return subtract(a, scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return multiply(a, scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return divide(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return subtract(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return multiply(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return divide(scalar_like(a, b), b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return less(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return less_equal(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return greater(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return greater_equal(a, b); }
Tensor operator<(const Tensor& a, double b) { return less(a, scalar_like(b, a)); }
Tensor operator<=(const Tensor& a, double b) { return less_equal(a, scalar_like(b, a)); }
Tensor operator>(const Tensor& a, double b) { return greater(a, scalar_like(b, a)); }
Tensor operator>=(const Tensor& a, double b) { return greater_equal(a, scalar_like(b, a)); }

}  // namespace batchjac
