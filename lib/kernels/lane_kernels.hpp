// The kernels, templated on the vector type V: an xsimd batch (engine: one
// example per lane) or a plain scalar (eager: lanes = 1). Each instruction set's
// .cpp instantiates make_table for its V; nothing here is arch-specific.
#pragma once

#include "kernels/kernels.hpp"
#include "ops/elementwise_math.hpp"

#include <xsimd/xsimd.hpp>

#include <cstring>
#include <type_traits>
#include <utility>

namespace batchjac::kernels {
// Internal linkage: each instruction set's .cpp gets its own copies, so the
// linker never mixes code compiled for different instruction sets (ODR).
namespace {

template <class V>
struct Vec {  // scalar
  using S = V;
  static constexpr std::int64_t width = 1;
  static V load(const S* p) { return *p; }
  static void store(S* p, V v) { *p = v; }
};
template <class T, class A>
struct Vec<xsimd::batch<T, A>> {
  using V = xsimd::batch<T, A>;
  using S = T;
  static constexpr std::int64_t width = V::size;
  static V load(const S* p) { return V::load_unaligned(p); }
  static void store(S* p, V v) { v.store_unaligned(p); }
};

// Reads operand `o` at element e of direction d as a vector starting at lane l.
template <class V, class T>
inline V read(const Operand<T>& o, std::int64_t d, std::int64_t e, std::int64_t l,
              std::int64_t lanes) {
  const std::int64_t idx = o.map ? o.map[e] : e;
  if (o.varying) return Vec<V>::load(o.ptr + d * o.dir_stride + idx * lanes + l);
  return V(o.ptr[idx]);
}

template <class V, class T, bool Accumulate>
inline void write(T* p, V v) {
  if constexpr (Accumulate) v = v + Vec<V>::load(p);
  Vec<V>::store(p, v);
}

template <class F, int N, bool Partial, class V, class T>
inline V apply(const V* x, T s) {
  if constexpr (Partial) return F::partial(x[0], x[1], s);
  else if constexpr (N == 1) return F::primal(x[0], s);
  else return F::primal(x[0], x[1], s);
}

// N operands (N = 2 for a unary partial: x and y).
template <class V, class F, int N, bool Partial, bool Accumulate>
void elementwise_impl(const ElementwiseArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  bool flat = true;
  for (int i = 0; i < N; ++i) flat = flat && a.in[i].varying && a.in[i].map == nullptr;
  if (flat) {
    // Every operand is lane-contiguous: one pass over n_elem * lanes per direction.
    const std::int64_t n = a.n_elem * a.lanes;
    for (std::int64_t d = 0; d < a.n_dir; ++d) {
      const T* p[N];
      for (int i = 0; i < N; ++i) p[i] = a.in[i].ptr + d * a.in[i].dir_stride;
      T* out = a.out + d * a.out_dir_stride;
      std::int64_t j = 0;
      for (; j + W <= n; j += W) {
        V x[N];
        for (int i = 0; i < N; ++i) x[i] = Vec<V>::load(p[i] + j);
        write<V, T, Accumulate>(out + j, apply<F, N, Partial>(x, a.scalar));
      }
      for (; j < n; ++j) {  // only when lanes is not a multiple of W
        T x[N];
        for (int i = 0; i < N; ++i) x[i] = p[i][j];
        write<T, T, Accumulate>(out + j, apply<F, N, Partial>(x, a.scalar));
      }
    }
    return;
  }
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    for (std::int64_t e = 0; e < a.n_elem; ++e) {
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W) {
        V x[N];
        for (int i = 0; i < N; ++i) x[i] = read<V>(a.in[i], d, e, l, a.lanes);
        write<V, T, Accumulate>(out + e * a.lanes + l, apply<F, N, Partial>(x, a.scalar));
      }
      for (; l < a.lanes; ++l) {
        T x[N];
        for (int i = 0; i < N; ++i) x[i] = read<T>(a.in[i], d, e, l, a.lanes);
        write<T, T, Accumulate>(out + e * a.lanes + l, apply<F, N, Partial>(x, a.scalar));
      }
    }
  }
}

template <class V, class F, int N, bool Partial>
void elementwise(const ElementwiseArgs<typename Vec<V>::S>& a) {
  if (a.accumulate) elementwise_impl<V, F, N, Partial, true>(a);
  else elementwise_impl<V, F, N, Partial, false>(a);
}

