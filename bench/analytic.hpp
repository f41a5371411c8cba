// The workloads of shared/WORKLOADS.md for the benchmarks: their inputs and
// weights, hand-written analytic Jacobians (the baselines batchjac is measured
// against), and plain scalar references that validate those baselines.
//
// Layouts everywhere: inputs x[b][n] and outputs y[b][m] row-major, Jacobians
// J[b][m][n] row-major (what batch_jacobian returns). The fast kernels live in
// analytic.cpp, built with -O3 -march=native; nothing in this header is inline
// code shared with that file, so the two sets of flags never meet in one
// inline function.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <thread>
#include <vector>

namespace bjbench {

// ---- sizes ------------------------------------------------------------------------
namespace w1 {  // square: y = x * x
inline constexpr int n = 16;
inline constexpr int m = 16;
inline constexpr std::int64_t batch = 65536;
}  // namespace w1
namespace w2 {  // mlp: y = W2 tanh(W1 x + c1) + c2
inline constexpr int n = 32;
inline constexpr int h = 64;
inline constexpr int m = 32;
inline constexpr std::int64_t batch = 8192;
}  // namespace w2
namespace w3 {  // kinetics: y = [dT, wdot_0 .. wdot_15] of x = [T, c_0 .. c_15]
inline constexpr int ns = 16;
inline constexpr int nr = 48;
inline constexpr int n = 1 + ns;
inline constexpr int m = 1 + ns;
inline constexpr std::int64_t batch = 65536;
}  // namespace w3
namespace w8 {  // neohookean: first Piola-Kirchhoff stress P of the deformation gradient F
inline constexpr int n = 9;
inline constexpr int m = 9;
inline constexpr std::int64_t batch = 65536;
inline constexpr double mu = 0.8;
inline constexpr double lambda = 1.2;
}  // namespace w8
namespace w9 {  // layernorm-gelu, float32
inline constexpr int n = 64;
inline constexpr int m = 64;
inline constexpr std::int64_t batch = 8192;
inline constexpr double epsilon = 1e-5;
}  // namespace w9
namespace w10 {  // lj8: Lennard-Jones forces of 8 atoms
inline constexpr int atoms = 8;
inline constexpr int n = 3 * atoms;
inline constexpr int m = 3 * atoms;
inline constexpr std::int64_t batch = 16384;
}  // namespace w10
namespace w11 {  // rk4: one RK4 step of a chain of 8 oscillators, x = [q_0..q_7, v_0..v_7]
inline constexpr int dof = 8;
inline constexpr int n = 2 * dof;
inline constexpr int m = 2 * dof;
inline constexpr std::int64_t batch = 65536;
inline constexpr double dt = 0.01;
}  // namespace w11

// ---- buffers ------------------------------------------------------------------------
// 64-byte aligned storage: the fast kernels stream whole cache lines into it.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t alignment{64};
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t count) {
    return static_cast<T*>(::operator new(count * sizeof(T), alignment));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, alignment); }
  template <class U>
  friend bool operator==(const AlignedAllocator&, const AlignedAllocator<U>&) noexcept {
    return true;
  }
};
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

// ---- inputs and constants -------------------------------------------------------------
// The default generator x[i][j] = 0.5 sin(0.001 i + 0.7 j + 0.3), evaluated in
// double and rounded to T. T: float or double.
template <class T>
AlignedVector<T> default_inputs(std::int64_t b, int n);

// W3's inputs [T, c_0 .. c_15]: T = 1000 + 250 (1 + sin(0.001 i)),
// c_s = 0.1 + 0.05 sin(0.001 i + 0.7 s).
AlignedVector<double> kinetics_inputs(std::int64_t b);

// W8's deformation gradients: x[i][j] = delta_j + 0.1 sin(0.001 i + 0.7 j + 0.3),
// delta_j = 1 on the diagonal of F (j = 0, 4, 8).
AlignedVector<double> neohookean_inputs(std::int64_t b);

// W9's inputs x[i][j] = 2 sin(0.001 i + 0.7 j + 0.3), evaluated in double and
// rounded to T.
template <class T>
AlignedVector<T> layernorm_inputs(std::int64_t b);

// W10's atoms: x[i][3k + d] = 1.12 L_k[d] + 0.05 sin(0.001 i + 0.7 (3k + d) + 0.3),
// L_k = (k % 2, (k / 2) % 2, k / 4).
AlignedVector<double> lj_inputs(std::int64_t b);

// W11 uses default_inputs<double>(b, w11::n).

// W2's weights, evaluated in double and rounded to T. Row-major as written in
// WORKLOADS.md: w1 [h][n], c1 [h], w2 [m][h], c2 [m].
template <class T>
struct MlpWeights {
  std::vector<T> w1, c1, w2, c2;
};
template <class T>
MlpWeights<T> mlp_weights();

// W3's mechanism, reaction r: A + B -> C + D,
//   kf = prefactor * T^temp_exponent * exp(-activation / T),  kr = kf * reverse_ratio.
struct KineticsMechanism {
  std::array<int, w3::nr> reactant_a, reactant_b, product_c, product_d;
  std::array<double, w3::nr> prefactor;      // 1 + r % 5
  std::array<double, w3::nr> temp_exponent;  // 0.1 ((r % 3) - 1)
  std::array<double, w3::nr> activation;     // 100 (1 + r % 7)
  std::array<double, w3::nr> reverse_ratio;  // kr / kf = exp(-0.01 ((r % 11) - 5))
  std::array<double, w3::ns> enthalpy;       // h_s = 0.01 (s - 8)
};
const KineticsMechanism& kinetics_mechanism();

