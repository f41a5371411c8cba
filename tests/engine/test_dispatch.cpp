// Kernel dispatch: the best instruction set of the CPU, capped by
// BATCHJAC_ARCH (ctest runs this whole executable once per cap).
#include "kernels/kernels.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

namespace k = batchjac::kernels;

namespace {
std::string expected_arch() {
  const char* env = std::getenv("BATCHJAC_ARCH");
  const std::string cap = env ? env : "avx512";
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (cap == "sse42") return "sse42";
  if (cap == "avx2") return avx2 ? "avx2" : "sse42";
  return avx512 ? "avx512" : avx2 ? "avx2" : "sse42";
}
std::int64_t bytes_of(const std::string& arch) {
  return arch == "avx512" ? 64 : arch == "avx2" ? 32 : 16;
}
}  // namespace

TEST_CASE("kernel dispatch honours BATCHJAC_ARCH", "[engine][dispatch]") {
  const std::string want = expected_arch();
  INFO("BATCHJAC_ARCH=" << (std::getenv("BATCHJAC_ARCH") ? std::getenv("BATCHJAC_ARCH") : "(unset)"));
  CHECK(std::string(k::simd_kernels<double>().arch) == want);
  CHECK(std::string(k::simd_kernels<float>().arch) == want);
  CHECK(k::simd_kernels<double>().width == bytes_of(want) / 8);
  CHECK(k::simd_kernels<float>().width == bytes_of(want) / 4);
  CHECK(k::scalar_kernels<double>().width == 1);
}
