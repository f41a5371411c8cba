// bj::custom_jvp: runs the function, traces the user's rule on tangent
// placeholders, and records the custom_jvp node (ops/misc.hpp) that makes
// Jacobians use the rule.
#include "graph/tape.hpp"
#include "ops/eager.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/custom_jvp.hpp>
#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <string>
#include <unordered_set>
#include <utility>

namespace batchjac {

namespace {

// A tangent placeholder: zeros, allocated only if read (when its input is
// not computed from a Jacobian's source, the rule reads it as a constant).
struct Zeros final : detail::Deferred {
  Shape shape;
  DType dtype = DType::float64;
  std::shared_ptr<const detail::TensorImpl> compute_all(const std::shared_ptr<const detail::TensorImpl>&) const override {
    return nullptr;
  }
  std::shared_ptr<const detail::TensorImpl> compute() const override { return zeros(shape, dtype).impl_ptr(); }
};

Tensor placeholder(const Tensor& like) {
  auto how = std::make_unique<Zeros>();
  how->shape = like.shape();
  how->dtype = like.dtype();
  return detail::make_tensor(detail::new_deferred(like.shape(), like.dtype(), std::move(how)));
}

void require_float(const Tensor& t, const std::string& what) {
  if (!is_floating(t.dtype()))
    throw ValueError("custom_jvp: " + what + " must be float32 or float64, got a " +
                     std::string(dtype_name(t.dtype())) + " tensor of shape " + t.shape().to_string() +
                     " (capture masks and other constants in the functions instead)");
}
}  // namespace

CustomJvp::CustomJvp(Function f, Rule jvp) : f_(std::move(f)), jvp_(std::move(jvp)) {
  if (!f_ || !jvp_) throw ValueError("custom_jvp: needs a function and its JVP rule, got an empty one");
}

Tensor CustomJvp::operator()(const std::vector<Tensor>& primals) const {
  if (primals.empty()) throw ValueError("custom_jvp: needs at least one input, got none");
  for (std::size_t i = 0; i < primals.size(); ++i) require_float(primals[i], "input " + std::to_string(i));
  const bool traced = graph::recorded(primals);
  Tensor y = f_(primals);
  if (!traced) return y;  // nothing will differentiate it
  require_float(y, "the function's result");

  auto trace = std::make_shared<detail::CustomJvpTrace>();
  trace->primals = primals;
  trace->primal_out = y;
  for (const Tensor& x : primals) trace->tangents.push_back(placeholder(x));
  for (const Tensor& x : primals) trace->tape.tracked.insert(x.id());
  trace->tape.tracked.insert(y.id());
  for (const Tensor& t : trace->tangents) trace->tape.tracked.insert(t.id());
  {
    const graph::RecordOnlyOn only(trace->tape);
    trace->tangent_out = jvp_(primals, y, trace->tangents);
  }
  const Tensor& out = trace->tangent_out;
  if (out.shape() != y.shape() || out.dtype() != y.dtype())
    throw ValueError("custom_jvp: the JVP rule must return a tangent like the function's result (" +
                     std::string(dtype_name(y.dtype())) + " " + y.shape().to_string() + "), got " +
                     std::string(dtype_name(out.dtype())) + " " + out.shape().to_string());
  std::unordered_set<std::uint64_t> from_tangents;
  for (const Tensor& t : trace->tangents) from_tangents.insert(t.id());
  for (const auto& r : trace->tape.records)
    for (const auto& in : r.inputs)
      if (from_tangents.count(in.id())) {
        from_tangents.insert(r.output.id());
        break;
      }
  if (!from_tangents.count(out.id()))
    throw ValueError("custom_jvp: the JVP rule's result must be computed from the tangents (linear in "
                     "them); for a zero derivative return tangents[0] * 0.0");

  ops::Attrs a;
  a.custom = std::move(trace);
  std::vector<Tensor> inputs{y};
  inputs.insert(inputs.end(), primals.begin(), primals.end());
  return ops::apply(ops::Prim::custom_jvp, a, std::move(inputs));
}

}  // namespace batchjac
