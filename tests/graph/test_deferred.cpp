// Deferred values: an op recorded on a tape returns at once; its elements
// are computed on first read (every op table also compares each row's
// recorded value with its eager one: support/check.cpp, check (e)).
#include "support/check.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace bj = batchjac;

namespace {

bool deferred(const bj::Tensor& t) { return t.impl().deferred(); }

// Deferred values (the engine's SIMD math) against eager ones (libm): the
// documented accuracy, |a - b| <= 16 eps (1 + |b|).
bool close(const bj::Tensor& a, const bj::Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const double eps = a.dtype() == bj::float32 ? 1.1920929e-7 : 2.220446049250313e-16;
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!(std::abs(x[i] - y[i]) <= 16 * eps * (1 + std::abs(y[i])))) return false;
  return true;
}

bj::Tensor source(std::int64_t b, std::int64_t n, bj::DType dtype = bj::float64) {
  std::vector<double> v(static_cast<std::size_t>(b * n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.5 * std::sin(0.7 * double(i) + 0.3);
  return bj::constant(v, {b, n}, dtype);
}

// y = tanh(x W) * x + exp(x)
bj::Tensor f(const bj::Tensor& x) {
  const std::int64_t n = x.shape()[1];
  std::vector<double> w(static_cast<std::size_t>(n * n));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.3 * double(i));
  const bj::Tensor W = bj::constant(w, {n, n}, x.dtype());
  return bj::tanh(bj::matmul(x, W)) * x + bj::exp(x);
}

}  // namespace

TEST_CASE("an op on a watched tensor is deferred, an op on others is eager", "[graph][deferred]") {
  const bj::Tensor x = source(4, 3), c = source(4, 3);
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = x * c;
  CHECK(deferred(y));
  CHECK(deferred(bj::sin(y)));        // through a recorded op
  CHECK_FALSE(deferred(c * c));       // not watched
  CHECK_FALSE(deferred(x));           // the source itself is ready
  {
    const auto pause = tape.stop_recording();
    const bj::Tensor z = x * c;       // not recorded: eager, and computes nothing else
    CHECK_FALSE(deferred(z));
    CHECK(deferred(y));
  }
  const bj::Tensor u = bj::cos(y);
  CHECK(deferred(u));
  (void)u.data<double>();             // one pass of the engine computes u
  CHECK_FALSE(deferred(u));
  CHECK(deferred(y));                 // and no intermediate
}

TEST_CASE("deferred values equal eager ones, both dtypes", "[graph][deferred]") {
  for (bj::DType dtype : {bj::float32, bj::float64}) {
    const bj::Tensor x = source(9, 5, dtype);
    const bj::Tensor eager = f(x);
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = f(x);
    REQUIRE(deferred(y));
    CHECK(close(y, eager));
    CHECK(y.dtype() == dtype);
  }
}

TEST_CASE("batch_jacobian writes an unread target's value in its pass when it is cheap",
          "[graph][deferred]") {
  for (bj::DType dtype : {bj::float32, bj::float64}) {
    INFO("dtype " << bj::dtype_name(dtype));
    // Wide enough that the Jacobian's work dwarfs storing the value.
    const std::int64_t b = 19, n = 32;
    const bj::Tensor x = source(b, n, dtype);
    std::vector<double> w(static_cast<std::size_t>(n * n));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.3 * double(i));
    const bj::Tensor W = bj::constant(w, {n, n}, dtype);
    bj::GradientTape tape({.persistent = true});
    tape.watch(x);
    // tanh's derivative reads tanh itself: the value is in the pass anyway.
    const bj::Tensor cheap = bj::tanh(bj::matmul(x, W)), cheap2 = bj::tanh(bj::matmul(x, W));
    // J = W^T for every example: the value would be the pass's only matmul.
    const bj::Tensor dear = bj::matmul(x, W), dear2 = bj::matmul(x, W);
    std::vector<double> into(static_cast<std::size_t>(b * n * n));
    std::vector<float> into32(into.size());
    if (dtype == bj::float64) tape.batch_jacobian_into(cheap2, x, into);
    else tape.batch_jacobian_into(cheap2, x, into32);
    CHECK(deferred(cheap2));  // into the caller's memory: nothing else is written
    (void)tape.batch_jacobian(cheap, x);
    CHECK_FALSE(deferred(cheap));
    (void)tape.batch_jacobian(dear, x);
    CHECK(deferred(dear));  // it would add more than a tenth to the pass
    // Whichever pass writes it, a value is the one a read gives.
    auto same = [&](const bj::Tensor& written, const bj::Tensor& unread) {
      std::vector<double> value(static_cast<std::size_t>(b * n)), jac(into.size());
      std::vector<float> value32(value.size()), jac32(into.size());
      if (dtype == bj::float64) {
        tape.value_and_batch_jacobian_into(unread, x, value, jac);
        CHECK(value == written.to_vector<double>());
        CHECK(value == unread.to_vector<double>());
      } else {
        tape.value_and_batch_jacobian_into(unread, x, value32, jac32);
        CHECK(value32 == written.to_vector<float>());
        CHECK(value32 == unread.to_vector<float>());
      }
    };
    same(cheap, cheap2);
    same(dear, dear2);
  }
}

