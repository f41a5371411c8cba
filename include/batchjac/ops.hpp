// The differentiable operations, with TensorFlow's names and argument order.
//
// Every op takes and returns Tensors, evaluates eagerly, and is recorded on
// each live GradientTape of the calling thread that tracks one of its inputs.
// Binary ops broadcast like NumPy; a C++ scalar operand takes the tensor's
// dtype. Mixing float32 and float64, or giving a boolean where a number is
// needed, raises ValueError. Accuracy: elementwise math is that of the C++
// standard library eagerly and of xsimd (<= 2 ulp) inside Jacobian programs.
#pragma once

#include <batchjac/tensor.hpp>

#include <cstdint>
#include <vector>

namespace batchjac {

using Axes = std::vector<std::int64_t>;

// ---- elementwise, unary -------------------------------------------------------
Tensor negative(const Tensor& x);
// y = x * x
Tensor square(const Tensor& x);
// Domain x >= 0; NaN below. The derivative at 0 is +inf, as in TF.
Tensor sqrt(const Tensor& x);
Tensor exp(const Tensor& x);
// Domain x > 0: log(0) = -inf, NaN below.
Tensor log(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);

// ---- elementwise, binary (NumPy broadcasting) ---------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor subtract(const Tensor& a, const Tensor& b);
Tensor multiply(const Tensor& a, const Tensor& b);
Tensor divide(const Tensor& a, const Tensor& b);
// x ^ p for a constant exponent p. d/dx = p x^(p-1); at x = 0 with p < 1 this
// is inf or NaN, as in TF.
Tensor pow(const Tensor& x, double p);

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

// ---- linear algebra -----------------------------------------------------------
// Matrix product over the last two axes: a [..., m, k] x b [..., k, n] ->
// [..., m, n] (after the optional transposes). Supported ranks: a rank >= 2,
// b rank 2 (shared weights), or a and b of equal rank with equal leading
// dimensions (per-example matrices). ValueError for mismatched inner sizes.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false,
              bool transpose_b = false);

// ---- reductions -----------------------------------------------------------------
// Sum over `axes` (negative counts from the end; duplicates are an error; an
// empty list reduces nothing, as in TF). keepdims keeps reduced axes as 1.
Tensor reduce_sum(const Tensor& x, Axes axes, bool keepdims = false);
// Sum over every axis.
Tensor reduce_sum(const Tensor& x);

// ---- shape ----------------------------------------------------------------------
// At most one dimension may be -1 and is inferred; the element count must match.
Tensor reshape(const Tensor& x, const Shape& shape);
// Tiles x to `shape` by NumPy broadcasting rules.
Tensor broadcast_to(const Tensor& x, const Shape& shape);

// ---- other ----------------------------------------------------------------------
// The value of x, with no derivative flowing through it.
Tensor stop_gradient(const Tensor& x);
// Converts between float32 and float64 (and from/to boolean: nonzero -> true,
// true -> 1). The derivative casts back.
Tensor cast(const Tensor& x, DType dtype);

}  // namespace batchjac
