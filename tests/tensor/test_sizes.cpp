// Sizes: element counts that overflow int64, tensors larger than the limit
// (tensor.hpp), and size arguments at the ends of the int64 range. Every one
// is a ValueError naming the op, raised before anything is allocated; none is
// a crash, a std::bad_alloc or a wrong tensor.
#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace bj = batchjac;

namespace {
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
// 3 * kThird wraps to 2 in int64 arithmetic.
constexpr std::int64_t kThird = 0x5555555555555556;
constexpr std::int64_t kTera = std::int64_t{1} << 40;  // 8 TiB of float64
constexpr std::int64_t kMega = std::int64_t{1} << 20;

// v rolled right by s, 0 <= s < v.size(): out[j] = v[(j - s) mod n].
std::vector<double> rolled(const std::vector<double>& v, std::size_t s) {
  std::vector<double> out(v.size());
  for (std::size_t j = 0; j < v.size(); ++j) out[(j + s) % v.size()] = v[j];
  return out;
}
}  // namespace

TEST_CASE("Shape::num_elements saturates instead of overflowing", "[tensor][sizes]") {
  CHECK(bj::Shape{kTera, kTera}.num_elements() == kMax);
  CHECK(bj::Shape{3, kThird}.num_elements() == kMax);
  CHECK(bj::Shape{kTera, kTera, 0}.num_elements() == 0);  // exact: a zero dimension
  CHECK(bj::Shape{kMax}.num_elements() == kMax);
  CHECK(bj::Shape{2, 3, 4}.num_elements() == 24);
}

TEST_CASE("factories: overflowing or too large shapes are ValueErrors", "[tensor][sizes]") {
  REQUIRE_THROWS_AS(bj::zeros(bj::Shape{kTera, kTera}), bj::ValueError);
  REQUIRE_THROWS_AS(bj::ones(bj::Shape{3, kThird}), bj::ValueError);
  REQUIRE_THROWS_AS(bj::fill(bj::Shape{2, kMax}, 1.0), bj::ValueError);
  // Fits int64, not the machine.
  REQUIRE_THROWS_AS(bj::zeros(bj::Shape{kTera}), bj::ValueError);
  REQUIRE_THROWS_WITH(bj::zeros(bj::Shape{kTera}),
                      Catch::Contains("zeros") && Catch::Contains("[1099511627776]"));
  REQUIRE_THROWS_WITH(bj::fill(bj::Shape{kTera, kTera}, 2.0, bj::float32),
                      Catch::Contains("fill") && Catch::Contains("int64"));
  // constant: the size error, not "needs 0 values".
  const std::vector<double> two{1., 2.};
  REQUIRE_THROWS_WITH(bj::constant(two, bj::Shape{3, kThird}),
                      Catch::Contains("constant") && Catch::Contains("int64"));
  // Empty tensors with huge dimensions are fine.
  CHECK(bj::zeros(bj::Shape{0, kMax}).num_elements() == 0);
  CHECK(bj::zeros(bj::Shape{kTera, kTera, 0}).shape() == bj::Shape{kTera, kTera, 0});
}

TEST_CASE("reshape: a wrapped element count is not a match", "[tensor][sizes]") {
  // 3 * kThird wraps to 2: once taken for 2 elements, then reduce_sum
  // overflowed the heap.
  REQUIRE_THROWS_AS(bj::reshape(bj::constant({1., 2., 3., 4.}), bj::Shape{-1, 3, kThird}),
                    bj::ValueError);
  REQUIRE_THROWS_AS(bj::reshape(bj::constant({1., 2.}), bj::Shape{3, kThird}), bj::ValueError);
  REQUIRE_THROWS_WITH(bj::reshape(bj::constant({1., 2.}), bj::Shape{-1, kMax, 2}),
                      Catch::Contains("reshape"));
}

TEST_CASE("pad: paddings past int64 are a ValueError, not a wrong tensor", "[tensor][sizes]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  REQUIRE_THROWS_AS(bj::pad(x, {{0, 0}, {kMax, kMax}}), bj::ValueError);
  REQUIRE_THROWS_WITH(bj::pad(x, {{0, 0}, {kMax, kMax}}), Catch::Contains("pad"));
  REQUIRE_THROWS_AS(bj::pad(x, {{0, 0}, {0, kMax - 1}}), bj::ValueError);  // fits int64, too large
  REQUIRE_THROWS_AS(bj::pad(bj::zeros({0, 2}), {{0, 0}, {kMax, 0}}), bj::ValueError);
}

