// Lowering helpers: broadcasting index maps and step construction.
#include "ops/lowering.hpp"

#include "tensor/sizes.hpp"

#include <batchjac/errors.hpp>

#include <algorithm>
#include <string>

namespace batchjac::ops {

std::vector<std::int64_t> strides_of(const Shape& shape) {
  // A stride past int64 belongs to an empty tensor ([0, 2^62, 4]): nothing is
  // addressed through it, so 0 does.
  std::vector<std::int64_t> s(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) s[i - 1] = detail::checked_mul(s[i], shape[i]).value_or(0);
  return s;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  const std::size_t r = std::max(a.size(), b.size());
  std::vector<std::int64_t> out(r);
  for (std::size_t i = 0; i < r; ++i) {
    const std::int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const std::int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw ValueError(std::string(op) + ": shapes " + a.to_string() + " and " + b.to_string() +
                       " are not broadcastable (axis " + std::to_string(i) + ": " +
                       std::to_string(da) + " vs " + std::to_string(db) + ")");
    }
    out[i] = da == 1 ? db : da;
  }
  return Shape(out);
}

std::vector<std::int64_t> broadcast_map(const Shape& from, const Shape& to) {
  if (from == to) return {};
  const std::size_t r = to.size(), off = r - from.size();
  const auto from_strides = strides_of(from);
  // Stride in `from` of each axis of `to` (0 where broadcast).
  std::vector<std::int64_t> stride(r, 0);
  for (std::size_t i = off; i < r; ++i)
    if (from[i - off] != 1) stride[i] = from_strides[i - off];
  const std::int64_t n = to.num_elements();
  std::vector<std::int64_t> map(static_cast<std::size_t>(n));
  if (n == 0) return map;
  if (r == 0) return {0};
  // Rows along the last axis: an odometer over the others gives the base.
  const std::int64_t row = to[r - 1], step = stride[r - 1];
  std::vector<std::int64_t> idx(r - 1, 0);
  std::int64_t base = 0;
  for (std::int64_t e0 = 0; e0 < n; e0 += row) {
    std::int64_t* dst = map.data() + e0;
    for (std::int64_t j = 0; j < row; ++j) dst[j] = base + j * step;
    for (std::size_t i = r - 1; i-- > 0;) {  // odometer increment
      base += stride[i];
      if (++idx[i] < to[i]) break;
      base -= stride[i] * to[i];
      idx[i] = 0;
    }
  }
  return map;
}

template <class T>
const std::int64_t* Lowering<T>::keep(std::vector<std::int64_t> map) {
  if (map.empty()) return nullptr;
  maps_.push_back(std::move(map));
  return maps_.back().data();
}

template <class T>
void Lowering<T>::elementwise(kernels::ElementwiseFn<T> fn, int out, std::initializer_list<int> in,
                              T scalar) {
  Step<T> s;
  s.kind = Step<T>::Kind::elementwise;
  s.ew_fn = fn;
  s.out = out;
  s.ew.n_elem = shape(out).num_elements();
  s.ew.scalar = scalar;
  for (int v : in) {
    // Equal element counts broadcast as the identity (this also serves
    // reshape's copy, whose shapes differ).
    if (shape(v).num_elements() != s.ew.n_elem)
      s.ew.in[s.n_in].map = keep(broadcast_map(shape(v), shape(out)));
    s.in[s.n_in++] = v;
  }
  steps_.push_back(s);
}

template <class T>
void Lowering<T>::index(kernels::IndexFn<T> fn, int out, int in, std::vector<std::int64_t> map,
                        int op) {
  Step<T> s;
  s.kind = Step<T>::Kind::index;
  s.ix_fn = fn;
  s.out = out;
  s.in[0] = in;
  s.n_in = 1;
  s.ix.n_out = shape(out).num_elements();
  s.ix.n_in = shape(in).num_elements();
  s.ix.op = op;
  s.ix.map = keep(std::move(map));
  steps_.push_back(s);
}

template <class T>
void Lowering<T>::scan(int out, int in, const kernels::ScanArgs<T>& sizes) {
  Step<T> s;
  s.kind = Step<T>::Kind::scan;
  s.sc_fn = table_.scan;
  s.sc = sizes;
  s.out = out;
  s.in[0] = in;
  s.n_in = 1;
  steps_.push_back(s);
}