TEST_CASE("every way of reading computes a deferred value", "[graph][deferred]") {
  const bj::Tensor x = source(3, 2);
  const bj::Tensor eager = bj::exp(x);
  auto fresh = [&](bj::GradientTape& tape) {
    tape.watch(x);
    return bj::exp(x);
  };
  {
    bj::GradientTape t;
    CHECK(fresh(t).at({2, 1}) == Approx(eager.at({2, 1})).epsilon(1e-15));
  }
  {
    bj::GradientTape t;
    CHECK(fresh(t).to_vector<float>() == eager.to_vector<float>());  // 1e-16 apart: the same floats
  }
  {
    bj::GradientTape t;
    std::ostringstream a, b;
    a << fresh(t);
    b << eager;
    CHECK(a.str() == b.str());  // printed to 8 digits
  }
  {
    bj::GradientTape t;
    const bj::Tensor y = fresh(t);
    const auto pause = t.stop_recording();
    CHECK(close(y + 1.0, eager + 1.0));  // an op not recorded reads it
  }
}

TEST_CASE("a deferred value outlives its tape", "[graph][deferred]") {
  const bj::Tensor eager = f(source(5, 3));
  std::optional<bj::Tensor> y;
  {
    const bj::Tensor x = source(5, 3);  // gone too: the value holds what it needs
    bj::GradientTape tape;
    tape.watch(x);
    y = f(x);
  }
  REQUIRE(deferred(*y));
  CHECK(close(*y, eager));
}

TEST_CASE("errors are raised at the op, not at the read", "[graph][deferred]") {
  const bj::Tensor x = source(4, 3);
  bj::GradientTape tape;
  tape.watch(x);
  CHECK_THROWS_AS(x + source(4, 2), bj::ValueError);
  CHECK_THROWS_AS(bj::matmul(x, source(4, 3)), bj::ValueError);
  CHECK_THROWS_AS(bj::reduce_sum(x, {2}), bj::ValueError);
  CHECK_THROWS_AS(bj::reshape(x, {5}), bj::ValueError);
}

TEST_CASE("one deferred value read by two threads at once is computed once", "[graph][deferred]") {
  const bj::Tensor x = source(64, 8);
  const bj::Tensor eager = f(f(x));
  for (int round = 0; round < 20; ++round) {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = f(f(x));
    const bj::Tensor z = bj::sin(y);  // shares y's inputs: one thread may compute them for the other
    std::atomic<int> start{0};
    std::vector<double> got_y, got_z;
    std::thread a([&] {
      ++start;
      while (start < 2) {}
      got_y = y.to_vector<double>();
    });
    std::thread b([&] {
      ++start;
      while (start < 2) {}
      got_z = z.to_vector<double>();
    });
    a.join();
    b.join();
    CHECK(got_y == y.to_vector<double>());
    CHECK(got_z == z.to_vector<double>());
    CHECK(close(y, eager));
    CHECK(close(z, bj::sin(eager)));
  }
}

