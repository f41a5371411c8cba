// batch_jacobian_into: the same numbers as batch_jacobian, written into the
// caller's memory (any alignment), with its size and type checked.
#include "kernels/kernels.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

namespace bj = batchjac;

namespace {
// [b, 5] -> [b, 3, 2]: shared weights, a per-example constant, a reduction.
bj::Tensor program(const bj::Tensor& x) {
  std::mt19937_64 rng(5);
  const bj::DType t = x.dtype();
  const bj::Tensor w = check::random_tensor(rng, {5, 6}, -0.5, 0.5, t);
  const bj::Tensor pe = check::random_tensor(rng, {x.shape()[0], 1, 2}, 0.5, 1.5, t);
  const bj::Tensor h = bj::tanh(bj::matmul(x, w));
  return bj::reshape(h, {x.shape()[0], 3, 2}) * pe + bj::reshape(bj::reduce_sum(x * x, {1}, true), {x.shape()[0], 1, 1});
}

template <class T>
bool same_values(const std::vector<T>& a, std::span<const T> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}
// batch_jacobian_into of `program` in T's dtype, into arrays at offsets 0
// and 1 element (the caller's array need not be aligned), equals
// batch_jacobian bitwise and writes nothing outside.
template <class T>
void check_into(std::mt19937_64& rng, std::int64_t b, const bj::JacobianOptions& o) {
  const bj::Tensor x =
      check::random_tensor(rng, {b, 5}, -1, 1, sizeof(T) == 8 ? bj::float64 : bj::float32);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = program(x);
  const auto ref = tape.batch_jacobian(y, x, o);
  REQUIRE(ref.has_value());
  const std::size_t n = static_cast<std::size_t>(ref->num_elements());
  for (std::size_t offset : {0u, 1u}) {
    std::vector<T> buf(n + 1, std::numeric_limits<T>::quiet_NaN());
    std::span<T> out(buf.data() + offset, n);
    CHECK(tape.batch_jacobian_into(y, x, out, o));
    CHECK(same_values(std::vector<T>(out.begin(), out.end()), ref->data<T>()));
    if (offset == 1) CHECK(std::isnan(buf[0]));  // nothing written outside
    else CHECK(std::isnan(buf[n]));
  }
}
}  // namespace

TEST_CASE("batch_jacobian_into equals batch_jacobian bitwise, at any alignment", "[engine][into]") {
  for (std::int64_t b : {1, 7, 8, 9, 33}) {
    for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse, bj::JacobianMode::automatic}) {
      for (std::optional<int> threads : {std::optional<int>{1}, std::optional<int>{}}) {
        INFO("batch " << b << ", mode " << static_cast<int>(mode) << ", threads " << threads.value_or(0));
        std::mt19937_64 rng(static_cast<std::uint64_t>(b));
        bj::JacobianOptions o;
        o.mode = mode;
        o.max_threads = threads;
        check_into<double>(rng, b, o);
        check_into<float>(rng, b, o);
      }
    }
  }
}

TEST_CASE("batch_jacobian_into: size and type are checked; errors keep the tape", "[engine][into][errors]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = x * x;
  std::vector<double> small(7), big(9), right(8);
  std::vector<float> wrong_type(8);
  CHECK_THROWS_AS(tape.batch_jacobian_into(y, x, std::span<double>(small)), bj::ValueError);
  CHECK_THROWS_AS(tape.batch_jacobian_into(y, x, std::span<double>(big)), bj::ValueError);
  CHECK_THROWS_WITH(tape.batch_jacobian_into(y, x, std::span<double>(small)), Catch::Contains("8"));
  CHECK_THROWS_AS(tape.batch_jacobian_into(y, x, std::span<float>(wrong_type)), bj::ValueError);
  CHECK_THROWS_WITH(tape.batch_jacobian_into(y, x, std::span<float>(wrong_type)), Catch::Contains("float64"));
  // An empty span is the wrong size too, and of the wrong type when it is.
  CHECK_THROWS_AS(tape.batch_jacobian_into(y, x, std::span<double>()), bj::ValueError);
  CHECK_THROWS_WITH(tape.batch_jacobian_into(y, x, std::span<double>()), Catch::Contains("8"));
  CHECK_THROWS_WITH(tape.batch_jacobian_into(y, x, std::span<float>()), Catch::Contains("float64"));
  bj::JacobianOptions bad;
  bad.parallel_iterations = 0;
  CHECK_THROWS_AS(tape.batch_jacobian_into(y, x, std::span<double>(right), bad), bj::ValueError);
  // None of that used up the non-persistent tape.
  CHECK(tape.batch_jacobian_into(y, x, std::span<double>(right)));
  CHECK(right == std::vector<double>{2, 0, 0, 4, 6, 0, 0, 8});
  CHECK_THROWS_AS(tape.batch_jacobian_into(y, x, std::span<double>(right)), bj::RuntimeError);
}

