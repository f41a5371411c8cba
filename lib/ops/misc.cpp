// stop_gradient, cast and custom_jvp's node: shapes, batch axis, JVP,
// transpose and lowering.
#include "ops/misc.hpp"

#include "graph/program.hpp"
#include "ops/batching.hpp"
#include "ops/op_list.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise_math.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <map>
#include <string>
#include <type_traits>

namespace batchjac::ops {

namespace {
using math::kIdentity, math::kRoundToFloat, math::kNonZero;
}  // namespace

// ---- stop_gradient ----------------------------------------------------------------

ValueInfo StopGradientOp::infer(const Node&, std::span<const ValueInfo> in) { return in[0]; }
void StopGradientOp::batch(const Node& n, BatchQuery& q) { single_batch(n, q); }
int StopGradientOp::jvp(autodiff::JvpContext&, const Node&, std::span<const int>) {
  return -1;  // no derivative flows through
}
void StopGradientOp::transpose(autodiff::TransposeContext&, const Node& n, int) {
  fail(n, "has no linear part to transpose");
}
template <class T>
void StopGradientOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});
}

// ---- cast -------------------------------------------------------------------------

ValueInfo CastOp::infer(const Node& n, std::span<const ValueInfo> in) {
  return {in[0].shape, n.attrs.dtype};
}
void CastOp::batch(const Node& n, BatchQuery& q) { single_batch(n, q); }

int CastOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // Between float types: y_dot = cast(x_dot). Booleans have no derivative.
  if (t[0] < 0 || !is_floating(n.attrs.dtype) || !is_floating(c.info(n.inputs[0]).dtype)) return -1;
  return c.linear(Prim::cast, n.attrs, {t[0]});
}

void CastOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x_bar += cast(y_bar, dtype of x)
  Attrs back = n.attrs;
  back.dtype = c.info(n.inputs[0]).dtype;
  c.accumulate(n.inputs[0], c.emit(Prim::cast, back, {ct}));
}

template <class T>
void CastOp::lower(Lowering<T>& lo, const Node& n) {
  int op = kIdentity;
  if (n.attrs.dtype == DType::boolean) op = kNonZero;
  else if (n.attrs.dtype == DType::float32 && std::is_same_v<T, double>) op = kRoundToFloat;
  lo.elementwise(lo.table().unary[op], n.output, {n.inputs[0]});
}

std::optional<Tensor> CastOp::eager(const Node& n, const std::vector<Tensor>& in,
                                    const ValueInfo&) {
  return detail::convert(in[0], n.attrs.dtype);
}

template void StopGradientOp::lower(Lowering<float>&, const Node&);
template void StopGradientOp::lower(Lowering<double>&, const Node&);
template void CastOp::lower(Lowering<float>&, const Node&);
template void CastOp::lower(Lowering<double>&, const Node&);

// ---- custom_jvp -------------------------------------------------------------------

ValueInfo CustomJvpOp::infer(const Node& n, std::span<const ValueInfo> in) {
  if (in.empty()) fail(n, "needs the function's result");
  return in[0];
}

void CustomJvpOp::batch(const Node& n, BatchQuery& q) {
  // The result is y, per example; the x_i only name the rule's tangents.
  // A constant with a leading b is per-example, any other shared.
  q.per_example.clear();
  for (std::size_t i = 0; i < q.in.size(); ++i) {
    const Shape& s = q.in_shapes[i];
    const bool leading_b = s.size() >= 1 && s[0] == q.batch;
    if (q.in[i] == Batching::constant) q.in[i] = leading_b ? Batching::batched : Batching::shared;
    if (q.in[i] == Batching::batched && !leading_b)
      fail(n, "input " + std::to_string(i) + " of shape " + s.to_string() + " does not keep the batch axis (" +
                  std::to_string(q.batch) + " examples) first");
    q.per_example.push_back(q.in[i] == Batching::batched ? drop_batch_axis(s) : s);
  }
}

int CustomJvpOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // y_dot = rule(x, y, x_dot): the rule's ops on values emitted as primal
  // nodes; an op on tangents emitted through its own JVP rule with respect
  // to them, which for a rule linear in the tangents is the op itself
  // (t * cosh(x) -> x_dot * cosh(x)). y's own tangent (t[0], f's automatic
  // derivative) is not used.
  const graph::JvpRule rule = c.program().rules[static_cast<std::size_t>(n.attrs.op)];  // a copy: emitting grows it
  std::map<int, int> primal;   // rule value -> program value
  std::map<int, int> tangent;  // rule value computed from tangents -> its linear value (-1: zero)
  for (std::size_t i = 0; i < rule.tangents.size(); ++i)
    if (rule.tangents[i] >= 0) tangent[rule.tangents[i]] = t[1 + i];
  for (const int v : rule.zero_tangents) tangent[v] = -1;
  const std::size_t primal0 = c.primal_nodes().size(), linear0 = c.linear_nodes().size();
  auto not_linear = [&](const Node& r, const std::string& why) {
    fail(n, "its JVP rule must be linear in the tangents, but an op of it (" + op_name(r) + ") " + why +
                ": use tangents only in sums, products with values, and index, shape and "
                "linear-algebra ops that are linear in them");
  };
  for (const Node& r : rule.nodes) {
    Node m = r;
    std::vector<int> tin;
    std::vector<bool> is_tangent;
    bool on_tangents = false, any = false;
    for (int& v : m.inputs) {
      if (auto it = tangent.find(v); it != tangent.end()) {
        on_tangents = true;
        any = any || it->second >= 0;
        tin.push_back(it->second);
        is_tangent.push_back(true);
        continue;
      }
      if (auto it = primal.find(v); it != primal.end()) v = it->second;
      tin.push_back(-1);
      is_tangent.push_back(false);
    }
    if (!on_tangents) {
      primal[r.output] = c.primal(m.prim, m.attrs, m.inputs);
      continue;
    }
    // A value beside a tangent in a sum, a concat or a where's branches
    // makes the rule affine (t + x): its JVP would drop the value.
    const bool additive = (m.prim == Prim::binary && (m.attrs.op == math::kAdd || m.attrs.op == math::kSubtract)) ||
                          m.prim == Prim::concat;
    for (std::size_t i = 0; i < is_tangent.size(); ++i)
      if (!is_tangent[i] && (additive || (m.prim == Prim::where && i > 0)))
        not_linear(r, "adds a value that is not a tangent");
    const int out = any ? ops::jvp(c, m, tin) : -1;
    // Moving tangents that gives no derivative: a comparison, a cast to bool, stop_gradient.
    if (any && out < 0) not_linear(r, "has no derivative with respect to them");
    tangent[r.output] = out;
  }
  // A rule linear in the tangents never reads one as a coefficient: the
  // values computed from tangents exist only as linear values.
  auto check = [&](const std::vector<Node>& nodes, std::size_t from) {
    for (std::size_t i = from; i < nodes.size(); ++i)
      for (int v : nodes[i].inputs)
        if (tangent.count(v)) not_linear(nodes[i], "reads one as a coefficient");
  };
  check(c.primal_nodes(), primal0);
  check(c.linear_nodes(), linear0);
  const auto it = tangent.find(rule.result);
  return it == tangent.end() ? -1 : it->second;
}

void CustomJvpOp::transpose(autodiff::TransposeContext&, const Node& n, int) {
  fail(n, "has no linear part to transpose");
}

template <class T>
void CustomJvpOp::lower(Lowering<T>& lo, const Node& n) {
  lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});  // y
}
template void CustomJvpOp::lower(Lowering<float>&, const Node&);
template void CustomJvpOp::lower(Lowering<double>&, const Node&);

}  // namespace batchjac::ops

namespace batchjac {

Tensor stop_gradient(const Tensor& x) { return ops::apply(ops::Prim::stop_gradient, {}, {x}); }

Tensor cast(const Tensor& x, DType dtype) {
  ops::Attrs a;
  a.dtype = dtype;
  return ops::apply(ops::Prim::cast, a, {x});
}

}  // namespace batchjac
