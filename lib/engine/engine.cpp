// Running a plan: blocks of examples x chunks of directions on a TBB arena.
#include "engine/engine.hpp"

#include "engine/plan.hpp"
#include "codegen/emit.hpp"
#include "tensor/tensor_impl.hpp"

#include <batchjac/errors.hpp>

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <type_traits>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_set>
#include <stdexcept>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
// Debian's oneTBB is not built with TSan: mark the fork and join ourselves.
#define BATCHJAC_TSAN_RELEASE(p) __tsan_release(p)
#define BATCHJAC_TSAN_ACQUIRE(p) __tsan_acquire(p)
#define BATCHJAC_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define BATCHJAC_TSAN_RELEASE(p) ((void)0)
#define BATCHJAC_TSAN_ACQUIRE(p) ((void)0)
#define BATCHJAC_NO_TSAN
#endif

// OpenMP's "am I in an active parallel region?", if the program links an
// OpenMP runtime (libgomp, libomp); null otherwise. batchjac does not use
// OpenMP itself: a weak reference costs nothing to programs without it.
extern "C" int omp_in_parallel(void) __attribute__((weak));

namespace batchjac::engine {

namespace {

// The threads a call may use where it is called. Inside an active OpenMP
// parallel region the team already holds the cores, one call per thread: a
// call runs on its calling thread alone (no TBB workers join, so nothing is
// oversubscribed, and nothing waits on another team thread). Elsewhere: the
// caller's task arena (TBB's implicit one outside any arena).
int caller_concurrency() {
  if (omp_in_parallel != nullptr && omp_in_parallel() != 0) return 1;
  return tbb::this_task_arena::max_concurrency();
}

// One arena per thread count used (at most max_concurrency()), made once.
struct Arenas {
  std::mutex mutex;
  std::map<int, std::unique_ptr<tbb::task_arena>> by_threads;
};
Arenas& arenas() {
  static Arenas a;
  return a;
}

tbb::task_arena& arena_for(int threads) {
  Arenas& all = arenas();
  std::lock_guard<std::mutex> lock(all.mutex);
  auto& a = all.by_threads[threads];
  if (!a) a = std::make_unique<tbb::task_arena>(threads);
  return *a;
}

// Each thread reuses one growing block buffer: memory is bounded by threads x
// the block working set, whatever the batch size.
template <class T>
T* thread_buffer(std::int64_t elements) {
  thread_local detail::Buffer bytes;
  thread_local std::size_t capacity = 0;
  const std::size_t need = static_cast<std::size_t>(elements) * sizeof(T);
  if (need > capacity) {
    bytes = detail::Buffer::allocate(need);
    capacity = need;
  }
  return reinterpret_cast<T*>(bytes.get());
}

double load_element(DType dtype, const void* data, std::int64_t i) {
  switch (dtype) {
    case DType::float32: return static_cast<const float*>(data)[i];
    case DType::float64: return static_cast<const double*>(data)[i];
    case DType::boolean: return static_cast<const bool*>(data)[i] ? 1.0 : 0.0;
  }
  return 0.0;
}

// Batch-first rows [example][element] -> lanes [element][L]. Lanes past the
// batch repeat its last example, so padding computes finite values.
template <class T>
void load_lanes(const kernels::KernelTable<T>& table, const Load& l, const void* data, T* dst,
                std::int64_t first, std::int64_t batch, std::int64_t lanes) {
  constexpr DType same = sizeof(T) == 8 ? DType::float64 : DType::float32;
  if (l.dtype == same && lanes > 1 && lanes == table.width && first + lanes <= batch) {
    // Whole groups of `lanes` elements go through the in-register transpose.
    const T* src = static_cast<const T*>(data) + first * l.elements;
    const std::int64_t whole = l.elements / lanes * lanes;
    for (std::int64_t e = 0; e < whole; e += lanes)
      table.lanes_to_rows(src + e, lanes, l.elements, dst + e * lanes, lanes, nullptr);
    for (std::int64_t e = whole; e < l.elements; ++e)
      for (std::int64_t lane = 0; lane < lanes; ++lane) dst[e * lanes + lane] = src[lane * l.elements + e];
    return;
  }
  for (std::int64_t lane = 0; lane < lanes; ++lane) {
    const std::int64_t ex = std::min(first + lane, batch - 1);
    const std::int64_t row = ex * l.elements;
    if (l.dtype == DType::float64 && sizeof(T) == 8) {
      const double* src = static_cast<const double*>(data) + row;
      for (std::int64_t e = 0; e < l.elements; ++e) dst[e * lanes + lane] = static_cast<T>(src[e]);
    } else if (l.dtype == DType::float32) {
      const float* src = static_cast<const float*>(data) + row;
      for (std::int64_t e = 0; e < l.elements; ++e) dst[e * lanes + lane] = static_cast<T>(src[e]);
    } else {
      for (std::int64_t e = 0; e < l.elements; ++e)
        dst[e * lanes + lane] = static_cast<T>(load_element(l.dtype, data, row + e));
    }
  }
}

// Which chunk of which call a thread's block buffer holds the seed and
// hoisted values of.
struct ChunkHeld {
  std::uint64_t call = 0;
  std::int64_t d0 = -1, nd = -1;
  const void* buf = nullptr;
  bool operator==(const ChunkHeld&) const = default;
};

// One per thread, whatever the plan's types: any pass that writes a thread's
// buffer otherwise (the sparse form) forgets what it held.
ChunkHeld& held_chunk() {
  thread_local ChunkHeld held;
  return held;
}

// Each call of the engine has its own number (0 is none).
std::uint64_t next_call() {
  static std::atomic<std::uint64_t> calls{0};
  return ++calls;
}

template <class T, class O>
struct Runner {
  const Plan<T>& p;
  std::span<const void* const> load_data;  // per load of the plan: this call's tensor
  std::int64_t batch;
  O* out;
  const ValueOut* value;     // the result's rows too, or null
  std::int64_t per_example;  // elements of one example's Jacobian
  std::int64_t n_src;        // source elements per example (columns)
  std::int64_t value_elems;  // the result's elements per example
  bool stream;               // non-temporal stores: the output exceeds the caches
  bool value_stream;         // ... and for the value's rows
  bool values_only;          // a value is asked for, and there is no Jacobian entry to write
  std::atomic<bool>* symmetric;  // Binding::symmetric
  bool generated;                // run the plan's generated kernel if it is loaded
  std::uint64_t call = next_call();

