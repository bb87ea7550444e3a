#include "util/thread_pool.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace axllm::detail {
namespace {
// How long an idle worker, or a caller waiting for the last task, polls before blocking: long
// enough to bridge the serial code between two regions of one decode step, short enough that
// a thread that has nothing to do gives its core away almost at once.
constexpr std::chrono::nanoseconds kSpin = std::chrono::microseconds(30);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

constexpr uint64_t pack(uint32_t region, uint32_t n_tasks, uint32_t next) {
  return (static_cast<uint64_t>(region) << 32) | (static_cast<uint64_t>(n_tasks) << 16) | next;
}
constexpr uint32_t region_of(uint64_t c) { return static_cast<uint32_t>(c >> 32); }
constexpr uint32_t count_of(uint64_t c) { return static_cast<uint32_t>(c >> 16) & 0xffff; }
constexpr uint32_t next_of(uint64_t c) { return static_cast<uint32_t>(c) & 0xffff; }

// Waits until ready(word) holds: polls for kSpin, then blocks on the word's futex, with
// `sleepers` counted up while blocked so that the writer of `word` knows whether to notify it.
// The writer must store `word` (seq_cst) before reading `sleepers` (seq_cst); this thread
// counts itself in (seq_cst) before its last check of `word`, so one of the two sees the other.
template <class Ready>
uint32_t await(const std::atomic<uint32_t>& word, std::atomic<int>& sleepers, Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (unsigned i = 1;; ++i) {
    const uint32_t v = word.load(std::memory_order_acquire);
    if (ready(v)) return v;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() >= deadline) break;
  }
  sleepers.fetch_add(1, std::memory_order_seq_cst);
  uint32_t v = word.load(std::memory_order_seq_cst);
  while (!ready(v)) {
    word.wait(v, std::memory_order_seq_cst);
    v = word.load(std::memory_order_seq_cst);
  }
  sleepers.fetch_sub(1, std::memory_order_relaxed);
  return v;
}

int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}
}  // namespace

int default_thread_count() {
  if (const char* env = std::getenv("AXLLM_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  if (const int n = allowed_cpus(); n > 0) return n;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool::ThreadPool(int n_threads, OnStall on_stall)
    : n_threads_(std::clamp(n_threads, 1, kMaxThreads)),
      on_stall_(on_stall),
      owner_pid_(static_cast<int>(::getpid())) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  if (static_cast<int>(::getpid()) != owner_pid_) {
    // A forked child: the workers belong to the parent; their handles cannot be joined here.
    new std::vector<std::thread>(std::move(workers_));
    return;
  }
  stop_.store(true, std::memory_order_seq_cst);
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  epoch_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker() {
  uint32_t seen = 0;
  for (;;) {
    seen = await(epoch_, idle_sleepers_, [seen](uint32_t e) { return e != seen; });
    if (stop_.load(std::memory_order_acquire)) return;
    work_on(seen);
  }
}

uint32_t ThreadPool::work_on(uint32_t region) {
  uint32_t ran = 0;
  uint64_t c = claim_.load(std::memory_order_acquire);
  for (;;) {
    if (region_of(c) != region || next_of(c) >= count_of(c)) return ran;
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      continue;
    }
    // The claimed task keeps its region open, so task_ stays valid until it is counted done.
    const uint32_t n_tasks = count_of(c);
    (*task_)(next_of(c));
    ++ran;
    if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == n_tasks &&
        caller_sleeping_.load(std::memory_order_seq_cst) != 0) {
      done_.notify_all();
    }
    c = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::note_region(bool stalled) {
  stall_score_ = 0.875f * stall_score_ + (stalled ? 0.125f : 0.0f);
  if (stalled && (probing_ || stall_score_ > 0.3f)) {
    // Go solo; a probe that stalls again doubles the next period.
    solo_left_ = solo_span_;
    solo_span_ = std::min(probing_ ? solo_span_ * 2 : solo_span_, kMaxSolo);
    stall_score_ = 0;
    calm_regions_ = 0;
    probing_ = true;
    return;
  }
  probing_ = false;
  if (!stalled && ++calm_regions_ >= kMaxSolo) {
    calm_regions_ = 0;
    solo_span_ = kMinSolo;  // the workers have kept up for a long while: forget past stalls
  }
}

void ThreadPool::run_tasks(uint32_t n_tasks, FunctionRef<void(uint32_t)> task) {
  std::lock_guard<std::mutex> lock(region_mutex_);
  if (n_tasks <= 1 || n_threads_ == 1 || static_cast<int>(::getpid()) != owner_pid_) {
    for (uint32_t i = 0; i < n_tasks; ++i) task(i);
    return;
  }
  if (solo_left_ > 0) {
    --solo_left_;
    solo_regions_.fetch_add(1, std::memory_order_relaxed);
    for (uint32_t i = 0; i < n_tasks; ++i) task(i);
    return;
  }
  const uint32_t region = ++region_;
  task_ = &task;
  done_.store(0, std::memory_order_relaxed);
  claim_.store(pack(region, n_tasks, 0), std::memory_order_release);
  epoch_.store(region, std::memory_order_seq_cst);
  if (idle_sleepers_.load(std::memory_order_seq_cst) != 0) epoch_.notify_all();
  if (on_stall_ == OnStall::kWait) {
    work_on(region);
    await(done_, caller_sleeping_, [n_tasks](uint32_t d) { return d == n_tasks; });
    task_ = nullptr;
    return;
  }
  const int64_t wall0 = now_ns(CLOCK_MONOTONIC);
  const int64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  const uint32_t ran = work_on(region);
  const int64_t cpu = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
  await(done_, caller_sleeping_, [n_tasks](uint32_t d) { return d == n_tasks; });
  const int64_t wall = now_ns(CLOCK_MONOTONIC) - wall0;
  task_ = nullptr;
  // The caller alone would have needed about its CPU time per task times every task.
  note_region(ran > 0 && wall > cpu / ran * n_tasks + kStallSlackNs);
}

void ThreadPool::run(FunctionRef<void(int, int)> fn) {
  const int n = n_threads_;
  run_tasks(static_cast<uint32_t>(n), [&](uint32_t t) { fn(static_cast<int>(t), n); });
}

void ThreadPool::parallel_for(size_t n, size_t grain, FunctionRef<void(size_t, size_t)> fn) {
  if (n == 0) return;
  grain = std::max<size_t>(1, grain);
  const size_t blocks = (n + grain - 1) / grain;
  const size_t parts = std::min<size_t>(
      blocks, static_cast<size_t>(n_threads_) * static_cast<size_t>(kChunksPerThread));
  if (n_threads_ == 1 || parts <= 1) {
    fn(0, n);
    return;
  }
  run_tasks(static_cast<uint32_t>(parts), [&](uint32_t p) {
    const size_t begin = blocks * p / parts * grain;
    const size_t end = std::min(n, blocks * (p + 1) / parts * grain);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace axllm::detail
