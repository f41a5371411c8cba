// bj::TracedScalar: the traced path of bj::scalar_function. Each operation
// on per-example scalars ([b, 1]) is the tensor op of the same name, so the
// functor records an ordinary program; C++ constants fold until they meet
// a traced value.
#include <batchjac/errors.hpp>
#include <batchjac/ops.hpp>
#include <batchjac/scalar_function.hpp>

#include <cmath>

namespace batchjac {

namespace {

using S = TracedScalar;

// The rank-0 constant c in t's dtype.
Tensor like(double c, const Tensor& t) { return constant(c, t.dtype()); }

template <class TT, class TC, class CT, class CC>
S binary(const S& a, const S& b, TT tt, TC tc, CT ct, CC cc) {
  if (!a.is_constant() && !b.is_constant()) return S(tt(a.tensor(), b.tensor()));
  if (!a.is_constant()) return S(tc(a.tensor(), b.constant()));
  if (!b.is_constant()) return S(ct(a.constant(), b.tensor()));
  return S(cc(a.constant(), b.constant()));
}

// a op b on a tensor and a constant through the tensor form.
template <class Op>
S through_tensors(const S& a, const S& b, Op op, double (*folded)(double, double)) {
  return binary(
      a, b, op, [&](const Tensor& t, double c) { return op(t, like(c, t)); },
      [&](double c, const Tensor& t) { return op(like(c, t), t); }, folded);
}

template <class Op>
TracedMask compare(const S& a, const S& b, Op op, bool (*folded)(double, double)) {
  if (a.is_constant() && b.is_constant()) return TracedMask(folded(a.constant(), b.constant()));
  const Tensor& t = a.is_constant() ? b.tensor() : a.tensor();
  const Tensor ta = a.is_constant() ? like(a.constant(), t) : a.tensor();
  const Tensor tb = b.is_constant() ? like(b.constant(), t) : b.tensor();
  return TracedMask(op(ta, tb), t.dtype());
}

template <class Op>
S unary(const S& x, Op op, double (*folded)(double)) {
  return x.is_constant() ? S(folded(x.constant())) : S(op(x.tensor()));
}

}  // namespace

TracedScalar operator+(const TracedScalar& a) { return a; }
TracedScalar operator-(const TracedScalar& a) { return a.is_constant() ? S(-a.constant()) : S(-a.tensor()); }
TracedScalar operator+(const TracedScalar& a, const TracedScalar& b) {
  return binary(
      a, b, [](const Tensor& x, const Tensor& y) { return x + y; }, [](const Tensor& x, double c) { return x + c; },
      [](double c, const Tensor& y) { return c + y; }, [](double x, double y) { return x + y; });
}
TracedScalar operator-(const TracedScalar& a, const TracedScalar& b) {
  return binary(
      a, b, [](const Tensor& x, const Tensor& y) { return x - y; }, [](const Tensor& x, double c) { return x - c; },
      [](double c, const Tensor& y) { return c - y; }, [](double x, double y) { return x - y; });
}
TracedScalar operator*(const TracedScalar& a, const TracedScalar& b) {
  return binary(
      a, b, [](const Tensor& x, const Tensor& y) { return x * y; }, [](const Tensor& x, double c) { return x * c; },
      [](double c, const Tensor& y) { return c * y; }, [](double x, double y) { return x * y; });
}
TracedScalar operator/(const TracedScalar& a, const TracedScalar& b) {
  return binary(
      a, b, [](const Tensor& x, const Tensor& y) { return x / y; }, [](const Tensor& x, double c) { return x / c; },
      [](double c, const Tensor& y) { return c / y; }, [](double x, double y) { return x / y; });
}
TracedScalar& TracedScalar::operator+=(const TracedScalar& b) { return *this = *this + b; }
TracedScalar& TracedScalar::operator-=(const TracedScalar& b) { return *this = *this - b; }
TracedScalar& TracedScalar::operator*=(const TracedScalar& b) { return *this = *this * b; }
TracedScalar& TracedScalar::operator/=(const TracedScalar& b) { return *this = *this / b; }

TracedMask operator<(const S& a, const S& b) {
  return compare(a, b, [](const Tensor& x, const Tensor& y) { return less(x, y); },
                 [](double x, double y) { return x < y; });
}
TracedMask operator<=(const S& a, const S& b) {
  return compare(a, b, [](const Tensor& x, const Tensor& y) { return less_equal(x, y); },
                 [](double x, double y) { return x <= y; });
}
TracedMask operator>(const S& a, const S& b) {
  return compare(a, b, [](const Tensor& x, const Tensor& y) { return greater(x, y); },
                 [](double x, double y) { return x > y; });
}
TracedMask operator>=(const S& a, const S& b) {
  return compare(a, b, [](const Tensor& x, const Tensor& y) { return greater_equal(x, y); },
                 [](double x, double y) { return x >= y; });
}
TracedMask operator==(const S& a, const S& b) {
  return compare(a, b, [](const Tensor& x, const Tensor& y) { return equal(x, y); },
                 [](double x, double y) { return x == y; });
}
TracedMask operator!=(const S& a, const S& b) {
  return compare(a, b, [](const Tensor& x, const Tensor& y) { return not_equal(x, y); },
                 [](double x, double y) { return x != y; });
}

TracedMask operator&&(const TracedMask& a, const TracedMask& b) {
  if (a.is_constant()) return a.constant() ? b : a;
  if (b.is_constant()) return b.constant() ? a : b;
  return TracedMask(logical_and(a.tensor(), b.tensor()), a.dtype());
}
TracedMask operator||(const TracedMask& a, const TracedMask& b) {
  if (a.is_constant()) return a.constant() ? a : b;
  if (b.is_constant()) return b.constant() ? b : a;
  return TracedMask(logical_or(a.tensor(), b.tensor()), a.dtype());
}
TracedMask operator!(const TracedMask& a) {
  return a.is_constant() ? TracedMask(!a.constant()) : TracedMask(logical_not(a.tensor()), a.dtype());
}
TracedMask operator&(const TracedMask& a, const TracedMask& b) { return a && b; }
TracedMask operator|(const TracedMask& a, const TracedMask& b) { return a || b; }

TracedScalar select(const TracedMask& m, const TracedScalar& a, const TracedScalar& b) {
  if (m.is_constant()) return m.constant() ? a : b;
  if (a.is_constant() && b.is_constant())  // of the type the condition compared
    return S(where(m.tensor(), constant(a.constant(), m.dtype()), constant(b.constant(), m.dtype())));
  const Tensor& t = a.is_constant() ? b.tensor() : a.tensor();
  return S(where(m.tensor(), a.is_constant() ? like(a.constant(), t) : a.tensor(),
                 b.is_constant() ? like(b.constant(), t) : b.tensor()));
}

#define BATCHJAC_TRACED_UNARY(name, folded)                                                     \
  TracedScalar name(const TracedScalar& x) {                                                     \
    return unary(x, [](const Tensor& t) { return batchjac::name(t); }, [](double c) { return folded; }); \
  }
BATCHJAC_TRACED_UNARY(exp, std::exp(c))
BATCHJAC_TRACED_UNARY(expm1, std::expm1(c))
BATCHJAC_TRACED_UNARY(log, std::log(c))
BATCHJAC_TRACED_UNARY(log1p, std::log1p(c))
BATCHJAC_TRACED_UNARY(sqrt, std::sqrt(c))
BATCHJAC_TRACED_UNARY(sin, std::sin(c))
BATCHJAC_TRACED_UNARY(cos, std::cos(c))
BATCHJAC_TRACED_UNARY(tan, std::tan(c))
BATCHJAC_TRACED_UNARY(asin, std::asin(c))
BATCHJAC_TRACED_UNARY(acos, std::acos(c))
BATCHJAC_TRACED_UNARY(atan, std::atan(c))
BATCHJAC_TRACED_UNARY(sinh, std::sinh(c))
BATCHJAC_TRACED_UNARY(cosh, std::cosh(c))
BATCHJAC_TRACED_UNARY(tanh, std::tanh(c))
BATCHJAC_TRACED_UNARY(asinh, std::asinh(c))
BATCHJAC_TRACED_UNARY(acosh, std::acosh(c))
BATCHJAC_TRACED_UNARY(atanh, std::atanh(c))
BATCHJAC_TRACED_UNARY(erf, std::erf(c))
BATCHJAC_TRACED_UNARY(abs, std::fabs(c))
BATCHJAC_TRACED_UNARY(square, c * c)
#undef BATCHJAC_TRACED_UNARY
TracedScalar fabs(const TracedScalar& x) { return abs(x); }

TracedScalar pow(const TracedScalar& a, double p) {
  return a.is_constant() ? S(std::pow(a.constant(), p)) : S(pow(a.tensor(), p));
}
TracedScalar pow(double a, const TracedScalar& b) {
  return b.is_constant() ? S(std::pow(a, b.constant())) : S(pow(a, b.tensor()));
}
TracedScalar pow(const TracedScalar& a, const TracedScalar& b) {
  if (b.is_constant()) return pow(a, b.constant());
  if (a.is_constant()) return pow(a.constant(), b);
  return S(pow(a.tensor(), b.tensor()));
}
TracedScalar atan2(const TracedScalar& y, const TracedScalar& x) {
  return through_tensors(
      y, x, [](const Tensor& a, const Tensor& b) { return atan2(a, b); },
      [](double a, double b) { return std::atan2(a, b); });
}
// bj::maximum and bj::minimum (ties: a's derivative; NaN propagates).
TracedScalar fmax(const TracedScalar& a, const TracedScalar& b) {
  return through_tensors(
      a, b, [](const Tensor& x, const Tensor& y) { return maximum(x, y); },
      [](double x, double y) { return x >= y || std::isnan(x) ? x : y; });
}
TracedScalar fmin(const TracedScalar& a, const TracedScalar& b) {
  return through_tensors(
      a, b, [](const Tensor& x, const Tensor& y) { return minimum(x, y); },
      [](double x, double y) { return x <= y || std::isnan(x) ? x : y; });
}

}  // namespace batchjac
