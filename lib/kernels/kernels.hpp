// The kernel interface: plain structs of pointers and sizes, and a table of
// function pointers per (instruction set, element type). Free of xsimd, so the
// engine and eager evaluation can call kernels without knowing the arch.
//
// Layout: a buffer holds n_dir directions of n_elem elements of `lanes`
// lanes: element e of direction d, lane l is at [d * dir_stride + e * lanes + l].
// In the engine a lane is an example; eagerly lanes = 1.
#pragma once

#include <cstdint>
#include <string_view>

namespace batchjac::kernels {

template <class T>
struct Operand {
  const T* ptr = nullptr;
  const std::int64_t* map = nullptr;  // element e reads element map[e]; nullptr: e
  std::int64_t dir_stride = 0;        // 0: the same for every direction
  bool varying = true;                // false: one value per element, for every lane
};

template <class T>
struct ElementwiseArgs {
  T* out = nullptr;
  std::int64_t out_dir_stride = 0;
  std::int64_t n_elem = 0;
  std::int64_t n_dir = 1;
  std::int64_t lanes = 1;
  Operand<T> in[4];
  T scalar = 0;
  bool accumulate = false;  // out += f(...) instead of out = f(...)
};

// out[e] = in[map[e]] (0 where map[e] < 0); or, for scatter_add,
// out[j] = sum of in[e] over e with map[e] == j (out has n_out elements).
template <class T>
struct IndexArgs {
  T* out = nullptr;
  std::int64_t out_dir_stride = 0;
  std::int64_t n_out = 0;
  const T* in = nullptr;
  std::int64_t in_dir_stride = 0;
  std::int64_t n_in = 0;
  const std::int64_t* map = nullptr;  // gather: n_out entries; scatter_add: n_in entries
  std::int64_t n_dir = 1;
  std::int64_t lanes = 1;
  bool accumulate = false;
  int op = 0;  // scatter_reduce: a Reduce
};

enum Reduce : int { kSum = 0, kProd = 1, kMax = 2, kMin = 3 };

// Running sum or product along an axis viewed as [outer][len][inner].
template <class T>
struct ScanArgs {
  T* out = nullptr;
  std::int64_t out_dir_stride = 0;
  const T* in = nullptr;
  std::int64_t in_dir_stride = 0;
  std::int64_t outer = 1, len = 0, inner = 1;
  bool exclusive = false, reverse = false;
  int op = kSum;  // kSum or kProd
  std::int64_t n_dir = 1;
  std::int64_t lanes = 1;
};

// C[bt][m][n] = sum_k A[bt][m][k] B[bt][k][n], for each direction; A and B are
// stored transposed when ta / tb. The batch offset tables broadcast operands.
template <class T>
struct MatmulArgs {
  T* out = nullptr;
  std::int64_t out_dir_stride = 0;
  Operand<T> a, b;  // map unused
  // If ptr is set: A is multiplied elementwise by this (same elements as A,
  // one value per element for every direction, varying) before the product.
  // Honoured by the kernels for per-example A and shared B, and for a
  // lane-shared A (below).
  Operand<T> a_scale;
  const std::int64_t* a_batch = nullptr;  // offset of batch bt in a (elements)
  const std::int64_t* b_batch = nullptr;
  std::int64_t batch = 1, m = 0, n = 0, k = 0;
  bool ta = false, tb = false;
  std::int64_t n_dir = 1;
  std::int64_t lanes = 1;
  bool accumulate = false;
  // With a_scale, A may be the same in every lane (a.varying false, batch 1):
  // direction d of its element e is a.ptr[e * a_elem_stride + d], directions
  // adjacent. Each result is then the k-ordered sum of fma(scale * p, q),
  // with p from B and q from A when tile_dirs (a register tile spans
  // directions), else p from A and q from B (a tile spans columns).
  std::int64_t a_elem_stride = 0;
  bool tile_dirs = false;
  // If set (lane-shared A only, lanes = width), results go to Jacobian rows
  // instead of `out`: direction d, element e = i * n + j, lane l at
  // rows[l * rows_lane_stride + d * rows_dir_step + e * rows_elem_step];
  // the tile's axis must be contiguous there and a multiple of the width.
  T* rows = nullptr;
  std::int64_t rows_lane_stride = 0, rows_dir_step = 0, rows_elem_step = 0;
  bool rows_stream = false;  // non-temporal stores (rows vector-aligned)
  int* rows_nan = nullptr;   // if set, becomes 1 when a result sent to rows is NaN
};

// A linear program compiled down to single lane-vectors (engine/sparse.hpp):
// each op writes buf[out .. out+lanes) = the sum of its terms: first n_triple
// of three factors, scale * buf[in] * buf[coef] * buf[in of the next record]
// (two records each), then n_coef of two, scale * buf[in] * buf[coef], then
// n_plain of one, scale * buf[in]. Offsets are in elements of the block buffer.
template <class T>
struct SparseTerm {
  std::int32_t in = 0;
  std::int32_t coef = 0;
  T scale = 1;
};
struct SparseOp {
  std::int32_t out = 0;
  std::int32_t n_triple = 0;
  std::int32_t n_coef = 0;
  std::int32_t n_plain = 0;
  std::int32_t run = 1;  // this op and the run - 1 after it have the same term counts
};

// Small square matrices, one per batch entry per lane: `batch` matrices of
// n x n elements in `a` (element e of matrix bt at bt * n * n + e), each
// inverted (out: n x n per matrix) or its determinant taken (out: one
// element per matrix), by Gauss-Jordan elimination with partial pivoting in
// every lane at once. A zero pivot (a singular matrix) gives determinant 0
// and inf or NaN entries in the inverse.
enum MatrixOp : int { kInverse = 0, kDeterminant = 1 };
template <class T>
struct MatrixArgs {
  T* out = nullptr;
  std::int64_t out_dir_stride = 0;
  Operand<T> a;  // map unused
  std::int64_t batch = 1, n = 0;
  int op = kInverse;
  std::int64_t n_dir = 1;
  std::int64_t lanes = 1;
};

template <class T>
using ElementwiseFn = void (*)(const ElementwiseArgs<T>&);
template <class T>
using IndexFn = void (*)(const IndexArgs<T>&);
template <class T>
using MatmulFn = void (*)(const MatmulArgs<T>&);
template <class T>
using ScanFn = void (*)(const ScanArgs<T>&);
template <class T>
using MatrixFn = void (*)(const MatrixArgs<T>&);

inline constexpr int kMaxUnary = 64;
inline constexpr int kMaxBinary = 32;
inline constexpr int kMaxTernary = 4;
inline constexpr int kMaxQuaternary = 4;

template <class T>
struct KernelTable {
  std::string_view arch;
  std::int64_t width = 1;  // lanes of one SIMD register
  ElementwiseFn<T> unary[kMaxUnary] = {};
  ElementwiseFn<T> unary_partial[kMaxUnary] = {};
  ElementwiseFn<T> binary[kMaxBinary] = {};
  ElementwiseFn<T> binary_partial[2][kMaxBinary] = {};  // d/da, d/db from (a, b, y)
  ElementwiseFn<T> ternary[kMaxTernary] = {};
  ElementwiseFn<T> quaternary[kMaxQuaternary] = {};
  IndexFn<T> gather = nullptr;
  IndexFn<T> scatter_add = nullptr;     // out = 0 (unless accumulate); out[map[e]] += in[e]
  IndexFn<T> scatter = nullptr;         // out[map[e]] = in[e] where map[e] >= 0
  IndexFn<T> scatter_reduce = nullptr;  // out[j] = op over in[e] with map[e] == j
  ScanFn<T> scan = nullptr;
  MatmulFn<T> matmul = nullptr;
  MatrixFn<T> matrix = nullptr;  // inverse or determinant (MatrixArgs::op)
  // The linear program's products with strong zeros (ops::math::strong_mul):
  // the same arithmetic as matmul, multiply, divide, axpy, lincomb and
  // sparse_linear, but a product with a zero factor is 0.
  MatmulFn<T> matmul_strong = nullptr;
  ElementwiseFn<T> strong_divide = nullptr;
  ElementwiseFn<T> strong_axpy = nullptr;
  ElementwiseFn<T> strong_lincomb = nullptr;
  // For lanes = 1 (the scalar table's matmul where set): the same bits as
  // the scalar matmul, W columns at a time.
  MatmulFn<T> matmul_one_lane = nullptr;
  // Runs n_ops SparseOps in order over `lanes` lanes (a multiple of width);
  // returns whether any value an op wrote is NaN (the engine then runs the
  // strong twin).
  bool (*sparse_linear)(T* buf, const SparseOp* ops, std::int64_t n_ops, const SparseTerm<T>* terms,
                        std::int64_t lanes) = nullptr;
  // Whether any of p[0, n) is NaN.
  bool (*has_nan)(const T* p, std::int64_t n) = nullptr;
  bool (*sparse_linear_strong)(T* buf, const SparseOp* ops, std::int64_t n_ops,
                               const SparseTerm<T>* terms, std::int64_t lanes) = nullptr;
  // dst[0, n) = src[0, n) with non-temporal stores where aligned: for output
  // larger than the caches. Call stream_fence() before the data is shared.
  void (*stream_copy)(T* dst, const T* src, std::int64_t n) = nullptr;
  // dst[l * dst_stride + i] = src[i * src_stride + l], i < count, l < width:
  // a block's lanes (examples) become rows.
  // When `live` is given, group g of W consecutive i is known to be zero
  // unless live[g]: such groups are written as zeros without reading src.
  void (*lanes_to_rows)(const T* src, std::int64_t count, std::int64_t src_stride, T* dst,
                        std::int64_t dst_stride, const std::uint8_t* live) = nullptr;
  // The same with non-temporal stores; every destination row must be
  // aligned to the vector size (count a multiple of width).
  void (*lanes_to_rows_stream)(const T* src, std::int64_t count, std::int64_t src_stride, T* dst,
                               std::int64_t dst_stride, const std::uint8_t* live) = nullptr;
  // dst[r * row_len + q] = src[r * src_stride + q] for r < rows, q < row_len,
  // with non-temporal stores: rows of any length packed into a destination
  // whose start is aligned to the vector size.
  void (*pack_rows_stream)(const T* src, std::int64_t rows, std::int64_t row_len,
                           std::int64_t src_stride, T* dst) = nullptr;
  // dst[l * size + q] = src[q * src_stride + l] for l < width, q < size
  // (size >= width), straight from registers: one block's rows of any
  // length packed back to back. `live` as for lanes_to_rows.
  void (*lanes_to_packed_rows)(const T* src, std::int64_t size, std::int64_t src_stride, T* dst,
                               const std::uint8_t* live) = nullptr;
  // The same with non-temporal stores; dst must be aligned to the vector size.
  void (*lanes_to_packed_rows_stream)(const T* src, std::int64_t size, std::int64_t src_stride,
                                      T* dst, const std::uint8_t* live) = nullptr;
};

void stream_fence();

// The best instruction set of this CPU (avx512, avx2+fma, sse4.2), chosen once.
template <class T>
const KernelTable<T>& simd_kernels();
// Lanes = 1, plain C++: eager evaluation of batch-first tensors.
template <class T>
const KernelTable<T>& scalar_kernels();

}  // namespace batchjac::kernels
