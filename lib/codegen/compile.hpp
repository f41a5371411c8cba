// Compiling generated sources into loaded shared objects: the disk cache,
// the background worker and the process-wide settings of <batchjac/codegen.hpp>.
#pragma once

#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

namespace batchjac::codegen {

// A generated object's entry points, filled in (release) once it is loaded;
// null until then, and forever if generation failed or is off.
struct Module {
  std::atomic<void*> primal{nullptr};
  std::atomic<void*> sparse{nullptr};
  // Set when its compilation or load failed: it will never be loaded.
  std::atomic<bool> failed{false};
  // The process whose worker builds it (a forked child's worker does not).
  pid_t owner = ::getpid();
  // Whether it is loaded or will be: not failed, and built by this process.
  bool expected() const {
    return primal.load(std::memory_order_acquire) ||
           (!failed.load(std::memory_order_acquire) && owner == ::getpid());
  }
};

// The object of `source` (C++ that includes "ops/elementwise_math.hpp" and
// defines extern "C" bj_primal and bj_sparse), compiled with the flags of
// instruction set `arch` (a kernel table's: avx512, avx2, sse42): loaded from
// the disk cache, compiled now (immediate) or queued (background). Null when
// generation is off. Equal sources share one Module.
std::shared_ptr<const Module> request(std::string source, std::string_view arch);

// Whether generation is on (not CodeGeneration::off).
bool enabled();

// Forgets the Modules of this process (their objects stay loaded): the
// next request of a source looks in the disk cache again. For tests.
void forget_modules();

// Counts an engine run that used a generated kernel.
void count_generated_run();

}  // namespace batchjac::codegen
