// The program generator's pieces, shared by generate.cpp (values, operands,
// elementwise ops, where) and generate_shape.cpp (reductions, index ops,
// matmul). Private to the fuzzer.
#pragma once

#include "fuzz/program.hpp"

#include <string>
#include <utility>
#include <vector>

namespace fuzz::gen {

// Largest example of any value, in elements.
inline constexpr std::int64_t kMaxElements = 96;
// Values beyond this magnitude are scaled back (a constant multiply).
inline constexpr double kTame = 8.0;

struct Rng {
  std::uint64_t state;
  double real(double lo, double hi) { return uniform(state, lo, hi); }
  // Inclusive bounds.
  std::int64_t integer(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(real(0.0, 1.0) * static_cast<double>(hi - lo + 1));
  }
  bool chance(double p) { return real(0.0, 1.0) < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<std::size_t>(integer(0, static_cast<std::int64_t>(v.size()) - 1))];
  }
};

// A transform applied to an operand before the op, keeping it in the op's
// domain: t + c, softplus(t) + c, or c * tanh(t).
struct Wrap {
  enum Kind { none, shift, softplus_plus, tanh_times } kind = none;
  double c = 0.0;
  bj::Tensor apply(const bj::Tensor& t) const;
  std::string text(const std::string& inner) const;
};

// Where an op's argument must stay.
enum class Domain { any, bounded, positive, nonzero, above_m1, unit, above1, tan, kink };

std::string num(double v);  // "%.7g"
double max_abs(const std::vector<double>& v);

// A second operand of a broadcasting op: a value (one of the step's inputs),
// a constant, or a C++ scalar (a rank-0 constant where an op wants a tensor).
struct Operand {
  enum Kind { value, constant, scalar } kind = scalar;
  int input = -1;  // value: its position in the step's inputs
  Constant c;
  double s = 0.0;
  Dims dims;  // right-aligned with the example's dims; shared constants
  std::string text;
  bj::Tensor get(const std::vector<bj::Tensor>& in, const Env& env) const;
};

// Example axis a (0-based, of an example of rank r) as an argument of the
// full tensor [b, example...]: a + 1, or the same axis counted from the end.
inline std::int64_t axis_arg(Rng& rng, std::int64_t a, std::size_t r) {
  return rng.chance(0.3) ? a + 1 - static_cast<std::int64_t>(r + 1) : a + 1;
}

// NumPy broadcasting of two example shapes aligned on the right; nullopt if incompatible.
std::optional<Dims> broadcast(const Dims& a, const Dims& b);
std::string axes_str(const std::vector<std::int64_t>& axes);

// Builds one program, evaluating each step in float64 on the whole batch as
// it goes so that every choice can look at the values it will meet.
class Generator {
 public:
  explicit Generator(std::uint64_t seed);
  Program run();

  // ---- shared by the op families ----
  Rng rng;
  Program prog;
  Env batch_env;                        // float64, the whole batch
  std::vector<bj::Tensor> vals;   // value k, float64, the whole batch
  std::vector<Dims> dims;         // value k's example shape
  int next_tag = 1;

  std::string name(int v) const {
    std::string s("v");  // not "v" + to_string(v): GCC 12's -Wrestrict false positive (PR 105329)
    return s += std::to_string(v);
  }
  std::vector<double> values(const bj::Tensor& t) const { return t.to_vector<double>(); }
  // Evaluates s on the values it names; appends it (and a taming step if
  // its values grew past kTame) unless its values are not finite. Throws
  // std::logic_error when the result's shape is not s.out (a generator bug).
  bool add(Step s);
  // A value to work on: mostly the latest.
  int pick_value();
  // Values of rank dims[v].size() whose shapes broadcast with d.
  std::vector<int> compatible(const Dims& d) const;
  Constant constant(const Dims& d, bool per_example, double lo = -1.0, double hi = 1.0);
  // A second operand for a value of shape d; `inputs` gets the value it reads.
  Operand operand(const Dims& d, std::vector<int>& inputs, bool allow_scalar = true);
  bj::Tensor eval(const Operand& o, const std::vector<int>& inputs) const;
  // A shift t such that every element of `v` is at least a margin from t:
  // inside [lo, hi] if possible, else just outside the values.
  double threshold(const std::vector<double>& v, double lo, double hi);
  // Half-width of the gap kept around kinks and ties, for values up to `scale`.
  static double margin(double scale) { return 2e-3 * std::max(1.0, scale); }

  // ---- op families: each appends one or more steps on value v ----
  bool unary(int v);
  bool binary(int v);
  bool select(int v);       // where + comparisons
  bool reduction(int v);
  bool index_op(int v);     // slice gather transpose roll tile pad concat reshape ...
  bool along_axis(int v);   // softmax log_softmax cumsum
  bool matmul_op(int v);
  bool misc(int v);         // stop_gradient cast cross
};

// The wrap that keeps values `v` inside `domain`, or none when they already are.
Wrap domain_wrap(Domain domain, const std::vector<double>& v, Generator& g);

}  // namespace fuzz::gen
