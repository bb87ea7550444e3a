// Every kernel family the machine supports against a double-precision reference, over shapes
// with reduction tails, several fused parts, strides and biases.
#include <cstdint>
#include <random>
#include <vector>

#include "axllm/dtype.h"
#include "check.h"
#include "host/kernels.h"
#include "util/thread_pool.h"

using namespace axllm;
using namespace axllm::detail;

static void run_case(ThreadPool& pool, std::mt19937& rng, int64_t n, int64_t k, int64_t rows,
                     DType wt, bool bias, int64_t pad) {
  std::normal_distribution<float> nd;
  const int64_t xs = k + pad;
  const int64_t ws = k + pad;
  std::vector<float> x(static_cast<size_t>(n * xs));
  for (auto& v : x) v = nd(rng);
  std::vector<float> wf(static_cast<size_t>(rows * ws));
  for (auto& v : wf) v = bf16_to_float(float_to_bf16(nd(rng)));
  std::vector<uint16_t> wb(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) wb[i] = float_to_bf16(wf[i]);
  std::vector<float> b(static_cast<size_t>(rows));
  for (auto& v : b) v = nd(rng);
  const int64_t split = rows / 3;
  const int64_t ys = rows + 5;
  std::vector<float> y(static_cast<size_t>(n * ys), -1.0f);
  const void* w = wt == DType::kBF16 ? static_cast<const void*>(wb.data()) : wf.data();
  const size_t esz = dtype_size(wt);
  MatmulPart parts[2] = {
      {w, wt, ws, bias ? b.data() : nullptr, split, y.data(), ys},
      {static_cast<const uint8_t*>(w) + split * ws * esz, wt, ws, bias ? b.data() + split : nullptr,
       rows - split, y.data() + split, ys},
  };
  matmul(pool, x.data(), n, k, xs, parts, 2);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double want = bias ? b[r] : 0.0;
      for (int64_t i = 0; i < k; ++i) want += static_cast<double>(x[t * xs + i]) * wf[r * ws + i];
      CHECK_NEAR(y[t * ys + r], want, 1e-4 * (1 + std::sqrt(static_cast<double>(k))));
    }
    for (int64_t r = rows; r < ys; ++r) CHECK(y[t * ys + r] == -1.0f);
  }
}

int main() {
  std::mt19937 rng(42);
  for (const char* family : {"avx512", "avx2", "generic"}) {
    if (!set_kernel(family)) {
      std::printf("kernel family %s not supported here\n", family);
      continue;
    }
    CHECK(std::string(kernel_name()) == family);
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      for (int64_t n : {1, 2, 5, 9}) {
        for (int64_t k : {1, 7, 16, 33, 64, 130}) {
          for (DType wt : {DType::kBF16, DType::kFP32}) {
            run_case(pool, rng, n, k, 11 + k % 5, wt, k % 2 == 0, k % 3);
          }
        }
      }
      run_case(pool, rng, 130, 900, 37, DType::kBF16, true, 0);
    }
  }
  return axllm_test::finish("test_kernels");
}