template <class T>
void Lowering<T>::matrix(int out, int in, std::int64_t batch, std::int64_t n, int op) {
  Step<T> s;
  s.kind = Step<T>::Kind::matrix;
  s.mx_fn = table_.matrix;
  s.mx.batch = batch;
  s.mx.n = n;
  s.mx.op = op;
  s.out = out;
  s.in[0] = in;
  s.n_in = 1;
  steps_.push_back(s);
}

template <class T>
void Lowering<T>::matmul(int out, int a, int b, kernels::MatmulArgs<T> sizes,
                         std::vector<std::int64_t> a_batch, std::vector<std::int64_t> b_batch) {
  Step<T> s;
  s.kind = Step<T>::Kind::matmul;
  s.mm_fn = table_.matmul;
  sizes.a_batch = keep(std::move(a_batch));
  sizes.b_batch = keep(std::move(b_batch));
  s.mm = sizes;
  s.out = out;
  s.in[0] = a;
  s.in[1] = b;
  s.n_in = 2;
  steps_.push_back(s);
}

template <class T>
void execute(std::span<const Step<T>> steps, const Binding<T>& b) {
  auto operand = [&](kernels::Operand<T> o, int v) {
    o.ptr = b.ptr[v];
    o.dir_stride = b.dir_stride[v];
    o.varying = b.varying[v] != 0;
    return o;
  };
  // Index and scan steps: one input, no operand modes.
  auto one_input = [&](auto args, const Step<T>& step, std::int64_t n_dir) {
    args.out = b.ptr[step.out];
    args.out_dir_stride = b.dir_stride[step.out];
    args.in = b.ptr[step.in[0]];
    args.in_dir_stride = b.dir_stride[step.in[0]];
    args.n_dir = n_dir;
    args.lanes = b.lanes;
    return args;
  };
  for (const Step<T>& step : steps) {
    // A step runs once per direction only if it reads a per-direction value.
    std::int64_t n_dir = 1;
    for (int i = 0; i < step.n_in; ++i)
      if (b.dir_stride[step.in[i]] != 0) n_dir = b.n_dir;
    switch (step.kind) {
      case Step<T>::Kind::elementwise: {
        kernels::ElementwiseArgs<T> a = step.ew;
        a.out = b.ptr[step.out];
        a.out_dir_stride = b.dir_stride[step.out];
        a.n_dir = n_dir;
        a.lanes = b.lanes;
        for (int i = 0; i < step.n_in; ++i) a.in[i] = operand(a.in[i], step.in[i]);
        step.ew_fn(a);
        break;
      }
      case Step<T>::Kind::index:
        step.ix_fn(one_input(step.ix, step, n_dir));
        break;
      case Step<T>::Kind::scan:
        step.sc_fn(one_input(step.sc, step, n_dir));
        break;
      case Step<T>::Kind::matrix: {
        kernels::MatrixArgs<T> a = step.mx;
        a.out = b.ptr[step.out];
        a.out_dir_stride = b.dir_stride[step.out];
        a.a = operand(a.a, step.in[0]);
        a.n_dir = n_dir;
        a.lanes = b.lanes;
        step.mx_fn(a);
        break;
      }
      case Step<T>::Kind::matmul: {
        kernels::MatmulArgs<T> a = step.mm;
        a.out = b.ptr[step.out];
        a.out_dir_stride = b.dir_stride[step.out];
        a.a = operand(a.a, step.in[0]);
        a.b = operand(a.b, step.in[1]);
        if (step.n_in == 3) a.a_scale = operand(a.a_scale, step.in[2]);  // engine/plan.cpp fuses it
        a.n_dir = n_dir;
        a.lanes = b.lanes;
        step.mm_fn(a);
        break;
      }
    }
  }
}

template void execute<float>(std::span<const Step<float>>, const Binding<float>&);
template void execute<double>(std::span<const Step<double>>, const Binding<double>&);
template class Lowering<float>;
template class Lowering<double>;

}  // namespace batchjac::ops
