// Picks the kernel table of the best instruction set this CPU has, once.
#include "kernels/arch_tables.hpp"
#include "kernels/lane_kernels.hpp"

#include <cstdlib>
#include <string_view>

namespace batchjac::kernels {

namespace {
// BATCHJAC_ARCH=sse42|avx2|avx512 caps the choice (tests run every table).
int arch_cap() {
  const char* env = std::getenv("BATCHJAC_ARCH");
  if (env == nullptr) return 3;
  std::string_view s(env);
  if (s == "sse42") return 1;
  if (s == "avx2") return 2;
  return 3;
}
}  // namespace

template <class T>
const KernelTable<T>& simd_kernels() {
  static const KernelTable<T>* table = [] {
    const auto has = xsimd::available_architectures();
    const int cap = arch_cap();
    if (cap >= 3 && has.avx512f) return &avx512_kernels<T>();
    if (cap >= 2 && has.fma3_avx2) return &avx2_kernels<T>();
    return &sse42_kernels<T>();
  }();
  return *table;
}

template <class T>
const KernelTable<T>& scalar_kernels() {
  static const KernelTable<T> table = [] {
    KernelTable<T> t = make_table<T>("scalar");
    // Eager matmuls (a layer of a batch, W3's stoichiometry) take the SIMD
    // table's one-lane kernel: the same bits, W columns at a time.
    if (const MatmulFn<T> wide = simd_kernels<T>().matmul_one_lane) t.matmul = wide;
    return t;
  }();
  return table;
}

void stream_fence() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_sfence();
#endif
}

template const KernelTable<float>& simd_kernels<float>();
template const KernelTable<double>& simd_kernels<double>();
template const KernelTable<float>& scalar_kernels<float>();
template const KernelTable<double>& scalar_kernels<double>();

}  // namespace batchjac::kernels
