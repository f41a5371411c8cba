// custom_jvp: a function of tensors whose derivative is a rule the user
// writes in tensor ops (JAX's jax.custom_jvp).
#pragma once

#include <batchjac/tensor.hpp>

#include <functional>
#include <vector>

namespace batchjac {

// y = f(x_1, ..., x_n), differentiated by the user's rule instead of f's
// ops: for a numerically stable derivative of an expression whose automatic
// one overflows (log(1 + exp(x)) at large x), a surrogate derivative, or a
// closed form cheaper than the automatic one.
//
// The rule, jvp(primals, y, tangents), returns y's tangent given the
// inputs, f's result y and one tangent per input (shaped like it), written
// in the public ops like f. It must be linear in the tangents (sums,
// products with values computed from primals or constants, index, shape
// and linear-algebra ops on them); its transpose for reverse mode is
// derived, as for every op. A zero derivative is `tangents[0] * 0.0`.
// Inside batch_jacobian, the rule's ops are checked by the batch-axis rules
// like f's (a rule that mixes examples is a ValueError naming the op).
//
// Calling it runs f; when a live tape tracks an input, it also traces the
// rule once on that call's tensors (recorded on no tape; its ops on
// tangent placeholders are never evaluated) and records one custom_jvp
// node giving y. Then every Jacobian, gradient and mode through the result
// uses the rule: forward mode runs it on the tangents, reverse mode its
// transpose. f's own ops give the value only; inside batch_jacobian the
// engine computes that value per example, so f's ops are checked by the
// batch-axis rules too.
// ValueError: no inputs, an input or f's result that is not float32 or
// float64, a rule result of another shape or dtype than y, or one not
// computed from the tangents; a rule found not linear in the tangents
// raises ValueError when a Jacobian is taken.
class CustomJvp {
 public:
  using Function = std::function<Tensor(const std::vector<Tensor>& primals)>;
  using Rule = std::function<Tensor(const std::vector<Tensor>& primals, const Tensor& primal_out,
                                    const std::vector<Tensor>& tangents)>;

  CustomJvp(Function f, Rule jvp);

  Tensor operator()(const std::vector<Tensor>& primals) const;
  Tensor operator()(const Tensor& x) const { return (*this)(std::vector<Tensor>{x}); }

 private:
  Function f_;
  Rule jvp_;
};

inline CustomJvp custom_jvp(CustomJvp::Function f, CustomJvp::Rule jvp) {
  return CustomJvp(std::move(f), std::move(jvp));
}

}  // namespace batchjac
