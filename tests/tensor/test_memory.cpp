// Tensor memory: the cache of freed buffers, and views of the caller's arrays.
#include "support/check.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

namespace bj = batchjac;

namespace {

const void* address(const bj::Tensor& t) { return t.impl().bytes(); }

// Restores the cache's limit when a test ends.
struct LimitGuard {
  std::size_t saved = bj::memory_cache_stats().limit;
  ~LimitGuard() { bj::set_memory_cache_limit(saved); }
};

std::vector<double> wave(std::int64_t n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.5 * std::sin(0.7 * double(i) + 0.3);
  return v;
}

}  // namespace

TEST_CASE("a freed buffer is handed to the next request it fits", "[tensor][memory]") {
  const LimitGuard guard;
  bj::set_memory_cache_limit(std::size_t{64} << 20);
  bj::release_memory_cache();
  const void* first = nullptr;
  {
    const bj::Tensor a = bj::zeros({1 << 17});  // 1 MiB
    first = address(a);
    CHECK(bj::memory_cache_stats().cached_bytes == 0);
  }
  CHECK(bj::memory_cache_stats().cached_bytes == std::size_t{1} << 20);
  CHECK(bj::memory_cache_stats().cached_buffers == 1);
  const auto hits = bj::memory_cache_stats().hits;
  {
    const bj::Tensor b = bj::ones({(1 << 17) - 100});  // a little smaller: fits
    CHECK(address(b) == first);
    CHECK(b.at({5}) == 1.0);
    CHECK(bj::memory_cache_stats().hits == hits + 1);
    CHECK(bj::memory_cache_stats().cached_bytes == 0);
  }
  {
    const bj::Tensor c = bj::zeros({1 << 15});  // a quarter: too small to take it
    CHECK(address(c) != first);
  }
  bj::release_memory_cache();
  CHECK(bj::memory_cache_stats().cached_bytes == 0);
  CHECK(bj::memory_cache_stats().cached_buffers == 0);
}

TEST_CASE("a larger cached block goes back at its own size", "[tensor][memory]") {
  const LimitGuard guard;
  bj::set_memory_cache_limit(std::size_t{64} << 20);
  bj::release_memory_cache();
  const std::size_t big = std::size_t{5} << 18;  // 1.25 MiB
  { const bj::Tensor a = bj::zeros({static_cast<std::int64_t>(big / 8)}); }
  REQUIRE(bj::memory_cache_stats().cached_bytes == big);
  { const bj::Tensor b = bj::zeros({1 << 17}); }  // 1 MiB: takes the 1.25 MiB block
  CHECK(bj::memory_cache_stats().cached_bytes == big);
  CHECK(bj::memory_cache_stats().cached_buffers == 1);
  bj::release_memory_cache();
}

TEST_CASE("small buffers are not cached", "[tensor][memory]") {
  const LimitGuard guard;
  bj::release_memory_cache();
  { const bj::Tensor a = bj::zeros({1000}); }
  CHECK(bj::memory_cache_stats().cached_bytes == 0);
}

TEST_CASE("the cache holds at most its limit, least recently freed out first", "[tensor][memory]") {
  const LimitGuard guard;
  bj::release_memory_cache();
  bj::set_memory_cache_limit(std::size_t{3} << 20);
  const void* first = nullptr;
  const void* third = nullptr;
  {
    const bj::Tensor a = bj::zeros({1 << 17}), b = bj::zeros({1 << 17});
    const bj::Tensor c = bj::zeros({1 << 17}), d = bj::zeros({1 << 17});
    first = address(a);
    third = address(c);
    const bj::Tensor big = bj::zeros({1 << 19});  // 4 MiB: more than the limit, never kept
  }  // freed d, c, b, a (reverse order); a, b, c fit
  CHECK(bj::memory_cache_stats().cached_bytes == std::size_t{3} << 20);
  CHECK(bj::memory_cache_stats().cached_buffers == 3);
  bj::set_memory_cache_limit(std::size_t{2} << 20);  // c, freed before b and a, goes first
  CHECK(bj::memory_cache_stats().cached_bytes == std::size_t{2} << 20);
  {
    const bj::Tensor x = bj::zeros({1 << 17}), y = bj::zeros({1 << 17});
    CHECK(address(x) != third);
    CHECK(address(y) != third);
    CHECK((address(x) == first || address(y) == first));
  }
  bj::set_memory_cache_limit(0);  // off: every buffer goes back at once
  CHECK(bj::memory_cache_stats().cached_bytes == 0);
  { const bj::Tensor a = bj::zeros({1 << 17}); }
  CHECK(bj::memory_cache_stats().cached_bytes == 0);
}