  __attribute__((noinline)) void operator()(std::int64_t blk0, std::int64_t blk1, std::int64_t dir0,
                                            std::int64_t dir1) const {
    const std::int64_t L = p.lanes;
    // The block buffers, then a staging area of L rows of one chunk's answer,
    // each row rounded up to whole vectors, starting on a multiple of 16
    // elements (64 bytes or more).
    const std::int64_t row = padded(p.max_dirs * p.answer_elems);
    const std::int64_t staging_at = (p.buffer_size + 15) / 16 * 16;
    T* buf = thread_buffer<T>(staging_at + L * row);
    T* staging = buf + staging_at;
    std::vector<T*> ptr(p.offset.size(), nullptr);
    for (std::size_t v = 0; v < ptr.size(); ++v)
      ptr[v] = p.offset[v] >= 0 ? buf + p.offset[v] : p.shared_ptr[v];
    ops::Binding<T> bind{ptr, p.dir_stride, p.varying, 1, L};
    ChunkHeld& held = held_chunk();
    if (values_only) {  // the value alone: no direction, or no Jacobian entry
      held = {};        // the buffer no longer holds any chunk's seed
      for (std::int64_t blk = blk0; blk < blk1; ++blk) {
        load(ptr, blk * L);
        ops::execute<T>(p.primal_steps, bind);
        store_value(ptr[p.value], blk * L, std::min(L, batch - blk * L));
      }
      if (value_stream) kernels::stream_fence();
      return;
    }
    if (p.sparse) {  // every direction of a block in one pass
      held = {};
      std::fill_n(buf + p.ones_offset, L, T(1));
      // Structural zeros of the Jacobian: no op writes them.
      std::fill_n(buf + p.sparse_out, per_example * L, T(0));
      // The generated kernel, if loaded and allowed: the same numbers.
      codegen::PrimalFn<T> gen_primal = nullptr;
      codegen::SparseFn<T> gen_sparse = nullptr;
      if (generated) {
        gen_primal = reinterpret_cast<codegen::PrimalFn<T>>(p.generated->primal.load(std::memory_order_acquire));
        gen_sparse = reinterpret_cast<codegen::SparseFn<T>>(p.generated->sparse.load(std::memory_order_acquire));
      }
      const bool use_generated = gen_primal && gen_sparse;
      const auto n_ops = static_cast<std::int64_t>(p.sparse_ops.size());
      struct Interpret {  // a primal step the generated kernel leaves to the interpreter
        const Plan<T>& p;
        const ops::Binding<T>& bind;
        static void run(void* self, int k) {
          const Interpret& i = *static_cast<const Interpret*>(self);
          ops::execute<T>(std::span<const ops::Step<T>>(&i.p.primal_steps[static_cast<std::size_t>(k)], 1), i.bind);
        }
      } interpret{p, bind};
      // Whether the generated ops may stream the rows of a block (below):
      // a streamed output, no mirrored copies, and their tiles, which
      // cover the plan's entries (n_dirs * answer_elems), are the example's.
      const bool generated_rows = use_generated && stream && !symmetric && per_example == p.n_dirs * p.answer_elems;
      for (std::int64_t blk = blk0; blk < blk1; ++blk) {
        const std::int64_t first = blk * L;
        const std::int64_t valid = std::min(L, batch - first);
        load(ptr, first);
        // (A block where the generated code cannot vouch for the
        // interpreter's bits, which NaNs alone cause, runs interpreted.)
        if (!use_generated || gen_primal(buf, ptr.data(), &Interpret::run, &interpret) != 0)
          ops::execute<T>(p.primal_steps, bind);
        if (value) store_value(ptr[p.value], first, valid);
        // The generated ops say only where a NaN may be (codegen/emit.cpp):
        // then the interpreter's, the same bits, say exactly. The generated
        // primal stores only what the generated ops read (equal elements
        // once), the interpreter's ops read it all: it runs again first.
        // A full block of whole vector-aligned rows the generated ops
        // stream themselves, in step with their arithmetic.
        T* rows = nullptr;
        if constexpr (std::is_same_v<T, O>) {
          T* const J = out + first * per_example;
          if (generated_rows && whole_aligned_rows(J, valid)) rows = J;
        }
        bool nan = !use_generated || gen_sparse(buf, rows, static_cast<long>(per_example)) != 0;
        if (nan) {
          rows = nullptr;  // the rows it wrote are written again below
          if (use_generated) ops::execute<T>(p.primal_steps, bind);
          nan = p.table->sparse_linear(buf, p.sparse_ops.data(), n_ops, p.sparse_terms.data(), L);
        }
        if (nan)  // A NaN: again, with strong zeros.
          p.table->sparse_linear_strong(buf, p.sparse_ops.data(), n_ops, p.sparse_terms.data(), L);
        T* const answer = buf + p.sparse_out;
        // No op reads or writes the entries below a mirrored plan's
        // diagonal: they take their copies in place, block by block.
        if (symmetric) {
          if (p.mirrored) mirror(answer, n_src, false);
          else symmetric->store(false, std::memory_order_relaxed);
        }
        // The block holds whole rows of every example, as a reverse pass over all rows does.
        if (!rows) store(answer, first, valid, 0, per_example / n_src, staging, false, n_src);
      }
      if (stream || value_stream) kernels::stream_fence();
      return;
    }
    // One chunk of directions per task (the usual case): the seed and the
    // example-independent steps run once, then every block reuses them.
    // Otherwise each block runs every chunk in full.
    const bool one_chunk = dir1 - dir0 <= p.max_dirs;
    // A thread that already holds this chunk's seed and hoisted values from
    // an earlier task of the same call keeps them (they have memory of their
    // own in its buffer): tasks cost no repeated setup. (Between two tasks
    // of a call, the thread may have run tasks of other calls.)
    const ChunkHeld chunk{call, dir0, dir1 - dir0, buf};
    if (one_chunk && !(held == chunk)) {
      start_chunk(ptr, bind, dir0, dir1 - dir0, false);
      held = chunk;
    } else if (!one_chunk) {
      held = {};  // every block reseeds below
    }
    for (std::int64_t blk = blk0; blk < blk1; ++blk) {
      const std::int64_t first = blk * L;
      const std::int64_t valid = std::min(L, batch - first);
      load(ptr, first);
      ops::execute<T>(p.primal_steps, bind);
      if (value && dir0 == 0) store_value(ptr[p.value], first, valid);  // once per block
      for (std::int64_t d0 = dir0; d0 < dir1; d0 += p.max_dirs) {
        const std::int64_t nd = std::min(p.max_dirs, dir1 - d0);
        if (!one_chunk) start_chunk(ptr, bind, d0, nd, false);
        int nan = 0;
        bool direct = run_linear(bind, first, valid, d0, nd, false, &nan);
        if (!direct) nan = p.table->has_nan(ptr[p.answer], nd * p.answer_elems * L);
        if (nan) {  // again, with strong zeros, the hoisted steps too
          start_chunk(ptr, bind, d0, nd, true);
          direct = run_linear(bind, first, valid, d0, nd, true, nullptr);
        }
        if (symmetric) {  // whole square answers only (run_linear then left them in the buffer)
          if (nd == n_src && p.answer_elems == n_src && n_src * n_src == per_example)
            mirror(ptr[p.answer], n_src, p.mode == JacobianMode::forward);
          else symmetric->store(false, std::memory_order_relaxed);
        }
        if (!direct)
          store(ptr[p.answer], first, valid, d0, nd, staging, p.mode == JacobianMode::forward,
                p.answer_elems);
        // The next blocks of this chunk reuse the plain hoisted values.
        if (nan && one_chunk) start_chunk(ptr, bind, d0, nd, false);
      }
    }
    if (stream || value_stream) kernels::stream_fence();
  }

