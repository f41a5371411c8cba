// Shape and indexing primitives: shapes, batch axis, JVP, transpose and
// lowering side by side. Public functions are in ops/shape_api.cpp.
#include "ops/shape_ops.hpp"

#include "autodiff/contexts.hpp"
#include "ops/batching.hpp"
#include "ops/elementwise.hpp"
#include "ops/elementwise_math.hpp"
#include "ops/lowering.hpp"
#include "tensor/sizes.hpp"

#include <batchjac/errors.hpp>

#include <numeric>
#include <string>

namespace batchjac::ops {

namespace {
using math::kIdentity;

std::vector<std::int64_t> tail(const std::vector<std::int64_t>& v, std::size_t n = 1) {
  return {v.begin() + static_cast<std::ptrdiff_t>(n), v.end()};
}
std::string list(const std::vector<std::int64_t>& v) { return Shape(v).to_string(); }

Attrs slice_attrs(std::vector<std::int64_t> begin, const Shape& size) {
  Attrs a;
  a.op = kSlice;
  a.axes = std::move(begin);
  a.shape = size;
  return a;
}
Attrs pad_attrs(std::vector<std::int64_t> pads) {
  Attrs a;
  a.op = kPad;
  a.axes = std::move(pads);
  return a;
}
}  // namespace

// ---- reshape --------------------------------------------------------------------

std::string ReshapeOp::name(const Attrs&) { return "reshape"; }

ValueInfo ReshapeOp::infer(const Node& n, std::span<const ValueInfo> in) {
  if (n.attrs.shape.num_elements() != in[0].shape.num_elements())
    fail(n, "cannot reshape a tensor of shape " + in[0].shape.to_string() + " (" +
                std::to_string(in[0].shape.num_elements()) + " elements) to " +
                n.attrs.shape.to_string());
  return {n.attrs.shape, in[0].dtype};
}

void ReshapeOp::batch(const Node& n, BatchQuery& q) {
  const Shape& to = n.attrs.shape;
  if (to.size() == 0 || to[0] != q.batch)
    fail(n, "reshaping " + q.in_shapes[0].to_string() + " to " + to.to_string() +
                " does not keep the batch axis (" + std::to_string(q.batch) +
                " examples) first: each result example would mix several source examples");
  single_batch(n, q);
  q.attrs.shape = drop_batch_axis(to);
}

int ReshapeOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  return t[0] < 0 ? -1 : c.linear(Prim::reshape, n.attrs, {t[0]});  // linear
}

void ReshapeOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  c.accumulate(n.inputs[0], c.emit(Prim::reshape, shape_attrs(c.info(n.inputs[0]).shape), {ct}));
}

template <class T>
void ReshapeOp::lower(Lowering<T>& lo, const Node& n) {
  // Row-major order is unchanged: a copy.
  lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});
}

// ---- broadcast_to ---------------------------------------------------------------

std::string BroadcastToOp::name(const Attrs&) { return "broadcast_to"; }

ValueInfo BroadcastToOp::infer(const Node& n, std::span<const ValueInfo> in) {
  Shape out = broadcast_shapes(in[0].shape, n.attrs.shape, "broadcast_to");
  if (out != n.attrs.shape)
    fail(n, "cannot broadcast shape " + in[0].shape.to_string() + " to " +
                n.attrs.shape.to_string());
  return {out, in[0].dtype};
}

void BroadcastToOp::batch(const Node& n, BatchQuery& q) {
  const Shape& to = n.attrs.shape;
  if (q.in_shapes[0].size() != to.size())
    fail(n, "broadcasting " + q.in_shapes[0].to_string() + " to " + to.to_string() +
                " moves the batch axis: each result example would mix several source examples");
  single_batch(n, q);
  q.attrs.shape = drop_batch_axis(to);
}

int BroadcastToOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  return t[0] < 0 ? -1 : c.linear(Prim::broadcast_to, n.attrs, {t[0]});  // linear
}

void BroadcastToOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x_bar += sum of y_bar over the broadcast axes
  c.accumulate(n.inputs[0], unbroadcast(c, ct, c.info(n.inputs[0]).shape));
}

template <class T>
void BroadcastToOp::lower(Lowering<T>& lo, const Node& n) {
  auto map = broadcast_map(lo.shape(n.inputs[0]), lo.shape(n.output));
  if (map.empty()) lo.elementwise(lo.table().unary[kIdentity], n.output, {n.inputs[0]});
  else lo.index(lo.table().gather, n.output, n.inputs[0], std::move(map));
}

