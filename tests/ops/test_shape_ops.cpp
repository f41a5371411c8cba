// Shape and indexing ops: reshape, broadcast_to, transpose, slice, gather,
// roll, tile, pad, repeat, concat and their compositions (expand_dims, squeeze, stack,
// unstack, cross): the derivative table, eager values, errors.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <numeric>
#include <string>
#include <vector>

namespace bj = batchjac;
using check::Case;
using check::Context;

namespace {
const int kRegistered = check::register_ops(
    {"reshape", "broadcast_to", "transpose", "slice", "gather", "roll", "tile", "pad", "repeat", "concat"});

std::vector<double> iota(std::size_t n) {
  std::vector<double> v(n);
  std::iota(v.begin(), v.end(), 0.0);
  return v;
}

struct Row {
  std::string what;
  bj::Shape example;
  check::Fn f;
};

void run(const std::string& op, const std::vector<Row>& rows) {
  for (const Row& r : rows) {
    Case c;
    c.name = op + ": " + r.what;
    c.f = r.f;
    c.example = r.example;
    check::check_case(c);
  }
}
std::int64_t B(const bj::Tensor& x) { return x.shape()[0]; }
}  // namespace

TEST_CASE("reshape and broadcast_to: derivative check table", "[ops][shape]") {
  run("reshape", {
      {"[b, 12] times a per-example [b, 12]", {3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::sin(bj::reshape(x, {B(x), 12}) * c.per_example(1, {12})); }},
      {"[-1, 4, 3] then matmul with shared [3, 2]", {3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(bj::reshape(x, {-1, 4, 3}), c.shared(2, {3, 2})); }},
      {"[b, 2, -1, 3] times a shared [2, 1, 3]", {3, 4},
       [](const bj::Tensor& x, const Context& c) {
         return bj::reshape(x, {B(x), 2, -1, 3}) * bj::exp(c.shared(3, {2, 1, 3}));
       }},
      {"[b, 12, 1] broadcast against shared [5]", {3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::tanh(bj::reshape(x, {B(x), 12, 1}) * c.shared(4, {5})); }},
      {"a reshape of a reshape, times the source", {3, 4},
       [](const bj::Tensor& x, const Context&) {
         return bj::reshape(bj::square(bj::reshape(x, {B(x), 6, 2})), {B(x), 3, 4}) * x;
       }},
      {"expand_dims and squeeze", {3, 4},
       [](const bj::Tensor& x, const Context&) {
         return bj::squeeze(bj::cos(bj::expand_dims(x, -1)), {3}) * bj::squeeze(bj::expand_dims(x, 1), {1});
       }},
  });
  run("broadcast_to", {
      {"[b, 1, 3] to [b, 4, 3]", {1, 3},
       [](const bj::Tensor& x, const Context& c) { return bj::broadcast_to(x, {B(x), 4, 3}) * c.per_example(1, {4, 3}); }},
      {"[b, 1] to [b, 5]", {1},
       [](const bj::Tensor& x, const Context& c) { return bj::sin(bj::broadcast_to(x, {B(x), 5}) * c.shared(2, {5})); }},
      {"[b, 2, 1, 3] to [b, 2, 4, 3]", {2, 1, 3},
       [](const bj::Tensor& x, const Context& c) {
         return bj::broadcast_to(bj::exp(x), {B(x), 2, 4, 3}) * c.shared(3, {4, 1});
       }},
      {"to its own shape", {2, 3},
       [](const bj::Tensor& x, const Context&) { return bj::broadcast_to(x, x.shape()) * x; }},
  });
}

