// Printing tensors as TF does (NumPy's layout, summarised past 1000 elements).
#include "tensor/tensor_impl.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace batchjac {

using detail::TensorImpl;

namespace {

constexpr std::int64_t kSummaryThreshold = 1000;
constexpr std::int64_t kEdgeItems = 3;

// NumPy-like: up to 8 significant digits, "2." for integral values.
std::string format_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const int digits = 8;
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  std::string s(buf);
  if (s.find_first_of(".e") == std::string::npos) s += '.';
  return s;
}

struct Printer {
  const TensorImpl& t;
  bool summarise;
  std::vector<std::string> cells;
  std::size_t width = 0;

  std::string cell(std::int64_t flat) const {
    if (t.dtype == DType::boolean) return t.as<bool>()[flat] ? "True" : "False";
    return format_float(detail::element_as_double(t, flat));
  }

  // Indices kept along an axis of length n.
  std::vector<std::int64_t> kept(std::int64_t n) const {
    std::vector<std::int64_t> idx;
    if (summarise && n > 2 * kEdgeItems) {
      for (std::int64_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
      idx.push_back(-1);  // the ellipsis
      for (std::int64_t i = n - kEdgeItems; i < n; ++i) idx.push_back(i);
    } else {
      for (std::int64_t i = 0; i < n; ++i) idx.push_back(i);
    }
    return idx;
  }

  void measure(std::size_t axis, std::int64_t offset) {
    const Shape& s = t.shape;
    if (axis == s.size()) {
      width = std::max(width, cell(offset).size());
      return;
    }
    std::int64_t stride = 1;
    for (std::size_t a = axis + 1; a < s.size(); ++a) stride *= s[a];
    for (auto i : kept(s[axis]))
      if (i >= 0) measure(axis + 1, offset + i * stride);
  }

  void print(std::ostream& os, std::size_t axis, std::int64_t offset, std::size_t indent) {
    const Shape& s = t.shape;
    if (axis == s.size()) {
      std::string c = cell(offset);
      os << std::string(width - c.size(), ' ') << c;
      return;
    }
    std::int64_t stride = 1;
    for (std::size_t a = axis + 1; a < s.size(); ++a) stride *= s[a];
    os << '[';
    bool first = true;
    const bool innermost = axis + 1 == s.size();
    const std::size_t blank_lines = s.size() - axis - 1;
    for (auto i : kept(s[axis])) {
      if (!first) {
        if (innermost) os << ' ';
        else os << std::string(std::max<std::size_t>(blank_lines, 1), '\n')
                << std::string(indent + 1, ' ');
      }
      first = false;
      if (i < 0) os << "...";
      else print(os, axis + 1, offset + i * stride, indent + 1);
    }
    os << ']';
  }
};

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& tensor) {
  const TensorImpl& t = tensor.impl();
  Printer p{t, t.shape.num_elements() > kSummaryThreshold, {}, 0};
  os << "tf.Tensor(";
  if (t.shape.size() >= 2) os << '\n';
  p.measure(0, 0);
  p.print(os, 0, 0, 0);
  os << ", shape=(";
  for (std::size_t i = 0; i < t.shape.size(); ++i) os << (i ? ", " : "") << t.shape[i];
  if (t.shape.size() == 1) os << ',';
  os << "), dtype=" << dtype_name(t.dtype) << ')';
  return os;
}

}  // namespace batchjac
