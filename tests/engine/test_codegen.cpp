// Generated code (lib/codegen, <batchjac/codegen.hpp>): on programs of every
// step kind the generator writes or leaves to the interpreter, a generated
// kernel gives the interpreter's Jacobian and value bit for bit, and the
// engine really ran it; a missing compiler falls back to the interpreter;
// objects are cached on disk; background compilation swaps in.
#include "codegen/compile.hpp"
#include "engine/plan_cache.hpp"
#include "ops/elementwise_math.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>
#include <batchjac/codegen.hpp>
#include <batchjac/scalar_function.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <csignal>

#include <cfenv>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace bj = batchjac;

namespace {

// A new empty directory under the system's temporary directory.
std::string fresh_directory(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("batchjac-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Sets the process's generation mode and a new cache directory for one
// test, with no object or plan of earlier tests remembered; then restores
// them and removes the directory.
class ScopedGeneration {
 public:
  ScopedGeneration(bj::CodeGeneration mode, const std::string& name)
      : mode_(bj::code_generation()), previous_(bj::code_cache_directory()), directory_(fresh_directory(name)) {
    bj::wait_for_code_generation();  // queued compiles use the directory current when they start
    bj::set_code_generation(mode);
    bj::set_code_cache_directory(directory_);
    batchjac::engine::clear_plan_cache();
    batchjac::codegen::forget_modules();
  }
  ~ScopedGeneration() {
    bj::wait_for_code_generation();
    bj::set_code_generation(mode_);
    bj::set_code_cache_directory(previous_);
    batchjac::engine::clear_plan_cache();
    batchjac::codegen::forget_modules();
    std::error_code ec;
    std::filesystem::remove_all(directory_, ec);
  }
  const std::string& directory() const { return directory_; }

 private:
  bj::CodeGeneration mode_;
  std::string previous_, directory_;
};

using Program = std::function<bj::Tensor(const bj::Tensor&)>;

// Elementwise math of every family, slices and concats (gathers and
// scatters), a where under a shared mask, division by a per-example value
// (the sparse form's reciprocals), pow with a scalar, a reduction.
bj::Tensor elementwise_mix(const bj::Tensor& x) {
  const bj::DType t = x.dtype();
  const bj::Tensor a = bj::slice(x, {0, 0}, {-1, 3}), c = bj::slice(x, {0, 3}, {-1, 3});
  const bj::Tensor s = bj::reduce_sum(a * a, {1}, true) + bj::constant(0.5, t);
  const bj::Tensor u = bj::exp(-c) * bj::sin(a) / s + bj::tanh(c * a) - bj::sqrt(s) * bj::log1p(a * a);
  const bj::Tensor mask = bj::constant(std::vector<double>{1, 0, 1}, {1, 3}, t) > bj::constant(0.5, t);
  const bj::Tensor w = bj::where(mask, bj::pow(bj::abs(c) + 1, 1.5), bj::atan2(a, c + 2));
  return bj::concat({u, w, bj::reduce_sum(u * w, {1}, true) / (s * s)}, 1);
}

// A 3x3 inverse and a running sum: steps the generator leaves to the
// interpreter, between generated ones.
bj::Tensor with_interpreted_steps(const bj::Tensor& x) {
  const bj::DType t = x.dtype();
  const bj::Tensor m = bj::reshape(x, {-1, 3, 3}) + bj::constant(std::vector<double>{2, 0, 0, 0, 2, 0, 0, 0, 2}, {1, 3, 3}, t);
  const bj::Tensor inv = bj::reshape(bj::linalg::inv(m), {-1, 9});
  return bj::cumsum(inv * bj::exp(x * 0.1), 1) + bj::square(x);
}

// Chains of elementwise ops long enough to fill several generated parts,
// with slices, a concat and reductions inside them: values that live in one
// part's registers, values read across parts, and values the linear program
// reads as coefficients.
bj::Tensor long_chains(const bj::Tensor& x) {
  bj::Tensor y = x;  // [b, 9]
  for (int i = 0; i < 12; ++i) {
    const bj::Tensor head = bj::slice(y, {0, 0}, {-1, 4}), tail = bj::slice(y, {0, 4}, {-1, 5});
    const bj::Tensor s = bj::reduce_sum(head * head, {1}, true);
    const bj::Tensor z = bj::concat({bj::sin(head) * 0.9 + s * 0.01, bj::tanh(tail) + tail * 0.5}, 1);
    y = bj::cos(z * 0.7) * x * 0.5 + bj::exp(-bj::square(z)) * 0.3;
  }
  return y;
}

// sqrt at 0 in some examples: an infinite partial times a zero tangent,
// which the engine reruns with strong zeros.
bj::Tensor with_nan_partials(const bj::Tensor& x) { return bj::sqrt(x * x) + bj::sqrt(bj::abs(x)) * x; }

// The Jacobian and value of f at x with the option given.
std::pair<bj::Tensor, bj::Tensor> jacobian_and_value(const Program& f, const bj::Tensor& x, bj::JacobianMode mode,
                                                     bool generated) {
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = f(x);
  bj::JacobianOptions o;
  o.mode = mode;
  o.generated_code = generated;
  const bj::Tensor j = *tape.batch_jacobian(y, x, o);
  return {j, y};
}

// f's Jacobians and values with the generated kernel (where the plan has a
// sparse form) and with the interpreter are the same bits.
void check_same_bits(const std::string& what, const Program& f, const bj::Tensor& x, bj::JacobianMode mode) {
  INFO(what << ", " << bj::dtype_name(x.dtype()) << ", batch " << x.shape()[0] << ", "
            << (mode == bj::JacobianMode::forward ? "forward" : "reverse"));
  const auto [jg, yg] = jacobian_and_value(f, x, mode, true);
  const auto [ji, yi] = jacobian_and_value(f, x, mode, false);
  CHECK(check::same_bits(jg, ji));
  CHECK(check::same_bits(yg, yi));
}

// check_same_bits, where the generated kernel must run.
void check_generated_bits(const std::string& what, const Program& f, const bj::Tensor& x, bj::JacobianMode mode) {
  const std::size_t runs = bj::code_generation_stats().generated_runs;
  check_same_bits(what, f, x, mode);
  REQUIRE(bj::code_generation_stats().generated_runs > runs);  // the generated kernel ran
}

bj::Tensor inputs(std::int64_t batch, std::int64_t n, bj::DType dtype, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  return check::random_tensor(rng, {batch, n}, 0.2, 1.5, dtype);
}

// An executable shell script at `path` (a stand-in compiler).
void write_script(const std::string& path, const std::string& text) {
  {
    std::ofstream script(path);
    script << text;
  }
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
}

}  // namespace

TEST_CASE("generated kernels give the interpreter's bits", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");  // every program with a sparse form uses it
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "bits");
  const std::vector<std::pair<std::string, Program>> programs{
      {"elementwise mix", elementwise_mix},
      {"interpreted steps", with_interpreted_steps},
      {"long chains", long_chains},
      {"nan partials", with_nan_partials}};
  for (const auto& [name, f] : programs) {
    int modes_generated = 0;
    for (const bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
      // A mode's plans are sparse (generated) for every dtype and batch, or for none.
      int generated = 0, calls = 0;
      for (const bj::DType dtype : {bj::float64, bj::float32})
        for (const std::int64_t batch : {1, 7, 17, 33}) {  // tails of 8 and 16 lanes
          bj::Tensor x = inputs(batch, 9, dtype, 11);
          if (name == "nan partials") {  // zeros in some examples
            std::vector<double> v = check::values(x);
            for (std::size_t i = 0; i < v.size(); i += 5) v[i] = 0;
            x = bj::constant(v, x.shape(), dtype);
          }
          const std::size_t runs = bj::code_generation_stats().generated_runs;
          check_same_bits(name, f, x, mode);
          generated += bj::code_generation_stats().generated_runs > runs;
          ++calls;
        }
      INFO(name << (mode == bj::JacobianMode::forward ? ", forward" : ", reverse"));
      CHECK((generated == 0 || generated == calls));
      modes_generated += generated > 0;
    }
    INFO(name);
    CHECK(modes_generated > 0);
  }
  CHECK(bj::code_generation_stats().failed == 0);
}

TEST_CASE("values one generated part writes and reads are registers, not stored", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "registers");
  const bj::Tensor x = inputs(17, 9, bj::float64, 3);
  check_generated_bits("long_chains", long_chains, x, bj::JacobianMode::forward);
  CHECK(bj::code_generation_stats().failed == 0);
  // Each element a primal step computes is a register ("const V t<n> = ..."),
  // stored ("st(b + ...)") only when read elsewhere.
  std::size_t sources = 0, computed = 0, stored = 0, functions = 0;
  for (const auto& e : std::filesystem::directory_iterator(generation.directory())) {
    if (e.path().extension() != ".cpp") continue;
    ++sources;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) {
      functions += line.find("static int primal") != std::string::npos;
      computed += line.find("const V t") != std::string::npos;
      stored += line.rfind("    st(b + ", 0) == 0;
    }
  }
  REQUIRE(sources >= 1);
  CHECK(functions > sources);  // several functions per object: values also cross between them
  CHECK(computed > 1000);
  CHECK(stored > 0);
  // Forward mode keeps the partials (coefficients): here about 40% of the
  // elements are intermediates of one part.
  CHECK(4 * (static_cast<std::int64_t>(computed) - static_cast<std::int64_t>(stored)) >
        static_cast<std::int64_t>(computed));
}