TEST_CASE("index maps: derivative check table", "[ops][shape]") {
  run("transpose", {
      {"perm {0, 2, 1}", {3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::transpose(x, {0, 2, 1}) * c.per_example(1, {4, 3}); }},
      {"perm {0, 3, 1, 2} then matmul", {2, 3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::matmul(bj::transpose(bj::sin(x), {0, 3, 1, 2}), c.shared(2, {3, 2})); }},
      {"negative perm entries {0, -1, -2}", {3, 4},
       [](const bj::Tensor& x, const Context&) { return bj::transpose(x * x, {0, -1, -2}); }},
  });
  run("slice", {
      {"[:, 1:3, 0:2]", {3, 4},
       [](const bj::Tensor& x, const Context&) { return bj::exp(bj::slice(x, {0, 1, 0}, {-1, 2, 2})); }},
      {"size -1 to the end, times the source's other slice", {3, 4},
       [](const bj::Tensor& x, const Context&) {
         return bj::slice(x, {0, 0, 2}, {-1, -1, -1}) * bj::slice(x, {0, 0, 0}, {-1, 3, 2});
       }},
      {"unstack along axis 1, recombined", {3, 4},
       [](const bj::Tensor& x, const Context&) {
         const auto parts = bj::unstack(x, 1);
         return parts[0] * parts[1] + bj::sin(parts[2]);
       }},
  });
  run("gather", {
      {"indices {3, 0, 0, 2} along the last axis", {3, 4},
       [](const bj::Tensor& x, const Context&) { return bj::gather(bj::sin(x), {3, 0, 0, 2}, -1) * 2.0; }},
      {"along axis 1, repeated indices summed in reverse", {3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::gather(x, {1, 1, 2}, 1) * c.per_example(1, {3, 4}); }},
      {"cross product over the last axis (gathers)", {2, 3},
       [](const bj::Tensor& x, const Context& c) { return bj::cross(x, bj::sin(x) + c.shared(2, {3})); }},
  });
  run("roll", {
      {"shift 1 along axis 1", {3, 4}, [](const bj::Tensor& x, const Context&) { return bj::roll(x * x, 1, 1); }},
      {"shifts {-1, 5} along axes {2, 1}", {3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::roll(x, {-1, 5}, {2, 1}) * c.per_example(1, {3, 4}); }},
  });
  run("tile", {
      {"multiples {1, 2, 1}", {3, 4}, [](const bj::Tensor& x, const Context&) { return bj::tile(bj::sin(x), {1, 2, 1}); }},
      {"multiples {1, 1, 3} times a per-example constant", {2, 2},
       [](const bj::Tensor& x, const Context& c) { return bj::tile(x, {1, 1, 3}) * c.per_example(1, {2, 6}); }},
  });
  run("repeat", {
      {"each element twice along axis 1", {3, 4},
       [](const bj::Tensor& x, const Context&) { return bj::repeat(bj::sin(x), 2, 1); }},
      {"per-element repeats {0, 3, 1, 2} along the last axis, times a per-example constant", {3, 4},
       [](const bj::Tensor& x, const Context& c) { return bj::repeat(x, {0, 3, 1, 2}, -1) * c.per_example(1, {3, 6}); }},
      {"repeats of 1 along the batch axis, then along axis 1", {2, 2},
       [](const bj::Tensor& x, const Context&) { return bj::repeat(bj::repeat(x * x, 1, 0), {3, 1}, 1); }},
  });
  run("pad", {
      {"{{0, 0}, {1, 2}, {0, 1}}", {3, 4},
       [](const bj::Tensor& x, const Context&) { return bj::exp(bj::pad(x, {{0, 0}, {1, 2}, {0, 1}})); }},
      {"padded then reduced", {3, 4},
       [](const bj::Tensor& x, const Context&) { return bj::reduce_sum(bj::pad(x * x, {{0, 0}, {2, 0}, {0, 0}}), {1}); }},
  });
}

