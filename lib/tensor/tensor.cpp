// Tensor accessors, factories and conversions.
#include "tensor/tensor_impl.hpp"

#include "tensor/sizes.hpp"

#include <batchjac/errors.hpp>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

namespace batchjac {
namespace detail {

std::uint64_t next_id() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::shared_ptr<TensorImpl> new_tensor(const Shape& shape, DType dtype) {
  // Ops and factories check their results with their own names first.
  const std::int64_t n = check_tensor_size("tensor", shape, dtype, "a tensor");
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->buffer = Buffer::allocate(static_cast<std::size_t>(n) * dtype_size(dtype));
  impl->data_ = impl->buffer.get();
  impl->id = next_id();
  return impl;
}

std::shared_ptr<TensorImpl> new_view(const void* data, const Shape& shape, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->buffer = Buffer::view(data);
  impl->data_ = impl->buffer.get();
  impl->id = next_id();
  return impl;
}

double element_as_double(const TensorImpl& t, std::int64_t i) {
  switch (t.dtype) {
    case DType::float32: return t.as<float>()[i];
    case DType::float64: return t.as<double>()[i];
    case DType::boolean: return t.as<bool>()[i] ? 1.0 : 0.0;
  }
  return 0.0;
}

namespace {
template <class T>
void store_all(TensorImpl& out, const TensorImpl& in) {
  T* dst = out.as_mutable<T>();
  const std::int64_t n = in.shape.num_elements();
  for (std::int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      dst[i] = element_as_double(in, i) != 0.0;
    } else {
      dst[i] = static_cast<T>(element_as_double(in, i));
    }
  }
}

void store_converted(TensorImpl& out, const TensorImpl& in) {
  switch (out.dtype) {
    case DType::float32: store_all<float>(out, in); break;
    case DType::float64: store_all<double>(out, in); break;
    case DType::boolean: store_all<bool>(out, in); break;
  }
}
}  // namespace

Tensor convert(const Tensor& t, DType dtype) {
  auto out = new_tensor(t.shape(), dtype);
  store_converted(*out, t.impl());
  return make_tensor(std::move(out));
}

Tensor owned(const Tensor& t) {
  if (!t.impl().is_view()) return t;
  auto out = new_tensor(t.shape(), t.dtype());
  std::memcpy(out->buffer.get(), t.impl().bytes(),
              static_cast<std::size_t>(t.num_elements()) * dtype_size(t.dtype()));
  return make_tensor(std::move(out));
}

}  // namespace detail

using detail::TensorImpl;

namespace {
const std::shared_ptr<const TensorImpl>& default_scalar() {
  static const std::shared_ptr<const TensorImpl> zero = [] {
    auto impl = detail::new_tensor(Shape{}, float64);
    impl->as_mutable<double>()[0] = 0.0;
    return std::shared_ptr<const TensorImpl>(impl);
  }();
  return zero;
}

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return float32;
  else if constexpr (std::is_same_v<T, double>) return float64;
  else return boolean;
}
}  // namespace

Tensor::Tensor() : impl_(default_scalar()) {}

const Shape& Tensor::shape() const noexcept { return impl_->shape; }
DType Tensor::dtype() const noexcept { return impl_->dtype; }
std::int64_t Tensor::num_elements() const noexcept { return impl_->shape.num_elements(); }
std::uint64_t Tensor::id() const noexcept { return impl_->id; }

template <class T>
std::span<const T> Tensor::data() const {
  if (dtype_of<T>() != dtype()) {
    throw ValueError("Tensor::data<" + std::string(dtype_name(dtype_of<T>())) +
                     ">() called on a tensor of dtype " + std::string(dtype_name(dtype())));
  }
  return {impl_->as<T>(), static_cast<std::size_t>(num_elements())};
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  std::vector<T> out(static_cast<std::size_t>(num_elements()));
  for (std::int64_t i = 0; i < num_elements(); ++i) {
    double v = detail::element_as_double(*impl_, i);
    if constexpr (std::is_same_v<T, bool>) out[i] = v != 0.0;
    else out[i] = static_cast<T>(v);
  }
  return out;
}

double Tensor::at(const std::vector<std::int64_t>& index) const {
  const Shape& s = shape();
  if (index.size() != s.size()) {
    throw ValueError("Tensor::at expected an index of " + std::to_string(s.size()) +
                     " coordinates for shape " + s.to_string() + ", got " +
                     std::to_string(index.size()));
  }
  std::int64_t flat = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (index[i] < 0 || index[i] >= s[i]) {
      throw ValueError("Tensor::at index " + std::to_string(index[i]) + " is out of range [0, " +
                       std::to_string(s[i]) + ") on axis " + std::to_string(i) + " of shape " +
                       s.to_string());
    }
    flat = flat * s[i] + index[i];
  }
  return detail::element_as_double(*impl_, flat);
}

template std::span<const float> Tensor::data<float>() const;
template std::span<const double> Tensor::data<double>() const;
template std::span<const bool> Tensor::data<bool>() const;
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

// ---- factories ---------------------------------------------------------------

namespace {
Tensor from_doubles(const std::vector<double>& values, const Shape& shape, DType dtype) {
  auto impl = detail::new_tensor(shape, dtype);
  for (std::size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::float32: impl->as_mutable<float>()[i] = static_cast<float>(values[i]); break;
      case DType::float64: impl->as_mutable<double>()[i] = values[i]; break;
      case DType::boolean: impl->as_mutable<bool>()[i] = values[i] != 0.0; break;
    }
  }
  return detail::make_tensor(std::move(impl));
}

