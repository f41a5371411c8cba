// batch_jacobian, jacobian and gradient with several sources in one call:
// against central differences, forward against reverse, against the
// one-source calls, and TF's semantics for repeated, unconnected and
// dependent sources.
#include "engine/plan_cache.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

namespace bj = batchjac;

namespace {
using Sources = std::vector<bj::Tensor>;
using Fn = std::function<bj::Tensor(const Sources&)>;

// d f / d sources[i] by central differences, evaluated eagerly: [f..., s_i...].
std::vector<double> differences(const Fn& f, const Sources& sources, std::size_t i) {
  const bj::Tensor& s = sources[i];
  auto values_at = [&](const std::vector<double>& xi) {
    Sources moved = sources;
    moved[i] = bj::constant(std::span<const double>(xi), s.shape());
    return check::values(f(moved));
  };
  const std::vector<double> fd = check::central_differences(values_at, check::values(s), 1e-6);
  return fd;  // [f elements][s_i elements]
}

const bj::JacobianMode kModes[] = {bj::JacobianMode::forward, bj::JacobianMode::reverse,
                                   bj::JacobianMode::automatic};
}  // namespace

TEST_CASE("jacobian and gradient of several sources: one call on a non-persistent tape", "[graph][sources]") {
  std::mt19937_64 rng(21);
  const Sources sources = {check::random_tensor(rng, {3, 2}, -1, 1), check::random_tensor(rng, {2}, -1, 1),
                           check::random_tensor(rng, {}, 0.5, 1)};
  // z [3, 2] = tanh(x w^T-ish) * y + c x^2: every source reaches every element.
  const Fn f = [](const Sources& s) {
    return bj::tanh(bj::matmul(s[0], bj::reshape(s[1], {2, 1})) * s[1]) + s[2] * bj::square(s[0]);
  };
  for (auto mode : kModes) {
    INFO("mode " << static_cast<int>(mode));
    bj::GradientTape tape;  // non-persistent: one call answers every source
    for (const auto& s : sources) tape.watch(s);
    const bj::Tensor z = f(sources);
    const auto js = tape.jacobian(z, sources, check::with_mode(mode));
    REQUIRE(js.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      REQUIRE(js[i].has_value());
      CHECK(js[i]->shape() == check::concat(z.shape(), sources[i].shape()));
      check::check_close(check::values(*js[i]), differences(f, sources, i), 1e-7, 1e-8,
                         "d z / d source " + std::to_string(i));
    }
    CHECK_THROWS_AS(tape.jacobian(z, sources), bj::RuntimeError);
  }
  // gradient: the sum's derivative, against the Jacobian's column sums, and
  // against one-source gradients of a persistent tape.
  bj::GradientTape tape;
  bj::GradientTape each(bj::TapeOptions{.persistent = true});
  for (const auto& s : sources) {
    tape.watch(s);
    each.watch(s);
  }
  const bj::Tensor z = f(sources);
  const auto gs = tape.gradient(z, sources);
  REQUIRE(gs.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    REQUIRE(gs[i].has_value());
    CHECK(gs[i]->shape() == sources[i].shape());
    const auto one = each.gradient(z, sources[i]);
    REQUIRE(one.has_value());
    check::check_close(*gs[i], *one, 1e-14, 1e-15, "joint vs one-source gradient " + std::to_string(i));
    std::vector<double> sums(static_cast<std::size_t>(sources[i].num_elements()), 0.0);
    const auto fd = differences(f, sources, i);
    for (std::size_t r = 0; r < fd.size(); ++r) sums[r % sums.size()] += fd[r];
    check::check_close(check::values(*gs[i]), sums, 1e-7, 1e-8, "gradient vs differences");
  }
}

TEST_CASE("gradient of several sources is one plan, one reverse pass", "[graph][sources]") {
  std::mt19937_64 rng(22);
  const Sources sources = {check::random_tensor(rng, {4, 3}, -1, 1), check::random_tensor(rng, {3, 5}, -1, 1),
                           check::random_tensor(rng, {5}, -1, 1)};
  bj::engine::clear_plan_cache();
  bj::GradientTape tape;
  for (const auto& s : sources) tape.watch(s);
  const bj::Tensor loss = bj::reduce_sum(bj::square(bj::tanh(bj::matmul(sources[0], sources[1]) + sources[2])));
  const auto gs = tape.gradient(loss, sources);
  const auto stats = bj::engine::plan_cache_stats();
  CHECK(stats.misses == 1);
  CHECK(stats.entries == 1);
  for (const auto& g : gs) CHECK(g.has_value());
}

TEST_CASE("batch_jacobian of several sources: per example, forward == reverse == one by one", "[graph][sources]") {
  std::mt19937_64 rng(23);
  for (std::int64_t b : {1, 7, 9}) {
    INFO("batch " << b);
    const Sources sources = {check::random_tensor(rng, {b, 3}, -1, 1), check::random_tensor(rng, {b, 2, 2}, -1, 1)};
    const bj::Tensor w = check::random_tensor(rng, {3, 4}, -1, 1);
    auto g = [&](const Sources& s) {
      return bj::sin(bj::matmul(s[0], w)) * bj::reshape(s[1], {s[1].shape()[0], 4});
    };
    bj::GradientTape each(bj::TapeOptions{.persistent = true});
    for (const auto& s : sources) each.watch(s);
    const bj::Tensor y0 = g(sources);
    std::vector<bj::Tensor> want;
    for (const auto& s : sources) want.push_back(*each.batch_jacobian(y0, s, check::with_mode(bj::JacobianMode::forward)));
    for (auto mode : kModes) {
      bj::GradientTape tape;
      for (const auto& s : sources) tape.watch(s);
      const bj::Tensor y = g(sources);
      const auto js = tape.batch_jacobian(y, sources, check::with_mode(mode));
      REQUIRE(js.size() == 2);
      for (std::size_t i = 0; i < 2; ++i) {
        REQUIRE(js[i].has_value());
        CHECK(js[i]->shape() == check::concat(y.shape(), bj::Shape(std::vector<std::int64_t>(
                                                               sources[i].shape().begin() + 1, sources[i].shape().end()))));
        check::check_close(*js[i], want[i], 1e-14, 1e-15, "joint vs one-source batch_jacobian");
      }
    }
  }
}