  void load(const std::vector<T*>& ptr, std::int64_t first) const {
    for (std::size_t i = 0; i < p.loads.size(); ++i)
      load_lanes<T>(*p.table, p.loads[i], load_data[i], ptr[p.loads[i].value], first, batch, p.lanes);
  }

  // Seeds directions d0 .. d0+nd (one-hot, the same in every lane) and runs
  // the steps that depend on nothing else (with strong zeros if `strong`).
  void start_chunk(const std::vector<T*>& ptr, ops::Binding<T>& bind, std::int64_t d0,
                   std::int64_t nd, bool strong) const {
    const std::int64_t L = p.lanes, seed_elems = p.n_dirs;
    T* seed = ptr[p.seed];
    std::memset(seed, 0, sizeof(T) * nd * seed_elems * L);
    for (std::int64_t k = 0; k < nd; ++k) std::fill_n(seed + (k * seed_elems + d0 + k) * L, L, T(1));
    bind.n_dir = nd;
    ops::execute<T>(strong ? p.strong_invariant_steps : p.invariant_steps, bind);
    bind.n_dir = 1;
    for (const auto& c : p.lane_shared) {
      const T* src = ptr[c.from];
      T* dst = ptr[c.to];
      const std::int64_t stride = p.dir_stride[c.from];
      for (std::int64_t e = 0; e < c.elems; ++e)
        for (std::int64_t k = 0; k < nd; ++k) dst[e * p.max_dirs + k] = src[k * stride + e * L];
    }
  }