TEST_CASE("concat and stack: derivative check table", "[ops][shape]") {
  run("concat", {
      {"the source with itself along axis 1", {3, 2},
       [](const bj::Tensor& x, const Context&) { return bj::concat({x, bj::sin(x)}, 1); }},
      {"along the last axis, three parts", {3, 2},
       [](const bj::Tensor& x, const Context&) { return bj::concat({x * x, x, bj::exp(x)}, -1); }},
      {"with a per-example constant, then reduced (values matter)", {2, 3},
       [](const bj::Tensor& x, const Context& c) {
         return x * bj::reduce_sum(bj::concat({x, c.per_example(1, {2, 2})}, 2), {2}, true);
       }},
      {"a per-example constant first, only part of the tangents", {2, 3},
       [](const bj::Tensor& x, const Context& c) {
         return bj::sin(bj::concat({c.per_example(2, {1, 3}), x}, 1));
       }},
  });
  run("stack", {
      {"stack along axis 1", {3},
       [](const bj::Tensor& x, const Context&) { return bj::stack({x, x * x, bj::cos(x)}, 1); }},
      {"stack along the last axis", {2, 3},
       [](const bj::Tensor& x, const Context&) { return bj::stack({bj::sin(x), x}, -1); }},
  });
}

// Regression test (a bug found and fixed): with one example (b = 1) a constant operand of concat is a shared,
// non-lane-varying value ([1, k] is "shared" for b = 1), but concat lowers to
// the scatter kernel, which reads every input as lane-varying
// (in[e * lanes + l]): it reads the wrong elements and past the constant's
// buffer (heap-buffer-overflow under ASan). Minimal: x = [[1, 2]] watched,
// c = [[10, 20, 30]], y = x * reduce_sum(concat({x, c}, 1), {1}, true);
// batch_jacobian(y, x) must be [[[63+1, 1], [2, 63+2]]] = S I + x 1^T with
// S = 63; the engine returns other numbers. Fixed: concat's
// batch rule makes its constants per-example.
TEST_CASE("concat with a constant at batch size 1", "[ops][shape][concat_shared_constant]") {
  const bj::Tensor x = bj::constant({{1., 2.}});
  const bj::Tensor c = bj::constant({{10., 20., 30.}});
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = x * bj::reduce_sum(bj::concat({x, c}, 1), {1}, true);
    bj::JacobianOptions o;
    o.mode = mode;
    const auto j = tape.batch_jacobian(y, x, o);
    REQUIRE(j.has_value());
    CHECK(check::values(*j) == std::vector<double>{64, 1, 2, 65});
  }
}

// ---- eager values ------------------------------------------------------------------

TEST_CASE("reshape, expand_dims, squeeze: eager values", "[ops][shape]") {
  const bj::Tensor x = bj::constant(iota(24), bj::Shape{2, 3, 4});
  const bj::Tensor r = bj::reshape(x, {4, -1});
  CHECK(r.shape() == bj::Shape{4, 6});
  CHECK(check::values(r) == iota(24));
  CHECK(bj::reshape(x, {-1}).shape() == bj::Shape{24});
  CHECK(bj::reshape(x, {2, -1, 3}).shape() == bj::Shape{2, 4, 3});
  CHECK(bj::reshape(bj::constant({5.0}), {}).shape() == bj::Shape{});
  CHECK(bj::reshape(bj::constant(5.0), {1, 1}).at({0, 0}) == 5.0);
  CHECK(bj::reshape(bj::zeros({0, 4}), {-1, 2}).shape() == bj::Shape{0, 2});
  CHECK(bj::reshape(bj::cast(x, bj::float32), {24}).dtype() == bj::float32);
  CHECK(bj::expand_dims(x, 0).shape() == bj::Shape{1, 2, 3, 4});
  CHECK(bj::expand_dims(x, -1).shape() == bj::Shape{2, 3, 4, 1});
  CHECK(bj::expand_dims(x, 2).shape() == bj::Shape{2, 3, 1, 4});
  CHECK(bj::squeeze(bj::zeros({1, 3, 1, 2})).shape() == bj::Shape{3, 2});
  CHECK(bj::squeeze(bj::zeros({1, 3, 1, 2}), {-2}).shape() == bj::Shape{1, 3, 2});
}

