// Public shape and indexing functions: argument checks and normalisation, then
// the primitives of ops/shape_ops.hpp (stack, unstack, expand_dims and squeeze
// are compositions and need no rules of their own).
#include "ops/eager.hpp"
#include "ops/reduction.hpp"
#include "ops/shape_ops.hpp"
#include "tensor/sizes.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <algorithm>
#include <optional>
#include <string>

namespace batchjac {

namespace {
using ops::Prim;

std::int64_t normalize_axis(std::string_view op, std::int64_t axis, std::int64_t rank) {
  return ops::normalize_axes(op, {axis}, rank)[0];
}

Tensor index_map(int kind, const Tensor& x, ops::Attrs a) {
  a.op = kind;
  return ops::apply(Prim::index_map, a, {x});
}
}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  std::vector<std::int64_t> dims = shape.dims();
  int inferred = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (inferred >= 0)
        throw ValueError("reshape: only one dimension may be -1, got " + shape.to_string());
      inferred = static_cast<int>(i);
    } else if (dims[i] < 0) {
      throw ValueError("reshape: dimensions must be >= 0 or -1, got " + shape.to_string());
    }
  }
  if (inferred >= 0) {
    // The product of the others; past int64 it matches no tensor.
    dims[inferred] = 1;
    const std::int64_t known = detail::checked_product(dims).value_or(0);
    if (known == 0 || x.num_elements() % known != 0)
      throw ValueError("reshape: cannot infer the -1 in " + shape.to_string() + " for " +
                       std::to_string(x.num_elements()) + " elements of shape " +
                       x.shape().to_string());
    dims[inferred] = x.num_elements() / known;
  }
  ops::Attrs a;
  a.shape = Shape(dims);
  return ops::apply(Prim::reshape, a, {x});
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  ops::Attrs a;
  a.shape = shape;
  return ops::apply(Prim::broadcast_to, a, {x});
}

Tensor transpose(const Tensor& x, Axes perm) {
  if (perm.empty())
    for (std::int64_t i = x.rank(); i-- > 0;) perm.push_back(i);
  if (static_cast<std::int64_t>(perm.size()) != x.rank())
    throw ValueError("transpose: perm " + Shape(perm).to_string() + " must list each of the " +
                     std::to_string(x.rank()) + " axes of shape " + x.shape().to_string());
  for (auto& p : perm) p = p < 0 ? p + x.rank() : p;
  ops::Attrs a;
  a.axes = std::move(perm);
  return index_map(ops::kTranspose, x, a);
}

Tensor expand_dims(const Tensor& x, std::int64_t axis) {
  const std::int64_t at = normalize_axis("expand_dims", axis, x.rank() + 1);
  std::vector<std::int64_t> dims = x.shape().dims();
  dims.insert(dims.begin() + at, 1);
  return reshape(x, Shape(dims));
}

Tensor squeeze(const Tensor& x, Axes axes) {
  std::vector<std::int64_t> dims;
  if (axes.empty()) {
    for (auto d : x.shape()) if (d != 1) dims.push_back(d);
  } else {
    axes = ops::normalize_axes("squeeze", std::move(axes), x.rank());
    for (std::int64_t i = 0; i < x.rank(); ++i) {
      const bool drop = std::binary_search(axes.begin(), axes.end(), i);
      if (drop && x.shape()[i] != 1)
        throw ValueError("squeeze: axis " + std::to_string(i) + " of shape " +
                         x.shape().to_string() + " has size " + std::to_string(x.shape()[i]) +
                         ", not 1");
      if (!drop) dims.push_back(x.shape()[i]);
    }
  }
  return reshape(x, Shape(dims));
}

Tensor concat(const std::vector<Tensor>& values, std::int64_t axis) {
  if (values.empty()) throw ValueError("concat: needs at least one tensor, got none");
  if (values[0].rank() == 0)
    throw ValueError("concat: needs tensors of rank >= 1, got a scalar (rank 0) as input 0; "
                     "stack joins scalars");
  ops::Attrs a;
  a.arg = normalize_axis("concat", axis, values[0].rank());
  return ops::apply(Prim::concat, a, values);
}

Tensor stack(const std::vector<Tensor>& values, std::int64_t axis) {
  if (values.empty()) throw ValueError("stack: needs at least one tensor, got none");
  const std::int64_t at = normalize_axis("stack", axis, values[0].rank() + 1);
  std::vector<Tensor> expanded;
  for (const auto& v : values) {
    if (v.shape() != values[0].shape())
      throw ValueError("stack: all shapes must be equal, got " + values[0].shape().to_string() +
                       " and " + v.shape().to_string());
    expanded.push_back(expand_dims(v, at));
  }
  return concat(expanded, at);
}