  // Whether a full block's answer can go from registers to its rows: each
  // example's part starts vector-aligned at dst + l * per_example, and the
  // register-wide pieces along a row (`axis` long) are whole.
  bool rows_from_registers(const O* dst, std::int64_t valid, std::int64_t axis) const {
    const std::int64_t W = p.table->width;
    return whole_aligned_rows(dst, valid) && W == p.lanes && n_src % W == 0 && axis % W == 0;
  }

  // Whether a full block's rows, each example's starting at dst + l *
  // per_example, are whole vectors and vector-aligned.
  bool whole_aligned_rows(const O* dst, std::int64_t valid) const {
    const std::int64_t W = p.table->width;
    return valid == p.lanes && reinterpret_cast<std::uintptr_t>(dst) % (W * sizeof(O)) == 0 && per_example % W == 0;
  }

  // Runs the linear steps of one chunk (with strong zeros if `strong`). When
  // the last one can write the answer straight to the Jacobian rows, whole
  // vector-aligned rows and a full block, it does, sets *nan if it wrote a
  // NaN, and returns true: nothing is left to store.
  bool run_linear(ops::Binding<T>& bind, std::int64_t first, std::int64_t valid, std::int64_t d0,
                  std::int64_t nd, bool strong, int* nan) const {
    bind.n_dir = nd;
    const std::span<const ops::Step<T>> steps(strong ? p.strong_linear_steps : p.linear_steps);
    bool direct = false;
    ops::Step<T> last;
    if constexpr (std::is_same_v<T, O>) {
      if (p.answer_to_rows && !symmetric) {
        last = steps.back();
        const bool fwd = p.mode == JacobianMode::forward;
        O* J = out + first * per_example + (fwd ? d0 : d0 * n_src);
        // The tile's axis (directions forward, columns j reverse) lies along the row.
        const std::int64_t axis = fwd ? nd : last.mm.n;
        direct = rows_from_registers(J, valid, axis);
        if (direct) {
          last.mm.rows = J;
          last.mm.rows_lane_stride = per_example;
          last.mm.rows_dir_step = fwd ? 1 : n_src;
          last.mm.rows_elem_step = fwd ? n_src : 1;
          last.mm.rows_stream = stream;
          last.mm.rows_nan = nan;
        }
      }
    }
    ops::execute<T>(direct ? steps.first(steps.size() - 1) : steps, bind);
    if (direct) ops::execute<T>(std::span<const ops::Step<T>>(&last, 1), bind);
    bind.n_dir = 1;
    return direct;
  }

  // A block's square answers [k][e][L], n x n entries (k, e), made
  // symmetric in place: Jacobian entry (c, r) of every example becomes
  // entry (r, c)'s, r < c. Entry (k, e) is Jacobian entry (k, e), or (e, k)
  // when `transposed` (a dense forward pass: directions are columns).
  void mirror(T* a, std::int64_t n, bool transposed) const {
    // Lanes are a table's width: copies of a size known when compiling are
    // a vector move each, not a call.
    auto each = [&](auto lanes) {
      const std::int64_t L = lanes;
      for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t c = r + 1; c < n; ++c) {
          const std::int64_t above = r * n + c, below = c * n + r;
          std::memcpy(a + (transposed ? above : below) * L, a + (transposed ? below : above) * L, L * sizeof(T));
        }
    };
    switch (p.lanes) {
      case 4: return each(std::integral_constant<std::int64_t, 4>{});
      case 8: return each(std::integral_constant<std::int64_t, 8>{});
      case 16: return each(std::integral_constant<std::int64_t, 16>{});
      default: return each(p.lanes);
    }
  }