TEST_CASE("a loop of Jacobians takes its results from the cache", "[tensor][memory]") {
  const LimitGuard guard;
  bj::set_memory_cache_limit(std::size_t{256} << 20);
  const std::vector<double> xs = wave(4096 * 16);
  auto call = [&] {
    const bj::Tensor x = bj::view(xs, {4096, 16});
    bj::GradientTape tape;
    tape.watch(x);
    return *tape.batch_jacobian(x * x, x);  // 8 MiB
  };
  const bj::Tensor want = call();
  (void)call();  // the first result freed: from now on one is in the cache
  const auto before = bj::memory_cache_stats();
  for (int i = 0; i < 5; ++i) CHECK(check::same_bits(call(), want));
  const auto after = bj::memory_cache_stats();
  CHECK(after.misses == before.misses);  // nothing of 64 KiB or more came from the system
  CHECK(after.hits >= before.hits + 5);
}

TEST_CASE("BATCHJAC_MEMORY_CACHE sets the limit", "[tensor][memory]") {
  // ctest runs this case again with the variable set (tests/CMakeLists.txt).
  const char* text = std::getenv("BATCHJAC_MEMORY_CACHE");
  const std::size_t physical = static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) *
                               static_cast<std::size_t>(sysconf(_SC_PAGE_SIZE));
  const std::size_t limit = bj::memory_cache_stats().limit;
  if (text == nullptr) CHECK(limit == std::min(physical, std::size_t{1} << 47) / 8);
  else if (std::string(text) == "0" || std::string(text) == "off") CHECK(limit == 0);
  else if (std::string(text) == "3M") CHECK(limit == std::size_t{3} << 20);
  else if (std::string(text) == "-1" || std::string(text) == "12X" || std::string(text) == "99999999999G")
    CHECK(limit == std::min(physical, std::size_t{1} << 47) / 8);  // ignored, with a warning
  else FAIL("unexpected BATCHJAC_MEMORY_CACHE=" << text);
}

TEST_CASE("a view reads the caller's memory in place", "[tensor][view]") {
  std::vector<double> d = {1, 2, 3, 4, 5, 6};
  const bj::Tensor v = bj::view(d, {2, 3});
  CHECK(v.dtype() == bj::float64);
  CHECK(v.shape() == bj::Shape{2, 3});
  CHECK(v.data<double>().data() == d.data());  // no copy
  d[4] = 50;
  CHECK(v.at({1, 1}) == 50);  // the caller's numbers, as they are now
  const std::vector<float> f = {1, 2};
  const bj::Tensor vf = bj::view(f, {2, 1});
  CHECK(vf.dtype() == bj::float32);
  CHECK(vf.data<float>().data() == f.data());
  CHECK_THROWS_AS(bj::view(d, {4, 2}), bj::ValueError);
  CHECK_THROWS_AS(bj::view(d, {-6}), bj::ValueError);
  const bj::Tensor empty = bj::view(std::span<const double>(), {0, 3});
  CHECK(empty.num_elements() == 0);
  CHECK(check::same_bits(bj::reduce_sum(empty, {0}), bj::zeros({3})));
}

TEST_CASE("a view source gives the Jacobian a copy gives", "[tensor][view]") {
  const std::vector<double> xs = wave(37 * 5);
  const bj::Tensor copy = bj::constant(xs, {37, 5});
  auto jac = [](const bj::Tensor& x) {
    bj::GradientTape tape;
    tape.watch(x);
    return *tape.batch_jacobian(bj::tanh(x) * bj::reduce_sum(x * x, {1}, true), x);
  };
  CHECK(check::same_bits(jac(bj::view(xs, {37, 5})), jac(copy)));
}

TEST_CASE("a kept plan never points into a view's memory", "[tensor][view]") {
  // y = x W with W a view: the plan kept for the program copies W. Freeing
  // the caller's W and calling again with other weights reads no freed
  // memory (AddressSanitizer would say) and gives the new weights' Jacobian.
  const bj::Tensor x = bj::constant(wave(3 * 4), {3, 4});
  auto call = [&](const std::vector<double>& w) {
    bj::GradientTape tape;
    tape.watch(x);
    const bj::Tensor W = bj::view(w, {4, 2});
    return *tape.batch_jacobian(bj::sin(bj::matmul(x, W)), x);
  };
  auto weights = [](double phase) {
    std::vector<double> w(8);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.4 * double(i) + phase);
    return w;
  };
  bj::Tensor first;
  {
    const auto w = weights(0.0);
    first = call(w);
  }
  {
    const auto w = weights(1.0);
    const bj::Tensor second = call(w);
    CHECK_FALSE(check::same_bits(first, second));
    CHECK(check::same_bits(second, call(std::vector<double>(w))));
  }
  CHECK(check::same_bits(first, call(weights(0.0))));
}
