// The plan cache: keys serialise what planning reads; a small LRU list holds the plans.
#include "engine/plan_cache.hpp"

#include "engine/plan.hpp"
#include "tensor/tensor_impl.hpp"

#include <bit>
#include <cstring>
#include <list>
#include <mutex>
#include <utility>

namespace batchjac::engine {

namespace {

constexpr std::size_t kMaxEntries = 16;
constexpr std::size_t kMaxKeyBytes = std::size_t{4} << 20;     // one program's
constexpr std::size_t kMaxTotalBytes = std::size_t{32} << 20;  // all programs' keys

struct Writer {
  std::vector<std::uint64_t>& words;

  void put(std::int64_t v) { words.push_back(static_cast<std::uint64_t>(v)); }
  void put(double v) { words.push_back(std::bit_cast<std::uint64_t>(v)); }
  void put(const Shape& s) {
    put(static_cast<std::int64_t>(s.size()));
    for (const std::int64_t d : s) put(d);
  }
  template <class Int>
  void put_all(const std::vector<Int>& v) {
    put(static_cast<std::int64_t>(v.size()));
    for (const Int x : v) put(static_cast<std::int64_t>(x));
  }
  void put_bytes(const std::byte* p, std::size_t n) {
    put(static_cast<std::int64_t>(n));
    const std::size_t at = words.size();
    words.resize(at + (n + 7) / 8, 0);
    std::memcpy(words.data() + at, p, n);
  }
};

struct Entry {
  PlanKey key;
  std::shared_ptr<const Prepared> plan;
};

struct Cache {
  std::mutex mutex;
  std::list<Entry> entries;  // most recently used first
  std::size_t bytes = 0;     // of their keys
  PlanCacheStats stats;
};

Cache& cache() {
  static Cache c;
  return c;
}

}  // namespace

PlanKey::PlanKey(const graph::Program& program, const JacobianOptions& options, bool small_call) {
  Writer w{words_};
  w.put(static_cast<std::int64_t>(options.mode));
  w.put(options.parallel_iterations.value_or(-1));
  w.put(std::int64_t{options.experimental_use_pfor});
  w.put(std::int64_t{options.mode == JacobianMode::automatic && small_call});
  w.put(std::int64_t{sparse_override()});
  w.put(std::int64_t{program.batched});
  w.put(std::int64_t{program.parameter});
  w.put(std::int64_t{program.result});
  w.put(static_cast<std::int64_t>(program.values.size()));
  for (const graph::Value& v : program.values) {
    w.put(static_cast<std::int64_t>(v.kind) | std::int64_t{v.varying} << 8 |
          static_cast<std::int64_t>(v.info.dtype) << 16);
    w.put(std::int64_t{v.constant});
    w.put(v.info.shape);
    // A shared constant's numbers shape the plan (the sparse form folds
    // them); a per-example one is read per block.
    if (v.kind == graph::ValueKind::constant && !v.varying) {
      const Tensor& c = program.constants[static_cast<std::size_t>(v.constant)];
      w.put(static_cast<std::int64_t>(c.dtype()));
      w.put(c.shape());
      w.put_bytes(c.impl().bytes.get(),
                  static_cast<std::size_t>(c.shape().num_elements()) * dtype_size(c.dtype()));
    }
  }
  // Every field of Attrs below. (On x86-64 this fails when a field is
  // added: serialise it too, then update the size.)
#if defined(__x86_64__)
  static_assert(sizeof(ops::Attrs) == 104, "serialise the new Attrs field into the key");
#endif
  w.put(static_cast<std::int64_t>(program.nodes.size()));
  for (const ops::Node& n : program.nodes) {
    const ops::Attrs& a = n.attrs;
    w.put(static_cast<std::int64_t>(n.prim));
    w.put(std::int64_t{n.output});
    w.put_all(n.inputs);
    w.put(std::int64_t{a.op});
    w.put(std::int64_t{a.arg});
    w.put(a.scalar);
    w.put_all(a.axes);
    w.put(a.shape);
    w.put(a.source_shape);
    w.put(std::int64_t{a.keepdims} | std::int64_t{a.exclusive} << 1 | std::int64_t{a.reverse} << 2 |
          std::int64_t{a.transpose_a} << 3 | std::int64_t{a.transpose_b} << 4 |
          static_cast<std::int64_t>(a.dtype) << 8);
  }
  // FNV-1a over the words.
  std::uint64_t h = 14695981039346656037ull;
  for (const std::uint64_t x : words_) h = (h ^ x) * 1099511628211ull;
  hash_ = h;
}

std::shared_ptr<const Prepared> find_plan(const PlanKey& key) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto it = c.entries.begin(); it != c.entries.end(); ++it) {
    if (!(it->key == key)) continue;
    c.entries.splice(c.entries.begin(), c.entries, it);
    ++c.stats.hits;
    return c.entries.front().plan;
  }
  ++c.stats.misses;
  return nullptr;
}

void keep_plan(PlanKey key, std::shared_ptr<const Prepared> plan) {
  if (key.bytes() > kMaxKeyBytes) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto it = c.entries.begin(); it != c.entries.end(); ++it)
    if (it->key == key) {  // another thread planned it meanwhile: the same plan
      c.entries.splice(c.entries.begin(), c.entries, it);
      return;
    }
  c.bytes += key.bytes();
  c.entries.push_front({std::move(key), std::move(plan)});
  while (c.entries.size() > kMaxEntries || c.bytes > kMaxTotalBytes) {
    c.bytes -= c.entries.back().key.bytes();
    c.entries.pop_back();
  }
}

PlanCacheStats plan_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  PlanCacheStats s = c.stats;
  s.entries = c.entries.size();
  return s;
}

void clear_plan_cache() {
  Cache& c = cache();
  std::list<Entry> gone;  // plans are freed outside the lock
  std::lock_guard<std::mutex> lock(c.mutex);
  gone.swap(c.entries);
  c.bytes = 0;
  c.stats = {};
}

}  // namespace batchjac::engine
