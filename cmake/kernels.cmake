# One translation unit per instruction set, each compiled with that set's flags;
# xsimd::dispatch picks among them at run time. Generated kernels are compiled
# with the same flags: lib/codegen/arch.hpp lists them again, keep both equal.
set_source_files_properties(lib/kernels/kernels_sse42.cpp PROPERTIES COMPILE_OPTIONS "-msse4.2")
set_source_files_properties(lib/kernels/kernels_avx2.cpp PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
set_source_files_properties(lib/kernels/kernels_avx512.cpp PROPERTIES
  COMPILE_OPTIONS "-mavx512f;-mavx512cd;-mavx512dq;-mavx512bw;-mavx512vl;-mavx2;-mfma")
# No contraction of x * y + z into fused multiply-adds: whether GCC contracts
# depends on the optimisation level, so the bits would depend on the build
# type (or on -march=native in CMAKE_CXX_FLAGS, for the scalar table that
# dispatch.cpp builds). Kernels that want a fused multiply-add say so
# (math::fused_fma).
set_property(SOURCE lib/kernels/kernels_sse42.cpp lib/kernels/kernels_avx2.cpp lib/kernels/kernels_avx512.cpp
  lib/kernels/dispatch.cpp APPEND PROPERTY COMPILE_OPTIONS -ffp-contract=off)
# GCC 12 warns inside its own AVX-512 intrinsics as xsimd uses them.
set_property(SOURCE lib/kernels/kernels_sse42.cpp lib/kernels/kernels_avx2.cpp lib/kernels/kernels_avx512.cpp
  APPEND PROPERTY COMPILE_OPTIONS -Wno-uninitialized -Wno-maybe-uninitialized)