// A generated source's lines, the primal functions' and the sparse ops'.
struct GeneratedSource {
  std::vector<std::string> primal, sparse;
};
GeneratedSource read_source(const std::filesystem::path& path) {
  GeneratedSource g;
  std::ifstream in(path);
  bool sparse = false;
  for (std::string line; std::getline(in, line);) {
    sparse = sparse || line.starts_with("typedef T R ");
    (sparse ? g.sparse : g.primal).push_back(line);
  }
  return g;
}
// The numbers after `prefix` in `lines` ("LD(b + " -> the offsets read).
std::vector<std::int64_t> numbers_after(const std::vector<std::string>& lines, const std::string& prefix) {
  std::vector<std::int64_t> out;
  for (const std::string& line : lines)
    for (std::size_t at = line.find(prefix); at != std::string::npos; at = line.find(prefix, at + 1))
      out.push_back(std::stoll(line.substr(at + prefix.size())));
  return out;
}
std::size_t lines_starting(const std::vector<std::string>& lines, const std::string& prefix) {
  return static_cast<std::size_t>(
      std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.starts_with(prefix); }));
}

TEST_CASE("generated sparse ops keep in registers what only other ops read", "[codegen][sparse]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  for (const bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    INFO((mode == bj::JacobianMode::forward ? "forward" : "reverse"));
    const ScopedGeneration generation(bj::CodeGeneration::immediate, "sparse-registers");
    for (const std::int64_t batch : {1, 9, 17})
      check_generated_bits("long_chains", long_chains, inputs(batch, 9, bj::float64, 5), mode);
    CHECK(bj::code_generation_stats().failed == 0);
    std::size_t sources = 0, across = 0;
    for (const auto& e : std::filesystem::directory_iterator(generation.directory())) {
      if (e.path().extension() != ".cpp") continue;
      ++sources;
      INFO(e.path());
      const GeneratedSource g = read_source(e.path());
      // Each op sums into "a<n>"; the buffer gets the Jacobian's 81
      // entries per example ("ST(b + "), no more; values other functions
      // read go through the scratch array ("x[k] = ").
      const std::size_t ops = lines_starting(g.sparse, "  R a"), stores = lines_starting(g.sparse, "  ST(b + ");
      CHECK(ops > 2 * 81);
      CHECK(stores <= 81);
      CHECK(stores > 0);
      across += lines_starting(g.sparse, "  x[");
      // Every offset an op loads is one the primal functions store or
      // read: the ops read nothing the block left behind.
      std::vector<std::int64_t> primal = numbers_after(g.primal, "st(b + ");
      for (std::int64_t o : numbers_after(g.primal, "ld(b + ")) primal.push_back(o);
      std::sort(primal.begin(), primal.end());
      for (std::int64_t o : numbers_after(g.sparse, "LD(b + ")) {
        INFO("offset " << o);
        CHECK(std::binary_search(primal.begin(), primal.end(), o));
      }
    }
    CHECK(sources >= 1);
    CHECK(across > 0);  // more ops than one function takes: some cross
  }
}