TEST_CASE("transpose, slice, gather, roll, tile, pad: eager values", "[ops][shape]") {
  const bj::Tensor m = bj::constant({{1., 2., 3.}, {4., 5., 6.}});
  CHECK(bj::transpose(m).shape() == bj::Shape{3, 2});
  CHECK(check::values(bj::transpose(m)) == std::vector<double>{1, 4, 2, 5, 3, 6});
  const bj::Tensor x = bj::constant(iota(24), bj::Shape{2, 3, 4});
  const bj::Tensor t = bj::transpose(x, {2, 0, 1});
  REQUIRE(t.shape() == bj::Shape{4, 2, 3});
  CHECK(t.at({3, 1, 2}) == x.at({1, 2, 3}));
  CHECK(t.at({1, 0, 2}) == x.at({0, 2, 1}));

  CHECK(check::values(bj::slice(m, {0, 1}, {-1, 2})) == std::vector<double>{2, 3, 5, 6});
  CHECK(check::values(bj::slice(m, {1, 0}, {1, -1})) == std::vector<double>{4, 5, 6});
  CHECK(bj::slice(m, {0, 3}, {2, 0}).shape() == bj::Shape{2, 0});

  CHECK(check::values(bj::gather(m, {2, 0, 0}, 1)) == std::vector<double>{3, 1, 1, 6, 4, 4});
  CHECK(check::values(bj::gather(m, {1}, 0)) == std::vector<double>{4, 5, 6});
  CHECK(bj::gather(m, {}, 1).shape() == bj::Shape{2, 0});

  CHECK(check::values(bj::roll(m, 1, 1)) == std::vector<double>{3, 1, 2, 6, 4, 5});
  CHECK(check::values(bj::roll(m, -1, 1)) == std::vector<double>{2, 3, 1, 5, 6, 4});
  CHECK(check::values(bj::roll(m, {1, 4}, {0, 1})) == std::vector<double>{6, 4, 5, 3, 1, 2});

  CHECK(check::values(bj::tile(m, {1, 2})) == std::vector<double>{1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6});
  CHECK(bj::tile(m, {2, 0}).shape() == bj::Shape{4, 0});

  // repeat (tf.repeat): one count for all, one per element, or flattened.
  CHECK(check::values(bj::repeat(m, 2, 1)) == std::vector<double>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6});
  CHECK(check::values(bj::repeat(m, {2, 0}, 0)) == std::vector<double>{1, 2, 3, 1, 2, 3});
  CHECK(check::values(bj::repeat(m, {1, 0, 2}, -1)) == std::vector<double>{1, 3, 3, 4, 6, 6});
  CHECK(bj::repeat(m, 2).shape() == bj::Shape{12});
  CHECK(check::values(bj::repeat(m, {1, 0, 0, 0, 2, 1})) == std::vector<double>{1, 5, 5, 6});
  CHECK(check::values(bj::repeat(bj::constant(7.0), 3)) == std::vector<double>{7, 7, 7});
  CHECK(bj::repeat(m, 0, 1).shape() == bj::Shape{2, 0});
  CHECK(bj::repeat(bj::zeros({2, 0}), 3, 1).shape() == bj::Shape{2, 0});
  CHECK(bj::repeat(bj::constant({{1., 0.}}, bj::boolean), 2, 1).to_vector<bool>() ==
        std::vector<bool>{true, true, false, false});

  const bj::Tensor p = bj::pad(m, {{1, 0}, {0, 2}});
  REQUIRE(p.shape() == bj::Shape{3, 5});
  CHECK(check::values(p) == std::vector<double>{0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0, 0});

  // cross: [1, 0, 0] x [0, 1, 0] = [0, 0, 1].
  CHECK(check::values(bj::cross(bj::constant({{1., 0., 0.}}), bj::constant({{0., 1., 0.}}))) ==
        std::vector<double>{0, 0, 1});
}

