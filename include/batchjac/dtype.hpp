// Element types of batchjac tensors, named as in TensorFlow.
#pragma once

#include <cstddef>
#include <string_view>

namespace batchjac {

enum class DType { float32, float64, boolean };

inline constexpr DType float32 = DType::float32;
inline constexpr DType float64 = DType::float64;
inline constexpr DType boolean = DType::boolean;

// "float32", "float64" or "bool", as TF prints them.
std::string_view dtype_name(DType dtype) noexcept;
std::size_t dtype_size(DType dtype) noexcept;
inline constexpr bool is_floating(DType dtype) noexcept { return dtype != DType::boolean; }

}  // namespace batchjac
