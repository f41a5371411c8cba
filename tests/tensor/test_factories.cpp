// Tensors: factories, accessors, shapes, dtypes and identity.
#include "support/check.hpp"

#include <batchjac/batchjac.hpp>

#include <catch2/catch.hpp>

#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace bj = batchjac;

TEST_CASE("Shape: construction, access, comparison, printing", "[tensor]") {
  const bj::Shape s{2, 3, 4};
  CHECK(s.size() == 3);
  CHECK(s[0] == 2);
  CHECK(s[2] == 4);
  CHECK(s.num_elements() == 24);
  CHECK(s == bj::Shape(std::vector<std::int64_t>{2, 3, 4}));
  CHECK(s != bj::Shape{2, 3});
  std::vector<std::int64_t> dims;
  for (auto d : s) dims.push_back(d);
  CHECK(dims == std::vector<std::int64_t>{2, 3, 4});
  CHECK(s.dims() == dims);
  CHECK(s.to_string() == "[2, 3, 4]");
  std::ostringstream os;
  os << s;
  CHECK(os.str() == "[2, 3, 4]");
  CHECK(bj::Shape{}.num_elements() == 1);
  CHECK(bj::Shape{}.to_string() == "[]");
  CHECK(bj::Shape{3, 0}.num_elements() == 0);
  bj::Shape m{1, 2};
  m[1] = 5;
  CHECK(m == bj::Shape{1, 5});
}

TEST_CASE("DType names and sizes", "[tensor]") {
  CHECK(bj::dtype_name(bj::float32) == "float32");
  CHECK(bj::dtype_name(bj::float64) == "float64");
  CHECK(bj::dtype_name(bj::boolean) == "bool");
  CHECK(bj::dtype_size(bj::float32) == 4);
  CHECK(bj::dtype_size(bj::float64) == 8);
  CHECK(bj::dtype_size(bj::boolean) == 1);
  CHECK(bj::is_floating(bj::float32));
  CHECK_FALSE(bj::is_floating(bj::boolean));
  static_assert(std::is_base_of_v<std::invalid_argument, bj::ValueError>);
  static_assert(std::is_base_of_v<std::runtime_error, bj::RuntimeError>);
}

TEST_CASE("constant from nested lists, ranks 0 to 4", "[tensor]") {
  const bj::Tensor s = bj::constant(2.5);
  CHECK(s.shape() == bj::Shape{});
  CHECK(s.rank() == 0);
  CHECK(s.dtype() == bj::float64);
  CHECK(s.num_elements() == 1);
  CHECK(s.at({}) == 2.5);

  const bj::Tensor v = bj::constant({1., 2., 3.}, bj::float32);
  CHECK(v.shape() == bj::Shape{3});
  CHECK(v.dtype() == bj::float32);
  CHECK(v.to_vector<float>() == std::vector<float>{1, 2, 3});

  const bj::Tensor m = bj::constant({{1., 2., 3.}, {4., 5., 6.}});
  CHECK(m.shape() == bj::Shape{2, 3});
  CHECK(m.at({1, 0}) == 4.0);
  CHECK(check::values(m) == std::vector<double>{1, 2, 3, 4, 5, 6});

  const bj::Tensor t = bj::constant({{{1., 2.}, {3., 4.}}, {{5., 6.}, {7., 8.}}, {{9., 10.}, {11., 12.}}});
  CHECK(t.shape() == bj::Shape{3, 2, 2});
  CHECK(t.at({2, 1, 0}) == 11.0);

  const bj::Tensor q = bj::constant({{{{1., 2., 3.}}, {{4., 5., 6.}}}}, bj::float32);
  CHECK(q.shape() == bj::Shape{1, 2, 1, 3});
  CHECK(q.rank() == 4);
  CHECK(q.at({0, 1, 0, 2}) == 6.0);
  CHECK(q.to_vector<double>() == std::vector<double>{1, 2, 3, 4, 5, 6});

  const bj::Tensor b = bj::constant({{0., 2.}, {-1., 0.}}, bj::boolean);
  CHECK(b.dtype() == bj::boolean);
  CHECK(b.to_vector<bool>() == std::vector<bool>{false, true, true, false});

  CHECK(bj::constant(bj::Init1{}).shape() == bj::Shape{0});
}

TEST_CASE("constant: ragged lists raise ValueError", "[tensor][errors]") {
  CHECK_THROWS_AS(bj::constant({{1., 2.}, {3.}}), bj::ValueError);
  CHECK_THROWS_WITH(bj::constant({{1., 2.}, {3.}}), Catch::Contains("rectangular"));
  CHECK_THROWS_AS(bj::constant(bj::Init2{{}, {1.}}), bj::ValueError);
  CHECK_THROWS_AS(bj::constant({{{1., 2.}}, {{3., 4.}, {5., 6.}}}), bj::ValueError);
  CHECK_THROWS_AS(bj::constant({{{1., 2.}}, {{3.}}}), bj::ValueError);
  CHECK_THROWS_AS(bj::constant(bj::Init4{{{{1.}}}, {{{2.}, {3.}}}}), bj::ValueError);
  CHECK_THROWS_AS(bj::constant({{{{1., 2.}}}, {{{3.}}}}), bj::ValueError);
}