TEST_CASE("concat, stack, unstack: eager values", "[ops][shape]") {
  const bj::Tensor a = bj::constant({{1., 2.}, {3., 4.}});
  const bj::Tensor c = bj::constant(std::vector<double>{5., 6.}, bj::Shape{2, 1});
  CHECK(check::values(bj::concat({a, c}, 1)) == std::vector<double>{1, 2, 5, 3, 4, 6});
  CHECK(check::values(bj::concat({a, a}, 0)) == std::vector<double>{1, 2, 3, 4, 1, 2, 3, 4});
  CHECK(bj::concat({a}, -1).shape() == bj::Shape{2, 2});
  const bj::Tensor s = bj::stack({a, a * 10.0}, 1);
  REQUIRE(s.shape() == bj::Shape{2, 2, 2});
  CHECK(check::values(s) == std::vector<double>{1, 2, 10, 20, 3, 4, 30, 40});
  const auto parts = bj::unstack(s, 2);
  REQUIRE(parts.size() == 2);
  CHECK(parts[1].shape() == bj::Shape{2, 2});
  CHECK(check::values(parts[1]) == std::vector<double>{2, 20, 4, 40});
}

// ---- errors -------------------------------------------------------------------------

TEST_CASE("shape ops: bad arguments raise ValueError", "[ops][shape][errors]") {
  const bj::Tensor x = bj::ones({2, 3});
  CHECK_THROWS_AS(bj::reshape(x, {4, 2}), bj::ValueError);
  CHECK_THROWS_WITH(bj::reshape(x, {4, 2}), Catch::Contains("reshape") && Catch::Contains("[2, 3]") &&
                                                Catch::Contains("[4, 2]"));
  CHECK_THROWS_AS(bj::reshape(x, {-1, -1}), bj::ValueError);
  CHECK_THROWS_AS(bj::reshape(x, {-1, 4}), bj::ValueError);
  CHECK_THROWS_AS(bj::reshape(x, {-2, -3}), bj::ValueError);
  CHECK_THROWS_AS(bj::reshape(bj::zeros({0, 4}), {0, -1}), bj::ValueError);

  CHECK_THROWS_AS(bj::broadcast_to(x, {3, 3}), bj::ValueError);
  CHECK_THROWS_AS(bj::broadcast_to(x, {3}), bj::ValueError);
  CHECK_THROWS_WITH(bj::broadcast_to(x, {3, 3}), Catch::Contains("broadcast_to") && Catch::Contains("[2, 3]"));

  CHECK_THROWS_AS(bj::transpose(x, {0}), bj::ValueError);
  CHECK_THROWS_AS(bj::transpose(x, {0, 0}), bj::ValueError);
  CHECK_THROWS_AS(bj::transpose(x, {0, 2}), bj::ValueError);
  CHECK_THROWS_AS(bj::slice(x, {0, 2}, {1, 2}), bj::ValueError);
  CHECK_THROWS_AS(bj::slice(x, {-1, 0}, {1, 1}), bj::ValueError);
  CHECK_THROWS_AS(bj::slice(x, {0}, {1}), bj::ValueError);
  CHECK_THROWS_AS(bj::gather(x, {3}, 1), bj::ValueError);
  CHECK_THROWS_AS(bj::gather(x, {-1}, 1), bj::ValueError);
  CHECK_THROWS_AS(bj::gather(x, {0}, 2), bj::ValueError);
  CHECK_THROWS_WITH(bj::gather(x, {3}, 1), Catch::Contains("gather") && Catch::Contains("3"));
  CHECK_THROWS_AS(bj::roll(x, {1, 2}, {0}), bj::ValueError);
  CHECK_THROWS_AS(bj::roll(x, 1, 2), bj::ValueError);
  CHECK_THROWS_AS(bj::tile(x, {2}), bj::ValueError);
  CHECK_THROWS_AS(bj::tile(x, {1, -1}), bj::ValueError);
  CHECK_THROWS_AS(bj::pad(x, {{0, 0}}), bj::ValueError);
  CHECK_THROWS_AS(bj::pad(x, {{0, -1}, {0, 0}}), bj::ValueError);
  CHECK_THROWS_AS(bj::repeat(x, {1, 2}, 1), bj::ValueError);
  CHECK_THROWS_WITH(bj::repeat(x, {1, 2}, 1), Catch::Contains("repeat") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS(bj::repeat(x, std::vector<std::int64_t>{}, 1), bj::ValueError);
  CHECK_THROWS_AS(bj::repeat(x, -1, 1), bj::ValueError);
  CHECK_THROWS_WITH(bj::repeat(x, {1, -1, 1}, 1), Catch::Contains("repeat") && Catch::Contains(">= 0"));
  CHECK_THROWS_AS(bj::repeat(x, 2, 2), bj::ValueError);
  CHECK_THROWS_AS(bj::repeat(bj::constant(1.0), 2, 0), bj::ValueError);
  CHECK_THROWS_AS(bj::repeat(x, {std::int64_t{1} << 62, std::int64_t{1} << 62}, 0), bj::ValueError);
  CHECK_THROWS_AS(bj::concat({}, 0), bj::ValueError);
  CHECK_THROWS_AS(bj::concat({x, bj::ones({3, 3})}, 1), bj::ValueError);
  CHECK_THROWS_AS(bj::concat({x, bj::ones({2, 3}, bj::float32)}, 1), bj::ValueError);
  CHECK_THROWS_AS(bj::concat({x, x}, 2), bj::ValueError);
  CHECK_THROWS_WITH(bj::concat({x, x}, 2), Catch::Contains("-2 <= axis < 2"));
  // Scalars have no axis to join along (not "expected -0 <= axis < 0").
  const bj::Tensor s = bj::constant(1.0);
  CHECK_THROWS_WITH(bj::concat({s, s}, 0), Catch::Contains("concat") && Catch::Contains("rank >= 1") &&
                                               !Catch::Contains("-0"));
  CHECK_THROWS_WITH(bj::reduce_sum(s, {0}), Catch::Contains("rank 0") && !Catch::Contains("-0"));
  CHECK(bj::stack({s, s}, 0).shape() == bj::Shape{2});
  CHECK_THROWS_AS(bj::stack({x, bj::ones({3, 2})}, 0), bj::ValueError);
  CHECK_THROWS_AS(bj::squeeze(x, {0}), bj::ValueError);
  CHECK_THROWS_AS(bj::expand_dims(x, 4), bj::ValueError);
  CHECK_THROWS_AS(bj::cross(bj::ones({2, 2}), bj::ones({2, 2})), bj::ValueError);
  CHECK_THROWS_AS(bj::cross(x, bj::ones({2, 4})), bj::ValueError);
}

TEST_CASE("shape ops on boolean tensors", "[ops][shape]") {
  const bj::Tensor mask = bj::cast(bj::ones({100}), bj::boolean);
  const bj::Tensor r = bj::reshape(mask, {10, 10});
  CHECK(r.dtype() == bj::boolean);
  CHECK(r.to_vector<bool>() == std::vector<bool>(100, true));
  const bj::Tensor b = bj::broadcast_to(bj::cast(bj::ones({1, 20}), bj::boolean), {5, 20});
  CHECK(b.dtype() == bj::boolean);
  CHECK(b.to_vector<bool>() == std::vector<bool>(100, true));
  const bj::Tensor t = bj::transpose(bj::constant({{1., 0., 1.}}, bj::boolean));
  CHECK(t.to_vector<bool>() == std::vector<bool>{true, false, true});
  CHECK(bj::stop_gradient(mask).to_vector<bool>() == std::vector<bool>(100, true));
}
