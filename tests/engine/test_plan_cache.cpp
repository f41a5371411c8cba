// The plan cache (engine/plan_cache.hpp): a program recorded again runs the
// plan of its first call on its own data, bit for bit what planning afresh
// gives; whatever planning reads is part of the key; the cache stays small
// and is shared safely by threads.
#include "engine/plan_cache.hpp"
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <malloc.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

namespace bj = batchjac;
namespace engine = batchjac::engine;
using check::with_mode;

namespace {

constexpr std::int64_t kIn = 5, kOut = 4;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

// Bytes the whole process has allocated and not freed.
std::int64_t malloced_bytes() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return static_cast<std::int64_t>(__sanitizer_get_current_allocated_bytes());
#else
  const struct mallinfo2 m = mallinfo2();
  return static_cast<std::int64_t>(m.uordblks + m.hblkhd);
#endif
}

// Bytes the whole process has allocated and not freed, less the free
// buffers batchjac's memory cache keeps.
std::int64_t allocated_bytes() {
  return malloced_bytes() - static_cast<std::int64_t>(bj::memory_cache_stats().cached_bytes);
}

std::vector<double> wave(std::int64_t n, double phase) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = 0.8 * std::sin(0.37 * double(i) + phase);
  return v;
}

// Records y = tanh(x W) * c + sin(x) S on a fresh tape, W and S shared, c
// per example, all from `phase` (W from `w_phase`), and returns its
// batch_jacobian [b, kOut, kIn].
bj::Tensor recorded(std::int64_t b, double phase, const bj::JacobianOptions& options, double w_phase = 0.0) {
  const bj::Tensor x = bj::constant(wave(b * kIn, phase), {b, kIn});
  const bj::Tensor w = bj::constant(wave(kIn * kOut, w_phase + 1.0), {kIn, kOut});
  const bj::Tensor s = bj::constant(wave(kIn * kOut, 2.0), {kIn, kOut});
  const bj::Tensor c = bj::constant(wave(b * kOut, phase + 3.0), {b, kOut});
  bj::GradientTape tape;
  tape.watch(x);
  const bj::Tensor y = bj::tanh(bj::matmul(x, w)) * c + bj::matmul(bj::sin(x), s);
  return *tape.batch_jacobian(y, x, options);
}

// The same call with no plan kept from before.
bj::Tensor planned_afresh(std::int64_t b, double phase, const bj::JacobianOptions& options,
                          double w_phase = 0.0) {
  engine::clear_plan_cache();
  return recorded(b, phase, options, w_phase);
}

}  // namespace