// Flattens nested initializer lists, checking that they are rectangular.
template <class List>
void flatten(const List& list, std::vector<std::int64_t>& dims, std::size_t depth,
             std::vector<double>& out) {
  if (dims.size() <= depth) dims.push_back(static_cast<std::int64_t>(list.size()));
  else if (dims[depth] != static_cast<std::int64_t>(list.size()))
    throw ValueError("constant: nested lists must be rectangular; axis " + std::to_string(depth) +
                     " has lengths " + std::to_string(dims[depth]) + " and " +
                     std::to_string(list.size()));
  if constexpr (std::is_same_v<List, Init1>) out.insert(out.end(), list.begin(), list.end());
  else for (const auto& inner : list) flatten(inner, dims, depth + 1, out);
}

template <class List>
Tensor from_lists(const List& list, std::size_t rank, DType dtype) {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
  flatten(list, dims, 0, values);
  // An empty outer list leaves inner lengths unknown: they are 0.
  dims.resize(rank, 0);
  Shape shape(dims);
  if (shape.num_elements() != static_cast<std::int64_t>(values.size()))
    throw ValueError("constant: nested lists must be rectangular, shape " + shape.to_string() +
                     " but " + std::to_string(values.size()) + " values");
  return from_doubles(values, shape, dtype);
}

template <class T>
Tensor from_span(std::span<const T> data, const Shape& shape, DType dtype) {
  detail::check_tensor_size("constant", shape, dtype, "the tensor");
  if (static_cast<std::int64_t>(data.size()) != shape.num_elements())
    throw ValueError("constant: shape " + shape.to_string() + " needs " +
                     std::to_string(shape.num_elements()) + " values, got " +
                     std::to_string(data.size()));
  auto impl = detail::new_tensor(shape, dtype);
  if (dtype == dtype_of<T>()) {
    std::copy(data.begin(), data.end(), impl->as_mutable<T>());
  } else {
    for (std::size_t i = 0; i < data.size(); ++i) {
      switch (dtype) {
        case DType::float32: impl->as_mutable<float>()[i] = static_cast<float>(data[i]); break;
        case DType::float64: impl->as_mutable<double>()[i] = static_cast<double>(data[i]); break;
        case DType::boolean: impl->as_mutable<bool>()[i] = data[i] != T(0); break;
      }
    }
  }
  return detail::make_tensor(std::move(impl));
}
}  // namespace

Tensor constant(double value, DType dtype) { return from_doubles({value}, Shape{}, dtype); }
Tensor constant(Init1 values, DType dtype) { return from_lists(values, 1, dtype); }
Tensor constant(Init2 values, DType dtype) { return from_lists(values, 2, dtype); }
Tensor constant(Init3 values, DType dtype) { return from_lists(values, 3, dtype); }
Tensor constant(Init4 values, DType dtype) { return from_lists(values, 4, dtype); }
Tensor constant(std::span<const double> data, const Shape& shape, DType dtype) {
  return from_span(data, shape, dtype);
}
Tensor constant(std::span<const float> data, const Shape& shape, DType dtype) {
  return from_span(data, shape, dtype);
}
Tensor constant(const std::vector<double>& data, const Shape& shape, DType dtype) {
  return from_span(std::span<const double>(data), shape, dtype);
}
Tensor constant(const std::vector<float>& data, const Shape& shape, DType dtype) {
  return from_span(std::span<const float>(data), shape, dtype);
}
namespace {
template <class T>
Tensor view_of(std::span<const T> data, const Shape& shape) {
  detail::check_tensor_size("view", shape, dtype_of<T>(), "the tensor");
  if (static_cast<std::int64_t>(data.size()) != shape.num_elements())
    throw ValueError("view: shape " + shape.to_string() + " needs " +
                     std::to_string(shape.num_elements()) + " values, got " +
                     std::to_string(data.size()));
  // An empty span may have no address; every tensor's elements have one.
  alignas(64) static const std::byte nothing[64] = {};
  const void* at = data.empty() ? static_cast<const void*>(nothing) : data.data();
  return detail::make_tensor(detail::new_view(at, shape, dtype_of<T>()));
}
}  // namespace

Tensor view(std::span<const double> data, const Shape& shape) { return view_of(data, shape); }
Tensor view(std::span<const float> data, const Shape& shape) { return view_of(data, shape); }

namespace {
Tensor filled(std::string_view op, const Shape& shape, double value, DType dtype) {
  const std::int64_t n = detail::check_tensor_size(op, shape, dtype, "the tensor");
  auto impl = detail::new_tensor(shape, dtype);
  switch (dtype) {
    case DType::float32: std::fill_n(impl->as_mutable<float>(), n, static_cast<float>(value)); break;
    case DType::float64: std::fill_n(impl->as_mutable<double>(), n, value); break;
    case DType::boolean: std::fill_n(impl->as_mutable<bool>(), n, value != 0.0); break;
  }
  return detail::make_tensor(std::move(impl));
}
}  // namespace

Tensor fill(const Shape& shape, double value, DType dtype) { return filled("fill", shape, value, dtype); }
Tensor zeros(const Shape& shape, DType dtype) { return filled("zeros", shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return filled("ones", shape, 1.0, dtype); }

}  // namespace batchjac
