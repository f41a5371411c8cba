// batchjac: per-example Jacobians of a batch, TensorFlow's
// GradientTape.batch_jacobian for HPC codes. The one header users include.
#pragma once

#include <batchjac/custom_jvp.hpp>
#include <batchjac/dtype.hpp>
#include <batchjac/errors.hpp>
#include <batchjac/function.hpp>
#include <batchjac/gradient_tape.hpp>
#include <batchjac/jacobian_options.hpp>
#include <batchjac/ops.hpp>
#include <batchjac/shape.hpp>
#include <batchjac/tensor.hpp>
