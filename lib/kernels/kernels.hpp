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
  Operand<T> in[3];
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
};

// C[bt][m][n] = sum_k A[bt][m][k] B[bt][k][n], for each direction; A and B are
// stored transposed when ta / tb. batch_stride 0 broadcasts an operand.
template <class T>
struct MatmulArgs {
  T* out = nullptr;
  std::int64_t out_dir_stride = 0;
  Operand<T> a, b;  // map unused
  std::int64_t a_batch_stride = 0, b_batch_stride = 0;  // in elements
  std::int64_t batch = 1, m = 0, n = 0, k = 0;
  bool ta = false, tb = false;
  std::int64_t n_dir = 1;
  std::int64_t lanes = 1;
  bool accumulate = false;
};

template <class T>
using ElementwiseFn = void (*)(const ElementwiseArgs<T>&);
template <class T>
using IndexFn = void (*)(const IndexArgs<T>&);
template <class T>
using MatmulFn = void (*)(const MatmulArgs<T>&);

inline constexpr int kMaxUnary = 64;
inline constexpr int kMaxBinary = 32;

template <class T>
struct KernelTable {
  std::string_view arch;
  std::int64_t width = 1;  // lanes of one SIMD register
  ElementwiseFn<T> unary[kMaxUnary] = {};
  ElementwiseFn<T> unary_partial[kMaxUnary] = {};
  ElementwiseFn<T> binary[kMaxBinary] = {};
  IndexFn<T> gather = nullptr;
  IndexFn<T> scatter_add = nullptr;
  MatmulFn<T> matmul = nullptr;
};

// The best instruction set of this CPU (avx512, avx2+fma, sse4.2), chosen once.
template <class T>
const KernelTable<T>& simd_kernels();
// Lanes = 1, plain C++: eager evaluation of batch-first tensors.
template <class T>
const KernelTable<T>& scalar_kernels();

}  // namespace batchjac::kernels
