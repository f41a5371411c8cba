// Kernel tables of each instruction set, defined in kernels_<arch>.cpp.
#pragma once

#include "kernels/kernels.hpp"

namespace batchjac::kernels {

template <class T> const KernelTable<T>& sse42_kernels();
template <class T> const KernelTable<T>& avx2_kernels();
template <class T> const KernelTable<T>& avx512_kernels();

}  // namespace batchjac::kernels
