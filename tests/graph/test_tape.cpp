// GradientTape semantics: watching, persistence, pausing, reset, nesting,
// per-thread recording, tapes and pauses that outlive their thread or tape,
// unconnected targets.
#include "graph/tape.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace bj = batchjac;

namespace {
const bj::Tensor& seed_x() {
  static const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  return x;
}
const std::vector<double> kSeedJ{2, 0, 0, 4, 6, 0, 0, 8};

bj::JacobianOptions zeros_option() {
  bj::JacobianOptions o;
  o.unconnected_gradients = bj::UnconnectedGradients::zero;
  return o;
}
}  // namespace

TEST_CASE("watch: float tensors only", "[graph][tape]") {
  bj::GradientTape tape;
  CHECK_THROWS_AS(tape.watch(bj::cast(seed_x(), bj::boolean)), bj::ValueError);
  CHECK_THROWS_WITH(tape.watch(bj::cast(seed_x(), bj::boolean)), Catch::Contains("bool"));
  CHECK_NOTHROW(tape.watch(bj::cast(seed_x(), bj::float32)));
  // Watching twice is harmless.
  const bj::Tensor x = seed_x();
  tape.watch(x);
  tape.watch(x);
  const auto j = tape.batch_jacobian(x * x, x);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == kSeedJ);
}

TEST_CASE("a non-persistent tape answers once", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  bj::GradientTape tape;
  CHECK_FALSE(tape.persistent());
  tape.watch(x);
  const bj::Tensor y = x * x;
  REQUIRE(tape.batch_jacobian(y, x).has_value());
  CHECK_THROWS_AS(tape.batch_jacobian(y, x), bj::RuntimeError);
  CHECK_THROWS_WITH(tape.batch_jacobian(y, x), Catch::Contains("persistent"));
  CHECK_THROWS_AS(tape.jacobian(y, x), bj::RuntimeError);
  CHECK_THROWS_AS(tape.gradient(y, x), bj::RuntimeError);
  // An unconnected answer uses the tape up too.
  bj::GradientTape t2;
  t2.watch(x);
  CHECK_FALSE(t2.batch_jacobian(bj::constant(bj::Init2{{1.}, {2.}}), x).has_value());
  CHECK_THROWS_AS(t2.gradient(x * x, x), bj::RuntimeError);
  // So does jacobian, then gradient.
  bj::GradientTape t3;
  t3.watch(x);
  const bj::Tensor y3 = x * x;
  REQUIRE(t3.jacobian(y3, x).has_value());
  CHECK_THROWS_AS(t3.batch_jacobian(y3, x), bj::RuntimeError);
  // A RuntimeError is also a std::runtime_error.
  CHECK_THROWS_AS(t3.gradient(y3, x), std::runtime_error);
}

TEST_CASE("a persistent tape answers many times", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  CHECK(tape.persistent());
  tape.watch(x);
  const bj::Tensor y = x * x;
  for (int i = 0; i < 3; ++i) {
    const auto j = tape.batch_jacobian(y, x);
    REQUIRE(j.has_value());
    CHECK(check::values(*j) == kSeedJ);
  }
  const auto g = tape.gradient(y, x);
  REQUIRE(g.has_value());
  CHECK(check::values(*g) == std::vector<double>{2, 4, 6, 8});
  // Ops recorded after a first answer are seen by the next.
  const bj::Tensor z = y * 2.0;
  const auto jz = tape.batch_jacobian(z, x);
  REQUIRE(jz.has_value());
  CHECK(check::values(*jz) == std::vector<double>{4, 0, 0, 8, 12, 0, 0, 16});
}

