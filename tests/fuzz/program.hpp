// A fuzz program: a recorded recipe of public ops on a watched source x
// [b, n...], replayable on the whole batch, on one example alone, and in
// float64 for finite differences (see fuzz.cpp for how programs are checked).
#pragma once

#include <batchjac/batchjac.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fuzz {

namespace bj = batchjac;
using Dims = std::vector<std::int64_t>;  // an example's shape: no batch axis

// splitmix64 of a combined key: independent streams for nearby keys.
std::uint64_t mix(std::uint64_t a, std::uint64_t b);
// Uniform in [lo, hi) from 53 bits.
double uniform(std::uint64_t& state, double lo, double hi);
// v rounded to float32 (every scalar and constant of a program is, so that a
// float32 program and its float64 twin hold the same numbers).
double fl(double v);
std::int64_t count(const Dims& d);
std::string dims_str(const Dims& d);  // "[b, 3, 4]"
bj::Shape with_batch(std::int64_t b, const Dims& d);

// The values of a program's stop_gradient calls, kept from one evaluation
// and replayed in the next: central differences of a program hold what
// stop_gradient holds fixed, as its Jacobian does.
struct Frozen {
  std::vector<bj::Tensor> values;
  std::size_t next = 0;
  bool replay = false;
  bj::Tensor take(const bj::Tensor& t) {
    if (!replay) return values.push_back(t), t;
    return values.at(next++);
  }
};

// How a program is evaluated: in which dtype, on how many rows (the batch,
// or the one example evaluated alone).
struct Env {
  bj::DType dtype = bj::float64;
  std::int64_t batch = 1;                // examples in the whole batch
  std::optional<std::int64_t> example;   // evaluate this example alone, as [1, n...]
  std::uint64_t seed = 0;                // the program's seed: constants derive from it
  Frozen* frozen = nullptr;              // stop_gradient's values, for finite differences
  std::int64_t rows() const { return example ? 1 : batch; }
};

// A constant operand, made from the program's seed and its tag: shared by
// every example (`dims` as is, optionally with a leading 1), or per example
// ([rows, dims...], example i's row the same whether the batch or example i
// alone is evaluated). Values are float32-representable.
struct Constant {
  int tag = 0;
  Dims dims;
  bool per_example = false;
  bool leading_one = false;  // shared: shape [1, dims...]
  double lo = -1.0, hi = 1.0;
  bj::Tensor make(const Env& env) const;
  std::string str() const;  // "pe3[b, 4]" or "w3[4, 2]"
};

// One step: value k + 1 = fn(values named by `inputs`). Value 0 is x.
struct Step {
  std::string text;  // readable: "log(softplus(v2) + 0.1)"
  std::vector<int> inputs;
  std::function<bj::Tensor(const std::vector<bj::Tensor>& in, const Env& env)> fn;
  Dims out;  // the result's example shape
  int id = 0;  // its value number when drawn (descriptions keep it after pruning)
};

struct Program {
  std::uint64_t seed = 0;
  bj::DType dtype = bj::float64;
  std::int64_t batch = 1;
  Dims source;                // x's example shape
  double lo = -1.0, hi = 1.0;  // x's range
  std::vector<Step> steps;    // the target is the last step's value

  // The source's values, [batch, source...], row i from (seed, i) alone,
  // float32-representable.
  std::vector<double> source_values() const;
  bj::Tensor source_tensor(bj::DType dtype) const;
  // Runs every step on x ([rows, source...]) and returns the target.
  bj::Tensor run(const bj::Tensor& x, const Env& env) const;
  Env env(bj::DType dtype, std::optional<std::int64_t> example = std::nullopt) const;
  std::string describe() const;
  // Drops the steps the target does not read (directly or not).
  void prune();
};

// Draws a program from `seed`: dtype, batch size, source shape and 1-14
// steps, each checked on the values it will see so that every op stays in
// its domain and away from kinks and ties by a margin.
Program generate(std::uint64_t seed);

}  // namespace fuzz
