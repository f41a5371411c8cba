// Printing tensors as TF does: "tf.Tensor(" + NumPy's str() of the values +
// ", shape=(...), dtype=...)", following NumPy's array2string (precision 8,
// summary past 1000 elements, lines of 75 columns).
#include "tensor/tensor_impl.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>
#include <vector>

namespace batchjac {

using detail::TensorImpl;

namespace {

constexpr std::int64_t kSummaryThreshold = 1000;
constexpr std::int64_t kEdgeItems = 3;
constexpr int kLineWidth = 75;
constexpr int kPrecision = 8;

std::string printf_string(const char* format, int precision, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, precision, v);
  return buf;
}

// Whether text reads back as v (as a float for float32 tensors).
bool round_trips(const std::string& text, double v, DType dtype) {
  const double back = std::strtod(text.c_str(), nullptr);
  if (dtype == DType::float32) return static_cast<float>(back) == static_cast<float>(v);
  return back == v;
}

// The fewest digits (at most kPrecision) that read back as v: NumPy's
// "unique" mode, in positional ("%.*f") or scientific ("%.*e") form.
int unique_digits(double v, DType dtype, const char* format) {
  for (int p = 0; p < kPrecision; ++p)
    if (round_trips(printf_string(format, p, v), v, dtype)) return p;
  return kPrecision;
}

// NumPy's FloatingFormat: one layout for all the elements shown.
struct FloatFormat {
  bool scientific = false;
  int pad_left = 0, pad_right = 0;  // characters before / after the point
  int digits = 0;                   // scientific: mantissa fraction digits
  DType dtype = DType::float64;

  FloatFormat(const std::vector<double>& shown, DType dt) : dtype(dt) {
    std::vector<double> finite;
    for (double v : shown)
      if (std::isfinite(v)) finite.push_back(v);
    double max_abs = 0, min_abs = 0;
    bool any = false;
    for (double v : finite) {
      if (v == 0) continue;
      const double a = std::fabs(v);
      max_abs = any ? std::max(max_abs, a) : a;
      min_abs = any ? std::min(min_abs, a) : a;
      any = true;
    }
    scientific = any && (max_abs >= 1e8 || min_abs < 1e-4 || max_abs / min_abs > 1000.0);
    for (double v : finite) {
      std::string s;
      if (scientific) {
        digits = std::max(digits, unique_digits(v, dtype, "%.*e"));
        s = printf_string("%.*e", unique_digits(v, dtype, "%.*e"), v);
        s = s.substr(0, s.find('e'));
      } else {
        s = positional(v);
      }
      const auto point = s.find('.');
      pad_left = std::max(pad_left, static_cast<int>(point == std::string::npos ? s.size() : point));
      if (!scientific) pad_right = std::max(pad_right, static_cast<int>(s.size() - point - 1));
    }
    if (scientific) {
      pad_right = digits + 4;  // digits, "e", sign, two exponent digits
    } else {
      bool negative_inf = false, nan = false, inf = false;
      for (double v : shown) {
        nan = nan || std::isnan(v);
        inf = inf || std::isinf(v);
        negative_inf = negative_inf || (std::isinf(v) && v < 0);
      }
      const int offset = pad_right + 1;
      if (nan) pad_left = std::max(pad_left, 3 - offset);
      if (inf) pad_left = std::max(pad_left, 3 + (negative_inf ? 1 : 0) - offset);
    }
  }

  // Positional, unique digits, a point always: "2.", "0.25", "-1.5".
  std::string positional(double v) const {
    std::string s = printf_string("%.*f", unique_digits(v, dtype, "%.*f"), v);
    if (s.find('.') == std::string::npos) s += '.';
    return s;
  }