TEST_CASE("a call failing with ValueError does not use up a non-persistent tape", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = x * x;
  bj::JacobianOptions bad;
  bad.parallel_iterations = 0;
  CHECK_THROWS_AS(tape.batch_jacobian(y, x, bad), bj::ValueError);
  CHECK_THROWS_AS(tape.batch_jacobian(bj::reshape(y, {4}), x), bj::ValueError);  // rank 1 target
  CHECK_THROWS_AS(tape.batch_jacobian(y, bj::cast(x, bj::boolean)), bj::ValueError);
  // Example mixing is found while slicing the tape, after the usage check.
  const bj::Tensor mixed = x * bj::reduce_sum(x, {0}, true);
  CHECK_THROWS_AS(tape.batch_jacobian(mixed, x), bj::ValueError);
  const auto j = tape.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == kSeedJ);
  CHECK_THROWS_AS(tape.batch_jacobian(y, x), bj::RuntimeError);
}

TEST_CASE("stop_recording pauses recording while its guard lives", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  bj::Tensor paused;
  {
    auto guard = tape.stop_recording();
    paused = x * x;
    {
      auto moved = std::move(guard);  // the guard is movable; one pause
      paused = paused * 1.0;
    }
  }
  CHECK_FALSE(tape.batch_jacobian(paused, x).has_value());
  const auto z = tape.batch_jacobian(paused, x, zeros_option());
  REQUIRE(z.has_value());
  CHECK(check::values(*z) == std::vector<double>(8, 0.0));
  // After the guard: recording again. An unrecorded intermediate is a constant.
  const bj::Tensor y = x * x;
  const auto j = tape.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == kSeedJ);
  const bj::Tensor w = x * paused;  // d/dx = paused = x^2
  const auto jw = tape.batch_jacobian(w, x);
  REQUIRE(jw.has_value());
  CHECK(check::values(*jw) == std::vector<double>{1, 0, 0, 4, 9, 0, 0, 16});
  // Guards nest.
  {
    auto g1 = tape.stop_recording();
    {
      auto g2 = tape.stop_recording();
    }
    const bj::Tensor still_paused = x * 3.0;
    CHECK_FALSE(tape.batch_jacobian(still_paused, x).has_value());
  }
}

TEST_CASE("reset forgets records and watches, and revives a used tape", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = x * x;
  REQUIRE(tape.batch_jacobian(y, x).has_value());
  tape.reset();
  CHECK_FALSE(tape.persistent());
  // y's record is gone and x is no longer watched.
  CHECK_FALSE(tape.batch_jacobian(y, x).has_value());
  tape.reset();
  const bj::Tensor y2 = x * x;  // x unwatched: not recorded
  CHECK_FALSE(tape.batch_jacobian(y2, x).has_value());
  tape.reset();
  tape.watch(x);
  const bj::Tensor y3 = x * x;
  const auto j = tape.batch_jacobian(y3, x);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == kSeedJ);

  bj::GradientTape p(bj::TapeOptions{.persistent = true});
  p.reset();
  CHECK(p.persistent());
  // reset under a stop_recording guard keeps the pause.
  p.watch(x);
  {
    auto guard = p.stop_recording();
    p.reset();
    p.watch(x);
    const bj::Tensor q = x * x;
    CHECK_FALSE(p.batch_jacobian(q, x).has_value());
  }
  const bj::Tensor q2 = x * x;
  CHECK(p.batch_jacobian(q2, x).has_value());
}

