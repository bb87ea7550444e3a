#include "util/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "util/thread_pool.h"

namespace axllm::detail {
namespace {

// Sums n words, software-prefetching `distance` bytes ahead (0: no prefetch).
__attribute__((noinline)) uint64_t sum_words(const uint64_t* p, size_t n, size_t distance) {
  uint64_t acc[8] = {};
  size_t i = 0;
  const size_t ahead = distance / sizeof(uint64_t);
  for (; i + 8 <= n; i += 8) {
    if (ahead) __builtin_prefetch(p + i + ahead, 0, 0);
    for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
  }
  for (; i < n; ++i) acc[0] += p[i];
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

// Sums n words as four interleaved streams (the access pattern of a 4-row GEMV tile),
// prefetching each stream `distance` bytes ahead.
__attribute__((noinline)) uint64_t sum_words_4way(const uint64_t* p, size_t n, size_t distance) {
  const size_t q = n / 4;
  const size_t ahead = distance / sizeof(uint64_t);
  uint64_t acc[4] = {};
  for (size_t i = 0; i + 8 <= q; i += 8) {
    for (int s = 0; s < 4; ++s) {
      const uint64_t* ps = p + s * q + i;
      if (ahead) __builtin_prefetch(ps + ahead, 0, 0);
      acc[s] += ps[0] + ps[1] + ps[2] + ps[3] + ps[4] + ps[5] + ps[6] + ps[7];
    }
  }
  return acc[0] + acc[1] + acc[2] + acc[3];
}

}  // namespace

double measure_read_bandwidth(size_t bytes, int repeats, int threads) {
  const size_t words = std::max<size_t>(bytes / sizeof(uint64_t), 1024);
  std::vector<uint64_t> data(words);
  for (size_t i = 0; i < words; ++i) data[i] = i;
  ThreadPool pool(threads, ThreadPool::OnStall::kWait);  // every thread streams its share at once
  std::vector<uint64_t> sink(static_cast<size_t>(pool.size()), 0);
  double best = 0.0;
  for (size_t distance : {size_t{0}, size_t{512}, size_t{2048}}) {
    for (bool way4 : {false, true}) {
      for (int r = 0; r < std::max(1, repeats); ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.run([&](int t, int n) {
          const size_t b = words * t / n;
          const size_t e = words * (t + 1) / n;
          sink[t] += way4 ? sum_words_4way(data.data() + b, e - b, distance)
                          : sum_words(data.data() + b, e - b, distance);
        });
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / s);
      }
    }
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  (void)keep;
  return best;
}

}  // namespace axllm::detail