// Pairwise differences of 5 coordinates, as pair potentials write them:
// d[k][l] = x_k - x_l over all pairs (k == l too), the pairs l <= k masked
// off by a shared constant: [b, 5] -> [b, 5].
bj::Tensor pair_sums(const bj::Tensor& x) {
  std::vector<double> upper(25, 0.0);
  for (int k = 0; k < 5; ++k)
    for (int l = k + 1; l < 5; ++l) upper[k * 5 + l] = 1.0;
  const bj::Tensor mask = bj::constant(upper, {5, 5}, bj::boolean);
  const bj::Tensor d = bj::expand_dims(x, 2) - bj::expand_dims(x, 1);  // [b, 5, 5]
  const bj::Tensor e = bj::exp(-bj::square(d));
  return bj::reduce_sum(bj::where(mask, e * d, bj::zeros({1})) + e, {2});
}

// Forces between 4 points in 3-space, as W10 writes them (all ordered
// pairs, the self pairs masked): F_k = sum_{l != k} r_kl^-4 (p_k - p_l),
// [b, 12] -> [b, 12].
bj::Tensor pair_forces(const bj::Tensor& x) {
  std::vector<double> not_self(16, 1.0);
  for (int k = 0; k < 4; ++k) not_self[k * 4 + k] = 0.0;
  const bj::Tensor mask = bj::constant(not_self, {4, 4, 1}, bj::boolean);
  const bj::Tensor p = bj::reshape(x, {-1, 4, 3});
  const bj::Tensor d = bj::expand_dims(p, 2) - bj::expand_dims(p, 1);  // [b, 4, 4, 3]
  const bj::Tensor r2 = bj::reduce_sum(bj::square(d), {3}, /*keepdims=*/true);
  const bj::Tensor inv = bj::reciprocal(bj::where(mask, r2, bj::ones({1}, x.dtype())));
  return bj::reshape(bj::reduce_sum(bj::where(mask, inv * inv, bj::zeros({1}, x.dtype())) * d, {2}), {-1, 12});
}

// Per generated source in `directory`: its lines that contain `text`.
std::vector<std::size_t> count_lines(const std::string& directory, const std::string& text) {
  std::vector<std::size_t> counts;
  for (const auto& e : std::filesystem::directory_iterator(directory)) {
    if (e.path().extension() != ".cpp") continue;
    std::size_t n = 0;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) n += line.find(text) != std::string::npos;
    counts.push_back(n);
  }
  return counts;
}

TEST_CASE("generated primal code computes each value once", "[codegen]") {
  namespace m = batchjac::ops::math;
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  for (const bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    const ScopedGeneration generation(bj::CodeGeneration::immediate, "numbering");
    const bj::Tensor x = inputs(19, 5, bj::float64, 11);
    check_generated_bits("pair_sums", pair_sums, x, mode);
    // square(x_l - x_k) is square(x_k - x_l): of the 25 pairs, the 10
    // unordered ones and the 5 with k == l have an exp each (25 without
    // numbering). Expand_dims' copies are the elements they copy, and the
    // where with a constant mask is no call.
    const std::string exp = "At<m::Unary, " + std::to_string(m::kExp) + ">::type::primal(";
    const std::string where = "At<m::Ternary, " + std::to_string(m::kWhere) + ">::type::primal(";
    INFO("mode " << static_cast<int>(mode));
    // (The call's plans with and without the value are two sources.)
    const std::string identity = "At<m::Unary, " + std::to_string(m::kIdentity) + ">";
    const std::vector<std::size_t> exps = count_lines(generation.directory(), exp);
    REQUIRE(!exps.empty());
    for (std::size_t n : exps) CHECK(n == 15);
    for (const std::string& call : {where, identity})
      for (std::size_t n : count_lines(generation.directory(), call)) CHECK(n == 0);
    // x_1 and x_3 NaNs of different bits: x_1 - x_3 is x_1's NaN, x_3 - x_1
    // is x_3's, so there the identity does not hold; the block runs
    // interpreted (the other blocks stay generated).
    std::vector<double> v = x.to_vector<double>();
    v[5 + 1] = std::bit_cast<double>(std::uint64_t{0x7ff8000000000123});
    v[5 + 3] = std::bit_cast<double>(std::uint64_t{0xfff8000000000000});
    check_same_bits("pair_sums with NaNs", pair_sums, bj::constant(v, x.shape()), mode);
  }
}

