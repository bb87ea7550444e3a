#pragma once
// A fixed pool of worker threads running one parallel region at a time. The calling thread
// takes part as thread 0, so a pool of size n starts n - 1 workers. In a child process forked
// after the workers started (they do not exist there), regions run serially on the caller.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <mutex>
#include <thread>
#include <vector>

namespace axllm::detail {

// A non-owning reference to a callable (never allocates, unlike std::function). The callable
// must outlive the reference.
template <class Sig>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F>
  FunctionRef(F&& f)  // NOLINT: implicit by design
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(args)...);
        }) {}
  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Calls fn(thread_index, n_threads) on every thread and returns when all have finished.
  // Regions from different callers are serialized. fn must not throw.
  void run(FunctionRef<void(int, int)> fn);
  // Splits [0, n) into size() contiguous ranges, aligned to `grain`, and runs fn(begin, end)
  // on each non-empty one.
  void parallel_for(size_t n, size_t grain, FunctionRef<void(size_t, size_t)> fn);

 private:
  void worker(int index);

  int n_threads_;
  int owner_pid_;
  std::vector<std::thread> workers_;
  std::mutex region_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const FunctionRef<void(int, int)>* job_ = nullptr;
};

// Threads to use: AXLLM_NUM_THREADS if set and positive, else hardware concurrency.
int default_thread_count();

}  // namespace axllm::detail
