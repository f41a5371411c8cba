// The elementwise primitives' math: primal value and local partial, one struct
// per op (CoDiPack's style). Templated on V, which is either a scalar (eager
// evaluation) or an xsimd batch whose lanes are examples (the engine); both
// modes and both layouts use these same lines. `s` is the op's scalar
// attribute (pow's exponent), unused by most.
#pragma once

#include <xsimd/xsimd.hpp>

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace batchjac::ops::math {
// Internal linkage, for the same reason as in kernels/lane_kernels.hpp: the
// per-instruction-set kernel files must not share instantiations.
namespace {

// ---- unary: primal(x, s) and partial(x, y, s) = dy/dx ----------------------
struct Negative {
  static constexpr std::string_view name = "negative";
  // y = -x;  dy/dx = -1
  template <class V, class S> static V primal(V x, S) { return -x; }
  template <class V, class S> static V partial(V, V, S) { return V(S(-1)); }
};
struct Square {
  static constexpr std::string_view name = "square";
  // y = x^2;  dy/dx = 2x
  template <class V, class S> static V primal(V x, S) { return x * x; }
  template <class V, class S> static V partial(V x, V, S) { return x + x; }
};
struct Sqrt {
  static constexpr std::string_view name = "sqrt";
  // y = sqrt(x);  dy/dx = 0.5 / y  (inf at 0, as TF)
  template <class V, class S> static V primal(V x, S) { return xsimd::sqrt(x); }
  template <class V, class S> static V partial(V, V y, S) { return V(S(0.5)) / y; }
};
struct Exp {
  static constexpr std::string_view name = "exp";
  // y = exp(x);  dy/dx = y
  template <class V, class S> static V primal(V x, S) { return xsimd::exp(x); }
  template <class V, class S> static V partial(V, V y, S) { return y; }
};
struct Log {
  static constexpr std::string_view name = "log";
  // y = log(x);  dy/dx = 1 / x
  template <class V, class S> static V primal(V x, S) { return xsimd::log(x); }
  template <class V, class S> static V partial(V x, V, S) { return V(S(1)) / x; }
};
struct Sin {
  static constexpr std::string_view name = "sin";
  // y = sin(x);  dy/dx = cos(x)
  template <class V, class S> static V primal(V x, S) { return xsimd::sin(x); }
  template <class V, class S> static V partial(V x, V, S) { return xsimd::cos(x); }
};
struct Cos {
  static constexpr std::string_view name = "cos";
  // y = cos(x);  dy/dx = -sin(x)
  template <class V, class S> static V primal(V x, S) { return xsimd::cos(x); }
  template <class V, class S> static V partial(V x, V, S) { return -xsimd::sin(x); }
};
struct Tanh {
  static constexpr std::string_view name = "tanh";
  // y = tanh(x);  dy/dx = 1 - y^2 (reuses y)
  template <class V, class S> static V primal(V x, S) { return xsimd::tanh(x); }
  template <class V, class S> static V partial(V, V y, S) { return V(S(1)) - y * y; }
};
struct PowScalar {
  static constexpr std::string_view name = "pow";
  // y = x^p;  dy/dx = p x^(p-1)  (p = 0: 0 everywhere, as TF)
  template <class V, class S> static V primal(V x, S p) { return xsimd::pow(x, V(p)); }
  template <class V, class S> static V partial(V x, V, S p) {
    if (p == S(0)) return V(S(0));
    return V(p) * xsimd::pow(x, V(p - S(1)));
  }
};
// Identity: the engine's copy for reshape, stop_gradient and same-type casts.
struct Identity {
  static constexpr std::string_view name = "identity";
  template <class V, class S> static V primal(V x, S) { return x; }
  template <class V, class S> static V partial(V, V, S) { return V(S(1)); }
};
// Rounds to float32 and back: cast to float32 inside a float64 program.
struct RoundToFloat {
  static constexpr std::string_view name = "cast";
  template <class V, class S> static V primal(V x, S) {
    if constexpr (std::is_same_v<V, S>) {
      return static_cast<S>(static_cast<float>(x));
    } else {
      alignas(64) S buf[V::size];
      x.store_aligned(buf);
      for (auto& v : buf) v = static_cast<S>(static_cast<float>(v));
      return V::load_aligned(buf);
    }
  }
  template <class V, class S> static V partial(V, V, S) { return V(S(1)); }
};

// 1 where x != 0, else 0: cast to boolean inside a program.
struct NonZero {
  static constexpr std::string_view name = "cast";
  template <class V, class S> static V primal(V x, S) {
    if constexpr (std::is_same_v<V, S>) return x != S(0) ? S(1) : S(0);
    else return xsimd::select(x != V(S(0)), V(S(1)), V(S(0)));
  }
  template <class V, class S> static V partial(V, V, S) { return V(S(0)); }
};

// ---- binary: primal(a, b, s); their JVPs are written with linear primitives --
struct Add {
  static constexpr std::string_view name = "add";
  template <class V, class S> static V primal(V a, V b, S) { return a + b; }
};
struct Subtract {
  static constexpr std::string_view name = "subtract";
  template <class V, class S> static V primal(V a, V b, S) { return a - b; }
};
struct Multiply {
  static constexpr std::string_view name = "multiply";
  template <class V, class S> static V primal(V a, V b, S) { return a * b; }
};
struct Divide {
  static constexpr std::string_view name = "divide";
  template <class V, class S> static V primal(V a, V b, S) { return a / b; }
};

template <class... Ts>
struct List {
  static constexpr int size = sizeof...(Ts);
};

// The compile-time lists the kernel tables are built from. Adding an
// elementwise op = one struct above + one entry here.
using Unary = List<Negative, Square, Sqrt, Exp, Log, Sin, Cos, Tanh, PowScalar, Identity,
                   RoundToFloat, NonZero>;
using Binary = List<Add, Subtract, Multiply, Divide>;

template <class F, class L>
struct IndexOf;
template <class F, class... Ts>
struct IndexOf<F, List<F, Ts...>> {
  static constexpr int value = 0;
};
template <class F, class T, class... Ts>
struct IndexOf<F, List<T, Ts...>> {
  static constexpr int value = 1 + IndexOf<F, List<Ts...>>::value;
};
template <class F, class L>
inline constexpr int index_of = IndexOf<F, L>::value;

}  // namespace
}  // namespace batchjac::ops::math
