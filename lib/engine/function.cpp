// bj::trace: record a function once, keep its program and plans, and run
// them on the caller's arrays.
#include "codegen/compile.hpp"
#include "engine/engine.hpp"
#include "engine/jacobian_call.hpp"
#include "engine/nested.hpp"
#include "engine/plan.hpp"
#include "engine/plan_cache.hpp"
#include "graph/slice.hpp"
#include "graph/tape.hpp"
#include "tensor/sizes.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>
#include <batchjac/function.hpp>
#include <batchjac/gradient_tape.hpp>
#include <batchjac/ops.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace batchjac::detail {

namespace {

// The batch of the placeholder input a function is traced on. Not 1: at
// b = 1 a constant [1, ...] is shared, so a per-example constant f makes
// would go unnoticed.
constexpr std::int64_t kTraceBatch = 2;
// Programs kept per batch size, for functions whose program depends on it.
constexpr std::size_t kKeptBatches = 4;

// What a call computes: the Jacobian, the value with it, or the value alone.
enum class Want : std::uint8_t { jacobian, value_and_jacobian, value };

// Everything a plan depends on besides the program (engine::PlanKey's
// option words).
struct SlotKey {
  Want want = Want::jacobian;
  JacobianMode mode = JacobianMode::automatic;
  std::int64_t parallel_iterations = -1;
  bool pfor = true;
  bool small = false;
  int sparse = -1;
  bool symmetric = false;  // a Hessian's plan (graph::Program::symmetric)
  friend bool operator==(const SlotKey&, const SlotKey&) = default;
};

// f recorded at one batch size, sliced with x as the parameter (and aux as
// a per-example input), and its plans.
struct Traced {
  graph::Program program;
  int aux = -1;      // aux's index in program.constants, or -1 (f does not read it)
  bool batch_bound;  // it holds per-example constants f made itself
  struct Slot {
    SlotKey key;
    std::shared_ptr<const engine::Prepared> plan;  // null: no derivative flows (stop_gradient)
  };
  mutable std::mutex mutex;
  mutable std::vector<Slot> slots;

  // The plan for `key`, made on the first call that wants it.
  std::shared_ptr<const engine::Prepared> plan(const SlotKey& key, const JacobianOptions& options) const {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      for (const Slot& s : slots)
        if (s.key == key) return s.plan;
    }
    graph::Program copy = program;  // planning changes its program
    std::shared_ptr<const engine::Prepared> made;
    if (key.want != Want::jacobian) copy.kept = copy.result;
    copy.symmetric = key.symmetric;
    if (key.want == Want::value) made = engine::prepare_value(copy);
    else made = engine::plan_jacobian(copy, options, key.small);
    const std::lock_guard<std::mutex> lock(mutex);
    for (const Slot& s : slots)
      if (s.key == key) return s.plan;  // another thread made it meanwhile
    slots.push_back({key, made});
    return made;
  }
};

std::int64_t per_example(const Shape& s) {
  std::int64_t n = 1;
  for (std::size_t i = 1; i < s.size(); ++i) n *= s[i];
  return n;
}

Shape with_batch(const Shape& spec, std::int64_t b) {
  std::vector<std::int64_t> d(spec.begin(), spec.end());
  d[0] = b;
  return Shape(std::move(d));
}

void check_spec(const TensorSpec& spec, const char* what) {
  bool ok = spec.shape.size() >= 2 && spec.shape[0] == -1 && is_floating(spec.dtype);
  for (std::size_t i = 1; ok && i < spec.shape.size(); ++i) ok = spec.shape[i] >= 0;
  if (!ok)
    throw ValueError(std::string("trace: ") + what + " spec must be [-1, ...] (rank >= 2, the batch free, " +
                     "the other dimensions >= 0) of float32 or float64, got " + spec.shape.to_string() + " " +
                     std::string(dtype_name(spec.dtype)));
}

}  // namespace

struct FunctionState {
  std::function<Tensor(const Tensor&, const Tensor*)> f;
  TensorSpec spec, out_spec;
  std::optional<TensorSpec> aux_spec;
  std::int64_t n_x = 0, n_y = 0, n_aux = 0;  // elements per example
  // f recorded on the placeholder; for any batch unless batch_bound.
  std::shared_ptr<const Traced> first;
  // Whether y is computed from x or aux through recorded ops (else calls
  // run f for the value, and the Jacobian is unconnected).
  bool computed = true;
  mutable std::mutex mutex;
  mutable std::list<std::pair<std::int64_t, std::shared_ptr<const Traced>>> by_batch;  // most recent first
  // batch_hessian's: f's gradient as a Function of its own, traced on first use.
  mutable std::once_flag gradient_once;
  mutable std::optional<Function> gradient;

