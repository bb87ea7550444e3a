// parallel_for covers every index exactly once; regions from several callers do not interleave.
#include <atomic>
#include <thread>
#include <vector>

#include "check.h"
#include "util/thread_pool.h"

using axllm::detail::ThreadPool;

int main() {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (size_t n : {0, 1, 5, 16, 17, 1000}) {
      for (size_t grain : {1, 4, 16, 64}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, grain, [&](size_t b, size_t e) {
          CHECK(b < e);
          CHECK(b % grain == 0);
          for (size_t i = b; i < e; ++i) hits[i]++;
        });
        for (size_t i = 0; i < n; ++i) CHECK(hits[i].load() == 1);
      }
    }
    std::atomic<int> inside{0};
    std::atomic<int> overlap{0};
    std::atomic<long> total{0};
    std::vector<std::thread> callers;
    for (int c = 0; c < 4; ++c) {
      callers.emplace_back([&] {
        for (int r = 0; r < 200; ++r) {
          pool.run([&](int t, int nt) {
            if (t == 0 && inside.fetch_add(1) != 0) overlap++;
            total += nt;
            if (t == 0) inside.fetch_sub(1);
          });
        }
      });
    }
    for (auto& t : callers) t.join();
    CHECK(overlap.load() == 0);
    CHECK(total.load() == 4L * 200 * threads * threads);
  }
  return axllm_test::finish("test_thread_pool");
}