TEST_CASE("a long chain of deferred values is computed and freed without recursion",
          "[graph][deferred]") {
  const bj::Tensor x = source(2, 2);
  constexpr int kOps = 50'000;  // 100k ops: deeper than a stack takes recursively
  double want = 0.0;
  {
    bj::Tensor y = x;
    for (int i = 0; i < 50; ++i) y = y * 0.5 + 1.0;
    want = y.at({1, 1});
  }
  {
    bj::GradientTape tape;
    tape.watch(x);
    bj::Tensor y = x;
    for (int i = 0; i < kOps; ++i) y = y * 0.5 + 1.0;
    CHECK(deferred(y));
    CHECK(std::abs(y.at({1, 1}) - 2.0) < 1e-12);  // one pass of the engine over 100k ops
  }
  {
    bj::GradientTape tape;
    tape.watch(x);
    bj::Tensor y = x;
    for (int i = 0; i < 50; ++i) y = y * 0.5 + 1.0;
    CHECK(y.at({1, 1}) == Approx(want).epsilon(1e-15));
    for (int i = 0; i < kOps; ++i) y = y * 0.5 + 1.0;
  }  // unread: the tape, then y, release the chain
}

TEST_CASE("end_recording: later ops are eager, the recording still answers", "[graph][deferred]") {
  const bj::Tensor x = source(8, 3);
  bj::GradientTape tape({.persistent = true});
  tape.watch(x);
  const bj::Tensor y = bj::exp(x);
  CHECK(tape.recording());
  {
    const auto pause = tape.stop_recording();
    CHECK(tape.recording());  // paused, not ended
  }
  tape.end_recording();
  CHECK_FALSE(tape.recording());
  const bj::Tensor z = bj::exp(x);
  CHECK_FALSE(deferred(z));
  CHECK_FALSE(tape.batch_jacobian(z, x).has_value());  // not recorded: unconnected
  const auto j = tape.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(j->at({2, 1, 1}) == Approx(std::exp(x.at({2, 1}))));
  CHECK(j->at({2, 1, 0}) == 0.0);
  tape.reset();  // as re-entering TF's block
  CHECK(tape.recording());
  tape.watch(x);
  CHECK(deferred(bj::exp(x)));
}

TEST_CASE("a non-persistent tape stops recording when it answers", "[graph][deferred]") {
  const bj::Tensor x = source(4, 2);
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = x * x;
  CHECK(tape.batch_jacobian(y, x).has_value());
  CHECK_FALSE(tape.recording());
  CHECK_FALSE(deferred(x * x));
  CHECK(check::same_bits(y, x * x));  // a product: the same bits in every kernel
}

TEST_CASE("a value and its Jacobian in one pass equal the two calls bit for bit", "[graph][deferred]") {
  // Ops whose SIMD and scalar kernels round differently (tanh, exp, matmul):
  // the deferred target, read alone, is computed by the engine too.
  for (bj::DType dtype : {bj::float32, bj::float64}) {
    for (const std::int64_t b : {1, 7, 8, 37}) {
      INFO("dtype " << bj::dtype_name(dtype) << ", batch " << b);
      const bj::Tensor x = source(b, 5, dtype);
      auto run = [&](auto zero) {
        using T = decltype(zero);
        std::vector<T> value(static_cast<std::size_t>(b * 5)), jac(static_cast<std::size_t>(b * 25));
        std::vector<T> jac_alone(jac.size());
        bj::GradientTape tape({.persistent = true});
        tape.watch(x);
        const bj::Tensor y = f(x), z = f(x);
        CHECK(tape.value_and_batch_jacobian_into(y, x, value, jac));
        CHECK(tape.batch_jacobian_into(z, x, jac_alone));
        CHECK(deferred(z));
        CHECK(jac == jac_alone);
        CHECK(value == z.to_vector<T>());  // read alone
        CHECK_THROWS_AS(tape.value_and_batch_jacobian_into(y, x, std::span<T>(value).first(3), jac),
                        bj::ValueError);
        CHECK_THROWS_AS(tape.value_and_batch_jacobian_into(y, x, value, std::span<T>(jac).first(3)),
                        bj::ValueError);
      };
      if (dtype == bj::float64) run(0.0);
      else run(0.0f);
    }
  }
}

