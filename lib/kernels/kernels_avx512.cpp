// Kernels for avx512, compiled with its flags (cmake/kernels.cmake).
#include "kernels/arch_tables.hpp"
#include "kernels/lane_kernels.hpp"

namespace batchjac::kernels {

template <class T>
const KernelTable<T>& avx512_kernels() {
  static const KernelTable<T> table = make_table<xsimd::batch<T, xsimd::avx512f>>("avx512");
  return table;
}
template const KernelTable<float>& avx512_kernels<float>();
template const KernelTable<double>& avx512_kernels<double>();

}  // namespace batchjac::kernels
