// matmul: shapes, batch axis, JVP, transpose and lowering side by side; cross.
#include "ops/linalg.hpp"

#include "autodiff/contexts.hpp"
#include "ops/batching.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise.hpp"
#include "ops/lowering.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <string>

namespace batchjac::ops {

namespace {
struct Dims {
  std::int64_t m = 1, k = 1, n = 1;
  Shape lead;            // broadcast leading (batch) dims of the result
  Shape lead_a, lead_b;  // each operand's own leading dims
  bool vector = false;   // a is a vector: the result has no m axis
};

Shape leading(const Shape& s) { return Shape(std::vector<std::int64_t>(s.begin(), s.end() - 2)); }

Dims dims_of(const Node& node, const Shape& a, const Shape& b) {
  const bool ta = node.attrs.transpose_a, tb = node.attrs.transpose_b;
  if (a.size() < 1 || b.size() < 2)
    fail(node, "expected operands of rank >= 2, got shapes " + a.to_string() + " and " + b.to_string());
  Dims d;
  const std::size_t rb = b.size();
  const std::int64_t bk = tb ? b[rb - 1] : b[rb - 2];
  d.n = tb ? b[rb - 2] : b[rb - 1];
  d.lead_b = leading(b);
  if (a.size() == 1) {
    if (ta || rb != 2) fail(node, "a vector operand needs a plain matrix b");
    d.vector = true;
    d.k = a[0];
  } else {
    const std::size_t ra = a.size();
    d.m = ta ? a[ra - 1] : a[ra - 2];
    d.k = ta ? a[ra - 2] : a[ra - 1];
    d.lead_a = leading(a);
  }
  if (d.k != bk)
    fail(node, "inner dimensions differ: a " + a.to_string() + (ta ? " (transposed)" : "") +
                   " contracts " + std::to_string(d.k) + " elements, b " + b.to_string() +
                   (tb ? " (transposed)" : "") + " " + std::to_string(bk));
  d.lead = broadcast_shapes(d.lead_a, d.lead_b, "matmul");
  return d;
}

Attrs flags(bool ta, bool tb) {
  Attrs a;
  a.transpose_a = ta;
  a.transpose_b = tb;
  return a;
}

// Offset of each result batch in an operand with leading dims `own` and
// matrix size `size` (empty when the operand has no leading dims).
std::vector<std::int64_t> batch_offsets(const Shape& own, const Shape& lead, std::int64_t size) {
  std::vector<std::int64_t> offsets;
  if (own.size() == 0) return std::vector<std::int64_t>(static_cast<std::size_t>(lead.num_elements()), 0);
  auto map = broadcast_map(own, lead);
  if (map.empty()) {
    map.resize(static_cast<std::size_t>(lead.num_elements()));
    for (std::size_t i = 0; i < map.size(); ++i) map[i] = static_cast<std::int64_t>(i);
  }
  for (auto& x : map) x *= size;
  return map;
}
}  // namespace

std::string MatmulOp::name(const Attrs&) { return "matmul"; }

ValueInfo MatmulOp::infer(const Node& n, std::span<const ValueInfo> in) {
  DType dtype = common_float_dtype("matmul", in);
  Dims d = dims_of(n, in[0].shape, in[1].shape);
  std::vector<std::int64_t> out = d.lead.dims();
  if (!d.vector) out.push_back(d.m);
  out.push_back(d.n);
  return {Shape(out), dtype};
}

void MatmulOp::batch(const Node& n, BatchQuery& q) {
  const Shape &a = q.in_shapes[0], &b = q.in_shapes[1];
  const std::size_t r = std::max(a.size(), b.size());
  const std::string mixes = ": each result example would mix several source examples";
  // A per-example row block [b, k] against plain weights keeps examples as rows.
  const bool rows = a.size() == 2 && b.size() == 2 && !n.attrs.transpose_a &&
                    q.in[0] == Batching::batched;
  q.per_example.clear();
  for (int i = 0; i < 2; ++i) {
    const Shape& s = q.in_shapes[i];
    if (q.in[i] == Batching::batched) {
      if (rows && i == 0) {
      } else if (s.size() == 2) {
        fail(n, std::string(i == 0 ? "a" : "b") + " of shape " + s.to_string() +
                    " depends on the source and its batch axis is a matrix axis" +
                    (i == 1 || n.attrs.transpose_a ? " that is contracted or becomes columns" : "") + mixes);
      } else if (s.size() != r) {
        fail(n, std::string(i == 0 ? "a " : "b ") + s.to_string() +
                    " depends on the source, but broadcasting against rank " + std::to_string(r) +
                    " moves its batch axis" + mixes);
      }
    } else {
      q.in[i] = (s.size() == r && r > 2 && s[0] == q.batch && q.batch != 1) ? Batching::batched
                                                                              : Batching::shared;
    }
    const bool drop = q.in[i] == Batching::batched || (s.size() == r && r > 2 && s[0] == 1);
    q.per_example.push_back(drop ? drop_batch_axis(s) : s);
  }
}

int MatmulOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // y = a b;  y_dot = a_dot b + a b_dot
  const int a = n.inputs[0], b = n.inputs[1];
  int ta = t[0] >= 0 ? c.linear(Prim::matmul, n.attrs, {t[0], b}) : -1;
  int tb = t[1] >= 0 ? c.linear(Prim::matmul, n.attrs, {a, t[1]}) : -1;
  if (ta < 0) return tb;
  if (tb < 0) return ta;
  return c.linear(Prim::binary, Attrs{}, {ta, tb});  // math::Add is op 0
}

void MatmulOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // Each cotangent is summed over the leading dims its operand was broadcast on.
  const int a = n.inputs[0], b = n.inputs[1];
  const bool ta = n.attrs.transpose_a, tb = n.attrs.transpose_b;
  if (c.is_linear(a)) {
    const int g = ta ? c.emit(Prim::matmul, flags(tb, true), {b, ct})     // op(b) y_bar^T
                     : c.emit(Prim::matmul, flags(false, !tb), {ct, b});  // y_bar op(b)^T
    c.accumulate(a, unbroadcast(c, g, c.info(a).shape));
  }
  if (c.is_linear(b)) {
    if (c.info(a).shape.size() == 1) fail(n, "cannot differentiate b when a is a vector");
    const int g = tb ? c.emit(Prim::matmul, flags(true, ta), {ct, a})     // y_bar^T op(a)
                     : c.emit(Prim::matmul, flags(!ta, false), {a, ct});  // op(a)^T y_bar
    c.accumulate(b, unbroadcast(c, g, c.info(b).shape));
  }
}

template <class T>
void MatmulOp::lower(Lowering<T>& lo, const Node& n) {
  // An empty result has nothing to compute (and its leading dims' product
  // may pass int64).
  if (lo.shape(n.output).num_elements() == 0) return;
  const Shape &a = lo.shape(n.inputs[0]), &b = lo.shape(n.inputs[1]);
  Dims d = dims_of(n, a, b);
  kernels::MatmulArgs<T> s;
  s.ta = n.attrs.transpose_a;
  s.tb = n.attrs.transpose_b;
  s.m = d.m;
  s.n = d.n;
  s.k = d.k;
  if (d.lead_b.size() == 0 && !s.ta) {  // plain weights: a's leading dims become rows
    s.m = d.m * d.lead.num_elements();
    s.batch = 1;
    lo.matmul(n.output, n.inputs[0], n.inputs[1], s, {}, {});
    return;
  }
  s.batch = d.lead.num_elements();
  lo.matmul(n.output, n.inputs[0], n.inputs[1], s, batch_offsets(d.lead_a, d.lead, d.m * d.k),
            batch_offsets(d.lead_b, d.lead, d.k * d.n));
}

template void MatmulOp::lower(Lowering<float>&, const Node&);
template void MatmulOp::lower(Lowering<double>&, const Node&);

}  // namespace batchjac::ops

namespace batchjac {

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  if (a.rank() < 2 || b.rank() < 2)
    throw ValueError("matmul: expected tensors of rank >= 2, got shapes " + a.shape().to_string() +
                     " and " + b.shape().to_string());
  ops::Attrs attrs;
  attrs.transpose_a = transpose_a;
  attrs.transpose_b = transpose_b;
  return ops::apply(ops::Prim::matmul, attrs, {a, b});
}

Tensor cross(const Tensor& a, const Tensor& b) {
  if (a.rank() < 1 || b.rank() < 1 || a.shape()[a.rank() - 1] != 3 || b.shape()[b.rank() - 1] != 3)
    throw ValueError("cross: both last axes must have size 3, got shapes " + a.shape().to_string() +
                     " and " + b.shape().to_string());
  // a x b = a_(1,2,0) b_(2,0,1) - a_(2,0,1) b_(1,2,0), along the last axis.
  const std::vector<std::int64_t> next{1, 2, 0}, prev{2, 0, 1};
  return gather(a, next, -1) * gather(b, prev, -1) - gather(a, prev, -1) * gather(b, next, -1);
}

}  // namespace batchjac
