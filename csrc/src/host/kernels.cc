#include "host/kernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace axllm::detail {
namespace {

#define AXLLM_INLINE inline __attribute__((always_inline))

template <int L>
struct Vec;
template <>
struct Vec<16> {
  typedef float F __attribute__((vector_size(64)));
  typedef uint32_t U __attribute__((vector_size(64)));
  typedef uint16_t H __attribute__((vector_size(32)));
};
template <>
struct Vec<8> {
  typedef float F __attribute__((vector_size(32)));
  typedef uint32_t U __attribute__((vector_size(32)));
  typedef uint16_t H __attribute__((vector_size(16)));
};

template <int L>
AXLLM_INLINE typename Vec<L>::F load(const float* p) {
  typename Vec<L>::F v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int L>
AXLLM_INLINE typename Vec<L>::F load(const uint16_t* p) {
  typename Vec<L>::H h;
  std::memcpy(&h, p, sizeof h);
  const typename Vec<L>::U u = __builtin_convertvector(h, typename Vec<L>::U) << 16;
  return (typename Vec<L>::F)u;
}

AXLLM_INLINE float scalar(float v) { return v; }
AXLLM_INLINE float scalar(uint16_t v) { return bf16_to_float(v); }

template <int L>
AXLLM_INLINE float hsum(typename Vec<L>::F v) {
  float s = 0.0f;
#pragma GCC unroll 16
  for (int i = 0; i < L; ++i) s += v[i];
  return s;
}

inline constexpr bool kPrefetch = true;

// y[t, r] for NT tokens and NW weight rows over the full reduction length k.
template <int L, int NT, int NW, typename WT>
AXLLM_INLINE void tile(const float* x, int64_t xs, const WT* w, int64_t ws, int64_t k,
                       const float* bias, float* y, int64_t ys) {
  using F = typename Vec<L>::F;
  F acc[NT][NW];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 8
    for (int j = 0; j < NW; ++j) acc[t][j] = F{};
  int64_t i = 0;
  for (; i + L <= k; i += L) {
    if constexpr (kPrefetch) {
      // Next tile's rows, one cache line per row per 64 bytes of this row consumed.
      if ((i * static_cast<int64_t>(sizeof(WT))) % 64 == 0) {
#pragma GCC unroll 8
        for (int j = 0; j < NW; ++j) __builtin_prefetch(w + (NW + j) * ws + i, 0, 0);
      }
    }
    F wv[NW];
#pragma GCC unroll 8
    for (int j = 0; j < NW; ++j) wv[j] = load<L>(w + j * ws + i);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const F xv = load<L>(x + t * xs + i);
#pragma GCC unroll 8
      for (int j = 0; j < NW; ++j) acc[t][j] += xv * wv[j];
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
#pragma GCC unroll 8
    for (int j = 0; j < NW; ++j) {
      float s = hsum<L>(acc[t][j]);
      for (int64_t ii = i; ii < k; ++ii) s += x[t * xs + ii] * scalar(w[j * ws + ii]);
      y[t * ys + j] = s + (bias ? bias[j] : 0.0f);
    }
  }
}

// Rows [r0, r1) of one part for all tokens, tiled so a block of x stays in cache.
template <int L, int NT, int NW, typename WT>
AXLLM_INLINE void rows_impl(const float* x, int64_t n, int64_t k, int64_t xs, const WT* w,
                            int64_t ws, const float* bias, float* y, int64_t ys, int64_t r0,
                            int64_t r1) {
  const int64_t x_tile = std::max<int64_t>(NT, (131072 / std::max<int64_t>(k, 1)) / NT * NT);
  for (int64_t t0 = 0; t0 < n; t0 += x_tile) {
    const int64_t t1 = std::min(n, t0 + x_tile);
    int64_t r = r0;
    for (; r + NW <= r1; r += NW) {
      const WT* wr = w + r * ws;
      const float* br = bias ? bias + r : nullptr;
      int64_t t = t0;
      for (; t + NT <= t1; t += NT)
        tile<L, NT, NW>(x + t * xs, xs, wr, ws, k, br, y + t * ys + r, ys);
      for (; t < t1; ++t) tile<L, 1, NW>(x + t * xs, xs, wr, ws, k, br, y + t * ys + r, ys);
    }
    for (; r < r1; ++r) {
      const WT* wr = w + r * ws;
      const float* br = bias ? bias + r : nullptr;
      int64_t t = t0;
      for (; t + NT <= t1; t += NT)
        tile<L, NT, 1>(x + t * xs, xs, wr, ws, k, br, y + t * ys + r, ys);
      for (; t < t1; ++t) tile<L, 1, 1>(x + t * xs, xs, wr, ws, k, br, y + t * ys + r, ys);
    }
  }
}

using RowsFn = void (*)(const float*, int64_t, int64_t, int64_t, const MatmulPart&, int64_t,
                        int64_t);

template <int L, int NT, int NW>
AXLLM_INLINE void rows_dispatch(const float* x, int64_t n, int64_t k, int64_t xs,
                                const MatmulPart& p, int64_t r0, int64_t r1) {
  if (p.w_dtype == DType::kBF16) {
    rows_impl<L, NT, NW>(x, n, k, xs, static_cast<const uint16_t*>(p.w), p.w_stride, p.bias, p.y,
                         p.y_stride, r0, r1);
  } else {
    rows_impl<L, NT, NW>(x, n, k, xs, static_cast<const float*>(p.w), p.w_stride, p.bias, p.y,
                         p.y_stride, r0, r1);
  }
}

void rows_generic(const float* x, int64_t n, int64_t k, int64_t xs, const MatmulPart& p, int64_t r0,
                  int64_t r1) {
  rows_dispatch<8, 2, 4>(x, n, k, xs, p, r0, r1);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void rows_avx2(const float* x, int64_t n, int64_t k, int64_t xs,
                                                   const MatmulPart& p, int64_t r0, int64_t r1) {
  rows_dispatch<8, 2, 4>(x, n, k, xs, p, r0, r1);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) void rows_avx512(
    const float* x, int64_t n, int64_t k, int64_t xs, const MatmulPart& p, int64_t r0, int64_t r1) {
  rows_dispatch<16, 4, 4>(x, n, k, xs, p, r0, r1);
}
#endif

struct Kernel {
  const char* name;
  RowsFn rows;
};

bool supported(std::string_view name) {
  if (name == "generic") return true;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (name == "avx512") {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
#endif
  return false;
}

Kernel make_kernel(std::string_view name) {
#if defined(__x86_64__)
  if (name == "avx512") return {"avx512", rows_avx512};
  if (name == "avx2") return {"avx2", rows_avx2};
#endif
  (void)name;
  return {"generic", rows_generic};
}

Kernel best_kernel() {
  if (const char* env = std::getenv("AXLLM_HOST_KERNEL")) {
    if (supported(env)) return make_kernel(env);
  }
  for (const char* name : {"avx512", "avx2"}) {
    if (supported(name)) return make_kernel(name);
  }
  return make_kernel("generic");
}

Kernel& active() {
  static Kernel kernel = best_kernel();
  return kernel;
}

}  // namespace

const char* kernel_name() { return active().name; }

bool set_kernel(const char* name) {
  if (!supported(name)) return false;
  active() = make_kernel(name);
  return true;
}

void matmul_serial(const float* x, int64_t n_tokens, int64_t k, int64_t x_stride,
                   const MatmulPart& part) {
  active().rows(x, n_tokens, k, x_stride, part, 0, part.rows);
}

void matmul(ThreadPool& pool, const float* x, int64_t n_tokens, int64_t k, int64_t x_stride,
            const MatmulPart* parts, int n_parts) {
  int64_t total = 0;
  for (int i = 0; i < n_parts; ++i) total += parts[i].rows;
  const RowsFn rows = active().rows;
  pool.parallel_for(static_cast<size_t>(total), 16, [&](size_t begin, size_t end) {
    int64_t base = 0;
    for (int i = 0; i < n_parts; ++i) {
      const int64_t lo = std::max<int64_t>(static_cast<int64_t>(begin), base);
      const int64_t hi = std::min<int64_t>(static_cast<int64_t>(end), base + parts[i].rows);
      if (lo < hi) rows(x, n_tokens, k, x_stride, parts[i], lo - base, hi - base);
      base += parts[i].rows;
    }
  });
}

}  // namespace axllm::detail