  // What tracing at one batch size gives.
  struct Trace {
    std::shared_ptr<const Traced> traced;  // null: y is not computed from x or aux
    Shape out_shape;                       // y's, the batch -1
    DType out_dtype = DType::float64;
  };

  // Records f on inputs of batch b (placeholders: zeros).
  Trace trace(std::int64_t b) const {
    TapeState tape;
    tape.persistent = true;
    const Tensor x = zeros(with_batch(spec.shape, b), spec.dtype);
    const std::optional<Tensor> aux =
        aux_spec ? std::optional<Tensor>(zeros(with_batch(aux_spec->shape, b), aux_spec->dtype)) : std::nullopt;
    for (const Tensor* t : {&x, aux ? &*aux : nullptr}) {
      if (t == nullptr) continue;
      tape.tracked.insert(t->id());
      tape.watched.push_back(*t);
    }
    const Tensor y = [&] {
      graph::push_tape(&tape);
      try {
        Tensor r = f(x, aux ? &*aux : nullptr);
        graph::pop_tape(&tape);
        return r;
      } catch (...) {
        graph::pop_tape(&tape);
        throw;
      }
    }();
    if (y.rank() < 2 || y.shape()[0] != b || !is_floating(y.dtype()))
      throw ValueError("trace: f must return a float32 or float64 tensor [b, ...] (rank >= 2, the batch "
                       "first) for an input of batch b = " + std::to_string(b) + ", got " +
                       y.shape().to_string() + " " + std::string(dtype_name(y.dtype())));
    Trace out{nullptr, with_batch(y.shape(), -1), y.dtype()};
    std::optional<graph::Program> program = graph::slice(tape, y, x, true, aux ? &*aux : nullptr);
    if (!program || (program->values[static_cast<std::size_t>(program->result)].kind != graph::ValueKind::primal &&
                     program->result != program->parameter))
      return out;
    auto traced = std::make_shared<Traced>();
    engine::own_shared_views(*program);  // shared constants are captured, not referenced
    traced->program = std::move(*program);
    for (std::size_t i = 0; i < traced->program.constants.size(); ++i)
      if (aux && traced->program.constants[i].id() == aux->id()) traced->aux = static_cast<int>(i);
    traced->batch_bound = false;
    for (const graph::Value& v : traced->program.values)
      if (v.kind == graph::ValueKind::constant && v.varying && v.constant != traced->aux)
        traced->batch_bound = true;
    out.traced = std::move(traced);
    return out;
  }

  // The program for batch b.
  std::shared_ptr<const Traced> traced_for(std::int64_t b) const {
    if (!first->batch_bound || b == kTraceBatch) return first;
    {
      const std::lock_guard<std::mutex> lock(mutex);
      for (auto it = by_batch.begin(); it != by_batch.end(); ++it)
        if (it->first == b) {
          by_batch.splice(by_batch.begin(), by_batch, it);
          return it->second;
        }
    }
    std::shared_ptr<const Traced> t = trace(b).traced;
    if (!t) throw RuntimeError("Function: f traced at batch " + std::to_string(b) +
                               " no longer computes its result from its inputs");
    const std::lock_guard<std::mutex> lock(mutex);
    by_batch.emplace_front(b, t);
    if (by_batch.size() > kKeptBatches) by_batch.pop_back();
    return t;
  }
};