TEST_CASE("constant from a span and a Shape", "[tensor]") {
  const std::vector<double> d{1, 2, 3, 4, 5, 6};
  const bj::Tensor a = bj::constant(d, bj::Shape{2, 3});
  CHECK(a.dtype() == bj::float64);
  CHECK(a.shape() == bj::Shape{2, 3});
  CHECK(check::values(a) == d);
  const bj::Tensor a32 = bj::constant(std::span<const double>(d), bj::Shape{3, 2}, bj::float32);
  CHECK(a32.dtype() == bj::float32);
  CHECK(a32.at({2, 1}) == 6.0);

  const std::vector<float> f{0.5f, 1.5f};
  const bj::Tensor b = bj::constant(f, bj::Shape{2, 1});
  CHECK(b.dtype() == bj::float32);  // float data defaults to float32
  CHECK(b.to_vector<float>() == f);
  const bj::Tensor b64 = bj::constant(std::span<const float>(f), bj::Shape{2}, bj::float64);
  CHECK(b64.dtype() == bj::float64);
  CHECK(b64.to_vector<double>() == std::vector<double>{0.5, 1.5});

  const bj::Tensor scalar = bj::constant(std::vector<double>{7.0}, bj::Shape{});
  CHECK(scalar.at({}) == 7.0);

  CHECK_THROWS_AS(bj::constant(d, bj::Shape{4, 2}), bj::ValueError);
  CHECK_THROWS_WITH(bj::constant(d, bj::Shape{4, 2}), Catch::Contains("[4, 2]") && Catch::Contains("6"));
  CHECK_THROWS_AS(bj::constant(f, bj::Shape{3}), bj::ValueError);
  CHECK_THROWS_AS(bj::constant(std::vector<double>{1, 2}, bj::Shape{-1, -2}), bj::ValueError);
}

TEST_CASE("zeros, ones, fill", "[tensor]") {
  const bj::Tensor z = bj::zeros({2, 3});
  CHECK(z.dtype() == bj::float64);
  CHECK(check::values(z) == std::vector<double>(6, 0.0));
  const bj::Tensor o = bj::ones({4}, bj::float32);
  CHECK(o.dtype() == bj::float32);
  CHECK(o.to_vector<float>() == std::vector<float>(4, 1.0f));
  const bj::Tensor f = bj::fill({2, 2}, -1.5, bj::float32);
  CHECK(f.to_vector<float>() == std::vector<float>(4, -1.5f));
  CHECK(bj::fill({3}, 2.0, bj::boolean).to_vector<bool>() == std::vector<bool>(3, true));
  CHECK(bj::zeros({2}, bj::boolean).to_vector<bool>() == std::vector<bool>(2, false));
  CHECK(bj::zeros({}).shape() == bj::Shape{});
  CHECK(bj::zeros({0, 5}).num_elements() == 0);
  CHECK(bj::ones({3, 0, 2}).shape() == bj::Shape{3, 0, 2});
  CHECK_THROWS_AS(bj::zeros({-1, 2}), bj::ValueError);
  CHECK_THROWS_AS(bj::fill({2, -3}, 1.0), bj::ValueError);
}

TEST_CASE("data<T>, to_vector<T>, at", "[tensor]") {
  const bj::Tensor x = bj::constant({{1.5, -2.}, {3., 4.25}}, bj::float32);
  const auto span = x.data<float>();
  CHECK(span.size() == 4);
  CHECK(span[1] == -2.0f);
  CHECK_THROWS_AS(x.data<double>(), bj::ValueError);
  CHECK_THROWS_WITH(x.data<double>(), Catch::Contains("float64") && Catch::Contains("float32"));
  CHECK_THROWS_AS(x.data<bool>(), bj::ValueError);
  CHECK_THROWS_AS(bj::ones({2}).data<float>(), bj::ValueError);
  CHECK(bj::ones({2}, bj::boolean).data<bool>().size() == 2);

  CHECK(x.to_vector<double>() == std::vector<double>{1.5, -2, 3, 4.25});
  CHECK(x.to_vector<bool>() == std::vector<bool>{true, true, true, true});
  CHECK(bj::constant({0.7, 0.0}).to_vector<float>() == std::vector<float>{0.7f, 0.0f});

  CHECK(x.at({1, 1}) == 4.25);
  CHECK(x.at({0, 1}) == -2.0);
  CHECK_THROWS_AS(x.at({2, 0}), bj::ValueError);
  CHECK_THROWS_AS(x.at({0, 2}), bj::ValueError);
  CHECK_THROWS_AS(x.at({-1, 0}), bj::ValueError);
  CHECK_THROWS_AS(x.at({0}), bj::ValueError);
  CHECK_THROWS_AS(x.at({0, 0, 0}), bj::ValueError);
  CHECK_THROWS_WITH(x.at({2, 0}), Catch::Contains("out of range"));
  CHECK(bj::constant(bj::Init2{{1.}}, bj::boolean).at({0, 0}) == 1.0);
  CHECK_THROWS_AS(bj::zeros({0, 2}).at({0, 0}), bj::ValueError);
}

TEST_CASE("the default Tensor is a float64 scalar 0", "[tensor]") {
  const bj::Tensor t;
  CHECK(t.dtype() == bj::float64);
  CHECK(t.shape() == bj::Shape{});
  CHECK(t.at({}) == 0.0);
}

TEST_CASE("copies share identity and buffer; new tensors do not", "[tensor]") {
  const bj::Tensor a = bj::constant({1., 2.});
  const bj::Tensor b = a;  // NOLINT: the copy is the point
  bj::Tensor c;
  c = a;
  CHECK(b.id() == a.id());
  CHECK(c.id() == a.id());
  CHECK(b.data<double>().data() == a.data<double>().data());
  const bj::Tensor d = bj::constant({1., 2.});
  CHECK(d.id() != a.id());
  const bj::Tensor e = a + 0.0;
  CHECK(e.id() != a.id());
  CHECK(bj::reshape(a, {2}).id() != a.id());
  bj::Tensor moved = std::move(c);
  CHECK(moved.id() == a.id());
}
