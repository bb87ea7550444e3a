#pragma once
// Minimal assertions for the C++ unit tests: failures are counted and reported, and main()
// returns non-zero when any check failed. CHECK and CHECK_NEAR may run on any thread (thread-pool
// workers included): the counters are atomic, and each failure is one printf call.
#include <atomic>
#include <cmath>
#include <cstdio>

namespace axllm_test {
inline std::atomic<int>& failures() {
  static std::atomic<int> n{0};
  return n;
}
inline std::atomic<int>& checks() {
  static std::atomic<int> n{0};
  return n;
}
inline int finish(const char* name) {
  const int failed = failures().load();
  std::printf("%s: %d checks, %d failed\n", name, checks().load(), failed);
  return failed == 0 ? 0 : 1;
}
}  // namespace axllm_test

#define CHECK(cond)                                                        \
  do {                                                                     \
    ++axllm_test::checks();                                                \
    if (!(cond)) {                                                         \
      ++axllm_test::failures();                                            \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                     \
  do {                                                                                            \
    ++axllm_test::checks();                                                                       \
    const double va_ = (a), vb_ = (b);                                                            \
    if (!(std::fabs(va_ - vb_) <= (tol))) {                                                       \
      ++axllm_test::failures();                                                                   \
      std::printf("%s:%d: CHECK_NEAR failed: %s=%.9g %s=%.9g tol %.3g\n", __FILE__, __LINE__, #a, \
                  va_, #b, vb_, static_cast<double>(tol));                                        \
    }                                                                                             \
  } while (0)