TEST_CASE("batch_jacobian_into: unconnected targets give false and zeros", "[engine][into]") {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  std::vector<double> out(8, 7.0);
  CHECK_FALSE(tape.batch_jacobian_into(bj::stop_gradient(x) * 2.0, x, std::span<double>(out)));
  CHECK(out == std::vector<double>(8, 0.0));
  std::fill(out.begin(), out.end(), 7.0);
  CHECK_FALSE(tape.batch_jacobian_into(bj::ones({2, 2}), x, std::span<double>(out)));
  CHECK(out == std::vector<double>(8, 0.0));
  // An empty batch: nothing to write.
  const bj::Tensor e = bj::zeros({0, 3});
  tape.watch(e);
  std::vector<double> none;
  CHECK(tape.batch_jacobian_into(bj::sin(e), e, std::span<double>(none)));
  // Even then the span's type must be the source's.
  CHECK_THROWS_AS(tape.batch_jacobian_into(bj::sin(e), e, std::span<float>()), bj::ValueError);
  CHECK_THROWS_WITH(tape.batch_jacobian_into(bj::sin(e), e, std::span<float>()), Catch::Contains("float64"));
}

namespace {
// Elementwise-and-mix programs with 8 and 15 entries per example: the output
// tiles into whole vectors or not.
bj::Tensor square_pairs(const bj::Tensor& x) { return bj::concat({x * x, bj::sin(x)}, 1); }  // [b,4] -> [b,8]
bj::Tensor odd_mix(const bj::Tensor& x) {  // [b,5] -> [b,3]
  return bj::slice(x, {0, 0}, {-1, 3}) * bj::exp(bj::slice(x, {0, 2}, {-1, 3}));
}
// 21 entries per example: at least a vector (8 or 16 lanes), and the rows of
// a block start at every lane of their lines.
bj::Tensor wide_rows(const bj::Tensor& x) {  // [b,3] -> [b,7]
  return bj::concat({x * x, bj::sin(x), bj::reduce_sum(x, {1}, true)}, 1);
}

// Runs body(f, n_in, dtype, mode) over the programs above (8, 15 and 21
// entries per example), both dtypes, the sparse form off and on, both modes.
template <class Body>
void each_output_case(Body body) {
  using Program = bj::Tensor (*)(const bj::Tensor&);
  for (auto [f, n_in] : {std::pair<Program, std::int64_t>{square_pairs, 4}, std::pair<Program, std::int64_t>{odd_mix, 5},
                         std::pair<Program, std::int64_t>{wide_rows, 3}}) {
    for (bj::DType dtype : {bj::float64, bj::float32}) {
      for (const char* sparse : {"0", "1"}) {
        for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
          INFO("inputs " << n_in << ", " << bj::dtype_name(dtype) << ", BATCHJAC_SPARSE=" << sparse
                         << ", mode " << static_cast<int>(mode));
          const check::ScopedEnv setting("BATCHJAC_SPARSE", sparse);
          body(f, n_in, dtype, mode);
        }
      }
    }
  }
}
}  // namespace

