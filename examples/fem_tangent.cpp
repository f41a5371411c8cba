// fem_tangent: the consistent tangent an implicit finite-element code
// assembles at every quadrature point (W8 of shared/WORKLOADS.md). The
// deformation gradient F of each point goes in; the first Piola-Kirchhoff
// stress of a compressible neo-Hookean material comes out,
//   P = mu (F - F^-T) + lambda log(det F) F^-T,
// written with bj::linalg::det and bj::linalg::inv; batch_jacobian gives
// dP/dF, the 9 x 9 tangent of every point, in one call.
//
// Checked: the stress and the tangent against the closed form
//   dP_ac/dF_kl = mu d_ak d_cl + (mu - lambda log J) Finv_ck Finv_la + lambda Finv_ca Finv_lk,
// and the tangent's major symmetry (it is the Hessian of an energy).
//
// Usage: fem_tangent [points]   (default 65536)
// Exit status: 0 if every check passes, 1 if one fails, 2 on an exception.
#include <batchjac/batchjac.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

namespace bj = batchjac;

namespace {
constexpr double mu = 0.8, lambda = 1.2;

// F [b, 3, 3] -> P [b, 3, 3].
bj::Tensor neo_hookean_stress(const bj::Tensor& f) {
  const bj::Tensor finv_t = bj::transpose(bj::linalg::inv(f), {0, 2, 1});
  const bj::Tensor log_j = bj::reshape(bj::log(bj::linalg::det(f)), {-1, 1, 1});
  return mu * (f - finv_t) + lambda * log_j * finv_t;
}

// The closed-form tangent of one point: t[(3a + c) * 9 + 3k + l].
void closed_form(const double* f, double* p, double* t) {
  const double det = f[0] * (f[4] * f[8] - f[5] * f[7]) - f[1] * (f[3] * f[8] - f[5] * f[6]) +
                     f[2] * (f[3] * f[7] - f[4] * f[6]);
  double inv[9];  // the adjugate over det
  inv[0] = (f[4] * f[8] - f[5] * f[7]) / det, inv[1] = (f[2] * f[7] - f[1] * f[8]) / det,
  inv[2] = (f[1] * f[5] - f[2] * f[4]) / det, inv[3] = (f[5] * f[6] - f[3] * f[8]) / det,
  inv[4] = (f[0] * f[8] - f[2] * f[6]) / det, inv[5] = (f[2] * f[3] - f[0] * f[5]) / det,
  inv[6] = (f[3] * f[7] - f[4] * f[6]) / det, inv[7] = (f[1] * f[6] - f[0] * f[7]) / det,
  inv[8] = (f[0] * f[4] - f[1] * f[3]) / det;
  const double lj = std::log(det);
  for (int a = 0; a < 3; ++a)
    for (int c = 0; c < 3; ++c) {
      p[3 * a + c] = mu * (f[3 * a + c] - inv[3 * c + a]) + lambda * lj * inv[3 * c + a];
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l)
          t[(3 * a + c) * 9 + 3 * k + l] = mu * (a == k) * (c == l) + (mu - lambda * lj) * inv[3 * c + k] * inv[3 * l + a] +
                                           lambda * inv[3 * c + a] * inv[3 * l + k];
    }
}
}  // namespace

int main(int argc, char** argv) {
  try {
    const std::int64_t b = argc > 1 ? std::atoll(argv[1]) : 65536;
    // W8's deformation gradients: the identity plus a small perturbation.
    std::vector<double> f(static_cast<std::size_t>(b * 9));
    for (std::int64_t i = 0; i < b; ++i)
      for (int j = 0; j < 9; ++j)
        f[static_cast<std::size_t>(i * 9 + j)] = (j % 4 == 0 ? 1.0 : 0.0) + 0.1 * std::sin(0.001 * double(i) + 0.7 * j + 0.3);

    const auto start = std::chrono::steady_clock::now();
    bj::GradientTape tape;
    const bj::Tensor ft = bj::view(std::span<const double>(f), {b, 3, 3});
    tape.watch(ft);
    const bj::Tensor p = neo_hookean_stress(ft);
    std::vector<double> stress(static_cast<std::size_t>(b * 9)), tangent(static_cast<std::size_t>(b * 81));
    tape.value_and_batch_jacobian_into(p, ft, stress, tangent);  // [b, 3, 3] and [b, 3, 3, 3, 3]
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%lld quadrature points: stress and 9 x 9 tangent in %.2f ms (%.0f ns per point)\n",
                static_cast<long long>(b), 1e3 * seconds, 1e9 * seconds / double(b));

    double worst = 0, asym = 0;
    double p_ref[9], t_ref[81];
    for (std::int64_t i = 0; i < b; ++i) {
      closed_form(&f[static_cast<std::size_t>(i * 9)], p_ref, t_ref);
      const double* t = &tangent[static_cast<std::size_t>(i * 81)];
      for (int e = 0; e < 9; ++e)
        worst = std::max(worst, std::abs(stress[static_cast<std::size_t>(i * 9 + e)] - p_ref[e]) / (1 + std::abs(p_ref[e])));
      for (int r = 0; r < 9; ++r)
        for (int q = 0; q < 9; ++q) {
          worst = std::max(worst, std::abs(t[r * 9 + q] - t_ref[r * 9 + q]) / (1 + std::abs(t_ref[r * 9 + q])));
          asym = std::max(asym, std::abs(t[r * 9 + q] - t[q * 9 + r]));
        }
    }
    std::printf("against the closed form: worst difference %.2e; major symmetry: worst %.2e\n", worst, asym);
    const bool ok = worst < 1e-12 && asym < 1e-12;
    std::printf("%s\n", ok ? "fem_tangent: ok" : "fem_tangent: FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fem_tangent: %s\n", e.what());
    return 2;
  }
}
