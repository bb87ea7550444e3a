#include "util/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <unistd.h>

namespace axllm::detail {
namespace {
constexpr int kSpinIterations = 20000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
}  // namespace

int default_thread_count() {
  if (const char* env = std::getenv("AXLLM_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(std::max(1, n_threads)), owner_pid_(static_cast<int>(::getpid())) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  if (static_cast<int>(::getpid()) != owner_pid_) {
    // A forked child: the workers belong to the parent; their handles cannot be joined here.
    new std::vector<std::thread>(std::move(workers_));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    (*job_)(index, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(FunctionRef<void(int, int)> fn) {
  std::lock_guard<std::mutex> region(region_mutex_);
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  if (static_cast<int>(::getpid()) != owner_pid_) {
    for (int t = 0; t < n_threads_; ++t) fn(t, n_threads_);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  fn(0, n_threads_);
  while (pending_.load(std::memory_order_acquire) != 0) cpu_relax();
  job_ = nullptr;
}

void ThreadPool::parallel_for(size_t n, size_t grain, FunctionRef<void(size_t, size_t)> fn) {
  if (n == 0) return;
  grain = std::max<size_t>(1, grain);
  const size_t blocks = (n + grain - 1) / grain;
  const size_t parts = std::min<size_t>(blocks, static_cast<size_t>(n_threads_));
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  run([&](int t, int) {
    if (static_cast<size_t>(t) >= parts) return;
    const size_t b0 = blocks * t / parts;
    const size_t b1 = blocks * (t + 1) / parts;
    const size_t begin = b0 * grain;
    const size_t end = std::min(n, b1 * grain);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace axllm::detail
