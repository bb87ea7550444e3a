#pragma once
// A fixed pool of worker threads running one parallel region at a time. The calling thread
// takes part, so a pool of size n starts n - 1 workers. A region is a set of tasks that every
// participating thread claims one at a time, so a worker that is late (descheduled, still
// waking up) only delays the task it has already claimed, never the tasks it has not started.
// Idle workers spin for a few microseconds, then block in the kernel (a futex through
// std::atomic::wait), as does a caller waiting for another thread's last task: no pool thread
// burns a core that another process could use. A run allocates nothing. In a child process
// forked after the workers started (they do not exist there), regions run serially on the caller.
//
// On a machine where another process competes for the cores, a worker can be descheduled in the
// middle of a task (or share a core with the caller), and the caller then waits a scheduler time
// slice (milliseconds) for a task worth microseconds. The pool notices such stalls: a region
// stalled when it took longer than the caller alone would have, estimated from the CPU time the
// caller spent on the tasks it ran. When stalls recur it runs the next regions on the caller alone
// ("solo"), probing the workers again after a period that doubles while stalls persist (kMinSolo
// .. kMaxSolo regions). Results do not depend on it: every task computes the same thing whichever
// thread runs it.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
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
  // At most kMaxThreads threads (n_threads is clamped to [1, kMaxThreads]).
  static constexpr int kMaxThreads = 1024;
  // parallel_for cuts its range into up to this many chunks per thread, so that the threads
  // that are running take over the share of one that is not.
  static constexpr int kChunksPerThread = 4;

  // What the pool does when workers stall: go solo for a while (kAdapt), or always wait for
  // them (kWait: for callers whose shares must run concurrently, like a bandwidth measurement or
  // a test of the wake-up mechanics).
  enum class OnStall { kAdapt, kWait };

  explicit ThreadPool(int n_threads, OnStall on_stall = OnStall::kAdapt);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Regions run on the caller alone because workers stalled (for tests and benchmarks).
  uint64_t solo_regions() const { return solo_regions_.load(std::memory_order_relaxed); }
  // Calls fn(t, size()) once for every t in [0, size()) and returns when all calls have
  // finished. Each call runs on some pool thread (the caller included), a thread may make
  // several of them, and calls with different t may run concurrently: t names a share of the
  // work (and of per-share scratch), not a thread. Regions from different callers are
  // serialized. fn must not throw.
  void run(FunctionRef<void(int, int)> fn);
  // Splits [0, n) into contiguous chunks aligned to `grain` (at most kChunksPerThread per
  // thread) and runs fn(begin, end) once on each non-empty one, concurrently as above.
  void parallel_for(size_t n, size_t grain, FunctionRef<void(size_t, size_t)> fn);

 private:
  // Runs task(i) once for every i in [0, n_tasks), n_tasks <= kMaxTasks.
  void run_tasks(uint32_t n_tasks, FunctionRef<void(uint32_t)> task);
  // Claims and runs tasks of `region` until none is left; returns how many it ran.
  uint32_t work_on(uint32_t region);
  void worker();

  // Solo periods, in regions (a decode step of a 24-layer model is about 120 regions, so the
  // longest period is about a second of decoding).
  static constexpr uint32_t kMinSolo = 256;
  static constexpr uint32_t kMaxSolo = 4096;
  // A region stalled when it took longer than this plus the caller's estimate of running all of its
  // tasks alone.
  static constexpr int64_t kStallSlackNs = 20'000;
  // Records whether the last parallel region stalled; decides the next solo period.
  void note_region(bool stalled);

  // A region's task count has 16 bits in the claim word.
  static constexpr uint32_t kMaxTasks = 0xffff;
  static_assert(kMaxThreads * kChunksPerThread <= kMaxTasks);

  int n_threads_;
  OnStall on_stall_;
  int owner_pid_;
  std::vector<std::thread> workers_;
  std::mutex region_mutex_;  // serializes callers of run_tasks; guards the solo state below
  uint32_t solo_left_ = 0;     // regions still to run on the caller alone
  uint32_t solo_span_ = kMinSolo;  // the next solo period
  uint32_t calm_regions_ = 0;  // parallel regions since the last stall
  float stall_score_ = 0;      // moving average of stalled regions (1 = every one)
  bool probing_ = false;       // the first parallel region after a solo period
  uint32_t region_ = 0;      // id of the latest region (written under region_mutex_)
  // (region id << 32) | (task count << 16) | next unclaimed task: a thread claims task i of
  // region r by one compare-exchange from (r, n, i) to (r, n, i + 1), so a thread holding a
  // stale view of an earlier region can never claim a task of a later one.
  std::atomic<uint64_t> claim_{0};
  const FunctionRef<void(uint32_t)>* task_ = nullptr;  // valid while its region has tasks running
  std::atomic<uint32_t> epoch_{0};  // region id published to workers; they wait on it
  std::atomic<uint32_t> done_{0};  // tasks of the current region that have finished
  std::atomic<int> idle_sleepers_{0};  // workers blocked (or about to block) on epoch_
  std::atomic<int> caller_sleeping_{0};  // the caller is blocked (or about to block) on done_
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> solo_regions_{0};
};

// Threads to use: AXLLM_NUM_THREADS if set and positive, else the number of CPUs this process
// may run on (its affinity mask, which taskset or a container narrows), else hardware concurrency.
int default_thread_count();

}  // namespace axllm::detail
