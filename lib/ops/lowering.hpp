// Lowering: how a primitive becomes kernel steps. The same steps run eagerly
// (batch-first tensors, lanes = 1) and in the engine (per-example shapes,
// one example per lane, n_dir directions); only the binding of values to
// memory differs (engine/executor.hpp, ops/eager.cpp).
#pragma once

#include "kernels/kernels.hpp"
#include "ops/primitive.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <span>
#include <vector>

namespace batchjac::ops {

template <class T>
struct Step {
  enum class Kind : std::uint8_t { elementwise, index, scan, matmul, matrix };
  Kind kind = Kind::elementwise;
  kernels::ElementwiseFn<T> ew_fn = nullptr;
  kernels::IndexFn<T> ix_fn = nullptr;
  kernels::MatmulFn<T> mm_fn = nullptr;
  kernels::ScanFn<T> sc_fn = nullptr;
  kernels::MatrixFn<T> mx_fn = nullptr;
  kernels::ElementwiseArgs<T> ew;  // sizes, maps and scalar; pointers bound at run time
  kernels::IndexArgs<T> ix;
  kernels::MatmulArgs<T> mm;
  kernels::ScanArgs<T> sc;
  kernels::MatrixArgs<T> mx;
  int out = -1;
  std::array<int, 4> in{-1, -1, -1, -1};
  int n_in = 0;
};

// Index maps must outlive the steps that point into them.
using MapStore = std::deque<std::vector<std::int64_t>>;

// For each element of `to`, the element of `from` it reads under NumPy
// broadcasting; empty when the shapes are equal (identity).
std::vector<std::int64_t> broadcast_map(const Shape& from, const Shape& to);
// NumPy broadcast of two shapes; ValueError naming `op` when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);
// Row-major strides of a shape.
std::vector<std::int64_t> strides_of(const Shape& shape);

template <class T>
class Lowering {
 public:
  Lowering(const kernels::KernelTable<T>& table, std::span<const ValueInfo> values,
           std::span<const std::uint8_t> varying, std::vector<Step<T>>& steps, MapStore& maps)
      : table_(table), values_(values), varying_(varying), steps_(steps), maps_(maps) {}

  const kernels::KernelTable<T>& table() const { return table_; }
  const Shape& shape(int v) const { return values_[v].shape; }
  bool varying(int v) const { return varying_[v] != 0; }

  // out = fn(in...), each input broadcast to out's shape.
  void elementwise(kernels::ElementwiseFn<T> fn, int out, std::initializer_list<int> in,
                   T scalar = T(0));
  // An index kernel of the table (gather, scatter_add, scatter, scatter_reduce)
  // moving elements of `in` to `out` by `map` (see kernels/kernels.hpp).
  void index(kernels::IndexFn<T> fn, int out, int in, std::vector<std::int64_t> map, int op = 0);
  // out[bt] = op(a[bt]) op(b[bt]) with the given sizes; batch offset tables
  // (empty: none) are kept here.
  void matmul(int out, int a, int b, kernels::MatmulArgs<T> sizes,
              std::vector<std::int64_t> a_batch, std::vector<std::int64_t> b_batch);
  // A running sum or product with the given sizes.
  void scan(int out, int in, const kernels::ScanArgs<T>& sizes);
  // The inverse or determinant (op) of each of `batch` n x n matrices of in.
  void matrix(int out, int in, std::int64_t batch, std::int64_t n, int op);

 private:
  const std::int64_t* keep(std::vector<std::int64_t> map);

  const kernels::KernelTable<T>& table_;
  std::span<const ValueInfo> values_;
  std::span<const std::uint8_t> varying_;
  std::vector<Step<T>>& steps_;
  MapStore& maps_;
};

// Where each value lives when steps run: a pointer per value id, its stride
// between directions (0: shared by all directions), and whether it is
// lane-varying. Steps then run over n_dir directions of `lanes` lanes.
template <class T>
struct Binding {
  std::span<T* const> ptr;
  std::span<const std::int64_t> dir_stride;
  std::span<const std::uint8_t> varying;
  std::int64_t n_dir = 1;
  std::int64_t lanes = 1;
};

template <class T>
void execute(std::span<const Step<T>> steps, const Binding<T>& b);

extern template void execute<float>(std::span<const Step<float>>, const Binding<float>&);
extern template void execute<double>(std::span<const Step<double>>, const Binding<double>&);
extern template class Lowering<float>;
extern template class Lowering<double>;

}  // namespace batchjac::ops
