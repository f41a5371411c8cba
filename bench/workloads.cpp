// The workloads of shared/WORKLOADS.md written with batchjac's public ops, as a
// TF user would write them, each beside its analytic Jacobian (analytic.hpp).
#include "workloads.hpp"

#include <utility>

namespace bjbench {
namespace {

template <class T>
bj::Tensor tensor(const std::vector<T>& data, bj::Shape shape) {
  return bj::constant(std::span<const T>(data.data(), data.size()), std::move(shape),
                      dtype_of<T>());
}

// A workload whose analytic kernel needs nothing but x.
std::shared_ptr<Workload<double>> plain(std::string name, std::int64_t b, int n, int m,
                                        AlignedVector<double> x,
                                        void (*jacobian)(const double*, std::int64_t, double*)) {
  auto w = std::make_shared<Workload<double>>();
  w->name = std::move(name);
  w->batch = b;
  w->n = n;
  w->m = m;
  w->x = std::move(x);
  w->jacobian = jacobian;
  return w;
}

}  // namespace

std::shared_ptr<const Workload<double>> make_square(std::int64_t b) {
  auto w = plain("W1 f64", b, w1::n, w1::m, default_inputs<double>(b, w1::n), square_jacobian);
  w->forward = [](const bj::Tensor& x) { return x * x; };
  return w;
}

// y = matmul(tanh(matmul(x, W1^T) + c1), W2^T) + c2, with the transposed
// weights as [in, out] constants, as a TF user would write the layer.
template <class T>
std::shared_ptr<const Workload<T>> make_mlp(std::int64_t b) {
  using namespace w2;
  auto w = std::make_shared<Workload<T>>();
  w->name = sizeof(T) == 8 ? "W2 f64" : "W2 f32";
  w->batch = b;
  w->n = n;
  w->m = m;
  w->x = default_inputs<T>(b, n);
  const auto weights = std::make_shared<const MlpWeights<T>>(mlp_weights<T>());
  w->jacobian = [weights](const T* x, std::int64_t count, T* jac) {
    mlp_jacobian(*weights, x, count, jac);
  };
  std::vector<T> w1t(n * h), w2t(h * m);
  for (int k = 0; k < h; ++k) {
    for (int j = 0; j < n; ++j) w1t[j * h + k] = weights->w1[k * n + j];
    for (int r = 0; r < m; ++r) w2t[k * m + r] = weights->w2[r * h + k];
  }
  w->forward = [weights, w1t, w2t](const bj::Tensor& x) {
    const bj::Tensor a = bj::tanh(bj::matmul(x, tensor(w1t, {n, h})) + tensor(weights->c1, {h}));
    return bj::matmul(a, tensor(w2t, {h, m})) + tensor(weights->c2, {m});
  };
  return w;
}
template std::shared_ptr<const Workload<float>> make_mlp<float>(std::int64_t);
template std::shared_ptr<const Workload<double>> make_mlp<double>(std::int64_t);

#ifdef BATCHJAC_BENCH_W3
namespace {
// W3 as a user would write it with TF's ops: per-reaction rate constants as
// [1, nr] rows broadcast against T [b, 1], species picked with gather, the
// stoichiometry as a constant matrix.
bj::Tensor kinetics_forward(const bj::Tensor& x) {
  using namespace w3;
  const KineticsMechanism& k = kinetics_mechanism();
  auto row = [](auto const& values) {
    const std::vector<double> v(values.begin(), values.end());
    return tensor(v, {1, static_cast<std::int64_t>(v.size())});
  };
  auto indices = [](auto const& species) {
    return std::vector<std::int64_t>(species.begin(), species.end());
  };
  std::vector<double> nu(nr * ns, 0.0);  // [nr, ns]: wdot = q nu
  for (int r = 0; r < nr; ++r) {
    nu[r * ns + k.reactant_a[r]] -= 1;
    nu[r * ns + k.reactant_b[r]] -= 1;
    nu[r * ns + k.product_c[r]] += 1;
    nu[r * ns + k.product_d[r]] += 1;
  }
  const bj::Tensor t = bj::slice(x, {0, 0}, {-1, 1});   // [b, 1]
  const bj::Tensor c = bj::slice(x, {0, 1}, {-1, ns});  // [b, ns]
  // kf = A T^beta exp(-Ea / T), written exp(beta log T - Ea (1 / T)) since beta varies by
  // reaction; 1 / T once per example, as the analytic kernel does.
  const bj::Tensor kf = row(k.prefactor) *
                        bj::exp(row(k.temp_exponent) * bj::log(t) - row(k.activation) * bj::reciprocal(t));
  const bj::Tensor kr = kf * row(k.reverse_ratio);
  const bj::Tensor q =
      kf * bj::gather(c, indices(k.reactant_a), 1) * bj::gather(c, indices(k.reactant_b), 1) -
      kr * bj::gather(c, indices(k.product_c), 1) * bj::gather(c, indices(k.product_d), 1);
  const bj::Tensor wdot = bj::matmul(q, tensor(nu, {nr, ns}));                     // [b, ns]
  const bj::Tensor dt = -bj::reduce_sum(wdot * row(k.enthalpy), {1}, /*keepdims=*/true);  // [b, 1]
  return bj::concat({dt, wdot}, 1);
}
}  // namespace

std::shared_ptr<const Workload<double>> make_kinetics(std::int64_t b) {
  auto w = plain("W3 f64", b, w3::n, w3::m, kinetics_inputs(b), kinetics_jacobian);
  w->forward = kinetics_forward;
  return w;
}
#endif

namespace {

// ---- W8 neohookean ---------------------------------------------------------------------------

// P = mu (F - F^-T) + lambda log(det F) F^-T, F the rows of x [b, 9]. There is
// no det or inverse op (tf.linalg.det / inv): the cofactor rows of a 3x3 are
// cross products of its rows, det F = r0 . (r1 x r2), and F^-T = cofactors / det.
bj::Tensor neohookean_forward(const bj::Tensor& x) {
  using namespace w8;
  const bj::Tensor r0 = bj::slice(x, {0, 0}, {-1, 3});
  const bj::Tensor r1 = bj::slice(x, {0, 3}, {-1, 3});
  const bj::Tensor r2 = bj::slice(x, {0, 6}, {-1, 3});
  const bj::Tensor c0 = bj::cross(r1, r2);
  const bj::Tensor det = bj::reduce_sum(r0 * c0, {1}, /*keepdims=*/true);  // [b, 1]
  const bj::Tensor finv_t = bj::concat({c0, bj::cross(r2, r0), bj::cross(r0, r1)}, 1) / det;
  return mu * (x - finv_t) + lambda * bj::log(det) * finv_t;
}

// The strain energy whose gradient is P: W = mu/2 (tr(F^T F) - 3) - mu log J
// + lambda/2 (log J)^2, J = det F by tf.linalg.det's counterpart: [b].
bj::Tensor neohookean_energy(const bj::Tensor& x) {
  using namespace w8;
  const bj::Tensor log_j = bj::log(bj::linalg::det(bj::reshape(x, {-1, 3, 3})));
  return (mu / 2) * (bj::reduce_sum(bj::square(x), {1}) - 3.0) - mu * log_j + (lambda / 2) * log_j * log_j;
}

// ---- W9 layernorm-gelu ------------------------------------------------------------------------

bj::Tensor layernorm_gelu_forward(const bj::Tensor& x, const LayerNormParams<float>& p) {
  using namespace w9;
  const bj::Tensor centered = x - bj::reduce_mean(x, {1}, /*keepdims=*/true);
  const bj::Tensor var = bj::reduce_mean(bj::square(centered), {1}, /*keepdims=*/true);
  const bj::Tensor xh = centered * bj::rsqrt(var + epsilon);
  const bj::Tensor z = tensor(p.gamma, {n}) * xh + tensor(p.beta, {n});
  return 0.5 * z * (1.0 + bj::tanh(0.7978845608 * (z + 0.044715 * z * z * z)));
}

// ---- W10 lj8 ----------------------------------------------------------------------------------

// All pairs at once: d[b, k, l] = p_k - p_l, F_k = sum_l g(r_kl) d_kl. The
// l == k terms have r = 0: r^2 is replaced by 1 there before the singular
// math, and their g by 0 after it ("double where"): one where alone would
// leave inf * 0 = NaN in the derivative of g.
bj::Tensor lj_forward(const bj::Tensor& x, const bj::Tensor& pair_mask) {
  using namespace w10;
  const bj::Tensor p = bj::reshape(x, {-1, atoms, 3});
  const bj::Tensor d = bj::expand_dims(p, 2) - bj::expand_dims(p, 1);  // [b, 8, 8, 3]
  const bj::Tensor r2 = bj::reduce_sum(bj::square(d), {3}, /*keepdims=*/true);
  const bj::Tensor inv_r2 = bj::reciprocal(bj::where(pair_mask, r2, bj::ones({1})));
  const bj::Tensor s6 = inv_r2 * inv_r2 * inv_r2;
  const bj::Tensor g = 24.0 * s6 * inv_r2 * (2.0 * s6 - 1.0);  // 24 (2 r^-14 - r^-8)
  const bj::Tensor force = bj::reduce_sum(bj::where(pair_mask, g, bj::zeros({1})) * d, {2});
  return bj::reshape(force, {-1, n});
}

// The cluster's energy E = sum_{k<l} 4 (r^-12 - r^-6), whose gradient is
// minus the forces: all pairs as in lj_forward, the pairs k >= l masked by a
// double where (`upper` [8, 8]: l > k): [b].
bj::Tensor lj_energy(const bj::Tensor& x, const bj::Tensor& upper) {
  using namespace w10;
  const bj::Tensor p = bj::reshape(x, {-1, atoms, 3});
  const bj::Tensor d = bj::expand_dims(p, 2) - bj::expand_dims(p, 1);  // [b, 8, 8, 3]
  const bj::Tensor r2 = bj::reduce_sum(bj::square(d), {3});          // [b, 8, 8]
  const bj::Tensor inv_r2 = bj::reciprocal(bj::where(upper, r2, bj::ones({1})));
  const bj::Tensor s6 = inv_r2 * inv_r2 * inv_r2;
  const bj::Tensor pair = 4.0 * (s6 * s6 - s6);
  return bj::reduce_sum(bj::where(upper, pair, bj::zeros({1})), {1, 2});
}

// ---- W11 rk4 ----------------------------------------------------------------------------------

// f(q, v) = [v, a], a_k = -(phi(d_k) - phi(d_{k+1})) - 0.05 v_k, phi(d) = d + 0.1 d^3,
// d = diff of q padded with the fixed ends q_{-1} = q_8 = 0.
bj::Tensor rk4_rhs(const bj::Tensor& s) {
  using namespace w11;
  const bj::Tensor q = bj::slice(s, {0, 0}, {-1, dof});
  const bj::Tensor v = bj::slice(s, {0, dof}, {-1, dof});
  const bj::Tensor padded = bj::pad(q, {{0, 0}, {1, 1}});  // [b, 10]
  const bj::Tensor d = bj::slice(padded, {0, 1}, {-1, dof + 1}) -
                       bj::slice(padded, {0, 0}, {-1, dof + 1});  // [b, 9]
  const bj::Tensor phi = d + 0.1 * d * d * d;
  const bj::Tensor a =
      bj::slice(phi, {0, 1}, {-1, dof}) - bj::slice(phi, {0, 0}, {-1, dof}) - 0.05 * v;
  return bj::concat({v, a}, 1);
}

bj::Tensor rk4_forward(const bj::Tensor& x) {
  using w11::dt;
  const bj::Tensor k1 = rk4_rhs(x);
  const bj::Tensor k2 = rk4_rhs(x + (dt / 2) * k1);
  const bj::Tensor k3 = rk4_rhs(x + (dt / 2) * k2);
  const bj::Tensor k4 = rk4_rhs(x + dt * k3);
  return x + (dt / 6) * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
}

}  // namespace

std::shared_ptr<const Workload<double>> make_neohookean(std::int64_t b) {
  auto w = plain("W8 f64", b, w8::n, w8::m, neohookean_inputs(b), neohookean_jacobian);
  w->forward = neohookean_forward;
  w->energy = neohookean_energy;  // its Hessian is the Jacobian of P
  return w;
}

std::shared_ptr<const Workload<float>> make_layernorm_gelu(std::int64_t b) {
  auto w = std::make_shared<Workload<float>>();
  w->name = "W9 f32";
  w->batch = b;
  w->n = w9::n;
  w->m = w9::m;
  w->x = layernorm_inputs<float>(b);
  const auto params = std::make_shared<const LayerNormParams<float>>(layernorm_params<float>());
  w->jacobian = [params](const float* x, std::int64_t count, float* jac) {
    layernorm_gelu_jacobian(*params, x, count, jac);
  };
  w->forward = [params](const bj::Tensor& x) { return layernorm_gelu_forward(x, *params); };
  return w;
}

std::shared_ptr<const Workload<double>> make_lj(std::int64_t b) {
  using namespace w10;
  auto w = plain("W10 f64", b, n, m, lj_inputs(b), lj_jacobian);
  std::vector<double> not_self(atoms * atoms, 1.0);  // [k, l, 1]: l != k
  for (int k = 0; k < atoms; ++k) not_self[k * atoms + k] = 0.0;
  const bj::Tensor mask = bj::constant(not_self, {atoms, atoms, 1}, bj::boolean);
  w->forward = [mask](const bj::Tensor& x) { return lj_forward(x, mask); };
  std::vector<double> upper(atoms * atoms, 0.0);  // [k, l]: l > k
  for (int k = 0; k < atoms; ++k)
    for (int l = k + 1; l < atoms; ++l) upper[k * atoms + l] = 1.0;
  const bj::Tensor pairs = bj::constant(upper, {atoms, atoms}, bj::boolean);
  w->energy = [pairs](const bj::Tensor& x) { return lj_energy(x, pairs); };
  w->hessian_sign = -1;  // the Hessian of the energy is minus the forces' Jacobian
  return w;
}

std::shared_ptr<const Workload<double>> make_rk4(std::int64_t b) {
  auto w = plain("W11 f64", b, w11::n, w11::m, default_inputs<double>(b, w11::n), rk4_jacobian);
  w->forward = rk4_forward;
  return w;
}

std::optional<AnyWorkload> workload_by_name(std::string_view name, std::int64_t b) {
  auto at = [b](std::int64_t batch) { return b > 0 ? b : batch; };
  if (name == "W1") return make_square(at(w1::batch));
  if (name == "W2f32") return make_mlp<float>(at(w2::batch));
  if (name == "W2f64") return make_mlp<double>(at(w2::batch));
#ifdef BATCHJAC_BENCH_W3
  if (name == "W3") return make_kinetics(at(w3::batch));
#endif
  if (name == "W8") return make_neohookean(at(w8::batch));
  if (name == "W9") return make_layernorm_gelu(at(w9::batch));
  if (name == "W10") return make_lj(at(w10::batch));
  if (name == "W11") return make_rk4(at(w11::batch));
  return std::nullopt;
}

}  // namespace bjbench
