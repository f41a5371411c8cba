// bundle_adjustment: Levenberg-Marquardt (damped Gauss-Newton) steps of a
// synthetic bundle adjustment, with GradBench's camera model: 11 parameters
// per camera (angle-axis rotation, centre, focal length, principal point,
// two radial distortion terms), 3 per point, a weight per observation.
//
// Each observation's 15 inputs are gathered from the shared tables with
// gather_rows; batch_jacobian gives every observation's 2 x 15 Jacobian in
// one call. The normal equations are assembled per observation and reduced
// to the cameras (Schur complement), with the points' 3 x 3 blocks inverted
// as one batch by bj::linalg::inv; the reduced camera system is solved by
// bj::linalg::solve. Cameras 0 and 1 are held fixed (the gauge), intrinsics
// are known.
//
// Checked: observations made from the true scene are fitted from a perturbed
// start: the cost falls to below 1e-20 of where it started (a zero-residual
// problem: quadratic convergence at the end).
//
// Usage: bundle_adjustment   Exit status: 0 if the check passes, 1 if not, 2 on an exception.
#include <batchjac/batchjac.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

namespace bj = batchjac;

namespace {
constexpr std::int64_t n_cams = 10, n_pts = 300, per_point = 5, n_obs = n_pts * per_point;
constexpr std::int64_t cam_w = 11, free_cams = n_cams - 2, cam_dof = 6;  // rotation and centre move

// ---- the model, with batchjac's ops --------------------------------------------------------
// in [rows, 15] = [camera (11), point (3), weight] -> weighted reprojection error [rows, 2].
bj::Tensor residuals(const bj::Tensor& in, const bj::Tensor& features) {
  auto cols = [&](std::int64_t begin, std::int64_t size) { return bj::slice(in, {0, begin}, {-1, size}); };
  const bj::Tensor rot = cols(0, 3), centre = cols(3, 3), focal = cols(6, 1), principal = cols(7, 2);
  const bj::Tensor k1 = cols(9, 1), k2 = cols(10, 1), point = cols(11, 3), w = cols(14, 1);
  // Rodrigues: R v = v cos t + (k x v) sin t + k (k . v)(1 - cos t), k = rot / t.
  const bj::Tensor theta = bj::sqrt(bj::reduce_sum(bj::square(rot), {1}, true));
  const bj::Tensor axis = rot / theta, v = point - centre;
  const bj::Tensor xc = v * bj::cos(theta) + bj::cross(axis, v) * bj::sin(theta) +
                        axis * bj::reduce_sum(axis * v, {1}, true) * (1.0 - bj::cos(theta));
  const bj::Tensor p = bj::slice(xc, {0, 0}, {-1, 2}) / bj::slice(xc, {0, 2}, {-1, 1});
  const bj::Tensor r2 = bj::reduce_sum(bj::square(p), {1}, true);
  const bj::Tensor proj = focal * p * (1.0 + k1 * r2 + k2 * r2 * r2) + principal;
  return w * (proj - features);
}

// ---- the synthetic scene, in plain C++ -----------------------------------------------------
void rotate(const double* r, const double* v, double* out) {
  const double t = std::sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
  const double k[3] = {r[0] / t, r[1] / t, r[2] / t};
  const double kv = k[0] * v[0] + k[1] * v[1] + k[2] * v[2];
  const double kxv[3] = {k[1] * v[2] - k[2] * v[1], k[2] * v[0] - k[0] * v[2], k[0] * v[1] - k[1] * v[0]};
  for (int d = 0; d < 3; ++d) out[d] = v[d] * std::cos(t) + kxv[d] * std::sin(t) + k[d] * kv * (1 - std::cos(t));
}

struct Scene {
  std::vector<double> cams, pts, w;            // [n_cams, 11], [n_pts, 3], [n_obs]
  std::vector<std::int64_t> cam_of, pt_of, obs;  // per observation
};

Scene true_scene() {
  Scene s;
  for (std::int64_t c = 0; c < n_cams; ++c) {
    // Looking at the origin from distance 6: R (0 - C) = (0, 0, 6), so C = -R^T (0, 0, 6).
    const double r[3] = {0.05 * std::sin(double(c)), -0.5 + 0.11 * double(c), 0.03 * std::cos(double(c))};
    const double minus_r[3] = {-r[0], -r[1], -r[2]}, ahead[3] = {0, 0, 6};
    double centre[3];
    rotate(minus_r, ahead, centre);
    const double cam[cam_w] = {r[0], r[1], r[2], -centre[0], -centre[1], -centre[2], 800, 2, -3, 1e-3, -1e-4};
    s.cams.insert(s.cams.end(), cam, cam + cam_w);
  }
  for (std::int64_t p = 0; p < n_pts; ++p)
    for (int d = 0; d < 3; ++d) s.pts.push_back(std::sin(1.3 * double(p) + 2.1 * d));
  for (std::int64_t p = 0; p < n_pts; ++p)
    for (std::int64_t k = 0; k < per_point; ++k) {
      s.cam_of.push_back((p + 3 * k) % n_cams);
      s.pt_of.push_back(p);
      s.obs.push_back(static_cast<std::int64_t>(s.obs.size()));
      s.w.push_back(1.0);
    }
  return s;
}

bj::Tensor inputs(const Scene& s) {
  return bj::gather_rows({bj::constant(s.cams, {n_cams, cam_w}), bj::constant(s.pts, {n_pts, 3}), bj::constant(s.w, {n_obs})},
                         {s.cam_of, s.pt_of, s.obs});
}

double cost(const Scene& s, const bj::Tensor& features) {
  const auto r = residuals(inputs(s), features).to_vector<double>();
  double c = 0;
  for (double v : r) c += v * v;
  return 0.5 * c;
}
}  // namespace

