// Elementwise primitives and their public functions.
#include "ops/elementwise.hpp"

#include "ops/batching.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise_math.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <array>
#include <string>

namespace batchjac::ops {

namespace {
namespace m = math;

template <class L>
struct Names;
template <class... Fs>
struct Names<m::List<Fs...>> {
  static constexpr std::array<std::string_view, sizeof...(Fs)> value{Fs::name...};
};

constexpr int kNegative = m::index_of<m::Negative, m::Unary>;
constexpr int kIdentity = m::index_of<m::Identity, m::Unary>;
constexpr int kRoundToFloat = m::index_of<m::RoundToFloat, m::Unary>;
constexpr int kAdd = m::index_of<m::Add, m::Binary>;
constexpr int kSubtract = m::index_of<m::Subtract, m::Binary>;
constexpr int kMultiply = m::index_of<m::Multiply, m::Binary>;
constexpr int kDivide = m::index_of<m::Divide, m::Binary>;

bool linear_unary(int op) { return op == kNegative || op == kIdentity || op == kRoundToFloat; }

Attrs unary_attrs(int op, double scalar = 0.0) {
  Attrs a;
  a.op = op;
  a.scalar = scalar;
  return a;
}
Attrs binary_attrs(int op) { return unary_attrs(op); }

// Broadcasts tangent t to `shape` when the op broadcast its input.
int broadcast_tangent(autodiff::JvpContext& c, int t, const Shape& shape) {
  if (c.info(t).shape == shape) return t;
  Attrs a;
  a.shape = shape;
  return c.linear(Prim::broadcast_to, a, {t});
}
}  // namespace

int unbroadcast(autodiff::TransposeContext& c, int ct, const Shape& shape) {
  const Shape& from = c.info(ct).shape;
  if (from == shape) return ct;
  Attrs a;
  const std::size_t off = from.size() - shape.size();
  for (std::size_t i = 0; i < from.size(); ++i)
    if (i < off || shape[i - off] == 1) a.axes.push_back(static_cast<std::int64_t>(i));
  a.keepdims = false;
  int summed = c.emit(Prim::reduce_sum, a, {ct});
  Attrs r;
  r.shape = shape;
  return c.emit(Prim::reshape, r, {summed});
}

// ---- unary --------------------------------------------------------------------

std::string UnaryOp::name(const Attrs& a) { return std::string(Names<m::Unary>::value[a.op]); }

ValueInfo UnaryOp::infer(const Node& n, std::span<const ValueInfo> in) {
  require_float(name(n.attrs), in[0], 0);
  return in[0];
}

void UnaryOp::batch(const Node& n, BatchQuery& q) { single_batch(n, q); }

int UnaryOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  if (t[0] < 0) return -1;
  if (linear_unary(n.attrs.op)) return c.linear(Prim::unary, n.attrs, {t[0]});
  // y = f(x);  y_dot = f'(x) x_dot, with f' from the op's `partial`.
  const int partial = c.primal(Prim::unary_partial, n.attrs, {n.inputs[0], n.output});
  return c.linear(Prim::binary, binary_attrs(kMultiply), {t[0], partial});
}

void UnaryOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // negative, identity and rounding are their own transposes.
  c.accumulate(n.inputs[0], c.emit(Prim::unary, n.attrs, {ct}));
}

template <class T>
void UnaryOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().unary[n.attrs.op], n.output, {n.inputs[0]}, T(n.attrs.scalar));
}

