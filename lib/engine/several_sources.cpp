// GradientTape's calls with several sources (TF's tape.jacobian(z, [x, y])):
// independent sources of one dtype become one program whose parameter is
// their elements side by side, differentiated once; the others run one by one.
#include "autodiff/autodiff.hpp"
#include "engine/jacobian_call.hpp"
#include "engine/nested.hpp"
#include "graph/slice.hpp"
#include "tensor/sizes.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/gradient_tape.hpp>
#include <batchjac/ops.hpp>

#include <algorithm>
#include <cstring>
#include <string>

namespace batchjac {

namespace {

// The sources' per-example elements joined: [rows, N], N the sum of their
// sizes, each source's elements of a row at its offset.
Tensor join(std::span<const Tensor> sources, std::int64_t rows, std::span<const std::int64_t> sizes,
            std::int64_t total) {
  const DType dtype = sources[0].dtype();
  const std::size_t es = dtype_size(dtype);
  auto joined = detail::new_tensor(Shape{rows, total}, dtype);
  std::byte* dst = joined->buffer.get();
  std::int64_t offset = 0;
  for (std::size_t s = 0; s < sources.size(); ++s) {
    const std::int64_t n = sizes[s];
    if (n > 0 && rows > 0) {
      const std::byte* src = sources[s].impl().bytes();
      for (std::int64_t r = 0; r < rows; ++r)
        std::memcpy(dst + (r * total + offset) * es, src + r * n * es, static_cast<std::size_t>(n) * es);
    }
    offset += n;
  }
  return detail::make_tensor(std::move(joined));
}

// Columns [offset, offset + n) of every one of the `rows` rows of `all`
// ([rows, total]), as a tensor of `shape`.
Tensor columns(const Tensor& all, std::int64_t rows, std::int64_t total, std::int64_t offset, std::int64_t n,
               const Shape& shape) {
  const std::size_t es = dtype_size(all.dtype());
  auto part = detail::new_tensor(shape, all.dtype());
  if (n > 0 && rows > 0) {
    const std::byte* src = all.impl().bytes();
    std::byte* dst = part->buffer.get();
    for (std::int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + r * n * es, src + (r * total + offset) * es, static_cast<std::size_t>(n) * es);
  }
  return detail::make_tensor(std::move(part));
}

// Differentiates target with respect to every source at once (distinct,
// independent, one dtype): one slice, one plan, one pass.
std::vector<std::optional<Tensor>> joint(const detail::TapeState& tape, const Tensor& target,
                                         std::span<const Tensor> sources, bool batched, bool sum,
                                         const JacobianOptions& options) {
  const std::size_t k = sources.size();
  std::vector<Shape> result_shapes;
  std::vector<std::int64_t> sizes;  // per example
  std::int64_t total = 0;
  for (const Tensor& s : sources) {
    const Shape own = batched ? ops::drop_batch_axis(s.shape()) : s.shape();
    result_shapes.push_back(sum ? s.shape() : engine::concat_shapes(target.shape(), s.shape(), batched ? 1 : 0));
    sizes.push_back(own.num_elements());
    total += sizes.back();
  }
  auto unconnected = [&](std::size_t i) -> std::optional<Tensor> {
    if (options.unconnected_gradients == UnconnectedGradients::none) return std::nullopt;
    return zeros(result_shapes[i], sources[i].dtype());
  };
  std::vector<std::optional<Tensor>> out;
  std::optional<graph::JointProgram> sliced = graph::slice_joint(tape, target, sources, batched);
  std::vector<bool> connected(k, false);
  const int target_value = sliced ? sliced->program.result : -1;
  if (sliced) {
    if (sum) engine::sum_result(sliced->program);
    connected = autodiff::connected(sliced->program, sliced->source_values);
  }
  if (std::find(connected.begin(), connected.end(), true) == connected.end()) {
    for (std::size_t i = 0; i < k; ++i) out.push_back(unconnected(i));
    return out;
  }
  // The rows of the answer: examples x target elements (batched), target
  // elements (jacobian) or one (gradient).
  const std::int64_t batch = batched ? sources[0].shape()[0] : 1;
  const Shape prefix = sum ? Shape{} : target.shape();
  const std::int64_t rows = prefix.num_elements();
  std::optional<graph::Program> program = std::move(sliced->program);
  const Tensor param = join(sources, batch, sizes, total);
  JacobianOptions zero = options;  // every column is written, connected or not
  zero.unconnected_gradients = UnconnectedGradients::zero;
  const std::optional<Tensor> all = engine::finish(program, param, engine::concat_shapes(prefix, Shape{total}, 0),
                                                   nullptr, UnconnectedGradients::zero, zero,
                                                   engine::TargetValue{target, target_value});
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < k; ++i) {
    if (connected[i]) out.push_back(columns(*all, rows, total, offset, sizes[i], result_shapes[i]));
    else out.push_back(unconnected(i));
    offset += sizes[i];
  }
  return out;
}

}  // namespace

