// The elementwise op tables shared by test_elementwise.cpp (derivatives) and
// test_elementwise_eager.cpp (values and errors): one row per public op of
// ops/elementwise_math.hpp, which a compile-time check holds to.
#pragma once

#include "ops/elementwise_math.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <string>
#include <string_view>
#include <type_traits>

namespace elementwise_rows {

namespace bj = batchjac;

using UnaryFn = bj::Tensor (*)(const bj::Tensor&);
using BinaryFn = bj::Tensor (*)(const bj::Tensor&, const bj::Tensor&);
using ScalarRightFn = bj::Tensor (*)(const bj::Tensor&, double);
using ScalarLeftFn = bj::Tensor (*)(double, const bj::Tensor&);

// What an op maps: floats to floats (differentiable), numbers to booleans
// (comparisons) or booleans to booleans (logic); the last two have no derivative.
enum class Kind { real, compare, logic };

// ---- the tables -------------------------------------------------------------------

struct UnaryRow {
  std::string_view name;  // the primitive's name (the math struct's `name`)
  Kind kind;
  UnaryFn op;
  double (*ref)(double);  // std:: math, for eager values
  double lo, hi;          // domain
};

#define BJ_UNARY(fn, lo, hi, ref)                                                   \
  UnaryRow {                                                                        \
    #fn, Kind::real, [](const bj::Tensor& x) { return bj::fn(x); },                 \
        [](double v) { return ref; }, lo, hi                                        \
  }
// clang-format off
constexpr UnaryRow kUnaryRows[] = {
    BJ_UNARY(negative,   -2.0, 2.0, -v),
    BJ_UNARY(abs,        -2.0, 2.0, std::abs(v)),
    BJ_UNARY(sign,       -2.0, 2.0, double((v > 0) - (v < 0))),
    BJ_UNARY(square,     -2.0, 2.0, v * v),
    BJ_UNARY(sqrt,        0.1, 4.0, std::sqrt(v)),
    BJ_UNARY(rsqrt,       0.2, 4.0, 1.0 / std::sqrt(v)),
    BJ_UNARY(reciprocal,  0.3, 3.0, 1.0 / v),
    BJ_UNARY(exp,        -3.0, 3.0, std::exp(v)),
    BJ_UNARY(expm1,      -2.0, 2.0, std::expm1(v)),
    BJ_UNARY(log,         0.1, 4.0, std::log(v)),
    BJ_UNARY(log1p,      -0.5, 3.0, std::log1p(v)),
    BJ_UNARY(sin,        -4.0, 4.0, std::sin(v)),
    BJ_UNARY(cos,        -4.0, 4.0, std::cos(v)),
    BJ_UNARY(tan,        -1.2, 1.2, std::tan(v)),
    BJ_UNARY(asin,       -0.9, 0.9, std::asin(v)),
    BJ_UNARY(acos,       -0.9, 0.9, std::acos(v)),
    BJ_UNARY(atan,       -3.0, 3.0, std::atan(v)),
    BJ_UNARY(sinh,       -2.0, 2.0, std::sinh(v)),
    BJ_UNARY(cosh,       -2.0, 2.0, std::cosh(v)),
    BJ_UNARY(tanh,       -3.0, 3.0, std::tanh(v)),
    BJ_UNARY(asinh,      -3.0, 3.0, std::asinh(v)),
    BJ_UNARY(acosh,       1.2, 4.0, std::acosh(v)),
    BJ_UNARY(atanh,      -0.9, 0.9, std::atanh(v)),
    BJ_UNARY(sigmoid,    -4.0, 4.0, 1.0 / (1.0 + std::exp(-v))),
    BJ_UNARY(softplus,   -4.0, 4.0, std::log1p(std::exp(-std::abs(v))) + std::max(v, 0.0)),
    BJ_UNARY(relu,       -2.0, 2.0, std::max(v, 0.0)),
    BJ_UNARY(erf,        -2.0, 2.0, std::erf(v)),
    UnaryRow{"pow", Kind::real, [](const bj::Tensor& x) { return bj::pow(x, 2.5); },
             [](double v) { return std::pow(v, 2.5); }, 0.1, 3.0},
    UnaryRow{"logical_not", Kind::logic, [](const bj::Tensor& x) { return bj::logical_not(x); },
             [](double v) { return double(v == 0.0); }, 0.0, 1.0},
};
// clang-format on
#undef BJ_UNARY

struct BinaryRow {
  std::string_view name;
  Kind kind;
  BinaryFn op;
  double (*ref)(double, double);
  ScalarRightFn scalar_right = nullptr;  // x op s through an operator, if it has one
  ScalarLeftFn scalar_left = nullptr;    // s op x
};

#define BJ_BINARY(fn, kind, ref)                                                            \
  BinaryRow {                                                                               \
    #fn, Kind::kind, [](const bj::Tensor& a, const bj::Tensor& b) { return bj::fn(a, b); }, \
        [](double a, double b) { return double(ref); }                                      \
  }
// clang-format off
constexpr BinaryRow kBinaryRows[] = {
    {"add", Kind::real, [](const bj::Tensor& a, const bj::Tensor& b) { return bj::add(a, b); },
     [](double a, double b) { return a + b; },
     [](const bj::Tensor& a, double s) { return a + s; }, [](double s, const bj::Tensor& b) { return s + b; }},
    {"subtract", Kind::real, [](const bj::Tensor& a, const bj::Tensor& b) { return bj::subtract(a, b); },
     [](double a, double b) { return a - b; },
     [](const bj::Tensor& a, double s) { return a - s; }, [](double s, const bj::Tensor& b) { return s - b; }},
    {"multiply", Kind::real, [](const bj::Tensor& a, const bj::Tensor& b) { return bj::multiply(a, b); },
     [](double a, double b) { return a * b; },
     [](const bj::Tensor& a, double s) { return a * s; }, [](double s, const bj::Tensor& b) { return s * b; }},
    {"divide", Kind::real, [](const bj::Tensor& a, const bj::Tensor& b) { return bj::divide(a, b); },
     [](double a, double b) { return a / b; },
     [](const bj::Tensor& a, double s) { return a / s; }, [](double s, const bj::Tensor& b) { return s / b; }},
    {"pow", Kind::real, [](const bj::Tensor& a, const bj::Tensor& b) { return bj::pow(a, b); },
     [](double a, double b) { return std::pow(a, b); },
     nullptr, [](double s, const bj::Tensor& b) { return bj::pow(s, b); }},
    BJ_BINARY(maximum,            real,    std::max(a, b)),
    BJ_BINARY(minimum,            real,    std::min(a, b)),
    BJ_BINARY(atan2,              real,    std::atan2(a, b)),
    BJ_BINARY(squared_difference, real,    (a - b) * (a - b)),
    BJ_BINARY(less,               compare, a < b),
    BJ_BINARY(less_equal,         compare, a <= b),
    BJ_BINARY(greater,            compare, a > b),
    BJ_BINARY(greater_equal,      compare, a >= b),
    BJ_BINARY(equal,              compare, a == b),
    BJ_BINARY(not_equal,          compare, a != b),
    BJ_BINARY(logical_and,        logic,   (a != 0) && (b != 0)),
    BJ_BINARY(logical_or,         logic,   (a != 0) || (b != 0)),
};
// clang-format on
#undef BJ_BINARY

// ---- compile-time coverage -----------------------------------------------------------

namespace m = batchjac::ops::math;

// Internal-only ops have no public function, hence no row here. Unary:
// Identity is the engine's copy for reshape and stop_gradient, RoundToFloat
// is cast to float32 inside a float64 program, NonZero is cast to boolean
// (the reshape, stop_gradient and cast rows run them). Binary: SelectFirst
// and SelectSecond are where() with one branch's derivative zero, made by
// where's JVP and transpose rules (the where rows below run them);
// StrongMultiply is the optimiser's product of a chain's coefficients
// (test_strong_zeros runs it). Ternary
// Axpy and quaternary Lincomb are fused linear steps of the linear-program
// optimiser (autodiff/optimize.cpp), which every derivative row runs.
template <class F>
constexpr bool internal_only = std::is_same_v<F, m::Identity> || std::is_same_v<F, m::RoundToFloat> ||
                               std::is_same_v<F, m::NonZero> || std::is_same_v<F, m::SelectFirst> ||
                               std::is_same_v<F, m::SelectSecond> || std::is_same_v<F, m::StrongMultiply> || std::is_same_v<F, m::Axpy> ||
                               std::is_same_v<F, m::Lincomb>;

template <class Rows>
constexpr bool has_row(const Rows& rows, std::string_view name) {
  for (const auto& r : rows)
    if (r.name == name) return true;
  return false;
}
template <class... Fs>
constexpr int internal_count(m::List<Fs...>) {
  return (0 + ... + (internal_only<Fs> ? 1 : 0));
}
template <class Rows, class... Fs>
constexpr bool every_op_has_row(const Rows& rows, m::List<Fs...>) {
  return (true && ... && (internal_only<Fs> || has_row(rows, Fs::name)));
}
template <class Row, class F>
constexpr bool kind_matches(const Row& r) {
  const Kind k = F::domain == m::Domain::real ? Kind::real
                 : F::domain == m::Domain::compare ? Kind::compare : Kind::logic;
  return r.name != F::name || r.kind == k;
}
template <class Rows, class... Fs>
constexpr bool kinds_match(const Rows& rows, m::List<Fs...>) {
  for (const auto& r : rows)
    if (!(true && ... && kind_matches<std::decay_t<decltype(r)>, Fs>(r))) return false;
  return true;
}

static_assert(internal_count(m::Unary{}) == 3, "Identity, RoundToFloat and NonZero are internal-only");
static_assert(internal_count(m::Binary{}) == 3,
              "SelectFirst, SelectSecond and StrongMultiply are internal-only");
static_assert(static_cast<int>(std::size(kUnaryRows)) == m::Unary::size - 3,
              "every public unary op of ops/elementwise_math.hpp needs exactly one row here");
static_assert(every_op_has_row(kUnaryRows, m::Unary{}), "a unary op of ops/elementwise_math.hpp has no row");
static_assert(kinds_match(kUnaryRows, m::Unary{}), "a unary row's kind differs from its op's domain");
static_assert(static_cast<int>(std::size(kBinaryRows)) == m::Binary::size - 3,
              "every public binary op of ops/elementwise_math.hpp needs exactly one row here");
static_assert(every_op_has_row(kBinaryRows, m::Binary{}), "a binary op of ops/elementwise_math.hpp has no row");
static_assert(kinds_match(kBinaryRows, m::Binary{}), "a binary row's kind differs from its op's domain");
static_assert(m::Ternary::size - internal_count(m::Ternary{}) == 1,
              "where is the only public ternary op: its rows are below");
static_assert(every_op_has_row(std::array<BinaryRow, 0>{}, m::Quaternary{}),
              "a public quaternary op needs a table here");

inline std::string row_name(std::string_view op, std::string_view what) {
  return std::string(op) + ": " + std::string(what);
}

}  // namespace elementwise_rows
