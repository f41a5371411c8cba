// Evaluating and printing fuzz programs (program.hpp); generate.cpp draws them.
#include "fuzz/program.hpp"

#include <sstream>

namespace fuzz {

std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double uniform(std::uint64_t& state, double lo, double hi) {
  state = mix(state, 0x5EED);
  return lo + (hi - lo) * (static_cast<double>(state >> 11) * 0x1.0p-53);
}

double fl(double v) { return static_cast<double>(static_cast<float>(v)); }

std::int64_t count(const Dims& d) {
  std::int64_t n = 1;
  for (auto v : d) n *= v;
  return n;
}

std::string dims_str(const Dims& d) {
  std::string s = "[b";
  for (auto v : d) s += ", " + std::to_string(v);
  return s + "]";
}

bj::Shape with_batch(std::int64_t b, const Dims& d) {
  std::vector<std::int64_t> s{b};
  s.insert(s.end(), d.begin(), d.end());
  return bj::Shape(s);
}

namespace {

std::vector<double> draw(std::uint64_t state, std::int64_t n, double lo, double hi) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& e : v) e = fl(uniform(state, lo, hi));
  return v;
}

}  // namespace

bj::Tensor Constant::make(const Env& env) const {
  const std::int64_t n = count(dims);
  if (!per_example) {
    auto shape = leading_one ? with_batch(1, dims) : bj::Shape(dims);
    return bj::constant(draw(mix(env.seed, static_cast<std::uint64_t>(tag)), n, lo, hi), shape,
                        env.dtype);
  }
  auto row = [&](std::int64_t i) {
    return draw(mix(mix(env.seed, static_cast<std::uint64_t>(tag)), static_cast<std::uint64_t>(i) + 1),
                n, lo, hi);
  };
  std::vector<double> all;
  if (env.example) {
    all = row(*env.example);
  } else {
    for (std::int64_t i = 0; i < env.batch; ++i) {
      auto r = row(i);
      all.insert(all.end(), r.begin(), r.end());
    }
  }
  return bj::constant(all, with_batch(env.rows(), dims), env.dtype);
}

std::string Constant::str() const {
  std::ostringstream os;
  if (per_example) {
    os << "pe" << tag << dims_str(dims);
  } else {
    os << "w" << tag << "[";
    if (leading_one) os << (dims.empty() ? "1" : "1, ");
    for (std::size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
    os << "]";
  }
  return os.str();
}

std::vector<double> Program::source_values() const {
  const std::int64_t n = count(source);
  std::vector<double> all;
  for (std::int64_t i = 0; i < batch; ++i) {
    auto r = draw(mix(mix(seed, 0xC0DE), static_cast<std::uint64_t>(i)), n, lo, hi);
    all.insert(all.end(), r.begin(), r.end());
  }
  return all;
}

bj::Tensor Program::source_tensor(bj::DType t) const {
  return bj::constant(source_values(), with_batch(batch, source), t);
}

Env Program::env(bj::DType t, std::optional<std::int64_t> example) const {
  return Env{t, batch, example, seed};
}

bj::Tensor Program::run(const bj::Tensor& x, const Env& env) const {
  std::vector<bj::Tensor> values{x};
  std::vector<bj::Tensor> in;
  for (const Step& s : steps) {
    in.clear();
    for (int i : s.inputs) in.push_back(values[static_cast<std::size_t>(i)]);
    values.push_back(s.fn(in, env));
  }
  return values.back();
}

std::string Program::describe() const {
  std::ostringstream os;
  os << "  x = v0 " << dims_str(source) << " " << bj::dtype_name(dtype) << " in [" << lo << ", "
     << hi << "), b = " << batch << "\n";
  auto id = [&](std::size_t k) { return steps[k].id ? steps[k].id : static_cast<int>(k) + 1; };
  for (std::size_t k = 0; k < steps.size(); ++k)
    os << "  v" << id(k) << " " << dims_str(steps[k].out) << " = " << steps[k].text << "\n";
  if (!steps.empty()) os << "  target = v" << id(steps.size() - 1) << "\n";
  return os.str();
}

void Program::prune() {
  const std::size_t n = steps.size();
  std::vector<bool> live(n + 1, false);  // by value number; value 0 is x
  live[n] = true;
  for (std::size_t k = n; k-- > 0;)
    if (live[k + 1])
      for (int i : steps[k].inputs) live[static_cast<std::size_t>(i)] = true;
  std::vector<int> renumber(n + 1, 0);
  std::vector<Step> kept;
  for (std::size_t k = 0; k < n; ++k) {
    if (!live[k + 1]) continue;
    Step s = steps[k];
    if (!s.id) s.id = static_cast<int>(k) + 1;
    for (int& i : s.inputs) i = renumber[static_cast<std::size_t>(i)];
    kept.push_back(std::move(s));
    renumber[k + 1] = static_cast<int>(kept.size());
  }
  steps = std::move(kept);
}

}  // namespace fuzz