std::string UnaryPartialOp::name(const Attrs& a) { return "d" + UnaryOp::name(a); }
ValueInfo UnaryPartialOp::infer(const Node&, std::span<const ValueInfo> in) { return in[0]; }
void UnaryPartialOp::batch(const Node& n, BatchQuery& q) { elementwise_batch(n, q); }
int UnaryPartialOp::jvp(autodiff::JvpContext&, const Node& n, std::span<const int>) {
  fail(n, "second derivatives are not supported yet");
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

std::string BinaryOp::name(const Attrs& a) { return std::string(Names<m::Binary>::value[a.op]); }

ValueInfo BinaryOp::infer(const Node& n, std::span<const ValueInfo> in) {
  const std::string op = name(n.attrs);
  DType dtype = common_float_dtype(op, in);
  return {broadcast_shapes(in[0].shape, in[1].shape, op), dtype};
}

void BinaryOp::batch(const Node& n, BatchQuery& q) { elementwise_batch(n, q); }

int BinaryOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  const int a = n.inputs[0], b = n.inputs[1], y = n.output;
  const Shape& out = c.info(y).shape;
  auto term = [&](int op, int lin, int coef) { return c.linear(Prim::binary, binary_attrs(op), {lin, coef}); };
  auto sum = [&](int p, int q) {
    if (p < 0) return q;
    if (q < 0) return p;
    return c.linear(Prim::binary, binary_attrs(kAdd), {p, q});
  };
  int ta = -1, tb = -1;
  switch (n.attrs.op) {
    case kAdd:  // y = a + b;  y_dot = a_dot + b_dot
      if (t[0] >= 0 && t[1] >= 0) return c.linear(Prim::binary, n.attrs, {t[0], t[1]});
      return broadcast_tangent(c, t[0] >= 0 ? t[0] : t[1], out);
    case kSubtract:  // y = a - b;  y_dot = a_dot - b_dot
      if (t[0] >= 0 && t[1] >= 0) return c.linear(Prim::binary, n.attrs, {t[0], t[1]});
      if (t[0] >= 0) return broadcast_tangent(c, t[0], out);
      return c.linear(Prim::unary, unary_attrs(kNegative), {broadcast_tangent(c, t[1], out)});
    case kMultiply:  // y = a b;  y_dot = a_dot b + a b_dot
      if (t[0] >= 0) ta = term(kMultiply, t[0], b);
      if (t[1] >= 0) tb = term(kMultiply, t[1], a);
      return sum(ta, tb);
    case kDivide:  // y = a / b;  y_dot = a_dot / b + b_dot (-y / b)
      if (t[0] >= 0) ta = term(kDivide, t[0], b);
      if (t[1] >= 0) {
        const int q = c.primal(Prim::binary, binary_attrs(kDivide), {y, b});
        tb = term(kMultiply, t[1], c.primal(Prim::unary, unary_attrs(kNegative), {q}));
      }
      return sum(ta, tb);
  }
  fail(n, "has no JVP rule");
}

void BinaryOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  const int a = n.inputs[0], b = n.inputs[1];
  switch (n.attrs.op) {
    case kAdd:  // a_bar += y_bar;  b_bar += y_bar (summed over broadcast axes)
    case kSubtract:  // a_bar += y_bar;  b_bar -= y_bar
      if (c.is_linear(a)) c.accumulate(a, unbroadcast(c, ct, c.info(a).shape));
      if (c.is_linear(b)) {
        int nb = n.attrs.op == kAdd ? ct : c.emit(Prim::unary, unary_attrs(kNegative), {ct});
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
  }
  fail(n, "has no transpose rule");
}

template <class T>
void BinaryOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().binary[n.attrs.op], n.output, {n.inputs[0], n.inputs[1]});
}

template void UnaryOp::lower(Lowering<float>&, const Node&);
template void UnaryOp::lower(Lowering<double>&, const Node&);
template void UnaryPartialOp::lower(Lowering<float>&, const Node&);
template void UnaryPartialOp::lower(Lowering<double>&, const Node&);
template void BinaryOp::lower(Lowering<float>&, const Node&);
template void BinaryOp::lower(Lowering<double>&, const Node&);

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

Tensor negative(const Tensor& x) { return unary<m::Negative>(x); }
Tensor square(const Tensor& x) { return unary<m::Square>(x); }
Tensor sqrt(const Tensor& x) { return unary<m::Sqrt>(x); }
Tensor exp(const Tensor& x) { return unary<m::Exp>(x); }
Tensor log(const Tensor& x) { return unary<m::Log>(x); }
Tensor sin(const Tensor& x) { return unary<m::Sin>(x); }
Tensor cos(const Tensor& x) { return unary<m::Cos>(x); }
Tensor tanh(const Tensor& x) { return unary<m::Tanh>(x); }
Tensor pow(const Tensor& x, double p) { return unary<m::PowScalar>(x, p); }

Tensor add(const Tensor& a, const Tensor& b) { return binary<m::Add>(a, b); }
Tensor subtract(const Tensor& a, const Tensor& b) { return binary<m::Subtract>(a, b); }
Tensor multiply(const Tensor& a, const Tensor& b) { return binary<m::Multiply>(a, b); }
Tensor divide(const Tensor& a, const Tensor& b) { return binary<m::Divide>(a, b); }

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

}  // namespace batchjac