TEST_CASE("roll: shifts at the ends of int64 are exact", "[tensor][sizes]") {
  // Mod 5: 2^4 = 16 = 1, so 2^63 = 8 = 3; kMax = 2^63 - 1 = 2, kMin = -2^63 = 2,
  // kMin + 1 = 3, 2 kMax + 4 = 3, 2 kMin = 4.
  const std::vector<double> v{0., 1., 2., 3., 4.};
  const bj::Tensor x = bj::reshape(bj::constant(std::span<const double>(v), bj::Shape{5}),
                                   bj::Shape{1, 5});
  CHECK(bj::roll(x, kMin, 1).to_vector<double>() == rolled(v, 2));
  CHECK(bj::roll(x, kMax, 1).to_vector<double>() == rolled(v, 2));
  CHECK(bj::roll(x, kMin + 1, -1).to_vector<double>() == rolled(v, 3));
  // Shifts of one axis add up, past int64.
  CHECK(bj::roll(x, {kMax, kMax, 4}, {1, 1, -1}).to_vector<double>() == rolled(v, 3));
  CHECK(bj::roll(x, {kMin, kMin}, {1, 1}).to_vector<double>() == rolled(v, 4));
  CHECK(bj::roll(x, {-1, kMin}, {1, 1}).to_vector<double>() == rolled(v, 1));
  // An axis of length 0 rolls by anything.
  CHECK(bj::roll(bj::zeros({1, 0}), kMin, 1).shape() == bj::Shape{1, 0});
}

TEST_CASE("tile: overflowing multiples are named as given", "[tensor][sizes]") {
  const bj::Tensor x = bj::constant({{1., 2., 3.}});
  const std::int64_t quarter = std::int64_t{1} << 62;  // 3 * 2^62 wraps negative
  REQUIRE_THROWS_AS(bj::tile(x, {1, quarter}), bj::ValueError);
  REQUIRE_THROWS_WITH(bj::tile(x, {1, quarter}),
                      Catch::Contains("tile") && Catch::Contains("4611686018427387904") &&
                          !Catch::Contains("-4611686018427387904"));
  REQUIRE_THROWS_WITH(bj::tile(x, {1, -quarter}), Catch::Contains("-4611686018427387904"));
  // Fits int64, not the machine (was std::bad_alloc).
  REQUIRE_THROWS_AS(bj::tile(x, {1, kTera}), bj::ValueError);
}

TEST_CASE("slice: begin and size out of range without overflow", "[tensor][sizes]") {
  const bj::Tensor x = bj::constant({{1., 2., 3.}});
  REQUIRE_THROWS_AS(bj::slice(x, {0, 2}, {1, kMax}), bj::ValueError);   // was length_error
  REQUIRE_THROWS_AS(bj::slice(x, {0, kMax}, {1, 2}), bj::ValueError);   // read far outside
  REQUIRE_THROWS_AS(bj::slice(x, {0, kMin}, {1, -1}), bj::ValueError);
  REQUIRE_THROWS_AS(bj::slice(x, {0, kMax}, {1, -1}), bj::ValueError);
  REQUIRE_THROWS_WITH(bj::slice(x, {0, kMax}, {1, 2}), Catch::Contains("slice"));
  CHECK(bj::slice(x, {0, 1}, {1, -1}).to_vector<double>() == std::vector<double>{2., 3.});
  CHECK(bj::slice(x, {0, 3}, {1, -1}).shape() == bj::Shape{1, 0});
}

TEST_CASE("results too large for the machine are ValueErrors before allocation", "[tensor][sizes]") {
  // Each input is at most 16 MiB; each result would be 8 TiB.
  const bj::Tensor column = bj::zeros({kMega, 1});
  const bj::Tensor row = bj::zeros({1, kMega});
  REQUIRE_THROWS_AS(column + row, bj::ValueError);
  REQUIRE_THROWS_WITH(column + row, Catch::Contains("add") && Catch::Contains("[1048576, 1048576]"));
  REQUIRE_THROWS_AS(bj::broadcast_to(bj::constant(1.0), bj::Shape{kTera}), bj::ValueError);
  REQUIRE_THROWS_AS(bj::broadcast_to(bj::constant(1.0), bj::Shape{kTera, kTera}), bj::ValueError);
  REQUIRE_THROWS_AS(bj::matmul(bj::zeros({kMega, 0}), bj::zeros({0, kMega})), bj::ValueError);
  REQUIRE_THROWS_AS(bj::gather(bj::zeros({kMega, 2}), std::vector<std::int64_t>(kMega, 1), 1),
                    bj::ValueError);
  REQUIRE_THROWS_AS(bj::where(bj::cast(column, bj::boolean), column, row), bj::ValueError);
}

