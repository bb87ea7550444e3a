#pragma once
// A fixed pool of worker threads running one parallel region at a time. The calling thread
// takes part as thread 0, so a pool of size n starts n - 1 workers.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace axllm::detail {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Calls fn(thread_index, n_threads) on every thread and returns when all have finished.
  // Regions from different callers are serialized. fn must not throw.
  void run(const std::function<void(int, int)>& fn);
  // Splits [0, n) into size() contiguous ranges, aligned to `grain`, and runs fn(begin, end)
  // on each non-empty one.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex region_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int, int)>* job_ = nullptr;
};

// Threads to use: AXLLM_NUM_THREADS if set and positive, else hardware concurrency.
int default_thread_count();

}  // namespace axllm::detail
