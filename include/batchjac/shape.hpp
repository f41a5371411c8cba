// Shape: the dimensions of a tensor, batch first.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <string>
#include <vector>

namespace batchjac {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) {}

  std::size_t size() const noexcept { return dims_.size(); }
  std::int64_t operator[](std::size_t i) const { return dims_[i]; }
  std::int64_t& operator[](std::size_t i) { return dims_[i]; }
  auto begin() const noexcept { return dims_.begin(); }
  auto end() const noexcept { return dims_.end(); }
  const std::vector<std::int64_t>& dims() const noexcept { return dims_; }
  // Product of the dimensions (1 for a scalar; 0 if any is 0), or INT64_MAX
  // where that product does not fit int64 (never a tensor's shape: see the
  // size limit in tensor.hpp).
  std::int64_t num_elements() const noexcept;
  // "[2, 3]"
  std::string to_string() const;

  friend bool operator==(const Shape&, const Shape&) = default;

 private:
  std::vector<std::int64_t> dims_;
};

std::ostream& operator<<(std::ostream& os, const Shape& shape);

}  // namespace batchjac
