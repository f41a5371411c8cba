// Deferred values: computed on first read, once, from their recorded op.
#include "tensor/tensor_impl.hpp"

#include <unordered_set>
#include <utility>

namespace batchjac::detail {

namespace {
// The inputs released by the outermost ~TensorImpl of this thread.
thread_local std::vector<std::shared_ptr<const TensorImpl>>* releasing = nullptr;
}  // namespace

TensorImpl::~TensorImpl() {
  if (!pending_) return;
  // A chain of deferred values (a loop of recorded ops nobody read) would
  // be released recursively, one stack frame per op: the outermost
  // destructor releases the inputs of all of them in a loop instead.
  if (releasing != nullptr) {
    for (auto& in : pending_->inputs) releasing->push_back(std::move(in));
    return;
  }
  std::vector<std::shared_ptr<const TensorImpl>> queue = std::move(pending_->inputs);
  pending_.reset();
  releasing = &queue;
  while (!queue.empty()) {
    std::shared_ptr<const TensorImpl> last = std::move(queue.back());
    queue.pop_back();
    last.reset();  // may push its own inputs
  }
  releasing = nullptr;
}

std::shared_ptr<TensorImpl> new_deferred(const Shape& shape, DType dtype, std::unique_ptr<Deferred> how) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->pending_ = std::move(how);
  impl->ready_.store(false, std::memory_order_relaxed);
  impl->id = next_id();
  return impl;
}

void TensorImpl::pending_inputs(std::vector<std::shared_ptr<const TensorImpl>>& out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!pending_) return;  // computed meanwhile
  for (const auto& in : pending_->inputs)
    if (in->deferred()) out.push_back(in);
}

void TensorImpl::set_value(std::shared_ptr<const TensorImpl> value) const {
  value_ = std::move(value);
  data_ = value_->bytes();
  ready_.store(true, std::memory_order_release);
  const std::unique_ptr<Deferred> done = std::move(pending_);  // its inputs may go
}

void TensorImpl::compute_one() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ready_.load(std::memory_order_relaxed)) return;  // another thread did
  set_value(pending_->compute());
}

bool TensorImpl::compute_whole() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ready_.load(std::memory_order_relaxed)) return true;
  // Not owned: the caller of bytes() holds this tensor while it is computed.
  const std::shared_ptr<const TensorImpl> self(std::shared_ptr<const TensorImpl>(), this);
  std::shared_ptr<const TensorImpl> value = pending_->compute_all(self);
  if (!value) return false;
  set_value(std::move(value));
  return true;
}

void TensorImpl::fulfil(std::shared_ptr<const TensorImpl> value) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!ready_.load(std::memory_order_relaxed)) set_value(std::move(value));
}

const std::byte* TensorImpl::compute() const {
  // In one pass, when its op can (the engine: no intermediate is computed).
  if (compute_whole()) return data_;
  // Otherwise its deferred inputs, each in one pass where it can (a
  // reduction over the batch axis, or a comparison, of a batch of values),
  std::vector<std::shared_ptr<const TensorImpl>> direct;
  pending_inputs(direct);
  for (const auto& in : direct) in->compute_whole();
  // then op by op: the deferred values this one needs, inputs before the values that use
  // them, found without recursion (a chain of ops may be long). Each is
  // held: another thread may compute one meanwhile and release its inputs.
  std::vector<std::shared_ptr<const TensorImpl>> order, inputs;
  std::vector<std::pair<const TensorImpl*, std::shared_ptr<const TensorImpl>>> stack;
  std::unordered_set<const TensorImpl*> seen;
  stack.push_back({this, nullptr});
  while (!stack.empty()) {
    auto [t, held] = std::move(stack.back());
    stack.pop_back();
    if (t == nullptr) {  // its inputs are in `order`
      order.push_back(std::move(held));
      continue;
    }
    if (!t->deferred() || !seen.insert(t).second) continue;
    stack.push_back({nullptr, held});
    inputs.clear();
    t->pending_inputs(inputs);
    for (auto& in : inputs) stack.push_back({in.get(), in});
  }
  for (const auto& t : order)
    if (t) t->compute_one();
  compute_one();  // `this` (held by the caller, so not in `order`)
  return data_;
}

}  // namespace batchjac::detail
