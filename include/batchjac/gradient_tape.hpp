// GradientTape: records the ops of this thread and differentiates them.
#pragma once

#include <batchjac/jacobian_options.hpp>
#include <batchjac/tensor.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace batchjac {

namespace detail {
struct TapeState;
}

struct TapeOptions {
  // false: the tape answers exactly one batch_jacobian, jacobian or gradient.
  bool persistent = false;
};

// While it lives, a tape records every op run on the thread that created it
// whose input is watched by it, directly or through recorded ops. Tapes nest:
// an op is recorded on each live tape that tracks one of its inputs. A tape is
// not thread-safe; use it from one thread at a time, and not while its
// creator thread runs ops on tensors it tracks. It may be destroyed on any
// thread, after its creator thread has ended, or at exit (a static tape):
// it leaves its creator thread's list of tapes under a lock, so that
// thread's ops never see it again. Ops run by destructors at the exit of
// their thread (or of the program) may go unrecorded.
class GradientTape {
 public:
  explicit GradientTape(TapeOptions options = {});
  ~GradientTape();
  GradientTape(const GradientTape&) = delete;
  GradientTape& operator=(const GradientTape&) = delete;

  // Tracks x. ValueError for a boolean tensor (it has no derivative).
  void watch(const Tensor& x);

  // Pauses recording on this tape while the returned guard lives. The guard
  // may outlive the tape; it then does nothing.
  class [[nodiscard]] RecordingPause {
   public:
    ~RecordingPause();
    RecordingPause(RecordingPause&& other) noexcept;
    RecordingPause(const RecordingPause&) = delete;
    RecordingPause& operator=(const RecordingPause&) = delete;
    RecordingPause& operator=(RecordingPause&&) = delete;

   private:
    friend class GradientTape;
    explicit RecordingPause(std::weak_ptr<detail::TapeState> state);
    std::weak_ptr<detail::TapeState> state_;
  };
  RecordingPause stop_recording();

  // Ends recording for good, as leaving TF's `with tf.GradientTape() as
  // tape:` block does: ops run afterwards are not recorded (they are eager),
  // and what was recorded can still be differentiated. Otherwise a
  // persistent tape records every op on tensors it tracks for as long as it
  // lives, and keeps those tensors: call this once the function is recorded
  // when the tape is kept for repeated Jacobians. A non-persistent tape
  // ends recording, and releases what it recorded, when it answers its one
  // call.
  void end_recording() noexcept;
  // Whether ops on tensors it tracks are recorded now: false after
  // end_recording, after a non-persistent tape's answer, and for a tape
  // created while its thread was exiting. (A live stop_recording guard
  // pauses it without ending it.)
  bool recording() const noexcept;

  // Forgets everything recorded and watched; a used or ended tape records
  // and answers again (TF: leaving and re-entering the tape's block).
  void reset();

  bool persistent() const noexcept;

  // Per-example Jacobians: target [b, y...] of source [b, x...] -> [b, y..., x...],
  // in the source's dtype. Requires example i of target to depend only on
  // example i of source; a primitive that mixes examples raises ValueError
  // naming it. Returns nullopt only when target does not depend on source and
  // unconnected_gradients is none.
  // Strong zeros: inside the derivative a zero tangent or cotangent times an
  // infinite or NaN partial is 0 (where(x > 0, sqrt(x), 0 * x) has
  // derivative 0 at x = 0), so every mode, form and option gives the same
  // finite and non-finite entries, and the same bits within a mode and form.
  // Plans are kept across calls: a program recorded again (the same ops,
  // shapes, dtypes, shared constants and options; any source values,
  // per-example constants and batch size) skips differentiating and
  // planning, with the same numbers as a first call. The programs used
  // last are kept with their shared constants, at most 16 and 32 MiB in
  // all (the constants, held once, and the plans' own tables); a program
  // that takes more than 4 MiB is not kept. Thread-safe.
  // ValueError: rank < 2, first dimensions differ, a boolean target or
  // source, parallel_iterations < 1, max_threads < 1, a mode or
  // unconnected_gradients that is none of its enumerators.
  // RuntimeError: a non-persistent tape that already answered.
  std::optional<Tensor> batch_jacobian(const Tensor& target, const Tensor& source,
                                       const JacobianOptions& options = {});

  // batch_jacobian written into caller memory, for codes that keep their
  // Jacobian array: `out` holds exactly b * prod(y) * prod(x) elements,
  // row-major [b, y..., x...], of the source's type (float for float32,
  // double for float64; ValueError on a size or type mismatch, an empty span
  // included: only a Jacobian of no elements takes one, and then of the
  // right type). Nothing is allocated for the result. Returns false when
  // target does not depend on source; `out` is then filled with zeros.
  // unconnected_gradients is checked but not used. Same errors as
  // batch_jacobian.
  bool batch_jacobian_into(const Tensor& target, const Tensor& source, std::span<float> out,
                           const JacobianOptions& options = {});
  bool batch_jacobian_into(const Tensor& target, const Tensor& source, std::span<double> out,
                           const JacobianOptions& options = {});

  // The target's value and its per-example Jacobians in one pass over the
  // blocks of examples, into caller memory (a Newton step needs both):
  // value_out holds exactly target.num_elements() elements, jacobian_out as
  // for batch_jacobian_into; both of the source's type, which the target
  // must have too (ValueError otherwise: cast the target first).
  // The numbers are those of the two separate calls, bit for bit:
  // batch_jacobian_into and reading the target (when the engine computes
  // that read: a float target with a batch axis no op mixes; see README). Returns false when target
  // does not depend on source (jacobian_out is zeros, value_out the value).
  // Same errors as batch_jacobian_into, for each output.
  bool value_and_batch_jacobian_into(const Tensor& target, const Tensor& source,
                                     std::span<float> value_out, std::span<float> jacobian_out,
                                     const JacobianOptions& options = {});
  bool value_and_batch_jacobian_into(const Tensor& target, const Tensor& source,
                                     std::span<double> value_out, std::span<double> jacobian_out,
                                     const JacobianOptions& options = {});

