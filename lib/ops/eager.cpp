// Eager evaluation: lower one node with the scalar kernels and bind it to the
// tensors' own buffers.
#include "ops/eager.hpp"

#include "engine/values.hpp"
#include "graph/tape.hpp"
#include "ops/lowering.hpp"
#include "ops/op_list.hpp"
#include "tensor/tensor_impl.hpp"

namespace batchjac::ops {

namespace {
// Kernels run on one element type T: booleans (and, for a boolean result,
// every input) are converted to T as 0/1 first, and the result back.
template <class T>
Tensor evaluate(const Node& node, std::span<const ValueInfo> values, std::vector<Tensor> inputs,
                const ValueInfo& out_info) {
  constexpr DType t_dtype = sizeof(T) == 4 ? DType::float32 : DType::float64;
  for (Tensor& t : inputs)
    if (t.dtype() != t_dtype) t = detail::convert(t, t_dtype);
  auto out = detail::new_tensor(out_info.shape, t_dtype);
  std::vector<Step<T>> steps;
  MapStore maps;
  std::vector<std::uint8_t> varying(values.size(), 1);
  Lowering<T> lo(kernels::scalar_kernels<T>(), values, varying, steps, maps);
  lower(lo, node);
  std::vector<T*> ptr;
  for (const Tensor& t : inputs) ptr.push_back(const_cast<T*>(t.impl().as<T>()));
  ptr.push_back(out->as_mutable<T>());
  std::vector<std::int64_t> dir_stride(values.size(), 0);
  Binding<T> b{ptr, dir_stride, varying, 1, 1};
  execute<T>(steps, b);
  Tensor result = detail::make_tensor(std::move(out));
  return out_info.dtype == t_dtype ? result : detail::convert(result, out_info.dtype);
}

Tensor evaluate_now(const Node& node, std::span<const ValueInfo> values, const std::vector<Tensor>& inputs) {
  const ValueInfo& out_info = values.back();
  if (auto special = eager_override(node, inputs, out_info)) return *special;
  if (out_info.dtype == DType::float32) return evaluate<float>(node, values, inputs, out_info);
  return evaluate<double>(node, values, inputs, out_info);
}

}  // namespace

std::shared_ptr<const detail::TensorImpl> DeferredOp::compute_all(
    const std::shared_ptr<const detail::TensorImpl>& self) const {
  return engine::compute_value(Tensor(self), *this);
}

std::shared_ptr<const detail::TensorImpl> DeferredOp::compute() const {
  std::vector<Tensor> in;
  in.reserve(inputs.size());
  for (const auto& impl : inputs) in.emplace_back(impl);
  return evaluate_now(node, values, in).impl_ptr();
}

Tensor apply(Prim prim, const Attrs& attrs, std::vector<Tensor> inputs) {
  std::vector<ValueInfo> values;
  Node node{prim, attrs, {}, static_cast<int>(inputs.size())};
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    values.push_back({inputs[i].shape(), inputs[i].dtype()});
    node.inputs.push_back(static_cast<int>(i));
  }
  const ValueInfo out_info = infer(node, std::span<const ValueInfo>(values));
  values.push_back(out_info);
  if (!graph::recorded(inputs)) return evaluate_now(node, values, inputs);
  // Recorded: the shape, dtype and errors are decided; the elements wait
  // until something reads them (most often nothing: the engine recomputes
  // them block by block).
  auto how = std::make_unique<DeferredOp>();
  how->node = node;
  how->values = values;
  for (const Tensor& t : inputs) how->inputs.push_back(t.impl_ptr());
  Tensor out = detail::make_tensor(detail::new_deferred(out_info.shape, out_info.dtype, std::move(how)));
  graph::record(prim, attrs, inputs, out);
  return out;
}

}  // namespace batchjac::ops