// Per sparse op of a generated source, in order: its terms.
std::vector<int> sparse_op_terms(const std::filesystem::path& source) {
  std::vector<int> terms;
  std::ifstream in(source);
  for (std::string line; std::getline(in, line);) {  // "  R a7 = SPLAT(T(0));", then "  a7 = FMA(...": one per term
    if (line.starts_with("  R a") && line.find(" = SPLAT(T(0));") != std::string::npos) terms.push_back(0);
    else if (line.starts_with("  a") && line.find(" = FMA(") != std::string::npos && !terms.empty()) ++terms.back();
  }
  return terms;
}

// x0 (x1 + x2 + x3 + x4 + x5), one addition at a time as scalar code writes
// it: [b, 6] -> [b, 1].
bj::Tensor sum_by_additions(const bj::Tensor& x) {
  auto col = [&](int i) { return bj::slice(x, {0, i}, {-1, 1}); };
  bj::Tensor s = col(0) * col(1);
  for (int i = 2; i < 6; ++i) s = s + col(0) * col(i);
  return s;
}

// (x0 x1 + x0 x2) / 3 + x0 x3 + x0 x4: the inner sum is read through its
// scaling op (which is then read by no one) and merges too: [b, 5] -> [b, 1].
bj::Tensor scaled_sum_by_additions(const bj::Tensor& x) {
  auto col = [&](int i) { return bj::slice(x, {0, i}, {-1, 1}); };
  return (col(0) * col(1) + col(0) * col(2)) / 3.0 + col(0) * col(3) + col(0) * col(4);
}

