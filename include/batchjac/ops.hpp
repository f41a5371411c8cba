// The differentiable operations, with TensorFlow's names and argument order.
//
// Every op takes and returns Tensors, evaluates eagerly, and is recorded on
// each live GradientTape of the calling thread that tracks one of its inputs.
// Binary ops broadcast like NumPy; a C++ scalar operand takes the tensor's
// dtype. Mixing float32 and float64, or giving a boolean where a number is
// needed (or a number where a boolean is), raises ValueError naming the op.
// Accuracy: elementwise math is that of the C++ standard library eagerly and
// of xsimd (a few ulp) inside Jacobian programs; derivatives are exact
// formulas, never differences. Special values are the same in both: a NaN
// input gives NaN through maximum, minimum, relu and the reductions as in
// TF, and pow's zeros, infinities and negative bases are std::pow's. Inside
// Jacobian programs, results of exp, pow and the like below the smallest
// normal number may be 0.
//
// Ops that read or write along axis 0 across examples (a reduction over axis
// 0, a transpose or reshape that moves or merges axis 0, a gather, roll,
// slice or concat along axis 0, ...) evaluate eagerly like TF, but
// batch_jacobian through them raises ValueError naming the op. Applying them
// to constants before watching (gathering per-example inputs from a shared
// table) is the normal pattern and works.
#pragma once

#include <batchjac/tensor.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace batchjac {

using Axes = std::vector<std::int64_t>;

// ---- elementwise, unary: y = f(x), same shape and dtype --------------------------
// Derivatives at kinks follow TF: abs'(0) = 0, relu'(0) = 0, sign' = 0.
// Domains: outside them the result is NaN or inf as in C++, e.g. log(0) = -inf;
// the derivative there is whatever the formula gives (sqrt'(0) = inf).
Tensor negative(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);                // -1, 0 or 1
Tensor square(const Tensor& x);
Tensor sqrt(const Tensor& x);                // x >= 0
Tensor rsqrt(const Tensor& x);               // 1 / sqrt(x), x > 0
Tensor reciprocal(const Tensor& x);          // 1 / x
Tensor exp(const Tensor& x);
Tensor expm1(const Tensor& x);               // exp(x) - 1, accurate near 0
Tensor log(const Tensor& x);                 // x > 0
Tensor log1p(const Tensor& x);               // log(1 + x), x > -1
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tan(const Tensor& x);
Tensor asin(const Tensor& x);                // |x| <= 1 (derivative infinite at +-1)
Tensor acos(const Tensor& x);                // |x| <= 1
Tensor atan(const Tensor& x);
Tensor sinh(const Tensor& x);
Tensor cosh(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor asinh(const Tensor& x);
Tensor acosh(const Tensor& x);               // x >= 1
Tensor atanh(const Tensor& x);               // |x| < 1
Tensor sigmoid(const Tensor& x);             // 1 / (1 + exp(-x))
Tensor softplus(const Tensor& x);            // log(1 + exp(x)), without overflow
Tensor relu(const Tensor& x);                // max(x, 0); NaN for NaN (TF)
Tensor erf(const Tensor& x);

// ---- elementwise, binary (NumPy broadcasting) -----------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor subtract(const Tensor& a, const Tensor& b);
Tensor multiply(const Tensor& a, const Tensor& b);
Tensor divide(const Tensor& a, const Tensor& b);
// a ^ b. d/da = b a^(b-1); d/db = a^b log(a), taken as 0 where a <= 0 (TF).
// For a constant exponent, d/dx = p x^(p-1); p = 0 gives 0 everywhere.
// Values and both derivatives follow std::pow (C99 Annex F) eagerly and in
// Jacobians: pow(+-0, p < 0) = +-inf for odd integer p, else inf (so at
// x = 0 d/dx pow(x, 0.5) = inf and d/dx pow(x, -1) = -inf, as TF),
// pow(x, 0) = 1 and pow(1, y) = 1 even for NaN, and a negative base needs
// an integer exponent (else NaN).
// Inside Jacobian programs pow is exp(b log|a|): a relative error of about
// |b log a| ulp (1e-13 at a = 1e-300).
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& x, double p);
Tensor pow(double a, const Tensor& b);
// At ties (a == b) the derivative goes to a, as TF. A NaN operand, on either
// side, gives NaN (TF); both derivatives are then 0.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor atan2(const Tensor& y, const Tensor& x);
Tensor squared_difference(const Tensor& a, const Tensor& b);  // (a - b)^2

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---- comparisons and selection: boolean results, no derivative -------------------
// Inputs of one dtype; the result is a bool tensor of the broadcast shape.
// With a NaN operand only not_equal is true (IEEE, as TF).
Tensor less(const Tensor& a, const Tensor& b);
Tensor less_equal(const Tensor& a, const Tensor& b);
Tensor greater(const Tensor& a, const Tensor& b);
Tensor greater_equal(const Tensor& a, const Tensor& b);
Tensor equal(const Tensor& a, const Tensor& b);
Tensor not_equal(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);
// bool inputs only.
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);
// condition ? a : b per element (all three broadcast). Differentiable in a and
// b: each example's lane keeps its own branch, the other gets zero. This is how
// per-example branches are written: both sides are evaluated.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);