TEST_CASE("a program recorded again runs the kept plan on its own data", "[engine][cache]") {
  for (auto mode : {bj::JacobianMode::automatic, bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    INFO("mode " << static_cast<int>(mode));
    const bj::JacobianOptions o = with_mode(mode);
    const bj::Tensor first = planned_afresh(240, 0.0, o);
    CHECK(engine::plan_cache_stats().misses == 1);
    CHECK(engine::plan_cache_stats().entries == 1);
    // Other source values, per-example constants and batch sizes (automatic
    // keeps its large calls' plan for large calls: b * 20 entries > 4096).
    std::vector<std::int64_t> batches{240, 300, 777};
    if (mode != bj::JacobianMode::automatic) batches.push_back(9);
    for (std::int64_t b : batches) {
      INFO("b = " << b);
      const bj::Tensor again = recorded(b, 0.5 + double(b), o);
      CHECK(engine::plan_cache_stats().misses == 1);
      const bj::Tensor fresh = planned_afresh(b, 0.5 + double(b), o);
      CHECK(check::same_bits(again, fresh));
      CHECK_FALSE(check::same_bits(again, first));
      recorded(240, 0.0, o);  // keeps the plan for the next b
    }
    // The kept plan's numbers are still right: forward against reverse.
    check::check_close(recorded(300, 1.5, with_mode(bj::JacobianMode::forward)),
                       recorded(300, 1.5, with_mode(bj::JacobianMode::reverse)), 1e-12, 1e-14,
                       "forward vs reverse, plans kept");
  }
}

TEST_CASE("a shared constant's numbers are part of the key", "[engine][cache]") {
  const bj::JacobianOptions o = with_mode(bj::JacobianMode::forward);
  planned_afresh(16, 0.0, o);
  const bj::Tensor other_w = recorded(16, 0.0, o, /*w_phase=*/0.25);
  CHECK(engine::plan_cache_stats().misses == 2);
  CHECK(engine::plan_cache_stats().entries == 2);
  CHECK(check::same_bits(other_w, planned_afresh(16, 0.0, o, 0.25)));
}

TEST_CASE("options that shape a plan are part of the key; threads are not", "[engine][cache]") {
  struct Setting {
    std::optional<std::int64_t> parallel_iterations;
    bool pfor = true;
    const char* sparse = "";  // BATCHJAC_SPARSE
  };
  const std::vector<Setting> settings = {{}, {1}, {3}, {{}, false}, {{}, true, "0"}, {{}, true, "1"}};
  auto options = [](const Setting& s, bj::JacobianMode mode, std::optional<int> threads) {
    bj::JacobianOptions o = with_mode(mode);
    o.parallel_iterations = s.parallel_iterations;
    o.experimental_use_pfor = s.pfor;
    o.max_threads = threads;
    return o;
  };
  for (auto mode : {bj::JacobianMode::forward, bj::JacobianMode::reverse}) {
    INFO("mode " << static_cast<int>(mode));
    engine::clear_plan_cache();
    for (std::size_t i = 0; i < settings.size(); ++i) {
      const check::ScopedEnv sparse("BATCHJAC_SPARSE", settings[i].sparse);
      recorded(40, 0.0, options(settings[i], mode, {}));
      CHECK(engine::plan_cache_stats().misses == i + 1);
    }
    std::vector<bj::Tensor> kept;
    for (const Setting& s : settings)
      for (int threads : {1, 2}) {
        const check::ScopedEnv sparse("BATCHJAC_SPARSE", s.sparse);
        kept.push_back(recorded(40, 0.3, options(s, mode, threads)));
      }
    CHECK(engine::plan_cache_stats().misses == settings.size());
    CHECK(engine::plan_cache_stats().hits == kept.size());
    std::size_t k = 0;
    for (const Setting& s : settings)
      for (int threads : {1, 2}) {
        const check::ScopedEnv sparse("BATCHJAC_SPARSE", s.sparse);
        CHECK(check::same_bits(kept[k++], planned_afresh(40, 0.3, options(s, mode, threads))));
      }
  }
}

TEST_CASE("the cache keeps the 16 programs used last", "[engine][cache]") {
  // sin(x) * 2 of [b, n]: a program per n.
  auto call = [](std::int64_t n) {
    const bj::Tensor x = bj::constant(wave(3 * n, 0.0), {3, n});
    bj::GradientTape tape;
    tape.watch(x);
    return *tape.batch_jacobian(bj::sin(x) * bj::constant(2.0), x);
  };
  engine::clear_plan_cache();
  for (std::int64_t n = 1; n <= 17; ++n) call(n);
  CHECK(engine::plan_cache_stats().entries == 16);
  CHECK(engine::plan_cache_stats().misses == 17);
  call(17);  // kept
  CHECK(engine::plan_cache_stats().misses == 17);
  call(2);  // the least recently used then, kept; n = 1 was dropped
  CHECK(engine::plan_cache_stats().misses == 17);
  call(1);
  CHECK(engine::plan_cache_stats().misses == 18);
  CHECK(engine::plan_cache_stats().entries == 16);
}

TEST_CASE("threads calling at once share kept plans", "[engine][cache]") {
  const bj::JacobianOptions o = with_mode(bj::JacobianMode::automatic);
  constexpr int kThreads = 3, kCalls = 8;
  std::vector<bj::Tensor> want;
  for (int i = 0; i < kThreads * kCalls; ++i) want.push_back(planned_afresh(40 + i, 0.1 * i, o));
  engine::clear_plan_cache();
  std::vector<std::vector<bj::Tensor>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        const int i = t * kCalls + c;
        got[static_cast<std::size_t>(t)].push_back(recorded(40 + i, 0.1 * i, o));
      }
    });
  for (auto& th : threads) th.join();
  for (int i = 0; i < kThreads * kCalls; ++i)
    CHECK(check::same_bits(got[static_cast<std::size_t>(i / kCalls)][static_cast<std::size_t>(i % kCalls)],
                           want[static_cast<std::size_t>(i)]));
  const engine::PlanCacheStats s = engine::plan_cache_stats();
  CHECK(s.entries == 1);
  CHECK(s.hits + s.misses == std::uint64_t{kThreads * kCalls});
  CHECK(s.misses <= std::uint64_t{kThreads});
}

