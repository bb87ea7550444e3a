// Self-test of check.h: CHECKs run at the same time on several threads, some of them failing on
// purpose, and every check and every failure must be counted (plain int counters lose increments
// here). The deliberate failures are what this test expects, so it does not end with finish().
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "check.h"

int main() {
  constexpr int kThreads = 4;
  constexpr int kChecksPerThread = 1000000;
  constexpr int kFailEvery = 10000;  // CHECK(i % kFailEvery != 0) fails for these i
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&go] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kChecksPerThread; ++i) CHECK(i % kFailEvery != 0);
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();

  const int want_checks = kThreads * kChecksPerThread;
  const int want_failures = kThreads * (kChecksPerThread / kFailEvery);
  const int got_checks = axllm_test::checks();
  const int got_failures = axllm_test::failures();
  std::printf("test_check: counted %d of %d checks and %d of %d deliberate failures\n", got_checks,
              want_checks, got_failures, want_failures);
  return got_checks == want_checks && got_failures == want_failures ? 0 : 1;
}