namespace {

// A call's inputs: x and aux as tensors (the caller's, or views of its arrays).
struct Call {
  const char* fn;
  Tensor x;
  std::optional<Tensor> aux;
  std::int64_t batch = 0;
};

void check_input(const char* fn, const Tensor& t, const TensorSpec& spec,
                 const char* what) {
  bool ok = t.dtype() == spec.dtype && t.rank() == static_cast<std::int64_t>(spec.shape.size());
  for (std::size_t i = 1; ok && i < spec.shape.size(); ++i) ok = t.shape()[i] == spec.shape[i];
  if (!ok)
    throw ValueError(std::string("Function::") + fn + ": " + what + " must be " + spec.shape.to_string() + " " +
                     std::string(dtype_name(spec.dtype)) + ", got " + t.shape().to_string() + " " +
                     std::string(dtype_name(t.dtype())));
}

Call tensor_call(const FunctionState& s, const char* fn, const Tensor& x, const Tensor* aux) {
  check_input(fn, x, s.spec, "x");
  if (s.aux_spec.has_value() != (aux != nullptr))
    throw ValueError(std::string("Function::") + fn + (aux ? ": the function was traced without aux"
                                                           : ": the function was traced with aux; pass it"));
  if (aux) {
    check_input(fn, *aux, *s.aux_spec, "aux");
    if (aux->shape()[0] != x.shape()[0])
      throw ValueError(std::string("Function::") + fn + ": x and aux must have the same batch, got " +
                       x.shape().to_string() + " and " + aux->shape().to_string());
  }
  return Call{fn, x, aux ? std::optional<Tensor>(*aux) : std::nullopt, x.shape()[0]};
}

template <class S>
constexpr DType dtype_of() {
  return std::is_same_v<S, float> ? DType::float32 : DType::float64;
}

template <class S>
Call span_call(const FunctionState& s, const char* fn, std::span<const S> x, const std::span<const S>* aux) {
  const std::string name = std::string("Function::") + fn;
  if (dtype_of<S>() != s.spec.dtype)
    throw ValueError(name + ": x is " + std::string(dtype_name(s.spec.dtype)) + " (spec), got a span of " +
                     std::string(dtype_name(dtype_of<S>())));
  if (s.aux_spec.has_value() != (aux != nullptr))
    throw ValueError(name + (aux ? ": the function was traced without aux" : ": the function was traced with aux; pass it"));
  auto batch_of = [&](std::size_t size, std::int64_t n, const char* what) -> std::int64_t {
    if (n == 0) {
      if (size != 0) throw ValueError(name + ": " + what + " has no elements per example, got " + std::to_string(size));
      return -1;
    }
    if (size % static_cast<std::size_t>(n) != 0)
      throw ValueError(name + ": " + what + " holds " + std::to_string(size) + " elements, not a multiple of " +
                       std::to_string(n) + " (one example)");
    return static_cast<std::int64_t>(size) / n;
  };
  std::int64_t b = batch_of(x.size(), s.n_x, "x");
  if (aux) {
    if (dtype_of<S>() != s.aux_spec->dtype)
      throw ValueError(name + ": aux is " + std::string(dtype_name(s.aux_spec->dtype)) +
                       " (spec), got a span of " + std::string(dtype_name(dtype_of<S>())));
    const std::int64_t ba = batch_of(aux->size(), s.n_aux, "aux");
    if (b < 0) b = ba;
    else if (ba >= 0 && ba != b)
      throw ValueError(name + ": x holds " + std::to_string(b) + " examples and aux " + std::to_string(ba));
  }
  if (b < 0)
    throw ValueError(name + ": the batch size is unknown: an example of x" + (aux ? " and of aux" : "") +
                     " has no elements");
  Call c{fn, view(x, with_batch(s.spec.shape, b)), std::nullopt, b};
  if (aux) c.aux = view(*aux, with_batch(s.aux_spec->shape, b));
  return c;
}

template <class S>
void check_out(const Call& c, std::span<S> out, const char* what, std::int64_t per) {
  const std::int64_t need = c.batch * per;
  if (out.size() != static_cast<std::size_t>(need))
    throw ValueError(std::string("Function::") + c.fn + ": " + what + " needs " + std::to_string(need) +
                     " elements (" + std::to_string(c.batch) + " examples of " + std::to_string(per) +
                     "), got " + std::to_string(out.size()));
}

// f run as it is (no tape of ours): the value of a function whose result
// the trace could not compute from its inputs.
Tensor run_f(const FunctionState& s, const Call& c) {
  const Tensor y = s.f(c.x, c.aux ? &*c.aux : nullptr);
  if (y.shape() != with_batch(s.out_spec.shape, c.batch) || y.dtype() != s.out_spec.dtype)
    throw ValueError(std::string("Function::") + c.fn + ": f returned " + y.shape().to_string() + " " +
                     std::string(dtype_name(y.dtype())) + " where it was traced to return " +
                     s.out_spec.shape.to_string() + " " + std::string(dtype_name(s.out_spec.dtype)));
  (void)y.impl().bytes();  // computed now, not deferred
  return y;
}

// Runs the plan of `want` on the call; `jacobian` (Want::value: unused) and
// `value` (Want::jacobian: unused) receive the results. False when no
// derivative flows (nothing is written to `jacobian`). `symmetric`: a
// Hessian's call (engine::Binding::symmetric).
bool run(const FunctionState& s, const Call& c, Want want, void* jacobian, void* value,
         const JacobianOptions& options, std::atomic<bool>* symmetric = nullptr) {
  const std::shared_ptr<const Traced> t = s.traced_for(c.batch);
  const graph::Program& p = t->program;
  const SlotKey key{want,
                    options.mode,
                    options.parallel_iterations.value_or(-1),
                    options.experimental_use_pfor,
                    want != Want::value && options.mode == JacobianMode::automatic &&
                        engine::small_call(p, c.batch),
                    engine::sparse_override(),
                    symmetric != nullptr};
  const std::shared_ptr<const engine::Prepared> plan = t->plan(key, options);
  if (!plan) return false;
  std::vector<Tensor> bound;
  std::span<const Tensor> constants = p.constants;
  if (t->batch_bound || t->aux >= 0) {
    bound = p.constants;
    if (t->aux >= 0) bound[static_cast<std::size_t>(t->aux)] = *c.aux;
    constants = bound;
  }
  const engine::ValueOut v{value, s.out_spec.dtype};
  plan->run(p, engine::Binding{c.batch, &c.x, constants, symmetric}, jacobian, s.spec.dtype, options,
            want == Want::jacobian ? nullptr : &v);
  return true;
}

Shape jacobian_shape(const FunctionState& s, std::int64_t b) {
  std::vector<std::int64_t> d{b};
  d.insert(d.end(), s.out_spec.shape.begin() + 1, s.out_spec.shape.end());
  d.insert(d.end(), s.spec.shape.begin() + 1, s.spec.shape.end());
  return Shape(std::move(d));
}

Tensor value_of(const FunctionState& s, const Call& c) {
  if (!s.computed) return run_f(s, c);
  auto out = new_tensor(with_batch(s.out_spec.shape, c.batch), s.out_spec.dtype);
  if (c.batch > 0 && s.n_y > 0) run(s, c, Want::value, nullptr, out->buffer.get(), JacobianOptions{});
  return make_tensor(std::move(out));
}

std::optional<Tensor> jacobian_of(const FunctionState& s, const Call& c, const JacobianOptions& options,
                                  std::atomic<bool>* symmetric = nullptr) {
  engine::check_options("Function::batch_jacobian", options);
  const Shape shape = jacobian_shape(s, c.batch);
  check_tensor_size("Function::batch_jacobian", shape, s.spec.dtype, "the Jacobian");
  auto out = new_tensor(shape, s.spec.dtype);
  const std::size_t bytes = static_cast<std::size_t>(shape.num_elements()) * dtype_size(s.spec.dtype);
  bool connected = s.computed;
  if (connected && bytes > 0) connected = run(s, c, Want::jacobian, out->buffer.get(), nullptr, options, symmetric);
  if (!connected && options.unconnected_gradients == UnconnectedGradients::none) return std::nullopt;
  if (!connected && bytes > 0) std::memset(out->buffer.get(), 0, bytes);
  return make_tensor(std::move(out));
}

template <class S>
void into(const FunctionState& s, const Call& c, std::span<S>* value, std::span<S> jacobian,
          const JacobianOptions& options) {
  engine::check_options(c.fn, options);
  check_out(c, jacobian, value ? "the Jacobian output" : "the output", s.n_y * s.n_x);
  if (value) {
    if (dtype_of<S>() != s.out_spec.dtype)
      throw ValueError(std::string("Function::") + c.fn + ": the value output must have the input's type, and f " +
                       "returns " + std::string(dtype_name(s.out_spec.dtype)) + " (cast it in f)");
    check_out(c, *value, "the value output", s.n_y);
  }
  if (!s.computed) {
    if (value && !value->empty()) {
      const Tensor y = run_f(s, c);
      std::memcpy(value->data(), y.impl().bytes(), value->size() * sizeof(S));
    }
    std::fill(jacobian.begin(), jacobian.end(), S(0));
    return;
  }
  const bool with_value = value && !value->empty();
  bool connected = false;
  if (!jacobian.empty())
    connected = run(s, c, with_value ? Want::value_and_jacobian : Want::jacobian, jacobian.data(),
                    with_value ? value->data() : nullptr, options);
  if (!connected) {
    std::fill(jacobian.begin(), jacobian.end(), S(0));
    if (with_value) run(s, c, Want::value, nullptr, value->data(), options);
  }
}

}  // namespace

