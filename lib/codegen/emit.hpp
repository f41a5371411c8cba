// Writing a plan's generated kernel: C++ source of straight-line code over
// one block of examples (one example per SIMD lane), the same operations in
// the same order as the interpreter, so that its results are the
// interpreter's bit for bit.
#pragma once

#include "engine/plan.hpp"

#include <optional>
#include <string>

namespace batchjac::codegen {

// Entry points of a generated object (codegen/compile.hpp):
// - bj_primal(buf, ptr, interpret, context): the plan's primal steps on one
//   block; buf is the block buffer, ptr[v] where value v lives (the
//   Runner's pointers: buffer or shared constant). A step the generator
//   does not write runs as interpret(context, index of the step). Returns
//   nonzero when an identity it relied on may not hold bit for bit in some
//   lane (a NaN difference, see Writer::apply): the caller then runs the
//   block's primal steps with the interpreter.
// - bj_sparse(buf, out, stride): the sparse form's ops (kernels::sparse_linear,
//   plain products); returns whether any value they wrote is NaN. With
//   `out`, the block's Jacobian rows are written as they are done, lane l's
//   at out + l * stride (vector-aligned; the plan's width divides every row),
//   with non-temporal stores, as well as at the buffer's entries.
template <class T>
using PrimalFn = int (*)(T* buf, T* const* ptr, void (*interpret)(void*, int), void* context);
template <class T>
using SparseFn = int (*)(T* buf, T* out, long stride);

// The source of a sparse plan's kernel; nullopt for a dense plan, or one
// larger than the generator writes (the interpreter runs it).
template <class T>
std::optional<std::string> emit(const engine::Plan<T>& plan);

extern template std::optional<std::string> emit<float>(const engine::Plan<float>&);
extern template std::optional<std::string> emit<double>(const engine::Plan<double>&);

}  // namespace batchjac::codegen