TEST_CASE("outputs larger than the caches (streamed) equal small calls bitwise", "[engine][into]") {
  // Beyond 8 MiB of output the engine streams it with non-temporal stores,
  // through paths of its own; every example must come out as it does alone.
  each_output_case([](auto f, std::int64_t n_in, bj::DType dtype, bj::JacobianMode mode) {
    const std::int64_t b = dtype == bj::float64 ? 90001 : 180001;  // > 8 MiB, a partial last block
    std::mt19937_64 rng(11);
    const bj::Tensor x = check::random_tensor(rng, {b, n_in}, -1, 1, dtype);
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    bj::JacobianOptions o;
    o.mode = mode;
    const bj::Tensor big = *tape.batch_jacobian(f(x), x, o);
    REQUIRE(big.num_elements() * static_cast<std::int64_t>(bj::dtype_size(dtype)) > (8 << 20));
    const std::vector<double> all = check::values(big);
    const std::int64_t per = big.num_elements() / b;
    // The first 9 examples, and the last 9, each batch on its own.
    for (std::int64_t first : {std::int64_t{0}, b - 9}) {
      const bj::Tensor xs = bj::slice(x, {first, 0}, {9, n_in});
      bj::GradientTape small;
      small.watch(xs);
      const std::vector<double> part = check::values(*small.batch_jacobian(f(xs), xs, o));
      CHECK(std::equal(part.begin(), part.end(), all.begin() + first * per));
    }
  });
}

TEST_CASE("outputs within the caches: full blocks from registers equal examples run alone", "[engine][into]") {
  // Below the streaming size a full block of whole examples goes from
  // registers to the caller's rows (aligned or not), a partial block through
  // staging rows: a batch of 37 must hold exactly what each example gives
  // alone (a batch of one, a partial block).
  each_output_case([](auto f, std::int64_t n_in, bj::DType dtype, bj::JacobianMode mode) {
    const std::int64_t b = 37;
    std::mt19937_64 rng(13);
    const bj::Tensor x = check::random_tensor(rng, {b, n_in}, -1, 1, dtype);
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = f(x);
    bj::JacobianOptions o;
    o.mode = mode;
    const std::size_t n = static_cast<std::size_t>(y.num_elements() * n_in);
    // The batch's Jacobian written at `offset` elements into the caller's
    // array; nothing outside it may change.
    auto into = [&](auto zero, std::size_t offset) {
      using T = decltype(zero);
      std::vector<T> buf(n + 1, T(-7));
      tape.batch_jacobian_into(y, x, std::span<T>(buf.data() + offset, n), o);
      CHECK(buf[offset == 0 ? n : 0] == T(-7));
      return std::vector<double>(buf.begin() + static_cast<std::ptrdiff_t>(offset),
                                 buf.begin() + static_cast<std::ptrdiff_t>(offset + n));
    };
    const std::int64_t per = static_cast<std::int64_t>(n) / b;
    for (std::size_t offset : {0u, 1u}) {
      INFO("offset " << offset);
      const std::vector<double> all = dtype == bj::float64 ? into(0.0, offset) : into(0.0f, offset);
      for (std::int64_t i = 0; i < b; ++i) {
        const bj::Tensor xi = bj::slice(x, {i, 0}, {1, n_in});
        bj::GradientTape one;
        one.watch(xi);
        const std::vector<double> alone = check::values(*one.batch_jacobian(f(xi), xi, o));
        if (!std::equal(alone.begin(), alone.end(), all.begin() + i * per)) FAIL_CHECK("example " << i);
      }
    }
  });
}

namespace {
// A block's lanes packed into rows of `size` entries by `packed` (a kernel
// table's lanes_to_packed_rows or its streaming twin), against the plain
// definition; dead tiles (live[t] == 0) hold zeros, as the engine promises.
// The destination starts `misalign` elements past a 64-byte boundary.
template <class T, class Packed>
void check_packed_rows(const batchjac::kernels::KernelTable<T>& table, Packed packed,
                       std::int64_t size, std::int64_t stride, bool with_live, std::int64_t misalign) {
  const std::int64_t W = table.width, n_tiles = (size + W - 1) / W;
  INFO("width " << W << ", size " << size << ", stride " << stride << ", live " << with_live
                << ", misaligned by " << misalign);
  std::mt19937_64 rng(static_cast<std::uint64_t>(size * 31 + stride));
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> src(static_cast<std::size_t>(size * stride));
  for (T& v : src) v = static_cast<T>(u(rng));
  std::vector<std::uint8_t> live(static_cast<std::size_t>(n_tiles), 1);
  if (with_live)
    for (std::int64_t t = 0; t < n_tiles; t += 2) {
      live[t] = 0;
      for (std::int64_t q = t * W; q < std::min(size, (t + 1) * W); ++q)
        std::fill_n(src.begin() + q * stride, stride, T(0));
    }
  // An aligned destination with a margin on both sides that must stay.
  const std::int64_t n = W * size, margin = 64;
  std::vector<T> mem(static_cast<std::size_t>(n + 2 * margin + 64), T(-7));
  T* dst = mem.data() + margin;
  while (reinterpret_cast<std::uintptr_t>(dst) % 64 != 0) ++dst;
  dst += misalign;
  packed(src.data(), size, stride, dst, with_live ? live.data() : nullptr);
  batchjac::kernels::stream_fence();
  for (std::int64_t l = 0; l < W; ++l)
    for (std::int64_t q = 0; q < size; ++q)
      if (dst[l * size + q] != src[q * stride + l]) FAIL_CHECK("example " << l << ", entry " << q);
  for (std::int64_t i = 1; i <= margin / 2; ++i) {
    CHECK(dst[-i] == T(-7));
    CHECK(dst[n - 1 + i] == T(-7));
  }
}
}  // namespace