TEST_CASE("nested tapes record independently", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  const bj::Tensor z = bj::constant(bj::Init2{{5.}, {6.}});
  bj::GradientTape outer(bj::TapeOptions{.persistent = true});
  outer.watch(x);
  bj::Tensor only_outer, both;
  {
    bj::GradientTape inner(bj::TapeOptions{.persistent = true});
    inner.watch(z);
    only_outer = x * x;  // inner does not track x
    const bj::Tensor zz = z * z;  // outer does not track z
    CHECK_FALSE(inner.batch_jacobian(only_outer, x).has_value());
    const auto jz = inner.batch_jacobian(zz, z);
    REQUIRE(jz.has_value());
    CHECK(check::values(*jz) == std::vector<double>{10, 12});
    CHECK_FALSE(outer.batch_jacobian(zz, z).has_value());
    inner.watch(x);
    both = bj::sin(x);
    const auto ji = inner.batch_jacobian(both, x);
    REQUIRE(ji.has_value());
    // An op on x and z: each tape sees the derivative for the input it tracks.
    const bj::Tensor mix = x * z;
    const auto jmx = outer.batch_jacobian(mix, x);
    const auto jmz = inner.batch_jacobian(mix, z);
    REQUIRE(jmx.has_value());
    REQUIRE(jmz.has_value());
    CHECK(check::values(*jmx) == std::vector<double>{5, 0, 0, 5, 6, 0, 0, 6});
    CHECK(check::values(*jmz) == std::vector<double>{1, 2, 3, 4});
  }
  const auto jo = outer.batch_jacobian(only_outer, x);
  REQUIRE(jo.has_value());
  CHECK(check::values(*jo) == kSeedJ);
  const auto jb = outer.batch_jacobian(both, x);
  REQUIRE(jb.has_value());
  const auto xv = check::values(x);
  CHECK(check::values(*jb) == std::vector<double>{std::cos(xv[0]), 0, 0, std::cos(xv[1]),
                                                   std::cos(xv[2]), 0, 0, std::cos(xv[3])});
  // The inner tape is gone: a new op is recorded by the outer only, without trouble.
  const bj::Tensor after = only_outer * x;
  CHECK(outer.batch_jacobian(after, x).has_value());
}

TEST_CASE("a tape records only the ops of its own thread", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  bj::Tensor from_thread;
  std::thread([&] { from_thread = x * x; }).join();
  CHECK(check::values(from_thread) == std::vector<double>{1, 4, 9, 16});
  CHECK_FALSE(tape.batch_jacobian(from_thread, x).has_value());

  // Tapes on two threads at once, each with its own ops.
  std::vector<double> results[2];
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([t, &results] {
      const bj::Tensor xt = bj::constant({{1.0 + t, 2.0}, {3.0, 4.0 + t}});
      bj::GradientTape own;
      own.watch(xt);
      bj::Tensor y = xt;
      for (int k = 0; k < 50; ++k) y = y * 1.0;
      const auto j = own.batch_jacobian(y * xt, xt);
      if (j) results[t] = check::values(*j);
    });
  for (auto& th : threads) th.join();
  CHECK(results[0] == kSeedJ);
  CHECK(results[1] == std::vector<double>{4, 0, 0, 4, 6, 0, 0, 10});
  // This thread's tape saw none of it, and still works.
  const bj::Tensor y = x * x;
  const auto j = tape.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == kSeedJ);
}

TEST_CASE("a tape destroyed on another thread leaves its creator's list", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  const std::size_t before = bj::graph::live_tapes_of_this_thread();
  auto tape = std::make_unique<bj::GradientTape>(bj::TapeOptions{.persistent = true});
  tape->watch(x);
  CHECK(bj::graph::live_tapes_of_this_thread() == before + 1);
  const bj::Tensor y = x * x;
  const auto j = tape->batch_jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == kSeedJ);
  std::thread([&] { tape.reset(); }).join();
  CHECK(bj::graph::live_tapes_of_this_thread() == before);
  // This thread's next op on x finds no tape to record on (nothing freed is read).
  const bj::Tensor z = x * x;
  CHECK(check::values(z) == std::vector<double>{1, 4, 9, 16});

  // Destroyed while its creator thread runs ops on what it tracks: the
  // creator's list is locked, so each op sees the tape whole or not at all.
  auto doomed = std::make_unique<bj::GradientTape>();
  doomed->watch(x);
  std::atomic<bool> go{false};
  std::thread destroyer([&] {
    while (!go) std::this_thread::yield();
    doomed.reset();
  });
  bj::Tensor chain = x;
  go = true;
  for (int k = 0; k < 200; ++k) chain = chain * 1.0;
  destroyer.join();
  CHECK(bj::graph::live_tapes_of_this_thread() == before);

  // A tape whose creator thread has ended is destroyed here; tapes made here
  // meanwhile are untouched.
  std::unique_ptr<bj::GradientTape> orphan;
  std::thread([&] {
    orphan = std::make_unique<bj::GradientTape>();
    orphan->watch(x);
  }).join();
  bj::GradientTape mine;
  mine.watch(x);
  orphan.reset();
  CHECK(bj::graph::live_tapes_of_this_thread() == before + 1);
  const bj::Tensor w = x * x;
  const auto jw = mine.batch_jacobian(w, x);
  REQUIRE(jw.has_value());
  CHECK(check::values(*jw) == kSeedJ);
}