TEST_CASE("generated primal code stores a register the sparse ops read once", "[codegen][sparse]") {
  namespace m = batchjac::ops::math;
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  for (const bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    INFO((mode == bj::JacobianMode::forward ? "forward" : "reverse"));
    const ScopedGeneration generation(bj::CodeGeneration::immediate, "stored-once");
    const bj::Tensor apart = bj::constant(std::vector<double>{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, {1, 12});
    const bj::Tensor x = inputs(17, 12, bj::float64, 7) + apart;
    check_generated_bits("pair_forces", pair_forces, x, mode);
    // The partials of the pair (k, l) are the pair (l, k)'s registers
    // (square(p_l - p_k) numbers as square(p_k - p_l)): the terms of both
    // read one element of the buffer.
    std::size_t sources = 0;
    for (const auto& e : std::filesystem::directory_iterator(generation.directory())) {
      if (e.path().extension() != ".cpp") continue;
      ++sources;
      INFO(e.path());
      const GeneratedSource g = read_source(e.path());
      std::vector<std::string> stored;
      for (const std::string& line : g.primal)
        if (line.starts_with("    st(b + ") && line.find(", V(") == std::string::npos)  // a register, not a literal
          stored.push_back(line.substr(line.find(", ") + 2, line.find(')') - line.find(", ") - 2));
      CHECK(!stored.empty());
      std::sort(stored.begin(), stored.end());
      const auto twice = std::adjacent_find(stored.begin(), stored.end());
      CHECK((twice == stored.end() ? std::string() : *twice) == "");
      // Nor its negation: of p_k - p_l and p_l - p_k (and of their
      // square's partials, 2 (p_k - p_l)), one goes to the buffer, and
      // the terms that read the other negate their scale. 6 pairs of 3
      // coordinates: at most 18 differences stored.
      const std::string subtract = "At<m::Binary, " + std::to_string(m::kSubtract) + ">::type::primal(";
      std::size_t differences = 0;
      for (const std::string& line : g.primal)
        if (line.find(subtract) != std::string::npos) {
          const std::string r = line.substr(line.find("const V ") + 8, line.find(" = ") - line.find("const V ") - 8);
          differences += std::binary_search(stored.begin(), stored.end(), r);
        }
      CHECK(differences <= 18);
    }
    CHECK(sources >= 1);
    // A NaN difference (the identity fails there) in one block, an
    // infinite r^-4 (two points at one place) in another.
    std::vector<double> v = x.to_vector<double>();
    v[12 + 1] = std::bit_cast<double>(std::uint64_t{0x7ff8000000000123});
    v[12 + 4] = std::bit_cast<double>(std::uint64_t{0xfff8000000000000});
    for (int i = 0; i < 3; ++i) v[12 * 9 + 3 + i] = v[12 * 9 + i];
    check_same_bits("pair_forces with NaNs and infinities", pair_forces, bj::constant(v, x.shape()), mode);
  }
}

TEST_CASE("generated sparse ops stream a large Jacobian's rows as they finish them", "[codegen][sparse]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  // 144 entries per example, over 8 MiB in all (non-temporal rows), and
  // tails of 8 and 16 lanes.
  const std::int64_t n = 12, per = n * n, batch = 16384 + 5;
  const std::vector<double> apart{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
  for (const bj::DType dtype : {bj::float64, bj::float32})
    for (const bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
      INFO(bj::dtype_name(dtype) << (mode == bj::JacobianMode::forward ? ", forward" : ", reverse"));
      const ScopedGeneration generation(bj::CodeGeneration::immediate, "streamed-rows");
      const bj::Function f = bj::trace(pair_forces, bj::TensorSpec{bj::Shape{-1, n}, dtype});
      // A NaN in one block, two points at one place (infinite partials) in another.
      std::vector<double> v = check::values(inputs(batch, n, dtype, 3) + bj::constant(apart, {1, n}, dtype));
      v[9 * n + 1] = std::numeric_limits<double>::quiet_NaN();
      for (int i = 0; i < 3; ++i) v[330 * n + 3 + i] = v[330 * n + i];
      auto run = [&]<class S>(S, bool generated, std::size_t misalign) {
        const std::vector<S> x(v.begin(), v.end());
        std::vector<S> space(static_cast<std::size_t>(batch * per) + 64);
        // The rows start on a 64-byte boundary, then `misalign` elements after one.
        std::size_t at = 0;
        while (reinterpret_cast<std::uintptr_t>(space.data() + at) % 64 != 0) ++at;
        const std::span<S> jac(space.data() + at + misalign, static_cast<std::size_t>(batch * per));
        bj::JacobianOptions o;
        o.mode = mode;
        o.generated_code = generated;
        f.batch_jacobian_into(std::span<const S>(x), jac, o);
        return std::vector<S>(jac.begin(), jac.end());
      };
      auto same = [&]<class S>(S s) {
        const std::vector<S> interpreted = run(s, false, 0);
        const std::size_t runs = bj::code_generation_stats().generated_runs;
        for (const std::size_t misalign : {0, 1}) {
          INFO("misaligned by " << misalign);
          const std::vector<S> generated = run(s, true, misalign);
          CHECK(std::memcmp(generated.data(), interpreted.data(), interpreted.size() * sizeof(S)) == 0);
        }
        CHECK(bj::code_generation_stats().generated_runs >= runs + 2);
      };
      if (dtype == bj::float64) same(double{});
      else same(float{});
      // Every entry's line is written once, after the last op that writes
      // one of its entries: the rows(..., o + j0, ...) calls (zeros(o + j0,
      // ...) where no op writes), a tile of the width each, cover 0 .. 144.
      std::size_t sources = 0;
      for (const auto& e : std::filesystem::directory_iterator(generation.directory())) {
        if (e.path().extension() != ".cpp") continue;
        ++sources;
        std::ifstream in(e.path());
        int width = 0;
        std::vector<int> tiles;  // their first entries
        for (std::string line; std::getline(in, line);) {
          if (line.starts_with("static_assert(V::size == ")) width = std::stoi(line.substr(25));
          if (line.find("if (o) rows(") != std::string::npos || line.find("if (o) zeros(") != std::string::npos)
            tiles.push_back(std::stoi(line.substr(line.find("o + ") + 4)));
        }
        REQUIRE(width > 0);
        std::sort(tiles.begin(), tiles.end());
        int next = 0;
        for (const int j0 : tiles) {
          CHECK(j0 == next);
          next = j0 + width;
        }
        CHECK(next == per);
      }
      CHECK(sources >= 1);
    }
}

TEST_CASE("a NaN the generated sparse ops make themselves sends the block to the interpreter", "[codegen][sparse]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  // y_i = c_i sum_j sqrt(a_j): the sparse ops multiply c_i by the partial
  // 1 / (2 sqrt(a_j)), so c_i = 0 and a_j = 0 (i != j) make 0 * inf = NaN
  // there from operands that are not NaN (the interpreter then reruns with
  // strong zeros).
  const Program f = [](const bj::Tensor& x) {
    const bj::Tensor a = bj::slice(x, {0, 0}, {-1, 3}), c = bj::slice(x, {0, 3}, {-1, 3});
    return bj::reduce_sum(bj::sqrt(a), {1}, true) * c;
  };
  for (const bj::DType dtype : {bj::float64, bj::float32})
    for (const bj::JacobianMode mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
      const ScopedGeneration generation(bj::CodeGeneration::immediate, "own-nan");
      std::vector<double> v = check::values(inputs(37, 6, dtype, 13));
      for (const std::int64_t i : {3, 20, 36}) v[i * 6 + 1] = v[i * 6 + 3] = 0;  // a_1 = c_0 = 0 in some examples
      check_generated_bits("0 * inf", f, bj::constant(v, {37, 6}, dtype), mode);
      // The caller's invalid flag is its own: cleared before, cleared after; raised, raised after.
      for (const bool raised : {false, true}) {
        std::feclearexcept(FE_INVALID);
        if (raised) {
          volatile double zero = 0.0;
          volatile double nan = zero / zero;
          (void)nan;
        }
        REQUIRE(static_cast<bool>(std::fetestexcept(FE_INVALID)) == raised);
        (void)jacobian_and_value(f, inputs(37, 6, dtype, 13), mode, true);
        CHECK(static_cast<bool>(std::fetestexcept(FE_INVALID)) == raised);
      }
    }
}

TEST_CASE("a sum built one addition at a time is one sparse op per Jacobian entry", "[codegen][sparse]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  // Forward, x0's direction reaches the sum through each of its terms; the
  // partial sums, each read by the next addition alone, merge into the op
  // writing the entry. The other entries are one term each.
  const std::vector<std::tuple<std::string, Program, std::int64_t>> cases = {
      {"sum_by_additions", sum_by_additions, 6}, {"scaled_sum_by_additions", scaled_sum_by_additions, 5}};
  for (const auto& [name, f, n] : cases) {
    const ScopedGeneration generation(bj::CodeGeneration::immediate, "merged-sums");
    const bj::Tensor x = inputs(9, n, bj::float64, 7);
    check_generated_bits(name, f, x, bj::JacobianMode::forward);
    std::size_t sources = 0;
    for (const auto& e : std::filesystem::directory_iterator(generation.directory())) {
      if (e.path().extension() != ".cpp") continue;
      ++sources;
      INFO(name << ": " << e.path().string());
      CHECK(static_cast<std::int64_t>(sparse_op_terms(e.path()).size()) == n);
    }
    CHECK(sources >= 1);
  }
}

// A layer norm over 12 elements: [b, 12] -> [b, 12].
bj::Tensor normalised(const bj::Tensor& x) {
  const bj::Tensor centered = x - bj::reduce_mean(x, {1}, /*keepdims=*/true);
  const bj::Tensor var = bj::reduce_mean(bj::square(centered), {1}, /*keepdims=*/true);
  return bj::tanh(centered * bj::rsqrt(var + 1e-3));
}

TEST_CASE("the sum every row of a normalisation reads is one sparse op", "[codegen][sparse]") {
  // Reverse, each row's adjoint of the mean is that row's factor times
  // sum_k (x_k - mean): one op sums the 12 coefficients for all rows, and
  // no other op has more than three terms (12 each without the sharing).
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "shared-sums");
  const bj::Tensor x = inputs(19, 12, bj::float64, 5);
  check_generated_bits("normalised", normalised, x, bj::JacobianMode::reverse);
  std::size_t sources = 0;
  for (const auto& e : std::filesystem::directory_iterator(generation.directory())) {
    if (e.path().extension() != ".cpp") continue;
    ++sources;
    const std::vector<int> terms = sparse_op_terms(e.path());
    INFO(e.path().string());
    REQUIRE(terms.size() > 144);  // an op per Jacobian entry at least
    CHECK(std::count(terms.begin(), terms.end(), 12) == 1);
    CHECK(std::count_if(terms.begin(), terms.end(), [](int n) { return n > 3 && n != 12; }) == 0);
  }
  CHECK(sources >= 1);
}

TEST_CASE("a traced function's generated kernel gives the same bits, from many threads", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "threads");
  const bj::Function f = bj::trace(with_interpreted_steps, bj::TensorSpec{bj::Shape{-1, 9}, bj::float64});
  const std::int64_t batch = 101, n = 9, m = 9;
  const std::vector<double> x = check::values(inputs(batch, n, bj::float64, 5));
  std::vector<double> value_i(batch * m), jac_i(batch * m * n);
  bj::JacobianOptions interpreted;
  interpreted.generated_code = false;
  f.value_and_batch_jacobian_into(std::span<const double>(x), std::span<double>(value_i), std::span<double>(jac_i),
                                  interpreted);
  const std::size_t runs = bj::code_generation_stats().generated_runs;
  std::vector<std::vector<double>> values(4, std::vector<double>(batch * m)),
      jacs(4, std::vector<double>(batch * m * n));
  std::vector<std::thread> threads;
  for (std::size_t k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      f.value_and_batch_jacobian_into(std::span<const double>(x), std::span<double>(values[k]),
                                      std::span<double>(jacs[k]));
    });
  for (auto& t : threads) t.join();
  CHECK(bj::code_generation_stats().generated_runs >= runs + 4);
  for (std::size_t k = 0; k < 4; ++k) {
    CHECK(std::memcmp(values[k].data(), value_i.data(), value_i.size() * sizeof(double)) == 0);
    CHECK(std::memcmp(jacs[k].data(), jac_i.data(), jac_i.size() * sizeof(double)) == 0);
  }
}