  // The result's elements of examples first .. first+valid: lanes to rows.
  void store_value(const T* v, std::int64_t first, std::int64_t valid) const {
    const std::int64_t L = p.lanes, E = value_elems;
    auto rows = [&]<class V>(V* dst) {
      dst += first * E;
      if constexpr (std::is_same_v<V, T>) {
        if (valid == L && L == p.table->width && L > 1) {
          // Whole aligned rows stream when the value exceeds the caches.
          const bool aligned = E % L == 0 && reinterpret_cast<std::uintptr_t>(dst) % (L * sizeof(T)) == 0;
          (value_stream && aligned ? p.table->lanes_to_rows_stream : p.table->lanes_to_rows)(v, E, L, dst, E,
                                                                                          nullptr);
          return;
        }
      }
      for (std::int64_t l = 0; l < valid; ++l)
        for (std::int64_t e = 0; e < E; ++e) dst[l * E + e] = static_cast<V>(v[e * L + l]);
    };
    if (value->dtype == DType::float32) rows(static_cast<float*>(value->data));
    else rows(static_cast<double*>(value->data));
  }

  // n rounded up to whole vectors.
  std::int64_t padded(std::int64_t n) const {
    const std::int64_t W = p.table->width;
    return (n + W - 1) / W * W;
  }