TEST_CASE("concat and stack: joined sizes past int64", "[tensor][sizes]") {
  const bj::Tensor empty = bj::zeros({0, std::int64_t{1} << 62});
  REQUIRE_THROWS_AS(bj::concat({empty, empty}, 1), bj::ValueError);
  REQUIRE_THROWS_WITH(bj::concat({empty, empty}, 1),
                      Catch::Contains("concat") && Catch::Contains("int64"));
  CHECK(bj::concat({empty, empty}, 0).shape() == bj::Shape{0, std::int64_t{1} << 62});
  CHECK(bj::stack({empty, empty}, 0).shape() == bj::Shape{2, 0, std::int64_t{1} << 62});
}

TEST_CASE("a Jacobian too large for the machine is a ValueError", "[tensor][sizes]") {
  // 1 x 2^20 x 2^20 entries: 8 TiB (was std::bad_alloc).
  const bj::Tensor x = bj::zeros({1, kMega});
  {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = x * 2.0;
    REQUIRE_THROWS_AS(tape.batch_jacobian(y, x), bj::ValueError);
  }
  {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = x * 2.0;
    REQUIRE_THROWS_WITH(tape.batch_jacobian(y, x),
                        Catch::Contains("batch_jacobian") && Catch::Contains("[1, 1048576, 1048576]"));
  }
  {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = x * 2.0;
    REQUIRE_THROWS_WITH(tape.jacobian(y, x),
                        Catch::Contains("jacobian") && Catch::Contains("[1, 1048576, 1, 1048576]"));
  }
}

TEST_CASE("empty tensors with dimensions whose strides pass int64", "[tensor][sizes]") {
  // [0, 2^62, 4] holds nothing, but the stride of its axis 0 would be 2^64:
  // under UBSan every op here once overflowed computing it.
  const std::int64_t big = std::int64_t{1} << 62;
  const bj::Tensor e = bj::zeros({0, big, 4});
  CHECK((e + bj::ones({4})).shape() == bj::Shape{0, big, 4});
  CHECK((e + bj::zeros({0, big, 1})).shape() == bj::Shape{0, big, 4});
  CHECK(bj::reduce_sum(e, {2}).shape() == bj::Shape{0, big});
  CHECK(bj::reduce_sum(e, {1}, true).shape() == bj::Shape{0, 1, 4});
  CHECK(bj::transpose(e, {0, 2, 1}).shape() == bj::Shape{0, 4, big});
  CHECK(bj::slice(e, {0, 1, 1}, {0, 2, 2}).shape() == bj::Shape{0, 2, 2});
  CHECK(bj::tile(e, {1, 1, 2}).shape() == bj::Shape{0, big, 8});
  CHECK(bj::pad(e, {{0, 0}, {0, 0}, {1, 1}}).shape() == bj::Shape{0, big, 6});
  CHECK(bj::roll(e, kMin, 1).shape() == bj::Shape{0, big, 4});
  CHECK(bj::concat({e, e}, 2).shape() == bj::Shape{0, big, 8});
  CHECK(bj::matmul(e, bj::ones({4, 3})).shape() == bj::Shape{0, big, 3});
  CHECK(bj::broadcast_to(bj::zeros({0, 1, 4}), bj::Shape{0, big, 4}).shape() == bj::Shape{0, big, 4});
  // Products of the other axes pass int64 too: [0, 2^62, 2^62], [2^62, 2^62, 0].
  const bj::Tensor wide = bj::zeros({0, big, big});
  CHECK(bj::reduce_mean(wide, {1, 2}).shape() == bj::Shape{0});
  CHECK(bj::cumsum(bj::zeros({big, big, 0}), 2).shape() == bj::Shape{big, big, 0});
  CHECK(bj::cumsum(bj::zeros({0, big, big}), 0).shape() == bj::Shape{0, big, big});
  CHECK(bj::matmul(bj::zeros({big, big, 0, 4}), bj::ones({1, 1, 4, 3})).shape() ==
        bj::Shape{big, big, 0, 3});
  CHECK_THROWS_AS(bj::matmul(bj::zeros({big, big, 2, 0}), bj::zeros({big, big, 0, 3})),
                  bj::ValueError);  // empty operands, a result of 2^126 elements
}

TEST_CASE("derivatives through empty tensors with huge dimensions", "[tensor][sizes]") {
  const std::int64_t big = std::int64_t{1} << 62;
  const bj::Tensor x = bj::zeros({0, big, 4});
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = bj::reduce_sum(bj::reduce_prod(x, {1, 2}));
  const auto g = tape.gradient(y, x);
  REQUIRE(g.has_value());
  CHECK(g->shape() == bj::Shape{0, big, 4});
}
