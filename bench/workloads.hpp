// The workloads of shared/WORKLOADS.md as batchjac's users write them: inputs
// held in the user's array, the function written with batchjac's public ops,
// and the whole call a user makes each time they need the Jacobians. Shared by
// batchjac_bench and memory_probe.
#pragma once

#include "analytic.hpp"

#include <batchjac/batchjac.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bjbench {

namespace bj = batchjac;

template <class T>
constexpr bj::DType dtype_of() {
  return sizeof(T) == sizeof(double) ? bj::float64 : bj::float32;
}

// The source tensor made from the user's array: the one place a call turns
// its input into a Tensor, a view of it (no copy).
template <class T>
bj::Tensor make_source(std::span<const T> data, bj::Shape shape) {
  return bj::view(data, shape);
}

// One workload at one batch size: its inputs, its fast analytic Jacobian on a
// slice of the batch, and its function written with batchjac's ops.
template <class T>
struct Workload {
  std::string name;
  std::int64_t batch;
  int n, m;
  AlignedVector<T> x;                                          // [batch][n], the user's array
  std::function<void(const T*, std::int64_t, T*)> jacobian;   // (x, b, J) for a slice
  std::function<bj::Tensor(const bj::Tensor&)> forward;       // x [b, n] -> y [b, m]
  std::int64_t grain = 64;  // slice bounds for split_batch (blocks stream 8-example lines)
  // W8, W10: a per-example scalar x [b, n] -> [b] whose Hessian is
  // hessian_sign * the Jacobian (W8's strain energy, W10's potential energy).
  std::function<bj::Tensor(const bj::Tensor&)> energy;
  double hessian_sign = 1;

  bj::Tensor source() const {
    return make_source(std::span<const T>(x.data(), x.size()), bj::Shape{batch, n});
  }
  // The analytic Jacobian on `threads` threads.
  void analytic(int threads, T* jac) const {
    split_batch(batch, threads, grain, [&](std::int64_t begin, std::int64_t end) {
      jacobian(x.data() + begin * n, end - begin, jac + begin * m * n);
    });
  }
};

// What a user's code does each time it needs the Jacobians: the source from
// its array, a new tape, the function recorded, batch_jacobian returning a
// new tensor.
template <class T>
std::optional<bj::Tensor> call(const Workload<T>& w, const bj::JacobianOptions& options) {
  bj::GradientTape tape;
  const bj::Tensor x = w.source();
  tape.watch(x);
  const bj::Tensor y = w.forward(x);
  return tape.batch_jacobian(y, x, options);
}

// The same call for the Hessians of w.energy: the source from the user's
// array, a new tape, the energy recorded, batch_hessian returning a new tensor.
template <class T>
std::optional<bj::Tensor> hessian_call(const Workload<T>& w, const bj::JacobianOptions& options) {
  bj::GradientTape tape;
  const bj::Tensor x = w.source();
  tape.watch(x);
  const bj::Tensor e = w.energy(x);
  return bj::batch_hessian(tape, e, x, options);
}

// The workloads, at batch b (WORKLOADS.md's sizes are w1::batch etc.).
std::shared_ptr<const Workload<double>> make_square(std::int64_t b);
template <class T>
std::shared_ptr<const Workload<T>> make_mlp(std::int64_t b);
#ifdef BATCHJAC_BENCH_W3
std::shared_ptr<const Workload<double>> make_kinetics(std::int64_t b);
#endif
std::shared_ptr<const Workload<double>> make_neohookean(std::int64_t b);
std::shared_ptr<const Workload<float>> make_layernorm_gelu(std::int64_t b);
std::shared_ptr<const Workload<double>> make_lj(std::int64_t b);
std::shared_ptr<const Workload<double>> make_rk4(std::int64_t b);

// A workload of either dtype, for tools that pick one by name.
using AnyWorkload =
    std::variant<std::shared_ptr<const Workload<float>>, std::shared_ptr<const Workload<double>>>;
// "W1", "W2f32", "W2f64", "W3", "W8", "W9", "W10", "W11" (case as written);
// b = 0: WORKLOADS.md's batch. nullopt for an unknown name.
std::optional<AnyWorkload> workload_by_name(std::string_view name, std::int64_t b = 0);
inline constexpr const char* kWorkloadNames = "W1 W2f32 W2f64 W3 W8 W9 W10 W11";

}  // namespace bjbench