  // Writes the answer `ans`, [nd][E][L], of examples first .. first+valid.
  // Forward: direction k is column d0+k, answer element e is row e.
  // Reverse: direction k is row d0+k, answer element e is column e.
  // A full block goes from registers to the Jacobian rows where it can;
  // otherwise each example's part is gathered from its lane into a staging
  // row (in registers, 8x8 or 16x16 transposes), then copied out. Stores
  // stream (bypass the caches) when the output is large.
  void store(const T* ans, std::int64_t first, std::int64_t valid, std::int64_t d0,
             std::int64_t nd, T* staging, bool fwd, std::int64_t E) const {
    const std::int64_t L = p.lanes, W = p.table->width, size = nd * E;
    // The sparse form knows which groups of the example's entries are zero
    // (not a Hessian's: the copies below its diagonal are written by no op).
    const std::uint8_t* live = p.sparse && !symmetric ? p.live_groups.data() : nullptr;
    // The example's destination is one contiguous range unless forward mode
    // writes only some columns; with all of an example's entries, the
    // block's examples are one range too.
    const bool contiguous = !fwd || nd == n_src;
    const bool whole = contiguous && size == per_example;
    if constexpr (std::is_same_v<T, O>) {
      O* J = out + first * per_example;
      const bool aligned = reinterpret_cast<std::uintptr_t>(J) % (W * sizeof(T)) == 0;
      const std::int64_t at = fwd ? d0 : d0 * n_src;
      // A full block with vector-aligned rows goes straight from registers.
      if (rows_from_registers(J + at, valid, fwd ? nd : size)) {
        const auto rows = stream ? p.table->lanes_to_rows_stream : p.table->lanes_to_rows;
        if (fwd)
          for (std::int64_t e = 0; e < E; ++e) rows(ans + e * L, nd, E * L, J + e * n_src + d0, per_example, nullptr);
        else
          rows(ans, size, L, J + at, per_example, live);
        return;
      }
      // Whole examples of any length: a full block of at least W entries
      // each goes from registers to whole lines (streamed ones aligned).
      if ((aligned || !stream) && whole && !fwd && valid == L && size >= W) {
        const auto packed = stream ? p.table->lanes_to_packed_rows_stream : p.table->lanes_to_packed_rows;
        for (std::int64_t g = 0; g < L; g += W) packed(ans + g, size, L, J + g * size, live);
        return;
      }
      // Otherwise, streaming, rows are staged at a stride of whole vectors
      // (no store splits a cache line), then packed into whole lines.
      if (stream && aligned && whole && !fwd) {
        p.table->lanes_to_rows(ans, size, L, staging, padded(size), live);
        p.table->pack_rows_stream(staging, valid, size, padded(size), J);
        return;
      }
    }
    if (fwd) {  // staging[l][e][k] = ans[k][e][l]
      for (std::int64_t e = 0; e < E; ++e)
        p.table->lanes_to_rows(ans + e * L, nd, E * L, staging + e * nd, size, nullptr);
    } else {    // staging[l][k][e] = ans[k][e][l]
      p.table->lanes_to_rows(ans, size, L, staging, size, live);
    }
    for (std::int64_t l = 0; l < (whole ? 1 : valid); ++l) {
      const T* row = staging + l * size;
      O* J = out + (first + l) * per_example;
      const std::int64_t n = whole ? valid * size : size;  // whole: the block at once
      if (contiguous) {
        O* dst = J + (fwd ? 0 : d0 * n_src);
        if constexpr (std::is_same_v<T, O>) {
          if (stream) p.table->stream_copy(dst, row, n);
          else std::memcpy(dst, row, sizeof(T) * static_cast<std::size_t>(n));
        } else {
          for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<O>(row[i]);
        }
      } else {
        for (std::int64_t e = 0; e < E; ++e)
          for (std::int64_t k = 0; k < nd; ++k) J[e * n_src + d0 + k] = static_cast<O>(row[e * nd + k]);
      }
    }
  }
};

struct Bounds {
  std::int64_t row0, row1, col0, col1;
};

// The range and the body TBB hands a task were written by the thread that
// made the task, through oneTBB's own synchronisation, which Debian's
// (uninstrumented) libtbb hides from ThreadSanitizer: the task body's own
// reads of them are not instrumented. Runner::operator() (not inlined) and
// everything below it are.
BATCHJAC_NO_TSAN Bounds bounds_of(const tbb::blocked_range2d<std::int64_t>& r) {
  return {r.rows().begin(), r.rows().end(), r.cols().begin(), r.cols().end()};
}

// The threads a call uses: max_threads, clamped (more than the machine runs
// would only take turns on it, and each count keeps an arena for good), or
// unset the caller's: its arena, or its OpenMP thread alone.
int call_threads(const JacobianOptions& options) {
  return options.max_threads ? std::min(*options.max_threads, max_concurrency()) : caller_concurrency();
}

// What a parallel loop's tasks hand over: each starts with
// BATCHJAC_TSAN_ACQUIRE(&fork) and ends with BATCHJAC_TSAN_RELEASE(&join).
struct Handoff {
  char fork = 0, join = 0;
};

// Runs `loop` (a TBB parallel loop, itself BATCHJAC_NO_TSAN, whose tasks
// use the Handoff it is given) on `threads` threads: in the caller's arena
// when that has no more, so a call inside the caller's tbb::task_arena
// never starts a second pool, else in batchjac's arena of that many.
// `fork` hands the caller's writes to whichever thread runs the loop (an
// arena the caller cannot join runs it on a worker) and to the tasks;
// `join` hands the tasks' writes back. Reads of the captures outside the
// tasks' own work are not instrumented (see bounds_of).
template <class Loop>
void run_parallel(int threads, Loop&& loop) {
  [[maybe_unused]] Handoff h;
  auto body = [&]() BATCHJAC_NO_TSAN {
    BATCHJAC_TSAN_ACQUIRE(&h.fork);
    loop(h);
    BATCHJAC_TSAN_RELEASE(&h.join);
  };
  BATCHJAC_TSAN_RELEASE(&h.fork);
  if (threads < tbb::this_task_arena::max_concurrency()) arena_for(threads).execute(body);
  else body();
  BATCHJAC_TSAN_ACQUIRE(&h.join);
}

template <class T, class O>
void run_typed(const Plan<T>& p, std::span<const void* const> load_data, std::int64_t batch, O* out,
               const ValueOut* value, std::int64_t per_example, std::int64_t n_src,
               std::int64_t value_elems, bool values_only, const JacobianOptions& options,
               std::atomic<bool>* symmetric) {
  constexpr std::int64_t kStreamBytes = 8 << 20;
  const bool stream = batch * per_example * std::int64_t(sizeof(O)) > kStreamBytes;
  // The value's lines would not stay in the caches past a streamed Jacobian either.
  const bool value_stream =
      value && (stream || batch * value_elems * std::int64_t(dtype_size(value->dtype)) > kStreamBytes);
  // Generated kernels run unless this call or the process setting says not.
  const bool generated = options.generated_code && p.generated && codegen::enabled();
  Runner<T, O> runner{p,     load_data,   batch,  out,          value,       per_example,
                      n_src, value_elems, stream, value_stream, values_only, symmetric,
                      generated};
  if (generated && p.sparse && !values_only && p.generated->primal.load(std::memory_order_acquire) &&
      p.generated->sparse.load(std::memory_order_acquire))
    codegen::count_generated_run();
  const std::int64_t n_blocks = (batch + p.lanes - 1) / p.lanes;
  // The sparse form computes every direction of a block in one pass.
  const std::int64_t chunk = p.sparse ? std::max<std::int64_t>(p.n_dirs, 1)
                                      : options.parallel_iterations.value_or(std::max<std::int64_t>(p.n_dirs, 1));
  const std::int64_t n_chunks = values_only ? 1 : std::max<std::int64_t>(1, (p.n_dirs + chunk - 1) / chunk);
  const int threads = call_threads(options);
  if (threads == 1 || n_blocks * n_chunks <= 1) {
    // Small or single-threaded calls never touch the task scheduler; one
    // pass over the blocks runs every chunk (of at most parallel_iterations
    // directions, p.max_dirs) while a block's primal values are at hand.
    runner(0, n_blocks, 0, p.n_dirs);
    return;
  }
  run_parallel(threads, [&]([[maybe_unused]] Handoff& h) BATCHJAC_NO_TSAN {
    tbb::parallel_for(
        tbb::blocked_range2d<std::int64_t>(0, n_blocks, 1, 0, n_chunks, 1),
        [&](const tbb::blocked_range2d<std::int64_t>& range) BATCHJAC_NO_TSAN {
          BATCHJAC_TSAN_ACQUIRE(&h.fork);
          const Bounds r = bounds_of(range);
          for (std::int64_t c = r.col0; c < r.col1; ++c)
            runner(r.row0, r.row1, c * chunk, std::min(p.n_dirs, (c + 1) * chunk));
          BATCHJAC_TSAN_RELEASE(&h.join);
        });
  });
}

template <class T>
class PreparedPlan final : public Prepared {
 public:
  explicit PreparedPlan(Plan<T> plan) : plan_(std::move(plan)) {
    if (codegen::enabled())
      if (std::optional<std::string> source = codegen::emit(plan_))
        plan_.generated = codegen::request(std::move(*source), plan_.table->arch);
  }