// ---- index maps -----------------------------------------------------------------

IndexMapping index_mapping(const Node& n, const Shape& in, bool with_map) {
  const Attrs& a = n.attrs;
  const std::size_t r = in.size();
  const auto& v = a.axes;
  std::vector<std::int64_t> out(in.begin(), in.end());
  auto need = [&](std::size_t len, const char* what) {
    if (v.size() != len)
      fail(n, std::string("expected ") + std::to_string(len) + " " + what + " for a tensor of shape " +
                  in.to_string() + ", got " + list(v));
  };
  switch (a.op) {
    case kTranspose: {
      need(r, "perm entries");
      std::vector<char> seen(r, 0);
      for (std::size_t i = 0; i < r; ++i) {
        if (v[i] < 0 || v[i] >= static_cast<std::int64_t>(r) || seen[v[i]])
          fail(n, "perm " + list(v) + " is not a permutation of the axes of " + in.to_string());
        seen[v[i]] = 1;
        out[i] = in[v[i]];
      }
      break;
    }
    case kSlice:
      need(r, "begin entries");
      for (std::size_t i = 0; i < r; ++i) {
        if (v[i] < 0 || a.shape[i] < 0 || v[i] > in[i] || a.shape[i] > in[i] - v[i])
          fail(n, "begin " + list(v) + " and size " + a.shape.to_string() +
                      " are out of bounds for shape " + in.to_string());
        out[i] = a.shape[i];
      }
      break;
    case kGather: {
      const std::int64_t axis = a.arg;
      if (axis < 0 || axis >= static_cast<std::int64_t>(r))
        fail(n, "axis " + std::to_string(axis) + " is out of range for shape " + in.to_string());
      for (auto i : v)
        if (i < 0 || i >= in[axis])
          fail(n, "index " + std::to_string(i) + " is out of range [0, " + std::to_string(in[axis]) +
                      ") along axis " + std::to_string(axis) + " of shape " + in.to_string());
      out[axis] = static_cast<std::int64_t>(v.size());
      break;
    }
    case kRoll:
      need(r, "shifts");
      break;
    case kTile:
      need(r, "multiples");
      for (std::size_t i = 0; i < r; ++i) {
        if (v[i] < 0) fail(n, "multiples must be >= 0, got " + list(v));
        const auto size = detail::checked_mul(in[i], v[i]);
        if (!size)
          fail(n, "multiples " + list(v) + " make axis " + std::to_string(i) + " of shape " +
                      in.to_string() + " " + std::to_string(in[i]) + " * " + std::to_string(v[i]) +
                      " elements long, more than int64 can count");
        out[i] = *size;
      }
      break;
    case kPad:
      need(2 * r, "paddings (before and after per axis)");
      for (std::size_t i = 0; i < r; ++i) {
        if (v[2 * i] < 0 || v[2 * i + 1] < 0) fail(n, "paddings must be >= 0, got " + list(v));
        const auto before = detail::checked_add(in[i], v[2 * i]);
        const auto size = before ? detail::checked_add(*before, v[2 * i + 1]) : std::nullopt;
        if (!size)
          fail(n, "paddings " + list(v) + " make axis " + std::to_string(i) + " of shape " +
                      in.to_string() + " longer than int64 can count");
        out[i] = *size;
      }
      break;
    case kRepeat: {
      const std::int64_t axis = a.arg;
      if (axis < 0 || axis >= static_cast<std::int64_t>(r))
        fail(n, "axis " + std::to_string(axis) + " is out of range for shape " + in.to_string());
      if (static_cast<std::int64_t>(v.size()) != in[axis])
        fail(n, "expected " + std::to_string(in[axis]) + " repeats (one per element along axis " +
                    std::to_string(axis) + " of shape " + in.to_string() + "), got " + list(v));
      std::int64_t total = 0;
      for (auto k : v) {
        if (k < 0) fail(n, "repeats must be >= 0, got " + list(v));
        const auto sum = detail::checked_add(total, k);
        if (!sum)
          fail(n, "repeats " + list(v) + " make axis " + std::to_string(axis) + " of shape " +
                      in.to_string() + " longer than int64 can count");
        total = *sum;
      }
      out[axis] = total;
      break;
    }
    default:
      fail(n, "unknown index map");
  }
  IndexMapping m{Shape(out), {}};
  if (!with_map) return m;
  const std::int64_t total = m.out.num_elements();
  m.map.resize(static_cast<std::size_t>(total));
  if (total == 0) return m;
  // Per axis i and output index j: what j adds to the source offset (-1:
  // padding). An element's source is the sum over its axes.
  const auto in_strides = strides_of(in);
  // repeat: the source index of each result index along its axis.
  std::vector<std::int64_t> repeated;
  if (a.op == kRepeat)
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(v.size()); ++j)
      repeated.insert(repeated.end(), static_cast<std::size_t>(v[j]), j);
  std::vector<std::vector<std::int64_t>> add(r);
  for (std::size_t i = 0; i < r; ++i) {
    add[i].resize(static_cast<std::size_t>(out[i]));
    for (std::int64_t j0 = 0; j0 < out[i]; ++j0) {
      std::int64_t j = j0, stride = in_strides[i];
      switch (a.op) {
        case kTranspose: stride = in_strides[v[i]]; break;
        case kSlice: j += v[i]; break;
        case kGather: if (static_cast<std::int64_t>(i) == a.arg) j = v[j0]; break;
        case kRoll: {  // j - shift mod in[i], without overflow
          const std::int64_t s = detail::floor_mod(v[i], in[i]);
          j = j >= s ? j - s : j + (in[i] - s);
          break;
        }
        case kTile: j = j % in[i]; break;
        case kPad: j -= v[2 * i]; break;
        case kRepeat: if (static_cast<std::int64_t>(i) == a.arg) j = repeated[j0]; break;
      }
      add[i][j0] = (j < 0 || (a.op == kPad && j >= in[i])) ? -1 : j * stride;
    }
  }
  if (r == 0) {
    m.map[0] = 0;
    return m;
  }
  // Rows along the last axis: an odometer over the others gives the base.
  const std::int64_t row = out[r - 1];
  const std::vector<std::int64_t>& last = add[r - 1];
  std::vector<std::int64_t> idx(r - 1, 0);
  for (std::int64_t e0 = 0; e0 < total; e0 += row) {
    std::int64_t base = 0;
    for (std::size_t i = 0; i + 1 < r && base >= 0; ++i)
      base = add[i][idx[i]] < 0 ? -1 : base + add[i][idx[i]];
    std::int64_t* dst = m.map.data() + e0;
    for (std::int64_t j = 0; j < row; ++j) dst[j] = base < 0 || last[j] < 0 ? -1 : base + last[j];
    for (std::size_t i = r - 1; i-- > 0;) {  // odometer increment
      if (++idx[i] < out[i]) break;
      idx[i] = 0;
    }
  }
  return m;
}