TEST_CASE("without a compiler the interpreter runs", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const check::ScopedEnv cxx("BATCHJAC_CXX", "/nonexistent/c++");
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "nocxx");
  const std::size_t failed = bj::code_generation_stats().failed;
  const std::size_t runs = bj::code_generation_stats().generated_runs;
  const bj::Tensor x = inputs(13, 9, bj::float64, 3);
  const auto [jg, yg] = jacobian_and_value(with_interpreted_steps, x, bj::JacobianMode::forward, true);
  CHECK(bj::code_generation_stats().failed > failed);
  CHECK(bj::code_generation_stats().generated_runs == runs);
  const auto [ji, yi] = jacobian_and_value(with_interpreted_steps, x, bj::JacobianMode::forward, false);
  CHECK(check::same_bits(jg, ji));
  CHECK(std::filesystem::is_empty(generation.directory()));
}

TEST_CASE("generated objects are cached on disk under their hash", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "cache");
  const Program f = [](const bj::Tensor& x) { return bj::exp(x) * 1.5 + bj::square(x); };
  const std::size_t compiled = bj::code_generation_stats().compiled;
  const bj::Tensor x = inputs(9, 4, bj::float64, 2);
  const auto [j1, y1] = jacobian_and_value(f, x, bj::JacobianMode::forward, true);
  const std::size_t new_objects = bj::code_generation_stats().compiled - compiled;
  CHECK(new_objects >= 1);  // the plan's, and the one that also keeps the value
  std::size_t objects = 0, sources = 0, temporaries = 0;
  for (const auto& e : std::filesystem::directory_iterator(generation.directory())) {
    const std::string name = e.path().filename().string();
    objects += e.path().extension() == ".so";
    sources += e.path().extension() == ".cpp";
    temporaries += name.find(".tmp") != std::string::npos;
  }
  CHECK(objects == new_objects);
  CHECK(sources == new_objects);
  CHECK(temporaries == 0);
  // As in a new process: new plans find the objects on disk.
  batchjac::engine::clear_plan_cache();
  batchjac::codegen::forget_modules();
  const std::size_t loaded = bj::code_generation_stats().loaded;
  const std::size_t runs = bj::code_generation_stats().generated_runs;
  const auto [j2, y2] = jacobian_and_value(f, x, bj::JacobianMode::forward, true);
  CHECK(bj::code_generation_stats().compiled == compiled + new_objects);
  CHECK(bj::code_generation_stats().loaded == loaded + new_objects);
  CHECK(bj::code_generation_stats().generated_runs > runs);
  CHECK(check::same_bits(j1, j2));
}