  void run(const graph::Program& program, const Binding& call, void* out, DType out_dtype,
           const JacobianOptions& options, const ValueOut* value) const override {
    const std::int64_t n_src = program.info(program.parameter).shape.num_elements();
    const std::int64_t per_example = n_src * program.info(program.result).shape.num_elements();
    const std::int64_t value_elems =
        plan_.value >= 0 ? program.info(plan_.value).shape.num_elements() : 0;
    if (value && plan_.value < 0) throw std::logic_error("engine: the plan does not keep the value");
    // A mirrored plan writes no entry below the diagonal: only a Hessian's
    // call, which copies them, may run it (plan keys tell the two apart).
    if (plan_.mirrored && call.symmetric == nullptr)
      throw std::logic_error("engine: a Hessian's plan run for a Jacobian");
    // A plan with no directions (or a Jacobian with no entries: a source or
    // target of no elements) still computes a value asked for.
    const bool values_only = value && value_elems > 0 && (plan_.n_dirs == 0 || per_example == 0);
    if (call.batch == 0 || (per_example == 0 && !values_only)) return;
    std::vector<const void*> data;
    for (const Load& l : plan_.loads) {
      const Tensor& t = l.constant < 0 ? *call.source : call.constants[static_cast<std::size_t>(l.constant)];
      data.push_back(t.impl().bytes());
    }
    if (out_dtype == DType::float32)
      run_typed<T, float>(plan_, data, call.batch, static_cast<float*>(out), value, per_example, n_src,
                          value_elems, values_only, options, call.symmetric);
    else
      run_typed<T, double>(plan_, data, call.batch, static_cast<double*>(out), value, per_example,
                           n_src, value_elems, values_only, options, call.symmetric);
  }

  double cost() const override { return plan_.cost; }
  std::int64_t lanes() const override { return plan_.lanes; }
  bool keeps_value() const override { return plan_.value >= 0; }
  bool generated() const override {
    return plan_.generated && plan_.generated->expected();
  }

  std::size_t bytes(std::span<const Tensor> counted) const override {
    const Plan<T>& p = plan_;
    std::size_t n = sizeof(*this) + capacity_bytes(p.primal_steps) + capacity_bytes(p.invariant_steps) +
                    capacity_bytes(p.linear_steps) + capacity_bytes(p.loads) + capacity_bytes(p.converted) +
                    capacity_bytes(p.shared_ptr) + capacity_bytes(p.offset) + capacity_bytes(p.dir_stride) +
                    capacity_bytes(p.varying) + capacity_bytes(p.primal_only) + capacity_bytes(p.sparse_ops) +
                    capacity_bytes(p.sparse_terms) +
                    capacity_bytes(p.live_groups) + capacity_bytes(p.lane_shared) +
                    capacity_bytes(p.transposed);
    for (const auto& map : p.maps) n += sizeof(map) + capacity_bytes(map);
    for (const auto& t : p.transposed) n += capacity_bytes(t);
    std::unordered_set<const std::byte*> in_key;  // a long program has as many constants as ops
    for (const Tensor& k : counted) in_key.insert(k.impl().bytes());
    for (const Tensor& c : p.converted)
      if (!in_key.count(c.impl().bytes())) n += static_cast<std::size_t>(c.num_elements()) * dtype_size(c.dtype());
    return n;
  }