// ---- reductions over axes ---------------------------------------------------------
// `axes`: negative counts from the end; a repeated or out-of-range axis is a
// ValueError; an empty list reduces nothing (TF). keepdims keeps reduced axes
// as 1. The one-argument forms reduce every axis.
Tensor reduce_sum(const Tensor& x, Axes axes, bool keepdims = false);
Tensor reduce_sum(const Tensor& x);
Tensor reduce_mean(const Tensor& x, Axes axes, bool keepdims = false);
Tensor reduce_mean(const Tensor& x);
// The derivative is the product of the other elements (exact with zeros).
Tensor reduce_prod(const Tensor& x, Axes axes, bool keepdims = false);
Tensor reduce_prod(const Tensor& x);
// The derivative is split equally between tied maxima (minima), as TF. A
// NaN among the reduced elements gives NaN, and NaN derivatives for all of
// them (0 / 0 weights, as TF).
Tensor reduce_max(const Tensor& x, Axes axes, bool keepdims = false);
Tensor reduce_max(const Tensor& x);
Tensor reduce_min(const Tensor& x, Axes axes, bool keepdims = false);
Tensor reduce_min(const Tensor& x);
// log(sum(exp(x))), computed stably by shifting by the maximum, or by 0
// where it is not finite (TF): [inf, 1] gives inf, [-inf, -inf] -inf.
Tensor reduce_logsumexp(const Tensor& x, Axes axes, bool keepdims = false);
Tensor reduce_logsumexp(const Tensor& x);
Tensor softmax(const Tensor& logits, std::int64_t axis = -1);
Tensor log_softmax(const Tensor& logits, std::int64_t axis = -1);
// Running sum along axis; exclusive starts from 0, reverse runs from the end.
Tensor cumsum(const Tensor& x, std::int64_t axis = 0, bool exclusive = false, bool reverse = false);

// ---- shape and indexing -----------------------------------------------------------
// At most one dimension may be -1 and is inferred; the element count must match.
Tensor reshape(const Tensor& x, const Shape& shape);
// Permutes axes; an empty perm reverses them.
Tensor transpose(const Tensor& x, Axes perm = {});
// Inserts an axis of size 1 at `axis` (-1: last).
Tensor expand_dims(const Tensor& x, std::int64_t axis);
// Removes the listed axes, which must have size 1; empty: every size-1 axis.
Tensor squeeze(const Tensor& x, Axes axes = {});
// Joins along an existing axis; shapes must match elsewhere.
Tensor concat(const std::vector<Tensor>& values, std::int64_t axis);
// Joins along a new axis; shapes must be equal.
Tensor stack(const std::vector<Tensor>& values, std::int64_t axis = 0);
// Splits along axis into its slices, the axis removed.
std::vector<Tensor> unstack(const Tensor& x, std::int64_t axis = 0);
// x[begin : begin + size] per axis; size -1 means to the end.
Tensor slice(const Tensor& x, Axes begin, Axes size);
// Picks `indices` (constant, 0 <= i < dim; ValueError otherwise) along axis:
// shape x[:axis] + [len(indices)] + x[axis+1:].
Tensor gather(const Tensor& x, std::vector<std::int64_t> indices, std::int64_t axis = 0);
// Shifts elements cyclically by shift[i] along axis[i].
Tensor roll(const Tensor& x, std::vector<std::int64_t> shift, Axes axis);
Tensor roll(const Tensor& x, std::int64_t shift, std::int64_t axis);
// Tiles x to `shape` by NumPy broadcasting rules.
Tensor broadcast_to(const Tensor& x, const Shape& shape);
// Repeats x multiples[i] times along axis i.
Tensor tile(const Tensor& x, std::vector<std::int64_t> multiples);
// Pads with zeros: paddings[i] = {before, after} for axis i (>= 0).
Tensor pad(const Tensor& x, std::vector<std::array<std::int64_t, 2>> paddings);
// Repeats each element along axis (tf.repeat): element i repeats[i] times
// (>= 0), or every element `repeats` times (one entry applies to all).
// Without an axis, the flattened elements are repeated, giving rank 1.
// A per-example function repeats along axis >= 1 only: along the batch axis
// only repeats of 1 keep examples apart.
Tensor repeat(const Tensor& x, std::vector<std::int64_t> repeats,
              std::optional<std::int64_t> axis = std::nullopt);