TEST_CASE("jacobian and gradient keep plans too", "[engine][cache]") {
  // Whole-tensor programs (one lane): y = tanh(x W) of x [3, 5].
  auto call = [](double phase, bool gradient) {
    const bj::Tensor x = bj::constant(wave(3 * kIn, phase), {3, kIn});
    const bj::Tensor w = bj::constant(wave(kIn * kOut, 1.0), {kIn, kOut});
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor y = bj::tanh(bj::matmul(x, w));
    return gradient ? *tape.gradient(y, x) : *tape.jacobian(y, x);
  };
  for (bool gradient : {false, true}) {
    INFO((gradient ? "gradient" : "jacobian"));
    engine::clear_plan_cache();
    call(0.0, gradient);
    const bj::Tensor kept = call(0.7, gradient);
    CHECK(engine::plan_cache_stats().hits == 1);
    CHECK(engine::plan_cache_stats().misses == 1);
    engine::clear_plan_cache();
    CHECK(check::same_bits(kept, call(0.7, gradient)));
    CHECK_FALSE(check::same_bits(kept, call(0.0, gradient)));
  }
}

TEST_CASE("the cache bounds the shared constants it keeps", "[engine][cache]") {
  // y = x W, x [1, 2], W [2, n] shared: a key of about 16 n bytes.
  auto call = [](std::int64_t n, double phase) {
    const bj::Tensor x = bj::constant(wave(2, 0.0), {1, 2});
    bj::GradientTape tape;
    tape.watch(x);
    return *tape.batch_jacobian(bj::matmul(x, bj::constant(wave(2 * n, phase), {2, n})), x);
  };
  engine::clear_plan_cache();
  call(300'000, 0.0);  // 4.8 MB of constants: planned per call, not kept
  call(300'000, 0.0);
  CHECK(engine::plan_cache_stats().misses == 2);
  CHECK(engine::plan_cache_stats().entries == 0);
  for (int i = 0; i < 9; ++i) call(250'000, 0.1 * i);  // 4.0 MB each; 32 MiB in all fit 8
  CHECK(engine::plan_cache_stats().entries == 8);
  call(250'000, 0.8);  // the last one is kept
  CHECK(engine::plan_cache_stats().misses == 11);
  call(250'000, 0.0);  // the first one was dropped
  CHECK(engine::plan_cache_stats().misses == 12);
}

TEST_CASE("the cache holds what it counts, at most 32 MiB", "[engine][cache]") {
  // y = x W, x [1, 2], W [2, n] shared (16 n bytes), W dropped after each
  // call: what stays allocated is what the cache keeps.
  auto call = [](std::int64_t n, double phase) {
    const bj::Tensor x = bj::constant(wave(2, 0.0), {1, 2});
    bj::GradientTape tape;
    tape.watch(x);
    return *tape.batch_jacobian(bj::matmul(x, bj::constant(wave(2 * n, phase), {2, n})), x);
  };
  call(250'000, 9.0);  // the engine's per-thread buffers grow to this size once
  engine::clear_plan_cache();
  const std::int64_t before = allocated_bytes();
  for (int i = 0; i < 9; ++i) call(250'000, 0.1 * i);  // 4.0 MB of constants each
  const std::int64_t held = allocated_bytes() - before;
  const engine::PlanCacheStats s = engine::plan_cache_stats();
  INFO("held " << held << " bytes, counted " << s.bytes);
  CHECK(s.entries == 8);
  CHECK(s.bytes <= std::size_t{32} << 20);
  CHECK(held <= static_cast<std::int64_t>(s.bytes) + (std::int64_t{1} << 20));
  engine::clear_plan_cache();
  CHECK(allocated_bytes() - before < std::int64_t{1} << 20);
}