TEST_CASE("value_and_batch_jacobian_into: unconnected, and a target of another dtype",
          "[graph][deferred]") {
  const bj::Tensor x = source(6, 2);
  bj::GradientTape tape({.persistent = true});
  tape.watch(x);
  const bj::Tensor c = source(6, 2) * 2.0;  // not from x
  std::vector<double> value(12, -1.0), jac(24, -1.0);
  CHECK_FALSE(tape.value_and_batch_jacobian_into(c, x, value, jac));
  CHECK(value == c.to_vector<double>());
  CHECK(jac == std::vector<double>(24, 0.0));
  const bj::Tensor y32 = bj::cast(x, bj::float32) * 3.0;
  std::vector<float> v32(12), j32(24);
  // One element type for both outputs: a float32 target of a float64 source does not fit.
  CHECK_THROWS_AS(tape.value_and_batch_jacobian_into(y32, x, v32, j32), bj::ValueError);
}

TEST_CASE("a value the engine cannot compute whole is computed op by op", "[graph][deferred]") {
  const bj::Tensor x = source(9, 4);
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = bj::exp(x) * 2.0;
  const bj::Tensor total = bj::reduce_sum(y);        // over the batch axis too
  const bj::Tensor mask = bj::greater(y, bj::constant(2.5));       // boolean
  const bj::Tensor eager = bj::exp(source(9, 4)) * 2.0;
  CHECK(total.at({}) == Approx(bj::reduce_sum(eager).at({})).epsilon(1e-14));
  CHECK_FALSE(deferred(y));  // computed whole, for the sum
  CHECK(mask.to_vector<bool>() == bj::greater(eager, bj::constant(2.5)).to_vector<bool>());
}

TEST_CASE("jacobian and gradient leave the target's value right", "[graph][deferred]") {
  for (bj::DType dtype : {bj::float32, bj::float64}) {
    INFO("dtype " << bj::dtype_name(dtype));
    const bj::Tensor x = source(5, 3, dtype);
    const bj::Tensor eager = bj::tanh(x) * 3.0;
    for (int which = 0; which < 2; ++which) {
      bj::GradientTape tape;
      tape.watch(x);
      const bj::Tensor y = bj::tanh(x) * 3.0;  // tanh's derivative reads tanh: the value may be written
      const auto d = which == 0 ? tape.jacobian(y, x) : tape.gradient(y, x);
      REQUIRE(d.has_value());
      CHECK(close(y, eager));
      // d/dx 3 tanh(x) = 3 (1 - tanh^2): the gradient of the sum, or the Jacobian's diagonal.
      const double got = which == 0 ? d->at({2, 1, 2, 1}) : d->at({2, 1});
      const double t = std::tanh(x.at({2, 1}));
      CHECK(got == Approx(3 * (1 - t * t)).epsilon(dtype == bj::float32 ? 1e-5 : 1e-12));
    }
  }
}

TEST_CASE("deferred values read inside TBB tasks", "[graph][deferred]") {
  // The pass that computes a value holds its lock while it waits for its
  // own tasks; it must not pick up a task of its reader meanwhile.
#if defined(__SANITIZE_THREAD__)
  // Debian's oneTBB is not instrumented: ThreadSanitizer cannot see this
  // test's own parallel_for join (the engine annotates its own), and
  // reports the tape's release after it as a race.
  return;
#endif
  const bj::Tensor x = source(4096, 8);
  const bj::Tensor eager = f(x);
  for (int round = 0; round < 5; ++round) {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = f(x);
    std::atomic<int> wrong{0};
    // More threads than cores: while one waits for the pass, others steal
    // its tasks, and it would run a reader's task in their place.
    tbb::global_control threads(tbb::global_control::max_allowed_parallelism, 8);
    tbb::task_arena arena(8);
    arena.execute([&] {
      tbb::parallel_for(0, 64, [&](int i) {
        if (i % 4 != 0) {  // other work keeps threads free to steal the pass's tasks
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          return;
        }
        const double got = y.at({i * 61, i % 8});
        if (!(std::abs(got - eager.at({i * 61, i % 8})) <= 1e-14 * (1 + std::abs(got)))) ++wrong;
      }, tbb::simple_partitioner());
    });
    CHECK(wrong == 0);
  }
}