TEST_CASE("a cache directory others can write to is not used", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "shared");
  std::filesystem::permissions(generation.directory(), std::filesystem::perms::others_write,
                               std::filesystem::perm_options::add);
  const std::size_t failed = bj::code_generation_stats().failed;
  const bj::Tensor x = inputs(9, 4, bj::float64, 2);
  const auto [jg, yg] = jacobian_and_value(with_nan_partials, x, bj::JacobianMode::forward, true);
  CHECK(bj::code_generation_stats().failed > failed);
  CHECK(std::filesystem::is_empty(generation.directory()));
  const auto [ji, yi] = jacobian_and_value(with_nan_partials, x, bj::JacobianMode::forward, false);
  CHECK(check::same_bits(jg, ji));
}

TEST_CASE("background compilation swaps the generated kernel in", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::background, "background");
  const Program f = [](const bj::Tensor& x) { return bj::sin(x) * 2.0 + x * x * x; };
  const bj::Tensor x = inputs(21, 5, bj::float32, 4);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = f(x);
  const bj::Tensor first = *tape.batch_jacobian(y, x);  // interpreted, or generated if compiled already
  bj::wait_for_code_generation();
  CHECK(bj::code_generation_stats().pending == 0);
  const std::size_t runs = bj::code_generation_stats().generated_runs;
  const bj::Tensor later = *tape.batch_jacobian(y, x);
  CHECK(bj::code_generation_stats().generated_runs > runs);
  CHECK(check::same_bits(first, later));
}

TEST_CASE("code generation off runs no generated kernel, loaded ones included", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "off");
  const Program f = [](const bj::Tensor& x) { return bj::cos(x) * 3.0; };
  const bj::Tensor x = inputs(9, 3, bj::float64, 1);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = f(x);
  std::size_t runs = bj::code_generation_stats().generated_runs;
  tape.batch_jacobian(y, x);
  CHECK(bj::code_generation_stats().generated_runs > runs);
  bj::set_code_generation(bj::CodeGeneration::off);
  runs = bj::code_generation_stats().generated_runs;
  tape.batch_jacobian(y, x);  // the same kept plan, its kernel loaded
  jacobian_and_value([](const bj::Tensor& v) { return bj::tan(v) * 2.0; }, x, bj::JacobianMode::forward, true);
  CHECK(bj::code_generation_stats().generated_runs == runs);
}

TEST_CASE("a module is expected to load only in the process that builds it", "[codegen]") {
  batchjac::codegen::Module m;
  CHECK(m.expected());  // queued or compiling here
  m.failed.store(true);
  CHECK_FALSE(m.expected());
  batchjac::codegen::Module inherited;  // as a forked child sees its parent's queued module
  inherited.owner = ::getppid();
  CHECK_FALSE(inherited.expected());
  int entry = 0;
  inherited.primal.store(&entry);  // loaded before the fork: the child has it mapped
  CHECK(inherited.expected());
}

namespace {
// A scalar functor whose 8 outputs each depend on all 8 inputs: the
// compiled path carries 8 tangents through every op.
struct Dense8 {
  template <class T>
  void operator()(const T* x, T* y) const {
    using std::exp;
    T s = x[0] * x[0] + T(1);
    for (int i = 1; i < 8; ++i) s = s + x[i] * x[i];
    const T r = T(1) / s;
    for (int i = 0; i < 8; ++i) y[i] = x[i] * s + exp(x[i]) * r;
  }
};
}  // namespace

TEST_CASE("scalar_function's automatic choice counts generated code", "[codegen][scalar_function]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const auto f = bj::scalar_function<8, 8>(Dense8{});
  using Fn = decltype(f);
  bj::JacobianOptions interpreted;
  interpreted.generated_code = false;
  bj::detail::TracedCost with{}, without{};
  {
    const ScopedGeneration generation(bj::CodeGeneration::immediate, "choice");
    with = bj::detail::traced_cost(f.traced(bj::float64), {});
    without = bj::detail::traced_cost(f.traced(bj::float64), interpreted);
    CHECK(with.generated);
    CHECK_FALSE(without.generated);
    // The kept choice is the model's for what the calls will run.
    CHECK(f.path(bj::float64) == (Fn::compiled_cost(bj::float64, with) <= Fn::traced_cost(with)
                                      ? bj::ScalarPath::compiled : bj::ScalarPath::traced));
    CHECK(f.path(bj::float64, interpreted) == (Fn::compiled_cost(bj::float64, without) <= Fn::traced_cost(without)
                                                   ? bj::ScalarPath::compiled : bj::ScalarPath::traced));
  }
  CHECK(Fn::traced_cost(with) == 0.75 * with.per_example);
  CHECK(Fn::traced_cost(without) == 1.5 * without.per_example + 2.5 * double(without.ops));
  CHECK(with.per_example == without.per_example);  // the same plan
  {
    const ScopedGeneration generation(bj::CodeGeneration::off, "choice-off");
    CHECK_FALSE(bj::detail::traced_cost(f.traced(bj::float64), {}).generated);  // a plan with a kernel, not run
    const auto g = bj::scalar_function<8, 8>(Dense8{});
    CHECK_FALSE(bj::detail::traced_cost(g.traced(bj::float64), {}).generated);
  }
  {
    const check::ScopedEnv cxx("BATCHJAC_CXX", "/nonexistent/c++");
    const ScopedGeneration generation(bj::CodeGeneration::immediate, "choice-nocxx");
    const auto g = bj::scalar_function<8, 8>(Dense8{});
    CHECK_FALSE(bj::detail::traced_cost(g.traced(bj::float64), {}).generated);
  }
  {
    // A compiler that answers --version but compiles nothing: the plan stays
    // interpreted, and the estimate says so.
    const std::string dir = fresh_directory("broken-cxx");
    const std::string cxx = dir + "/c++";
    write_script(cxx, "#!/bin/sh\n[ \"$1\" = --version ] && echo broken 1.0 && exit 0\nexit 1\n");
    const check::ScopedEnv env("BATCHJAC_CXX", cxx.c_str());
    const ScopedGeneration generation(bj::CodeGeneration::immediate, "choice-fails");
    const std::size_t failed = bj::code_generation_stats().failed;
    const auto g = bj::scalar_function<8, 8>(Dense8{});
    CHECK_FALSE(bj::detail::traced_cost(g.traced(bj::float64), {}).generated);
    CHECK(bj::code_generation_stats().failed > failed);
    std::filesystem::remove_all(dir);
  }
}

