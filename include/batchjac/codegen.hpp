// Generated code: the engine writes a kernel specialised to each program it
// plans in the sparse form (straight-line code over a block of examples, one
// example per SIMD lane), compiles it with the system's C++ compiler into a
// shared object cached on disk under a hash of its source, and loads it.
// Generated kernels give the interpreter's results bit for bit; the
// interpreter runs wherever no kernel is loaded (generation off, no
// compiler, a program too large, a step kind the generator does not write).
#pragma once

#include <cstddef>
#include <string>

namespace batchjac {

enum class CodeGeneration {
  off,         // the interpreter alone
  background,  // compile on a background thread; calls interpret until it is loaded
  immediate,   // compile when the plan is made; its first call waits for it
};

// The process-wide setting. Its default comes from BATCHJAC_CODEGEN (0 or
// off, background, 1 or immediate); unset: background.
void set_code_generation(CodeGeneration mode);
CodeGeneration code_generation();

// Where shared objects, their sources and compiler logs are kept. Default:
// BATCHJAC_CODE_CACHE, else $XDG_CACHE_HOME/batchjac, else
// $HOME/.cache/batchjac, else /tmp/batchjac-<uid>. Processes may share it:
// each object is written under a temporary name and renamed into place.
void set_code_cache_directory(const std::string& path);
std::string code_cache_directory();

// The compiler: BATCHJAC_CXX, else the one batchjac was built with.
struct CodeGenerationStats {
  std::size_t compiled = 0;     // objects this process compiled
  std::size_t loaded = 0;       // objects found on disk, compiled earlier
  std::size_t failed = 0;       // compilations or loads that failed (the interpreter runs)
  std::size_t pending = 0;      // queued or compiling in the background now
  double compile_seconds = 0;   // wall time of this process's compilations
  std::size_t generated_runs = 0;  // engine runs that used a generated kernel
};
CodeGenerationStats code_generation_stats();
// Waits until no compilation is queued or running (background mode).
void wait_for_code_generation();

}  // namespace batchjac
