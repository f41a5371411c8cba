// Batch-axis rules shared by several primitives, and dtype checks.
#include "ops/batching.hpp"

#include <batchjac/errors.hpp>

#include <algorithm>
#include <string>

namespace batchjac::ops {

void elementwise_batch(const Node& node, BatchQuery& q) {
  std::size_t rank = 0;
  for (const auto& s : q.in_shapes) rank = std::max(rank, s.size());
  q.per_example.clear();
  for (std::size_t i = 0; i < q.in_shapes.size(); ++i) {
    const Shape& s = q.in_shapes[i];
    if (q.in[i] == Batching::batched) {
      if (s.size() != rank) {
        fail(node, "input " + std::to_string(i) + " of shape " + s.to_string() +
                       " depends on the source, and broadcasting against rank " +
                       std::to_string(rank) + " moves its batch axis to axis " +
                       std::to_string(rank - s.size()) +
                       ", so each result example would mix several source examples");
      }
      q.per_example.push_back(drop_batch_axis(s));
    } else if (s.size() == rank) {
      q.in[i] = (s[0] == q.batch && q.batch != 1) ? Batching::batched : Batching::shared;
      q.per_example.push_back(drop_batch_axis(s));
    } else {
      q.in[i] = Batching::shared;
      q.per_example.push_back(s);
    }
  }
}

void single_batch(const Node&, BatchQuery& q) {
  q.per_example.clear();
  q.per_example.push_back(drop_batch_axis(q.in_shapes[0]));
}

void require_float(std::string_view op, const ValueInfo& v, int input) {
  if (!is_floating(v.dtype)) {
    throw ValueError(std::string(op) + ": input " + std::to_string(input) +
                     " must be float32 or float64, got a " + std::string(dtype_name(v.dtype)) +
                     " tensor of shape " + v.shape.to_string() + " (use cast)");
  }
}

DType common_float_dtype(std::string_view op, std::span<const ValueInfo> in, int first_input) {
  for (std::size_t i = 0; i < in.size(); ++i) require_float(op, in[i], first_input + static_cast<int>(i));
  for (std::size_t i = 1; i < in.size(); ++i) {
    if (in[i].dtype != in[0].dtype) {
      throw ValueError(std::string(op) + ": cannot mix " + std::string(dtype_name(in[0].dtype)) +
                       " and " + std::string(dtype_name(in[i].dtype)) +
                       " inputs; cast one of them first");
    }
  }
  return in.empty() ? DType::float64 : in[0].dtype;
}

}  // namespace batchjac::ops
