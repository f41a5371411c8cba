// Kernels for sse42, compiled with its flags (cmake/kernels.cmake).
#include "kernels/arch_tables.hpp"
#include "kernels/lane_kernels.hpp"

namespace batchjac::kernels {

template <class T>
const KernelTable<T>& sse42_kernels() {
  static const KernelTable<T> table = make_table<xsimd::batch<T, xsimd::sse4_2>>("sse42");
  return table;
}
template const KernelTable<float>& sse42_kernels<float>();
template const KernelTable<double>& sse42_kernels<double>();

}  // namespace batchjac::kernels