#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
namespace {
// Waits for `child` until `deadline`, then kills it: whether it ended by
// itself, and its wait status.
std::pair<bool, int> wait_child(pid_t child, std::chrono::steady_clock::time_point deadline) {
  int status = -1;
  pid_t done = 0;
  while ((done = ::waitpid(child, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (done == 0) ::kill(child, SIGKILL), ::waitpid(child, &status, 0);
  return {done == child, status};
}
}  // namespace

// Run in a process of its own by the next test: exits while the
// background worker compiles (the test's compiler blocks). Its first atexit
// handler runs last, after batchjac's has killed the compiler: the worker
// then has time to report.
TEST_CASE("exit while compiling (child process)", "[.exit-child]") {
  std::atexit([] { std::this_thread::sleep_for(std::chrono::milliseconds(500)); });
  bj::set_code_generation(bj::CodeGeneration::background);
  const bj::Tensor x = inputs(9, 9, bj::float64, 8);
  jacobian_and_value(elementwise_mix, x, bj::JacobianMode::reverse, true);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the compiler has started
  std::exit(bj::code_generation_stats().pending > 0 ? 0 : 3);
}

TEST_CASE("exit during a background compile reports no failure", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::immediate, "exit");
  const std::string dir = generation.directory();
  // A compiler that blocks once `block` exists (but for --version), so that
  // the child exits in the middle of its compile.
  const std::string cxx = dir + "/blocking-c++";
  write_script(cxx, "#!/bin/sh\n[ -e '" + dir + "/block' ] && [ \"$1\" != --version ] && exec sleep 60\nexec " +
                        std::string(BATCHJAC_TEST_CXX) + " \"$@\"\n");
  const check::ScopedEnv compiler("BATCHJAC_CXX", cxx.c_str());
  const check::ScopedEnv cache("BATCHJAC_CODE_CACHE", dir.c_str());
  // The prelude precompiled with it first, unblocked.
  const std::size_t failed = bj::code_generation_stats().failed;
  jacobian_and_value([](const bj::Tensor& v) { return bj::exp(v) * v; }, inputs(9, 3, bj::float64, 1),
                     bj::JacobianMode::forward, true);
  REQUIRE(bj::code_generation_stats().failed == failed);
  std::ofstream(dir + "/block").put('\n');
  int err[2];
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  char self[] = "/proc/self/exe", filter[] = "[.exit-child]";
  char* argv[] = {self, filter, nullptr};
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(err[1], 2);
    ::execv(self, argv);
    std::_Exit(4);
  }
  REQUIRE(child > 0);
  ::close(err[1]);
  std::string messages;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    pollfd p{err[0], POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char chunk[256];
      const ssize_t n = ::read(err[0], chunk, sizeof chunk);
      if (n <= 0) break;
      messages.append(chunk, std::size_t(n));
    }
    if (std::chrono::steady_clock::now() > deadline) break;
  }
  ::close(err[0]);
  const auto [ended, status] = wait_child(child, deadline);
  INFO(messages);
  CHECK(ended);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(messages.find("code generation failed") == std::string::npos);
}

TEST_CASE("a forked child generates code of its own and exits", "[codegen]") {
  const check::ScopedEnv sparse("BATCHJAC_SPARSE", "1");
  const ScopedGeneration generation(bj::CodeGeneration::background, "fork");
  const bj::Tensor x = inputs(9, 9, bj::float64, 6);
  jacobian_and_value(elementwise_mix, x, bj::JacobianMode::reverse, true);
  bj::wait_for_code_generation();
  const pid_t child = ::fork();
  if (child == 0) {  // a new program, compiled by the child's own worker
    jacobian_and_value(with_nan_partials, x, bj::JacobianMode::reverse, true);
    bj::wait_for_code_generation();
    std::_Exit(bj::code_generation_stats().generated_runs > 0 || bj::code_generation_stats().compiled > 0 ? 0 : 3);
  }
  REQUIRE(child > 0);
  const auto [ended, status] = wait_child(child, std::chrono::steady_clock::now() + std::chrono::seconds(120));
  CHECK(ended);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
#endif