int main() {
  try {
    const Scene truth = true_scene();
    const bj::Tensor features = bj::slice(residuals(inputs(truth), bj::zeros({1, 2})), {0, 0}, {-1, 2});  // w = 1
    Scene s = truth;  // the start: cameras 2.. and every point perturbed
    for (std::int64_t c = 2; c < n_cams; ++c)
      for (int d = 0; d < cam_dof; ++d) s.cams[static_cast<std::size_t>(c * cam_w + d)] += (d < 3 ? 0.01 : 0.05) * std::sin(double(7 * c + d));
    for (std::size_t i = 0; i < s.pts.size(); ++i) s.pts[i] += 0.05 * std::cos(double(3 * i));

    const double start_cost = cost(s, features);
    double current = start_cost, lambda = 1e-3;
    std::printf("start: cost %.6e\n", start_cost);
    const auto start = std::chrono::steady_clock::now();
    for (int iteration = 0; iteration < 20 && current > 1e-24 * start_cost; ++iteration) {
      // Residuals and their 2 x 15 Jacobians, every observation in one call.
      bj::GradientTape tape;
      const bj::Tensor in = inputs(s);
      tape.watch(in);
      const bj::Tensor res = residuals(in, features);
      std::vector<double> r(n_obs * 2), jac(n_obs * 2 * 15);
      tape.value_and_batch_jacobian_into(res, in, r, jac);

      // Normal equations by blocks: U (cameras), V (points), W (camera x point, per observation).
      std::vector<double> u(free_cams * 36, 0.0), v(n_pts * 9, 0.0), w(n_obs * 18, 0.0), gc(free_cams * 6, 0.0), gp(n_pts * 3, 0.0);
      for (std::int64_t o = 0; o < n_obs; ++o) {
        const double* j = &jac[static_cast<std::size_t>(o * 30)];  // [2][15]
        const std::int64_t c = s.cam_of[static_cast<std::size_t>(o)] - 2, p = s.pt_of[static_cast<std::size_t>(o)];
        for (int q = 0; q < 2; ++q) {
          const double rq = r[static_cast<std::size_t>(o * 2 + q)];
          const double* jc = j + q * 15;  // camera columns 0..5, point columns 11..13
          const double* jp = j + q * 15 + 11;
          for (int a = 0; a < 3; ++a) {
            gp[static_cast<std::size_t>(p * 3 + a)] += jp[a] * rq;
            for (int b = 0; b < 3; ++b) v[static_cast<std::size_t>(p * 9 + a * 3 + b)] += jp[a] * jp[b];
          }
          if (c < 0) continue;  // a fixed camera
          for (int a = 0; a < 6; ++a) {
            gc[static_cast<std::size_t>(c * 6 + a)] += jc[a] * rq;
            for (int b = 0; b < 6; ++b) u[static_cast<std::size_t>(c * 36 + a * 6 + b)] += jc[a] * jc[b];
            for (int b = 0; b < 3; ++b) w[static_cast<std::size_t>(o * 18 + a * 3 + b)] += jc[a] * jp[b];
          }
        }
      }
      // Levenberg damping, then the points' blocks inverted as one batch.
      for (std::int64_t p = 0; p < n_pts; ++p)
        for (int a = 0; a < 3; ++a) v[static_cast<std::size_t>(p * 9 + a * 4)] *= 1 + lambda;
      for (std::int64_t c = 0; c < free_cams; ++c)
        for (int a = 0; a < 6; ++a) u[static_cast<std::size_t>(c * 36 + a * 7)] *= 1 + lambda;
      const auto vinv = bj::linalg::inv(bj::constant(v, {n_pts, 3, 3})).to_vector<double>();

      // Reduced camera system S dc = rhs: S = U - sum_p W_p V_p^-1 W_p^T, rhs = gc - sum_p W_p V_p^-1 gp.
      const std::int64_t nc = free_cams * 6;
      std::vector<double> sm(nc * nc, 0.0), rhs(gc);
      for (std::int64_t c = 0; c < free_cams; ++c)
        for (int a = 0; a < 6; ++a)
          for (int b = 0; b < 6; ++b) sm[static_cast<std::size_t>((c * 6 + a) * nc + c * 6 + b)] = u[static_cast<std::size_t>(c * 36 + a * 6 + b)];
      for (std::int64_t p = 0; p < n_pts; ++p) {
        const double* vi = &vinv[static_cast<std::size_t>(p * 9)];
        for (std::int64_t k = 0; k < per_point; ++k) {
          const std::int64_t o = p * per_point + k, c = s.cam_of[static_cast<std::size_t>(o)] - 2;
          if (c < 0) continue;
          double wv[6][3] = {};  // W_o V_p^-1
          for (int a = 0; a < 6; ++a)
            for (int b = 0; b < 3; ++b)
              for (int e = 0; e < 3; ++e) wv[a][b] += w[static_cast<std::size_t>(o * 18 + a * 3 + e)] * vi[e * 3 + b];
          for (int a = 0; a < 6; ++a)
            for (int b = 0; b < 3; ++b) rhs[static_cast<std::size_t>(c * 6 + a)] -= wv[a][b] * gp[static_cast<std::size_t>(p * 3 + b)];
          for (std::int64_t k2 = 0; k2 < per_point; ++k2) {
            const std::int64_t o2 = p * per_point + k2, c2 = s.cam_of[static_cast<std::size_t>(o2)] - 2;
            if (c2 < 0) continue;
            for (int a = 0; a < 6; ++a)
              for (int b = 0; b < 6; ++b) {
                double t = 0;
                for (int e = 0; e < 3; ++e) t += wv[a][e] * w[static_cast<std::size_t>(o2 * 18 + b * 3 + e)];
                sm[static_cast<std::size_t>((c * 6 + a) * nc + c2 * 6 + b)] -= t;
              }
          }
        }
      }
      const auto dc = bj::linalg::solve(bj::constant(sm, {nc, nc}), bj::constant(rhs, {nc, 1})).to_vector<double>();
      // Back-substitution: dp = V_p^-1 (gp - sum_o W_o^T dc).
      Scene trial = s;
      for (std::int64_t p = 0; p < n_pts; ++p) {
        double g[3] = {gp[static_cast<std::size_t>(p * 3)], gp[static_cast<std::size_t>(p * 3 + 1)], gp[static_cast<std::size_t>(p * 3 + 2)]};
        for (std::int64_t k = 0; k < per_point; ++k) {
          const std::int64_t o = p * per_point + k, c = s.cam_of[static_cast<std::size_t>(o)] - 2;
          if (c < 0) continue;
          for (int b = 0; b < 3; ++b)
            for (int a = 0; a < 6; ++a) g[b] -= w[static_cast<std::size_t>(o * 18 + a * 3 + b)] * dc[static_cast<std::size_t>(c * 6 + a)];
        }
        for (int a = 0; a < 3; ++a)
          for (int b = 0; b < 3; ++b) trial.pts[static_cast<std::size_t>(p * 3 + a)] -= vinv[static_cast<std::size_t>(p * 9 + a * 3 + b)] * g[b];
      }
      for (std::int64_t c = 0; c < free_cams; ++c)
        for (int a = 0; a < 6; ++a) trial.cams[static_cast<std::size_t>((c + 2) * cam_w + a)] -= dc[static_cast<std::size_t>(c * 6 + a)];
      const double next = cost(trial, features);
      const bool accept = next < current;
      std::printf("iteration %2d: lambda %.1e, cost %.6e%s\n", iteration, lambda, next, accept ? "" : " (rejected)");
      if (accept) s = trial, current = next, lambda = std::max(lambda / 10, 1e-12);
      else lambda *= 10;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%lld cameras, %lld points, %lld observations: cost %.3e -> %.3e in %.2f s\n",
                static_cast<long long>(n_cams), static_cast<long long>(n_pts), static_cast<long long>(n_obs), start_cost, current, seconds);
    const bool ok = current < 1e-20 * start_cost;
    std::printf("%s\n", ok ? "bundle_adjustment: ok" : "bundle_adjustment: FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bundle_adjustment: %s\n", e.what());
    return 2;
  }
}