Function trace_function(std::function<Tensor(const Tensor&, const Tensor*)> f, const TensorSpec& spec,
                        const std::optional<TensorSpec>& aux) {
  check_spec(spec, "the input");
  if (aux) check_spec(*aux, "the aux");
  auto s = std::make_shared<FunctionState>();
  s->f = std::move(f);
  s->spec = spec;
  s->aux_spec = aux;
  s->n_x = per_example(spec.shape);
  if (aux) s->n_aux = per_example(aux->shape);
  FunctionState::Trace t = s->trace(kTraceBatch);
  s->first = std::move(t.traced);
  s->computed = s->first != nullptr;
  s->out_spec = TensorSpec{t.out_shape, t.out_dtype};
  s->n_y = per_example(t.out_shape);
  return Function(std::move(s));
}

}  // namespace batchjac::detail

namespace batchjac {

Tensor Function::operator()(const Tensor& x) const {
  return detail::value_of(*state_, detail::tensor_call(*state_, "operator()", x, nullptr));
}
Tensor Function::operator()(const Tensor& x, const Tensor& aux) const {
  return detail::value_of(*state_, detail::tensor_call(*state_, "operator()", x, &aux));
}

std::optional<Tensor> Function::batch_jacobian(const Tensor& x, const JacobianOptions& options) const {
  return detail::jacobian_of(*state_, detail::tensor_call(*state_, "batch_jacobian", x, nullptr), options);
}
std::optional<Tensor> Function::batch_jacobian(const Tensor& x, const Tensor& aux,
                                               const JacobianOptions& options) const {
  return detail::jacobian_of(*state_, detail::tensor_call(*state_, "batch_jacobian", x, &aux), options);
}

std::optional<Tensor> Function::batch_hessian(const Tensor& x, const JacobianOptions& options) const {
  return hessian(x, nullptr, options);
}
std::optional<Tensor> Function::batch_hessian(const Tensor& x, const Tensor& aux,
                                              const JacobianOptions& options) const {
  return hessian(x, &aux, options);
}

std::optional<Tensor> Function::hessian(const Tensor& x, const Tensor* aux, const JacobianOptions& options) const {
  const detail::FunctionState& s = *state_;
  engine::check_options("Function::batch_hessian", options);
  (void)detail::tensor_call(s, "batch_hessian", x, aux);  // the inputs' checks, before any tracing
  const Shape& out = s.out_spec.shape;
  if (!(out.size() == 2 && out[1] == 1))
    throw ValueError("Function::batch_hessian: the function must give one scalar per example, [b, 1], got " +
                     out.to_string());
  std::call_once(s.gradient_once, [&] {
    // The gradient of f as ops (nested tapes: the trace's tape records it).
    auto f = s.f;
    s.gradient = detail::trace_function(
        [f](const Tensor& z, const Tensor* a) {
          GradientTape tape;
          tape.watch(z);
          const Tensor y = f(z, a);  // [b, 1]: its batch_jacobian [b, 1, x...] is the gradient
          JacobianOptions zeros;
          zeros.unconnected_gradients = UnconnectedGradients::zero;
          return reshape(*tape.batch_jacobian(y, z, zeros), z.shape());
        },
        s.spec, s.aux_spec);
  });
  JacobianOptions outer = options;
  if (outer.mode == JacobianMode::automatic) outer.mode = JacobianMode::forward;
  const detail::FunctionState& g = *s.gradient->state_;
  std::atomic<bool> symmetric{true};  // mirrored per block by the engine where it can
  std::optional<Tensor> h =
      detail::jacobian_of(g, detail::tensor_call(g, "batch_hessian", x, aux), outer, &symmetric);
  if (h && !symmetric.load()) h = engine::symmetric_hessian(*h, static_cast<std::int64_t>(s.spec.shape.size()) - 1);
  return h;
}

#define BATCHJAC_FUNCTION_INTO(S)                                                                            \
  void Function::batch_jacobian_into(std::span<const S> x, std::span<S> jacobian,                            \
                                     const JacobianOptions& options) const {                                 \
    detail::into<S>(*state_, detail::span_call<S>(*state_, "batch_jacobian_into", x, nullptr), nullptr,      \
                    jacobian, options);                                                                      \
  }                                                                                                          \
  void Function::batch_jacobian_into(std::span<const S> x, std::span<const S> aux, std::span<S> jacobian,    \
                                     const JacobianOptions& options) const {                                 \
    detail::into<S>(*state_, detail::span_call<S>(*state_, "batch_jacobian_into", x, &aux), nullptr,         \
                    jacobian, options);                                                                      \
  }                                                                                                          \
  void Function::value_and_batch_jacobian_into(std::span<const S> x, std::span<S> value,                     \
                                               std::span<S> jacobian, const JacobianOptions& options) const { \
    detail::into<S>(*state_, detail::span_call<S>(*state_, "value_and_batch_jacobian_into", x, nullptr),     \
                    &value, jacobian, options);                                                              \
  }                                                                                                          \
  void Function::value_and_batch_jacobian_into(std::span<const S> x, std::span<const S> aux,                 \
                                               std::span<S> value, std::span<S> jacobian,                    \
                                               const JacobianOptions& options) const {                       \
    detail::into<S>(*state_, detail::span_call<S>(*state_, "value_and_batch_jacobian_into", x, &aux),        \
                    &value, jacobian, options);                                                              \
  }
BATCHJAC_FUNCTION_INTO(float)
BATCHJAC_FUNCTION_INTO(double)
#undef BATCHJAC_FUNCTION_INTO

const TensorSpec& Function::input_spec() const { return state_->spec; }
const std::optional<TensorSpec>& Function::aux_spec() const { return state_->aux_spec; }
const TensorSpec& Function::output_spec() const { return state_->out_spec; }

}  // namespace batchjac