  std::string operator()(double v) const {
    const int width = pad_left + pad_right + 1;
    if (!std::isfinite(v)) {
      std::string s = std::isnan(v) ? "nan" : (v < 0 ? "-inf" : "inf");
      s.insert(0, std::max(0, width - static_cast<int>(s.size())), ' ');
      return s;
    }
    std::string s;
    if (scientific) {
      s = printf_string("%.*e", digits, v);
      if (digits == 0) s.insert(s.begin() + static_cast<std::ptrdiff_t>(s.find('e')), '.');
    } else {
      s = positional(v);
    }
    const auto point = static_cast<int>(s.find('.'));
    s.insert(0, std::max(0, pad_left - point), ' ');
    if (!scientific) s.append(std::max(0, pad_right - (static_cast<int>(s.size()) - pad_left - 1)), ' ');
    return s;
  }
};

// A 0-d tensor prints like a Python float: the shortest repr, "2.0" style.
std::string scalar_text(double v, DType dtype) {
  if (dtype == DType::boolean) return v != 0 ? "True" : "False";
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  std::string s;
  for (int p = 1; p <= 17; ++p) {
    s = printf_string("%.*g", p, v);
    if (round_trips(s, v, dtype)) break;
  }
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// NumPy's _formatArray, for str(): separator " ", summary "...".
struct Printer {
  const TensorImpl& t;
  bool summarise;
  std::vector<std::string> words;  // every element, formatted (kept ones only)

  // Indices kept along an axis of length n; -1 stands for the ellipsis.
  std::vector<std::int64_t> kept(std::int64_t n) const {
    std::vector<std::int64_t> idx;
    if (summarise && n > 2 * kEdgeItems) {
      for (std::int64_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
      idx.push_back(-1);
      for (std::int64_t i = n - kEdgeItems; i < n; ++i) idx.push_back(i);
    } else {
      for (std::int64_t i = 0; i < n; ++i) idx.push_back(i);
    }
    return idx;
  }

  std::int64_t stride(std::size_t axis) const {
    std::int64_t s = 1;
    for (std::size_t a = axis + 1; a < t.shape.size(); ++a) s *= t.shape[a];
    return s;
  }

  // The flat indices of the elements shown, in order.
  void shown(std::size_t axis, std::int64_t offset, std::vector<std::int64_t>& out) const {
    if (axis == t.shape.size()) {
      out.push_back(offset);
      return;
    }
    for (auto i : kept(t.shape[axis]))
      if (i >= 0) shown(axis + 1, offset + i * stride(axis), out);
  }

  static void extend_line(std::string& s, std::string& line, const std::string& word, int width,
                          const std::string& indent) {
    const bool wrap = static_cast<int>(line.size() + word.size()) > width && line.size() > indent.size();
    if (wrap) {
      s.append(line, 0, line.find_last_not_of(' ') + 1);
      s += '\n';
      line = indent;
    }
    line += word;
  }

  std::string format(std::size_t axis, std::int64_t offset, const std::string& indent,
                     int width, const std::vector<std::string>& cells,
                     const std::vector<std::int64_t>& flat) const {
    if (axis == t.shape.size()) {
      const auto at = std::lower_bound(flat.begin(), flat.end(), offset) - flat.begin();
      return cells[static_cast<std::size_t>(at)];
    }
    std::string next_indent = indent;
    next_indent += ' ';
    const int next_width = width - 1;
    const std::size_t left = t.shape.size() - axis;
    std::string s;
    const auto idx = kept(t.shape[axis]);
    if (left == 1) {
      const int elem_width = width - 1;
      std::string line = indent;
      for (std::size_t k = 0; k < idx.size(); ++k) {
        const std::string word = idx[k] < 0 ? "..." : format(axis + 1, offset + idx[k] * stride(axis),
                                                             next_indent, next_width, cells, flat);
        extend_line(s, line, word, elem_width, indent);
        if (k + 1 < idx.size()) line += ' ';
      }
      s += line;
    } else {
      const std::string line_sep(left - 1, '\n');
      for (std::size_t k = 0; k < idx.size(); ++k) {
        s += indent;
        s += idx[k] < 0 ? "..." : format(axis + 1, offset + idx[k] * stride(axis), next_indent,
                                         next_width, cells, flat);
        if (k + 1 < idx.size()) s += line_sep;
      }
    }
    // (Appends, not "[" + ...: GCC 12 warns falsely there, -Wrestrict.)
    std::string out = "[";
    out.append(s, indent.size());
    out += ']';
    return out;
  }
};

std::string array_text(const TensorImpl& t) {
  if (t.shape.size() == 0) return scalar_text(detail::element_as_double(t, 0), t.dtype);
  if (t.shape.num_elements() == 0) return "[]";
  Printer p{t, t.shape.num_elements() > kSummaryThreshold, {}};
  std::vector<std::int64_t> flat;
  p.shown(0, 0, flat);
  std::vector<std::string> cells;
  if (t.dtype == DType::boolean) {
    for (auto i : flat) cells.push_back(t.as<bool>()[i] ? " True" : "False");
  } else {
    std::vector<double> values;
    for (auto i : flat) values.push_back(detail::element_as_double(t, i));
    const FloatFormat f(values, t.dtype);
    for (double v : values) cells.push_back(f(v));
  }
  return p.format(0, 0, " ", kLineWidth, cells, flat);
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& tensor) {
  const TensorImpl& t = tensor.impl();
  const std::string text = array_text(t);
  os << "tf.Tensor(" << (text.find('\n') != std::string::npos ? "\n" : "") << text << ", shape=(";
  for (std::size_t i = 0; i < t.shape.size(); ++i) os << (i ? ", " : "") << t.shape[i];
  if (t.shape.size() == 1) os << ',';
  os << "), dtype=" << dtype_name(t.dtype) << ')';
  return os;
}

}  // namespace batchjac