// W9's scale and shift, evaluated in double and rounded to T:
// gamma_j = 1 + 0.1 cos(0.3 j), beta_j = 0.05 sin(0.2 j).
template <class T>
struct LayerNormParams {
  std::vector<T> gamma, beta;
};
template <class T>
LayerNormParams<T> layernorm_params();

// ---- fast analytic Jacobians (analytic.cpp) --------------------------------------------
// Each handles any b >= 0 and any output pointer; when jac is 64-byte aligned
// the output is written with non-temporal stores (it is larger than the caches,
// and nothing reads it soon). They touch only their slice of the batch, so
// split_batch can run them on disjoint slices in parallel.

// W1: J[i] = diag(2 x[i]), n = m = 16. Write-bound: streams 2 KiB per example.
void square_jacobian(const double* x, std::int64_t b, double* jac);

// W2: J[i] = W2 diag(1 - a^2) W1, one small GEMM per example, SIMD along the
// contiguous output row. T: float or double.
template <class T>
void mlp_jacobian(const MlpWeights<T>& weights, const T* x, std::int64_t b, T* jac);

// W3: blocks of 8 examples, one example per SIMD lane, the 17 x 17 Jacobian of
// a block accumulated in L1 and transposed to batch-first on the way out.
void kinetics_jacobian(const double* x, std::int64_t b, double* jac);

// W8: dP[a][c] / dF[k][l] = mu d_ak d_cl + (mu - lambda log J) Finv[c][k] Finv[l][a]
// + lambda Finv[c][a] Finv[l][k]; blocks of 8 examples, one per lane
// (analytic_physics.cpp, as are W9-W11).
void neohookean_jacobian(const double* x, std::int64_t b, double* jac);

// W9 (float32): J = diag(gelu'(z) gamma) (I - 11^T/n - xh xh^T/n) / sqrt(var + eps),
// one example at a time, SIMD along the contiguous 64-wide row: each row is
// two multiply-adds per vector of the shared xh.
void layernorm_gelu_jacobian(const LayerNormParams<float>& params, const float* x,
                             std::int64_t b, float* jac);

// W10: minus the Hessian of the cluster's energy. Blocks of 8 examples; the 28
// pair blocks H = g I + (g'/r) d d^T are computed once and written out atom by
// atom (a 3 x 24 row strip each).
void lj_jacobian(const double* x, std::int64_t b, double* jac);

// W11: the RK4 chain rule K_s = A(x_s) (I + c_s K_{s-1}), A = [[0, I], [T(q), -0.05 I]]
// with T tridiagonal, pushed one column (input direction) at a time through the
// four stages in registers, for blocks of 8 examples.
void rk4_jacobian(const double* x, std::int64_t b, double* jac);

// ---- scalar references (reference.cpp) ---------------------------------------------------
// Straightforward per-example loops with the C++ standard library's math,
// written from WORKLOADS.md independently of the fast kernels (W2 uses
// 1 - tanh^2 where the fast kernel uses 1 / cosh^2). Values y[b][m] as well as
// Jacobians, so analytic_check can test the references by finite differences.
void square_ref(const double* x, std::int64_t b, int n, double* y);
void square_jacobian_ref(const double* x, std::int64_t b, int n, double* jac);
template <class T>
void mlp_ref(const MlpWeights<T>& weights, const T* x, std::int64_t b, T* y);
template <class T>
void mlp_jacobian_ref(const MlpWeights<T>& weights, const T* x, std::int64_t b, T* jac);
void kinetics_ref(const double* x, std::int64_t b, double* y);
void kinetics_jacobian_ref(const double* x, std::int64_t b, double* jac);
void neohookean_ref(const double* x, std::int64_t b, double* y);
void neohookean_jacobian_ref(const double* x, std::int64_t b, double* jac);
// W9 in float (the benchmark) and in double (for central differences).
template <class T>
void layernorm_gelu_ref(const LayerNormParams<T>& params, const T* x, std::int64_t b, T* y);
template <class T>
void layernorm_gelu_jacobian_ref(const LayerNormParams<T>& params, const T* x, std::int64_t b,
                                 T* jac);
void lj_ref(const double* x, std::int64_t b, double* y);
void lj_jacobian_ref(const double* x, std::int64_t b, double* jac);
void rk4_ref(const double* x, std::int64_t b, double* y);
void rk4_jacobian_ref(const double* x, std::int64_t b, double* jac);

// WORKLOADS.md's acceptance metric: max |got - want| / (1 + |want|). +inf if
// the sizes differ or any difference is NaN. T: float or double.
template <class T>
double max_rel_error(std::span<const T> got, std::span<const T> want);

// 1e-10 for double, 1e-4 for float.
template <class T>
constexpr double tolerance() {
  return sizeof(T) == sizeof(double) ? 1e-10 : 1e-4;
}

// Runs fn(begin, end) over [0, b) cut into `threads` contiguous slices whose
// bounds are multiples of `grain` (the calling thread takes the first slice).
template <class Fn>
void split_batch(std::int64_t b, int threads, std::int64_t grain, Fn&& fn) {
  const std::int64_t blocks = (b + grain - 1) / grain;
  const std::int64_t parts = std::clamp<std::int64_t>(threads, 1, std::max<std::int64_t>(blocks, 1));
  if (parts == 1) {
    fn(std::int64_t{0}, b);
    return;
  }
  auto bound = [&](std::int64_t p) { return std::min(b, blocks * p / parts * grain); };
  std::vector<std::jthread> workers;
  workers.reserve(static_cast<std::size_t>(parts - 1));
  for (std::int64_t p = 1; p < parts; ++p) {
    workers.emplace_back([&fn, begin = bound(p), end = bound(p + 1)] { fn(begin, end); });
  }
  fn(std::int64_t{0}, bound(1));
}

}  // namespace bjbench