Tensor repeat(const Tensor& x, std::int64_t repeats, std::optional<std::int64_t> axis = std::nullopt);

// ---- linear algebra ------------------------------------------------------------
// Matrix product over the last two axes: a [..., m, k] x b [..., k, n] ->
// [..., m, n] (after the optional transposes), leading dimensions broadcast
// like NumPy: shared weights [k, n] against per-example [b, m, k], per-example
// matrices [b, n, n] x [b, n, k], and shared [n, n] x per-example [b, n, k].
// Both ranks >= 2; ValueError for mismatched inner sizes.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false,
              bool transpose_b = false);
// Cross product over the last axis, which must be 3 for both (tf.linalg.cross).
Tensor cross(const Tensor& a, const Tensor& b);

// ---- other ----------------------------------------------------------------------
// The value of x, with no derivative flowing through it.
Tensor stop_gradient(const Tensor& x);
// Converts between float32, float64 and bool (nonzero and NaN -> true, true -> 1).
// Between floats the derivative casts back; to or from bool there is none.
Tensor cast(const Tensor& x, DType dtype);

// ---- small matrices, conveniences (issue #20) -------------------------------------
// Per-example square matrices in the last two axes, as tf.linalg. Computed
// by Gauss-Jordan elimination with partial pivoting in each example's lane
// (one example per SIMD lane inside Jacobian programs, the same bits
// eagerly); meant for small n (up to a few dozen), any n works.
// Singular matrices are not detected: a zero pivot gives inf or NaN entries
// in inv and solve (no error, as the kernels run per lane), det gives
// exactly 0, and det's derivative, det(A) A^-T, is then NaN. Near-singular
// matrices lose accuracy as their condition number grows.
namespace linalg {
// A^-1 of a [..., n, n]; ValueError unless float and square.
// Derivative: -A^-1 dA A^-1.
Tensor inv(const Tensor& a);
// det(A) of a [..., n, n] -> [...]; the determinant of a 0 x 0 matrix is 1.
// Derivative (Jacobi's formula): det(A) A^-T.
Tensor det(const Tensor& a);
// X with A X = B (adjoint: A^T X = B) for A [..., n, n], B [..., n, k];
// leading dims broadcast as in matmul. Computed as inv(A) B, so its error
// grows with cond(A) like the inverse's. ValueError for a non-square A or
// a B whose rows differ from n.
Tensor solve(const Tensor& a, const Tensor& b, bool adjoint = false);
}  // namespace linalg

// The n x n identity (float dtypes; ValueError for n < 0).
Tensor eye(std::int64_t n, DType dtype = float64);

// C++-scalar forms: the scalar takes the tensor's dtype, so that
// where(c, x, 0.0) works for float32 x as for float64.
Tensor where(const Tensor& condition, const Tensor& a, double b);
Tensor where(const Tensor& condition, double a, const Tensor& b);
Tensor equal(const Tensor& a, double b);
Tensor not_equal(const Tensor& a, double b);

// Per-example rows gathered from shared tables in one pass: row i of the
// result is tables[0][indices[0][i]], tables[1][indices[1][i]], ... side by
// side, so the result is [len, sum of widths] for tables [n_t, w_t] (a table
// [n_t] is one column). The values of concat of gathers along axis 0, in a
// plain copy; while a live tape tracks a table it records those ops instead
// (the tables can then be differentiated). Tables of one float dtype; index
// lists of equal length, each index in [0, n_t) (ValueError otherwise).
// Bundle adjustment: gather_rows({cameras, points}, {cam_of_obs, point_of_obs}).
Tensor gather_rows(const std::vector<Tensor>& tables,
                   const std::vector<std::span<const std::int64_t>>& indices);

}  // namespace batchjac