TEST_CASE("several sources: repeated, unconnected and stop_gradient sources as TF", "[graph][sources]") {
  const bj::Tensor x = bj::constant({1., 2.});
  const bj::Tensor y = bj::constant({3., 4.});
  const bj::Tensor u = bj::constant({5.});
  for (auto unconnected : {bj::UnconnectedGradients::none, bj::UnconnectedGradients::zero}) {
    bj::GradientTape tape;
    tape.watch(x);
    tape.watch(y);
    tape.watch(u);
    // z depends on x, on y only through stop_gradient, not on u at all.
    const bj::Tensor z = x * bj::stop_gradient(y);
    const auto gs = tape.gradient(z, {x, y, u, x}, unconnected);
    REQUIRE(gs.size() == 4);
    REQUIRE(gs[0].has_value());
    CHECK(check::values(*gs[0]) == std::vector<double>{3, 4});
    REQUIRE(gs[3].has_value());
    CHECK(check::values(*gs[3]) == std::vector<double>{3, 4});  // listed twice: the same answer
    if (unconnected == bj::UnconnectedGradients::none) {
      CHECK_FALSE(gs[1].has_value());
      CHECK_FALSE(gs[2].has_value());
    } else {
      REQUIRE(gs[1].has_value());
      REQUIRE(gs[2].has_value());
      CHECK(check::values(*gs[1]) == std::vector<double>{0, 0});
      CHECK(check::values(*gs[2]) == std::vector<double>{0});
    }
  }
  // Nothing connected at all.
  bj::GradientTape tape;
  tape.watch(x);
  const auto none = tape.jacobian(bj::constant({1.}) * 2.0, Sources{x, y});
  REQUIRE(none.size() == 2);
  CHECK_FALSE(none[0].has_value());
  CHECK_FALSE(none[1].has_value());
  // An empty list answers with an empty list.
  bj::GradientTape empty;
  empty.watch(x);
  CHECK(empty.gradient(x * x, Sources{}).empty());
}

TEST_CASE("several sources: a source computed from another gets the total derivative", "[graph][sources]") {
  // TF: y = 2x; z = y^2 + x. dz/dx flows through y too (8x + 1); dz/dy = 2y.
  const bj::Tensor x = bj::constant({1., 3.});
  for (auto mode : kModes) {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = x * 2.0;
    tape.watch(y);
    const bj::Tensor z = y * y + x;
    const auto js = tape.jacobian(z, {x, y}, check::with_mode(mode));
    REQUIRE(js.size() == 2);
    REQUIRE(js[0].has_value());
    REQUIRE(js[1].has_value());
    CHECK(check::values(*js[0]) == std::vector<double>{9, 0, 0, 25});
    CHECK(check::values(*js[1]) == std::vector<double>{4, 0, 0, 12});
  }
}

TEST_CASE("several sources of two dtypes", "[graph][sources]") {
  const bj::Tensor x = bj::constant({1., 2.});
  const bj::Tensor y = bj::constant({3.f}, bj::float32);
  bj::GradientTape tape;
  tape.watch(x);
  tape.watch(y);
  const bj::Tensor z = x * bj::cast(y, bj::float64);
  const auto gs = tape.gradient(z, {x, y});
  REQUIRE(gs[0].has_value());
  REQUIRE(gs[1].has_value());
  CHECK(gs[1]->dtype() == bj::float32);
  CHECK(check::values(*gs[0]) == std::vector<double>{3, 3});
  CHECK(check::values(*gs[1]) == std::vector<double>{3});
}

TEST_CASE("several sources: errors before anything runs leave the tape usable", "[graph][sources][errors]") {
  const bj::Tensor x = bj::constant({{1., 2.}});
  const bj::Tensor mask = bj::constant({{1., 0.}}, bj::boolean);
  const bj::Tensor other = bj::constant(std::vector<double>{1., 2.}, bj::Shape{2, 1});
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor z = x * x;
  CHECK_THROWS_AS(tape.jacobian(z, {x, mask}), bj::ValueError);
  CHECK_THROWS_WITH(tape.gradient(z, {x, mask}), Catch::Contains("source 1"));
  CHECK_THROWS_AS(tape.batch_jacobian(z, {x, other}), bj::ValueError);
  CHECK_THROWS_AS(tape.batch_jacobian(z, {x, bj::constant({1., 2.})}), bj::ValueError);
  bj::JacobianOptions bad;
  bad.parallel_iterations = 0;
  CHECK_THROWS_AS(tape.jacobian(z, {x, x}, bad), bj::ValueError);
  const auto ok = tape.batch_jacobian(z, {x, x});
  REQUIRE(ok[0].has_value());
  CHECK(check::values(*ok[0]) == std::vector<double>{2, 0, 0, 4});
  CHECK_THROWS_AS(tape.gradient(z, {x, x}), bj::RuntimeError);
}