std::string IndexMapOp::name(const Attrs& a) {
  switch (a.op) {
    case kTranspose: return "transpose";
    case kSlice: return "slice";
    case kGather: return "gather";
    case kRoll: return "roll";
    case kTile: return "tile";
    case kPad: return "pad";
    case kRepeat: return "repeat";
  }
  return "index_map";
}

ValueInfo IndexMapOp::infer(const Node& n, std::span<const ValueInfo> in) {
  return {index_mapping(n, in[0].shape, false).out, in[0].dtype};
}

void IndexMapOp::batch(const Node& n, BatchQuery& q) {
  const Attrs& a = n.attrs;
  const Shape& in = q.in_shapes[0];
  const std::string mixes = ": each result example would mix several source examples";
  switch (a.op) {
    case kTranspose:
      if (a.axes.empty() || a.axes[0] != 0)
        fail(n, "perm " + list(a.axes) + " moves the batch axis 0 of " + in.to_string() + mixes);
      q.attrs.axes = tail(a.axes);
      for (auto& p : q.attrs.axes) --p;
      break;
    case kSlice:
      if (a.axes.empty() || a.axes[0] != 0 || a.shape[0] != in[0])
        fail(n, "slices axis 0, the batch axis, of " + in.to_string() + mixes);
      q.attrs.axes = tail(a.axes);
      q.attrs.shape = drop_batch_axis(a.shape);
      break;
    case kGather:
      if (a.arg == 0) fail(n, "gathers along axis 0, the batch axis, of " + in.to_string() + mixes);
      q.attrs.arg = a.arg - 1;
      break;
    case kRoll:
      if (!a.axes.empty() && in[0] != 0 && a.axes[0] % in[0] != 0)
        fail(n, "rolls axis 0, the batch axis, of " + in.to_string() + mixes);
      q.attrs.axes = tail(a.axes);
      break;
    case kTile:
      if (!a.axes.empty() && a.axes[0] != 1)
        fail(n, "tiles axis 0, the batch axis, of " + in.to_string() + mixes);
      q.attrs.axes = tail(a.axes);
      break;
    case kPad:
      if (a.axes.size() >= 2 && (a.axes[0] != 0 || a.axes[1] != 0))
        fail(n, "pads axis 0, the batch axis, of " + in.to_string() + mixes);
      q.attrs.axes = tail(a.axes, 2);
      break;
    case kRepeat:
      if (a.arg > 0) {
        q.attrs.arg = a.arg - 1;
        break;
      }
      // Along axis 0 only repeats of 1 keep each example where it was: per
      // example that is the identity (a transpose that moves nothing).
      for (auto k : a.axes)
        if (k != 1) fail(n, "repeats axis 0, the batch axis, of " + in.to_string() + mixes);
      q.attrs.op = kTranspose;
      q.attrs.arg = 0;
      q.attrs.axes.resize(in.size() - 1);
      std::iota(q.attrs.axes.begin(), q.attrs.axes.end(), std::int64_t{0});
      break;
  }
  single_batch(n, q);
}

int IndexMapOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  return t[0] < 0 ? -1 : c.linear(Prim::index_map, n.attrs, {t[0]});  // linear
}

void IndexMapOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x_bar[map(e)] += y_bar[e]
  Attrs a = n.attrs;
  a.source_shape = c.info(n.inputs[0]).shape;
  c.accumulate(n.inputs[0], c.emit(Prim::index_scatter, a, {ct}));
}

template <class T>
void IndexMapOp::lower(Lowering<T>& lo, const Node& n) {
  lo.index(lo.table().gather, n.output, n.inputs[0], index_mapping(n, lo.shape(n.inputs[0])).map);
}

std::string IndexScatterOp::name(const Attrs& a) { return IndexMapOp::name(a) + "_transpose"; }

ValueInfo IndexScatterOp::infer(const Node& n, std::span<const ValueInfo> in) {
  if (index_mapping(n, n.attrs.source_shape, false).out != in[0].shape)
    fail(n, "expects a cotangent of the mapped shape, got " + in[0].shape.to_string());
  return {n.attrs.source_shape, in[0].dtype};
}

// A gradient derived as ops (nested tapes, batch_hessian) holds scatters and
// is differentiated per example again: the scatter of the per-example map,
// which keeps the examples apart exactly when the map does. The map's rule
// is asked about the shape it maps from, the one this op scatters into.
void IndexScatterOp::batch(const Node& n, BatchQuery& q) {
  const Shape source = n.attrs.source_shape;
  const std::span<const Shape> mapped = q.in_shapes;
  q.in_shapes = std::span<const Shape>(&source, 1);
  IndexMapOp::batch(n, q);
  q.in_shapes = mapped;
  q.attrs.source_shape = drop_batch_axis(source);
  single_batch(n, q);
}

int IndexScatterOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  return t[0] < 0 ? -1 : c.linear(Prim::index_scatter, n.attrs, {t[0]});  // linear
}

void IndexScatterOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  c.accumulate(n.inputs[0], c.emit(Prim::index_map, n.attrs, {ct}));
}

template <class T>
void IndexScatterOp::lower(Lowering<T>& lo, const Node& n) {
  lo.index(lo.table().scatter_add, n.output, n.inputs[0],
           index_mapping(n, n.attrs.source_shape).map);
}

// ---- concat ---------------------------------------------------------------------

std::string ConcatOp::name(const Attrs&) { return "concat"; }

ValueInfo ConcatOp::infer(const Node& n, std::span<const ValueInfo> in) {
  if (in.empty()) fail(n, "needs at least one tensor");
  const Shape& first = in[0].shape;
  const std::int64_t axis = n.attrs.arg;
  if (axis < 0 || axis >= static_cast<std::int64_t>(first.size()))
    fail(n, "axis " + std::to_string(axis) + " is out of range for shape " + first.to_string());
  std::vector<std::int64_t> out(first.begin(), first.end());
  out[axis] = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const Shape& s = in[i].shape;
    bool ok = s.size() == first.size() && in[i].dtype == in[0].dtype;
    for (std::size_t d = 0; ok && d < s.size(); ++d)
      ok = static_cast<std::int64_t>(d) == axis || s[d] == first[d];
    if (!ok)
      fail(n, "input " + std::to_string(i) + " (" + std::string(dtype_name(in[i].dtype)) + " " +
                  s.to_string() + ") does not match input 0 (" +
                  std::string(dtype_name(in[0].dtype)) + " " + first.to_string() +
                  ") outside axis " + std::to_string(axis));
    const auto joined = detail::checked_add(out[axis], s[axis]);
    if (!joined)
      fail(n, "the inputs' lengths along axis " + std::to_string(axis) + " add up past int64 (input " +
                  std::to_string(i) + " is " + s.to_string() + ")");
    out[axis] = *joined;
  }
  return {Shape(out), in[0].dtype};
}

