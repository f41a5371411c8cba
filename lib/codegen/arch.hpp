// The instruction sets generated kernels are written for: one row per kernel
// table (lib/kernels/kernels_<set>.cpp), with what the generator and the
// compiler need of it. The flags are cmake/kernels.cmake's for that table.
#pragma once

#include <string_view>

namespace batchjac::codegen {

struct Arch {
  std::string_view name;        // KernelTable::arch
  std::string_view xsimd_type;  // the table's xsimd architecture
  std::string_view flags;       // compiler flags of its kernels
  std::string_view intrinsics;  // prefix of its register intrinsics (_mm512, _mm256, _mm)
  bool fused;                   // whether ops::math::fused_fma is one rounding there
};

inline const Arch* find_arch(std::string_view name) {
  static constexpr Arch kArchs[] = {
      {"avx512", "xsimd::avx512f", "-mavx512f -mavx512cd -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma", "_mm512",
       true},
      {"avx2", "xsimd::fma3<xsimd::avx2>", "-mavx2 -mfma", "_mm256", true},
      {"sse42", "xsimd::sse4_2", "-msse4.2", "_mm", false},  // xsimd's fma: x * y + z
  };
  for (const Arch& a : kArchs)
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace batchjac::codegen