  // Full Jacobian: target [y...] of source [x...] -> [y..., x...]. Any ranks.
  std::optional<Tensor> jacobian(const Tensor& target, const Tensor& source,
                                 const JacobianOptions& options = {});

  // Gradient of reduce_sum(target) with respect to source, shaped like source.
  // ValueError: a boolean target or source, an unconnected_gradients that is
  // none of its enumerators. RuntimeError: as batch_jacobian.
  std::optional<Tensor> gradient(
      const Tensor& target, const Tensor& source,
      UnconnectedGradients unconnected_gradients = UnconnectedGradients::none);

  // Several sources in one call, as TF's tape.jacobian(target, [x, y]) and
  // tape.gradient(target, [x, y]): one result per source, in order, each
  // what the one-source call gives for it (nullopt for a source the target
  // does not depend on, under none); a source listed twice gets the same
  // result twice. One call: a non-persistent tape answers it. Sources of
  // one dtype of which none is computed from another on the tape are
  // differentiated together, one pass of the engine (gradient: one reverse
  // pass for all of them); otherwise each on its own. An empty list gives
  // an empty result. Errors are those of the one-source calls, checked for
  // every source before anything runs. In C++ a braced list of one tensor,
  // `{x}`, picks the one-source overload: write std::vector<Tensor>{x}.
  std::vector<std::optional<Tensor>> batch_jacobian(const Tensor& target, const std::vector<Tensor>& sources,
                                                    const JacobianOptions& options = {});
  std::vector<std::optional<Tensor>> jacobian(const Tensor& target, const std::vector<Tensor>& sources,
                                              const JacobianOptions& options = {});
  std::vector<std::optional<Tensor>> gradient(
      const Tensor& target, const std::vector<Tensor>& sources,
      UnconnectedGradients unconnected_gradients = UnconnectedGradients::none);

 private:
  friend std::optional<Tensor> batch_hessian(GradientTape& tape, const Tensor& target, const Tensor& source,
                                             const JacobianOptions& options);
  friend std::optional<Tensor> batch_hvp(GradientTape& tape, const Tensor& target, const Tensor& source,
                                         const Tensor& vectors, UnconnectedGradients unconnected_gradients);

  // batch_jacobian_into's destination: `size` elements of `dtype` at `data`
  // (null when size is 0).
  struct Out {
    void* data;
    std::size_t size;
    DType dtype;
  };
  // The shared path: validates, differentiates into `*out` (no out: a new
  // tensor), returns the result or nullopt when unconnected.
  std::optional<Tensor> batch_jacobian_impl(const Tensor& target, const Tensor& source,
                                            const Out* out, const Out* value_out,
                                            const JacobianOptions& options);

  // The several-source calls (engine/several_sources.cpp): per example
  // (batched), of the sum (gradient), or full Jacobians.
  std::vector<std::optional<Tensor>> several(const char* fn, const Tensor& target,
                                             const std::vector<Tensor>& sources, bool batched, bool sum,
                                             const JacobianOptions& options);

  // Marks the tape used; a non-persistent one ends recording and lets go of
  // its records.
  void answered();

  // Shared with the pauses, which must not keep it alive.
  std::shared_ptr<detail::TapeState> state_;
};

// ---- second derivatives -------------------------------------------------------
// Derivatives are differentiable again. A Jacobian call that returns a
// tensor (batch_jacobian, jacobian, gradient, and their several-source
// forms; not the _into forms) records its result on every other live tape
// of the thread that sees what it is computed from (the source, or a
// constant it reads), so an outer tape differentiates it: nesting two tapes
// gives per-example Hessians as in TF, at any depth,
//   outer.batch_jacobian(*inner.batch_jacobian(y, x), x)  ->  [b, y..., x..., x...].
// A tape does not record its own answers: nest a second tape (TF's pattern).
// An inner result that does not depend on the source (a linear function's
// Jacobian) is unconnected for the outer tape, which then follows its own
// unconnected_gradients (nullopt or zeros), never silent zeros.

// Per-example Hessians of a per-example scalar target ([b] or [b, 1]) with
// respect to source [b, x...]: [b, x..., x...], symmetric bit for bit.
// Forward over reverse: the gradient of the target is derived as ops and its
// batch_jacobian taken (mode automatic means forward here; the other
// options are batch_jacobian's). Entry (i, j) of each example's Hessian
// (the flattened source's indices) is computed for i <= j and copied to
// (j, i). The call is the tape's answer (a non-persistent tape answers
// once). nullopt (or zeros) when the target does not depend on the source
// or is linear in it (an empty batch: an empty result whenever the target
// depends on the source). The result is recorded on outer tapes as
// a batch_jacobian's is. ValueError: a target of another shape, or
// batch_jacobian's errors; RuntimeError: a used non-persistent tape.
std::optional<Tensor> batch_hessian(GradientTape& tape, const Tensor& target, const Tensor& source,
                                    const JacobianOptions& options = {});

// Per-example Hessian-vector products H_i v_i, shaped like source, without
// forming the Hessian: the directional derivative of the gradient along
// `vectors` (same shape and dtype as source), one forward pass. Values are
// computed when read. Same target, errors and answer rules as batch_hessian.
std::optional<Tensor> batch_hvp(GradientTape& tape, const Tensor& target, const Tensor& source,
                                const Tensor& vectors,
                                UnconnectedGradients unconnected_gradients = UnconnectedGradients::none);

}  // namespace batchjac
