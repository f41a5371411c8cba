// The exception types batchjac raises, mirroring TensorFlow's ValueError and RuntimeError.
#pragma once

#include <stdexcept>
#include <string>

namespace batchjac {

// Bad arguments: shapes, ranks, dtypes, axes, options, or a target whose
// example i depends on another example of the source.
class ValueError : public std::invalid_argument {
 public:
  explicit ValueError(const std::string& what) : std::invalid_argument(what) {}
};

// A call that is valid in itself but not in the tape's state, such as a
// second Jacobian from a non-persistent tape.
class RuntimeError : public std::runtime_error {
 public:
  explicit RuntimeError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace batchjac