TEST_CASE("a stop_recording guard may outlive its tape", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  auto tape = std::make_unique<bj::GradientTape>();
  tape->watch(x);
  {
    auto pause = tape->stop_recording();
    tape.reset();  // the guard ends after the tape: it has nothing left to resume
  }
  bj::GradientTape next;
  next.watch(x);
  const bj::Tensor y = x * x;
  const auto j = next.batch_jacobian(y, x);
  REQUIRE(j.has_value());
  CHECK(check::values(*j) == kSeedJ);
}

TEST_CASE("unconnected targets: none gives nullopt, zero gives zeros of the full shape", "[graph][tape]") {
  const bj::Tensor x = bj::constant({{1., 2., 3.}, {4., 5., 6.}}, bj::float32);
  const bj::Tensor c = bj::ones({2, 4, 5}, bj::float32);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  tape.watch(c);
  const bj::Tensor y = c * 2.0;  // recorded, but not from x
  CHECK_FALSE(tape.batch_jacobian(y, x).has_value());
  const auto z = tape.batch_jacobian(y, x, zeros_option());
  REQUIRE(z.has_value());
  CHECK(z->shape() == bj::Shape{2, 4, 5, 3});
  CHECK(z->dtype() == bj::float32);
  CHECK(z->to_vector<double>() == std::vector<double>(120, 0.0));
  // Never recorded at all.
  const bj::Tensor k = bj::ones({2, 1}, bj::float32);
  CHECK_FALSE(tape.batch_jacobian(k, x).has_value());
  CHECK(tape.batch_jacobian(k, x, zeros_option())->shape() == bj::Shape{2, 1, 3});
  // jacobian and gradient, too.
  CHECK_FALSE(tape.jacobian(y, x).has_value());
  CHECK(tape.jacobian(y, x, zeros_option())->shape() == bj::Shape{2, 4, 5, 2, 3});
  CHECK_FALSE(tape.gradient(y, x).has_value());
  const auto g = tape.gradient(y, x, bj::UnconnectedGradients::zero);
  REQUIRE(g.has_value());
  CHECK(g->shape() == x.shape());
  CHECK(g->dtype() == bj::float32);
  // A target computed before the watch is unconnected too.
  const bj::Tensor w = bj::constant(bj::Init2{{1.}, {2.}});
  const bj::Tensor before = w * w;
  tape.watch(w);
  CHECK_FALSE(tape.batch_jacobian(before, w).has_value());
}

TEST_CASE("target == source gives identity blocks; intermediate sources work", "[graph][tape]") {
  const bj::Tensor x = seed_x();
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse, bj::JacobianMode::automatic}) {
    bj::JacobianOptions o;
    o.mode = mode;
    const auto j = tape.batch_jacobian(x, x, o);
    REQUIRE(j.has_value());
    CHECK(check::values(*j) == std::vector<double>{1, 0, 0, 1, 1, 0, 0, 1});
  }
  // d(e * x)/de with e = exp(x) an intermediate: x is a per-example constant.
  const bj::Tensor e = bj::exp(x);
  const bj::Tensor y = e * x;
  const auto je = tape.batch_jacobian(y, e);
  REQUIRE(je.has_value());
  CHECK(check::values(*je) == std::vector<double>{1, 0, 0, 2, 3, 0, 0, 4});
}
