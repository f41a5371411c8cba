// Shape helpers and DType names.
#include "tensor/sizes.hpp"

#include <batchjac/dtype.hpp>
#include <batchjac/shape.hpp>

#include <limits>
#include <ostream>
#include <sstream>

namespace batchjac {

std::string_view dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::boolean: return "bool";
  }
  return "?";
}

std::size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::float32: return 4;
    case DType::float64: return 8;
    case DType::boolean: return 1;
  }
  return 0;
}

std::int64_t Shape::num_elements() const noexcept {
  return detail::checked_product(dims_).value_or(std::numeric_limits<std::int64_t>::max());
}

std::string Shape::to_string() const {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < dims_.size(); ++i) os << (i ? ", " : "") << dims_[i];
  os << ']';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Shape& shape) { return os << shape.to_string(); }

}  // namespace batchjac