void ConcatOp::batch(const Node& n, BatchQuery& q) {
  if (n.attrs.arg == 0)
    fail(n, "joins along axis 0, the batch axis: the result's examples would not be the source's");
  elementwise_batch(n, q);
  // Concat moves elements, so every input lives in lanes: a constant (of the
  // same rank, its axis 0 the batch) is per-example even when b = 1.
  for (std::size_t i = 0; i < q.in.size(); ++i)
    if (q.in[i] == Batching::shared) q.in[i] = Batching::batched;
  q.attrs.arg = n.attrs.arg - 1;
}

int ConcatOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // Linear. With every tangent: concat(x_dot...). Otherwise each tangent,
  // padded with zeros to the result, summed.
  bool all = true, any = false;
  for (int x : t) {
    all = all && x >= 0;
    any = any || x >= 0;
  }
  if (!any) return -1;
  if (all) return c.linear(Prim::concat, n.attrs, std::vector<int>(t.begin(), t.end()));
  const std::int64_t axis = n.attrs.arg;
  const std::int64_t total = c.info(n.output).shape[axis];
  std::int64_t offset = 0;
  int sum = -1;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const Shape& s = c.info(n.inputs[i]).shape;
    if (t[i] >= 0) {
      std::vector<std::int64_t> pads(2 * s.size(), 0);
      pads[2 * axis] = offset;
      pads[2 * axis + 1] = total - offset - s[axis];
      const int part = c.linear(Prim::index_map, pad_attrs(pads), {t[i]});
      Attrs add;  // math::Add
      sum = sum < 0 ? part : c.linear(Prim::binary, add, {sum, part});
    }
    offset += s[axis];
  }
  return sum;
}

void ConcatOp::transpose(autodiff::TransposeContext& c, const Node& n, int ct) {
  // x_i_bar += the slice of y_bar that x_i filled
  const std::int64_t axis = n.attrs.arg;
  std::int64_t offset = 0;
  for (int v : n.inputs) {
    const Shape& s = c.info(v).shape;
    if (c.is_linear(v)) {
      std::vector<std::int64_t> begin(s.size(), 0);
      begin[axis] = offset;
      c.accumulate(v, c.emit(Prim::index_map, slice_attrs(begin, s), {ct}));
    }
    offset += s[axis];
  }
}

template <class T>
void ConcatOp::lower(Lowering<T>& lo, const Node& n) {
  const std::int64_t axis = n.attrs.arg;
  const Shape& out = lo.shape(n.output);
  const auto out_strides = strides_of(out);
  std::int64_t offset = 0;
  for (int v : n.inputs) {
    const Shape& s = lo.shape(v);
    // Input element e lands at the same coordinates, shifted along axis.
    std::vector<std::int64_t> map(static_cast<std::size_t>(s.num_elements()));
    std::vector<std::int64_t> idx(s.size(), 0);
    for (std::int64_t e = 0; e < s.num_elements(); ++e) {
      std::int64_t dst = 0;
      for (std::size_t i = 0; i < s.size(); ++i)
        dst += (idx[i] + (static_cast<std::int64_t>(i) == axis ? offset : 0)) * out_strides[i];
      map[e] = dst;
      for (std::size_t i = s.size(); i-- > 0;) {
        if (++idx[i] < s[i]) break;
        idx[i] = 0;
      }
    }
    lo.index(lo.table().scatter, n.output, v, std::move(map));
    offset += s[axis];
  }
}

#define BATCHJAC_INSTANTIATE_LOWER(Op)                    \
  template void Op::lower(Lowering<float>&, const Node&); \
  template void Op::lower(Lowering<double>&, const Node&);
BATCHJAC_INSTANTIATE_LOWER(ReshapeOp)
BATCHJAC_INSTANTIATE_LOWER(BroadcastToOp)
BATCHJAC_INSTANTIATE_LOWER(IndexMapOp)
BATCHJAC_INSTANTIATE_LOWER(IndexScatterOp)
BATCHJAC_INSTANTIATE_LOWER(ConcatOp)
#undef BATCHJAC_INSTANTIATE_LOWER

}  // namespace batchjac::ops