std::vector<Tensor> unstack(const Tensor& x, std::int64_t axis) {
  const std::int64_t at = normalize_axis("unstack", axis, x.rank());
  std::vector<Tensor> out;
  std::vector<std::int64_t> begin(static_cast<std::size_t>(x.rank()), 0);
  std::vector<std::int64_t> size(x.shape().begin(), x.shape().end());
  size[at] = 1;
  for (std::int64_t i = 0; i < x.shape()[at]; ++i) {
    begin[at] = i;
    out.push_back(squeeze(slice(x, begin, size), {at}));
  }
  return out;
}

Tensor slice(const Tensor& x, Axes begin, Axes size) {
  const std::int64_t r = x.rank();
  if (static_cast<std::int64_t>(begin.size()) != r || static_cast<std::int64_t>(size.size()) != r)
    throw ValueError("slice: begin " + Shape(begin).to_string() + " and size " +
                     Shape(size).to_string() + " need one entry per axis of shape " +
                     x.shape().to_string());
  for (std::int64_t i = 0; i < r; ++i) {
    if (size[i] != -1) continue;
    if (begin[i] < 0 || begin[i] > x.shape()[i])
      throw ValueError("slice: begin " + Shape(begin).to_string() + " is out of bounds for shape " +
                       x.shape().to_string() + " on axis " + std::to_string(i));
    size[i] = x.shape()[i] - begin[i];
  }
  ops::Attrs a;
  a.axes = std::move(begin);
  a.shape = Shape(size);
  return index_map(ops::kSlice, x, a);
}

Tensor gather(const Tensor& x, std::vector<std::int64_t> indices, std::int64_t axis) {
  ops::Attrs a;
  a.arg = normalize_axis("gather", axis, x.rank());
  a.axes = std::move(indices);
  return index_map(ops::kGather, x, a);
}

Tensor roll(const Tensor& x, std::vector<std::int64_t> shift, Axes axis) {
  if (shift.size() != axis.size())
    throw ValueError("roll: shift " + Shape(shift).to_string() + " and axis " +
                     Shape(axis).to_string() + " must have the same length");
  // Each axis's total shift, mod its length: exact for any int64 shifts.
  ops::Attrs a;
  a.axes.assign(static_cast<std::size_t>(x.rank()), 0);
  for (std::size_t i = 0; i < axis.size(); ++i) {
    const std::int64_t at = normalize_axis("roll", axis[i], x.rank()), n = x.shape()[at];
    if (n > 0) a.axes[at] = detail::add_mod(a.axes[at], detail::floor_mod(shift[i], n), n);
  }
  return index_map(ops::kRoll, x, a);
}

Tensor roll(const Tensor& x, std::int64_t shift, std::int64_t axis) {
  return roll(x, std::vector<std::int64_t>{shift}, Axes{axis});
}

Tensor tile(const Tensor& x, std::vector<std::int64_t> multiples) {
  ops::Attrs a;
  a.axes = std::move(multiples);
  return index_map(ops::kTile, x, a);
}

Tensor pad(const Tensor& x, std::vector<std::array<std::int64_t, 2>> paddings) {
  ops::Attrs a;
  for (const auto& p : paddings) {
    a.axes.push_back(p[0]);
    a.axes.push_back(p[1]);
  }
  return index_map(ops::kPad, x, a);
}

Tensor repeat(const Tensor& x, std::vector<std::int64_t> repeats, std::optional<std::int64_t> axis) {
  // No axis: repeat the flattened elements (TF).
  if (!axis) return repeat(reshape(x, Shape{x.num_elements()}), std::move(repeats), 0);
  if (x.rank() == 0)
    throw ValueError("repeat: needs a tensor of rank >= 1 with an axis, got a scalar; omit the "
                     "axis to repeat its flattened elements");
  ops::Attrs a;
  a.arg = normalize_axis("repeat", *axis, x.rank());
  const std::int64_t n = x.shape()[a.arg];
  if (repeats.size() == 1 && n != 1) repeats.assign(static_cast<std::size_t>(n), repeats[0]);
  if (static_cast<std::int64_t>(repeats.size()) != n)
    throw ValueError("repeat: repeats " + Shape(repeats).to_string() + " must have one entry, or one per "
                     "element along axis " + std::to_string(a.arg) + " of shape " + x.shape().to_string() +
                     " (" + std::to_string(n) + ")");
  a.axes = std::move(repeats);
  return index_map(ops::kRepeat, x, a);
}

Tensor repeat(const Tensor& x, std::int64_t repeats, std::optional<std::int64_t> axis) {
  return repeat(x, std::vector<std::int64_t>{repeats}, axis);
}

}  // namespace batchjac
