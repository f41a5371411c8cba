// Scalar-code versions of W1, W3, W8, W9, W10 and W11: each workload written
// as a Ceres-style functor (template <class T> void operator()(const T* x,
// T* y) const) straight from shared/WORKLOADS.md's formulas, run through
// bj::scalar_function on one of its paths.
//
// scalar_workloads.cpp is built with the user's flags (-O3 -march=native with
// BATCHJAC_BENCH_NATIVE), since bj::scalar_function's compiled path is
// instantiated in the caller's translation unit. This header therefore shares
// nothing of scalar_function.hpp (xsimd, bj::Dual) with the harness: the
// functors and their ScalarFunction instantiations stay inside that file, and
// the harness sees them only through std::function.
#pragma once

#include "analytic.hpp"

#include <batchjac/jacobian_options.hpp>

#include <functional>
#include <span>
#include <string>

namespace bjbench {

namespace bj = batchjac;

// bj::ScalarPath, named here without scalar_function.hpp.
enum class ScalarPath { automatic, compiled, traced };
const char* scalar_path_name(ScalarPath path);  // "automatic", "compiled", "traced"

// One workload's functor behind bj::scalar_function<n, m>(functor, path).
template <class T>
struct ScalarVersion {
  // ScalarFunction::batch_jacobian_into(x [b][n], jacobian [b][m][n], options).
  std::function<void(std::span<const T>, std::span<T>, const bj::JacobianOptions&)> batch_jacobian_into;
  // The path a call with `options` takes ("compiled" or "traced"): the forced
  // one, or the cost model's choice for ScalarPath::automatic
  // (ScalarFunction::path; traces the functor on first use).
  std::function<std::string(const bj::JacobianOptions&)> path;
};

// The inputs and constants are those of the tensor versions (workloads.cpp):
// the same generators, kinetics_mechanism() and layernorm_params<float>().
ScalarVersion<double> scalar_square(ScalarPath path);         // W1
ScalarVersion<double> scalar_kinetics(ScalarPath path);       // W3
ScalarVersion<double> scalar_neohookean(ScalarPath path);     // W8
ScalarVersion<float> scalar_layernorm_gelu(ScalarPath path);  // W9, float32
ScalarVersion<double> scalar_lj(ScalarPath path);             // W10
ScalarVersion<double> scalar_rk4(ScalarPath path);            // W11

}  // namespace bjbench
