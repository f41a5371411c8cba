// matmul: shapes, batch axis, JVP, transpose and lowering side by side.
#include "ops/linalg.hpp"

#include "ops/batching.hpp"
#include "ops/eager.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <string>

namespace batchjac::ops {

namespace {
struct Dims {
  std::int64_t batch = 1, m = 1, k = 1, n = 1;
  std::vector<std::int64_t> lead;  // leading (batch) dims of the result
  bool vector = false;             // a is a vector: the result has no m axis
};

Dims dims_of(const Node& node, const Shape& a, const Shape& b) {
  const bool ta = node.attrs.transpose_a, tb = node.attrs.transpose_b;
  if (a.size() < 1 || b.size() < 2)
    fail(node, "expected a of rank >= 2 and b of rank >= 2, got shapes " + a.to_string() +
                   " and " + b.to_string());
  Dims d;
  const std::size_t rb = b.size();
  const std::int64_t bk = tb ? b[rb - 1] : b[rb - 2];
  d.n = tb ? b[rb - 2] : b[rb - 1];
  if (a.size() == 1) {
    if (ta) fail(node, "cannot transpose a vector operand");
    d.vector = true;
    d.k = a[0];
  } else {
    const std::size_t ra = a.size();
    d.m = ta ? a[ra - 1] : a[ra - 2];
    d.k = ta ? a[ra - 2] : a[ra - 1];
    d.lead.assign(a.begin(), a.end() - 2);
  }
  if (rb > 2) {
    if (a.size() != rb || !std::equal(b.begin(), b.end() - 2, a.begin()))
      fail(node, "batched operands need equal leading dimensions, got shapes " + a.to_string() +
                     " and " + b.to_string());
  }
  if (d.k != bk)
    fail(node, "inner dimensions differ: a " + a.to_string() + (ta ? " (transposed)" : "") +
                   " contracts " + std::to_string(d.k) + " elements, b " + b.to_string() +
                   (tb ? " (transposed)" : "") + " " + std::to_string(bk));
  for (auto x : d.lead) d.batch *= x;
  return d;
}

Attrs flags(bool ta, bool tb) {
  Attrs a;
  a.transpose_a = ta;
  a.transpose_b = tb;
  return a;
}
}  // namespace

ValueInfo MatmulOp::infer(const Node& n, std::span<const ValueInfo> in) {
  DType dtype = common_float_dtype("matmul", in);
  Dims d = dims_of(n, in[0].shape, in[1].shape);
  std::vector<std::int64_t> out = d.lead;
  if (!d.vector) out.push_back(d.m);
  out.push_back(d.n);
  return {Shape(out), dtype};
}

void MatmulOp::batch(const Node& n, BatchQuery& q) {
  const Shape &a = q.in_shapes[0], &b = q.in_shapes[1];
  if (q.in[1] == Batching::batched && b.size() == 2)
    fail(n, "b of shape " + b.to_string() +
                " depends on the source and its batch axis is contracted or becomes columns: each "
                "result example would mix several source examples");
  if (q.in[0] == Batching::batched && a.size() == 2 && n.attrs.transpose_a)
    fail(n, "transpose_a contracts the batch axis of a " + a.to_string() +
                ": each result example would mix several source examples");
  if (q.in[0] == Batching::constant)
    q.in[0] = (a.size() == b.size() && b.size() > 2) ? Batching::batched : Batching::shared;
  if (q.in[1] == Batching::constant)
    q.in[1] = (b.size() > 2 && b[0] == q.batch) ? Batching::batched : Batching::shared;
  if (q.in[0] == Batching::shared && q.in[1] == Batching::batched && a.size() != b.size())
    fail(n, "unsupported batching of shapes " + a.to_string() + " and " + b.to_string());
  q.per_example.clear();
  for (int i = 0; i < 2; ++i) {
    const Shape& s = q.in_shapes[i];
    if (q.in[i] == Batching::batched)
      q.per_example.push_back(Shape(std::vector<std::int64_t>(s.begin() + 1, s.end())));
    else
      q.per_example.push_back(s);
  }
}

int MatmulOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // y = a b;  y_dot = a_dot b + a b_dot
  const int a = n.inputs[0], b = n.inputs[1];
  int ta = t[0] >= 0 ? c.linear(Prim::matmul, n.attrs, {t[0], b}) : -1;
  int tb = t[1] >= 0 ? c.linear(Prim::matmul, n.attrs, {a, t[1]}) : -1;
  if (ta < 0) return tb;
  if (tb < 0) return ta;
  Attrs add;
  add.op = 0;  // math::Add
  return c.linear(Prim::binary, add, {ta, tb});
}

void MatmulOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  const int a = n.inputs[0], b = n.inputs[1];
  const bool ta = n.attrs.transpose_a, tb = n.attrs.transpose_b;
  if (c.is_linear(a)) {
    if (!ta) {  // a_bar = y_bar op(b)^T
      c.accumulate(a, c.emit(Prim::matmul, flags(false, !tb), {ct, b}));
    } else {  // a_bar (stored transposed) = op(b) y_bar^T
      if (c.info(b).shape.size() != c.info(ct).shape.size())
        fail(n, "transpose_a with shared weights is not differentiable yet");
      c.accumulate(a, c.emit(Prim::matmul, flags(tb, true), {b, ct}));
    }
  }
  if (c.is_linear(b)) {
    if (c.info(a).shape.size() != c.info(ct).shape.size())
      fail(n, "b cannot be differentiated when a is folded into rows");
    if (!tb) c.accumulate(b, c.emit(Prim::matmul, flags(!ta, false), {a, ct}));  // op(a)^T y_bar
    else c.accumulate(b, c.emit(Prim::matmul, flags(true, ta), {ct, a}));        // y_bar^T op(a)
  }
}

template <class T>
void MatmulOp::lower(Lowering<T>& lo, const Node& n) {
  const Shape &a = lo.shape(n.inputs[0]), &b = lo.shape(n.inputs[1]);
  Dims d = dims_of(n, a, b);
  kernels::MatmulArgs<T> s;
  s.ta = n.attrs.transpose_a;
  s.tb = n.attrs.transpose_b;
  s.m = d.m;
  s.n = d.n;
  s.k = d.k;
  if (b.size() == 2 && !s.ta) {  // fold a's leading dims into rows
    s.m = d.m * d.batch;
    s.batch = 1;
  } else {
    s.batch = d.batch;
    s.a_batch_stride = d.m * d.k;
    s.b_batch_stride = b.size() == 2 ? 0 : d.k * d.n;
  }
  lo.matmul(n.output, n.inputs[0], n.inputs[1], s);
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

}  // namespace batchjac
