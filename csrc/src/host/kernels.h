#pragma once
// CPU compute kernels of the host engine: fp32-accumulating matrix products over bf16 or fp32
// weights, vectorized for AVX-512, AVX2 or the baseline ISA (chosen at run time).
#include <cstdint>

#include "axllm/dtype.h"
#include "util/thread_pool.h"

namespace axllm::detail {

// One weight matrix of a (possibly fused) product y = x W^T + bias.
struct MatmulPart {
  const void* w;         // [rows, k], row r starts at element r * w_stride
  DType w_dtype;         // kBF16 or kFP32
  int64_t w_stride;      // elements between weight rows (>= k)
  const float* bias;     // [rows] or nullptr
  int64_t rows;
  float* y;              // y[t * y_stride + r]
  int64_t y_stride;
};

// Computes every part for x [n_tokens, k] (row stride x_stride), splitting the rows of all parts
// across the pool's threads.
void matmul(ThreadPool& pool, const float* x, int64_t n_tokens, int64_t k, int64_t x_stride,
            const MatmulPart* parts, int n_parts);
// Computes one part on the calling thread.
void matmul_serial(const float* x, int64_t n_tokens, int64_t k, int64_t x_stride,
                   const MatmulPart& part);

// The kernel family in use: "avx512", "avx2" or "generic". AXLLM_HOST_KERNEL selects one
// explicitly (an unavailable choice falls back to the best available).
const char* kernel_name();
// Forces a family for tests; returns false when the machine cannot run it.
bool set_kernel(const char* name);

}  // namespace axllm::detail
