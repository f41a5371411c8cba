// bj::trace: a function of tensors recorded once, then called on the
// caller's arrays every solver step with no recording (TF: tf.function
// around the tape code).
#pragma once

#include <batchjac/jacobian_options.hpp>
#include <batchjac/tensor.hpp>

#include <functional>
#include <type_traits>
#include <memory>
#include <optional>
#include <span>
#include <utility>

namespace batchjac {

// The shape and dtype of a function's input: its first dimension is the
// batch and is -1 (any size), e.g. TensorSpec{Shape{-1, 17}, float64}.
struct TensorSpec {
  Shape shape;
  DType dtype = DType::float64;
};

class Function;

namespace detail {
struct FunctionState;
// A traced function's estimated work per example (vector operations, by
// its plan under `options`) and the number of ops it computes
// (bj::scalar_function's cost model).
struct TracedCost {
  double per_example = 0;
  std::int64_t ops = 0;
  // Over those ops, the source elements each depends on, summed.
  double active = 0;
  // Whether the plan's calls will run generated code (see codegen.hpp).
  bool generated = false;
};
TracedCost traced_cost(const Function& f, const JacobianOptions& options);
}  // namespace detail

// A traced function x [b, x...] -> y [b, y...] (optionally with a second,
// per-example input `aux` [b, a...] it is not differentiated against: a
// bundle-adjustment observation's point, a cell's pressure). Copies share
// one traced program and its plans. Every method is safe to call from many
// threads at once (a caller's OpenMP or TBB loop over slices of its arrays).
//
// Calls record nothing and run the plans kept from the first call of the
// same options: the numbers are those of recording f on a tape and calling
// the tape's method with the same options, bit for bit. A call's tensors
// are not recorded on the caller's tapes either (no nested derivatives
// yet), except that a function whose result is not computed from x or aux
// (a constant) runs f itself for its value, as an ordinary call would.
class Function {
 public:
  // f(x) (or f(x, aux)): a new tensor [b, y...], computed, not deferred.
  Tensor operator()(const Tensor& x) const;
  Tensor operator()(const Tensor& x, const Tensor& aux) const;

  // GradientTape::batch_jacobian(f(x), x, options): [b, y..., x...]; nullopt
  // when f(x) does not depend on x and unconnected_gradients is none.
  std::optional<Tensor> batch_jacobian(const Tensor& x, const JacobianOptions& options = {}) const;
  std::optional<Tensor> batch_jacobian(const Tensor& x, const Tensor& aux,
                                       const JacobianOptions& options = {}) const;

  // Per-example Hessians [b, x..., x...] of a function with one scalar per
  // example (output [b, 1]; ValueError otherwise), symmetric bit for
  // bit: bj::batch_hessian's forward over reverse, traced once. On the first
  // call f's gradient (f recorded under a tape, its gradient derived as
  // ops) is traced as a Function of its own and kept. nullopt (or zeros,
  // under unconnected_gradients) when f is constant or linear in x.
  std::optional<Tensor> batch_hessian(const Tensor& x, const JacobianOptions& options = {}) const;
  std::optional<Tensor> batch_hessian(const Tensor& x, const Tensor& aux,
                                      const JacobianOptions& options = {}) const;

  // Into the caller's memory. The batch is x.size() / the elements of one
  // example of x; `jacobian` holds b * prod(y...) * prod(x...) elements,
  // `value` b * prod(y...), `aux` b * prod(a...), row-major, batch first.
  // ValueError: a size that does not divide or does not match, a span type
  // that is not the input's dtype (float: float32, double: float64).
  // Unconnected: the Jacobian is zeros. A Function traced with aux needs it,
  // as a span of x's type (a Function whose aux spec has another dtype
  // takes aux as a Tensor only).
  void batch_jacobian_into(std::span<const float> x, std::span<float> jacobian,
                           const JacobianOptions& options = {}) const;
  void batch_jacobian_into(std::span<const double> x, std::span<double> jacobian,
                           const JacobianOptions& options = {}) const;
  void batch_jacobian_into(std::span<const float> x, std::span<const float> aux, std::span<float> jacobian,
                           const JacobianOptions& options = {}) const;
  void batch_jacobian_into(std::span<const double> x, std::span<const double> aux,
                           std::span<double> jacobian, const JacobianOptions& options = {}) const;
  void value_and_batch_jacobian_into(std::span<const float> x, std::span<float> value,
                                     std::span<float> jacobian, const JacobianOptions& options = {}) const;
  void value_and_batch_jacobian_into(std::span<const double> x, std::span<double> value,
                                     std::span<double> jacobian, const JacobianOptions& options = {}) const;
  void value_and_batch_jacobian_into(std::span<const float> x, std::span<const float> aux,
                                     std::span<float> value, std::span<float> jacobian,
                                     const JacobianOptions& options = {}) const;
  void value_and_batch_jacobian_into(std::span<const double> x, std::span<const double> aux,
                                     std::span<double> value, std::span<double> jacobian,
                                     const JacobianOptions& options = {}) const;

  // The input's spec, aux's (if traced with one), and the output's: [-1, y...].
  const TensorSpec& input_spec() const;
  const std::optional<TensorSpec>& aux_spec() const;
  const TensorSpec& output_spec() const;

  explicit Function(std::shared_ptr<const detail::FunctionState> state) : state_(std::move(state)) {}

 private:
  friend detail::TracedCost detail::traced_cost(const Function& f, const JacobianOptions& options);
  std::optional<Tensor> hessian(const Tensor& x, const Tensor* aux, const JacobianOptions& options) const;
  std::shared_ptr<const detail::FunctionState> state_;
};

namespace detail {
Function trace_function(std::function<Tensor(const Tensor&, const Tensor*)> f, const TensorSpec& spec,
                        const std::optional<TensorSpec>& aux);
}

// Records f once on a placeholder input of `spec` (a batch of 2 examples)
// and returns the Function. f is kept: when its program holds per-example
// constants of its own (a tensor shaped [b, ...] that f makes from
// x.shape()[0]), the program depends on the batch size, and the Function
// traces f again for each batch size (the last 4 are kept). f must not
// branch on the values of x (use where): they are placeholders while it
// is traced. Shared constants f captures are captured at trace time.
// ValueError: a spec that is not [-1, ...] of float32 or float64, an f
// whose result is not [b, ...] of a float type, an f that mixes examples
// (as batch_jacobian); what f itself raises is passed on.
template <class F>
  requires std::is_invocable_r_v<Tensor, const F&, const Tensor&>
Function trace(F f, const TensorSpec& spec) {
  return detail::trace_function([f = std::move(f)](const Tensor& x, const Tensor*) { return f(x); }, spec,
                                std::nullopt);
}

// With a per-example input aux [b, a...] (same batch as x), not
// differentiated against: f(x, aux).
template <class F>
  requires std::is_invocable_r_v<Tensor, const F&, const Tensor&, const Tensor&>
Function trace(F f, const TensorSpec& spec, const TensorSpec& aux) {
  return detail::trace_function([f = std::move(f)](const Tensor& x, const Tensor* a) { return f(x, *a); }, spec,
                                aux);
}

}  // namespace batchjac