TEST_CASE("lanes_to_packed_rows(_stream): a block's rows of any length, packed from registers", "[engine][into]") {
  namespace k = batchjac::kernels;
  auto each = [](const auto& table) {
    const std::int64_t W = table.width;
    for (std::int64_t size : {W, W + 1, 2 * W - 1, 2 * W, 3 * W + 5, std::int64_t{21}, std::int64_t{289}})
      for (std::int64_t stride : {W, 2 * W})
        for (bool with_live : {false, true}) {
          check_packed_rows(table, table.lanes_to_packed_rows_stream, size, stride, with_live, 0);
          // Cached stores need no alignment.
          for (std::int64_t misalign : {0, 1, 3})
            check_packed_rows(table, table.lanes_to_packed_rows, size, stride, with_live, misalign);
        }
  };
  each(k::simd_kernels<double>());
  each(k::simd_kernels<float>());
  each(k::scalar_kernels<double>());
}

namespace {
// A block's lanes to rows `dst_stride` apart by `rows` (a kernel table's
// lanes_to_rows or its streaming twin), against the plain definition: the
// `count` entries of each row, dead tiles (live[t] == 0, every third) as
// zeros, and nothing written between or around the rows.
template <class T, class Rows>
void check_rows(const batchjac::kernels::KernelTable<T>& table, Rows rows, std::int64_t count,
                std::int64_t dst_stride, bool with_live) {
  const std::int64_t W = table.width, n_tiles = (count + W - 1) / W;
  INFO("width " << W << ", count " << count << ", stride " << dst_stride << ", live " << with_live);
  std::mt19937_64 rng(static_cast<std::uint64_t>(count * 17 + dst_stride));
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> src(static_cast<std::size_t>(count * W));
  for (T& v : src) v = static_cast<T>(u(rng));
  std::vector<std::uint8_t> live(static_cast<std::size_t>(n_tiles), 1);
  if (with_live)
    for (std::int64_t t = 1; t < n_tiles; t += 3) {
      live[t] = 0;
      for (std::int64_t q = t * W; q < std::min(count, (t + 1) * W); ++q) std::fill_n(src.begin() + q * W, W, T(0));
    }
  const std::int64_t margin = 64, n = W * dst_stride;
  std::vector<T> mem(static_cast<std::size_t>(n + 2 * margin + 64), T(-7));
  T* dst = mem.data() + margin;
  while (reinterpret_cast<std::uintptr_t>(dst) % 64 != 0) ++dst;
  rows(src.data(), count, W, dst, dst_stride, with_live ? live.data() : nullptr);
  batchjac::kernels::stream_fence();
  for (std::int64_t l = 0; l < W; ++l) {
    for (std::int64_t q = 0; q < count; ++q)
      if (dst[l * dst_stride + q] != src[q * W + l]) FAIL_CHECK("example " << l << ", entry " << q);
    for (std::int64_t q = count; q < dst_stride; ++q)
      if (dst[l * dst_stride + q] != T(-7)) FAIL_CHECK("example " << l << ", past the row at " << q);
  }
  for (std::int64_t i = 1; i <= margin / 2; ++i) CHECK(dst[-i] == T(-7));
}
}  // namespace

