// Kernels for avx2, compiled with its flags (cmake/kernels.cmake).
#include "kernels/arch_tables.hpp"
#include "kernels/lane_kernels.hpp"

namespace batchjac::kernels {

template <class T>
const KernelTable<T>& avx2_kernels() {
  static const KernelTable<T> table = make_table<xsimd::batch<T, xsimd::fma3<xsimd::avx2>>>("avx2");
  return table;
}
template const KernelTable<float>& avx2_kernels<float>();
template const KernelTable<double>& avx2_kernels<double>();

}  // namespace batchjac::kernels
