// Small per-example matrices: inverse and determinant (shapes, batch axis,
// JVP and lowering side by side), then the public bj::linalg functions
// (solve is a composition) and eye.
#include "autodiff/contexts.hpp"
#include "ops/batching.hpp"
#include "ops/eager.hpp"
#include "ops/elementwise_math.hpp"
#include "ops/linalg.hpp"
#include "ops/lowering.hpp"
#include "tensor/sizes.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace batchjac::ops {

namespace {
namespace m = math;

// n of a [..., n, n] input; ValueError naming the op otherwise.
std::int64_t square_size(std::string_view op, const ValueInfo& in) {
  require_float(op, in, 0);
  const Shape& s = in.shape;
  if (s.size() < 2 || s[s.size() - 1] != s[s.size() - 2])
    throw ValueError(std::string(op) + ": expected square matrices in the last two axes, [..., n, n], got shape " +
                     s.to_string());
  return s[s.size() - 1];
}

// The leading (batch) dims' product.
std::int64_t matrices(const Shape& s) {
  std::int64_t b = 1;
  for (std::size_t i = 0; i + 2 < s.size(); ++i) b *= s[i];
  return b;
}

void matrix_batch(const Node& n, BatchQuery& q) {
  if (q.in_shapes[0].size() < 3)
    fail(n, "the input of shape " + q.in_shapes[0].to_string() +
                " depends on the source and its batch axis is a matrix axis: each result example "
                "would mix several source examples (give each example its own [n, n] matrix: [b, n, n])");
  single_batch(n, q);
}

// Eager evaluation of `batch` matrices of a (batch-first) a vector of W at
// a time: W matrices into lanes, the SIMD table's kernel, back out. A last
// partial vector repeats its last matrix.
template <class T>
Tensor matrix_eager(const Tensor& a, const ValueInfo& out, int op) {
  const kernels::KernelTable<T>& table = kernels::simd_kernels<T>();
  const Shape& s = a.shape();
  const std::int64_t n = s[s.size() - 1], nn = n * n, batch = matrices(s);
  const std::int64_t per = op == kernels::kInverse ? nn : 1, w = table.width;
  auto impl = detail::new_tensor(out.shape, out.dtype);
  const T* src = a.impl().as<T>();
  T* dst = impl->as_mutable<T>();
  std::vector<T> in(static_cast<std::size_t>(nn * w)), res(static_cast<std::size_t>(per * w));
  kernels::MatrixArgs<T> args;
  args.a.ptr = in.data();
  args.out = res.data();
  args.n = n;
  args.op = op;
  args.lanes = w;
  for (std::int64_t b0 = 0; b0 < batch; b0 += w) {
    const std::int64_t count = std::min(w, batch - b0);
    for (std::int64_t l = 0; l < w; ++l) {
      const T* m = src + (b0 + std::min(l, count - 1)) * nn;
      for (std::int64_t e = 0; e < nn; ++e) in[static_cast<std::size_t>(e * w + l)] = m[e];
    }
    table.matrix(args);
    for (std::int64_t l = 0; l < count; ++l)
      for (std::int64_t e = 0; e < per; ++e) dst[(b0 + l) * per + e] = res[static_cast<std::size_t>(e * w + l)];
  }
  return detail::make_tensor(std::move(impl));
}

std::optional<Tensor> eager_matrices(const std::vector<Tensor>& in, const ValueInfo& out, int op) {
  const Shape& s = in[0].shape();
  if (matrices(s) < 2 || s.num_elements() == 0) return std::nullopt;  // the one-lane lowering
  return in[0].dtype() == DType::float32 ? matrix_eager<float>(in[0], out, op)
                                         : matrix_eager<double>(in[0], out, op);
}

// The transpose of the last two axes of v (rank r >= 2).
int transpose_last(autodiff::JvpContext& c, int v) {
  const auto r = static_cast<std::int64_t>(c.info(v).shape.size());
  Attrs perm;
  perm.op = kTranspose;
  for (std::int64_t i = 0; i < r - 2; ++i) perm.axes.push_back(i);
  perm.axes.push_back(r - 1);
  perm.axes.push_back(r - 2);
  return c.primal(Prim::index_map, perm, {v});
}
}  // namespace

// ---- inverse --------------------------------------------------------------------

std::string MatrixInverseOp::name(const Attrs&) { return "linalg.inv"; }

ValueInfo MatrixInverseOp::infer(const Node& n, std::span<const ValueInfo> in) {
  square_size(op_name(n), in[0]);
  return in[0];
}

void MatrixInverseOp::batch(const Node& n, BatchQuery& q) { matrix_batch(n, q); }

int MatrixInverseOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // Y = A^-1;  Y_dot = -Y A_dot Y (from A Y = I)
  if (t[0] < 0) return -1;
  const int y = n.output;
  const int ya = c.linear(Prim::matmul, Attrs{}, {y, t[0]});
  const int yay = c.linear(Prim::matmul, Attrs{}, {ya, y});
  return c.linear(Prim::unary, op_attrs(m::kNegative), {yay});
}

