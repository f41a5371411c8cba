// The plan cache: keys serialise what planning reads; a small LRU list holds
// the plans, bounded by the memory each key and plan holds.
#include "engine/plan_cache.hpp"

#include "engine/plan.hpp"
#include "tensor/tensor_impl.hpp"

#include <bit>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_set>
#include <utility>

namespace batchjac::engine {

namespace {

constexpr std::size_t kMaxEntries = 16;
constexpr std::size_t kMaxEntryBytes = std::size_t{4} << 20;   // one program's key and plan
constexpr std::size_t kMaxTotalBytes = std::size_t{32} << 20;  // all of them

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
};

std::size_t data_bytes(const Tensor& t) {
  return static_cast<std::size_t>(t.num_elements()) * dtype_size(t.dtype());
}

// FNV-1a, one 64-bit word at a time.
std::uint64_t fnv(std::uint64_t h, std::uint64_t word) { return (h ^ word) * 1099511628211ull; }
std::uint64_t fnv_bytes(std::uint64_t h, const std::byte* p, std::size_t n) {
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = fnv(h, w);
  }
  if (n > 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = fnv(h, w);
  }
  return h;
}

struct Entry {
  PlanKey key;
  std::shared_ptr<const Prepared> plan;
  std::size_t bytes = 0;  // of memory the key and the plan hold
};

struct Cache {
  std::mutex mutex;
  std::list<Entry> entries;  // most recently used first
  std::size_t bytes = 0;     // of all entries
  PlanCacheStats stats;
};

// Never destroyed: a deferred value read by a static object's destructor
// may still look a plan up.
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

}  // namespace

PlanKey::PlanKey(const graph::Program& program, const JacobianOptions& options, bool small_call,
                 bool values_only, bool value_optional) {
  Writer w{words_};
  w.put(std::int64_t{values_only} | std::int64_t{value_optional} << 1);
  w.put(static_cast<std::int64_t>(options.mode));
  w.put(options.parallel_iterations.value_or(-1));
  w.put(std::int64_t{options.experimental_use_pfor});
  w.put(std::int64_t{options.mode == JacobianMode::automatic && small_call});
  w.put(std::int64_t{sparse_override()});
  w.put(std::int64_t{program.batched} | std::int64_t{program.symmetric} << 1);
  w.put(std::int64_t{program.parameter});
  w.put(std::int64_t{program.result});
  w.put(std::int64_t{program.kept});
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
      w.put(static_cast<std::int64_t>(constants_.size()));
      constants_.push_back(c);
    }
  }
  // Every field of Attrs below. (On x86-64 this fails when a field is
  // added: serialise it too, then update the size.)
#if defined(__x86_64__)
  static_assert(sizeof(ops::Attrs) == 120, "serialise the new Attrs field into the key");
#endif
  auto put_nodes = [&](const std::vector<ops::Node>& nodes) {
    w.put(static_cast<std::int64_t>(nodes.size()));
    for (const ops::Node& n : nodes) {
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
      // A program's custom_jvp nodes hold their rule in program.rules (below).
      w.put(std::int64_t{a.custom != nullptr});
    }
  };
  put_nodes(program.nodes);
  w.put(static_cast<std::int64_t>(program.rules.size()));
  for (const graph::JvpRule& r : program.rules) {
    w.put_all(r.tangents);
    w.put_all(r.zero_tangents);
    w.put(std::int64_t{r.result});
    put_nodes(r.nodes);
  }
  words_.shrink_to_fit();  // kept keys hold what they count
  std::uint64_t h = 14695981039346656037ull;
  for (const std::uint64_t x : words_) h = fnv(h, x);
  for (const Tensor& c : constants_) h = fnv_bytes(h, c.impl().bytes(), data_bytes(c));
  hash_ = h;
}

bool PlanKey::operator==(const PlanKey& other) const {
  if (hash_ != other.hash_ || words_ != other.words_) return false;
  // Equal words: the constants have equal shapes and dtypes.
  for (std::size_t i = 0; i < constants_.size(); ++i) {
    const std::byte* a = constants_[i].impl().bytes();
    const std::byte* b = other.constants_[i].impl().bytes();
    if (a != b && std::memcmp(a, b, data_bytes(constants_[i])) != 0) return false;
  }
  return true;
}

bool own_shared_views(graph::Program& program) {
  bool copied = false;
  for (const graph::Value& v : program.values) {
    if (v.kind != graph::ValueKind::constant || v.varying) continue;
    Tensor& c = program.constants[static_cast<std::size_t>(v.constant)];
    if (!c.impl().is_view()) continue;
    c = detail::owned(c);
    copied = true;
  }
  return copied;
}

std::size_t PlanKey::bytes() const {
  std::size_t n = words_.capacity() * sizeof(std::uint64_t) + constants_.capacity() * sizeof(Tensor);
  std::unordered_set<const std::byte*> seen;
  for (const Tensor& c : constants_)
    if (seen.insert(c.impl().bytes()).second) n += data_bytes(c);
  return n;
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
  // The plan's buffers of the key's constants are counted once, with the key.
  const std::size_t bytes = key.bytes() + plan->bytes(key.constants());
  if (bytes > kMaxEntryBytes) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto it = c.entries.begin(); it != c.entries.end(); ++it)
    if (it->key == key) {  // another thread planned it meanwhile: the same plan
      c.entries.splice(c.entries.begin(), c.entries, it);
      return;
    }
  c.bytes += bytes;
  c.entries.push_front({std::move(key), std::move(plan), bytes});
  while (c.entries.size() > kMaxEntries || c.bytes > kMaxTotalBytes) {
    c.bytes -= c.entries.back().bytes;
    c.entries.pop_back();
  }
}

PlanCacheStats plan_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  PlanCacheStats s = c.stats;
  s.entries = c.entries.size();
  s.bytes = c.bytes;
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
