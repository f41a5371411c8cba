// Conveniences over the primitives: C++-scalar forms of where, equal and
// not_equal, and gather_rows, one pass that picks per-example rows from
// shared tables (the same values as concat of gathers, recorded as them).
#include "graph/tape.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>

#include <cstring>
#include <string>

namespace batchjac {

namespace {
// A C++ scalar takes the tensor's dtype, as a Python scalar does in TF.
Tensor scalar_as(double v, const Tensor& like) {
  return constant(v, is_floating(like.dtype()) ? like.dtype() : float64);
}
}  // namespace

Tensor where(const Tensor& condition, const Tensor& a, double b) { return where(condition, a, scalar_as(b, a)); }
Tensor where(const Tensor& condition, double a, const Tensor& b) { return where(condition, scalar_as(a, b), b); }
Tensor equal(const Tensor& a, double b) { return equal(a, scalar_as(b, a)); }
Tensor not_equal(const Tensor& a, double b) { return not_equal(a, scalar_as(b, a)); }

namespace {
// A table's rows and their width: [n, w], or [n] as one column.
std::int64_t row_width(const Tensor& t, std::size_t i) {
  if (t.rank() == 2) return t.shape()[1];
  if (t.rank() == 1) return 1;
  throw ValueError("gather_rows: table " + std::to_string(i) + " must be [n, w] or [n], got shape " +
                   t.shape().to_string());
}

[[noreturn]] void out_of_range(std::int64_t index, std::size_t t, std::int64_t r, std::int64_t n) {
  throw ValueError("gather_rows: index " + std::to_string(index) + " (list " + std::to_string(t) +
                   ", entry " + std::to_string(r) + ") is out of range for a table of " +
                   std::to_string(n) + " rows");
}

// Rows of a few elements: a loop the compiler unrolls beats memcpy's call.
template <class T>
void copy_row(T* dst, const T* src, std::int64_t w) {
  if (w > 32) {
    std::memcpy(dst, src, static_cast<std::size_t>(w) * sizeof(T));
    return;
  }
  for (std::int64_t k = 0; k < w; ++k) dst[k] = src[k];
}

template <class T>
Tensor copy_rows(const std::vector<Tensor>& tables, const std::vector<std::span<const std::int64_t>>& indices,
                 const std::vector<std::int64_t>& width, std::int64_t rows, std::int64_t total, DType dtype) {
  auto impl = detail::new_tensor(Shape{rows, total}, dtype);
  T* out = impl->as_mutable<T>();
  std::int64_t col = 0;
  for (std::size_t t = 0; t < tables.size(); ++t) {
    const T* src = tables[t].impl().as<T>();
    const std::int64_t w = width[t];
    const std::int64_t* idx = indices[t].data();
    const std::int64_t n = tables[t].shape()[0];
    T* dst = out + col;
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t i = idx[r];
      if (i < 0 || i >= n) out_of_range(i, t, r, n);
      copy_row(dst + r * total, src + i * w, w);
    }
    col += w;
  }
  return detail::make_tensor(std::move(impl));
}
}  // namespace

Tensor gather_rows(const std::vector<Tensor>& tables, const std::vector<std::span<const std::int64_t>>& indices) {
  if (tables.empty()) throw ValueError("gather_rows: expected at least one table");
  if (indices.size() != tables.size())
    throw ValueError("gather_rows: " + std::to_string(tables.size()) + " tables but " +
                     std::to_string(indices.size()) + " index lists");
  const DType dtype = tables[0].dtype();
  const auto rows = static_cast<std::int64_t>(indices[0].size());
  std::vector<std::int64_t> width(tables.size());
  std::int64_t total = 0;
  for (std::size_t t = 0; t < tables.size(); ++t) {
    if (!is_floating(tables[t].dtype()) || tables[t].dtype() != dtype)
      throw ValueError("gather_rows: tables must all be float32 or all float64; table " +
                       std::to_string(t) + " is " + std::string(dtype_name(tables[t].dtype())) +
                       " and table 0 " + std::string(dtype_name(dtype)));
    width[t] = row_width(tables[t], t);
    total += width[t];
    if (static_cast<std::int64_t>(indices[t].size()) != rows)
      throw ValueError("gather_rows: index list " + std::to_string(t) + " has " +
                       std::to_string(indices[t].size()) + " entries, list 0 has " + std::to_string(rows));
  }
  // Tracked by a tape (a table is differentiated): the recorded ops.
  if (graph::recorded(tables)) {
    std::vector<Tensor> parts;
    for (std::size_t t = 0; t < tables.size(); ++t) {
      const std::int64_t n = tables[t].shape()[0];
      for (std::int64_t r = 0; r < rows; ++r)
        if (const std::int64_t i = indices[t][static_cast<std::size_t>(r)]; i < 0 || i >= n) out_of_range(i, t, r, n);
      const Tensor table = tables[t].rank() == 1 ? reshape(tables[t], {tables[t].shape()[0], 1}) : tables[t];
      parts.push_back(gather(table, std::vector<std::int64_t>(indices[t].begin(), indices[t].end()), 0));
    }
    return parts.size() == 1 ? parts[0] : concat(parts, 1);
  }
  return dtype == float32 ? copy_rows<float>(tables, indices, width, rows, total, dtype)
                          : copy_rows<double>(tables, indices, width, rows, total, dtype);
}

}  // namespace batchjac