TEST_CASE("lanes_to_rows(_stream): a block's rows, tiles in pairs or alone", "[engine][into]") {
  // The streaming kernel writes two tiles per row at a time (an even and an
  // odd count of tiles leave a tile alone or not; dead tiles on either side).
  namespace k = batchjac::kernels;
  auto each = [](const auto& table) {
    const std::int64_t W = table.width;
    for (std::int64_t count : {W, 2 * W, 3 * W, 4 * W, 7 * W})
      for (std::int64_t pad : {std::int64_t{0}, W})
        for (bool with_live : {false, true}) {
          check_rows(table, table.lanes_to_rows_stream, count, count + pad, with_live);
          check_rows(table, table.lanes_to_rows, count, count + pad, with_live);
        }
  };
  each(k::simd_kernels<double>());
  each(k::simd_kernels<float>());
}

namespace {
// value_and_batch_jacobian_into of `program`: its value is reading the
// target alone, its Jacobian batch_jacobian_into's, bit for bit, under
// options `o`.
template <class T>
void check_value_and_into(std::int64_t b, const bj::JacobianOptions& o) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(b) + 11);
  const bj::Tensor x = check::random_tensor(rng, {b, 5}, -1, 1, sizeof(T) == 8 ? bj::float64 : bj::float32);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = program(x), z = program(x);
  std::vector<T> value(static_cast<std::size_t>(b * 6), T(-7)), jac(static_cast<std::size_t>(b * 30), T(-7));
  std::vector<T> alone(jac.size());
  CHECK(tape.value_and_batch_jacobian_into(y, x, value, jac, o));
  CHECK(tape.batch_jacobian_into(z, x, alone, o));
  CHECK(jac == alone);
  const auto read = z.to_vector<T>();  // computed on its own
  CHECK(value == read);
}
}  // namespace

TEST_CASE("value_and_batch_jacobian_into: every option, the reads' bits", "[engine][into][value]") {
  for (std::int64_t b : {0, 1, 9, 40}) {
    for (const bj::JacobianOptions& o :
         check::options({.modes = {bj::JacobianMode::forward, bj::JacobianMode::reverse, bj::JacobianMode::automatic},
                         .parallel_iterations = {std::nullopt, 1, 4},
                         .pfor = {true, false},
                         .max_threads = {1, 2}})) {
      INFO("batch " << b << ", " << check::describe(o));
      check_value_and_into<double>(b, o);
      check_value_and_into<float>(b, o);
    }
  }
}

TEST_CASE("value_and_batch_jacobian_into: a source of no elements still gives the value",
          "[engine][into][value]") {
  const bj::Tensor x = bj::zeros({6, 0});
  std::mt19937_64 rng(3);
  const bj::Tensor c = check::random_tensor(rng, {6, 2}, -1, 1);
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    tape.watch(x);
    const bj::Tensor y = bj::exp(c) + bj::reduce_sum(x, {1}, true);  // [6, 2]
    bj::JacobianOptions o;
    o.mode = mode;
    std::vector<double> value(12, -1.0);
    std::vector<double> jac;  // 6 x 2 x 0
    tape.value_and_batch_jacobian_into(y, x, value, jac, o);
    const auto pause = tape.stop_recording();
    const auto want = (bj::exp(c) + bj::reduce_sum(x, {1}, true)).to_vector<double>();
    for (std::size_t i = 0; i < value.size(); ++i)
      CHECK(value[i] == Approx(want[i]).epsilon(1e-14));
  }
}

TEST_CASE("a Jacobian beside values computed on other threads keeps its bits", "[engine][value]") {
  // Tasks of a Jacobian and of deferred values share the arena's workers;
  // a worker between them must not reuse a chunk's seed a value pass overwrote.
  std::mt19937_64 rng(21);
  const bj::Tensor x = check::random_tensor(rng, {256, 5}, -1, 1);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = program(x);
  tape.end_recording();
  const bj::Tensor want = *tape.batch_jacobian(y, x);
  std::atomic<bool> stop{false};
  std::thread values([&] {
    while (!stop) {
      bj::GradientTape t;
      t.watch(x);
      (void)bj::tanh(program(x) * 2.0).to_vector<double>();
    }
  });
  bool same = true;
  for (int i = 0; i < 40; ++i) same = same && check::same_bits(*tape.batch_jacobian(y, x), want);
  stop = true;
  values.join();
  CHECK(same);
}