void MatrixInverseOp::transpose(autodiff::TransposeContext&, const Node& n, int) {
  fail(n, "is not linear: its JVP is made of matmuls, which transpose");
}

std::optional<Tensor> MatrixInverseOp::eager(const Node&, const std::vector<Tensor>& in, const ValueInfo& out) {
  return eager_matrices(in, out, kernels::kInverse);
}

template <class T>
void MatrixInverseOp::lower(Lowering<T>& lo, const Node& n) {
  const Shape& s = lo.shape(n.inputs[0]);
  if (s.num_elements() == 0) return;
  lo.matrix(n.output, n.inputs[0], matrices(s), s[s.size() - 1], kernels::kInverse);
}

// ---- determinant ----------------------------------------------------------------

std::string MatrixDeterminantOp::name(const Attrs&) { return "linalg.det"; }

ValueInfo MatrixDeterminantOp::infer(const Node& n, std::span<const ValueInfo> in) {
  square_size(op_name(n), in[0]);
  const Shape& s = in[0].shape;
  return {Shape(std::vector<std::int64_t>(s.begin(), s.end() - 2)), in[0].dtype};
}

void MatrixDeterminantOp::batch(const Node& n, BatchQuery& q) { matrix_batch(n, q); }

int MatrixDeterminantOp::jvp(autodiff::JvpContext& c, const Node& n, std::span<const int> t) {
  // d = det(A);  d_dot = d tr(A^-1 A_dot) = sum_ij (d A^-T)_ij A_dot_ij (Jacobi's formula)
  if (t[0] < 0) return -1;
  const int a = n.inputs[0];
  const Shape s = c.info(a).shape;
  const auto r = static_cast<std::int64_t>(s.size());
  std::vector<std::int64_t> kept(s.begin(), s.end() - 2);
  kept.push_back(1);
  kept.push_back(1);
  const int d = c.primal(Prim::reshape, shape_attrs(Shape(kept)), {n.output});
  const int inv_t = transpose_last(c, c.primal(Prim::matrix_inverse, Attrs{}, {a}));
  const int coef = c.primal(Prim::binary, op_attrs(m::kMultiply), {inv_t, d});
  const int prod = c.linear(Prim::binary, op_attrs(m::kMultiply), {t[0], coef});
  Attrs sum;
  sum.axes = {r - 2, r - 1};
  return c.linear(Prim::reduce_sum, sum, {prod});
}

void MatrixDeterminantOp::transpose(autodiff::TransposeContext&, const Node& n, int) {
  fail(n, "is not linear: its JVP is a product and a sum, which transpose");
}

std::optional<Tensor> MatrixDeterminantOp::eager(const Node&, const std::vector<Tensor>& in,
                                                 const ValueInfo& out) {
  return eager_matrices(in, out, kernels::kDeterminant);
}

template <class T>
void MatrixDeterminantOp::lower(Lowering<T>& lo, const Node& n) {
  const Shape& s = lo.shape(n.inputs[0]);
  if (lo.shape(n.output).num_elements() == 0) return;
  lo.matrix(n.output, n.inputs[0], matrices(s), s[s.size() - 1], kernels::kDeterminant);
}

template void MatrixInverseOp::lower(Lowering<float>&, const Node&);
template void MatrixInverseOp::lower(Lowering<double>&, const Node&);
template void MatrixDeterminantOp::lower(Lowering<float>&, const Node&);
template void MatrixDeterminantOp::lower(Lowering<double>&, const Node&);

}  // namespace batchjac::ops

namespace batchjac {

namespace linalg {

Tensor inv(const Tensor& a) { return ops::apply(ops::Prim::matrix_inverse, {}, {a}); }

Tensor det(const Tensor& a) { return ops::apply(ops::Prim::matrix_determinant, {}, {a}); }

Tensor solve(const Tensor& a, const Tensor& b, bool adjoint) {
  const Shape &sa = a.shape(), &sb = b.shape();
  if (sa.size() < 2 || sa[sa.size() - 1] != sa[sa.size() - 2])
    throw ValueError("linalg.solve: expected square matrices [..., n, n], got shape " + sa.to_string());
  if (sb.size() < 2 || sb[sb.size() - 2] != sa[sa.size() - 1])
    throw ValueError("linalg.solve: the right-hand side must be [..., n, k] with n = " +
                     std::to_string(sa[sa.size() - 1]) + " (the matrices' size), got shape " +
                     sb.to_string());
  // X = A^-1 B (adjoint: A^-T B); leading dims broadcast as in matmul.
  return matmul(inv(a), b, adjoint, false);
}

}  // namespace linalg

Tensor eye(std::int64_t n, DType dtype) {
  if (n < 0) throw ValueError("eye: the size must be >= 0, got " + std::to_string(n));
  if (!is_floating(dtype)) throw ValueError("eye: dtype must be float32 or float64");
  if (auto why = detail::tensor_size_error(Shape{n, n}, dtype_size(dtype))) throw ValueError("eye: " + *why);
  std::vector<double> v(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i * n + i)] = 1.0;
  return constant(v, Shape{n, n}, dtype);
}

}  // namespace batchjac
