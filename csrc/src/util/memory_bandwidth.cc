#include "util/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "util/thread_pool.h"

namespace axllm::detail {
namespace {

__attribute__((noinline)) uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

}  // namespace

double measure_read_bandwidth(size_t bytes, int repeats, int threads) {
  const size_t words = std::max<size_t>(bytes / sizeof(uint64_t), 1024);
  std::vector<uint64_t> data(words);
  for (size_t i = 0; i < words; ++i) data[i] = i;
  ThreadPool pool(threads);
  std::vector<uint64_t> sink(static_cast<size_t>(pool.size()), 0);
  double best = 0.0;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int t, int n) {
      const size_t b = words * t / n;
      const size_t e = words * (t + 1) / n;
      sink[t] += sum_words(data.data() + b, e - b);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / s);
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  (void)keep;
  return best;
}

}  // namespace axllm::detail