 private:
  template <class V>
  static std::size_t capacity_bytes(const V& v) {
    return v.capacity() * sizeof(typename V::value_type);
  }

  Plan<T> plan_;
};

template <class T>
std::unique_ptr<const Prepared> prepare_with(std::span<const Candidate> candidates,
                                             const JacobianOptions& options) {
  std::optional<Plan<T>> best;
  for (const Candidate& c : candidates) {  // each plan is cheaper than the one before, or none
    std::optional<Plan<T>> plan = make_plan<T>(*c.program, *c.lin, c.mode, options,
                                               best ? best->cost : std::numeric_limits<double>::infinity());
    if (plan) best = std::move(plan);
  }
  return std::make_unique<const PreparedPlan<T>>(std::move(*best));
}

}  // namespace

}  // namespace batchjac::engine

namespace batchjac::detail {

// bj::scalar_function's compiled path: its blocks on the engine's threads.
void parallel_ranges(std::int64_t n, const JacobianOptions& options,
                     void (*body)(void*, std::int64_t, std::int64_t), void* context) {
  if (n <= 0) return;
  const int threads = engine::call_threads(options);  // as the engine's calls
  if (threads == 1 || n == 1) {
    body(context, 0, n);
    return;
  }
  engine::run_parallel(threads, [&]([[maybe_unused]] engine::Handoff& h) BATCHJAC_NO_TSAN {
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, 1),
                      [&](const tbb::blocked_range<std::int64_t>& range) BATCHJAC_NO_TSAN {
                        BATCHJAC_TSAN_ACQUIRE(&h.fork);
                        body(context, range.begin(), range.end());
                        BATCHJAC_TSAN_RELEASE(&h.join);
                      });
  });
}

template <class T>
void lanes_to_rows(const T* src, std::int64_t count, int width, int lanes, T* dst, std::int64_t dst_stride,
                   bool stream) {
  const kernels::KernelTable<T>& k = kernels::simd_kernels<T>();
  if (k.width == width && lanes == width) {
    const bool aligned = reinterpret_cast<std::uintptr_t>(dst) % (std::size_t(width) * sizeof(T)) == 0;
    if (aligned && dst_stride % width == 0 && count % width == 0) {  // whole vectors, every row
      (stream ? k.lanes_to_rows_stream : k.lanes_to_rows)(src, count, width, dst, dst_stride, nullptr);
    } else if (dst_stride == count && count >= width && (aligned || !stream)) {  // rows back to back
      (stream ? k.lanes_to_packed_rows_stream : k.lanes_to_packed_rows)(src, count, width, dst, nullptr);
    } else {
      k.lanes_to_rows(src, count, width, dst, dst_stride, nullptr);
    }
    return;
  }
  for (int l = 0; l < lanes; ++l)
    for (std::int64_t i = 0; i < count; ++i) dst[l * dst_stride + i] = src[i * width + l];
}
template void lanes_to_rows<float>(const float*, std::int64_t, int, int, float*, std::int64_t, bool);
template void lanes_to_rows<double>(const double*, std::int64_t, int, int, double*, std::int64_t, bool);

void stream_fence() { kernels::stream_fence(); }

}  // namespace batchjac::detail

namespace batchjac::engine {

int max_concurrency() {
  static const int n = tbb::info::default_concurrency();
  return n;
}

std::size_t task_arenas() {
  Arenas& all = arenas();
  std::lock_guard<std::mutex> lock(all.mutex);
  return all.by_threads.size();
}

namespace {
// One compute type for the whole program: float64 if any value is.
bool wide(const graph::Program& program) {
  return std::any_of(program.values.begin(), program.values.end(),
                     [](const graph::Value& v) { return v.info.dtype == DType::float64; });
}
}  // namespace

std::unique_ptr<const Prepared> prepare(std::span<const Candidate> candidates,
                                        const JacobianOptions& options) {
  if (wide(*candidates.front().program)) return prepare_with<double>(candidates, options);
  return prepare_with<float>(candidates, options);
}

std::unique_ptr<const Prepared> prepare_value(const graph::Program& program) {
  const graph::LinearProgram none;  // no input: the kept value alone
  const Candidate c{&program, &none, JacobianMode::forward};
  return prepare(std::span<const Candidate>(&c, 1), JacobianOptions{});
}

}  // namespace batchjac::engine