template <class V>
void gather(const IndexArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    const T* in = a.in + d * a.in_dir_stride;
    for (std::int64_t e = 0; e < a.n_out; ++e) {
      const std::int64_t src = a.map[e];
      T* o = out + e * a.lanes;
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W) {
        V v = src < 0 ? V(T(0)) : Vec<V>::load(in + src * a.lanes + l);
        if (a.accumulate) v = v + Vec<V>::load(o + l);
        Vec<V>::store(o + l, v);
      }
      for (; l < a.lanes; ++l) {
        T v = src < 0 ? T(0) : in[src * a.lanes + l];
        o[l] = a.accumulate ? o[l] + v : v;
      }
    }
  }
}

template <class V>
void scatter_add(const IndexArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    const T* in = a.in + d * a.in_dir_stride;
    if (!a.accumulate) std::memset(out, 0, sizeof(T) * a.n_out * a.lanes);
    for (std::int64_t e = 0; e < a.n_in; ++e) {
      T* o = out + a.map[e] * a.lanes;
      const T* x = in + e * a.lanes;
      std::int64_t l = 0;
      for (; l + W <= a.lanes; l += W) Vec<V>::store(o + l, Vec<V>::load(o + l) + Vec<V>::load(x + l));
      for (; l < a.lanes; ++l) o[l] += x[l];
    }
  }
}

// Reads a matrix operand at (row i, col j) of batch bt as a vector of lanes.
template <class V, class T>
inline V mat_read(const Operand<T>& o, std::int64_t d, std::int64_t offset, std::int64_t l,
                  std::int64_t lanes) {
  if (o.varying) return Vec<V>::load(o.ptr + d * o.dir_stride + offset * lanes + l);
  return V(o.ptr[offset]);
}

template <class V>
void matmul(const MatmulArgs<typename Vec<V>::S>& a) {
  using T = typename Vec<V>::S;
  constexpr std::int64_t W = Vec<V>::width;
  static_assert(W >= 1);
  // Lanes are a multiple of W in the engine (W = 1 eagerly), so no tail loop.
  for (std::int64_t d = 0; d < a.n_dir; ++d) {
    T* out = a.out + d * a.out_dir_stride;
    for (std::int64_t bt = 0; bt < a.batch; ++bt) {
      const std::int64_t ab = bt * a.a_batch_stride, bb = bt * a.b_batch_stride;
      for (std::int64_t i = 0; i < a.m; ++i) {
        for (std::int64_t j = 0; j < a.n; ++j) {
          T* o = out + ((bt * a.m + i) * a.n + j) * a.lanes;
          for (std::int64_t l = 0; l < a.lanes; l += W) {
            V acc(T(0));
            for (std::int64_t kk = 0; kk < a.k; ++kk) {
              const std::int64_t ao = ab + (a.ta ? kk * a.m + i : i * a.k + kk);
              const std::int64_t bo = bb + (a.tb ? j * a.k + kk : kk * a.n + j);
              acc = xsimd::fma(mat_read<V>(a.a, d, ao, l, a.lanes), mat_read<V>(a.b, d, bo, l, a.lanes), acc);
            }
            if (a.accumulate) acc = acc + Vec<V>::load(o + l);
            Vec<V>::store(o + l, acc);
          }
        }
      }
    }
  }
}

template <class V, class L>
struct Fill;
template <class V, class... Fs>
struct Fill<V, ops::math::List<Fs...>> {
  template <int N, class T>
  static void unary(KernelTable<T>& t) {
    int i = 0;
    ((t.unary[i] = &elementwise<V, Fs, 1, false>, t.unary_partial[i] = &elementwise<V, Fs, 2, true>, ++i), ...);
  }
  template <class T>
  static void binary(KernelTable<T>& t) {
    int i = 0;
    ((t.binary[i++] = &elementwise<V, Fs, 2, false>), ...);
  }
};

template <class V>
KernelTable<typename Vec<V>::S> make_table(std::string_view arch) {
  using T = typename Vec<V>::S;
  static_assert(ops::math::Unary::size <= kMaxUnary && ops::math::Binary::size <= kMaxBinary);
  KernelTable<T> t;
  t.arch = arch;
  t.width = Vec<V>::width;
  Fill<V, ops::math::Unary>::template unary<1>(t);
  Fill<V, ops::math::Binary>::binary(t);
  t.gather = &gather<V>;
  t.scatter_add = &scatter_add<V>;
  t.matmul = &matmul<V>;
  return t;
}

}  // namespace
}  // namespace batchjac::kernels