std::vector<std::optional<Tensor>> GradientTape::several(const char* fn, const Tensor& target,
                                                         const std::vector<Tensor>& sources, bool batched,
                                                         bool sum, const JacobianOptions& options) {
  engine::check_options(fn, options);
  engine::check_float(fn, "target", target);
  for (std::size_t i = 0; i < sources.size(); ++i) {
    const std::string what = "source " + std::to_string(i);
    const Tensor& s = sources[i];
    engine::check_float(fn, what.c_str(), s);
    if (batched && (target.rank() < 2 || s.rank() < 2))
      throw ValueError(std::string(fn) + ": target and sources must have rank >= 2 ([batch, ...]), got " +
                       "target " + target.shape().to_string() + " and " + what + " " + s.shape().to_string());
    if (batched && target.shape()[0] != s.shape()[0])
      throw ValueError(std::string(fn) + ": the first dimensions of target and sources must match, got " +
                       "target " + target.shape().to_string() + " and " + what + " " + s.shape().to_string());
    if (!sum)
      detail::check_tensor_size(fn, engine::concat_shapes(target.shape(), s.shape(), batched ? 1 : 0), s.dtype(),
                                "the Jacobian");
  }
  engine::check_unused(fn, *state_);
  // Each distinct source once; `slot` maps the list onto them.
  std::vector<Tensor> distinct;
  std::vector<std::size_t> slot;
  for (const Tensor& s : sources) {
    std::size_t j = 0;
    while (j < distinct.size() && distinct[j].id() != s.id()) ++j;
    if (j == distinct.size()) distinct.push_back(s);
    slot.push_back(j);
  }
  bool together = distinct.size() > 1;
  for (const Tensor& s : distinct) together = together && s.dtype() == distinct[0].dtype();
  together = together && graph::independent(*state_, distinct);
  if (together) {  // the joint answer must fit as one tensor too (each source's did)
    std::int64_t total = 0;
    for (const Tensor& s : distinct)
      total += (batched ? ops::drop_batch_axis(s.shape()) : s.shape()).num_elements();
    const Shape joint_shape = engine::concat_shapes(sum ? Shape{} : target.shape(), Shape{total}, 0);
    try {
      detail::check_tensor_size(fn, joint_shape, distinct[0].dtype(), "the Jacobian");
    } catch (const ValueError&) {
      together = false;  // a program per source: each answer alone fits
    }
  }
  std::vector<std::optional<Tensor>> results;
  if (together) {
    results = joint(*state_, target, distinct, batched, sum, options);
  } else {
    // A source computed from another (whose derivative then holds nothing
    // else fixed), or sources of several dtypes: a program for each.
    for (const Tensor& s : distinct) results.push_back(engine::one_source(*state_, target, s, batched, sum, options));
  }
  const engine::Derivative kind = sum       ? engine::Derivative::gradient
                                  : batched ? engine::Derivative::batch_jacobian
                                            : engine::Derivative::jacobian;
  for (std::size_t j = 0; j < distinct.size(); ++j)
    if (results[j]) engine::record_derivative(*state_, target, distinct[j], kind, *results[j]);
  answered();
  std::vector<std::optional<Tensor>> out;
  for (std::size_t j : slot) out.push_back(results[j]);
  return out;
}

std::vector<std::optional<Tensor>> GradientTape::batch_jacobian(const Tensor& target,
                                                                const std::vector<Tensor>& sources,
                                                                const JacobianOptions& options) {
  return several("batch_jacobian", target, sources, true, false, options);
}

std::vector<std::optional<Tensor>> GradientTape::jacobian(const Tensor& target, const std::vector<Tensor>& sources,
                                                          const JacobianOptions& options) {
  return several("jacobian", target, sources, false, false, options);
}

std::vector<std::optional<Tensor>> GradientTape::gradient(const Tensor& target, const std::vector<Tensor>& sources,
                                                          UnconnectedGradients unconnected_gradients) {
  engine::check_unconnected("gradient", unconnected_gradients);
  return several("gradient", target, sources, false, true, engine::gradient_options(unconnected_gradients));
}

}  // namespace batchjac