namespace batchjac::detail {

void check_jacobian_options(const char* fn, const JacobianOptions& options) { engine::check_options(fn, options); }

TracedCost traced_cost(const Function& f, const JacobianOptions& options) {
  engine::check_options("scalar_function", options);
  const FunctionState& s = *f.state_;
  if (!s.computed) return {};
  const Traced& t = *s.first;
  // A full-sized call's plan (not a small call's): the cost of the calls that matter.
  const SlotKey key{Want::jacobian, options.mode, options.parallel_iterations.value_or(-1),
                    options.experimental_use_pfor, false, engine::sparse_override()};
  TracedCost c;
  // Which source elements each value depends on (a union over its elements;
  // exact for scalar code, whose values are single elements sliced from the
  // source), and the ops' dependencies summed: the tangent operations of a
  // forward mode that skips inactive directions.
  const graph::Program& p = t.program;
  const std::int64_t n = std::max<std::int64_t>(1, s.n_x);
  const std::size_t words = static_cast<std::size_t>((n + 63) / 64);
  std::vector<std::vector<std::uint64_t>> deps(p.values.size());
  deps[static_cast<std::size_t>(p.parameter)].assign(words, ~std::uint64_t(0));
  for (const ops::Node& node : p.nodes) {
    std::vector<std::uint64_t>& out = deps[static_cast<std::size_t>(node.output)];
    out.assign(words, 0);
    const bool column = node.prim == ops::Prim::index_map && node.attrs.op == ops::kSlice &&
                        node.inputs.size() == 1 && node.inputs[0] == p.parameter &&
                        p.info(p.parameter).shape.size() == 1 && node.attrs.axes.size() == 1;
    if (column) {
      const std::int64_t begin = node.attrs.axes[0];
      for (std::int64_t e = begin; e < std::min(n, begin + node.attrs.shape[0]); ++e)
        out[static_cast<std::size_t>(e / 64)] |= std::uint64_t(1) << (e % 64);
    } else {
      for (const int in : node.inputs)
        if (!deps[static_cast<std::size_t>(in)].empty())
          for (std::size_t w = 0; w < words; ++w) out[w] |= deps[static_cast<std::size_t>(in)][w];
    }
    if (node.prim == ops::Prim::index_map || node.prim == ops::Prim::concat) continue;  // moves, not arithmetic
    ++c.ops;
    for (std::size_t w = 0; w < words; ++w) c.active += std::popcount(out[w]);
  }
  const std::shared_ptr<const engine::Prepared> plan = t.plan(key, options);
  if (!plan) return c;
  const double entries = double(s.n_x * s.n_y);
  c.per_example = plan->cost() / double(plan->lanes()) + entries / double(plan->lanes());
  c.generated = options.generated_code && codegen::enabled() && plan->generated();
  return c;
}

}  // namespace batchjac::detail
