// Deferred values: an op recorded on a tape returns at once; its elements
// are computed on first read (every op table also compares each row's
// recorded value with its eager one: support/check.cpp, check (e)).
#include "support/check.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace bj = batchjac;

namespace {

bool deferred(const bj::Tensor& t) { return t.impl().deferred(); }

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
  (void)u.data<double>();             // the read computes u and y
  CHECK_FALSE(deferred(u));
  CHECK_FALSE(deferred(y));
}

TEST_CASE("deferred values equal eager ones, both dtypes", "[graph][deferred]") {
  for (bj::DType dtype : {bj::float32, bj::float64}) {
    const bj::Tensor x = source(9, 5, dtype);
    const bj::Tensor eager = f(x);
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = f(x);
    REQUIRE(deferred(y));
    CHECK(check::same_bits(y, eager));
    CHECK(y.shape() == eager.shape());
    CHECK(y.dtype() == dtype);
  }
}

TEST_CASE("a Jacobian does not read its target; reads after it are right", "[graph][deferred]") {
  const bj::Tensor x = source(16, 4);
  const bj::Tensor eager = f(x);
  bj::GradientTape tape({.persistent = true});
  tape.watch(x);
  const bj::Tensor y = f(x);
  const bj::Tensor j = *tape.batch_jacobian(y, x);
  CHECK(deferred(y));
  CHECK_FALSE(deferred(j));
  CHECK(check::same_bits(y, eager));
  CHECK(y.at({3, 2}) == eager.at({3, 2}));
  CHECK(y.to_vector<double>() == eager.to_vector<double>());
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
    CHECK(fresh(t).at({2, 1}) == eager.at({2, 1}));
  }
  {
    bj::GradientTape t;
    CHECK(fresh(t).to_vector<float>() == eager.to_vector<float>());
  }
  {
    bj::GradientTape t;
    std::ostringstream a, b;
    a << fresh(t);
    b << eager;
    CHECK(a.str() == b.str());
  }
  {
    bj::GradientTape t;
    const bj::Tensor y = fresh(t);
    const auto pause = t.stop_recording();
    CHECK(check::same_bits(y + 1.0, eager + 1.0));  // an op not recorded reads it
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
  CHECK(check::same_bits(*y, eager));
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
    CHECK(got_y == eager.to_vector<double>());
    CHECK(got_z == bj::sin(eager).to_vector<double>());
    const auto pause = tape.stop_recording();
    CHECK(check::same_bits(z, bj::sin(y)));
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
    CHECK(std::abs(y.at({1, 1}) - 2.0) < 1e-12);
  }
  {
    bj::GradientTape tape;
    tape.watch(x);
    bj::Tensor y = x;
    for (int i = 0; i < 50; ++i) y = y * 0.5 + 1.0;
    CHECK(y.at({1, 1}) == want);
    for (int i = 0; i < kOps; ++i) y = y * 0.5 + 1.0;
  }  // unread: the tape, then y, release the chain
}

TEST_CASE("end_recording: later ops are eager, the recording still answers", "[graph][deferred]") {
  const bj::Tensor x = source(8, 3);
  bj::GradientTape tape({.persistent = true});
  tape.watch(x);
  const bj::Tensor y = bj::exp(x);
  CHECK(tape.recording());
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
  CHECK(check::same_bits(y, x * x));
}
